//! `ATTEST_<SECTION>_<KEY>` environment variables laid over the file's table.
//!
//! A variable belongs to the configuration when its first word after `ATTEST_` names a section
//! (`ATTEST_DATABASE_URL` → `[database] url`); others (`ATTEST_CONFIG`, test settings) are left
//! alone. A value is typed by the key's default: integers and booleans are parsed, lists are
//! comma-separated, the rest are strings.

use serde::Deserialize;

use crate::{ConfigError, RawConfig};

const PREFIX: &str = "ATTEST_";

pub(crate) fn overlay(
    table: &mut toml::Table,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = match toml::Value::try_from(RawConfig::default()) {
        Ok(toml::Value::Table(table)) => table,
        _ => toml::Table::new(),
    };
    let mut variables: Vec<(String, String)> = environment.into_iter().filter(|(k, _)| k.starts_with(PREFIX)).collect();
    variables.sort();
    let mut from_env = Vec::new();
    for (var, value) in variables {
        let name = var[PREFIX.len()..].to_lowercase();
        let Some((section, key)) = name.split_once('_') else {
            continue;
        };
        let Some(toml::Value::Table(section_defaults)) = defaults.get(section) else {
            continue;
        };
        let typed = match section_defaults.get(key) {
            Some(toml::Value::Integer(_)) => value
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| ConfigError::Env { var: var.clone(), expected: "an integer", value: value.clone() })?,
            Some(toml::Value::Boolean(_)) => value
                .trim()
                .parse::<bool>()
                .map(toml::Value::Boolean)
                .map_err(|_| ConfigError::Env { var: var.clone(), expected: "true or false", value: value.clone() })?,
            // Lists are comma-separated: ATTEST_PROVISIONING_SENSITIVE=user_actions,owners
            Some(toml::Value::Array(_)) => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => toml::Value::String(value),
        };
        let entry = table.entry(section.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(section_table) = entry {
            section_table.insert(key.to_owned(), typed);
            from_env.push((var, section.to_owned(), key.to_owned()));
        }
    }
    // Name the variable, not just the key, when an ATTEST_* variable has a typo.
    if let Err(e) = RawConfig::deserialize(toml::Value::Table(table.clone())) {
        for (var, section, key) in from_env {
            if e.message().contains(&format!("unknown field `{key}`")) {
                return Err(ConfigError::UnknownEnvKey { var, section, message: e.message().to_owned() });
            }
        }
    }
    Ok(())
}
