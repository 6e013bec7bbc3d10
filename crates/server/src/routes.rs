//! Every route, with the access it requires, in one table.
//!
//! [`routes`] builds the router and the table together, so the table cannot miss a route; the
//! authorization test calls every route in [`route_table`] as every role and checks the answer
//! against the access written here. A handler enforces its access through its guard
//! ([`crate::roles::Allowed`]); this table is what the test holds it to.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{get, post};
use serde::Serialize;

use crate::roles::Access;
use crate::{AppState, api, auth, metrics, pages};

/// One route: method, path template and the access it requires.
#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

struct Table {
    router: Router<AppState>,
    routes: Vec<RouteInfo>,
}

impl Table {
    fn get<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, access: Access, handler: H) -> Self {
        self.routes.push(RouteInfo { method: "GET", path, access });
        self.router = self.router.route(path, get(handler));
        self
    }

    fn post<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, access: Access, handler: H) -> Self {
        self.routes.push(RouteInfo { method: "POST", path, access });
        self.router = self.router.route(path, post(handler));
        self
    }
}

fn routes() -> Table {
    use Access::*;
    Table { router: Router::new(), routes: Vec::new() }
        // Pages.
        .get("/", Public, pages::dashboard::home)
        .get("/people", DirectoryReader, pages::directory::people)
        .get("/groups", DirectoryReader, pages::directory::groups)
        .get("/applications", DirectoryReader, pages::directory::applications)
        .get("/roles", DirectoryReader, pages::directory::roles)
        .get("/principals/{id}", DirectoryReader, pages::directory::principal)
        .post("/principals/{id}/actions", Operator, pages::actions::submit)
        .get("/resources/{id}", DirectoryReader, pages::directory::resource)
        .get("/changes", DirectoryReader, pages::changes::changes)
        .get("/changes/{id}", DirectoryReader, pages::changes::change)
        .post("/changes/{id}/approve", Operator, pages::changes::approve)
        .post("/changes/{id}/retry", Operator, pages::changes::retry)
        .post("/changes/{id}/cancel", Operator, pages::changes::cancel)
        .get("/syncs", DirectoryReader, pages::syncs::syncs)
        .post("/connectors/{name}/sync", Operator, pages::syncs::sync_now)
        .get("/audit", AuditReader, pages::audit::audit)
        .get("/audit/export.csv", AuditReader, pages::audit::export_csv)
        .get("/audit/export.json", AuditReader, pages::audit::export_json)
        .get("/admin/mail", AuditReader, pages::mail::outbox)
        .get("/admin/mail/{id}", AuditReader, pages::mail::mail)
        // Signing in and out.
        .get("/auth/sign-in", Public, auth::sign_in)
        .get("/auth/callback", Public, auth::callback)
        .post("/auth/sign-out", SignedIn, auth::sign_out)
        .get("/auth/link/{token}", Public, auth::login_link)
        // The JSON API.
        .get("/api/v1/openapi.json", Public, api::openapi)
        .get("/api/v1/me", SignedIn, auth::me)
        .get("/api/v1/dashboard", SignedIn, api::dashboard)
        .get("/api/v1/people", DirectoryReader, api::people)
        .get("/api/v1/groups", DirectoryReader, api::groups)
        .get("/api/v1/applications", DirectoryReader, api::applications)
        .get("/api/v1/roles", DirectoryReader, api::roles)
        .get("/api/v1/principals/{id}", DirectoryReader, api::principal)
        .get("/api/v1/resources/{id}", DirectoryReader, api::resource)
        .get("/api/v1/changes", DirectoryReader, api::changes)
        .get("/api/v1/changes/{id}", DirectoryReader, api::change)
        .get("/api/v1/syncs", DirectoryReader, api::syncs)
        .get("/api/v1/audit", AuditReader, api::audit)
        .post("/api/v1/principals/{id}/actions", Operator, api::act)
        .post("/api/v1/changes/{id}/approve", Operator, api::approve)
        .post("/api/v1/changes/{id}/retry", Operator, api::retry)
        .post("/api/v1/changes/{id}/cancel", Operator, api::cancel)
        .post("/api/v1/connectors/{name}/sync", Operator, api::sync_now)
        // Operations.
        .get("/assets/attest.css", Public, crate::security::stylesheet)
        .get("/healthz", Public, crate::healthz)
        .get("/readyz", Public, crate::readyz)
        .get("/metrics", Public, metrics::metrics)
}

/// Every route and the access it requires.
pub fn route_table() -> Vec<RouteInfo> {
    routes().routes
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    routes()
        .router
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        // Outside the routes, so unknown paths and refusals carry the headers too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::security::headers))
        .layer(axum::middleware::from_fn(crate::request_id::tag))
        .with_state(state)
}
