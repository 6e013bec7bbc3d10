//! `attest bench web`: the pages people wait on, under load. A generated tenant (100,000 users
//! by default) is synced into the database, `attest serve` is booted on it through the same
//! `run` function, an administrator signs in, and a load generator in this process keeps 50
//! requests in flight against each page in turn: the people search, a person's page (their
//! access and why), and the dashboard. Prints p50/p95/p99 latency and requests per second.
//!
//! The load generator shares the machine (and its two cores) with the server: the figures are
//! what one small box serving itself can do, not the server alone.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_connector::run_sync;
use attest_domain::{PrincipalKind, SyncMode, SyncTrigger};
use attest_entra::{EntraConnector, EntraSettings};
use attest_entra_sim::{ClientApp, SimOptions, TenantSpec, generate, spawn_with};
use attest_store::{NewConnector, Store};
use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::sync::client_for;
use crate::commands::Context;

/// The connector this benchmark syncs into (and reuses with `--reuse`).
const CONNECTOR: &str = "bench-web";

#[derive(Debug, Args)]
pub struct WebBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 20_000)]
    groups: usize,
    #[arg(long, default_value_t = 2_000)]
    apps: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// How long each page is driven.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Use the tenant a previous run synced into this database instead of syncing again.
    #[arg(long)]
    reuse: bool,
    /// The load generator: `wrk` (Debian's; lighter, so more of the two cores serve pages) or
    /// `rust` (a reqwest client in this process). Default: wrk when installed.
    #[arg(long)]
    driver: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(context: &Context, args: WebBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.connect().await?;
    store.migrate_up(None).await?;
    let existing = store.connectors().find_connector_by_name(CONNECTOR).await?;
    let connector = match existing {
        Some(c) if args.reuse && c.last_full_sync_at.is_some() => {
            writeln!(
                out,
                "bench web: reusing connector {CONNECTOR} ({} principals)",
                store.principals().count_principals(c.id).await?
            )?;
            c
        }
        Some(_) => {
            anyhow::bail!("connector {CONNECTOR} exists in this database: pass --reuse, or use a fresh database")
        }
        None => sync_tenant(&store, &args, out).await?,
    };

    // Serve it, exactly as `attest serve` does.
    let config = context.config.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(attest_server::run(config, attest_domain::clock::system(), listener, async move {
        let _ = stopped.await;
    }));
    let cookie = sign_in_administrator(&store, &base).await?;

    // What people ask for: name fragments, a random person, the dashboard.
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut people = Vec::new();
    let mut page = 0;
    while people.len() < 2_000 {
        let batch = store.principals().list_principals(connector.id, Some(PrincipalKind::User), page, 1_000).await?;
        if batch.is_empty() {
            break;
        }
        people.extend(batch);
        page += 1;
    }
    anyhow::ensure!(!people.is_empty(), "the tenant has no users");
    let searches: Vec<String> = (0..500)
        .map(|_| {
            let name = &people[rng.random_range(0..people.len())].data.display_name;
            let word = name.split_whitespace().last().unwrap_or(name);
            let fragment: String = word.chars().take(rng.random_range(3..=6)).collect();
            format!("/people?q={}", url::form_urlencoded::byte_serialize(fragment.as_bytes()).collect::<String>())
        })
        .collect();
    let principals: Vec<String> =
        (0..500).map(|_| format!("/principals/{}", people[rng.random_range(0..people.len())].id.0)).collect();
    let dashboard = vec!["/".to_owned()];

    let driver = Driver::choose(args.driver.as_deref())?;
    writeln!(
        out,
        "load: {} requests in flight, {} s per page, on {base}, driven by {}",
        args.connections,
        args.seconds,
        driver.name()
    )?;
    writeln!(
        out,
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>14}",
        "page", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s", "errors", "cold first ms"
    )?;
    for (name, paths) in [("people search", &searches), ("a person's page", &principals), ("dashboard", &dashboard)] {
        // The first request builds what the page caches (the people index, the totals): timed
        // on its own, then the page is measured warm.
        let first = first_request(&base, &cookie, &paths[0]).await?;
        let duration = Duration::from_secs(args.seconds);
        let figures = driver.drive(&base, &cookie, paths, args.connections, duration).await?;
        writeln!(
            out,
            "{name:<22} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>7} {:>14.0}",
            figures.requests,
            figures.p50,
            figures.p95,
            figures.p99,
            figures.requests as f64 / figures.elapsed,
            figures.errors,
            first
        )?;
    }
    let _ = stop.send(());
    server.await??;
    Ok(ExitCode::SUCCESS)
}

/// Generates the tenant and syncs it through the real connector (no added latency: the sync is
/// setup here, `bench sync` measures it).
async fn sync_tenant(
    store: &Store,
    args: &WebBenchArgs,
    out: &mut dyn Write,
) -> anyhow::Result<attest_domain::Connector> {
    let spec = TenantSpec {
        users: args.users,
        groups: args.groups,
        apps: args.apps,
        assignments_per_app: 50,
        seed: args.seed,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = spawn_with(listener, generate(spec), ClientApp::attest(args.seed), SimOptions::default()).await?;
    let connector = store.connectors().create_connector(NewConnector::entra(CONNECTOR), crate::now()).await?;
    let entra = EntraConnector::new(client_for(&sim)?, EntraSettings::default());
    let started = Instant::now();
    let outcome =
        run_sync(&entra, store, connector.id, SyncMode::Full, SyncTrigger::Bench, &attest_domain::SystemClock, None)
            .await?;
    writeln!(
        out,
        "bench web: synced {} users, {} groups, {} apps in {:.1} s ({} grants written)",
        args.users,
        args.groups,
        args.apps,
        started.elapsed().as_secs_f64(),
        outcome.summary.run.counts.grants.written()
    )?;
    sim.shutdown().await;
    Ok(store.connectors().get_connector(connector.id).await?)
}

/// A session for the break-glass administrator, through a one-time login link.
async fn sign_in_administrator(store: &Store, base: &str) -> anyhow::Result<String> {
    let token = attest_server::session::random_token().map_err(|e| anyhow::anyhow!(e))?;
    let expires = crate::now() + chrono::Duration::minutes(5);
    store.web().create_login_link(&attest_server::session::hash(&token), "bench", expires).await?;
    let client = attest_http::client_builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let response = client.get(format!("{base}/auth/link/{token}")).send().await?;
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("the login link gave no session ({})", response.status()))?;
    Ok(cookie.to_owned())
}

/// The load generator of the benches that drive pages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Driver {
    Wrk,
    Rust,
}

impl Driver {
    /// `--driver wrk|rust`; by default wrk when installed.
    pub(super) fn choose(asked: Option<&str>) -> anyhow::Result<Driver> {
        Ok(match asked {
            Some("wrk") => Driver::Wrk,
            Some("rust") => Driver::Rust,
            Some(other) => anyhow::bail!("--driver: expected wrk or rust, got '{other}'"),
            None if which_wrk().is_some() => Driver::Wrk,
            None => Driver::Rust,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Driver::Wrk => "wrk",
            Driver::Rust => "a reqwest client in this process",
        }
    }

    /// `connections` requests in flight over `paths` for `duration`.
    pub(super) async fn drive(
        self,
        base: &str,
        cookie: &str,
        paths: &[String],
        connections: usize,
        duration: Duration,
    ) -> anyhow::Result<Figures> {
        match self {
            Driver::Rust => drive(base, cookie, paths, connections, duration).await,
            Driver::Wrk => drive_wrk(base, cookie, paths, connections, duration).await,
        }
    }
}

fn which_wrk() -> Option<&'static str> {
    ["/usr/bin/wrk", "/usr/local/bin/wrk"].into_iter().find(|p| std::path::Path::new(p).exists())
}

/// What one page did under load; latencies in milliseconds.
/// One request, timed, in milliseconds.
async fn first_request(base: &str, cookie: &str, path: &str) -> anyhow::Result<f64> {
    let client = attest_http::client()?;
    let started = Instant::now();
    let response = client.get(format!("{base}{path}")).header(reqwest::header::COOKIE, cookie).send().await?;
    anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
    response.bytes().await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

pub(super) struct Figures {
    pub requests: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub errors: u64,
    pub elapsed: f64,
}

/// The `p` quantile of sorted latencies (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs wrk (two threads, `connections` connections) over `paths` in turn, with the session
/// cookie; a Lua script rotates the paths and reports the figures.
async fn drive_wrk(
    base: &str,
    cookie: &str,
    paths: &[String],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let wrk = which_wrk().ok_or_else(|| anyhow::anyhow!("wrk is not installed (apt-get install wrk)"))?;
    let quoted: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    let script = format!(
        r#"local paths = {{ {} }}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {{ ["Cookie"] = {cookie:?} }})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FIGURES %d %.3f %.3f %.3f %d %.3f\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration / 1000000))
end
"#,
        quoted.join(", ")
    );
    let file = std::env::temp_dir().join(format!("attest-bench-web-{}.lua", std::process::id()));
    std::fs::write(&file, script)?;
    let output = tokio::process::Command::new(wrk)
        .args(["-t2", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs().max(1)), "--timeout", "10s"])
        .arg("-s")
        .arg(&file)
        .arg(base)
        .output()
        .await?;
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FIGURES "))
        .ok_or_else(|| anyhow::anyhow!("wrk gave no figures: {stdout} {}", String::from_utf8_lossy(&output.stderr)))?;
    let f: Vec<f64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    anyhow::ensure!(f.len() == 6, "wrk's figures are not what the script writes: {line}");
    Ok(Figures { requests: f[0] as u64, p50: f[1], p95: f[2], p99: f[3], errors: f[4] as u64, elapsed: f[5] })
}

/// Keeps `connections` requests in flight over `paths` (round robin) for `duration`.
pub(super) async fn drive(
    base: &str,
    cookie: &str,
    paths: &[String],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let client = attest_http::client_builder().pool_max_idle_per_host(connections).build()?;
    let paths: Arc<Vec<String>> = Arc::new(paths.iter().map(|p| format!("{base}{p}")).collect());
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..connections {
        let (client, paths, cookie) = (client.clone(), paths.clone(), cookie.to_owned());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = worker;
            while Instant::now() < deadline {
                let url = &paths[i % paths.len()];
                i += connections;
                let sent = Instant::now();
                let ok = match client.get(url).header(reqwest::header::COOKIE, &cookie).send().await {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        });
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, failed) = done?;
        all.extend(latencies);
        errors += failed;
    }
    all.sort_by(f64::total_cmp);
    Ok(Figures {
        requests: all.len() as u64,
        p50: percentile(&all, 0.50),
        p95: percentile(&all, 0.95),
        p99: percentile(&all, 0.99),
        errors,
        elapsed: started.elapsed().as_secs_f64(),
    })
}
