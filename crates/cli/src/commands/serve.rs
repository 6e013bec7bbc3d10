//! `attest serve`: the web server and the background jobs (scheduled syncs, provisioner
//! workers) until interrupted (Ctrl-C or SIGTERM), then a graceful stop.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::Context;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (default: `server.bind`, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
}

pub async fn run(context: &Context, args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let address = args.bind.unwrap_or(context.config.server.bind);
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    writeln!(out, "attest is serving on http://{}  (Ctrl-C stops it)", listener.local_addr()?)?;
    out.flush()?;
    attest_server::run(context.config.clone(), attest_domain::clock::system(), listener, stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM (what container runtimes send).
pub(crate) async fn stop_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("stopping: finishing requests and the work in hand");
}
