//! An access request: how one is named and asked, how it moves, who may decide it and when
//! enough have.

use chrono::{DateTime, Utc};

use super::policy::{AccessPolicy, Requesters};
use super::span::{Length, Span};
use crate::macros::string_enum;
use crate::{EntitlementKey, ResourceKind};

string_enum! {
    /// Where a request stands. `pending → approved → provisioning → active → expired`, or it
    /// ends `denied`, `cancelled` (by the requester before a decision), `failed` (Entra
    /// refused) or `revoked` (ended early by its holder, an approver or an administrator).
    pub enum RequestState as "request state" {
        Pending => "pending",
        Approved => "approved",
        Provisioning => "provisioning",
        Active => "active",
        Expired => "expired",
        Denied => "denied",
        Cancelled => "cancelled",
        Failed => "failed",
        Revoked => "revoked",
    }
}

impl RequestState {
    /// Nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestState::Expired
                | RequestState::Denied
                | RequestState::Cancelled
                | RequestState::Failed
                | RequestState::Revoked
        )
    }

    /// The access is (being) given: what "revoke" ends.
    pub fn holds(self) -> bool {
        matches!(self, RequestState::Approved | RequestState::Provisioning | RequestState::Active)
    }
}

/// An entitlement as the CLI and API name it: `group:<name or object id>:member|owner`,
/// `app:<name or object id>:role:<role name>|owner`, `role:<name or template id>:active|eligible`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRef {
    pub kind: ResourceKind,
    /// The resource's display name or object id (a role's template id).
    pub resource: String,
    pub right: Right,
}

/// Which right on the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Right {
    Member,
    Owner,
    /// An application role by its display name (or id).
    AppRole(String),
    Active,
    Eligible,
}

/// A name that is not an entitlement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' does not name an entitlement: write group:<name or id>:member|owner, app:<name or id>:role:<role>|owner, or role:<name or id>:active|eligible"
)]
pub struct BadEntitlementRef(pub String);

impl std::str::FromStr for EntitlementRef {
    type Err = BadEntitlementRef;

    fn from_str(text: &str) -> Result<EntitlementRef, BadEntitlementRef> {
        let bad = || BadEntitlementRef(text.to_owned());
        let (kind, rest) = text.trim().split_once(':').ok_or_else(bad)?;
        let named = |resource: &str, right| {
            let resource = resource.trim();
            if resource.is_empty() { Err(bad()) } else { Ok((resource.to_owned(), right)) }
        };
        let (kind, (resource, right)) = match kind.to_ascii_lowercase().as_str() {
            "group" => {
                let (resource, right) = rest.rsplit_once(':').ok_or_else(bad)?;
                let right = match right.to_ascii_lowercase().as_str() {
                    "member" => Right::Member,
                    "owner" => Right::Owner,
                    _ => return Err(bad()),
                };
                (ResourceKind::Group, named(resource, right)?)
            }
            "app" => {
                if let Some((resource, role)) = rest.rsplit_once(":role:") {
                    let role = role.trim();
                    if role.is_empty() {
                        return Err(bad());
                    }
                    (ResourceKind::Application, named(resource, Right::AppRole(role.to_owned()))?)
                } else {
                    let (resource, right) = rest.rsplit_once(':').ok_or_else(bad)?;
                    if !right.eq_ignore_ascii_case("owner") {
                        return Err(bad());
                    }
                    (ResourceKind::Application, named(resource, Right::Owner)?)
                }
            }
            "role" => {
                let (resource, right) = rest.rsplit_once(':').ok_or_else(bad)?;
                let right = match right.to_ascii_lowercase().as_str() {
                    "active" => Right::Active,
                    "eligible" => Right::Eligible,
                    _ => return Err(bad()),
                };
                (ResourceKind::DirectoryRole, named(resource, right)?)
            }
            _ => return Err(bad()),
        };
        Ok(EntitlementRef { kind, resource, right })
    }
}

impl std::fmt::Display for EntitlementRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ResourceKind::Group => "group",
            ResourceKind::Application => "app",
            ResourceKind::DirectoryRole => "role",
        };
        let right = match &self.right {
            Right::Member => "member".to_owned(),
            Right::Owner => "owner".to_owned(),
            Right::AppRole(role) => format!("role:{role}"),
            Right::Active => "active".to_owned(),
            Right::Eligible => "eligible".to_owned(),
        };
        write!(f, "{kind}:{}:{right}", self.resource)
    }
}

impl Right {
    /// The entitlement key, where the right names one by itself (an app role is named by its
    /// display name, which only the resource resolves).
    pub fn key(&self) -> Option<EntitlementKey> {
        match self {
            Right::Member => Some(EntitlementKey::Member),
            Right::Owner => Some(EntitlementKey::Owner),
            Right::Active => Some(EntitlementKey::Active),
            Right::Eligible => Some(EntitlementKey::Eligible),
            Right::AppRole(_) => None,
        }
    }
}

/// Why a request, or a step on one, is refused. Each has a stable code for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    #[error("this access cannot be requested{}", .0.as_deref().map(|w| format!(": {w}")).unwrap_or_default())]
    NotRequestable(Option<String>),
    #[error("guests cannot request this access")]
    GuestsExcluded,
    #[error("only members of {0} can request this access")]
    NotAllowedToRequest(String),
    #[error("{asked} is longer than this access allows: at most {cap}")]
    TooLong { asked: String, cap: String },
    #[error("this access cannot be asked for with no end; choose a duration of at most {0}")]
    PermanentNotAllowed(String),
    #[error("say why you need this access (a justification is required)")]
    JustificationRequired,
    #[error("give the ticket this access is for (a ticket reference is required)")]
    TicketRequired,
    #[error("the start is in the past; leave it empty to start as soon as it is approved")]
    StartInPast,
    #[error("nobody but you could approve this request (stage {0}); ask an administrator to name approvers")]
    NoApprover(u32),
    #[error("the policy needs {need} approvals in stage {stage}, but only {have} people can approve")]
    QuorumUnreachable { stage: u32, need: u32, have: u32 },
    #[error("you already have this access, with no end; there is nothing to request")]
    AlreadyHeldPermanently,
    #[error("you already have this access until {until} (request {request}); ask to extend it instead")]
    AlreadyHeldUntil { request: i64, until: String },
    #[error("you already asked for this access (request {0}, waiting for approval)")]
    AlreadyAsked(i64),
    #[error("nobody approves their own request")]
    OwnRequest,
    #[error("you are not an approver of this request{}", .0.map(|s| format!(" in stage {s}")).unwrap_or_default())]
    NotAnApprover(Option<u32>),
    #[error("you already decided this request in this stage")]
    AlreadyDecided,
    #[error("this request is {0}; it can no longer be {1}")]
    WrongState(RequestState, &'static str),
    #[error("only the person who asked can {0} this request")]
    NotRequester(&'static str),
    #[error("a reason is required")]
    ReasonRequired,
    #[error("only access that is time-bound and active can be extended")]
    NotExtendable,
}

impl AccessRefusal {
    pub fn code(&self) -> &'static str {
        use AccessRefusal::*;
        match self {
            NotRequestable(_) => "not_requestable",
            GuestsExcluded => "guests_excluded",
            NotAllowedToRequest(_) => "not_allowed_to_request",
            TooLong { .. } => "duration_too_long",
            PermanentNotAllowed(_) => "permanent_not_allowed",
            JustificationRequired => "justification_required",
            TicketRequired => "ticket_required",
            StartInPast => "start_in_past",
            NoApprover(_) => "no_approver",
            QuorumUnreachable { .. } => "quorum_unreachable",
            AlreadyHeldPermanently => "already_held",
            AlreadyHeldUntil { .. } => "already_held_time_bound",
            AlreadyAsked(_) => "already_requested",
            OwnRequest => "own_request",
            NotAnApprover(_) => "not_an_approver",
            AlreadyDecided => "already_decided",
            WrongState(..) => "wrong_state",
            NotRequester(_) => "not_requester",
            ReasonRequired => "reason_required",
            NotExtendable => "not_extendable",
        }
    }
}

/// What asking needs checked against the policy.
#[derive(Debug, Clone)]
pub struct Asking<'a> {
    pub policy: &'a AccessPolicy,
    pub length: Length,
    pub justification: &'a str,
    pub ticket: Option<&'a str>,
    pub requester_is_guest: bool,
    /// Whether the requester is in the policy's requester group (ignored for everyone).
    pub in_requester_group: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Checks a request against its policy (who, how long, with what), before approvers are
/// looked for. The first problem is the answer.
pub fn check_asking(a: &Asking) -> Result<(), AccessRefusal> {
    let policy = a.policy;
    if !policy.requestable {
        return Err(AccessRefusal::NotRequestable(None));
    }
    if a.requester_is_guest && !policy.guests_allowed {
        return Err(AccessRefusal::GuestsExcluded);
    }
    if let Requesters::GroupMembers(group) = &policy.requesters
        && !a.in_requester_group
    {
        return Err(AccessRefusal::NotAllowedToRequest(group.clone()));
    }
    match a.length {
        Length::Permanent if !policy.permanent_allowed => {
            return Err(AccessRefusal::PermanentNotAllowed(policy.cap().words()));
        }
        Length::For(span) if span > policy.cap() => {
            return Err(AccessRefusal::TooLong { asked: span.words(), cap: policy.cap().words() });
        }
        _ => {}
    }
    if policy.justification_required && a.justification.trim().is_empty() {
        return Err(AccessRefusal::JustificationRequired);
    }
    if policy.ticket_required && a.ticket.is_none_or(|t| t.trim().is_empty()) {
        return Err(AccessRefusal::TicketRequired);
    }
    if a.starts_at.is_some_and(|s| s < a.now - chrono::Duration::minutes(1)) {
        return Err(AccessRefusal::StartInPast);
    }
    Ok(())
}

/// Checks each stage has enough approvers other than the requester (already left out).
pub fn check_approvers(policy: &AccessPolicy, per_stage: &[usize]) -> Result<(), AccessRefusal> {
    for stage in 1..=policy.stages() {
        let have = per_stage.get(stage as usize - 1).copied().unwrap_or(0) as u32;
        if have == 0 {
            return Err(AccessRefusal::NoApprover(stage));
        }
        if have < policy.quorum {
            return Err(AccessRefusal::QuorumUnreachable { stage, need: policy.quorum, have });
        }
    }
    Ok(())
}

/// Where a request's approval stands after a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// The stage needs more approvals.
    Waiting {
        have: u32,
        need: u32,
    },
    /// The stage is done; the next one starts.
    NextStage(u32),
    Approved,
    Denied,
}

/// The outcome of stage `stage` of `stages` with `approvals` and `denials` in it: one denial
/// denies; `quorum` approvals pass the stage.
pub fn tally(stage: u32, stages: u32, quorum: u32, approvals: u32, denials: u32) -> Tally {
    if denials > 0 {
        Tally::Denied
    } else if approvals < quorum {
        Tally::Waiting { have: approvals, need: quorum }
    } else if stage < stages {
        Tally::NextStage(stage + 1)
    } else {
        Tally::Approved
    }
}

/// When time-bound access given at `from` for `length` ends.
pub fn expiry(from: DateTime<Utc>, length: Option<Span>) -> Option<DateTime<Utc>> {
    length.map(|span| from + span.duration())
}

/// Which expiry notice is owed to a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A week before the end.
    Week,
    /// A day before the end (or the one notice, when both fall close together).
    Day,
}

/// The notice owed at `now` for access given at `from`, ending at `end`, whose last notice (if
/// any) went at `last`: a week before and a day before the end; none for access shorter than a
/// day; only the day-before one when the week-before one would fall within a day of the start
/// or of the day-before one (one mail, not two at once).
pub fn expiry_notice(
    from: DateTime<Utc>,
    end: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Notice> {
    let day = chrono::Duration::days(1);
    if end - from < day || now >= end {
        return None;
    }
    let (week_before, day_before) = (end - chrono::Duration::days(7), end - day);
    if now >= day_before {
        return last.is_none_or(|l| l < day_before).then_some(Notice::Day);
    }
    let week_applies = week_before >= from + day && day_before - week_before >= day;
    (now >= week_before && week_applies && last.is_none()).then_some(Notice::Week)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::policy::Approver;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap()
    }

    fn asking(policy: &AccessPolicy) -> Asking<'_> {
        Asking {
            policy,
            length: Length::For(Span::hours(8)),
            justification: "on call",
            ticket: None,
            requester_is_guest: false,
            in_requester_group: false,
            starts_at: None,
            now: now(),
        }
    }

    #[test]
    fn entitlements_are_named_as_the_issue_writes_them() {
        let parsed: EntitlementRef = "group:Finance Team:member".parse().unwrap();
        assert_eq!(
            parsed,
            EntitlementRef { kind: ResourceKind::Group, resource: "Finance Team".into(), right: Right::Member }
        );
        let role: EntitlementRef = "app:Payroll: EU:role:Approver".parse().unwrap();
        assert_eq!(role.resource, "Payroll: EU");
        assert_eq!(role.right, Right::AppRole("Approver".into()));
        assert_eq!("app:Payroll:owner".parse::<EntitlementRef>().unwrap().right, Right::Owner);
        assert_eq!("role:Global Reader:eligible".parse::<EntitlementRef>().unwrap().right, Right::Eligible);
        for bad in ["group:x", "group::member", "app:x:role:", "role:x:member", "team:x:member", "x"] {
            assert!(bad.parse::<EntitlementRef>().is_err(), "{bad}");
        }
        for text in ["group:g1:owner", "app:a:role:Reader", "role:r:active"] {
            assert_eq!(text.parse::<EntitlementRef>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn a_request_is_checked_against_its_policy() {
        let closed = AccessPolicy::default();
        assert_eq!(check_asking(&asking(&closed)), Err(AccessRefusal::NotRequestable(None)));
        let open = AccessPolicy { requestable: true, max_duration: Some(Span::days(1)), ..Default::default() };
        assert_eq!(check_asking(&asking(&open)), Ok(()));
        let long = Asking { length: Length::For(Span::days(2)), ..asking(&open) };
        assert_eq!(check_asking(&long).unwrap_err().code(), "duration_too_long");
        let forever = Asking { length: Length::Permanent, ..asking(&open) };
        assert_eq!(check_asking(&forever).unwrap_err().code(), "permanent_not_allowed");
        let allowed = AccessPolicy { permanent_allowed: true, ..open.clone() };
        assert_eq!(check_asking(&Asking { length: Length::Permanent, ..asking(&allowed) }), Ok(()));
        // Any duration up to the cap, not only the presets.
        assert_eq!(check_asking(&Asking { length: Length::For(Span::minutes(1)), ..asking(&open) }), Ok(()));
        assert_eq!(
            check_asking(&Asking { justification: " ", ..asking(&open) }),
            Err(AccessRefusal::JustificationRequired)
        );
        let ticketed = AccessPolicy { ticket_required: true, ..open.clone() };
        assert_eq!(check_asking(&asking(&ticketed)), Err(AccessRefusal::TicketRequired));
        assert_eq!(check_asking(&Asking { ticket: Some("INC-1"), ..asking(&ticketed) }), Ok(()));
        assert_eq!(
            check_asking(&Asking { requester_is_guest: true, ..asking(&open) }),
            Err(AccessRefusal::GuestsExcluded)
        );
        let grouped = AccessPolicy { requesters: Requesters::GroupMembers("Engineers".into()), ..open.clone() };
        assert_eq!(check_asking(&asking(&grouped)).unwrap_err().code(), "not_allowed_to_request");
        assert_eq!(check_asking(&Asking { in_requester_group: true, ..asking(&grouped) }), Ok(()));
        let past = Asking { starts_at: Some(now() - chrono::Duration::hours(1)), ..asking(&open) };
        assert_eq!(check_asking(&past), Err(AccessRefusal::StartInPast));
    }

    #[test]
    fn every_stage_needs_enough_approvers_besides_the_requester() {
        let two = AccessPolicy { second_stage: vec![Approver::Manager], quorum: 2, ..Default::default() };
        assert_eq!(check_approvers(&two, &[2, 2]), Ok(()));
        assert_eq!(check_approvers(&two, &[0, 2]), Err(AccessRefusal::NoApprover(1)));
        assert_eq!(
            check_approvers(&two, &[2, 1]),
            Err(AccessRefusal::QuorumUnreachable { stage: 2, need: 2, have: 1 })
        );
        let auto = AccessPolicy { auto_approve: true, ..Default::default() };
        assert_eq!(check_approvers(&auto, &[]), Ok(()));
    }

    #[test]
    fn one_denial_denies_and_a_quorum_passes_a_stage() {
        assert_eq!(tally(1, 1, 1, 1, 0), Tally::Approved);
        assert_eq!(tally(1, 2, 1, 1, 0), Tally::NextStage(2));
        assert_eq!(tally(1, 1, 2, 1, 0), Tally::Waiting { have: 1, need: 2 });
        assert_eq!(tally(2, 2, 2, 2, 0), Tally::Approved);
        assert_eq!(tally(1, 1, 2, 1, 1), Tally::Denied);
    }

    #[test]
    fn notices_go_a_week_and_a_day_before_merged_when_close_and_never_for_short_access() {
        let d = chrono::Duration::days;
        let from = now();
        let end = from + d(30);
        assert_eq!(expiry_notice(from, end, None, from + d(1)), None);
        assert_eq!(expiry_notice(from, end, None, end - d(7)), Some(Notice::Week));
        let week_sent = Some(end - d(7));
        assert_eq!(expiry_notice(from, end, week_sent, end - d(3)), None, "once");
        assert_eq!(expiry_notice(from, end, week_sent, end - d(1)), Some(Notice::Day));
        assert_eq!(expiry_notice(from, end, Some(end - d(1)), end - chrono::Duration::hours(2)), None, "once");
        // Downtime across both: one mail, the day-before one.
        assert_eq!(expiry_notice(from, end, None, end - chrono::Duration::hours(5)), Some(Notice::Day));
        // Three days long: the week-before notice would fall at the start; only the day-before.
        let short_end = from + d(3);
        assert_eq!(expiry_notice(from, short_end, None, from + chrono::Duration::hours(1)), None);
        assert_eq!(expiry_notice(from, short_end, None, short_end - d(1)), Some(Notice::Day));
        // Shorter than a day: none.
        let hours = from + chrono::Duration::hours(8);
        assert_eq!(expiry_notice(from, hours, None, hours - chrono::Duration::hours(1)), None);
        assert_eq!(expiry_notice(from, end, None, end), None, "ended");
    }

    #[test]
    fn states_say_whether_they_are_over() {
        assert!(RequestState::Expired.is_final());
        assert!(!RequestState::Active.is_final());
        assert!(RequestState::Provisioning.holds());
        assert!(!RequestState::Pending.holds());
        assert_eq!(expiry(now(), Some(Span::hours(8))), Some(now() + chrono::Duration::hours(8)));
        assert_eq!(expiry(now(), None), None);
    }
}
