//! Full and delta sync of an Entra tenant into the entitlement graph.
//!
//! What is read, and why this way (figures in the README):
//! - **Users** through `users/delta` with `manager` tracked: one pass gives every user, their
//!   manager and the delta link (a listing would need one more request per user for managers).
//!   Sign-in activity is not tracked by delta; a full sync reads it from `/users` (500 per
//!   page, the documented maximum with `signInActivity`), and skips it with a note when the
//!   tenant has no Entra ID P1/P2 licence or the app lacks `AuditLog.Read.All`.
//! - **Service principals** through `servicePrincipals/delta` with `owners`: principals typed by
//!   `servicePrincipalType`; enterprise applications (not Microsoft's own, by default) are
//!   also resources with `owner`, default access and one entitlement per app role.
//! - **Groups** through `groups/delta` with `members` and `owners`: every membership in the
//!   tenant arrives in a few hundred pages, where walking `/groups/{id}/members` costs at least
//!   one request (3 resource units) per group. A large group spans pages; its links are
//!   applied page by page, in order.
//! - **App role assignments** have no delta: each application's `appRoleAssignedTo` is listed,
//!   20 applications per `$batch`, a few batches at a time. A delta sync re-reads them when the
//!   last read is older than `app_assignments_refresh_minutes`.
//! - **Directory roles**: role definitions, active assignments and PIM eligibility schedules
//!   are re-read on every sync (a few pages); PIM is skipped with a note without a licence.
//!
//! A delta sync starts from the delta links the last successful sync stored. Graph answers
//! 410 (or `syncStateNotFound` / `resyncRequired`) when they expired or were reset; that
//! becomes [`SyncError::ResyncRequired`] and the runner falls back to a full sync.

mod canonical;
mod objects;
pub mod settings;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use attest_connector::{Connector, ObservedGrant, SyncError, SyncSink};
use attest_domain::{ConnectorKind, EntitlementKey, PrincipalData, ResourceKind, SyncMode};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

pub use canonical::canonical_lines;
pub use objects::{GROUP_SELECT, SERVICE_PRINCIPAL_SELECT, USER_SELECT};
pub use settings::{EntraSettings, FIRST_PARTY_TENANTS, Scope};

use crate::auth::AuthError;
use crate::graph::{ApiErrorKind, BATCH_LIMIT, GraphClient, GraphError};
use objects::{GroupScope, is_removed, links, text};

/// Pages fetched ahead of the one being written.
const PREFETCH_PAGES: usize = 16;
/// `$batch` requests in flight at once when listing application role assignments.
const CONCURRENT_BATCHES: usize = 4;
/// The cursor under which the time of the last full read of app role assignments is kept.
const APP_ASSIGNMENTS_READ: &str = "appRoleAssignedTo";

/// The Microsoft Entra connector.
pub struct EntraConnector {
    client: Arc<GraphClient>,
    settings: EntraSettings,
}

impl EntraConnector {
    pub fn new(client: GraphClient, settings: EntraSettings) -> EntraConnector {
        EntraConnector { client: Arc::new(client), settings }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    pub fn settings(&self) -> &EntraSettings {
        &self.settings
    }

    async fn read(&self, mode: SyncMode, sink: &mut SyncSink) -> Result<(), SyncError> {
        let full = mode == SyncMode::Full;
        // Start every delta round at once: each fetches a few pages ahead while the one
        // before it is written.
        let users = self.delta_round(sink, "users", USER_SELECT, full)?;
        let service_principals = self.delta_round(sink, "servicePrincipals", SERVICE_PRINCIPAL_SELECT, full)?;
        let groups = self.delta_round(sink, "groups", GROUP_SELECT, full)?;
        let sign_ins = if full { Some(self.read_sign_ins(sink).await?) } else { None };
        self.sync_users(sink, users, full, sign_ins.flatten()).await?;
        self.sync_service_principals(sink, service_principals, full).await?;
        self.sync_groups(sink, groups).await?;
        self.sync_app_assignments(sink, full).await?;
        self.sync_roles(sink).await?;
        Ok(())
    }

    /// Starts a delta round for `collection` and returns its pages as they arrive: from the
    /// beginning for a full sync, from the stored delta link otherwise.
    fn delta_round(
        &self,
        sink: &SyncSink,
        collection: &'static str,
        select: &str,
        full: bool,
    ) -> Result<mpsc::Receiver<Result<Value, GraphError>>, SyncError> {
        let first = if full {
            format!("/{collection}/delta?$select={select}")
        } else {
            sink.cursor(collection)
                .ok_or_else(|| SyncError::ResyncRequired(format!("no delta link is stored for {collection}")))?
                .to_owned()
        };
        let (tx, rx) = mpsc::channel(PREFETCH_PAGES);
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut url = first;
            loop {
                let page = client.get(&url, &[]).await;
                let next = page.as_ref().ok().and_then(|p| p.get("@odata.nextLink")).and_then(Value::as_str);
                let next = next.map(str::to_owned);
                let failed = page.is_err();
                if tx.send(page).await.is_err() || failed {
                    return;
                }
                match next {
                    Some(next) => url = next,
                    None => return,
                }
            }
        });
        Ok(rx)
    }

    /// Takes the next page of a round: its items, and its delta link when it is the last.
    async fn next_page(
        rx: &mut mpsc::Receiver<Result<Value, GraphError>>,
        collection: &str,
    ) -> Result<Option<(Vec<Value>, Option<String>)>, SyncError> {
        let Some(page) = rx.recv().await else { return Ok(None) };
        let mut page = page.map_err(|e| sync_error(e, collection))?;
        let items = match page.get_mut("value").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => return Err(SyncError::Directory(format!("a page of {collection} has no `value` array"))),
        };
        let delta_link = page.get("@odata.deltaLink").and_then(Value::as_str).map(str::to_owned);
        if delta_link.is_none() && page.get("@odata.nextLink").is_none() {
            return Err(SyncError::Directory(format!("a page of {collection} has neither a nextLink nor a deltaLink")));
        }
        Ok(Some((items, delta_link)))
    }

    /// Last sign-in per user id, or `None` (with a note) when the tenant or the app cannot
    /// read sign-in activity.
    async fn read_sign_ins(&self, sink: &mut SyncSink) -> Result<Option<HashMap<String, DateTime<Utc>>>, SyncError> {
        let mut last = HashMap::new();
        let result = self
            .client
            .pages("/users?$select=id,signInActivity&$top=500", &[], |items| {
                for item in items {
                    if let (Some(id), Some(at)) = (text(&item, "id"), objects::last_sign_in(&item)) {
                        last.insert(id, at);
                    }
                }
            })
            .await;
        match result {
            Ok(_) => Ok(Some(last)),
            Err(e) if e.kind() == Some(ApiErrorKind::LicenceRequired) => {
                sink.note(format!(
                    "{}: the tenant has no Microsoft Entra ID P1 or P2 licence",
                    attest_domain::sync::SIGN_IN_ACTIVITY_SKIPPED
                ));
                Ok(None)
            }
            Err(e) if e.kind() == Some(ApiErrorKind::Denied) => {
                sink.note(format!(
                    "{}: the app lacks the AuditLog.Read.All permission ({e})",
                    attest_domain::sync::SIGN_IN_ACTIVITY_SKIPPED
                ));
                Ok(None)
            }
            Err(e) => Err(sync_error(e, "users' sign-in activity")),
        }
    }

    async fn sync_users(
        &self,
        sink: &mut SyncSink,
        mut pages: mpsc::Receiver<Result<Value, GraphError>>,
        full: bool,
        sign_ins: Option<HashMap<String, DateTime<Utc>>>,
    ) -> Result<(), SyncError> {
        while let Some((items, delta_link)) = Self::next_page(&mut pages, "users").await? {
            let mut gone = Vec::new();
            let mut rows: Vec<(PrincipalData, Option<Option<String>>)> = Vec::with_capacity(items.len());
            for item in &items {
                let Some(id) = text(item, "id") else { continue };
                match (is_removed(item), objects::user(item, &self.settings.scope)) {
                    (false, Some(user)) => rows.push((user, objects::manager(item))),
                    // Deleted, or outside the scope.
                    _ => gone.push(id),
                }
            }
            // Merge what the page does not say: an unchanged manager (delta), and the last
            // sign-in when it was not read this time.
            let need_stored = !full || sign_ins.is_none();
            let stored = if need_stored {
                let ids: Vec<String> = rows.iter().map(|(p, _)| p.external_id.clone()).collect();
                sink.store().syncs().find_principals_by_external_ids(sink.connector(), &ids).await?
            } else {
                HashMap::new()
            };
            let principals: Vec<PrincipalData> = rows
                .into_iter()
                .map(|(mut p, manager)| {
                    let before = stored.get(&p.external_id);
                    p.manager_external_id = match manager {
                        Some(manager) => manager,
                        None if full => None,
                        None => before.and_then(|b| b.manager_external_id.clone()),
                    };
                    p.last_sign_in_at = match &sign_ins {
                        Some(map) => map.get(&p.external_id).copied(),
                        None => before.and_then(|b| b.last_sign_in_at),
                    };
                    p
                })
                .collect();
            sink.remove_principals(&gone).await?;
            sink.put_principals(&principals).await?;
            if let Some(link) = delta_link {
                sink.set_cursor("users", link);
            }
        }
        Ok(())
    }

    async fn sync_service_principals(
        &self,
        sink: &mut SyncSink,
        mut pages: mpsc::Receiver<Result<Value, GraphError>>,
        full: bool,
    ) -> Result<(), SyncError> {
        let scope = &self.settings.scope;
        while let Some((items, delta_link)) = Self::next_page(&mut pages, "servicePrincipals").await? {
            let (mut gone, mut not_apps) = (Vec::new(), Vec::new());
            let (mut principals, mut resources, mut entitlements) = (Vec::new(), Vec::new(), Vec::new());
            let mut apps: Vec<(String, Vec<EntitlementKey>)> = Vec::new();
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            for item in &items {
                let Some(id) = text(item, "id") else { continue };
                let Some((principal, app)) = objects::service_principal(item, scope).filter(|_| !is_removed(item))
                else {
                    gone.push(id);
                    continue;
                };
                principals.push(principal);
                let Some((resource, offered)) = app else {
                    not_apps.push(id);
                    continue;
                };
                apps.push((id.clone(), offered.iter().map(|e| e.key.clone()).collect()));
                resources.push(resource);
                entitlements.extend(offered);
                for (target, is_added) in latest_links(links(item, "owners")) {
                    let grant = grant(ResourceKind::Application, &id, EntitlementKey::Owner, target);
                    if is_added { added.push(grant) } else { removed.push(grant) }
                }
            }
            sink.remove_resources(ResourceKind::Application, &gone).await?;
            sink.remove_principals(&gone).await?;
            sink.put_principals(&principals).await?;
            if !full {
                // No longer an application in scope (its type or owner changed, or the scope did).
                sink.remove_resources(ResourceKind::Application, &not_apps).await?;
            }
            sink.put_resources(&resources).await?;
            sink.put_entitlements(&entitlements).await?;
            if !full {
                for (id, keys) in &apps {
                    sink.retain_entitlements(ResourceKind::Application, id, keys).await?;
                }
            }
            sink.remove_grants(&removed).await?;
            sink.put_grants(&added).await?;
            if let Some(link) = delta_link {
                sink.set_cursor("servicePrincipals", link);
            }
        }
        Ok(())
    }

    async fn sync_groups(
        &self,
        sink: &mut SyncSink,
        mut pages: mpsc::Receiver<Result<Value, GraphError>>,
    ) -> Result<(), SyncError> {
        let scope = &self.settings.scope;
        while let Some((items, delta_link)) = Self::next_page(&mut pages, "groups").await? {
            let (mut gone, mut not_resources) = (Vec::new(), Vec::new());
            let (mut principals, mut resources, mut entitlements) = (Vec::new(), Vec::new(), Vec::new());
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            for item in &items {
                let Some(id) = text(item, "id") else { continue };
                let in_scope = if is_removed(item) { GroupScope::Excluded } else { objects::group_scope(item, scope) };
                let Some((principal, resource)) = objects::group(item).filter(|_| in_scope != GroupScope::Excluded)
                else {
                    gone.push(id);
                    continue;
                };
                principals.push(principal);
                if in_scope == GroupScope::PrincipalOnly {
                    not_resources.push(id);
                    continue;
                }
                resources.push(resource);
                entitlements.extend(objects::group_entitlements(&id));
                for (relation, key) in [("members", EntitlementKey::Member), ("owners", EntitlementKey::Owner)] {
                    for (target, is_added) in latest_links(links(item, relation)) {
                        let grant = grant(ResourceKind::Group, &id, key.clone(), target);
                        if is_added { added.push(grant) } else { removed.push(grant) }
                    }
                }
            }
            sink.remove_resources(ResourceKind::Group, &gone).await?;
            sink.remove_principals(&gone).await?;
            sink.remove_resources(ResourceKind::Group, &not_resources).await?;
            sink.put_principals(&principals).await?;
            sink.put_resources(&resources).await?;
            sink.put_entitlements(&entitlements).await?;
            sink.remove_grants(&removed).await?;
            sink.put_grants(&added).await?;
            if let Some(link) = delta_link {
                sink.set_cursor("groups", link);
            }
        }
        Ok(())
    }

    /// Lists every application's role assignments (Graph has no delta for them) when a full
    /// sync runs or the last read is older than the refresh interval.
    async fn sync_app_assignments(&self, sink: &mut SyncSink, full: bool) -> Result<(), SyncError> {
        // The run's own time: when it began, by the clock that began it.
        let now = sink.run().started_at;
        let interval = chrono::Duration::minutes(i64::from(self.settings.app_assignments_refresh_minutes));
        let last_read = sink.cursor(APP_ASSIGNMENTS_READ).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if !full && let Some(last) = last_read.filter(|last| now - last.with_timezone(&Utc) < interval) {
            let due = last.with_timezone(&Utc) + interval;
            let due = due.format("%Y-%m-%d %H:%M UTC");
            sink.note(format!("application role assignments were not re-read (next read due after {due})"));
            return Ok(());
        }
        let apps: Vec<String> = sink
            .store()
            .resources()
            .list_resources(sink.connector(), Some(ResourceKind::Application))
            .await?
            .into_iter()
            .filter(|r| r.data.deleted_at.is_none())
            .map(|r| r.data.external_id)
            .collect();
        let mut pending: Vec<(String, String)> = apps
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    format!("/servicePrincipals/{id}/appRoleAssignedTo?$select=id,appRoleId,principalId&$top=999"),
                )
            })
            .collect();
        while !pending.is_empty() {
            let mut next = Vec::new();
            let mut tasks = tokio::task::JoinSet::new();
            let mut chunks = pending.chunks(BATCH_LIMIT).map(<[_]>::to_vec).collect::<Vec<_>>().into_iter();
            loop {
                while tasks.len() < CONCURRENT_BATCHES
                    && let Some(chunk) = chunks.next()
                {
                    let client = self.client.clone();
                    tasks.spawn(async move {
                        let paths: Vec<String> = chunk.iter().map(|(_, path)| path.clone()).collect();
                        let answers = client.get_batch(&paths).await;
                        chunk.into_iter().map(|(app, _)| app).zip(answers).collect::<Vec<_>>()
                    });
                }
                let Some(done) = tasks.join_next().await else { break };
                let done = done.map_err(|e| SyncError::Directory(format!("a batch task failed: {e}")))?;
                let mut grants = Vec::new();
                for (app, answer) in done {
                    let page = match answer {
                        Ok(page) => page,
                        // Deleted since it was listed: the next service principal delta says so.
                        Err(e) if e.kind() == Some(ApiErrorKind::NotFound) => continue,
                        Err(e) => return Err(sync_error(e, "application role assignments")),
                    };
                    for item in page.get("value").and_then(Value::as_array).into_iter().flatten() {
                        let (Some(role), Some(principal)) = (text(item, "appRoleId"), text(item, "principalId")) else {
                            continue;
                        };
                        let mut g = grant(ResourceKind::Application, &app, EntitlementKey::AppRole(role), principal);
                        g.external_ref = text(item, "id");
                        grants.push(g);
                    }
                    if let Some(link) = page.get("@odata.nextLink").and_then(Value::as_str) {
                        next.push((app, link.to_owned()));
                    }
                }
                sink.put_grants(&grants).await?;
            }
            pending = next;
        }
        sink.snapshot_grants_of("role:%");
        sink.set_cursor(APP_ASSIGNMENTS_READ, now.to_rfc3339());
        Ok(())
    }

    /// Role definitions, active role assignments and PIM eligibilities: small collections,
    /// re-read completely every time.
    async fn sync_roles(&self, sink: &mut SyncSink) -> Result<(), SyncError> {
        let mut resources = Vec::new();
        let mut entitlements = Vec::new();
        let read = self
            .client
            .pages(
                "/roleManagement/directory/roleDefinitions?$select=id,displayName,description,isBuiltIn,templateId",
                &[],
                |items| {
                    for item in items {
                        if let Some((resource, offered)) = objects::role_definition(&item) {
                            resources.push(resource);
                            entitlements.extend(offered);
                        }
                    }
                },
            )
            .await;
        if let Err(e) = read {
            if is_forbidden(&e) {
                sink.note(format!("directory roles skipped: the app lacks RoleManagement.Read.Directory ({e})"));
                sink.could_not_read_resources(ResourceKind::DirectoryRole, &["active", "eligible"]);
                return Ok(());
            }
            return Err(sync_error(e, "role definitions"));
        }
        sink.put_resources(&resources).await?;
        sink.put_entitlements(&entitlements).await?;

        let mut grants = Vec::new();
        let read = self
            .client
            .pages("/roleManagement/directory/roleAssignments?$select=id,roleDefinitionId,principalId,directoryScopeId&$top=999", &[], |items| {
                grants.extend(items.iter().filter_map(|item| role_grant(item, EntitlementKey::Active)));
            })
            .await;
        match read {
            Ok(_) => {
                self.read_assignment_ends(sink, &mut grants).await;
                sink.put_grants(&grants).await?;
                sink.snapshot_grants_of("active");
            }
            Err(e) if is_forbidden(&e) => {
                sink.note(format!(
                    "active role assignments skipped: the app lacks RoleManagement.Read.Directory ({e})"
                ));
                sink.could_not_read_grants("active");
            }
            Err(e) => return Err(sync_error(e, "role assignments")),
        }

        let mut grants = Vec::new();
        let read = self
            .client
            .pages(
                "/roleManagement/directory/roleEligibilitySchedules?$select=id,principalId,roleDefinitionId,directoryScopeId,scheduleInfo&$top=999",
                &[],
                |items| grants.extend(items.iter().filter_map(|item| role_grant(item, EntitlementKey::Eligible))),
            )
            .await;
        match read {
            Ok(_) => {
                sink.put_grants(&grants).await?;
                sink.snapshot_grants_of("eligible");
            }
            Err(e) if e.kind() == Some(ApiErrorKind::LicenceRequired) => {
                sink.note("PIM eligible assignments skipped: the tenant has no Microsoft Entra ID P2 or ID Governance licence");
                sink.could_not_read_grants("eligible");
            }
            Err(e) if e.kind() == Some(ApiErrorKind::Denied) => {
                sink.note(format!(
                    "PIM eligible assignments skipped: the app lacks RoleEligibilitySchedule.Read.Directory ({e})"
                ));
                sink.could_not_read_grants("eligible");
            }
            Err(e) => return Err(sync_error(e, "role eligibility schedules")),
        }
        Ok(())
    }

    /// PIM's schedules of the active assignments in `grants`: each one's end (none: permanent),
    /// which makes a just-in-time role made permanent in Entra visible. Without PIM (no licence
    /// or permission) the assignments keep no end here, as before.
    async fn read_assignment_ends(&self, sink: &mut SyncSink, grants: &mut [ObservedGrant]) {
        let mut ends = HashMap::new();
        let read = self
            .client
            .pages(
                "/roleManagement/directory/roleAssignmentSchedules?$select=id,principalId,roleDefinitionId,directoryScopeId,scheduleInfo&$top=999",
                &[],
                |items| {
                    for g in items.iter().filter_map(|item| role_grant(item, EntitlementKey::Active)) {
                        ends.insert((g.resource_external_id, g.principal_external_id, g.scope), g.expires_at);
                    }
                },
            )
            .await;
        match read {
            Ok(_) => {
                for g in grants.iter_mut() {
                    let key = (g.resource_external_id.clone(), g.principal_external_id.clone(), g.scope.clone());
                    if let Some(end) = ends.get(&key) {
                        g.expires_at = *end;
                        g.end_known = true;
                    }
                }
            }
            // Optional: without them the assignments are kept as before, with no end.
            Err(e) => {
                sink.note(format!("ends of active role assignments not read (PIM unavailable or unreadable: {e})"));
            }
        }
    }
}

impl Connector for EntraConnector {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Entra
    }

    async fn apply(
        &self,
        action: &attest_domain::ChangeAction,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<attest_connector::Applied, attest_connector::ApplyError> {
        self.client.apply(action, now).await
    }

    async fn verify(&self, action: &attest_domain::ChangeAction) -> Result<Option<bool>, attest_connector::ApplyError> {
        self.client.verify(action).await
    }

    async fn sync(&self, mode: SyncMode, sink: &mut SyncSink) -> Result<(), SyncError> {
        let before = self.client.usage();
        let result = self.read(mode, sink).await;
        let used = self.client.usage().since(before);
        sink.record_requests(used.requests, used.resource_units);
        if let Some(trouble) = used.trouble() {
            sink.note(trouble);
        }
        result
    }
}

fn grant(kind: ResourceKind, resource: &str, key: EntitlementKey, principal: String) -> ObservedGrant {
    ObservedGrant {
        resource_kind: kind,
        resource_external_id: resource.to_owned(),
        key,
        principal_external_id: principal,
        scope: String::new(),
        external_ref: None,
        expires_at: None,
        end_known: false,
    }
}

/// A role assignment or eligibility schedule as a grant on its role definition.
fn role_grant(item: &Value, key: EntitlementKey) -> Option<ObservedGrant> {
    let mut g = grant(ResourceKind::DirectoryRole, &text(item, "roleDefinitionId")?, key, text(item, "principalId")?);
    g.scope = text(item, "directoryScopeId").unwrap_or_else(|| "/".into());
    g.external_ref = text(item, "id");
    g.expires_at = objects::timestamp(item.pointer("/scheduleInfo/expiration/endDateTime"));
    // A schedule says when it ends, or that it does not; a plain assignment says nothing, and
    // an end this cannot read (a duration, a malformed date) is taken as unknown.
    let expiration = item.pointer("/scheduleInfo/expiration/type").and_then(Value::as_str);
    g.end_known = g.expires_at.is_some() || expiration.is_some_and(|t| t.eq_ignore_ascii_case("noExpiration"));
    Some(g)
}

/// The last word on each link of one object (the same link can appear twice in a round).
fn latest_links(links: Vec<(String, bool)>) -> Vec<(String, bool)> {
    let mut seen = HashSet::new();
    let mut latest: Vec<(String, bool)> = links.into_iter().rev().filter(|(id, _)| seen.insert(id.clone())).collect();
    latest.reverse();
    latest
}

/// A 403 of either kind: a missing permission or a licence; the notes name the permission.
fn is_forbidden(e: &GraphError) -> bool {
    matches!(e.kind(), Some(ApiErrorKind::Denied | ApiErrorKind::LicenceRequired))
}

/// Graph's failures in the terms the runner acts on.
pub(crate) fn sync_error(e: GraphError, reading: &str) -> SyncError {
    match (&e, e.kind()) {
        (GraphError::Auth(AuthError::Unreachable(_)), _) => SyncError::Directory(format!("reading {reading}: {e}")),
        (GraphError::Auth(_), _) => SyncError::Unauthorized(e.to_string()),
        (_, Some(ApiErrorKind::DeltaExpired)) => SyncError::ResyncRequired(format!("reading {reading}: {e}")),
        (_, Some(ApiErrorKind::Unauthenticated | ApiErrorKind::Denied | ApiErrorKind::LicenceRequired)) => {
            SyncError::Unauthorized(format!("reading {reading}: {e}"))
        }
        _ => SyncError::Directory(format!("reading {reading}: {e}")),
    }
}

#[cfg(test)]
mod tests;
