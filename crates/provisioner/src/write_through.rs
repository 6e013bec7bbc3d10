//! After a change is applied in the directory, the entitlement graph is updated at once, so
//! pages and reviews show it before the next sync (which confirms it, or corrects it).
//!
//! Only what the change itself determines is written: direct grants begin or end, a user's
//! sign-in is blocked or allowed, a deleted user is marked deleted. Inherited grants follow at the
//! next sync, which derives them again. Objects the graph does not know yet (never synced) are
//! left to that sync too.

use attest_connector::Applied;
use attest_domain::{ChangeAction, ConnectorId, EntitlementKey, GrantData, ResourceKind};
use attest_store::{Store, StoreError};
use chrono::{DateTime, Utc};

/// A grant a change begins or ends: on which resource, which entitlement, to whom, where.
struct GrantChange<'a> {
    kind: ResourceKind,
    resource: &'a str,
    key: EntitlementKey,
    principal: &'a str,
    scope: &'a str,
    expires_at: Option<DateTime<Utc>>,
    begins: bool,
}

/// Writes `action`'s effect into the graph. Returns whether anything was written.
pub async fn write_through(
    store: &Store,
    connector: ConnectorId,
    action: &ChangeAction,
    applied: &Applied,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use ChangeAction as A;
    use ResourceKind::{Application, DirectoryRole, Group};
    let grant = |kind, resource, key, principal, scope, expires_at, begins| GrantChange {
        kind,
        resource,
        key,
        principal,
        scope,
        expires_at,
        begins,
    };
    let change = match action {
        A::AddGroupMember { group, member } => grant(Group, group, EntitlementKey::Member, member, "", None, true),
        A::RemoveGroupMember { group, member } => grant(Group, group, EntitlementKey::Member, member, "", None, false),
        A::AddGroupOwner { group, owner } => grant(Group, group, EntitlementKey::Owner, owner, "", None, true),
        A::RemoveGroupOwner { group, owner } => grant(Group, group, EntitlementKey::Owner, owner, "", None, false),
        A::AddAppOwner { app, owner } => grant(Application, app, EntitlementKey::Owner, owner, "", None, true),
        A::RemoveAppOwner { app, owner } => grant(Application, app, EntitlementKey::Owner, owner, "", None, false),
        A::AssignAppRole { app, principal, app_role } => {
            grant(Application, app, EntitlementKey::AppRole(app_role.clone()), principal, "", None, true)
        }
        A::RemoveAppRoleAssignment { app, principal, app_role, .. } => {
            grant(Application, app, EntitlementKey::AppRole(app_role.clone()), principal, "", None, false)
        }
        A::AddRoleAssignment { role, principal, scope } => {
            grant(DirectoryRole, role, EntitlementKey::Active, principal, scope, None, true)
        }
        A::AddTimeBoundRoleAssignment { role, principal, scope, until } => {
            grant(DirectoryRole, role, EntitlementKey::Active, principal, scope, Some(*until), true)
        }
        A::RemoveRoleAssignment { role, principal, scope, .. }
        | A::RemoveTimeBoundRoleAssignment { role, principal, scope } => {
            grant(DirectoryRole, role, EntitlementKey::Active, principal, scope, None, false)
        }
        A::AddRoleEligibility { role, principal, scope, until } => {
            grant(DirectoryRole, role, EntitlementKey::Eligible, principal, scope, *until, true)
        }
        A::RemoveRoleEligibility { role, principal, scope } => {
            grant(DirectoryRole, role, EntitlementKey::Eligible, principal, scope, None, false)
        }
        A::BlockSignIn { user } => {
            return store.principals().set_principal_account_enabled(connector, user, false, now).await;
        }
        A::UnblockSignIn { user } => {
            return store.principals().set_principal_account_enabled(connector, user, true, now).await;
        }
        A::DeleteUser { user } => {
            let deleted =
                store.principals().mark_principals_deleted(connector, std::slice::from_ref(user), now).await?;
            if let Some(principal) = store.principals().find_principal_by_external_id(connector, user).await? {
                store.grants().end_grants_involving(connector, &[principal.id], &[], now, None).await?;
            }
            return Ok(deleted > 0);
        }
        // Nothing in the graph records these; a restored user comes back with the next sync.
        A::RevokeSessions { .. } | A::ResetPassword { .. } | A::RestoreUser { .. } => return Ok(false),
    };
    let Some(entitlement) =
        store.resources().find_entitlement_id(connector, change.kind, change.resource, &change.key).await?
    else {
        return Ok(false);
    };
    let Some(principal) = store.principals().find_principal_by_external_id(connector, change.principal).await? else {
        return Ok(false);
    };
    if principal.data.deleted_at.is_some() {
        return Ok(false);
    }
    let external_ref = applied.details.get("assignment_id").and_then(|v| v.as_str()).map(str::to_owned);
    let row = GrantData {
        entitlement_id: entitlement,
        principal_id: principal.id,
        scope: change.scope.to_owned(),
        external_ref,
        expires_at: change.expires_at,
        end_known: false,
    };
    if change.begins {
        Ok(store.grants().upsert_grants(connector, &[row], now).await?.counts.added > 0)
    } else {
        Ok(store.grants().end_grants_matching(&[row], now, None).await? > 0)
    }
}
