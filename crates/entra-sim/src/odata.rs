//! OData query options as Graph applies them to directory collections.
//!
//! Messages are Graph's where the sources quote them (graph-facts.md §1, §3); where they do
//! not, the wording is marked [INFER] and the status and code follow the documented class.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use crate::error::GraphError;

/// The options of one collection request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    pub count: bool,
    pub filter: Option<Filter>,
    pub skip_token: Option<String>,
    /// `ConsistencyLevel: eventual` was sent.
    pub eventual: bool,
    /// Every option but `$skiptoken`, in request order: what a nextLink carries.
    pub carried: Vec<(String, String)>,
}

/// What a collection allows: entity name (for messages), properties, defaults, page limits.
pub struct Collection {
    pub entity: &'static str,
    /// The `@odata.context` entity-set name (`users`, `groups`, `directoryObjects`).
    pub context: &'static str,
    pub properties: &'static [&'static str],
    pub default_select: &'static [&'static str],
    pub filterable: &'static [&'static str],
    pub default_page: usize,
    pub max_page: usize,
    /// Properties only a single-entity GET returns: selecting them on the list is a 501.
    pub single_entity_only: &'static [&'static str],
    /// Items are directory objects of mixed types (members, owners, manager): each gets its
    /// own type's default properties instead of `default_select`.
    pub typed_items: bool,
}

impl ListQuery {
    /// Parses and checks a raw query string against `collection`.
    pub fn parse(raw: Option<&str>, eventual: bool, collection: &Collection) -> Result<ListQuery, GraphError> {
        ListQuery::parse_with(raw, eventual, collection, false)
    }

    /// Like [`ListQuery::parse`], for a single-entity GET, where the single-entity-only
    /// properties may be selected.
    pub fn parse_entity(raw: Option<&str>, eventual: bool, collection: &Collection) -> Result<ListQuery, GraphError> {
        ListQuery::parse_with(raw, eventual, collection, true)
    }

    fn parse_with(
        raw: Option<&str>,
        eventual: bool,
        collection: &Collection,
        entity: bool,
    ) -> Result<ListQuery, GraphError> {
        let mut query = ListQuery { eventual, ..ListQuery::default() };
        let mut filter_text = None;
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let key = key.to_lowercase();
            match key.as_str() {
                "$select" => {
                    let names: Vec<String> =
                        value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                    for name in &names {
                        let single_only = collection.single_entity_only.iter().any(|p| p.eq_ignore_ascii_case(name));
                        if single_only && entity {
                            continue;
                        }
                        if single_only {
                            // [INFER] code and wording; the 501 status is documented (user-list.md).
                            return Err(GraphError::new(
                                axum::http::StatusCode::NOT_IMPLEMENTED,
                                "NotImplemented",
                                format!(
                                    "The property '{name}' is only supported when reading a single {}.",
                                    collection.entity
                                ),
                            ));
                        }
                        if !collection.properties.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                            return Err(GraphError::bad_request(format!(
                                "Could not find a property named '{name}' on type 'microsoft.graph.{}'.",
                                collection.entity
                            )));
                        }
                    }
                    query.select = Some(names);
                }
                "$top" => {
                    let top = value
                        .parse::<usize>()
                        .ok()
                        .filter(|t| *t >= 1)
                        .ok_or_else(|| invalid_page_size(&value, collection.max_page))?;
                    query.top = Some(top);
                }
                "$count" => query.count = value.eq_ignore_ascii_case("true"),
                "$filter" => filter_text = Some(value.to_string()),
                "$skiptoken" => {
                    query.skip_token = Some(value.to_string());
                    continue;
                }
                // [INFER] wording; the docs say only that $skip is not supported on directory objects.
                "$skip" => return Err(GraphError::bad_request("'$skip' is not supported by the service.")),
                "$orderby" | "$search" | "$expand" => {
                    return Err(GraphError::unsupported_query(format!(
                        "The query option '{key}' is not supported by this simulator."
                    )));
                }
                _ => {}
            }
            query.carried.push((key, value.to_string()));
        }
        // With signInActivity selected or filtered, the page limit is 500 (user-list.md, 2024).
        let sign_in = query.select.iter().flatten().any(|p| p.eq_ignore_ascii_case("signInActivity"))
            || filter_text.as_deref().is_some_and(|f| f.contains("signInActivity"));
        let max = if sign_in { collection.max_page.min(500) } else { collection.max_page };
        if let Some(top) = query.top
            && top > max
        {
            return Err(invalid_page_size(&top.to_string(), max));
        }
        if let Some(text) = filter_text {
            let filter = Filter::parse(&text)?;
            filter.check(collection)?;
            if let Some(operator) = filter.advanced_operator()
                && !(eventual && query.count)
            {
                return Err(GraphError::unsupported_query(format!(
                    "Operator '{operator}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
                )));
            }
            query.filter = Some(filter);
        }
        Ok(query)
    }

    /// Page size for this request.
    pub fn page_size(&self, collection: &Collection) -> usize {
        self.top.unwrap_or(collection.default_page)
    }

    /// Whether `@odata.count` belongs on this response: `$count=true` with the header, first
    /// page only. Without the header Graph silently leaves it out.
    pub fn wants_count(&self) -> bool {
        self.count && self.eventual && self.skip_token.is_none()
    }

    /// A fingerprint of the options, bound into page tokens.
    fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.carried.hash(&mut hasher);
        hasher.finish()
    }

    /// An opaque `$skiptoken` for continuing at `offset` with these same options.
    pub fn token_for(&self, offset: usize) -> String {
        let payload = format!("{offset}:{:016x}", self.fingerprint());
        format!("RFNwdAIA{}", hex::encode(payload))
    }

    /// Where a `$skiptoken` says to continue; an altered or foreign token is a 400.
    pub fn offset(&self) -> Result<usize, GraphError> {
        let Some(token) = &self.skip_token else { return Ok(0) };
        // [INFER] wording of the error for a token that does not belong to this query.
        let invalid = || {
            GraphError::bad_request(
                "The specified page token value has expired and can no longer be included in your request.",
            )
        };
        let decoded = token
            .strip_prefix("RFNwdAIA")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let (offset, fingerprint) = decoded.split_once(':').ok_or_else(invalid)?;
        if fingerprint != format!("{:016x}", self.fingerprint()) {
            return Err(invalid());
        }
        offset.parse().map_err(|_| invalid())
    }

    /// Keeps only the selected properties (or the collection's default set).
    pub fn project(&self, collection: &Collection, mut object: Map<String, Value>) -> Map<String, Value> {
        let keep: Vec<&str> = match &self.select {
            Some(names) => names.iter().map(String::as_str).collect(),
            None if collection.typed_items => crate::tenant::default_properties(&object).to_vec(),
            None => collection.default_select.to_vec(),
        };
        let mut out = Map::new();
        // `@odata.type` on relationship collections survives projection.
        if let Some(t) = object.remove("@odata.type") {
            out.insert("@odata.type".into(), t);
        }
        // `id` always comes back, selected or not.
        if let Some(id) = object.remove("id") {
            out.insert("id".into(), id);
        }
        for name in keep {
            match object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                Some((key, value)) => {
                    out.insert(key.clone(), value.clone());
                }
                // A selected property the simulator keeps no value for (profile fields only a
                // single-entity GET returns) comes back as null, as an unset property does.
                None if collection.single_entity_only.iter().any(|p| p.eq_ignore_ascii_case(name)) => {
                    out.insert(name.to_owned(), Value::Null);
                }
                None => {}
            }
        }
        out
    }
}

fn invalid_page_size(value: &str, max: usize) -> GraphError {
    // [OBS] Graph's wording for an out-of-range $top on directory collections.
    GraphError::bad_request(format!("Invalid page size specified: '{value}'. Must be between 1 and {max} inclusive."))
}

/// The `$filter` forms Graph supports on the properties this simulator serves.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, Value),
    Ne(String, Value),
    In(String, Vec<Value>),
    StartsWith(String, String),
    EndsWith(String, String),
    /// `groupTypes/any(c:c eq 'Unified')`
    Any(String, Value),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, GraphError> {
        let mut parser = Parser { s: text.trim(), pos: 0 };
        let filter = parser.or()?;
        parser.skip_ws();
        if parser.pos != parser.s.len() {
            return Err(syntax(text));
        }
        Ok(filter)
    }

    /// The first operator that needs advanced query parameters (aad-advanced-queries.md).
    fn advanced_operator(&self) -> Option<&'static str> {
        match self {
            Filter::Ne(..) => Some("ne"),
            Filter::EndsWith(..) => Some("endsWith"),
            Filter::Not(..) => Some("not"),
            Filter::And(a, b) | Filter::Or(a, b) => a.advanced_operator().or_else(|| b.advanced_operator()),
            _ => None,
        }
    }

    fn check(&self, collection: &Collection) -> Result<(), GraphError> {
        let property = match self {
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::In(p, _)
            | Filter::StartsWith(p, _)
            | Filter::EndsWith(p, _)
            | Filter::Any(p, _) => p,
            Filter::Not(inner) => return inner.check(collection),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.check(collection)?;
                return b.check(collection);
            }
        };
        if collection.filterable.iter().any(|p| p.eq_ignore_ascii_case(property)) {
            Ok(())
        } else if collection.properties.iter().any(|p| p.eq_ignore_ascii_case(property)) {
            Err(GraphError::unsupported_query(format!(
                "Unsupported or invalid query filter clause specified for property '{property}' of resource '{}'.",
                capitalise(collection.entity)
            )))
        } else {
            Err(GraphError::bad_request(format!(
                "Property '{property}' does not exist as a declared property or extension property."
            )))
        }
    }

    /// Whether an object (rendered with Graph's property names) matches.
    pub fn matches(&self, object: &Map<String, Value>) -> bool {
        let get =
            |p: &str| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(p)).map(|(_, v)| v).unwrap_or(&Value::Null);
        match self {
            Filter::Eq(p, v) => equal(get(p), v),
            Filter::Ne(p, v) => !equal(get(p), v),
            Filter::In(p, vs) => vs.iter().any(|v| equal(get(p), v)),
            Filter::StartsWith(p, s) => {
                get(p).as_str().is_some_and(|x| x.to_lowercase().starts_with(&s.to_lowercase()))
            }
            Filter::EndsWith(p, s) => get(p).as_str().is_some_and(|x| x.to_lowercase().ends_with(&s.to_lowercase())),
            Filter::Any(p, v) => get(p).as_array().is_some_and(|items| items.iter().any(|item| equal(item, v))),
            Filter::Not(inner) => !inner.matches(object),
            Filter::And(a, b) => a.matches(object) && b.matches(object),
            Filter::Or(a, b) => a.matches(object) || b.matches(object),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// Directory string comparisons are case-insensitive.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn syntax(text: &str) -> GraphError {
    // [INFER] wording for a filter the parser cannot read.
    GraphError::bad_request(format!("Invalid filter clause: syntax error in '{text}'."))
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn skip_ws(&mut self) {
        while self.rest().starts_with(' ') {
            self.pos += 1;
        }
    }
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
            let after = rest[word.len()..].chars().next();
            if after.is_none_or(|c| !c.is_ascii_alphanumeric()) {
                self.pos += word.len();
                return true;
            }
        }
        false
    }
    fn expect(&mut self, c: char) -> Result<(), GraphError> {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(syntax(self.s))
        }
    }
    fn or(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Filter, GraphError> {
        self.skip_ws();
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.rest().starts_with('(') {
            self.expect('(')?;
            let inner = self.or()?;
            self.expect(')')?;
            return Ok(inner);
        }
        for (name, starts) in [("startswith", true), ("endswith", false)] {
            if self.keyword(name) {
                self.expect('(')?;
                let property = self.identifier()?;
                self.expect(',')?;
                let Value::String(text) = self.literal()? else { return Err(syntax(self.s)) };
                self.expect(')')?;
                return Ok(if starts { Filter::StartsWith(property, text) } else { Filter::EndsWith(property, text) });
            }
        }
        let property = self.identifier()?;
        if self.rest().starts_with("/any(") {
            self.pos += "/any(".len();
            let variable = self.identifier()?;
            self.expect(':')?;
            if self.identifier()? != variable || !self.keyword("eq") {
                return Err(syntax(self.s));
            }
            let value = self.literal()?;
            self.expect(')')?;
            return Ok(Filter::Any(property, value));
        }
        if self.keyword("eq") {
            return Ok(Filter::Eq(property, self.literal()?));
        }
        if self.keyword("ne") {
            return Ok(Filter::Ne(property, self.literal()?));
        }
        if self.keyword("in") {
            self.expect('(')?;
            let mut values = vec![self.literal()?];
            loop {
                self.skip_ws();
                if self.rest().starts_with(',') {
                    self.expect(',')?;
                    values.push(self.literal()?);
                } else {
                    break;
                }
            }
            self.expect(')')?;
            return Ok(Filter::In(property, values));
        }
        Err(syntax(self.s))
    }
    fn identifier(&mut self) -> Result<String, GraphError> {
        self.skip_ws();
        let len = self.rest().find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(syntax(self.s));
        }
        let ident = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(ident)
    }
    fn literal(&mut self) -> Result<Value, GraphError> {
        self.skip_ws();
        let rest = self.rest();
        if let Some(body) = rest.strip_prefix('\'') {
            // OData escapes a quote by doubling it.
            let mut out = String::new();
            let mut chars = body.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                        chars.next();
                        out.push('\'');
                        continue;
                    }
                    self.pos += 1 + i + 1;
                    return Ok(Value::String(out));
                }
                out.push(c);
            }
            return Err(syntax(self.s));
        }
        for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)] {
            if self.keyword(word) {
                return Ok(value);
            }
        }
        let len = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
        let number: i64 = rest[..len].parse().map_err(|_| syntax(self.s))?;
        self.pos += len;
        Ok(Value::from(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let o = object(
            json!({"accountEnabled": false, "userType": "Guest", "displayName": "Ada Lovelace", "mail": "ada@contoso.com", "groupTypes": ["Unified"]}),
        );
        for (text, expected) in [
            ("accountEnabled eq false", true),
            ("userType eq 'guest'", true),
            ("userType in ('Member', 'Guest')", true),
            ("startswith(displayName,'ada')", true),
            ("endswith(mail,'@contoso.com')", true),
            ("groupTypes/any(c:c eq 'Unified')", true),
            ("accountEnabled ne false", false),
            ("not(userType eq 'Guest')", false),
            ("userType eq 'Member' or accountEnabled eq false", true),
            ("userType eq 'Member' and accountEnabled eq false", false),
            ("displayName eq 'O''Brien'", false),
        ] {
            assert_eq!(Filter::parse(text).unwrap().matches(&o), expected, "{text}");
        }
        assert!(Filter::parse("displayName eq").is_err());
        assert!(Filter::parse("displayName gt 'a'").is_err());
    }
}
