//! Raw statements for the bulk paths, where the query builder would cost more than it helps.
//! [`Sql`] writes the right placeholder for the backend as values are pushed.

use std::collections::HashMap;

use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

/// Largest number of bound values per statement we use: under SQLite's 32766 and
/// PostgreSQL's 65535, with room to spare.
pub(crate) const MAX_PARAMS: usize = 30_000;

/// Rows per statement for a row of `columns` values, capped so a statement stays a sensible size.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns.max(1)).clamp(1, 2_000)
}

/// A statement being written: SQL text plus its bound values.
pub(crate) struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: DbBackend, text: &str) -> Sql {
        Sql { backend, text: text.to_owned(), values: Vec::new() }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn value(&mut self, value: impl Into<Value>) -> &mut Sql {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// Appends `(v1, v2, ...)`.
    pub(crate) fn tuple(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Sql {
        self.text.push('(');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.value(value);
        }
        self.text.push(')');
        self
    }

    pub(crate) fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// Runs `inner` (a SELECT of exactly `columns`) and decodes its rows from one aggregated JSON
/// array. One value crosses from the database instead of one message per row, which is what
/// makes scanning millions of rows cheap (sqlx hands SQLite rows over one by one between
/// threads). Timestamps arrive as RFC 3339 text, which chrono's serde reads.
pub(crate) async fn select_json<T: serde::de::DeserializeOwned>(
    conn: &impl ConnectionTrait,
    inner: Sql,
    columns: &[&str],
) -> Result<Vec<T>, crate::StoreError> {
    let list = columns.join(", ");
    let (prefix, suffix) = match inner.backend {
        DbBackend::Postgres => (
            format!("SELECT COALESCE(json_agg(json_build_array({list})), '[]'::json)::text FROM ("),
            ") AS rows".to_owned(),
        ),
        _ => (format!("SELECT json_group_array(json_array({list})) FROM ("), ")".to_owned()),
    };
    let Sql { backend, text, values } = inner;
    let statement = Statement::from_sql_and_values(backend, format!("{prefix}{text}{suffix}"), values);
    let Some(row) = conn.query_one_raw(statement).await? else { return Ok(Vec::new()) };
    let json: String = row.try_get_by_index(0)?;
    serde_json::from_str(&json)
        .map_err(|e| crate::StoreError::Internal(format!("unreadable rows from the database: {e}")))
}

/// A boolean column as JSON gives it: `true`/`false` from PostgreSQL, `1`/`0` from SQLite.
pub(crate) fn optional_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flexible {
        Bool(bool),
        Int(i64),
    }
    Ok(Option::<Flexible>::deserialize(deserializer)?.map(|v| match v {
        Flexible::Bool(b) => b,
        Flexible::Int(i) => i != 0,
    }))
}

/// A boolean column that is never null, as [`optional_bool`] reads it.
pub(crate) fn required_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    optional_bool(deserializer)?.ok_or_else(|| serde::de::Error::custom("a boolean was null"))
}

/// `FROM <rows of the JSON array bound here> AS j` plus accessors for its elements, per backend.
///
/// Join it with `CROSS JOIN <table> WHERE <key columns> = <elements>`: SQLite then keeps the
/// JSON rows as the outer loop and probes the table's index once per row (with a plain JOIN it
/// may scan the table and re-read the JSON for every row); PostgreSQL plans it as any join.
pub(crate) struct JsonRows {
    backend: DbBackend,
}

impl JsonRows {
    pub(crate) fn new(backend: DbBackend) -> JsonRows {
        JsonRows { backend }
    }

    /// Appends the table-valued source, binding `json` (an array of arrays) as one parameter.
    pub(crate) fn from(&self, sql: &mut Sql, json: String) {
        match self.backend {
            DbBackend::Postgres => {
                sql.push("jsonb_array_elements(").value(json).push("::jsonb) AS j(v)");
            }
            _ => {
                sql.push("json_each(").value(json).push(") AS j");
            }
        }
    }

    /// Element `i` of the current row, as SQL of type `ty` (`bigint`, `text`, `timestamptz`).
    pub(crate) fn get(&self, i: usize, ty: &str) -> String {
        match self.backend {
            DbBackend::Postgres => format!("(j.v ->> {i})::{ty}"),
            _ => format!("j.value ->> {i}"),
        }
    }
}

/// PostgreSQL only: `values` bound as one `bigint[]` (as in `id = ANY($1)`).
pub(crate) fn bigint_array(values: impl Iterator<Item = i64>) -> Value {
    Value::Array(ArrayType::BigInt, Some(Box::new(values.map(Value::from).collect())))
}

/// PostgreSQL only: a batch bound as one typed array per column and read back with `unnest`,
/// where [`JsonRows`] makes the server parse JSON: about half the time of writing a campaign's
/// million items. A bound text array cannot hold NULLs here, so a column that may be NULL
/// travels with a one-character prefix, the empty string standing for NULL.
pub(crate) struct ArrayRows {
    columns: Vec<(Value, &'static str)>,
}

impl ArrayRows {
    pub(crate) fn new() -> ArrayRows {
        ArrayRows { columns: Vec::new() }
    }

    pub(crate) fn bigint(&mut self, values: impl Iterator<Item = i64>) -> &mut ArrayRows {
        self.columns.push((bigint_array(values), "bigint"));
        self
    }

    pub(crate) fn int(&mut self, values: impl Iterator<Item = i32>) -> &mut ArrayRows {
        let values = values.map(Value::from).collect();
        self.columns.push((Value::Array(ArrayType::Int, Some(Box::new(values))), "integer"));
        self
    }

    pub(crate) fn text<'a>(&mut self, values: impl Iterator<Item = &'a str>) -> &mut ArrayRows {
        let values = values.map(|v| Value::from(v.to_owned())).collect();
        self.columns.push((Value::Array(ArrayType::String, Some(Box::new(values))), "text"));
        self
    }

    pub(crate) fn optional_text<'a>(&mut self, values: impl Iterator<Item = Option<&'a str>>) -> &mut ArrayRows {
        let values = values.map(|v| Value::from(v.map_or_else(String::new, |v| format!("={v}")))).collect();
        self.columns.push((Value::Array(ArrayType::String, Some(Box::new(values))), "optional"));
        self
    }

    /// Column `i` of the current row, as SQL.
    pub(crate) fn get(&self, i: usize) -> String {
        match self.columns.get(i).map(|(_, ty)| *ty) {
            Some("optional") => format!("substr(NULLIF(j.c{i}, ''), 2)"),
            _ => format!("j.c{i}"),
        }
    }

    /// Appends the table-valued source `unnest(…) AS j(c0, c1, …)`.
    pub(crate) fn from(self, sql: &mut Sql) {
        let names: Vec<String> = (0..self.columns.len()).map(|i| format!("c{i}")).collect();
        sql.push("unnest(");
        for (i, (values, ty)) in self.columns.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let ty = if ty == "optional" { "text" } else { ty };
            sql.push("CAST(").value(values).push(&format!(" AS {ty}[])"));
        }
        sql.push(&format!(") AS j({})", names.join(", ")));
    }
}

/// SQL for the text of field `key` of the JSON object in text column `column` (the graph's
/// `attributes`), NULL when absent. `key` is a constant of ours, never user input.
pub(crate) fn json_field(backend: DbBackend, column: &str, key: &str) -> String {
    debug_assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "a constant key: {key}");
    match backend {
        DbBackend::Postgres => format!("(({column})::jsonb ->> '{key}')"),
        _ => format!("json_extract({column}, '$.{key}')"),
    }
}

/// Serialises a batch for [`JsonRows`].
pub(crate) fn json<T: serde::Serialize + ?Sized>(rows: &T) -> Result<String, crate::StoreError> {
    serde_json::to_string(rows).map_err(|e| crate::StoreError::Internal(format!("cannot encode a batch: {e}")))
}

/// A timestamp as the backend stores it when sqlx binds one, so values written through JSON
/// are identical to values written through parameters (SQLite compares them as text).
pub(crate) fn timestamp_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// Keeps PostgreSQL's planner statistics in step with bulk writes.
///
/// PostgreSQL plans from statistics, and a table that grew a lot since they were taken is
/// planned as if it were still small: "these 5,000 keys joined to grants" becomes a scan of
/// every grant per batch, quadratic over a sync. Autovacuum catches up only after a minute,
/// mid-sync. So the store counts what it writes and runs `ANALYZE` once a table has grown by
/// half since it last did (about a dozen times over a 2M-row first load, ~0.1 s each).
/// SQLite needs nothing: it probes indexes by itself.
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    tables: std::sync::Mutex<HashMap<&'static str, Growth>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Growth {
    /// Rows written since the last ANALYZE.
    written: u64,
    /// Table size at the last ANALYZE.
    analyzed_at: u64,
}

/// Below this many written rows statistics are never refreshed.
const ANALYZE_AFTER: u64 = 1_000;

impl Statistics {
    /// Records `written` rows in `table` and refreshes its statistics when it grew enough.
    pub(crate) async fn record(
        &self,
        conn: &impl ConnectionTrait,
        table: &'static str,
        written: u64,
    ) -> Result<(), crate::StoreError> {
        if conn.get_database_backend() != DbBackend::Postgres || written == 0 {
            return Ok(());
        }
        let due = {
            let Ok(mut tables) = self.tables.lock() else { return Ok(()) };
            let growth = tables.entry(table).or_default();
            growth.written += written;
            let due = growth.written >= ANALYZE_AFTER && growth.written * 2 >= growth.analyzed_at;
            if due {
                growth.analyzed_at += growth.written;
                growth.written = 0;
            }
            due
        };
        if due {
            conn.execute_raw(Statement::from_string(DbBackend::Postgres, format!("ANALYZE {table}"))).await?;
        }
        Ok(())
    }
}
