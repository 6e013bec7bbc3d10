//! Signing in and out, sessions and CSRF.
//!
//! - Sign-in is Entra OpenID Connect ([`crate::oidc`]) with the sign-in connector's tenant and
//!   app registration; the sign-in in progress (nonce, PKCE verifier) waits server-side under
//!   the hash of its state, for ten minutes, usable once.
//! - A session is a random 256-bit token in an `HttpOnly`, `SameSite=Lax` cookie (`Secure`
//!   when Attest is served over https); the database keeps only its hash, with the user and an
//!   expiry. No password exists anywhere.
//! - Every state-changing request carries the session's CSRF token (a form field `csrf` or the
//!   `x-csrf-token` header); a missing or wrong one is 403.
//! - Break-glass: `attest admin create-login-link` prints a one-time link that signs in a local
//!   administrator, for first setup or when sign-in is broken.

use attest_store::LOCAL_TENANT;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::error::WebError;
use crate::forms::Submitted;
use crate::oidc::Pending;
use crate::roles::{Allowed, Anyone, rule};
use crate::session::{SESSION_COOKIE, cookie, hash, random_token, safe_return};

/// How long a sign-in may take between the redirect and the callback.
const SIGN_IN_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// The object id of the break-glass administrator (tenant `local`).
pub const BREAK_GLASS: &str = "break-glass";

fn session_cookie(state: &AppState, token: &str, max_age: i64) -> String {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Where a sign-in returns to, kept in a short-lived cookie across the trip to Microsoft.
const RETURN_COOKIE: &str = "attest_return";

/// Opens a session for `user` and answers with the cookie and a redirect to `to`.
async fn open_session(state: &AppState, user: i64, to: &str) -> Result<Response, WebError> {
    let token = random_token().map_err(WebError::Internal)?;
    let csrf = random_token().map_err(WebError::Internal)?;
    let now = state.now();
    let lifetime = chrono::Duration::from_std(state.session_lifetime).unwrap_or(chrono::Duration::hours(12));
    state
        .store
        .web()
        .create_web_session(&hash(&token), user, &csrf, now + lifetime, now)
        .await
        .map_err(|e| WebError::Unavailable(format!("a session could not be stored: {e}")))?;
    let cookie = session_cookie(state, &token, lifetime.num_seconds());
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    response.headers_mut().append(header::SET_COOKIE, header_value(&cookie)?);
    Ok(response)
}

fn header_value(text: &str) -> Result<axum::http::HeaderValue, WebError> {
    axum::http::HeaderValue::from_str(text).map_err(|e| WebError::Internal(e.to_string()))
}

pub(crate) fn unavailable(e: String) -> WebError {
    WebError::Unavailable(format!("sign-in is not available: {e}"))
}

#[derive(Deserialize)]
pub struct SignInQuery {
    /// Where to land after signing in (a path on this site).
    next: Option<String>,
}

/// `GET /auth/sign-in`: off to Microsoft.
pub async fn sign_in(
    _: Anyone,
    State(state): State<AppState>,
    Query(query): Query<SignInQuery>,
) -> Result<Response, WebError> {
    let client = state.sign_in.client().await.map_err(unavailable)?;
    let (url, pending) = client.begin().map_err(|e| WebError::Internal(e.to_string()))?;
    // The attempt is bound to this browser: it is found again only with the `state` Microsoft
    // returns *and* the binding cookie set here, so a callback link made in another browser
    // (an attacker's own sign-in, to log a victim into the attacker's account) finds nothing.
    let binding = random_token().map_err(WebError::Internal)?;
    save_attempt(&state, &attempt_key(&pending.state, &binding), &pending).await?;
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response();
    response.headers_mut().append(header::SET_COOKIE, short_cookie(&state, BINDING_COOKIE, &binding)?);
    // A sign-in is not an activation begun earlier in this browser.
    response.headers_mut().append(header::SET_COOKIE, cleared_cookie(crate::activation::ACTIVATION_COOKIE)?);
    if let Some(next) = query.next.as_deref().and_then(safe_return) {
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        response.headers_mut().append(header::SET_COOKIE, short_cookie(&state, RETURN_COOKIE, &encoded)?);
    }
    Ok(response)
}

/// The cookie binding a sign-in attempt to the browser that started it.
pub(crate) const BINDING_COOKIE: &str = "attest_sign_in";

/// What a sign-in attempt is stored under: the hash of the `state` sent to Microsoft together
/// with the browser's binding value.
pub(crate) fn attempt_key(state: &str, binding: &str) -> String {
    hash(&format!("{state}.{binding}"))
}

/// Keeps a sign-in in progress (its nonce and PKCE verifier) under `key`, for ten minutes.
pub(crate) async fn save_attempt(state: &AppState, key: &str, pending: &Pending) -> Result<(), WebError> {
    let expires = state.now() + SIGN_IN_WINDOW;
    state
        .store
        .web()
        .save_sign_in_attempt(
            key,
            &pending.nonce,
            &pending.verifier,
            expires,
            state.now(),
            attest_store::MAX_SIGN_INS_IN_PROGRESS,
        )
        .await
        .map_err(|e| WebError::Unavailable(format!("a sign-in could not be started: {e}")))
}

/// Forgets one of the cookies of the trip to Microsoft ([`short_cookie`]).
pub(crate) fn cleared_cookie(name: &str) -> Result<axum::http::HeaderValue, WebError> {
    header_value(&format!("{name}=; Path=/auth; HttpOnly; SameSite=Lax; Max-Age=0"))
}

/// A cookie for the trip to Microsoft and back: `/auth` only, for the sign-in window.
pub(crate) fn short_cookie(state: &AppState, name: &str, value: &str) -> Result<axum::http::HeaderValue, WebError> {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    header_value(&format!(
        "{name}={value}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SIGN_IN_WINDOW.num_seconds()
    ))
}

/// An error Microsoft sent back to a redirect URI, as far as Attest trusts it: the error code,
/// cleaned to letters, digits and `_`, and an `AADSTS` number read from the description (digits
/// only). The description itself is text anyone can put in a link to Attest, so it is never
/// shown. Sign-in and admin consent read their answers through this.
pub(crate) struct MicrosoftError {
    pub code: String,
    /// `65004`, without the `AADSTS` prefix.
    pub aadsts: Option<String>,
}

impl MicrosoftError {
    pub fn read(error: &str, description: &str) -> MicrosoftError {
        let aadsts = description
            .find("AADSTS")
            .map(|at| description[at + 6..].chars().take_while(char::is_ascii_digit).take(8).collect());
        let code = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        MicrosoftError { code, aadsts }
    }

    /// `error access_denied, AADSTS65004`, to put after Attest's own words.
    pub fn said(&self) -> String {
        match &self.aadsts {
            Some(aadsts) => format!("error {}, AADSTS{aadsts}", self.code),
            None => format!("error {}", self.code),
        }
    }
}

/// What a refused sign-in says, in Attest's own words (see [`MicrosoftError`]).
fn refusal(error: &str, description: &str) -> String {
    let said = MicrosoftError::read(error, description);
    let words = match (error, said.aadsts.as_deref()) {
        (_, Some("65004")) | ("access_denied", _) => "The sign-in was cancelled, or consent was declined.",
        ("consent_required" | "interaction_required", _) => {
            "Your organisation has not approved Attest for sign-in yet: an administrator must grant it consent."
        }
        ("login_required", _) => "Microsoft needs you to sign in again.",
        ("temporarily_unavailable" | "server_error", _) => {
            "Microsoft's sign-in is unavailable right now; try again in a few minutes."
        }
        (
            "invalid_request"
            | "unauthorized_client"
            | "invalid_client"
            | "invalid_scope"
            | "unsupported_response_type",
            _,
        ) => "Attest's sign-in is not set up correctly with Microsoft; tell an administrator.",
        _ => "Microsoft refused the sign-in.",
    };
    format!("{words} ({})", said.said())
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: back from Microsoft.
pub async fn callback(
    _: Anyone,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, WebError> {
    if let Some(error) = callback.error {
        let description = callback.error_description.as_deref().unwrap_or_default();
        // Back from activating a role (a fresh sign-in with the role permission), not from
        // signing in to Attest.
        if crate::activation::request_of(&headers).is_some() && !matches!(error.as_str(), "access_denied") {
            return Err(WebError::SignInFailed(format!(
                "Microsoft did not let you activate the role: an administrator may need to consent to Attest's \
                 delegated permission RoleAssignmentSchedule.ReadWrite.Directory, or sign-in failed ({}). \
                 Your request still waits; try again from it.",
                MicrosoftError::read(&error, description).said()
            )));
        }
        return Err(WebError::SignInFailed(refusal(&error, description)));
    }
    let (Some(code), Some(returned_state)) = (callback.code, callback.state) else {
        return Err(WebError::BadRequest("the sign-in response has no code or state".into()));
    };
    let Some(binding) = cookie(&headers, BINDING_COOKIE) else {
        return Err(WebError::SignInFailed(
            "This sign-in was started in another browser, or this browser does not keep Attest's cookies: \
             start again here."
                .into(),
        ));
    };
    // Back from activating a role in Entra, not from signing in: only if such an attempt was
    // begun here, for that request (a leftover cookie leaves an ordinary sign-in alone).
    if let Some(request) = crate::activation::request_of(&headers)
        && let Some(attempt) = crate::activation::take_attempt(&state, request, &returned_state, &binding).await?
    {
        return crate::activation::finish(&state, &headers, request, attempt, &code, &returned_state).await;
    }
    let attempt = state
        .store
        .web()
        .take_sign_in_attempt(&attempt_key(&returned_state, &binding), state.now())
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .ok_or_else(|| {
            WebError::SignInFailed(
                "This sign-in expired, was already used, or was started in another browser: start again.".into(),
            )
        })?;
    let client = state.sign_in.client().await.map_err(unavailable)?;
    let pending = Pending { state: returned_state.clone(), nonce: attempt.0, verifier: attempt.1 };
    let identity = client.finish(&pending, &code, &returned_state, state.now()).await.map_err(|e| {
        tracing::warn!(error = %e, "a sign-in was refused");
        WebError::Forbidden(e.to_string())
    })?;
    let name = identity.name.or(identity.username.clone()).unwrap_or_else(|| identity.object_id.clone());
    if let Some(username) = &identity.username {
        state
            .store
            .web()
            .adopt_provisioned_account(&identity.tenant_id, &identity.object_id, username)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    }
    let email = identity.email.or(identity.username);
    let user = state
        .store
        .web()
        .sign_in_web_user(&identity.tenant_id, &identity.object_id, &name, email.as_deref(), state.now())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if state.store.web().is_disabled(user.id).await.map_err(|e| unavailable(e.to_string()))? {
        return Err(WebError::Forbidden(
            "Your Attest account is deactivated (Entra's provisioning turned it off, or an administrator did): ask your administrator."
                .into(),
        ));
    }
    let back = cookie(&headers, RETURN_COOKIE).map(|v| {
        url::form_urlencoded::parse(format!("v={v}").as_bytes()).map(|(_, v)| v.into_owned()).collect::<String>()
    });
    let to = back.as_deref().and_then(safe_return).unwrap_or("/").to_owned();
    let mut response = open_session(&state, user.id, &to).await?;
    for name in [RETURN_COOKIE, BINDING_COOKIE] {
        response.headers_mut().append(header::SET_COOKIE, cleared_cookie(name)?);
    }
    Ok(response)
}

/// `POST /auth/sign-out`
pub async fn sign_out(
    _viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Submitted(_): Submitted<serde_json::Value>,
) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let _ = state.store.web().delete_web_session(&hash(&token)).await;
    }
    let cleared = session_cookie(&state, "", 0);
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cleared), (header::LOCATION, "/".to_owned())]).into_response()
}

/// `GET /auth/link/{token}`: the break-glass administrator, once per link.
pub async fn login_link(
    _: Anyone,
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    if !state.store.web().use_login_link(&hash(&token), state.now()).await.map_err(|e| unavailable(e.to_string()))? {
        return Err(WebError::Forbidden("this login link is unknown, expired or already used".into()));
    }
    let admin = state
        .store
        .web()
        .set_web_user_roles(LOCAL_TENANT, BREAK_GLASS, "Break-glass administrator", &["admin".to_owned()], state.now())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    open_session(&state, admin.id, "/").await
}

/// `GET /api/v1/me`: who is signed in, and the CSRF token their writes must carry.
pub async fn me(viewer: Allowed<rule::SignedIn>) -> axum::Json<crate::api_model::Me> {
    let session = &viewer.session;
    let user = &session.user;
    axum::Json(crate::api_model::Me {
        tenant_id: user.tenant_id.clone(),
        object_id: user.object_id.clone(),
        name: user.display_name.clone(),
        email: user.email.clone(),
        roles: viewer.roles.list().to_vec(),
        csrf_token: session.csrf_token.clone(),
        session_expires_at: session.expires_at,
    })
}
