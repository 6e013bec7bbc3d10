//! Read models for the directory browser: a principal's access with *why* they hold it, a
//! resource's holders, and resources by kind with their holder counts. Every function here is
//! a handful of indexed queries whatever the tenant's size; pages ask for one page at a time.

use std::collections::HashMap;

use attest_domain::{
    ConnectorId, Entitlement, EntitlementId, EntitlementKey, Grant, GrantId, GrantSource, HeldWay, IneffectiveReason,
    MembershipPath, Principal, PrincipalId, PrincipalKind, Resource, ResourceId, ResourceKind, RevokeImpact, Support,
    revoke_impacts, supporting_memberships,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::StoreError;
use crate::areas::Directory;
use crate::entity::{grant, principal, resource};
use crate::sql::Sql;

/// One current grant of a principal, with what it is to and, for an inherited grant, the group
/// it flows from: what a principal's page shows, read in one round trip.
#[derive(Debug, Clone, Serialize)]
pub struct AccessView {
    pub grant: HeldGrant,
    pub entitlement: Named<EntitlementKey>,
    pub resource: ResourceRef,
    pub via: Option<Named<PrincipalId>>,
    /// For an ineffective grant listed through a nested group: that group (a direct member
    /// of `via`).
    pub through: Option<Named<PrincipalId>>,
}

impl AccessView {
    /// This grant as something to revoke from the principal with object id `principal`.
    pub fn revoke_target<'a>(&'a self, principal: &'a str) -> attest_domain::command::RevokeTarget<'a> {
        attest_domain::command::RevokeTarget {
            principal,
            resource_kind: self.resource.kind,
            resource: &self.resource.external_id,
            resource_deleted: self.resource.deleted,
            entitlement: &self.entitlement.id,
            source: self.grant.source,
            scope: &self.grant.scope,
            external_ref: self.grant.external_ref.as_deref(),
            expires_at: self.grant.expires_at,
            ineffective: self.grant.ineffective,
            managed_elsewhere: self.resource.managed_elsewhere,
        }
    }
}

/// The grant in an [`AccessView`].
#[derive(Debug, Clone, Serialize)]
pub struct HeldGrant {
    pub id: GrantId,
    pub entitlement_id: EntitlementId,
    pub source: GrantSource,
    /// Why an inherited grant is listed but not effective; `None` for access Entra gives.
    pub ineffective: Option<IneffectiveReason>,
    pub scope: String,
    pub external_ref: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Something by its id (or key) and name.
#[derive(Debug, Clone, Serialize)]
pub struct Named<T> {
    pub id: T,
    pub display_name: String,
}

/// The resource in an [`AccessView`].
#[derive(Debug, Clone, Serialize)]
pub struct ResourceRef {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub external_id: String,
    pub display_name: String,
    pub deleted: bool,
    /// Why Graph cannot change who holds this entitlement (a group managed elsewhere).
    pub managed_elsewhere: Option<&'static str>,
}

/// One current holder of a resource's entitlement.
#[derive(Debug, Clone, Serialize)]
pub struct HolderView {
    pub grant: Grant,
    pub entitlement: Entitlement,
    pub principal: Principal,
    pub via: Option<Principal>,
    /// For an ineffective grant: the nested group it is listed through.
    pub through: Option<Principal>,
}

/// A resource with how many current grants each of its entitlement kinds has: `member`,
/// `owner`, `active`, `eligible`, and `assigned` for all app roles together.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceSummary {
    pub resource: Resource,
    pub holders: Vec<(String, u64)>,
}

/// A person as a listing shows them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PersonRow {
    pub id: PrincipalId,
    pub display_name: String,
    pub user_principal_name: Option<String>,
    pub email: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    #[serde(deserialize_with = "crate::sql::optional_bool")]
    pub account_enabled: Option<bool>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A row of [`Directory::list_access_of_principal`]'s query, in column order.
#[derive(serde::Deserialize)]
struct AccessRow {
    grant_id: i64,
    entitlement_id: i64,
    source: String,
    ineffective_reason: Option<String>,
    scope: String,
    external_ref: Option<String>,
    first_seen_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    entitlement_key: String,
    entitlement_name: String,
    resource_id: i64,
    resource_kind: String,
    resource_external_id: String,
    resource_name: String,
    resource_deleted_at: Option<DateTime<Utc>>,
    /// A group's attributes (its type flags); `null` for other kinds.
    resource_attributes: Option<String>,
    via_id: Option<i64>,
    via_name: Option<String>,
    through_id: Option<i64>,
    through_name: Option<String>,
}

impl AccessRow {
    const COLUMNS: &[&str] = &[
        "grant_id",
        "entitlement_id",
        "source",
        "ineffective_reason",
        "scope",
        "external_ref",
        "first_seen_at",
        "expires_at",
        "entitlement_key",
        "entitlement_name",
        "resource_id",
        "resource_kind",
        "resource_external_id",
        "resource_name",
        "resource_deleted_at",
        "resource_attributes",
        "via_id",
        "via_name",
        "through_id",
        "through_name",
    ];

    fn into_view(self) -> Result<AccessView, StoreError> {
        const T: &str = "grants";
        let id = self.grant_id;
        let named = |id: Option<i64>, name: Option<String>| {
            id.zip(name).map(|(id, display_name)| Named { id: PrincipalId(id), display_name })
        };
        Ok(AccessView {
            grant: HeldGrant {
                id: GrantId(id),
                entitlement_id: EntitlementId(self.entitlement_id),
                source: crate::entity::parse_column(T, id, &self.source)?,
                ineffective: self
                    .ineffective_reason
                    .as_deref()
                    .map(|r| crate::entity::parse_column(T, id, r))
                    .transpose()?,
                scope: self.scope,
                external_ref: self.external_ref,
                first_seen_at: self.first_seen_at,
                expires_at: self.expires_at,
            },
            entitlement: Named {
                id: crate::entity::parse_column(T, id, &self.entitlement_key)?,
                display_name: self.entitlement_name,
            },
            resource: ResourceRef {
                id: ResourceId(self.resource_id),
                kind: crate::entity::parse_column(T, id, &self.resource_kind)?,
                external_id: self.resource_external_id,
                display_name: self.resource_name,
                deleted: self.resource_deleted_at.is_some(),
                managed_elsewhere: match &self.resource_attributes {
                    Some(text) => attest_domain::resource::group_managed_elsewhere(
                        &crate::entity::parse_json(T, id, text)?,
                        &crate::entity::parse_column(T, id, &self.entitlement_key)?,
                    ),
                    None => None,
                },
            },
            via: named(self.via_id, self.via_name),
            through: named(self.through_id, self.through_name),
        })
    }
}

/// Which connectors a reader may see; `None` is all of them.
pub type ConnectorScope<'a> = Option<&'a [ConnectorId]>;

/// `%query%` for `LIKE`, with the wildcards in what people type made literal.
fn contains_pattern(query: &str) -> LikeExpr {
    let escaped = query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// A listing's page: the rows of `select` whose `name` contains `query` (any case), by name
/// then id, `limit` from `offset`; and how many match in all.
async fn by_name<E>(
    db: &sea_orm::DatabaseConnection,
    mut select: sea_orm::Select<E>,
    (name, id): (E::Column, E::Column),
    query: &str,
    limit: u64,
    offset: u64,
) -> Result<(Vec<E::Model>, u64), StoreError>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    let query = query.trim().to_lowercase();
    if !query.is_empty() {
        select = select.filter(lower_contains(name, &query));
    }
    let total = select.clone().count(db).await?;
    let rows = select.order_by_asc(name).order_by_asc(id).limit(limit).offset(offset).all(db).await?;
    Ok((rows, total))
}

/// `lower(column) LIKE %query%`.
fn lower_contains(column: impl sea_orm::sea_query::IntoColumnRef, query: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::expr(Func::lower(Expr::col(column))).like(contains_pattern(query))
}

/// Entitlement kinds as the directory pages count them.
fn holder_kind(key: &str) -> &str {
    if key.starts_with("role:") { "assigned" } else { key }
}

impl Directory<'_> {
    /// Live resources of `kind` whose name contains `query` (case-insensitive; all when empty),
    /// by name, a page at a time, with their holder counts; and how many match in all.
    pub async fn search_resources(
        self,
        kind: ResourceKind,
        query: &str,
        scope: ConnectorScope<'_>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<ResourceSummary>, u64), StoreError> {
        use resource::Column;
        let mut select =
            resource::Entity::find().filter(Column::Kind.eq(kind.as_str())).filter(Column::DeletedAt.is_null());
        if let Some(scope) = scope {
            select = select.filter(Column::ConnectorId.is_in(scope.iter().map(|c| c.0)));
        }
        let (models, total) =
            by_name(&self.db, select, (Column::DisplayName, Column::Id), query, limit, offset).await?;
        let resources = models.into_iter().map(resource::Model::into_domain).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<ResourceId> = resources.iter().map(|r| r.id).collect();
        let mut counts = self.count_holders(&ids).await?;
        let summaries = resources
            .into_iter()
            .map(|resource| {
                let mut holders: Vec<(String, u64)> =
                    counts.remove(&resource.id).unwrap_or_default().into_iter().collect();
                holders.sort();
                ResourceSummary { resource, holders }
            })
            .collect();
        Ok((summaries, total))
    }

    /// Service principals and managed identities (the non-human principals, which hold access
    /// too) whose display name contains `query`, by name, a page at a time, with the total.
    pub async fn search_service_principals(
        self,
        query: &str,
        scope: ConnectorScope<'_>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<Principal>, u64), StoreError> {
        use crate::entity::principal::{self, Column};
        let kinds = [PrincipalKind::ServicePrincipal.as_str(), PrincipalKind::ManagedIdentity.as_str()];
        let mut select =
            principal::Entity::find().filter(Column::Kind.is_in(kinds)).filter(Column::DeletedAt.is_null());
        if let Some(scope) = scope {
            select = select.filter(Column::ConnectorId.is_in(scope.iter().map(|c| c.0)));
        }
        let (models, total) =
            by_name(&self.db, select, (Column::DisplayName, Column::Id), query, limit, offset).await?;
        Ok((models.into_iter().map(principal::Model::into_domain).collect::<Result<Vec<_>, _>>()?, total))
    }

    /// Current grants per resource and holder kind.
    async fn count_holders(
        self,
        resources: &[ResourceId],
    ) -> Result<HashMap<ResourceId, HashMap<String, u64>>, StoreError> {
        let mut counts: HashMap<ResourceId, HashMap<String, u64>> = HashMap::new();
        if resources.is_empty() {
            return Ok(counts);
        }
        let mut sql = Sql::new(
            self.backend(),
            "SELECT e.resource_id, e.key, COUNT(*) FROM grants g JOIN entitlements e ON e.id = g.entitlement_id \
             WHERE g.ended_at IS NULL AND g.ineffective_reason IS NULL AND e.resource_id IN ",
        );
        let ids: Vec<sea_orm::Value> = resources.iter().map(|r| r.0.into()).collect();
        sql.tuple(ids).push(" GROUP BY e.resource_id, e.key");
        for row in self.db.query_all_raw(sql.build()).await? {
            let resource: i64 = row.try_get_by_index(0)?;
            let key: String = row.try_get_by_index(1)?;
            let n: i64 = row.try_get_by_index(2)?;
            *counts.entry(ResourceId(resource)).or_default().entry(holder_kind(&key).to_owned()).or_default() +=
                u64::try_from(n).unwrap_or_default();
        }
        Ok(counts)
    }

    /// A principal's current access (direct, JIT and inherited), by resource and entitlement
    /// name, each with the group it is inherited through; inherited rows Entra does not honour
    /// come too, marked ineffective, with the nested group they are listed through.
    pub async fn list_access_of_principal(self, principal: PrincipalId) -> Result<Vec<AccessView>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT g.id AS grant_id, g.entitlement_id AS entitlement_id, g.source AS source, \
             g.ineffective_reason AS ineffective_reason, g.scope AS scope, g.external_ref AS external_ref, \
             g.first_seen_at AS first_seen_at, g.expires_at AS expires_at, e.key AS entitlement_key, \
             e.display_name AS entitlement_name, r.id AS resource_id, r.kind AS resource_kind, \
             r.external_id AS resource_external_id, r.display_name AS resource_name, r.deleted_at AS resource_deleted_at, \
             CASE WHEN r.kind = 'group' THEN r.attributes END AS resource_attributes, \
             v.id AS via_id, v.display_name AS via_name, t.id AS through_id, t.display_name AS through_name \
             FROM grants g JOIN entitlements e ON e.id = g.entitlement_id JOIN resources r ON r.id = e.resource_id \
             LEFT JOIN principals v ON v.id = g.via_principal_id LEFT JOIN principals t ON t.id = g.through_principal_id \
             WHERE g.ended_at IS NULL AND g.principal_id = ",
        );
        sql.value(principal.0);
        let rows: Vec<AccessRow> = crate::sql::select_json(&self.db, sql, AccessRow::COLUMNS).await?;
        let mut access = rows.into_iter().map(AccessRow::into_view).collect::<Result<Vec<_>, StoreError>>()?;
        access.sort_by(|a, b| {
            (a.resource.kind.as_str(), &a.resource.display_name, &a.entitlement.display_name)
                .cmp(&(b.resource.kind.as_str(), &b.resource.display_name, &b.entitlement.display_name))
                .then(a.grant.source.as_str().cmp(b.grant.source.as_str()))
                .then(a.grant.id.0.cmp(&b.grant.id.0))
        });
        Ok(access)
    }

    /// A resource's current holders, by holder name, a page at a time; and how many in all.
    /// Only access Entra gives: see [`Directory::list_ineffective_holders_of_resource`] for the rest.
    pub async fn list_holders_of_resource(
        self,
        resource: ResourceId,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<HolderView>, u64), StoreError> {
        self.holders_of_resource(resource, false, limit, offset).await
    }

    /// Those listed through a group as holding a resource's entitlement whom Entra does not
    /// give it (nested members of a group assigned an app role...), a page at a time.
    pub async fn list_ineffective_holders_of_resource(
        self,
        resource: ResourceId,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<HolderView>, u64), StoreError> {
        self.holders_of_resource(resource, true, limit, offset).await
    }

    async fn holders_of_resource(
        self,
        resource: ResourceId,
        ineffective: bool,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<HolderView>, u64), StoreError> {
        let entitlements: HashMap<EntitlementId, Entitlement> =
            self.resources().list_entitlements(resource).await?.into_iter().map(|e| (e.id, e)).collect();
        if entitlements.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let ids = || entitlements.keys().map(|e| sea_orm::Value::from(e.0)).collect::<Vec<_>>();
        let effect =
            if ineffective { " AND g.ineffective_reason IS NOT NULL" } else { " AND g.ineffective_reason IS NULL" };
        let backend = self.backend();
        let mut count =
            Sql::new(backend, "SELECT COUNT(*) FROM grants g WHERE g.ended_at IS NULL AND g.entitlement_id IN ");
        count.tuple(ids()).push(effect);
        let total: i64 = match self.db.query_one_raw(count.build()).await? {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        };
        let mut page = Sql::new(
            backend,
            "SELECT g.id FROM grants g JOIN principals p ON p.id = g.principal_id \
             WHERE g.ended_at IS NULL AND g.entitlement_id IN ",
        );
        page.tuple(ids()).push(effect);
        page.push(" ORDER BY p.display_name, g.principal_id, g.entitlement_id, g.id LIMIT ");
        page.value(limit as i64).push(" OFFSET ").value(offset as i64);
        let mut order = Vec::new();
        for row in self.db.query_all_raw(page.build()).await? {
            order.push(row.try_get_by_index::<i64>(0)?);
        }
        let models = grant::Entity::find().filter(grant::Column::Id.is_in(order.clone())).all(&self.db).await?;
        let mut grants: HashMap<GrantId, Grant> =
            self.grants().grants_into_domain(models).await?.into_iter().map(|g| (g.id, g)).collect();
        let wanted: Vec<PrincipalId> = grants
            .values()
            .flat_map(|g| [Some(g.principal_id), g.via_principal_id, g.through_principal_id])
            .flatten()
            .collect();
        let people = self.principals_by_id(wanted).await?;
        let holders = order
            .into_iter()
            .filter_map(|id| {
                let grant = grants.remove(&GrantId(id))?;
                Some(HolderView {
                    entitlement: entitlements.get(&grant.entitlement_id)?.clone(),
                    principal: people.get(&grant.principal_id)?.clone(),
                    via: grant.via_principal_id.and_then(|v| people.get(&v).cloned()),
                    through: grant.through_principal_id.and_then(|v| people.get(&v).cloned()),
                    grant,
                })
            })
            .collect();
        Ok((holders, u64::try_from(total).unwrap_or_default()))
    }

    /// The groups each of a principal's direct memberships leads to, nested groups followed
    /// upwards (cycle-safe), the membership's own group marked `first`: which memberships an
    /// inherited grant flows through, for "what a revoke changes".
    pub async fn list_membership_paths(
        self,
        principal: PrincipalId,
    ) -> Result<Vec<MembershipPath<PrincipalId>>, StoreError> {
        // A current direct membership edge: `g` makes `g.principal_id` a member of group `gp`.
        const EDGE: &str = "JOIN entitlements e ON e.id = g.entitlement_id AND e.key = 'member' \
             JOIN resources r ON r.id = e.resource_id \
             JOIN principals gp ON gp.connector_id = r.connector_id AND gp.external_id = r.external_id AND gp.kind = 'group'";
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "WITH RECURSIVE up(membership, group_id, first) AS (\
                 SELECT g.id, gp.id, 1 FROM grants g {EDGE} WHERE g.ended_at IS NULL AND g.source <> 'inherited' AND g.principal_id = "
            ),
        );
        sql.value(principal.0);
        // UNION (not UNION ALL) drops rows already found, so a cycle of groups ends.
        sql.push(&format!(
            " UNION SELECT up.membership, gp.id, 0 FROM up JOIN grants g ON g.principal_id = up.group_id {EDGE} \
             WHERE g.ended_at IS NULL AND g.source <> 'inherited') \
             SELECT membership, group_id, first FROM up"
        ));
        let rows: Vec<(i64, i64, i64)> =
            crate::sql::select_json(&self.db, sql, &["membership", "group_id", "first"]).await?;
        Ok(rows
            .into_iter()
            .map(|(m, g, first)| MembershipPath { membership: GrantId(m), group: PrincipalId(g), first: first == 1 })
            .collect())
    }

    /// For each of a principal's grants (`access`, as [`Directory::list_access_of_principal`] reads
    /// it), what revoking it takes and changes: the direct grants of theirs to remove, whether
    /// they then lose the entitlement, and what else goes with it. The rules are the domain's
    /// (`attest_domain::inheritance`); this reads the membership paths they need.
    pub async fn revoke_impacts(
        self,
        principal: PrincipalId,
        access: &[AccessView],
    ) -> Result<std::collections::BTreeMap<GrantId, RevokeImpact>, StoreError> {
        let paths = self.list_membership_paths(principal).await?;
        let ways: Vec<HeldWay> = access
            .iter()
            .map(|a| {
                let support = match (a.grant.source, &a.via, a.grant.ineffective) {
                    (_, _, Some(_)) => Support::Ineffective,
                    (GrantSource::Inherited, Some(via), None) => {
                        Support::Memberships(supporting_memberships(&a.entitlement.id, &via.id, &paths))
                    }
                    (GrantSource::Inherited, None, None) => Support::Memberships(Default::default()),
                    _ => Support::Itself,
                };
                HeldWay { grant: a.grant.id, entitlement: a.grant.entitlement_id, support }
            })
            .collect();
        Ok(revoke_impacts(&ways))
    }

    /// The group principal that is this group resource (groups hold access too), if synced.
    pub async fn find_principal_of_group(self, group: &Resource) -> Result<Option<Principal>, StoreError> {
        if group.data.kind != ResourceKind::Group {
            return Ok(None);
        }
        self.principals().find_principal_by_external_id(group.connector_id, &group.data.external_id).await
    }

    /// The group resource that is this group principal, if synced.
    pub async fn find_resource_of_group(self, group: &Principal) -> Result<Option<Resource>, StoreError> {
        if group.data.kind != PrincipalKind::Group {
            return Ok(None);
        }
        resource::Entity::find()
            .filter(resource::Column::ConnectorId.eq(group.connector_id.0))
            .filter(resource::Column::Kind.eq(ResourceKind::Group.as_str()))
            .filter(resource::Column::ExternalId.eq(group.data.external_id.as_str()))
            .one(&self.db)
            .await?
            .map(resource::Model::into_domain)
            .transpose()
    }

    /// Live resources of `kind` in a connector named exactly `name` (case-insensitive) or with
    /// this directory object id: what a form naming a group or application resolves to.
    pub async fn find_resources_named(
        self,
        connector: ConnectorId,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<Resource>, StoreError> {
        use resource::Column;
        let name = name.trim();
        resource::Entity::find()
            .filter(Column::ConnectorId.eq(connector.0))
            .filter(Column::Kind.eq(kind.as_str()))
            .filter(Column::DeletedAt.is_null())
            .filter(
                sea_orm::Condition::any()
                    .add(Column::ExternalId.eq(name))
                    .add(Expr::expr(Func::lower(Expr::col(Column::DisplayName))).eq(name.to_lowercase())),
            )
            .order_by_asc(Column::Id)
            .limit(20)
            .all(&self.db)
            .await?
            .into_iter()
            .map(resource::Model::into_domain)
            .collect()
    }

    async fn principals_by_id(self, ids: Vec<PrincipalId>) -> Result<HashMap<PrincipalId, Principal>, StoreError> {
        let ids: Vec<i64> = unique(ids.into_iter().map(|i| i.0));
        let mut found = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            for model in
                principal::Entity::find().filter(principal::Column::Id.is_in(chunk.to_vec())).all(&self.db).await?
            {
                let p = model.into_domain()?;
                found.insert(p.id, p);
            }
        }
        Ok(found)
    }
}

/// Ids per `IN (...)` list.
const CHUNK: usize = 1_000;

fn unique(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Directory<'_> {
    /// The names of app roles, by (the application's object id, the role's id), for saying
    /// "assign Reader of Payroll" instead of a GUID. Unknown roles are left out.
    pub async fn app_role_names(
        self,
        connector: ConnectorId,
        roles: &[(&str, &str)],
    ) -> Result<HashMap<(String, String), String>, StoreError> {
        let mut names = HashMap::new();
        if roles.is_empty() {
            return Ok(names);
        }
        let keys: Vec<sea_orm::Value> =
            roles.iter().map(|(_, role)| EntitlementKey::AppRole((*role).to_owned()).to_string().into()).collect();
        let mut sql = Sql::new(
            self.backend(),
            "SELECT r.external_id, e.key, e.display_name FROM entitlements e JOIN resources r ON r.id = e.resource_id \
             WHERE r.connector_id = ",
        );
        sql.value(connector.0).push(" AND e.key IN ").tuple(keys);
        for row in self.db.query_all_raw(sql.build()).await? {
            let (app, key, name): (String, String, String) =
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
            if let Ok(EntitlementKey::AppRole(role)) = key.parse::<EntitlementKey>() {
                names.insert((app, role), name);
            }
        }
        Ok(names)
    }

    /// Display names of a connector's principals and resources by directory object id, for
    /// saying "add Ada Lovelace to Finance" instead of two GUIDs. Unknown ids are left out.
    pub async fn names_by_external_id(
        self,
        connector: ConnectorId,
        ids: &[&str],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut names = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let people: Vec<(String, String)> = principal::Entity::find()
                .select_only()
                .column(principal::Column::ExternalId)
                .column(principal::Column::DisplayName)
                .filter(principal::Column::ConnectorId.eq(connector.0))
                .filter(principal::Column::ExternalId.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            let things: Vec<(String, String)> = resource::Entity::find()
                .select_only()
                .column(resource::Column::ExternalId)
                .column(resource::Column::DisplayName)
                .filter(resource::Column::ConnectorId.eq(connector.0))
                .filter(resource::Column::ExternalId.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            names.extend(people);
            names.extend(things);
        }
        Ok(names)
    }
}

/// What the people search matches on, for one user: id, connector, display name, user
/// principal name, email.
pub type PersonKeys = (i64, i64, String, Option<String>, Option<String>);

/// What the people listing filters on, per user: department, `userType`, sign-in enabled.
#[derive(Debug, Clone)]
pub struct PersonFacets {
    pub id: i64,
    pub department: Option<String>,
    pub user_type: Option<String>,
    pub account_enabled: Option<bool>,
}

impl Directory<'_> {
    /// Every user's search keys, for an in-memory people index (one value from the database,
    /// see `select_json`: 100,000 users come back in a fraction of a second).
    pub async fn list_people_facets(self) -> Result<Vec<PersonFacets>, StoreError> {
        let mut sql =
            Sql::new(self.backend(), "SELECT id, department, user_type, account_enabled FROM principals WHERE kind = ");
        sql.value(PrincipalKind::User.as_str());
        let rows: Vec<(i64, Option<String>, Option<String>, serde_json::Value)> =
            crate::sql::select_json(&self.db, sql, &["id", "department", "user_type", "account_enabled"]).await?;
        Ok(rows
            .into_iter()
            .map(|(id, department, user_type, enabled)| PersonFacets {
                id,
                department,
                user_type,
                account_enabled: enabled.as_bool().or_else(|| enabled.as_i64().map(|n| n != 0)),
            })
            .collect())
    }

    /// Every user's search keys, for an in-memory people index (see `list_people_facets` for
    /// what it filters on).
    pub async fn list_people_search_keys(self) -> Result<Vec<PersonKeys>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT id, connector_id, display_name, user_principal_name, email FROM principals WHERE kind = ",
        );
        sql.value(PrincipalKind::User.as_str());
        crate::sql::select_json(&self.db, sql, &["id", "connector_id", "display_name", "user_principal_name", "email"])
            .await
    }

    /// Something that changes whenever a sync finishes: how many runs finished, and the last
    /// finish. What caches of synced data compare to know they are stale.
    pub async fn sync_stamp(self) -> Result<(i64, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
        let sql = Sql::new(
            self.backend(),
            "SELECT COUNT(*) AS n, MAX(finished_at) AS last FROM sync_runs WHERE finished_at IS NOT NULL",
        );
        let rows: Vec<(i64, Option<chrono::DateTime<chrono::Utc>>)> =
            crate::sql::select_json(&self.db, sql, &["n", "last"]).await?;
        Ok(rows.into_iter().next().unwrap_or((0, None)))
    }

    /// A principal and their manager (by id and name, when synced), in one round trip: what a
    /// principal's page starts from.
    pub async fn find_principal_with_manager(
        self,
        id: PrincipalId,
    ) -> Result<Option<(Principal, Option<Named<PrincipalId>>)>, StoreError> {
        let columns: Vec<String> = principal::COLUMNS.iter().map(|c| format!("p.{c} AS {c}")).collect();
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "SELECT {}, m.id AS manager_id, m.display_name AS manager_name FROM principals p \
                 LEFT JOIN principals m ON m.connector_id = p.connector_id AND m.external_id = p.manager_external_id \
                 WHERE p.id = ",
                columns.join(", ")
            ),
        );
        sql.value(id.0);
        let mut names: Vec<&str> = principal::COLUMNS.to_vec();
        names.extend(["manager_id", "manager_name"]);
        // The row arrives flat: the principal's columns, then the manager's two.
        let rows: Vec<serde_json::Value> = crate::sql::select_json(&self.db, sql, &names).await?;
        let Some(serde_json::Value::Array(mut values)) = rows.into_iter().next() else { return Ok(None) };
        let manager_name = values.pop().unwrap_or_default();
        let manager_id = values.pop().unwrap_or_default();
        let model: principal::Model = serde_json::from_value(serde_json::Value::Array(values))
            .map_err(|e| StoreError::Internal(format!("unreadable principal row: {e}")))?;
        let manager = match (manager_id.as_i64(), manager_name.as_str()) {
            (Some(id), Some(name)) => Some(Named { id: PrincipalId(id), display_name: name.to_owned() }),
            _ => None,
        };
        Ok(Some((model.into_domain()?, manager)))
    }

    /// People by id for a listing, in the order asked (ids not found are left out): the few
    /// columns a list shows, in one round trip.
    pub async fn list_people_rows(self, ids: &[PrincipalId]) -> Result<Vec<PersonRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let columns = [
            "id",
            "display_name",
            "user_principal_name",
            "email",
            "department",
            "job_title",
            "account_enabled",
            "deleted_at",
        ];
        let mut sql = Sql::new(self.backend(), &format!("SELECT {} FROM principals WHERE id IN ", columns.join(", ")));
        sql.tuple(ids.iter().map(|id| id.0.into()).collect::<Vec<sea_orm::Value>>());
        let rows: Vec<PersonRow> = crate::sql::select_json(&self.db, sql, &columns).await?;
        let mut found: HashMap<PrincipalId, PersonRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}
