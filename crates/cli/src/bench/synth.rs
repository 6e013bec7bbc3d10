//! A synthetic entitlement graph, deterministic from a seed and streamed, so a benchmark
//! of millions of grants never holds them all in memory.
//!
//! Shape: `users` users; `groups` groups (each a principal and a resource with `member` and
//! `owner`); one owner per group; 1% of groups nested in another group; the remaining grants
//! are memberships with power-law group sizes (a few huge groups, a long tail of small ones).

use attest_connector::{ObservedEntitlement, ObservedGrant};
use attest_domain::{
    EntitlementKey, PrincipalData, PrincipalKind, ResourceData, ResourceKind, UserType, principal::work_email,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub struct Synth {
    pub users: usize,
    pub groups: usize,
    pub seed: u64,
    sizes: Vec<usize>,
    /// Per group, where its members start among the users and the stride between them.
    layout: Vec<(usize, usize)>,
    nested: Vec<(usize, usize)>,
}

const DEPARTMENTS: &[&str] = &["Engineering", "Finance", "Sales", "Marketing", "Legal", "Support", "Operations", "HR"];

impl Synth {
    pub fn new(users: usize, groups: usize, grants: usize, seed: u64) -> anyhow::Result<Synth> {
        anyhow::ensure!(users > 0 && groups > 1, "--principals and --groups must be at least 1 and 2");
        let nested_count = groups / 100;
        let owners = groups;
        let memberships = grants.checked_sub(owners + nested_count).ok_or_else(|| {
            anyhow::anyhow!("--grants must be at least {} (one owner per group plus nesting)", owners + nested_count)
        })?;
        anyhow::ensure!(memberships <= users * groups, "--grants cannot exceed users × groups");
        let mut rng = SmallRng::seed_from_u64(seed);
        // Power-law weights, sizes capped at the number of users, the remainder spread evenly.
        let weights: Vec<f64> = (0..groups).map(|i| 1.0 / ((i + 1) as f64).powf(0.9)).collect();
        let total: f64 = weights.iter().sum();
        let mut sizes: Vec<usize> =
            weights.iter().map(|w| ((memberships as f64) * w / total) as usize).map(|s| s.min(users)).collect();
        let mut deficit = memberships - sizes.iter().sum::<usize>();
        let mut i = 0;
        while deficit > 0 {
            if sizes[i % groups] < users {
                sizes[i % groups] += 1;
                deficit -= 1;
            }
            i += 1;
        }
        // Small groups (the tail) nested into random other groups.
        let nested = (0..nested_count)
            .map(|k| {
                let child = groups - 1 - k;
                let mut parent = rng.random_range(0..groups);
                if parent == child {
                    parent = (parent + 1) % groups;
                }
                (child, parent)
            })
            .collect();
        // Distinct members per group: a start and a stride coprime with the number of users.
        let layout = (0..groups)
            .map(|_| {
                let start = rng.random_range(0..users);
                let stride = loop {
                    let candidate = rng.random_range(1..users.max(2));
                    if gcd(candidate, users) == 1 {
                        break candidate;
                    }
                };
                (start, stride)
            })
            .collect();
        Ok(Synth { users, groups, seed, sizes, layout, nested })
    }

    pub fn principals(&self) -> Vec<PrincipalData> {
        let mut rng = SmallRng::seed_from_u64(self.seed ^ 0x5eed);
        let mut out = Vec::with_capacity(self.users + self.groups);
        for i in 0..self.users {
            let mut p = PrincipalData::new(user_id(i), PrincipalKind::User, format!("User {i}"));
            let upn = format!("user{i}@contoso.example");
            p.email = work_email(None, Some(&upn));
            p.user_principal_name = Some(upn);
            p.department = Some(DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_owned());
            p.job_title = Some("Analyst".to_owned());
            p.account_enabled = Some(rng.random_bool(0.97));
            p.user_type = Some(if rng.random_bool(0.05) { UserType::Guest } else { UserType::Member });
            p.manager_external_id = (i > 0).then(|| user_id(rng.random_range(0..i)));
            // Nine in ten signed in within the last two months; the rest never did.
            p.last_sign_in_at = rng
                .random_bool(0.9)
                .then(|| {
                    chrono::DateTime::<chrono::Utc>::from_timestamp(1_796_000_000 - rng.random_range(0..60 * 86_400), 0)
                })
                .flatten();
            out.push(p);
        }
        for g in 0..self.groups {
            out.push(PrincipalData::new(group_id(g), PrincipalKind::Group, format!("Group {g}")));
        }
        out
    }

    pub fn resources(&self) -> Vec<ResourceData> {
        (0..self.groups)
            .map(|g| {
                let mut r = ResourceData::new(group_id(g), ResourceKind::Group, format!("Group {g}"));
                r.attributes = serde_json::json!({"security_enabled": true, "mail_enabled": g % 7 == 0});
                r
            })
            .collect()
    }

    pub fn entitlements(&self) -> Vec<ObservedEntitlement> {
        (0..self.groups)
            .flat_map(|g| {
                [EntitlementKey::Member, EntitlementKey::Owner].map(|key| ObservedEntitlement {
                    resource_kind: ResourceKind::Group,
                    resource_external_id: group_id(g),
                    display_name: key.default_display_name(),
                    key,
                    description: None,
                })
            })
            .collect()
    }

    /// Every grant as (group, principal, kind), group by group, in a fixed order.
    pub fn grants(&self) -> impl Iterator<Item = (usize, usize, GrantKind)> + '_ {
        let users = self.users;
        let per_group =
            self.sizes.iter().zip(&self.layout).enumerate().flat_map(move |(g, (size, (start, stride)))| {
                (0..*size)
                    .map(move |k| (g, (start + k * stride) % users, GrantKind::UserMember))
                    .chain(std::iter::once((g, (start + 1) % users, GrantKind::UserOwner)))
            });
        per_group.chain(self.nested.iter().map(|(child, parent)| (*parent, *child, GrantKind::GroupMember)))
    }

    pub fn grant(group: usize, principal: usize, kind: GrantKind) -> ObservedGrant {
        let (key, principal_external_id) = match kind {
            GrantKind::UserMember => (EntitlementKey::Member, user_id(principal)),
            GrantKind::UserOwner => (EntitlementKey::Owner, user_id(principal)),
            GrantKind::GroupMember => (EntitlementKey::Member, group_id(principal)),
        };
        ObservedGrant {
            resource_kind: ResourceKind::Group,
            resource_external_id: group_id(group),
            key,
            principal_external_id,
            scope: String::new(),
            external_ref: None,
            expires_at: None,
            end_known: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum GrantKind {
    UserMember,
    UserOwner,
    GroupMember,
}

pub fn user_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

pub fn group_id(i: usize) -> String {
    format!("00000000-0000-4000-9000-{i:012}")
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_exactly_the_grants_asked_for_without_duplicates() {
        let synth = Synth::new(500, 40, 5_000, 7).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut count = 0;
        for (g, p, kind) in synth.grants() {
            count += 1;
            assert!(seen.insert((g, p, format!("{kind:?}"))), "duplicate grant {g} {p} {kind:?}");
        }
        assert_eq!(count, 5_000);
        assert!(synth.sizes[0] > synth.sizes[39] * 5, "power-law sizes: {:?}", synth.sizes);
        assert!(Synth::new(10, 10, 5, 1).is_err());
    }
}
