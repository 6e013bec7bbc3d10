//! Connecting a tenant: where a connector stands and why (every change audited), the owners'
//! invitations, the consent round trip, and what the setup job has mailed.

use attest_domain::setup::Invitation;
use attest_domain::time::micros;
use attest_domain::{ConnectorId, ConnectorStatus};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::StoreError;
use crate::areas::Setup;
use crate::sql::{Sql, select_json};

const INVITATION_COLUMNS: &[&str] = &[
    "id",
    "connector_id",
    "email",
    "invited_by",
    "invited_by_email",
    "created_at",
    "expires_at",
    "mailed_at",
    "reminded_at",
    "used_at",
    "used_by",
];

/// A consent attempt taken back by the callback.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentAttempt {
    pub connector_id: ConnectorId,
    pub invitation_id: Option<i64>,
    /// The Attest account that set off for Microsoft.
    pub user_id: i64,
}

impl Setup<'_> {
    /// Records where connector `id` stands and why. Returns the status it had when the status
    /// changed (then `connector.status_changed` is audited, as `actor`), else `None`. Reaching
    /// `connected` stamps the first connection and ends an episode of trouble, so the next one
    /// is mailed again.
    pub async fn set_status(
        self,
        id: ConnectorId,
        status: ConnectorStatus,
        reason: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConnectorStatus>, StoreError> {
        let txn = self.begin_write().await?;
        let mut read = Sql::new(self.backend(), "SELECT status, status_reason FROM connectors WHERE id = ");
        read.value(id.0);
        let row: Vec<(String, Option<String>)> = select_json(&txn, read, &["status", "status_reason"]).await?;
        let (before, before_reason) =
            row.into_iter().next().ok_or_else(|| StoreError::NotFound { what: "connector", key: id.to_string() })?;
        let before: ConnectorStatus =
            before.parse().map_err(|e| StoreError::Internal(format!("connector {id}: {e}")))?;
        if before == status && before_reason.as_deref() == reason {
            return Ok(None);
        }
        let now = micros(now);
        let mut sql = Sql::new(self.backend(), "UPDATE connectors SET status = ");
        sql.value(status.as_str()).push(", status_reason = ").value(reason.map(str::to_owned));
        sql.push(", updated_at = ").value(now);
        if before != status {
            sql.push(", status_changed_at = ").value(now);
        }
        if status == ConnectorStatus::Connected {
            sql.push(", connected_at = COALESCE(connected_at, ").value(now).push("), attention_mailed_at = NULL");
        }
        sql.push(" WHERE id = ").value(id.0);
        txn.execute_raw(sql.build()).await?;
        if before != status {
            let details = json!({"from": before.as_str(), "to": status.as_str(), "reason": reason});
            self.audit().record_in(&txn, actor, "connector.status_changed", "connector", id.0, details, now).await?;
        }
        txn.commit().await?;
        Ok((before != status).then_some(before))
    }

    /// Keeps the last readiness check's report (JSON) for the connector page.
    pub async fn record_check(
        self,
        id: ConnectorId,
        report: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE connectors SET last_check = ");
        sql.value(report.to_string()).push(", last_checked_at = ").value(micros(now)).push(" WHERE id = ").value(id.0);
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// The last readiness check's report and when it ran.
    pub async fn last_check(self, id: ConnectorId) -> Result<Option<(serde_json::Value, DateTime<Utc>)>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT last_check, last_checked_at FROM connectors WHERE last_check IS NOT NULL AND id = ",
        );
        sql.value(id.0);
        let rows: Vec<(String, DateTime<Utc>)> = select_json(&self.db, sql, &["last_check", "last_checked_at"]).await?;
        Ok(rows.into_iter().next().and_then(|(text, at)| Some((serde_json::from_str(&text).ok()?, at))))
    }

    /// Asks `email` (an address or object id) to finish connector `id`'s setup through the link
    /// whose token hashes to `token_hash`; audited as `connector.owner_invited`. The address
    /// becomes one of the connector's owners if it was not.
    #[allow(clippy::too_many_arguments)]
    pub async fn invite(
        self,
        id: ConnectorId,
        email: &str,
        token_hash: &str,
        invited_by: &str,
        invited_by_email: Option<&str>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Invitation, StoreError> {
        let email = email.trim().to_lowercase();
        if email.is_empty() {
            return Err(StoreError::Invalid("an invitation needs an owner's email address".into()));
        }
        let txn = self.begin_write().await?;
        let now = micros(now);
        let mut owner =
            Sql::new(self.backend(), "INSERT INTO connector_owners (connector_id, email, object_id) VALUES (");
        owner.value(id.0).push(", ").value(email.clone()).push(", ");
        owner.value(attest_domain::is_object_id(&email).then(|| email.clone()));
        owner.push(") ON CONFLICT (connector_id, email) DO NOTHING");
        txn.execute_raw(owner.build()).await?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO connector_invitations (connector_id, email, token_hash, invited_by, invited_by_email, created_at, expires_at) VALUES (",
        );
        sql.value(id.0).push(", ").value(email.clone()).push(", ").value(token_hash.to_owned()).push(", ");
        sql.value(invited_by.to_owned()).push(", ").value(invited_by_email.map(str::to_owned)).push(", ");
        sql.value(now).push(", ").value(micros(expires_at)).push(") RETURNING id");
        let row = txn
            .query_one_raw(sql.build())
            .await?
            .ok_or_else(|| StoreError::Internal("an invitation was not stored".into()))?;
        let invitation: i64 = row.try_get_by_index(0)?;
        let details = json!({"owner": email, "invitation": invitation, "expires_at": expires_at});
        self.audit().record_in(&txn, invited_by, "connector.owner_invited", "connector", id.0, details, now).await?;
        txn.commit().await?;
        self.invitation(invitation).await?.ok_or_else(|| StoreError::Internal("an invitation vanished".into()))
    }

    async fn invitations_where(self, build: impl FnOnce(&mut Sql)) -> Result<Vec<Invitation>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            &format!("SELECT {} FROM connector_invitations WHERE ", INVITATION_COLUMNS.join(", ")),
        );
        build(&mut sql);
        select_json(&self.db, sql, INVITATION_COLUMNS).await
    }

    /// The invitation with this id.
    pub async fn invitation(self, id: i64) -> Result<Option<Invitation>, StoreError> {
        Ok(self
            .invitations_where(|sql| {
                sql.push("id = ").value(id);
            })
            .await?
            .pop())
    }

    /// The invitation whose link token hashes to `token_hash`.
    pub async fn find_invitation(self, token_hash: &str) -> Result<Option<Invitation>, StoreError> {
        Ok(self
            .invitations_where(|sql| {
                sql.push("token_hash = ").value(token_hash.to_owned());
            })
            .await?
            .pop())
    }

    /// A connector's invitations, newest first.
    pub async fn invitations(self, id: ConnectorId) -> Result<Vec<Invitation>, StoreError> {
        self.invitations_where(|sql| {
            sql.push("connector_id = ").value(id.0).push(" ORDER BY id DESC");
        })
        .await
    }

    /// Invitations not mailed yet, still open.
    pub async fn invitations_to_mail(self, now: DateTime<Utc>) -> Result<Vec<Invitation>, StoreError> {
        self.invitations_where(|sql| {
            sql.push("mailed_at IS NULL AND used_at IS NULL AND expires_at > ").value(micros(now)).push(" ORDER BY id");
        })
        .await
    }

    /// Open invitations of connectors not connected yet, mailed but not reminded (the job
    /// checks [`Invitation::reminder_due`]).
    pub async fn invitations_to_remind(self, now: DateTime<Utc>) -> Result<Vec<Invitation>, StoreError> {
        self.invitations_where(|sql| {
            sql.push("mailed_at IS NOT NULL AND reminded_at IS NULL AND used_at IS NULL AND expires_at > ");
            sql.value(micros(now));
            sql.push(" AND connector_id IN (SELECT id FROM connectors WHERE connected_at IS NULL) ORDER BY id");
        })
        .await
    }

    /// Marks invitation `id`'s first mail (`reminder` false) or its reminder as sent.
    pub async fn mark_invitation_mailed(self, id: i64, reminder: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        let column = if reminder { "reminded_at" } else { "mailed_at" };
        let mut sql = Sql::new(self.backend(), &format!("UPDATE connector_invitations SET {column} = "));
        sql.value(micros(now)).push(" WHERE id = ").value(id);
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Gives open invitation `id` a new link (the reminder's), which replaces the old one, and
    /// marks it reminded. False when it is no longer open or was already reminded.
    pub async fn renew_invitation(self, id: i64, token_hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(self.backend(), "UPDATE connector_invitations SET token_hash = ");
        sql.value(token_hash.to_owned()).push(", reminded_at = ").value(now);
        sql.push(" WHERE id = ")
            .value(id)
            .push(" AND reminded_at IS NULL AND used_at IS NULL AND expires_at > ")
            .value(now);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() == 1)
    }

    /// Keeps the consent attempt an owner sets off with, under the hash of its `state`.
    pub async fn save_consent_attempt(
        self,
        state_hash: &str,
        attempt: &ConsentAttempt,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO consent_attempts (state_hash, connector_id, invitation_id, user_id, created_at, expires_at) VALUES (",
        );
        sql.value(state_hash.to_owned()).push(", ").value(attempt.connector_id.0).push(", ");
        sql.value(attempt.invitation_id).push(", ").value(attempt.user_id).push(", ");
        sql.value(micros(now)).push(", ").value(micros(expires_at)).push(")");
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Takes (once) the consent attempt under `state_hash`, unless it expired; expired ones are
    /// cleared along the way.
    pub async fn take_consent_attempt(
        self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConsentAttempt>, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(self.backend(), "DELETE FROM consent_attempts WHERE state_hash = ");
        sql.value(state_hash.to_owned()).push(" AND expires_at > ").value(now);
        sql.push(" RETURNING connector_id, invitation_id, user_id");
        let row = self.db.query_one_raw(sql.build()).await?;
        let mut sweep = Sql::new(self.backend(), "DELETE FROM consent_attempts WHERE expires_at <= ");
        sweep.value(now);
        self.db.execute_raw(sweep.build()).await?;
        Ok(match row {
            Some(row) => Some(ConsentAttempt {
                connector_id: ConnectorId(row.try_get_by_index(0)?),
                invitation_id: row.try_get_by_index(1)?,
                user_id: row.try_get_by_index(2)?,
            }),
            None => None,
        })
    }

    /// The owner behind invitation `id` finished the setup as `tenant/object_id`: the
    /// invitation is used (true once, while open) and the owner bound to that identity, so
    /// they operate the connector from now on. `tenant` is recorded only when it is not the
    /// connector's own. Audited as `connector.consented`.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_invitation(
        self,
        id: i64,
        tenant: &str,
        object_id: &str,
        actor: &str,
        connector_tenant: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let now = micros(now);
        let used_by = format!("{tenant}/{object_id}");
        let mut sql = Sql::new(self.backend(), "UPDATE connector_invitations SET used_at = ");
        sql.value(now).push(", used_by = ").value(used_by.clone());
        sql.push(" WHERE used_at IS NULL AND id = ").value(id).push(" AND expires_at > ").value(now);
        sql.push(" RETURNING connector_id, email");
        let Some(row) = txn.query_one_raw(sql.build()).await? else { return Ok(false) };
        let (connector, email): (i64, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let foreign = (connector_tenant != Some(tenant)).then(|| tenant.to_owned());
        let mut owner = Sql::new(self.backend(), "UPDATE connector_owners SET object_id = ");
        owner.value(object_id.to_owned()).push(", tenant_id = ").value(foreign);
        owner.push(" WHERE connector_id = ").value(connector).push(" AND email = ").value(email.clone());
        txn.execute_raw(owner.build()).await?;
        let mut by = Sql::new(self.backend(), "UPDATE connectors SET connected_by = ");
        by.value(actor.to_owned()).push(" WHERE id = ").value(connector);
        txn.execute_raw(by.build()).await?;
        let details = json!({"owner": email, "invitation": id, "identity": used_by});
        self.audit().record_in(&txn, actor, "connector.consented", "connector", connector, details, now).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Connectors whose first connection has not been announced to whoever invited their
    /// owners, with those people's addresses.
    pub async fn connections_to_announce(self) -> Result<Vec<(ConnectorId, Vec<String>)>, StoreError> {
        let sql = Sql::new(
            self.backend(),
            "SELECT c.id AS id, i.invited_by_email AS email FROM connectors c \
             LEFT JOIN connector_invitations i ON i.connector_id = c.id AND i.invited_by_email IS NOT NULL \
             WHERE c.connected_at IS NOT NULL AND c.connected_notified_at IS NULL ORDER BY c.id",
        );
        let rows: Vec<(i64, Option<String>)> = select_json(&self.db, sql, &["id", "email"]).await?;
        let mut found: Vec<(ConnectorId, Vec<String>)> = Vec::new();
        for (id, email) in rows {
            if found.last().is_none_or(|(last, _)| last.0 != id) {
                found.push((ConnectorId(id), Vec::new()));
            }
            if let (Some(email), Some((_, emails))) = (email, found.last_mut())
                && !emails.contains(&email)
            {
                emails.push(email);
            }
        }
        Ok(found)
    }

    /// Connectors in trouble whose owners have not been told of this episode.
    pub async fn attention_to_mail(self) -> Result<Vec<ConnectorId>, StoreError> {
        let sql = Sql::new(
            self.backend(),
            "SELECT id FROM connectors WHERE status IN ('needs_reauthorization', 'error') AND attention_mailed_at IS NULL ORDER BY id",
        );
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        Ok(rows.into_iter().map(|(id,)| ConnectorId(id)).collect())
    }

    /// The connector's live groups and their attributes (id, name, attributes as JSON text), for
    /// telling apart those Microsoft Graph cannot change.
    pub async fn group_attributes(self, id: ConnectorId) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT id, display_name, attributes FROM resources WHERE kind = 'group' AND deleted_at IS NULL AND connector_id = ",
        );
        sql.value(id.0).push(" ORDER BY display_name");
        select_json(&self.db, sql, &["id", "display_name", "attributes"]).await
    }

    /// Marks connector `id`'s first connection announced (`connected`) or its trouble mailed.
    pub async fn mark_connector_mailed(
        self,
        id: ConnectorId,
        connected: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let column = if connected { "connected_notified_at" } else { "attention_mailed_at" };
        let mut sql = Sql::new(self.backend(), &format!("UPDATE connectors SET {column} = "));
        sql.value(micros(now)).push(" WHERE id = ").value(id.0);
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }
}
