//! `attest request create|list|show|approve|deny|cancel|revoke|extend` and `attest policy
//! set|show`: just-in-time access from the command line, for operators and scripts (`--json`
//! everywhere). `--as` names a person of the directory (email, user principal name or object
//! id) and is held to the same rules as on the pages: nobody approves their own request, only
//! approvers approve, only the holder, an approver or an administrator ends access early.

use std::io::Write;
use std::process::ExitCode;

use attest_access::{Actor, Ask, Requester};
use attest_domain::ConnectorId;
use attest_domain::access::{AccessPolicy, Approver, EntitlementRef, Length, RequestState, Span};
use attest_store::{Request, RequestFilter, Store};
use clap::Subcommand;
use serde_json::json;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for access, for a while, under the entitlement's policy.
    Create {
        /// Who asks (email, user principal name or object id).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// group:<name or id>:member|owner, app:<name or id>:role:<role>|owner, role:<name or id>:active|eligible
        #[arg(long, value_name = "ENT")]
        entitlement: String,
        /// 90m, 8h, 1d, 2w (up to the policy's maximum), or permanent where allowed.
        #[arg(long, value_name = "D")]
        duration: String,
        #[arg(long, value_name = "T", default_value = "")]
        justification: String,
        #[arg(long, value_name = "REF")]
        ticket: Option<String>,
        /// Start later (RFC 3339, e.g. 2026-12-24T08:00:00Z) rather than once approved.
        #[arg(long, value_name = "TIME")]
        starts_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Only say whether it would be approved, by whom, for how long.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Requests, newest first.
    List {
        #[arg(long, value_name = "S")]
        state: Option<RequestState>,
        /// Only this person's requests.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
        /// Only those waiting for this approver.
        #[arg(long, value_name = "EMAIL")]
        awaiting: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// One request, with its approvers and timeline.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Approve as an approver of the request's current stage.
    Approve {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long, value_name = "T", default_value = "")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Deny, with a reason.
    Deny {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long, value_name = "T")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw your own request before it is decided.
    Cancel {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// End access early: its holder (relinquish), an approver or an administrator.
    Revoke {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long, value_name = "T", default_value = "")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask to keep time-bound access longer (the same policy and approvals).
    Extend {
        id: i64,
        #[arg(long, value_name = "D")]
        duration: String,
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        #[arg(long, value_name = "T", default_value = "")]
        justification: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set an entitlement's request policy (unset flags keep their current value).
    Set {
        /// The entitlement, named as for `attest request create`.
        entitlement: String,
        #[command(flatten)]
        flags: PolicyFlags,
    },
    /// Set the default policy of a kind of resource (group, application, directory_role) in a
    /// connector: entitlements without their own policy follow it, and the shorter maximum of
    /// the two wins for those with one.
    Default {
        #[arg(value_name = "KIND")]
        kind: attest_domain::ResourceKind,
        /// The connector (by name); needed when there are several.
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        #[command(flatten)]
        flags: PolicyFlags,
    },
    /// The policy that applies to an entitlement.
    Show {
        entitlement: String,
        #[arg(long)]
        json: bool,
    },
}

/// A policy's settings on the command line; unset ones keep their value.
#[derive(Debug, clap::Args)]
pub struct PolicyFlags {
    #[arg(long, value_name = "D")]
    max_duration: Option<String>,
    /// manager, owners, people's emails, group:NAME; comma separated.
    #[arg(long, value_name = "LIST")]
    approvers: Option<String>,
    /// A second approval stage's approvers (empty: one stage).
    #[arg(long, value_name = "LIST")]
    second_stage: Option<String>,
    /// Approvals each stage needs.
    #[arg(long, value_name = "N")]
    quorum: Option<u32>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    auto_approve: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    requestable: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    permanent_allowed: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    justification_required: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    ticket_required: Option<bool>,
    /// Shortcuts offered in the request form, comma separated (8h,1d,7d).
    #[arg(long, value_name = "LIST")]
    presets: Option<String>,
    /// Denied when unanswered for this long (default 7d).
    #[arg(long, value_name = "D")]
    approval_timeout: Option<String>,
    /// Only members of this group may ask (`everyone` for all).
    #[arg(long, value_name = "GROUP")]
    requesters: Option<String>,
    #[arg(long, value_name = "BOOL")]
    guests_allowed: Option<bool>,
    /// Access changed in Entra outside Attest (given again after its end, made permanent or
    /// extended there) is removed again, not only shown.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    authoritative: Option<bool>,
    /// Directory roles' active assignment: an eligible requester activates it in Entra
    /// themselves once approved (PIM), from the request's page.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    self_activate: Option<bool>,
    #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
    actor: String,
    #[arg(long)]
    json: bool,
}

impl PolicyFlags {
    /// `policy` with these flags applied.
    fn apply(&self, mut policy: AccessPolicy) -> anyhow::Result<AccessPolicy> {
        if let Some(d) = &self.max_duration {
            policy.max_duration = Some(d.parse()?);
        }
        if let Some(list) = &self.approvers {
            policy.approvers = approver_list(list);
        }
        if let Some(list) = &self.second_stage {
            policy.second_stage = approver_list(list);
        }
        if let Some(n) = self.quorum {
            policy.quorum = n;
        }
        if let Some(v) = self.auto_approve {
            policy.auto_approve = v;
        }
        if let Some(v) = self.requestable {
            policy.requestable = v;
        }
        if let Some(v) = self.permanent_allowed {
            policy.permanent_allowed = v;
        }
        if let Some(v) = self.justification_required {
            policy.justification_required = v;
        }
        if let Some(v) = self.ticket_required {
            policy.ticket_required = v;
        }
        if let Some(list) = &self.presets {
            policy.presets =
                list.split(',').filter(|p| !p.trim().is_empty()).map(str::parse).collect::<Result<_, _>>()?;
        }
        if let Some(d) = &self.approval_timeout {
            policy.approval_timeout = d.parse()?;
        }
        if let Some(group) = &self.requesters {
            policy.requesters = match group.trim() {
                "" | "everyone" => attest_domain::access::Requesters::Everyone,
                group => attest_domain::access::Requesters::GroupMembers(group.to_owned()),
            };
        }
        if let Some(v) = self.guests_allowed {
            policy.guests_allowed = v;
        }
        if let Some(v) = self.authoritative {
            policy.authoritative = v;
        }
        if let Some(v) = self.self_activate {
            policy.self_activate = v;
        }
        Ok(policy)
    }
}

pub async fn run(context: &Context, command: RequestCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let now = crate::now();
    let (request, json_out) = match command {
        RequestCommand::Create { actor, entitlement, duration, justification, ticket, starts_at, dry_run, json } => {
            let name: EntitlementRef = entitlement.parse()?;
            let (entitlement, _) = attest_access::resolve(&store, None, &name).await?;
            let asker = requester(&store, entitlement.connector_id, &actor).await?;
            let ask = Ask {
                entitlement: entitlement.id,
                length: duration.parse::<Length>()?,
                justification,
                ticket,
                starts_at,
            };
            if dry_run {
                let plan = attest_access::plan(&store, &asker, &ask, now).await?;
                if json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?;
                } else if plan.auto_approved {
                    writeln!(out, "would be approved at once (auto-approve), for {}", ask.length.words())?;
                } else {
                    for (n, stage) in plan.stages.iter().enumerate() {
                        let names: Vec<&str> = stage.iter().map(|p| p.name.as_str()).collect();
                        writeln!(out, "stage {}: {} of {} approve", n + 1, plan.quorum, names.join(", "))?;
                    }
                    writeln!(out, "for {} (at most {})", ask.length.words(), plan.max_duration.words())?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            (attest_access::request(&store, &asker, &ask, now).await?, json)
        }
        RequestCommand::List { state, actor, awaiting, limit, json } => {
            let mut filter = RequestFilter { state, limit, ..Default::default() };
            if let Some(who) = actor {
                filter.requester = Some(anyone(&store, &who).await?);
            }
            if let Some(who) = awaiting {
                filter.awaiting = Some(anyone(&store, &who).await?);
            }
            let requests = store.requests().list_requests(&filter).await?;
            if json {
                let rows: Vec<_> = requests.iter().map(request_json).collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else if requests.is_empty() {
                writeln!(out, "no requests")?;
            } else {
                for r in &requests {
                    writeln!(out, "{}", line(r))?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        RequestCommand::Show { id, json } => {
            let request = store.requests().get_request(id).await?;
            let approvers = store.requests().approvers(id).await?;
            if json {
                let mut row = request_json(&request);
                row["approvers"] = serde_json::to_value(&approvers)?;
                writeln!(out, "{}", serde_json::to_string_pretty(&row)?)?;
            } else {
                writeln!(out, "{}", line(&request))?;
                writeln!(out, "  justification: {}", request.justification)?;
                for a in &approvers {
                    let said = match a.approve {
                        Some(true) => "approved",
                        Some(false) => "denied",
                        None => "not yet",
                    };
                    writeln!(out, "  stage {} approver {}: {said}", a.stage, a.name)?;
                }
                if let Some(reason) = &request.end_reason {
                    writeln!(out, "  {reason}")?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        RequestCommand::Approve { id, actor, reason, json } => {
            let actor = acting(&store, id, &actor).await?;
            (attest_access::decide(&store, id, &actor, true, &reason, now).await?.request, json)
        }
        RequestCommand::Deny { id, actor, reason, json } => {
            let actor = acting(&store, id, &actor).await?;
            (attest_access::decide(&store, id, &actor, false, &reason, now).await?.request, json)
        }
        RequestCommand::Cancel { id, actor, json } => {
            let actor = acting(&store, id, &actor).await?;
            (attest_access::cancel(&store, id, &actor, now).await?, json)
        }
        RequestCommand::Revoke { id, actor, reason, json } => {
            let actor = acting(&store, id, &actor).await?;
            (attest_access::revoke(&store, id, &actor, &reason, now).await?, json)
        }
        RequestCommand::Extend { id, duration, actor, justification, json } => {
            let held = store.requests().get_request(id).await?;
            let asker = requester(&store, ConnectorId(held.connector_id), &actor).await?;
            let span: Span = duration.parse()?;
            (attest_access::extend(&store, id, &asker, span, &justification, now).await?, json)
        }
    };
    if json_out {
        writeln!(out, "{}", serde_json::to_string_pretty(&request_json(&request))?)?;
    } else {
        writeln!(out, "{}", line(&request))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn policy(context: &Context, command: PolicyCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let now = crate::now();
    match command {
        PolicyCommand::Show { entitlement, json } => {
            let name: EntitlementRef = entitlement.parse()?;
            let (entitlement, resource) = attest_access::resolve(&store, None, &name).await?;
            let policy = attest_access::policy_of(&store, &entitlement, &resource).await?;
            print_policy(out, &name.to_string(), &policy, json)?;
        }
        PolicyCommand::Set { entitlement, flags } => {
            let name: EntitlementRef = entitlement.parse()?;
            let (entitlement, resource) = attest_access::resolve(&store, None, &name).await?;
            let current = store
                .requests()
                .policy(entitlement.connector_id, attest_store::PolicyScope::Entitlement(entitlement.id))
                .await?
                .unwrap_or_else(|| AccessPolicy { requestable: true, ..Default::default() });
            let policy = flags.apply(current)?;
            attest_access::set_policy(&store, &entitlement, &resource, &policy, &flags.actor, now).await?;
            let effective = attest_access::policy_of(&store, &entitlement, &resource).await?;
            print_policy(out, &name.to_string(), &effective, flags.json)?;
        }
        PolicyCommand::Default { kind, connector, flags } => {
            let connectors = store.connectors().list_connectors().await?;
            let chosen = match &connector {
                Some(name) => connectors.iter().find(|c| &c.name == name),
                None if connectors.len() == 1 => connectors.first(),
                None => anyhow::bail!(
                    "--connector: name one of {}",
                    connectors.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
            .ok_or_else(|| anyhow::anyhow!("no connector named {}", connector.unwrap_or_default()))?;
            let scope = attest_store::PolicyScope::Kind(kind);
            let current = store
                .requests()
                .policy(chosen.id, scope)
                .await?
                .unwrap_or_else(|| AccessPolicy { requestable: true, ..Default::default() });
            let policy = flags.apply(current)?;
            policy.check()?;
            store.requests().set_policy(chosen.id, scope, &policy, &flags.actor, now).await?;
            print_policy(
                out,
                &format!("every {} in {}", kind.as_str().replace('_', " "), chosen.name),
                &policy,
                flags.json,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn approver_list(list: &str) -> Vec<Approver> {
    list.split(',').filter_map(Approver::parse).collect()
}

fn print_policy(out: &mut dyn Write, name: &str, policy: &AccessPolicy, json: bool) -> anyhow::Result<()> {
    if json {
        let mut row = serde_json::to_value(policy)?;
        row["entitlement"] = json!(name);
        row["effective_max_duration"] = json!(policy.cap());
        row["offered_presets"] = json!(policy.offered_presets());
        writeln!(out, "{}", serde_json::to_string_pretty(&row)?)?;
        return Ok(());
    }
    let approvers: Vec<String> = policy.approvers.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "{name}: {}, at most {}, approvers {}{}{}",
        if policy.requestable { "requestable" } else { "not requestable" },
        policy.cap(),
        if policy.auto_approve { "none (auto-approve)".to_owned() } else { approvers.join(",") },
        if policy.second_stage.is_empty() {
            String::new()
        } else {
            format!(", then {}", policy.second_stage.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
        },
        if policy.quorum > 1 { format!(", {} approvals per stage", policy.quorum) } else { String::new() },
    )?;
    Ok(())
}

/// Anyone of any connector, by email, user principal name or object id: their object id.
async fn anyone(store: &Store, who: &str) -> anyhow::Result<String> {
    for connector in store.connectors().list_connectors().await? {
        if let Ok(person) = attest_access::person(store, connector.id, who).await {
            return Ok(person.object_id);
        }
    }
    anyhow::bail!("{who}: nobody of that email, user principal name or object id in any directory")
}

/// `--as` asking in a connector, named in the audit log as coming from the command line.
async fn requester(store: &Store, connector: ConnectorId, who: &str) -> anyhow::Result<Requester> {
    Ok(attest_access::requester(store, connector, who, |p| cli_name(p, who)).await?)
}

/// `--as` acting on request `id`: an administrator if Attest says so.
async fn acting(store: &Store, id: i64, who: &str) -> anyhow::Result<Actor> {
    let request = store.requests().get_request(id).await?;
    let connector = ConnectorId(request.connector_id);
    let person = attest_access::person(store, connector, who).await?;
    let tenant = store.connectors().get_connector(connector).await?.tenant_id;
    let administrator = match tenant {
        Some(tenant) => store
            .web()
            .find_web_user(&tenant, &person.object_id)
            .await?
            .is_some_and(|u| u.roles.iter().any(|r| r == "admin")),
        None => false,
    };
    let by = cli_name(&person, who);
    Ok(Actor { person, by, administrator })
}

fn cli_name(person: &attest_domain::review::Person, who: &str) -> String {
    format!("{} (command line)", person.email.clone().unwrap_or_else(|| who.to_owned()))
}

fn request_json(r: &Request) -> serde_json::Value {
    let mut row = serde_json::to_value(r).unwrap_or_default();
    row["duration"] = json!(r.duration_minutes.map(|m| Span::minutes(m).to_string()).unwrap_or("permanent".into()));
    row["entitlement"] = json!(r.describe());
    row
}

fn line(r: &Request) -> String {
    let length = r.duration_minutes.map(|m| Span::minutes(m).words()).unwrap_or_else(|| "no end".into());
    let end = match (r.state, r.expires_at) {
        (RequestState::Active, Some(at)) => format!(", until {}", attest_access::when(at)),
        _ => String::new(),
    };
    format!("request {}: {} for {}, {length}: {}{end}", r.id, r.describe(), r.requester_name, r.state)
}
