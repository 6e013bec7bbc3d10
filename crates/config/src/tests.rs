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
    // Revoking sessions is its own class, sensitive only when asked for.
    let sessions = Config::load(None, env(&[("ATTEST_PROVISIONING_SENSITIVE", "sessions")])).unwrap();
    assert_eq!(sessions.provisioning.sensitive, vec!["sessions"]);
    let f = file("[provisioning]\nsensitive = [\"user_actions\", \"groups\"]\n");
    let err = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
    assert!(err.contains("provisioning.sensitive") && err.contains("groups") && err.contains("user_actions"), "{err}");
}

#[test]
fn mail_is_kept_unless_an_smtp_server_is_configured() {
    let default = Config::load(Some(file("").path()), env(&[])).unwrap();
    assert!(default.mail.keeps_mail());
    assert_eq!(default.mail, MailConfig::default());
    assert_eq!((default.mail.from.as_str(), default.mail.max_attempts), ("Attest <attest@localhost>", 8));
    assert_eq!((default.mail.smtp_security, default.mail.smtp_port), (SmtpSecurity::StartTls, 587));

    let port_of = |security: &str| {
        let f = file(&format!("[mail]\nsmtp_host = \"smtp.example.com\"\nsmtp_security = \"{security}\"\n"));
        Config::load(Some(f.path()), env(&[])).unwrap().mail.smtp_port
    };
    assert_eq!((port_of("starttls"), port_of("tls"), port_of("plain")), (587, 465, 25));
    let blank = Config::load(None, env(&[("ATTEST_MAIL_SMTP_HOST", " ")])).unwrap();
    assert!(blank.mail.keeps_mail(), "an empty host is no host");
}

#[test]
fn the_smtp_password_is_a_secret_settable_from_the_environment_or_a_file() {
    let secret = file("hunter2\n");
    let config = Config::load(
        Some(file("[mail]\nfrom = \"ops@example.com\"\n").path()),
        env(&[
            ("ATTEST_MAIL_SMTP_HOST", "smtp.example.com"),
            ("ATTEST_MAIL_SMTP_PORT", "2525"),
            ("ATTEST_MAIL_SMTP_SECURITY", "tls"),
            ("ATTEST_MAIL_SMTP_USERNAME", "attest"),
            ("ATTEST_MAIL_SMTP_PASSWORD_FILE", secret.path().to_str().unwrap()),
            ("ATTEST_MAIL_MAX_ATTEMPTS", "3"),
        ]),
    )
    .unwrap();
    let mail = &config.mail;
    assert_eq!(mail.smtp_host.as_deref(), Some("smtp.example.com"));
    assert_eq!((mail.smtp_port, mail.smtp_security, mail.max_attempts), (2525, SmtpSecurity::Tls, 3));
    assert_eq!(mail.smtp_password.as_ref().map(SecretString::expose), Some("hunter2"));
    assert_eq!(mail.from, "ops@example.com");
    let shown = config.to_redacted_toml();
    assert!(shown.contains("smtp_password = \"***\"") && shown.contains("smtp_port = 2525"), "{shown}");
    assert!(!shown.contains("hunter2") && !format!("{config:?}").contains("hunter2"), "{shown}");

    let inline = file("[mail]\nsmtp_host = \"h\"\nsmtp_username = \"u\"\nsmtp_password = \"hunter2\"\n");
    let config = Config::load(Some(inline.path()), env(&[])).unwrap();
    assert_eq!(config.mail.smtp_password.as_ref().map(SecretString::expose), Some("hunter2"));
    assert!(!config.to_redacted_toml().contains("hunter2") && !format!("{config:?}").contains("hunter2"));
    let raw: RawConfig = toml::from_str(&std::fs::read_to_string(inline.path()).unwrap()).unwrap();
    assert!(!format!("{raw:?}").contains("hunter2"));
}

#[test]
fn mail_settings_are_checked() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("[mail]\nfrom = \"attest\"\n", &[], "mail.from: expected an email address"),
        ("[mail]\nfrom = \"Attest <attest@x\"\n", &[], "mail.from: expected an email address"),
        (
            "[mail]\nsmtp_security = \"ssl\"\n",
            &[],
            "mail.smtp_security: expected 'starttls', 'tls' or 'plain', got 'ssl'",
        ),
        ("[mail]\nsmtp_host = \"smtp://mail.example.com\"\n", &[], "mail.smtp_host: expected a host name"),
        ("[mail]\nsmtp_port = 0\n", &[], "mail.smtp_port: expected a port from 1 to 65535"),
        ("", &[("ATTEST_MAIL_SMTP_PORT", "smtp")], "mail.smtp_port: expected a port from 1 to 65535, got 'smtp'"),
        ("[mail]\nsmtp_port = 70000\n", &[], "mail.smtp_port: expected a port from 1 to 65535, got '70000'"),
        ("[mail]\nsmtp_password = \"hunter2\"\n", &[], "mail.smtp_username: expected a user name"),
        ("[mail]\nsmtp_username = \"u\"\n", &[], "mail.smtp_password: expected a password"),
        (
            "[mail]\nsmtp_username = \"u\"\nsmtp_password = \"hunter2\"\nsmtp_password_file = \"/x\"\n",
            &[],
            "set mail.smtp_password or mail.smtp_password_file, not both",
        ),
        ("[mail]\nmax_attempts = 0\n", &[], "mail.max_attempts: expected a number of attempts of at least 1"),
        ("[mail]\nsmtp_pasword = \"x\"\n", &[], "unknown field `smtp_pasword`"),
    ];
    for (text, vars, expected) in cases {
        let err = Config::load(Some(file(text).path()), env(vars)).unwrap_err().to_string();
        assert!(err.contains(expected), "for {text:?} {vars:?}: got {err:?}, expected it to contain {expected:?}");
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    }
}
