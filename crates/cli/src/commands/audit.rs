//! `attest audit verify` and `attest audit head`

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
        /// Also check the log against a head printed earlier by `attest audit head` and kept
        /// elsewhere (`SEQ:HASH`): the log up to it must be exactly what it was then.
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
    /// Print the chain's head (`SEQ:HASH` of the last event, signed with the audit key), to keep
    /// somewhere the database's writers cannot reach and check against later with
    /// `attest audit verify --head`.
    Head {
        /// Print it as JSON (`{"seq", "hash"}`).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(context: &Context, command: AuditCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Head { json } => {
            let (seq, hash) = context.store().await?.audit().audit_head().await?;
            if json {
                writeln!(out, "{}", serde_json::json!({"seq": seq, "hash": hash}))?;
            } else {
                writeln!(out, "{seq}:{hash}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { json, head } => {
            let anchor = match head.as_deref().map(|h| h.split_once(':')) {
                None => None,
                Some(Some((seq, hash))) if seq.parse::<i64>().is_ok_and(|s| s > 0) && !hash.is_empty() => {
                    Some((seq.parse::<i64>()?, hash.to_owned()))
                }
                Some(_) => anyhow::bail!("--head: expected SEQ:HASH as `attest audit head` prints it"),
            };
            let store = context.store().await?;
            let result = store.audit().verify_audit_chain_against(anchor).await?;
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
