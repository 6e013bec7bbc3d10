//! Attest's schema, one sea-orm migration per change.
//!
//! Migrations are frozen once released: each declares its own identifiers, so later changes to
//! the store's entities never change what an old migration does. Every migration has `up` and
//! `down`, and both run on SQLite and PostgreSQL in the test suite.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_entitlement_graph;
mod m20261122_000001_lifecycle_events;
mod m20261122_000002_changes;
mod m20261122_000003_job_leases;
mod m20261122_000004_web_sign_in;
mod m20261123_000001_mail_outbox;
mod m20261123_000002_sync_requests;
mod m20261123_000003_change_subjects;
mod m20261203_000001_effective_access;
mod m20261203_000002_identity_by_object_id;
mod m20261203_000003_keyed_audit_chain;
mod m20261204_000001_change_reasons;
mod m20261204_000002_access_reviews;
mod m20261204_000003_review_stages;
mod m20261204_000004_access_requests;
mod m20261205_000001_connector_setup;
mod m20261206_000001_certificate_rotation;
mod m20261206_000002_scim_accounts;
mod m20261207_000001_account_phone;
mod m20261207_000002_grant_extended_in_directory;
mod m20261208_000001_review_bulk_foreign_keys;
mod m20261208_000002_access_activation_due;
mod m20261209_000001_review_not_sure_counts;

/// The ordered list of migrations this build knows.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_entitlement_graph::Migration),
            Box::new(m20261122_000001_lifecycle_events::Migration),
            Box::new(m20261122_000002_changes::Migration),
            Box::new(m20261122_000003_job_leases::Migration),
            Box::new(m20261122_000004_web_sign_in::Migration),
            Box::new(m20261123_000001_mail_outbox::Migration),
            Box::new(m20261123_000002_sync_requests::Migration),
            Box::new(m20261123_000003_change_subjects::Migration),
            Box::new(m20261203_000001_effective_access::Migration),
            Box::new(m20261203_000002_identity_by_object_id::Migration),
            Box::new(m20261203_000003_keyed_audit_chain::Migration),
            Box::new(m20261204_000001_change_reasons::Migration),
            Box::new(m20261204_000002_access_reviews::Migration),
            Box::new(m20261204_000003_review_stages::Migration),
            Box::new(m20261204_000004_access_requests::Migration),
            Box::new(m20261205_000001_connector_setup::Migration),
            Box::new(m20261206_000001_certificate_rotation::Migration),
            Box::new(m20261206_000002_scim_accounts::Migration),
            Box::new(m20261207_000001_account_phone::Migration),
            Box::new(m20261207_000002_grant_extended_in_directory::Migration),
            Box::new(m20261208_000001_review_bulk_foreign_keys::Migration),
            Box::new(m20261208_000002_access_activation_due::Migration),
            Box::new(m20261209_000001_review_not_sure_counts::Migration),
        ]
    }
}
