//! The client app's standing in the tenant: whether an administrator consented (which puts
//! the app's service principal in the tenant and grants its application permissions), and
//! the ways that standing breaks in production: consent revoked (the enterprise app removed),
//! the app disabled, the secret expired, permissions granted only in part.

use crate::server::Sim;

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
}

impl Consent {
    pub(crate) fn new(granted: Option<Vec<String>>) -> Consent {
        Consent { granted, disabled: false, secret_expired: false }
    }
}

impl Sim {
    fn consent_mut<T>(&self, f: impl FnOnce(&mut Consent) -> T) -> Option<T> {
        self.consent.lock().ok().map(|mut c| f(&mut c))
    }

    pub(crate) fn consent_state(&self) -> Option<Consent> {
        self.consent.lock().ok().map(|c| c.clone())
    }

    /// An administrator consents to everything the app asks for (its registered permissions).
    pub fn grant_consent(&self) {
        let roles = self.client.roles.clone();
        self.consent_mut(|c| c.granted = Some(roles));
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

    /// The client secret expires (or is renewed).
    pub fn set_secret_expired(&self, expired: bool) {
        self.consent_mut(|c| c.secret_expired = expired);
    }
}
