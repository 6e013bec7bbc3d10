//! Attribute paths, parsed once for filters, PATCH paths and `attributes=` projections:
//! `attr`, `attr.sub`, `attr[sub op value]`, `attr[sub op value].sub`, each optionally qualified
//! by a schema URN (`urn:…:enterprise:2.0:User:department`), or a schema URN alone
//! (RFC 7644 §3.4.2.2 `attrPath` / `valuePath`, §3.5.2 `path`).
//!
//! The scanner only knows the grammar. Which attributes and operators a caller supports is the
//! caller's business ([`crate::filter`], [`crate::patch`]), so their errors can say exactly what
//! is unsupported.

use std::fmt;

use crate::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// Schema URNs recognised as a prefix even though they contain `:` and `.` themselves.
const KNOWN_SCHEMAS: [&str; 3] = [ENTERPRISE_USER_SCHEMA, USER_SCHEMA, GROUP_SCHEMA];

/// The comparison operators of RFC 7644 §3.4.2.2 that take a value (`pr` takes none).
const VALUE_OPERATORS: [&str; 9] = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];

/// A parsed attribute path. Names are kept as written; compare them with the `is_*` helpers,
/// which ignore case as SCIM requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrPath {
    /// The schema URN the path is qualified with, if any.
    pub schema: Option<String>,
    /// The attribute; `None` when the path is a schema URN alone.
    pub attr: Option<String>,
    /// The `[…]` value filter selecting elements of a multi-valued attribute.
    pub filter: Option<Box<Comparison>>,
    /// The sub-attribute after `.`.
    pub sub: Option<String>,
}

impl AttrPath {
    /// Whether the attribute is `name` (any case).
    pub fn attr_is(&self, name: &str) -> bool {
        self.attr.as_deref().is_some_and(|attr| attr.eq_ignore_ascii_case(name))
    }

    /// Whether the path is qualified with `urn` (any case).
    pub fn schema_is(&self, urn: &str) -> bool {
        self.schema.as_deref().is_some_and(|schema| schema.eq_ignore_ascii_case(urn))
    }

    /// Whether the path is unqualified or qualified with `urn`.
    pub fn in_schema(&self, urn: &str) -> bool {
        self.schema.is_none() || self.schema_is(urn)
    }

    /// Whether the sub-attribute is `name` (any case).
    pub fn sub_is(&self, name: &str) -> bool {
        self.sub.as_deref().is_some_and(|sub| sub.eq_ignore_ascii_case(name))
    }

    /// Whether the path is just the attribute `name`: no filter, no sub-attribute.
    pub fn is_plain(&self, name: &str) -> bool {
        self.attr_is(name) && self.filter.is_none() && self.sub.is_none()
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.schema, &self.attr) {
            (Some(schema), Some(attr)) => write!(f, "{schema}:{attr}")?,
            (Some(schema), None) => f.write_str(schema)?,
            (None, Some(attr)) => f.write_str(attr)?,
            (None, None) => {}
        }
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        match &self.sub {
            Some(sub) => write!(f, ".{sub}"),
            None => Ok(()),
        }
    }
}

/// `path op value`, e.g. `type eq "work"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comparison {
    /// The attribute compared.
    pub path: AttrPath,
    /// The operator, lower-cased (`eq`, `sw`, `pr`, …).
    pub op: String,
    /// The value; `None` only for `pr`.
    pub value: Option<Literal>,
}

impl Comparison {
    /// Whether this is `name eq <value>` on a plain attribute, returning the value.
    pub fn eq_on(&self, name: &str) -> Option<&Literal> {
        (self.op == "eq" && self.path.schema.is_none() && self.path.is_plain(name))
            .then_some(self.value.as_ref())
            .flatten()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.op)?;
        match &self.value {
            Some(Literal::Quoted(text)) => write!(f, " {}", serde_json::Value::String(text.clone())),
            Some(Literal::Bare(text)) => write!(f, " {text}"),
            None => Ok(()),
        }
    }
}

/// A comparison value: a JSON string, or a bare token (`true`, `42`, or the unquoted
/// `externalId eq jyoung` of an old Entra example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Literal {
    /// A double-quoted string, escapes decoded.
    Quoted(String),
    /// An unquoted token, as written.
    Bare(String),
}

impl Literal {
    /// The text of the value.
    pub fn text(&self) -> &str {
        match self {
            Self::Quoted(text) | Self::Bare(text) => text,
        }
    }

    /// `true`/`false` in any case, quoted or not.
    pub fn as_bool(&self) -> Option<bool> {
        let text = self.text();
        if text.eq_ignore_ascii_case("true") {
            Some(true)
        } else if text.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }
}

/// Text that is not a path. `in_brackets` says whether the fault lies inside a `[…]` value
/// filter, which RFC 7644 reports as `invalidFilter` even in a PATCH path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// What is wrong and where.
    pub detail: String,
    /// Whether the scanner was inside `[…]`.
    pub in_brackets: bool,
}

/// Parses all of `text` as one attribute path.
pub(crate) fn parse_path(text: &str) -> Result<AttrPath, SyntaxError> {
    let mut scanner = Scanner::new(text);
    let path = scanner.path()?;
    scanner.skip_ws();
    match scanner.peek() {
        None => Ok(path),
        Some(c) => Err(scanner.error(format!("unexpected '{c}' after the path '{path}'"))),
    }
}

/// A cursor over filter or path text. Positions are byte offsets; every slice goes through
/// `get`, so no input can make it panic.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    in_brackets: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self { text, pos: 0, in_brackets: false }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    /// The next character, if any.
    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Skips white space.
    pub fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    /// Consumes `c` if it comes next.
    pub fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    /// Consumes a run of name characters (letters, digits, `-_$.:`), possibly empty. Paths,
    /// operators and the keywords `and`/`or`/`not` are all words.
    pub fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    /// The byte offset reached, for a later [`Scanner::reset`].
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Goes back to an offset returned by [`Scanner::position`].
    pub fn reset(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// An error at the current position.
    pub fn error(&self, detail: impl Into<String>) -> SyntaxError {
        SyntaxError {
            detail: format!("{} (at character {})", detail.into(), self.char_index()),
            in_brackets: self.in_brackets,
        }
    }

    fn char_index(&self) -> usize {
        self.text.get(..self.pos).map_or(0, |before| before.chars().count()) + 1
    }

    /// What comes next, for "expected X, found Y" messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end".to_owned(),
            Some(c) => format!("'{c}'"),
        }
    }

    /// An attribute path, with an optional `[…]` value filter (not nested) and sub-attribute.
    pub fn path(&mut self) -> Result<AttrPath, SyntaxError> {
        self.skip_ws();
        let token = self.word();
        if token.is_empty() {
            return Err(self.error(format!("expected an attribute name, found {}", self.found())));
        }
        let (schema, rest) =
            split_schema(token).ok_or_else(|| self.error(format!("'{token}' is not an attribute path")))?;
        let (attr, sub) = match rest {
            None => (None, None),
            Some(rest) => {
                let (attr, sub) = match rest.split_once('.') {
                    Some((attr, sub)) => (attr, Some(sub)),
                    None => (rest, None),
                };
                if !is_attr_name(attr) || sub.is_some_and(|sub| !is_attr_name(sub)) {
                    return Err(self.error(format!("'{token}' is not an attribute path")));
                }
                (Some(attr.to_owned()), sub.map(str::to_owned))
            }
        };
        let mut path = AttrPath { schema: schema.map(str::to_owned), attr, filter: None, sub };
        if self.peek() == Some('[') {
            if path.attr.is_none() || path.sub.is_some() || self.in_brackets {
                return Err(self.error(format!("a '[…]' filter cannot follow '{path}'")));
            }
            self.pos += 1;
            self.in_brackets = true;
            let comparison = self.comparison()?;
            self.skip_ws();
            if !self.eat(']') {
                return Err(self.error(format!("expected ']', found {}", self.found())));
            }
            self.in_brackets = false;
            path.filter = Some(Box::new(comparison));
            if self.eat('.') {
                let sub = self.word();
                if !is_attr_name(sub) {
                    return Err(self.error(format!("'{sub}' is not a sub-attribute name")));
                }
                path.sub = Some(sub.to_owned());
            }
        }
        Ok(path)
    }

    /// `path op value` or `path pr`. Any RFC operator is accepted here; callers refuse the ones
    /// they do not support, naming them.
    pub fn comparison(&mut self) -> Result<Comparison, SyntaxError> {
        let path = self.path()?;
        self.skip_ws();
        let at = self.pos;
        let op = self.word().to_ascii_lowercase();
        if op.is_empty() {
            return Err(self.error(format!("expected an operator after '{path}', found {}", self.found())));
        }
        if op == "pr" {
            return Ok(Comparison { path, op, value: None });
        }
        if !VALUE_OPERATORS.contains(&op.as_str()) {
            self.pos = at;
            return Err(self.error(format!("'{op}' is not a comparison operator")));
        }
        let value = self.value()?;
        Ok(Comparison { path, op, value: Some(value) })
    }

    fn value(&mut self) -> Result<Literal, SyntaxError> {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with('"') {
            let mut escaped = false;
            let end = rest.char_indices().skip(1).find_map(|(at, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes.then_some(at)
            });
            let Some(end) = end else { return Err(self.error("unterminated string")) };
            let quoted = rest.get(..=end).unwrap_or("");
            let text = serde_json::from_str::<String>(quoted).map_err(|_| self.error("invalid escape in string"))?;
            self.pos += end + 1;
            return Ok(Literal::Quoted(text));
        }
        let len = rest.find(|c: char| c.is_whitespace() || "()[]\"".contains(c)).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error(format!("expected a value, found {}", self.found())));
        }
        self.pos += len;
        Ok(Literal::Bare(rest.get(..len).unwrap_or("").to_owned()))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_$.:".contains(c)
}

/// `ALPHA *(nameChar)`, or `$ref` (RFC 7643 §2.1, §7).
fn is_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        Some('$') => name.eq_ignore_ascii_case("$ref"),
        _ => false,
    }
}

/// Splits a URN-qualified token into (schema, attribute part). Known schemas are matched as
/// prefixes (they contain `:` and `.`); any other `urn:` token splits at its last `:`. A token
/// that is a known schema alone has no attribute part. `None` when the token is malformed.
fn split_schema(token: &str) -> Option<(Option<&str>, Option<&str>)> {
    if !token.get(..4).is_some_and(|head| head.eq_ignore_ascii_case("urn:")) {
        return (!token.contains(':')).then_some((None, Some(token)));
    }
    for known in KNOWN_SCHEMAS {
        let (Some(head), Some(tail)) = (token.get(..known.len()), token.get(known.len()..)) else { continue };
        if !head.eq_ignore_ascii_case(known) {
            continue;
        }
        if tail.is_empty() {
            return Some((Some(head), None));
        }
        if let Some(attr) = tail.strip_prefix(':') {
            return Some((Some(head), Some(attr)));
        }
    }
    let (schema, attr) = token.rsplit_once(':')?;
    (!attr.is_empty()).then_some((Some(schema), Some(attr)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn path(text: &str) -> AttrPath {
        parse_path(text).unwrap()
    }

    #[test]
    fn plain_and_dotted_paths() {
        let p = path("userName");
        assert_eq!((p.schema, p.attr.as_deref(), p.sub), (None, Some("userName"), None));
        let p = path("name.givenName");
        assert!(p.attr_is("NAME") && p.sub_is("givenname"));
        assert!(path("$ref").attr_is("$ref"));
    }

    #[test]
    fn filtered_paths() {
        let p = path(r#"emails[type eq "work"].value"#);
        assert!(p.attr_is("emails") && p.sub_is("value"));
        let filter = p.filter.unwrap();
        assert_eq!(filter.eq_on("type"), Some(&Literal::Quoted("work".to_owned())));
        let p = path(r#"members[value eq "7f4bc1a3-1"]"#);
        assert_eq!(p.filter.unwrap().eq_on("value").unwrap().text(), "7f4bc1a3-1");
        let p = path("EMAILS[ TYPE  EQ  work ].VALUE");
        assert_eq!(p.filter.unwrap().eq_on("type"), Some(&Literal::Bare("work".to_owned())));
        assert_eq!(p.sub.as_deref(), Some("VALUE"));
    }

    #[test]
    fn urn_qualified_paths() {
        let p = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber");
        assert!(p.schema_is(ENTERPRISE_USER_SCHEMA) && p.attr_is("employeeNumber"));
        let p = path("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:manager.value");
        assert!(p.schema_is(ENTERPRISE_USER_SCHEMA) && p.attr_is("manager") && p.sub_is("value"));
        let p = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
        assert!(p.schema_is(ENTERPRISE_USER_SCHEMA) && p.attr.is_none());
        let p = path("urn:example:custom:1.0:Thing:colour");
        assert_eq!(p.schema.as_deref(), Some("urn:example:custom:1.0:Thing"));
        assert!(p.attr_is("colour"));
        assert_eq!(p.to_string(), "urn:example:custom:1.0:Thing:colour");
    }

    #[test]
    fn malformed_paths_are_errors() {
        for text in [
            "",
            "   ",
            "name.given.name",
            "1abc",
            "emails[type eq \"work\"",
            "emails[type eq]",
            "emails[type zz \"x\"]",
            "emails[type[value eq \"x\"] eq \"y\"]",
            "name.givenName[type eq \"x\"]",
            "emails[type eq \"work\"].",
            "a:b",
            "urn:",
            "userName extra",
            "emails[type eq \"unterminated]",
            "emails[type eq \"bad \\q escape\"]",
            "\u{0}",
            "é",
        ] {
            assert!(parse_path(text).is_err(), "{text:?} parsed");
        }
        let error = parse_path("emails[type zz \"x\"]").unwrap_err();
        assert!(error.in_brackets);
        assert_eq!(error.detail, "'zz' is not a comparison operator (at character 13)");
    }

    #[test]
    fn strings_decode_json_escapes() {
        let p = path(r#"emails[value eq "a\"b\\c\u0041"]"#);
        assert_eq!(p.filter.unwrap().value.unwrap().text(), "a\"b\\cA");
    }
}
