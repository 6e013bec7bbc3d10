//! Applying a [`ChangeAction`] in Entra, and reading back whether it holds.
//!
//! Each action is one documented Graph write (graph-facts §3–§6). What Graph answers is sorted
//! into results, not errors, wherever the desired state already holds: "already a member" is
//! `already_in_state`, "not a member" or "no such assignment" on a removal is
//! `target_not_found`. Throttling, 5xx and broken connections are retried inside the client;
//! what is still failing afterwards is [`ApplyError::Transient`] and the queue tries again
//! later. Everything else is [`ApplyError::Permanent`], with a message that says what to do.

use attest_domain::{ApplyResult, ChangeAction};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

pub use attest_connector::{Applied, ApplyError, Secret};

use crate::{ApiErrorKind, GraphClient, GraphError};

/// The rule Entra's password policy enforces: 8–256 characters from at least three classes.
const PASSWORD_LENGTH: usize = 16;

impl GraphClient {
    /// Applies `action` once. Safe to repeat: a second application reports `already_in_state`
    /// or `target_not_found` and changes nothing.
    pub async fn apply(&self, action: &ChangeAction, now: DateTime<Utc>) -> Result<Applied, ApplyError> {
        use ChangeAction as A;
        match action {
            A::AddGroupMember { group, member } => self.add_group_link(group, "members", member).await,
            A::RemoveGroupMember { group, member } => self.remove_group_link(group, "members", member).await,
            A::AddGroupOwner { group, owner } => self.add_group_link(group, "owners", owner).await,
            A::RemoveGroupOwner { group, owner } => self.remove_group_link(group, "owners", owner).await,
            A::AssignAppRole { app, principal, app_role } => self.assign_app_role(app, principal, app_role).await,
            A::RemoveAppRoleAssignment { app, principal, app_role, assignment_id } => {
                self.remove_app_role_assignment(app, principal, app_role, assignment_id.as_deref()).await
            }
            A::AddAppOwner { app, owner } => {
                let body = json!({"@odata.id": self.object_url(owner)});
                let path = format!("/servicePrincipals/{app}/owners/$ref");
                self.write(Method::POST, &path, Some(&body), "add the application owner").await
            }
            A::RemoveAppOwner { app, owner } => {
                let path = format!("/servicePrincipals/{app}/owners/{owner}/$ref");
                self.write(Method::DELETE, &path, None, "remove the application owner").await
            }
            A::AddRoleAssignment { role, principal, scope } => self.add_role_assignment(role, principal, scope).await,
            A::RemoveRoleAssignment { role, principal, scope, assignment_id } => {
                self.remove_role_assignment(role, principal, scope, assignment_id.as_deref()).await
            }
            A::AddRoleEligibility { role, principal, scope, until } => {
                let request = ScheduleRequest { role, principal, scope, until: *until, now };
                self.schedule(Schedule::Eligibility, "adminAssign", request).await
            }
            A::RemoveRoleEligibility { role, principal, scope } => {
                let request = ScheduleRequest { role, principal, scope, until: None, now };
                self.schedule(Schedule::Eligibility, "adminRemove", request).await
            }
            // Without PIM (no licence), Attest assigns the role itself and its access sweep
            // removes it at the end: Entra then keeps no end of its own.
            A::AddTimeBoundRoleAssignment { role, principal, scope, until } => {
                let request = ScheduleRequest { role, principal, scope, until: Some(*until), now };
                match self.schedule(Schedule::Assignment, "adminAssign", request).await {
                    Err(ApplyError::NotSupported(_)) => {
                        let mut done = self.add_role_assignment(role, principal, scope).await?;
                        done.details["without_pim"] = true.into();
                        Ok(done)
                    }
                    other => other,
                }
            }
            A::RemoveTimeBoundRoleAssignment { role, principal, scope } => {
                let request = ScheduleRequest { role, principal, scope, until: None, now };
                match self.schedule(Schedule::Assignment, "adminRemove", request).await {
                    Err(ApplyError::NotSupported(_)) => self.remove_role_assignment(role, principal, scope, None).await,
                    other => other,
                }
            }
            A::RevokeSessions { user } => {
                let path = format!("/users/{user}/revokeSignInSessions");
                // Documented as 200 with `{"value": true}` though it "should" be 204: any 2xx is success.
                self.write(Method::POST, &path, None, "revoke the sign-in sessions").await
            }
            A::BlockSignIn { user } => self.set_account_enabled(user, false).await,
            A::UnblockSignIn { user } => self.set_account_enabled(user, true).await,
            A::ResetPassword { user } => self.reset_password(user).await,
            A::DeleteUser { user } => {
                self.write(Method::DELETE, &format!("/users/{user}"), None, "delete the user").await
            }
            A::RestoreUser { user } => self.restore_user(user).await,
        }
    }

    /// `https://graph.microsoft.com/v1.0/directoryObjects/{id}` in this client's cloud, as `$ref`
    /// bodies name objects.
    fn object_url(&self, id: &str) -> String {
        format!("{}/directoryObjects/{id}", self.base_url())
    }

    async fn add_group_link(&self, group: &str, relation: &str, target: &str) -> Result<Applied, ApplyError> {
        let body = json!({"@odata.id": self.object_url(target)});
        let path = format!("/groups/{group}/{relation}/$ref");
        match self.send_traced(Method::POST, &path, Some(&body), &[]).await {
            Ok((_, request_id)) => Ok(applied(ApplyResult::Applied, request_id, Value::Null)),
            Err(e) if e.kind() == Some(ApiErrorKind::AlreadyExists) => Ok(answered(ApplyResult::AlreadyInState, &e)),
            Err(e) => Err(self.explain_group_refusal(group, relation, e).await),
        }
    }

    async fn remove_group_link(&self, group: &str, relation: &str, target: &str) -> Result<Applied, ApplyError> {
        // Never without `/$ref`: that would delete the member object itself (graph-facts §3).
        let path = format!("/groups/{group}/{relation}/{target}/$ref");
        match self.send_traced(Method::DELETE, &path, None, &[]).await {
            Ok((_, request_id)) => Ok(applied(ApplyResult::Applied, request_id, Value::Null)),
            Err(e) if is_absent(&e) => Ok(answered(ApplyResult::TargetNotFound, &e)),
            Err(e) if e.kind() == Some(ApiErrorKind::LastOwner) => {
                Err(refused("this is the group's last owner: add another owner first, then remove this one", &e))
            }
            Err(e) => Err(self.explain_group_refusal(group, relation, e).await),
        }
    }

    /// Turns a refused group write into what to do about it, looking at the group to tell the
    /// causes of Graph's one 403 apart (graph-facts §3).
    async fn explain_group_refusal(&self, group: &str, relation: &str, error: GraphError) -> ApplyError {
        if let Some(transient) = transient(&error) {
            return transient;
        }
        match error.kind() {
            Some(ApiErrorKind::ExternallyMastered) => {
                return refused(
                    "the group is synchronised from on-premises Active Directory: change its membership there",
                    &error,
                );
            }
            Some(ApiErrorKind::NotFound) => {
                return refused("the group or the principal does not exist in the directory", &error);
            }
            // A 403, whose causes only the group itself tells apart: read on.
            Some(ApiErrorKind::Denied | ApiErrorKind::LicenceRequired) => {}
            _ => return refused("Graph refused the change", &error),
        }
        let path = format!(
            "/groups/{group}?$select=id,displayName,groupTypes,mailEnabled,securityEnabled,isAssignableToRole,membershipRule"
        );
        let Ok(g) = self.get(&path, &[]).await else {
            return refused("Graph refused the change (403)", &error);
        };
        let name = g["displayName"].as_str().unwrap_or(group);
        let types: Vec<&str> = g["groupTypes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let unified = types.contains(&"Unified");
        let reason = if types.contains(&"DynamicMembership") {
            format!(
                "'{name}' is a dynamic group: its members follow the rule `{}`; change the rule or the person's attributes instead",
                g["membershipRule"].as_str().unwrap_or("?")
            )
        } else if g["mailEnabled"].as_bool() == Some(true) && !unified {
            format!(
                "'{name}' is a distribution list or mail-enabled security group, which Graph cannot change: manage it in Exchange Online"
            )
        } else if g["isAssignableToRole"].as_bool() == Some(true) {
            format!(
                "'{name}' can hold directory roles, so changing it also needs the application permission RoleManagement.ReadWrite.Directory: grant it and consent again"
            )
        } else if relation == "owners" {
            "the app lacks the application permission Group.ReadWrite.All: grant it and consent again".to_owned()
        } else {
            "the app lacks the application permission GroupMember.ReadWrite.All: grant it and consent again".to_owned()
        };
        refused(reason, &error)
    }

    async fn assign_app_role(&self, app: &str, principal: &str, app_role: &str) -> Result<Applied, ApplyError> {
        let body = json!({"principalId": principal, "resourceId": app, "appRoleId": app_role});
        let path = format!("/servicePrincipals/{app}/appRoleAssignedTo");
        match self.send_traced(Method::POST, &path, Some(&body), &[]).await {
            Ok((created, request_id)) => {
                Ok(applied(ApplyResult::Applied, request_id, json!({"assignment_id": created["id"]})))
            }
            Err(e) if e.kind() == Some(ApiErrorKind::AlreadyExists) => Ok(answered(ApplyResult::AlreadyInState, &e)),
            Err(e) => Err(classify(e, "assign the application role")),
        }
    }

    async fn remove_app_role_assignment(
        &self,
        app: &str,
        principal: &str,
        app_role: &str,
        assignment_id: Option<&str>,
    ) -> Result<Applied, ApplyError> {
        let id = match assignment_id {
            Some(id) => id.to_owned(),
            None => match self.find_app_role_assignment(app, principal, app_role).await? {
                Some(id) => id,
                None => return Ok(applied(ApplyResult::TargetNotFound, String::new(), Value::Null)),
            },
        };
        let path = format!("/servicePrincipals/{app}/appRoleAssignedTo/{id}");
        match self.send_traced(Method::DELETE, &path, None, &[]).await {
            Ok((_, request_id)) => Ok(applied(ApplyResult::Applied, request_id, json!({"assignment_id": id}))),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => Ok(answered(ApplyResult::TargetNotFound, &e)),
            Err(e) => Err(classify(e, "remove the application role assignment")),
        }
    }

    /// The id of `principal`'s assignment to `app_role` of `app`, by listing the app's assignments.
    pub(crate) async fn find_app_role_assignment(
        &self,
        app: &str,
        principal: &str,
        app_role: &str,
    ) -> Result<Option<String>, ApplyError> {
        let mut found = None;
        let path = format!("/servicePrincipals/{app}/appRoleAssignedTo?$select=id,principalId,appRoleId&$top=999");
        let listed = self
            .pages(&path, &[], |items| {
                for item in items {
                    if item["principalId"] == principal && item["appRoleId"] == app_role {
                        found = item["id"].as_str().map(str::to_owned);
                    }
                }
            })
            .await;
        match listed {
            Ok(_) => Ok(found),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => Ok(None),
            Err(e) => Err(classify(e, "list the application's role assignments")),
        }
    }

    /// A permanent active assignment (`POST roleAssignments`), its id in the details.
    async fn add_role_assignment(&self, role: &str, principal: &str, scope: &str) -> Result<Applied, ApplyError> {
        let body = json!({
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "roleDefinitionId": role,
            "principalId": principal,
            "directoryScopeId": scope,
        });
        let path = "/roleManagement/directory/roleAssignments";
        let mut applied = self.write(Method::POST, path, Some(&body), "assign the directory role").await?;
        applied.details = json!({"assignment_id": applied.details["id"]});
        Ok(applied)
    }

    async fn remove_role_assignment(
        &self,
        role: &str,
        principal: &str,
        scope: &str,
        assignment_id: Option<&str>,
    ) -> Result<Applied, ApplyError> {
        let id = match assignment_id {
            Some(id) => id.to_owned(),
            None => match self.find_role_assignment(role, principal, scope).await? {
                Some(id) => id,
                None => return Ok(applied(ApplyResult::TargetNotFound, String::new(), Value::Null)),
            },
        };
        let path = format!("/roleManagement/directory/roleAssignments/{id}");
        match self.send_traced(Method::DELETE, &path, None, &[]).await {
            Ok((_, request_id)) => Ok(applied(ApplyResult::Applied, request_id, json!({"assignment_id": id}))),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => Ok(answered(ApplyResult::TargetNotFound, &e)),
            Err(e) => Err(classify(e, "remove the directory role assignment")),
        }
    }

    /// The id of the active assignment of `role` to `principal` at `scope`.
    pub(crate) async fn find_role_assignment(
        &self,
        role: &str,
        principal: &str,
        scope: &str,
    ) -> Result<Option<String>, ApplyError> {
        let path = format!("/roleManagement/directory/roleAssignments?$filter=principalId eq '{principal}'");
        let mut found = None;
        self.pages(&path, &[], |items| {
            for item in items {
                if item["roleDefinitionId"] == role && item["directoryScopeId"] == scope {
                    found = item["id"].as_str().map(str::to_owned);
                }
            }
        })
        .await
        .map_err(|e| classify(e, "list the directory role assignments"))?;
        Ok(found)
    }

    async fn schedule(&self, schedule: Schedule, action: &str, r: ScheduleRequest<'_>) -> Result<Applied, ApplyError> {
        let expiration = match r.until {
            Some(until) => {
                json!({"type": "afterDateTime", "endDateTime": until.to_rfc3339_opts(SecondsFormat::Secs, true)})
            }
            None => json!({"type": "noExpiration"}),
        };
        let body = json!({
            "action": action,
            "principalId": r.principal,
            "roleDefinitionId": r.role,
            "directoryScopeId": r.scope,
            "justification": "Requested through Attest",
            "scheduleInfo": {"startDateTime": r.now.to_rfc3339_opts(SecondsFormat::Secs, true), "expiration": expiration},
        });
        let path = match schedule {
            Schedule::Eligibility => "/roleManagement/directory/roleEligibilityScheduleRequests",
            Schedule::Assignment => "/roleManagement/directory/roleAssignmentScheduleRequests",
        };
        match self.send_traced(Method::POST, path, Some(&body), &[]).await {
            Ok((request, request_id)) => Ok(applied(
                ApplyResult::Applied,
                request_id,
                json!({"schedule_request_id": request["id"], "status": request["status"]}),
            )),
            Err(e) if e.kind() == Some(ApiErrorKind::AlreadyExists) => Ok(answered(ApplyResult::AlreadyInState, &e)),
            Err(e) if e.kind() == Some(ApiErrorKind::AlreadyAbsent) => Ok(answered(ApplyResult::TargetNotFound, &e)),
            Err(e) if e.kind() == Some(ApiErrorKind::LicenceRequired) => Err(ApplyError::NotSupported(format!(
                "the tenant has no Microsoft Entra ID P2 or Governance licence, which PIM needs: {e}"
            ))),
            Err(e) => Err(classify(e, "send the PIM schedule request")),
        }
    }

    async fn set_account_enabled(&self, user: &str, enabled: bool) -> Result<Applied, ApplyError> {
        let current = match self.get(&format!("/users/{user}?$select=id,accountEnabled"), &[]).await {
            Ok(u) => u["accountEnabled"].as_bool(),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => {
                return Err(refused("the user does not exist (deleted?)", &e));
            }
            Err(e) => return Err(classify(e, "read the user")),
        };
        if current == Some(enabled) {
            return Ok(applied(ApplyResult::AlreadyInState, String::new(), json!({"account_enabled": enabled})));
        }
        let body = json!({"accountEnabled": enabled});
        let what = if enabled { "unblock sign-in" } else { "block sign-in" };
        let mut done = self.write(Method::PATCH, &format!("/users/{user}"), Some(&body), what).await?;
        done.details = json!({"account_enabled": enabled});
        Ok(done)
    }

    async fn reset_password(&self, user: &str) -> Result<Applied, ApplyError> {
        let password = temporary_password().map_err(ApplyError::Transient)?;
        let body = json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": password}});
        match self.send_traced(Method::PATCH, &format!("/users/{user}"), Some(&body), &[]).await {
            Ok((_, request_id)) => Ok(Applied {
                result: ApplyResult::Applied,
                request_id: Some(request_id),
                details: json!({"force_change_password_next_sign_in": true}),
                secret: Some(Secret::new(password)),
            }),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => {
                Err(refused("the user does not exist (deleted?)", &e))
            }
            Err(e) if is_forbidden(&e) => Err(refused(
                "the app lacks User-PasswordProfile.ReadWrite.All, or the user is an administrator (only a Privileged Authentication Administrator can reset theirs)",
                &e,
            )),
            Err(e) => Err(classify(e, "reset the password")),
        }
    }

    async fn restore_user(&self, user: &str) -> Result<Applied, ApplyError> {
        let path = format!("/directory/deletedItems/{user}/restore");
        match self.send_traced(Method::POST, &path, None, &[]).await {
            Ok((_, request_id)) => Ok(applied(ApplyResult::Applied, request_id, Value::Null)),
            Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => {
                match self.get(&format!("/users/{user}?$select=id"), &[]).await {
                    Ok(_) => Ok(answered(ApplyResult::AlreadyInState, &e)),
                    Err(_) => Err(refused(
                        "the user is not in the recycle bin: deleted users are kept 30 days, then purged",
                        &e,
                    )),
                }
            }
            Err(e) => Err(classify(e, "restore the user")),
        }
    }

    /// A write whose idempotency signals are Graph's own answers: what is there already is
    /// `already_in_state`, what is not there (404 included) `target_not_found`.
    async fn write(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Applied, ApplyError> {
        match self.send_traced(method, path, body, &[]).await {
            Ok((answer, request_id)) => Ok(applied(ApplyResult::Applied, request_id, answer)),
            Err(e) if e.kind() == Some(ApiErrorKind::AlreadyExists) => Ok(answered(ApplyResult::AlreadyInState, &e)),
            Err(e) if is_absent(&e) => Ok(answered(ApplyResult::TargetNotFound, &e)),
            Err(e) => Err(classify(e, what)),
        }
    }
}

enum Schedule {
    Eligibility,
    Assignment,
}

struct ScheduleRequest<'a> {
    role: &'a str,
    principal: &'a str,
    scope: &'a str,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
}

fn applied(result: ApplyResult, request_id: String, details: Value) -> Applied {
    let request_id = (!request_id.is_empty()).then_some(request_id);
    Applied { result, request_id, details, secret: None }
}

/// A result Graph gave as an error answer (already a member, no such link).
fn answered(result: ApplyResult, error: &GraphError) -> Applied {
    let request_id = error.request_id().unwrap_or_default().to_owned();
    applied(result, request_id, json!({"graph_said": error.to_string()}))
}

/// Graph's answers for removing what is not there: 404, or the 400 variant (graph-facts §3).
fn is_absent(error: &GraphError) -> bool {
    matches!(error.kind(), Some(ApiErrorKind::NotFound | ApiErrorKind::AlreadyAbsent))
}

/// A 403 of either kind: a missing permission, a protected target or a licence.
fn is_forbidden(error: &GraphError) -> bool {
    matches!(error.kind(), Some(ApiErrorKind::Denied | ApiErrorKind::LicenceRequired))
}

/// Errors that a later attempt may get past.
fn transient(error: &GraphError) -> Option<ApplyError> {
    match error {
        GraphError::Exhausted { .. } | GraphError::Malformed(_) => Some(ApplyError::Transient(error.to_string())),
        GraphError::Auth(auth) if auth.is_transient() => Some(ApplyError::Transient(error.to_string())),
        GraphError::Auth(auth) if auth.owner_must_act() => Some(ApplyError::Unauthorized(error.to_string())),
        _ => None,
    }
}

/// A permanent refusal: what to do, then what Graph said.
fn refused(message: impl Into<String>, error: &GraphError) -> ApplyError {
    let request_id = error.request_id().map(str::to_owned);
    ApplyError::Permanent { message: format!("{}: {error}", message.into()), request_id }
}

fn classify(error: GraphError, what: &str) -> ApplyError {
    if let Some(transient) = transient(&error) {
        return transient;
    }
    match error.kind() {
        Some(ApiErrorKind::Denied | ApiErrorKind::LicenceRequired) => refused(
            format!(
                "Graph refused to {what}: the app lacks the permission (run `attest connector check`), or the target is protected"
            ),
            &error,
        ),
        Some(ApiErrorKind::NotFound) => refused(format!("cannot {what}: an object it names does not exist"), &error),
        _ => refused(format!("cannot {what}"), &error),
    }
}

/// A random password Entra accepts: 16 characters with lower and upper case, digits and symbols.
fn temporary_password() -> Result<String, String> {
    use ring::rand::{SecureRandom, SystemRandom};
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#%+-=?@";
    let mut bytes = [0u8; PASSWORD_LENGTH];
    SystemRandom::new().fill(&mut bytes).map_err(|_| "the system's random generator failed".to_owned())?;
    let classes = [LOWER, UPPER, DIGITS, SYMBOLS];
    // The first four characters take one of each class; the rest draw from all of them.
    let all: Vec<u8> = classes.concat();
    let password: String = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let set = classes.get(i).copied().unwrap_or(&all);
            set[usize::from(*b) % set.len()] as char
        })
        .collect();
    Ok(password)
}

#[cfg(test)]
mod tests {
    #[test]
    fn temporary_passwords_meet_entras_complexity_and_differ() {
        let a = super::temporary_password().unwrap();
        let b = super::temporary_password().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), super::PASSWORD_LENGTH);
        assert!(a.chars().any(|c| c.is_ascii_lowercase()) && a.chars().any(|c| c.is_ascii_uppercase()));
        assert!(a.chars().any(|c| c.is_ascii_digit()) && a.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert_eq!(format!("{:?}", super::Secret::new(a.clone())), "Secret(redacted)");
    }
}
