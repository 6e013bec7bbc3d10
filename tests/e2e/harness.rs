//! Running `attest` commands in-process and capturing what they print.

use std::process::ExitCode;

/// What a command did: whether it succeeded, what it printed, and its error (one line, as the
/// binary prints it) when it failed.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub error: Option<String>,
}

/// Runs `attest ARGS...`.
pub async fn attest(args: &[&str]) -> Outcome {
    let mut out = Vec::new();
    let argv = std::iter::once("attest").chain(args.iter().copied());
    let result = attest_cli::run_with(argv, &mut out).await;
    let stdout = String::from_utf8(out).unwrap();
    match result {
        Ok(code) => Outcome { success: code == ExitCode::SUCCESS, stdout, error: None },
        Err(e) => Outcome { success: false, stdout, error: Some(format!("{e:#}").replace('\n', " ")) },
    }
}

/// Runs `attest --database-url URL ARGS...`.
pub async fn attest_on(url: &attest_store::testing::TestDb, args: &[&str]) -> Outcome {
    let url = url.url.expose().to_owned();
    let mut full = vec!["--database-url", url.as_str()];
    full.extend_from_slice(args);
    attest(&full).await
}

/// Runs raw SQL (to play an attacker tampering with the database).
pub async fn raw_sql(db: &attest_store::testing::TestDb, sql: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(db.url.expose()).await.unwrap();
    conn.execute_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql.to_owned())).await.unwrap();
    conn.close().await.unwrap();
}
