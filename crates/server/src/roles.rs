//! Who may do what. Roles come from two places: granted explicitly (`admin`, `auditor`, stored
//! on the user), and following from the graph (an integration owner is named as an owner of a
//! connector). Everyone signed in is a requester. Each route checks the role it needs in one
//! place, through [`Roles`].

use attest_store::{Store, WebUser};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Auditor,
    IntegrationOwner,
    Requester,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::IntegrationOwner => "integration owner",
            Role::Requester => "requester",
        }
    }
}

/// A signed-in user's roles.
#[derive(Debug, Clone, PartialEq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// The user's roles now: explicit grants, plus integration owner when their email is one
    /// of a connector's owners. A database error grants nothing beyond the explicit roles.
    pub async fn of(store: &Store, user: &WebUser) -> Roles {
        let mut roles = Vec::new();
        if user.roles.iter().any(|r| r == "admin") {
            roles.push(Role::Admin);
        }
        if user.roles.iter().any(|r| r == "auditor") {
            roles.push(Role::Auditor);
        }
        if let Some(email) = user.email.as_deref().map(str::to_lowercase) {
            let owns = match store.list_connectors().await {
                Ok(connectors) => connectors.iter().any(|c| c.owners.iter().any(|o| o.eq_ignore_ascii_case(&email))),
                Err(e) => {
                    tracing::warn!(error = %e, "connector owners could not be read");
                    false
                }
            };
            if owns {
                roles.push(Role::IntegrationOwner);
            }
        }
        roles.push(Role::Requester);
        Roles(roles)
    }

    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// The roles worth showing (everyone is a requester).
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().filter(|r| **r != Role::Requester).map(|r| r.as_str()).collect()
    }

    /// The people and groups directory: administrators, auditors, integration owners.
    pub fn can_browse_directory(&self) -> bool {
        self.has(Role::Admin) || self.has(Role::Auditor) || self.has(Role::IntegrationOwner)
    }
}
