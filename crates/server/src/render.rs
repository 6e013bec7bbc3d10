//! The page templates (`templates/web`, compiled into the binary) and rendering them. A leaf:
//! pages and error responses both render through it, and it knows nothing of either.

use std::sync::LazyLock;

/// The templates, compiled into the binary so one file is the whole application.
static TEMPLATES: LazyLock<Result<tera::Tera, String>> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
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
        ("mail.html", include_str!("../../../templates/web/mail.html")),
        ("error.html", include_str!("../../../templates/web/error.html")),
    ])
    .map_err(|e| format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))?;
    Ok(tera)
});

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
