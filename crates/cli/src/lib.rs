//! `attest`: the one binary. Subcommands are thin: they load configuration, open the store
//! and call into the library crates, which hold the logic. The binary's `main` is
//! [`main`]; tests call [`run_with`] to drive the same code path and capture its output.

mod bench;
mod commands;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Attest: identity governance for Microsoft Entra ID. It syncs who has what access, runs
/// access reviews and just-in-time requests, and applies every change back in Entra with an
/// audit trail.
#[derive(Debug, Parser)]
#[command(name = "attest", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Configuration file (default: ./attest.toml when it exists). Every key can also be set
    /// with an ATTEST_<SECTION>_<KEY> environment variable.
    #[arg(long, global = true, env = "ATTEST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Database URL, overriding the configuration: sqlite://PATH?mode=rwc or
    /// postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,

    /// Log format: pretty (for people) or json (for log shippers). Filter with RUST_LOG.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["pretty", "json"])]
    log_format: Option<String>,

    /// More log lines on stderr: -v what the command does, -vv everything. A command other
    /// than serve and demo logs only warnings and errors by default.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Try Attest with no setup: the Entra simulator with a demo tenant, synced, served on
    /// http://127.0.0.1:8080 with sign-in through the simulator (data in ./attest-data/demo).
    Demo(commands::demo::DemoArgs),
    /// Run the server: health, readiness and metrics endpoints, scheduled syncs and the
    /// provisioner's workers, until Ctrl-C or SIGTERM.
    Serve(commands::serve::ServeArgs),
    /// Create or upgrade the database schema, roll it back, or show where it stands.
    Migrate(commands::migrate::MigrateArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Administration: a one-time break-glass login link.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Work with the tamper-evident audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Connect a directory, list connectors, check one's permissions.
    #[command(subcommand)]
    Connector(commands::connector::ConnectorCommand),
    /// Read directories into the entitlement graph (changes since the last sync, or --full).
    Sync(commands::sync::SyncArgs),
    /// Export the entitlement graph.
    #[command(subcommand)]
    Graph(commands::graph::GraphCommand),
    /// List the lifecycle events syncs appended (joiners, leavers, access added and removed).
    Events(commands::events::EventsArgs),
    /// The change queue: list, show, approve, retry, cancel.
    #[command(subcommand)]
    Change(commands::change::ChangeCommand),
    /// Act on a user in the directory: revoke-sessions, block, unblock, reset-password, delete, restore.
    Action(commands::change::ActionArgs),
    /// Access review campaigns: create, start, decide, close, apply, export.
    #[command(subcommand)]
    Campaign(commands::campaign::CampaignCommand),
    /// Just-in-time access requests: create (or --dry-run), list, show, approve, deny, cancel,
    /// revoke, extend.
    #[command(subcommand)]
    Request(commands::request::RequestCommand),
    /// Request policies of entitlements: set, show.
    #[command(subcommand)]
    Policy(commands::request::PolicyCommand),
    /// Entra's provisioning of Attest's accounts over SCIM 2.0: its bearer tokens.
    #[command(subcommand)]
    Scim(commands::scim::ScimCommand),
    /// Run the Entra simulator (a stand-in for Microsoft Graph and the identity platform) and
    /// print its URLs and client credentials.
    Sim(commands::sim::SimArgs),
    /// Run a benchmark scenario and print its figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// The `attest` binary: parses the process arguments, runs, prints errors on one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &mut std::io::stdout())) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Runs `attest` with `args` (the first is the program name), writing output to `out`.
/// Usage errors and `--help` come back as errors carrying clap's text.
/// `attest demo` until `shutdown` completes, for tests (the command itself stops on Ctrl-C).
pub async fn demo_until(
    port: u16,
    users: usize,
    dir: std::path::PathBuf,
    out: &mut dyn std::io::Write,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    commands::demo::demo(commands::demo::DemoArgs::new(port, users, dir), out, shutdown).await
}

pub async fn run_with<I, T>(args: I, out: &mut dyn std::io::Write) -> anyhow::Result<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    run(cli, out).await
}

async fn run(cli: Cli, out: &mut dyn std::io::Write) -> anyhow::Result<ExitCode> {
    let context =
        commands::Context::load(cli.config.as_deref(), cli.database_url.as_deref(), cli.log_format.as_deref())?;
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Demo(_));
    logging::init(&context.config.log, logging::Verbosity { verbose: cli.verbose, long_running })?;
    match cli.command {
        Command::Serve(args) => commands::serve::run(&context, args, out).await,
        Command::Demo(args) => commands::demo::run(&context, args, out).await,
        Command::Migrate(args) => commands::migrate::run(&context, args, out).await,
        Command::Config(command) => commands::config::run(&context, command, out),
        Command::Audit(command) => commands::audit::run(&context, command, out).await,
        Command::Admin(command) => commands::admin::run(&context, command, out).await,
        Command::Connector(command) => commands::connector::run(&context, command, out).await,
        Command::Sync(args) => commands::sync::run(&context, args, out).await,
        Command::Graph(command) => commands::graph::run(&context, command, out).await,
        Command::Events(args) => commands::events::run(&context, args, out).await,
        Command::Change(command) => commands::change::run(&context, command, out).await,
        Command::Action(args) => commands::change::action(&context, args, out).await,
        // Boxed: its future is large, and the others' stay on the stack.
        Command::Campaign(command) => Box::pin(commands::campaign::run(&context, command, out)).await,
        Command::Request(command) => Box::pin(commands::request::run(&context, command, out)).await,
        Command::Policy(command) => commands::request::policy(&context, command, out).await,
        Command::Scim(command) => commands::scim::run(&context, command, out).await,
        Command::Sim(args) => commands::sim::run(args, out).await,
        Command::Bench(command) => bench::run(&context, command, out).await,
    }
}

/// Now, by the system's clock: the command line is where a process's clock begins.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use attest_domain::Clock;
    attest_domain::SystemClock.now()
}
