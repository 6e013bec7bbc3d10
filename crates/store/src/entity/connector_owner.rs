use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connector_owners")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connector_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub email: String,
    /// The directory object id the owner resolved to (see `Connectors::resolve_connector_owners`).
    pub object_id: Option<String>,
    /// The tenant the owner signs in from, when not the connector's own.
    pub tenant_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
