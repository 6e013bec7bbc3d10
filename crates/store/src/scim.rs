//! Attest's accounts as Entra's provisioning service pushes them over SCIM 2.0: the bearer
//! tokens it presents, its users (each an Attest account) and groups with their members, and
//! the groups whose members hold an Attest role. The protocol itself (filters, PATCH, JSON) is
//! `attest-scim`'s; this keeps rows. Every write is one transaction, so a request that fails
//! changes nothing, and two requests for the same resource cannot interleave.

use attest_domain::AuditEventDraft;
use attest_domain::time::micros;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};
use serde::Serialize;
use serde_json::json;

use crate::StoreError;
use crate::areas::Scim;
use crate::sql::{Sql, select_json};

/// A bearer token Entra presents (never the token itself: only its hash is kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScimToken {
    pub id: i64,
    pub name: String,
    /// The tenant whose people this token provisions (their accounts are that tenant's).
    pub tenant_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &[&str] = &["id", "name", "tenant_id", "created_by", "created_at", "last_used_at", "revoked_at"];
type TokenRow = (i64, String, Option<String>, String, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn token(r: TokenRow) -> ScimToken {
    ScimToken {
        id: r.0,
        name: r.1,
        tenant_id: r.2,
        created_by: r.3,
        created_at: r.4,
        last_used_at: r.5,
        revoked_at: r.6,
    }
}

/// How often a token's `last_used_at` is written: at 1,000 requests a second, a write per
/// request would be the endpoint's main cost for a value read in minutes.
const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// A pushed user as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    /// The SCIM id Attest assigned.
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    /// The attributes exactly as sent (JSON), for the protocol layer to read back.
    pub resource: String,
    pub web_user_id: Option<i64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &[&str] = &[
    "id",
    "user_name",
    "external_id",
    "display_name",
    "active",
    "resource",
    "web_user_id",
    "version",
    "created_at",
    "updated_at",
];
type UserRow =
    (String, String, Option<String>, Option<String>, i64, String, Option<i64>, i64, DateTime<Utc>, DateTime<Utc>);

fn user(r: UserRow) -> ScimUser {
    ScimUser {
        id: r.0,
        user_name: r.1,
        external_id: r.2,
        display_name: r.3,
        active: r.4 != 0,
        resource: r.5,
        web_user_id: r.6,
        version: r.7,
        created_at: r.8,
        updated_at: r.9,
    }
}

/// The user columns, `active` as 0/1 on both databases.
fn user_select() -> String {
    "SELECT id, user_name, external_id, display_name, CASE WHEN active THEN 1 ELSE 0 END AS active, resource, \
     web_user_id, version, created_at, updated_at FROM scim_users"
        .to_owned()
}

/// A user to write: what the protocol layer parsed, and the account it is.
#[derive(Debug, Clone)]
pub struct ScimUserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// Compared case-insensitively (kept lower-cased).
    pub work_email: Option<String>,
    pub active: bool,
    pub resource: String,
    pub account: ScimAccount,
}

/// The Attest account a pushed user is: `(tenant_id, object_id)` as a sign-in identifies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimAccount {
    pub tenant_id: String,
    pub object_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A condition on users or groups, as a filter names it (all AND-ed).
#[derive(Debug, Clone, PartialEq)]
pub enum ScimMatch {
    Id(String),
    /// Case-insensitive, as `userName` and `displayName` of groups are in SCIM.
    UserName(String),
    ExternalId(String),
    DisplayName(String),
    WorkEmail(String),
    Active(bool),
    /// Groups having this user as a member.
    Member(String),
}

/// A page of matches and how many there are in all.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimPage<T> {
    pub total: u64,
    pub items: Vec<T>,
}

/// A pushed group as kept (its members apart).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScimGroup {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const GROUP_COLUMNS: &[&str] = &["id", "display_name", "external_id", "version", "created_at", "updated_at"];
type GroupRow = (String, String, Option<String>, i64, DateTime<Utc>, DateTime<Utc>);

fn group(r: GroupRow) -> ScimGroup {
    ScimGroup { id: r.0, display_name: r.1, external_id: r.2, version: r.3, created_at: r.4, updated_at: r.5 }
}

/// A change to a group's members or names, applied with the others in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum ScimGroupEdit {
    Rename(String),
    SetExternalId(Option<String>),
    Add(Vec<String>),
    Remove(Vec<String>),
    Replace(Vec<String>),
    RemoveAll,
}

/// A member as listed: the user's id and name.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimMember {
    pub user_id: String,
    pub display: Option<String>,
}

/// Why a SCIM write was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScimWriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another user already has this `userName` (or another group this `displayName`).
    #[error("{0}")]
    Duplicate(String),
    #[error("{0}")]
    NotFound(String),
    /// Members named that are not users here.
    #[error("{0}")]
    UnknownMembers(String),
}

impl From<sea_orm::DbErr> for ScimWriteError {
    fn from(e: sea_orm::DbErr) -> Self {
        ScimWriteError::Store(e.into())
    }
}

/// The audit details of a group's edits: how many added and removed (members of a group mapped
/// to a role gain or lose it), and the first hundred ids of each, enough to follow a change
/// without a megabyte per batch.
fn group_edit_details(edits: &[ScimGroupEdit]) -> serde_json::Value {
    let (mut added, mut removed, mut members_now, mut renamed_to) = (Vec::new(), Vec::new(), None, None);
    for edit in edits {
        match edit {
            ScimGroupEdit::Add(m) => added.extend(m.iter()),
            ScimGroupEdit::Remove(m) => removed.extend(m.iter()),
            ScimGroupEdit::Replace(m) => members_now = Some(m.len()),
            ScimGroupEdit::RemoveAll => members_now = Some(0),
            ScimGroupEdit::Rename(name) => renamed_to = Some(name.clone()),
            ScimGroupEdit::SetExternalId(_) => {}
        }
    }
    json!({
        "added": added.len(), "removed": removed.len(), "members_now": members_now, "renamed_to": renamed_to,
        "added_ids": added.iter().take(100).collect::<Vec<_>>(),
        "removed_ids": removed.iter().take(100).collect::<Vec<_>>(),
    })
}

/// Ids per `IN (...)` list.
const IN_CHUNK: usize = 1_000;

impl Scim<'_> {
    // --- tokens ---

    /// Keeps a new token (by its hash) named `name`.
    pub async fn create_token(
        self,
        name: &str,
        token_hash: &str,
        tenant_id: Option<&str>,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<ScimToken, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO scim_tokens (name, token_hash, tenant_id, created_by, created_at) VALUES (",
        );
        sql.value(name.to_owned()).push(", ").value(token_hash.to_owned()).push(", ");
        sql.value(tenant_id.map(str::to_owned)).push(", ").value(created_by.to_owned()).push(", ");
        sql.value(micros(now)).push(")");
        self.db.execute_raw(sql.build()).await?;
        let mut read = Sql::new(
            self.backend(),
            &format!("SELECT {} FROM scim_tokens WHERE token_hash = ", TOKEN_COLUMNS.join(", ")),
        );
        read.value(token_hash.to_owned());
        let rows: Vec<TokenRow> = select_json(&self.db, read, TOKEN_COLUMNS).await?;
        rows.into_iter()
            .next()
            .map(token)
            .ok_or_else(|| StoreError::Internal("a SCIM token vanished as it was made".into()))
    }

    /// Every token, newest first (revoked ones too: who made what stays readable).
    pub async fn list_tokens(self) -> Result<Vec<ScimToken>, StoreError> {
        let sql =
            Sql::new(self.backend(), &format!("SELECT {} FROM scim_tokens ORDER BY id DESC", TOKEN_COLUMNS.join(", ")));
        let rows: Vec<TokenRow> = select_json(&self.db, sql, TOKEN_COLUMNS).await?;
        Ok(rows.into_iter().map(token).collect())
    }

    /// Revokes token `id`; `None` when there is no such token, the token when it is (or
    /// already was) revoked.
    pub async fn revoke_token(self, id: i64, now: DateTime<Utc>) -> Result<Option<ScimToken>, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE scim_tokens SET revoked_at = ");
        sql.value(micros(now)).push(" WHERE revoked_at IS NULL AND id = ").value(id);
        self.db.execute_raw(sql.build()).await?;
        let mut read =
            Sql::new(self.backend(), &format!("SELECT {} FROM scim_tokens WHERE id = ", TOKEN_COLUMNS.join(", ")));
        read.value(id);
        let rows: Vec<TokenRow> = select_json(&self.db, read, TOKEN_COLUMNS).await?;
        Ok(rows.into_iter().next().map(token))
    }

    /// The live token with this hash, marking it used (at most once a minute).
    pub async fn authenticate(self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<ScimToken>, StoreError> {
        let mut read = Sql::new(
            self.backend(),
            &format!("SELECT {} FROM scim_tokens WHERE revoked_at IS NULL AND token_hash = ", TOKEN_COLUMNS.join(", ")),
        );
        read.value(token_hash.to_owned());
        let rows: Vec<TokenRow> = select_json(&self.db, read, TOKEN_COLUMNS).await?;
        let Some(found) = rows.into_iter().next().map(token) else { return Ok(None) };
        let stale = found.last_used_at.is_none_or(|at| (now - at).num_seconds() >= LAST_USED_GRANULARITY_SECS);
        if stale {
            let mut sql = Sql::new(self.backend(), "UPDATE scim_tokens SET last_used_at = ");
            sql.value(micros(now)).push(" WHERE id = ").value(found.id);
            self.db.execute_raw(sql.build()).await?;
        }
        Ok(Some(found))
    }

    // --- users ---

    /// The user with SCIM id `id`.
    pub async fn get_user(self, id: &str) -> Result<Option<ScimUser>, StoreError> {
        let mut sql = Sql::new(self.backend(), &format!("{} WHERE id = ", user_select()));
        sql.value(id.to_owned());
        let rows: Vec<UserRow> = select_json(&self.db, sql, USER_COLUMNS).await?;
        Ok(rows.into_iter().next().map(user))
    }

    /// The users matching every condition, ordered by creation, `count` from the
    /// `start`-th (1-based).
    pub async fn find_users(
        self,
        matches: &[ScimMatch],
        start: u64,
        count: u64,
    ) -> Result<ScimPage<ScimUser>, StoreError> {
        let items: Vec<ScimUser> = if count == 0 {
            Vec::new()
        } else {
            let mut sql = Sql::new(self.backend(), &format!("{} WHERE 1 = 1", user_select()));
            user_conditions(&mut sql, matches);
            page(&mut sql, "created_at, id", start, count);
            let rows: Vec<UserRow> = select_json(&self.db, sql, USER_COLUMNS).await?;
            rows.into_iter().map(user).collect()
        };
        // A first page that is not full is everything (a find by userName, most requests):
        // no count needed.
        if let Some(total) = whole(start, count, items.len()) {
            return Ok(ScimPage { total, items });
        }
        let mut total = Sql::new(self.backend(), "SELECT COUNT(*) AS n FROM scim_users WHERE 1 = 1");
        user_conditions(&mut total, matches);
        let counted: Vec<(i64,)> = select_json(&self.db, total, &["n"]).await?;
        Ok(ScimPage { total: counted.first().map_or(0, |r| u64::try_from(r.0).unwrap_or(0)), items })
    }

    /// Creates a user with SCIM id `id`, and the account it is (a sign-in's account with the
    /// same identity becomes it).
    pub async fn create_user(
        self,
        id: &str,
        write: &ScimUserWrite,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ScimUser, ScimWriteError> {
        let _turn = self.sqlite_write_turn().await;
        let txn = self.begin_write().await?;
        if user_name_taken(&txn, self.backend(), &write.user_name, None).await? {
            return Err(ScimWriteError::Duplicate(format!("userName '{}' is already taken", write.user_name)));
        }
        let web_user = upsert_account(&txn, self.backend(), &write.account, write.active, now).await?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO scim_users (id, user_name, user_name_key, external_id, display_name, work_email, active, \
             resource, web_user_id, version, created_at, updated_at) VALUES (",
        );
        sql.value(id.to_owned()).push(", ");
        user_values(&mut sql, write);
        sql.push(", ").value(web_user).push(", 1, ").value(micros(now)).push(", ").value(micros(now)).push(")");
        txn.execute_raw(sql.build()).await.map_err(|e| match StoreError::from(e) {
            StoreError::Conflict { .. } => {
                ScimWriteError::Duplicate(format!("userName '{}' is already taken", write.user_name))
            }
            other => other.into(),
        })?;
        let details = json!({"user_name": write.user_name, "active": write.active});
        self.audit()
            .append_audit_in(&txn, AuditEventDraft::about(actor, "scim.user_created", "scim_user", id, details, now))
            .await?;
        txn.commit().await?;
        self.get_user(id).await?.ok_or_else(|| ScimWriteError::NotFound(format!("user {id} vanished")))
    }

    /// Replaces user `id` with `write` (PUT, or a PATCH applied by the protocol layer), unless
    /// another request changed it since version `expected` was read: then `None`, to read and
    /// apply again.
    pub async fn replace_user(
        self,
        id: &str,
        expected: i64,
        write: &ScimUserWrite,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ScimUser>, ScimWriteError> {
        let _turn = self.sqlite_write_turn().await;
        let txn = self.begin_write().await?;
        if user_name_taken(&txn, self.backend(), &write.user_name, Some(id)).await? {
            return Err(ScimWriteError::Duplicate(format!("userName '{}' is already taken", write.user_name)));
        }
        // The account stays the one the user was created as; its name, address and state follow.
        let mut current = Sql::new(
            self.backend(),
            "SELECT web_user_id, CASE WHEN active THEN 1 ELSE 0 END AS active FROM scim_users WHERE id = ",
        );
        current.value(id.to_owned());
        let rows: Vec<(Option<i64>, i64)> = select_json(&txn, current, &["web_user_id", "active"]).await?;
        let Some((existing, was_active)) = rows.first().copied() else {
            return Err(ScimWriteError::NotFound(format!("user {id} not found")));
        };
        let web_user = match existing {
            Some(existing) => {
                refresh_account(&txn, self.backend(), existing, &write.account, write.active, now).await?
            }
            None => upsert_account(&txn, self.backend(), &write.account, write.active, now).await?,
        };
        let mut sql = Sql::new(self.backend(), "UPDATE scim_users SET user_name = ");
        sql.value(write.user_name.clone()).push(", user_name_key = ").value(write.user_name.to_lowercase());
        sql.push(", external_id = ").value(write.external_id.clone());
        sql.push(", display_name = ").value(write.display_name.clone());
        sql.push(", work_email = ").value(write.work_email.as_ref().map(|e| e.to_lowercase()));
        sql.push(", active = ").value(write.active).push(", resource = ").value(write.resource.clone());
        sql.push(", web_user_id = ").value(web_user).push(", version = version + 1, updated_at = ").value(micros(now));
        sql.push(" WHERE id = ").value(id.to_owned()).push(" AND version = ").value(expected);
        let changed = txn.execute_raw(sql.build()).await?.rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        if write.active != (was_active != 0) {
            let action = if write.active { "scim.user_activated" } else { "scim.user_deactivated" };
            let details = json!({"user_name": write.user_name});
            self.audit()
                .append_audit_in(&txn, AuditEventDraft::about(actor, action, "scim_user", id, details, now))
                .await?;
        }
        txn.commit().await?;
        Ok(self.get_user(id).await?)
    }

    /// Deletes user `id`, its memberships, and its account with the account's sessions: it
    /// can no longer sign in, and an open session is refused on its next request.
    pub async fn delete_user(self, id: &str, actor: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let _turn = self.sqlite_write_turn().await;
        let txn = self.begin_write().await?;
        let mut read = Sql::new(self.backend(), "SELECT web_user_id FROM scim_users WHERE id = ");
        read.value(id.to_owned());
        let rows: Vec<(Option<i64>,)> = select_json(&txn, read, &["web_user_id"]).await?;
        let Some((web_user,)) = rows.into_iter().next() else { return Ok(false) };
        for statement in ["DELETE FROM scim_group_members WHERE user_id = ", "DELETE FROM scim_users WHERE id = "] {
            let mut sql = Sql::new(self.backend(), statement);
            sql.value(id.to_owned());
            txn.execute_raw(sql.build()).await?;
        }
        if let Some(web_user) = web_user {
            for statement in ["DELETE FROM web_sessions WHERE user_id = ", "DELETE FROM web_users WHERE id = "] {
                let mut sql = Sql::new(self.backend(), statement);
                sql.value(web_user);
                txn.execute_raw(sql.build()).await?;
            }
        }
        self.audit()
            .append_audit_in(&txn, AuditEventDraft::about(actor, "scim.user_deleted", "scim_user", id, json!({}), now))
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    // --- groups ---

    /// The group with SCIM id `id`.
    pub async fn get_group(self, id: &str) -> Result<Option<ScimGroup>, StoreError> {
        let mut sql =
            Sql::new(self.backend(), &format!("SELECT {} FROM scim_groups WHERE id = ", GROUP_COLUMNS.join(", ")));
        sql.value(id.to_owned());
        let rows: Vec<GroupRow> = select_json(&self.db, sql, GROUP_COLUMNS).await?;
        Ok(rows.into_iter().next().map(group))
    }

    /// The groups matching every condition (`Id`, `DisplayName`, `ExternalId`, `Member`).
    pub async fn find_groups(
        self,
        matches: &[ScimMatch],
        start: u64,
        count: u64,
    ) -> Result<ScimPage<ScimGroup>, StoreError> {
        let items: Vec<ScimGroup> = if count == 0 {
            Vec::new()
        } else {
            let columns: Vec<String> = GROUP_COLUMNS.iter().map(|c| format!("g.{c} AS {c}")).collect();
            let mut sql =
                Sql::new(self.backend(), &format!("SELECT {} FROM scim_groups g WHERE 1 = 1", columns.join(", ")));
            group_conditions(&mut sql, matches);
            page(&mut sql, "g.created_at, g.id", start, count);
            let rows: Vec<GroupRow> = select_json(&self.db, sql, GROUP_COLUMNS).await?;
            rows.into_iter().map(group).collect()
        };
        if let Some(total) = whole(start, count, items.len()) {
            return Ok(ScimPage { total, items });
        }
        let mut total = Sql::new(self.backend(), "SELECT COUNT(*) AS n FROM scim_groups g WHERE 1 = 1");
        group_conditions(&mut total, matches);
        let counted: Vec<(i64,)> = select_json(&self.db, total, &["n"]).await?;
        Ok(ScimPage { total: counted.first().map_or(0, |r| u64::try_from(r.0).unwrap_or(0)), items })
    }

    /// The members of groups `ids`, by group, each ordered by user name.
    pub async fn members(self, ids: &[String]) -> Result<Vec<(String, ScimMember)>, StoreError> {
        let mut all = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT m.group_id AS group_id, m.user_id AS user_id, u.display_name AS display_name \
                 FROM scim_group_members m JOIN scim_users u ON u.id = m.user_id WHERE m.group_id IN ",
            );
            sql.tuple(chunk.iter().map(|id| Value::from(id.clone())));
            sql.push(" ORDER BY m.group_id, u.user_name_key");
            let rows: Vec<(String, String, Option<String>)> =
                select_json(&self.db, sql, &["group_id", "user_id", "display_name"]).await?;
            all.extend(rows.into_iter().map(|(g, user_id, display)| (g, ScimMember { user_id, display })));
        }
        Ok(all)
    }

    /// Creates a group with SCIM id `id` and `members` (users here).
    pub async fn create_group(
        self,
        id: &str,
        display_name: &str,
        external_id: Option<&str>,
        members: &[String],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ScimGroup, ScimWriteError> {
        let _turn = self.sqlite_write_turn().await;
        let txn = self.begin_write().await?;
        if group_name_taken(&txn, self.backend(), display_name, None).await? {
            return Err(ScimWriteError::Duplicate(format!("a group named '{display_name}' already exists")));
        }
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO scim_groups (id, display_name, display_name_key, external_id, version, created_at, updated_at) VALUES (",
        );
        sql.value(id.to_owned()).push(", ").value(display_name.to_owned()).push(", ");
        sql.value(display_name.to_lowercase()).push(", ").value(external_id.map(str::to_owned));
        sql.push(", 1, ").value(micros(now)).push(", ").value(micros(now)).push(")");
        txn.execute_raw(sql.build()).await?;
        add_members(&txn, self.backend(), id, members).await?;
        let details = json!({"display_name": display_name, "members": members.len()});
        self.audit()
            .append_audit_in(&txn, AuditEventDraft::about(actor, "scim.group_created", "scim_group", id, details, now))
            .await?;
        txn.commit().await?;
        self.get_group(id).await?.ok_or_else(|| ScimWriteError::NotFound(format!("group {id} vanished")))
    }

    /// Applies `edits` to group `id` in order, all or nothing.
    pub async fn edit_group(
        self,
        id: &str,
        edits: &[ScimGroupEdit],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ScimGroup, ScimWriteError> {
        let _turn = self.sqlite_write_turn().await;
        let txn = self.begin_write().await?;
        let backend = self.backend();
        let mut exists = Sql::new(backend, "SELECT id FROM scim_groups WHERE id = ");
        exists.value(id.to_owned());
        let found: Vec<(String,)> = select_json(&txn, exists, &["id"]).await?;
        if found.is_empty() {
            return Err(ScimWriteError::NotFound(format!("group {id} not found")));
        }
        for edit in edits {
            match edit {
                ScimGroupEdit::Rename(name) => {
                    if group_name_taken(&txn, backend, name, Some(id)).await? {
                        return Err(ScimWriteError::Duplicate(format!("a group named '{name}' already exists")));
                    }
                    let mut sql = Sql::new(backend, "UPDATE scim_groups SET display_name = ");
                    sql.value(name.clone()).push(", display_name_key = ").value(name.to_lowercase());
                    sql.push(" WHERE id = ").value(id.to_owned());
                    txn.execute_raw(sql.build()).await?;
                }
                ScimGroupEdit::SetExternalId(external) => {
                    let mut sql = Sql::new(backend, "UPDATE scim_groups SET external_id = ");
                    sql.value(external.clone()).push(" WHERE id = ").value(id.to_owned());
                    txn.execute_raw(sql.build()).await?;
                }
                ScimGroupEdit::Add(members) => add_members(&txn, backend, id, members).await?,
                ScimGroupEdit::Remove(members) => {
                    for chunk in members.chunks(IN_CHUNK) {
                        let mut sql = Sql::new(backend, "DELETE FROM scim_group_members WHERE group_id = ");
                        sql.value(id.to_owned()).push(" AND user_id IN ");
                        sql.tuple(chunk.iter().map(|m| Value::from(m.clone())));
                        txn.execute_raw(sql.build()).await?;
                    }
                }
                ScimGroupEdit::Replace(members) => {
                    let mut sql = Sql::new(backend, "DELETE FROM scim_group_members WHERE group_id = ");
                    sql.value(id.to_owned());
                    txn.execute_raw(sql.build()).await?;
                    add_members(&txn, backend, id, members).await?;
                }
                ScimGroupEdit::RemoveAll => {
                    let mut sql = Sql::new(backend, "DELETE FROM scim_group_members WHERE group_id = ");
                    sql.value(id.to_owned());
                    txn.execute_raw(sql.build()).await?;
                }
            }
        }
        let mut sql = Sql::new(backend, "UPDATE scim_groups SET version = version + 1, updated_at = ");
        sql.value(micros(now)).push(" WHERE id = ").value(id.to_owned());
        txn.execute_raw(sql.build()).await?;
        let details = group_edit_details(edits);
        self.audit()
            .append_audit_in(&txn, AuditEventDraft::about(actor, "scim.group_changed", "scim_group", id, details, now))
            .await?;
        txn.commit().await?;
        self.get_group(id).await?.ok_or_else(|| ScimWriteError::NotFound(format!("group {id} vanished")))
    }

    /// Deletes group `id` and its memberships.
    pub async fn delete_group(self, id: &str, actor: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let _turn = self.sqlite_write_turn().await;
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "DELETE FROM scim_group_members WHERE group_id = ");
        sql.value(id.to_owned());
        txn.execute_raw(sql.build()).await?;
        let mut sql = Sql::new(self.backend(), "DELETE FROM scim_groups WHERE id = ");
        sql.value(id.to_owned());
        let deleted = txn.execute_raw(sql.build()).await?.rows_affected() > 0;
        if deleted {
            self.audit()
                .append_audit_in(
                    &txn,
                    AuditEventDraft::about(actor, "scim.group_deleted", "scim_group", id, json!({}), now),
                )
                .await?;
        }
        txn.commit().await?;
        Ok(deleted)
    }
}

/// The total of a listing, when its page shows it: the first page, not full.
fn whole(start: u64, count: u64, got: usize) -> Option<u64> {
    let got = u64::try_from(got).unwrap_or(u64::MAX);
    (start <= 1 && count > 0 && got < count).then_some(got)
}

/// `LIMIT count OFFSET start - 1`, ordered by `order`.
fn page(sql: &mut Sql, order: &str, start: u64, count: u64) {
    let offset = i64::try_from(start.saturating_sub(1)).unwrap_or(i64::MAX);
    let limit = i64::try_from(count).unwrap_or(i64::MAX);
    sql.push(&format!(" ORDER BY {order} LIMIT ")).value(limit).push(" OFFSET ").value(offset);
}

fn user_conditions(sql: &mut Sql, matches: &[ScimMatch]) {
    for m in matches {
        match m {
            ScimMatch::Id(v) => sql.push(" AND id = ").value(v.clone()),
            ScimMatch::UserName(v) => sql.push(" AND user_name_key = ").value(v.to_lowercase()),
            ScimMatch::ExternalId(v) => sql.push(" AND external_id = ").value(v.clone()),
            ScimMatch::DisplayName(v) => sql.push(" AND display_name = ").value(v.clone()),
            ScimMatch::WorkEmail(v) => sql.push(" AND work_email = ").value(v.to_lowercase()),
            ScimMatch::Active(v) => sql.push(if *v { " AND active = TRUE" } else { " AND active = FALSE" }),
            ScimMatch::Member(_) => sql.push(" AND 1 = 0"),
        };
    }
}

fn group_conditions(sql: &mut Sql, matches: &[ScimMatch]) {
    for m in matches {
        match m {
            ScimMatch::Id(v) => sql.push(" AND g.id = ").value(v.clone()),
            ScimMatch::DisplayName(v) => sql.push(" AND g.display_name_key = ").value(v.to_lowercase()),
            ScimMatch::ExternalId(v) => sql.push(" AND g.external_id = ").value(v.clone()),
            ScimMatch::Member(v) => sql
                .push(" AND EXISTS (SELECT 1 FROM scim_group_members m WHERE m.group_id = g.id AND m.user_id = ")
                .value(v.clone())
                .push(")"),
            ScimMatch::UserName(_) | ScimMatch::WorkEmail(_) | ScimMatch::Active(_) => sql.push(" AND 1 = 0"),
        };
    }
}

/// `user_name, user_name_key, external_id, display_name, work_email, active, resource`.
fn user_values(sql: &mut Sql, write: &ScimUserWrite) {
    sql.value(write.user_name.clone()).push(", ").value(write.user_name.to_lowercase()).push(", ");
    sql.value(write.external_id.clone()).push(", ").value(write.display_name.clone()).push(", ");
    sql.value(write.work_email.as_ref().map(|e| e.to_lowercase())).push(", ").value(write.active).push(", ");
    sql.value(write.resource.clone());
}

async fn user_name_taken(
    txn: &DatabaseTransaction,
    backend: sea_orm::DbBackend,
    user_name: &str,
    except: Option<&str>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(backend, "SELECT id FROM scim_users WHERE user_name_key = ");
    sql.value(user_name.to_lowercase());
    if let Some(except) = except {
        sql.push(" AND id <> ").value(except.to_owned());
    }
    let rows: Vec<(String,)> = select_json(txn, sql, &["id"]).await?;
    Ok(!rows.is_empty())
}

async fn group_name_taken(
    txn: &DatabaseTransaction,
    backend: sea_orm::DbBackend,
    name: &str,
    except: Option<&str>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(backend, "SELECT id FROM scim_groups WHERE display_name_key = ");
    sql.value(name.to_lowercase());
    if let Some(except) = except {
        sql.push(" AND id <> ").value(except.to_owned());
    }
    let rows: Vec<(String,)> = select_json(txn, sql, &["id"]).await?;
    Ok(!rows.is_empty())
}

/// Adds `members` to group `id`; every one must be a user here (else nothing is added).
async fn add_members(
    txn: &DatabaseTransaction,
    backend: sea_orm::DbBackend,
    id: &str,
    members: &[String],
) -> Result<(), ScimWriteError> {
    let mut members: Vec<&String> = members.iter().collect();
    members.sort();
    members.dedup();
    for chunk in members.chunks(IN_CHUNK) {
        let mut known = Sql::new(backend, "SELECT id FROM scim_users WHERE id IN ");
        known.tuple(chunk.iter().map(|m| Value::from((*m).clone())));
        let found: Vec<(String,)> = select_json(txn, known, &["id"]).await?;
        if found.len() < chunk.len() {
            let found: std::collections::HashSet<&str> = found.iter().map(|(f,)| f.as_str()).collect();
            let missing: Vec<&str> = chunk.iter().map(|m| m.as_str()).filter(|m| !found.contains(m)).take(5).collect();
            return Err(ScimWriteError::UnknownMembers(format!(
                "members must be users provisioned here; unknown: {}",
                missing.join(", ")
            )));
        }
        let conflict = " ON CONFLICT (group_id, user_id) DO NOTHING";
        let mut sql = Sql::new(backend, "INSERT INTO scim_group_members (group_id, user_id) VALUES ");
        for (i, member) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.tuple([Value::from(id.to_owned()), Value::from((*member).clone())]);
        }
        sql.push(conflict);
        txn.execute_raw(sql.build()).await?;
    }
    Ok(())
}

/// Account `id` (a pushed user's): its name and address refreshed, enabled or disabled with
/// the user. Its id; a new one when the account was deleted meanwhile.
async fn refresh_account(
    txn: &DatabaseTransaction,
    backend: sea_orm::DbBackend,
    id: i64,
    account: &ScimAccount,
    active: bool,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let disabled_at = if active { None } else { Some(micros(now)) };
    let mut sql = Sql::new(backend, "UPDATE web_users SET display_name = ");
    sql.value(account.display_name.clone()).push(", email = COALESCE(").value(account.email.clone());
    sql.push(", email), phone = ").value(account.phone.clone());
    sql.push(", disabled_at = ").value(disabled_at).push(" WHERE id = ").value(id);
    if txn.execute_raw(sql.build()).await?.rows_affected() == 0 {
        return upsert_account(txn, backend, account, active, now).await;
    }
    if !active {
        end_sessions(txn, backend, id).await?;
    }
    Ok(id)
}

/// Ends every session of account `id` (deactivated: refused from its next request on).
async fn end_sessions(txn: &DatabaseTransaction, backend: sea_orm::DbBackend, id: i64) -> Result<(), StoreError> {
    let mut end = Sql::new(backend, "DELETE FROM web_sessions WHERE user_id = ");
    end.value(id);
    txn.execute_raw(end.build()).await?;
    Ok(())
}

/// The account `account` names: created (source `scim`) or taken over, its name and address
/// refreshed, enabled or disabled with the user. Its id.
async fn upsert_account(
    txn: &DatabaseTransaction,
    backend: sea_orm::DbBackend,
    account: &ScimAccount,
    active: bool,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let now = micros(now);
    let disabled_at = if active { None } else { Some(now) };
    let mut sql = Sql::new(
        backend,
        "INSERT INTO web_users (tenant_id, object_id, display_name, email, phone, roles, created_at, source, disabled_at) \
         VALUES (",
    );
    sql.value(account.tenant_id.clone()).push(", ").value(account.object_id.clone()).push(", ");
    sql.value(account.display_name.clone()).push(", ").value(account.email.clone()).push(", ");
    sql.value(account.phone.clone()).push(", '[]', ").value(now).push(", 'scim', ").value(disabled_at);
    sql.push(") ON CONFLICT (tenant_id, object_id) DO UPDATE SET display_name = excluded.display_name, ");
    sql.push("email = COALESCE(excluded.email, web_users.email), phone = excluded.phone, ");
    sql.push("disabled_at = excluded.disabled_at");
    txn.execute_raw(sql.build()).await?;
    let mut read = Sql::new(backend, "SELECT id FROM web_users WHERE tenant_id = ");
    read.value(account.tenant_id.clone()).push(" AND object_id = ").value(account.object_id.clone());
    let rows: Vec<(i64,)> = select_json(txn, read, &["id"]).await?;
    let id = rows.first().map(|r| r.0).ok_or_else(|| StoreError::Internal("an account vanished".into()))?;
    if !active {
        end_sessions(txn, backend, id).await?;
    }
    Ok(id)
}

/// A group whose members hold an Attest role: one pushed over SCIM (`scim`, by SCIM id) or one
/// synced from Entra (`entra`, by its resource id in the graph).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleMapping {
    pub id: i64,
    pub group_kind: String,
    pub group_id: String,
    pub group_name: String,
    pub role: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const MAPPING_COLUMNS: &[&str] = &["id", "group_kind", "group_id", "group_name", "role", "created_by", "created_at"];
type MappingRow = (i64, String, String, String, String, String, DateTime<Utc>);

/// A role an account holds through a mapped group, and which group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedRole {
    pub role: String,
    pub group_kind: String,
    pub group_name: String,
}

/// An Attest account as administrators list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub id: i64,
    pub tenant_id: String,
    pub object_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `sign_in`, `scim` or `import`.
    pub source: String,
    pub roles: Vec<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// The mapped roles of an account: its pushed user's active memberships, and its synced
/// principal's current memberships, in mapped groups.
const MAPPED_ROLES: &str = "SELECT rm.role AS role, rm.group_kind AS group_kind, rm.group_name AS group_name \
     FROM role_mappings rm WHERE (rm.group_kind = 'scim' AND EXISTS (SELECT 1 FROM scim_group_members m \
     JOIN scim_users su ON su.id = m.user_id WHERE m.group_id = rm.group_id AND su.active = TRUE AND su.web_user_id = ";

impl Scim<'_> {
    /// Whether any group is mapped to a role.
    pub async fn has_role_mappings(self) -> Result<bool, StoreError> {
        let sql = Sql::new(self.backend(), "SELECT id FROM role_mappings LIMIT 1");
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        Ok(!rows.is_empty())
    }

    /// Every role mapping, by group name.
    pub async fn list_role_mappings(self) -> Result<Vec<RoleMapping>, StoreError> {
        let sql = Sql::new(
            self.backend(),
            &format!("SELECT {} FROM role_mappings ORDER BY group_name, role", MAPPING_COLUMNS.join(", ")),
        );
        let rows: Vec<MappingRow> = select_json(&self.db, sql, MAPPING_COLUMNS).await?;
        Ok(rows
            .into_iter()
            .map(|r| RoleMapping {
                id: r.0,
                group_kind: r.1,
                group_id: r.2,
                group_name: r.3,
                role: r.4,
                created_by: r.5,
                created_at: r.6,
            })
            .collect())
    }

    /// Maps group `(kind, id)`, named `name`, to `role` (once: mapping it again changes nothing).
    pub async fn add_role_mapping(
        self,
        kind: &str,
        group_id: &str,
        name: &str,
        role: &str,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO role_mappings (group_kind, group_id, group_name, role, created_by, created_at) VALUES (",
        );
        sql.value(kind.to_owned()).push(", ").value(group_id.to_owned()).push(", ").value(name.to_owned());
        sql.push(", ").value(role.to_owned()).push(", ").value(created_by.to_owned()).push(", ").value(micros(now));
        sql.push(") ON CONFLICT (group_kind, group_id, role) DO NOTHING");
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Removes mapping `id`; what it was, if it was.
    pub async fn remove_role_mapping(self, id: i64) -> Result<Option<RoleMapping>, StoreError> {
        let found = self.list_role_mappings().await?.into_iter().find(|m| m.id == id);
        if found.is_some() {
            let mut sql = Sql::new(self.backend(), "DELETE FROM role_mappings WHERE id = ");
            sql.value(id);
            self.db.execute_raw(sql.build()).await?;
        }
        Ok(found)
    }

    /// The roles account `web_user` (of `tenant_id`, `object_id`) holds through mapped groups.
    /// Read on every request, so a membership change takes effect on the next one.
    pub async fn mapped_roles(
        self,
        web_user: i64,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Vec<MappedRole>, StoreError> {
        let mut sql = Sql::new(self.backend(), MAPPED_ROLES);
        sql.value(web_user);
        sql.push(
            ")) OR (rm.group_kind = 'entra' AND EXISTS (SELECT 1 FROM grants g \
             JOIN entitlements e ON e.id = g.entitlement_id JOIN principals p ON p.id = g.principal_id \
             JOIN connectors c ON c.id = p.connector_id WHERE CAST(e.resource_id AS TEXT) = rm.group_id \
             AND e.key = 'member' AND g.ended_at IS NULL AND p.external_id = ",
        );
        sql.value(object_id.to_owned()).push(" AND c.tenant_id = ").value(tenant_id.to_owned());
        sql.push(")) ORDER BY role");
        select_json(&self.db, sql, &["role", "group_kind", "group_name"]).await.map(
            |rows: Vec<(String, String, String)>| {
                rows.into_iter()
                    .map(|(role, group_kind, group_name)| MappedRole { role, group_kind, group_name })
                    .collect()
            },
        )
    }

    /// Every account, by name.
    pub async fn list_accounts(self) -> Result<Vec<Account>, StoreError> {
        self.accounts("ORDER BY display_name, id", None).await
    }

    /// Account `id`, if there is one.
    pub async fn get_account(self, id: i64) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts("WHERE id = ", Some(id)).await?.pop())
    }

    /// Accounts as `tail` (and `id`, bound after it) select and order them.
    async fn accounts(self, tail: &str, id: Option<i64>) -> Result<Vec<Account>, StoreError> {
        let columns = [
            "id",
            "tenant_id",
            "object_id",
            "display_name",
            "email",
            "source",
            "roles",
            "disabled_at",
            "last_sign_in_at",
            "phone",
        ];
        let mut sql = Sql::new(self.backend(), &format!("SELECT {} FROM web_users {tail}", columns.join(", ")));
        if let Some(id) = id {
            sql.value(id);
        }
        type Row = (
            i64,
            String,
            String,
            String,
            Option<String>,
            String,
            String,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
        );
        let rows: Vec<Row> = select_json(&self.db, sql, &columns).await?;
        rows.into_iter()
            .map(|r| {
                Ok(Account {
                    roles: crate::entity::parse_json("web_users", r.0, &r.6)?,
                    id: r.0,
                    tenant_id: r.1,
                    object_id: r.2,
                    display_name: r.3,
                    email: r.4,
                    source: r.5,
                    disabled_at: r.7,
                    last_sign_in_at: r.8,
                    phone: r.9,
                })
            })
            .collect()
    }
}
