//! Every route, with the access it requires and the surface it answers, in one table.
//!
//! [`routes`] builds the router and the table together, so the table cannot miss a route. A
//! route's access is read from its handler's guard (the first argument, see
//! [`crate::roles::Guarded`]), so the table and the handler cannot disagree; the authorization
//! test calls every route in [`route_table`] as every role and checks the answer against it.
//! Each route also says its [`Surface`] (page, API, SCIM), which its errors, the guard's
//! refusals included, are answered in.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use axum::{Extension, Router};
use serde::Serialize;

use crate::error::Surface;
use crate::roles::{Access, Guarded};
use crate::{AppState, api, auth, error_pages, metrics, pages};

/// One route: method, path template, the access it requires and its surface.
#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub surface: Surface,
}

struct Table {
    /// Each path's methods so far, and its surface; made routes by [`Table::router`].
    paths: Vec<(&'static str, MethodRouter<AppState>, Surface)>,
    routes: Vec<RouteInfo>,
    /// The surface of the routes added next.
    surface: Surface,
}

impl Table {
    /// The routes added after this answer as `surface`.
    fn surface(mut self, surface: Surface) -> Self {
        self.surface = surface;
        self
    }

    fn add<T: Guarded>(mut self, method: &'static str, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.routes.push(RouteInfo { method, path, access: T::ACCESS, surface: self.surface });
        // A path with several methods (`GET` and `POST /api/v1/campaigns`) is one route.
        match self.paths.iter_mut().find(|(p, _, _)| *p == path) {
            Some((_, methods, _)) => *methods = std::mem::take(methods).merge(route),
            None => self.paths.push((path, route, self.surface)),
        }
        self
    }

    /// The router: each path's methods, a 405 for the others, and its surface, which travels
    /// with the request for the guard, the form reader and the errors.
    fn router(self) -> Router<AppState> {
        self.paths.into_iter().fold(Router::new(), |router, (path, methods, surface)| {
            router.route(path, methods.fallback(error_pages::wrong_method).layer(Extension(surface)))
        })
    }

    fn get<H: Handler<T, AppState>, T: Guarded + 'static>(self, path: &'static str, handler: H) -> Self {
        self.add::<T>("GET", path, get(handler))
    }

    /// `handler` for each of `methods` (the SCIM endpoint's one dispatcher).
    fn methods<H: Handler<T, AppState> + Clone, T: Guarded + 'static>(
        mut self,
        methods: &[(&'static str, MethodFilter)],
        path: &'static str,
        handler: H,
    ) -> Self {
        for (name, filter) in methods {
            self = self.add::<T>(name, path, on(*filter, handler.clone()));
        }
        self
    }

    fn post<H: Handler<T, AppState>, T: Guarded + 'static>(self, path: &'static str, handler: H) -> Self {
        // A form's address opened with GET (back, refresh) goes to the page it belongs to.
        let route = if self.surface == Surface::Page { post(handler).get(error_pages::back) } else { post(handler) };
        self.add::<T>("POST", path, route)
    }
}

fn routes() -> Table {
    use Surface::*;
    Table { paths: Vec::new(), routes: Vec::new(), surface: Page }
        .surface(Page)
        .get("/", pages::dashboard::home)
        .get("/access", pages::me::my_access)
        .get("/people", pages::directory::people)
        .get("/groups", pages::directory::groups)
        .get("/applications", pages::directory::applications)
        .get("/roles", pages::directory::roles)
        .get("/service-principals", pages::directory::service_principals)
        .get("/principals/{id}", pages::directory::principal)
        .post("/principals/{id}/actions", pages::actions::submit)
        .get("/resources/{id}", pages::directory::resource)
        .get("/changes", pages::changes::changes)
        .get("/changes/{id}", pages::changes::change)
        .post("/changes/{id}/approve", pages::changes::approve)
        .post("/changes/{id}/deny", pages::changes::deny)
        .post("/changes/{id}/retry", pages::changes::retry)
        .post("/changes/{id}/cancel", pages::changes::cancel)
        .get("/reviews", pages::reviews::inbox)
        .post("/reviews/decide", pages::reviews::decide)
        .post("/reviews/accept", pages::reviews::accept)
        .get("/catalog", pages::requests::catalog)
        .get("/requests/new", pages::requests::new_request)
        .get("/requests", pages::requests::mine)
        .get("/requests/out-of-band", pages::requests::out_of_band)
        .post("/requests/ask", pages::requests::create)
        .get("/requests/{id}", pages::requests::request)
        .post("/requests/{id}/approve", pages::requests::approve)
        .post("/requests/{id}/deny", pages::requests::deny)
        .post("/requests/{id}/cancel", pages::requests::cancel)
        .post("/requests/{id}/revoke", pages::requests::revoke)
        .post("/requests/{id}/extend", pages::requests::extend)
        .post("/requests/{id}/activate", crate::activation::activate)
        .get("/approvals", pages::requests::approvals)
        .get("/campaigns", pages::campaigns::campaigns)
        .post("/campaigns/new", pages::campaigns::create)
        .get("/campaigns/{id}", pages::campaigns::campaign)
        .post("/campaigns/{id}/start", pages::campaigns::start)
        .post("/campaigns/{id}/close", pages::campaigns::close)
        .post("/campaigns/{id}/apply", pages::campaigns::apply)
        .get("/campaigns/{id}/export.csv", pages::campaigns::export_csv)
        .get("/campaigns/{id}/export.json", pages::campaigns::export_json)
        .get("/syncs", pages::syncs::syncs)
        .post("/connectors/{name}/sync", pages::syncs::sync_now)
        .get("/connectors", pages::connectors::connectors)
        .get("/connectors/new", pages::connectors::new_connector)
        .post("/connectors/add", pages::connectors::add)
        .get("/connectors/{name}", pages::connectors::connector)
        .post("/connectors/{name}/check", pages::connectors::check)
        .post("/connectors/{name}/invite", pages::connectors::invite)
        .post("/connectors/{name}/credentials", pages::connectors::credentials)
        .post("/connectors/{name}/certificate", pages::connectors::generate_certificate)
        .post("/connectors/{name}/certificate/switch", pages::connectors::switch_certificate)
        .post("/connectors/{name}/certificate/discard", pages::connectors::discard_certificate)
        // GETs that only set off for Microsoft (as `/auth/sign-in` does): a form could not,
        // as the pages' `form-action 'self'` forbids a form's redirect to another site.
        .get("/connectors/{name}/consent", pages::connectors::consent)
        // An integration owner finishing a tenant's setup from their mail.
        .get("/setup/callback", pages::connectors::callback)
        .get("/setup/{token}", pages::connectors::setup_page)
        .get("/setup/{token}/consent", pages::connectors::setup_consent)
        .get("/audit", pages::audit::audit)
        .get("/audit/export.csv", pages::audit::export_csv)
        .get("/audit/export.json", pages::audit::export_json)
        .get("/admin/mail", pages::mail::outbox)
        .get("/admin/mail/{id}", pages::mail::mail)
        .get("/admin/accounts", pages::accounts::accounts)
        .post("/admin/accounts/tokens", pages::accounts::create_token)
        .post("/admin/accounts/import", pages::accounts::import)
        .post("/admin/accounts/sync-profiles", pages::accounts::sync_profiles)
        .post("/admin/accounts/link", pages::accounts::link)
        .post("/admin/accounts/tokens/{id}/revoke", pages::accounts::revoke_token)
        .post("/admin/accounts/mappings", pages::accounts::add_mapping)
        .post("/admin/accounts/mappings/{id}/remove", pages::accounts::remove_mapping)
        // Signing in and out.
        .get("/auth/sign-in", auth::sign_in)
        .get("/auth/callback", auth::callback)
        .post("/auth/sign-out", auth::sign_out)
        .get("/auth/link/{token}", auth::login_link)
        // Operations.
        .get("/assets/attest.css", crate::security::stylesheet)
        .get("/assets/attest.js", crate::security::script)
        .get("/healthz", crate::healthz)
        .get("/readyz", crate::readyz)
        .get("/metrics", metrics::metrics)
        // The JSON API.
        .surface(Api)
        .get("/api/v1/openapi.json", api::openapi)
        .get("/api/v1/me", auth::me)
        .get("/api/v1/me/access", api::my_access)
        .get("/api/v1/dashboard", api::dashboard)
        .get("/api/v1/people", api::people)
        .get("/api/v1/groups", api::groups)
        .get("/api/v1/applications", api::applications)
        .get("/api/v1/roles", api::roles)
        .get("/api/v1/service-principals", api::service_principals)
        .get("/api/v1/principals/{id}", api::principal)
        .get("/api/v1/resources/{id}", api::resource)
        .get("/api/v1/changes", api::changes)
        .get("/api/v1/changes/{id}", api::change)
        .get("/api/v1/syncs", api::syncs)
        .get("/api/v1/audit", api::audit)
        .post("/api/v1/principals/{id}/actions", api::act)
        .get("/api/v1/reviews", api::reviews)
        .post("/api/v1/reviews/decide", api::decide)
        .post("/api/v1/reviews/accept", api::accept)
        .post("/api/v1/reviews/reassign", api::reassign)
        .post("/api/v1/reviews/comment", api::comment)
        .get("/api/v1/catalog", pages::requests::api_catalog)
        .get("/api/v1/requests", pages::requests::api_list)
        .get("/api/v1/requests/out-of-band", pages::requests::api_out_of_band)
        .post("/api/v1/requests", pages::requests::api_create)
        .get("/api/v1/requests/{id}", pages::requests::api_request)
        .post("/api/v1/requests/{id}/approve", pages::requests::api_approve)
        .post("/api/v1/requests/{id}/deny", pages::requests::api_deny)
        .post("/api/v1/requests/{id}/cancel", pages::requests::api_cancel)
        .post("/api/v1/requests/{id}/revoke", pages::requests::api_revoke)
        .post("/api/v1/requests/{id}/extend", pages::requests::api_extend)
        .get("/api/v1/campaigns", api::campaigns)
        .post("/api/v1/campaigns", api::create_campaign)
        .get("/api/v1/campaigns/{id}", api::campaign)
        .post("/api/v1/campaigns/{id}/start", api::start_campaign)
        .post("/api/v1/campaigns/{id}/close", api::close_campaign)
        .post("/api/v1/campaigns/{id}/apply", api::apply_campaign)
        .post("/api/v1/changes/{id}/approve", api::approve)
        .post("/api/v1/changes/{id}/deny", api::deny)
        .post("/api/v1/changes/{id}/retry", api::retry)
        .post("/api/v1/changes/{id}/cancel", api::cancel)
        .post("/api/v1/connectors/{name}/sync", api::sync_now)
        .get("/api/v1/connectors", pages::connectors::api_list)
        .post("/api/v1/connectors", pages::connectors::api_add)
        .get("/api/v1/connectors/{name}", pages::connectors::api_connector)
        .post("/api/v1/connectors/{name}/check", pages::connectors::api_check)
        .post("/api/v1/connectors/{name}/invite", pages::connectors::api_invite)
        .post("/api/v1/connectors/{name}/certificate", pages::connectors::api_generate_certificate)
        .post("/api/v1/connectors/{name}/certificate/switch", pages::connectors::api_switch_certificate)
        .post("/api/v1/connectors/{name}/certificate/discard", pages::connectors::api_discard_certificate)
        // SCIM 2.0 for Entra's provisioning service: one dispatcher, as resource names are
        // matched case-insensitively.
        .surface(Scim)
        .methods(
            &[
                ("GET", MethodFilter::GET),
                ("POST", MethodFilter::POST),
                ("PUT", MethodFilter::PUT),
                ("PATCH", MethodFilter::PATCH),
                ("DELETE", MethodFilter::DELETE),
            ],
            "/scim/v2/{*rest}",
            crate::scim::dispatch,
        )
}

/// Every route and the access it requires.
pub fn route_table() -> Vec<RouteInfo> {
    routes().routes
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    routes()
        .router()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        // An address no route names.
        .fallback(error_pages::unknown)
        .layer(axum::middleware::from_fn_with_state(state.clone(), error_pages::framed))
        // Outside the routes, so unknown paths and refusals carry the headers too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::security::headers))
        .layer(axum::middleware::from_fn(crate::request_id::tag))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn route(method: &str, path: &str) -> RouteInfo {
        route_table().into_iter().find(|r| r.method == method && r.path == path).unwrap()
    }

    #[test]
    fn a_route_takes_its_access_from_its_handlers_guard_and_says_its_surface() {
        assert_eq!(route("GET", "/").access, Access::Public);
        assert_eq!(route("GET", "/audit").access, Access::AuditReader);
        assert_eq!(route("POST", "/changes/{id}/approve").access, Access::Operator);
        assert_eq!(route("GET", "/api/v1/me").access, Access::SignedIn);
        assert_eq!(route("GET", "/api/v1/people").access, Access::DirectoryReader);
        assert_eq!(route("GET", "/people").surface, Surface::Page);
        assert_eq!(route("GET", "/api/v1/people").surface, Surface::Api);
        // The API's routes are all under its prefix, and nothing else is.
        for r in route_table() {
            assert_eq!(r.surface == Surface::Api, r.path.starts_with("/api/"), "{} {}", r.method, r.path);
        }
    }
}
