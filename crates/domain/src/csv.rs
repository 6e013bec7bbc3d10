//! CSV fields for every export Attest writes (audit log, entitlement graph): quoted when they
//! have to be (RFC 4180), and never read as a formula by a spreadsheet. One function, so no
//! export forgets a case.

/// One CSV field. A field a spreadsheet could take for a formula — one starting with `=`, `+`,
/// `-` or `@`, also after leading white space, or starting with a tab or carriage return
/// (OWASP's "CSV injection") — is prefixed with `'`, which spreadsheets show but never run.
pub fn field(text: &str) -> String {
    let formula = text.trim_start_matches([' ', '\t', '\r', '\n']).starts_with(['=', '+', '-', '@'])
        || text.starts_with(['\t', '\r']);
    let text = if formula { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_never_formulas() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\t=1+1"), "'\t=1+1");
        assert_eq!(field("\r=1+1"), "\"'\r=1+1\"");
        assert_eq!(field("  +1"), "'  +1");
        assert_eq!(field("\tplain"), "'\tplain");
        assert_eq!(field("a-b"), "a-b");
    }
}
