//! Client-credentials tokens for Microsoft Graph, cached and renewed before expiry.
//!
//! Lifetimes are 60–90 minutes and must be read from `expires_in`, never assumed. A token is
//! renewed five minutes before it expires, or at once after Graph refused it (401). The
//! identity platform's refusals become [`AuthError`]s that say what an administrator must do.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tokio::sync::Mutex;

/// Renew this long before a token expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Where and as whom to get tokens.
#[derive(Clone)]
pub struct Credentials {
    /// The identity platform's base URL, `https://login.microsoftonline.com` in the public cloud.
    pub login_url: String,
    /// The Graph base URL (without `/v1.0`): tokens are requested for `{graph_url}/.default`.
    pub graph_url: String,
    pub tenant_id: String,
    pub client_id: String,
    /// Empty when the app proves itself with a certificate.
    pub client_secret: String,
    /// Certificate credentials: assertions signed with its key replace the secret.
    pub certificate: Option<std::sync::Arc<crate::certificate::ClientCertificate>>,
}

impl std::fmt::Debug for Credentials {
    /// The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("login_url", &self.login_url)
            .field("graph_url", &self.graph_url)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why no token could be had, in the terms an administrator acts on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error(
        "the app {client_id} is not in tenant {tenant_id} (AADSTS700016): admin consent was never given or was revoked; an administrator must grant admin consent again"
    )]
    NotConsented { tenant_id: String, client_id: String },
    #[error(
        "the app's enterprise application is disabled in the tenant (AADSTS7000112): an administrator must enable it"
    )]
    AppDisabled,
    #[error("the client secret is wrong (AADSTS7000215): use the secret's value, not its id")]
    InvalidSecret,
    #[error("the client secret has expired (AADSTS7000222): create a new secret and update the connector")]
    SecretExpired,
    #[error(
        "Entra refused the certificate (AADSTS{0}): upload the certificate shown on the connector page to the app registration (Certificates & secrets), or replace an expired one"
    )]
    CertificateRefused(u32),
    #[error("tenant {0} does not exist in this cloud (AADSTS90002): check the tenant id and the login URL")]
    TenantNotFound(String),
    #[error("the identity platform refused the token request: {error} (AADSTS{code}): {description}")]
    Refused { error: String, code: u32, description: String },
    #[error("cannot reach the identity platform: {0}")]
    Unreachable(String),
}

impl AuthError {
    /// Worth trying again later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Unreachable(_))
            || matches!(self, AuthError::Refused { error, .. } if error == "temporarily_unavailable")
    }

    /// Whether an owner must act in Entra before the app can sign in again: consent, the
    /// enterprise app, the secret, or a Conditional Access policy (AADSTS53003) blocking it.
    pub fn owner_must_act(&self) -> bool {
        match self {
            AuthError::NotConsented { .. }
            | AuthError::AppDisabled
            | AuthError::InvalidSecret
            | AuthError::SecretExpired
            | AuthError::CertificateRefused(_) => true,
            AuthError::Refused { code, .. } => matches!(code, 53003 | 53000 | 53001 | 65001 | 500011),
            AuthError::TenantNotFound(_) | AuthError::Unreachable(_) => false,
        }
    }
}

/// A token and what it allows.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: String,
    pub expires_at: Instant,
    /// The application permissions granted (the JWT's `roles` claim; empty when absent).
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// Hands out a valid token, fetching a new one when needed. One fetch at a time.
pub struct TokenSource {
    http: reqwest::Client,
    credentials: Credentials,
    current: Mutex<Option<Token>>,
}

impl TokenSource {
    pub fn new(http: reqwest::Client, credentials: Credentials) -> TokenSource {
        TokenSource { http, credentials, current: Mutex::new(None) }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A token valid for at least a few more minutes.
    pub async fn token(&self) -> Result<Token, AuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.expires_at > Instant::now() + RENEW_BEFORE) {
            return Ok(token.clone());
        }
        let token = self.fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (Graph said it is expired or invalid), so the next call fetches anew.
    pub async fn invalidate(&self, rejected: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| t.access_token == rejected) {
            *current = None;
        }
    }

    async fn fetch(&self) -> Result<Token, AuthError> {
        let c = &self.credentials;
        let url = format!("{}/{}/oauth2/v2.0/token", c.login_url.trim_end_matches('/'), c.tenant_id);
        let scope = format!("{}/.default", c.graph_url.trim_end_matches('/'));
        let mut form =
            vec![("grant_type", "client_credentials".to_owned()), ("client_id", c.client_id.clone()), ("scope", scope)];
        match &c.certificate {
            Some(certificate) => {
                // The identity platform checks the assertion against its own clock, so it is
                // dated by the system's, not the (testable) clock of Attest's jobs.
                #[allow(clippy::disallowed_methods)]
                let now = chrono::Utc::now().timestamp();
                let assertion = certificate.assertion(&c.client_id, &url, now).map_err(AuthError::Unreachable)?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
            None => form.push(("client_secret", c.client_secret.clone())),
        }
        let asked = Instant::now();
        let response =
            self.http.post(url).form(&form).send().await.map_err(|e| AuthError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| AuthError::Unreachable(e.to_string()))?;
        if status.is_success() {
            let parsed: TokenResponse = serde_json::from_slice(&body)
                .map_err(|e| AuthError::Unreachable(format!("malformed token response: {e}")))?;
            let roles = roles_of(&parsed.access_token);
            // Counted from when it was asked for: the lifetime started before the reply came.
            let expires_at = asked + Duration::from_secs(parsed.expires_in);
            return Ok(Token { access_token: parsed.access_token, expires_at, roles });
        }
        let refused: ErrorResponse = serde_json::from_slice(&body).map_err(|_| {
            AuthError::Unreachable(format!("HTTP {status} from the token endpoint with an unreadable body"))
        })?;
        let code = refused.error_codes.first().copied().unwrap_or_default();
        Err(match code {
            700016 => AuthError::NotConsented { tenant_id: c.tenant_id.clone(), client_id: c.client_id.clone() },
            7000112 => AuthError::AppDisabled,
            7000215 => AuthError::InvalidSecret,
            7000222 => AuthError::SecretExpired,
            700027 | 700021 | 700023 => AuthError::CertificateRefused(code),
            90002 => AuthError::TenantNotFound(c.tenant_id.clone()),
            _ => AuthError::Refused {
                error: refused.error,
                code,
                // The first line: the rest is trace and correlation ids.
                description: refused.error_description.lines().next().unwrap_or_default().to_owned(),
            },
        })
    }
}

/// The `roles` claim of a JWT access token, read without verification (the token is ours,
/// fresh from the identity platform; Graph verifies it).
fn roles_of(jwt: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        roles: Vec<String>,
    }
    jwt.split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<Claims>(&bytes).ok())
        .map(|c| c.roles)
        .unwrap_or_default()
}
