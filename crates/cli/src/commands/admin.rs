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
    /// Set the roles granted to a synced user (admin, auditor); none removes them.
    SetRoles {
        /// The user: user principal name or object id, as synced.
        #[arg(long)]
        user: String,
        /// Roles, comma-separated: admin, auditor (empty for none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        roles: Vec<String>,
        /// The connector the user was synced by (needed when there are several).
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
    },
}

/// Roles that are granted explicitly; the others follow from the graph.
const GRANTABLE: &[&str] = &["admin", "auditor"];

pub async fn run(context: &Context, command: AdminCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let valid = match command {
        AdminCommand::CreateLoginLink { valid } => valid,
        AdminCommand::SetRoles { user, roles, connector } => {
            return set_roles(context, &user, roles, connector, out).await;
        }
    };
    let lifetime = attest_config::parse_duration(&valid)
        .filter(|d| !d.is_zero() && d.as_secs() <= 24 * 3600)
        .ok_or_else(|| anyhow::anyhow!("--valid: expected a duration up to 24h such as 15m or 1h, got '{valid}'"))?;
    let store = context.store().await?;
    let token = attest_server::session::random_token().map_err(anyhow::Error::msg)?;
    let expires = crate::now() + chrono::Duration::from_std(lifetime)?;
    store.web().create_login_link(&attest_server::session::hash(&token), "cli", expires).await?;
    writeln!(out, "{}/auth/link/{token}", context.config.server.public_url)?;
    writeln!(
        out,
        "valid once, until {} (UTC); it signs in as the break-glass administrator",
        expires.format("%Y-%m-%d %H:%M")
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn set_roles(
    context: &Context,
    user: &str,
    roles: Vec<String>,
    connector: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut roles: Vec<String> = roles.iter().map(|r| r.trim().to_lowercase()).filter(|r| !r.is_empty()).collect();
    roles.sort();
    roles.dedup();
    if let Some(unknown) = roles.iter().find(|r| !GRANTABLE.contains(&r.as_str())) {
        anyhow::bail!("--roles: '{unknown}' is not a role that can be granted (admin, auditor)");
    }
    let store = context.store().await?;
    let connector = match connector {
        Some(name) => super::connector::find(&store, &name).await?,
        None => {
            let mut all = store.connectors().list_connectors().await?;
            if all.len() != 1 {
                anyhow::bail!("name the connector the user was synced by with --connector");
            }
            all.remove(0)
        }
    };
    let tenant = connector
        .tenant_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("connector '{}' has no tenant id yet", connector.name))?;
    let principal = store.principals().find_user(connector.id, user).await?.ok_or_else(|| {
        anyhow::anyhow!("no user '{user}' in connector '{}'; run `attest sync` if they are new", connector.name)
    })?;
    let granted = store
        .web()
        .set_web_user_roles(&tenant, &principal.data.external_id, &principal.data.display_name, &roles, crate::now())
        .await?;
    let draft = attest_domain::AuditEventDraft {
        occurred_at: crate::now(),
        actor: "cli".into(),
        action: "user.roles_set".into(),
        target_kind: Some("web_user".into()),
        target_id: Some(granted.id.to_string()),
        details: serde_json::json!({"tenant_id": tenant, "object_id": granted.object_id, "roles": granted.roles}),
    };
    store.audit().append_audit_event(draft).await?;
    let shown = if granted.roles.is_empty() { "no roles".to_owned() } else { granted.roles.join(", ") };
    writeln!(
        out,
        "{} ({}) now has: {shown}",
        principal.data.display_name,
        principal.data.user_principal_name.as_deref().unwrap_or(user)
    )?;
    Ok(ExitCode::SUCCESS)
}
