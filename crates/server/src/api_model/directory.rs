//! The directory as the API answers it, and as its pages render it: people, groups,
//! applications and roles a page at a time, a principal with each access and why, a resource
//! with its holders.

use std::collections::HashMap;

use attest_domain::{
    EntitlementId, GrantId, GrantSource, IneffectiveReason, Principal, PrincipalData, PrincipalId, RevokeImpact,
};
use attest_store::{AccessView, HolderView, Named, PersonRow, ResourceSummary};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A directory object by Attest's id and its name (what a link points at).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ref {
    pub id: i64,
    pub display_name: String,
}

impl From<&Named<PrincipalId>> for Ref {
    fn from(named: &Named<PrincipalId>) -> Ref {
        Ref { id: named.id.0, display_name: named.display_name.clone() }
    }
}

impl From<&Principal> for Ref {
    fn from(p: &Principal) -> Ref {
        Ref { id: p.id.0, display_name: p.data.display_name.clone() }
    }
}

/// A user, group, service principal or managed identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiPrincipal {
    pub id: i64,
    pub connector_id: i64,
    /// `user`, `group`, `service_principal` or `managed_identity`.
    pub kind: String,
    /// The directory's object id.
    pub external_id: String,
    pub display_name: String,
    pub user_principal_name: Option<String>,
    pub email: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    /// A user's business phone (Graph's first `businessPhones`).
    pub business_phone: Option<String>,
    /// A user's mobile phone (Graph's `mobilePhone`).
    pub mobile_phone: Option<String>,
    /// `false`: sign-in blocked. `null` for kinds that do not sign in.
    pub account_enabled: Option<bool>,
    /// `member` or `guest`.
    pub user_type: Option<String>,
    /// Soft-deleted in the directory.
    pub deleted: bool,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// When Attest first saw it.
    pub first_seen_at: DateTime<Utc>,
}

impl ApiPrincipal {
    pub fn new(p: &Principal) -> ApiPrincipal {
        ApiPrincipal {
            id: p.id.0,
            connector_id: p.connector_id.0,
            kind: p.data.kind.to_string(),
            external_id: p.data.external_id.clone(),
            display_name: p.data.display_name.clone(),
            user_principal_name: p.data.user_principal_name.clone(),
            email: p.data.email.clone(),
            job_title: p.data.job_title.clone(),
            department: p.data.department.clone(),
            office_location: p.data.office_location.clone(),
            business_phone: p.data.text_attribute(PrincipalData::PHONE).map(str::to_owned),
            mobile_phone: p.data.text_attribute(PrincipalData::MOBILE_PHONE).map(str::to_owned),
            account_enabled: p.data.account_enabled,
            user_type: p.data.user_type.map(|t| t.to_string()),
            deleted: p.data.deleted_at.is_some(),
            last_sign_in_at: p.data.last_sign_in_at,
            first_seen_at: p.first_seen_at,
        }
    }
}

/// A person in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonListed {
    pub id: i64,
    pub display_name: String,
    pub user_principal_name: Option<String>,
    pub email: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub account_enabled: Option<bool>,
    pub deleted: bool,
}

impl PersonListed {
    pub fn new(p: &PersonRow) -> PersonListed {
        PersonListed {
            id: p.id.0,
            display_name: p.display_name.clone(),
            user_principal_name: p.user_principal_name.clone(),
            email: p.email.clone(),
            department: p.department.clone(),
            job_title: p.job_title.clone(),
            account_enabled: p.account_enabled,
            deleted: p.deleted_at.is_some(),
        }
    }
}

/// One page of the people search (`q`: every word begins a word of the name, user principal
/// name or email), in name order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeopleList {
    pub people: Vec<PersonListed>,
    /// Matches in all.
    pub total: u64,
    /// This page, from 1 (asked past the end: the last).
    pub page: u64,
    pub pages: u64,
    /// The search as applied (trimmed).
    pub q: String,
    /// Every department among the people, for the `department` filter.
    pub departments: Vec<String>,
}

/// A group, application or directory role.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiResource {
    pub id: i64,
    pub connector_id: i64,
    /// `group`, `application` or `directory_role`.
    pub kind: String,
    pub external_id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub deleted: bool,
}

impl ApiResource {
    pub fn new(r: &attest_domain::Resource) -> ApiResource {
        ApiResource {
            id: r.id.0,
            connector_id: r.connector_id.0,
            kind: r.data.kind.to_string(),
            external_id: r.data.external_id.clone(),
            display_name: r.data.display_name.clone(),
            description: r.data.description.clone(),
            deleted: r.data.deleted_at.is_some(),
        }
    }
}

/// How many hold one kind of entitlement.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderCount {
    /// `member`, `owner`, `active`, `eligible`, or `assigned` (app roles together).
    pub kind: String,
    pub count: u64,
}

/// A resource in a listing, with its holders counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceListed {
    pub resource: ApiResource,
    pub holders: Vec<HolderCount>,
}

impl ResourceListed {
    pub fn new(s: &ResourceSummary) -> ResourceListed {
        ResourceListed {
            resource: ApiResource::new(&s.resource),
            holders: s.holders.iter().map(|(kind, count)| HolderCount { kind: kind.clone(), count: *count }).collect(),
        }
    }
}

/// One page of groups, applications or directory roles matching `q`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    pub resources: Vec<ResourceListed>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub q: String,
}

/// An entitlement named by its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementRef {
    /// `member`, `owner`, `active`, `eligible`, or `app_role:<id>`.
    pub key: String,
    pub display_name: String,
}

/// Why an access is held.
#[derive(Debug, Serialize, ToSchema)]
pub struct Why {
    /// `direct`, `inherited` (through a group) or `jit` (an access request, for a time).
    pub kind: String,
    /// For inherited access: the group that holds it.
    pub via: Option<Ref>,
}

impl Why {
    fn new(source: GrantSource, via: Option<Ref>) -> Why {
        let via = via.filter(|_| source == GrantSource::Inherited);
        Why { kind: source.to_string(), via }
    }
}

/// Why a row is listed but Entra does not give the access.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ineffective {
    /// `nested_group`, `service_principal` or `nested_role_group`.
    pub reason: String,
    /// The reason in words.
    pub explanation: String,
    /// The nested group it is listed through.
    pub through: Option<Ref>,
}

impl Ineffective {
    fn new(reason: Option<IneffectiveReason>, through: Option<Ref>) -> Option<Ineffective> {
        reason.map(|reason| Ineffective { reason: reason.to_string(), explanation: reason.explain().into(), through })
    }
}

/// One of the person's grants a revoke would remove or end.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantNamed {
    pub grant_id: i64,
    pub resource: ResourceNamed,
    /// The entitlement's name.
    pub entitlement: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceNamed {
    pub id: i64,
    pub kind: String,
    pub display_name: String,
}

/// What revoking an access takes and changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoke {
    /// The person's direct grants to remove (the memberships, for inherited access).
    pub remove: Vec<GrantNamed>,
    /// Only a change to the group's own assignment ends it: no grant of theirs does.
    pub only_by_group: bool,
    /// Removing this very grant ends it.
    pub direct: bool,
    /// The entitlement then ends (`false`: still held another way).
    pub ends_entitlement: bool,
    /// Other access the same removal ends (the first ten).
    pub also_ends: Vec<GrantNamed>,
    /// How many more it ends beyond those named.
    pub also_ends_more: u64,
}

/// How many of the other things a revoke ends are named on each row (the count says the rest):
/// one membership can carry hundreds of grants, and every one of them would list the others.
const ALSO_ENDS_NAMED: usize = 10;

/// A principal's access rows by grant, and the first effective row of each entitlement: what
/// [`Revoke`] names things by, built once per principal.
pub struct AccessIndex<'a> {
    by_grant: HashMap<GrantId, &'a AccessView>,
    by_entitlement: HashMap<EntitlementId, &'a AccessView>,
}

impl<'a> AccessIndex<'a> {
    pub fn new(all: &'a [AccessView]) -> AccessIndex<'a> {
        let mut by_entitlement = HashMap::new();
        for a in all.iter().filter(|a| a.grant.ineffective.is_none()) {
            by_entitlement.entry(a.grant.entitlement_id).or_insert(a);
        }
        AccessIndex { by_grant: all.iter().map(|a| (a.grant.id, a)).collect(), by_entitlement }
    }
}

impl Revoke {
    /// `None` for a row listed but not effective: revoking it changes nothing.
    fn new(access: &AccessView, impact: Option<&RevokeImpact>, index: &AccessIndex) -> Option<Revoke> {
        let impact = impact.filter(|_| access.grant.ineffective.is_none())?;
        let named = |a: &&AccessView| GrantNamed {
            grant_id: a.grant.id.0,
            resource: ResourceNamed {
                id: a.resource.id.0,
                kind: a.resource.kind.to_string(),
                display_name: a.resource.display_name.clone(),
            },
            entitlement: a.entitlement.display_name.clone(),
        };
        let also_ends: Vec<_> = impact
            .also_ends
            .iter()
            .filter_map(|e| index.by_entitlement.get(e))
            .take(ALSO_ENDS_NAMED)
            .map(named)
            .collect();
        Some(Revoke {
            remove: impact.remove.iter().filter_map(|g| index.by_grant.get(g)).map(named).collect(),
            only_by_group: impact.remove.is_empty(),
            direct: impact.remove.len() == 1 && impact.remove.contains(&access.grant.id),
            ends_entitlement: impact.ends_entitlement,
            also_ends_more: impact.also_ends.len().saturating_sub(also_ends.len()) as u64,
            also_ends,
        })
    }
}

/// One access a principal holds, or is listed with but does not get.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiAccess {
    pub grant_id: i64,
    pub resource: AccessResource,
    pub entitlement: EntitlementRef,
    pub why: Why,
    /// Entra gives it (`false`: listed through a group but not given, see `ineffective`).
    pub effective: bool,
    pub ineffective: Option<Ineffective>,
    /// What revoking it takes (`null` when listed but not effective).
    pub revoke: Option<Revoke>,
    /// A directory role's scope (`/`: the whole directory).
    pub scope: String,
    pub since: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The viewer may remove it here (it is theirs to change, and it can be revoked directly).
    pub removable: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessResource {
    pub id: i64,
    pub kind: String,
    pub external_id: String,
    pub display_name: String,
    pub deleted: bool,
}

impl ApiAccess {
    pub fn new(access: &AccessView, impact: Option<&RevokeImpact>, index: &AccessIndex, removable: bool) -> ApiAccess {
        ApiAccess {
            grant_id: access.grant.id.0,
            resource: AccessResource {
                id: access.resource.id.0,
                kind: access.resource.kind.to_string(),
                external_id: access.resource.external_id.clone(),
                display_name: access.resource.display_name.clone(),
                deleted: access.resource.deleted,
            },
            entitlement: EntitlementRef {
                key: access.entitlement.id.to_string(),
                display_name: access.entitlement.display_name.clone(),
            },
            why: Why::new(access.grant.source, access.via.as_ref().map(Ref::from)),
            effective: access.grant.ineffective.is_none(),
            ineffective: Ineffective::new(access.grant.ineffective, access.through.as_ref().map(Ref::from)),
            revoke: Revoke::new(access, impact, index),
            scope: access.grant.scope.clone(),
            since: access.grant.first_seen_at,
            expires_at: access.grant.expires_at,
            removable,
        }
    }
}

/// A principal, what they hold and why, and the changes involving them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalDetail {
    pub principal: ApiPrincipal,
    /// The connector's name.
    pub connector: String,
    pub manager: Option<Ref>,
    /// For a group: its id as a resource (its members and owners).
    pub group_resource_id: Option<i64>,
    /// Effective access.
    pub access: Vec<ApiAccess>,
    /// Listed through a group, but not given by Entra.
    pub ineffective: Vec<ApiAccess>,
    /// The latest changes involving them (twenty).
    pub changes: Vec<super::ApiChange>,
    /// The viewer may act on them (the side panel's actions).
    pub can_act: bool,
}

/// A holder of a resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiHolder {
    pub principal: ApiPrincipal,
    pub entitlement: EntitlementRef,
    pub why: Why,
    pub effective: bool,
    pub ineffective: Option<Ineffective>,
    pub scope: String,
    pub since: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiHolder {
    pub fn new(h: &HolderView) -> ApiHolder {
        ApiHolder {
            principal: ApiPrincipal::new(&h.principal),
            entitlement: EntitlementRef {
                key: h.entitlement.data.key.to_string(),
                display_name: h.entitlement.data.display_name.clone(),
            },
            why: Why::new(h.grant.source, h.via.as_ref().map(Ref::from)),
            effective: h.grant.ineffective.is_none(),
            ineffective: Ineffective::new(h.grant.ineffective, h.through.as_ref().map(Ref::from)),
            scope: h.grant.scope.clone(),
            since: h.grant.first_seen_at,
            expires_at: h.grant.expires_at,
        }
    }
}

/// An entitlement a resource offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiEntitlement {
    pub key: String,
    pub display_name: String,
    /// Changes to it wait for a second person's approval.
    pub sensitive: bool,
}

/// A resource, its entitlements and a page of its holders.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceDetail {
    pub resource: ApiResource,
    /// Kind-specific attributes as synced (group type flags, app roles, role template id).
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    pub entitlements: Vec<ApiEntitlement>,
    /// Holders Entra gives it to, a page at a time.
    pub holders: Vec<ApiHolder>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    /// Listed through a group but not given by Entra (the first page), and how many in all.
    pub ineffective_holders: Vec<ApiHolder>,
    pub ineffective_total: u64,
    /// For a group: its id as a principal (what the group itself holds).
    pub principal_id: Option<i64>,
    /// For a group Graph cannot change the members of (Exchange-managed, dynamic,
    /// on-premises): why. Attest refuses to add or remove its members.
    pub members_managed_elsewhere: Option<String>,
}

/// The signed-in person's own access (`GET /access`), in each directory that has synced them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyAccess {
    pub directories: Vec<PrincipalDetail>,
}

/// One page of service principals and managed identities matching `q`, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServicePrincipalList {
    pub principals: Vec<ApiPrincipal>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub q: String,
}
