//! Raw statements for the bulk paths, where the query builder would cost more than it helps.
//! [`Sql`] writes the right placeholder for the backend as values are pushed.

use sea_orm::{DbBackend, Statement, Value};

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
