//! Where a fact came from and when: shown with every listed fact, kept through export and
//! import.

use std::fmt;
use std::str::FromStr;

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
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "seeded" => Ok(Self::Seeded),
            "api" => Ok(Self::Api),
            "extracted" => Ok(Self::Extracted),
            other => Err(format!(
                "unknown fact source `{other}` (seeded, api or extracted)"
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
    /// without the milliseconds.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a UTC time like 2026-12-01T14:05:09Z");
        let body = text.strip_suffix('Z').ok_or_else(bad)?;
        let (date, time) = body.split_once('T').ok_or_else(bad)?;
        let mut date_parts = date.splitn(3, '-');
        let next = |parts: &mut std::str::SplitN<'_, char>| -> Result<u64, String> {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)
        };
        let (year, month, day) = (
            next(&mut date_parts)?,
            next(&mut date_parts)?,
            next(&mut date_parts)?,
        );
        let (clock, millis) = match time.split_once('.') {
            Some((clock, fraction)) if fraction.len() == 3 => {
                (clock, fraction.parse::<u64>().map_err(|_| bad())?)
            }
            Some(_) => return Err(bad()),
            None => (time, 0),
        };
        let mut clock_parts = clock.splitn(3, ':');
        let (hour, minute, second) = (
            next(&mut clock_parts)?,
            next(&mut clock_parts)?,
            next(&mut clock_parts)?,
        );
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            _ => return Err(bad()),
        };
        if !(1970..=9999).contains(&year)
            || !(1..=days_in_month).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
        Ok(Self(seconds * 1_000 + millis))
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`, for years from 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2026-12-01T14:05:09.120Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seconds, millis) = (self.0 / 1_000, self.0 % 1_000);
        let (year, month, day) = civil_from_days(seconds / 86_400);
        let second_of_day = seconds % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            second_of_day / 3_600,
            second_of_day % 3_600 / 60,
            second_of_day % 60
        )
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
