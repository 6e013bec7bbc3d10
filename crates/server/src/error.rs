//! The one place errors become responses: an error page for people, a JSON body for the API.
//! Internal errors are logged here, once, and shown without their details.

use attest_store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

/// Who a route answers, and so how its errors are written: a page for people, JSON for the
/// API, SCIM's error body for the SCIM endpoint. Each route says its own in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    Page,
    Api,
    Scim,
}

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in; `next` is where to come back to after signing in (a page asked for).
    #[error("You are not signed in, or your session has ended.")]
    SignedOut { next: Option<String> },
    #[error("{0}")]
    Forbidden(String),
    /// A sign-in that did not finish (cancelled, refused, or begun in another browser): the
    /// page offers to sign in again.
    #[error("{0}")]
    SignInFailed(String),
    #[error("missing or wrong CSRF token; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Not allowed in the object's current state (approving a change that is applied...).
    #[error("{0}")]
    Conflict(String),
    /// A rule of the domain said no: a conflict, whose `reason` names the rule (stable, for
    /// scripts: `change_own_approval`, `change_not_retryable`, ...).
    #[error("{message}")]
    Refused { reason: &'static str, message: String },
    /// A method the address does not take.
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Unavailable(String),
    /// Something broke; the details are logged, not shown.
    #[error("something went wrong on our side; it has been logged")]
    Internal(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::SignedOut { .. } => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) | WebError::Csrf | WebError::SignInFailed(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Conflict(_) | WebError::Refused { .. } => StatusCode::CONFLICT,
            WebError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code for the API.
    fn code(&self) -> &'static str {
        match self {
            WebError::SignedOut { .. } => "signed_out",
            WebError::Forbidden(_) => "forbidden",
            WebError::SignInFailed(_) => "sign_in_failed",
            WebError::Csrf => "csrf",
            WebError::NotFound(_) => "not_found",
            WebError::BadRequest(_) => "bad_request",
            WebError::Conflict(_) | WebError::Refused { .. } => "conflict",
            WebError::MethodNotAllowed(_) => "method_not_allowed",
            WebError::Unavailable(_) => "unavailable",
            WebError::Internal(_) => "internal",
        }
    }

    fn heading(&self) -> &'static str {
        match self {
            WebError::SignedOut { .. } => "Sign in first",
            WebError::Forbidden(_) | WebError::Csrf => "Not allowed",
            WebError::SignInFailed(_) => "Sign-in did not finish",
            WebError::NotFound(_) => "Not found",
            WebError::BadRequest(_) => "That did not work",
            WebError::Conflict(_) | WebError::Refused { .. } => "Not now",
            WebError::MethodNotAllowed(_) => "Not here",
            WebError::Unavailable(_) => "Unavailable",
            WebError::Internal(_) => "Something went wrong",
        }
    }

    /// What a person is told: an internal failure shows no detail, only the reference under
    /// which its detail was logged.
    fn message(&self) -> String {
        match (self, crate::request_id::current()) {
            (WebError::Internal(_), Some(id)) => format!("{self} (reference {id})"),
            _ => self.to_string(),
        }
    }

    fn log(&self) {
        let request_id = crate::request_id::current().unwrap_or_default();
        match self {
            WebError::Internal(detail) => tracing::error!(%request_id, error = %detail, "a request failed"),
            WebError::Unavailable(detail) => {
                tracing::warn!(%request_id, error = %detail, "a request could not be served")
            }
            _ => {}
        }
    }

    /// The error as `surface` answers it.
    pub fn answer(self, surface: Surface) -> Response {
        match surface {
            Surface::Page => self.into_response(),
            Surface::Api => self.into_api(),
            Surface::Scim => self.into_scim(),
        }
    }

    /// The same error as SCIM answers it (RFC 7644 §3.12): the status as a string, `detail`,
    /// and `scimType` where SCIM names the cause.
    pub fn into_scim(self) -> Response {
        self.log();
        let status = self.status();
        let scim_type = match &self {
            WebError::BadRequest(_) => Some("invalidValue"),
            WebError::Conflict(_) | WebError::Refused { .. } => Some("uniqueness"),
            _ => None,
        };
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.as_u16().to_string(),
            "detail": self.message(),
        });
        if let Some(scim_type) = scim_type {
            body["scimType"] = json!(scim_type);
        }
        let mut response = (status, Json(body)).into_response();
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/scim+json"));
        response
    }

    /// The same error as the JSON API answers it.
    pub fn into_api(self) -> Response {
        self.log();
        let reason = match &self {
            WebError::Refused { reason, .. } => Some(*reason),
            _ => None,
        };
        let body = json!({"error": {
            "code": self.code(),
            "reason": reason,
            "message": self.message(),
            "request_id": crate::request_id::current(),
        }});
        (self.status(), Json(body)).into_response()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let context = json!({
            "status": status.as_u16(),
            "heading": self.heading(),
            "message": self.message(),
            "signed_out": matches!(self, WebError::SignedOut { .. }),
            "sign_in_again": matches!(self, WebError::SignInFailed(_)),
            "request_id": crate::request_id::current(),
            "sign_in": match &self {
                WebError::SignedOut { next: Some(next) } => {
                    format!("/auth/sign-in?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
                }
                _ => "/auth/sign-in".to_owned(),
            },
        });
        let html = crate::render::render_html("error.html", context.clone())
            .unwrap_or_else(|_| format!("<!doctype html><title>{status}</title><p>{status}</p>"));
        let mut response = (status, Html(html)).into_response();
        // Drawn again in the layout, with the person's navigation (`error_pages::framed`).
        response.extensions_mut().insert(ErrorPage(context));
        response
    }
}

/// An error page's context, kept on its response so the layout can be drawn around it for
/// whoever is signed in (see `crate::error_pages::framed`).
#[derive(Debug, Clone)]
pub struct ErrorPage(pub serde_json::Value);

impl From<StoreError> for WebError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => WebError::NotFound(error.to_string()),
            StoreError::ChangeRefused(refusal) => {
                WebError::Refused { reason: refusal.code(), message: refusal.to_string() }
            }
            StoreError::ReviewRefused(refusal) => {
                WebError::Refused { reason: refusal.code(), message: refusal.to_string() }
            }
            StoreError::CommandRefused(refusal) => {
                WebError::Refused { reason: refusal.code(), message: refusal.to_string() }
            }
            StoreError::AccessRefused(refusal) => WebError::from(refusal),
            StoreError::LeaseLost { .. } => WebError::Refused { reason: "lease_lost", message: error.to_string() },
            StoreError::Invalid(message) => WebError::BadRequest(message),
            // A unique key taken at the same moment: the driver's words name tables and
            // columns, so they are logged, not shown.
            StoreError::Conflict { what } => {
                tracing::warn!(detail = %what, "a write collided with another");
                WebError::Conflict("someone else saved the same thing at the same moment; reload and try again".into())
            }
            StoreError::Connect { .. } | StoreError::SchemaBehind { .. } | StoreError::SchemaTooNew { .. } => {
                WebError::Unavailable(error.to_string())
            }
            StoreError::Internal(_)
            | StoreError::Corrupt { .. }
            | StoreError::MissingReference(_)
            | StoreError::Database(_) => WebError::Internal(error.to_string()),
        }
    }
}

impl From<attest_domain::access::AccessRefusal> for WebError {
    /// Someone acting on a request that is not theirs to act on is forbidden (403); a rule
    /// about the request itself is a refusal (409) with its reason.
    fn from(refusal: attest_domain::access::AccessRefusal) -> Self {
        use attest_domain::access::AccessRefusal as R;
        match refusal {
            R::OwnRequest | R::NotAnApprover(_) | R::NotRequester(_) => WebError::Forbidden(refusal.to_string()),
            _ => WebError::Refused { reason: refusal.code(), message: refusal.to_string() },
        }
    }
}

impl From<crate::render::RenderError> for WebError {
    fn from(error: crate::render::RenderError) -> Self {
        WebError::Internal(error.0)
    }
}

/// A JSON API result: errors answer as JSON.
pub struct ApiError(pub WebError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_api()
    }
}

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attest_domain::change_flow::ChangeRefusal;

    async fn api_body(error: WebError) -> (StatusCode, serde_json::Value) {
        let response = error.into_api();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_internal_failure_is_a_500_with_a_reference_and_no_detail() {
        let error = WebError::from(StoreError::Internal("row 7 of table web_users is unreadable".into()));
        let (status, body) = crate::request_id::scoped("0123456789abcdef".into(), api_body(error)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["request_id"], "0123456789abcdef");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("reference 0123456789abcdef"), "{message}");
        assert!(!body.to_string().contains("web_users"), "no detail: {body}");
    }

    #[tokio::test]
    async fn scim_errors_are_scim_error_bodies() {
        let response = WebError::NotFound("no such user".into()).answer(Surface::Scim);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[axum::http::header::CONTENT_TYPE], "application/scim+json");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
        assert_eq!((body["status"].as_str(), body["detail"].as_str()), (Some("404"), Some("no such user")));
        let response = WebError::Conflict("taken".into()).answer(Surface::Scim);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["scimType"], "uniqueness");
    }

    #[tokio::test]
    async fn a_rule_violation_is_a_409_with_a_stable_reason() {
        let error = WebError::from(StoreError::ChangeRefused(ChangeRefusal::OwnChange { id: 7 }));
        let (status, body) = api_body(error).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["reason"].as_str()),
            (Some("conflict"), Some("change_own_approval"))
        );
        assert_eq!(body["error"]["message"], "change 7 was requested by you; a second person must approve it");
        // A unique key taken at the same moment: a conflict, without the driver's words.
        let (status, body) =
            api_body(WebError::from(StoreError::Conflict { what: "UNIQUE constraint failed: web_users.email".into() }))
                .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(!body.to_string().contains("web_users"), "{body}");
    }
}
