use attest_domain::AuditEvent;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub occurred_at: DateTimeUtc,
    pub actor: String,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for AuditEvent {
    fn from(m: Model) -> AuditEvent {
        AuditEvent {
            seq: m.seq,
            occurred_at: m.occurred_at,
            actor: m.actor,
            action: m.action,
            target_kind: m.target_kind,
            target_id: m.target_id,
            details: m.details,
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}
