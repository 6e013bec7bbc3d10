//! Durations written the way people write them: `500ms`, `30s`, `10m`, `2h`, `7d`.

use std::time::Duration;

pub(crate) const EXPECTED: &str = "a duration such as 500ms, 30s, 10m, 2h or 7d";

pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

pub(crate) fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("s"), None);
        assert_eq!(parse("10"), None);
        assert_eq!(parse("10 years"), None);
        assert_eq!(format(Duration::from_secs(600)), "10m");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }
}
