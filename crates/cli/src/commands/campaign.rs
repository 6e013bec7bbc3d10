//! `attest campaign create|list|show|start|items|decide|accept|reassign|close|apply|export`:
//! access review campaigns from the command line, for operators and scripts (`--json`
//! everywhere). A campaign's ID names the campaign; commands about items act on its latest
//! instance.

use std::io::Write;
use std::process::ExitCode;

use attest_domain::review::{Decision, Recommendation};
use attest_review::{Decide, ExportFormat, Reviewer};
use attest_store::{Campaign, Instance, Item, ItemFilter, Store};
use clap::Subcommand;
use serde_json::json;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign from a definition file (TOML; see README).
    Create {
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
        /// Who creates it (for the audit log).
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// Campaigns, newest first, with their latest instance's progress.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One campaign: its definition, instance, progress and reviewers.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Start the next instance: snapshot the grants in scope, resolve reviewers, recommend.
    Start {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// The latest instance's items.
    Items {
        id: i64,
        /// Only this reviewer's (email, user principal name or object id).
        #[arg(long, value_name = "EMAIL")]
        reviewer: Option<String>,
        #[arg(long, value_name = "STATE")]
        state: Option<ItemState>,
        #[arg(long, value_name = "RECOMMENDATION")]
        recommendation: Option<Recommendation>,
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Decide items as a reviewer.
    Decide {
        id: i64,
        /// An item (repeat for several).
        #[arg(long = "item", value_name = "N", required = true)]
        items: Vec<i64>,
        #[arg(long, value_name = "DECISION")]
        decision: DecisionArg,
        /// The reviewer (email, user principal name or object id).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long, value_name = "TEXT", default_value = "")]
        justification: String,
        #[arg(long)]
        json: bool,
    },
    /// Accept the recommendations on a reviewer's pending items (approve and revoke).
    Accept {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// Comment on items as their reviewer.
    Comment {
        id: i64,
        #[arg(long = "item", value_name = "N", required = true)]
        items: Vec<i64>,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long, value_name = "TEXT")]
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Give an item to another reviewer.
    Reassign {
        id: i64,
        #[arg(long = "item", value_name = "N")]
        item: i64,
        /// The reviewer it leaves.
        #[arg(long, value_name = "EMAIL")]
        from: String,
        /// The reviewer it goes to.
        #[arg(long, value_name = "EMAIL")]
        to: String,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// Close the running instance: undecided items take the default decision; with auto_apply,
    /// revocations are queued.
    Close {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// Queue the closed instance's revocations as changes (without auto_apply).
    Apply {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// Export the latest instance's evidence, one row per item.
    Export {
        id: i64,
        #[arg(long, value_name = "FORMAT")]
        format: ExportArg,
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ItemState {
    Pending,
    Approved,
    Revoked,
    /// Answered "not sure".
    #[value(name = "not_sure")]
    NotSure,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DecisionArg {
    Approve,
    Revoke,
    /// "Don't know": recorded, the access is kept; a later stage decides.
    #[value(name = "not_sure")]
    NotSure,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportArg {
    Csv,
    Json,
}

pub async fn run(context: &Context, command: CampaignCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let now = crate::now();
    match command {
        CampaignCommand::Create { file, actor, json } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let definition =
                attest_review::parse_definition(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let campaign = attest_review::create(&store, &definition, &actor, now).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&campaign_json(&store, &campaign).await?)?)?;
            } else {
                writeln!(
                    out,
                    "campaign {} created: {} (start it with `attest campaign start {}`)",
                    campaign.id, campaign.name, campaign.id
                )?;
            }
        }
        CampaignCommand::List { json } => {
            let campaigns = store.reviews().list_campaigns(None).await?;
            let mut rows = Vec::new();
            for c in &campaigns {
                rows.push(campaign_json(&store, c).await?);
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else if rows.is_empty() {
                writeln!(out, "no campaigns: create one with `attest campaign create --file F`")?;
            } else {
                for row in &rows {
                    writeln!(out, "{}", summary(row))?;
                }
            }
        }
        CampaignCommand::Show { id, json } => {
            let campaign = store.reviews().get_campaign(id).await?;
            let mut row = campaign_json(&store, &campaign).await?;
            if let Some(instance) = &campaign.instance {
                let reviewers = store.reviews().pending_by_reviewer(instance.id).await?;
                row["reviewers"] = json!(reviewers
                    .iter()
                    .map(|(object_id, name, email, pending)| json!({"object_id": object_id, "name": name, "email": email, "pending": pending}))
                    .collect::<Vec<_>>());
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&row)?)?;
            } else {
                writeln!(out, "{}", summary(&row))?;
                if let Some(reviewers) = row["reviewers"].as_array() {
                    for r in reviewers {
                        writeln!(
                            out,
                            "  reviewer {} <{}>: {} pending",
                            r["name"].as_str().unwrap_or(""),
                            r["email"].as_str().unwrap_or(""),
                            r["pending"]
                        )?;
                    }
                }
            }
        }
        CampaignCommand::Start { id, actor, json } => {
            let started = attest_review::start(&store, id, &actor, now).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "instance": started.instance,
                        "items": started.items,
                        "reviewers": started.reviewers,
                        "recommended_revoke": started.recommended_revoke,
                    }))?
                )?;
            } else {
                writeln!(
                    out,
                    "campaign {id} instance {} started: {} items for {} reviewers, due {} ({} recommended for revocation)",
                    started.instance.number,
                    started.items,
                    started.reviewers,
                    started.instance.due_at.format("%Y-%m-%d %H:%M UTC"),
                    started.recommended_revoke
                )?;
            }
        }
        CampaignCommand::Items { id, reviewer, state, recommendation, limit, json } => {
            let (campaign, instance) = latest(&store, id).await?;
            let reviewer = match reviewer {
                Some(who) => Some(person(&store, &campaign, &who).await?.object_id),
                None => None,
            };
            let decision = state.map(|s| match s {
                ItemState::Pending => Decision::Pending,
                ItemState::Approved => Decision::Approve,
                ItemState::Revoked => Decision::Revoke,
                ItemState::NotSure => Decision::NotSure,
            });
            let filter = ItemFilter {
                instance: Some(instance.id),
                reviewer,
                decision,
                recommendation,
                limit,
                ..Default::default()
            };
            let items = store.reviews().list_items(&filter).await?;
            if json {
                // What earlier stages decided, for the items past their first.
                let later: Vec<i64> = items.iter().filter(|i| i.stage > 1).map(|i| i.id).collect();
                let mut stages: std::collections::HashMap<i64, Vec<attest_store::StageDecision>> =
                    std::collections::HashMap::new();
                if !later.is_empty() {
                    for d in store.reviews().stage_decisions_on(&later).await? {
                        stages.entry(d.item_id).or_default().push(d);
                    }
                }
                let rows: Vec<_> = items
                    .iter()
                    .map(|i| item_json(i, stages.get(&i.id).map(Vec::as_slice).unwrap_or_default()))
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else if items.is_empty() {
                writeln!(out, "no items")?;
            } else {
                for item in &items {
                    writeln!(out, "{}", item_line(item))?;
                }
            }
        }
        CampaignCommand::Decide { id, items, decision, actor, justification, json } => {
            let (campaign, instance) = latest(&store, id).await?;
            let reviewer = reviewer(&store, &campaign, &actor).await?;
            let decision = match decision {
                DecisionArg::Approve => Decision::Approve,
                DecisionArg::Revoke => Decision::Revoke,
                DecisionArg::NotSure => Decision::NotSure,
            };
            let how = if items.len() > 1 { "bulk" } else { "reviewer" };
            let act = Decide { items: &items, decision, justification: &justification, how };
            let decided = attest_review::decide(&store, instance.id, &reviewer, &act, now).await?;
            if json {
                writeln!(out, "{}", json!({"decided": decided, "decision": decision}))?;
            } else {
                writeln!(out, "{decided} item(s) decided {decision} by {}", reviewer.name)?;
            }
        }
        CampaignCommand::Accept { id, actor, json } => {
            let (campaign, instance) = latest(&store, id).await?;
            let reviewer = reviewer(&store, &campaign, &actor).await?;
            let decided = attest_review::accept_recommendations(&store, instance.id, &reviewer, now).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"decided": decided, "reviewer": reviewer.name, "reviewer_object_id": reviewer.object_id})
                )?;
            } else {
                writeln!(out, "{decided} item(s) decided as recommended by {}", reviewer.name)?;
            }
        }
        CampaignCommand::Comment { id, items, actor, text, json } => {
            let (campaign, _) = latest(&store, id).await?;
            let reviewer = reviewer(&store, &campaign, &actor).await?;
            let done = attest_review::comment(&store, &items, &reviewer, false, &text, now).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"commented": done, "author": reviewer.name, "author_object_id": reviewer.object_id})
                )?;
            } else {
                writeln!(out, "{done} item(s) commented on by {}", reviewer.name)?;
            }
        }
        CampaignCommand::Reassign { id, item, from, to, actor, json } => {
            let (campaign, _) = latest(&store, id).await?;
            let from = person(&store, &campaign, &from).await?;
            let to = attest_review::reassign(&store, item, &from.object_id, &to, &actor, now).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"item": item, "from": from.name, "from_object_id": from.object_id, "to": to.name, "to_object_id": to.object_id})
                )?;
            } else {
                writeln!(out, "item {item} reassigned from {} to {}", from.name, to.name)?;
            }
        }
        CampaignCommand::Close { id, actor, json } => {
            let (_, instance) = latest(&store, id).await?;
            let closed = match attest_review::end_stage(&store, instance.id, &actor, now).await? {
                attest_review::StageEnded::Closed(closed) => closed,
                attest_review::StageEnded::Advanced {
                    closed_stage, stage, reviewed, advanced, stage_due_at, ..
                } => {
                    if json {
                        writeln!(
                            out,
                            "{}",
                            json!({"instance": instance.number, "closed_stage": closed_stage, "stage": stage,
                                "stages": instance.stages, "reviewed": reviewed, "going_on": advanced,
                                "stage_due_at": stage_due_at})
                        )?;
                    } else {
                        writeln!(
                            out,
                            "campaign {id} instance {}: stage {closed_stage} of {} closed; {advanced} of its {reviewed} item(s) \
                             go on to stage {stage}, due {}",
                            instance.number,
                            instance.stages,
                            stage_due_at.format("%Y-%m-%d %H:%M UTC")
                        )?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let progress = store.reviews().progress(instance.id).await?;
            if json {
                let applied = closed.applied.as_ref().map(applied_json);
                writeln!(
                    out,
                    "{}",
                    json!({"instance": instance.number, "defaulted": closed.defaulted,
                        "kept_approvals": closed.kept_approvals, "progress": progress, "applied": applied})
                )?;
            } else {
                writeln!(
                    out,
                    "campaign {id} instance {} closed: {} approved, {} revoked, {} undecided ({} by the default decision)",
                    instance.number, progress.approved, progress.revoked, progress.pending, closed.defaulted
                )?;
                match closed.applied {
                    Some(applied) => writeln!(out, "{}", applied_line(&applied))?,
                    None if progress.revoked > 0 => {
                        writeln!(out, "queue the revocations with `attest campaign apply {id}`")?
                    }
                    None => {}
                }
            }
        }
        CampaignCommand::Apply { id, actor, json } => {
            let (_, instance) = latest(&store, id).await?;
            let applied = attest_review::apply_revocations(&store, instance.id, &actor, now).await?;
            if json {
                writeln!(out, "{}", applied_json(&applied))?;
            } else {
                writeln!(out, "{}", applied_line(&applied))?;
            }
        }
        CampaignCommand::Export { id, format, output, actor } => {
            let (_, instance) = latest(&store, id).await?;
            let format = match format {
                ExportArg::Csv => ExportFormat::Csv,
                ExportArg::Json => ExportFormat::Json,
            };
            let text = attest_review::export(&store, instance.id, format, &actor, now).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?
                }
                None => write!(out, "{text}")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A campaign and its latest instance, or a clear error if it never started.
async fn latest(store: &Store, id: i64) -> anyhow::Result<(Campaign, Instance)> {
    let campaign = store.reviews().get_campaign(id).await?;
    let instance = campaign
        .instance
        .clone()
        .ok_or_else(|| anyhow::anyhow!("campaign {id} has not started: `attest campaign start {id}`"))?;
    Ok((campaign, instance))
}

/// A live user of the campaign's connector, by email, user principal name or object id.
async fn person(store: &Store, campaign: &Campaign, who: &str) -> anyhow::Result<attest_domain::review::Person> {
    store.reviews().people_named(campaign.connector_id, &[who.to_owned()]).await?.into_iter().next().ok_or_else(|| {
        anyhow::anyhow!("{who}: nobody of that email, user principal name or object id in the campaign's connector")
    })
}

/// `--as`: the reviewer deciding, named in the audit log as coming from the command line.
async fn reviewer(store: &Store, campaign: &Campaign, who: &str) -> anyhow::Result<Reviewer> {
    let found = person(store, campaign, who).await?;
    let connector = store.connectors().get_connector(campaign.connector_id).await?;
    let identity = connector.tenant_id.as_ref().map(|t| format!("{t}/{}", found.object_id));
    let address = found.email.clone().unwrap_or_else(|| who.to_owned());
    Ok(Reviewer { object_id: found.object_id, name: format!("{address} (command line)"), identity })
}

async fn campaign_json(store: &Store, c: &Campaign) -> anyhow::Result<serde_json::Value> {
    let progress = match &c.instance {
        Some(instance) => Some(store.reviews().progress(instance.id).await?),
        None => None,
    };
    Ok(json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "connector_id": c.connector_id.0,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "next_start_at": c.next_start_at,
        "definition": c.definition,
        "instance": c.instance,
        "progress": progress,
    }))
}

fn summary(row: &serde_json::Value) -> String {
    let state = row["instance"]["state"].as_str().unwrap_or("draft");
    let progress = &row["progress"];
    let counts = if progress.is_null() {
        String::new()
    } else {
        format!(
            "  {} items: {} pending, {} approved, {} revoked",
            progress["items"], progress["pending"], progress["approved"], progress["revoked"]
        )
    };
    let due = row["instance"]["due_at"].as_str().map(|d| format!("  due {d}")).unwrap_or_default();
    let stages = row["instance"]["stages"].as_i64().unwrap_or(1);
    let stage = if stages > 1 {
        let due = row["instance"]["stage_due_at"].as_str().map(|d| format!(", this stage due {d}")).unwrap_or_default();
        format!("  stage {} of {stages}{due}", row["instance"]["stage"])
    } else {
        String::new()
    };
    format!("#{}  {}  {state}{stage}{due}{counts}", row["id"], row["name"].as_str().unwrap_or(""))
}

fn item_json(i: &Item, earlier_stages: &[attest_store::StageDecision]) -> serde_json::Value {
    json!({
        "id": i.id,
        "principal": {"id": i.principal_id, "object_id": i.principal_object, "name": i.principal_name, "upn": i.principal_upn, "kind": i.principal_kind},
        "resource": {"id": i.resource_id, "object_id": i.resource_object, "name": i.resource_name, "kind": i.resource_kind},
        "entitlement": i.entitlement_name,
        "held": i.held_as,
        "via": i.via_name,
        "reviewers": i.reviewers(),
        "recommendation": i.recommendation,
        "recommendation_reason": i.recommendation_reason,
        "decision": i.decision,
        "justification": i.justification,
        "decided_by": i.decided_by,
        "decided_at": i.decided_at,
        "revoke_blocked": i.revoke_blocked,
        "change_id": i.change_id,
        "applied": i.outcome(),
        "apply_error": i.outcome_error(),
        "stage": i.stage,
        "earlier_stages": earlier_stages,
    })
}

fn item_line(i: &Item) -> String {
    let reviewers: Vec<String> = i.reviewers().into_iter().map(|r| r.email.unwrap_or(r.name)).collect();
    let applied = i.outcome().map(|o| format!("  applied: {o}")).unwrap_or_default();
    format!(
        "#{}  {}  {} on {} ({})  recommend {} ({})  reviewers {}{}",
        i.id,
        i.decision,
        i.principal_name,
        i.resource_name,
        i.entitlement_name,
        i.recommendation,
        i.recommendation_reason,
        reviewers.join(", "),
        applied
    )
}

fn applied_json(a: &attest_review::Applied) -> serde_json::Value {
    json!({"queued": a.queued, "already_removed": a.already_removed, "not_found": a.not_found, "failed": a.failed})
}

fn applied_line(a: &attest_review::Applied) -> String {
    format!(
        "revocations: {} queued as changes, {} already removed, {} gone with a deleted principal or resource, {} cannot be applied through Graph (see `attest campaign items`)",
        a.queued, a.already_removed, a.not_found, a.failed
    )
}
