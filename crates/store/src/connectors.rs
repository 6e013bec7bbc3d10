//! Connectors: create, read, and the bookkeeping sync needs.

use attest_domain::{Connector, ConnectorId, ConnectorKind, ConnectorStatus, SyncMode};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::StoreError;
use crate::areas::Connectors;
use crate::entity::{connector, connector_owner};
use crate::sql::{Sql, select_json};

/// What is needed to create a connector.
#[derive(Debug, Clone)]
pub struct NewConnector {
    pub name: String,
    pub kind: ConnectorKind,
    pub tenant_id: Option<String>,
    pub status: ConnectorStatus,
    pub settings: serde_json::Value,
    pub owners: Vec<String>,
}

impl NewConnector {
    /// A new Microsoft Entra connector named `name`: no tenant, no owners, default settings,
    /// `not_connected` until credentials are added.
    pub fn entra(name: impl Into<String>) -> NewConnector {
        NewConnector {
            name: name.into(),
            kind: ConnectorKind::Entra,
            tenant_id: None,
            status: ConnectorStatus::NotConnected,
            settings: serde_json::json!({}),
            owners: Vec::new(),
        }
    }
}

impl Connectors<'_> {
    /// Creates a connector; a duplicate name is a `Conflict`.
    pub async fn create_connector(self, new: NewConnector, now: DateTime<Utc>) -> Result<Connector, StoreError> {
        if new.name.trim().is_empty() {
            return Err(StoreError::Invalid("a connector needs a name".into()));
        }
        let txn = self.begin_write().await?;
        let model = connector::ActiveModel {
            id: NotSet,
            name: Set(new.name.clone()),
            kind: Set(new.kind.as_str().to_owned()),
            tenant_id: Set(new.tenant_id),
            status: Set(new.status.as_str().to_owned()),
            settings: Set(new.settings.to_string()),
            credentials: Set(None),
            last_full_sync_at: Set(None),
            last_delta_sync_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            status_reason: Set(None),
            status_changed_at: Set(Some(now)),
            connected_at: Set(None),
            connected_by: Set(None),
            attention_mailed_at: Set(None),
            connected_notified_at: Set(None),
            last_check: Set(None),
            last_checked_at: Set(None),
            pending_credentials: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict { .. } => StoreError::Conflict { what: format!("a connector named '{}'", new.name) },
            other => other,
        })?;
        let mut owners: Vec<String> = new.owners.iter().map(|o| o.trim().to_lowercase()).collect();
        owners.sort();
        owners.dedup();
        let mut owner_ids = Vec::new();
        for email in &owners {
            // An owner named by object id is that identity already; by address, it is resolved
            // from the directory once synced.
            let object_id = attest_domain::is_object_id(email).then(|| email.clone());
            owner_ids.extend(object_id.clone());
            connector_owner::ActiveModel {
                connector_id: Set(model.id),
                email: Set(email.clone()),
                object_id: Set(object_id),
                tenant_id: Set(None),
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        model.into_domain(owners, owner_ids, Vec::new())
    }

    /// The connector with this id, or `NotFound`.
    pub async fn get_connector(self, id: ConnectorId) -> Result<Connector, StoreError> {
        let model = connector::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "connector", key: id.to_string() })?;
        self.with_owners(model).await
    }

    /// The connector with this name, if any.
    pub async fn find_connector_by_name(self, name: &str) -> Result<Option<Connector>, StoreError> {
        match connector::Entity::find().filter(connector::Column::Name.eq(name)).one(&self.db).await? {
            Some(model) => self.with_owners(model).await.map(Some),
            None => Ok(None),
        }
    }

    /// All connectors, by name.
    pub async fn list_connectors(self) -> Result<Vec<Connector>, StoreError> {
        let models = connector::Entity::find().order_by_asc(connector::Column::Name).all(&self.db).await?;
        let mut connectors = Vec::with_capacity(models.len());
        for model in models {
            connectors.push(self.with_owners(model).await?);
        }
        Ok(connectors)
    }

    /// Stores a connector's sealed credentials (the store never sees them in clear), or
    /// removes them with `None`.
    pub async fn set_connector_credentials(
        self,
        id: ConnectorId,
        sealed: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.get_connector(id).await?;
        connector::ActiveModel {
            id: Unchanged(id.0),
            credentials: Set(sealed),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// Sets (or clears) the credentials a connector will switch to once they are proven: a new
    /// certificate waiting to be uploaded to the app registration. Sealed like the credentials.
    pub async fn set_pending_credentials(
        self,
        id: ConnectorId,
        sealed: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.get_connector(id).await?;
        connector::ActiveModel {
            id: Unchanged(id.0),
            pending_credentials: Set(sealed),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// A connector's pending credentials (see `set_pending_credentials`), if any.
    pub async fn find_pending_credentials(self, id: ConnectorId) -> Result<Option<Vec<u8>>, StoreError> {
        let model = connector::Entity::find_by_id(id.0).one(&self.db).await?;
        Ok(model.and_then(|m| m.pending_credentials))
    }

    /// A connector's sealed credentials, if any were stored.
    pub async fn find_connector_credentials(self, id: ConnectorId) -> Result<Option<Vec<u8>>, StoreError> {
        let model = connector::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "connector", key: id.to_string() })?;
        Ok(model.credentials)
    }

    /// Replaces a connector's settings (scope, base URLs), as its connector type defines them.
    pub async fn set_connector_settings(
        self,
        id: ConnectorId,
        settings: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.get_connector(id).await?;
        connector::ActiveModel {
            id: Unchanged(id.0),
            settings: Set(settings.to_string()),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// Records that a sync of `mode` observed the directory as of `at`.
    pub(crate) async fn mark_connector_synced(
        self,
        txn: &impl sea_orm::ConnectionTrait,
        id: ConnectorId,
        mode: SyncMode,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut model = connector::ActiveModel { id: Unchanged(id.0), updated_at: Set(at), ..Default::default() };
        match mode {
            SyncMode::Full => model.last_full_sync_at = Set(Some(at)),
            SyncMode::Delta => model.last_delta_sync_at = Set(Some(at)),
        }
        model.update(txn).await?;
        Ok(())
    }

    async fn with_owners(self, model: connector::Model) -> Result<Connector, StoreError> {
        let rows = connector_owner::Entity::find()
            .filter(connector_owner::Column::ConnectorId.eq(model.id))
            .order_by_asc(connector_owner::Column::Email)
            .all(&self.db)
            .await?;
        let owner_ids = rows.iter().filter(|o| o.tenant_id.is_none()).filter_map(|o| o.object_id.clone()).collect();
        let foreign =
            rows.iter().filter_map(|o| Some(format!("{}/{}", o.tenant_id.as_ref()?, o.object_id.as_ref()?))).collect();
        model.into_domain(rows.into_iter().map(|o| o.email).collect(), owner_ids, foreign)
    }

    /// Resolves the connector's owners named by address to the directory's users, once: by
    /// user principal name (unique in a tenant), else by a work email exactly one live user
    /// has. A resolved owner keeps their identity; an address nobody (or several) holds stays
    /// unresolved and grants nothing. Returns how many were resolved now.
    pub async fn resolve_connector_owners(self, connector: ConnectorId) -> Result<u64, StoreError> {
        let backend = self.backend();
        let mut resolved = 0;
        for (column, unique) in [("user_principal_name", false), ("email", true)] {
            // With `unique`, an address two users hold resolves to nobody.
            let having = if unique { " GROUP BY o.email HAVING COUNT(*) = 1" } else { "" };
            let mut sql = Sql::new(
                backend,
                &format!(
                    "SELECT o.email AS owner, MIN(p.external_id) AS object_id FROM connector_owners o \
                     JOIN principals p ON p.connector_id = o.connector_id AND p.kind = 'user' AND p.deleted_at IS NULL \
                     AND lower(p.{column}) = o.email WHERE o.object_id IS NULL AND o.connector_id = "
                ),
            );
            sql.value(connector.0);
            sql.push(if unique { having } else { " GROUP BY o.email" });
            let rows: Vec<(String, String)> = select_json(&self.db, sql, &["owner", "object_id"]).await?;
            for (owner, object_id) in rows {
                let mut update = Sql::new(backend, "UPDATE connector_owners SET object_id = ");
                update.value(object_id).push(" WHERE object_id IS NULL AND connector_id = ").value(connector.0);
                update.push(" AND email = ").value(owner);
                resolved += self.db.execute_raw(update.build()).await?.rows_affected();
            }
        }
        Ok(resolved)
    }
}
