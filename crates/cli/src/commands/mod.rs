//! Subcommands, one module each, sharing how configuration and the store are opened.

pub mod admin;
pub mod audit;
pub mod campaign;
pub mod change;
pub mod config;
pub mod connector;
pub mod demo;
pub mod events;
pub mod graph;
pub mod migrate;
pub mod request;
pub mod scim;
pub mod serve;
pub mod sim;
pub mod sync;

use std::path::Path;

use anyhow::Context as _;
use attest_config::{Config, DatabaseUrl, LogFormat};
use attest_store::Store;

/// What every command starts from: the effective configuration.
pub struct Context {
    pub config: Config,
}

impl Context {
    /// Loads the configuration, then applies command-line overrides.
    pub fn load(path: Option<&Path>, database_url: Option<&str>, log_format: Option<&str>) -> anyhow::Result<Context> {
        let mut config = Config::load(path, std::env::vars())?;
        if let Some(url) = database_url {
            config.database.url =
                DatabaseUrl::parse(url).map_err(|expected| anyhow::anyhow!("--database-url: expected {expected}"))?;
        }
        match log_format {
            Some("json") => config.log.format = LogFormat::Json,
            Some("pretty") => config.log.format = LogFormat::Pretty,
            _ => {}
        }
        Ok(Context { config })
    }

    /// Opens the database without checking its schema (for `migrate`).
    pub async fn connect(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.config.database).await?)
    }

    /// Opens the database and checks its schema is exactly what this build expects. The audit
    /// events it appends are signed with the key beside the secrets key (created on first use).
    pub async fn store(&self) -> anyhow::Result<Store> {
        // A SQLite file that is not there is a wrong path, not a database to create: only
        // `attest migrate` creates one.
        if let Some(path) = self.config.database.url.sqlite_path().filter(|p| !p.exists()) {
            let here = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
            anyhow::bail!(
                "no database at {} (looked from {here}, as database.url says, or --database-url); \
                 create one with `attest migrate`, or point --config or --database-url at an existing one \
                 (`attest demo` writes an attest.toml for its database in its folder)",
                path.display()
            );
        }
        let store = self.connect().await?;
        store.ensure_schema_current().await.with_context(|| format!("database {}", self.config.database.url))?;
        let key = attest_config::secrets::SecretKey::load_or_create(&self.config.secret_key_file)?;
        Ok(store.with_audit_key(attest_domain::audit::ChainKey::new(&key.audit_chain_key())))
    }
}
