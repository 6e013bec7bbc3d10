use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn file(text: &str) -> tempfile_path::TempFile {
    tempfile_path::TempFile::with(text)
}

/// A file in the system temp directory, removed on drop (no extra crate for one helper).
mod tempfile_path {
    use std::path::{Path, PathBuf};

    pub struct TempFile(PathBuf);

    impl TempFile {
        pub fn with(text: &str) -> TempFile {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("attest-config-test-{}-{n}", std::process::id()));
            let mut f = std::fs::File::create(&path).unwrap();
            super::Write::write_all(&mut f, text.as_bytes()).unwrap();
            TempFile(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn defaults_use_embedded_sqlite() {
    let config = Config::load(Some(file("").path()), env(&[])).unwrap();
    assert_eq!(config.database.url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(config.database.url.backend(), DatabaseBackend::Sqlite);
    assert_eq!(config.database.url.sqlite_path(), Some(PathBuf::from("./attest-data/attest.db")));
    assert_eq!(config.log.format, LogFormat::Pretty);
    assert_eq!(config.database.connect_timeout, Duration::from_secs(10));
}

#[test]
fn environment_overrides_the_file_and_is_typed() {
    let f = file("[database]\nurl = \"sqlite://a.db\"\nmax_connections = 3\n[log]\nformat = \"json\"\n");
    let config = Config::load(
        Some(f.path()),
        env(&[
            ("ATTEST_DATABASE_URL", "postgres://attest:s3cret@db:5432/attest"),
            ("ATTEST_DATABASE_MAX_CONNECTIONS", "20"),
            ("ATTEST_TEST_POSTGRES_URL", "ignored: not a config section"),
            ("ATTEST_CONFIG", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(config.database.url.backend(), DatabaseBackend::Postgres);
    assert_eq!(config.database.max_connections, 20);
    assert_eq!(config.log.format, LogFormat::Json);
    let shown = config.to_redacted_toml();
    assert!(shown.contains("postgres://attest:***@db:5432/attest"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn secrets_can_come_from_files() {
    let secret = file("postgres://attest:fromfile@db/attest\n");
    let config =
        Config::load(Some(file("").path()), env(&[("ATTEST_DATABASE_URL_FILE", secret.path().to_str().unwrap())]))
            .unwrap();
    assert_eq!(config.database.url.expose(), "postgres://attest:fromfile@db/attest");

    let both = Config::load(
        Some(file("[database]\nurl = \"sqlite://x.db\"\n").path()),
        env(&[("ATTEST_DATABASE_URL_FILE", secret.path().to_str().unwrap())]),
    )
    .unwrap_err();
    assert_eq!(both.to_string(), "set database.url or database.url_file, not both");

    let missing =
        Config::load(Some(file("[database]\nurl_file = \"/nonexistent/secret\"\n").path()), env(&[])).unwrap_err();
    assert!(
        missing.to_string().starts_with("database.url_file: cannot read secret file /nonexistent/secret"),
        "{missing}"
    );
}

#[test]
fn errors_name_the_key_and_what_is_expected() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("[database]\nurl = \"mysql://x\"\n", &[], "database.url: expected a database URL such as sqlite://"),
        (
            "[database]\nurl = \"postgres://u:hunter2@host\"\n",
            &[],
            "database.url: expected a PostgreSQL URL that names a database",
        ),
        ("[log]\nformat = \"xml\"\n", &[], "log.format: expected 'pretty' or 'json', got 'xml'"),
        ("[database]\nconnect_timeout = \"soon\"\n", &[], "database.connect_timeout: expected a duration"),
        (
            "",
            &[("ATTEST_DATABASE_MAX_CONNECTIONS", "many")],
            "environment variable ATTEST_DATABASE_MAX_CONNECTIONS: expected an integer, got 'many'",
        ),
        (
            "",
            &[("ATTEST_DATABASE_URLL", "x")],
            "environment variable ATTEST_DATABASE_URLL is not a configuration key in [database]: unknown field `urll`",
        ),
        ("[databse]\nurl = \"x\"\n", &[], "unknown field `databse`"),
        ("[database]\nmax_connections = \"ten\"\n", &[], "invalid type: string \"ten\", expected u32"),
        ("[database\n", &[], "invalid config file"),
    ];
    for (text, vars, expected) in cases {
        let err = Config::load(Some(file(text).path()), env(vars)).unwrap_err().to_string();
        assert!(err.contains(expected), "for {text:?} {vars:?}: got {err:?}, expected it to contain {expected:?}");
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    }
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/attest.toml")), env(&[])).unwrap_err();
    assert!(err.to_string().starts_with("cannot read config file /nonexistent/attest.toml"), "{err}");
}

#[test]
fn the_sensitivity_policy_is_a_checked_list_settable_from_the_environment() {
    let default = Config::load(None, env(&[])).unwrap();
    assert_eq!(default.provisioning.sensitive, vec!["user_actions", "directory_roles", "owners"]);
    assert_eq!(default.provisioning.max_attempts, 8);
    let narrowed = Config::load(None, env(&[("ATTEST_PROVISIONING_SENSITIVE", "user_actions, memberships")])).unwrap();
    assert_eq!(narrowed.provisioning.sensitive, vec!["user_actions", "memberships"]);
    let none = Config::load(None, env(&[("ATTEST_PROVISIONING_SENSITIVE", "")])).unwrap();
    assert!(none.provisioning.sensitive.is_empty());
    let f = file("[provisioning]\nsensitive = [\"user_actions\", \"groups\"]\n");
    let err = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
    assert!(err.contains("provisioning.sensitive") && err.contains("groups") && err.contains("user_actions"), "{err}");
}
