//! Deciding an item: who may, what a decision needs, what an undecided item becomes at the
//! deadline, and how an applied revocation ended.

use crate::macros::string_enum;
use crate::{ApplyResult, ChangeState};

use super::definition::{DefaultDecision, JustificationRequired, ReviewerMode, StageRule};
use super::recommend::Recommendation;

string_enum! {
    /// A reviewer's decision on an item.
    pub enum Decision as "decision" {
        Pending => "pending",
        Approve => "approve",
        Revoke => "revoke",
        /// "Don't know" (Entra's `DontKnow`): recorded as the reviewer's answer; the access is
        /// kept, no default decision overrides it, and in a multi-stage review the item goes
        /// on for the next stage to decide.
        NotSure => "not_sure",
    }
}

string_enum! {
    /// Where an instance of a campaign stands.
    pub enum CampaignState as "campaign state" {
        /// Defined, never started.
        Draft => "draft",
        /// Reviewers decide until the deadline.
        Running => "running",
        /// Decisions are final; revocations are (or may be) applied.
        Closed => "closed",
    }
}

string_enum! {
    /// How taking a revoked item's access away ended.
    pub enum ApplyOutcome as "apply result" {
        /// Queued as a change, not applied yet.
        Queued => "queued",
        Applied => "applied",
        /// The access had already gone (expired, removed in Entra meanwhile).
        AlreadyRemoved => "already_removed",
        /// The principal or resource no longer exists.
        NotFound => "not_found",
        /// Entra refused, or it cannot be done through Graph; the reason is kept.
        Failed => "failed",
    }
}

impl Decision {
    /// What deciding it is called, as in "a justification is required to …".
    pub fn verb(self) -> &'static str {
        match self {
            Decision::Pending => "leave it undecided",
            Decision::Approve => "approve",
            Decision::Revoke => "revoke",
            Decision::NotSure => "answer not sure",
        }
    }
}

impl ApplyOutcome {
    /// A revocation's outcome as its change stands.
    pub fn of_change(state: ChangeState, result: Option<ApplyResult>) -> ApplyOutcome {
        match (state, result) {
            (ChangeState::Applied, Some(ApplyResult::AlreadyInState | ApplyResult::TargetNotFound)) => {
                ApplyOutcome::AlreadyRemoved
            }
            (ChangeState::Applied, _) => ApplyOutcome::Applied,
            (ChangeState::Failed | ChangeState::Cancelled | ChangeState::Denied | ChangeState::OutcomeUnknown, _) => {
                ApplyOutcome::Failed
            }
            (ChangeState::Pending | ChangeState::AwaitingApproval | ChangeState::InProgress, _) => ApplyOutcome::Queued,
        }
    }
}

impl StageRule {
    /// Whether an item its stage closed with `decision` goes on to the next stage (see the
    /// rules' own words): a revoke never does; under `all_must_approve` only an approval does,
    /// and a "not sure", which asks the next stage to decide.
    pub fn goes_on(self, decision: Decision) -> bool {
        match (self, decision) {
            (_, Decision::Revoke) => false,
            (_, Decision::NotSure) => true,
            (StageRule::OneRevokeRevokes, _) => true,
            (StageRule::AllMustApprove, decision) => decision == Decision::Approve,
        }
    }

    /// At the last close, whether an item the last stage left undecided keeps an earlier
    /// stage's approval (rather than taking the default decision).
    pub fn keeps_earlier_approval(self) -> bool {
        self == StageRule::OneRevokeRevokes
    }
}

/// Why a decision was refused; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionRefusal {
    #[error("item {item} is not yours to review")]
    NotYours { item: i64 },
    #[error("item {item} is about your own access; someone else reviews it")]
    OwnAccess { item: i64 },
    #[error("the campaign is {state}; decisions can be changed only while it runs")]
    NotRunning { state: CampaignState },
    #[error("a justification is required to {} (say why; it is kept as evidence)", decision.verb())]
    JustificationNeeded { decision: Decision },
    #[error("decide approve, revoke or not_sure")]
    NoDecision,
    #[error("stage {stage} is the campaign's last: closing it closes the campaign")]
    LastStage { stage: i32 },
}

impl DecisionRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            DecisionRefusal::NotYours { .. } => "review_item_not_yours",
            DecisionRefusal::OwnAccess { .. } => "review_own_access",
            DecisionRefusal::NotRunning { .. } => "review_not_running",
            DecisionRefusal::JustificationNeeded { .. } => "review_justification_required",
            DecisionRefusal::NoDecision => "review_no_decision",
            DecisionRefusal::LastStage { .. } => "review_last_stage",
        }
    }
}

/// Whether a reviewer may record `decision` on an item: the campaign runs, the item is theirs
/// (assigned, or they own or administer the campaign), it is not their own access (except in
/// `self` mode), and a justification is given where the campaign asks for one.
#[allow(clippy::too_many_arguments)]
pub fn may_decide(
    item: i64,
    state: CampaignState,
    mode: ReviewerMode,
    assigned: bool,
    own_access: bool,
    decision: Decision,
    justification: &str,
    required: JustificationRequired,
) -> Result<(), DecisionRefusal> {
    if state != CampaignState::Running {
        return Err(DecisionRefusal::NotRunning { state });
    }
    if decision == Decision::Pending {
        return Err(DecisionRefusal::NoDecision);
    }
    if own_access && mode != ReviewerMode::SelfReview {
        return Err(DecisionRefusal::OwnAccess { item });
    }
    if !assigned {
        return Err(DecisionRefusal::NotYours { item });
    }
    let needed = match required {
        JustificationRequired::None => false,
        JustificationRequired::Revoke => decision == Decision::Revoke,
        // "Both" asks a reason for every answer, "not sure" included.
        JustificationRequired::Both => true,
    };
    if needed && justification.trim().is_empty() {
        return Err(DecisionRefusal::JustificationNeeded { decision });
    }
    Ok(())
}

/// What an undecided item becomes when the instance closes; `None`: it stays undecided and
/// nothing changes.
pub fn default_outcome(default: DefaultDecision, recommendation: Recommendation) -> Option<Decision> {
    match (default, recommendation) {
        (DefaultDecision::None, _) => None,
        (DefaultDecision::Approve, _) => Some(Decision::Approve),
        (DefaultDecision::Revoke, _) => Some(Decision::Revoke),
        (DefaultDecision::Recommendation, Recommendation::Approve) => Some(Decision::Approve),
        (DefaultDecision::Recommendation, Recommendation::Revoke) => Some(Decision::Revoke),
        (DefaultDecision::Recommendation, Recommendation::Review) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_rules_say_what_goes_on_and_what_an_earlier_approval_is_worth() {
        use Decision::*;
        let rule = StageRule::OneRevokeRevokes;
        assert_eq!([Pending, Approve, Revoke, NotSure].map(|d| rule.goes_on(d)), [true, true, false, true]);
        assert!(rule.keeps_earlier_approval());
        let rule = StageRule::AllMustApprove;
        assert_eq!([Pending, Approve, Revoke, NotSure].map(|d| rule.goes_on(d)), [false, true, false, true]);
        assert!(!rule.keeps_earlier_approval());
    }

    #[test]
    fn who_may_decide_and_what_a_decision_needs() {
        let ok = |assigned, own, decision, why, mode| {
            may_decide(3, CampaignState::Running, mode, assigned, own, decision, why, JustificationRequired::Revoke)
        };
        assert_eq!(ok(true, false, Decision::Approve, "", ReviewerMode::Manager), Ok(()));
        assert_eq!(
            ok(true, false, Decision::Revoke, " ", ReviewerMode::Manager),
            Err(DecisionRefusal::JustificationNeeded { decision: Decision::Revoke })
        );
        assert_eq!(ok(true, false, Decision::Revoke, "left", ReviewerMode::Manager), Ok(()));
        assert_eq!(ok(true, false, Decision::NotSure, "", ReviewerMode::Manager), Ok(()));
        let both = |decision, why| {
            may_decide(
                3,
                CampaignState::Running,
                ReviewerMode::Manager,
                true,
                false,
                decision,
                why,
                JustificationRequired::Both,
            )
        };
        assert_eq!(
            both(Decision::NotSure, ""),
            Err(DecisionRefusal::JustificationNeeded { decision: Decision::NotSure })
        );
        assert_eq!(both(Decision::NotSure, "new team; ask their lead"), Ok(()));
        assert_eq!(
            ok(false, false, Decision::Approve, "", ReviewerMode::Manager),
            Err(DecisionRefusal::NotYours { item: 3 })
        );
        assert_eq!(
            ok(true, true, Decision::Approve, "", ReviewerMode::Named),
            Err(DecisionRefusal::OwnAccess { item: 3 })
        );
        assert_eq!(ok(true, true, Decision::Approve, "", ReviewerMode::SelfReview), Ok(()));
        let closed = may_decide(
            3,
            CampaignState::Closed,
            ReviewerMode::Manager,
            true,
            false,
            Decision::Approve,
            "",
            JustificationRequired::None,
        );
        assert_eq!(closed.unwrap_err().code(), "review_not_running");
    }

    #[test]
    fn default_decisions_at_the_deadline() {
        use Recommendation as R;
        assert_eq!(default_outcome(DefaultDecision::None, R::Revoke), None);
        assert_eq!(default_outcome(DefaultDecision::Approve, R::Revoke), Some(Decision::Approve));
        assert_eq!(default_outcome(DefaultDecision::Revoke, R::Approve), Some(Decision::Revoke));
        assert_eq!(default_outcome(DefaultDecision::Recommendation, R::Revoke), Some(Decision::Revoke));
        assert_eq!(default_outcome(DefaultDecision::Recommendation, R::Approve), Some(Decision::Approve));
        assert_eq!(default_outcome(DefaultDecision::Recommendation, R::Review), None);
    }

    #[test]
    fn a_revocations_outcome_follows_its_change() {
        use ApplyOutcome as O;
        assert_eq!(O::of_change(ChangeState::Applied, Some(ApplyResult::Applied)), O::Applied);
        assert_eq!(O::of_change(ChangeState::Applied, Some(ApplyResult::TargetNotFound)), O::AlreadyRemoved);
        assert_eq!(O::of_change(ChangeState::Pending, None), O::Queued);
        assert_eq!(O::of_change(ChangeState::Failed, Some(ApplyResult::Failed)), O::Failed);
    }
}
