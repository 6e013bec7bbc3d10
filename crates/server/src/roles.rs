//! Who may do what.
//!
//! Roles come from two places: granted explicitly (`admin`, `auditor`, stored on the user), and
//! following from configuration (an integration owner is named as an owner of a connector, and
//! manages that connector only). Everyone signed in is a requester.
//!
//! A route's [`Access`] is its handler's first argument, the guard: [`Allowed<R>`], which
//! answers 401 to the signed-out and 403 to the signed-in without the role before the handler
//! runs, or [`Anyone`]. The route table ([`crate::routes`]) reads the access from that type
//! ([`Guarded`]), so the two are one declaration. What a guard cannot know (which
//! connector an object belongs to) the handler checks with [`Viewer::can_read`] and
//! [`Viewer::can_operate`]. A test calls every route in the table as every role.

use std::marker::PhantomData;
use std::ops::Deref;

use attest_domain::ConnectorId;
use attest_domain::change_flow::{self, Person};
use attest_store::{WebSession, WebUser};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::error::{Surface, WebError};

pub use attest_domain::roles::{Role, Roles};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Anyone signed in.
    SignedIn,
    /// Reviewing access: anyone signed in, who sees and decides only the items assigned to
    /// them (never their own access, outside a self review).
    Reviewer,
    /// Running a campaign (start, close, apply): administrators and the campaign's owners, who
    /// may be anyone signed in; the handler checks the campaign (403 for everyone else).
    CampaignOwner,
    /// Reading the directory, changes and syncs: administrators, auditors, integration owners
    /// (their connectors).
    DirectoryReader,
    /// Changing things (user actions, approving, "Sync now"): administrators and integration
    /// owners (their connectors).
    Operator,
    /// The audit log: administrators and auditors.
    AuditReader,
    /// Administration: administrators.
    Admin,
    /// Entra's provisioning service with a SCIM bearer token: no session, whatever its roles,
    /// counts.
    ScimClient,
}

impl Access {
    pub fn allows(self, roles: &Roles) -> bool {
        let (admin, auditor, owner) =
            (roles.has(Role::Admin), roles.has(Role::Auditor), roles.has(Role::IntegrationOwner));
        match self {
            Access::Public | Access::SignedIn | Access::Reviewer | Access::CampaignOwner => true,
            Access::DirectoryReader => admin || auditor || owner,
            Access::Operator => admin || owner,
            Access::AuditReader => admin || auditor,
            Access::Admin => admin,
            Access::ScimClient => false,
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Access::Public | Access::SignedIn | Access::Reviewer | Access::CampaignOwner => "",
            Access::DirectoryReader => "This is for administrators, auditors and integration owners.",
            Access::Operator => "Only administrators and integration owners make changes.",
            Access::AuditReader => "This is for administrators and auditors.",
            Access::Admin => "This is for administrators.",
            Access::ScimClient => "This is for Entra's provisioning service, with a SCIM token.",
        }
    }
}

/// A route's requirement as a type, for [`Allowed`].
pub trait Rule: Send + Sync + 'static {
    const ACCESS: Access;
}

/// The guards' rules, one per [`Access`] that needs a signed-in user.
pub mod rule {
    use super::{Access, Rule};

    pub struct SignedIn;
    pub struct Reviewer;
    pub struct CampaignOwner;
    pub struct DirectoryReader;
    pub struct Operator;
    pub struct AuditReader;
    pub struct Admin;

    impl Rule for SignedIn {
        const ACCESS: Access = Access::SignedIn;
    }
    impl Rule for Reviewer {
        const ACCESS: Access = Access::Reviewer;
    }
    impl Rule for CampaignOwner {
        const ACCESS: Access = Access::CampaignOwner;
    }
    impl Rule for DirectoryReader {
        const ACCESS: Access = Access::DirectoryReader;
    }
    impl Rule for Operator {
        const ACCESS: Access = Access::Operator;
    }
    impl Rule for AuditReader {
        const ACCESS: Access = Access::AuditReader;
    }
    impl Rule for Admin {
        const ACCESS: Access = Access::Admin;
    }
}

/// Who is asking: the session and its roles.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session: WebSession,
    pub roles: Roles,
    /// The roles held through groups mapped to them (pushed over SCIM or synced from Entra),
    /// and through which group: read on every request, so a membership change counts at once.
    pub mapped: Vec<attest_store::MappedRole>,
}

impl Viewer {
    /// Whoever the request's session belongs to, with their roles now; `None` when signed out.
    pub async fn of(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Option<Viewer>, WebError> {
        let Some(session) = crate::session::session_of(state, headers).await? else { return Ok(None) };
        let connectors = state.caches.connectors(&state.store).await?;
        let user = &session.user;
        let mapped = if state.caches.any_role_mappings(&state.store).await? {
            state.store.scim().mapped_roles(user.id, &user.tenant_id, &user.object_id).await?
        } else {
            Vec::new()
        };
        let mut given = user.roles.clone();
        given.extend(mapped.iter().map(|m| m.role.clone()));
        let roles = Roles::of(&connectors, &given, &user.tenant_id, &user.object_id);
        Ok(Some(Viewer { session, roles, mapped }))
    }

    pub fn user(&self) -> &WebUser {
        &self.session.user
    }

    /// How this person is named in changes and the audit log: their email, else their ids.
    pub fn actor(&self) -> String {
        let user = &self.session.user;
        user.email.clone().unwrap_or_else(|| format!("{}/{}", user.tenant_id, user.object_id))
    }

    /// Who this person is, whatever their name or address: `tenant/objectId`. What the
    /// second-person rule compares.
    pub fn actor_id(&self) -> String {
        let user = &self.session.user;
        format!("{}/{}", user.tenant_id, user.object_id)
    }

    /// Whether this person asked for `change` (by identity when the change has one).
    pub fn asked_for(&self, change: &attest_domain::Change) -> bool {
        let (name, id) = (self.actor(), self.actor_id());
        change_flow::asked_for(change, Person { name: &name, id: Some(&id) })
    }

    /// Whether this person may approve `change` (the rule is `change_flow::may_approve`).
    pub fn may_approve(&self, change: &attest_domain::Change) -> bool {
        let (name, id) = (self.actor(), self.actor_id());
        change_flow::may_approve(&self.roles, change, Person { name: &name, id: Some(&id) })
    }

    /// May read this connector's directory, changes and syncs.
    pub fn can_read(&self, connector: ConnectorId) -> bool {
        self.roles.can_read(connector)
    }

    /// May change things in this connector.
    pub fn can_operate(&self, connector: ConnectorId) -> bool {
        self.roles.can_operate(connector)
    }

    /// The connectors this person reads: `None` for all (administrators and auditors).
    pub fn read_scope(&self) -> Option<&[ConnectorId]> {
        self.roles.read_scope()
    }

    /// Refused unless `provided` is this session's CSRF token (compared in constant time).
    pub fn check_csrf(&self, provided: Option<&str>) -> Result<(), WebError> {
        let expected = self.session.csrf_token.as_bytes();
        let ok = provided.is_some_and(|p| {
            p.len() == expected.len() && p.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if ok { Ok(()) } else { Err(WebError::Csrf) }
    }
}

/// The guard: a signed-in viewer whose roles satisfy `R`.
pub struct Allowed<R: Rule> {
    pub viewer: Viewer,
    rule: PhantomData<R>,
}

impl<R: Rule> Deref for Allowed<R> {
    type Target = Viewer;
    fn deref(&self) -> &Viewer {
        &self.viewer
    }
}

/// A guard's refusal, answered as the route's [`Surface`] answers errors.
pub struct Refusal {
    error: WebError,
    surface: Surface,
}

impl Refusal {
    /// `error`, answered the way `surface` answers.
    pub fn new(error: WebError, surface: Surface) -> Refusal {
        Refusal { error, surface }
    }
}

/// The surface the route table gave the route being served (a page if none).
pub fn surface_of(extensions: &axum::http::Extensions) -> Surface {
    extensions.get::<Surface>().copied().unwrap_or(Surface::Page)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.error.answer(self.surface)
    }
}

/// A handler's guard, its first argument: what it lets through is the route's [`Access`].
pub trait Guard {
    const ACCESS: Access;
}

impl<R: Rule> Guard for Allowed<R> {
    const ACCESS: Access = R::ACCESS;
}

/// The guard of a public route: lets everyone through.
pub struct Anyone;

impl Guard for Anyone {
    const ACCESS: Access = Access::Public;
}

impl<S: Send + Sync> FromRequestParts<S> for Anyone {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Anyone)
    }
}

/// A handler whose first argument is a [`Guard`]: the route table reads the route's access
/// from it, so the table and the guard cannot disagree. (axum's handler for
/// `fn(A, B, C)` is `Handler<(M, A, B, C), S>`.)
pub trait Guarded {
    const ACCESS: Access;
}

macro_rules! guarded {
    ($($rest:ident),*) => {
        impl<M, G: Guard, $($rest,)*> Guarded for (M, G, $($rest,)*) {
            const ACCESS: Access = G::ACCESS;
        }
    };
}
guarded!();
guarded!(T1);
guarded!(T1, T2);
guarded!(T1, T2, T3);
guarded!(T1, T2, T3, T4);
guarded!(T1, T2, T3, T4, T5);

impl<R: Rule> FromRequestParts<AppState> for Allowed<R> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let surface = surface_of(&parts.extensions);
        let refuse = |error| Refusal { error, surface };
        // A page asked for comes back after signing in; a form post cannot be replayed.
        let next = (parts.method == axum::http::Method::GET)
            .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
            .filter(|p| crate::session::safe_return(p).is_some());
        let viewer = Viewer::of(state, &parts.headers).await.map_err(refuse)?;
        let viewer = viewer.ok_or_else(|| refuse(WebError::SignedOut { next }))?;
        if !R::ACCESS.allows(&viewer.roles) {
            return Err(refuse(WebError::Forbidden(R::ACCESS.refusal().to_owned())));
        }
        // What a submitted form's CSRF token is checked against (see `crate::forms`).
        parts.extensions.insert(viewer.clone());
        Ok(Allowed { viewer, rule: PhantomData })
    }
}
