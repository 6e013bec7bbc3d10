//! End-to-end tests, one binary with a module per area. Each test runs the real code path
//! (the `attest` command as a user types it) against a fresh database on SQLite and on
//! PostgreSQL.

// Everything in this binary is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod authz;
mod changes;
mod cli;
mod demo;
mod hardening;
mod harness;
mod mail;
mod pages;
mod reviews;
mod scim;
mod secrets;
mod serve;
mod setup;
mod sync;
mod ui;
mod web;
