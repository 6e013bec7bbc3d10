//! sea-orm entities, one per table, each with its conversion into the domain type beside it.
//! Entities are the store's private view of the schema; other crates see domain types only.

pub mod audit_event;
pub mod change;
pub mod connector;
pub mod connector_owner;
pub mod entitlement;
pub mod grant;
pub mod mail;
pub mod principal;
pub mod resource;
pub mod sync_run;

use crate::StoreError;

/// Parses a stored enum column, naming the table and row when the value is not understood.
pub(crate) fn parse_column<T: std::str::FromStr>(table: &'static str, id: i64, value: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| StoreError::Corrupt { table, id, message: e.to_string() })
}

/// How many rows of `E` hold each value of `column` (a state), parsed as `T`.
pub(crate) async fn count_by<E, T>(
    db: &sea_orm::DatabaseConnection,
    table: &'static str,
    column: E::Column,
) -> Result<Vec<(T, u64)>, StoreError>
where
    E: sea_orm::EntityTrait,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use sea_orm::{ColumnTrait, QuerySelect};
    let rows: Vec<(String, i64)> = E::find()
        .select_only()
        .column(column)
        .column_as(column.count(), "n")
        .group_by(column)
        .into_tuple()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|(value, n)| Ok((parse_column(table, 0, &value)?, u64::try_from(n).unwrap_or_default())))
        .collect()
}

/// Parses a stored JSON column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: i64,
    value: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt { table, id, message: format!("invalid JSON: {e}") })
}
