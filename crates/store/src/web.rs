//! Web sign-in state: users (keyed by tenant and object id, never by password), server-side
//! sessions, sign-ins in progress, and one-time break-glass login links. Every token is stored
//! as its SHA-256 hash only, so a copy of the database lets nobody in.

use attest_domain::PrincipalData;
use attest_domain::time::micros;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::areas::Web;
use crate::sql::{Sql, json_field, select_json};

/// Someone who can sign in to the web application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebUser {
    pub id: i64,
    /// `local` for the break-glass administrator.
    pub tenant_id: String,
    pub object_id: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Roles granted explicitly (`admin`, `auditor`); the others follow from the graph.
    pub roles: Vec<String>,
}

/// What an account shows of its person, as the synced directory has them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    pub display_name: String,
    /// The work email, else the sign-in name.
    pub email: Option<String>,
    /// The business phone, else the mobile phone.
    pub phone: Option<String>,
}

impl Profile {
    /// A directory user's profile ("sync profile" refreshes accounts the same way).
    pub fn of(person: &PrincipalData) -> Profile {
        let phone = person.text_attribute(PrincipalData::PHONE).or(person.text_attribute(PrincipalData::MOBILE_PHONE));
        Profile {
            display_name: person.display_name.clone(),
            email: person.email.clone().or_else(|| person.user_principal_name.clone()),
            phone: phone.map(str::to_owned),
        }
    }
}

/// A valid session and its user.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSession {
    pub user: WebUser,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The tenant of the break-glass administrator.
pub const LOCAL_TENANT: &str = "local";

type UserRow = (i64, String, String, String, Option<String>, String);
const USER_COLUMNS: &[&str] = &["id", "tenant_id", "object_id", "display_name", "email", "roles"];

fn user(row: UserRow) -> Result<WebUser, StoreError> {
    let roles = crate::entity::parse_json("web_users", row.0, &row.5)?;
    Ok(WebUser { id: row.0, tenant_id: row.1, object_id: row.2, display_name: row.3, email: row.4, roles })
}

/// The most sign-ins that may be in progress at once (each a row until it comes back or
/// expires after 10 minutes): far above any organisation signing in, far below what fills a
/// disk.
pub const MAX_SIGN_INS_IN_PROGRESS: i64 = 10_000;

/// A condition on web user `u`: the directory has disabled or deleted their account (in any
/// connector of their tenant). Their sessions are worth nothing from then on.
///
/// Written as the tenant's connectors, then the account in each by `(connector, object id)`:
/// as a join, PostgreSQL's generic plan (every request checks a session) looked the object id
/// up without the connector, scanning the whole principals index (about 10 ms a request at
/// 100,000 users once a tenant had more than one connector).
const INACTIVE_ACCOUNT: &str = "SELECT 1 FROM connectors c WHERE c.tenant_id = u.tenant_id AND EXISTS \
     (SELECT 1 FROM principals p WHERE p.connector_id = c.id AND p.external_id = u.object_id AND p.kind = 'user' \
     AND (p.deleted_at IS NOT NULL OR p.account_enabled = FALSE))";

impl Web<'_> {
    /// Records a sign-in: the user is created on first sign-in, their name and email refreshed.
    pub async fn sign_in_web_user(
        self,
        tenant_id: &str,
        object_id: &str,
        display_name: &str,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<WebUser, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO web_users (tenant_id, object_id, display_name, email, roles, created_at, last_sign_in_at) VALUES (",
        );
        sql.value(tenant_id.to_owned()).push(", ").value(object_id.to_owned()).push(", ");
        sql.value(display_name.to_owned()).push(", ").value(email.map(str::to_owned)).push(", '[]', ");
        sql.value(now).push(", ").value(now);
        sql.push(") ON CONFLICT (tenant_id, object_id) DO UPDATE SET display_name = excluded.display_name, ");
        sql.push("email = excluded.email, last_sign_in_at = excluded.last_sign_in_at");
        self.db.execute_raw(sql.build()).await?;
        self.find_web_user(tenant_id, object_id)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("user {tenant_id}/{object_id} vanished while signing in")))
    }

    /// Whether account `id` is deactivated (by Entra's provisioning, or by an administrator):
    /// it may not sign in.
    pub async fn is_disabled(self, id: i64) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT id FROM web_users WHERE disabled_at IS NOT NULL AND id = ");
        sql.value(id);
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        Ok(!rows.is_empty())
    }

    /// Before a first sign-in as `(tenant_id, object_id)`: an account Entra provisioned over
    /// SCIM for the same person without knowing their object id (its `externalId` was not
    /// mapped to it) becomes theirs, matched by sign-in name (`userName` is the UPN). So the
    /// same person is one account. Nothing happens when the identity already has an account.
    pub async fn adopt_provisioned_account(
        self,
        tenant_id: &str,
        object_id: &str,
        user_name: &str,
    ) -> Result<bool, StoreError> {
        if self.find_web_user(tenant_id, object_id).await?.is_some() {
            return Ok(false);
        }
        let mut sql = Sql::new(self.backend(), "UPDATE web_users SET object_id = ");
        sql.value(object_id.to_owned()).push(" WHERE tenant_id = ").value(tenant_id.to_owned());
        sql.push(" AND source = 'scim' AND object_id LIKE 'scim:%' AND id IN (SELECT web_user_id FROM scim_users WHERE user_name_key = ");
        sql.value(user_name.to_lowercase()).push(")");
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() > 0)
    }

    /// The user with this identity, if they ever signed in (or were granted a role).
    pub async fn find_web_user(self, tenant_id: &str, object_id: &str) -> Result<Option<WebUser>, StoreError> {
        let mut sql =
            Sql::new(self.backend(), &format!("SELECT {} FROM web_users WHERE tenant_id = ", USER_COLUMNS.join(", ")));
        sql.value(tenant_id.to_owned()).push(" AND object_id = ").value(object_id.to_owned());
        let rows: Vec<UserRow> = select_json(&self.db, sql, USER_COLUMNS).await?;
        rows.into_iter().next().map(user).transpose()
    }

    /// Sets the roles granted explicitly to a user, creating the user (not yet signed in) when
    /// needed.
    pub async fn set_web_user_roles(
        self,
        tenant_id: &str,
        object_id: &str,
        display_name: &str,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> Result<WebUser, StoreError> {
        let roles =
            serde_json::to_string(roles).map_err(|e| StoreError::Internal(format!("roles cannot be encoded: {e}")))?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO web_users (tenant_id, object_id, display_name, email, roles, created_at) VALUES (",
        );
        sql.value(tenant_id.to_owned()).push(", ").value(object_id.to_owned()).push(", ");
        sql.value(display_name.to_owned()).push(", NULL, ").value(roles).push(", ").value(micros(now));
        sql.push(") ON CONFLICT (tenant_id, object_id) DO UPDATE SET roles = excluded.roles");
        self.db.execute_raw(sql.build()).await?;
        self.find_web_user(tenant_id, object_id)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("user {tenant_id}/{object_id} vanished")))
    }

    /// The users granted `role`, oldest first. One granted a role before signing in has no
    /// address here yet (see their synced principal for it).
    pub async fn list_web_users_with_role(self, role: &str) -> Result<Vec<WebUser>, StoreError> {
        // Roles are a JSON array of strings: narrow in SQL, decide on the parsed list.
        let quoted = serde_json::Value::from(role).to_string();
        let escaped = quoted.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let mut sql =
            Sql::new(self.backend(), &format!("SELECT {} FROM web_users WHERE roles LIKE ", USER_COLUMNS.join(", ")));
        sql.value(format!("%{escaped}%")).push(" ESCAPE '\\'");
        let rows: Vec<UserRow> = select_json(&self.db, sql, USER_COLUMNS).await?;
        let mut users = rows.into_iter().map(user).collect::<Result<Vec<_>, _>>()?;
        users.retain(|u| u.roles.iter().any(|r| r == role));
        users.sort_by_key(|u| u.id);
        Ok(users)
    }

    /// An account for a person of the directory an administrator imports before they sign in
    /// (source `import`), with `roles` added to any they hold: the account, and whether it is
    /// new. An account that exists keeps where it came from.
    pub async fn import_web_user(
        self,
        tenant_id: &str,
        object_id: &str,
        profile: &Profile,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> Result<(WebUser, bool), StoreError> {
        let existing = self.find_web_user(tenant_id, object_id).await?;
        let created = existing.is_none();
        let mut merged = existing.as_ref().map(|u| u.roles.clone()).unwrap_or_default();
        for role in roles {
            if !merged.contains(role) {
                merged.push(role.clone());
            }
        }
        let encoded = serde_json::to_string(&merged)
            .map_err(|e| StoreError::Internal(format!("roles cannot be encoded: {e}")))?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO web_users (tenant_id, object_id, display_name, email, phone, roles, created_at, source) VALUES (",
        );
        sql.value(tenant_id.to_owned()).push(", ").value(object_id.to_owned()).push(", ");
        sql.value(profile.display_name.clone()).push(", ").value(profile.email.clone()).push(", ");
        sql.value(profile.phone.clone()).push(", ").value(encoded).push(", ").value(micros(now)).push(", 'import'");
        sql.push(") ON CONFLICT (tenant_id, object_id) DO UPDATE SET roles = excluded.roles, ");
        sql.push(
            "email = COALESCE(web_users.email, excluded.email), phone = COALESCE(excluded.phone, web_users.phone)",
        );
        self.db.execute_raw(sql.build()).await?;
        let user = self
            .find_web_user(tenant_id, object_id)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("user {tenant_id}/{object_id} vanished")))?;
        Ok((user, created))
    }

    /// Opens a session for `user` until `expires_at`, under the hash of its token.
    pub async fn create_web_session(
        self,
        token_hash: &str,
        user: i64,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO web_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES (",
        );
        sql.value(token_hash.to_owned()).push(", ").value(user).push(", ").value(csrf_token.to_owned());
        sql.push(", ").value(micros(now)).push(", ").value(micros(expires_at)).push(")");
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// The session with this token hash, unless it expired.
    pub async fn find_web_session(
        self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        let columns = ["id", "tenant_id", "object_id", "display_name", "email", "roles", "csrf_token", "expires_at"];
        let mut sql = Sql::new(
            self.backend(),
            "SELECT u.id AS id, u.tenant_id AS tenant_id, u.object_id AS object_id, u.display_name AS display_name, \
             u.email AS email, u.roles AS roles, s.csrf_token AS csrf_token, s.expires_at AS expires_at \
             FROM web_sessions s JOIN web_users u ON u.id = s.user_id WHERE s.token_hash = ",
        );
        sql.value(token_hash.to_owned()).push(" AND s.expires_at > ").value(micros(now));
        sql.push(&format!(" AND u.disabled_at IS NULL AND NOT EXISTS ({INACTIVE_ACCOUNT})"));
        type Row = (i64, String, String, String, Option<String>, String, String, DateTime<Utc>);
        let rows: Vec<Row> = select_json(&self.db, sql, &columns).await?;
        let Some(r) = rows.into_iter().next() else { return Ok(None) };
        Ok(Some(WebSession { user: user((r.0, r.1, r.2, r.3, r.4, r.5))?, csrf_token: r.6, expires_at: r.7 }))
    }

    /// Ends every session of someone whose account the directory has disabled or deleted (as a
    /// sync has just seen it). Sessions of such accounts are refused anyway; this removes them.
    pub async fn end_sessions_of_inactive_accounts(self) -> Result<u64, StoreError> {
        let sql = Sql::new(
            self.backend(),
            &format!(
                "DELETE FROM web_sessions WHERE user_id IN \
                 (SELECT u.id FROM web_users u WHERE EXISTS ({INACTIVE_ACCOUNT}))"
            ),
        );
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected())
    }

    /// Links account `id` (the break-glass administrator, or one pushed before its owner's object
    /// id was known) to a directory user: from now on signing in as them is this account, with
    /// its roles and history. Refused (`Conflict`) when that user already has an account.
    pub async fn link_web_user(
        self,
        id: i64,
        tenant_id: &str,
        object_id: &str,
        profile: &Profile,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE web_users SET tenant_id = ");
        sql.value(tenant_id.to_owned()).push(", object_id = ").value(object_id.to_owned());
        sql.push(", display_name = ").value(profile.display_name.clone()).push(", email = COALESCE(");
        sql.value(profile.email.clone()).push(", email), phone = COALESCE(").value(profile.phone.clone());
        sql.push(", phone) WHERE id = ").value(id);
        let changed = self.db.execute_raw(sql.build()).await.map_err(|e| match StoreError::from(e) {
            StoreError::Conflict { .. } => {
                StoreError::Conflict { what: format!("an account for {tenant_id}/{object_id}") }
            }
            other => other,
        })?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "account", key: id.to_string() });
        }
        Ok(())
    }

    /// Refreshes every account from its synced directory user ("sync profile"): name, address
    /// and phone (business, else mobile) follow the directory (a blank in the directory keeps
    /// what the account has, as Entra's provisioning may have set it), and an account whose user is disabled or deleted there is
    /// marked inactive (`disabled_at`), which also ends its sessions. An account marked inactive
    /// this way comes back when its user does; one Entra deactivated over SCIM stays so until
    /// Entra says otherwise. Returns how many were refreshed and how many marked inactive.
    pub async fn sync_profiles(self, now: DateTime<Utc>) -> Result<(u64, u64), StoreError> {
        let person = "FROM principals p JOIN connectors c ON c.id = p.connector_id WHERE c.tenant_id = web_users.tenant_id \
                      AND p.external_id = web_users.object_id AND p.kind = 'user' AND p.deleted_at IS NULL";
        let sql = Sql::new(
            self.backend(),
            &format!(
                "UPDATE web_users SET display_name = (SELECT p.display_name {person} ORDER BY p.id LIMIT 1), \
                 email = COALESCE((SELECT COALESCE(p.email, p.user_principal_name) {person} ORDER BY p.id LIMIT 1), email), \
                 phone = COALESCE((SELECT COALESCE({phone}, {mobile}) {person} ORDER BY p.id LIMIT 1), phone) \
                 WHERE EXISTS (SELECT 1 {person})",
                phone = json_field(self.backend(), "p.attributes", PrincipalData::PHONE),
                mobile = json_field(self.backend(), "p.attributes", PrincipalData::MOBILE_PHONE),
            ),
        );
        let refreshed = self.db.execute_raw(sql.build()).await?.rows_affected();
        let inactive = INACTIVE_ACCOUNT.replace("u.", "web_users.");
        let mut sql = Sql::new(self.backend(), "UPDATE web_users SET disabled_at = ");
        sql.value(micros(now))
            .push(&format!(" WHERE disabled_at IS NULL AND source <> 'scim' AND EXISTS ({inactive})"));
        let deactivated = self.db.execute_raw(sql.build()).await?.rows_affected();
        // Back in the directory: active again (SCIM's own deactivations are Entra's to undo).
        let sql = Sql::new(
            self.backend(),
            &format!(
                "UPDATE web_users SET disabled_at = NULL WHERE disabled_at IS NOT NULL AND source <> 'scim' \
                 AND NOT EXISTS ({inactive}) AND EXISTS (SELECT 1 {person})"
            ),
        );
        self.db.execute_raw(sql.build()).await?;
        self.end_sessions_of_inactive_accounts().await?;
        Ok((refreshed, deactivated))
    }

    /// Ends a session (sign-out).
    pub async fn delete_web_session(self, token_hash: &str) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "DELETE FROM web_sessions WHERE token_hash = ");
        sql.value(token_hash.to_owned());
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Remembers a sign-in in progress under the hash of its `state`.
    pub async fn save_sign_in_attempt(
        self,
        state_hash: &str,
        nonce: &str,
        verifier: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        keep_at_most: i64,
    ) -> Result<(), StoreError> {
        // Anyone may start a sign-in, so what they leave behind is bounded: expired attempts go
        // now, and past `keep_at_most` the oldest give way (their people start again).
        let mut sweep = Sql::new(self.backend(), "DELETE FROM sign_in_attempts WHERE expires_at <= ");
        sweep.value(micros(now));
        self.db.execute_raw(sweep.build()).await?;
        let mut sql =
            Sql::new(self.backend(), "INSERT INTO sign_in_attempts (state_hash, nonce, verifier, expires_at) VALUES (");
        sql.value(state_hash.to_owned()).push(", ").value(nonce.to_owned()).push(", ").value(verifier.to_owned());
        sql.push(", ").value(micros(expires_at)).push(")");
        self.db.execute_raw(sql.build()).await?;
        let over = i64::try_from(self.count_sign_in_attempts().await?).unwrap_or(i64::MAX) - keep_at_most;
        if over > 0 {
            let mut evict = Sql::new(
                self.backend(),
                "DELETE FROM sign_in_attempts WHERE state_hash IN \
                 (SELECT state_hash FROM sign_in_attempts ORDER BY expires_at, state_hash LIMIT ",
            );
            evict.value(over).push(")");
            self.db.execute_raw(evict.build()).await?;
        }
        Ok(())
    }

    /// How many sign-in attempts are in progress (started, not yet back from Microsoft).
    pub async fn count_sign_in_attempts(self) -> Result<u64, StoreError> {
        let count: Vec<(i64,)> = crate::sql::select_json(
            &self.db,
            Sql::new(self.backend(), "SELECT COUNT(*) AS n FROM sign_in_attempts"),
            &["n"],
        )
        .await?;
        Ok(count.first().map_or(0, |(n,)| u64::try_from(*n).unwrap_or_default()))
    }

    /// Takes (once) the sign-in in progress with this state hash: its nonce and PKCE verifier,
    /// unless it expired. Expired attempts are cleared along the way.
    pub async fn take_sign_in_attempt(
        self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(self.backend(), "DELETE FROM sign_in_attempts WHERE state_hash = ");
        sql.value(state_hash.to_owned()).push(" AND expires_at > ").value(now).push(" RETURNING nonce, verifier");
        let row = self.db.query_one_raw(sql.build()).await?;
        let mut sweep = Sql::new(self.backend(), "DELETE FROM sign_in_attempts WHERE expires_at <= ");
        sweep.value(now);
        self.db.execute_raw(sweep.build()).await?;
        Ok(match row {
            Some(row) => Some((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
            None => None,
        })
    }

    /// Stores a one-time login link (its token's hash) valid until `expires_at`.
    pub async fn create_login_link(
        self,
        token_hash: &str,
        created_by: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "INSERT INTO login_links (token_hash, created_by, expires_at) VALUES (");
        sql.value(token_hash.to_owned()).push(", ").value(created_by.to_owned()).push(", ");
        sql.value(micros(expires_at)).push(")");
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Uses a login link: true once, if it exists and has not expired.
    pub async fn use_login_link(self, token_hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(self.backend(), "UPDATE login_links SET used_at = ");
        sql.value(now).push(" WHERE used_at IS NULL AND token_hash = ").value(token_hash.to_owned());
        sql.push(" AND expires_at > ").value(now);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() == 1)
    }
}
