//! The database URL, checked at load time.

use std::fmt;
use std::path::PathBuf;

use url::Url;

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

/// A database URL known to name a supported backend. `Display` and `Debug` redact the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: DatabaseBackend,
}

const EXPECTED: &str =
    "a database URL such as sqlite://./attest-data/attest.db?mode=rwc or postgres://user:password@host:5432/attest";

impl DatabaseUrl {
    /// Checks a URL; the error says what was expected.
    pub fn parse(text: &str) -> Result<DatabaseUrl, &'static str> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//").split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(EXPECTED);
            }
            return Ok(DatabaseUrl { raw: text.to_owned(), backend: DatabaseBackend::Sqlite });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let url = Url::parse(text).map_err(|_| EXPECTED)?;
            if url.path().trim_start_matches('/').is_empty() && !url.query_pairs().any(|(k, _)| k == "dbname") {
                return Err("a PostgreSQL URL that names a database, e.g. postgres://user:password@host:5432/attest");
            }
            return Ok(DatabaseUrl { raw: text.to_owned(), backend: DatabaseBackend::Postgres });
        }
        Err(EXPECTED)
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    /// The URL with its password, for the database driver only. Never log it.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// For a SQLite file database, the file's path (so its directory can be created).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.backend != DatabaseBackend::Sqlite {
            return None;
        }
        let rest = self.raw.strip_prefix("sqlite:")?.trim_start_matches("//");
        let path = rest.split('?').next()?;
        (path != ":memory:" && !path.is_empty()).then(|| PathBuf::from(path))
    }
}

/// Replaces the password of a URL (if it has one) with `***`, and so the value of every query
/// parameter that carries a secret (`?password=…`, `sslpassword`, any `*secret*` or `*token*`).
/// Text that is not a URL is returned up to its first `@` only, so a malformed URL still never
/// leaks a password.
pub(crate) fn redact(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            // Left as written unless there is something to hide (parsing normalises URLs).
            let mut changed = false;
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
                changed = true;
            }
            let secret = |name: &str| {
                let name = name.to_ascii_lowercase();
                ["password", "secret", "token"].iter().any(|s| name.contains(s))
            };
            if url.query_pairs().any(|(name, _)| secret(&name)) {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) { "***".to_owned() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
                changed = true;
            }
            if changed { url.to_string() } else { text.to_owned() }
        }
        Err(_) => match text.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => text.to_owned(),
        },
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact;

    #[test]
    fn passwords_in_the_user_part_or_the_query_are_hidden() {
        assert_eq!(redact("postgres://attest:hunter2@db:5432/attest"), "postgres://attest:***@db:5432/attest");
        let shown = redact("postgres://attest@db/attest?sslmode=require&password=hunter2&PGPASSWORD=x&sslpassword=y");
        assert!(!shown.contains("hunter2") && !shown.contains("=x") && !shown.contains("=y"), "{shown}");
        assert!(shown.contains("sslmode=require") && shown.contains("password=***"), "{shown}");
        assert_eq!(redact("sqlite://./attest-data/attest.db?mode=rwc"), "sqlite://./attest-data/attest.db?mode=rwc");
        assert_eq!(redact("not a url:hunter2@host"), "***@host");
    }
}
