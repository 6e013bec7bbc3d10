//! `?filter=` for `GET /Users` and `GET /Groups` (RFC 7644 §3.4.2.2), cut down to what Entra's
//! provisioning service sends: `eq` comparisons joined by `and`. Anything else is refused with
//! `400 invalidFilter` naming what is unsupported, so a misconfigured matching attribute shows up
//! as a clear error in Entra's provisioning logs rather than as "no match → duplicate create".

use crate::ScimError;
use crate::path::{Comparison, Scanner, SyntaxError};
use crate::{GROUP_SCHEMA, USER_SCHEMA};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;

/// The most comparisons one filter may join.
pub const MAX_FILTER_TERMS: usize = 10;

/// How deeply parentheses may nest (they only group `and`s, so depth buys nothing).
const MAX_DEPTH: usize = 8;

/// The SCIM endpoint a filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/Users`.
    Users,
    /// `/Groups`.
    Groups,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Self::Users => "Users",
            Self::Groups => "Groups",
        }
    }

    fn supported(self) -> &'static str {
        match self {
            Self::Users => {
                r#"id, userName, externalId, displayName, active, emails[type eq "work"].value, emails.value"#
            }
            Self::Groups => "id, externalId, displayName, members",
        }
    }
}

/// An attribute a filter may compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAttr {
    /// `id` (users and groups).
    Id,
    /// `userName` (users).
    UserName,
    /// `externalId` (users and groups).
    ExternalId,
    /// `displayName` (users and groups).
    DisplayName,
    /// `emails[type eq "work"].value`, or `emails.value` (users): the user's work email as
    /// [`crate::User::work_email`] picks it.
    WorkEmail,
    /// `active` (users); its value is always [`FilterValue::Bool`].
    Active,
    /// `members` or `members.value` (groups): groups having this member id.
    MembersValue,
}

/// The value a term compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    /// A string, exactly as given (escapes decoded). Matching case is the store's business:
    /// RFC 7643 makes `userName` case-insensitive and `id`/`externalId` case-exact.
    Str(String),
    /// `true` or `false`, for `active`.
    Bool(bool),
}

/// A parsed filter: every term must hold (`and`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `attr eq value` terms, all AND-ed, in the order written.
    pub terms: Vec<(FilterAttr, FilterValue)>,
}

impl Filter {
    /// The value of the first term on `attr`, if any (e.g. to look a user up by `userName`).
    pub fn value_of(&self, attr: FilterAttr) -> Option<&FilterValue> {
        self.terms.iter().find(|(a, _)| *a == attr).map(|(_, value)| value)
    }
}

/// Parses `text` as a filter on `resource`.
pub fn parse_filter(resource: Resource, text: &str) -> Result<Filter, ScimError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(ScimError::invalid_filter(format!("the filter is longer than {MAX_FILTER_BYTES} bytes")));
    }
    if text.trim().is_empty() {
        return Err(ScimError::invalid_filter("the filter is empty"));
    }
    let mut parser = Parser { scanner: Scanner::new(text), resource, terms: Vec::new() };
    parser.conjunction(0)?;
    parser.scanner.skip_ws();
    if let Some(c) = parser.scanner.peek() {
        return Err(parser.refuse(format!("unexpected '{c}'")));
    }
    Ok(Filter { terms: parser.terms })
}

struct Parser<'a> {
    scanner: Scanner<'a>,
    resource: Resource,
    terms: Vec<(FilterAttr, FilterValue)>,
}

impl Parser<'_> {
    fn refuse(&self, detail: impl Into<String>) -> ScimError {
        ScimError::invalid_filter(self.scanner.error(detail).detail)
    }

    /// `term (and term)*`, stopping before `)` or the end.
    fn conjunction(&mut self, depth: usize) -> Result<(), ScimError> {
        loop {
            self.term(depth)?;
            self.scanner.skip_ws();
            if matches!(self.scanner.peek(), None | Some(')')) {
                return Ok(());
            }
            let before = self.scanner.position();
            let word = self.scanner.word();
            if word.eq_ignore_ascii_case("and") {
                continue;
            }
            self.scanner.reset(before);
            return Err(if word.eq_ignore_ascii_case("or") {
                self.refuse("'or' is not supported: only 'eq' comparisons joined by 'and' are")
            } else if word.is_empty() {
                self.refuse(format!("unexpected '{}'", self.scanner.peek().unwrap_or(' ')))
            } else {
                self.refuse(format!("unexpected '{word}' after a comparison: only 'and' may join comparisons"))
            });
        }
    }

    /// `( conjunction )` or a comparison.
    fn term(&mut self, depth: usize) -> Result<(), ScimError> {
        self.scanner.skip_ws();
        if self.scanner.eat('(') {
            if depth >= MAX_DEPTH {
                return Err(self.refuse("parentheses nest too deeply"));
            }
            self.conjunction(depth + 1)?;
            self.scanner.skip_ws();
            if !self.scanner.eat(')') {
                return Err(self.refuse("missing ')'"));
            }
            return Ok(());
        }
        let before = self.scanner.position();
        if self.scanner.word().eq_ignore_ascii_case("not") {
            self.scanner.reset(before);
            return Err(self.refuse("'not' is not supported: only 'eq' comparisons joined by 'and' are"));
        }
        self.scanner.reset(before);
        let comparison =
            self.scanner.comparison().map_err(|SyntaxError { detail, .. }| ScimError::invalid_filter(detail))?;
        let term = self.resolve(&comparison)?;
        if self.terms.len() >= MAX_FILTER_TERMS {
            return Err(ScimError::invalid_filter(format!(
                "the filter joins more than {MAX_FILTER_TERMS} comparisons"
            )));
        }
        self.terms.push(term);
        Ok(())
    }

    /// Checks a comparison is `eq` on a supported attribute and types its value.
    fn resolve(&self, comparison: &Comparison) -> Result<(FilterAttr, FilterValue), ScimError> {
        let path = &comparison.path;
        if comparison.op != "eq" {
            return Err(ScimError::invalid_filter(format!(
                "operator '{}' (in '{comparison}') is not supported: only 'eq' comparisons joined by 'and' are",
                comparison.op
            )));
        }
        let Some(attr) = filter_attr(self.resource, path) else {
            return Err(ScimError::invalid_filter(format!(
                "filtering {} on '{path}' is not supported; filterable attributes: {}",
                self.resource.name(),
                self.resource.supported()
            )));
        };
        let Some(literal) = &comparison.value else {
            return Err(ScimError::invalid_filter(format!("'{comparison}' has no value")));
        };
        let value = if attr == FilterAttr::Active {
            let flag = literal.as_bool().ok_or_else(|| {
                ScimError::invalid_filter(format!("'active' compares with true or false, not '{}'", literal.text()))
            })?;
            FilterValue::Bool(flag)
        } else {
            FilterValue::Str(literal.text().to_owned())
        };
        Ok((attr, value))
    }
}

/// The filterable attribute `path` names on `resource`, if it is one.
fn filter_attr(resource: Resource, path: &crate::path::AttrPath) -> Option<FilterAttr> {
    let schema = match resource {
        Resource::Users => USER_SCHEMA,
        Resource::Groups => GROUP_SCHEMA,
    };
    if !path.in_schema(schema) {
        return None;
    }
    let common =
        [("id", FilterAttr::Id), ("externalId", FilterAttr::ExternalId), ("displayName", FilterAttr::DisplayName)];
    if let Some((_, attr)) = common.iter().find(|(name, _)| path.is_plain(name)) {
        return Some(*attr);
    }
    match resource {
        Resource::Users if path.is_plain("userName") => Some(FilterAttr::UserName),
        Resource::Users if path.is_plain("active") => Some(FilterAttr::Active),
        Resource::Users if path.attr_is("emails") && path.sub_is("value") => match &path.filter {
            None => Some(FilterAttr::WorkEmail),
            Some(filter) => filter
                .eq_on("type")
                .filter(|kind| kind.text().eq_ignore_ascii_case("work"))
                .map(|_| FilterAttr::WorkEmail),
        },
        Resource::Groups
            if path.attr_is("members") && path.filter.is_none() && (path.sub.is_none() || path.sub_is("value")) =>
        {
            Some(FilterAttr::MembersValue)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ScimType;

    fn users(text: &str) -> Vec<(FilterAttr, FilterValue)> {
        parse_filter(Resource::Users, text).unwrap().terms
    }

    fn s(text: &str) -> FilterValue {
        FilterValue::Str(text.to_owned())
    }

    fn refused(resource: Resource, text: &str) -> String {
        let error = parse_filter(resource, text).unwrap_err();
        assert_eq!((error.status, error.scim_type), (400, Some(ScimType::InvalidFilter)), "{text:?}");
        error.detail
    }

    #[test]
    fn test_connection_filter() {
        let filter = parse_filter(Resource::Users, r#"userName eq "b5f6a2d4-6e4f-4c2a-9f2e-0c1d2e3f4a5b""#).unwrap();
        assert_eq!(filter.terms, vec![(FilterAttr::UserName, s("b5f6a2d4-6e4f-4c2a-9f2e-0c1d2e3f4a5b"))]);
        assert_eq!(filter.value_of(FilterAttr::UserName), Some(&s("b5f6a2d4-6e4f-4c2a-9f2e-0c1d2e3f4a5b")));
        assert_eq!(filter.value_of(FilterAttr::Id), None);
    }

    #[test]
    fn entra_find_requests() {
        assert_eq!(
            users(r#"userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee""#),
            vec![(FilterAttr::UserName, s("Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"))]
        );
        assert_eq!(
            users(r#"emails[type eq "work"].value eq "a@contoso.com""#),
            vec![(FilterAttr::WorkEmail, s("a@contoso.com"))]
        );
        assert_eq!(users("externalId eq jyoung"), vec![(FilterAttr::ExternalId, s("jyoung"))]);
        let groups = parse_filter(Resource::Groups, r#"displayName eq "Sales Team""#).unwrap();
        assert_eq!(groups.terms, vec![(FilterAttr::DisplayName, s("Sales Team"))]);
    }

    #[test]
    fn names_operators_and_keywords_ignore_case() {
        assert_eq!(users(r#"USERNAME EQ "x""#), vec![(FilterAttr::UserName, s("x"))]);
        assert_eq!(
            users(r#"Emails[ TYPE eq "Work" ].Value eq "x" AND Active Eq True"#),
            vec![(FilterAttr::WorkEmail, s("x")), (FilterAttr::Active, FilterValue::Bool(true))]
        );
        assert_eq!(users(r#"emails.value eq "x""#), vec![(FilterAttr::WorkEmail, s("x"))]);
        assert_eq!(
            users(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#),
            vec![(FilterAttr::UserName, s("x"))]
        );
        assert_eq!(users("active eq false"), vec![(FilterAttr::Active, FilterValue::Bool(false))]);
        assert_eq!(users(r#"active eq "False""#), vec![(FilterAttr::Active, FilterValue::Bool(false))]);
    }

    #[test]
    fn and_and_parentheses() {
        assert_eq!(
            users(r#"((userName eq "a") and (externalId eq "b")) and id eq "c""#),
            vec![(FilterAttr::UserName, s("a")), (FilterAttr::ExternalId, s("b")), (FilterAttr::Id, s("c"))]
        );
        assert_eq!(users(r#"  ( userName eq "a" )  "#), vec![(FilterAttr::UserName, s("a"))]);
        let groups = parse_filter(Resource::Groups, r#"id eq "g1" and members eq "u1""#).unwrap();
        assert_eq!(groups.terms, vec![(FilterAttr::Id, s("g1")), (FilterAttr::MembersValue, s("u1"))]);
    }

    #[test]
    fn quoted_values_keep_spaces_and_escapes() {
        assert_eq!(
            users(r#"displayName eq "Ann \"The\" O'Neil \\ Jr""#),
            vec![(FilterAttr::DisplayName, s(r#"Ann "The" O'Neil \ Jr"#))]
        );
        assert_eq!(users(r#"userName eq "and or not""#), vec![(FilterAttr::UserName, s("and or not"))]);
        assert_eq!(users(r#"userName eq "tést@例え.jp""#), vec![(FilterAttr::UserName, s("tést@例え.jp"))]);
        assert_eq!(users(r#"userName eq """#), vec![(FilterAttr::UserName, s(""))]);
    }

    #[test]
    fn unsupported_operators_are_named() {
        assert!(refused(Resource::Users, r#"userName sw "O""#).contains("operator 'sw'"));
        assert!(refused(Resource::Users, r#"userName co "x""#).contains("operator 'co'"));
        assert!(refused(Resource::Users, r#"meta.created gt "2020-01-01""#).contains("operator 'gt'"));
        assert!(refused(Resource::Users, "title pr").contains("operator 'pr'"));
        assert!(refused(Resource::Users, r#"userName eq "a" or userName eq "b""#).contains("'or' is not supported"));
        assert!(refused(Resource::Users, r#"not (userName eq "a")"#).contains("'not' is not supported"));
        assert!(
            refused(
                Resource::Users,
                r#"name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)"#
            )
            .contains("'name.FamilyName' is not supported")
        );
    }

    #[test]
    fn unsupported_attributes_are_named() {
        let detail = refused(Resource::Users, r#"title eq "x""#);
        assert_eq!(
            detail,
            r#"filtering Users on 'title' is not supported; filterable attributes: id, userName, externalId, displayName, active, emails[type eq "work"].value, emails.value"#
        );
        assert!(refused(Resource::Users, r#"emails[type eq "home"].value eq "x""#).contains("not supported"));
        assert!(refused(Resource::Users, r#"members eq "x""#).contains("filtering Users on 'members'"));
        assert!(refused(Resource::Groups, r#"userName eq "x""#).contains("filtering Groups on 'userName'"));
        assert!(
            refused(Resource::Users, r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x""#)
                .contains("not supported")
        );
        assert!(refused(Resource::Users, r#"active eq "maybe""#).contains("true or false"));
    }

    #[test]
    fn malformed_filters_are_refused() {
        for text in [
            "",
            "   ",
            "userName",
            "userName eq",
            r#"userName eq "x" trailing"#,
            r#"userName eq "x" and"#,
            r#"userName eq "unterminated"#,
            r#"(userName eq "x""#,
            r#"userName eq "x")"#,
            "()",
            "((((((((((userName eq x))))))))))",
            r#"userName eq "x" and and userName eq "y""#,
            r#"userName == "x""#,
            r#"userName eq "bad \x escape""#,
            "userName eq [x]",
            "\"userName\" eq x",
            "\u{202e}userName eq x",
            "eq eq eq",
        ] {
            refused(Resource::Users, text);
        }
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_BYTES));
        assert!(refused(Resource::Users, &long).contains("longer than"));
        let many = [r#"userName eq "x""#; MAX_FILTER_TERMS + 1].join(" and ");
        assert!(refused(Resource::Users, &many).contains("more than 10"));
        let enough = [r#"userName eq "x""#; MAX_FILTER_TERMS].join(" and ");
        assert_eq!(users(&enough).len(), MAX_FILTER_TERMS);
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic walk over awkward characters: every prefix of every combination must
        // come back as a filter or an invalidFilter, never a panic.
        let pieces = [
            "userName",
            " eq ",
            "\"",
            "\\",
            "(",
            ")",
            "[",
            "]",
            "and",
            "or",
            ".",
            ":",
            "urn:",
            "é",
            "\u{0}",
            "true",
            "x",
            "emails[type eq \"work\"]",
            "\"\\u12",
            "\t",
            "not",
            "pr",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(seed % 9) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            seed = seed.wrapping_add(1);
            for resource in [Resource::Users, Resource::Groups] {
                if let Err(error) = parse_filter(resource, &text) {
                    assert_eq!(error.scim_type, Some(ScimType::InvalidFilter), "{text:?}");
                }
            }
        }
    }
}
