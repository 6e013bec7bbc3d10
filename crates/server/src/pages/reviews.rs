//! `/reviews`: a reviewer's inbox across running campaigns. Anyone signed in may be a reviewer;
//! each sees only the items assigned to them (never their own access, outside a self review),
//! filters them, decides one or many at once with one justification, or accepts Attest's
//! recommendations. What the page does, `/api/v1/reviews` does.

use std::collections::BTreeMap;

use attest_domain::review::{Decision, DecisionRefusal, Recommendation};
use attest_review::{Decide, ReviewError, Reviewer};
use attest_store::{InboxCounts, ItemFilter, ItemOrder};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::{PAGE_SIZE, fetch_page, page_with, query_string, with};
use crate::AppState;
use crate::api_model::{InboxCampaign, ReviewInbox, ReviewItem};
use crate::error::WebError;
use crate::extract::Query;
use crate::forms::{Submitted, one_or_many};
use crate::roles::{Allowed, Viewer, rule};

#[derive(Debug, Default, Clone, Deserialize)]
pub struct InboxQuery {
    /// Only this campaign's items.
    pub campaign: Option<i64>,
    /// `pending` (the default), `approve`, `revoke`, `not_sure` or `all`.
    #[serde(default)]
    pub state: String,
    /// `approve`, `revoke` or `review`.
    #[serde(default)]
    pub recommendation: String,
    /// `group`, `application` or `directory_role`.
    #[serde(default)]
    pub kind: String,
    /// `campaign` (the default), `resource` or `person`.
    #[serde(default)]
    pub order: String,
    pub page: Option<u64>,
}

impl InboxQuery {
    fn link(&self) -> String {
        let campaign = self.campaign.map(|c| c.to_string()).unwrap_or_default();
        query_string(&[
            ("campaign", &campaign),
            ("state", &self.state),
            ("recommendation", &self.recommendation),
            ("kind", &self.kind),
            ("order", &self.order),
        ])
    }
}

/// The viewer as a reviewer.
pub fn reviewer(viewer: &Viewer) -> Reviewer {
    Reviewer { object_id: viewer.user().object_id.clone(), name: viewer.actor(), identity: Some(viewer.actor_id()) }
}

/// The running campaigns where the viewer has items, with how many wait for them.
pub async fn inbox_campaigns(state: &AppState, viewer: &Viewer) -> Result<Vec<InboxCounts>, WebError> {
    Ok(state.store.reviews().inbox_campaigns(&viewer.user().object_id).await?)
}

/// The inbox for `query` (the page and `GET /api/v1/reviews`).
pub async fn inbox_data(state: &AppState, viewer: &Viewer, query: &InboxQuery) -> Result<ReviewInbox, WebError> {
    let me = &viewer.user().object_id;
    let counts = inbox_campaigns(state, viewer).await?;
    let bad = |what: &str, value: &str| WebError::BadRequest(format!("{what} '{value}' is not one this page offers"));
    let decision = match query.state.as_str() {
        "" | "pending" => Some(Decision::Pending),
        "all" => None,
        other => Some(other.parse::<Decision>().map_err(|_| bad("state", other))?),
    };
    let recommendation = match query.recommendation.as_str() {
        "" => None,
        other => Some(other.parse::<Recommendation>().map_err(|_| bad("recommendation", other))?),
    };
    let kind = match query.kind.as_str() {
        "" => None,
        other => Some(other.parse::<attest_domain::ResourceKind>().map_err(|_| bad("kind", other))?.to_string()),
    };
    let order = match query.order.as_str() {
        "" | "campaign" => ItemOrder::Snapshot,
        "resource" => ItemOrder::Resource,
        "person" => ItemOrder::Person,
        other => return Err(bad("order", other)),
    };
    // A campaign the viewer reviews nothing in shows nothing.
    let instance = query.campaign.map(|id| counts.iter().find(|c| c.campaign_id == id).map_or(-1, |c| c.instance_id));
    let filter = ItemFilter {
        instance,
        reviewer: Some(me.clone()),
        decision,
        recommendation,
        resource_kind: kind,
        order,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let reviews = state.store.reviews();
    let total = reviews.count_inbox(&counts, &filter).await?;
    let paged = fetch_page(query.page, |offset| {
        let (filter, counts) = (ItemFilter { offset, ..filter.clone() }, &counts);
        async move { Ok::<_, WebError>((reviews.list_inbox(counts, &filter).await?, total)) }
    })
    .await?;
    Ok(ReviewInbox {
        campaigns: counts.iter().map(InboxCampaign::new).collect(),
        items: ReviewItem::all(&state.store, &paged.items).await?,
        total,
        page: paged.page,
        pages: paged.pages,
    })
}

/// `GET /reviews`
pub async fn inbox(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Query(query): Query<InboxQuery>,
) -> Result<Response, WebError> {
    inbox_page(&state, &viewer, &query, None).await
}

async fn inbox_page(
    state: &AppState,
    viewer: &Viewer,
    query: &InboxQuery,
    error: Option<String>,
) -> Result<Response, WebError> {
    let mut data = inbox_data(state, viewer, query).await?;
    // The rows go to the template as objects, the rest of the page as JSON.
    let rows = crate::template_rows::rows(std::mem::take(&mut data.items));
    let link = query.link();
    let back = if link.is_empty() { "/reviews".to_owned() } else { format!("/reviews?{link}") };
    let extra = json!({
        "query": {
            "campaign": query.campaign,
            "state": if query.state.is_empty() { "pending" } else { query.state.as_str() },
            "recommendation": query.recommendation,
            "kind": query.kind,
            "order": query.order,
        },
        "filter": link,
        "back": back,
        "error": error,
    });
    let status = if extra["error"].is_null() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let objects = minijinja::context! { items => rows };
    Ok((status, page_with(viewer, "reviews.html", with(&data, extra)?, Some(objects))?).into_response())
}

/// A decision from the inbox: the ticked items (or the one whose button was pressed).
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    #[serde(default, deserialize_with = "one_or_many")]
    pub item: Vec<String>,
    /// `approve`, `revoke` or `not_sure`; with `one`, `ID:approve`, `ID:revoke` or `ID:not_sure`
    /// from a row's button.
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub one: String,
    #[serde(default)]
    pub justification: String,
    /// With `decision=reassign`: who gets the ticked items (email, UPN or object id).
    #[serde(default)]
    pub to: String,
    /// With `decision=comment`: what to say about the ticked items.
    #[serde(default)]
    pub comment: String,
    /// The inbox as it was (its filter), to return to.
    #[serde(default)]
    pub back: String,
}

/// What the API takes.
#[derive(Debug, Deserialize)]
pub struct ApiDecide {
    pub items: Vec<i64>,
    pub decision: String,
    #[serde(default)]
    pub justification: String,
}

/// Decides `items` as the viewer: each must be one of theirs in a running campaign (else 404,
/// as if it did not exist), grouped by instance.
pub async fn decide_now(
    state: &AppState,
    viewer: &Viewer,
    items: &[i64],
    decision: &str,
    justification: &str,
    how: &str,
) -> Result<u64, WebError> {
    // Any decision but "pending" (which is no answer), spelt as the domain spells it.
    let decision = decision
        .parse::<Decision>()
        .ok()
        .filter(|d| *d != Decision::Pending)
        .ok_or_else(|| WebError::BadRequest(DecisionRefusal::NoDecision.to_string()))?;
    if items.is_empty() {
        return Err(WebError::BadRequest("tick the items to decide".into()));
    }
    if items.len() > 20_000 {
        return Err(WebError::BadRequest("decide at most 20,000 items at once".into()));
    }
    let me = reviewer(viewer);
    let mut by_instance: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for chunk in items.chunks(5_000) {
        let filter = ItemFilter {
            reviewer: Some(me.object_id.clone()),
            ids: Some(chunk.to_vec()),
            limit: chunk.len() as u64,
            ..Default::default()
        };
        for item in state.store.reviews().list_items(&filter).await? {
            by_instance.entry(item.instance_id).or_default().push(item.id);
        }
    }
    let found: usize = by_instance.values().map(Vec::len).sum();
    if found != items.len() {
        return Err(WebError::NotFound(
            "one of these items is not among your reviews (or its campaign has closed)".into(),
        ));
    }
    let mut decided = 0;
    for (instance, ids) in by_instance {
        let act = Decide { items: &ids, decision, justification, how };
        decided += attest_review::decide(&state.store, instance, &me, &act, state.now()).await.map_err(review_error)?;
    }
    Ok(decided)
}

/// What the API takes to comment.
#[derive(Debug, Deserialize)]
pub struct ApiComment {
    pub items: Vec<i64>,
    pub comment: String,
}

/// Comments on the viewer's `items` (theirs to review); returns how many.
pub async fn comment_now(state: &AppState, viewer: &Viewer, items: &[i64], comment: &str) -> Result<u64, WebError> {
    if items.is_empty() {
        return Err(WebError::BadRequest("tick the items to comment on".into()));
    }
    let me = reviewer(viewer);
    match attest_review::comment(&state.store, items, &me, false, comment, state.now()).await {
        Ok(done) => Ok(done),
        Err(ReviewError::Store(attest_store::StoreError::NotFound { .. }))
        | Err(ReviewError::Refused(DecisionRefusal::NotYours { .. })) => {
            Err(WebError::NotFound("one of these items is not among your reviews (or its campaign has closed)".into()))
        }
        Err(e) => Err(review_error(e)),
    }
}

/// What the API takes to reassign.
#[derive(Debug, Deserialize)]
pub struct ApiReassign {
    pub items: Vec<i64>,
    /// Who gets them: an email, user principal name or object id.
    pub to: String,
}

/// Gives the viewer's `items` to `to` (audited); returns how many.
pub async fn reassign_now(state: &AppState, viewer: &Viewer, items: &[i64], to: &str) -> Result<u64, WebError> {
    if to.trim().is_empty() {
        return Err(WebError::BadRequest("say who gets them: an email or user principal name".into()));
    }
    if items.is_empty() {
        return Err(WebError::BadRequest("tick the items to reassign".into()));
    }
    let me = reviewer(viewer);
    let mut done = 0;
    for item in items {
        match attest_review::reassign(&state.store, *item, &me.object_id, to.trim(), &me.name, state.now()).await {
            Ok(_) => done += 1,
            // Someone the tenant does not know is the reviewer's to fix.
            Err(ReviewError::Store(attest_store::StoreError::NotFound { what: "person", key })) => {
                return Err(WebError::BadRequest(format!(
                    "nobody is '{key}' (by email, user principal name or object id)"
                )));
            }
            Err(ReviewError::Store(attest_store::StoreError::NotFound { .. })) => {
                return Err(WebError::NotFound(format!("item {item} is not among your reviews")));
            }
            Err(e) => return Err(review_error(e)),
        }
    }
    Ok(done)
}

/// A review error as the web answers it: what the person must fix is a bad request.
pub fn review_error(e: ReviewError) -> WebError {
    match e {
        ReviewError::Store(e) => e.into(),
        ReviewError::Refused(refusal @ DecisionRefusal::JustificationNeeded { .. })
        | ReviewError::Refused(refusal @ DecisionRefusal::NoDecision) => WebError::BadRequest(refusal.to_string()),
        ReviewError::Refused(refusal @ (DecisionRefusal::NotYours { .. } | DecisionRefusal::OwnAccess { .. })) => {
            WebError::Forbidden(refusal.to_string())
        }
        ReviewError::Refused(refusal) => WebError::Refused { reason: refusal.code(), message: refusal.to_string() },
        ReviewError::Definition(message) => WebError::BadRequest(message),
        ReviewError::NotStartable(message) => WebError::Refused { reason: "campaign_not_startable", message },
    }
}

/// The inbox's own address for `back`, or the inbox.
fn back_to(back: &str) -> String {
    if back.starts_with("/reviews") && !back.starts_with("//") { back.to_owned() } else { "/reviews".to_owned() }
}

/// `POST /reviews/decide`
pub async fn decide(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Submitted(form): Submitted<DecideForm>,
) -> Result<Response, WebError> {
    let (ids, decision, how) = match form.one.split_once(':') {
        Some((id, decision)) => (vec![id.to_owned()], decision.to_owned(), "reviewer"),
        None => (form.item.clone(), form.decision.clone(), if form.item.len() > 1 { "bulk" } else { "reviewer" }),
    };
    let ids: Vec<i64> = ids
        .iter()
        .map(|i| i.trim().parse().map_err(|_| WebError::BadRequest(format!("'{i}' is not an item"))))
        .collect::<Result<_, _>>()?;
    let back = back_to(&form.back);
    let done = if decision == "reassign" {
        reassign_now(&state, &viewer, &ids, &form.to).await
    } else if decision == "comment" {
        comment_now(&state, &viewer, &ids, &form.comment).await
    } else {
        decide_now(&state, &viewer, &ids, &decision, &form.justification, how).await
    };
    match done {
        Ok(_) => Ok(Redirect::to(&back).into_response()),
        // What the reviewer must fix: the inbox again, saying what.
        Err(WebError::BadRequest(message)) => {
            let query = back.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let query: InboxQuery = serde_urlencoded_query(query);
            inbox_page(&state, &viewer, &query, Some(message)).await
        }
        Err(e) => Err(e),
    }
}

fn serde_urlencoded_query(query: &str) -> InboxQuery {
    let pairs: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .map(|(k, v)| {
            let value = match k.as_str() {
                "campaign" | "page" => v.parse::<i64>().map(serde_json::Value::from).unwrap_or_default(),
                _ => serde_json::Value::String(v),
            };
            (k, value)
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(pairs)).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    /// The campaign whose recommendations are accepted (text from the inbox's form, a number
    /// from the API).
    #[serde(deserialize_with = "crate::forms::number")]
    pub campaign: i64,
    #[serde(default)]
    pub back: String,
}

/// Accepts the recommendations on the viewer's pending items of a campaign they review.
pub async fn accept_now(state: &AppState, viewer: &Viewer, campaign: i64) -> Result<u64, WebError> {
    let me = reviewer(viewer);
    let instance = state
        .store
        .reviews()
        .inbox_campaigns(&me.object_id)
        .await?
        .into_iter()
        .find(|c| c.campaign_id == campaign)
        .map(|c| c.instance_id)
        .ok_or_else(|| WebError::NotFound(format!("you review nothing in campaign {campaign}")))?;
    attest_review::accept_recommendations(&state.store, instance, &me, state.now()).await.map_err(review_error)
}

/// `POST /reviews/accept`
pub async fn accept(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Submitted(form): Submitted<AcceptForm>,
) -> Result<Response, WebError> {
    accept_now(&state, &viewer, form.campaign).await?;
    Ok(Redirect::to(&back_to(&form.back)).into_response())
}
