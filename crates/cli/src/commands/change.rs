//! `attest change list|show|approve|deny|retry|cancel` and `attest action …`: the change queue from
//! the command line.
//!
//! Until `attest serve` runs background workers, the command that makes a change pending
//! (`action`, `approve`, `retry`) applies it in the same process, in person: the actor sees the
//! result, including a temporary password, which is shown once and stored nowhere.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use attest_config::secrets::SecretKey;
use attest_domain::{Change, ChangeAction, ChangeId, ChangeState, Connector, NewChange};
use attest_provisioner::{InPerson, Provisioner};
use attest_server::StoredConnectors;
use attest_store::{ChangeFilter, Store};
use clap::{Args, Subcommand, ValueEnum};

use super::Context;
use super::connector::find;

#[derive(Debug, Subcommand)]
pub enum ChangeCommand {
    /// Changes, newest first.
    List {
        #[arg(long, value_name = "STATE")]
        state: Option<ChangeState>,
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// One change, with its attempts, result and error.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Approve a change awaiting approval (not your own), then apply it.
    Approve {
        id: i64,
        /// Who approves (an email).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
    /// Refuse a change awaiting approval (not your own), saying why; its requester is mailed.
    Deny {
        id: i64,
        /// Who denies (an email or user principal name of an administrator or owner).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// Why: the requester is told, and the audit log keeps it.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Queue a failed change again and apply it.
    Retry {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
    },
    /// Withdraw a change that has not been applied.
    Cancel {
        id: i64,
        #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
        actor: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UserAction {
    RevokeSessions,
    Block,
    Unblock,
    ResetPassword,
    Delete,
    Restore,
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    action: UserAction,
    /// The user: user principal name or object id.
    #[arg(long)]
    user: String,
    /// The connector (needed when there are several).
    #[arg(long, value_name = "NAME")]
    connector: Option<String>,
    /// Who asks (an email); recorded in the audit log.
    #[arg(long = "as", value_name = "EMAIL", default_value = "cli")]
    actor: String,
    /// Why: shown to the approver and kept in the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

async fn provisioner(context: &Context, store: &Store) -> anyhow::Result<Provisioner<StoredConnectors>> {
    let key = Arc::new(SecretKey::load(&context.config.secret_key_file)?);
    let connectors = StoredConnectors::new(store.clone(), key);
    let worker = format!("cli:{}", attest_server::instance_name());
    Ok(Provisioner::new(
        store.clone(),
        Arc::new(connectors),
        attest_server::provisioning_policy(&context.config),
        worker,
    ))
}

pub async fn run(context: &Context, command: ChangeCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    match command {
        ChangeCommand::List { state, connector, limit, json } => {
            let connector = match connector {
                Some(name) => Some(find(&store, &name).await?.id),
                None => None,
            };
            let changes =
                store.changes().list_changes(&ChangeFilter { state, connector, limit, ..Default::default() }).await?;
            // Described with the directory's names ("add Grace Hopper to Finance Team 5").
            let described = store.changes().describe_changes(&changes).await?;
            if json {
                let mut rows = Vec::new();
                for (change, description) in changes.iter().zip(&described) {
                    let mut row = serde_json::to_value(change)?;
                    row["description"] = serde_json::Value::String(description.clone());
                    rows.push(row);
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else if changes.is_empty() {
                writeln!(out, "no changes")?;
            } else {
                table(&changes, &described, out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ChangeCommand::Show { id, json } => {
            let change = store.changes().get_change(ChangeId(id)).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&change)?)?;
            } else {
                show(&change, out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ChangeCommand::Approve { id, actor } => {
            let change = store.changes().get_change(ChangeId(id)).await?;
            let connector = store.connectors().get_connector(change.connector_id).await?;
            let (name, identity) = person(&store, &connector, &actor).await?;
            store.changes().approve_change(ChangeId(id), &name, Some(&identity), crate::now()).await?;
            writeln!(out, "change {id} approved by {name}")?;
            apply_now(context, &store, ChangeId(id), &name, out).await
        }
        ChangeCommand::Deny { id, actor, reason } => {
            let change = store.changes().get_change(ChangeId(id)).await?;
            let connector = store.connectors().get_connector(change.connector_id).await?;
            let (name, identity) = person(&store, &connector, &actor).await?;
            let change =
                store.changes().deny_change(ChangeId(id), &name, Some(&identity), &reason, crate::now()).await?;
            writeln!(out, "{}", line(&change))?;
            Ok(ExitCode::SUCCESS)
        }
        ChangeCommand::Retry { id, actor } => {
            store.changes().retry_change(ChangeId(id), &actor, crate::now()).await?;
            apply_now(context, &store, ChangeId(id), &actor, out).await
        }
        ChangeCommand::Cancel { id, actor } => {
            let change = store.changes().cancel_change(ChangeId(id), &actor, crate::now()).await?;
            writeln!(out, "{}", line(&change))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `attest action …`: queue a user action and, unless it needs approval, apply it now.
pub async fn action(context: &Context, args: ActionArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let connector = match &args.connector {
        Some(name) => find(&store, name).await?,
        None => only_connector(&store).await?,
    };
    let user = store.principals().find_user(connector.id, &args.user).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no user '{}' in connector '{}' (by user principal name or object id); run `attest sync` if they are new",
            args.user,
            connector.name
        )
    })?;
    let id = user.data.external_id.clone();
    let action = match args.action {
        UserAction::RevokeSessions => ChangeAction::RevokeSessions { user: id },
        UserAction::Block => ChangeAction::BlockSignIn { user: id },
        UserAction::Unblock => ChangeAction::UnblockSignIn { user: id },
        UserAction::ResetPassword => ChangeAction::ResetPassword { user: id },
        UserAction::Delete => ChangeAction::DeleteUser { user: id },
        UserAction::Restore => ChangeAction::RestoreUser { user: id },
    };
    // One request token per invocation: running the command again queues the action again.
    let token = uuid::Uuid::new_v4().to_string();
    let provisioner = provisioner(context, &store).await?;
    // Someone named with --as is a person of the tenant who may make changes; without it the
    // change is the command line's own.
    let (actor, identity) = match args.actor.as_str() {
        "cli" => ("cli".to_owned(), None),
        named => person(&store, &connector, named).await.map(|(name, id)| (name, Some(id)))?,
    };
    let new = NewChange::manual(connector.id, action, &actor, &token).by(identity).because(args.reason.as_deref());
    let queued = provisioner.enqueue(new, crate::now());
    let change = queued.await?.change;
    if change.state == ChangeState::AwaitingApproval {
        writeln!(out, "{}", line(&change))?;
        writeln!(
            out,
            "this is a sensitive change: a second person approves it with `attest change approve {} --as EMAIL`, which also applies it",
            change.id.0
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    finish(provisioner.apply_in_person(change.id, &actor).await?, out)
}

/// `--as`: a live user of the connector's tenant, by user principal name or object id, who may
/// make changes in it (an administrator, or one of its owners). Returns how the audit log names
/// them (saying it came from the command line) and their identity (`tenant/objectId`).
async fn person(store: &Store, connector: &Connector, who: &str) -> anyhow::Result<(String, String)> {
    let user = store.principals().find_user(connector.id, who).await?.filter(|u| u.data.deleted_at.is_none()).ok_or_else(|| {
        anyhow::anyhow!(
            "--as {who}: nobody of that user principal name or object id in connector '{}'; name a person who may make changes",
            connector.name
        )
    })?;
    let tenant = connector
        .tenant_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("connector '{}' has no tenant yet; sync it first", connector.name))?;
    let object_id = user.data.external_id.clone();
    // Their roles as the web application sees them; someone who never signed in has none of
    // their own but may still be an owner.
    let web_user = store.web().find_web_user(&tenant, &object_id).await?.unwrap_or(attest_store::WebUser {
        id: 0,
        tenant_id: tenant.clone(),
        object_id: object_id.clone(),
        display_name: user.data.display_name.clone(),
        email: user.data.email.clone(),
        roles: Vec::new(),
    });
    if !attest_domain::roles::Roles::of(
        std::slice::from_ref(connector),
        &web_user.roles,
        &web_user.tenant_id,
        &web_user.object_id,
    )
    .can_operate(connector.id)
    {
        anyhow::bail!(
            "--as {who}: {} is neither an administrator nor an owner of connector '{}', so may not make or approve changes",
            user.data.display_name,
            connector.name
        );
    }
    let address = user.data.email.clone().or(user.data.user_principal_name.clone()).unwrap_or_else(|| who.to_owned());
    Ok((format!("{address} (command line)"), format!("{tenant}/{object_id}")))
}

async fn apply_now(
    context: &Context,
    store: &Store,
    id: ChangeId,
    actor: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let provisioner = provisioner(context, store).await?;
    finish(provisioner.apply_in_person(id, actor).await?, out)
}

/// Prints the outcome (and, once, a temporary password); fails unless the change was applied.
fn finish(done: InPerson, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    writeln!(out, "{}", line(&done.change))?;
    if let Some(secret) = &done.secret {
        writeln!(out, "temporary password (shown once; the user must change it at next sign-in): {}", secret.expose())?;
    }
    match done.change.state {
        ChangeState::Applied => Ok(ExitCode::SUCCESS),
        ChangeState::Pending => {
            let error = done.change.last_error.as_deref().unwrap_or("unknown");
            writeln!(out, "not applied yet ({error}); it will be retried: `attest change retry {}`", done.change.id.0)?;
            Ok(ExitCode::FAILURE)
        }
        _ => {
            if let Some(error) = &done.change.last_error {
                writeln!(out, "error: {error}")?;
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn only_connector(store: &Store) -> anyhow::Result<Connector> {
    let mut all = store.connectors().list_connectors().await?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => anyhow::bail!("there are no connectors: add one with `attest connector add entra`"),
        _ => anyhow::bail!("there are several connectors: name one with --connector"),
    }
}

/// `#12  applied (already_in_state)  block sign-in of …  by ada@contoso.com`
/// A change's state, with how applying it ended when that says more ("applied",
/// "failed (target_not_found)").
fn state_code(c: &Change) -> String {
    match c.result.map(|r| r.to_string()) {
        Some(result) if result != c.state.to_string() => format!("{} ({result})", c.state),
        _ => c.state.to_string(),
    }
}

/// The same in words, for people ("awaiting approval").
fn state_words(c: &Change) -> String {
    state_code(c).replace('_', " ")
}

fn line(c: &Change) -> String {
    format!("#{}  {}  {}  requested by {}", c.id.0, state_code(c), c.action.describe(), c.requested_by)
}

/// Changes as aligned columns, one a line.
fn table(changes: &[Change], described: &[String], out: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<[String; 5]> = changes
        .iter()
        .zip(described)
        .map(|(c, description)| {
            [
                format!("#{}", c.id.0),
                state_words(c),
                description.clone(),
                c.requested_by.clone(),
                c.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            ]
        })
        .collect();
    let header = ["ID", "STATE", "CHANGE", "REQUESTED BY", "REQUESTED"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn show(c: &Change, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "change {}: {}", c.id.0, c.action.describe())?;
    writeln!(out, "  kind           {}", c.kind)?;
    writeln!(out, "  state          {}", c.state)?;
    if let Some(result) = c.result {
        writeln!(out, "  result         {result}")?;
    }
    if let Some(verified) = c.verified {
        writeln!(out, "  read back      {}", if verified { "holds" } else { "does not hold yet" })?;
    }
    writeln!(
        out,
        "  origin         {}{}",
        c.origin,
        c.origin_ref.as_deref().map(|r| format!(" {r}")).unwrap_or_default()
    )?;
    writeln!(out, "  requested by   {} at {}", c.requested_by, c.created_at.to_rfc3339())?;
    if let Some(reason) = &c.reason {
        writeln!(out, "  reason         {reason}")?;
    }
    if let Some(approver) = &c.approved_by {
        writeln!(out, "  approved by    {approver}")?;
    }
    if let Some(denier) = &c.denied_by {
        writeln!(out, "  denied by      {denier}: {}", c.denial_reason.as_deref().unwrap_or_default())?;
    }
    writeln!(out, "  attempts       {}", c.attempts)?;
    if c.state == ChangeState::Pending {
        writeln!(out, "  next attempt   {}", c.next_attempt_at.to_rfc3339())?;
    }
    if let Some(error) = &c.last_error {
        writeln!(out, "  last error     {error}")?;
    }
    if let Some(request_id) = &c.graph_request_id {
        writeln!(out, "  Graph request  {request_id}")?;
    }
    Ok(())
}
