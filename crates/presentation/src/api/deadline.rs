//! `X-Request-Timeout`: a caller's deadline for one generation, shorter than the configured one.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;

/// The header: milliseconds (`2500`), or with a unit (`2500ms`, `3s`).
pub(crate) const HEADER: &str = "x-request-timeout";

/// The caller's deadline, when it sent one. The service caps it at
/// `RAGBACK_SERVER__REQUEST_TIMEOUT_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTimeout(pub Option<Duration>);

impl<S: Send + Sync> FromRequestParts<S> for RequestTimeout {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .and_then(parse)
            .map(|timeout| Self(Some(timeout)))
            .ok_or_else(|| {
                ApiError::invalid_header(
                    HEADER,
                    "must be a positive number of milliseconds, e.g. `2500`, `2500ms` or `3s`",
                )
            })
    }
}

/// `2500`, `2500ms` or `3s`; zero and anything else is `None`.
fn parse(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit_ms) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = value.strip_suffix('s') {
        (s, 1_000)
    } else {
        (value, 1)
    };
    let number: u64 = number.trim().parse().ok()?;
    let ms = number.checked_mul(unit_ms)?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_or_seconds_and_nothing_else() {
        assert_eq!(parse("2500"), Some(Duration::from_millis(2500)));
        assert_eq!(parse(" 250ms "), Some(Duration::from_millis(250)));
        assert_eq!(parse("3s"), Some(Duration::from_secs(3)));
        for bad in [
            "",
            "0",
            "0ms",
            "-5",
            "1.5s",
            "soon",
            "5m",
            "18446744073709551615s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
