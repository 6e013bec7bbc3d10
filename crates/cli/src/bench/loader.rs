//! The database's own bulk loader, as the yardstick for our first load: `sqlite3 .import` of
//! a CSV (into a staging table, then one INSERT…SELECT, since .import cannot write NULLs or
//! defaults into an existing table) and `psql \copy` straight into the indexed table.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use attest_config::{DatabaseBackend, DatabaseUrl};

const COLUMNS: &str = "connector_id, entitlement_id, principal_id, source, scope, first_seen_at, last_seen_at";

pub struct LoaderRun {
    pub tool: &'static str,
    pub seconds: f64,
}

/// Loads `csv` (with a header row of [`COLUMNS`]) into `grants`. `Ok(None)` when the tool is
/// not installed.
pub fn load(url: &DatabaseUrl, csv: &Path) -> anyhow::Result<Option<LoaderRun>> {
    let csv = csv.display().to_string();
    let mut stdin = None;
    let (tool, mut command) = match url.backend() {
        DatabaseBackend::Sqlite => {
            let path =
                url.sqlite_path().ok_or_else(|| anyhow::anyhow!("the SQLite benchmark needs a file database"))?;
            let script = format!(
                ".bail on\n.import --csv {csv} grants_import\n\
                 INSERT INTO grants ({COLUMNS}) SELECT * FROM grants_import;\nDROP TABLE grants_import;\n"
            );
            let mut command = Command::new("sqlite3");
            command.arg(path);
            stdin = Some(script);
            ("sqlite3 .import", command)
        }
        DatabaseBackend::Postgres => {
            let mut command = Command::new("psql");
            command.arg(url.expose()).args(["-v", "ON_ERROR_STOP=1", "-q", "-c"]).arg(format!(
                "\\copy grants ({COLUMNS}) FROM '{csv}' WITH (FORMAT csv, HEADER true, FORCE_NOT_NULL (scope))"
            ));
            ("psql \\copy", command)
        }
    };
    let started = Instant::now();
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or("(no message)")
    );
    Ok(Some(LoaderRun { tool, seconds }))
}

pub fn csv_header() -> String {
    format!("{}\n", COLUMNS.replace(' ', ""))
}
