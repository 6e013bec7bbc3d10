//! Access reviews: what a campaign is (its definition, checked), who reviews each item, what
//! Attest recommends and why, how decisions move, and what happens to undecided items at the
//! deadline. Pure rules; the store keeps campaigns and items, `attest-review` runs them.

pub mod decision;
pub mod definition;
pub mod recommend;
pub mod reviewers;

pub use decision::{ApplyOutcome, CampaignState, Decision, DecisionRefusal, default_outcome, may_decide};
pub use definition::{
    CampaignDefinition, DefaultDecision, DefinitionError, EntitlementKind, JustificationRequired, LaterStage,
    PrincipalScope, Recurrence, ReviewerMode, Reviewers, Schedule, Scope, Settings, StageRule,
};
pub use recommend::{Facts, PeerFacts, Recommendation, recommend};
pub use reviewers::{Person, ReviewerChoice, Unresolved, choose_reviewers};
