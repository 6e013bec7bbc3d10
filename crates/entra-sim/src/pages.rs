//! The few HTML pages the identity platform shows (sign-in, admin consent, errors, form_post):
//! plain server-rendered HTML that works without JavaScript, for demos and browser tests.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}\
         button{{display:block;width:100%;text-align:left;margin:.25rem 0;padding:.5rem}}\
         .error{{color:#a80000}} small{{color:#555}}</style></head>\
         <body><p><small>Entra simulator: not Microsoft</small></p><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

/// An error the identity platform shows instead of redirecting (the redirect URI cannot be
/// trusted, or there is nothing to redirect to).
pub(crate) fn error_page(code: u32, message: &str) -> Response {
    let body = format!("<p class=\"error\" id=\"error\">AADSTS{code}: {}</p>", escape(message));
    page(StatusCode::BAD_REQUEST, "Sorry, but we're having trouble signing you in.", &body)
}

/// `uri` with `values` appended to its query string.
pub(crate) fn with_query(uri: &str, values: &[(&str, String)]) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(values.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{encoded}")
}

/// A 303 to `location`; a page instead if the (registered) URI cannot be a header value.
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page(50011, "The redirect URI is not a valid URI."),
    }
}

/// Hidden inputs carrying `fields` through a form.
pub(crate) fn hidden(fields: &[(&str, Option<&str>)]) -> String {
    fields
        .iter()
        .filter_map(|(name, value)| {
            value.map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(v)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }
}
