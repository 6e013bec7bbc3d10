//! Sign-in with Microsoft Entra: OpenID Connect authorization code flow with PKCE (S256), state
//! and nonce, and the id_token checked against the tenant's published keys (graph-facts §9).
//!
//! What is checked, and why each matters: the signature (RS256 only; `none` and HMAC are
//! refused) with a key from the tenant's JWKS, looked up by `kid` and re-fetched once when the
//! key is unknown (Entra rotates keys); `iss` is the tenant's v2.0 issuer (a token from another
//! tenant is refused even when Microsoft signed it); `aud` is this app; `exp`/`nbf` with five
//! minutes of clock skew; `nonce` is the one this sign-in sent (replays are refused); `tid`
//! is the configured tenant; `oid` is present (users are keyed by `tid` + `oid`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

/// Clock skew tolerated on `exp` and `nbf`.
const SKEW: i64 = 300;

/// Why a sign-in failed. Messages are safe to show: they never contain a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OidcError {
    #[error("the identity platform's configuration could not be read: {0}")]
    Discovery(String),
    #[error("the sign-in response does not belong to a sign-in started here (state mismatch)")]
    State,
    #[error("the identity platform refused the sign-in: {0}")]
    Refused(String),
    #[error("the sign-in token is not valid: {0}")]
    InvalidToken(&'static str),
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `tid` + `oid` key a user; `oid` is the user's object id, which the sync keyed the
    /// principal by.
    pub tenant_id: String,
    pub object_id: String,
    pub name: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
}

/// A sign-in in progress: what the callback must match, kept server-side (or sealed in a
/// cookie) between the redirect and the callback.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

/// An OpenID Connect client for one tenant.
pub struct OidcClient {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    /// Certificate credentials, when the app proves itself with a certificate instead.
    certificate: Option<std::sync::Arc<attest_entra::certificate::ClientCertificate>>,
    redirect_uri: String,
    tenant_id: String,
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    keys: RwLock<Vec<Jwk>>,
}

impl OidcClient {
    /// Reads the tenant's OpenID configuration (`{login_url}/{tenant}/v2.0/.well-known/openid-configuration`).
    pub async fn discover(
        http: reqwest::Client,
        login_url: &str,
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
    ) -> Result<OidcClient, OidcError> {
        let url = format!("{}/{tenant_id}/v2.0/.well-known/openid-configuration", login_url.trim_end_matches('/'));
        let doc = get_json(&http, &url).await.map_err(OidcError::Discovery)?;
        let field = |name: &str| {
            doc[name].as_str().map(str::to_owned).ok_or_else(|| OidcError::Discovery(format!("no `{name}` in {url}")))
        };
        let client = OidcClient {
            issuer: field("issuer")?.replace("{tenantid}", tenant_id),
            authorization_endpoint: field("authorization_endpoint")?,
            token_endpoint: field("token_endpoint")?,
            jwks_uri: field("jwks_uri")?,
            http,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            certificate: None,
            redirect_uri: redirect_uri.to_owned(),
            tenant_id: tenant_id.to_owned(),
            keys: RwLock::new(Vec::new()),
        };
        client.refresh_keys().await?;
        Ok(client)
    }

    /// The same client proving itself with `certificate` (a signed assertion) instead of its
    /// secret when it redeems a code.
    pub fn with_certificate(
        self,
        certificate: Option<std::sync::Arc<attest_entra::certificate::ClientCertificate>>,
    ) -> OidcClient {
        OidcClient { certificate, ..self }
    }

    /// Starts a sign-in: the URL to send the browser to, and what the callback must match.
    pub fn begin(&self) -> Result<(String, Pending), OidcError> {
        self.begin_with("openid profile email", &[])
    }

    /// Starts a sign-in asking for `scope`, with `extra` authorization parameters (a fresh
    /// sign-in with MFA, who is expected).
    pub fn begin_with(&self, scope: &str, extra: &[(&str, &str)]) -> Result<(String, Pending), OidcError> {
        let pending = Pending { state: random_token()?, nonce: random_token()?, verifier: random_token()? };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", scope)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        Ok((format!("{}?{}", self.authorization_endpoint, query.finish()), pending))
    }

    /// The tenant this client signs people in to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Finishes a sign-in from the callback's `code` and `state`: checks the state, redeems the
    /// code with the PKCE verifier, and validates the id_token.
    pub async fn finish(
        &self,
        pending: &Pending,
        code: &str,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<Identity, OidcError> {
        Ok(self.redeem(pending, code, state, now).await?.0)
    }

    /// [`OidcClient::finish`], with the access token the code was redeemed for (the delegated
    /// token of a sign-in begun with [`OidcClient::begin_with`] and an API's scope). Used once
    /// and never stored.
    pub async fn finish_with_access_token(
        &self,
        pending: &Pending,
        code: &str,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<(Identity, String), OidcError> {
        let (identity, body) = self.redeem(pending, code, state, now).await?;
        let token = body["access_token"].as_str().ok_or(OidcError::InvalidToken("the answer has no access_token"))?;
        Ok((identity, token.to_owned()))
    }

    async fn redeem(
        &self,
        pending: &Pending,
        code: &str,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<(Identity, Value), OidcError> {
        if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(OidcError::State);
        }
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", self.client_id.clone()),
            ("code", code.to_owned()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", pending.verifier.clone()),
        ];
        match &self.certificate {
            Some(certificate) => {
                // Checked against the identity platform's clock: dated by the system's.
                #[allow(clippy::disallowed_methods)]
                let issued = chrono::Utc::now().timestamp();
                let assertion =
                    certificate.assertion(&self.client_id, &self.token_endpoint, issued).map_err(OidcError::Refused)?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
            None => form.push(("client_secret", self.client_secret.clone())),
        }
        let response = self
            .http
            .post(&self.token_endpoint)
            .form(&form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| OidcError::Refused(format!("the token endpoint cannot be reached: {e}")))?;
        let status = response.status();
        let body: Value =
            response.json().await.map_err(|_| OidcError::Refused(format!("answer {status} is not JSON")))?;
        if !status.is_success() {
            let description = body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("unknown error");
            let first_line = description.lines().next().unwrap_or(description);
            return Err(OidcError::Refused(first_line.to_owned()));
        }
        let token = body["id_token"].as_str().ok_or(OidcError::InvalidToken("the answer has no id_token"))?;
        let identity = self.validate(token, &pending.nonce, now).await?;
        Ok((identity, body))
    }

    /// Validates an id_token for this app and tenant, issued for `nonce`.
    pub async fn validate(&self, token: &str, nonce: &str, now: DateTime<Utc>) -> Result<Identity, OidcError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::InvalidToken("not a signed JWT"));
        };
        let header = decode_json(header).ok_or(OidcError::InvalidToken("unreadable header"))?;
        if header["alg"] != "RS256" {
            return Err(OidcError::InvalidToken("not signed with RS256"));
        }
        let kid = header["kid"].as_str().ok_or(OidcError::InvalidToken("no key id"))?;
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| OidcError::InvalidToken("unreadable signature"))?;
        let signed = &token[..header_and_payload_len(token)];
        let key = match self.key(kid).await {
            Some(key) => key,
            None => {
                // Keys rotate: fetch them again once before refusing.
                self.refresh_keys().await?;
                self.key(kid).await.ok_or(OidcError::InvalidToken("signed with a key the tenant does not publish"))?
            }
        };
        RsaPublicKeyComponents { n: &key.n, e: &key.e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .map_err(|_| OidcError::InvalidToken("the signature does not verify"))?;
        let claims = decode_json(payload).ok_or(OidcError::InvalidToken("unreadable claims"))?;
        if claims["iss"] != self.issuer.as_str() {
            return Err(OidcError::InvalidToken("issued by another issuer or tenant"));
        }
        if claims["aud"] != self.client_id.as_str() {
            return Err(OidcError::InvalidToken("issued for another application"));
        }
        let at = |name: &str| claims[name].as_i64();
        let now = now.timestamp();
        if at("exp").is_none_or(|exp| exp + SKEW < now) {
            return Err(OidcError::InvalidToken("expired"));
        }
        if at("nbf").is_some_and(|nbf| nbf - SKEW > now) {
            return Err(OidcError::InvalidToken("not valid yet"));
        }
        if !claims["nonce"].as_str().is_some_and(|n| constant_time_eq(n.as_bytes(), nonce.as_bytes())) {
            return Err(OidcError::InvalidToken("the nonce is not this sign-in's"));
        }
        if claims["tid"] != self.tenant_id.as_str() {
            return Err(OidcError::InvalidToken("issued for another tenant"));
        }
        let text = |name: &str| claims[name].as_str().map(str::to_owned);
        Ok(Identity {
            tenant_id: self.tenant_id.clone(),
            object_id: text("oid").ok_or(OidcError::InvalidToken("no object id"))?,
            name: text("name"),
            username: text("preferred_username"),
            email: text("email"),
        })
    }

    async fn key(&self, kid: &str) -> Option<Jwk> {
        self.keys.read().await.iter().find(|k| k.kid == kid).cloned()
    }

    async fn refresh_keys(&self) -> Result<(), OidcError> {
        let doc = get_json(&self.http, &self.jwks_uri).await.map_err(OidcError::Discovery)?;
        let keys: Vec<Jwk> = doc["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["kty"] == "RSA")
            .filter_map(|k| {
                Some(Jwk {
                    kid: k["kid"].as_str()?.to_owned(),
                    n: URL_SAFE_NO_PAD.decode(k["n"].as_str()?).ok()?,
                    e: URL_SAFE_NO_PAD.decode(k["e"].as_str()?).ok()?,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(OidcError::Discovery(format!("no RSA keys at {}", self.jwks_uri)));
        }
        *self.keys.write().await = keys;
        Ok(())
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("{url} cannot be reached: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    response.json().await.map_err(|e| format!("{url} did not answer JSON: {e}"))
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Length of `header.payload`, the signed part of a compact JWS.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// 32 random bytes, base64url: state, nonce and PKCE verifier (43 characters, as RFC 7636 asks).
fn random_token() -> Result<String, OidcError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| OidcError::Discovery("the system's random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
