//! Every change to the tenant goes through here: Graph's rules for each write (with its exact
//! error bodies), and the journal entry that makes the change show up in delta queries.
//! The write endpoints and `/_sim/mutate` both call these, so they cannot disagree.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use crate::error::GraphError;
use crate::journal::{Relation, What};
use crate::tenant::{AppRoleAssignment, Group, Kind, RoleAssignment, RoleEligibility, RoleKey, Tenant, User};

/// `appRoleId` meaning "assigned to the app without a specific role" (approleassignment.md).
pub const DEFAULT_ACCESS_ROLE: &str = "00000000-0000-0000-0000-000000000000";

/// The 400 Graph answers when an added reference already exists ([OBS] graph-facts §3).
fn already_exists(relation: Relation) -> GraphError {
    GraphError::bad_request(format!(
        "One or more added object references already exist for the following modified properties: '{}'.",
        relation.property()
    ))
}

/// [OBS] PIM's answers for assigning what is assigned and removing what is not; plain
/// `roleAssignments` answer the same class.
fn role_assignment_exists() -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "RoleAssignmentExists", "The Role assignment already exists.")
}

fn role_assignment_missing() -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
}

/// Which of a group's relationships a `$ref` write touches.
fn links_mut(group: &mut Group, relation: Relation) -> &mut Vec<String> {
    match relation {
        Relation::Owners => &mut group.owners,
        _ => &mut group.members,
    }
}

impl Tenant {
    fn group_index(&self, id: &str) -> Result<usize, GraphError> {
        match self.locate(id) {
            Some((Kind::Group, i)) if self.groups[i].deleted.is_none() => Ok(i),
            _ => Err(GraphError::not_found(id)),
        }
    }

    fn user_index(&self, id_or_upn: &str) -> Result<usize, GraphError> {
        let id = self.live_user(id_or_upn).map(|u| u.id.clone()).ok_or_else(|| GraphError::not_found(id_or_upn))?;
        match self.locate(&id) {
            Some((Kind::User, i)) => Ok(i),
            _ => Err(GraphError::not_found(id_or_upn)),
        }
    }

    fn service_principal_index(&self, id: &str) -> Result<usize, GraphError> {
        match self.locate(id) {
            Some((Kind::ServicePrincipal, i)) if self.service_principals[i].deleted.is_none() => Ok(i),
            _ => Err(GraphError::not_found(id)),
        }
    }

    /// Graph manages membership only of security and Microsoft 365 groups; mail-enabled
    /// security groups, distribution lists and dynamic groups are read-only (graph-facts §3).
    fn check_group_writable(&self, g: usize) -> Result<(), GraphError> {
        let group = &self.groups[g];
        if group.accepts_membership_writes() {
            return Ok(());
        }
        let unified = group.group_types.iter().any(|t| t == "Unified");
        if group.is_dynamic() || (group.mail_enabled && !unified) {
            return Err(GraphError::denied());
        }
        // What is left: the group is mastered on-premises ([OBS] Graph's answer for those).
        Err(GraphError::bad_request(
            "Unable to update the specified properties for objects that have originated within an external service.",
        ))
    }

    /// `POST /groups/{id}/members|owners/$ref`.
    pub fn add_group_link(&mut self, group_id: &str, relation: Relation, target: &str) -> Result<(), GraphError> {
        let g = self.group_index(group_id)?;
        let (kind, _) =
            self.locate(target).filter(|_| self.is_live(target)).ok_or_else(|| GraphError::not_found(target))?;
        self.check_group_writable(g)?;
        let group = &self.groups[g];
        let unified = group.group_types.iter().any(|t| t == "Unified");
        if relation == Relation::Members && unified && kind != Kind::User {
            // [INFER] wording; Microsoft 365 groups hold users only (groups-allowed-member-types).
            return Err(GraphError::bad_request(format!(
                "Microsoft 365 groups can only have users as members; '{target}' is not a user."
            )));
        }
        if relation == Relation::Owners && kind == Kind::Group {
            // [INFER] wording; owners are users or service principals.
            return Err(GraphError::bad_request("A group cannot be an owner of a group."));
        }
        if relation == Relation::Owners && group.owners.len() >= 100 {
            // [INFER] wording; the limit of 100 owners is documented.
            return Err(GraphError::bad_request("The group already has the maximum number of owners (100)."));
        }
        let links = links_mut(&mut self.groups[g], relation);
        if links.iter().any(|m| m == target) {
            return Err(already_exists(relation));
        }
        links.push(target.to_owned());
        let id = self.groups[g].id.clone();
        self.journal.record(Kind::Group, &id, What::Linked { relation, target: target.to_owned(), added: true });
        Ok(())
    }

    /// `DELETE /groups/{id}/members|owners/{target}/$ref`.
    pub fn remove_group_link(&mut self, group_id: &str, relation: Relation, target: &str) -> Result<(), GraphError> {
        let g = self.group_index(group_id)?;
        self.check_group_writable(g)?;
        let position = self.groups[g].owners.iter().position(|m| m == target);
        if relation == Relation::Owners && position.is_some() && self.groups[g].owners.len() == 1 {
            // [OBS] graph-facts §3.
            return Err(GraphError::bad_request(
                "The group must have at least one owner, hence this owner cannot be removed.",
            ));
        }
        let links = links_mut(&mut self.groups[g], relation);
        let Some(position) = links.iter().position(|m| m == target) else {
            return Err(GraphError::not_found(target));
        };
        links.remove(position);
        let id = self.groups[g].id.clone();
        self.journal.record(Kind::Group, &id, What::Linked { relation, target: target.to_owned(), added: false });
        Ok(())
    }

    /// `POST /servicePrincipals/{id}/owners/$ref`.
    pub fn add_app_owner(&mut self, sp_id: &str, target: &str) -> Result<(), GraphError> {
        let s = self.service_principal_index(sp_id)?;
        match self.locate(target) {
            Some((Kind::User | Kind::ServicePrincipal, _)) if self.is_live(target) => {}
            _ => return Err(GraphError::not_found(target)),
        }
        let sp = &mut self.service_principals[s];
        if sp.owners.iter().any(|o| o == target) {
            return Err(already_exists(Relation::Owners));
        }
        sp.owners.push(target.to_owned());
        let id = sp.id.clone();
        let what = What::Linked { relation: Relation::Owners, target: target.to_owned(), added: true };
        self.journal.record(Kind::ServicePrincipal, &id, what);
        Ok(())
    }

    /// `DELETE /servicePrincipals/{id}/owners/{target}/$ref`.
    pub fn remove_app_owner(&mut self, sp_id: &str, target: &str) -> Result<(), GraphError> {
        let s = self.service_principal_index(sp_id)?;
        let sp = &mut self.service_principals[s];
        let position = sp.owners.iter().position(|o| o == target).ok_or_else(|| GraphError::not_found(target))?;
        sp.owners.remove(position);
        let id = sp.id.clone();
        let what = What::Linked { relation: Relation::Owners, target: target.to_owned(), added: false };
        self.journal.record(Kind::ServicePrincipal, &id, what);
        Ok(())
    }

    /// `POST /servicePrincipals/{resource}/appRoleAssignedTo`. `id` is the new assignment's id.
    pub fn assign_app_role(
        &mut self,
        resource_id: &str,
        principal_id: &str,
        app_role_id: &str,
        id: String,
        now: DateTime<Utc>,
    ) -> Result<AppRoleAssignment, GraphError> {
        let r = self.service_principal_index(resource_id)?;
        let (kind, principal_name) = match self.locate(principal_id) {
            Some((Kind::User, i)) if self.is_live(principal_id) => ("User", self.users[i].display_name.clone()),
            Some((Kind::Group, i)) if self.is_live(principal_id) => ("Group", self.groups[i].display_name.clone()),
            Some((Kind::ServicePrincipal, i)) if self.is_live(principal_id) => {
                ("ServicePrincipal", self.service_principals[i].display_name.clone())
            }
            _ => return Err(GraphError::not_found(principal_id)),
        };
        let resource = &self.service_principals[r];
        if app_role_id != DEFAULT_ACCESS_ROLE && !resource.app_roles.iter().any(|role| role.id == app_role_id) {
            // [OBS] Graph's wording for an app role the resource does not define.
            return Err(GraphError::bad_request(format!(
                "Permission being assigned was not found on application '{}'.",
                resource.app_id
            )));
        }
        let duplicate = self
            .app_role_assignments
            .iter()
            .any(|a| a.resource_id == resource.id && a.principal_id == principal_id && a.app_role_id == app_role_id);
        if duplicate {
            // [OBS] Graph's wording for a repeated assignment.
            return Err(GraphError::bad_request("Permission being assigned already exists on the object"));
        }
        let assignment = AppRoleAssignment {
            id,
            app_role_id: app_role_id.to_owned(),
            principal_id: principal_id.to_owned(),
            principal_type: kind.to_owned(),
            principal_display_name: principal_name,
            resource_id: resource.id.clone(),
            resource_display_name: resource.display_name.clone(),
            created: now,
        };
        self.app_role_assignments.push(assignment.clone());
        Ok(assignment)
    }

    /// `DELETE /servicePrincipals/{resource}/appRoleAssignedTo/{id}`.
    pub fn remove_app_role_assignment(&mut self, resource_id: &str, id: &str) -> Result<(), GraphError> {
        self.service_principal_index(resource_id)?;
        let position = self
            .app_role_assignments
            .iter()
            .position(|a| a.id == id && a.resource_id == resource_id)
            .ok_or_else(|| GraphError::not_found(id))?;
        self.app_role_assignments.remove(position);
        Ok(())
    }

    fn check_role_target(&self, role_definition_id: &str, principal_id: &str) -> Result<(), GraphError> {
        if !self.role_definitions.iter().any(|d| d.id == role_definition_id) {
            return Err(GraphError::not_found(role_definition_id));
        }
        match self.locate(principal_id) {
            Some((Kind::Group, i)) if self.is_live(principal_id) => {
                if self.groups[i].is_assignable_to_role != Some(true) {
                    // [INFER] wording; only role-assignable groups can hold directory roles.
                    return Err(GraphError::bad_request(
                        "Only groups with isAssignableToRole set to true can be assigned to a directory role.",
                    ));
                }
                Ok(())
            }
            Some(_) if self.is_live(principal_id) => Ok(()),
            _ => Err(GraphError::not_found(principal_id)),
        }
    }

    /// `POST /roleManagement/directory/roleAssignments`, and PIM `adminAssign` (with an end).
    pub fn add_role_assignment(
        &mut self,
        (role, principal, scope): RoleKey,
        end: Option<DateTime<Utc>>,
        id: String,
    ) -> Result<RoleAssignment, GraphError> {
        self.check_role_target(role, principal)?;
        if self.role_assignments.iter().any(|a| a.key() == (role, principal, scope)) {
            return Err(role_assignment_exists());
        }
        let assignment = RoleAssignment {
            id,
            role_definition_id: role.to_owned(),
            principal_id: principal.to_owned(),
            directory_scope_id: scope.to_owned(),
            end,
        };
        self.role_assignments.push(assignment.clone());
        self.activated_roles.insert(role.to_owned());
        Ok(assignment)
    }

    /// Removes the role assignment with this id (`DELETE roleAssignments/{id}`).
    pub fn remove_role_assignment(&mut self, id: &str) -> Result<RoleAssignment, GraphError> {
        let position =
            self.role_assignments.iter().position(|a| a.id == id).ok_or_else(|| GraphError::not_found(id))?;
        Ok(self.role_assignments.remove(position))
    }

    /// PIM `adminRemove`: the assignment with this role, principal and scope.
    pub fn remove_role_assignment_for(&mut self, key: RoleKey) -> Result<RoleAssignment, GraphError> {
        let position = self.role_assignments.iter().position(|a| a.key() == key).ok_or_else(role_assignment_missing)?;
        Ok(self.role_assignments.remove(position))
    }

    /// PIM `adminAssign` on `roleEligibilityScheduleRequests`.
    pub fn add_role_eligibility(&mut self, eligibility: RoleEligibility) -> Result<(), GraphError> {
        self.check_role_target(&eligibility.role_definition_id, &eligibility.principal_id)?;
        if self.role_eligibilities.iter().any(|e| e.key() == eligibility.key()) {
            return Err(role_assignment_exists());
        }
        self.role_eligibilities.push(eligibility);
        Ok(())
    }

    /// PIM `adminRemove` on `roleEligibilityScheduleRequests`.
    pub fn remove_role_eligibility(&mut self, key: RoleKey) -> Result<RoleEligibility, GraphError> {
        let position =
            self.role_eligibilities.iter().position(|e| e.key() == key).ok_or_else(role_assignment_missing)?;
        Ok(self.role_eligibilities.remove(position))
    }

    /// Applies one changed user property and journals it when the value really changed.
    pub fn update_user(
        &mut self,
        id_or_upn: &str,
        change: impl FnOnce(&mut User) -> Vec<&'static str>,
    ) -> Result<(), GraphError> {
        let u = self.user_index(id_or_upn)?;
        let changed = change(&mut self.users[u]);
        let id = self.users[u].id.clone();
        for property in changed {
            self.journal.record(Kind::User, &id, What::Updated(property));
        }
        Ok(())
    }

    /// Applies changed group properties and journals them.
    pub fn update_group(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut Group) -> Vec<&'static str>,
    ) -> Result<(), GraphError> {
        let g = self.group_index(id)?;
        let changed = change(&mut self.groups[g]);
        let id = self.groups[g].id.clone();
        for property in changed {
            self.journal.record(Kind::Group, &id, What::Updated(property));
        }
        Ok(())
    }

    /// Journals the membership and ownership links of `id` as removed or added: a deleted
    /// object leaves its groups, a restored one comes back to them.
    fn journal_links_of(&mut self, id: &str, added: bool) {
        let mut changes = Vec::new();
        for group in self.groups.iter().filter(|g| g.deleted.is_none()) {
            for (relation, links) in [(Relation::Members, &group.members), (Relation::Owners, &group.owners)] {
                if links.iter().any(|m| m == id) {
                    changes.push((group.id.clone(), relation));
                }
            }
        }
        for (group, relation) in changes {
            self.journal.record(Kind::Group, &group, What::Linked { relation, target: id.to_owned(), added });
        }
    }

    /// `DELETE /users/{id}`: into deleted items for 30 days; memberships are hidden until a
    /// restore brings them back.
    pub fn delete_user(&mut self, id_or_upn: &str, now: DateTime<Utc>) -> Result<(), GraphError> {
        let u = self.user_index(id_or_upn)?;
        self.users[u].deleted = Some(now);
        let id = self.users[u].id.clone();
        self.journal.record(Kind::User, &id, What::Removed);
        self.journal_links_of(&id, false);
        Ok(())
    }

    /// `DELETE /groups/{id}`: Microsoft 365 groups go to deleted items; security groups are
    /// deleted permanently (directory-deleteditems-restore.md).
    pub fn delete_group(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), GraphError> {
        let g = self.group_index(id)?;
        self.groups[g].deleted = Some(now);
        let id = self.groups[g].id.clone();
        self.journal_links_of(&id, false);
        if self.groups[g].group_types.iter().any(|t| t == "Unified") {
            self.journal.record(Kind::Group, &id, What::Removed);
        } else {
            self.purge(&id, now);
        }
        Ok(())
    }

    /// `DELETE /servicePrincipals/{id}`: into deleted items.
    pub fn delete_service_principal(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), GraphError> {
        let s = self.service_principal_index(id)?;
        self.service_principals[s].deleted = Some(now);
        let id = self.service_principals[s].id.clone();
        self.journal.record(Kind::ServicePrincipal, &id, What::Removed);
        self.journal_links_of(&id, false);
        Ok(())
    }

    /// `POST /directory/deletedItems/{id}/restore`: the object as it was, memberships included.
    pub fn restore(&mut self, id: &str) -> Result<Kind, GraphError> {
        let (kind, i) = self.locate(id).ok_or_else(|| GraphError::not_found(id))?;
        let deleted = match kind {
            Kind::User => &mut self.users[i].deleted,
            Kind::Group => &mut self.groups[i].deleted,
            Kind::ServicePrincipal => &mut self.service_principals[i].deleted,
        };
        if deleted.take().is_none() {
            return Err(GraphError::not_found(id));
        }
        self.journal.record(kind, id, What::Created);
        self.journal_links_of(id, true);
        Ok(kind)
    }

    /// Permanent deletion: the object leaves every relationship and assignment and can no
    /// longer be found by id.
    pub fn purge(&mut self, id: &str, now: DateTime<Utc>) {
        let Some((kind, i)) = self.locate(id) else { return };
        let mark = |purged: &mut bool, deleted: &mut Option<DateTime<Utc>>| {
            *purged = true;
            deleted.get_or_insert(now);
        };
        match kind {
            Kind::User => {
                let o = &mut self.users[i];
                mark(&mut o.purged, &mut o.deleted);
            }
            Kind::Group => {
                let o = &mut self.groups[i];
                mark(&mut o.purged, &mut o.deleted);
            }
            Kind::ServicePrincipal => {
                let o = &mut self.service_principals[i];
                mark(&mut o.purged, &mut o.deleted);
            }
        }
        for group in &mut self.groups {
            group.members.retain(|m| m != id);
            group.owners.retain(|m| m != id);
        }
        for sp in &mut self.service_principals {
            sp.owners.retain(|m| m != id);
        }
        for user in &mut self.users {
            if user.manager.as_deref() == Some(id) {
                user.manager = None;
            }
        }
        self.app_role_assignments.retain(|a| a.principal_id != id && a.resource_id != id);
        self.role_assignments.retain(|a| a.principal_id != id);
        self.role_eligibilities.retain(|e| e.principal_id != id);
        self.index.remove(id);
        self.journal.record(kind, id, What::Purged);
    }

    /// Sets or clears a user's manager (`PUT|DELETE /users/{id}/manager/$ref`).
    pub fn set_manager(&mut self, id_or_upn: &str, manager: Option<&str>) -> Result<(), GraphError> {
        let u = self.user_index(id_or_upn)?;
        if let Some(m) = manager
            && (self.live_user(m).is_none() || m == self.users[u].id)
        {
            return Err(GraphError::not_found(m));
        }
        let id = self.users[u].id.clone();
        let old = std::mem::replace(&mut self.users[u].manager, manager.map(str::to_owned));
        if old.as_deref() == manager {
            return Ok(());
        }
        if let Some(old) = old {
            self.journal.record(
                Kind::User,
                &id,
                What::Linked { relation: Relation::Manager, target: old, added: false },
            );
        }
        if let Some(new) = manager {
            let what = What::Linked { relation: Relation::Manager, target: new.to_owned(), added: true };
            self.journal.record(Kind::User, &id, what);
        }
        Ok(())
    }

    /// Whether a role assignment or eligibility has reached its end by `now`.
    pub fn has_expired_schedules(&self, now: DateTime<Utc>) -> bool {
        self.role_assignments.iter().any(|a| a.end.is_some_and(|e| e <= now))
            || self.role_eligibilities.iter().any(|e| e.end.is_some_and(|e| e <= now))
    }

    /// Ends time-bound role assignments and eligibilities, as PIM does at their end time.
    pub fn expire_schedules(&mut self, now: DateTime<Utc>) {
        self.role_assignments.retain(|a| a.end.is_none_or(|e| e > now));
        self.role_eligibilities.retain(|e| e.end.is_none_or(|e| e > now));
    }

    /// Adds a new object and journals its creation.
    pub fn add_user(&mut self, user: User) {
        self.index.insert(user.id.clone(), (Kind::User, self.users.len()));
        self.journal.record(Kind::User, &user.id, What::Created);
        if let Some(manager) = &user.manager {
            let what = What::Linked { relation: Relation::Manager, target: manager.clone(), added: true };
            self.journal.record(Kind::User, &user.id, what);
        }
        self.users.push(user);
    }

    pub fn add_group(&mut self, group: Group) {
        self.index.insert(group.id.clone(), (Kind::Group, self.groups.len()));
        self.journal.record(Kind::Group, &group.id, What::Created);
        for (relation, links) in [(Relation::Members, &group.members), (Relation::Owners, &group.owners)] {
            for target in links {
                let what = What::Linked { relation, target: target.clone(), added: true };
                self.journal.record(Kind::Group, &group.id, what);
            }
        }
        self.groups.push(group);
    }
}
