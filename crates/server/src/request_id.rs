//! A request id for every request: sent back as `x-request-id`, logged with a failed request's
//! detail, and shown with an internal error, so a person reporting "something went wrong
//! (reference …)" leads straight to the logged detail. (A field on the log lines that need it,
//! not a span around every request: entering a span on each poll costs the cheapest pages
//! measurably.)

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` as the request with id `id` (what [`tag`] does for each request).
pub async fn scoped<T>(id: String, work: impl std::future::Future<Output = T>) -> T {
    REQUEST_ID.scope(id, work).await
}

/// Middleware: gives the request its id (a fresh one: a client's own is not trusted into logs).
pub async fn tag(request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let mut response = scoped(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
