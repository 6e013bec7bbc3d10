//! `attest config check`

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and check the configuration, then print the effective values (secrets redacted).
    Check,
}

pub fn run(context: &Context, command: ConfigCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check => {
            let source = match &context.config.source_file {
                Some(path) => format!("{} + ATTEST_* environment", path.display()),
                None => "defaults + ATTEST_* environment (no attest.toml)".into(),
            };
            writeln!(out, "# configuration is valid; effective values from {source}")?;
            write!(out, "{}", context.config.to_redacted_toml())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
