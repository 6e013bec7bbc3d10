//! A campaign's definition: the TOML file `attest campaign create --file` reads, the same
//! fields the API takes. Unknown keys are refused by name (serde's `deny_unknown_fields`), and
//! [`CampaignDefinition::check`] says what is wrong with values serde cannot judge alone.

use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::macros::string_enum;
use crate::{EntitlementKey, PrincipalKind, ResourceKind};

/// What a campaign reviews, who reviews, when, and how it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignDefinition {
    pub name: String,
    /// Shown to reviewers (on their pages and in the mail).
    #[serde(default)]
    pub description: String,
    /// Campaign owners (emails or user principal names): they follow progress, remind and close.
    #[serde(default)]
    pub owners: Vec<String>,
    pub scope: Scope,
    /// Who reviews in the first stage (the only one, unless `settings.stages` says more).
    pub reviewers: Reviewers,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub settings: Settings,
    /// Stages 2 and 3, in order (one each when `settings.stages` is 2 or 3): who reviews what
    /// the stage before let through, and for how long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later_stages: Vec<LaterStage>,
}

/// A stage after the first: its reviewers (as `[reviewers]` names them) and its length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaterStage {
    pub mode: ReviewerMode,
    #[serde(default)]
    pub named: Vec<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
    /// `14d`, `2w`, `36h`; none: `schedule.duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The connector's name.
    pub connector: String,
    #[serde(default = "all_resource_kinds")]
    pub resource_kinds: Vec<ResourceKind>,
    /// Object ids or exact display names; empty: every resource of those kinds.
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default = "all_entitlement_kinds")]
    pub entitlements: Vec<EntitlementKind>,
    #[serde(default)]
    pub principals: PrincipalScope,
    /// With `principals = "inactive"`: no sign-in for this many days.
    #[serde(default)]
    pub inactive_days: Option<u32>,
    /// Review access held through nested groups as well as direct grants.
    #[serde(default)]
    pub include_inherited: bool,
}

fn all_resource_kinds() -> Vec<ResourceKind> {
    ResourceKind::ALL.to_vec()
}

fn all_entitlement_kinds() -> Vec<EntitlementKind> {
    EntitlementKind::ALL.to_vec()
}

string_enum! {
    /// A kind of entitlement, as a scope names it.
    pub enum EntitlementKind as "entitlement kind" {
        Member => "member",
        Owner => "owner",
        AppRole => "app_role",
        RoleActive => "role_active",
        RoleEligible => "role_eligible",
    }
}

impl EntitlementKind {
    pub fn of(key: &EntitlementKey) -> EntitlementKind {
        match key {
            EntitlementKey::Member => EntitlementKind::Member,
            EntitlementKey::Owner => EntitlementKind::Owner,
            EntitlementKey::AppRole(_) => EntitlementKind::AppRole,
            EntitlementKey::Active => EntitlementKind::RoleActive,
            EntitlementKey::Eligible => EntitlementKind::RoleEligible,
        }
    }
}

string_enum! {
    /// Whose access a campaign reviews.
    #[derive(Default)]
    pub enum PrincipalScope as "principals" {
        #[default]
        All => "all",
        /// Members and guests.
        Users => "users",
        Guests => "guests",
        /// Service principals and managed identities.
        ServicePrincipals => "service_principals",
        /// Users whose sign-in is blocked.
        Disabled => "disabled",
        /// Users with no sign-in for `inactive_days` (needs sign-in activity).
        Inactive => "inactive",
    }
}

impl PrincipalScope {
    /// Whether a principal of this kind can be in scope at all (the rest is asked of the data).
    pub fn admits_kind(self, kind: PrincipalKind) -> bool {
        match self {
            PrincipalScope::All => kind != PrincipalKind::Group,
            PrincipalScope::ServicePrincipals => {
                matches!(kind, PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity)
            }
            _ => kind == PrincipalKind::User,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewers {
    pub mode: ReviewerMode,
    /// `named` mode: emails or user principal names, or group object ids whose members review.
    #[serde(default)]
    pub named: Vec<String>,
    /// Who reviews when the manager or owner is missing (or is the person reviewed).
    #[serde(default)]
    pub fallback: Vec<String>,
}

string_enum! {
    /// Who reviews an item.
    pub enum ReviewerMode as "reviewer mode" {
        /// The principal's manager.
        Manager => "manager",
        /// The resource's owners.
        ResourceOwner => "resource_owner",
        /// The people named (or the members of the groups named).
        Named => "named",
        /// The principal, about their own access.
        SelfReview => "self",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// How long an instance runs: `14d`, `2w`, `36h`.
    #[serde(default = "two_weeks")]
    pub duration: String,
    #[serde(default)]
    pub recurrence: Recurrence,
    /// How many instances in all (with a recurrence); none: until stopped.
    #[serde(default)]
    pub ends_after: Option<u32>,
}

fn two_weeks() -> String {
    "14d".into()
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { duration: two_weeks(), recurrence: Recurrence::None, ends_after: None }
    }
}

string_enum! {
    #[derive(Default)]
    pub enum Recurrence as "recurrence" {
        #[default]
        None => "none",
        Weekly => "weekly",
        Monthly => "monthly",
        Quarterly => "quarterly",
        Semiannual => "semiannual",
        Annual => "annual",
    }
}

impl Recurrence {
    /// When the instance after one started at `started` starts; `None` without a recurrence.
    pub fn next_start(self, started: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let months = match self {
            Recurrence::None => return None,
            Recurrence::Weekly => return Some(started + Duration::weeks(1)),
            Recurrence::Monthly => 1,
            Recurrence::Quarterly => 3,
            Recurrence::Semiannual => 6,
            Recurrence::Annual => 12,
        };
        // The same day of a later month, or that month's last day (31 January → 28 February).
        started.checked_add_months(Months::new(months))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub justification_required: JustificationRequired,
    #[serde(default)]
    pub default_decision: DefaultDecision,
    /// Revocations become changes when the campaign closes.
    #[serde(default)]
    pub auto_apply: bool,
    /// Up to 3; later stages see earlier decisions.
    #[serde(default = "one")]
    pub stages: u8,
    /// How stages combine (see [`StageRule`]).
    #[serde(default)]
    pub stage_rule: StageRule,
    #[serde(default = "thirty")]
    pub recommendation_lookback_days: u32,
    /// Needed with `auto_apply` and a default decision that can revoke what nobody looked at.
    #[serde(default)]
    pub confirm_mass_revoke: bool,
}

fn one() -> u8 {
    1
}

fn thirty() -> u32 {
    30
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            justification_required: JustificationRequired::default(),
            default_decision: DefaultDecision::default(),
            auto_apply: false,
            stages: 1,
            stage_rule: StageRule::default(),
            recommendation_lookback_days: 30,
            confirm_mass_revoke: false,
        }
    }
}

string_enum! {
    /// Which decisions need a justification.
    #[derive(Default)]
    pub enum JustificationRequired as "justification_required" {
        None => "none",
        #[default]
        Revoke => "revoke",
        Both => "both",
    }
}

string_enum! {
    /// What an undecided item becomes at the deadline.
    #[derive(Default)]
    pub enum DefaultDecision as "default_decision" {
        /// Left undecided: nothing changes.
        #[default]
        None => "none",
        Approve => "approve",
        Revoke => "revoke",
        /// What Attest recommended (approve or revoke; left undecided otherwise).
        Recommendation => "recommendation",
    }
}

string_enum! {
    /// How the stages of a multi-stage review combine. Either way a revoke is final (the
    /// item goes no further) and later stages see what earlier ones decided.
    #[derive(Default)]
    pub enum StageRule as "stage_rule" {
        /// Approved and undecided items go on to the next stage; an item nobody revoked keeps
        /// the last approval it got, and only what no stage decided takes the default decision.
        #[default]
        OneRevokeRevokes => "one_revoke_revokes",
        /// Only approved items go on: access is approved only when every stage approves it.
        /// An item a stage leaves undecided stops there and takes the default decision at close.
        AllMustApprove => "all_must_approve",
    }
}

/// What is wrong with a definition's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    /// The key, as written in the file (`schedule.duration`).
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> DefinitionError {
    DefinitionError { field, message: message.into() }
}

/// Longest description, in characters (Entra's is 256 in mail; the page shows more).
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

impl CampaignDefinition {
    /// Every value serde cannot judge alone, checked; the first problem found.
    pub fn check(&self) -> Result<(), DefinitionError> {
        if self.name.trim().is_empty() {
            return Err(bad("name", "give the campaign a name"));
        }
        if self.name.chars().count() > 200 {
            return Err(bad("name", "at most 200 characters"));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(bad("description", format!("at most {MAX_DESCRIPTION_CHARS} characters")));
        }
        if self.scope.connector.trim().is_empty() {
            return Err(bad("scope.connector", "name the connector whose access is reviewed"));
        }
        if self.scope.resource_kinds.is_empty() {
            return Err(bad("scope.resource_kinds", "name at least one of group, application, directory_role"));
        }
        if self.scope.entitlements.is_empty() {
            return Err(bad(
                "scope.entitlements",
                "name at least one of member, owner, app_role, role_active, role_eligible",
            ));
        }
        let reachable = self.scope.entitlements.iter().any(|e| {
            self.scope.resource_kinds.iter().any(|k| match e {
                EntitlementKind::Member => *k == ResourceKind::Group,
                EntitlementKind::Owner => matches!(k, ResourceKind::Group | ResourceKind::Application),
                EntitlementKind::AppRole => *k == ResourceKind::Application,
                EntitlementKind::RoleActive | EntitlementKind::RoleEligible => *k == ResourceKind::DirectoryRole,
            })
        });
        if !reachable {
            return Err(bad("scope.entitlements", "none of these entitlements exists on the resource kinds in scope"));
        }
        match (self.scope.principals, self.scope.inactive_days) {
            (PrincipalScope::Inactive, None) => {
                return Err(bad("scope.inactive_days", "say how many days without a sign-in make someone inactive"));
            }
            (PrincipalScope::Inactive, Some(days)) if !(1..=730).contains(&days) => {
                return Err(bad("scope.inactive_days", "between 1 and 730 days"));
            }
            (PrincipalScope::Inactive, _) => {}
            (_, Some(_)) => return Err(bad("scope.inactive_days", "only with principals = \"inactive\"")),
            _ => {}
        }
        check_reviewers(&self.reviewers, "reviewers.named", "reviewers.fallback", "")?;
        if !(1..=3).contains(&self.settings.stages) {
            return Err(bad("settings.stages", "1, 2 or 3"));
        }
        let later = usize::from(self.settings.stages) - 1;
        if self.later_stages.len() != later {
            return Err(bad(
                "later_stages",
                format!(
                    "settings.stages = {} needs {later} [[later_stages]] table(s), one per stage after the first, \
                     each naming its reviewers; found {}",
                    self.settings.stages,
                    self.later_stages.len()
                ),
            ));
        }
        for (i, stage) in self.later_stages.iter().enumerate() {
            let which = format!(" (stage {})", i + 2);
            check_reviewers(&stage.reviewers(), "later_stages.named", "later_stages.fallback", &which)?;
        }
        self.stage_durations()?;
        if self.schedule.ends_after == Some(0) {
            return Err(bad("schedule.ends_after", "at least 1 instance"));
        }
        if self.schedule.ends_after.is_some() && self.schedule.recurrence == Recurrence::None {
            return Err(bad("schedule.ends_after", "only with a recurrence"));
        }
        if !(1..=180).contains(&self.settings.recommendation_lookback_days) {
            return Err(bad("settings.recommendation_lookback_days", "between 1 and 180 days"));
        }
        if self.could_mass_revoke() && !self.settings.confirm_mass_revoke {
            return Err(bad(
                "settings.confirm_mass_revoke",
                "auto_apply with default_decision = \"revoke\" or \"recommendation\" removes access nobody looked at \
                 when reviewers stay silent; set confirm_mass_revoke = true if that is meant",
            ));
        }
        Ok(())
    }

    /// Auto-applied default decisions can revoke what no reviewer looked at.
    pub fn could_mass_revoke(&self) -> bool {
        self.settings.auto_apply
            && matches!(self.settings.default_decision, DefaultDecision::Revoke | DefaultDecision::Recommendation)
    }

    /// How long the first stage runs (the whole instance, with one stage).
    pub fn duration(&self) -> Result<Duration, DefinitionError> {
        parse_duration(&self.schedule.duration, "schedule.duration")
    }

    /// How long each stage runs, first to last.
    pub fn stage_durations(&self) -> Result<Vec<Duration>, DefinitionError> {
        let mut durations = vec![self.duration()?];
        for stage in &self.later_stages {
            durations.push(match &stage.duration {
                Some(text) => parse_duration(text, "later_stages.duration")?,
                None => self.duration()?,
            });
        }
        Ok(durations)
    }

    /// How long an instance runs: its stages one after the other.
    pub fn total_duration(&self) -> Result<Duration, DefinitionError> {
        Ok(self.stage_durations()?.into_iter().fold(Duration::zero(), |sum, d| sum + d))
    }

    /// Who reviews in `stage` (1-based); the first stage's for a stage the definition lacks.
    pub fn stage_reviewers(&self, stage: u8) -> Reviewers {
        match usize::from(stage).checked_sub(2).and_then(|i| self.later_stages.get(i)) {
            Some(later) => later.reviewers(),
            None => self.reviewers.clone(),
        }
    }
}

impl LaterStage {
    pub fn reviewers(&self) -> Reviewers {
        Reviewers { mode: self.mode, named: self.named.clone(), fallback: self.fallback.clone() }
    }
}

/// A stage's reviewers need names in `named` mode and a fallback where the manager or owner
/// may be missing.
fn check_reviewers(
    reviewers: &Reviewers,
    named: &'static str,
    fallback: &'static str,
    which: &str,
) -> Result<(), DefinitionError> {
    match reviewers.mode {
        ReviewerMode::Named if reviewers.named.is_empty() => {
            Err(bad(named, format!("name the reviewers (emails, or group object ids) for mode = \"named\"{which}")))
        }
        ReviewerMode::Manager | ReviewerMode::ResourceOwner if reviewers.fallback.is_empty() => Err(bad(
            fallback,
            format!(
                "required with mode = \"manager\" or \"resource_owner\"{which}: someone reviews when the manager or owner is missing"
            ),
        )),
        _ => Ok(()),
    }
}

/// `14d`, `2w`, `36h`: from an hour to 180 days.
fn parse_duration(text: &str, field: &'static str) -> Result<Duration, DefinitionError> {
    let text = text.trim();
    let expected = "a duration such as 14d, 2w or 36h, from 1 hour to 180 days";
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| bad(field, expected))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad(field, expected))?;
    let hours = match unit {
        "h" => number,
        "d" => number.saturating_mul(24),
        "w" => number.saturating_mul(24 * 7),
        _ => return Err(bad(field, expected)),
    };
    if !(1..=180 * 24).contains(&hours) {
        return Err(bad(field, expected));
    }
    Ok(Duration::hours(hours))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn definition() -> CampaignDefinition {
        CampaignDefinition {
            name: "Q1".into(),
            description: String::new(),
            owners: vec!["ciso@contoso.com".into()],
            scope: Scope {
                connector: "contoso".into(),
                resource_kinds: all_resource_kinds(),
                resources: vec![],
                entitlements: all_entitlement_kinds(),
                principals: PrincipalScope::All,
                inactive_days: None,
                include_inherited: false,
            },
            reviewers: Reviewers {
                mode: ReviewerMode::Manager,
                named: vec![],
                fallback: vec!["iam@contoso.com".into()],
            },
            schedule: Schedule::default(),
            settings: Settings::default(),
            later_stages: vec![],
        }
    }

    #[test]
    fn a_sound_definition_passes_and_each_bad_value_names_its_key() {
        assert_eq!(definition().check(), Ok(()));
        assert_eq!(definition().duration().unwrap(), Duration::days(14));
        let mut d = definition();
        d.reviewers.fallback.clear();
        assert_eq!(d.check().unwrap_err().field, "reviewers.fallback");
        let mut d = definition();
        d.schedule.duration = "fortnight".into();
        assert!(d.check().unwrap_err().to_string().starts_with("schedule.duration: a duration such as 14d"));
        let mut d = definition();
        d.scope.principals = PrincipalScope::Inactive;
        assert_eq!(d.check().unwrap_err().field, "scope.inactive_days");
        d.scope.inactive_days = Some(90);
        assert_eq!(d.check(), Ok(()));
        let mut d = definition();
        d.scope.resource_kinds = vec![ResourceKind::DirectoryRole];
        d.scope.entitlements = vec![EntitlementKind::Member];
        assert_eq!(d.check().unwrap_err().field, "scope.entitlements");
        let mut d = definition();
        d.settings.auto_apply = true;
        d.settings.default_decision = DefaultDecision::Recommendation;
        assert_eq!(d.check().unwrap_err().field, "settings.confirm_mass_revoke");
        d.settings.confirm_mass_revoke = true;
        assert_eq!(d.check(), Ok(()));
        let mut d = definition();
        d.schedule.ends_after = Some(4);
        assert_eq!(d.check().unwrap_err().field, "schedule.ends_after");
        d.schedule.recurrence = Recurrence::Quarterly;
        assert_eq!(d.check(), Ok(()));
    }

    #[test]
    fn later_stages_each_name_their_reviewers_and_add_their_length() {
        let mut d = definition();
        d.settings.stages = 2;
        assert_eq!(d.check().unwrap_err().field, "later_stages");
        d.later_stages.push(LaterStage { mode: ReviewerMode::Named, named: vec![], fallback: vec![], duration: None });
        let refused = d.check().unwrap_err();
        assert_eq!(refused.field, "later_stages.named");
        assert!(refused.message.contains("(stage 2)"), "{refused}");
        d.later_stages[0].named.push("ciso@contoso.com".into());
        d.later_stages[0].duration = Some("3d".into());
        assert_eq!(d.check(), Ok(()));
        assert_eq!(d.stage_durations().unwrap(), vec![Duration::days(14), Duration::days(3)]);
        assert_eq!(d.total_duration().unwrap(), Duration::days(17));
        assert_eq!(d.stage_reviewers(2).mode, ReviewerMode::Named);
        assert_eq!(d.stage_reviewers(1).mode, ReviewerMode::Manager);
        d.later_stages[0].duration = Some("a while".into());
        assert_eq!(d.check().unwrap_err().field, "later_stages.duration");
        d.settings.stages = 4;
        assert_eq!(d.check().unwrap_err().field, "settings.stages");
        let mut d = definition();
        d.later_stages.push(LaterStage {
            mode: ReviewerMode::SelfReview,
            named: vec![],
            fallback: vec![],
            duration: None,
        });
        assert_eq!(d.check().unwrap_err().field, "later_stages");
    }

    #[test]
    fn recurrences_keep_the_day_or_take_the_months_last() {
        let jan31 = Utc.with_ymd_and_hms(2027, 1, 31, 9, 0, 0).unwrap();
        assert_eq!(Recurrence::Monthly.next_start(jan31), Some(Utc.with_ymd_and_hms(2027, 2, 28, 9, 0, 0).unwrap()));
        assert_eq!(Recurrence::Quarterly.next_start(jan31), Some(Utc.with_ymd_and_hms(2027, 4, 30, 9, 0, 0).unwrap()));
        assert_eq!(Recurrence::Weekly.next_start(jan31), Some(Utc.with_ymd_and_hms(2027, 2, 7, 9, 0, 0).unwrap()));
        assert_eq!(Recurrence::Annual.next_start(jan31), Some(Utc.with_ymd_and_hms(2028, 1, 31, 9, 0, 0).unwrap()));
        assert_eq!(Recurrence::None.next_start(jan31), None);
    }
}
