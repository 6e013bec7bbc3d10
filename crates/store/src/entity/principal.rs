use attest_domain::{ConnectorId, Principal, PrincipalData, PrincipalId};
use sea_orm::entity::prelude::*;

use super::{parse_column, parse_json};
use crate::StoreError;

/// `Deserialize` reads a row from [`crate::sql::select_json`], columns in [`COLUMNS`] order.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "principals")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector_id: i64,
    pub external_id: String,
    pub kind: String,
    pub display_name: String,
    pub user_principal_name: Option<String>,
    pub email: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub usage_location: Option<String>,
    pub employee_id: Option<String>,
    pub manager_external_id: Option<String>,
    #[serde(deserialize_with = "crate::sql::optional_bool")]
    pub account_enabled: Option<bool>,
    pub user_type: Option<String>,
    pub created_in_source_at: Option<DateTimeUtc>,
    pub last_sign_in_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    pub attributes: String,
    pub first_seen_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// The columns, in the order of [`Model`]'s fields.
pub(crate) const COLUMNS: &[&str] = &[
    "id",
    "connector_id",
    "external_id",
    "kind",
    "display_name",
    "user_principal_name",
    "email",
    "job_title",
    "department",
    "office_location",
    "usage_location",
    "employee_id",
    "manager_external_id",
    "account_enabled",
    "user_type",
    "created_in_source_at",
    "last_sign_in_at",
    "deleted_at",
    "attributes",
    "first_seen_at",
    "updated_at",
];

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub(crate) fn data(&self) -> Result<PrincipalData, StoreError> {
        const T: &str = "principals";
        Ok(PrincipalData {
            external_id: self.external_id.clone(),
            kind: parse_column(T, self.id, &self.kind)?,
            display_name: self.display_name.clone(),
            user_principal_name: self.user_principal_name.clone(),
            email: self.email.clone(),
            job_title: self.job_title.clone(),
            department: self.department.clone(),
            office_location: self.office_location.clone(),
            usage_location: self.usage_location.clone(),
            employee_id: self.employee_id.clone(),
            manager_external_id: self.manager_external_id.clone(),
            account_enabled: self.account_enabled,
            user_type: self.user_type.as_deref().map(|t| parse_column(T, self.id, t)).transpose()?,
            created_in_source_at: self.created_in_source_at,
            last_sign_in_at: self.last_sign_in_at,
            deleted_at: self.deleted_at,
            attributes: parse_json(T, self.id, &self.attributes)?,
        })
    }

    pub(crate) fn into_domain(self) -> Result<Principal, StoreError> {
        Ok(Principal {
            id: PrincipalId(self.id),
            connector_id: ConnectorId(self.connector_id),
            data: self.data()?,
            first_seen_at: self.first_seen_at,
            updated_at: self.updated_at,
        })
    }
}
