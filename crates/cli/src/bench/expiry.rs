//! `attest bench expiry`: many just-in-time grants ending in the same minute, removed in the
//! simulator (20 ms latency, Graph's write quota) by the access sweep and the provisioner's
//! workers, as `attest serve` runs them. Prints the delay from each `expires_at` to its
//! removal confirmed in Entra (median, p99, max) beside the least the write quota allows.
//!
//! The grants are memberships the generated tenant already has, recorded as active requests
//! ending within one minute: giving them through Graph first would only measure the quota
//! twice.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_domain::{EntitlementKey, ResourceKind};
use attest_entra_sim::TenantSpec;
use attest_provisioner::{Policy, Provisioner, Single};
use clap::Args;

use super::provision::{Throttled, quota_bound, throttled_tenant};
use crate::commands::Context;

#[derive(Debug, Args)]
pub struct ExpiryBenchArgs {
    /// Grants ending in the same minute.
    #[arg(long, default_value_t = 10_000)]
    grants: usize,
    /// Latency the simulator adds to every request.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// How often the sweep looks (`attest serve`: 5 s).
    #[arg(long, default_value_t = 5)]
    tick_secs: u64,
    /// Changes each of the two workers applies at a time (`attest serve`'s default: 4).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub async fn run(context: &Context, args: ExpiryBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.connect().await?;
    store.migrate_up(None).await?;
    let users = (args.grants * 2).max(200);
    let spec = TenantSpec { users, groups: (users / 20).max(20), apps: 5, assignments_per_app: 5, seed: args.seed };
    let started = Instant::now();
    let Throttled { sim, connector, id, throttle, .. } =
        throttled_tenant(&store, spec, args.latency_ms, "bench-expiry").await?;
    // Memberships of users in groups Graph can change, as many as asked.
    let pairs: Vec<(String, String)> = sim.sim.read(|t| {
        t.live_groups()
            .filter(|g| g.accepts_membership_writes())
            .flat_map(|g| {
                g.members
                    .iter()
                    .filter(|m| t.live_user(m).is_some())
                    .map(|m| (g.id.clone(), m.clone()))
                    .collect::<Vec<_>>()
            })
            .take(args.grants)
            .collect()
    });
    anyhow::ensure!(pairs.len() == args.grants, "the tenant has only {} memberships Graph can change", pairs.len());
    let groups: std::collections::BTreeSet<&String> = pairs.iter().map(|(g, _)| g).collect();
    let resources = store.resources().resource_ids_by_external_id(id).await?;
    let principals = store.principals().principal_ids_by_external_id(id).await?;
    let mut member_of = std::collections::HashMap::new();
    for external in groups {
        let resource = resources
            .get(&(ResourceKind::Group, external.clone()))
            .ok_or_else(|| anyhow::anyhow!("group {external} was not synced"))?;
        let entitlement = store
            .resources()
            .list_entitlements(*resource)
            .await?
            .into_iter()
            .find(|e| e.data.key == EntitlementKey::Member)
            .ok_or_else(|| anyhow::anyhow!("group {external} has no membership entitlement"))?;
        member_of.insert(external.clone(), entitlement.id.0);
    }
    let rows: Vec<(i64, i64, String)> =
        pairs.iter().filter_map(|(g, u)| Some((*member_of.get(g)?, principals.get(u)?.0, u.clone()))).collect();
    anyhow::ensure!(rows.len() == args.grants, "only {} of the memberships were synced", rows.len());
    // Every one ends within the same minute, starting 10 s from now.
    let first_end = crate::now() + chrono::Duration::seconds(10);
    let ends: Vec<_> = (0..rows.len())
        .map(|i| first_end + chrono::Duration::milliseconds((i as i64 * 60_000) / rows.len().max(1) as i64))
        .collect();
    store.requests().insert_active_for_benchmark(id, &rows, &ends, crate::now()).await?;
    writeln!(
        out,
        "expiry: {} memberships of a generated tenant ({users} users) synced and recorded as just-in-time grants ending within one minute, in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    )?;
    out.flush()?;

    // `attest serve`'s parts: the sweep on its tick, two provisioner workers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut jobs = tokio::task::JoinSet::new();
    let policy = Policy {
        sensitive: Vec::new(),
        poll: Duration::from_millis(500),
        concurrency: args.concurrency.max(1),
        ..Policy::default()
    };
    for w in 0..2 {
        let worker =
            Provisioner::new(store.clone(), Arc::new(Single(connector.clone())), policy.clone(), format!("bench-{w}"));
        let stopped = stopped.clone();
        jobs.spawn(async move { worker.run(stopped).await });
    }
    let before = sim.sim.stats();
    let clock = Instant::now();
    let tick = Duration::from_secs(args.tick_secs.max(1));
    let mut sweeps = 0u32;
    let open = loop {
        let swept = attest_access::sweep(&store, crate::now()).await?;
        sweeps += 1;
        let (_, open) = store.requests().expiry_delays_for_benchmark().await?;
        if open == 0 {
            break 0;
        }
        if clock.elapsed() > Duration::from_secs(3_600) {
            break open;
        }
        if swept.looked_at < attest_access::BATCH as usize {
            tokio::time::sleep(tick).await;
        }
    };
    let _ = stop.send(true);
    while let Some(done) = jobs.join_next().await {
        done?;
    }
    let after = sim.sim.stats();
    let (mut delays, _) = store.requests().expiry_delays_for_benchmark().await?;
    delays.sort_unstable();
    let pick =
        |q: f64| delays.get(((delays.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0) as f64 / 1000.0;
    let (writes, bound) = quota_bound(&sim, &throttle);
    // The quota's bound on the delay: the burst goes at once, the rest at the refill rate,
    // from the first expiry on; each removal's least delay is its place in that line less
    // its own (spread) expiry.
    let rate = throttle.write_quota / throttle.write_window_secs;
    let least: Vec<f64> = (0..rows.len())
        .map(|i| ((i as f64 - throttle.write_quota).max(0.0) / rate - (i as f64 * 60.0 / rows.len() as f64)).max(0.0))
        .collect();
    let least_max = least.iter().cloned().fold(0.0, f64::max);
    let mut sorted = least.clone();
    sorted.sort_by(f64::total_cmp);
    let least_median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    writeln!(
        out,
        "  removed {} of {} ({} left open) in {:.1} s over {sweeps} sweeps ({} s tick, 2 workers x {}); {writes} accepted writes, {} throttled (429), {} sent inside a Retry-After window",
        delays.len(),
        rows.len(),
        open,
        clock.elapsed().as_secs_f64(),
        args.tick_secs,
        args.concurrency,
        after.throttled - before.throttled,
        after.early_requests - before.early_requests
    )?;
    writeln!(
        out,
        "  delay from expires_at to removal confirmed in Entra: median {:.1} s, p99 {:.1} s, max {:.1} s",
        pick(0.5),
        pick(0.99),
        pick(1.0)
    )?;
    writeln!(
        out,
        "  the write quota's bound ({} writes per {} s, {} ms latency): median at least {least_median:.1} s, max at least {least_max:.1} s \
         ({bound:.1} s of writes past the burst); max is {:.0}% of its bound",
        throttle.write_quota,
        throttle.write_window_secs,
        args.latency_ms,
        if least_max > 0.0 { 100.0 * pick(1.0) / least_max } else { 0.0 }
    )?;
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
