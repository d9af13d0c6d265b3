//! Where a fact came from and when: shown with every listed fact, kept through export and
//! import.

use std::fmt;
use std::str::FromStr;

use crate::UnknownValue;

/// How a fact came to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactSource {
    /// From a seeding file (`ragback facts add`, `make add-facts`).
    Seeded,
    /// Through the facts API.
    Api,
    /// Extracted from a dialogue.
    Extracted,
}

impl FactSource {
    /// The wire name: `seeded`, `api` or `extracted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seeded => "seeded",
            Self::Api => "api",
            Self::Extracted => "extracted",
        }
    }
}

impl FromStr for FactSource {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "seeded" => Ok(Self::Seeded),
            "api" => Ok(Self::Api),
            "extracted" => Ok(Self::Extracted),
            other => Err(UnknownValue::new(
                other,
                "a fact source (seeded, api or extracted)",
            )),
        }
    }
}

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The time `millis` milliseconds after the epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn unix_millis(self) -> u64 {
        self.0
    }

    /// Parses what [`Display`](fmt::Display) writes, `2026-12-01T14:05:09.120Z`, with or
    /// without the milliseconds: UTC only (`Z`), from 1970 on.
    pub fn parse_rfc3339(text: &str) -> Result<Self, UnknownValue> {
        let bad = || UnknownValue::new(text, "a UTC time like 2026-12-01T14:05:09Z");
        // The shape is ours (what Display writes); the calendar is jiff's.
        let body = text.strip_suffix('Z').ok_or_else(bad)?;
        let fraction = body.get(19..).unwrap_or_default();
        let shaped = body.len() >= 19
            && body.as_bytes()[10] == b'T'
            && (fraction.is_empty()
                || (fraction.len() == 4
                    && fraction.starts_with('.')
                    && fraction[1..].bytes().all(|b| b.is_ascii_digit())));
        if !shaped {
            return Err(bad());
        }
        let instant: jiff::Timestamp = text.parse().map_err(|_| bad())?;
        u64::try_from(instant.as_millisecond())
            .map(Self)
            .map_err(|_| bad())
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2026-12-01T14:05:09.120Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = i64::try_from(self.0).unwrap_or(i64::MAX);
        match jiff::Timestamp::from_millisecond(millis) {
            Ok(instant) => write!(f, "{instant:.3}"),
            // Past jiff's range (year 9999): only a hand-made value gets here.
            Err(_) => write!(f, "{millis} ms after 1970-01-01T00:00:00Z"),
        }
    }
}

/// Where a fact came from and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// How it came to be stored.
    pub source: FactSource,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// When its text last changed (the creation time until then).
    pub updated_at: Timestamp,
    /// For an extracted fact: the id of the request whose dialogue it came from.
    pub request_id: Option<String>,
    /// For an extracted fact: a hash of the message it came from.
    pub message_hash: Option<String>,
    /// The texts it replaced, oldest first (a fact updated from the dialogue).
    pub history: Vec<String>,
}

impl Provenance {
    /// A fact stored now from `source`, by no particular request.
    pub fn new(source: FactSource, now: Timestamp) -> Self {
        Self {
            source,
            created_at: now,
            updated_at: now,
            request_id: None,
            message_hash: None,
            history: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn timestamps_read_and_write_rfc3339_in_utc() {
        let t = Timestamp::from_unix_millis(1_764_597_909_120);
        assert_eq!(t.to_string(), "2025-12-01T14:05:09.120Z");
        assert_eq!(Timestamp::parse_rfc3339("2025-12-01T14:05:09.120Z"), Ok(t));
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:00Z"),
            Ok(Timestamp::from_unix_millis(0))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T23:59:59Z")
                .unwrap()
                .to_string(),
            "2024-02-29T23:59:59.000Z"
        );
        for bad in [
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-12-01T24:00:00Z",
            "2025-12-01 14:05:09Z",
            "2025-12-01T14:05:09+01:00",
            "2025-12-01T14:05:09.1Z",
            "1969-12-31T23:59:59Z",
            "2025--1-01T00:00:00Z",
            "",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_have_wire_names() {
        for source in [FactSource::Seeded, FactSource::Api, FactSource::Extracted] {
            assert_eq!(source.as_str().parse::<FactSource>(), Ok(source));
        }
        assert!("manual".parse::<FactSource>().is_err());
    }

    proptest! {
        #[test]
        fn any_time_round_trips(millis in 0u64..253_402_300_799_999) {
            let t = Timestamp::from_unix_millis(millis);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Ok(t));
        }
    }
}
