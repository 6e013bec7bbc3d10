//! Access reviews: campaigns, their instances, the items an instance snapshots and who reviews
//! each. The rules (scope, reviewers, recommendations, who may decide) are in
//! `attest_domain::review` and applied by `attest-review`; this keeps them.
//!
//! Starting an instance writes up to millions of items: they go in as multi-row inserts inside
//! one transaction, each batch's ids read back by grant (one item per grant in an instance), so
//! the reviewers are written beside them without a read per item.

use std::collections::HashMap;

use attest_domain::review::{ApplyOutcome, CampaignState, Decision, DecisionRefusal, Person, Recommendation};
use attest_domain::time::micros;
use attest_domain::{AuditEventDraft, ConnectorId};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::StoreError;
use crate::areas::Reviews;
use crate::sql::{ArrayRows, JsonRows, Sql, bigint_array, json, optional_bool, rows_per_statement, select_json};

/// A campaign: its definition (JSON of `CampaignDefinition`) and where its latest instance is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub connector_id: ConnectorId,
    pub definition: serde_json::Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub next_start_at: Option<DateTime<Utc>>,
    /// The latest instance, if it was ever started.
    pub instance: Option<Instance>,
}

/// One run of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: i64,
    pub campaign_id: i64,
    pub number: i32,
    pub state: CampaignState,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "crate::sql::required_bool")]
    pub sign_ins_known: bool,
    pub announced_at: Option<DateTime<Utc>>,
    pub midpoint_reminded_at: Option<DateTime<Utc>>,
    pub final_reminded_at: Option<DateTime<Utc>>,
    pub summarized_at: Option<DateTime<Utc>>,
    /// The stage running now (or the last one run), of `stages`.
    pub stage: i32,
    pub stages: i32,
    pub stage_started_at: Option<DateTime<Utc>>,
    pub stage_due_at: Option<DateTime<Utc>>,
}

impl Instance {
    /// When the stage running now started.
    pub fn stage_started(&self) -> DateTime<Utc> {
        self.stage_started_at.unwrap_or(self.started_at)
    }

    /// When the stage running now ends (the instance's deadline in its last stage).
    pub fn stage_due(&self) -> DateTime<Utc> {
        self.stage_due_at.unwrap_or(self.due_at)
    }

    /// Whether a stage comes after this one.
    pub fn stages_left(&self) -> bool {
        self.stage < self.stages
    }
}

/// A running campaign in a reviewer's inbox, with their items in it by decision.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct InboxCounts {
    pub campaign_id: i64,
    pub name: String,
    pub description: String,
    pub instance_id: i64,
    pub due_at: DateTime<Utc>,
    pub pending: u64,
    pub approved: u64,
    pub revoked: u64,
    pub not_sure: u64,
}

impl InboxCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.approved + self.revoked + self.not_sure
    }

    /// Their items with `decision` (all of them for `None`).
    pub fn with(&self, decision: Option<Decision>) -> u64 {
        match decision {
            None => self.total(),
            Some(Decision::Pending) => self.pending,
            Some(Decision::Approve) => self.approved,
            Some(Decision::Revoke) => self.revoked,
            Some(Decision::NotSure) => self.not_sure,
        }
    }
}

/// What closing an instance did.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedInstance {
    pub instance: Instance,
    /// Undecided items given the default decision.
    pub defaulted: u64,
    /// Undecided items that kept an earlier stage's approval.
    pub kept: u64,
}

/// What ending a stage did.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvancedStage {
    pub instance: Instance,
    pub closed_stage: i32,
    /// Items the closed stage had.
    pub reviewed: u64,
    /// Items gone on to the next stage.
    pub advanced: u64,
}

/// What a closed stage decided about an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDecision {
    pub item_id: i64,
    pub stage: i32,
    /// Who could decide it in that stage, by name.
    pub reviewers: String,
    pub decision: Decision,
    pub justification: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Each running campaign's count of the reviewer's items matching `filter`, by instance id,
/// when the counts can say (the decision alone filters, in snapshot order); `None` otherwise.
fn inbox_shares(counts: &[InboxCounts], filter: &ItemFilter) -> Option<Vec<(i64, u64)>> {
    let by_counts = filter.reviewer.is_some()
        && filter.recommendation.is_none()
        && filter.resource_kind.is_none()
        && filter.ids.is_none()
        && filter.after.is_none()
        && filter.order == ItemOrder::Snapshot;
    if !by_counts {
        return None;
    }
    let mut shares: Vec<(i64, u64)> = counts
        .iter()
        .filter(|c| filter.instance.is_none_or(|i| i == c.instance_id))
        .map(|c| (c.instance_id, c.with(filter.decision)))
        .collect();
    shares.sort_unstable();
    Some(shares)
}

/// What an item's decision carries besides the decision: kept from the stage that gave an
/// approval, cleared when an item goes on to a new stage.
const DECISION_COLUMNS: [&str; 6] =
    ["justification", "decided_by", "decided_by_id", "decided_at", "decided_recommendation", "decision_audit_seq"];

/// Mail about an instance, each sent once (see [`Reviews::mark_mailed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceMail {
    /// Reviewers told it started.
    Announced,
    /// Reviewers with pending items reminded at the midpoint.
    Midpoint,
    /// The same a day before the deadline.
    Final,
    /// Owners sent the summary after it closed.
    Summarized,
}

impl InstanceMail {
    fn column(self) -> &'static str {
        match self {
            InstanceMail::Announced => "announced_at",
            InstanceMail::Midpoint => "midpoint_reminded_at",
            InstanceMail::Final => "final_reminded_at",
            InstanceMail::Summarized => "summarized_at",
        }
    }
}

const INSTANCE_COLUMNS: &str = "id, campaign_id, number, state, started_by, started_at, due_at, closed_by, closed_at, \
     sign_ins_known, announced_at, midpoint_reminded_at, final_reminded_at, summarized_at, stage, stages, \
     stage_started_at, stage_due_at";

/// A current, effective grant in a campaign's scope, with what reviewing it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedGrant {
    pub grant_id: i64,
    pub principal_id: i64,
    pub principal_object: String,
    pub principal_name: String,
    pub principal_upn: Option<String>,
    pub principal_email: Option<String>,
    pub principal_kind: String,
    pub user_type: Option<String>,
    pub account_enabled: Option<bool>,
    pub department: Option<String>,
    pub manager_object: Option<String>,
    pub created_in_source_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub resource_id: i64,
    pub resource_object: String,
    pub resource_name: String,
    pub resource_kind: String,
    pub resource_attributes: String,
    pub entitlement_id: i64,
    pub entitlement_key: String,
    pub entitlement_name: String,
    pub source: String,
    pub scope: String,
    pub external_ref: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub via_object: Option<String>,
    pub via_name: Option<String>,
}

/// What scanning a connector's grants for a campaign reads.
#[derive(Debug, Clone, Default)]
pub struct GrantScope<'a> {
    pub resource_kinds: &'a [&'a str],
    /// Only these resources (ids); `None`: all of those kinds.
    pub resources: Option<&'a [i64]>,
    pub include_inherited: bool,
}

/// An item to write when an instance starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewItem {
    pub grant_id: i64,
    pub principal_id: i64,
    pub principal_object: String,
    pub principal_name: String,
    pub principal_upn: Option<String>,
    pub principal_kind: String,
    pub resource_id: i64,
    pub resource_object: String,
    pub resource_name: String,
    pub resource_kind: String,
    pub entitlement_key: String,
    pub entitlement_name: String,
    pub held_as: String,
    pub via_name: Option<String>,
    /// The change a revoke makes (JSON of `ChangeAction`).
    pub revoke_action: Option<String>,
    /// Why a revoke cannot be applied through Graph.
    pub revoke_blocked: Option<String>,
    pub recommendation: Recommendation,
    pub recommendation_reason: String,
    pub reviewers: Vec<Person>,
    /// Who reviews in stages 2 and 3, when there are such stages.
    pub later_reviewers: Vec<Vec<Person>>,
}

/// A new item as its batch's JSON carries it (the columns of `start_instance`'s insert).
#[derive(Serialize)]
struct ItemRow<'a>(
    i64,
    i64,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    i64,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
);

impl<'a> ItemRow<'a> {
    fn of(item: &'a NewItem) -> ItemRow<'a> {
        ItemRow(
            item.grant_id,
            item.principal_id,
            &item.principal_object,
            &item.principal_name,
            item.principal_upn.as_deref(),
            &item.principal_kind,
            item.resource_id,
            &item.resource_object,
            &item.resource_name,
            &item.resource_kind,
            &item.entitlement_key,
            &item.entitlement_name,
            &item.held_as,
            item.via_name.as_deref(),
            item.revoke_action.as_deref(),
            item.revoke_blocked.as_deref(),
            item.recommendation.as_str(),
            &item.recommendation_reason,
        )
    }
}

/// The columns of [`ItemRow`].
const ITEM_ROW_COLUMNS: usize = 18;

/// A batch of items as [`ArrayRows`] (PostgreSQL), column for column as [`ItemRow`].
fn item_arrays(batch: &[NewItem]) -> ArrayRows {
    let mut a = ArrayRows::new();
    a.bigint(batch.iter().map(|i| i.grant_id))
        .bigint(batch.iter().map(|i| i.principal_id))
        .text(batch.iter().map(|i| i.principal_object.as_str()))
        .text(batch.iter().map(|i| i.principal_name.as_str()))
        .optional_text(batch.iter().map(|i| i.principal_upn.as_deref()))
        .text(batch.iter().map(|i| i.principal_kind.as_str()))
        .bigint(batch.iter().map(|i| i.resource_id))
        .text(batch.iter().map(|i| i.resource_object.as_str()))
        .text(batch.iter().map(|i| i.resource_name.as_str()))
        .text(batch.iter().map(|i| i.resource_kind.as_str()))
        .text(batch.iter().map(|i| i.entitlement_key.as_str()))
        .text(batch.iter().map(|i| i.entitlement_name.as_str()))
        .text(batch.iter().map(|i| i.held_as.as_str()))
        .optional_text(batch.iter().map(|i| i.via_name.as_deref()))
        .optional_text(batch.iter().map(|i| i.revoke_action.as_deref()))
        .optional_text(batch.iter().map(|i| i.revoke_blocked.as_deref()))
        .text(batch.iter().map(|i| i.recommendation.as_str()))
        .text(batch.iter().map(|i| i.recommendation_reason.as_str()));
    a
}

/// A reviewer of an item in a stage, as a batch's JSON carries it.
#[derive(Serialize)]
struct AssignmentRow<'a>(i64, i32, String, &'a str, Option<&'a str>);

impl<'a> AssignmentRow<'a> {
    fn of(item: i64, stage: i32, reviewer: &'a Person) -> AssignmentRow<'a> {
        AssignmentRow(item, stage, reviewer.object_id.to_lowercase(), &reviewer.name, reviewer.email.as_deref())
    }
}

/// A review item as stored, with its reviewers and, once revoked and queued, its change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: i64,
    pub instance_id: i64,
    pub principal_id: i64,
    pub principal_object: String,
    pub principal_name: String,
    pub principal_upn: Option<String>,
    pub principal_kind: String,
    pub resource_id: i64,
    pub resource_object: String,
    pub resource_name: String,
    pub resource_kind: String,
    pub entitlement_key: String,
    pub entitlement_name: String,
    pub grant_id: Option<i64>,
    pub held_as: String,
    pub via_name: Option<String>,
    pub revoke_action: Option<String>,
    pub revoke_blocked: Option<String>,
    pub recommendation: Recommendation,
    pub recommendation_reason: String,
    pub decision: Decision,
    pub justification: Option<String>,
    pub decided_by: Option<String>,
    pub decided_by_id: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_recommendation: Option<Recommendation>,
    pub decision_audit_seq: Option<i64>,
    pub change_id: Option<i64>,
    pub apply_result: Option<ApplyOutcome>,
    pub apply_error: Option<String>,
    /// The last stage the item reached.
    pub stage: i32,
    /// The change's state and result, when there is one (the outcome follows the queue).
    pub change_state: Option<String>,
    pub change_result: Option<String>,
    pub change_error: Option<String>,
    /// Reviewers as `object id\tname\temail` joined by newlines (see [`Item::reviewers`]).
    #[serde(default)]
    pub reviewer_list: Option<String>,
    /// Comments as a JSON array of `[author, body, at]`, oldest first (see [`Item::comments`]);
    /// text or JSON, as each database hands a nested aggregate over.
    #[serde(default)]
    pub comment_list: Option<serde_json::Value>,
}

impl Item {
    /// The item's reviewers.
    pub fn reviewers(&self) -> Vec<Person> {
        self.reviewer_list
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut parts = line.split('\t');
                let object_id = parts.next()?.to_owned();
                let name = parts.next().unwrap_or_default().to_owned();
                let email = parts.next().filter(|e| !e.is_empty()).map(str::to_owned);
                Some(Person { object_id, name, email })
            })
            .collect()
    }

    /// Comments on the item: `(author, body, when)`, oldest first.
    pub fn comments(&self) -> Vec<(String, String, DateTime<Utc>)> {
        let list = match &self.comment_list {
            Some(serde_json::Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
            Some(value) => value.clone(),
            None => return Vec::new(),
        };
        serde_json::from_value::<Vec<(String, String, DateTime<Utc>)>>(list).unwrap_or_default()
    }

    /// How its revocation ended (or stands), once it was decided revoke and the instance closed.
    pub fn outcome(&self) -> Option<ApplyOutcome> {
        if let Some(outcome) = self.apply_result {
            return Some(outcome);
        }
        let state = self.change_state.as_deref()?.parse().ok()?;
        let result = self.change_result.as_deref().and_then(|r| r.parse().ok());
        Some(ApplyOutcome::of_change(state, result))
    }

    /// Why its revocation failed, when it did.
    pub fn outcome_error(&self) -> Option<&str> {
        self.apply_error.as_deref().or(self.change_error.as_deref())
    }
}

/// An [`Item`] from a row of [`ITEM_COLUMNS`], by position (PostgreSQL's plain rows); its
/// reviewers and comments are filled in afterwards.
fn item_of_row(row: &sea_orm::QueryResult) -> Result<Item, StoreError> {
    fn parsed<T: std::str::FromStr>(text: String) -> Result<T, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        text.parse().map_err(|e| StoreError::Internal(format!("review item: {e}")))
    }
    let text = |i: usize| row.try_get_by_index::<String>(i);
    let maybe = |i: usize| row.try_get_by_index::<Option<String>>(i);
    Ok(Item {
        id: row.try_get_by_index(0)?,
        instance_id: row.try_get_by_index(1)?,
        principal_id: row.try_get_by_index(2)?,
        principal_object: text(3)?,
        principal_name: text(4)?,
        principal_upn: maybe(5)?,
        principal_kind: text(6)?,
        resource_id: row.try_get_by_index(7)?,
        resource_object: text(8)?,
        resource_name: text(9)?,
        resource_kind: text(10)?,
        entitlement_key: text(11)?,
        entitlement_name: text(12)?,
        grant_id: row.try_get_by_index(13)?,
        held_as: text(14)?,
        via_name: maybe(15)?,
        revoke_action: maybe(16)?,
        revoke_blocked: maybe(17)?,
        recommendation: parsed(text(18)?)?,
        recommendation_reason: text(19)?,
        decision: parsed(text(20)?)?,
        justification: maybe(21)?,
        decided_by: maybe(22)?,
        decided_by_id: maybe(23)?,
        decided_at: row.try_get_by_index(24)?,
        decided_recommendation: maybe(25)?.map(parsed).transpose()?,
        decision_audit_seq: row.try_get_by_index(26)?,
        change_id: row.try_get_by_index(27)?,
        apply_result: maybe(28)?.map(parsed).transpose()?,
        apply_error: maybe(29)?,
        stage: row.try_get_by_index(30)?,
        change_state: maybe(31)?,
        change_result: maybe(32)?,
        change_error: maybe(33)?,
        reviewer_list: None,
        comment_list: None,
    })
}

const ITEM_COLUMNS: &[&str] = &[
    "i.id",
    "i.instance_id",
    "i.principal_id",
    "i.principal_object",
    "i.principal_name",
    "i.principal_upn",
    "i.principal_kind",
    "i.resource_id",
    "i.resource_object",
    "i.resource_name",
    "i.resource_kind",
    "i.entitlement_key",
    "i.entitlement_name",
    "i.grant_id",
    "i.held_as",
    "i.via_name",
    "i.revoke_action",
    "i.revoke_blocked",
    "i.recommendation",
    "i.recommendation_reason",
    "i.decision",
    "i.justification",
    "i.decided_by",
    "i.decided_by_id",
    "i.decided_at",
    "i.decided_recommendation",
    "i.decision_audit_seq",
    "i.change_id",
    "i.apply_result",
    "i.apply_error",
    "i.stage",
    "c.state",
    "c.result",
    "c.last_error",
];

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Items of this instance; `None`: every running instance (a reviewer's inbox).
    pub instance: Option<i64>,
    /// Assigned to this reviewer (object id).
    pub reviewer: Option<String>,
    pub decision: Option<Decision>,
    pub recommendation: Option<Recommendation>,
    pub resource_kind: Option<String>,
    /// Only these items.
    pub ids: Option<Vec<i64>>,
    /// Items after this id (the next page, in id order).
    pub after: Option<i64>,
    /// Rows to skip (a numbered page, in any order).
    pub offset: u64,
    pub order: ItemOrder,
    pub limit: u64,
}

/// How items are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ItemOrder {
    /// By campaign instance, then as snapshotted.
    #[default]
    Snapshot,
    /// By resource name (all of a group's members together).
    Resource,
    /// By person (all of someone's access together).
    Person,
}

/// How many items of an instance stand where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub items: u64,
    pub pending: u64,
    pub approved: u64,
    pub revoked: u64,
    /// Answered "not sure": the access is kept.
    pub not_sure: u64,
}

/// A decision on some items.
#[derive(Debug, Clone)]
pub struct Decided<'a> {
    pub items: &'a [i64],
    pub decision: Decision,
    pub justification: Option<&'a str>,
    /// Who, for reading, and as `tenant/objectId`.
    pub by: &'a str,
    pub by_id: Option<&'a str>,
    /// How it was made: `reviewer`, `bulk`, `accept_recommendations`, `default_decision`.
    pub how: &'a str,
}

impl Reviews<'_> {
    /// Saves a new campaign (never started).
    pub async fn create_campaign(
        self,
        name: &str,
        description: &str,
        connector: ConnectorId,
        definition: &serde_json::Value,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Campaign, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO campaigns (name, description, connector_id, definition, created_by, created_at, updated_at) VALUES ",
        );
        sql.tuple([
            name.into(),
            description.into(),
            connector.0.into(),
            definition.to_string().into(),
            created_by.into(),
            now.into(),
            now.into(),
        ]);
        sql.push(" RETURNING id");
        let row = txn.query_one_raw(sql.build()).await?.ok_or_else(|| StoreError::Internal("no id".into()))?;
        let id: i64 = row.try_get_by_index(0)?;
        let details = json!({"name": name, "connector_id": connector.0, "definition": definition});
        audit(self, &txn, created_by, "campaign.created", id, details, now).await?;
        txn.commit().await?;
        self.get_campaign(id).await
    }

    /// The campaign with its latest instance, or `NotFound`.
    pub async fn get_campaign(self, id: i64) -> Result<Campaign, StoreError> {
        self.list_campaigns(Some(id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound { what: "campaign", key: id.to_string() })
    }

    /// Every campaign (or one), newest first, each with its latest instance.
    pub async fn list_campaigns(self, only: Option<i64>) -> Result<Vec<Campaign>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT id, name, description, connector_id, definition, created_by, created_at, next_start_at FROM campaigns",
        );
        if let Some(id) = only {
            sql.push(" WHERE id = ").value(id);
        }
        sql.push(" ORDER BY id DESC");
        type Row = (i64, String, String, i64, String, String, DateTime<Utc>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = select_json(
            &self.db,
            sql,
            &["id", "name", "description", "connector_id", "definition", "created_by", "created_at", "next_start_at"],
        )
        .await?;
        let mut latest: HashMap<i64, Instance> = HashMap::new();
        for instance in self.list_instances(only).await? {
            let keep = latest.get(&instance.campaign_id).is_none_or(|i| i.number < instance.number);
            if keep {
                latest.insert(instance.campaign_id, instance);
            }
        }
        rows.into_iter()
            .map(|(id, name, description, connector, definition, created_by, created_at, next_start_at)| {
                Ok(Campaign {
                    id,
                    name,
                    description,
                    connector_id: ConnectorId(connector),
                    definition: serde_json::from_str(&definition)
                        .map_err(|e| StoreError::Internal(format!("campaign {id}: unreadable definition: {e}")))?,
                    created_by,
                    created_at,
                    next_start_at,
                    instance: latest.remove(&id),
                })
            })
            .collect()
    }

    /// Instances, of one campaign or all, oldest first.
    pub async fn list_instances(self, campaign: Option<i64>) -> Result<Vec<Instance>, StoreError> {
        let mut sql = Sql::new(self.backend(), &format!("SELECT {INSTANCE_COLUMNS} FROM campaign_instances"));
        if let Some(id) = campaign {
            sql.push(" WHERE campaign_id = ").value(id);
        }
        sql.push(" ORDER BY id");
        let columns: Vec<&str> = INSTANCE_COLUMNS.split(", ").collect();
        select_json(&self.db, sql, &columns).await
    }

    /// Closed instances whose owners have not had the summary yet.
    pub async fn list_unsummarized_instances(self) -> Result<Vec<Instance>, StoreError> {
        let mut sql =
            Sql::new(self.backend(), &format!("SELECT {INSTANCE_COLUMNS} FROM campaign_instances WHERE state = "));
        sql.value(CampaignState::Closed.as_str()).push(" AND summarized_at IS NULL ORDER BY id");
        let columns: Vec<&str> = INSTANCE_COLUMNS.split(", ").collect();
        select_json(&self.db, sql, &columns).await
    }

    /// Campaigns whose next instance is due to start by `now`.
    pub async fn list_campaigns_due(self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT id FROM campaigns WHERE next_start_at <= ");
        sql.value(micros(now)).push(" ORDER BY id");
        Ok(select_json::<(i64,)>(&self.db, sql, &["id"]).await?.into_iter().map(|(id,)| id).collect())
    }

    /// Ends a campaign's recurrence (its next instance could not start), saying why.
    pub async fn stop_recurrence(
        self,
        campaign: i64,
        by: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "UPDATE campaigns SET next_start_at = NULL, updated_at = ");
        sql.value(now).push(" WHERE id = ").value(campaign);
        txn.execute_raw(sql.build()).await?;
        audit(self, &txn, by, "campaign.recurrence_stopped", campaign, json!({"why": why}), now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Every running instance (the scheduler's scan: deadlines and reminders).
    pub async fn list_running_instances(self) -> Result<Vec<Instance>, StoreError> {
        let mut sql =
            Sql::new(self.backend(), &format!("SELECT {INSTANCE_COLUMNS} FROM campaign_instances WHERE state = "));
        sql.value(CampaignState::Running.as_str()).push(" ORDER BY id");
        let columns: Vec<&str> = INSTANCE_COLUMNS.split(", ").collect();
        select_json(&self.db, sql, &columns).await
    }

    /// The connector's current, effective grants in `scope`, principals and resources live,
    /// each with what reviewing it needs. The grants travel as ids (in pages); the principals,
    /// resources and entitlements they name are read once each and joined here, so a million
    /// grants do not carry a million copies of the same names across.
    pub async fn scope_snapshot(
        self,
        connector: ConnectorId,
        scope: &GrantScope<'_>,
    ) -> Result<Vec<ScopedGrant>, StoreError> {
        if scope.resources.is_some_and(<[i64]>::is_empty) || scope.resource_kinds.is_empty() {
            return Ok(Vec::new());
        }
        // Everyone who can hold or pass on access (groups too: inherited access names them).
        #[derive(Deserialize)]
        struct P {
            id: i64,
            object: String,
            name: String,
            upn: Option<String>,
            email: Option<String>,
            kind: String,
            user_type: Option<String>,
            #[serde(deserialize_with = "optional_bool")]
            enabled: Option<bool>,
            department: Option<String>,
            manager: Option<String>,
            created: Option<DateTime<Utc>>,
            last_sign_in: Option<DateTime<Utc>>,
        }
        let mut sql = Sql::new(
            self.backend(),
            "SELECT id, external_id, display_name, user_principal_name, email, kind, user_type, account_enabled, \
             department, manager_external_id, created_in_source_at, last_sign_in_at FROM principals \
             WHERE deleted_at IS NULL AND connector_id = ",
        );
        sql.value(connector.0);
        let principals: HashMap<i64, P> = select_json::<P>(
            &self.db,
            sql,
            &[
                "id",
                "external_id",
                "display_name",
                "user_principal_name",
                "email",
                "kind",
                "user_type",
                "account_enabled",
                "department",
                "manager_external_id",
                "created_in_source_at",
                "last_sign_in_at",
            ],
        )
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
        #[derive(Deserialize)]
        struct E {
            id: i64,
            key: String,
            name: String,
            resource: i64,
            object: String,
            resource_name: String,
            kind: String,
            attributes: String,
        }
        let mut sql = Sql::new(
            self.backend(),
            "SELECT e.id, e.key, e.display_name, r.id AS resource, r.external_id, r.display_name AS resource_name, \
             r.kind, r.attributes FROM entitlements e JOIN resources r ON r.id = e.resource_id \
             WHERE r.deleted_at IS NULL AND e.connector_id = ",
        );
        sql.value(connector.0).push(" AND r.kind IN ").tuple(scope.resource_kinds.iter().map(|k| Value::from(*k)));
        if let Some(resources) = scope.resources {
            sql.push(" AND r.id IN ").tuple(resources.iter().map(|r| Value::from(*r)));
        }
        let entitlements: HashMap<i64, E> = select_json::<E>(
            &self.db,
            sql,
            &["id", "key", "display_name", "resource", "external_id", "resource_name", "kind", "attributes"],
        )
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();

        let mut found = Vec::new();
        let mut after = 0i64;
        const PAGE: i64 = 100_000;
        loop {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT id, principal_id, entitlement_id, source, scope, external_ref, expires_at, via_principal_id \
                 FROM grants WHERE ended_at IS NULL AND ineffective_reason IS NULL AND connector_id = ",
            );
            sql.value(connector.0).push(" AND id > ").value(after);
            if !scope.include_inherited {
                sql.push(" AND source <> 'inherited'");
            }
            sql.push(" ORDER BY id LIMIT ").value(PAGE);
            type G = (i64, i64, i64, String, String, Option<String>, Option<DateTime<Utc>>, Option<i64>);
            let page: Vec<G> = select_json(
                &self.db,
                sql,
                &[
                    "id",
                    "principal_id",
                    "entitlement_id",
                    "source",
                    "scope",
                    "external_ref",
                    "expires_at",
                    "via_principal_id",
                ],
            )
            .await?;
            let Some(last) = page.last() else { break };
            after = last.0;
            let done = (page.len() as i64) < PAGE;
            for (grant_id, principal_id, entitlement_id, source, scope, external_ref, expires_at, via) in page {
                let (Some(p), Some(e)) = (principals.get(&principal_id), entitlements.get(&entitlement_id)) else {
                    continue;
                };
                if p.kind == "group" {
                    continue;
                }
                let via = via.and_then(|v| principals.get(&v));
                found.push(ScopedGrant {
                    grant_id,
                    principal_id,
                    principal_object: p.object.clone(),
                    principal_name: p.name.clone(),
                    principal_upn: p.upn.clone(),
                    principal_email: p.email.clone(),
                    principal_kind: p.kind.clone(),
                    user_type: p.user_type.clone(),
                    account_enabled: p.enabled,
                    department: p.department.clone(),
                    manager_object: p.manager.clone(),
                    created_in_source_at: p.created,
                    last_sign_in_at: p.last_sign_in,
                    resource_id: e.resource,
                    resource_object: e.object.clone(),
                    resource_name: e.resource_name.clone(),
                    resource_kind: e.kind.clone(),
                    resource_attributes: e.attributes.clone(),
                    entitlement_id,
                    entitlement_key: e.key.clone(),
                    entitlement_name: e.name.clone(),
                    source,
                    scope,
                    external_ref,
                    expires_at,
                    via_object: via.map(|v| v.object.clone()),
                    via_name: via.map(|v| v.name.clone()),
                });
            }
            if done {
                break;
            }
        }
        Ok(found)
    }

    /// People from a query selecting `external_id, display_name, address`.
    async fn select_people(self, sql: Sql) -> Result<Vec<Person>, StoreError> {
        let rows: Vec<(String, String, Option<String>)> =
            select_json(&self.db, sql, &["external_id", "display_name", "address"]).await?;
        Ok(rows.into_iter().map(|(object_id, name, email)| Person { object_id, name, email }).collect())
    }

    /// Live users of the connector by object id, as people who can review.
    pub async fn people(self, connector: ConnectorId, object_ids: &[String]) -> Result<Vec<Person>, StoreError> {
        let mut found = Vec::new();
        for chunk in object_ids.chunks(5_000) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT external_id, display_name, COALESCE(email, user_principal_name) AS address FROM principals \
                 WHERE kind = 'user' AND deleted_at IS NULL AND connector_id = ",
            );
            sql.value(connector.0).push(" AND external_id IN ").tuple(chunk.iter().map(|i| Value::from(i.clone())));
            found.extend(self.select_people(sql).await?);
        }
        Ok(found)
    }

    /// Live users of the connector by address (mail or user principal name, any case) or
    /// object id.
    pub async fn people_named(self, connector: ConnectorId, names: &[String]) -> Result<Vec<Person>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let lowered: Vec<Value> = names.iter().map(|n| Value::from(n.trim().to_lowercase())).collect();
        let mut sql = Sql::new(
            self.backend(),
            "SELECT external_id, display_name, COALESCE(email, user_principal_name) AS address FROM principals \
             WHERE kind = 'user' AND deleted_at IS NULL AND connector_id = ",
        );
        sql.value(connector.0).push(" AND (lower(email) IN ").tuple(lowered.clone());
        sql.push(" OR lower(user_principal_name) IN ").tuple(lowered.clone());
        sql.push(" OR lower(external_id) IN ").tuple(lowered).push(")");
        self.select_people(sql).await
    }

    /// The users who are direct members of the groups with these object ids (named reviewers
    /// given as groups).
    pub async fn group_members(self, connector: ConnectorId, groups: &[String]) -> Result<Vec<Person>, StoreError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            self.backend(),
            "SELECT DISTINCT p.external_id, p.display_name, COALESCE(p.email, p.user_principal_name) AS address \
             FROM grants g JOIN entitlements e ON e.id = g.entitlement_id JOIN resources r ON r.id = e.resource_id \
             JOIN principals p ON p.id = g.principal_id WHERE e.key = 'member' AND r.kind = 'group' \
             AND g.source <> 'inherited' AND g.ended_at IS NULL AND p.kind = 'user' AND p.deleted_at IS NULL AND g.connector_id = ",
        );
        sql.value(connector.0).push(" AND r.external_id IN ").tuple(groups.iter().map(|g| Value::from(g.clone())));
        self.select_people(sql).await
    }

    /// Each resource's owners who are people (group and application owners).
    pub async fn resource_owners(self, connector: ConnectorId) -> Result<HashMap<i64, Vec<Person>>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT e.resource_id, p.external_id, p.display_name, COALESCE(p.email, p.user_principal_name) AS address \
             FROM grants g JOIN entitlements e ON e.id = g.entitlement_id JOIN principals p ON p.id = g.principal_id \
             WHERE e.key = 'owner' AND g.ended_at IS NULL AND p.kind = 'user' AND p.deleted_at IS NULL AND g.connector_id = ",
        );
        sql.value(connector.0);
        let rows: Vec<(i64, String, String, Option<String>)> =
            select_json(&self.db, sql, &["resource_id", "external_id", "display_name", "address"]).await?;
        let mut owners: HashMap<i64, Vec<Person>> = HashMap::new();
        for (resource, object_id, name, email) in rows {
            owners.entry(resource).or_default().push(Person { object_id, name, email });
        }
        Ok(owners)
    }

    /// Which principals hold which resources as owners (service principals with an owner).
    pub async fn owned_principals(self, connector: ConnectorId) -> Result<Vec<String>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT DISTINCT r.external_id FROM grants g JOIN entitlements e ON e.id = g.entitlement_id \
             JOIN resources r ON r.id = e.resource_id WHERE e.key = 'owner' AND r.kind = 'application' \
             AND g.ended_at IS NULL AND g.connector_id = ",
        );
        sql.value(connector.0);
        let rows: Vec<(String,)> = select_json(&self.db, sql, &["external_id"]).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// People per department (live users), for the peer comparison.
    pub async fn department_sizes(self, connector: ConnectorId) -> Result<HashMap<String, u64>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT department, COUNT(*) AS n FROM principals WHERE kind = 'user' AND deleted_at IS NULL \
             AND department IS NOT NULL AND connector_id = ",
        );
        sql.value(connector.0).push(" GROUP BY department");
        let rows: Vec<(String, i64)> = select_json(&self.db, sql, &["department", "n"]).await?;
        Ok(rows.into_iter().map(|(d, n)| (d, u64::try_from(n).unwrap_or_default())).collect())
    }

    /// Whether a principal is a direct member of a group, for each (principal id, group object
    /// id) asked: what an inherited item's revoke would remove.
    pub async fn direct_memberships(
        self,
        connector: ConnectorId,
        principals: &[i64],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut found = Vec::new();
        for chunk in principals.chunks(5_000) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT g.principal_id, r.external_id FROM grants g JOIN entitlements e ON e.id = g.entitlement_id \
                 JOIN resources r ON r.id = e.resource_id WHERE e.key = 'member' AND r.kind = 'group' \
                 AND g.source = 'direct' AND g.ended_at IS NULL AND g.connector_id = ",
            );
            sql.value(connector.0).push(" AND g.principal_id IN ").tuple(chunk.iter().map(|p| Value::from(*p)));
            found.extend(select_json::<(i64, String)>(&self.db, sql, &["principal_id", "external_id"]).await?);
        }
        Ok(found)
    }

    /// Starts instance `number` of a campaign with its items and their reviewers, in one
    /// transaction: all of it, or (on any error) nothing. The items arrive in batches while
    /// their producer works out the next ones, and an empty batch says they are all there; an
    /// `Err` from the producer, or the batches stopping without that end, rolls it all back.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_instance(
        self,
        campaign: i64,
        number: i32,
        started_by: &str,
        stages: i32,
        stage_due_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
        sign_ins_known: bool,
        batches: &mut tokio::sync::mpsc::Receiver<Result<Vec<NewItem>, String>>,
        next_start_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Instance, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        // SQLite: a million rows go into indexes in random order (by reviewer); with the
        // connection's usual 32 MiB of page cache most inserts re-read a page, with 256 MiB
        // for this transaction they stay in memory. Set back before the connection is reused.
        let sqlite = self.backend() == sea_orm::DbBackend::Sqlite;
        let postgres = self.backend() == sea_orm::DbBackend::Postgres;
        if sqlite {
            txn.execute_unprepared("PRAGMA cache_size = -262144").await?;
        }
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO campaign_instances (campaign_id, number, state, started_by, started_at, due_at, sign_ins_known, \
             stage, stages, stage_started_at, stage_due_at) VALUES ",
        );
        sql.tuple([
            campaign.into(),
            number.into(),
            CampaignState::Running.as_str().into(),
            started_by.into(),
            now.into(),
            micros(due_at).into(),
            sign_ins_known.into(),
            1i32.into(),
            stages.into(),
            now.into(),
            micros(stage_due_at).into(),
        ]);
        sql.push(" RETURNING id");
        let row = txn.query_one_raw(sql.build()).await?.ok_or_else(|| StoreError::Internal("no id".into()))?;
        let instance: i64 = row.try_get_by_index(0)?;
        // Rows travel as one JSON parameter per batch (`JsonRows`): binding a million rows'
        // twenty columns one value at a time is most of what a start would cost.
        let j = JsonRows::new(self.backend());
        let mut counts: HashMap<String, (Person, i64)> = HashMap::new();
        let (mut written, mut assigned) = (0usize, 0usize);
        let mut complete = false;
        while let Some(batch) = batches.recv().await {
            let batch = batch.map_err(StoreError::Invalid)?;
            if batch.is_empty() {
                complete = true;
                break;
            }
            written += batch.len();
            for item in &batch {
                assigned += item.reviewers.len();
                for reviewer in &item.reviewers {
                    counts.entry(reviewer.object_id.to_lowercase()).or_insert_with(|| (reviewer.clone(), 0)).1 += 1;
                }
            }
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO review_items (instance_id, grant_id, principal_id, principal_object, principal_name, \
                 principal_upn, principal_kind, resource_id, resource_object, resource_name, resource_kind, \
                 entitlement_key, entitlement_name, held_as, via_name, revoke_action, revoke_blocked, recommendation, \
                 recommendation_reason, decision) SELECT ",
            );
            sql.value(instance);
            if postgres {
                let a = item_arrays(&batch);
                for i in 0..ITEM_ROW_COLUMNS {
                    sql.push(&format!(", {}", a.get(i)));
                }
                sql.push(", 'pending' FROM ");
                a.from(&mut sql);
            } else {
                let types = [
                    "bigint", "bigint", "text", "text", "text", "text", "bigint", "text", "text", "text", "text",
                    "text", "text", "text", "text", "text", "text", "text",
                ];
                for (i, ty) in types.iter().enumerate() {
                    sql.push(&format!(", {}", j.get(i, ty)));
                }
                sql.push(", 'pending' FROM ");
                let rows: Vec<ItemRow> = batch.iter().map(ItemRow::of).collect();
                j.from(&mut sql, json(&rows)?);
            }
            sql.push(" RETURNING id, grant_id");
            let ids: HashMap<i64, i64> = txn
                .query_all_raw(sql.build())
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get_by_index::<i64>(1)?, row.try_get_by_index::<i64>(0)?)))
                .collect::<Result<_, sea_orm::DbErr>>()?;
            // Reviewers, stage 1 at once (`AssignmentRow` with stage 1), later stages waiting until
            // the stage before lets the item through.
            let mut now_rows: Vec<AssignmentRow> = Vec::new();
            let mut later_rows: Vec<AssignmentRow> = Vec::new();
            for item in &batch {
                let Some(id) = ids.get(&item.grant_id).copied() else { continue };
                now_rows.extend(item.reviewers.iter().map(|r| AssignmentRow::of(id, 1, r)));
                for (people, stage) in item.later_reviewers.iter().zip(2i32..) {
                    later_rows.extend(people.iter().map(|r| AssignmentRow::of(id, stage, r)));
                }
            }
            for (table, rows) in [("review_assignments", now_rows), ("review_stage_reviewers", later_rows)] {
                for chunk in rows.chunks(20_000) {
                    let stage = if table == "review_assignments" { "" } else { "stage, " };
                    let mut sql = Sql::new(
                        self.backend(),
                        &format!(
                            "INSERT INTO {table} (instance_id, {stage}item_id, reviewer_object, reviewer_name, \
                             reviewer_email) SELECT "
                        ),
                    );
                    sql.value(instance);
                    if postgres {
                        let mut a = ArrayRows::new();
                        a.bigint(chunk.iter().map(|r| r.0))
                            .int(chunk.iter().map(|r| r.1))
                            .text(chunk.iter().map(|r| r.2.as_str()))
                            .text(chunk.iter().map(|r| r.3))
                            .optional_text(chunk.iter().map(|r| r.4));
                        if table != "review_assignments" {
                            sql.push(&format!(", {}", a.get(1)));
                        }
                        sql.push(&format!(", {}, {}, {}, {} FROM ", a.get(0), a.get(2), a.get(3), a.get(4)));
                        a.from(&mut sql);
                    } else {
                        if table != "review_assignments" {
                            sql.push(&format!(", {}", j.get(1, "integer")));
                        }
                        sql.push(&format!(
                            ", {}, {}, {}, {} FROM ",
                            j.get(0, "bigint"),
                            j.get(2, "text"),
                            j.get(3, "text"),
                            j.get(4, "text")
                        ));
                        j.from(&mut sql, json(chunk)?);
                    }
                    // `WHERE true`: SQLite's upsert after a SELECT needs a WHERE to parse.
                    sql.push(" WHERE true ON CONFLICT DO NOTHING");
                    txn.execute_raw(sql.build()).await?;
                }
            }
        }
        if !complete {
            return Err(StoreError::Internal("the campaign's items stopped coming before the last".into()));
        }
        // Each reviewer's count, from the items as they went by rather than by reading back
        // what was just written.
        let counts: Vec<(String, (Person, i64))> = counts.into_iter().collect();
        for chunk in counts.chunks(rows_per_statement(7)) {
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO review_inbox_counts (reviewer_object, instance_id, reviewer_name, reviewer_email, pending, \
                 approved, revoked) VALUES ",
            );
            for (i, (reviewer, (person, n))) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(",");
                }
                sql.tuple([
                    reviewer.clone().into(),
                    instance.into(),
                    person.name.clone().into(),
                    person.email.clone().into(),
                    (*n).into(),
                    0i64.into(),
                    0i64.into(),
                ]);
            }
            txn.execute_raw(sql.build()).await?;
        }
        let mut sql = Sql::new(self.backend(), "UPDATE campaigns SET updated_at = ");
        sql.value(now).push(", next_start_at = ").value(next_start_at.map(micros)).push(" WHERE id = ").value(campaign);
        txn.execute_raw(sql.build()).await?;
        let details = json!({"instance": number, "instance_id": instance, "items": written, "due_at": due_at,
            "sign_ins_known": sign_ins_known});
        audit(self, &txn, started_by, "campaign.started", campaign, details, now).await?;
        if sqlite {
            txn.execute_unprepared("PRAGMA cache_size = -32768").await?;
        }
        txn.commit().await?;
        // PostgreSQL plans the first inbox from these: a million new rows must not look empty.
        self.statistics.record(&self.db, "review_items", written as u64).await?;
        self.statistics.record(&self.db, "review_assignments", assigned as u64).await?;
        self.get_instance(instance).await
    }

    pub async fn get_instance(self, id: i64) -> Result<Instance, StoreError> {
        let mut sql =
            Sql::new(self.backend(), &format!("SELECT {INSTANCE_COLUMNS} FROM campaign_instances WHERE id = "));
        sql.value(id);
        let columns: Vec<&str> = INSTANCE_COLUMNS.split(", ").collect();
        select_json::<Instance>(&self.db, sql, &columns)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound { what: "campaign instance", key: id.to_string() })
    }

    /// Items, ordered by id, with their reviewers and their change's state.
    pub async fn list_items(self, filter: &ItemFilter) -> Result<Vec<Item>, StoreError> {
        let postgres = self.backend() == sea_orm::DbBackend::Postgres;
        let mut columns: Vec<String> = ITEM_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        if !postgres {
            // SQLite: the page's reviewers and comments come with its rows, in the one JSON text
            // (handing rows over one by one is what costs there). PostgreSQL reads them in a
            // second query (`with_reviewers_and_comments`): cheaper than two sub-selects a row.
            columns.push(
                "(SELECT group_concat(a.reviewer_object || char(9) || a.reviewer_name || char(9) || \
                 COALESCE(a.reviewer_email, ''), char(10)) FROM review_assignments a WHERE a.item_id = i.id)"
                    .to_owned(),
            );
            columns.push(
                "(SELECT json_group_array(json_array(m.author, m.body, m.created_at) ORDER BY m.id) \
                 FROM review_comments m WHERE m.item_id = i.id)"
                    .to_owned(),
            );
        }
        let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        let select: Vec<String> = columns.iter().zip(&aliases).map(|(c, a)| format!("{c} AS {a}")).collect();
        let order = match filter.order {
            ItemOrder::Snapshot => "i.instance_id, i.id",
            ItemOrder::Resource => "i.resource_name, i.principal_name, i.id",
            ItemOrder::Person => "i.principal_name, i.resource_name, i.id",
        };
        // The page's ids in snapshot order come straight off the reviewer's index.
        let inner_order = match (filter.order, filter.reviewer.is_some()) {
            (ItemOrder::Snapshot, true) => "ra.instance_id, ra.item_id",
            _ => order,
        };
        // The page's ids first (a reviewer's items found through their assignments, sorted on
        // a few columns), then those rows with everything shown: the reviewers' list is built
        // for the page only.
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "SELECT {} FROM review_items i LEFT JOIN changes c ON c.id = i.change_id WHERE i.id IN (SELECT {}",
                select.join(", "),
                if filter.reviewer.is_some() { "ra.item_id" } else { "i.id" }
            ),
        );
        if !self.filtered(&mut sql, filter) {
            return Ok(Vec::new());
        }
        sql.push(&format!(" ORDER BY {inner_order} LIMIT "))
            .value(i64::try_from(filter.limit.max(1)).unwrap_or(i64::MAX));
        sql.push(" OFFSET ").value(i64::try_from(filter.offset).unwrap_or(i64::MAX));
        sql.push(&format!(") ORDER BY {order}"));
        if postgres {
            // PostgreSQL hands rows over cheaply: decoded as they come, the page skips building
            // and parsing one JSON text (a reviewer's inbox is read on every page view).
            let mut items: Vec<Item> =
                self.db.query_all_raw(sql.build()).await?.iter().map(item_of_row).collect::<Result<_, _>>()?;
            self.with_reviewers_and_comments(&mut items).await?;
            return Ok(items);
        }
        let aliases: Vec<&str> = aliases.iter().map(String::as_str).collect();
        select_json(&self.db, sql, &aliases).await
    }

    /// Fills in `items`' reviewers and comments (PostgreSQL) in one query for all of them, as
    /// the sub-selects of [`Reviews::list_items`] give them on SQLite: reviewers (here sorted by
    /// object id), comments oldest first.
    async fn with_reviewers_and_comments(self, items: &mut [Item]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids = || bigint_array(items.iter().map(|i| i.id));
        // One query for both: a reviewer row (kind 0) is `object id, name, email`; a comment row
        // (kind 1) is `author, body, '', created at, comment id`.
        let mut sql = Sql::new(
            self.backend(),
            "SELECT item_id, 0 AS kind, reviewer_object, reviewer_name, COALESCE(reviewer_email, ''), \
             NULL::timestamptz, 0::bigint FROM review_assignments WHERE item_id = ANY(",
        );
        sql.value(ids()).push(
            ") UNION ALL SELECT item_id, 1, author, body, '', created_at, id FROM review_comments WHERE item_id = ANY(",
        );
        sql.value(ids()).push(")");
        // Per item: its reviewers `(object id, name, email)`, and its comments with their ids.
        type Found = (Vec<(String, String, String)>, Vec<(i64, serde_json::Value)>);
        let mut found: HashMap<i64, Found> = HashMap::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            let item: i64 = row.try_get_by_index(0)?;
            let (a, b): (String, String) = (row.try_get_by_index(2)?, row.try_get_by_index(3)?);
            let entry = found.entry(item).or_default();
            if row.try_get_by_index::<i32>(1)? == 0 {
                entry.0.push((a, b, row.try_get_by_index(4)?));
            } else {
                let at: DateTime<Utc> = row.try_get_by_index(5)?;
                entry.1.push((row.try_get_by_index(6)?, json!([a, b, at])));
            }
        }
        for item in items {
            let Some((mut reviewers, mut comments)) = found.remove(&item.id) else { continue };
            reviewers.sort();
            let lines: Vec<String> = reviewers.iter().map(|(o, n, e)| format!("{o}\t{n}\t{e}")).collect();
            item.reviewer_list = (!lines.is_empty()).then(|| lines.join("\n"));
            comments.sort_by_key(|(id, _)| *id);
            item.comment_list = (!comments.is_empty())
                .then(|| serde_json::Value::Array(comments.into_iter().map(|(_, c)| c).collect()));
        }
        Ok(())
    }

    /// How many items match `filter` (its paging aside).
    pub async fn count_items(self, filter: &ItemFilter) -> Result<u64, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT COUNT(*) AS n");
        if !self.filtered(&mut sql, filter) {
            return Ok(0);
        }
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["n"]).await?;
        Ok(rows.first().map_or(0, |(n,)| u64::try_from(*n).unwrap_or(0)))
    }

    /// `FROM` and `WHERE` for `filter` over items `i`; false when nothing can match. A
    /// reviewer's items are found from their assignments (an index on the reviewer), never by
    /// scanning an instance's items: the `CROSS JOIN` keeps that order on SQLite, and
    /// PostgreSQL plans it as the join it is.
    fn filtered(self, sql: &mut Sql, filter: &ItemFilter) -> bool {
        // Through a reviewer's assignments, their decision and instance are read from the
        // assignment itself (see the migration): no item is read for those.
        // Items are joined only when the filter or the order needs their other columns.
        let needs_items =
            filter.recommendation.is_some() || filter.resource_kind.is_some() || filter.order != ItemOrder::Snapshot;
        let from = match &filter.reviewer {
            Some(reviewer) if needs_items => {
                sql.push(" FROM review_assignments ra CROSS JOIN review_items i WHERE i.id = ra.item_id AND ra.reviewer_object = ")
                    .value(reviewer.to_lowercase());
                "ra"
            }
            Some(reviewer) => {
                sql.push(" FROM review_assignments ra WHERE ra.reviewer_object = ").value(reviewer.to_lowercase());
                "ra"
            }
            None => {
                sql.push(" FROM review_items i WHERE 1 = 1");
                "i"
            }
        };
        match filter.instance {
            Some(instance) => {
                sql.push(&format!(" AND {from}.instance_id = ")).value(instance);
            }
            None => {
                sql.push(&format!(" AND {from}.instance_id IN (SELECT id FROM campaign_instances WHERE state = "))
                    .value(CampaignState::Running.as_str())
                    .push(")");
            }
        }
        if let Some(decision) = filter.decision {
            sql.push(&format!(" AND {from}.decision = ")).value(decision.as_str());
        }
        if let Some(recommendation) = filter.recommendation {
            sql.push(" AND i.recommendation = ").value(recommendation.as_str());
        }
        if let Some(kind) = &filter.resource_kind {
            sql.push(" AND i.resource_kind = ").value(kind.clone());
        }
        if let Some(ids) = &filter.ids {
            if ids.is_empty() {
                return false;
            }
            let id = if from == "ra" { "ra.item_id" } else { "i.id" };
            sql.push(&format!(" AND {id} IN ")).tuple(ids.iter().map(|i| Value::from(*i)));
        }
        if let Some(after) = filter.after {
            let id = if from == "ra" { "ra.item_id" } else { "i.id" };
            sql.push(&format!(" AND {id} > ")).value(after);
        }
        true
    }

    /// The running instances where `reviewer` has items, with their items counted by decision:
    /// one row per instance from `review_inbox_counts` (kept in step by the writes), never a
    /// count of their assignments.
    pub async fn inbox_campaigns(self, reviewer: &str) -> Result<Vec<InboxCounts>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT c.id AS campaign_id, c.name, c.description, ci.id AS instance_id, ci.due_at, n.pending, n.approved, \
             n.revoked, n.not_sure \
             FROM review_inbox_counts n CROSS JOIN campaign_instances ci CROSS JOIN campaigns c \
             WHERE ci.id = n.instance_id AND c.id = ci.campaign_id AND n.reviewer_object = ",
        );
        sql.value(reviewer.to_lowercase()).push(" AND ci.state = ").value(CampaignState::Running.as_str());
        sql.push(" AND n.pending + n.approved + n.revoked + n.not_sure > 0 ORDER BY ci.due_at, c.id");
        select_json(
            &self.db,
            sql,
            &[
                "campaign_id",
                "name",
                "description",
                "instance_id",
                "due_at",
                "pending",
                "approved",
                "revoked",
                "not_sure",
            ],
        )
        .await
    }

    /// How many of a reviewer's items match `filter` (its `reviewer`), `counts` being their
    /// running campaigns as [`Reviews::inbox_campaigns`] gave them: by decision alone, the
    /// counts say; other filters count items.
    pub async fn count_inbox(self, counts: &[InboxCounts], filter: &ItemFilter) -> Result<u64, StoreError> {
        match inbox_shares(counts, filter) {
            Some(shares) => Ok(shares.iter().map(|(_, n)| n).sum()),
            None => self.count_items(filter).await,
        }
    }

    /// A page of a reviewer's items (`filter.offset`, `filter.limit`), `counts` as for
    /// [`Reviews::count_inbox`]. In snapshot order and by decision alone, each campaign's share
    /// of the page is read on its own in the reviewer index's order, the counts saying where
    /// the page starts: one query over several running campaigns would sort all the
    /// reviewer's items in them (PostgreSQL's generic plan does) for every page.
    pub async fn list_inbox(self, counts: &[InboxCounts], filter: &ItemFilter) -> Result<Vec<Item>, StoreError> {
        let Some(shares) = inbox_shares(counts, filter) else { return self.list_items(filter).await };
        let (mut skip, mut items) = (filter.offset, Vec::new());
        for (instance, n) in shares {
            if skip >= n {
                skip -= n;
                continue;
            }
            let limit = filter.limit.saturating_sub(items.len() as u64);
            let part = ItemFilter { instance: Some(instance), offset: skip, limit, ..filter.clone() };
            items.extend(self.list_items(&part).await?);
            skip = 0;
            if items.len() as u64 >= filter.limit {
                break;
            }
        }
        Ok(items)
    }

    /// Counts `reviewers`' items in a running instance afresh (every reviewer's for `None`),
    /// inside the write that changed their assignments.
    async fn recount(
        self,
        txn: &impl ConnectionTrait,
        instance: i64,
        reviewers: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let groups: Vec<Option<&[String]>> = match reviewers {
            None => vec![None],
            Some([]) => return Ok(()),
            Some(list) => list.chunks(500).map(Some).collect(),
        };
        for group in groups {
            let mut sql = Sql::new(self.backend(), "DELETE FROM review_inbox_counts WHERE instance_id = ");
            sql.value(instance);
            if let Some(group) = group {
                sql.push(" AND reviewer_object IN ").tuple(group.iter().map(|r| Value::from(r.to_lowercase())));
            }
            txn.execute_raw(sql.build()).await?;
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO review_inbox_counts (reviewer_object, instance_id, reviewer_name, reviewer_email, pending, \
                 approved, revoked, not_sure) SELECT reviewer_object, instance_id, MIN(reviewer_name), MIN(reviewer_email), \
                 SUM(CASE WHEN decision = 'pending' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN decision = 'approve' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN decision = 'revoke' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN decision = 'not_sure' THEN 1 ELSE 0 END) FROM review_assignments WHERE ",
            );
            match group {
                // A few reviewers: through the reviewer index.
                Some(group) => {
                    sql.push("instance_id = ").value(instance);
                    sql.push(" AND reviewer_object IN ").tuple(group.iter().map(|r| Value::from(r.to_lowercase())));
                }
                // Everyone: the instance's items, then their assignments by item.
                None => {
                    sql.push("item_id IN (SELECT id FROM review_items WHERE instance_id = ").value(instance).push(")");
                }
            }
            sql.push(" GROUP BY reviewer_object, instance_id");
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    /// The reviewers assigned any of `items` of an instance.
    async fn reviewers_of(
        self,
        txn: &impl ConnectionTrait,
        instance: i64,
        items: &[i64],
    ) -> Result<Vec<String>, StoreError> {
        let mut found = std::collections::BTreeSet::new();
        for chunk in items.chunks(5_000) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT DISTINCT reviewer_object FROM review_assignments WHERE instance_id = ",
            );
            sql.value(instance).push(" AND item_id IN ").tuple(chunk.iter().map(|i| Value::from(*i)));
            for row in txn.query_all_raw(sql.build()).await? {
                found.insert(row.try_get_by_index::<String>(0)?);
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Every item of an instance, in pages (exports, closing).
    pub async fn all_items(self, instance: i64) -> Result<Vec<Item>, StoreError> {
        let mut all = Vec::new();
        loop {
            let filter = ItemFilter {
                instance: Some(instance),
                after: all.last().map(|i: &Item| i.id),
                limit: 20_000,
                ..Default::default()
            };
            let page = self.list_items(&filter).await?;
            let done = (page.len() as u64) < filter.limit;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// How many items stand where.
    pub async fn progress(self, instance: i64) -> Result<Progress, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT decision, COUNT(*) AS n FROM review_items WHERE instance_id = ");
        sql.value(instance).push(" GROUP BY decision");
        let rows: Vec<(String, i64)> = select_json(&self.db, sql, &["decision", "n"]).await?;
        let mut progress = Progress::default();
        for (decision, n) in rows {
            let n = u64::try_from(n).unwrap_or_default();
            progress.items += n;
            match decision.parse() {
                Ok(Decision::Pending) => progress.pending += n,
                Ok(Decision::Approve) => progress.approved += n,
                Ok(Decision::Revoke) => progress.revoked += n,
                Ok(Decision::NotSure) => progress.not_sure += n,
                Err(_) => {}
            }
        }
        Ok(progress)
    }

    /// Revoked items whose revocation is neither queued nor settled.
    pub async fn count_unapplied(self, instance: i64) -> Result<u64, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT COUNT(*) AS n FROM review_items WHERE decision = 'revoke' AND change_id IS NULL \
             AND apply_result IS NULL AND instance_id = ",
        );
        sql.value(instance);
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["n"]).await?;
        Ok(rows.first().map_or(0, |(n,)| u64::try_from(*n).unwrap_or(0)))
    }

    /// Who decided how much: `(decided by, approved, revoked, not sure)`, the most active
    /// first; the default decision counts as its own decider.
    pub async fn decisions_by_decider(self, instance: i64) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT decided_by, SUM(CASE WHEN decision = 'approve' THEN 1 ELSE 0 END) AS approved, \
             SUM(CASE WHEN decision = 'revoke' THEN 1 ELSE 0 END) AS revoked, \
             SUM(CASE WHEN decision = 'not_sure' THEN 1 ELSE 0 END) AS not_sure FROM review_items \
             WHERE decided_by IS NOT NULL AND instance_id = ",
        );
        sql.value(instance).push(" GROUP BY decided_by ORDER BY COUNT(*) DESC, decided_by LIMIT 200");
        select_json(&self.db, sql, &["decided_by", "approved", "revoked", "not_sure"]).await
    }

    /// Decisions per day (UTC), oldest first: `(YYYY-MM-DD, count)`.
    pub async fn decisions_by_day(self, instance: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let day = match self.backend() {
            sea_orm::DbBackend::Postgres => "to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            _ => "substr(decided_at, 1, 10)",
        };
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "SELECT {day} AS day, COUNT(*) AS n FROM review_items WHERE decided_at IS NOT NULL AND instance_id = "
            ),
        );
        sql.value(instance).push(" GROUP BY 1 ORDER BY 1");
        select_json(&self.db, sql, &["day", "n"]).await
    }

    /// Pending items per reviewer of an instance: `(object id, name, email, pending)`.
    pub async fn pending_by_reviewer(
        self,
        instance: i64,
    ) -> Result<Vec<(String, String, Option<String>, i64)>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT reviewer_object, reviewer_name, reviewer_email, pending FROM review_inbox_counts WHERE instance_id = ",
        );
        sql.value(instance).push(" ORDER BY reviewer_object");
        select_json(&self.db, sql, &["reviewer_object", "reviewer_name", "reviewer_email", "pending"]).await
    }

    /// Records a decision on items of a running instance, with one audit event for all of
    /// them (its chain position is kept on each item as evidence). Returns how many changed.
    /// Whether the decider may is the caller's rule (`attest_domain::review::may_decide`).
    pub async fn decide(self, instance: i64, decided: &Decided<'_>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let state = instance_state(self, &txn, instance).await?;
        if state != CampaignState::Running {
            return Err(DecisionRefusal::NotRunning { state }.into());
        }
        let details = json!({
            "instance_id": instance,
            "items": decided.items,
            "decision": decided.decision,
            "justification": decided.justification,
            "by_id": decided.by_id,
            "how": decided.how,
        });
        let draft = AuditEventDraft {
            occurred_at: now,
            actor: decided.by.to_owned(),
            action: "review.decided".to_owned(),
            target_kind: Some("campaign_instance".to_owned()),
            target_id: Some(instance.to_string()),
            details,
        };
        let event = self.audit().append_audit_in(&txn, draft).await?;
        let reviewers = self.reviewers_of(&txn, instance, decided.items).await?;
        let mut changed = 0;
        for chunk in decided.items.chunks(5_000) {
            let mut sql = Sql::new(self.backend(), "UPDATE review_items SET decision = ");
            sql.value(decided.decision.as_str());
            sql.push(", justification = ").value(decided.justification.map(str::to_owned));
            sql.push(", decided_by = ").value(decided.by);
            sql.push(", decided_by_id = ").value(decided.by_id.map(str::to_owned));
            sql.push(", decided_at = ").value(now);
            sql.push(", decided_recommendation = recommendation, decision_audit_seq = ").value(event.seq);
            sql.push(" WHERE instance_id = ").value(instance);
            sql.push(" AND id IN ").tuple(chunk.iter().map(|i| Value::from(*i)));
            changed += txn.execute_raw(sql.build()).await?.rows_affected();
            let mut sql = Sql::new(self.backend(), "UPDATE review_assignments SET decision = ");
            sql.value(decided.decision.as_str()).push(" WHERE instance_id = ").value(instance);
            sql.push(" AND item_id IN ").tuple(chunk.iter().map(|i| Value::from(*i)));
            txn.execute_raw(sql.build()).await?;
        }
        self.recount(&txn, instance, Some(&reviewers)).await?;
        txn.commit().await?;
        Ok(changed)
    }

    /// Adds a comment to an item, audited.
    pub async fn add_comment(
        self,
        item: i64,
        author: &str,
        author_id: Option<&str>,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO review_comments (item_id, author, author_id, body, created_at) VALUES ",
        );
        sql.tuple([item.into(), author.into(), author_id.map(str::to_owned).into(), body.into(), now.into()]);
        txn.execute_raw(sql.build()).await?;
        let details = json!({"item": item, "comment": body, "author_id": author_id});
        audit(self, &txn, author, "review.commented", item, details, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The comments on these items, oldest first: `(item, author, body, when)`.
    pub async fn comments_on(self, items: &[i64]) -> Result<Vec<(i64, String, String, DateTime<Utc>)>, StoreError> {
        let mut found = Vec::new();
        for chunk in items.chunks(5_000) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT item_id, author, body, created_at FROM review_comments WHERE item_id IN ",
            );
            sql.tuple(chunk.iter().map(|i| Value::from(*i))).push(" ORDER BY id");
            found.extend(select_json(&self.db, sql, &["item_id", "author", "body", "created_at"]).await?);
        }
        Ok(found)
    }

    /// Gives an item to another reviewer (replacing `from`), audited.
    pub async fn reassign(
        self,
        item: i64,
        from: &str,
        to: &Person,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "DELETE FROM review_assignments WHERE item_id = ");
        sql.value(item).push(" AND reviewer_object = ").value(from.to_lowercase());
        if txn.execute_raw(sql.build()).await?.rows_affected() != 1 {
            return Err(StoreError::NotFound { what: "review assignment", key: format!("{item}/{from}") });
        }
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO review_assignments (item_id, instance_id, reviewer_object, reviewer_name, reviewer_email, decision) \
             SELECT id, instance_id, ",
        );
        sql.value(to.object_id.to_lowercase()).push(", ").value(to.name.clone()).push(", ").value(to.email.clone());
        sql.push(", decision FROM review_items WHERE id = ").value(item);
        sql.push(" ON CONFLICT (item_id, reviewer_object) DO NOTHING");
        txn.execute_raw(sql.build()).await?;
        let mut sql = Sql::new(self.backend(), "SELECT instance_id FROM review_items WHERE id = ");
        sql.value(item);
        if let Some(row) = txn.query_one_raw(sql.build()).await? {
            let instance: i64 = row.try_get_by_index(0)?;
            self.recount(&txn, instance, Some(&[from.to_owned(), to.object_id.clone()])).await?;
        }
        let details = json!({"item": item, "from": from, "to": to.object_id, "to_name": to.name});
        audit(self, &txn, by, "review.reassigned", item, details, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Closes a running instance: with `keep_earlier_approvals` an item its last stage left
    /// undecided keeps the latest approval an earlier stage gave it; the undecided items given in
    /// `defaults` then take their default decision (recorded as such), and the instance is
    /// final. Returns the instance and how many items took each kind of decision there.
    pub async fn close_instance(
        self,
        instance: i64,
        closed_by: &str,
        keep_earlier_approvals: bool,
        defaults: &[(i64, Decision)],
        now: DateTime<Utc>,
    ) -> Result<ClosedInstance, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let state = instance_state(self, &txn, instance).await?;
        if state != CampaignState::Running {
            return Err(DecisionRefusal::NotRunning { state }.into());
        }
        let mut kept = 0;
        if keep_earlier_approvals {
            // The approval, its justification, who gave it and its audit event, as the stage
            // that gave it recorded them.
            let latest = |column: &str| {
                format!(
                    "(SELECT d.{column} FROM review_stage_decisions d WHERE d.item_id = review_items.id \
                     AND d.decision = 'approve' ORDER BY d.stage DESC LIMIT 1)"
                )
            };
            let mut sql = Sql::new(self.backend(), "UPDATE review_items SET decision = 'approve'");
            for column in DECISION_COLUMNS {
                sql.push(&format!(", {column} = {}", latest(column)));
            }
            sql.push(" WHERE decision = 'pending' AND stage > 1 AND instance_id = ").value(instance);
            sql.push(
                " AND EXISTS (SELECT 1 FROM review_stage_decisions d WHERE d.item_id = review_items.id \
                 AND d.decision = 'approve')",
            );
            kept = txn.execute_raw(sql.build()).await?.rows_affected();
            if kept > 0 {
                // The assignments carry their item's decision (the counts are made from them).
                let mut sql = Sql::new(
                    self.backend(),
                    "UPDATE review_assignments SET decision = 'approve' WHERE item_id IN \
                     (SELECT id FROM review_items WHERE decision = 'approve' AND stage > 1 AND instance_id = ",
                );
                sql.value(instance).push(")");
                txn.execute_raw(sql.build()).await?;
            }
        }
        let mut defaulted = 0;
        for decision in [Decision::Approve, Decision::Revoke] {
            let ids: Vec<i64> = defaults.iter().filter(|(_, d)| *d == decision).map(|(i, _)| *i).collect();
            for chunk in ids.chunks(5_000) {
                let mut sql = Sql::new(self.backend(), "UPDATE review_items SET decision = ");
                sql.value(decision.as_str()).push(", decided_by = 'default decision', decided_at = ").value(now);
                sql.push(", decided_recommendation = recommendation WHERE decision = 'pending' AND instance_id = ");
                sql.value(instance).push(" AND id IN ").tuple(chunk.iter().map(|i| Value::from(*i)));
                defaulted += txn.execute_raw(sql.build()).await?.rows_affected();
                let mut sql = Sql::new(self.backend(), "UPDATE review_assignments SET decision = ");
                sql.value(decision.as_str()).push(" WHERE instance_id = ").value(instance);
                sql.push(" AND item_id IN ").tuple(chunk.iter().map(|i| Value::from(*i)));
                txn.execute_raw(sql.build()).await?;
            }
        }
        let mut sql = Sql::new(self.backend(), "UPDATE campaign_instances SET state = ");
        sql.value(CampaignState::Closed.as_str()).push(", closed_by = ").value(closed_by);
        sql.push(", closed_at = ").value(now).push(" WHERE id = ").value(instance);
        txn.execute_raw(sql.build()).await?;
        if defaulted + kept > 0 {
            // The reviewers' counts follow the decisions the close made (the campaign page
            // shows them afterwards).
            self.recount(&txn, instance, None).await?;
        }
        let details = json!({"instance_id": instance, "default_decisions": defaulted,
            "earlier_approvals_kept": kept});
        audit(self, &txn, closed_by, "campaign.closed", instance, details, now).await?;
        txn.commit().await?;
        Ok(ClosedInstance { instance: self.get_instance(instance).await?, defaulted, kept })
    }

    /// Ends a running instance's stage and starts the next: what the stage decided about each
    /// of its items is kept (with who could decide it); the items whose decision is in
    /// `going_on` go on, undecided, to the next stage's reviewers (resolved at start), the rest
    /// stop where they are; the stage's reviewers can no longer decide. One transaction.
    pub async fn advance_stage(
        self,
        instance: i64,
        going_on: &[Decision],
        stage_due_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<AdvancedStage, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "SELECT state, stage, stages FROM campaign_instances WHERE id = ");
        sql.value(instance);
        let row = txn
            .query_one_raw(sql.build())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "campaign instance", key: instance.to_string() })?;
        let state: CampaignState = row
            .try_get_by_index::<String>(0)?
            .parse()
            .map_err(|e| StoreError::Internal(format!("campaign instance {instance}: {e}")))?;
        let (stage, stages): (i32, i32) = (row.try_get_by_index(1)?, row.try_get_by_index(2)?);
        if state != CampaignState::Running {
            return Err(DecisionRefusal::NotRunning { state }.into());
        }
        if stage >= stages {
            return Err(DecisionRefusal::LastStage { stage }.into());
        }
        let next = stage + 1;
        let names = match self.backend() {
            sea_orm::DbBackend::Postgres => {
                "COALESCE((SELECT string_agg(a.reviewer_name, ', ' ORDER BY a.reviewer_name) \
                 FROM review_assignments a WHERE a.item_id = i.id), '')"
            }
            _ => {
                "COALESCE((SELECT group_concat(a.reviewer_name, ', ') FROM review_assignments a \
                 WHERE a.item_id = i.id), '')"
            }
        };
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "INSERT INTO review_stage_decisions (item_id, instance_id, stage, reviewers, decision, justification, \
                 decided_by, decided_by_id, decided_at, decided_recommendation, decision_audit_seq) \
                 SELECT i.id, i.instance_id, i.stage, {names}, i.decision, i.justification, i.decided_by, \
                 i.decided_by_id, i.decided_at, i.decided_recommendation, i.decision_audit_seq \
                 FROM review_items i WHERE i.instance_id = "
            ),
        );
        sql.value(instance).push(" AND i.stage = ").value(stage);
        let reviewed = txn.execute_raw(sql.build()).await?.rows_affected();
        let mut sql = Sql::new(
            self.backend(),
            "DELETE FROM review_assignments WHERE item_id IN (SELECT id FROM review_items WHERE instance_id = ",
        );
        sql.value(instance).push(")");
        txn.execute_raw(sql.build()).await?;
        let advanced = if going_on.is_empty() {
            0
        } else {
            let mut sql = Sql::new(self.backend(), "UPDATE review_items SET stage = ");
            sql.value(next).push(", decision = 'pending'");
            for column in DECISION_COLUMNS {
                sql.push(&format!(", {column} = NULL"));
            }
            sql.push(" WHERE instance_id = ").value(instance).push(" AND stage = ").value(stage);
            sql.push(" AND decision IN ").tuple(going_on.iter().map(|d| Value::from(d.as_str())));
            txn.execute_raw(sql.build()).await?.rows_affected()
        };
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO review_assignments (item_id, instance_id, reviewer_object, reviewer_name, reviewer_email, decision) \
             SELECT r.item_id, r.instance_id, r.reviewer_object, r.reviewer_name, r.reviewer_email, 'pending' \
             FROM review_stage_reviewers r CROSS JOIN review_items i WHERE i.id = r.item_id AND r.instance_id = ",
        );
        sql.value(instance).push(" AND r.stage = ").value(next).push(" AND i.stage = ").value(next);
        txn.execute_raw(sql.build()).await?;
        self.recount(&txn, instance, None).await?;
        // The next stage's reviewers are told, and reminded, afresh.
        let mut sql = Sql::new(self.backend(), "UPDATE campaign_instances SET stage = ");
        sql.value(next).push(", stage_started_at = ").value(now);
        sql.push(", stage_due_at = ").value(micros(stage_due_at)).push(", due_at = ").value(micros(due_at));
        sql.push(", announced_at = NULL, midpoint_reminded_at = NULL, final_reminded_at = NULL WHERE id = ");
        sql.value(instance);
        txn.execute_raw(sql.build()).await?;
        let details = json!({"instance_id": instance, "stage": stage, "next_stage": next, "items": reviewed,
            "going_on": advanced, "stage_due_at": stage_due_at});
        audit(self, &txn, by, "campaign.stage_closed", instance, details, now).await?;
        txn.commit().await?;
        Ok(AdvancedStage { instance: self.get_instance(instance).await?, closed_stage: stage, reviewed, advanced })
    }

    /// What earlier stages decided about `items`: `(item, stage decision)`, by stage.
    pub async fn stage_decisions_on(self, items: &[i64]) -> Result<Vec<StageDecision>, StoreError> {
        let mut found = Vec::new();
        for chunk in items.chunks(5_000) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT item_id, stage, reviewers, decision, justification, decided_by, decided_at \
                 FROM review_stage_decisions WHERE item_id IN ",
            );
            sql.tuple(chunk.iter().map(|i| Value::from(*i))).push(" ORDER BY item_id, stage");
            found.extend(
                select_json::<StageDecision>(
                    &self.db,
                    sql,
                    &["item_id", "stage", "reviewers", "decision", "justification", "decided_by", "decided_at"],
                )
                .await?,
            );
        }
        Ok(found)
    }

    /// Records the change queued for each revoked item.
    pub async fn set_item_changes(self, changes: &[(i64, i64)]) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        // One statement per batch: `CASE id WHEN … THEN … END`.
        for chunk in changes.chunks(500) {
            let mut sql = Sql::new(self.backend(), "UPDATE review_items SET change_id = CASE id");
            for (item, change) in chunk {
                sql.push(" WHEN ").value(*item).push(" THEN ").value(*change);
            }
            sql.push(" END WHERE id IN ").tuple(chunk.iter().map(|(i, _)| Value::from(*i)));
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Records how a revoked item ended when no change was queued for it.
    pub async fn set_item_outcomes(self, outcomes: &[(i64, ApplyOutcome, Option<String>)]) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        for chunk in outcomes.chunks(500) {
            let mut sql = Sql::new(self.backend(), "UPDATE review_items SET apply_result = CASE id");
            for (item, outcome, _) in chunk {
                sql.push(" WHEN ").value(*item).push(" THEN ").value(outcome.as_str());
            }
            sql.push(" END, apply_error = CASE id");
            for (item, _, error) in chunk {
                sql.push(" WHEN ").value(*item).push(" THEN ").value(error.clone());
            }
            sql.push(" END WHERE id IN ").tuple(chunk.iter().map(|(i, _, _)| Value::from(*i)));
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Which of `grants` have ended, each with whether its principal or resource is gone from
    /// Entra too (deleted, as the last sync saw it).
    pub async fn ended_grants(self, grants: &[i64]) -> Result<Vec<(i64, bool)>, StoreError> {
        let mut ended = Vec::new();
        for chunk in grants.chunks(5_000) {
            let mut sql = Sql::new(
                self.backend(),
                "SELECT g.id, CASE WHEN p.deleted_at IS NOT NULL OR r.deleted_at IS NOT NULL THEN 1 ELSE 0 END AS gone \
                 FROM grants g JOIN principals p ON p.id = g.principal_id \
                 JOIN entitlements e ON e.id = g.entitlement_id JOIN resources r ON r.id = e.resource_id \
                 WHERE g.ended_at IS NOT NULL AND g.id IN ",
            );
            sql.tuple(chunk.iter().map(|g| Value::from(*g)));
            let rows = select_json::<(i64, i64)>(&self.db, sql, &["id", "gone"]).await?;
            ended.extend(rows.into_iter().map(|(id, gone)| (id, gone == 1)));
        }
        Ok(ended)
    }

    /// Claims an instance's mail of kind `which`: true for the one caller (of any replica)
    /// that marks it first, who then queues it.
    pub async fn mark_mailed(self, instance: i64, which: InstanceMail, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let column = which.column();
        let mut sql = Sql::new(self.backend(), &format!("UPDATE campaign_instances SET {column} = "));
        sql.value(micros(now)).push(&format!(" WHERE {column} IS NULL AND id = ")).value(instance);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() == 1)
    }
}

async fn instance_state(
    reviews: Reviews<'_>,
    txn: &impl ConnectionTrait,
    instance: i64,
) -> Result<CampaignState, StoreError> {
    let mut sql = Sql::new(reviews.backend(), "SELECT state FROM campaign_instances WHERE id = ");
    sql.value(instance);
    let row = txn
        .query_one_raw(sql.build())
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "campaign instance", key: instance.to_string() })?;
    let state: String = row.try_get_by_index(0)?;
    state.parse().map_err(|e| StoreError::Internal(format!("campaign instance {instance}: {e}")))
}

async fn audit(
    reviews: Reviews<'_>,
    txn: &impl ConnectionTrait,
    actor: &str,
    action: &str,
    target: i64,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // What the event is about: an item, an instance, or the campaign.
    let target_kind = match action {
        "review.reassigned" | "review.commented" => "review_item",
        "campaign.closed" | "campaign.stage_closed" => "campaign_instance",
        _ => "campaign",
    };
    reviews.audit().record_in(txn, actor, action, target_kind, target, details, now).await?;
    Ok(())
}
