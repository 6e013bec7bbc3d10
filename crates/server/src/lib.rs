//! `attest serve`: the HTTP server and the background jobs, in one process.
//!
//! [`run`] is the one boot function: `serve`, `demo` and the tests all start Attest through it.
//! It serves `/healthz` (the process answers), `/readyz` (the database answers and its schema is
//! what this build expects) and `/metrics`, and runs the background jobs: a scheduler that
//! syncs each connector when it is due (one replica per connector, through a lease in the
//! database), the provisioner's workers, the mail sender (or, without an SMTP server, nothing:
//! mail is kept in the outbox for `/admin/mail`) and the job that queues mail about changes
//! ([`notify_job`]). On shutdown it stops accepting requests, lets
//! in-flight ones finish, and waits for the jobs to finish the work in hand.

pub mod access_job;
mod activation;
mod api;
mod api_model;
pub mod auth;
mod cache;
pub mod connectors;
pub mod error;
mod error_pages;
mod extract;
mod flash;
mod forms;
mod http_metrics;
mod metrics;
pub mod notify_job;
pub mod oidc;
mod pages;
mod render;
mod request_id;
pub mod review_job;
pub mod roles;
mod routes;
pub mod scim;
mod security;
pub mod session;
pub mod setup;
pub mod setup_job;
mod sign_in_client;
mod state;
pub mod sync_job;
mod template_rows;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use attest_config::Config;
use attest_config::secrets::SecretKey;
use attest_domain::{ChangeClass, SharedClock};
use attest_provisioner::{Policy, Provisioner};
use attest_store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

pub use connectors::{StoredConnectors, http_client};
pub use routes::{RouteInfo, route_table};
pub use state::AppState;

/// The provisioner policy the configuration asks for.
pub fn provisioning_policy(config: &Config) -> Policy {
    let classes = config
        .provisioning
        .sensitive
        .iter()
        .filter_map(|name| match name.as_str() {
            "memberships" => Some(ChangeClass::Membership),
            "owners" => Some(ChangeClass::Ownership),
            "app_roles" => Some(ChangeClass::AppRole),
            "directory_roles" => Some(ChangeClass::DirectoryRole),
            "user_actions" => Some(ChangeClass::UserAction),
            "sessions" => Some(ChangeClass::Sessions),
            _ => None,
        })
        .collect();
    Policy { sensitive: classes, max_attempts: config.provisioning.max_attempts, ..Policy::default() }
}

/// A name for this process in leases and the audit log: host, process id and a random suffix.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "attest".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &suffix[..8])
}

/// Serves on `listener` and runs the background jobs until `shutdown` completes.
pub async fn run(
    config: Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let key = Arc::new(SecretKey::load_or_create(&config.secret_key_file)?);
    let store = Store::connect(&config.database)
        .await?
        .with_audit_key(attest_domain::audit::ChainKey::new(&key.audit_chain_key()));
    let instance = instance_name();
    render::check_templates().map_err(|e| anyhow::anyhow!("a page template is broken: {e}"))?;
    let (stop_jobs, jobs_stop) = tokio::sync::watch::channel(false);

    let mut jobs = tokio::task::JoinSet::new();
    let sync_wake = Arc::new(tokio::sync::Notify::new());
    let syncer =
        sync_job::Syncer { store: store.clone(), key: key.clone(), clock: clock.clone(), owner: instance.clone() };
    let scheduler = sync_job::Scheduler {
        syncer,
        every: config.server.sync_interval,
        full_every: config.server.full_sync_interval,
        tick: scheduler_tick(config.server.sync_interval),
        wake: sync_wake.clone(),
    };
    jobs.spawn(scheduler.run(jobs_stop.clone()));
    let connectors = Arc::new(StoredConnectors::new(store.clone(), key.clone()));
    let provisioner = Provisioner::new(store.clone(), connectors, provisioning_policy(&config), instance.clone())
        .with_clock(clock.clone());
    let worker = provisioner.clone();
    let worker_stop = jobs_stop.clone();
    jobs.spawn(async move { worker.run(worker_stop).await });

    // Mail: the sender (which says once whether it sends or keeps mail) and the job queueing
    // mail about changes, woken together: a mail queued goes out at once.
    let sender_options = attest_notify::SenderOptions { clock: clock.clone(), ..Default::default() };
    let sender =
        attest_notify::Sender::with_options(store.clone(), config.mail.clone(), instance.clone(), sender_options)?;
    let outbox = attest_notify::Outbox::new(store.clone(), &config.mail)?.with_waker(sender.waker());
    let mail_kept = outbox.keeps_mail();
    let sender_stop = jobs_stop.clone();
    jobs.spawn(async move { sender.run(sender_stop).await });
    let notifier = notify_job::Notifier::new(store.clone(), outbox.clone(), &config.server.public_url, clock.clone());
    jobs.spawn(notifier.run(jobs_stop.clone()));
    let reviews = review_job::ReviewScheduler::new(
        store.clone(),
        outbox.clone(),
        &config.server.public_url,
        clock.clone(),
        &instance,
    );
    jobs.spawn(reviews.run(jobs_stop.clone()));
    let access = access_job::AccessSweeper::new(
        store.clone(),
        outbox.clone(),
        &config.server.public_url,
        clock.clone(),
        &instance,
    );
    jobs.spawn(access.run(jobs_stop.clone()));
    let setup =
        setup_job::SetupMailer::new(store.clone(), outbox.clone(), &config.server.public_url, clock.clone(), &instance);
    jobs.spawn(setup.run(jobs_stop.clone()));

    let sign_in = sign_in_client::SignIn::new(
        store.clone(),
        key.clone(),
        config.server.sign_in_connector.clone(),
        &config.server.public_url,
    );
    let state = AppState {
        store: store.clone(),
        http: Arc::default(),
        sign_in: Arc::new(sign_in),
        public_url: config.server.public_url.as_str().into(),
        mail_from: config.mail.from.as_str().into(),
        mail_kept,
        session_lifetime: config.server.session_lifetime,
        provisioner,
        sync_wake,
        caches: Arc::default(),
        clock,
        key,
        outbox,
    };
    let app = routes::router(state);
    tracing::info!(address = %listener.local_addr()?, %instance, "attest is serving");
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    // Requests are done; now let the jobs finish what they hold.
    let _ = stop_jobs.send(true);
    while let Some(job) = jobs.join_next().await {
        if let Err(e) = job {
            tracing::error!(error = %e, "a background job ended abnormally");
        }
    }
    store.close().await?;
    tracing::info!("attest stopped");
    Ok(served?)
}

/// How often the scheduler looks for due syncs: often enough for the interval, at most a minute.
fn scheduler_tick(every: Duration) -> Duration {
    (every / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// `GET /healthz`: the process is up and answering.
pub(crate) async fn healthz(_: roles::Anyone) -> &'static str {
    "ok\n"
}

/// `GET /readyz`: ready for traffic when the database answers and its schema is current.
pub(crate) async fn readyz(_: roles::Anyone, State(state): State<AppState>) -> Response {
    match state.store.ensure_schema_current().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}
