//! A faithful stand-in for Microsoft Graph and the Microsoft identity platform, for tests,
//! benchmarks and `attest demo`. No machine here reaches Microsoft, so everything built on
//! Graph is exercised against this: it follows Graph's documented behaviour (see
//! shared/docs/graph-facts.md), and where it has to guess, the code says [INFER].
//!
//! Served on one listener: Graph at `{base}/v1.0/...`, the identity platform at
//! `{base}/login/{tenant}/oauth2/v2.0/...`, and the simulator's own controls at `/_sim/...`.
//! A client only swaps its Graph and login base URLs.

mod apps;
pub mod assertion;
mod batch;
mod changes;
mod consent;
mod delta;
mod directory;
pub mod error;
pub mod faults;
pub mod generate;
mod graph;
mod identity;
pub mod journal;
mod keys;
pub mod mutate;
pub mod odata;
mod pages;
pub mod provision;
mod roles;
mod server;
mod signin;
mod state;
pub mod tenant;
pub mod throttle;
mod truth;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultPlan, FaultRecord, FaultRule};
pub use generate::{TenantSpec, generate};
pub use state::{LoggedRequest, Sim, Stats};
pub use tenant::{RoleEligibility, Tenant};
pub use throttle::{RetryAfter, ThrottleConfig};
pub use truth::Truth;

/// The application permissions Attest asks for, granted by default to the simulated client.
pub const ATTEST_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Application.Read.All",
    "RoleManagement.Read.Directory",
    "RoleEligibilitySchedule.Read.Directory",
    "AuditLog.Read.All",
];

/// What Attest's provisioning adds: the least-privileged application permissions for each
/// change it applies (graph-facts §3–§6).
pub const ATTEST_PROVISIONING_PERMISSIONS: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleEligibilitySchedule.ReadWrite.Directory",
    "User.EnableDisableAccount.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.RevokeSessions.All",
    // Application owners of any enterprise app (`OwnedBy` covers only apps the app owns).
    "Application.ReadWrite.All",
    // Deleting and restoring users has no narrower permission.
    "User.ReadWrite.All",
];

/// The app registration the simulator knows: its credentials and the permissions an
/// administrator consented to (they become the access token's `roles`).
#[derive(Debug, Clone)]
pub struct ClientApp {
    pub client_id: String,
    pub client_secret: String,
    pub display_name: String,
    /// Application permissions the app asks for: an administrator's consent grants them,
    /// and they become the access token's `roles`.
    pub roles: Vec<String>,
    /// Registered redirect URIs; sign-in and admin consent accept exactly these.
    pub redirect_uris: Vec<String>,
    /// Certificates uploaded to the registration: a client assertion signed with one's key is
    /// accepted instead of the secret.
    pub certificates: Vec<assertion::UploadedCertificate>,
}

impl ClientApp {
    /// A client with Attest's permissions, ids derived from `seed` (stable across runs).
    pub fn attest(seed: u64) -> ClientApp {
        let id = |n: u64| {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            bytes[8..].copy_from_slice(&n.to_le_bytes());
            uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
        };
        ClientApp {
            client_id: id(1),
            client_secret: format!("sim~{}", id(2).replace('-', "")),
            display_name: "Attest".into(),
            roles: ATTEST_PERMISSIONS.iter().map(|s| (*s).to_owned()).collect(),
            redirect_uris: Vec::new(),
            certificates: Vec::new(),
        }
    }

    /// The same client with the certificate `pem` uploaded. `None` when it is not an RSA
    /// certificate in PEM.
    pub fn with_certificate(mut self, pem: &str) -> Option<ClientApp> {
        self.certificates.push(assertion::UploadedCertificate::from_pem(pem)?);
        Some(self)
    }

    /// The same client with `uri` registered as a redirect URI.
    pub fn with_redirect_uri(mut self, uri: &str) -> ClientApp {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    /// The same client with Attest's provisioning permissions consented too.
    pub fn with_provisioning(mut self) -> ClientApp {
        self.roles.extend(ATTEST_PROVISIONING_PERMISSIONS.iter().map(|s| (*s).to_owned()));
        self
    }
}

/// A running simulator.
pub struct SimHandle {
    pub sim: Arc<Sim>,
    /// `http://127.0.0.1:PORT`: Graph paths are `{graph_url}/v1.0/...`.
    pub graph_url: String,
    /// `http://127.0.0.1:PORT/login`: token endpoint at `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub login_url: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SimHandle {
    pub fn tenant_id(&self) -> String {
        self.sim.tenant_id()
    }

    /// Moves the simulator's clock forward (token expiry, schedules).
    pub fn advance(&self, by: Duration) {
        self.sim.advance(by);
    }

    /// Applies `count` random changes of every kind (see [`mutate::KINDS`]), as `/_sim/mutate` does.
    pub fn mutate(&self, seed: u64, count: usize) -> mutate::MutateReport {
        let now = self.sim.now();
        self.sim.write(|t| mutate::mutate(t, seed, count, now))
    }

    /// Adds a fault rule to the running plan.
    pub fn inject(&self, rule: FaultRule) {
        self.sim.inject(rule);
    }

    /// Forgets all delta state: every outstanding delta token answers 410 `syncStateNotFound`.
    pub fn reset_delta(&self) {
        self.sim.write(|t| t.journal.reset());
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// How a simulator runs, beyond its tenant and client.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where the simulator's clock starts.
    pub now: DateTime<Utc>,
    /// Throttle Graph requests as the identity services do; off unless asked for.
    pub throttle: Option<ThrottleConfig>,
    /// Added to every Graph request (not to each `$batch` item), as a network round trip.
    pub latency: std::time::Duration,
    /// Faults to inject (none by default).
    pub faults: FaultPlan,
    /// Whether an administrator has already consented to the client app. When not, token
    /// requests fail with AADSTS700016 until the admin-consent page is used.
    pub consented: bool,
    /// The base URL clients reach the simulator at, when that is not its own listener: behind a
    /// TLS-terminating proxy it is `https://localhost:PORT`. Links the simulator hands out (paging,
    /// delta, token issuer) use it.
    pub public_url: Option<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        // The simulated tenant keeps its own time, as Microsoft's does: the system's.
        #[allow(clippy::disallowed_methods)]
        let now = Utc::now();
        SimOptions {
            now,
            throttle: None,
            latency: std::time::Duration::ZERO,
            faults: FaultPlan::default(),
            consented: true,
            public_url: None,
        }
    }
}

/// Serves `tenant` on `listener` until the handle is shut down.
pub async fn spawn(listener: TcpListener, tenant: Tenant, client: ClientApp) -> std::io::Result<SimHandle> {
    spawn_with(listener, tenant, client, SimOptions::default()).await
}

/// Like [`spawn`], with options.
pub async fn spawn_with(
    listener: TcpListener,
    tenant: Tenant,
    client: ClientApp,
    options: SimOptions,
) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let graph_url = options.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let sim = Arc::new(Sim::new(tenant, client, graph_url.clone(), options));
    let login_url = sim.login_url();
    let router = server::router(sim.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok(SimHandle { sim, graph_url, login_url, addr, shutdown: Some(tx), task })
}

#[cfg(test)]
mod conformance;
