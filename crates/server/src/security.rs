//! Headers every response carries, so a page of Attest can neither be framed by another site
//! nor run anything but Attest's own files: a Content-Security-Policy without inline script or
//! style, `frame-ancestors 'none'` (and `X-Frame-Options: DENY` for older browsers), no MIME
//! sniffing, no referrer beyond Attest, and HSTS when Attest is served over https. A handler
//! that needs a narrower or different policy (the mail page's sandboxed frame) sets its own
//! `Content-Security-Policy`, which is kept.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The policy of every page: Attest's own scripts, styles and images only, nothing inline, never
/// framed, forms posting back to Attest only.
pub const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One year, as browsers' HSTS preload rules ask.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the security headers to every response.
pub async fn headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    secure(response.headers_mut(), state.public_url.starts_with("https://"));
    response
}

/// The security headers, on one response's headers; HSTS only when served over `https`.
fn secure(headers: &mut HeaderMap, https: bool) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

/// `GET /assets/attest.css`: the one stylesheet (compiled in; cached for an hour).
pub async fn stylesheet(_: crate::roles::Anyone) -> Response {
    const CSS: &str = include_str!("../../../templates/web/attest.css");
    let headers: [(HeaderName, &str); 2] =
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, CSS).into_response()
}

/// `GET /assets/attest.js`: the one script (suggestions as you type; every page works
/// without it).
pub async fn script(_: crate::roles::Anyone) -> Response {
    const JS: &str = include_str!("../../../templates/web/attest.js");
    let headers: [(HeaderName, &str); 2] =
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, JS).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_is_unframeable_and_https_ones_are_strict() {
        let mut plain = HeaderMap::new();
        secure(&mut plain, false);
        assert_eq!(plain[header::CONTENT_SECURITY_POLICY], PAGE_POLICY);
        assert_eq!(plain[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(plain[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(plain[header::REFERRER_POLICY], "same-origin");
        assert!(!plain.contains_key(header::STRICT_TRANSPORT_SECURITY), "HSTS over http would be ignored");
        let mut own = HeaderMap::new();
        own.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
        secure(&mut own, true);
        assert_eq!(own[header::CONTENT_SECURITY_POLICY], "default-src 'none'", "a page's own policy is kept");
        assert_eq!(own[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert!(PAGE_POLICY.contains("frame-ancestors 'none'") && !PAGE_POLICY.contains("unsafe-inline"));
    }
}
