//! `/`: the landing page for the signed-out, the dashboard for the signed-in: sync status, the
//! changes waiting for this person's approval, recent changes (theirs, for requesters).

use attest_domain::{ChangeState, Connector};
use attest_store::ChangeFilter;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::changes::change_rows;
use super::{page, with};
use crate::AppState;
use crate::api_model::{Dashboard, DashboardConnector, LastRun};
use crate::error::WebError;
use crate::render::render_html;
use crate::roles::{Anyone, Viewer};

/// `GET /`
pub async fn home(_: Anyone, State(state): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let Some(viewer) = Viewer::of(&state, &headers).await? else {
        return Ok(Html(render_html("landing.html", json!({}))?).into_response());
    };
    let data = dashboard(&state, &viewer).await?;
    Ok(page(&viewer, "dashboard.html", with(&data, json!({}))?)?.into_response())
}

/// The dashboard's data (also `GET /api/v1/dashboard`).
pub async fn dashboard(state: &AppState, viewer: &Viewer) -> Result<Dashboard, WebError> {
    let store = &state.store;
    let connectors: Vec<Connector> =
        state.caches.connectors(store).await?.iter().filter(|c| viewer.can_read(c.id)).cloned().collect();
    let ids: Vec<_> = connectors.iter().map(|c| c.id).collect();
    let (principals, grants) = if ids.is_empty() { (0, 0) } else { state.caches.totals(store, &ids).await? };
    let mut rows = Vec::new();
    for c in &connectors {
        let last = store.syncs().list_sync_runs(c.id, 1).await?.into_iter().next();
        rows.push(DashboardConnector {
            id: c.id.0,
            name: c.name.clone(),
            status: c.status.to_string(),
            status_reason: c.status_reason.clone(),
            last_full_sync_at: c.last_full_sync_at,
            last_delta_sync_at: c.last_delta_sync_at,
            last_run: last.map(|r| LastRun { mode: r.mode.to_string(), status: r.status.to_string(), error: r.error }),
            sync_requested: store.syncs().find_sync_request(c.id).await?.is_some(),
            can_sync: viewer.can_operate(c.id),
        });
    }
    // Waiting for this person: sensitive changes in connectors they operate, asked by others.
    // Only the connectors this person reads are asked of the database.
    let within = viewer.read_scope().map(<[_]>::to_vec);
    let awaiting = store
        .changes()
        .list_changes(&ChangeFilter {
            state: Some(ChangeState::AwaitingApproval),
            within: within.clone(),
            limit: 200,
            ..Default::default()
        })
        .await?;
    let actor = viewer.actor();
    let for_me: Vec<_> = awaiting.into_iter().filter(|c| viewer.may_approve(c)).take(20).collect();
    let recent = if connectors.is_empty() {
        // Requesters see what they asked for.
        store
            .changes()
            .list_changes(&ChangeFilter { requested_by: Some(actor), limit: 10, ..Default::default() })
            .await?
    } else {
        store.changes().list_changes(&ChangeFilter { within: within.clone(), limit: 10, ..Default::default() }).await?
    };
    let failed = store
        .changes()
        .list_changes(&ChangeFilter { state: Some(ChangeState::Failed), within, limit: 500, ..Default::default() })
        .await?
        .len();
    let reviews = crate::pages::reviews::inbox_campaigns(state, viewer).await?;
    Ok(Dashboard {
        reviews: reviews.iter().filter(|c| c.pending > 0).map(crate::api_model::InboxCampaign::new).collect(),
        connectors: rows,
        principals,
        grants,
        awaiting_me: change_rows(store, &for_me).await?,
        failed: failed as u64,
        changes: change_rows(store, &recent).await?,
        reads_directory: !connectors.is_empty(),
        access_requests_awaiting: store.requests().count_awaiting(&viewer.user().object_id).await?,
        access_held: store
            .requests()
            .list_requests(&attest_store::RequestFilter {
                requester: Some(viewer.user().object_id.clone()),
                state: Some(attest_domain::access::RequestState::Active),
                limit: 500,
                ..Default::default()
            })
            .await?
            .len() as u64,
    })
}
