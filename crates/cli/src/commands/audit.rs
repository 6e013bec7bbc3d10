//! `attest audit verify`

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain and name the first tampered event, if any.
    /// Exits 0 when intact, 1 when broken.
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(context: &Context, command: AuditCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { json } => {
            let store = context.store().await?;
            let result = store.verify_audit_chain().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?;
            } else {
                match &result.broken {
                    None => writeln!(
                        out,
                        "audit chain intact: {} event(s) verified, head at event {}",
                        result.checked, result.head_seq
                    )?,
                    Some(broken) => writeln!(
                        out,
                        "audit chain BROKEN: {broken}; events 1..{} verified, event {} onwards cannot be trusted",
                        result.checked, broken.seq
                    )?,
                }
            }
            Ok(if result.broken.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
