//! Server-rendered pages (tera templates from `templates/web`, compiled into the binary): the
//! landing page, the dashboard and the people directory. They work without JavaScript.

use std::sync::Arc;

use attest_domain::ChangeState;
use attest_store::ChangeFilter;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::CurrentSession;
use crate::roles::Roles;

/// People per page in the directory.
const PAGE_SIZE: u64 = 50;

/// The templates, compiled into the binary so one file is the whole application.
pub fn templates() -> Result<Arc<tera::Tera>, tera::Error> {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates([
        ("layout.html", include_str!("../../../templates/web/layout.html")),
        ("landing.html", include_str!("../../../templates/web/landing.html")),
        ("dashboard.html", include_str!("../../../templates/web/dashboard.html")),
        ("people.html", include_str!("../../../templates/web/people.html")),
        ("error.html", include_str!("../../../templates/web/error.html")),
    ])?;
    Ok(Arc::new(tera))
}

fn render(state: &AppState, template: &str, context: serde_json::Value) -> Response {
    let context = match tera::Context::from_value(context) {
        Ok(context) => context,
        Err(e) => return internal(&e),
    };
    match state.templates.render(template, &context) {
        Ok(html) => Html(html).into_response(),
        Err(e) => internal(&e),
    }
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "a page could not be rendered");
    (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered\n").into_response()
}

/// What every signed-in page's layout needs.
fn frame(session: &CurrentSession, roles: &Roles) -> serde_json::Value {
    json!({
        "user": session.0.user,
        "csrf": session.0.csrf_token,
        "roles": roles.names(),
        "can_browse": roles.can_browse_directory(),
    })
}

fn merge(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// A page saying why not, with the right status.
pub fn refusal(
    state: &AppState,
    status: StatusCode,
    heading: &str,
    message: &str,
    frame: serde_json::Value,
) -> Response {
    let context = merge(frame, json!({"status": status.as_u16(), "heading": heading, "message": message}));
    let mut response = render(state, "error.html", context);
    *response.status_mut() = status;
    response
}

/// `GET /`: the landing page, or the dashboard when signed in.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match crate::auth::session_of(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return render(&state, "landing.html", json!({})),
        Err(response) => return response,
    };
    let roles = Roles::of(&state.store, &session.0.user).await;
    let frame = frame(&session, &roles);
    match dashboard_data(&state).await {
        Ok(data) => render(&state, "dashboard.html", merge(frame, data)),
        Err(e) => internal(&e),
    }
}

async fn dashboard_data(state: &AppState) -> Result<serde_json::Value, attest_store::StoreError> {
    let connectors = state.store.list_connectors().await?;
    let mut principals = 0;
    let mut grants = 0;
    for c in &connectors {
        principals += state.store.count_principals(c.id).await?;
        grants += state.store.count_current_grants(c.id).await?.values().sum::<u64>();
    }
    let by_state = state.store.count_changes_by_state().await?;
    let count = |s: ChangeState| by_state.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let changes = state.store.list_changes(&ChangeFilter { limit: 10, ..Default::default() }).await?;
    let when = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    Ok(json!({
        "connectors": connectors.iter().map(|c| json!({
            "name": c.name,
            "status": c.status,
            "last_full_sync_at": when(c.last_full_sync_at),
            "last_delta_sync_at": when(c.last_delta_sync_at),
        })).collect::<Vec<_>>(),
        "principals": principals,
        "grants": grants,
        "awaiting_approval": count(ChangeState::AwaitingApproval),
        "failed": count(ChangeState::Failed),
        "changes": changes.iter().map(|c| json!({
            "id": c.id.0,
            "description": c.action.describe(),
            "state": c.state,
            "result": c.result,
            "requested_by": c.requested_by,
        })).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
pub struct PeopleQuery {
    #[serde(default)]
    q: String,
    page: Option<u64>,
}

/// `GET /people`: the directory of people, searchable, a page at a time. Administrators,
/// auditors and integration owners only.
pub async fn people(
    State(state): State<AppState>,
    session: CurrentSession,
    Query(query): Query<PeopleQuery>,
) -> Response {
    let roles = Roles::of(&state.store, &session.0.user).await;
    let frame = frame(&session, &roles);
    if !roles.can_browse_directory() {
        return refusal(
            &state,
            StatusCode::FORBIDDEN,
            "Not for you",
            "The directory is for administrators, auditors and integration owners.",
            frame,
        );
    }
    let q: String = query.q.chars().take(200).collect();
    let page = query.page.unwrap_or(1).max(1);
    let (people, total) = match state.store.search_people(&q, PAGE_SIZE, (page - 1) * PAGE_SIZE).await {
        Ok(found) => found,
        Err(e) => return internal(&e),
    };
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let people: Vec<serde_json::Value> = people
        .iter()
        .map(|p| {
            json!({
                "display_name": p.data.display_name,
                "user_principal_name": p.data.user_principal_name,
                "email": p.data.email,
                "department": p.data.department,
                "account_enabled": p.data.account_enabled,
                "deleted": p.data.deleted_at.is_some(),
            })
        })
        .collect();
    let q_encoded = url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>();
    let context =
        json!({"people": people, "total": total, "page": page, "pages": pages, "q": q, "q_encoded": q_encoded});
    render(&state, "people.html", merge(frame, context))
}
