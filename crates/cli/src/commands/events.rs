//! `attest events`: the lifecycle events syncs appended (principals created, disabled, enabled,
//! deleted, restored; memberships and assignments added and removed), oldest first.

use std::io::Write;
use std::process::ExitCode;

use attest_domain::{LifecycleEventId, LifecycleEventKind};
use attest_store::{LifecycleEventView, LifecycleFilter};
use clap::Args;

use super::Context;
use super::connector::find;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this connector's events (default: all).
    #[arg(long, value_name = "NAME")]
    connector: Option<String>,
    /// Only events of these kinds (repeat or comma-separate), e.g. `principal_disabled,membership_removed`.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    kind: Vec<LifecycleEventKind>,
    /// Only events after this id: a script remembers the last id it handled.
    #[arg(long, value_name = "ID")]
    after: Option<i64>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Print a JSON array instead of one line per event.
    #[arg(long)]
    json: bool,
}

pub async fn run(context: &Context, args: EventsArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let connector = match &args.connector {
        Some(name) => Some(find(&store, name).await?.id),
        None => None,
    };
    let filter = LifecycleFilter {
        connector,
        after: args.after.map(LifecycleEventId),
        kinds: args.kind,
        principal: None,
        limit: args.limit,
    };
    let events = store.lifecycle().list_lifecycle_events(&filter).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&events)?)?;
    } else if events.is_empty() {
        writeln!(out, "no lifecycle events (a connector's first sync appends none; later syncs append what changed)")?;
    } else {
        for event in &events {
            writeln!(out, "{}", line(event))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `#12  2026-11-22T02:00:00Z  membership_added  user Ada Lovelace (ada@contoso.com)  group Finance: member`
fn line(e: &LifecycleEventView) -> String {
    let who = match &e.principal_upn {
        Some(upn) => format!("{} {} ({upn})", e.principal_kind, e.principal_name),
        None => format!("{} {} ({})", e.principal_kind, e.principal_name, e.principal_external_id),
    };
    let mut text = format!(
        "#{}  {}  {}  {who}",
        e.event.id.0,
        e.event.detected_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        e.event.kind
    );
    if let (Some(kind), Some(name), Some(key)) = (&e.resource_kind, &e.resource_name, &e.entitlement_key) {
        text.push_str(&format!("  {kind} {name}: {key}"));
    }
    text
}
