//! Resolving grant and revoke commands (`attest_domain::command`) against the stored graph:
//! the one place a review item, an access request or an expiry turns into a directory
//! operation.

use attest_domain::command::{AccessCommand, CommandError, GrantTarget, RevokeTarget, grant_action, revoke_action};
use attest_domain::{ChangeAction, ConnectorId, GrantId};
use sea_orm::EntityTrait;

use crate::StoreError;
use crate::areas::Grants;
use crate::entity::grant;

impl Grants<'_> {
    /// The connector and directory operation that carry out `command`. Refused (with the
    /// reason) when the graph says it cannot be done: an inherited, ineffective or already
    /// ended grant, a deleted resource, an entitlement nothing can give.
    pub async fn resolve_command(self, command: &AccessCommand) -> Result<(ConnectorId, ChangeAction), StoreError> {
        match command {
            AccessCommand::Grant { principal, entitlement, until } => {
                let principal = self.principals().get_principal(*principal).await?;
                let entitlement = self.resources().get_entitlement(*entitlement).await?;
                let resource = self.resources().get_resource(entitlement.data.resource_id).await?;
                if principal.connector_id != resource.connector_id {
                    return Err(StoreError::Invalid(format!(
                        "'{}' and '{}' are in different tenants",
                        principal.data.display_name, resource.data.display_name
                    )));
                }
                let target = GrantTarget {
                    principal: &principal.data.external_id,
                    resource_kind: resource.data.kind,
                    resource: &resource.data.external_id,
                    resource_deleted: resource.data.deleted_at.is_some(),
                    entitlement: &entitlement.data.key,
                    until: *until,
                    managed_elsewhere: managed_elsewhere(&resource, &entitlement.data.key),
                };
                Ok((resource.connector_id, grant_action(&target)?))
            }
            AccessCommand::Revoke { grant } => {
                let held = self.get_grant(*grant).await?;
                if held.ended_at.is_some() {
                    return Err(CommandError::Ended.into());
                }
                let principal = self.principals().get_principal(held.principal_id).await?;
                let entitlement = self.resources().get_entitlement(held.entitlement_id).await?;
                let resource = self.resources().get_resource(entitlement.data.resource_id).await?;
                let target = RevokeTarget {
                    principal: &principal.data.external_id,
                    resource_kind: resource.data.kind,
                    resource: &resource.data.external_id,
                    resource_deleted: resource.data.deleted_at.is_some(),
                    entitlement: &entitlement.data.key,
                    source: held.source,
                    scope: &held.scope,
                    external_ref: held.external_ref.as_deref(),
                    expires_at: held.expires_at,
                    ineffective: held.ineffective,
                    managed_elsewhere: managed_elsewhere(&resource, &entitlement.data.key),
                };
                Ok((held.connector_id, revoke_action(&target)?))
            }
        }
    }

    /// The grant with this id (current or ended), or `NotFound`.
    pub async fn get_grant(self, id: GrantId) -> Result<attest_domain::Grant, StoreError> {
        let model = grant::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "grant", key: id.0.to_string() })?;
        Ok(self.grants_into_domain(vec![model]).await?.remove(0))
    }
}

/// Why Graph cannot change who holds `key` on `resource` (a group managed elsewhere).
fn managed_elsewhere(resource: &attest_domain::Resource, key: &attest_domain::EntitlementKey) -> Option<&'static str> {
    (resource.data.kind == attest_domain::ResourceKind::Group)
        .then(|| attest_domain::resource::group_managed_elsewhere(&resource.data.attributes, key))
        .flatten()
}
