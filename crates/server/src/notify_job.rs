//! Mail about changes, queued by a background job: a change waiting for a second person's
//! approval is mailed to everyone who can approve it, and a change that failed or was denied
//! to whoever asked for it.
//!
//! The job looks at the change queue every few seconds rather than being called where changes
//! move, so every way a change gets there (the web, the command line, a worker's last attempt,
//! another replica) is covered by one piece of code. Each mail has an idempotency key
//! (`change-awaiting-approval:{change}:{recipient}`, `change-failed:{change}`,
//! `change-denied:{change}`), so scanning
//! again, or on several replicas at once, queues every mail once. The scan stays cheap: the
//! newest changes in the three states only, one query for which of their mails exist, and only
//! the new ones are described and rendered.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use attest_domain::change_flow::{self, Person};
use attest_domain::roles::Roles;
use attest_domain::{Change, ChangeId, ChangeState, ConnectorId, SharedClock};
use attest_jobs::{Ran, Runner};
use attest_notify::{Email, NotifyError, Outbox, Template, is_email_address};
use attest_store::{ChangeFilter, Store, StoreError, WebUser};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// How often the job looks at the change queue.
pub const NOTIFY_TICK: Duration = Duration::from_secs(2);

/// Changes looked at per state, newest first: enough for every change still worth a mail.
const SCAN_LIMIT: u64 = 500;

/// A failed or denied change older than this is not mailed about any more (e.g. when mail is first set
/// up on an install with a long history).
const FAILED_LOOKBACK: chrono::Duration = chrono::Duration::days(7);

/// Why a scan stopped; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum NotifyJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// The idempotency key of the mail asking `recipient` to approve `change`.
pub fn approval_key(change: ChangeId, recipient: &str) -> String {
    format!("change-awaiting-approval:{}:{}", change.0, recipient.trim().to_lowercase())
}

/// The idempotency key of the mail telling a change's requester that it failed.
pub fn failure_key(change: ChangeId) -> String {
    format!("change-failed:{}", change.0)
}

/// The idempotency key of the mail telling a change's requester that it was denied.
pub fn denial_key(change: ChangeId) -> String {
    format!("change-denied:{}", change.0)
}

/// Who is mailed to approve `change`: the administrators and the owners of its connector
/// (named by address in its settings, whether or not they have signed in yet) whom the one
/// approval rule (`change_flow::may_approve`) lets approve it, each address once (compared
/// without regard to case), and only email addresses.
pub fn approvers(change: &Change, admins: &[WebUser], owners: &[String]) -> Vec<String> {
    let admin = Roles::admin();
    let owner = Roles::owner_of(vec![change.connector_id]);
    let admins = admins.iter().filter_map(|user| {
        let email = user.email.as_deref()?.trim();
        Some((email, Some(format!("{}/{}", user.tenant_id, user.object_id)), &admin))
    });
    let owners = owners.iter().map(|email| (email.trim(), None, &owner));
    let mut to: Vec<String> = Vec::new();
    for (email, id, roles) in admins.chain(owners) {
        if is_email_address(email)
            && change_flow::may_approve(roles, change, Person { name: email, id: id.as_deref() })
            && !to.iter().any(|t| t.eq_ignore_ascii_case(email))
        {
            to.push(email.to_owned());
        }
    }
    to
}

/// `users` with an address each where the directory has one: a user granted a role before
/// their first sign-in has none in Attest yet, but is a synced principal of their tenant, so
/// they are mailed from the start (an address known from signing in is kept).
async fn with_directory_addresses(
    store: &Store,
    connectors: &[attest_domain::Connector],
    mut users: Vec<WebUser>,
) -> Result<Vec<WebUser>, StoreError> {
    for user in users.iter_mut().filter(|u| u.email.is_none()) {
        for connector in connectors.iter().filter(|c| c.tenant_id.as_deref() == Some(user.tenant_id.as_str())) {
            let found = store.principals().find_principal_by_external_id(connector.id, &user.object_id).await?;
            if let Some(email) = found.filter(|p| p.data.deleted_at.is_none()).and_then(|p| p.data.email) {
                user.email = Some(email);
                break;
            }
        }
    }
    Ok(users)
}

/// A mail the scan would queue, before it is rendered.
struct Planned {
    key: String,
    to: String,
    change: usize,
}

/// The job. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    store: Store,
    outbox: Outbox,
    /// `server.public_url`, without a trailing slash.
    public_url: String,
    tick: Duration,
    clock: SharedClock,
}

impl Notifier {
    pub fn new(store: Store, outbox: Outbox, public_url: &str, clock: SharedClock) -> Notifier {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Notifier { store, outbox, public_url, tick: NOTIFY_TICK, clock }
    }

    /// Looks every `tick` instead of every [`NOTIFY_TICK`].
    pub fn with_tick(self, tick: Duration) -> Notifier {
        Notifier { tick, ..self }
    }

    /// Scans every tick until `shutdown` says stop.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let this = &self;
        Runner::new("notifications", self.clock.clone(), self.tick)
            .run(shutdown, |now| async move {
                let queued = this.scan(now).await?;
                if queued > 0 {
                    tracing::info!(queued, "change notifications queued");
                }
                Ok::<_, NotifyJobError>(Ran::Idle)
            })
            .await;
    }

    /// Queues the mail due about the change queue as it stands at `now`; returns how many
    /// mails were new.
    pub async fn scan(&self, now: DateTime<Utc>) -> Result<usize, NotifyJobError> {
        let store = &self.store;
        let newest = |state| ChangeFilter { state: Some(state), limit: SCAN_LIMIT, ..Default::default() };
        let awaiting = store.changes().list_changes(&newest(ChangeState::AwaitingApproval)).await?;
        let mut ended = Vec::new();
        for state in [ChangeState::Failed, ChangeState::Denied] {
            ended.extend(
                store
                    .changes()
                    .list_changes(&newest(state))
                    .await?
                    .into_iter()
                    .filter(|c| c.finished_at.unwrap_or(c.updated_at) >= now - FAILED_LOOKBACK),
            );
        }
        if awaiting.is_empty() && ended.is_empty() {
            return Ok(0);
        }
        let changes: Vec<Change> = awaiting.into_iter().chain(ended).collect();

        let mut planned = Vec::new();
        if changes.iter().any(|c| c.state == ChangeState::AwaitingApproval) {
            let connectors = store.connectors().list_connectors().await?;
            let admins =
                with_directory_addresses(store, &connectors, store.web().list_web_users_with_role("admin").await?)
                    .await?;
            let owners: HashMap<ConnectorId, Vec<String>> = connectors.into_iter().map(|c| (c.id, c.owners)).collect();
            for (i, change) in changes.iter().enumerate().filter(|(_, c)| c.state == ChangeState::AwaitingApproval) {
                let owners = owners.get(&change.connector_id).map(Vec::as_slice).unwrap_or_default();
                for to in approvers(change, &admins, owners) {
                    planned.push(Planned { key: approval_key(change.id, &to), to, change: i });
                }
            }
        }
        for (i, change) in changes.iter().enumerate() {
            let key = match change.state {
                ChangeState::Failed => failure_key(change.id),
                ChangeState::Denied => denial_key(change.id),
                _ => continue,
            };
            if is_email_address(&change.requested_by) {
                planned.push(Planned { key, to: change.requested_by.trim().to_owned(), change: i });
            }
        }
        let keys: Vec<String> = planned.iter().map(|p| p.key.clone()).collect();
        let queued = store.outbox().list_mail_keys_among(&keys).await?;
        planned.retain(|p| !queued.contains(&p.key));
        if planned.is_empty() {
            return Ok(0);
        }

        // Describe the changes the new mails are about, with names, as the pages do.
        let wanted: HashSet<usize> = planned.iter().map(|p| p.change).collect();
        let described: Vec<Change> =
            changes.iter().enumerate().filter(|(i, _)| wanted.contains(i)).map(|(_, c)| c.clone()).collect();
        let descriptions: HashMap<i64, String> =
            described.iter().map(|c| c.id.0).zip(store.changes().describe_changes(&described).await?).collect();

        let mut new = 0;
        for p in planned {
            let change = &changes[p.change];
            let description = descriptions.get(&change.id.0).cloned().unwrap_or_else(|| change.action.describe());
            let url = format!("{}/changes/{}", self.public_url, change.id.0);
            let template = match change.state {
                ChangeState::AwaitingApproval => Template::ChangeAwaitingApproval {
                    change_id: change.id,
                    description,
                    requested_by: change.requested_by.clone(),
                    reason: change.reason.clone(),
                    approve_url: url,
                },
                ChangeState::Denied => Template::ChangeDenied {
                    change_id: change.id,
                    description,
                    denied_by: change.denied_by.clone().unwrap_or_else(|| "an approver".into()),
                    reason: change.denial_reason.clone().unwrap_or_default(),
                    change_url: url,
                },
                _ => Template::ChangeFailed {
                    change_id: change.id,
                    description,
                    error: change.last_error.clone().unwrap_or_else(|| "no error was recorded".into()),
                    change_url: url,
                },
            };
            let mail = self.outbox.enqueue(Email { key: p.key, to: p.to, template }, now).await?;
            tracing::debug!(change = change.id.0, mail = mail.id.0, template = %mail.template, "change notification queued");
            new += 1;
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attest_domain::{ChangeAction, ChangeOrigin};

    fn change(requested_by: &str) -> Change {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 3, 9, 0, 0).unwrap();
        let action = ChangeAction::RevokeSessions { user: "u1".into() };
        Change {
            id: ChangeId(7),
            connector_id: ConnectorId(1),
            kind: action.kind(),
            action,
            idempotency_key: "k".into(),
            origin: ChangeOrigin::Manual,
            origin_ref: None,
            requested_by: requested_by.into(),
            requested_by_id: None,
            state: ChangeState::AwaitingApproval,
            result: None,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            graph_request_id: None,
            verified: None,
            approved_by: None,
            approved_by_id: None,
            reason: None,
            denied_by: None,
            denied_by_id: None,
            denial_reason: None,
            lease_owner: None,
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    #[test]
    fn approvers_are_administrators_and_owners_but_not_the_requester() {
        let admin = |id: i64, email: &str| WebUser {
            id,
            tenant_id: "t".into(),
            object_id: format!("o{id}"),
            display_name: email.into(),
            email: Some(email.into()),
            roles: vec!["admin".into()],
        };
        let admins = [admin(1, "ada@contoso.com"), admin(2, "Bob@Contoso.com"), admin(3, "ADA@contoso.com")];
        let owners = ["bob@contoso.com".to_owned(), "cy@contoso.com".to_owned(), "not an address".to_owned()];
        assert_eq!(approvers(&change("ADA@contoso.com"), &admins, &owners), vec!["Bob@Contoso.com", "cy@contoso.com"]);
        assert_eq!(approvers(&change("cy@contoso.com"), &admins, &[]), vec!["ada@contoso.com", "Bob@Contoso.com"]);
        assert!(approvers(&change("ada@contoso.com"), &admins[..1], &[]).is_empty(), "nobody else can approve");
        // One person signed in from two tenants under one address (in another case) is mailed once.
        assert_eq!(
            approvers(&change("cy@contoso.com"), &[admins[0].clone(), admins[2].clone()], &[]),
            vec!["ada@contoso.com"]
        );
        // The requester is known by identity, whatever address they asked under.
        let renamed = Change { requested_by_id: Some("t/o2".into()), ..change("bob.old@contoso.com") };
        assert_eq!(approvers(&renamed, &admins, &[]), vec!["ada@contoso.com"]);
        assert_eq!(approval_key(ChangeId(7), " Bob@Contoso.com"), "change-awaiting-approval:7:bob@contoso.com");
        assert_eq!(failure_key(ChangeId(7)), "change-failed:7");
    }
}
