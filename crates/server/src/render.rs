//! The page templates (`templates/web`, compiled into the binary) and rendering them. A leaf:
//! pages and error responses both render through it, and it knows nothing of either.

use std::sync::LazyLock;

/// Every page template, compiled into the binary so one file is the whole application.
const SOURCES: &[(&str, &str)] = &[
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
];

/// The templates, compiled once. The engine is mail's (`attest_notify::engine`): one template
/// language, read the same way everywhere.
static TEMPLATES: LazyLock<Result<minijinja::Environment<'static>, String>> = LazyLock::new(|| {
    let mut engine = attest_notify::engine();
    engine.add_filter("when", when);
    engine.add_filter("segment", segment);
    for (name, source) in SOURCES {
        engine.add_template(name, source).map_err(|e| attest_notify::describe(&e))?;
    }
    Ok(engine)
});

fn invalid(message: String) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message)
}

/// `{{ at | when }}`: an RFC 3339 time as pages show it ("2026-12-03 09:00 UTC"); nothing (or
/// `or`, as in `when(or="never")`) for `none`.
fn when(value: &minijinja::Value, kwargs: minijinja::value::Kwargs) -> Result<String, minijinja::Error> {
    let or: Option<String> = kwargs.get("or")?;
    kwargs.assert_all_used()?;
    if let Some(text) = value.as_str() {
        return chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string())
            .map_err(|_| invalid(format!("when: '{text}' is not an RFC 3339 time")));
    }
    if value.is_none() {
        return Ok(or.unwrap_or_default());
    }
    Err(invalid(format!("when: {value} is not a time")))
}

/// `{{ name | segment }}`: text as one segment of a URL path, every byte but letters, digits
/// and `-._~` percent-encoded.
fn segment(value: &minijinja::Value) -> Result<String, minijinja::Error> {
    let text = value.as_str().ok_or_else(|| invalid(format!("segment: {value} is not text")))?;
    Ok(text
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect())
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

impl From<minijinja::Error> for RenderError {
    fn from(error: minijinja::Error) -> Self {
        RenderError(attest_notify::describe(&error))
    }
}

/// Renders a template with `context` (anything that serializes to a map: the pages' JSON
/// objects, or their own types).
pub fn render_html(template: &str, context: impl serde::Serialize) -> Result<String, RenderError> {
    render_value(template, minijinja::Value::from(minijinja::value::Serde(context)))
}

/// Renders a template with a context already in the engine's values (as when some of it is
/// objects the template looks into field by field, `template_rows`).
pub fn render_value(template: &str, context: minijinja::Value) -> Result<String, RenderError> {
    let engine = TEMPLATES.as_ref().map_err(|e| RenderError(e.clone()))?;
    Ok(engine.get_template(template)?.render(context)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    #[test]
    fn the_when_filter_shows_times_for_people() {
        let mut engine = attest_notify::engine();
        engine.add_filter("when", super::when);
        engine.add_filter("segment", super::segment);
        engine.add_template("t.html", "{{ a | when }}|{{ b | when(or=\"never\") }}|{{ b | when }}").unwrap();
        engine.add_template("s.html", "{{ a | segment }}").unwrap();
        let render = |name: &str, context: serde_json::Value| {
            engine.get_template(name).unwrap().render(minijinja::Value::from(minijinja::value::Serde(context)))
        };
        let shown = render("t.html", serde_json::json!({"a": "2026-12-03T09:00:59.123456Z", "b": null})).unwrap();
        assert_eq!(shown, "2026-12-03 09:00 UTC|never|");
        assert_eq!(render("s.html", serde_json::json!({"a": "eu west/ä?"})).unwrap(), "eu%20west%2F%C3%A4%3F");
        assert!(render("t.html", serde_json::json!({"a": "yesterday", "b": null})).is_err());
        assert!(render("t.html", serde_json::json!({"a": 3, "b": null})).is_err());
    }

    #[test]
    fn a_missing_name_fails_and_none_prints_nothing() {
        let mut engine = attest_notify::engine();
        engine.add_template("t.html", "[{{ a }}]{% if missing %}no{% endif %}").unwrap();
        engine.add_template("u.html", "{{ missing }}").unwrap();
        engine.add_template("v.html", "{{ a.missing.deeper }}").unwrap();
        let render = |name: &str| {
            engine
                .get_template(name)
                .unwrap()
                .render(minijinja::Value::from(minijinja::value::Serde(serde_json::json!({"a": null}))))
        };
        assert_eq!(render("t.html").unwrap(), "[]");
        assert!(render("u.html").is_err());
        assert!(render("v.html").is_err());
    }
}
