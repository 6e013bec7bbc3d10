//! The route table and the per-request plumbing: request ids, the error envelope, resource-unit
//! accounting. The state they work on is in `state`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;

use crate::error::GraphError;
use crate::faults::{ExpireDelta, Fault, FaultRecord, FaultRule, RequestFacts};
use crate::state::{LoggedRequest, Sim, Stats};
use crate::throttle::{RetryAfter, Verdict};
use crate::{apps, consent, delta, directory, graph, identity, roles, signin, truth, writes};

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1.0/users", get(graph::list_users))
        // `/delta` is short for `/microsoft.graph.delta`; SDKs send the long form.
        .route("/v1.0/users/delta", get(delta::users))
        .route("/v1.0/users/microsoft.graph.delta", get(delta::users))
        .route("/v1.0/groups/delta", get(delta::groups))
        .route("/v1.0/groups/microsoft.graph.delta", get(delta::groups))
        .route("/v1.0/servicePrincipals/delta", get(delta::service_principals))
        .route("/v1.0/servicePrincipals/microsoft.graph.delta", get(delta::service_principals))
        .route("/v1.0/groups", get(graph::list_groups))
        .route("/v1.0/groups/{id}", get(graph::get_group))
        .route("/v1.0/groups/{id}/members", get(graph::list_members))
        .route("/v1.0/groups/{id}/owners", get(graph::list_owners))
        .route("/v1.0/groups/{id}/transitiveMembers", get(directory::list_transitive_members))
        .route("/v1.0/users/$count", get(directory::count_users))
        .route("/v1.0/groups/$count", get(directory::count_groups))
        .route("/v1.0/directoryRoles", get(directory::list_directory_roles))
        .route("/v1.0/directoryRoles/{id}/members", get(directory::list_directory_role_members))
        .route("/v1.0/organization", get(directory::list_organization))
        .route("/v1.0/users/{id}/manager", get(apps::get_manager))
        .route("/v1.0/users/{id}/appRoleAssignments", get(apps::list_user_app_role_assignments))
        .route("/v1.0/servicePrincipals", get(apps::list_service_principals))
        .route("/v1.0/servicePrincipals/{id}", get(apps::get_service_principal))
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
            get(apps::list_app_role_assigned_to).post(writes::assign_app_role),
        )
        .route("/v1.0/servicePrincipals/{id}/owners", get(apps::list_service_principal_owners))
        .route("/v1.0/roleManagement/directory/roleDefinitions", get(roles::list_role_definitions))
        .route(
            "/v1.0/roleManagement/directory/roleAssignments",
            get(roles::list_role_assignments).post(writes::add_role_assignment),
        )
        .route("/v1.0/roleManagement/directory/roleEligibilitySchedules", get(roles::list_role_eligibility_schedules))
        .route("/v1.0/roleManagement/directory/roleAssignmentSchedules", get(roles::list_role_assignment_schedules))
        .route("/v1.0/users/{id}", get(graph::get_user).patch(writes::patch_user).delete(writes::delete_user))
        .route("/v1.0/users/{id}/revokeSignInSessions", post(writes::revoke_sign_in_sessions))
        .route("/v1.0/groups/{id}/{relation}/$ref", post(writes::add_group_link))
        .route("/v1.0/groups/{id}/{relation}/{target}/$ref", delete(writes::remove_group_link))
        .route("/v1.0/groups/{id}/{relation}/{target}", delete(writes::delete_member_object))
        .route("/v1.0/servicePrincipals/{id}/owners/$ref", post(writes::add_app_owner))
        .route("/v1.0/servicePrincipals/{id}/owners/{target}/$ref", delete(writes::remove_app_owner))
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment}",
            delete(writes::remove_app_role_assignment),
        )
        .route("/v1.0/roleManagement/directory/roleAssignments/{id}", delete(writes::remove_role_assignment))
        .route(
            "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests",
            get(roles::list_role_assignment_schedule_requests).post(writes::role_assignment_schedule_request),
        )
        .route(
            "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests",
            post(writes::role_eligibility_schedule_request),
        )
        .route("/v1.0/directory/deletedItems/microsoft.graph.user", get(writes::list_deleted_users))
        .route("/v1.0/directory/deletedItems/{id}/restore", post(writes::restore))
        .route("/v1.0/directory/deletedItems/{id}", delete(writes::purge))
        .route("/v1.0/$batch", post(crate::batch::batch))
        .route("/login/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route("/login/{tenant}/oauth2/v2.0/authorize", get(signin::authorize_page).post(signin::authorize_submit))
        .route("/login/{tenant}/v2.0/.well-known/openid-configuration", get(signin::openid_configuration))
        .route("/login/{tenant}/discovery/v2.0/keys", get(signin::jwks))
        .route(
            "/login/{tenant}/v2.0/adminconsent",
            get(consent::admin_consent_page).post(consent::admin_consent_submit),
        )
        .route(
            "/login/{tenant}/adminconsent",
            get(consent::legacy_admin_consent_page).post(consent::legacy_admin_consent_submit),
        )
        .route("/_sim/truth", get(truth::truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/mutate", post(crate::mutate::handler))
        .route("/_sim/reset-delta", post(reset_delta))
        .route("/_sim/requests", get(requests))
        .route("/_sim/faults", get(faults).post(set_faults))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(sim.clone(), plumbing))
        .with_state(sim)
}

async fn reset_delta(State(sim): State<Arc<Sim>>) -> axum::http::StatusCode {
    sim.write(|t| t.journal.reset());
    axum::http::StatusCode::NO_CONTENT
}

async fn requests(State(sim): State<Arc<Sim>>) -> Json<Vec<LoggedRequest>> {
    Json(sim.requests())
}

/// The faults injected so far, and the plan in force.
async fn faults(State(sim): State<Arc<Sim>>) -> Json<serde_json::Value> {
    let plan = sim.faults.lock().map(|f| f.plan().clone()).unwrap_or_default();
    Json(serde_json::json!({"plan": plan, "injected": sim.faults()}))
}

/// Replaces the fault plan (`{"plan": {...}}`) or adds one rule (`{"rule": {...}}`).
async fn set_faults(
    State(sim): State<Arc<Sim>>,
    Json(change): Json<FaultChange>,
) -> Result<StatusCode, (StatusCode, String)> {
    let mut faults = sim.faults.lock().map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "poisoned".to_owned()))?;
    match change {
        FaultChange { plan: Some(plan), rule: None } => faults.set_plan(plan),
        FaultChange { plan: None, rule: Some(rule) } => faults.add_rule(rule),
        _ => return Err((StatusCode::BAD_REQUEST, "send exactly one of `plan` and `rule`".to_owned())),
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize)]
struct FaultChange {
    plan: Option<crate::faults::FaultPlan>,
    rule: Option<FaultRule>,
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Stats> {
    Json(sim.stats())
}

async fn not_found(method: Method, uri: axum::http::Uri) -> GraphError {
    // [INFER] Graph answers an unknown segment with 400 BadRequest "Resource not found for the
    // segment '...'"; an unknown path here is the same kind of mistake.
    let segment = uri.path().rsplit('/').find(|s| !s.is_empty()).unwrap_or_default().to_owned();
    GraphError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}' ({method})."),
    )
}

impl IntoResponse for GraphError {
    /// The envelope is completed by [`plumbing`], which knows the request's ids.
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status;
        response.extensions_mut().insert(self);
        response
    }
}

/// Resource units for a Graph request, per the identity service's cost table (graph-facts §8).
pub(crate) fn resource_units(method: &Method, route: &str, query: Option<&str>) -> u64 {
    let mut cost: i64 = match (method.as_str(), route) {
        ("GET", "/v1.0/users") => 2,
        ("GET", "/v1.0/groups/{id}/members") => 3,
        ("GET", "/v1.0/groups/{id}/transitiveMembers") => 5,
        ("GET", "/v1.0/servicePrincipals/{id}/appRoleAssignments") => 2,
        _ => 1,
    };
    let options: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
        .collect();
    if options.iter().any(|(k, _)| k == "$select") {
        cost -= 1;
    }
    if options.iter().any(|(k, _)| k == "$expand") {
        cost += 1;
    }
    if options.iter().any(|(k, v)| k == "$top" && v.parse::<u64>().is_ok_and(|t| t < 20)) {
        cost -= 1;
    }
    cost.max(1) as u64
}

/// Marks a request dispatched from inside a `$batch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchItem;

/// Every response carries `request-id` and `client-request-id` (echoed when the client sent
/// one); Graph responses carry `x-ms-resource-unit`; errors get their full envelope here.
/// Latency, faults and throttling happen here too, before the handler runs.
async fn plumbing(State(sim): State<Arc<Sim>>, mut request: Request, next: Next) -> Response {
    let at = sim.now();
    let request_id = sim.new_id();
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let method = request.method().clone();
    let uri = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let is_graph = route.starts_with("/v1.0/") || route.starts_with("/beta/");
    let batch_item = request.extensions().get::<BatchItem>().is_some();
    let app = if is_graph { sim.app_of(request.headers()) } else { None };
    // A batch's items arrive together with their batch, which was checked already.
    let early = !batch_item && app.as_deref().is_some_and(|app| sim.inside_retry_window(app));
    let key = format!("{method} {route}");
    let mut log = LogOnDrop {
        sim: sim.clone(),
        key,
        done: false,
        entry: LoggedRequest {
            at,
            request_id: request_id.clone(),
            method: method.to_string(),
            uri: uri.clone(),
            status: 0,
            app: app.clone(),
            resource_units: 0,
            fault: None,
            early,
        },
    };

    if is_graph && !batch_item && !sim.latency.is_zero() {
        tokio::time::sleep(sim.latency).await;
    }
    let decision = if route.starts_with("/_sim/") {
        None
    } else {
        let facts = RequestFacts::new(method.as_str(), request.uri().path(), request.uri().query(), batch_item);
        sim.faults.lock().ok().and_then(|mut f| f.decide_for(&facts, is_graph))
    };
    let fault = decision.map(|d| d.fault);
    let record_fault = |log: &mut LogOnDrop, fault: Fault| {
        log.entry.fault = Some(fault.name());
        if let Ok(mut faults) = sim.faults.lock() {
            let record = FaultRecord {
                at,
                request_id: request_id.clone(),
                method: method.to_string(),
                path: uri.clone(),
                fault,
            };
            faults.note(record);
        }
    };
    // Faults that change a response are recorded once they did; the others at once.
    if let Some(fault) = fault.filter(|f| !f.rewrites_response()) {
        record_fault(&mut log, fault);
    }
    let early_response = match fault {
        Some(Fault::Unavailable { retry_after }) => {
            if let Some(secs) = retry_after {
                sim.tell_to_wait(app.as_deref(), secs);
            }
            let error = GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Try the request again after a delay.",
            );
            let mut response = error.into_response();
            if let Some(secs) = retry_after
                && let Ok(value) = HeaderValue::from_str(&format!("{secs}"))
            {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
            Some(response)
        }
        Some(Fault::GatewayTimeout) => Some(
            GraphError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "The operation timed out before it could be completed.",
            )
            .into_response(),
        ),
        Some(Fault::ThrottledWithoutRetryAfter) => Some(throttled(
            &sim,
            &request_id,
            app.as_deref().unwrap_or_default(),
            None,
            "Tenant_Application/ReadWrite",
            "ResourceUnitLimitExceeded",
        )),
        Some(Fault::Drop) => Some(dropped()),
        Some(Fault::Slow { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            None
        }
        Some(Fault::TokenExpired) => {
            sim.expire_token(request.headers());
            None
        }
        Some(Fault::ConsentRevoked) => {
            sim.remove_app();
            None
        }
        Some(Fault::DeltaTokenExpired) => {
            request.extensions_mut().insert(ExpireDelta);
            None
        }
        Some(Fault::ReplayDeltaPage | Fault::RemovedReferencesVariant) | None => None,
    };

    let mut throttle_usage = None;
    let mut response = match early_response {
        Some(response) => response,
        None => {
            let units = if is_graph { resource_units(&method, &route, request.uri().query()) } else { 0 };
            let write = is_graph && method != Method::GET && method != Method::HEAD && !route.ends_with("/$batch");
            let verdict =
                app.as_deref().filter(|_| is_graph).and_then(|app| sim.charge(app, units, write).map(|v| (app, v)));
            log.entry.resource_units = units;
            let refusal = verdict.and_then(|(app, v)| v.refusal().map(|r| (app, r)));
            if let Some((app, (secs, scope, reason))) = refusal {
                let style = sim.throttle.map(|t| t.retry_after).unwrap_or(RetryAfter::Seconds);
                let header = style.header(secs);
                // The client is held to the wait it was told, not to the bucket's exact figure.
                if let Some(told) = header.as_deref().and_then(|h| h.parse::<f64>().ok()) {
                    sim.tell_to_wait(Some(app), told);
                }
                throttled(&sim, &request_id, app, header, scope, reason)
            } else {
                if let Some((_, Verdict::Allowed { usage })) = verdict {
                    throttle_usage = Some(usage);
                }
                sim.expire_schedules();
                let response = next.run(request).await;
                let (response, rewritten) = match fault {
                    Some(Fault::ReplayDeltaPage) => replay_page(&sim, response, &uri).await,
                    Some(Fault::RemovedReferencesVariant) => removed_references_variant(response, &uri),
                    _ => (response, false),
                };
                match decision.filter(|d| d.fault.rewrites_response()) {
                    Some(d) if rewritten => record_fault(&mut log, d.fault),
                    // Not applicable after all (the removal succeeded, the page failed): the
                    // rule keeps its shot for a later request.
                    Some(d) => {
                        if let Ok(mut faults) = sim.faults.lock() {
                            faults.refund(&d);
                        }
                    }
                    None => {}
                }
                response
            }
        }
    };

    if let Some(error) = response.extensions_mut().remove::<GraphError>() {
        let date = sim.now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let body = error.body(&request_id, &client_request_id, &date);
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response = Response::from_parts(parts, Body::from(body.to_string()));
    }
    let status = response.status();
    let headers: &mut HeaderMap = response.headers_mut();
    for (name, value) in [("request-id", &request_id), ("client-request-id", &client_request_id)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if let Some(usage) = throttle_usage.filter(|u| *u > 0.8)
        && let Ok(value) = HeaderValue::from_str(&format!("{:.1}", usage.min(1.8)))
    {
        // Sent only above 0.8 (graph-facts §8).
        headers.insert("x-ms-throttle-limit-percentage", value);
    }
    if is_graph && log.entry.resource_units > 0 && status != StatusCode::TOO_MANY_REQUESTS {
        headers.insert("x-ms-resource-unit", HeaderValue::from(log.entry.resource_units));
    }
    // A dropped connection got no status at all.
    log.finish(if fault == Some(Fault::Drop) { 0 } else { status.as_u16() });
    response
}

/// Logs a request when its response is ready, or, if the client goes away first (a timeout
/// during a slow response), when the server drops it: status 499, as nginx logs it.
struct LogOnDrop {
    sim: Arc<Sim>,
    key: String,
    entry: LoggedRequest,
    done: bool,
}

impl LogOnDrop {
    fn finish(mut self, status: u16) {
        self.entry.status = status;
        self.done = true;
        self.sim.record(&self.key, self.entry.clone());
    }
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if !self.done {
            self.entry.status = 499;
            self.sim.record(&self.key, self.entry.clone());
        }
    }
}

/// A 429 exactly as throttling.md shows it: its own `innerError` shape, `Retry-After` (unless
/// omitted), and the scope and reason headers.
fn throttled(
    sim: &Sim,
    request_id: &str,
    app: &str,
    retry_after: Option<String>,
    scope: &str,
    reason: &str,
) -> Response {
    let date = sim.now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let body = serde_json::json!({
        "error": {
            "code": "TooManyRequests",
            "innerError": {"code": "429", "date": date, "message": "Please retry after", "request-id": request_id, "status": "429"},
            "message": "Please retry again later.",
        }
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    let scope = format!("{scope}/{app}/{}", sim.tenant_id());
    let headers = response.headers_mut();
    let mut values = vec![("x-ms-throttle-scope", scope), ("x-ms-throttle-information", reason.to_owned())];
    if let Some(retry_after) = retry_after {
        values.push(("retry-after", retry_after));
    }
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// A response whose connection breaks: the body fails before its first byte, so hyper aborts
/// the connection and the client sees a transport error, not an HTTP status.
fn dropped() -> Response {
    struct Broken;
    impl http_body::Body for Broken {
        type Data = axum::body::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault: dropped",
            ))))
        }
    }
    Response::new(Body::new(Broken))
}

/// Serves a delta page so that it comes again: its link points back at this request.
/// Returns the response and whether it was rewritten.
async fn replay_page(sim: &Sim, response: Response, uri: &str) -> (Response, bool) {
    if response.status() != StatusCode::OK {
        return (response, false);
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (Response::from_parts(parts, Body::empty()), false);
    };
    let Ok(serde_json::Value::Object(mut page)) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return (Response::from_parts(parts, Body::from(bytes)), false);
    };
    page.remove("@odata.deltaLink");
    page.insert("@odata.nextLink".into(), format!("{}{uri}", sim.graph_url).into());
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    (Response::from_parts(parts, Body::from(serde_json::Value::Object(page).to_string())), true)
}

/// Turns a 404 for a missing link into Graph's other documented answer (graph-facts §3).
/// Returns the response and whether it was rewritten.
fn removed_references_variant(mut response: Response, uri: &str) -> (Response, bool) {
    let Some(error) = response.extensions().get::<GraphError>() else { return (response, false) };
    if error.status != StatusCode::NOT_FOUND {
        return (response, false);
    }
    // `…/{relation}/{target}/$ref`
    let path = uri.split('?').next().unwrap_or_default();
    let relation = path.rsplit('/').nth(2).unwrap_or("members");
    let variant = GraphError::bad_request(format!(
        "One or more removed object references do not exist for the following modified properties: '{relation}'."
    ));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.extensions_mut().insert(variant);
    (response, true)
}
