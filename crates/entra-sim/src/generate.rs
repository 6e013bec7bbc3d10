//! A realistic tenant, deterministic from a seed.
//!
//! Shape: members and guests (some disabled, some soft-deleted), a manager tree, departments,
//! job titles and usage locations, sign-in activity with a share inactive for 90+ days;
//! security, Microsoft 365, mail-enabled security, distribution, dynamic and role-assignable
//! groups with power-law sizes (at 100k users the largest hold 50k+), nested groups including
//! one deliberate cycle, group owners; application service principals with app roles and
//! owners, managed identities and a few Microsoft first-party apps; app role assignments to
//! users, groups and service principals; built-in directory roles with active assignments and
//! PIM eligibilities.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::tenant::*;

/// How big a tenant to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantSpec {
    pub users: usize,
    pub groups: usize,
    /// Application service principals owned by the tenant (first-party apps and managed
    /// identities come on top).
    pub apps: usize,
    /// Average app role assignments per application.
    pub assignments_per_app: usize,
    pub seed: u64,
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec { users: 500, groups: 100, apps: 20, assignments_per_app: 50, seed: 1 }
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Donald",
    "Shafi",
    "Leslie",
    "Sophie",
    "Bjarne",
    "Anita",
    "Niklaus",
    "Adele",
    "Megan",
    "Nestor",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Backus",
    "Johnson",
    "Knuth",
    "Goldwasser",
    "Lamport",
    "Wilson",
    "Stroustrup",
    "Borg",
    "Wirth",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Finance",
    "Sales",
    "Marketing",
    "Legal",
    "Support",
    "Operations",
    "Human Resources",
    "IT",
    "Research",
];
const TITLES: &[&str] =
    &["Engineer", "Senior Engineer", "Analyst", "Manager", "Director", "Specialist", "Consultant", "Associate"];
const LOCATIONS: &[&str] = &["US", "GB", "DE", "FR", "NL", "IN", "JP", "BR", "CA", "AU"];
const OFFICES: &[&str] = &["Redmond", "London", "Berlin", "Paris", "Amsterdam", "Bangalore", "Tokyo", "Sao Paulo"];

/// Built-in directory roles (display name, template id): in Entra a built-in role's
/// definition id equals its template id.
pub const BUILT_IN_ROLES: &[(&str, &str)] = &[
    ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10"),
    ("Privileged Role Administrator", "e8611ab8-c189-46e8-94e1-60213ab1f814"),
    ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1"),
    ("Groups Administrator", "fdd7a751-b60b-444a-984c-02652fe8fa1c"),
    ("Application Administrator", "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"),
    ("Cloud Application Administrator", "158c047a-c907-4556-b7ef-446551a6b5f7"),
    ("Helpdesk Administrator", "729827e3-9c14-49f7-bb1b-9608f156bbb8"),
    ("Security Administrator", "194ae4cb-b126-40b2-bd5b-6091b380977d"),
    ("Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509"),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
    ("Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de"),
    ("SharePoint Administrator", "f28a1f50-f6e7-4571-818b-6a12f2af6b6c"),
    ("Authentication Administrator", "c4e39bd9-1100-46d3-8c65-fb160da0071f"),
    ("Billing Administrator", "b0f54661-2d74-4c50-afa3-1ec803f12efe"),
];

/// Microsoft first-party applications present in every tenant (display name, app id).
const FIRST_PARTY: &[(&str, &str)] = &[
    ("Microsoft Graph", GRAPH_APP_ID),
    ("Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000"),
    ("Office 365 SharePoint Online", "00000003-0000-0ff1-ce00-000000000000"),
    ("Microsoft Teams", "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe"),
    ("Azure Portal", "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"),
];

struct Gen {
    rng: SmallRng,
    epoch: DateTime<Utc>,
}

impl Gen {
    fn id(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid().to_string()
    }
    fn assignment_id(&mut self) -> String {
        assignment_id(&mut self.rng)
    }
    /// A unifiedRoleAssignment id: an opaque string such as `YUb1sHQt…-1`, not a GUID.
    fn role_assignment_id(&mut self) -> String {
        format!("{}-1", self.assignment_id())
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }
    fn days_ago(&mut self, max: i64) -> DateTime<Utc> {
        self.epoch
            - Duration::days(self.rng.random_range(0..max.max(1)))
            - Duration::seconds(self.rng.random_range(0..86_400))
    }
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
}

/// Generates a tenant. The same spec always gives the same tenant, ids included.
pub fn generate(spec: TenantSpec) -> Tenant {
    // A fixed "now" keeps generated timestamps reproducible.
    let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().unwrap_or_default();
    let mut g = Gen { rng: SmallRng::seed_from_u64(spec.seed), epoch };
    let tenant_id = g.id();
    let domain = format!("contoso{}.onmicrosoft.com", spec.seed);
    let mut tenant = Tenant {
        id: tenant_id.clone(),
        domain: domain.clone(),
        display_name: format!("Contoso {}", spec.seed),
        ..Default::default()
    };

    // Users, with a manager tree: everyone but the first reports to someone earlier.
    for i in 0..spec.users {
        let (first, last) = (g.pick(FIRST), g.pick(LAST));
        let guest = i > 0 && g.chance(0.05);
        let local = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase().replace('-', ""), i);
        let (upn, mail) = if guest {
            let external = format!("{local}@fabrikam.example");
            (format!("{local}_fabrikam.example#EXT#@{domain}"), Some(external))
        } else {
            let address = format!("{local}@{domain}");
            (address.clone(), g.chance(0.97).then_some(address))
        };
        let sign_in_activity = g.chance(0.8).then(|| {
            let last_sign_in = if g.chance(0.15) { g.days_ago(365) - Duration::days(90) } else { g.days_ago(30) };
            SignInActivity {
                last_sign_in,
                last_non_interactive_sign_in: last_sign_in + Duration::hours(2),
                last_successful_sign_in: last_sign_in,
            }
        });
        let user = User {
            id: g.id(),
            display_name: format!("{first} {last}"),
            given_name: Some(first.to_owned()),
            surname: Some(last.to_owned()),
            user_principal_name: upn,
            mail,
            // From the position, not the generator: seeded tenants stay as they were.
            business_phones: if guest { Vec::new() } else { vec![format!("+1 425 555 {:04}", i % 10_000)] },
            mobile_phone: (!guest && i % 3 == 0).then(|| format!("+1 206 555 {:04}", i % 10_000)),
            job_title: (!guest).then(|| g.pick(TITLES).to_owned()),
            department: (!guest).then(|| g.pick(DEPARTMENTS).to_owned()),
            office_location: (!guest).then(|| g.pick(OFFICES).to_owned()),
            usage_location: Some(g.pick(LOCATIONS).to_owned()),
            employee_id: (!guest).then(|| format!("E{:06}", i + 1)),
            account_enabled: !g.chance(0.04),
            user_type: if guest { "Guest" } else { "Member" }.to_owned(),
            created: g.days_ago(2_000),
            manager: None,
            sign_in_activity,
            sign_in_sessions_valid_from: None,
            password_changed: None,
            force_change_password_next_sign_in: false,
            deleted: (i > 0 && g.chance(0.01)).then(|| g.days_ago(20)),
            purged: false,
        };
        tenant.users.push(user);
    }
    for i in 1..tenant.users.len() {
        if tenant.users[i].user_type == "Member" {
            // Managers come from the first tenth, so the tree is a few levels deep.
            let manager = g.rng.random_range(0..i.min(spec.users / 10 + 1));
            tenant.users[i].manager = Some(tenant.users[manager].id.clone());
        }
    }
    let member_users: Vec<usize> = (0..tenant.users.len())
        .filter(|i| tenant.users[*i].user_type == "Member" && tenant.users[*i].deleted.is_none())
        .collect();

    // Service principals: tenant apps, managed identities, Microsoft first-party apps.
    for a in 0..spec.apps {
        let roles = (0..g.rng.random_range(1..=4))
            .map(|r| {
                let name = ["Reader", "Contributor", "Admin", "Approver"][r];
                AppRole {
                    id: g.id(),
                    display_name: name.to_owned(),
                    value: Some(name.to_lowercase()),
                    description: format!("{name} access"),
                    allowed_member_types: vec!["User".into()],
                }
            })
            .collect();
        let owner_count = g_range(&mut g, 0, 2);
        let owners =
            pick_users(&mut g, &member_users, owner_count).into_iter().map(|u| tenant.users[u].id.clone()).collect();
        tenant.service_principals.push(ServicePrincipal {
            id: g.id(),
            app_id: g.id(),
            display_name: format!("App {a:04}"),
            service_principal_type: "Application".into(),
            app_owner_organization_id: Some(tenant_id.clone()),
            account_enabled: !g.chance(0.03),
            app_role_assignment_required: g.chance(0.6),
            tags: vec!["WindowsAzureActiveDirectoryIntegratedApp".into()],
            app_roles: roles,
            owners,
            created: g.days_ago(1_500),
            deleted: None,
            purged: false,
        });
    }
    for m in 0..(spec.apps / 4 + 1) {
        tenant.service_principals.push(ServicePrincipal {
            id: g.id(),
            app_id: g.id(),
            display_name: format!("mi-workload-{m:03}"),
            service_principal_type: "ManagedIdentity".into(),
            app_owner_organization_id: None,
            account_enabled: true,
            app_role_assignment_required: false,
            tags: vec![],
            app_roles: vec![],
            owners: vec![],
            created: g.days_ago(700),
            deleted: None,
            purged: false,
        });
    }
    for (name, app_id) in FIRST_PARTY {
        tenant.service_principals.push(ServicePrincipal {
            id: g.id(),
            app_id: (*app_id).to_owned(),
            display_name: (*name).to_owned(),
            service_principal_type: "Application".into(),
            app_owner_organization_id: Some(MICROSOFT_SERVICES_TENANT.into()),
            account_enabled: true,
            app_role_assignment_required: false,
            tags: vec!["WindowsAzureActiveDirectoryIntegratedApp".into()],
            app_roles: vec![],
            owners: vec![],
            created: g.days_ago(3_000),
            deleted: None,
            purged: false,
        });
    }
    let managed_identities: Vec<usize> = (0..tenant.service_principals.len())
        .filter(|i| tenant.service_principals[*i].service_principal_type == "ManagedIdentity")
        .collect();

    // Groups with power-law sizes: group i holds about 0.6·users/(i+1)^0.9 members.
    let live_users: Vec<usize> = (0..tenant.users.len()).filter(|i| tenant.users[*i].deleted.is_none()).collect();
    for i in 0..spec.groups {
        let roll: f64 = g.rng.random();
        let (group_types, mail_enabled, security_enabled, assignable): (Vec<String>, bool, bool, Option<bool>) =
            match roll {
                r if r < 0.25 => (vec!["Unified".into()], true, false, None),
                r if r < 0.30 => (vec![], true, true, None),
                r if r < 0.35 => (vec![], true, false, None),
                r if r < 0.38 => (vec!["DynamicMembership".into()], false, true, None),
                r if r < 0.40 => (vec![], false, true, Some(true)),
                _ => (vec![], false, true, None),
            };
        let dynamic = group_types.iter().any(|t| t == "DynamicMembership");
        let nickname = format!("group{i:05}");
        let size = ((0.6 * live_users.len() as f64) / ((i + 1) as f64).powf(0.9)).round().max(1.0) as usize;
        let members = pick_users(&mut g, &live_users, size.min(live_users.len()))
            .into_iter()
            .map(|u| tenant.users[u].id.clone())
            .collect();
        let owner_count = if g.chance(0.05) { 0 } else { g_range(&mut g, 1, 3) };
        let owners =
            pick_users(&mut g, &member_users, owner_count).into_iter().map(|u| tenant.users[u].id.clone()).collect();
        let department = g.pick(DEPARTMENTS);
        tenant.groups.push(Group {
            id: g.id(),
            display_name: format!("{department} {}{i}", if group_types.is_empty() { "Team " } else { "" }),
            description: Some(format!("{department} group {i}")),
            group_types,
            mail_enabled,
            security_enabled,
            is_assignable_to_role: assignable,
            membership_rule: dynamic.then(|| format!("user.department -eq \"{department}\"")),
            on_premises_sync_enabled: (security_enabled && !mail_enabled && g.chance(0.1)).then_some(true),
            mail: mail_enabled.then(|| format!("{nickname}@{domain}")),
            mail_nickname: nickname,
            created: g.days_ago(1_800),
            members,
            owners,
            deleted: None,
            purged: false,
        });
    }
    // Managed identities in some security groups; nesting (2% of security groups contain
    // 1-3 later groups) and one deliberate cycle between the last two security groups.
    let security: Vec<usize> = (0..tenant.groups.len())
        .filter(|i| {
            tenant.groups[*i].security_enabled && !tenant.groups[*i].mail_enabled && !tenant.groups[*i].is_dynamic()
        })
        .collect();
    for (n, gi) in security.iter().enumerate() {
        if !managed_identities.is_empty() && g.chance(0.05) {
            let mi = managed_identities[g.rng.random_range(0..managed_identities.len())];
            let id = tenant.service_principals[mi].id.clone();
            tenant.groups[*gi].members.push(id);
        }
        if g.chance(0.02) {
            for _ in 0..g_range(&mut g, 1, 3) {
                if n + 1 < security.len() {
                    let child = security[g.rng.random_range(n + 1..security.len())];
                    let child_id = tenant.groups[child].id.clone();
                    if !tenant.groups[*gi].members.contains(&child_id) {
                        tenant.groups[*gi].members.push(child_id);
                    }
                }
            }
        }
    }
    if let [.., a, b] = security[..] {
        let (id_a, id_b) = (tenant.groups[a].id.clone(), tenant.groups[b].id.clone());
        for (into, member) in [(a, id_b), (b, id_a)] {
            if !tenant.groups[into].members.contains(&member) {
                tenant.groups[into].members.push(member);
            }
        }
    }

    // App role assignments: mostly users, some groups, a few managed identities.
    for a in 0..spec.apps {
        let count = g.rng.random_range(0..=spec.assignments_per_app * 2);
        let (resource_id, resource_name) =
            (tenant.service_principals[a].id.clone(), tenant.service_principals[a].display_name.clone());
        let mut roles: Vec<String> = tenant.service_principals[a].app_roles.iter().map(|r| r.id.clone()).collect();
        roles.push("00000000-0000-0000-0000-000000000000".into());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..count {
            let role = roles[g.rng.random_range(0..roles.len())].clone();
            let roll: f64 = g.rng.random();
            let (principal_id, principal_type, name) = if roll < 0.85 || security.is_empty() {
                let u = &tenant.users[live_users[g.rng.random_range(0..live_users.len())]];
                (u.id.clone(), "User", u.display_name.clone())
            } else if roll < 0.95 || managed_identities.is_empty() {
                let grp = &tenant.groups[security[g.rng.random_range(0..security.len())]];
                (grp.id.clone(), "Group", grp.display_name.clone())
            } else {
                let sp =
                    &tenant.service_principals[managed_identities[g.rng.random_range(0..managed_identities.len())]];
                (sp.id.clone(), "ServicePrincipal", sp.display_name.clone())
            };
            // Graph refuses a second identical assignment; so does the generator.
            if !seen.insert((principal_id.clone(), role.clone())) {
                continue;
            }
            let assignment_id = g.assignment_id();
            let created = g.days_ago(900);
            tenant.app_role_assignments.push(AppRoleAssignment {
                id: assignment_id,
                app_role_id: role,
                principal_id,
                principal_type: principal_type.to_owned(),
                principal_display_name: name,
                resource_id: resource_id.clone(),
                resource_display_name: resource_name.clone(),
                created,
            });
        }
    }

    // Directory roles: active assignments to a few users (and one role-assignable group), PIM
    // eligibilities, some time-bound.
    let assignable_group =
        tenant.groups.iter().find(|grp| grp.is_assignable_to_role == Some(true)).map(|grp| grp.id.clone());
    for (r, (name, template)) in BUILT_IN_ROLES.iter().enumerate() {
        tenant.role_definitions.push(RoleDefinition {
            id: (*template).to_owned(),
            display_name: (*name).to_owned(),
            description: format!("Can manage all aspects of {name}."),
            is_built_in: true,
            template_id: (*template).to_owned(),
        });
        let active = if r == 0 { g_range(&mut g, 2, 4) } else { g_range(&mut g, 0, 6) };
        let eligible = g_range(&mut g, 0, 5);
        for u in pick_users(&mut g, &member_users, active.min(member_users.len())) {
            tenant.role_assignments.push(RoleAssignment {
                id: g.role_assignment_id(),
                role_definition_id: (*template).to_owned(),
                principal_id: tenant.users[u].id.clone(),
                directory_scope_id: "/".into(),
                end: None,
            });
        }
        if r == 3
            && let Some(group) = &assignable_group
        {
            tenant.role_assignments.push(RoleAssignment {
                id: g.role_assignment_id(),
                role_definition_id: (*template).to_owned(),
                principal_id: group.clone(),
                directory_scope_id: "/".into(),
                end: None,
            });
        }
        for u in pick_users(&mut g, &member_users, eligible.min(member_users.len())) {
            let start = g.days_ago(200);
            // Schedules that already ended are gone from Graph, so ends lie after the epoch.
            let end = g.chance(0.6).then(|| g.epoch + Duration::days(g.rng.random_range(30..365)));
            tenant.role_eligibilities.push(RoleEligibility {
                id: g.id(),
                role_definition_id: (*template).to_owned(),
                principal_id: tenant.users[u].id.clone(),
                directory_scope_id: "/".into(),
                start,
                end,
            });
        }
    }

    // Application roles assigned to groups that contain nested groups (and a managed identity),
    // so Entra's rule is always exercised: such a role reaches the group's direct user members
    // only, never the nested groups' members or a service principal. Last, so it leaves every
    // other seeded choice as it was.
    if spec.apps > 0 {
        let group_ids: std::collections::HashSet<&str> = tenant.groups.iter().map(|grp| grp.id.as_str()).collect();
        let parents: Vec<usize> = security
            .iter()
            .copied()
            .filter(|gi| tenant.groups[*gi].members.iter().any(|m| group_ids.contains(m.as_str())))
            .take(3 + spec.apps / 50)
            .collect();
        if let (Some(first), Some(mi)) = (parents.first(), managed_identities.first()) {
            let id = tenant.service_principals[*mi].id.clone();
            if !tenant.groups[*first].members.contains(&id) {
                tenant.groups[*first].members.push(id);
            }
        }
        for (k, gi) in parents.iter().enumerate() {
            let app = tenant.service_principals[k % spec.apps].clone();
            let role = app.app_roles.first().map_or(DEFAULT_ACCESS_ROLE.to_owned(), |r| r.id.clone());
            let (group_id, group_name) = (tenant.groups[*gi].id.clone(), tenant.groups[*gi].display_name.clone());
            if tenant.app_role_assignments.iter().any(|a| a.principal_id == group_id && a.resource_id == app.id) {
                continue;
            }
            let assignment = AppRoleAssignment {
                id: g.assignment_id(),
                app_role_id: role,
                principal_id: group_id,
                principal_type: "Group".to_owned(),
                principal_display_name: group_name,
                resource_id: app.id.clone(),
                resource_display_name: app.display_name.clone(),
                created: g.days_ago(900),
            };
            tenant.app_role_assignments.push(assignment);
        }
    }
    tenant.reindex();
    tenant
}

/// Entra's "default access" app role id (an assignment without a role).
const DEFAULT_ACCESS_ROLE: &str = "00000000-0000-0000-0000-000000000000";

/// An appRoleAssignment id: base64url, not a GUID (approleassignment.md).
pub(crate) fn assignment_id(rng: &mut impl Rng) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rng.random::<[u8; 32]>())
}

fn g_range(g: &mut Gen, low: usize, high: usize) -> usize {
    g.rng.random_range(low..=high)
}

/// `count` distinct entries of `from` (indices into the users vector), spread with a random
/// start and a stride coprime with the pool size so large groups cost no rejection sampling.
fn pick_users(g: &mut Gen, from: &[usize], count: usize) -> Vec<usize> {
    let n = from.len();
    if n == 0 || count == 0 {
        return Vec::new();
    }
    let start = g.rng.random_range(0..n);
    let stride = loop {
        let candidate = g.rng.random_range(1..n.max(2));
        if gcd(candidate, n) == 1 {
            break candidate;
        }
    };
    (0..count.min(n)).map(|k| from[(start + k * stride) % n]).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
