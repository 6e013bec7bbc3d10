//! The evidence of an instance, one row per item: who held what and how, who reviewed it, what
//! they decided and why, what Attest recommended then and why, how the revocation ended and by
//! which change, and where the decision sits in the audit chain. Exporting is itself audited.

use attest_domain::AuditEventDraft;
use attest_domain::csv::field;
use attest_store::{Item, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::ReviewError;

/// CSV or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            other => Err(format!("format '{other}' is not csv or json")),
        }
    }
}

/// One item as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceRow {
    pub campaign: String,
    pub instance: i32,
    pub item: i64,
    pub principal: String,
    pub principal_upn: Option<String>,
    pub principal_object_id: String,
    pub principal_kind: String,
    pub resource: String,
    pub resource_kind: String,
    pub resource_object_id: String,
    pub entitlement: String,
    /// `direct`, `jit`, or `inherited via <group>`.
    pub held: String,
    pub reviewers: String,
    pub decision: String,
    pub justification: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// The recommendation when decided (or at the snapshot, if undecided).
    pub recommendation: String,
    pub recommendation_reason: String,
    pub applied: Option<String>,
    pub apply_error: Option<String>,
    pub change_id: Option<i64>,
    /// Position of the decision's event in the audit chain.
    pub audit_seq: Option<i64>,
    /// Comments, `author: text`, joined by ` | `.
    pub comments: String,
    /// The last stage the item reached (multi-stage reviews).
    pub stage: i32,
    /// What earlier stages decided: `stage 1: approve by … (why) [reviewers: …]`, `; `-joined.
    pub earlier_stages: String,
}

const HEADER: [&str; 26] = [
    "campaign",
    "instance",
    "item",
    "principal",
    "principal_upn",
    "principal_object_id",
    "principal_kind",
    "resource",
    "resource_kind",
    "resource_object_id",
    "entitlement",
    "held",
    "reviewers",
    "decision",
    "justification",
    "decided_by",
    "decided_at",
    "recommendation",
    "recommendation_reason",
    "applied",
    "apply_error",
    "change_id",
    "audit_seq",
    "comments",
    "stage",
    "earlier_stages",
];

fn time(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn row(campaign: &str, instance: i32, item: &Item, comments: &[String], stages: &[String]) -> EvidenceRow {
    let held = match (&item.via_name, item.held_as.as_str()) {
        (Some(via), "inherited") => format!("inherited via {via}"),
        (_, held) => held.to_owned(),
    };
    let reviewers: Vec<String> = item
        .reviewers()
        .into_iter()
        .map(|r| match r.email {
            Some(email) => format!("{} <{email}>", r.name),
            None => r.name,
        })
        .collect();
    EvidenceRow {
        campaign: campaign.to_owned(),
        instance,
        item: item.id,
        principal: item.principal_name.clone(),
        principal_upn: item.principal_upn.clone(),
        principal_object_id: item.principal_object.clone(),
        principal_kind: item.principal_kind.clone(),
        resource: item.resource_name.clone(),
        resource_kind: item.resource_kind.clone(),
        resource_object_id: item.resource_object.clone(),
        entitlement: item.entitlement_name.clone(),
        held,
        reviewers: reviewers.join("; "),
        decision: item.decision.to_string(),
        justification: item.justification.clone(),
        decided_by: item.decided_by.clone(),
        decided_at: time(item.decided_at),
        recommendation: item.decided_recommendation.unwrap_or(item.recommendation).to_string(),
        recommendation_reason: item.recommendation_reason.clone(),
        applied: item.outcome().map(|o| o.to_string()),
        apply_error: item.outcome_error().map(str::to_owned),
        change_id: item.change_id,
        audit_seq: item.decision_audit_seq,
        comments: comments.join(" | "),
        stage: item.stage,
        earlier_stages: stages.join("; "),
    }
}

/// The evidence of instance `instance` as CSV or JSON, exporting recorded in the audit log
/// as done by `by`.
pub async fn export(
    store: &Store,
    instance: i64,
    format: ExportFormat,
    by: &str,
    now: DateTime<Utc>,
) -> Result<String, ReviewError> {
    let found = store.reviews().get_instance(instance).await?;
    let campaign = store.reviews().get_campaign(found.campaign_id).await?;
    let items = store.reviews().all_items(instance).await?;
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    let mut comments: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for (item, author, body, _) in store.reviews().comments_on(&ids).await? {
        comments.entry(item).or_default().push(format!("{author}: {body}"));
    }
    let mut stages: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    if found.stages > 1 {
        for d in store.reviews().stage_decisions_on(&ids).await? {
            let by = d.decided_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
            let why = d.justification.as_deref().map(|j| format!(" ({j})")).unwrap_or_default();
            let at = time(d.decided_at).map(|t| format!(" at {t}")).unwrap_or_default();
            stages
                .entry(d.item_id)
                .or_default()
                .push(format!("stage {}: {}{by}{at}{why} [reviewers: {}]", d.stage, d.decision, d.reviewers));
        }
    }
    let none = Vec::new();
    let rows: Vec<EvidenceRow> = items
        .iter()
        .map(|i| {
            let comments = comments.get(&i.id).unwrap_or(&none);
            row(&campaign.name, found.number, i, comments, stages.get(&i.id).unwrap_or(&none))
        })
        .collect();
    let text = match format {
        ExportFormat::Json => {
            serde_json::to_string_pretty(&rows).map_err(|e| ReviewError::Definition(e.to_string()))?
        }
        ExportFormat::Csv => {
            let mut out = HEADER.join(",");
            out.push_str("\r\n");
            for r in &rows {
                let value = serde_json::to_value(r).unwrap_or_default();
                let cells: Vec<String> = HEADER
                    .iter()
                    .map(|h| match &value[*h] {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => field(s),
                        other => field(&other.to_string()),
                    })
                    .collect();
                out.push_str(&cells.join(","));
                out.push_str("\r\n");
            }
            out
        }
    };
    let draft = AuditEventDraft {
        occurred_at: now,
        actor: by.to_owned(),
        action: "campaign.exported".to_owned(),
        target_kind: Some("campaign_instance".to_owned()),
        target_id: Some(instance.to_string()),
        details: serde_json::json!({
            "campaign_id": campaign.id,
            "instance": found.number,
            "format": if format == ExportFormat::Csv { "csv" } else { "json" },
            "rows": rows.len(),
        }),
    };
    store.audit().append_audit_event(draft).await?;
    Ok(text)
}
