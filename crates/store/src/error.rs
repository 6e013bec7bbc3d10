//! The store's one error type. Database errors are classified here, at the boundary, so
//! callers branch on what happened, never on driver messages.

use sea_orm::{DbErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot connect to database {url}: {message}")]
    Connect { url: String, message: String },
    /// A `get_*` found nothing.
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    /// A unique key already holds this value.
    #[error("{what} already exists")]
    Conflict { what: String },
    /// A reference points at a row that does not exist.
    #[error("reference to a missing row: {0}")]
    MissingReference(String),
    /// The database has migrations this build does not know: it was upgraded by a newer Attest.
    #[error(
        "the database schema is newer than this build: the database has migration {database}, this build knows up to {binary}; run a newer Attest"
    )]
    SchemaTooNew { database: String, binary: String },
    /// Migrations are pending; `attest migrate up` applies them.
    #[error(
        "the database schema is behind: {pending} migration(s) pending, starting with {first}; run `attest migrate up`"
    )]
    SchemaBehind { pending: usize, first: String },
    /// A stored value could not be understood.
    #[error("corrupt row {id} in {table}: {message}")]
    Corrupt { table: &'static str, id: i64, message: String },
    /// A caller passed something the store cannot accept; the message says what to fix.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A change's rules do not allow this now (see `attest_domain::change_flow`).
    #[error(transparent)]
    ChangeRefused(#[from] attest_domain::change_flow::ChangeRefusal),
    /// A review decision is not allowed (see `attest_domain::review::may_decide`).
    #[error(transparent)]
    ReviewRefused(#[from] attest_domain::review::DecisionRefusal),
    /// An access request, or a step on one, is not allowed (see `attest_domain::access`).
    #[error(transparent)]
    AccessRefused(#[from] attest_domain::access::AccessRefusal),
    /// A grant or revoke cannot be carried out (see `attest_domain::command`).
    #[error(transparent)]
    CommandRefused(#[from] attest_domain::command::CommandError),
    /// A worker's claim on a queued row ran out and someone else took it over: its outcome is
    /// theirs to record now.
    #[error(
        "{what} {id} is no longer held by {by} (state {state}, held by {}): its lease expired and someone else took it over",
        holder.as_deref().unwrap_or("nobody")
    )]
    LeaseLost { what: &'static str, id: i64, by: String, state: String, holder: Option<String> },
    /// Something that cannot happen did (a row vanished mid-transaction, an unreadable
    /// batch): a bug or a database problem, never the caller's doing.
    #[error("{0}")]
    Internal(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> StoreError {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(message)) => StoreError::Conflict { what: message },
            Some(SqlErr::ForeignKeyConstraintViolation(message)) => StoreError::MissingReference(message),
            _ => StoreError::Database(err),
        }
    }
}

/// A connect error without the URL the driver may echo back.
pub(crate) fn describe_connect_error(err: &DbErr) -> String {
    let text = err.to_string();
    // sqlx reports e.g. "Connection Error: error returned from database: password authentication failed"
    text.split_once("Connection Error: ").map(|(_, rest)| rest.to_owned()).unwrap_or(text)
}
