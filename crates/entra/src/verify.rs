//! Reading back whether a change holds: after applying it, the provisioner asks Entra again
//! instead of trusting the write's answer, so a revoke that did not take is caught at once.
//!
//! Reads are the plain, strongly consistent ones (listings and object reads), not advanced
//! queries, whose index Graph documents as possibly behind recent changes.

use crate::apply::ApplyError;
use crate::{ApiErrorKind, GraphClient, GraphError};
use attest_domain::ChangeAction;

impl GraphClient {
    /// Whether the directory now shows what `action` asked for; `None` for actions whose effect
    /// cannot be read back (a session revocation, a password reset).
    pub async fn verify(&self, action: &ChangeAction) -> Result<Option<bool>, ApplyError> {
        use ChangeAction as A;
        let holds = match action {
            A::AddGroupMember { group, member } => self.listed(&format!("/groups/{group}/members"), member).await?,
            A::RemoveGroupMember { group, member } => !self.listed(&format!("/groups/{group}/members"), member).await?,
            A::AddGroupOwner { group, owner } => self.listed(&format!("/groups/{group}/owners"), owner).await?,
            A::RemoveGroupOwner { group, owner } => !self.listed(&format!("/groups/{group}/owners"), owner).await?,
            A::AddAppOwner { app, owner } => self.listed(&format!("/servicePrincipals/{app}/owners"), owner).await?,
            A::RemoveAppOwner { app, owner } => {
                !self.listed(&format!("/servicePrincipals/{app}/owners"), owner).await?
            }
            A::AssignAppRole { app, principal, app_role } => {
                self.find_app_role_assignment(app, principal, app_role).await?.is_some()
            }
            A::RemoveAppRoleAssignment { app, principal, app_role, .. } => {
                self.find_app_role_assignment(app, principal, app_role).await?.is_none()
            }
            A::AddRoleAssignment { role, principal, scope }
            | A::AddTimeBoundRoleAssignment { role, principal, scope, .. } => {
                self.find_role_assignment(role, principal, scope).await?.is_some()
            }
            A::RemoveRoleAssignment { role, principal, scope, .. }
            | A::RemoveTimeBoundRoleAssignment { role, principal, scope } => {
                self.find_role_assignment(role, principal, scope).await?.is_none()
            }
            A::AddRoleEligibility { role, principal, scope, .. } => self.eligible(role, principal, scope).await?,
            A::RemoveRoleEligibility { role, principal, scope } => !self.eligible(role, principal, scope).await?,
            A::BlockSignIn { user } => self.account_enabled(user).await? == Some(false),
            A::UnblockSignIn { user } => self.account_enabled(user).await? == Some(true),
            A::DeleteUser { user } => self.account_enabled(user).await?.is_none(),
            A::RestoreUser { user } => self.account_enabled(user).await?.is_some(),
            A::RevokeSessions { .. } | A::ResetPassword { .. } => return Ok(None),
        };
        Ok(Some(holds))
    }

    /// Whether `id` is in the directory-object listing at `path`; a missing owner object (404)
    /// lists nothing.
    async fn listed(&self, path: &str, id: &str) -> Result<bool, ApplyError> {
        let mut found = false;
        match self
            .pages(&format!("{path}?$select=id&$top=999"), &[], |items| {
                found |= items.iter().any(|item| item["id"] == id);
            })
            .await
        {
            Ok(_) => Ok(found),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => Ok(false),
            Err(e) => Err(unreadable(e)),
        }
    }

    async fn eligible(&self, role: &str, principal: &str, scope: &str) -> Result<bool, ApplyError> {
        let path = format!("/roleManagement/directory/roleEligibilitySchedules?$filter=principalId eq '{principal}'");
        let mut found = false;
        self.pages(&path, &[], |items| {
            found |= items.iter().any(|i| i["roleDefinitionId"] == role && i["directoryScopeId"] == scope);
        })
        .await
        .map_err(unreadable)?;
        Ok(found)
    }

    /// `accountEnabled` of a live user; `None` when there is no such (live) user.
    async fn account_enabled(&self, user: &str) -> Result<Option<bool>, ApplyError> {
        match self.get(&format!("/users/{user}?$select=id,accountEnabled"), &[]).await {
            Ok(user) => Ok(Some(user["accountEnabled"].as_bool().unwrap_or(true))),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => Ok(None),
            Err(e) => Err(unreadable(e)),
        }
    }
}

fn unreadable(error: GraphError) -> ApplyError {
    ApplyError::Transient(format!("cannot read the change back: {error}"))
}
