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

/// Replaces the password of a URL (if it has one) with `***`. Text that is not a URL is
/// returned up to its first `@` only, so a malformed URL still never leaks a password.
pub(crate) fn redact(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => text.to_owned(),
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
