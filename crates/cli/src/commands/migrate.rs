//! `attest migrate up|down|status`

use std::io::Write;
use std::process::ExitCode;

use attest_store::MigrationState;
use clap::{Args, Subcommand};

use super::Context;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    action: Option<MigrateAction>,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (the default).
    Up {
        /// Apply only this many.
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Roll back the most recent migrations. Data in dropped tables is lost.
    Down {
        /// How many to roll back.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List every migration and whether it is applied.
    Status,
}

pub async fn run(context: &Context, args: MigrateArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.connect().await?;
    let url = &context.config.database.url;
    match args.action.unwrap_or(MigrateAction::Up { steps: None }) {
        MigrateAction::Up { steps } => {
            let applied = store.migrate_up(steps).await?;
            if applied.is_empty() {
                writeln!(out, "{url}: schema is up to date")?;
            }
            for name in applied {
                writeln!(out, "{url}: applied {name}")?;
            }
        }
        MigrateAction::Down { steps } => {
            let rolled_back = store.migrate_down(steps).await?;
            if rolled_back.is_empty() {
                writeln!(out, "{url}: nothing to roll back")?;
            }
            for name in rolled_back {
                writeln!(out, "{url}: rolled back {name}")?;
            }
        }
        MigrateAction::Status => {
            writeln!(out, "{url}")?;
            let status = store.schema_status().await?;
            for (name, state) in &status.migrations {
                let state = match state {
                    MigrationState::Applied => "applied",
                    MigrationState::Pending => "pending",
                    MigrationState::Unknown => "unknown to this build (applied by a newer Attest)",
                };
                writeln!(out, "  {name}  {state}")?;
            }
            if status.unknown().next().is_some() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
