//! Who may do what in Attest: the roles a person holds, and which connectors they operate.
//!
//! The web's route guards, the command line's `--as` and the jobs that mail approvers all ask
//! these questions here, so they can never disagree.

use serde::Serialize;

use crate::{Connector, ConnectorId};

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

/// A person's roles, and the connectors they own.
#[derive(Debug, Clone, PartialEq)]
pub struct Roles {
    roles: Vec<Role>,
    owned: Vec<ConnectorId>,
}

impl Roles {
    /// A person's roles now: those granted to them by name (`admin`, `auditor`), plus
    /// integration owner of each of `connectors` whose owners include them, by identity
    /// (tenant and object id), never by email: anyone able to change an account's `mail` could
    /// otherwise take an owner's place.
    pub fn of(connectors: &[Connector], granted: &[String], tenant_id: &str, object_id: &str) -> Roles {
        let mut roles = Vec::new();
        if granted.iter().any(|r| r == "admin") {
            roles.push(Role::Admin);
        }
        if granted.iter().any(|r| r == "auditor") {
            roles.push(Role::Auditor);
        }
        let owned: Vec<ConnectorId> =
            connectors.iter().filter(|c| c.is_owned_by(tenant_id, object_id)).map(|c| c.id).collect();
        Roles::with(roles, owned)
    }

    /// The owner of `connectors` and nothing else (a connector's owner named in its settings,
    /// who may never have signed in).
    pub fn owner_of(connectors: Vec<ConnectorId>) -> Roles {
        Roles::with(Vec::new(), connectors)
    }

    /// An administrator.
    pub fn admin() -> Roles {
        Roles::with(vec![Role::Admin], Vec::new())
    }

    fn with(mut roles: Vec<Role>, owned: Vec<ConnectorId>) -> Roles {
        if !owned.is_empty() {
            roles.push(Role::IntegrationOwner);
        }
        roles.push(Role::Requester);
        Roles { roles, owned }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// May change things in this connector (and approve changes to it): administrators and its
    /// owners.
    pub fn can_operate(&self, connector: ConnectorId) -> bool {
        self.has(Role::Admin) || self.owned.contains(&connector)
    }

    /// May read this connector's directory, changes and syncs: administrators, auditors and
    /// its owners.
    pub fn can_read(&self, connector: ConnectorId) -> bool {
        self.has(Role::Admin) || self.has(Role::Auditor) || self.owned.contains(&connector)
    }

    /// The connectors this person reads: `None` for all (administrators and auditors).
    pub fn read_scope(&self) -> Option<&[ConnectorId]> {
        if self.has(Role::Admin) || self.has(Role::Auditor) { None } else { Some(&self.owned) }
    }

    /// Every role, requester last.
    pub fn list(&self) -> &[Role] {
        &self.roles
    }

    /// The roles worth showing (everyone is a requester).
    pub fn names(&self) -> Vec<&'static str> {
        self.roles.iter().filter(|r| **r != Role::Requester).map(|r| r.as_str()).collect()
    }
}
