//! `POST /v1.0/$batch` (graph-facts §7): up to 20 requests with unique ids, each answered with
//! its own status, headers and body; `dependsOn` orders them and a failed dependency makes
//! its dependents 424. Items go through the same router and plumbing as direct requests, so
//! each is authorised, charged and throttled on its own (a throttled item is a 429 with its
//! own `Retry-After` inside a 200 batch). The order of responses is not guaranteed by Graph,
//! and here it is shuffled so that no client comes to rely on it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};
use tower_service::Service;

use crate::error::GraphError;
use crate::state::Sim;

/// At most 20 requests per batch (json-batching.md).
const MAX_REQUESTS: usize = 20;

struct Item {
    id: String,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn parse(body: &Bytes) -> Result<Vec<Item>, GraphError> {
    // [INFER] wordings of batch-level refusals; the docs say only that they are 400s.
    let invalid = |m: &str| GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", m.to_owned());
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid("Invalid batch payload format."))?;
    let requests =
        value.get("requests").and_then(Value::as_array).ok_or_else(|| invalid("Invalid batch payload format."))?;
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return Err(invalid("Number of batch request steps exceeds the maximum of 20."));
    }
    let mut items = Vec::with_capacity(requests.len());
    for request in requests {
        let field = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(id), Some(method), Some(url)) = (field("id"), field("method"), field("url")) else {
            return Err(invalid("Each batch request needs an id, a method and a url."));
        };
        let headers = request.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
        let body = request.get("body").cloned();
        if body.is_some() && !headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            return Err(invalid("Content-Type header is required for a batch request with a body."));
        }
        let depends_on = request
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if items.iter().any(|i: &Item| i.id.eq_ignore_ascii_case(&id)) {
            return Err(invalid("Batch request ids must be unique."));
        }
        items.push(Item { id, method, url, headers, body, depends_on });
    }
    for item in &items {
        for dependency in &item.depends_on {
            if !items.iter().any(|i| i.id.eq_ignore_ascii_case(dependency)) {
                return Err(invalid("A dependsOn entry names a request that is not in the batch."));
            }
        }
    }
    Ok(items)
}

/// `POST /v1.0/$batch`
pub(crate) async fn batch(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, GraphError> {
    let items = parse(&body)?;
    let mut router = crate::server::router(sim.clone());
    // Status per id (lower case), once answered.
    let mut done: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(items.len());
    while done.len() < items.len() {
        let ready: Vec<&Item> = items
            .iter()
            .filter(|i| !done.contains_key(&i.id.to_lowercase()))
            .filter(|i| i.depends_on.iter().all(|d| done.contains_key(&d.to_lowercase())))
            .collect();
        if ready.is_empty() {
            return Err(GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", "The dependsOn entries form a cycle."));
        }
        for item in ready {
            let failed_dependency =
                item.depends_on.iter().any(|d| done.get(&d.to_lowercase()).is_some_and(|s| *s >= 400));
            let response = if failed_dependency {
                json!({"id": item.id, "status": 424, "body": {"error": {"code": "BadRequest", "message": "Failed dependency"}}})
            } else {
                run(&mut router, &headers, item).await
            };
            let status = response["status"].as_u64().unwrap_or(500) as u16;
            done.insert(item.id.to_lowercase(), status);
            responses.push(response);
        }
    }
    if let Ok(mut rng) = sim.rng.lock() {
        responses.shuffle(&mut *rng);
    }
    Ok(Json(json!({"responses": responses})))
}

/// Runs one item through the router with the batch's credentials and the item's headers.
async fn run(router: &mut axum::Router, outer: &HeaderMap, item: &Item) -> Value {
    let path = item.url.trim_start_matches('/');
    if path.starts_with("$batch") || path.starts_with("v1.0/") || path.starts_with("http") {
        // [INFER] URLs are relative to the version root, and batches do not nest.
        return json!({"id": item.id, "status": 400, "body": {"error": {"code": "BadRequest", "message": "Invalid request URL for a batch step."}}});
    }
    let mut request = Request::builder()
        .method(item.method.to_uppercase().as_str())
        .uri(format!("/v1.0/{path}"))
        .extension(crate::server::BatchItem);
    for name in ["authorization", "client-request-id"] {
        if let Some(value) = outer.get(name) {
            request = request.header(name, value);
        }
    }
    for (name, value) in &item.headers {
        if let Some(value) = value.as_str() {
            request = request.header(name.as_str(), value);
        }
    }
    let body = item.body.as_ref().map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let Ok(request) = request.body(body) else {
        return json!({"id": item.id, "status": 400, "body": {"error": {"code": "BadRequest", "message": "Invalid batch step."}}});
    };
    let Ok(response) = router.call(request).await;
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str().to_owned(), value.into());
        }
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    let mut out = json!({"id": item.id, "status": status, "headers": headers});
    if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
        out["body"] = body;
    }
    out
}
