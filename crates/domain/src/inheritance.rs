//! Effective access: how a grant held by a group reaches the group's members, as Entra applies
//! it, and what removing a direct grant would actually take away from a person.
//!
//! Entra does not treat every entitlement alike:
//! - **group membership** is transitive: a member of a nested group is a transitive member of
//!   the outer group (Graph's `transitiveMembers`; security-group-based access follows it);
//! - **application roles** (default access included) assigned to a group reach the group's
//!   *direct* members only: nested groups are not honoured, and service principals (managed
//!   identities included) must be assigned directly, never through a group;
//! - **directory roles** assigned to a role-assignable group reach its direct members; such
//!   groups cannot contain groups, so a nested member is never effective either;
//! - **ownership** is never inherited.
//!
//! Where a nested member would be *expected* to hold a group's access but Entra does not give
//! it, the store keeps the row as *ineffective* with its [`IneffectiveReason`], so pages can show
//! "listed through Sales → EMEA Sales, but not effective" and an administrator can fix the
//! assignment. Ineffective rows are never access: not counted, not reviewed, not "already held".

use std::collections::{BTreeMap, BTreeSet};

use crate::entitlement::EntitlementKey;
use crate::ids::{EntitlementId, GrantId};
use crate::macros::string_enum;
use crate::principal::PrincipalKind;

/// The version of the rules below. The store remembers per connector which version derived its
/// inherited grants, and derives them again after an upgrade changes the rules.
pub const RULES_VERSION: i32 = 1;

/// How far an entitlement held by a group reaches into the group's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inheritance {
    /// Every transitive member holds it (nested groups followed, cycle-safe).
    Transitive,
    /// Only the group's direct members hold it; members of nested groups are listed as
    /// ineffective.
    DirectMembers,
    /// Nobody holds it through the group.
    Never,
}

/// How an entitlement held by a group reaches its members.
pub fn inheritance(key: &EntitlementKey) -> Inheritance {
    match key {
        EntitlementKey::Member => Inheritance::Transitive,
        EntitlementKey::AppRole(_) | EntitlementKey::Active | EntitlementKey::Eligible => Inheritance::DirectMembers,
        EntitlementKey::Owner => Inheritance::Never,
    }
}

string_enum! {
    /// Why a principal listed through a group does not actually hold what the group holds.
    pub enum IneffectiveReason as "ineffective reason" {
        /// A member of a nested group (or the nested group itself) under a group assigned an
        /// application role.
        NestedGroup => "nested_group",
        /// A service principal or managed identity in a group assigned an application role.
        ServicePrincipal => "service_principal",
        /// A member of a group nested in a role-assignable group holding a directory role.
        NestedRoleGroup => "nested_role_group",
    }
}

impl IneffectiveReason {
    /// The reason in words, as pages and exports show it.
    pub fn explain(self) -> &'static str {
        match self {
            IneffectiveReason::NestedGroup => "nested groups are not honoured for application role assignments",
            IneffectiveReason::ServicePrincipal => {
                "service principals do not receive application roles through group membership; assign them directly"
            }
            IneffectiveReason::NestedRoleGroup => {
                "directory roles reach the direct members of a role-assignable group only"
            }
        }
    }
}

/// Whether a principal reached through a group holds the group's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Effective,
    Ineffective(IneffectiveReason),
}

/// How a principal is reached from the group holding a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A direct member of the group.
    Direct,
    /// A member of a group nested (at any depth) in the group.
    Nested,
}

/// What holding `key` through a group means for a member of `kind` reached by `reach`;
/// `None` when no row is kept at all (ownership is never inherited).
pub fn effect(key: &EntitlementKey, kind: PrincipalKind, reach: Reach) -> Option<Effect> {
    match (inheritance(key), key) {
        (Inheritance::Never, _) => None,
        (Inheritance::Transitive, _) => Some(Effect::Effective),
        (Inheritance::DirectMembers, EntitlementKey::AppRole(_)) => Some(match (reach, kind) {
            (Reach::Nested, _) | (Reach::Direct, PrincipalKind::Group) => {
                Effect::Ineffective(IneffectiveReason::NestedGroup)
            }
            (Reach::Direct, PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity) => {
                Effect::Ineffective(IneffectiveReason::ServicePrincipal)
            }
            (Reach::Direct, PrincipalKind::User) => Effect::Effective,
        }),
        (Inheritance::DirectMembers, _) => Some(match (reach, kind) {
            (Reach::Nested, _) | (Reach::Direct, PrincipalKind::Group) => {
                Effect::Ineffective(IneffectiveReason::NestedRoleGroup)
            }
            (Reach::Direct, _) => Effect::Effective,
        }),
    }
}

/// One way a person holds an entitlement, as "what a revoke changes" needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldWay {
    /// The grant row.
    pub grant: GrantId,
    pub entitlement: EntitlementId,
    pub support: Support,
}

/// What keeps a grant row in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// A direct (or just-in-time) grant: removing it ends it.
    Itself,
    /// An inherited grant: it ends once *all* of these direct memberships of the person are
    /// removed (each is a path to the group it flows from). Empty when none of the person's
    /// own memberships leads there, so only a change to a group can end it.
    Memberships(BTreeSet<GrantId>),
    /// Listed but not effective: removing anything changes no access.
    Ineffective,
}

/// One step of a person's membership paths: their direct membership `membership` leads to the
/// group principal `group`, as that group's direct member (`first`) or through nested groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipPath<G> {
    pub membership: GrantId,
    pub group: G,
    pub first: bool,
}

/// Which of a person's direct memberships keep an effective inherited grant of `key` flowing
/// from group `via`: every membership leading to `via` for membership (transitive), only the
/// direct membership of `via` itself for roles (direct members only).
pub fn supporting_memberships<G: PartialEq>(
    key: &EntitlementKey,
    via: &G,
    paths: &[MembershipPath<G>],
) -> BTreeSet<GrantId> {
    let first_only = inheritance(key) == Inheritance::DirectMembers;
    paths.iter().filter(|p| &p.group == via && (p.first || !first_only)).map(|p| p.membership).collect()
}

/// What removing the direct grants a revoke of one grant row needs would change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevokeImpact {
    /// The person's direct grants to remove (all of them) to end this row; empty when none of
    /// theirs can (an ineffective row, or access through a group's own assignment only).
    pub remove: BTreeSet<GrantId>,
    /// Whether the person would then no longer hold this row's entitlement at all (false when
    /// they also hold it another way).
    pub ends_entitlement: bool,
    /// Other entitlements the person would lose with the same removal.
    pub also_ends: BTreeSet<EntitlementId>,
}

/// For every way a person holds access, what revoking it takes: the direct grants to remove,
/// and what else that removal takes away. Effective ways only count as access.
pub fn revoke_impacts(ways: &[HeldWay]) -> BTreeMap<GrantId, RevokeImpact> {
    let cut = |way: &HeldWay, removed: &BTreeSet<GrantId>| match &way.support {
        Support::Itself => removed.contains(&way.grant),
        Support::Memberships(paths) => !paths.is_empty() && paths.is_subset(removed),
        Support::Ineffective => false,
    };
    let mut by_entitlement: BTreeMap<EntitlementId, Vec<&HeldWay>> = BTreeMap::new();
    for way in ways.iter().filter(|w| w.support != Support::Ineffective) {
        by_entitlement.entry(way.entitlement).or_default().push(way);
    }
    let ended = |removed: &BTreeSet<GrantId>| -> BTreeSet<EntitlementId> {
        by_entitlement
            .iter()
            .filter(|(_, held)| held.iter().all(|w| cut(w, removed)))
            .map(|(entitlement, _)| *entitlement)
            .collect()
    };
    ways.iter()
        .map(|way| {
            let remove = match &way.support {
                Support::Itself => BTreeSet::from([way.grant]),
                Support::Memberships(paths) => paths.clone(),
                Support::Ineffective => BTreeSet::new(),
            };
            if remove.is_empty() {
                return (way.grant, RevokeImpact::default());
            }
            let mut lost = ended(&remove);
            let ends_entitlement = lost.remove(&way.entitlement);
            (way.grant, RevokeImpact { remove, ends_entitlement, also_ends: lost })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> EntitlementKey {
        EntitlementKey::AppRole("r".into())
    }

    #[test]
    fn membership_is_transitive_app_and_directory_roles_reach_direct_users_only() {
        use PrincipalKind::*;
        for kind in [User, Group, ServicePrincipal, ManagedIdentity] {
            for reach in [Reach::Direct, Reach::Nested] {
                assert_eq!(effect(&EntitlementKey::Member, kind, reach), Some(Effect::Effective));
                assert_eq!(effect(&EntitlementKey::Owner, kind, reach), None, "ownership is never inherited");
            }
        }
        assert_eq!(effect(&role(), User, Reach::Direct), Some(Effect::Effective));
        assert_eq!(effect(&role(), User, Reach::Nested), Some(Effect::Ineffective(IneffectiveReason::NestedGroup)));
        assert_eq!(effect(&role(), Group, Reach::Direct), Some(Effect::Ineffective(IneffectiveReason::NestedGroup)));
        for sp in [ServicePrincipal, ManagedIdentity] {
            assert_eq!(
                effect(&role(), sp, Reach::Direct),
                Some(Effect::Ineffective(IneffectiveReason::ServicePrincipal))
            );
        }
        for key in [EntitlementKey::Active, EntitlementKey::Eligible] {
            assert_eq!(effect(&key, User, Reach::Direct), Some(Effect::Effective));
            assert_eq!(effect(&key, ServicePrincipal, Reach::Direct), Some(Effect::Effective));
            assert_eq!(
                effect(&key, User, Reach::Nested),
                Some(Effect::Ineffective(IneffectiveReason::NestedRoleGroup))
            );
        }
        assert!(IneffectiveReason::ALL.iter().all(|r| !r.explain().is_empty()));
    }

    #[test]
    fn memberships_support_what_flows_through_them_by_the_entitlement_s_reach() {
        let path = |m, group, first| MembershipPath { membership: GrantId(m), group, first };
        // Membership 1 is of Sales (7), which is in All Staff (8); membership 2 of All Staff.
        let paths = [path(1, 7, true), path(1, 8, false), path(2, 8, true)];
        assert_eq!(supporting_memberships(&EntitlementKey::Member, &8, &paths), [GrantId(1), GrantId(2)].into());
        assert_eq!(supporting_memberships(&role(), &8, &paths), [GrantId(2)].into());
        assert_eq!(supporting_memberships(&role(), &7, &paths), [GrantId(1)].into());
        assert!(supporting_memberships(&role(), &9, &paths).is_empty());
    }

    #[test]
    fn a_revoke_says_which_memberships_to_remove_and_what_else_goes() {
        let g = GrantId;
        let e = EntitlementId;
        let ways = vec![
            // Direct membership of Sales (grant 1) and of EMEA (grant 2).
            HeldWay { grant: g(1), entitlement: e(10), support: Support::Itself },
            HeldWay { grant: g(2), entitlement: e(20), support: Support::Itself },
            // The app role through Sales only.
            HeldWay { grant: g(3), entitlement: e(30), support: Support::Memberships([g(1)].into()) },
            // Membership of All Staff through both Sales and EMEA.
            HeldWay { grant: g(4), entitlement: e(40), support: Support::Memberships([g(1), g(2)].into()) },
            // The app role also directly: revoking the inherited way leaves it held.
            HeldWay { grant: g(5), entitlement: e(50), support: Support::Memberships([g(2)].into()) },
            HeldWay { grant: g(6), entitlement: e(50), support: Support::Itself },
            // Listed but not effective.
            HeldWay { grant: g(7), entitlement: e(70), support: Support::Ineffective },
        ];
        let impacts = revoke_impacts(&ways);
        let sales = &impacts[&g(1)];
        assert_eq!(sales.remove, [g(1)].into());
        assert!(sales.ends_entitlement);
        assert_eq!(sales.also_ends, [e(30)].into(), "All Staff stays through EMEA");
        let through_sales = &impacts[&g(3)];
        assert_eq!((through_sales.remove.clone(), through_sales.ends_entitlement), ([g(1)].into(), true));
        let all_staff = &impacts[&g(4)];
        assert_eq!(all_staff.remove, [g(1), g(2)].into());
        assert_eq!(all_staff.also_ends, [e(10), e(20), e(30)].into());
        let emea_way = &impacts[&g(5)];
        assert!(!emea_way.ends_entitlement, "still held directly");
        assert_eq!(emea_way.also_ends, [e(20)].into());
        assert_eq!(impacts[&g(7)], RevokeImpact::default());
    }
}
