//! The identity platform's token endpoint and Graph's token check.
//!
//! One endpoint, three grants: client credentials (the connector), and the authorization code
//! and refresh token grants of user sign-in (see [`crate::signin`]). Access tokens are RS256
//! JWTs with the real claim set (`aud`, `iss`, `tid`, `appid`, `roles` or `scp`, `exp`...),
//! signed with the key the tenant's JWKS publishes. Graph here accepts exactly the tokens it
//! issued, and honours their `roles`.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use crate::consent::Consent;
use crate::error::GraphError;
use crate::state::Sim;
use crate::tenant::GRAPH_APP_ID;

/// What Graph knows about a token it issued.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub app_id: String,
    pub roles: Vec<String>,
    pub expires_at: DateTime<Utc>,
    /// A delegated token's signed-in user (`idtyp` user): their object id, the token's `scp`
    /// scopes, and whether its `amr` says the sign-in passed MFA.
    pub user: Option<SignedInUser>,
}

/// The user a delegated token acts for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignedInUser {
    pub id: String,
    pub scopes: Vec<String>,
    pub mfa: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
}

/// The grants the token endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Grant {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
}

/// An AADSTS error as the token endpoint returns it.
pub(crate) fn aadsts(sim: &Sim, status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let (trace, correlation) = (sim.new_id(), sim.new_id());
    let timestamp = sim.now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub(crate) async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let (tenant_id, domain, known) = sim.read(|t| {
        let known = crate::signin::tenant_matches(t, &tenant, &["common", "organizations", "consumers"]);
        (t.id.clone(), t.domain.clone(), known)
    });
    if !known {
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let grant = match form.grant_type.as_deref() {
        Some("client_credentials") => Grant::ClientCredentials,
        Some("authorization_code") => Grant::AuthorizationCode,
        Some("refresh_token") => Grant::RefreshToken,
        Some(other) => {
            return aadsts(
                &sim,
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
        None => {
            return aadsts(
                &sim,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
    };
    // App-only tokens need the tenant named (graph-facts §9); user sign-in may use the aliases.
    let alias = !tenant.eq_ignore_ascii_case(&tenant_id) && !tenant.eq_ignore_ascii_case(&domain);
    if alias && (grant == Grant::ClientCredentials || tenant.eq_ignore_ascii_case("consumers")) {
        let message = if tenant.eq_ignore_ascii_case("organizations") {
            // [INFER] Entra refuses app-only tokens here too; the wording is ours.
            "The grant type isn't supported over the /organizations endpoint. Please use the tenant-specific endpoint."
        } else {
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."
        };
        return aadsts(&sim, StatusCode::BAD_REQUEST, "invalid_request", 9001023, message);
    }
    // The secret may come in the body or as HTTP Basic auth (RFC 6749 §2.3.1).
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, secret)| (id.to_owned(), secret.to_owned())));
    let (client_id, secret) = match (form.client_id.clone(), form.client_secret.clone(), basic) {
        (_, _, Some((id, secret))) => (id, Some(secret)),
        (Some(id), secret, None) => (id, secret),
        (None, _, None) => {
            return aadsts(
                &sim,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            );
        }
    };
    let consent = sim.consent_state().filter(|_| client_id == sim.client.client_id);
    let Some(Consent { granted: Some(granted), disabled, secret_expired, .. }) = consent else {
        // An unknown app, one never consented in this tenant, or one whose enterprise app was
        // removed: the same answer.
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{domain}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    if disabled {
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            7000112,
            &format!("Application '{client_id}'({}) is disabled.", sim.client.display_name),
        );
    }
    // Certificate credentials: a signed assertion instead of a secret.
    if let Some(assertion) = form.client_assertion.as_deref() {
        if form.client_assertion_type.as_deref() != Some(crate::assertion::JWT_BEARER) {
            return aadsts(
                &sim,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                700025,
                "The client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            );
        }
        let login = sim.login_url();
        let audiences: Vec<String> = [tenant.as_str(), tenant_id.as_str(), domain.as_str()]
            .iter()
            .map(|t| format!("{login}/{t}/oauth2/v2.0/token"))
            .collect();
        if let Err((code, message)) =
            crate::assertion::check(assertion, &client_id, &audiences, &sim.client_certificates(), sim.now())
        {
            return aadsts(&sim, StatusCode::UNAUTHORIZED, "invalid_client", code, &message);
        }
    } else {
        match secret {
            None => {
                return aadsts(
                    &sim,
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            }
            Some(secret) if secret != sim.client.client_secret => {
                let message = format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                );
                return aadsts(&sim, StatusCode::UNAUTHORIZED, "invalid_client", 7000215, &message);
            }
            Some(_) if secret_expired => {
                let message = format!(
                    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
                );
                return aadsts(&sim, StatusCode::UNAUTHORIZED, "invalid_client", 7000222, &message);
            }
            Some(_) => {}
        }
    }
    if grant == Grant::ClientCredentials && sim.consent_state().is_some_and(|c| c.blocked_by_conditional_access) {
        // [INFER] the shape of a workload identity blocked by Conditional Access: `invalid_grant`
        // with AADSTS53003 (BlockedByConditionalAccess), as for users.
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            53003,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        );
    }
    match grant {
        Grant::AuthorizationCode => return crate::signin::redeem_code(&sim, &form, &tenant_id),
        Grant::RefreshToken => return crate::signin::redeem_refresh_token(&sim, &form, &tenant_id),
        Grant::ClientCredentials => {}
    }
    let scope = form.scope.unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.is_empty() {
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    }
    let graph_resources = [
        "https://graph.microsoft.com/.default",
        "https://graph.microsoft.com//.default",
        &format!("{GRAPH_APP_ID}/.default"),
        &format!("{}/.default", sim.graph_url),
    ];
    if scopes.len() > 1 || !scopes[0].ends_with("/.default") {
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    if !graph_resources.iter().any(|r| r.eq_ignore_ascii_case(scopes[0])) {
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {} was not found in the tenant named {}.",
                scopes[0].trim_end_matches("/.default"),
                domain
            ),
        );
    }

    let (access_token, lifetime) = issue_access_token(
        &sim,
        json!({"idtyp": "app", "oid": sim.new_id(), "sub": sim.client.client_id, "appidacr": "1"}),
        granted,
    );
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    axum::Json(body).into_response()
}

/// A Graph access token for the client app: `extra` claims (the caller's subject) on top of
/// the common ones, `roles` only when some were granted (Entra leaves the claim out
/// otherwise). Returns the token and its lifetime in seconds, random between 60 and 90
/// minutes (access-tokens.md): never assume 3600.
pub(crate) fn issue_access_token(sim: &Sim, extra: serde_json::Value, roles: Vec<String>) -> (String, i64) {
    let lifetime: i64 = sim.rng.lock().map(|mut r| r.random_range(3600..=5400)).unwrap_or(3600);
    let now = sim.now();
    let expires_at = now + chrono::Duration::seconds(lifetime);
    let tenant_id = sim.tenant_id();
    let mut claims = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": expires_at.timestamp(),
        "app_displayname": sim.client.display_name,
        "appid": sim.client.client_id,
        "idp": format!("https://sts.windows.net/{tenant_id}/"),
        "tid": tenant_id,
        "ver": "1.0",
    });
    if let (Some(claims), serde_json::Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    if !roles.is_empty() {
        claims["roles"] = roles.clone().into();
    }
    let access_token = match &sim.keys {
        Some(keys) => keys.sign(&claims),
        None => {
            format!("unsigned.{}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()), sim.random_token())
        }
    };
    if let Ok(mut tokens) = sim.tokens.lock() {
        tokens.retain(|_, t| t.expires_at > now);
        let user = (claims["idtyp"] == "user").then(|| SignedInUser {
            id: claims["oid"].as_str().unwrap_or_default().to_owned(),
            scopes: claims["scp"].as_str().unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
            mfa: claims["amr"].as_array().is_some_and(|amr| amr.iter().any(|m| m == "mfa")),
        });
        tokens.insert(
            access_token.clone(),
            IssuedToken { app_id: sim.client.client_id.clone(), roles, expires_at, user },
        );
    }
    (access_token, lifetime)
}

/// Checks the bearer token and that it carries one of `accepted` application permissions.
pub(crate) fn authorize(sim: &Sim, headers: &HeaderMap, accepted: &[&str]) -> Result<Vec<String>, GraphError> {
    let issued = issued_token(sim, headers)?;
    if !issued.roles.iter().any(|r| accepted.iter().any(|a| a.eq_ignore_ascii_case(r))) {
        return Err(GraphError::denied());
    }
    Ok(issued.roles)
}

/// Checks the bearer token is a signed-in user's (delegated) and carries one of `accepted`
/// delegated permissions; the user it acts for. An application's own token is refused: the
/// self-service actions act as the signed-in user and have no application form.
pub(crate) fn authorize_user(sim: &Sim, headers: &HeaderMap, accepted: &[&str]) -> Result<SignedInUser, GraphError> {
    let issued = issued_token(sim, headers)?;
    let Some(user) = issued.user else {
        // [INFER] code and wording: the docs say only that these actions need a signed-in user.
        return Err(GraphError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "UnsupportedForAppOnly",
            "This action acts as the signed-in user and needs a delegated (user) token, not an application's.",
        ));
    };
    if !user.scopes.iter().any(|s| accepted.iter().any(|a| a.eq_ignore_ascii_case(s))) {
        return Err(GraphError::denied());
    }
    Ok(user)
}

/// The token a request bears, if this service issued it and it has not expired.
fn issued_token(sim: &Sim, headers: &HeaderMap) -> Result<IssuedToken, GraphError> {
    let Some(token) = crate::state::bearer(headers) else {
        return Err(GraphError::unauthenticated("Access token is empty."));
    };
    let issued = sim.tokens.lock().ok().and_then(|t| t.get(token).cloned());
    let Some(issued) = issued else {
        // [INFER] Graph's wording varies with what is wrong with a token; all are 401 with this code.
        return Err(GraphError::unauthenticated("Access token validation failure. Invalid audience."));
    };
    if issued.expires_at <= sim.now() {
        return Err(GraphError::unauthenticated(format!(
            "Lifetime validation failed, the token is expired. ValidTo: '{}'",
            issued.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )));
    }
    Ok(issued)
}
