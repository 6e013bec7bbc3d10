//! A request policy: who may ask for an entitlement, for how long, with what, and who approves.
//!
//! A policy is set on an entitlement, or as the default for a kind of resource in a connector;
//! an entitlement without its own policy follows its kind's default, and is requestable only
//! if one of them says so. When both set a maximum duration the shorter wins, so a default cap
//! cannot be escaped by writing a policy for one entitlement.

use serde::{Deserialize, Serialize};

use super::span::Span;

/// The presets offered when a policy names none: shortcuts, filtered to the cap.
pub const DEFAULT_PRESETS: [Span; 6] =
    [Span::hours(1), Span::hours(8), Span::days(1), Span::days(7), Span::days(30), Span::days(90)];

/// The cap when no policy sets one.
pub const DEFAULT_MAX: Span = Span::days(90);

/// How long approvers have before a request is denied for want of an answer.
pub const DEFAULT_APPROVAL_TIMEOUT: Span = Span::days(7);

/// Who approves, in a policy's words.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "who", rename_all = "snake_case")]
pub enum Approver {
    /// The requester's manager.
    Manager,
    /// The resource's owners (people).
    Owners,
    /// A person, by email, user principal name or object id.
    Person(String),
    /// The members of a group, by its object id or display name.
    GroupMembers(String),
}

impl Approver {
    /// As the CLI writes it: `manager`, `owners`, an address, `group:NAME`.
    pub fn parse(text: &str) -> Option<Approver> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "" => None,
            "manager" => Some(Approver::Manager),
            "owners" | "owner" => Some(Approver::Owners),
            _ => match text.split_once(':') {
                Some((prefix, group)) if prefix.eq_ignore_ascii_case("group") && !group.trim().is_empty() => {
                    Some(Approver::GroupMembers(group.trim().to_owned()))
                }
                _ => Some(Approver::Person(text.to_owned())),
            },
        }
    }

    /// Said for people.
    pub fn describe(&self) -> String {
        match self {
            Approver::Manager => "the requester's manager".into(),
            Approver::Owners => "the resource's owners".into(),
            Approver::Person(who) => who.clone(),
            Approver::GroupMembers(group) => format!("members of {group}"),
        }
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approver::Manager => f.write_str("manager"),
            Approver::Owners => f.write_str("owners"),
            Approver::Person(who) => f.write_str(who),
            Approver::GroupMembers(group) => write!(f, "group:{group}"),
        }
    }
}

/// Who may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", content = "group", rename_all = "snake_case")]
pub enum Requesters {
    #[default]
    Everyone,
    /// Direct members of a group (object id or display name).
    GroupMembers(String),
}

/// A policy as set. Every field has a default, so a stored policy written before a field
/// existed still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessPolicy {
    /// Whether it appears in the catalog and can be asked for.
    pub requestable: bool,
    /// The longest a request may ask for (`None`: the default cap).
    pub max_duration: Option<Span>,
    /// Whether "no end" may be asked for.
    pub permanent_allowed: bool,
    /// Shortcuts in the request form (empty: the standard ones up to the cap).
    pub presets: Vec<Span>,
    pub justification_required: bool,
    pub ticket_required: bool,
    /// The first stage's approvers.
    pub approvers: Vec<Approver>,
    /// A second stage's approvers (empty: one stage).
    pub second_stage: Vec<Approver>,
    /// Approvals each stage needs.
    pub quorum: u32,
    /// Granted without approval (low-risk access); still audited.
    pub auto_approve: bool,
    /// Denied when approvers have not answered within this.
    pub approval_timeout: Span,
    pub requesters: Requesters,
    /// Guests may ask (off by default: guests are the first thing auditors ask about).
    pub guests_allowed: bool,
    /// Removed again through the queue when found put back, or made permanent, in Entra.
    pub authoritative: bool,
    /// Directory roles' active assignment only: a requester who is eligible for the role
    /// activates it themselves in Entra once approved (PIM's `selfActivate`, with their own
    /// sign-in and MFA, so Entra records them as the one who activated it and ends it), instead
    /// of Attest assigning it. Someone not eligible is assigned it by Attest as usual.
    pub self_activate: bool,
}

impl Default for AccessPolicy {
    fn default() -> AccessPolicy {
        AccessPolicy {
            requestable: false,
            max_duration: None,
            permanent_allowed: false,
            presets: Vec::new(),
            justification_required: true,
            ticket_required: false,
            approvers: vec![Approver::Owners],
            second_stage: Vec::new(),
            quorum: 1,
            auto_approve: false,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            requesters: Requesters::Everyone,
            guests_allowed: false,
            authoritative: false,
            self_activate: false,
        }
    }
}

/// A policy that cannot be set, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

impl AccessPolicy {
    /// The cap this policy sets (its own or the default).
    pub fn cap(&self) -> Span {
        self.max_duration.unwrap_or(DEFAULT_MAX)
    }

    /// The number of approval stages (none when auto-approved).
    pub fn stages(&self) -> u32 {
        if self.auto_approve {
            0
        } else if self.second_stage.is_empty() {
            1
        } else {
            2
        }
    }

    /// The approvers of stage `n` (1 or 2).
    pub fn stage_approvers(&self, n: u32) -> &[Approver] {
        match n {
            1 => &self.approvers,
            2 => &self.second_stage,
            _ => &[],
        }
    }

    /// The presets the form offers: the policy's, or the standard ones, never above the cap.
    pub fn offered_presets(&self) -> Vec<Span> {
        let cap = self.cap();
        let presets = if self.presets.is_empty() { DEFAULT_PRESETS.to_vec() } else { self.presets.clone() };
        let mut offered: Vec<Span> = presets.into_iter().filter(|p| *p <= cap).collect();
        offered.sort();
        offered.dedup();
        if offered.is_empty() {
            offered.push(cap);
        }
        offered
    }

    /// Checks a policy before it is stored.
    pub fn check(&self) -> Result<(), PolicyError> {
        let bad = |field, message: &str| Err(PolicyError { field, message: message.to_owned() });
        if !self.auto_approve && self.approvers.is_empty() {
            return bad("approvers", "name who approves (manager, owners, people or group:NAME), or auto-approve");
        }
        if !(1..=5).contains(&self.quorum) {
            return bad("quorum", "from 1 to 5 approvals per stage");
        }
        if let Some(p) = self.presets.iter().find(|p| **p > self.cap()) {
            return Err(PolicyError {
                field: "presets",
                message: format!("{p} is longer than the maximum duration {}", self.cap()),
            });
        }
        if self.approval_timeout < Span::hours(1) {
            return bad("approval_timeout", "at least 1 hour");
        }
        Ok(())
    }

    /// The policy that applies to an entitlement: its own if set, else its kind's default,
    /// else the built-in default (not requestable). With both, the shorter cap wins.
    pub fn effective(own: Option<&AccessPolicy>, default: Option<&AccessPolicy>) -> AccessPolicy {
        match (own, default) {
            (Some(own), Some(default)) => {
                let mut policy = own.clone();
                policy.max_duration = match (own.max_duration, default.max_duration) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                policy.permanent_allowed = own.permanent_allowed && default.permanent_allowed;
                policy
            }
            (Some(policy), None) | (None, Some(policy)) => policy.clone(),
            (None, None) => AccessPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_are_written_as_the_cli_writes_them() {
        assert_eq!(Approver::parse("manager"), Some(Approver::Manager));
        assert_eq!(Approver::parse("Owners"), Some(Approver::Owners));
        assert_eq!(Approver::parse("ada@contoso.com"), Some(Approver::Person("ada@contoso.com".into())));
        assert_eq!(Approver::parse("group:Security Team"), Some(Approver::GroupMembers("Security Team".into())));
        assert_eq!(Approver::parse("  "), None);
        for a in [Approver::Manager, Approver::Owners, Approver::GroupMembers("x".into())] {
            assert_eq!(Approver::parse(&a.to_string()), Some(a));
        }
    }

    #[test]
    fn the_shorter_cap_wins_and_permanent_needs_both() {
        let own = AccessPolicy { max_duration: Some(Span::days(30)), permanent_allowed: true, ..Default::default() };
        let default = AccessPolicy { max_duration: Some(Span::days(7)), ..Default::default() };
        let merged = AccessPolicy::effective(Some(&own), Some(&default));
        assert_eq!(merged.cap(), Span::days(7));
        assert!(!merged.permanent_allowed);
        let looser_default = AccessPolicy { max_duration: Some(Span::days(90)), ..Default::default() };
        assert_eq!(AccessPolicy::effective(Some(&own), Some(&looser_default)).cap(), Span::days(30));
        assert!(!AccessPolicy::effective(None, None).requestable);
    }

    #[test]
    fn presets_never_exceed_the_cap() {
        let policy = AccessPolicy { max_duration: Some(Span::days(1)), ..Default::default() };
        assert_eq!(policy.offered_presets(), vec![Span::hours(1), Span::hours(8), Span::days(1)]);
        let odd = AccessPolicy { max_duration: Some(Span::minutes(30)), ..Default::default() };
        assert_eq!(odd.offered_presets(), vec![Span::minutes(30)]);
    }

    #[test]
    fn a_policy_is_checked_before_it_is_kept() {
        assert!(AccessPolicy::default().check().is_ok());
        let nobody = AccessPolicy { approvers: vec![], ..Default::default() };
        assert_eq!(nobody.check().unwrap_err().field, "approvers");
        assert!(AccessPolicy { approvers: vec![], auto_approve: true, ..Default::default() }.check().is_ok());
        assert_eq!(AccessPolicy { quorum: 0, ..Default::default() }.check().unwrap_err().field, "quorum");
        let long_preset =
            AccessPolicy { max_duration: Some(Span::hours(8)), presets: vec![Span::days(1)], ..Default::default() };
        assert_eq!(long_preset.check().unwrap_err().field, "presets");
    }

    #[test]
    fn a_policy_stored_before_a_field_existed_still_reads() {
        let policy: AccessPolicy = serde_json::from_str(r#"{"requestable": true, "max_duration": "8h"}"#).unwrap();
        assert!(policy.requestable);
        assert_eq!(policy.cap(), Span::hours(8));
        assert_eq!(policy.approvers, vec![Approver::Owners]);
        let round: AccessPolicy = serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
        assert_eq!(round, policy);
    }
}
