//! Shared state, the route table and the per-request plumbing: request ids, the error
//! envelope, resource-unit accounting.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::GraphError;
use crate::identity::IssuedToken;
use crate::throttle::{Bucket, ThrottleConfig, Verdict, documented_quota};
use crate::{ClientApp, SimOptions, Tenant, apps, delta, graph, identity, roles, truth, writes};

/// The simulator's state. Locks are held only for in-memory work, never across an await.
pub struct Sim {
    pub(crate) tenant: RwLock<Tenant>,
    pub(crate) client: ClientApp,
    pub(crate) graph_url: String,
    pub(crate) tokens: Mutex<HashMap<String, IssuedToken>>,
    pub(crate) rng: Mutex<SmallRng>,
    clock: Mutex<DateTime<Utc>>,
    started: std::time::Instant,
    stats: Mutex<Stats>,
    throttle: Option<ThrottleConfig>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Requests and resource units, per route (method and path template).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub resource_units: u64,
    /// Requests answered 429.
    pub throttled: u64,
    pub by_route: BTreeMap<String, RouteStats>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStats {
    pub requests: u64,
    pub resource_units: u64,
}

impl Sim {
    pub(crate) fn new(tenant: Tenant, client: ClientApp, graph_url: String, options: SimOptions) -> Sim {
        let now = options.now;
        Sim {
            throttle: options.throttle,
            buckets: Mutex::new(HashMap::new()),
            tenant: RwLock::new(tenant),
            client,
            graph_url,
            tokens: Mutex::new(HashMap::new()),
            rng: Mutex::new(SmallRng::seed_from_u64(now.timestamp_micros() as u64)),
            clock: Mutex::new(now),
            started: std::time::Instant::now(),
            stats: Mutex::new(Stats::default()),
        }
    }

    /// The simulator's "now": its start time plus real time elapsed plus any advance.
    pub fn now(&self) -> DateTime<Utc> {
        let base = self.clock.lock().map(|c| *c).unwrap_or_else(|e| *e.into_inner());
        base + Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    pub(crate) fn advance(&self, by: Duration) {
        if let Ok(mut clock) = self.clock.lock() {
            *clock += by;
        }
    }

    pub fn tenant_id(&self) -> String {
        self.read(|t| t.id.clone())
    }

    /// The registered client app (credentials and granted permissions).
    pub fn client(&self) -> &ClientApp {
        &self.client
    }

    /// Runs `f` on the tenant.
    pub fn read<T>(&self, f: impl FnOnce(&Tenant) -> T) -> T {
        match self.tenant.read() {
            Ok(tenant) => f(&tenant),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Runs `f` on the tenant for a change.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tenant) -> T) -> T {
        match self.tenant.write() {
            Ok(mut tenant) => f(&mut tenant),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Ends time-bound role assignments and eligibilities whose end has passed on the
    /// simulator's clock (checked under the read lock first: this runs on every request).
    fn expire_schedules(&self) {
        let now = self.now();
        if self.read(|t| t.has_expired_schedules(now)) {
            self.write(|t| t.expire_schedules(now));
        }
    }

    /// Requests served and resource units charged so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn new_id(&self) -> String {
        let bytes: [u8; 16] = self.rng.lock().map(|mut r| r.random()).unwrap_or_default();
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// An appRoleAssignment id: base64url, not a GUID (approleassignment.md).
    pub(crate) fn new_assignment_id(&self) -> String {
        self.rng.lock().map(|mut r| crate::generate::assignment_id(&mut *r)).unwrap_or_default()
    }

    /// Charges a request to its app's bucket, when throttling is on.
    fn charge(&self, headers: &HeaderMap, units: u64) -> Option<(String, Verdict)> {
        let config = self.throttle?;
        let token =
            headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))?;
        // Unauthenticated requests are refused by the handler, not counted against an app.
        let app = self.tokens.lock().ok()?.get(token.trim())?.app_id.clone();
        let now = self.now();
        let quota = config.quota.unwrap_or_else(|| documented_quota(self.read(|t| t.users.len())));
        let mut buckets = self.buckets.lock().ok()?;
        let bucket = buckets.entry(app.clone()).or_insert_with(|| Bucket::new(quota, config.window_secs, now));
        Some((app, bucket.charge(units as f64, now)))
    }

    fn record(&self, route: &str, units: u64) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.requests += 1;
            stats.resource_units += units;
            let entry = stats.by_route.entry(route.to_owned()).or_default();
            entry.requests += 1;
            entry.resource_units += units;
        }
    }
}

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
        .route("/_sim/truth", get(truth::truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/mutate", post(crate::mutate::handler))
        .route("/_sim/reset-delta", post(reset_delta))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(sim.clone(), plumbing))
        .with_state(sim)
}

async fn reset_delta(State(sim): State<Arc<Sim>>) -> axum::http::StatusCode {
    sim.write(|t| t.journal.reset());
    axum::http::StatusCode::NO_CONTENT
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

/// Every response carries `request-id` and `client-request-id` (echoed when the client sent
/// one); Graph responses carry `x-ms-resource-unit`; errors get their full envelope here.
async fn plumbing(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
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
    let is_graph = route.starts_with("/v1.0/") || route.starts_with("/beta/");
    let units = resource_units(request.method(), &route, request.uri().query());
    let key = format!("{} {route}", request.method());
    let mut throttle_usage = None;
    if is_graph && let Some((app, verdict)) = sim.charge(request.headers(), units) {
        match verdict {
            Verdict::Throttled { retry_after_secs } => {
                sim.record(&key, units);
                if let Ok(mut stats) = sim.stats.lock() {
                    stats.throttled += 1;
                }
                return throttled(&sim, &request_id, &client_request_id, &app, retry_after_secs);
            }
            Verdict::Allowed { usage } => throttle_usage = Some(usage),
        }
    }
    sim.expire_schedules();
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<GraphError>() {
        let date = sim.now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let body = error.body(&request_id, &client_request_id, &date);
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response = Response::from_parts(parts, Body::from(body.to_string()));
    }
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
    if is_graph {
        headers.insert("x-ms-resource-unit", HeaderValue::from(units));
        sim.record(&key, units);
    } else {
        sim.record(&key, 0);
    }
    response
}

/// A 429 exactly as throttling.md shows it: its own `innerError` shape, `Retry-After`, and the
/// scope and reason headers.
fn throttled(sim: &Sim, request_id: &str, client_request_id: &str, app: &str, retry_after_secs: u64) -> Response {
    let date = sim.now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let body = serde_json::json!({
        "error": {
            "code": "TooManyRequests",
            "innerError": {"code": "429", "date": date, "message": "Please retry after", "request-id": request_id, "status": "429"},
            "message": "Please retry again later.",
        }
    });
    let mut response = (axum::http::StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    let scope = format!("Tenant_Application/ReadWrite/{app}/{}", sim.tenant_id());
    let headers = response.headers_mut();
    for (name, value) in [
        ("retry-after", retry_after_secs.to_string()),
        ("x-ms-throttle-scope", scope),
        ("x-ms-throttle-information", "ResourceUnitLimitExceeded".to_owned()),
        ("request-id", request_id.to_owned()),
        ("client-request-id", client_request_id.to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
