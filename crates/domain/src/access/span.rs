//! How long access lasts: a number of minutes, hours, days or weeks (`90m`, `8h`, `1d`, `2w`),
//! written and read the same way by the CLI, the API, forms and stored policies.

use std::fmt;
use std::str::FromStr;

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// The longest anything can be asked for or capped at: a year. Longer is permanent access,
/// which a policy allows or not.
pub const LONGEST: Span = Span(365 * 24 * 60);

/// A length of access, in whole minutes (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span(u32);

/// Text that is not a span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration: write a number and a unit, such as 90m, 8h, 1d or 2w (from 1 minute to 365 days)")]
pub struct BadSpan(pub String);

impl Span {
    pub const fn minutes(n: u32) -> Span {
        Span(n)
    }

    pub const fn hours(n: u32) -> Span {
        Span(n * 60)
    }

    pub const fn days(n: u32) -> Span {
        Span(n * 24 * 60)
    }

    pub fn as_minutes(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::minutes(i64::from(self.0))
    }

    /// Whole minutes of `d`, if it is a span (a minute to a year).
    pub fn of(d: Duration) -> Option<Span> {
        let minutes = u32::try_from(d.num_minutes()).ok()?;
        (1..=LONGEST.0).contains(&minutes).then_some(Span(minutes))
    }

    /// Said for people: "8 hours", "1 day", "90 minutes".
    pub fn words(self) -> String {
        let (n, unit) = self.largest_unit();
        let name = match unit {
            'w' => "week",
            'd' => "day",
            'h' => "hour",
            _ => "minute",
        };
        if n == 1 { format!("1 {name}") } else { format!("{n} {name}s") }
    }

    fn largest_unit(self) -> (u32, char) {
        let m = self.0;
        if m.is_multiple_of(7 * 24 * 60) {
            (m / (7 * 24 * 60), 'w')
        } else if m.is_multiple_of(24 * 60) {
            (m / (24 * 60), 'd')
        } else if m.is_multiple_of(60) {
            (m / 60, 'h')
        } else {
            (m, 'm')
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = self.largest_unit();
        write!(f, "{n}{unit}")
    }
}

impl FromStr for Span {
    type Err = BadSpan;

    fn from_str(text: &str) -> Result<Span, BadSpan> {
        let bad = || BadSpan(text.to_owned());
        let trimmed = text.trim().to_ascii_lowercase();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "m" | "min" | "mins" | "minute" | "minutes" => 1,
            "h" | "hour" | "hours" => 60,
            "d" | "day" | "days" => 24 * 60,
            "w" | "week" | "weeks" => 7 * 24 * 60,
            _ => return Err(bad()),
        };
        let minutes = number.checked_mul(per).ok_or_else(bad)?;
        match u32::try_from(minutes) {
            Ok(m) if (1..=LONGEST.0).contains(&m) => Ok(Span(m)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a requester asks for: a span, or access with no end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    For(Span),
    Permanent,
}

impl FromStr for Length {
    type Err = BadSpan;

    fn from_str(text: &str) -> Result<Length, BadSpan> {
        match text.trim().to_ascii_lowercase().as_str() {
            "permanent" | "forever" | "no end" => Ok(Length::Permanent),
            _ => text.parse().map(Length::For),
        }
    }
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Length::For(span) => span.fmt(f),
            Length::Permanent => f.write_str("permanent"),
        }
    }
}

impl Length {
    pub fn span(self) -> Option<Span> {
        match self {
            Length::For(span) => Some(span),
            Length::Permanent => None,
        }
    }

    pub fn words(self) -> String {
        match self {
            Length::For(span) => span.words(),
            Length::Permanent => "no end".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_and_write_the_same_way() {
        for (text, minutes, back) in
            [("90m", 90, "90m"), ("8h", 480, "8h"), ("1d", 1440, "1d"), ("14d", 20160, "2w"), ("120m", 120, "2h")]
        {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.as_minutes(), minutes);
            assert_eq!(span.to_string(), back);
        }
        assert_eq!(" 3 Hours ".parse::<Span>().unwrap(), Span::hours(3));
        assert_eq!(Span::hours(1).words(), "1 hour");
        assert_eq!(Span::minutes(90).words(), "90 minutes");
        assert_eq!(Span::days(14).words(), "2 weeks");
    }

    #[test]
    fn nonsense_and_out_of_range_spans_are_refused() {
        for text in ["", "8", "h", "0m", "8 fortnights", "366d", "99999999999999999999d", "-1h", "1.5h"] {
            assert!(text.parse::<Span>().is_err(), "{text}");
        }
        assert_eq!("365d".parse::<Span>().unwrap(), LONGEST);
        assert_eq!("permanent".parse::<Length>().unwrap(), Length::Permanent);
        assert_eq!("8h".parse::<Length>().unwrap(), Length::For(Span::hours(8)));
    }
}
