//! Log output: pretty or JSON lines on stderr, filtered by RUST_LOG or `log.filter`.

use attest_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// How much a command logs beyond its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Verbosity {
    /// `-v` counted.
    pub verbose: u8,
    /// `serve` and `demo`, whose log is the point; other commands print their own results and
    /// log only what went wrong, unless asked for more.
    pub long_running: bool,
}

/// The filter to use when `RUST_LOG` is not set: `-v`/`-vv` first, then the configured filter
/// for serve and demo or when set on purpose, else warnings and errors.
fn default_filter(config: &LogConfig, verbosity: Verbosity) -> String {
    let configured_on_purpose = config.filter != attest_config::DEFAULT_LOG_FILTER;
    match verbosity.verbose {
        0 if verbosity.long_running || configured_on_purpose => config.filter.clone(),
        0 => "warn".to_owned(),
        1 => "info,sqlx=warn".to_owned(),
        _ => "debug".to_owned(),
    }
}

pub fn init(config: &LogConfig, verbosity: Verbosity) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(&value).map_err(|e| {
            anyhow::anyhow!(
                "RUST_LOG: expected a log filter such as 'info' or 'attest_store=debug', got '{value}' ({e})"
            )
        })?,
        _ => {
            let filter = default_filter(config, verbosity);
            EnvFilter::try_new(&filter).map_err(|e| {
                anyhow::anyhow!("log.filter: expected a log filter such as 'info', got '{filter}' ({e})")
            })?
        }
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

#[cfg(test)]
mod tests {
    use super::{Verbosity, default_filter};
    use attest_config::{DEFAULT_LOG_FILTER, LogConfig, LogFormat};

    #[test]
    fn commands_log_warnings_unless_asked_and_the_server_logs_what_it_does() {
        let config = |filter: &str| LogConfig { format: LogFormat::Pretty, filter: filter.into() };
        let at = |verbose, long_running| Verbosity { verbose, long_running };
        assert_eq!(default_filter(&config(DEFAULT_LOG_FILTER), at(0, false)), "warn");
        assert_eq!(default_filter(&config(DEFAULT_LOG_FILTER), at(0, true)), DEFAULT_LOG_FILTER);
        assert_eq!(default_filter(&config(DEFAULT_LOG_FILTER), at(1, false)), "info,sqlx=warn");
        assert_eq!(default_filter(&config(DEFAULT_LOG_FILTER), at(2, false)), "debug");
        assert_eq!(default_filter(&config("attest_store=debug"), at(0, false)), "attest_store=debug", "set on purpose");
    }
}
