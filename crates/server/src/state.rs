//! What every request handler can reach. A leaf: handlers, guards and errors all depend on it.

use std::sync::Arc;
use std::time::Duration;

use attest_config::secrets::SecretKey;
use attest_domain::SharedClock;
use attest_provisioner::Provisioner;
use attest_store::Store;

use crate::http_metrics::HttpMetrics;
use crate::sign_in_client::SignIn;
use crate::{StoredConnectors, cache};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub(crate) http: Arc<HttpMetrics>,
    pub(crate) sign_in: Arc<SignIn>,
    /// `server.public_url`, without a trailing slash.
    pub(crate) public_url: Arc<str>,
    pub(crate) session_lifetime: Duration,
    /// `mail.from`, as the outbox's pages show it.
    pub(crate) mail_from: Arc<str>,
    /// No SMTP server: mail is kept in the outbox, not sent.
    pub(crate) mail_kept: bool,
    /// Applies changes in person (user actions, approvals); the background workers share the queue.
    pub(crate) provisioner: Provisioner<StoredConnectors>,
    /// Wakes the scheduler when somebody asks for "Sync now".
    pub(crate) sync_wake: Arc<tokio::sync::Notify>,
    pub(crate) caches: Arc<cache::Caches>,
    /// The one clock of this process: every page and job tells the time by it.
    pub(crate) clock: SharedClock,
    /// Where mail is queued from a request (a setup link: only the mail ever holds it).
    pub(crate) outbox: attest_notify::Outbox,
    /// Seals and opens connector credentials (adding a connector, checking it).
    pub(crate) key: Arc<SecretKey>,
}

impl AppState {
    /// Now, by this process's clock.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
