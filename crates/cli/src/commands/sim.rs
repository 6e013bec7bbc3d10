//! `attest sim`: run the Entra simulator on its own, for trying the connector by hand.

use std::io::Write;
use std::process::ExitCode;

use attest_entra_sim::{ClientApp, FaultPlan, SimOptions, TenantSpec, ThrottleConfig, generate, spawn_with};
use clap::Args;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Users to generate.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Groups to generate.
    #[arg(long, default_value_t = 100)]
    groups: usize,
    /// Enterprise applications to generate.
    #[arg(long, default_value_t = 20)]
    apps: usize,
    /// Seed: the same seed gives the same tenant, ids included.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use this tenant id instead of the generated one.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Use this client id instead of a generated one.
    #[arg(long)]
    client_id: Option<String>,
    /// Use this client secret instead of a generated one.
    #[arg(long)]
    client_secret: Option<String>,
    /// Throttle Graph requests as Microsoft does (resource-unit token bucket per app and
    /// tenant, 429 with Retry-After).
    #[arg(long)]
    throttle: bool,
    /// Milliseconds added to every Graph request, as a network round trip.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share (0-1) of Graph requests given a random transient fault (503/504 with or without
    /// Retry-After, 429 without Retry-After, dropped connection, slow response, replayed delta
    /// page), seeded by --seed. Injected faults are listed at /_sim/faults.
    #[arg(long, default_value_t = 0.0, value_parser = fault_rate)]
    fault_rate: f64,
    /// Print the connection details as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: SimArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let mut tenant = generate(TenantSpec {
        users: args.users,
        groups: args.groups,
        apps: args.apps,
        seed: args.seed,
        ..TenantSpec::default()
    });
    if let Some(id) = args.tenant_id {
        tenant.id = id;
    }
    let mut client = ClientApp::attest(args.seed).with_provisioning();
    if let Some(id) = args.client_id {
        client.client_id = id;
    }
    if let Some(secret) = args.client_secret {
        client.client_secret = secret;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let options = SimOptions {
        throttle: args.throttle.then(ThrottleConfig::default),
        latency: std::time::Duration::from_millis(args.latency_ms),
        faults: FaultPlan::random(args.seed, args.fault_rate),
        ..SimOptions::default()
    };
    let sim = spawn_with(listener, tenant, client.clone(), options).await?;
    let details = serde_json::json!({
        "graph_url": sim.graph_url,
        "login_url": sim.login_url,
        "tenant_id": sim.tenant_id(),
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    });
    if args.json {
        writeln!(out, "{details}")?;
    } else {
        writeln!(out, "Entra simulator running (Ctrl-C to stop)")?;
        for key in ["graph_url", "login_url", "tenant_id", "client_id", "client_secret"] {
            writeln!(out, "  {key:<14} {}", details[key].as_str().unwrap_or_default())?;
        }
    }
    out.flush()?;
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn fault_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("expected a share between 0 and 1, got '{text}'")),
    }
}
