//! `attest bench provision`: mixed changes through the queue and workers into the simulator,
//! throttled as Graph throttles (resource units, and 3,000 writes per 150 s per app and
//! tenant), with latency on every request. Prints throughput and total time beside the bound
//! the write quota sets, and whether any request was sent inside a `Retry-After` window.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_connector::run_sync;
use attest_domain::{ApplyResult, ChangeAction, ChangeOrigin, ConnectorId, NewChange, SyncMode, SyncTrigger};
use attest_entra::{EntraConnector, EntraSettings};
use attest_entra_sim::{ClientApp, SimHandle, SimOptions, TenantSpec, ThrottleConfig, generate, spawn_with};
use attest_provisioner::{Policy, Provisioner, Single};
use attest_store::{NewConnector, Store};
use clap::Args;

use super::sync::client_for;
use crate::commands::Context;

#[derive(Debug, Args)]
pub struct ProvisionBenchArgs {
    /// Changes to apply: 60% memberships added, 20% removed, 10% app roles assigned, 10% sign-in blocked.
    #[arg(long, default_value_t = 10_000)]
    changes: usize,
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    #[arg(long, default_value_t = 2_000)]
    groups: usize,
    /// Round-trip latency added to every Graph request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Workers sharing the queue (as replicas would).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Changes each worker applies at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(context: &Context, args: ProvisionBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.connect().await?;
    store.migrate_up(None).await?;
    let spec =
        TenantSpec { users: args.users, groups: args.groups, apps: 200, assignments_per_app: 20, seed: args.seed };
    let started = Instant::now();
    let Throttled { sim, connector, id, throttle, .. } =
        throttled_tenant(&store, spec, args.latency_ms, "bench-provision").await?;
    let (write_quota, write_window) = (throttle.write_quota, throttle.write_window_secs);
    writeln!(
        out,
        "bench provision: {} changes by {} worker(s) × {} at a time, {} ms latency, write quota {write_quota} per {write_window} s; tenant synced in {:.1} s into {}",
        args.changes,
        args.workers,
        args.concurrency,
        args.latency_ms,
        started.elapsed().as_secs_f64(),
        context.config.database.url
    )?;

    let changes = plan(&sim, id, args.changes, args.seed);
    let before = sim.sim.stats();
    let started = Instant::now();
    let policy = Policy { sensitive: Vec::new(), concurrency: args.concurrency, ..Policy::default() };
    let first = Provisioner::new(store.clone(), Arc::new(Single(connector.clone())), policy, "bench-0");
    for change in changes {
        first.enqueue(change, crate::now()).await?;
    }
    let enqueued = started.elapsed().as_secs_f64();
    apply_queue(&store, &connector, args.workers, args.concurrency).await?;
    let total = started.elapsed().as_secs_f64();
    let after = sim.sim.stats();
    let (states, results) = tally(&store).await?;
    let (writes, bound) = quota_bound(&sim, &throttle);
    writeln!(out, "queued in {enqueued:.1} s; applied in {total:.1} s: {:.1} changes/s", args.changes as f64 / total)?;
    writeln!(out, "  states: {states}; results: {results}")?;
    writeln!(
        out,
        "  Graph: {} requests ({writes} accepted writes), {} throttled (429); write-quota bound for {writes} writes: {bound:.1} s, so {:.0}% of the physical limit",
        after.requests - before.requests,
        after.throttled - before.throttled,
        if total > 0.0 { 100.0 * bound.max(0.001) / total } else { 0.0 }
    )?;
    writeln!(out, "  early requests (inside a Retry-After window): {}", after.early_requests)?;
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The changes: memberships added (users not yet in the group), memberships removed, app roles
/// assigned, sign-in blocked; all distinct, all applicable.
fn plan(sim: &SimHandle, connector: ConnectorId, n: usize, seed: u64) -> Vec<NewChange> {
    sim.sim.read(|t| {
        let writable: Vec<&attest_entra_sim::tenant::Group> =
            t.live_groups().filter(|g| g.accepts_membership_writes()).collect();
        let users: Vec<&attest_entra_sim::tenant::User> = t.live_users().collect();
        let apps: Vec<&attest_entra_sim::tenant::ServicePrincipal> =
            t.live_service_principals().filter(|s| !s.app_roles.is_empty()).collect();
        let mut out = Vec::with_capacity(n);
        let mut next = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut random = move |bound: usize| {
            next ^= next << 13;
            next ^= next >> 7;
            next ^= next << 17;
            (next % bound.max(1) as u64) as usize
        };
        let mut keys = std::collections::HashSet::new();
        let mut blocked = std::collections::HashSet::new();
        let mut removed = std::collections::HashSet::new();
        while out.len() < n {
            let roll = random(10);
            let action = if roll < 6 {
                let g = writable[random(writable.len())];
                let u = users[random(users.len())];
                if g.members.contains(&u.id) {
                    continue;
                }
                ChangeAction::AddGroupMember { group: g.id.clone(), member: u.id.clone() }
            } else if roll < 8 {
                let g = writable[random(writable.len())];
                let Some(member) = g.members.get(random(g.members.len().max(1))) else { continue };
                if !removed.insert((g.id.clone(), member.clone())) {
                    continue;
                }
                ChangeAction::RemoveGroupMember { group: g.id.clone(), member: member.clone() }
            } else if roll < 9 {
                let app = apps[random(apps.len())];
                let u = users[random(users.len())];
                let role = &app.app_roles[random(app.app_roles.len())];
                ChangeAction::AssignAppRole { app: app.id.clone(), principal: u.id.clone(), app_role: role.id.clone() }
            } else {
                let u = users[random(users.len())];
                if !u.account_enabled || !blocked.insert(u.id.clone()) {
                    continue;
                }
                ChangeAction::BlockSignIn { user: u.id.clone() }
            };
            let key = format!("bench:{}", serde_json::to_string(&action).unwrap_or_default());
            if keys.insert(key.clone()) {
                out.push(NewChange {
                    connector_id: connector,
                    action,
                    idempotency_key: key,
                    origin: ChangeOrigin::Manual,
                    origin_ref: None,
                    requested_by: "bench".into(),
                    requested_by_id: None,
                    reason: None,
                });
            }
        }
        out
    })
}

/// A simulated tenant throttled as Graph throttles, synced into a connector of its own.
pub(super) struct Throttled {
    pub sim: SimHandle,
    pub connector: Arc<EntraConnector>,
    pub id: ConnectorId,
    /// The connector's name (what a campaign's scope names).
    pub name: String,
    pub throttle: ThrottleConfig,
}

/// Spawns the simulator for `spec` with Graph's throttling (write quota included) and
/// `latency_ms` on every request, and syncs it in full into a new connector named after
/// `prefix`.
pub(super) async fn throttled_tenant(
    store: &Store,
    spec: TenantSpec,
    latency_ms: u64,
    prefix: &str,
) -> anyhow::Result<Throttled> {
    let throttle = ThrottleConfig::default();
    let options =
        SimOptions { latency: Duration::from_millis(latency_ms), throttle: Some(throttle), ..SimOptions::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let seed = spec.seed;
    let sim = spawn_with(listener, generate(spec), ClientApp::attest(seed).with_provisioning(), options).await?;
    let connector = Arc::new(EntraConnector::new(client_for(&sim)?, EntraSettings::default()));
    let name = format!("{prefix}-{}", crate::now().timestamp_millis());
    let id = store.connectors().create_connector(NewConnector::entra(&name), crate::now()).await?.id;
    run_sync(connector.as_ref(), store, id, SyncMode::Full, SyncTrigger::Bench, &attest_domain::SystemClock, None)
        .await?;
    Ok(Throttled { sim, connector, id, name, throttle })
}

/// Runs `workers` provisioner workers, each applying `concurrency` changes at a time, until the
/// queue is empty (as replicas sharing it would).
pub(super) async fn apply_queue(
    store: &Store,
    connector: &Arc<EntraConnector>,
    workers: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let policy = Policy { sensitive: Vec::new(), concurrency, ..Policy::default() };
    let connectors = Arc::new(Single(connector.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers.max(1) {
        let worker = Provisioner::new(store.clone(), connectors.clone(), policy.clone(), format!("bench-{w}"));
        tasks.spawn(async move { worker.run_until_idle().await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The Graph writes the simulator accepted, and the least time the write quota allows for
/// them in seconds: it starts full and refills at quota/window per second, the fastest any
/// client can go.
pub(super) fn quota_bound(sim: &SimHandle, throttle: &ThrottleConfig) -> (usize, f64) {
    let writes = sim.sim.requests().iter().filter(|r| is_write(&r.method, &r.uri) && r.status != 429).count();
    let bound = (writes as f64 - throttle.write_quota).max(0.0) / (throttle.write_quota / throttle.write_window_secs);
    (writes, bound)
}

/// A Graph write: not a read, not a token request, not the sync's `$batch` of reads.
fn is_write(method: &str, uri: &str) -> bool {
    method != "GET" && uri.contains("/v1.0/") && !uri.contains("$batch")
}

async fn tally(store: &Store) -> anyhow::Result<(String, String)> {
    let states = store.changes().count_changes_by_state().await?;
    let states = states.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ");
    let mut results: std::collections::BTreeMap<ApplyResult, u64> = Default::default();
    let mut before = None;
    loop {
        let page = store
            .changes()
            .list_changes(&attest_store::ChangeFilter { before, limit: 5_000, ..Default::default() })
            .await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for change in &page {
            if let Some(result) = change.result {
                *results.entry(result).or_default() += 1;
            }
        }
    }
    let results = results.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ");
    Ok((states, results))
}
