//! The inbox's rows as template objects: the page looks each field up on the API's own
//! [`ReviewItem`] instead of on a copy of it. With 50 rows a page, building that copy (the
//! item as JSON, then as the engine's values) cost as much as rendering the rows did.
//!
//! The fields are the API's, by the same names: a test checks every field against the item's
//! JSON, so the page and the API cannot disagree.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Serde, Value};

use crate::api_model::{ReviewItem, ReviewPrincipal, ReviewResource};

/// The rows, in order, for `{% for i in items %}`.
pub fn rows(items: Vec<ReviewItem>) -> Value {
    Value::from(items.into_iter().map(|item| Value::from_object(Row::new(item))).collect::<Vec<_>>())
}

fn text(value: &str) -> Value {
    Value::from(value)
}

fn maybe(value: &Option<String>) -> Value {
    value.as_deref().map_or(Value::from(()), Value::from)
}

#[derive(Debug)]
struct Row {
    item: ReviewItem,
    /// Looked up several times a row: made once.
    principal: Value,
    resource: Value,
}

impl Row {
    fn new(item: ReviewItem) -> Row {
        let principal = Value::from_object(item.principal.clone());
        let resource = Value::from_object(item.resource.clone());
        Row { item, principal, resource }
    }
}

const ROW_FIELDS: &[&str] = &[
    "id",
    "instance_id",
    "principal",
    "resource",
    "entitlement",
    "held",
    "via",
    "reviewers",
    "recommendation",
    "recommendation_reason",
    "decision",
    "justification",
    "decided_by",
    "decided_at",
    "revoke_blocked",
    "change_id",
    "applied",
    "apply_error",
    "comments",
    "stage",
    "earlier_stages",
];

impl Object for Row {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = &self.item;
        Some(match key.as_str()? {
            "id" => Value::from(i.id),
            "instance_id" => Value::from(i.instance_id),
            "principal" => self.principal.clone(),
            "resource" => self.resource.clone(),
            "entitlement" => text(&i.entitlement),
            "held" => text(&i.held),
            "via" => maybe(&i.via),
            "reviewers" => Value::from(Serde(&i.reviewers)),
            "recommendation" => text(&i.recommendation),
            "recommendation_reason" => text(&i.recommendation_reason),
            "decision" => text(&i.decision),
            "justification" => maybe(&i.justification),
            "decided_by" => maybe(&i.decided_by),
            "decided_at" => Value::from(Serde(&i.decided_at)),
            "revoke_blocked" => maybe(&i.revoke_blocked),
            "change_id" => Value::from(Serde(&i.change_id)),
            "applied" => maybe(&i.applied),
            "apply_error" => maybe(&i.apply_error),
            "comments" => Value::from(Serde(&i.comments)),
            "stage" => Value::from(i.stage),
            "earlier_stages" => Value::from(Serde(&i.earlier_stages)),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(ROW_FIELDS)
    }
}

impl Object for ReviewPrincipal {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "id" => Value::from(self.id),
            "object_id" => text(&self.object_id),
            "name" => text(&self.name),
            "upn" => maybe(&self.upn),
            "kind" => text(&self.kind),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["id", "object_id", "name", "upn", "kind"])
    }
}

impl Object for ReviewResource {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "id" => Value::from(self.id),
            "object_id" => text(&self.object_id),
            "name" => text(&self.name),
            "kind" => text(&self.kind),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["id", "object_id", "name", "kind"])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::api_model::{ApiComment, ApiReviewer, ApiStageDecision};

    fn item() -> ReviewItem {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-05T09:00:00.123456Z").unwrap().to_utc();
        ReviewItem {
            id: 7,
            instance_id: 3,
            principal: ReviewPrincipal {
                id: 11,
                object_id: "00000000-0000-4000-8000-000000000011".into(),
                name: "Ada <Lovelace>".into(),
                upn: Some("ada@contoso.com".into()),
                kind: "user".into(),
            },
            resource: ReviewResource {
                id: 12,
                object_id: "00000000-0000-4000-9000-000000000012".into(),
                name: "Finance & Co".into(),
                kind: "group".into(),
            },
            entitlement: "Member".into(),
            held: "inherited".into(),
            via: Some("Finance EMEA".into()),
            reviewers: vec![ApiReviewer {
                object_id: "00000000-0000-4000-8000-000000000013".into(),
                name: "Bob".into(),
                email: None,
            }],
            recommendation: "revoke".into(),
            recommendation_reason: "no sign-in in the last 30 days".into(),
            decision: "revoke".into(),
            justification: Some("left".into()),
            decided_by: Some("bob@contoso.com".into()),
            decided_at: Some(at),
            revoke_blocked: None,
            change_id: Some(99),
            applied: Some("applied".into()),
            apply_error: None,
            comments: vec![ApiComment { author: "bob@contoso.com".into(), body: "asked HR".into(), at }],
            stage: 2,
            earlier_stages: vec![ApiStageDecision {
                stage: 1,
                reviewers: "Carol".into(),
                decision: "approve".into(),
                justification: None,
                decided_by: Some("carol@contoso.com".into()),
                decided_at: Some(at),
            }],
        }
    }

    #[test]
    fn a_row_has_every_field_of_the_items_json_and_no_other() {
        let item = item();
        let json = serde_json::to_value(&item).unwrap();
        let row = Value::from_object(Row::new(item));
        // The row as the engine sees it, serialized field by field through the object.
        assert_eq!(serde_json::to_value(&row).unwrap(), json);
        let mut fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut listed = ROW_FIELDS.to_vec();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(fields, listed, "ROW_FIELDS lists the API's fields");
        assert!(row.get_attr("missing").unwrap().is_undefined());
    }
}
