//! `attest admin create-login-link`: a one-time link that signs in a local administrator, for
//! first setup or when Entra sign-in is broken. Only its hash is stored.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a one-time link that signs in the break-glass administrator.
    CreateLoginLink {
        /// How long the link stays valid, e.g. 15m or 1h.
        #[arg(long, default_value = "15m")]
        valid: String,
    },
}

pub async fn run(context: &Context, command: AdminCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let AdminCommand::CreateLoginLink { valid } = command;
    let lifetime = attest_config::parse_duration(&valid)
        .filter(|d| !d.is_zero() && d.as_secs() <= 24 * 3600)
        .ok_or_else(|| anyhow::anyhow!("--valid: expected a duration up to 24h such as 15m or 1h, got '{valid}'"))?;
    let store = context.store().await?;
    let token = attest_server::auth::random_token().map_err(anyhow::Error::msg)?;
    let expires = chrono::Utc::now() + chrono::Duration::from_std(lifetime)?;
    store.create_login_link(&attest_server::auth::hash(&token), "cli", expires).await?;
    writeln!(out, "{}/auth/link/{token}", context.config.server.public_url)?;
    writeln!(
        out,
        "valid once, until {} (UTC); it signs in as the break-glass administrator",
        expires.format("%Y-%m-%d %H:%M")
    )?;
    Ok(ExitCode::SUCCESS)
}
