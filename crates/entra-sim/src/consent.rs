//! The client app's standing in the tenant: whether an administrator consented (which puts
//! the app's service principal in the tenant and grants its application permissions), and
//! the ways that standing breaks in production: consent revoked (the enterprise app removed),
//! the app disabled, the secret expired, permissions granted only in part. And the admin-consent
//! page an integration owner's administrator approves the app on (v2-admin-consent.md).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::pages::{error_page, escape, hidden, page, see_other, with_query};
use crate::signin::check_client;
use crate::state::Sim;

/// What the tenant's administrator has done about the client app.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Consent {
    /// Application permissions granted; `None` while the app is not in the tenant (never
    /// consented, or removed): token requests then fail with AADSTS700016.
    pub granted: Option<Vec<String>>,
    /// The enterprise app's "Enabled for users to sign in?" switched off (AADSTS7000112).
    pub disabled: bool,
    /// The client secret passed its end date (AADSTS7000222).
    pub secret_expired: bool,
    /// What the app registration lists, when not every permission the app asks for: an
    /// administrator's consent (with `/.default`) grants exactly these.
    pub registered: Option<Vec<String>>,
    /// A Conditional Access policy for workload identities blocks the app's tokens (AADSTS53003).
    pub blocked_by_conditional_access: bool,
    /// Certificates uploaded to the app registration while the simulator runs (beside those
    /// it started with): an administrator uploading the one Attest generated.
    pub uploaded_certificates: Vec<crate::assertion::UploadedCertificate>,
}

impl Consent {
    pub(crate) fn new(granted: Option<Vec<String>>) -> Consent {
        Consent {
            granted,
            disabled: false,
            secret_expired: false,
            registered: None,
            blocked_by_conditional_access: false,
            uploaded_certificates: Vec::new(),
        }
    }
}

impl Sim {
    fn consent_mut<T>(&self, f: impl FnOnce(&mut Consent) -> T) -> Option<T> {
        self.consent.lock().ok().map(|mut c| f(&mut c))
    }

    pub(crate) fn consent_state(&self) -> Option<Consent> {
        self.consent.lock().ok().map(|c| c.clone())
    }

    /// An administrator consents to everything the app registration lists.
    pub fn grant_consent(&self) {
        let roles = self.client.roles.clone();
        self.consent_mut(|c| c.granted = Some(c.registered.clone().unwrap_or(roles)));
    }

    /// The app registration lists only `roles` (an administrator forgot some): consent grants
    /// those, and the consent page shows those.
    pub fn register_only(&self, roles: &[&str]) {
        self.consent_mut(|c| c.registered = Some(roles.iter().map(|r| (*r).to_owned()).collect()));
    }

    fn registered(&self) -> Vec<String> {
        self.consent_state().and_then(|c| c.registered).unwrap_or_else(|| self.client.roles.clone())
    }

    /// An administrator grants only `roles` (a partial consent, or permissions removed later).
    /// Tokens already issued keep the roles they carry until they expire, as in Entra.
    pub fn grant_only(&self, roles: &[&str]) {
        self.consent_mut(|c| c.granted = Some(roles.iter().map(|r| (*r).to_owned()).collect()));
    }

    /// An administrator removes the enterprise app (revoking consent): outstanding tokens are
    /// refused [INFER: Entra stops honouring tokens of a deleted service principal] and new
    /// ones cannot be had until consent is granted again.
    pub fn remove_app(&self) {
        self.consent_mut(|c| c.granted = None);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, t| t.app_id != self.client.client_id);
        }
    }

    /// An administrator disables (or re-enables) the enterprise app.
    pub fn set_app_disabled(&self, disabled: bool) {
        self.consent_mut(|c| c.disabled = disabled);
    }

    /// A Conditional Access policy starts (or stops) blocking the app's tokens.
    pub fn set_conditional_access_block(&self, blocked: bool) {
        self.consent_mut(|c| c.blocked_by_conditional_access = blocked);
    }

    /// An administrator uploads the certificate `pem` to the app registration (Certificates &
    /// secrets): client assertions signed with its key are accepted from then on. `false` when
    /// it is not an RSA certificate in PEM.
    pub fn upload_certificate(&self, pem: &str) -> bool {
        let Some(certificate) = crate::assertion::UploadedCertificate::from_pem(pem) else { return false };
        self.consent_mut(|c| c.uploaded_certificates.push(certificate)).is_some()
    }

    /// Every certificate the app registration holds.
    pub(crate) fn client_certificates(&self) -> Vec<crate::assertion::UploadedCertificate> {
        let mut all = self.client.certificates.clone();
        all.extend(self.consent_state().map(|c| c.uploaded_certificates).unwrap_or_default());
        all
    }

    /// The client secret expires (or is renewed).
    pub fn set_secret_expired(&self, expired: bool) {
        self.consent_mut(|c| c.secret_expired = expired);
    }
}

/// The admin-consent request (`/v2.0/adminconsent`, or the legacy `/adminconsent` without
/// `scope`), plus what the consent page posts back.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConsentParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    login: Option<String>,
    cancel: Option<String>,
    accept: Option<String>,
}

fn consent_redirect(redirect_uri: &str, mut values: Vec<(&str, String)>, state: Option<&str>) -> Response {
    if let Some(state) = state {
        values.push(("state", state.to_owned()));
    }
    see_other(&with_query(redirect_uri, &values))
}

/// Checks the request; errors that cannot be redirected become pages.
// The error is the response itself, built at most once per request: boxing buys nothing.
#[allow(clippy::result_large_err)]
fn check_consent(sim: &Sim, tenant: &str, params: &ConsentParams, legacy: bool) -> Result<String, Response> {
    if tenant.eq_ignore_ascii_case("common") || tenant.eq_ignore_ascii_case("consumers") {
        // graph-facts §9: do not use `common` for admin consent. [INFER] code.
        return Err(error_page(
            50194,
            "Admin consent must be requested at the tenant-specific or the /organizations endpoint.",
        ));
    }
    let redirect_uri = check_client(sim, tenant, params.client_id.as_deref(), params.redirect_uri.as_deref())?;
    if !legacy && params.scope.as_deref().is_none_or(|s| s.trim().is_empty()) {
        let description = "AADSTS900144: The request body must contain the following parameter: 'scope'.";
        return Err(consent_redirect(
            &redirect_uri,
            vec![
                ("admin_consent", "True".into()),
                ("error", "invalid_request".into()),
                ("error_description", description.into()),
            ],
            params.state.as_deref(),
        ));
    }
    Ok(redirect_uri)
}

/// `GET /{tenant}/v2.0/adminconsent`
pub(crate) async fn admin_consent_page(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Query(params): Query<ConsentParams>,
) -> Response {
    match check_consent(&sim, &tenant, &params, false) {
        Ok(_) => consent_page(&sim, &tenant, &params, false, None),
        Err(response) => response,
    }
}

/// `GET /{tenant}/adminconsent` (the v1 form: no `scope`).
pub(crate) async fn legacy_admin_consent_page(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Query(params): Query<ConsentParams>,
) -> Response {
    match check_consent(&sim, &tenant, &params, true) {
        Ok(_) => consent_page(&sim, &tenant, &params, true, None),
        Err(response) => response,
    }
}

/// `POST /{tenant}/v2.0/adminconsent`: the consent page's answer.
pub(crate) async fn admin_consent_submit(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Form(params): Form<ConsentParams>,
) -> Response {
    submit(&sim, &tenant, &params, false)
}

/// `POST /{tenant}/adminconsent`: the legacy page's answer, in the legacy shape.
pub(crate) async fn legacy_admin_consent_submit(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Form(params): Form<ConsentParams>,
) -> Response {
    submit(&sim, &tenant, &params, true)
}

/// Accept (as an administrator) or cancel.
fn submit(sim: &Sim, tenant: &str, params: &ConsentParams, legacy: bool) -> Response {
    let redirect_uri = match check_consent(sim, tenant, params, legacy) {
        Ok(uri) => uri,
        Err(response) => return response,
    };
    let state = params.state.as_deref();
    if params.cancel.is_some() || params.accept.is_none() {
        // v2-admin-consent.md: `admin_consent=True` comes even with the error.
        let trace = sim.new_id();
        let description = format!(
            "AADSTS65004: The resource owner or authorization server denied the request.\r\nTrace ID: {trace}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            sim.new_id(),
            sim.now().format("%Y-%m-%d %H:%M:%SZ")
        );
        let values = vec![
            ("admin_consent", "True".to_owned()),
            ("error", "consent_required".to_owned()),
            ("error_description", description),
        ];
        return consent_redirect(&redirect_uri, values, state);
    }
    let login = params.login.as_deref().map(str::trim).unwrap_or_default();
    let admin =
        sim.read(|t| t.live_user(login).filter(|u| u.account_enabled).is_some_and(|u| t.can_grant_consent(&u.id)));
    if !admin {
        let message = "AADSTS90094: The grant requires admin permission. Sign in as a Global Administrator or Privileged Role Administrator.";
        return consent_page(sim, tenant, params, legacy, Some(message));
    }
    sim.grant_consent();
    let tenant_id = sim.tenant_id();
    let values = if legacy {
        vec![("tenant", tenant_id), ("admin_consent", "True".to_owned())]
    } else {
        let scope =
            sim.registered().iter().map(|r| format!("https://graph.microsoft.com/{r}")).collect::<Vec<_>>().join(" ");
        vec![("admin_consent", "True".to_owned()), ("tenant", tenant_id), ("scope", scope)]
    };
    consent_redirect(&redirect_uri, values, state)
}

/// What the app asks for, who may approve it, and Accept / Cancel.
fn consent_page(sim: &Sim, tenant: &str, params: &ConsentParams, legacy: bool, error: Option<&str>) -> Response {
    let admins: Vec<(String, String)> = sim.read(|t| {
        t.live_users()
            .filter(|u| u.account_enabled && t.can_grant_consent(&u.id))
            .take(10)
            .map(|u| (u.user_principal_name.clone(), u.display_name.clone()))
            .collect()
    });
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>", escape(error)));
    }
    body.push_str(&format!(
        "<p><strong>{}</strong> wants these application permissions in your organisation:</p><ul id=\"permissions\">",
        escape(&sim.client.display_name)
    ));
    for role in &sim.registered() {
        body.push_str(&format!("<li>{}</li>", escape(role)));
    }
    body.push_str("</ul>");
    let carried = hidden(&[
        ("client_id", params.client_id.as_deref()),
        ("redirect_uri", params.redirect_uri.as_deref()),
        ("scope", params.scope.as_deref()),
        ("state", params.state.as_deref()),
    ]);
    let path = if legacy { "adminconsent" } else { "v2.0/adminconsent" };
    let options: String = admins
        .iter()
        .map(|(upn, name)| format!("<option value=\"{}\">{}</option>", escape(upn), escape(name)))
        .collect();
    body.push_str(&format!(
        "<form method=\"post\" action=\"/login/{}/{path}\">{carried}\
         <p><label>Administrator <input name=\"login\" id=\"login\" list=\"admins\" size=\"40\" value=\"{}\"></label>\
         <datalist id=\"admins\">{options}</datalist></p>\
         <p><button type=\"submit\" name=\"accept\" value=\"1\" id=\"accept\">Accept</button>\
         <button type=\"submit\" name=\"cancel\" value=\"1\" id=\"cancel\">Cancel</button></p></form>",
        escape(tenant),
        escape(admins.first().map(|(upn, _)| upn.as_str()).unwrap_or_default()),
    ));
    page(StatusCode::OK, "Permissions requested", &body)
}
