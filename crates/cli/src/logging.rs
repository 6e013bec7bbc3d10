//! Log output: pretty or JSON lines on stderr, filtered by RUST_LOG or `log.filter`.

use attest_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(&value).map_err(|e| {
            anyhow::anyhow!(
                "RUST_LOG: expected a log filter such as 'info' or 'attest_store=debug', got '{value}' ({e})"
            )
        })?,
        _ => EnvFilter::try_new(&config.filter).map_err(|e| {
            anyhow::anyhow!("log.filter: expected a log filter such as 'info', got '{}' ({e})", config.filter)
        })?,
    };
    // Colour only for a person at a terminal, never in a file or a pipe.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let result = match config.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already initialised (tests run several commands in one process): keep the first.
    let _ = result;
    Ok(())
}
