//! `attest sync [NAME] [--full]`: reads directories into the entitlement graph.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use attest_config::secrets::SecretKey;
use attest_connector::SyncOutcome;
use attest_domain::{Connector, SyncCounts, SyncMode, SyncTrigger};
use attest_server::sync_job::Syncer;
use clap::Args;
use serde_json::json;

use super::Context;
use super::connector::find;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The connector to sync (default: every connector).
    name: Option<String>,
    /// Read everything instead of the changes since the last sync.
    #[arg(long)]
    full: bool,
    /// Print the run records as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

pub async fn run(context: &Context, args: SyncArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let connectors = match &args.name {
        Some(name) => vec![find(&store, name).await?],
        None => store.connectors().list_connectors().await?,
    };
    if connectors.is_empty() {
        anyhow::bail!("there are no connectors to sync: add one with `attest connector add entra`");
    }
    let key = Arc::new(SecretKey::load(&context.config.secret_key_file)?);
    let owner = format!("cli:{}", attest_server::instance_name());
    let syncer = Syncer { store: store.clone(), key, clock: attest_domain::clock::system(), owner };
    let mode = if args.full { SyncMode::Full } else { SyncMode::Delta };
    let mut failed = false;
    let mut runs = Vec::new();
    for connector in &connectors {
        match sync_one(&syncer, connector, mode, args.json).await {
            Ok(outcome) => {
                if !args.json {
                    summary(&connector.name, &outcome, out)?;
                }
                runs.push(
                    json!({"connector": connector.name, "fell_back": outcome.fell_back, "run": outcome.summary.run}),
                );
            }
            Err(e) => {
                failed = true;
                if !args.json {
                    writeln!(out, "{}: sync failed: {e:#}", connector.name)?;
                }
                runs.push(json!({"connector": connector.name, "error": format!("{e:#}")}));
            }
        }
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn sync_one(syncer: &Syncer, connector: &Connector, mode: SyncMode, quiet: bool) -> anyhow::Result<SyncOutcome> {
    let terminal = !quiet && std::io::stderr().is_terminal();
    let progress: Option<attest_connector::ProgressFn> = terminal.then(|| {
        let name = connector.name.clone();
        Arc::new(move |counts: &SyncCounts| {
            let grants = counts.grants.added + counts.grants.changed + counts.grants.unchanged;
            let principals = counts.principals.added + counts.principals.changed + counts.principals.unchanged;
            eprint!("\r{name}: {principals} principals, {grants} grants read…");
        }) as attest_connector::ProgressFn
    });
    let result = syncer.sync(connector, mode, SyncTrigger::Cli, progress).await;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    Ok(result?)
}

fn summary(name: &str, outcome: &SyncOutcome, out: &mut dyn Write) -> std::io::Result<()> {
    let run = &outcome.summary.run;
    let seconds = run.finished_at.map(|f| (f - run.started_at).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0);
    writeln!(
        out,
        "{name}: {} sync finished in {seconds:.1} s ({} Graph requests, {} resource units)",
        run.mode, run.requests, run.resource_units
    )?;
    let c = &run.counts;
    for (kind, k) in [
        ("principals", c.principals),
        ("resources", c.resources),
        ("entitlements", c.entitlements),
        ("grants", c.grants),
        ("inherited grants", c.inherited_grants),
    ] {
        writeln!(out, "  {kind:<17} +{} ~{} -{} ({} unchanged)", k.added, k.changed, k.removed, k.unchanged)?;
    }
    if let Some(reason) = &outcome.fell_back {
        writeln!(out, "  ran as a full sync: {reason}")?;
    }
    for note in &run.notes {
        writeln!(out, "  note: {note}")?;
    }
    Ok(())
}
