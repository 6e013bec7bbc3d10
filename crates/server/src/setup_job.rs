//! The mail connecting a tenant owes, a background job of `attest serve`: the owner's
//! reminder three days after an unanswered invitation (with a fresh link, which replaces the
//! first), the note to whoever invited the owners once the tenant is connected, and the
//! owners' mail when a connector falls into trouble (once per episode: the mark is cleared
//! when it is connected again).
//!
//! It looks at the state rather than being told, under a lease (one replica at a time), so a
//! restart after downtime sends what came due meanwhile, once; each mail is keyed as well.

use std::time::Duration;

use attest_domain::setup::Invitation;
use attest_domain::{Connector, ConnectorStatus, SharedClock};
use attest_jobs::{Lease, Ran, Runner};
use attest_notify::{Email, Outbox, Template, is_email_address};
use attest_store::Store;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::error::WebError;
use crate::session::{hash, random_token};

/// How often the job looks.
pub const SETUP_TICK: Duration = Duration::from_secs(30);

const LEASE: Duration = Duration::from_secs(60);

/// The job. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SetupMailer {
    store: Store,
    outbox: Outbox,
    public_url: String,
    tick: Duration,
    clock: SharedClock,
    owner: String,
}

impl SetupMailer {
    pub fn new(store: Store, outbox: Outbox, public_url: &str, clock: SharedClock, owner: &str) -> SetupMailer {
        let public_url = public_url.trim_end_matches('/').to_owned();
        SetupMailer { store, outbox, public_url, tick: SETUP_TICK, clock, owner: owner.to_owned() }
    }

    /// Looks every tick until `shutdown` says stop.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let this = &self;
        let lease = Lease {
            store: self.store.clone(),
            clock: self.clock.clone(),
            name: "setup".to_owned(),
            owner: self.owner.clone(),
            length: LEASE,
        };
        Runner::new("setup", self.clock.clone(), self.tick)
            .leased(lease)
            .run(shutdown, |now| async move {
                let sent = this.once(now).await?;
                if sent > 0 {
                    tracing::info!(sent, "connector setup mail");
                }
                Ok::<_, WebError>(Ran::Idle)
            })
            .await;
    }

    /// Sends what is owed at `now`: how many mails were queued.
    pub async fn once(&self, now: DateTime<Utc>) -> Result<usize, WebError> {
        let mut sent = 0;
        for invitation in self.store.setup().invitations_to_remind(now).await? {
            sent += self.remind(&invitation, now).await?;
        }
        for (id, to) in self.store.setup().connections_to_announce().await? {
            let connector = self.store.connectors().get_connector(id).await?;
            for address in to.into_iter().filter(|a| is_email_address(a)) {
                let template = Template::ConnectorConnected {
                    connector: connector.name.clone(),
                    tenant: connector.tenant_id.clone().unwrap_or_default(),
                    connected_by: connector.connected_by.clone(),
                    connector_url: self.connector_url(&connector),
                };
                let key = format!("connector-connected:{}:{}", id.0, address.to_lowercase());
                self.outbox.enqueue(Email { key, to: address, template }, now).await.map_err(mail_error)?;
                sent += 1;
            }
            self.store.setup().mark_connector_mailed(id, true, now).await?;
        }
        for id in self.store.setup().attention_to_mail().await? {
            let connector = self.store.connectors().get_connector(id).await?;
            sent += self.tell_owners(&connector, now).await?;
            self.store.setup().mark_connector_mailed(id, false, now).await?;
        }
        Ok(sent)
    }

    async fn remind(&self, invitation: &Invitation, now: DateTime<Utc>) -> Result<usize, WebError> {
        if !invitation.reminder_due(now) {
            return Ok(0);
        }
        let token = random_token().map_err(WebError::Internal)?;
        if !self.store.setup().renew_invitation(invitation.id, &hash(&token), now).await? {
            return Ok(0);
        }
        let connector = self.store.connectors().get_connector(invitation.connector_id).await?;
        crate::setup::mail_invitation(
            &self.store,
            &self.outbox,
            &self.public_url,
            &connector,
            invitation,
            &token,
            true,
            now,
        )
        .await?;
        Ok(usize::from(is_email_address(&invitation.email)))
    }

    async fn tell_owners(&self, connector: &Connector, now: DateTime<Utc>) -> Result<usize, WebError> {
        let status = match connector.status {
            ConnectorStatus::NeedsReauthorization => "needs reauthorization",
            _ => "has an error",
        };
        let reason = connector.status_reason.clone().unwrap_or_else(|| "no details were given".into());
        let mut sent = 0;
        for owner in connector.owners.iter().filter(|o| is_email_address(o)) {
            let template = Template::ConnectorAttention {
                connector: connector.name.clone(),
                tenant: connector.tenant_id.clone().unwrap_or_default(),
                status: status.to_owned(),
                reason: reason.clone(),
                connector_url: self.connector_url(connector),
            };
            // One per episode: the episode starts when the status last changed.
            let key =
                format!("connector-attention:{}:{}:{}", connector.id.0, connector.updated_at.timestamp_micros(), owner);
            self.outbox.enqueue(Email { key, to: owner.clone(), template }, now).await.map_err(mail_error)?;
            sent += 1;
        }
        Ok(sent)
    }

    fn connector_url(&self, connector: &Connector) -> String {
        format!("{}/connectors/{}", self.public_url, crate::pages::url_encode(&connector.name))
    }
}

fn mail_error(e: attest_notify::NotifyError) -> WebError {
    WebError::Unavailable(format!("mail could not be queued: {e}"))
}
