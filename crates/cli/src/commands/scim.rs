//! `attest scim token create|list|revoke`: the bearer tokens Entra's provisioning service
//! presents at `{public_url}/scim/v2` (its "Secret Token"). A token is printed once, when it is
//! made; Attest keeps only its hash. Several may be live at once, to rotate without downtime.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum ScimCommand {
    /// SCIM bearer tokens: create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create {
        /// What the token is for, such as "Entra ID".
        #[arg(long)]
        name: String,
        /// The tenant whose people it provisions (a tenant id); the first connector's by default.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
        /// Print `{"id", "name", "token"}`.
        #[arg(long)]
        json: bool,
    },
    /// Every token: live and revoked, with when each was made and last used.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token's id (from `list`).
        id: i64,
    },
}

pub async fn run(context: &Context, command: ScimCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    let now = crate::now();
    let ScimCommand::Token(command) = command;
    match command {
        TokenCommand::Create { name, tenant, json } => {
            let (token, secret) = attest_server::scim::create_token(&store, &name, tenant.as_deref(), "cli", now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                writeln!(out, "{}", json!({"id": token.id, "name": token.name, "token": secret}))?;
            } else {
                writeln!(out, "SCIM token {} '{}' made; it is shown only now:", token.id, token.name)?;
                writeln!(out, "{secret}")?;
                writeln!(out, "In Entra (Enterprise applications → Attest → Provisioning), give Tenant URL")?;
                writeln!(
                    out,
                    "{}/scim/v2 and this as Secret Token.",
                    context.config.server.public_url.trim_end_matches('/')
                )?;
            }
        }
        TokenCommand::List { json } => {
            let tokens = store.scim().list_tokens().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&tokens)?)?;
            } else if tokens.is_empty() {
                writeln!(out, "no SCIM tokens; make one with `attest scim token create --name NAME`")?;
            } else {
                writeln!(out, "{:>4}  {:<24} {:<21} {:<21} state", "id", "name", "created", "last used")?;
                let when = |at: Option<chrono::DateTime<chrono::Utc>>| {
                    at.map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "never".into())
                };
                for t in tokens {
                    let state = if t.revoked_at.is_some() { "revoked" } else { "live" };
                    writeln!(
                        out,
                        "{:>4}  {:<24} {:<21} {:<21} {state}",
                        t.id,
                        t.name,
                        when(Some(t.created_at)),
                        when(t.last_used_at)
                    )?;
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let token =
                attest_server::scim::revoke_token(&store, id, "cli", now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(out, "SCIM token {} '{}' revoked", token.id, token.name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
