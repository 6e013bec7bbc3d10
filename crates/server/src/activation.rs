//! PIM self-activation: an approved request whose policy says `self_activate`, by someone
//! eligible for the role, is activated in Entra by its requester rather than assigned by Attest.
//!
//! - `POST /requests/{id}/activate` (the requester only) sends them to Microsoft to sign in
//!   again, with multi-factor authentication, granting Attest the delegated permission
//!   `RoleAssignmentSchedule.ReadWrite.Directory` for this once. The attempt is bound to the
//!   browser and to the request, as a sign-in is (see [`crate::auth`]).
//! - Back at `/auth/callback` (the one redirect URI the app registration has), the code is
//!   redeemed for the person's own token, which Attest uses for exactly one request, PIM's
//!   `selfActivate` for the length asked, and then drops: it is never stored or logged. Entra
//!   checks the eligibility, the MFA and its role settings, records the person as the one who
//!   activated it, and ends it by itself at its end; Attest's expiry removes it too if it is
//!   still there (graph-facts §5).
//! - The request becomes active; the graph shows the assignment at once, just in time.

use attest_domain::command::AccessCommand;
use attest_domain::{ChangeAction, ConnectorId, EntitlementId, PrincipalId};
use attest_store::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::WebError;
use crate::extract::Id;
use crate::forms::Submitted;
use crate::oidc::Pending;
use crate::roles::{Allowed, Viewer, rule};
use crate::session::{cookie, random_token};

/// The cookie naming the request an activation sign-in is for (`/auth` only, ten minutes).
pub(crate) const ACTIVATION_COOKIE: &str = "attest_activate";

/// The delegated permission PIM's self-activation needs (graph-facts §5).
const SCOPE: &str = "RoleAssignmentSchedule.ReadWrite.Directory";

/// What the attempt is stored under: the sign-in's key, bound to the request as well, so a
/// changed cookie finds nothing.
pub(crate) fn attempt_key(state: &str, binding: &str, request: i64) -> String {
    crate::auth::attempt_key(state, &format!("{binding}:activate:{request}"))
}

/// The request `id` if it is the viewer's and waits for them to activate it.
async fn waiting(state: &AppState, viewer: &Viewer, id: i64) -> Result<Request, WebError> {
    let missing = || WebError::NotFound(format!("access request {id} not found"));
    let request = state.store.requests().get_request(id).await.map_err(|_| missing())?;
    if request.requester_object != viewer.user().object_id {
        return Err(WebError::Forbidden("only the person who asked activates the role".into()));
    }
    let waits = attest_access::awaits_activation(&state.store, &request, state.now())
        .await
        .map_err(crate::pages::requests::access_error)?;
    if !waits {
        return Err(WebError::BadRequest(format!(
            "request {id} is {}, not approved and waiting to be activated in Entra",
            request.state
        )));
    }
    Ok(request)
}

#[derive(Debug, serde::Deserialize)]
pub struct ActivateForm {}

/// `POST /requests/{id}/activate`: off to Microsoft to sign in again with MFA.
pub async fn activate(
    viewer: Allowed<rule::SignedIn>,
    axum::extract::State(state): axum::extract::State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<ActivateForm>,
) -> Result<Response, WebError> {
    let request = waiting(&state, &viewer, id).await?;
    let client = state.sign_in.client().await.map_err(crate::auth::unavailable)?;
    let credentials = connector_credentials(&state, ConnectorId(request.connector_id)).await?;
    if !client.tenant_id().eq_ignore_ascii_case(&credentials.tenant_id) {
        return Err(WebError::BadRequest(
            "this role is in another tenant than the one you sign in to Attest with: activate it in Entra there".into(),
        ));
    }
    let scope = format!("openid profile {}/{SCOPE}", credentials.graph_url.trim_end_matches('/'));
    let hint = viewer.user().email.clone().unwrap_or_default();
    let (url, pending) = client
        .begin_with(&scope, &[("prompt", "login"), ("login_hint", &hint), ("amr_values", "mfa")])
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let binding = random_token().map_err(WebError::Internal)?;
    crate::auth::save_attempt(&state, &attempt_key(&pending.state, &binding, id), &pending).await?;
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response();
    for (name, value) in [(crate::auth::BINDING_COOKIE, binding), (ACTIVATION_COOKIE, id.to_string())] {
        response.headers_mut().append(header::SET_COOKIE, crate::auth::short_cookie(&state, name, &value)?);
    }
    Ok(response)
}

/// The attempt an activation callback for request `id` was begun with (its nonce and PKCE
/// verifier), taken once; `None` when there is none (then the callback is an ordinary sign-in's,
/// whatever a leftover cookie says).
pub(crate) async fn take_attempt(
    state: &AppState,
    id: i64,
    returned_state: &str,
    binding: &str,
) -> Result<Option<(String, String)>, WebError> {
    state
        .store
        .web()
        .take_sign_in_attempt(&attempt_key(returned_state, binding, id), state.now())
        .await
        .map_err(|e| crate::auth::unavailable(e.to_string()))
}

/// Back from Microsoft with a code for request `id` (its `attempt` taken): activates the role
/// with the person's own token and shows the request.
pub(crate) async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    id: i64,
    attempt: (String, String),
    code: &str,
    returned_state: &str,
) -> Result<Response, WebError> {
    let viewer = Viewer::of(state, headers).await?.ok_or_else(|| {
        WebError::SignInFailed(
            "Your Attest session ended while you were at Microsoft: sign in, then activate again.".into(),
        )
    })?;
    let request = waiting(state, &viewer, id).await?;
    let client = state.sign_in.client().await.map_err(crate::auth::unavailable)?;
    let pending = Pending { state: returned_state.to_owned(), nonce: attempt.0, verifier: attempt.1 };
    let (identity, token) =
        client.finish_with_access_token(&pending, code, returned_state, state.now()).await.map_err(|e| {
            tracing::warn!(error = %e, "an activation sign-in was refused");
            WebError::Forbidden(e.to_string())
        })?;
    let me = viewer.user();
    if !identity.tenant_id.eq_ignore_ascii_case(&me.tenant_id)
        || !identity.object_id.eq_ignore_ascii_case(&me.object_id)
    {
        return Err(WebError::Forbidden(
            "You signed in at Microsoft as someone else: activate with the account you asked with.".into(),
        ));
    }
    // Whole seconds, as Entra keeps its schedules.
    let now = chrono::SubsecRound::trunc_subsecs(state.now(), 0);
    let (connector, action) = state
        .store
        .grants()
        .resolve_command(&AccessCommand::Grant {
            principal: PrincipalId(request.principal_id),
            entitlement: EntitlementId(request.entitlement_id),
            until: attest_domain::access::expiry(
                now,
                request.duration_minutes.map(attest_domain::access::Span::minutes),
            ),
        })
        .await?;
    let ChangeAction::AddTimeBoundRoleAssignment { role, principal, scope, until } = &action else {
        return Err(WebError::BadRequest("only a time-bound directory role is activated in Entra".into()));
    };
    let credentials = connector_credentials(state, connector).await?;
    // Claimed before Entra is asked, so the access job neither gives nor times it out, and an
    // early end waits for the answer, meanwhile.
    let claimed = attest_access::begin_activation(&state.store, &request, now)
        .await
        .map_err(crate::pages::requests::access_error)?
        .ok_or_else(|| WebError::BadRequest(format!("request {id} no longer waits to be activated")))?;
    let (graph_request, end) =
        match self_activate(&credentials.graph_url, &token, &claimed, (role, principal, scope), now, *until).await {
            Ok(done) => done,
            Err(NotActivated::Refused(e)) => {
                attest_access::activation_refused(&state.store, id, &e.to_string(), now)
                    .await
                    .map_err(crate::pages::requests::access_error)?;
                return Err(e);
            }
            // Sent, and no answer: Entra may have activated it, so the request stays claimed
            // and counts as given after ten minutes (the access job), removed at its end.
            Err(NotActivated::NoAnswer(e)) => {
                tracing::warn!(request = id, error = %e, "an activation in Entra got no answer");
                return Err(WebError::Unavailable(format!(
                    "Microsoft Graph did not answer ({e}). Entra may have activated the role: Attest counts it as \
                     given in {} minutes and removes it at its end.",
                    attest_store::ACTIVATION_UNKNOWN_AFTER_MINUTES
                )));
            }
        };
    attest_access::activated(&state.store, &claimed, &graph_request, end, now)
        .await
        .map_err(crate::pages::requests::access_error)?;
    // Entra has it and the request says so: the graph follows at once (else at the next sync).
    let applied = attest_connector::Applied {
        result: attest_domain::ApplyResult::Applied,
        request_id: None,
        details: json!({"self_activated": graph_request}),
        secret: None,
    };
    let (entitlement, holder) = (EntitlementId(request.entitlement_id), PrincipalId(request.principal_id));
    let written = match attest_provisioner::write_through(&state.store, connector, &action, &applied, now).await {
        Ok(_) => state.store.requests().mark_grant_jit(entitlement, holder, Some(end)).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(request = id, error = %e, "an activated role was not written into the graph; the next sync will");
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/requests/{id}"))]).into_response();
    for name in [crate::auth::BINDING_COOKIE, ACTIVATION_COOKIE] {
        response.headers_mut().append(header::SET_COOKIE, crate::auth::cleared_cookie(name)?);
    }
    Ok(response)
}

/// The request an activation callback is for, from its cookie.
pub(crate) fn request_of(headers: &HeaderMap) -> Option<i64> {
    cookie(headers, ACTIVATION_COOKIE).and_then(|v| v.parse().ok())
}

async fn connector_credentials(
    state: &AppState,
    connector: ConnectorId,
) -> Result<attest_entra::Credentials, WebError> {
    let connector = state.store.connectors().get_connector(connector).await?;
    attest_entra::stored::credentials(&state.store, &state.key, &connector)
        .await
        .map_err(|e| WebError::Unavailable(format!("the connector's credentials cannot be read: {e}")))
}

/// Why Entra did not activate a role.
enum NotActivated {
    /// Refused, or never sent: the request may wait again.
    Refused(WebError),
    /// Sent, and no answer came: Entra may have done it.
    NoAnswer(String),
}

/// PIM's `selfActivate` for `request`, with the person's own `token`: Entra's schedule request
/// id and the end Entra set. Entra's refusal (not eligible, MFA, its role settings' longest
/// activation) is shown with its code.
async fn self_activate(
    graph_url: &str,
    token: &str,
    request: &Request,
    (role, principal, scope): (&str, &str, &str),
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), NotActivated> {
    let minutes = (until - now).num_minutes().max(1);
    let mut body = json!({
        "action": "selfActivate",
        "principalId": principal,
        "roleDefinitionId": role,
        "directoryScopeId": scope,
        "justification": format!("{} (Attest request {})", request.justification, request.id),
        "scheduleInfo": {
            "startDateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "expiration": {"type": "afterDuration", "duration": format!("PT{minutes}M")},
        },
    });
    if let Some(ticket) = &request.ticket {
        body["ticketInfo"] = json!({"ticketNumber": ticket, "ticketSystem": "Attest"});
    }
    let url =
        format!("{}/v1.0/roleManagement/directory/roleAssignmentScheduleRequests", graph_url.trim_end_matches('/'));
    let http = crate::http_client().map_err(|e| NotActivated::Refused(WebError::Internal(e)))?;
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| match e.is_connect() {
            true => NotActivated::Refused(WebError::Unavailable(format!("Microsoft Graph cannot be reached: {e}"))),
            false => NotActivated::NoAnswer(e.to_string()),
        })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let code = answer["error"]["code"].as_str().unwrap_or("unknown");
        let message = answer["error"]["message"].as_str().unwrap_or("no message");
        let message: String = message.chars().take(300).collect();
        let said = format!("Entra did not activate the role ({status}, {code}): {message}");
        return Err(NotActivated::Refused(WebError::BadRequest(said)));
    }
    let id = answer["id"].as_str().unwrap_or_default().to_owned();
    let end = answer["scheduleInfo"]["expiration"]["endDateTime"]
        .as_str()
        .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
        .map_or(until, |e| e.with_timezone(&Utc));
    tracing::info!(request = request.id, "a role was activated in Entra by its holder");
    Ok((id, end))
}
