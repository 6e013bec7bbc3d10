//! The foundation commands: migrate, config check, audit verify, bench ingest.

use attest_domain::AuditEventDraft;
use attest_store::db_test;
use chrono::{TimeZone, Utc};

use crate::harness::{attest, attest_on, raw_sql};

db_test!(migrate_creates_rolls_back_and_reports, false, |db| {
    let status = attest_on(&db, &["migrate", "status"]).await;
    assert!(status.success, "{:?}", status.error);
    assert!(status.stdout.contains("m20261121_000001_entitlement_graph  pending"), "{}", status.stdout);
    assert!(status.stdout.contains("m20261122_000001_lifecycle_events  pending"), "{}", status.stdout);

    // A command that needs the graph refuses an unmigrated database, saying what to run.
    let refused = attest_on(&db, &["audit", "verify"]).await;
    assert!(!refused.success);
    assert!(refused.error.as_deref().unwrap_or_default().contains("run `attest migrate up`"), "{:?}", refused.error);

    let up = attest_on(&db, &["migrate"]).await;
    assert!(up.success && up.stdout.contains("applied m20261121_000001_entitlement_graph"), "{}", up.stdout);
    assert!(up.stdout.contains("applied m20261122_000001_lifecycle_events"), "{}", up.stdout);
    assert!(up.stdout.contains("applied m20261122_000002_changes"), "{}", up.stdout);
    assert!(up.stdout.contains("applied m20261122_000003_job_leases"), "{}", up.stdout);
    assert!(up.stdout.contains("applied m20261203_000003_keyed_audit_chain"), "{}", up.stdout);
    let again = attest_on(&db, &["migrate", "up"]).await;
    assert!(again.stdout.contains("schema is up to date"), "{}", again.stdout);
    let down = attest_on(&db, &["migrate", "down"]).await;
    assert!(
        down.success && down.stdout.contains("rolled back m20261209_000001_review_not_sure_counts"),
        "{}",
        down.stdout
    );
    let status = attest_on(&db, &["migrate", "status"]).await;
    assert!(status.stdout.contains("pending"), "{}", status.stdout);
    assert!(attest_on(&db, &["migrate", "up"]).await.success);
    assert!(attest_on(&db, &["audit", "verify"]).await.success);
});

db_test!(a_newer_schema_is_refused_in_one_line, true, |db| {
    raw_sql(&db, "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20990101_000001_future', 0)").await;
    for args in [&["migrate", "up"][..], &["audit", "verify"][..]] {
        let outcome = attest_on(&db, args).await;
        let error = outcome.error.unwrap();
        assert!(error.contains("database has migration m20990101_000001_future"), "{error}");
        assert!(error.contains("this build knows up to m20261209_000001_review_not_sure_counts"), "{error}");
        assert_eq!(error.lines().count(), 1);
    }
    let status = attest_on(&db, &["migrate", "status"]).await;
    assert!(!status.success && status.stdout.contains("unknown to this build"), "{}", status.stdout);
});

db_test!(audit_verify_names_the_tampered_event, true, |db| {
    for n in 1..=5 {
        db.store
            .audit()
            .append_audit_event(AuditEventDraft {
                occurred_at: Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap(),
                actor: "ada@contoso.com".into(),
                action: "grant.revoked".into(),
                target_kind: Some("grant".into()),
                target_id: Some(n.to_string()),
                details: serde_json::json!({"n": n}),
            })
            .await
            .unwrap();
    }
    let ok = attest_on(&db, &["audit", "verify"]).await;
    assert!(ok.success);
    assert!(ok.stdout.contains("audit chain intact: 5 event(s) verified"), "{}", ok.stdout);

    raw_sql(&db, "UPDATE audit_events SET details = '{\"n\":99}' WHERE seq = 3").await;
    let broken = attest_on(&db, &["audit", "verify"]).await;
    assert!(!broken.success);
    assert!(broken.stdout.contains("event 3 was altered"), "{}", broken.stdout);
    let json = attest_on(&db, &["audit", "verify", "--json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (value["broken"]["seq"].as_i64(), value["broken"]["reason"].as_str()),
        (Some(3), Some("content_altered"))
    );
});

db_test!(bench_ingest_runs_and_writes_nothing_the_second_time, false, |db| {
    let outcome =
        attest_on(&db, &["bench", "ingest", "--principals", "300", "--groups", "30", "--grants", "3000"]).await;
    assert!(outcome.success, "{:?}\n{}", outcome.error, outcome.stdout);
    let line = outcome.stdout.lines().find(|l| l.starts_with("grants, unchanged")).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("0"), "written column: {line}");
    assert!(outcome.stdout.contains("peak RSS"), "{}", outcome.stdout);
    // Needs an empty database: a second run refuses instead of emptying grants.
    let again = attest_on(&db, &["bench", "ingest", "--grants", "3000", "--principals", "300", "--groups", "30"]).await;
    assert!(again.error.unwrap().contains("bench ingest needs an empty database"));
});

fn write_config(text: &str) -> std::path::PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("attest-e2e-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn config_check_prints_effective_values_without_secrets() {
    let path = write_config(
        "[database]\nurl = \"postgres://attest:hunter2@db.internal:5432/attest\"\n[log]\nformat = \"json\"\n",
    );
    let outcome = attest(&["--config", path.to_str().unwrap(), "config", "check"]).await;
    assert!(outcome.success, "{:?}", outcome.error);
    assert!(outcome.stdout.contains("url = \"postgres://attest:***@db.internal:5432/attest\""), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("format = \"json\""));
    assert!(!outcome.stdout.contains("hunter2"));
}

#[tokio::test]
async fn bad_configuration_is_one_clear_line() {
    let cases = [
        ("[database]\nurl = \"mysql://root@db/x\"\n", "database.url: expected a database URL such as sqlite://"),
        ("[database]\nmax_connectons = 5\n", "unknown field `max_connectons`"),
        ("[log]\nformat = \"yaml\"\n", "log.format: expected 'pretty' or 'json', got 'yaml'"),
    ];
    for (text, expected) in cases {
        let path = write_config(text);
        let outcome = attest(&["--config", path.to_str().unwrap(), "config", "check"]).await;
        let error = outcome.error.unwrap();
        assert!(error.contains(expected), "{error}");
        assert_eq!(error.lines().count(), 1);
    }
    let bad_url = attest(&["--database-url", "postgres://u:secret@host", "migrate", "status"]).await.error.unwrap();
    assert!(bad_url.starts_with("--database-url: expected a PostgreSQL URL that names a database"), "{bad_url}");
    assert!(!bad_url.contains("secret"));
    let missing = attest(&["--config", "/nonexistent/attest.toml", "config", "check"]).await.error.unwrap();
    assert!(missing.contains("cannot read config file /nonexistent/attest.toml"), "{missing}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let outcome = attest(&["--database-url", "postgres://attest:pw@127.0.0.1:1/attest", "migrate", "status"]).await;
    let error = outcome.error.unwrap();
    assert!(error.starts_with("cannot connect to database postgres://attest:***@127.0.0.1:1/attest"), "{error}");
    assert!(!error.contains(":pw@"));
}

#[tokio::test]
async fn help_explains_the_commands() {
    let help = attest(&["--help"]).await.error.unwrap();
    for word in ["migrate", "config", "audit", "bench", "--database-url"] {
        assert!(help.contains(word), "{help}");
    }
}

#[tokio::test]
async fn the_example_configuration_is_valid_and_matches_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/attest.example.toml");
    let with_example = attest(&["--config", example, "config", "check"]).await;
    assert!(with_example.success, "{:?}", with_example.error);
    let empty = write_config("");
    let defaults = attest(&["--config", empty.to_str().unwrap(), "config", "check"]).await;
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&with_example.stdout), body(&defaults.stdout));
}

#[tokio::test]
async fn a_command_that_finds_no_database_says_where_it_looked_and_creates_nothing() {
    let dir = std::env::temp_dir().join(format!("attest-no-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("missing.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let out = attest(&["--database-url", &url, "change", "list"]).await;
    let error = out.error.unwrap_or_default();
    assert!(!out.success && error.contains(&format!("no database at {}", db.display())), "{error}");
    assert!(error.contains("attest migrate"), "{error}");
    assert!(!db.exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(&dir);
}
