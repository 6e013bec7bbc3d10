//! Sessions as requests carry them: the cookie, the tokens behind it, and finding the session
//! a request belongs to. A leaf: the guards (`roles`) and sign-in (`auth`) both build on it.

use attest_store::WebSession;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::WebError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "attest_session";

/// A random 256-bit token, base64url.
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| "the system's random generator failed".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the database keeps of a token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The request's session, if it carries a valid one (pages that also serve signed-out people).
pub async fn session_of(state: &AppState, headers: &HeaderMap) -> Result<Option<WebSession>, WebError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    state
        .store
        .web()
        .find_web_session(&hash(&token), state.now())
        .await
        .map_err(|e| WebError::Unavailable(format!("sessions cannot be read: {e}")))
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `next` if it is a path on this site (`/changes/42?x=1`), never another site (`//evil.com`,
/// `/\\evil.com`, `https://…`) or anything odd.
pub fn safe_return(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 1_000
        && !next.chars().any(char::is_control)
        && !next.starts_with("/auth/");
    ok.then_some(next)
}
