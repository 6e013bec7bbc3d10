//! User sign-in as the identity platform does it (graph-facts §9): the authorization endpoint
//! with a sign-in page listing the tenant's users, authorization codes bound to PKCE, the code
//! and refresh-token grants, OIDC discovery and the JWKS.
//!
//! There are no passwords: picking a user signs them in. Everything around that follows the
//! documented protocol: exact redirect URIs, `state`, `nonce`, PKCE S256, single-use codes
//! that live 10 minutes, refresh tokens that die with `revokeSignInSessions`, disabled users
//! refused, `prompt=none` answered with `login_required` when there is no session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::identity::{TokenForm, aadsts, issue_access_token};
use crate::pages::{error_page, escape, hidden, page, see_other, with_query};
use crate::state::Sim;
use crate::tenant::{Tenant, User};

/// Authorization codes live about 10 minutes (access-tokens.md).
const CODE_LIFETIME_MINUTES: i64 = 10;
const SESSION_COOKIE: &str = "sim_session";

/// Codes and refresh tokens issued so far.
#[derive(Default)]
pub(crate) struct Grants {
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
}

struct CodeGrant {
    redirect_uri: String,
    user: String,
    scopes: Vec<String>,
    nonce: Option<String>,
    /// `(challenge, method)`.
    challenge: Option<(String, String)>,
    issued: DateTime<Utc>,
    redeemed: bool,
    /// The user passed multi-factor authentication at this sign-in (see [`asks_for_mfa`]).
    mfa: bool,
}

#[derive(Clone)]
struct RefreshGrant {
    user: String,
    scopes: Vec<String>,
    /// When the user signed in: sessions revoked after this end the grant.
    signed_in: DateTime<Utc>,
    mfa: bool,
}

/// The authorization request's parameters, plus what the sign-in page posts back.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuthorizeParams {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    login_hint: Option<String>,
    /// `mfa` asks for a sign-in with multi-factor authentication (see [`asks_for_mfa`]).
    amr_values: Option<String>,
    /// Sign-in page: the user picked (id or UPN), a search, or cancel.
    login: Option<String>,
    q: Option<String>,
    cancel: Option<String>,
}

/// A request that passed the checks after which errors may be redirected.
struct Checked<'a> {
    params: &'a AuthorizeParams,
    redirect_uri: String,
    mode: &'static str,
}

/// Whether `tenant` names this tenant (id or domain) or a multi-tenant alias.
pub(crate) fn tenant_matches(t: &Tenant, tenant: &str, aliases: &[&str]) -> bool {
    tenant.eq_ignore_ascii_case(&t.id)
        || tenant.eq_ignore_ascii_case(&t.domain)
        || aliases.iter().any(|a| tenant.eq_ignore_ascii_case(a))
}

/// The checks whose failure is shown as a page, never redirected: the tenant, the client and
/// the redirect URI (an unregistered URI must not receive anything).
// The error is the response itself, built at most once per request: boxing buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn check_client(
    sim: &Sim,
    tenant: &str,
    client_id: Option<&str>,
    redirect_uri: Option<&str>,
) -> Result<String, Response> {
    let (known, domain) = sim.read(|t| (tenant_matches(t, tenant, &["common", "organizations"]), t.domain.clone()));
    if !known {
        return Err(error_page(
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    let client_id = client_id.unwrap_or_default();
    if client_id.is_empty() {
        return Err(error_page(900144, "The request body must contain the following parameter: 'client_id'."));
    }
    if client_id != sim.client.client_id {
        return Err(error_page(
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{domain}'."),
        ));
    }
    let redirect_uri = redirect_uri.unwrap_or_default();
    if !sim.client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(error_page(
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
            ),
        ));
    }
    Ok(redirect_uri.to_owned())
}

// The error is the response itself, built at most once per request: boxing buys nothing.
#[allow(clippy::result_large_err)]
fn check<'a>(sim: &Sim, tenant: &str, params: &'a AuthorizeParams) -> Result<Checked<'a>, Response> {
    let redirect_uri = check_client(sim, tenant, params.client_id.as_deref(), params.redirect_uri.as_deref())?;
    let mode = match params.response_mode.as_deref() {
        None | Some("query") => "query",
        Some("fragment") => "fragment",
        Some("form_post") => "form_post",
        Some(other) => {
            let checked = Checked { params, redirect_uri, mode: "query" };
            return Err(redirect_error(
                &checked,
                "invalid_request",
                900_144,
                &format!("The response_mode '{other}' is not supported."),
            ));
        }
    };
    let checked = Checked { params, redirect_uri, mode };
    if sim.consent_state().is_none_or(|c| c.granted.is_none()) {
        // A user of a tenant that has not consented sees "Need admin approval", not a redirect.
        return Err(error_page(
            90094,
            "The grant requires admin permission. Ask an administrator of the tenant to grant consent to the application.",
        ));
    }
    match params.response_type.as_deref() {
        Some("code") => {}
        // [INFER] Only the code flow is simulated; implicit and hybrid responses are refused.
        Some(other) => {
            return Err(redirect_error(
                &checked,
                "unsupported_response_type",
                700_054,
                &format!("response_type '{other}' is not enabled for the application."),
            ));
        }
        None => {
            return Err(redirect_error(
                &checked,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'response_type'.",
            ));
        }
    }
    if params.scope.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(redirect_error(
            &checked,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    match (params.code_challenge.as_deref(), params.code_challenge_method.as_deref()) {
        (None, _) | (Some(_), None | Some("S256") | Some("plain")) => {}
        (Some(_), Some(other)) => {
            // [INFER] wording.
            return Err(redirect_error(
                &checked,
                "invalid_request",
                501_491,
                &format!("Invalid code_challenge_method '{other}'."),
            ));
        }
    }
    Ok(checked)
}

/// Sends the user back to the client: `query`, `fragment` or an auto-submitted `form_post`.
fn redirect_with(checked: &Checked<'_>, mut values: Vec<(&str, String)>) -> Response {
    if let Some(state) = &checked.params.state {
        values.push(("state", state.clone()));
    }
    let uri = &checked.redirect_uri;
    match checked.mode {
        "fragment" => {
            let query = with_query("", &values);
            see_other(&format!("{uri}#{}", query.trim_start_matches('?')))
        }
        "form_post" => {
            let fields: Vec<(&str, Option<&str>)> = values.iter().map(|(k, v)| (*k, Some(v.as_str()))).collect();
            let body = format!(
                "<form method=\"post\" action=\"{}\" id=\"form_post\">{}<noscript><button type=\"submit\">Continue</button></noscript></form>\
                 <script>document.getElementById('form_post').submit()</script>",
                escape(uri),
                hidden(&fields)
            );
            page(StatusCode::OK, "Working...", &body)
        }
        _ => see_other(&with_query(uri, &values)),
    }
}

fn redirect_error(checked: &Checked<'_>, error: &str, code: u32, message: &str) -> Response {
    redirect_with(checked, vec![("error", error.to_owned()), ("error_description", format!("AADSTS{code}: {message}"))])
}

/// The user a `sim_session` cookie names, if the session is still valid.
fn session_user(sim: &Sim, headers: &HeaderMap) -> Option<String> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{SESSION_COOKIE}=")).map(str::to_owned))?;
    let (user, since) = cookie.split_once('.')?;
    let since = DateTime::from_timestamp_millis(since.parse().ok()?)?;
    sim.read(|t| {
        let u = t.live_user(user)?;
        let revoked = u.sign_in_sessions_valid_from.is_some_and(|from| from > since);
        (u.account_enabled && !revoked).then(|| u.id.clone())
    })
}

/// `GET /{tenant}/oauth2/v2.0/authorize`
pub(crate) async fn authorize_page(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let checked = match check(&sim, &tenant, &params) {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    match params.prompt.as_deref() {
        Some("none") => match session_user(&sim, &headers) {
            // A silent sign-in cannot ask for a second factor.
            Some(user) => issue_code(&sim, &checked, &user, false),
            None => redirect_error(
                &checked,
                "login_required",
                50_058,
                "A silent sign-in request was sent but no user is signed in.",
            ),
        },
        _ => sign_in_page(&sim, &tenant, &params, None),
    }
}

/// `POST /{tenant}/oauth2/v2.0/authorize`: the sign-in page's answer.
pub(crate) async fn authorize_submit(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    let checked = match check(&sim, &tenant, &params) {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    if params.cancel.is_some() {
        return redirect_error(&checked, "access_denied", 65_004, "User declined to consent to access the app.");
    }
    let Some(login) = params.login.as_deref().map(str::trim).filter(|l| !l.is_empty()) else {
        return sign_in_page(&sim, &tenant, &params, None);
    };
    let (found, domain) =
        sim.read(|t| (t.live_user(login).map(|u| (u.id.clone(), u.account_enabled)), t.domain.clone()));
    match found {
        None => {
            let message = format!(
                "AADSTS50034: The user account {login} does not exist in the {domain} directory. To sign into this application, the account must be added to the directory."
            );
            sign_in_page(&sim, &tenant, &params, Some(&message))
        }
        Some((_, false)) => sign_in_page(&sim, &tenant, &params, Some("AADSTS50057: The user account is disabled.")),
        Some((user, true)) => {
            let mut response = issue_code(&sim, &checked, &user, asks_for_mfa(&params));
            let cookie = format!(
                "{SESSION_COOKIE}={user}.{}; Path=/login; HttpOnly; SameSite=Lax",
                sim.now().timestamp_millis()
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
    }
}

/// Whether an interactive sign-in asked for a second factor: `amr_values=mfa` [INFER: Entra
/// steps up to MFA when Conditional Access or PIM's role settings require it; this simulator has
/// neither, so a client asks for it explicitly, and the sign-in page counts as passing it].
/// The tokens then say `"amr": ["pwd", "mfa"]`, else `["pwd"]`.
fn asks_for_mfa(params: &AuthorizeParams) -> bool {
    params.amr_values.as_deref().is_some_and(|v| v.split_whitespace().any(|m| m.eq_ignore_ascii_case("mfa")))
}

fn issue_code(sim: &Sim, checked: &Checked<'_>, user: &str, mfa: bool) -> Response {
    let params = checked.params;
    let code = sim.random_token();
    let grant = CodeGrant {
        redirect_uri: checked.redirect_uri.clone(),
        user: user.to_owned(),
        scopes: params.scope.as_deref().unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
        nonce: params.nonce.clone(),
        challenge: params
            .code_challenge
            .clone()
            .map(|c| (c, params.code_challenge_method.clone().unwrap_or_else(|| "plain".into()))),
        issued: sim.now(),
        redeemed: false,
        mfa,
    };
    if let Ok(mut grants) = sim.grants.lock() {
        let now = sim.now();
        // Expired codes are kept a while longer so redeeming one says "expired", not "unknown".
        grants.codes.retain(|_, g| now - g.issued < Duration::minutes(6 * CODE_LIFETIME_MINUTES));
        grants.codes.insert(code.clone(), grant);
    }
    redirect_with(checked, vec![("code", code)])
}

/// The sign-in page: the featured users (the demo's Attest administrators, so labelled),
/// then holders of a directory role (labelled with its name), then other enabled users; or the
/// matches of a search.
fn sign_in_page(sim: &Sim, tenant: &str, params: &AuthorizeParams, error: Option<&str>) -> Response {
    let query = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let featured: Vec<(String, String)> = sim.featured.lock().map(|f| f.clone()).unwrap_or_default();
    let users: Vec<(String, String, String)> = sim.read(|t| {
        // What a user is called here: the embedding application's label, else the names of
        // the directory roles they hold.
        let label = |u: &User| -> String {
            if let Some((_, label)) = featured.iter().find(|(id, _)| *id == u.id) {
                return label.clone();
            }
            let roles: Vec<&str> = t
                .role_assignments
                .iter()
                .filter(|a| a.principal_id == u.id)
                .filter_map(|a| t.role_definitions.iter().find(|d| d.id == a.role_definition_id))
                .map(|d| d.display_name.as_str())
                .collect();
            roles.join(", ")
        };
        let candidates = t.live_users().filter(|u| u.account_enabled);
        let mut picked: Vec<&User> = match &query {
            Some(q) => candidates
                .filter(|u| {
                    u.display_name.to_lowercase().contains(q) || u.user_principal_name.to_lowercase().contains(q)
                })
                .take(50)
                .collect(),
            None => {
                let mut first: Vec<&User> =
                    featured.iter().filter_map(|(id, _)| t.live_user(id)).filter(|u| u.account_enabled).collect();
                let is_featured = |u: &User| featured.iter().any(|(id, _)| *id == u.id);
                let role_holders = t
                    .live_users()
                    .filter(|u| {
                        u.account_enabled
                            && !is_featured(u)
                            && t.role_assignments.iter().any(|a| a.principal_id == u.id)
                    })
                    .take(10);
                first.extend(role_holders);
                let listed: Vec<String> = first.iter().map(|u| u.id.clone()).collect();
                first.extend(candidates.filter(|u| !listed.contains(&u.id) && u.user_type == "Member").take(20));
                first
            }
        };
        picked.dedup_by(|a, b| a.id == b.id);
        picked.iter().map(|u| (u.user_principal_name.clone(), u.display_name.clone(), label(u))).collect()
    });
    let carried = hidden(&[
        ("client_id", params.client_id.as_deref()),
        ("response_type", params.response_type.as_deref()),
        ("redirect_uri", params.redirect_uri.as_deref()),
        ("response_mode", params.response_mode.as_deref()),
        ("scope", params.scope.as_deref()),
        ("state", params.state.as_deref()),
        ("nonce", params.nonce.as_deref()),
        ("code_challenge", params.code_challenge.as_deref()),
        ("code_challenge_method", params.code_challenge_method.as_deref()),
        ("amr_values", params.amr_values.as_deref()),
    ]);
    let action = format!("/login/{}/oauth2/v2.0/authorize", escape(tenant));
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>", escape(error)));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">{carried}\
         <p><label>Sign in as (user principal name or object id)<br>\
         <input name=\"login\" id=\"login\" size=\"40\" value=\"{}\"></label> <button type=\"submit\" id=\"sign-in\" style=\"display:inline;width:auto\">Sign in</button></p></form>",
        escape(params.login_hint.as_deref().or(params.login.as_deref()).unwrap_or_default())
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">{carried}<p><label>Find a user <input name=\"q\" id=\"q\" value=\"{}\"></label> \
         <button type=\"submit\" style=\"display:inline;width:auto\">Search</button></p></form>",
        escape(params.q.as_deref().unwrap_or_default())
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">{carried}<ul id=\"users\" style=\"list-style:none;padding:0\">"
    ));
    for (upn, name, label) in &users {
        let badge = if label.is_empty() { String::new() } else { format!(" <small>({})</small>", escape(label)) };
        body.push_str(&format!(
            "<li><button type=\"submit\" name=\"login\" value=\"{upn}\" data-upn=\"{upn}\">{}{badge}<br><small>{upn}</small></button></li>",
            escape(name),
            upn = escape(upn)
        ));
    }
    body.push_str(
        "</ul><p><button type=\"submit\" name=\"cancel\" value=\"1\" id=\"cancel\">Cancel</button></p></form>",
    );
    page(StatusCode::OK, "Sign in", &body)
}

/// The id token's `sub`: pairwise, stable per user and app (id-token-claims-reference.md).
fn pairwise_subject(user: &str, client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(format!("{user}/{client_id}"))[..32])
}

/// `grant_type=authorization_code`
pub(crate) fn redeem_code(sim: &Sim, form: &TokenForm, tenant_id: &str) -> Response {
    let Some(code) = form.code.as_deref() else {
        return aadsts(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'code'.",
        );
    };
    let redeemed = {
        let mut grants = match sim.grants.lock() {
            Ok(grants) => grants,
            Err(poisoned) => poisoned.into_inner(),
        };
        check_code(grants.codes.get_mut(code), form, sim.now())
    };
    let (refresh, nonce) = match redeemed {
        Ok(redeemed) => redeemed,
        Err((code, message)) => return aadsts(sim, StatusCode::BAD_REQUEST, "invalid_grant", code, message),
    };
    user_tokens(sim, tenant_id, refresh, nonce.as_deref())
}

/// Checks a code against its redemption and marks it redeemed: the grant it carries, or the
/// AADSTS code and message refusing it.
fn check_code(
    grant: Option<&mut CodeGrant>,
    form: &TokenForm,
    now: DateTime<Utc>,
) -> Result<(RefreshGrant, Option<String>), (u32, &'static str)> {
    // [INFER] wording for a code the service never issued.
    let grant = grant.ok_or((70_000, "The provided value for the 'code' parameter is not valid."))?;
    if grant.redeemed {
        return Err((
            54_005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if now - grant.issued >= Duration::minutes(CODE_LIFETIME_MINUTES) {
        return Err((
            70_008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        // [INFER] code: the documented rule is that it must match the authorize request.
        return Err((
            50_011,
            "The redirect URI specified in the request does not match the redirect URI used to obtain the authorization code.",
        ));
    }
    if let Some((challenge, method)) = &grant.challenge {
        let verifier = form.code_verifier.as_deref().unwrap_or_default();
        let derived = match method.as_str() {
            "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            _ => verifier.to_owned(),
        };
        if verifier.is_empty() || &derived != challenge {
            return Err((
                501_481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    grant.redeemed = true;
    let refresh = RefreshGrant {
        user: grant.user.clone(),
        scopes: grant.scopes.clone(),
        signed_in: grant.issued,
        mfa: grant.mfa,
    };
    Ok((refresh, grant.nonce.clone()))
}

/// `grant_type=refresh_token`
pub(crate) fn redeem_refresh_token(sim: &Sim, form: &TokenForm, tenant_id: &str) -> Response {
    let Some(token) = form.refresh_token.as_deref() else {
        return aadsts(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'refresh_token'.",
        );
    };
    let grant = sim.grants.lock().ok().and_then(|g| g.refresh.get(token).cloned());
    let Some(grant) = grant else {
        return aadsts(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            9_002_313,
            "Invalid request. Request is malformed or invalid.",
        );
    };
    user_tokens(sim, tenant_id, grant, None)
}

/// Access, id and refresh tokens for a signed-in user, if the user may still have them.
fn user_tokens(sim: &Sim, tenant_id: &str, grant: RefreshGrant, nonce: Option<&str>) -> Response {
    let user = sim.read(|t| t.live_user(&grant.user).cloned());
    let Some(user) = user else {
        return aadsts(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50_034,
            "The user account does not exist in the directory.",
        );
    };
    if !user.account_enabled {
        return aadsts(sim, StatusCode::BAD_REQUEST, "invalid_grant", 50_057, "The user account is disabled.");
    }
    if user.sign_in_sessions_valid_from.is_some_and(|from| from > grant.signed_in) {
        return aadsts(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50_173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
        );
    }
    let has = |scope: &str| grant.scopes.iter().any(|s| s.eq_ignore_ascii_case(scope));
    // Graph's delegated scopes, as the access token's `scp`.
    let mut scp: Vec<String> = grant
        .scopes
        .iter()
        .filter(|s| !s.eq_ignore_ascii_case("offline_access"))
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned())
        .collect();
    if scp.is_empty() {
        scp.push("User.Read".into());
    }
    let now = sim.now();
    let client_id = sim.client.client_id.clone();
    let amr = if grant.mfa { json!(["pwd", "mfa"]) } else { json!(["pwd"]) };
    let (access_token, lifetime) = issue_access_token(
        sim,
        json!({
            "idtyp": "user",
            "oid": user.id,
            "upn": user.user_principal_name,
            "unique_name": user.user_principal_name,
            "name": user.display_name,
            "scp": scp.join(" "),
            "amr": amr,
            "sub": pairwise_subject(&user.id, "graph"),
        }),
        Vec::new(),
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scp.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if has("openid") {
        let mut claims = json!({
            "aud": client_id,
            "iss": format!("{}/{tenant_id}/v2.0", sim.login_url()),
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": (now + Duration::hours(1)).timestamp(),
            "oid": user.id,
            "tid": tenant_id,
            "sub": pairwise_subject(&user.id, &client_id),
            "uti": sim.random_token(),
            "ver": "2.0",
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if has("profile") {
            claims["name"] = user.display_name.clone().into();
            claims["preferred_username"] = user.user_principal_name.clone().into();
        }
        // Guests carry their email; members need the `email` scope.
        if let Some(mail) = &user.mail
            && (has("email") || user.user_type == "Guest")
        {
            claims["email"] = mail.clone().into();
        }
        body["id_token"] = sim.keys.as_ref().map(|k| k.sign(&claims)).unwrap_or_default().into();
    }
    if has("offline_access") {
        let refresh = format!("1.sim.{}", sim.random_token());
        if let Ok(mut grants) = sim.grants.lock() {
            grants.refresh.insert(refresh.clone(), grant);
        }
        // The service may hand out a new refresh token each time; clients keep the newest.
        body["refresh_token"] = refresh.into();
    }
    axum::Json(body).into_response()
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`
pub(crate) async fn openid_configuration(State(sim): State<Arc<Sim>>, Path(tenant): Path<String>) -> Response {
    let (known, tenant_id) = sim.read(|t| (tenant_matches(t, &tenant, &["common", "organizations"]), t.id.clone()));
    if !known {
        return aadsts(
            &sim,
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90_002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let login = sim.login_url();
    // The multi-tenant aliases publish the issuer with a placeholder (graph-facts §9).
    let issuer_tenant = if tenant.eq_ignore_ascii_case("common") || tenant.eq_ignore_ascii_case("organizations") {
        "{tenantid}".to_owned()
    } else {
        tenant_id.clone()
    };
    let body: Value = json!({
        "issuer": format!("{login}/{issuer_tenant}/v2.0"),
        "authorization_endpoint": format!("{login}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{login}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{login}/{tenant}/discovery/v2.0/keys"),
        "userinfo_endpoint": format!("{}/oidc/userinfo", sim.graph_url),
        "end_session_endpoint": format!("{login}/{tenant}/oauth2/v2.0/logout"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email", "oid"],
        "request_uri_parameter_supported": false,
        "frontchannel_logout_supported": true,
        "http_logout_supported": true,
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
    });
    axum::Json(body).into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`
pub(crate) async fn jwks(State(sim): State<Arc<Sim>>) -> Response {
    let issuer = format!("{}/{}/v2.0", sim.login_url(), sim.tenant_id());
    match &sim.keys {
        Some(keys) => axum::Json(keys.jwks(&issuer)).into_response(),
        None => axum::Json(json!({"keys": []})).into_response(),
    }
}
