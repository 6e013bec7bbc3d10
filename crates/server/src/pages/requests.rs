//! Just-in-time access pages and their API: the catalog (`/catalog`), asking (`/requests/new`),
//! my requests and my time-bound access with extend and relinquish (`/requests`), the approvals
//! inbox (`/approvals`) and a request with its timeline (`/requests/{id}`).
//!
//! Everyone signed in is a requester. A request is seen by its requester, its approvers, and
//! those who read its directory (administrators, auditors, its integration owners); to anyone
//! else it does not exist (404). Who may approve, deny, cancel or end it is decided by
//! `attest_access` and refused there (403), on the pages and the API alike.

use attest_access::{AccessError, Actor, Ask, Plan, Requester};
use attest_domain::access::{AccessRefusal, Length, RequestState, Span};
use attest_domain::{ConnectorId, EntitlementId};
use attest_store::{CatalogEntry, Request, RequestApprover, RequestFilter};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{page, with};
use crate::AppState;
use crate::error::{ApiError, WebError};

type ApiResult<T> = Result<Json<T>, ApiError>;
use crate::extract::{Id, Query};
use crate::forms::Submitted;
use crate::roles::{Allowed, Role, Viewer, rule};

/// A request as pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    #[serde(flatten)]
    pub request: Request,
    /// `8h`, or `permanent`.
    pub duration: String,
    /// "8 hours", "no end".
    pub duration_words: String,
    /// "Member of Finance (group)".
    pub access: String,
    /// Minutes left while active with an end.
    pub minutes_left: Option<i64>,
}

impl RequestView {
    fn new(request: Request, now: DateTime<Utc>) -> RequestView {
        let span = request.duration_minutes.map(Span::minutes);
        let minutes_left = match (request.state, request.expires_at) {
            (RequestState::Active, Some(end)) => Some((end - now).num_minutes().max(0)),
            _ => None,
        };
        RequestView {
            duration: span.map(|s| s.to_string()).unwrap_or_else(|| "permanent".into()),
            duration_words: span.map(Span::words).unwrap_or_else(|| "no end".into()),
            access: request.describe(),
            minutes_left,
            request,
        }
    }
}

/// One moment in a request's life.
#[derive(Debug, Clone, Serialize)]
pub struct Moment {
    pub at: DateTime<Utc>,
    pub what: String,
    /// A change in the queue it refers to.
    pub change: Option<i64>,
}

/// A request with its approvers, timeline and what the viewer may do.
#[derive(Debug, Clone, Serialize)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub view: RequestView,
    pub approvers: Vec<RequestApprover>,
    pub timeline: Vec<Moment>,
    pub can: Can,
    /// Approved, and waiting for its requester to activate the role in Entra themselves.
    pub awaits_activation: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Can {
    pub decide: bool,
    pub cancel: bool,
    pub revoke: bool,
    pub relinquish: bool,
    pub extend: bool,
    /// Activate the role in Entra (the requester, once approved, when the policy says so).
    pub activate: bool,
}

/// What `GET /api/v1/requests` and `/requests` answer.
#[derive(Debug, Clone, Serialize)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
    /// How many wait for the viewer's answer.
    pub awaiting_me: u64,
}

/// The viewer in the connector a request is in: the person, how the audit log names them,
/// and whether they administer Attest.
async fn actor(state: &AppState, viewer: &Viewer, connector: ConnectorId) -> Result<Actor, WebError> {
    let person = match attest_access::person(&state.store, connector, &viewer.user().object_id).await {
        Ok(person) => person,
        Err(_) => attest_domain::review::Person {
            object_id: viewer.user().object_id.clone(),
            name: viewer.user().display_name.clone(),
            email: viewer.user().email.clone(),
        },
    };
    Ok(Actor { person, by: viewer.actor(), administrator: viewer.roles.has(Role::Admin) })
}

/// The viewer as a requester in `connector` (they must be a user of its directory).
async fn requester(state: &AppState, viewer: &Viewer, connector: ConnectorId) -> Result<Requester, WebError> {
    let by = viewer.actor();
    attest_access::requester(&state.store, connector, &viewer.user().object_id, |_| by).await.map_err(|_| {
        WebError::Forbidden("you are not a user of this directory, so you cannot ask for access in it".into())
    })
}

/// An access error as the web answers it.
pub fn access_error(e: AccessError) -> WebError {
    match e {
        AccessError::Store(e) => e.into(),
        AccessError::Refused(refusal) => refusal.into(),
        AccessError::NotFound(message) => WebError::BadRequest(message),
    }
}

/// The connectors of the viewer's tenant: where they can ask.
async fn my_connectors(state: &AppState, viewer: &Viewer) -> Result<Vec<ConnectorId>, WebError> {
    let tenant = &viewer.user().tenant_id;
    Ok(state
        .caches
        .connectors(&state.store)
        .await?
        .iter()
        .filter(|c| c.tenant_id.as_deref() == Some(tenant.as_str()) || viewer.can_read(c.id))
        .map(|c| c.id)
        .collect())
}

#[derive(Debug, Default, Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    pub q: String,
}

/// What can be asked for, matching `q`.
pub async fn catalog_data(state: &AppState, viewer: &Viewer, q: &str) -> Result<Vec<CatalogEntry>, WebError> {
    let mut all = Vec::new();
    for connector in my_connectors(state, viewer).await? {
        all.extend(state.store.requests().catalog(Some(connector), Some(q), 500).await?);
    }
    Ok(all)
}

/// `GET /catalog`
pub async fn catalog(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Query(query): Query<CatalogQuery>,
) -> Result<Response, WebError> {
    let entries = catalog_data(&state, &viewer, &query.q).await?;
    let rows: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            json!({
                "entry": e,
                "approvers": approvers_in_words(&e.policy),
                "max": e.policy.cap().words(),
            })
        })
        .collect();
    Ok(page(&viewer, "catalog.html", json!({"entries": rows, "q": query.q}))?.into_response())
}

fn approvers_in_words(policy: &attest_domain::access::AccessPolicy) -> String {
    if policy.auto_approve {
        return "nobody: given at once".into();
    }
    let stage = |list: &[attest_domain::access::Approver]| {
        list.iter().map(attest_domain::access::Approver::describe).collect::<Vec<_>>().join(" or ")
    };
    let mut text = stage(&policy.approvers);
    if !policy.second_stage.is_empty() {
        text = format!("{text}, then {}", stage(&policy.second_stage));
    }
    if policy.quorum > 1 {
        text = format!("{text} ({} approvals each)", policy.quorum);
    }
    text
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    pub entitlement: Option<i64>,
}

/// What the request form (and `POST /api/v1/requests`) takes.
#[derive(Debug, Default, Deserialize)]
pub struct AskForm {
    /// The entitlement by id…
    #[serde(default, deserialize_with = "crate::forms::optional_number")]
    pub entitlement_id: Option<i64>,
    /// …or by name (`group:Finance:member`).
    #[serde(default)]
    pub entitlement: String,
    /// A preset (`8h`) or `other`.
    #[serde(default)]
    pub duration: String,
    /// With `duration=other`: any duration up to the cap.
    #[serde(default)]
    pub other: String,
    #[serde(default)]
    pub justification: String,
    #[serde(default)]
    pub ticket: String,
    #[serde(default, deserialize_with = "crate::forms::optional_time")]
    pub starts_at: Option<DateTime<Utc>>,
    /// Only say what would happen.
    #[serde(default, deserialize_with = "crate::forms::flag")]
    pub dry_run: bool,
}

impl AskForm {
    async fn entitlement(&self, state: &AppState) -> Result<EntitlementId, WebError> {
        if let Some(id) = self.entitlement_id {
            return Ok(EntitlementId(id));
        }
        let name: attest_domain::access::EntitlementRef = self
            .entitlement
            .parse()
            .map_err(|e: attest_domain::access::BadEntitlementRef| WebError::BadRequest(e.to_string()))?;
        Ok(attest_access::resolve(&state.store, None, &name).await.map_err(access_error)?.0.id)
    }

    fn length(&self) -> Result<Length, WebError> {
        let text = if self.duration == "other" || self.duration.is_empty() { &self.other } else { &self.duration };
        text.parse().map_err(|e: attest_domain::access::BadSpan| WebError::BadRequest(e.to_string()))
    }
}

/// Checks (and with `record`, records) a request as the viewer.
async fn ask_now(state: &AppState, viewer: &Viewer, form: &AskForm) -> Result<(Plan, Option<Request>), WebError> {
    let entitlement = form.entitlement(state).await?;
    let found = state.store.resources().get_entitlement(entitlement).await?;
    if !my_connectors(state, viewer).await?.contains(&found.connector_id) {
        return Err(WebError::NotFound("no such entitlement".into()));
    }
    let asker = requester(state, viewer, found.connector_id).await?;
    let ticket = Some(form.ticket.trim().to_owned()).filter(|t| !t.is_empty());
    let ask = Ask {
        entitlement,
        length: form.length()?,
        justification: form.justification.clone(),
        ticket,
        starts_at: form.starts_at,
    };
    let now = state.now();
    let plan = attest_access::plan(&state.store, &asker, &ask, now).await.map_err(access_error)?;
    if form.dry_run {
        return Ok((plan, None));
    }
    let request = attest_access::request(&state.store, &asker, &ask, now).await.map_err(access_error)?;
    Ok((plan, Some(request)))
}

/// `GET /requests/new?entitlement=ID`: the form, with who would approve.
pub async fn new_request(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Query(query): Query<NewQuery>,
) -> Result<Response, WebError> {
    let id = query.entitlement.ok_or_else(|| WebError::BadRequest("choose what to ask for in the catalog".into()))?;
    form_page(&state, &viewer, id, &AskForm::default(), None).await
}

async fn form_page(
    state: &AppState,
    viewer: &Viewer,
    entitlement: i64,
    form: &AskForm,
    error: Option<String>,
) -> Result<Response, WebError> {
    let entry = catalog_data(state, viewer, "")
        .await?
        .into_iter()
        .find(|e| e.entitlement_id == entitlement)
        .ok_or_else(|| WebError::NotFound("this access is not in the catalog".into()))?;
    let presets: Vec<serde_json::Value> =
        entry.policy.offered_presets().iter().map(|p| json!({"value": p.to_string(), "words": p.words()})).collect();
    let chosen =
        if form.duration.is_empty() { presets.first().map(|p| p["value"].clone()) } else { Some(json!(form.duration)) };
    let context = json!({
        "entry": entry,
        "approvers": approvers_in_words(&entry.policy),
        "max": entry.policy.cap().words(),
        "presets": presets,
        "chosen": chosen,
        "form": {
            "other": form.other, "justification": form.justification, "ticket": form.ticket,
            // As a `datetime-local` field shows it (UTC, to the minute).
            "starts_at": form.starts_at.map(|t| t.format("%Y-%m-%dT%H:%M").to_string()),
        },
        "error": error,
    });
    let status = if context["error"].is_null() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok((status, page(viewer, "request_form.html", context)?).into_response())
}

/// `POST /requests/ask` (the form at `/requests/new`)
pub async fn create(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Submitted(form): Submitted<AskForm>,
) -> Result<Response, WebError> {
    match ask_now(&state, &viewer, &form).await {
        Ok((_, Some(request))) => Ok(Redirect::to(&format!("/requests/{}", request.id)).into_response()),
        Ok((_, None)) => Ok(Redirect::to("/requests").into_response()),
        // What the person can fix is said on the form, which keeps what they typed.
        Err(e @ (WebError::BadRequest(_) | WebError::Refused { .. })) => match form.entitlement_id {
            Some(id) => form_page(&state, &viewer, id, &form, Some(e.to_string())).await,
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// `mine` (the default) or `awaiting` (waiting for the viewer's answer).
    #[serde(default)]
    pub scope: String,
    pub state: Option<RequestState>,
}

/// The viewer's requests, or those waiting for them.
pub async fn list_data(state: &AppState, viewer: &Viewer, query: &ListQuery) -> Result<RequestList, WebError> {
    let me = viewer.user().object_id.clone();
    let mut filter = RequestFilter { state: query.state, limit: 200, ..Default::default() };
    match query.scope.as_str() {
        "" | "mine" => filter.requester = Some(me.clone()),
        "awaiting" => filter.awaiting = Some(me.clone()),
        other => return Err(WebError::BadRequest(format!("scope '{other}': use mine or awaiting"))),
    }
    let now = state.now();
    let requests = state.store.requests().list_requests(&filter).await?;
    Ok(RequestList {
        requests: requests.into_iter().map(|r| RequestView::new(r, now)).collect(),
        awaiting_me: state.store.requests().count_awaiting(&me).await?,
    })
}

/// `GET /requests`: my requests and my time-bound access.
pub async fn mine(viewer: Allowed<rule::SignedIn>, State(state): State<AppState>) -> Result<Response, WebError> {
    let data = list_data(&state, &viewer, &ListQuery::default()).await?;
    let (active, other): (Vec<_>, Vec<_>) = data.requests.iter().partition(|r| r.request.state == RequestState::Active);
    let extend_presets: Vec<String> = ["1h", "8h", "1d", "7d"].iter().map(|s| (*s).to_owned()).collect();
    let context =
        json!({"active": active, "others": other, "awaiting_me": data.awaiting_me, "extend_presets": extend_presets});
    Ok(page(&viewer, "requests.html", context)?.into_response())
}

/// `GET /approvals`: requests waiting for the viewer's answer.
pub async fn approvals(viewer: Allowed<rule::SignedIn>, State(state): State<AppState>) -> Result<Response, WebError> {
    let data = list_data(&state, &viewer, &ListQuery { scope: "awaiting".into(), state: None }).await?;
    Ok(page(&viewer, "approvals.html", with(&data, json!({}))?)?.into_response())
}

/// Request `id` as the viewer may see it (404 for anyone it does not concern).
pub async fn detail(state: &AppState, viewer: &Viewer, id: i64) -> Result<RequestDetail, WebError> {
    let missing = || WebError::NotFound(format!("access request {id} not found"));
    let request = state.store.requests().get_request(id).await.map_err(|_| missing())?;
    let approvers = state.store.requests().approvers(id).await?;
    let me = &viewer.user().object_id;
    let mine = &request.requester_object == me;
    let approver = approvers.iter().any(|a| &a.object_id == me);
    let connector = ConnectorId(request.connector_id);
    if !(mine || approver || viewer.can_read(connector)) {
        return Err(missing());
    }
    let now = state.now();
    let holds = request.state.holds() && request.ended_by.is_none() && request.revoke_change_id.is_none();
    let awaits_activation =
        attest_access::awaits_activation(&state.store, &request, now).await.map_err(access_error)?;
    let can = Can {
        decide: request.state == RequestState::Pending
            && !mine
            && approvers.iter().any(|a| &a.object_id == me && a.stage == request.stage && a.approve.is_none()),
        cancel: mine && request.state == RequestState::Pending,
        relinquish: mine && holds,
        revoke: !mine && holds && (approver || viewer.roles.has(Role::Admin)),
        extend: mine
            && request.state == RequestState::Active
            && request.expires_at.is_some()
            && holds
            && !request.activated_by_holder(),
        activate: mine && awaits_activation,
    };
    let timeline = timeline(&request, &approvers);
    Ok(RequestDetail { view: RequestView::new(request, now), approvers, timeline, can, awaits_activation })
}

/// What happened to a request, in order.
fn timeline(r: &Request, approvers: &[RequestApprover]) -> Vec<Moment> {
    let moment = |at, what: String, change| Moment { at, what, change };
    let mut all = vec![moment(r.created_at, format!("{} asked: {}", r.requester_name, r.justification), None)];
    for a in approvers {
        if let (Some(at), Some(approve)) = (a.decided_at, a.approve) {
            let said = if approve { "approved" } else { "denied" };
            let why = a.reason.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
            all.push(moment(at, format!("{} {said} (stage {}){why}", a.name, a.stage), None));
        }
    }
    if r.stages == 0 {
        all.push(moment(r.created_at, "approved at once: this access needs no approval".into(), None));
    }
    if let Some(at) = r.activated_at {
        let what = match r.extends_id {
            Some(old) => format!("took over from request {old}"),
            None if r.activated_by_holder() => {
                format!("activated in Entra by {} (Entra ends it by itself)", r.requester_name)
            }
            None => "given in Entra".into(),
        };
        all.push(moment(at, what, r.grant_change_id));
    }
    if let (Some(end), RequestState::Active) = (r.expires_at, r.state) {
        all.push(moment(end, "ends".into(), None));
    }
    if r.revoke_change_id.is_some() && r.state == RequestState::Active {
        all.push(moment(r.updated_at, "removal queued in Entra".into(), r.revoke_change_id));
    }
    if let Some(at) = r.ended_at {
        let what = match (r.state, &r.end_reason) {
            (RequestState::Revoked, why) => {
                format!(
                    "ended early by {}{}",
                    r.ended_by.clone().unwrap_or_default(),
                    why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                )
            }
            (state, Some(why)) => format!("{state}: {why}"),
            (state, None) => state.to_string(),
        };
        all.push(moment(at, what, r.revoke_change_id));
    }
    all.sort_by_key(|m| m.at);
    all
}

/// `GET /requests/{id}`
pub async fn request(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Response, WebError> {
    let data = detail(&state, &viewer, id).await?;
    Ok(page(&viewer, "request.html", with(&data, json!({}))?)?.into_response())
}

/// What acting on a request takes.
#[derive(Debug, Default, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    pub reason: String,
    /// For `extend`: how much longer.
    #[serde(default)]
    pub duration: String,
}

/// An act on request `id` as the viewer: `approve`, `deny`, `cancel`, `revoke` or `extend`.
pub async fn act_now(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    act: &str,
    form: &ActForm,
) -> Result<Request, WebError> {
    detail(state, viewer, id).await?;
    let request = state.store.requests().get_request(id).await?;
    let connector = ConnectorId(request.connector_id);
    let now = state.now();
    let store = &state.store;
    let done = match act {
        "approve" | "deny" => {
            let actor = actor(state, viewer, connector).await?;
            attest_access::decide(store, id, &actor, act == "approve", &form.reason, now).await.map(|v| v.request)
        }
        "cancel" => attest_access::cancel(store, id, &actor(state, viewer, connector).await?, now).await,
        "revoke" => attest_access::revoke(store, id, &actor(state, viewer, connector).await?, &form.reason, now).await,
        "extend" => {
            let span: Span = form
                .duration
                .parse()
                .map_err(|e: attest_domain::access::BadSpan| WebError::BadRequest(e.to_string()))?;
            let asker = requester(state, viewer, connector).await?;
            attest_access::extend(store, id, &asker, span, &form.reason, now).await
        }
        _ => return Err(WebError::NotFound("no such action".into())),
    };
    done.map_err(|e| match e.refusal() {
        Some(AccessRefusal::ReasonRequired) => WebError::BadRequest(AccessRefusal::ReasonRequired.to_string()),
        _ => access_error(e),
    })
}

macro_rules! act_routes {
    ($($page:ident, $api:ident => $act:literal;)*) => {
        $(
            #[doc = concat!("`POST /requests/{id}/", $act, "`")]
            pub async fn $page(
                viewer: Allowed<rule::SignedIn>,
                State(state): State<AppState>,
                Id(id): Id,
                Submitted(form): Submitted<ActForm>,
            ) -> Result<Response, WebError> {
                let done = act_now(&state, &viewer, id, $act, &form).await?;
                Ok(Redirect::to(&format!("/requests/{}", done.id)).into_response())
            }

            #[doc = concat!("`POST /api/v1/requests/{id}/", $act, "`")]
            pub async fn $api(
                viewer: Allowed<rule::SignedIn>,
                State(state): State<AppState>,
                Id(id): Id,
                Submitted(form): Submitted<ActForm>,
            ) -> ApiResult<RequestView> {
                let done = act_now(&state, &viewer, id, $act, &form).await?;
                Ok(Json(RequestView::new(done, state.now())))
            }
        )*
    };
}

act_routes! {
    approve, api_approve => "approve";
    deny, api_deny => "deny";
    cancel, api_cancel => "cancel";
    revoke, api_revoke => "revoke";
    extend, api_extend => "extend";
}

/// `GET /api/v1/catalog`
pub async fn api_catalog(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Query(query): Query<CatalogQuery>,
) -> ApiResult<Vec<CatalogEntry>> {
    Ok(Json(catalog_data(&state, &viewer, &query.q).await?))
}

/// `GET /api/v1/requests`
pub async fn api_list(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<RequestList> {
    Ok(Json(list_data(&state, &viewer, &query).await?))
}

/// `GET /api/v1/requests/{id}`
pub async fn api_request(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<RequestDetail> {
    Ok(Json(detail(&state, &viewer, id).await?))
}

/// `POST /api/v1/requests`: asks (201 with the request), or with `dry_run` says what would
/// happen (200 with the plan).
pub async fn api_create(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Submitted(form): Submitted<AskForm>,
) -> Result<Response, ApiError> {
    let (plan, request) = ask_now(&state, &viewer, &form).await?;
    Ok(match request {
        Some(request) => (StatusCode::CREATED, Json(RequestView::new(request, state.now()))).into_response(),
        None => Json(plan).into_response(),
    })
}

/// Time-bound access changed in Entra outside Attest (back after it ended, or made permanent
/// or extended there), as the pages and the API show it.
pub fn drift_json(drifted: &[attest_store::Drift]) -> Vec<serde_json::Value> {
    drifted
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind,
                "request_id": d.request_id,
                "request_url": format!("/requests/{}", d.request_id),
                "holder": d.requester_name,
                "principal_id": d.principal_id,
                "resource_id": d.resource_id,
                "resource_name": d.resource_name,
                "resource_kind": d.resource_kind,
                "entitlement": d.entitlement_name,
                "ended_at": d.ended_at,
                "seen_at": d.seen_at,
                "authoritative": d.authoritative(),
            })
        })
        .collect()
}

async fn drift_data(state: &AppState, viewer: &Viewer) -> Result<serde_json::Value, WebError> {
    let drifted = state.store.requests().drifted(None, viewer.read_scope(), None, 500).await?;
    Ok(json!({"out_of_band": drift_json(&drifted)}))
}

/// `GET /requests/out-of-band`: time-bound access that came back in Entra after it ended, or
/// was made permanent (or extended) there.
pub async fn out_of_band(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
) -> Result<Html<String>, WebError> {
    let data = drift_data(&state, &viewer).await?;
    page(&viewer, "out_of_band.html", data)
}

/// `GET /api/v1/requests/out-of-band`
pub async fn api_out_of_band(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(drift_data(&state, &viewer).await?))
}
