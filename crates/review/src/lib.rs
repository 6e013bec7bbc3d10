//! Access review campaigns, run: a definition read and checked, an instance started (the
//! grants in scope snapshotted into items, each with its reviewers and a recommendation), items
//! decided, the instance closed (default decisions) and its revocations queued as changes, and
//! the evidence exported. The rules are `attest_domain::review`; the rows are the store's.
//!
//! Revocations go through the change queue like every other change (origin `review_item`, one
//! per item, keyed by the item so queueing twice queues once); the provisioner applies them and
//! each item's outcome follows its change.

mod export;
mod start;

use attest_domain::review::{
    ApplyOutcome, CampaignDefinition, CampaignState, Decision, DecisionRefusal, Person, Recommendation,
    default_outcome, may_decide,
};
use attest_domain::{ChangeAction, ChangeOrigin, NewChange};
use attest_store::{Campaign, Decided, Instance, ItemFilter, Store, StoreError};
use chrono::{DateTime, Utc};

pub use export::{ExportFormat, export};
pub use start::{StartTimings, Started, in_scope, start};

/// Why a campaign operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The definition is not valid (unknown key, bad value); says which key.
    #[error("{0}")]
    Definition(String),
    /// Starting would leave the campaign unusable (an item nobody may review, nothing in scope,
    /// a reviewer or resource that cannot be found).
    #[error("the campaign cannot start: {0}")]
    NotStartable(String),
    #[error(transparent)]
    Refused(#[from] DecisionRefusal),
}

impl From<attest_domain::review::DefinitionError> for ReviewError {
    fn from(e: attest_domain::review::DefinitionError) -> Self {
        ReviewError::Definition(e.to_string())
    }
}

/// Reads a campaign definition (TOML) and checks it: unknown keys and bad values are refused,
/// naming the key and what is expected.
pub fn parse_definition(text: &str) -> Result<CampaignDefinition, ReviewError> {
    let definition: CampaignDefinition =
        toml::from_str(text).map_err(|e| ReviewError::Definition(e.to_string().trim().to_owned()))?;
    definition.check()?;
    Ok(definition)
}

/// The definition a campaign was saved with.
pub fn definition_of(campaign: &Campaign) -> Result<CampaignDefinition, ReviewError> {
    serde_json::from_value(campaign.definition.clone())
        .map_err(|e| ReviewError::Definition(format!("campaign {}: unreadable definition: {e}", campaign.id)))
}

/// Saves a checked definition as a new campaign (not started).
pub async fn create(
    store: &Store,
    definition: &CampaignDefinition,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<Campaign, ReviewError> {
    definition.check()?;
    let connectors = store.connectors().list_connectors().await?;
    let connector = connectors.iter().find(|c| c.name == definition.scope.connector).ok_or_else(|| {
        ReviewError::Definition(format!("scope.connector: no connector is named '{}'", definition.scope.connector))
    })?;
    let json = serde_json::to_value(definition).map_err(|e| ReviewError::Definition(e.to_string()))?;
    Ok(store
        .reviews()
        .create_campaign(&definition.name, &definition.description, connector.id, &json, created_by, now)
        .await?)
}

/// How the stage an instance is in chooses its reviewers.
fn stage_mode(definition: &CampaignDefinition, instance: &Instance) -> attest_domain::review::ReviewerMode {
    definition.stage_reviewers(u8::try_from(instance.stage).unwrap_or(1)).mode
}

/// Someone deciding: who they are in the tenant, and how the audit log names them.
#[derive(Debug, Clone)]
pub struct Reviewer {
    /// Their object id in the connector's tenant.
    pub object_id: String,
    /// How the audit log and the evidence name them (an email, "… (command line)").
    pub name: String,
    /// `tenant/objectId`.
    pub identity: Option<String>,
}

/// A decision on items, by a reviewer, as one act (a click, a bulk decision).
#[derive(Debug, Clone)]
pub struct Decide<'a> {
    pub items: &'a [i64],
    pub decision: Decision,
    pub justification: &'a str,
    /// `reviewer`, `bulk` or `accept_recommendations`.
    pub how: &'a str,
}

/// Records a decision on items of one running instance. Every item must be the reviewer's
/// and not their own access (except in a self review), and carry the justification the
/// campaign asks for; otherwise nothing is recorded. Returns how many items were decided.
pub async fn decide(
    store: &Store,
    instance: i64,
    reviewer: &Reviewer,
    decide: &Decide<'_>,
    now: DateTime<Utc>,
) -> Result<u64, ReviewError> {
    let instance = store.reviews().get_instance(instance).await?;
    let campaign = store.reviews().get_campaign(instance.campaign_id).await?;
    let definition = definition_of(&campaign)?;
    let mut items = Vec::with_capacity(decide.items.len());
    for chunk in decide.items.chunks(5_000) {
        let filter = ItemFilter {
            instance: Some(instance.id),
            ids: Some(chunk.to_vec()),
            limit: chunk.len() as u64,
            ..Default::default()
        };
        items.extend(store.reviews().list_items(&filter).await?);
    }
    if items.len() != decide.items.len() {
        let found: std::collections::HashSet<i64> = items.iter().map(|i| i.id).collect();
        let missing = decide.items.iter().find(|i| !found.contains(i)).copied().unwrap_or_default();
        return Err(StoreError::NotFound { what: "review item", key: missing.to_string() }.into());
    }
    let me = reviewer.object_id.to_lowercase();
    for item in &items {
        let assigned = item.reviewers().iter().any(|r| r.object_id.eq_ignore_ascii_case(&me));
        let own = item.principal_object.eq_ignore_ascii_case(&me);
        may_decide(
            item.id,
            instance.state,
            stage_mode(&definition, &instance),
            assigned,
            own,
            decide.decision,
            decide.justification,
            definition.settings.justification_required,
        )?;
    }
    let justification = attest_domain::change::reason_given(decide.justification);
    let decided = Decided {
        items: decide.items,
        decision: decide.decision,
        justification: justification.as_deref(),
        by: &reviewer.name,
        by_id: reviewer.identity.as_deref(),
        how: decide.how,
    };
    Ok(store.reviews().decide(instance.id, &decided, now).await?)
}

/// Accepts the recommendations on a reviewer's pending items of an instance (approve and
/// revoke; those to review carefully stay pending), the recommendation's reason as the
/// justification. Returns how many were decided.
pub async fn accept_recommendations(
    store: &Store,
    instance: i64,
    reviewer: &Reviewer,
    now: DateTime<Utc>,
) -> Result<u64, ReviewError> {
    let mut decided = 0;
    for (recommendation, decision) in
        [(Recommendation::Approve, Decision::Approve), (Recommendation::Revoke, Decision::Revoke)]
    {
        let mut after = None;
        loop {
            let filter = ItemFilter {
                instance: Some(instance),
                reviewer: Some(reviewer.object_id.clone()),
                decision: Some(Decision::Pending),
                recommendation: Some(recommendation),
                after,
                limit: 5_000,
                ..Default::default()
            };
            let page = store.reviews().list_items(&filter).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            // Not one's own access (outside a self review): left for someone else.
            let ids: Vec<i64> = page
                .iter()
                .filter(|i| !i.principal_object.eq_ignore_ascii_case(&reviewer.object_id))
                .map(|i| i.id)
                .collect();
            let why = format!("accepted the recommendation ({})", page[0].recommendation);
            let act = Decide { items: &ids, decision, justification: &why, how: "accept_recommendations" };
            if !ids.is_empty() {
                decided += self::decide(store, instance, reviewer, &act, now).await?;
            }
        }
    }
    Ok(decided)
}

/// Gives a running instance's item from reviewer `from` (object id) to another person of the
/// campaign's tenant (`to`: email, user principal name or object id), audited as done by `by`.
/// Nobody is given their own access to review (outside a self review). Returns who has it now.
pub async fn reassign(
    store: &Store,
    item: i64,
    from: &str,
    to: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Person, ReviewError> {
    // Items of running instances only.
    let filter = ItemFilter { ids: Some(vec![item]), limit: 1, ..Default::default() };
    let found = store
        .reviews()
        .list_items(&filter)
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound { what: "review item", key: item.to_string() })?;
    let instance = store.reviews().get_instance(found.instance_id).await?;
    let campaign = store.reviews().get_campaign(instance.campaign_id).await?;
    let definition = definition_of(&campaign)?;
    if !found.reviewers().iter().any(|r| r.object_id.eq_ignore_ascii_case(from)) {
        return Err(DecisionRefusal::NotYours { item }.into());
    }
    let person = store
        .reviews()
        .people_named(campaign.connector_id, &[to.to_owned()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound { what: "person", key: to.to_owned() })?;
    let own = person.object_id.eq_ignore_ascii_case(&found.principal_object);
    if own && stage_mode(&definition, &instance) != attest_domain::review::ReviewerMode::SelfReview {
        return Err(DecisionRefusal::OwnAccess { item }.into());
    }
    store.reviews().reassign(item, from, &person, by, now).await?;
    Ok(person)
}

/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

/// Comments on items of a running instance, as someone who reviews each of them (`runs`: or
/// who runs the campaign, who may comment on any). Audited.
pub async fn comment(
    store: &Store,
    items: &[i64],
    reviewer: &Reviewer,
    runs: bool,
    body: &str,
    now: DateTime<Utc>,
) -> Result<u64, ReviewError> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > MAX_COMMENT_CHARS {
        return Err(ReviewError::Definition(format!("a comment is 1 to {MAX_COMMENT_CHARS} characters")));
    }
    // Items of running instances only.
    let filter = ItemFilter { ids: Some(items.to_vec()), limit: items.len() as u64, ..Default::default() };
    let found = store.reviews().list_items(&filter).await?;
    if found.len() != items.len() {
        return Err(StoreError::NotFound { what: "review item", key: format!("{items:?}") }.into());
    }
    for item in &found {
        let assigned = item.reviewers().iter().any(|r| r.object_id.eq_ignore_ascii_case(&reviewer.object_id));
        if !assigned && !runs {
            return Err(DecisionRefusal::NotYours { item: item.id }.into());
        }
    }
    for item in &found {
        store.reviews().add_comment(item.id, &reviewer.name, reviewer.identity.as_deref(), body, now).await?;
    }
    Ok(found.len() as u64)
}

/// What closing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub instance: i64,
    /// Undecided items given the default decision.
    pub defaulted: usize,
    /// Undecided items that kept an earlier stage's approval (`one_revoke_revokes`).
    pub kept_approvals: usize,
    /// Revocations queued (with `auto_apply`).
    pub applied: Option<Applied>,
}

/// Closes a running instance: undecided items take the campaign's default decision, and with
/// `auto_apply` its revocations are queued at once.
pub async fn close(store: &Store, instance: i64, closed_by: &str, now: DateTime<Utc>) -> Result<Closed, ReviewError> {
    let found = store.reviews().get_instance(instance).await?;
    if found.state != CampaignState::Running {
        return Err(DecisionRefusal::NotRunning { state: found.state }.into());
    }
    let campaign = store.reviews().get_campaign(found.campaign_id).await?;
    let definition = definition_of(&campaign)?;
    let mut defaults = Vec::new();
    let mut after = None;
    // Without a default decision nothing is read: the undecided stay undecided.
    let decides = definition.settings.default_decision != attest_domain::review::DefaultDecision::None;
    if decides {
        loop {
            let filter = ItemFilter {
                instance: Some(instance),
                decision: Some(Decision::Pending),
                after,
                limit: 20_000,
                ..Default::default()
            };
            let page = store.reviews().list_items(&filter).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            defaults.extend(page.iter().filter_map(|i| {
                default_outcome(definition.settings.default_decision, i.recommendation).map(|d| (i.id, d))
            }));
        }
    }
    let keep = found.stages > 1 && definition.settings.stage_rule.keeps_earlier_approval();
    let closed = store.reviews().close_instance(instance, closed_by, keep, &defaults, now).await?;
    let applied = if definition.settings.auto_apply {
        Some(apply_revocations(store, instance, closed_by, now).await?)
    } else {
        None
    };
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok(Closed { instance, defaulted: count(closed.defaulted), kept_approvals: count(closed.kept), applied })
}

/// What ending a running instance's stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageEnded {
    /// A later stage started with the items the stage let through.
    Advanced {
        instance: i64,
        /// The stage that ended, and the one that started.
        closed_stage: i32,
        stage: i32,
        /// Items the ended stage had, and those gone on.
        reviewed: u64,
        advanced: u64,
        stage_due_at: DateTime<Utc>,
    },
    /// It was the last stage: the instance closed.
    Closed(Closed),
}

/// Ends the stage an instance is in (an owner's "close", or its deadline): in a multi-stage
/// review, what the stage decided is kept and the items its rule lets through go on to the
/// next stage's reviewers, who get the rest of the schedule; the last stage closes the instance.
pub async fn end_stage(store: &Store, instance: i64, by: &str, now: DateTime<Utc>) -> Result<StageEnded, ReviewError> {
    let found = store.reviews().get_instance(instance).await?;
    if found.state != CampaignState::Running {
        return Err(DecisionRefusal::NotRunning { state: found.state }.into());
    }
    if !found.stages_left() {
        return Ok(StageEnded::Closed(close(store, instance, by, now).await?));
    }
    let campaign = store.reviews().get_campaign(found.campaign_id).await?;
    let definition = definition_of(&campaign)?;
    let rule = definition.settings.stage_rule;
    let going_on: Vec<Decision> = Decision::ALL.iter().copied().filter(|d| rule.goes_on(*d)).collect();
    // The next stage runs for its own length from now; the instance ends after the stages left.
    let durations = definition.stage_durations()?;
    let next = usize::try_from(found.stage).unwrap_or(1);
    let stage_due_at = now + durations.get(next).copied().unwrap_or_else(|| chrono::Duration::days(14));
    let due_at = durations.iter().skip(next + 1).fold(stage_due_at, |due, d| due + *d);
    let advanced = store.reviews().advance_stage(instance, &going_on, stage_due_at, due_at, by, now).await?;
    Ok(StageEnded::Advanced {
        instance,
        closed_stage: advanced.closed_stage,
        stage: advanced.instance.stage,
        reviewed: advanced.reviewed,
        advanced: advanced.advanced,
        stage_due_at,
    })
}

/// What applying an instance's revocations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes queued (one per revoked item).
    pub queued: usize,
    /// The access had already gone: nothing to do.
    pub already_removed: usize,
    /// The access had gone with the person or the resource itself, deleted in Entra.
    pub not_found: usize,
    /// A revoke that cannot be made through Graph (with the reason on the item).
    pub failed: usize,
}

/// Queues a change for every revoked item of a closed instance that has none yet: the access
/// it removes, asked for by whoever closes. An item whose grant has ended since the snapshot
/// ends "already removed", or "not found" when its principal or resource was deleted in Entra;
/// one Graph cannot change ends "failed" with the reason.
pub async fn apply_revocations(
    store: &Store,
    instance: i64,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Applied, ReviewError> {
    let found = store.reviews().get_instance(instance).await?;
    if found.state != CampaignState::Closed {
        return Err(ReviewError::NotStartable(format!(
            "revocations are applied once the campaign is closed; it is {}",
            found.state
        )));
    }
    let campaign = store.reviews().get_campaign(found.campaign_id).await?;
    let mut done = Applied::default();
    let mut after = None;
    loop {
        let filter = ItemFilter {
            instance: Some(instance),
            decision: Some(Decision::Revoke),
            after,
            limit: 5_000,
            ..Default::default()
        };
        let page = store.reviews().list_items(&filter).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let open: Vec<_> = page.into_iter().filter(|i| i.change_id.is_none() && i.apply_result.is_none()).collect();
        let grants: Vec<i64> = open.iter().filter_map(|i| i.grant_id).collect();
        let ended: std::collections::HashMap<i64, bool> =
            store.reviews().ended_grants(&grants).await?.into_iter().collect();
        let mut outcomes = Vec::new();
        let mut queued = Vec::new();
        let mut news = Vec::new();
        for item in &open {
            match item.grant_id.and_then(|g| ended.get(&g)) {
                Some(true) => {
                    outcomes.push((item.id, ApplyOutcome::NotFound, None));
                    done.not_found += 1;
                    continue;
                }
                Some(false) => {
                    outcomes.push((item.id, ApplyOutcome::AlreadyRemoved, None));
                    done.already_removed += 1;
                    continue;
                }
                None => {}
            }
            let action = match (&item.revoke_action, &item.revoke_blocked) {
                (Some(action), _) => serde_json::from_str::<ChangeAction>(action).ok(),
                _ => None,
            };
            let Some(action) = action else {
                let why = item.revoke_blocked.clone().unwrap_or_else(|| "no operation removes this access".into());
                outcomes.push((item.id, ApplyOutcome::Failed, Some(why)));
                done.failed += 1;
                continue;
            };
            queued.push(item.id);
            news.push(NewChange {
                connector_id: campaign.connector_id,
                action,
                idempotency_key: format!("review-item:{}", item.id),
                origin: ChangeOrigin::ReviewItem,
                origin_ref: Some(item.id.to_string()),
                requested_by: by.to_owned(),
                requested_by_id: None,
                reason: Some(format!(
                    "access review \"{}\" (instance {}): revoked by {}{}",
                    campaign.name,
                    found.number,
                    item.decided_by.as_deref().unwrap_or("the default decision"),
                    item.justification.as_deref().map(|j| format!(": {j}")).unwrap_or_default()
                )),
            });
        }
        // The reviewers' decisions are the approval: no second person is asked again. One
        // transaction per page, each change audited as requested.
        let ids = store.changes().enqueue_changes(&news, now).await?;
        let changes: Vec<(i64, i64)> = queued.into_iter().zip(ids).map(|(item, id)| (item, id.0)).collect();
        done.queued += changes.len();
        store.reviews().set_item_outcomes(&outcomes).await?;
        store.reviews().set_item_changes(&changes).await?;
    }
    Ok(done)
}

/// The reviewers of a running instance with pending items, and how many each has.
pub async fn reviewers_with_pending(store: &Store, instance: &Instance) -> Result<Vec<(Person, u64)>, ReviewError> {
    Ok(store
        .reviews()
        .pending_by_reviewer(instance.id)
        .await?
        .into_iter()
        .filter(|(_, _, _, pending)| *pending > 0)
        .map(|(object_id, name, email, pending)| {
            (Person { object_id, name, email }, u64::try_from(pending).unwrap_or(0))
        })
        .collect())
}
