//! `attest serve`: the HTTP server and the background jobs, in one process.
//!
//! [`run`] is the one boot function: `serve`, `demo` and the tests all start Attest through it.
//! It serves `/healthz` (the process answers), `/readyz` (the database answers and its schema is
//! what this build expects) and `/metrics`, and runs the background jobs: a scheduler that
//! syncs each connector when it is due (one replica per connector, through a lease in the
//! database) and the provisioner's workers. On shutdown it stops accepting requests, lets
//! in-flight ones finish, and waits for the jobs to finish the work in hand.

pub mod auth;
pub mod connectors;
mod metrics;
pub mod oidc;
mod pages;
pub mod roles;
pub mod sync_job;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use attest_config::Config;
use attest_config::secrets::SecretKey;
use attest_domain::ChangeClass;
use attest_provisioner::{Policy, Provisioner};
use attest_store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

pub use connectors::{StoredConnectors, http_client};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    http: Arc<metrics::HttpMetrics>,
    sign_in: Arc<auth::SignIn>,
    /// `server.public_url`, without a trailing slash.
    public_url: Arc<str>,
    templates: Arc<tera::Tera>,
    session_lifetime: Duration,
}

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
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let key = Arc::new(SecretKey::load_or_create(&config.secret_key_file)?);
    let instance = instance_name();
    let (stop_jobs, jobs_stop) = tokio::sync::watch::channel(false);

    let mut jobs = tokio::task::JoinSet::new();
    let scheduler = sync_job::scheduler(
        store.clone(),
        key.clone(),
        instance.clone(),
        config.server.sync_interval,
        config.server.full_sync_interval,
        scheduler_tick(config.server.sync_interval),
        jobs_stop.clone(),
    );
    jobs.spawn(scheduler);
    let connectors = Arc::new(StoredConnectors::new(store.clone(), key.clone()));
    let provisioner = Provisioner::new(store.clone(), connectors, provisioning_policy(&config), instance.clone());
    let worker_stop = jobs_stop.clone();
    jobs.spawn(async move { provisioner.run(worker_stop).await });

    let sign_in =
        auth::SignIn::new(store.clone(), key, config.server.sign_in_connector.clone(), &config.server.public_url);
    let state = AppState {
        store: store.clone(),
        http: Arc::default(),
        sign_in: Arc::new(sign_in),
        public_url: config.server.public_url.as_str().into(),
        templates: pages::templates()?,
        session_lifetime: config.server.session_lifetime,
    };
    let app = router(state);
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

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/people", get(pages::people))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/auth/sign-in", get(auth::sign_in))
        .route("/auth/callback", get(auth::callback))
        .route("/auth/sign-out", axum::routing::post(auth::sign_out))
        .route("/auth/link/{token}", get(auth::login_link))
        .route("/api/v1/me", get(auth::me))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

/// `GET /healthz`: the process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: ready for traffic when the database answers and its schema is current.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ensure_schema_current().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}
