//! Errors as a person meets them: every error page is drawn in the site's layout, with the
//! navigation of whoever is signed in; an address that names nothing is a 404 page (a JSON
//! error under `/api/`); a form's address opened with GET (back or refresh after posting)
//! goes to the page the form belongs to; any other method a route does not take is a 405 in
//! the route's surface.

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::AppState;
use crate::error::{ErrorPage, Surface, WebError};
use crate::roles::{Viewer, surface_of};

/// Middleware: an error page (see [`ErrorPage`]) drawn again in the layout, with the signed-in
/// person's navigation; anything else passes untouched.
pub async fn framed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Only the session cookie is needed to know who is asking.
    let cookie = request.headers().get(header::COOKIE).cloned();
    let mut response = next.run(request).await;
    let Some(ErrorPage(context)) = response.extensions_mut().remove::<ErrorPage>() else { return response };
    let mut headers = HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert(header::COOKIE, cookie);
    }
    let Ok(Some(viewer)) = Viewer::of(&state, &headers).await else { return response };
    match crate::pages::page(&viewer, "error.html", context) {
        Ok(html) => {
            let (parts, _) = response.into_parts();
            (parts, html).into_response()
        }
        Err(_) => response,
    }
}

/// An address no route names: a 404 page, or a JSON error under `/api/`.
pub async fn unknown(request: Request) -> Response {
    let path = request.uri().path();
    let surface = if path.starts_with("/api/") {
        Surface::Api
    } else if path.starts_with("/scim/") {
        Surface::Scim
    } else {
        Surface::Page
    };
    WebError::NotFound("There is nothing at this address. Check the link, or start again from the dashboard.".into())
        .answer(surface)
}

/// A method the route does not take: 405 in the route's surface.
pub async fn wrong_method(request: Request) -> Response {
    let message = format!("This address does not take {}.", request.method());
    WebError::MethodNotAllowed(message).answer(surface_of(request.extensions()))
}

/// The page addresses (GET routes answered with pages), for [`back`].
static PAGES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    crate::routes::route_table()
        .into_iter()
        .filter(|r| r.method == "GET" && r.surface == Surface::Page)
        .map(|r| r.path)
        .collect()
});

/// Whether `path` is an address `template` (`/changes/{id}`) names.
fn names(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b || (a.starts_with('{') && !b.is_empty()) => {}
            _ => return false,
        }
    }
}

/// Where a form's address opened with GET goes: the page its address is under
/// (`/changes/12/approve` → `/changes/12`), else the dashboard.
pub fn page_of(form: &str) -> String {
    let parent = form.rsplit_once('/').map_or("", |(parent, _)| parent);
    if !parent.is_empty() && PAGES.iter().any(|t| names(t, parent)) { parent.to_owned() } else { "/".to_owned() }
}

/// GET (or HEAD) on a form's address: to the page the form belongs to (303).
pub async fn back(request: Request) -> Redirect {
    Redirect::to(&page_of(request.uri().path()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_forms_address_belongs_to_the_page_above_it() {
        assert_eq!(super::page_of("/changes/12/approve"), "/changes/12");
        assert_eq!(super::page_of("/principals/7/actions"), "/principals/7");
        assert_eq!(super::page_of("/connectors/contoso/sync"), "/connectors/contoso");
        assert_eq!(super::page_of("/auth/sign-out"), "/");
        assert!(super::names("/changes/{id}", "/changes/12"));
        assert!(!super::names("/changes/{id}", "/changes/"));
        assert!(!super::names("/changes/{id}", "/changes/12/approve"));
    }
}
