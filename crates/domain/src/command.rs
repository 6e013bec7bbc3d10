//! Grant and revoke, as the features that govern access think of them.
//!
//! Reviews, access requests and expiry speak the entitlement graph: "grant entitlement E to
//! principal P until T", "revoke grant G". A [`ChangeAction`] is an operation in the directory
//! (add a member, remove an app role assignment by its id, end a PIM eligibility). This module
//! is the one place where the first becomes the second, so no feature builds a Graph-shaped
//! action itself and every feature revokes a PIM eligibility or an app role the same way.

use chrono::{DateTime, Utc};

use crate::{ChangeAction, EntitlementKey, GrantSource, IneffectiveReason, ResourceKind};

/// What a feature asks of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessCommand {
    /// Give `principal` the entitlement, until `until` (for good when `None`).
    Grant { principal: crate::PrincipalId, entitlement: crate::EntitlementId, until: Option<DateTime<Utc>> },
    /// Take a held grant away.
    Revoke { grant: crate::GrantId },
}

/// A grant to give, with what resolving it needs from the graph.
#[derive(Debug, Clone, Copy)]
pub struct GrantTarget<'a> {
    /// The principal's object id in the directory.
    pub principal: &'a str,
    pub resource_kind: ResourceKind,
    /// The resource's object id (a group, a service principal, a role definition).
    pub resource: &'a str,
    pub resource_deleted: bool,
    pub entitlement: &'a EntitlementKey,
    pub until: Option<DateTime<Utc>>,
    /// Why the directory's API cannot change this (see `resource::group_managed_elsewhere`).
    pub managed_elsewhere: Option<&'static str>,
}

/// A held grant to take away, with what resolving it needs from the graph.
#[derive(Debug, Clone, Copy)]
pub struct RevokeTarget<'a> {
    /// The principal's object id in the directory.
    pub principal: &'a str,
    pub resource_kind: ResourceKind,
    pub resource: &'a str,
    pub resource_deleted: bool,
    pub entitlement: &'a EntitlementKey,
    pub source: GrantSource,
    /// The directory scope of a role grant (`/` for the tenant).
    pub scope: &'a str,
    /// The directory's own id for the grant (an app role assignment's id), when it has one.
    pub external_ref: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ineffective: Option<IneffectiveReason>,
    /// Why the directory's API cannot change this (see `resource::group_managed_elsewhere`).
    pub managed_elsewhere: Option<&'static str>,
}

/// Why a command cannot become a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Inherited access is held through a group: it ends with the membership it flows from,
    /// or with the group's own grant.
    #[error("this access is inherited through a group; remove the group membership it comes from instead")]
    Inherited,
    /// The directory lists it but does not honour it: there is nothing to take away.
    #[error("this grant is listed but not effective in the directory; there is nothing to revoke")]
    Ineffective,
    #[error("the {0} no longer exists in the directory")]
    ResourceDeleted(&'static str),
    /// The grant has already ended.
    #[error("this grant has already ended")]
    Ended,
    /// The directory has no operation for this (e.g. a time limit on a group membership,
    /// which Attest enforces itself by revoking on time).
    #[error("{0}")]
    NotSupported(String),
    /// The group is managed elsewhere (Exchange, a dynamic rule, on-premises): the directory's
    /// API refuses the change.
    #[error("this group cannot be changed through Microsoft Graph: {0}")]
    ManagedElsewhere(&'static str),
}

impl CommandError {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::Inherited => "grant_inherited",
            CommandError::Ineffective => "grant_ineffective",
            CommandError::ResourceDeleted(_) => "resource_deleted",
            CommandError::Ended => "grant_ended",
            CommandError::NotSupported(_) => "not_supported",
            CommandError::ManagedElsewhere(_) => "group_managed_elsewhere",
        }
    }
}

fn noun(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Group => "group",
        ResourceKind::Application => "application",
        ResourceKind::DirectoryRole => "directory role",
    }
}

/// The tenant-wide directory scope.
const TENANT_SCOPE: &str = "/";

/// The change that gives a grant. A time limit becomes the directory's own where it has one
/// (PIM eligibilities and time-bound role assignments end by themselves); a membership, an
/// ownership or an app role has none, and whoever asks for one enforces the end itself.
pub fn grant_action(target: &GrantTarget) -> Result<ChangeAction, CommandError> {
    if target.resource_deleted {
        return Err(CommandError::ResourceDeleted(noun(target.resource_kind)));
    }
    if let Some(why) = target.managed_elsewhere {
        return Err(CommandError::ManagedElsewhere(why));
    }
    let (resource, principal) = (target.resource.to_owned(), target.principal.to_owned());
    let scope = TENANT_SCOPE.to_owned();
    Ok(match (target.resource_kind, target.entitlement) {
        (ResourceKind::Group, EntitlementKey::Member) => {
            ChangeAction::AddGroupMember { group: resource, member: principal }
        }
        (ResourceKind::Group, EntitlementKey::Owner) => {
            ChangeAction::AddGroupOwner { group: resource, owner: principal }
        }
        (ResourceKind::Application, EntitlementKey::Owner) => {
            ChangeAction::AddAppOwner { app: resource, owner: principal }
        }
        (ResourceKind::Application, EntitlementKey::AppRole(role)) => {
            ChangeAction::AssignAppRole { app: resource, principal, app_role: role.clone() }
        }
        (ResourceKind::DirectoryRole, EntitlementKey::Active) => match target.until {
            Some(until) => ChangeAction::AddTimeBoundRoleAssignment { role: resource, principal, scope, until },
            None => ChangeAction::AddRoleAssignment { role: resource, principal, scope },
        },
        (ResourceKind::DirectoryRole, EntitlementKey::Eligible) => {
            ChangeAction::AddRoleEligibility { role: resource, principal, scope, until: target.until }
        }
        (kind, key) => {
            return Err(CommandError::NotSupported(format!("a {} cannot be given '{key}'", noun(kind))));
        }
    })
}

/// The change that takes a held grant away: only a direct (or just-in-time) grant that the
/// directory honours can be removed by itself.
pub fn revoke_action(target: &RevokeTarget) -> Result<ChangeAction, CommandError> {
    if target.source == GrantSource::Inherited {
        return Err(CommandError::Inherited);
    }
    if target.ineffective.is_some() {
        return Err(CommandError::Ineffective);
    }
    if target.resource_deleted {
        return Err(CommandError::ResourceDeleted(noun(target.resource_kind)));
    }
    if let Some(why) = target.managed_elsewhere {
        return Err(CommandError::ManagedElsewhere(why));
    }
    let (resource, principal) = (target.resource.to_owned(), target.principal.to_owned());
    let scope = target.scope.to_owned();
    let assignment_id = target.external_ref.map(str::to_owned);
    Ok(match (target.resource_kind, target.entitlement) {
        (ResourceKind::Group, EntitlementKey::Member) => {
            ChangeAction::RemoveGroupMember { group: resource, member: principal }
        }
        (ResourceKind::Group, EntitlementKey::Owner) => {
            ChangeAction::RemoveGroupOwner { group: resource, owner: principal }
        }
        (ResourceKind::Application, EntitlementKey::Owner) => {
            ChangeAction::RemoveAppOwner { app: resource, owner: principal }
        }
        (ResourceKind::Application, EntitlementKey::AppRole(role)) => {
            ChangeAction::RemoveAppRoleAssignment { app: resource, principal, app_role: role.clone(), assignment_id }
        }
        // A time-bound active assignment is a PIM schedule: it is ended as one.
        (ResourceKind::DirectoryRole, EntitlementKey::Active) if target.expires_at.is_some() => {
            ChangeAction::RemoveTimeBoundRoleAssignment { role: resource, principal, scope }
        }
        (ResourceKind::DirectoryRole, EntitlementKey::Active) => {
            ChangeAction::RemoveRoleAssignment { role: resource, principal, scope, assignment_id }
        }
        (ResourceKind::DirectoryRole, EntitlementKey::Eligible) => {
            ChangeAction::RemoveRoleEligibility { role: resource, principal, scope }
        }
        (kind, key) => {
            return Err(CommandError::NotSupported(format!("'{key}' on a {} cannot be revoked", noun(kind))));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn revoke<'a>(kind: ResourceKind, key: &'a EntitlementKey) -> RevokeTarget<'a> {
        RevokeTarget {
            principal: "u1",
            resource_kind: kind,
            resource: "r1",
            resource_deleted: false,
            entitlement: key,
            source: GrantSource::Direct,
            scope: "/",
            external_ref: Some("a1"),
            expires_at: None,
            ineffective: None,
            managed_elsewhere: None,
        }
    }

    #[test]
    fn each_kind_of_grant_is_revoked_by_its_own_operation() {
        let member = EntitlementKey::Member;
        assert_eq!(
            revoke_action(&revoke(ResourceKind::Group, &member)),
            Ok(ChangeAction::RemoveGroupMember { group: "r1".into(), member: "u1".into() })
        );
        let role = EntitlementKey::AppRole("role-1".into());
        assert_eq!(
            revoke_action(&revoke(ResourceKind::Application, &role)),
            Ok(ChangeAction::RemoveAppRoleAssignment {
                app: "r1".into(),
                principal: "u1".into(),
                app_role: "role-1".into(),
                assignment_id: Some("a1".into()),
            })
        );
        let active = EntitlementKey::Active;
        let until = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
        let time_bound = RevokeTarget { expires_at: Some(until), ..revoke(ResourceKind::DirectoryRole, &active) };
        assert_eq!(
            revoke_action(&time_bound),
            Ok(ChangeAction::RemoveTimeBoundRoleAssignment {
                role: "r1".into(),
                principal: "u1".into(),
                scope: "/".into()
            })
        );
        let eligible = EntitlementKey::Eligible;
        assert!(matches!(
            revoke_action(&revoke(ResourceKind::DirectoryRole, &eligible)),
            Ok(ChangeAction::RemoveRoleEligibility { .. })
        ));
    }

    #[test]
    fn inherited_ineffective_and_deleted_grants_are_not_revoked_directly() {
        let member = EntitlementKey::Member;
        let inherited = RevokeTarget { source: GrantSource::Inherited, ..revoke(ResourceKind::Group, &member) };
        assert_eq!(revoke_action(&inherited), Err(CommandError::Inherited));
        let role = EntitlementKey::AppRole("r".into());
        let ineffective = RevokeTarget {
            ineffective: Some(IneffectiveReason::NestedGroup),
            ..revoke(ResourceKind::Application, &role)
        };
        assert_eq!(revoke_action(&ineffective), Err(CommandError::Ineffective));
        let deleted = RevokeTarget { resource_deleted: true, ..revoke(ResourceKind::Group, &member) };
        assert_eq!(revoke_action(&deleted), Err(CommandError::ResourceDeleted("group")));
        let eligible = EntitlementKey::Eligible;
        assert!(matches!(revoke_action(&revoke(ResourceKind::Group, &eligible)), Err(CommandError::NotSupported(_))));
    }

    #[test]
    fn a_time_limit_becomes_the_directorys_own_where_it_has_one() {
        let until = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
        let grant = |kind, key| GrantTarget {
            principal: "u1",
            resource_kind: kind,
            resource: "r1",
            resource_deleted: false,
            entitlement: key,
            until: Some(until),
            managed_elsewhere: None,
        };
        assert_eq!(
            grant_action(&grant(ResourceKind::DirectoryRole, &EntitlementKey::Active)),
            Ok(ChangeAction::AddTimeBoundRoleAssignment {
                role: "r1".into(),
                principal: "u1".into(),
                scope: "/".into(),
                until
            })
        );
        assert_eq!(
            grant_action(&grant(ResourceKind::DirectoryRole, &EntitlementKey::Eligible)),
            Ok(ChangeAction::AddRoleEligibility {
                role: "r1".into(),
                principal: "u1".into(),
                scope: "/".into(),
                until: Some(until)
            })
        );
        // A group membership has no end in Entra: the same add, and Attest removes it on time.
        assert_eq!(
            grant_action(&grant(ResourceKind::Group, &EntitlementKey::Member)),
            Ok(ChangeAction::AddGroupMember { group: "r1".into(), member: "u1".into() })
        );
        let gone = GrantTarget { resource_deleted: true, ..grant(ResourceKind::Group, &EntitlementKey::Member) };
        assert_eq!(grant_action(&gone), Err(CommandError::ResourceDeleted("group")));
        // A group Graph cannot change: refused, with why, both ways.
        let why = "its members come from its dynamic membership rule";
        let dynamic =
            GrantTarget { managed_elsewhere: Some(why), ..grant(ResourceKind::Group, &EntitlementKey::Member) };
        assert_eq!(grant_action(&dynamic), Err(CommandError::ManagedElsewhere(why)));
        let member = EntitlementKey::Member;
        let held = RevokeTarget { managed_elsewhere: Some(why), ..revoke(ResourceKind::Group, &member) };
        assert_eq!(revoke_action(&held).map_err(|e| e.code()), Err("group_managed_elsewhere"));
    }
}
