//! End-to-end tests, one binary with a module per area. Each test runs the real code path
//! (the `attest` command as a user types it) against a fresh database on SQLite and on
//! PostgreSQL.

mod cli;
mod harness;
