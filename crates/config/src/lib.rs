//! Attest's configuration.
//!
//! Sources, later ones winning: built-in defaults, `attest.toml`, then `ATTEST_<SECTION>_<KEY>`
//! environment variables (e.g. `ATTEST_DATABASE_URL`, `ATTEST_LOG_FORMAT`). A secret can instead
//! be read from a file named by its `*_file` key (`database.url_file`), so it never has to sit in
//! the config file or the environment. Unknown keys are errors, and every error names the key
//! (or variable) and what was expected, in one line.

mod database;
mod duration;
mod mail;

/// Parses a duration as the configuration writes them: `500ms`, `30s`, `10m`, `2h`, `7d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    duration::parse(text)
}
mod env;
pub mod secrets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use database::{DatabaseBackend, DatabaseUrl};
pub use mail::{DEFAULT_MAIL_FROM, MailConfig, RawMail, SmtpSecurity};
pub use secrets::SecretString;

/// The file read when no path is given and it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "attest.toml";

/// The default database: embedded SQLite under `./attest-data` (created on first run).
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./attest-data/attest.db?mode=rwc";

/// Where the key encrypting stored credentials is kept unless configured.
pub const DEFAULT_SECRET_KEY_FILE: &str = "./attest-data/secret.key";

/// A configuration problem, with the key or variable it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The config file is not valid TOML or does not match the expected keys and types.
    #[error("invalid config file {path}: {message}")]
    File { path: PathBuf, message: String },
    /// An `ATTEST_*` variable has a value of the wrong type.
    #[error("environment variable {var}: expected {expected}, got '{value}'")]
    Env { var: String, expected: &'static str, value: String },
    /// An `ATTEST_*` variable names a key that does not exist.
    #[error("environment variable {var} is not a configuration key in [{section}]: {message}")]
    UnknownEnvKey { var: String, section: String, message: String },
    /// The merged configuration has a key of the wrong type or an unknown key.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A key's value does not have the expected form.
    #[error("{key}: expected {expected}, got '{value}'")]
    Value { key: &'static str, expected: &'static str, value: String },
    /// A `*_file` key names a file that cannot be read.
    #[error("{key}: cannot read secret file {path}: {source}")]
    SecretFile { key: &'static str, path: PathBuf, source: std::io::Error },
    /// Two keys that exclude each other are both set.
    #[error("set {a} or {b}, not both")]
    Conflict { a: &'static str, b: &'static str },
}

/// The configuration as written: every key, with its documentation. Values are checked and
/// typed by [`Config::load`]; code uses [`Config`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Where Attest stores its data.
    pub database: RawDatabase,
    /// Log output.
    pub log: RawLog,
    /// How secrets stored in the database (connector credentials) are encrypted.
    pub secrets: RawSecrets,
    /// How changes are applied in the directory.
    pub provisioning: RawProvisioning,
    /// `attest serve`: where it listens and how often it syncs.
    pub server: RawServer,
    /// Email: the sender address and the SMTP server mail goes through.
    pub mail: RawMail,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address and port `attest serve` listens on.
    pub bind: String,
    /// How often each connector is synced (delta), e.g. `10m`.
    pub sync_interval: String,
    /// How often each connector gets a full sync (a reconcile), e.g. `24h`.
    pub full_sync_interval: String,
    /// The URL people reach Attest at (sign-in redirects and links are built from it).
    pub public_url: String,
    /// How long a web session lasts after sign-in, e.g. `12h`.
    pub session_lifetime: String,
    /// The connector whose tenant and app registration users sign in with (default: the only one).
    pub sign_in_connector: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            bind: "127.0.0.1:8080".into(),
            sync_interval: "10m".into(),
            full_sync_interval: "24h".into(),
            public_url: "http://127.0.0.1:8080".into(),
            session_lifetime: "12h".into(),
            sign_in_connector: None,
        }
    }
}

/// The classes of change a sensitivity policy can name.
/// `log.filter` unless set: what the server logs.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

pub const CHANGE_CLASSES: &[&str] =
    &["memberships", "owners", "app_roles", "directory_roles", "user_actions", "sessions"];

/// `[provisioning]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProvisioning {
    /// Changes of these classes wait for a second person's approval before they are applied:
    /// any of `memberships`, `owners`, `app_roles`, `directory_roles`, `user_actions`.
    pub sensitive: Vec<String>,
    /// Attempts before a change that keeps failing transiently (throttling, outages) is given up.
    pub max_attempts: u32,
}

impl Default for RawProvisioning {
    fn default() -> Self {
        RawProvisioning {
            sensitive: vec!["user_actions".into(), "directory_roles".into(), "owners".into()],
            max_attempts: 8,
        }
    }
}

/// `[secrets]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSecrets {
    /// The file holding the 256-bit key that encrypts credentials at rest (base64). Created,
    /// readable by its owner only, the first time a credential is stored. Default:
    /// `./attest-data/secret.key`. Back it up: credentials cannot be read without it.
    pub key_file: Option<PathBuf>,
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    /// Database URL: `sqlite://PATH?mode=rwc` (embedded, single node) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` (production, several replicas).
    /// Defaults to SQLite under `./attest-data`.
    pub url: Option<String>,
    /// A file holding the database URL (for passwords kept out of config and environment).
    pub url_file: Option<PathBuf>,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection before failing, e.g. `10s`.
    pub connect_timeout: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase { url: None, url_file: None, max_connections: 10, connect_timeout: "10s".into() }
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `pretty` (for people) or `json` (one object per line, for log shippers).
    pub format: String,
    /// Which events to log, in `RUST_LOG` syntax (`info`, `attest_store=debug,info`).
    /// `RUST_LOG`, when set, wins.
    pub filter: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { format: "pretty".into(), filter: DEFAULT_LOG_FILTER.into() }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The effective, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub log: LogConfig,
    /// Where the key that encrypts stored credentials lives.
    pub secret_key_file: PathBuf,
    pub provisioning: ProvisioningConfig,
    pub server: ServerConfig,
    pub mail: MailConfig,
    /// The file it was read from, if any.
    pub source_file: Option<PathBuf>,
}

/// `[database]`, checked.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

/// `[server]`, checked.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: std::net::SocketAddr,
    pub sync_interval: Duration,
    pub full_sync_interval: Duration,
    /// Without a trailing slash.
    pub public_url: String,
    pub session_lifetime: Duration,
    pub sign_in_connector: Option<String>,
}

/// `[provisioning]`, checked.
#[derive(Debug, Clone)]
pub struct ProvisioningConfig {
    /// Names from [`CHANGE_CLASSES`].
    pub sensitive: Vec<String>,
    pub max_attempts: u32,
}

/// `[log]`, checked.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

impl Config {
    /// Loads the configuration from `path` (or `./attest.toml` if it exists and no path is given)
    /// and the given environment (pass `std::env::vars()`).
    pub fn load(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let source_file = match path {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let mut table = match &source_file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        env::overlay(&mut table, environment)?;
        let raw = RawConfig::deserialize(toml::Value::Table(table)).map_err(|e| match &source_file {
            Some(path) => ConfigError::File { path: path.clone(), message: e.message().to_owned() },
            None => ConfigError::Invalid(e.message().to_owned()),
        })?;
        Config::check(raw, source_file)
    }

    /// Types and checks a raw configuration.
    pub fn check(raw: RawConfig, source_file: Option<PathBuf>) -> Result<Config, ConfigError> {
        let url = match (raw.database.url, raw.database.url_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict { a: "database.url", b: "database.url_file" });
            }
            (Some(url), None) => url,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::SecretFile { key: "database.url_file", path, source })?
                .trim()
                .to_owned(),
            (None, None) => DEFAULT_DATABASE_URL.to_owned(),
        };
        let url = DatabaseUrl::parse(&url).map_err(|expected| ConfigError::Value {
            key: "database.url",
            expected,
            value: database::redact(&url),
        })?;
        if raw.database.max_connections == 0 {
            return Err(ConfigError::Value {
                key: "database.max_connections",
                expected: "a number of connections of at least 1",
                value: "0".into(),
            });
        }
        let connect_timeout = duration::parse(&raw.database.connect_timeout).ok_or_else(|| ConfigError::Value {
            key: "database.connect_timeout",
            expected: duration::EXPECTED,
            value: raw.database.connect_timeout.clone(),
        })?;
        let format = match raw.log.format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => {
                return Err(ConfigError::Value {
                    key: "log.format",
                    expected: "'pretty' or 'json'",
                    value: raw.log.format,
                });
            }
        };
        if let Some(unknown) = raw.provisioning.sensitive.iter().find(|c| !CHANGE_CLASSES.contains(&c.as_str())) {
            return Err(ConfigError::Value {
                key: "provisioning.sensitive",
                expected: "a list of memberships, owners, app_roles, directory_roles, user_actions",
                value: unknown.clone(),
            });
        }
        if raw.provisioning.max_attempts == 0 {
            return Err(ConfigError::Value {
                key: "provisioning.max_attempts",
                expected: "a number of attempts of at least 1",
                value: "0".into(),
            });
        }
        let bind = raw.server.bind.parse().map_err(|_| ConfigError::Value {
            key: "server.bind",
            expected: "an address and port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
            value: raw.server.bind.clone(),
        })?;
        let interval = |key: &'static str, text: &str| {
            duration::parse(text).filter(|d| !d.is_zero()).ok_or_else(|| ConfigError::Value {
                key,
                expected: duration::EXPECTED,
                value: text.to_owned(),
            })
        };
        let server = ServerConfig {
            bind,
            sync_interval: interval("server.sync_interval", &raw.server.sync_interval)?,
            full_sync_interval: interval("server.full_sync_interval", &raw.server.full_sync_interval)?,
            public_url: check_public_url(&raw.server.public_url)?,
            session_lifetime: interval("server.session_lifetime", &raw.server.session_lifetime)?,
            sign_in_connector: raw.server.sign_in_connector.clone(),
        };
        let mail = MailConfig::check(raw.mail)?;
        Ok(Config {
            server,
            mail,
            provisioning: ProvisioningConfig {
                sensitive: raw.provisioning.sensitive,
                max_attempts: raw.provisioning.max_attempts,
            },
            database: DatabaseConfig { url, max_connections: raw.database.max_connections, connect_timeout },
            log: LogConfig { format, filter: raw.log.filter },
            secret_key_file: raw.secrets.key_file.unwrap_or_else(|| PathBuf::from(DEFAULT_SECRET_KEY_FILE)),
            source_file,
        })
    }

    /// The effective configuration as TOML, secrets redacted: what `attest config check` prints.
    pub fn to_redacted_toml(&self) -> String {
        let raw = RawConfig {
            database: RawDatabase {
                url: Some(self.database.url.redacted()),
                url_file: None,
                max_connections: self.database.max_connections,
                connect_timeout: duration::format(self.database.connect_timeout),
            },
            log: RawLog {
                format: match self.log.format {
                    LogFormat::Pretty => "pretty".into(),
                    LogFormat::Json => "json".into(),
                },
                filter: self.log.filter.clone(),
            },
            secrets: RawSecrets { key_file: Some(self.secret_key_file.clone()) },
            provisioning: RawProvisioning {
                sensitive: self.provisioning.sensitive.clone(),
                max_attempts: self.provisioning.max_attempts,
            },
            server: RawServer {
                bind: self.server.bind.to_string(),
                sync_interval: duration::format(self.server.sync_interval),
                full_sync_interval: duration::format(self.server.full_sync_interval),
                public_url: self.server.public_url.clone(),
                session_lifetime: duration::format(self.server.session_lifetime),
                sign_in_connector: self.server.sign_in_connector.clone(),
            },
            mail: self.mail.to_raw_redacted(),
        };
        toml::to_string(&raw).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// `http(s)://host[:port][/path]`, returned without a trailing slash.
fn check_public_url(text: &str) -> Result<String, ConfigError> {
    let trimmed = text.trim().trim_end_matches('/');
    let valid = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && trimmed.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#', ' ']));
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::Value {
            key: "server.public_url",
            expected: "an http or https URL, e.g. https://attest.example.com",
            value: text.to_owned(),
        })
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string().lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" "),
    })
}

#[cfg(test)]
mod tests;
