//! The page templates (`templates/web`, compiled into the binary) and rendering them. A leaf:
//! pages and error responses both render through it, and it knows nothing of either.

use std::sync::LazyLock;

/// The templates, compiled into the binary so one file is the whole application.
static TEMPLATES: LazyLock<Result<tera::Tera, String>> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    tera.register_filter("when", when);
    tera.register_filter("segment", segment);
    tera.add_raw_templates([
        ("layout.html", include_str!("../../../templates/web/layout.html")),
        ("macros.html", include_str!("../../../templates/web/macros.html")),
        ("landing.html", include_str!("../../../templates/web/landing.html")),
        ("dashboard.html", include_str!("../../../templates/web/dashboard.html")),
        ("people.html", include_str!("../../../templates/web/people.html")),
        ("resources.html", include_str!("../../../templates/web/resources.html")),
        ("principal.html", include_str!("../../../templates/web/principal.html")),
        ("resource.html", include_str!("../../../templates/web/resource.html")),
        ("changes.html", include_str!("../../../templates/web/changes.html")),
        ("change.html", include_str!("../../../templates/web/change.html")),
        ("syncs.html", include_str!("../../../templates/web/syncs.html")),
        ("audit.html", include_str!("../../../templates/web/audit.html")),
        ("outbox.html", include_str!("../../../templates/web/outbox.html")),
        ("accounts.html", include_str!("../../../templates/web/accounts.html")),
        ("mail.html", include_str!("../../../templates/web/mail.html")),
        ("my_access.html", include_str!("../../../templates/web/my_access.html")),
        ("catalog.html", include_str!("../../../templates/web/catalog.html")),
        ("request_form.html", include_str!("../../../templates/web/request_form.html")),
        ("requests.html", include_str!("../../../templates/web/requests.html")),
        ("request.html", include_str!("../../../templates/web/request.html")),
        ("approvals.html", include_str!("../../../templates/web/approvals.html")),
        ("service_principals.html", include_str!("../../../templates/web/service_principals.html")),
        ("error.html", include_str!("../../../templates/web/error.html")),
        ("confirm.html", include_str!("../../../templates/web/confirm.html")),
        ("reviews.html", include_str!("../../../templates/web/reviews.html")),
        ("campaigns.html", include_str!("../../../templates/web/campaigns.html")),
        ("campaign.html", include_str!("../../../templates/web/campaign.html")),
        ("connectors.html", include_str!("../../../templates/web/connectors.html")),
        ("connector.html", include_str!("../../../templates/web/connector.html")),
        ("connector_form.html", include_str!("../../../templates/web/connector_form.html")),
        ("setup.html", include_str!("../../../templates/web/setup.html")),
        ("setup_result.html", include_str!("../../../templates/web/setup_result.html")),
        ("out_of_band.html", include_str!("../../../templates/web/out_of_band.html")),
    ])
    .map_err(|e| format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))?;
    Ok(tera)
});

/// `{{ at | when }}`: an RFC 3339 time as pages show it ("2026-12-03 09:00 UTC"); nothing (or
/// `or`, as in `when(or="never")`) for `null`.
fn when(value: &tera::Value, args: &std::collections::HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let shown = match value {
        tera::Value::String(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(at) => at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
            Err(_) => return Err(tera::Error::msg(format!("when: '{text}' is not an RFC 3339 time"))),
        },
        tera::Value::Null => args.get("or").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
        other => return Err(tera::Error::msg(format!("when: {other} is not a time"))),
    };
    Ok(tera::Value::String(shown))
}

/// `{{ name | segment }}`: text as one segment of a URL path, every byte but letters, digits
/// and `-._~` percent-encoded.
fn segment(value: &tera::Value, _: &std::collections::HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let text = value.as_str().ok_or_else(|| tera::Error::msg("segment: not text"))?;
    let encoded = text
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect::<String>();
    Ok(tera::Value::String(encoded))
}

/// Checks that every template parses (at start, so a broken one stops `serve` at once).
pub fn check_templates() -> Result<(), String> {
    TEMPLATES.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// A page that could not be rendered (a template or its data is broken): a bug, shown as an
/// internal error.
#[derive(Debug, thiserror::Error)]
#[error("a page could not be rendered: {0}")]
pub struct RenderError(pub String);

impl From<tera::Error> for RenderError {
    fn from(error: tera::Error) -> Self {
        // tera's Display is the outer error only; the cause says which variable.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        RenderError(message)
    }
}

/// Renders a template with `context` (a JSON object).
pub fn render_html(template: &str, context: serde_json::Value) -> Result<String, RenderError> {
    let tera = TEMPLATES.as_ref().map_err(|e| RenderError(e.clone()))?;
    let context = tera::Context::from_value(context)?;
    Ok(tera.render(template, &context)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    #[test]
    fn the_when_filter_shows_times_for_people() {
        let mut tera = tera::Tera::default();
        tera.register_filter("when", super::when);
        tera.add_raw_template("t", "{{ a | when }}|{{ b | when(or=\"never\") }}|{{ b | when }}").unwrap();
        let context = serde_json::json!({"a": "2026-12-03T09:00:59.123456Z", "b": null});
        let shown = tera.render("t", &tera::Context::from_value(context).unwrap()).unwrap();
        assert_eq!(shown, "2026-12-03 09:00 UTC|never|");
        tera.register_filter("segment", super::segment);
        tera.add_raw_template("s", "{{ a | segment }}").unwrap();
        let context = tera::Context::from_value(serde_json::json!({"a": "eu west/ä?"})).unwrap();
        assert_eq!(tera.render("s", &context).unwrap(), "eu%20west%2F%C3%A4%3F");
        let context = serde_json::json!({"a": "yesterday", "b": null});
        assert!(tera.render("t", &tera::Context::from_value(context).unwrap()).is_err());
    }
}
