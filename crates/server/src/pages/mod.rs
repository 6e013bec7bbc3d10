//! Server-rendered pages: templates from `templates/web`, compiled into the binary. Every
//! page works without JavaScript; forms post back and redirect to what they changed.
//!
//! Each module gathers a page's data as the JSON API's own types ([`crate::api_model`]), adds
//! what only the page needs ([`with`]: links, the side panel's state) and renders it with the
//! layout's frame: who is signed in, their roles, and the CSRF token their forms carry. Times
//! are RFC 3339 in the data; templates show them with the `when` filter.

pub mod accounts;
pub mod actions;
pub mod audit;
pub mod campaigns;
pub mod changes;
pub mod connectors;
pub mod dashboard;
pub mod directory;
pub mod mail;
pub mod me;
pub mod requests;
pub mod reviews;
pub mod syncs;

use axum::response::Html;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::WebError;
use crate::render::{render_html, render_value};
use crate::roles::{Access, Viewer};

/// Renders a signed-in page: `context` plus the layout's frame.
pub fn page(viewer: &Viewer, template: &str, context: serde_json::Value) -> Result<Html<String>, WebError> {
    page_with(viewer, template, context, None)
}

/// [`page`], with `objects` (a map of the engine's values) over the JSON context: for data the
/// template reads field by field, never turned into JSON (`template_rows`).
pub fn page_with(
    viewer: &Viewer,
    template: &str,
    context: serde_json::Value,
    objects: Option<minijinja::Value>,
) -> Result<Html<String>, WebError> {
    // The navigation's entry this page is (`aria-current`).
    let current = match template {
        "dashboard.html" => "/",
        "my_access.html" => "/access",
        "people.html" => "/people",
        "service_principals.html" => "/service-principals",
        "resources.html" => context["path"].as_str().unwrap_or_default(),
        "changes.html" => "/changes",
        "syncs.html" => "/syncs",
        "connectors.html" | "connector.html" | "connector_form.html" => "/connectors",
        "audit.html" => "/audit",
        "outbox.html" => "/admin/mail",
        "accounts.html" => "/admin/accounts",
        "reviews.html" => "/reviews",
        "catalog.html" | "request_form.html" => "/catalog",
        "requests.html" | "request.html" | "out_of_band.html" => "/requests",
        "approvals.html" => "/approvals",
        "campaigns.html" | "campaign.html" => "/campaigns",
        _ => "",
    }
    .to_owned();
    let frame = json!({
        "current": current,
        "user": viewer.user(),
        "csrf": viewer.session.csrf_token,
        "roles": viewer.roles.names(),
        "nav": {
            "directory": Access::DirectoryReader.allows(&viewer.roles),
            "audit": Access::AuditReader.allows(&viewer.roles),
            // Campaign owners reach theirs from the mail and the dashboard.
            "campaigns": Access::AuditReader.allows(&viewer.roles),
            "accounts": Access::Admin.allows(&viewer.roles),
        },
    });
    let context = merge(frame, context);
    let html = match objects {
        None => render_html(template, context)?,
        Some(objects) => {
            let json = minijinja::Value::from(minijinja::value::Serde(context));
            // The last map wins where both have a name.
            render_value(template, minijinja::value::merge_maps([json, objects]))?
        }
    };
    Ok(Html(html))
}

fn merge(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// A page's context: `data` (an API answer), plus what only the page needs.
pub fn with(data: &impl serde::Serialize, extra: serde_json::Value) -> Result<serde_json::Value, WebError> {
    let data = serde_json::to_value(data).map_err(|e| WebError::Internal(format!("a page's data: {e}")))?;
    Ok(merge(data, extra))
}

/// A time as pages show it.
pub fn when(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// Rows per page in every list.
pub const PAGE_SIZE: u64 = 50;

/// Paging state for a list: the page asked for (from 1) and the number of pages.
fn paging(page: Option<u64>, total: u64) -> (u64, u64, u64) {
    // Bounded, so a hostile `?page=` cannot overflow an offset.
    let pages = total.div_ceil(PAGE_SIZE).clamp(1, 1_000_000);
    let page = page.unwrap_or(1).clamp(1, pages);
    (page, pages, (page - 1) * PAGE_SIZE)
}

/// One page of a list, and where it stands among the others.
pub struct Paged<T> {
    pub items: T,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
}

/// The page `asked` for of a list that `fetch(offset)` reads a page of (with the total); asked
/// past the end, the last page instead.
pub async fn fetch_page<T, E, F, Fut>(asked: Option<u64>, mut fetch: F) -> Result<Paged<T>, E>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(T, u64), E>>,
{
    let (_, _, offset) = paging(asked, u64::MAX);
    let (mut items, total) = fetch(offset).await?;
    let (page, pages, last) = paging(asked, total);
    if last != offset {
        items = fetch(last).await?.0;
    }
    Ok(Paged { items, total, page, pages })
}

/// A search box's text: trimmed and bounded.
pub fn search_text(q: &str) -> String {
    q.trim().chars().take(200).collect()
}

/// The non-empty values of `pairs` as a query string (`a=1&b=2`, trimmed and encoded), for
/// links that keep a page's filter.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` for a query string.
pub fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
