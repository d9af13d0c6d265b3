//! HTTP details shared by the adapters: the client builder, `Retry-After`, error bodies, status
//! classification.

use std::sync::Once;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest provider message kept in an error (bodies can be whole HTML pages).
const MAX_MESSAGE_CHARS: usize = 300;

/// A reqwest client builder. reqwest is built without a TLS crypto provider of its own: the first
/// call installs rustls' ring provider for the process (one that is installed already stays).
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// The longest wait a `Retry-After` is taken for: an upstream asking for more (by mistake, or to
/// stall us) gets this; callers cap it further by their own deadline.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Parses `Retry-After` from `headers` (see [`parse_retry_after`]).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?)
}

/// Parses a `Retry-After` value: delay-seconds (fractions too) or an HTTP date (RFC 9110
/// §10.2.3), at most [`MAX_RETRY_AFTER`]. Anything else — negative, not a number, not finite —
/// is `None`. Never panics, whatever the value (`18446744073709551616`, `1e20`, year 9999).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        let capped = seconds.min(MAX_RETRY_AFTER.as_secs_f64());
        return Duration::try_from_secs_f64(capped).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The human-readable message of an error body: `{"message": …}` (Cohere),
/// `{"error": {"message": …}}` (OpenAI, OpenRouter), else the text itself, shortened.
pub(crate) fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| v.get("error").and_then(|e| e.get("message")))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(|m| m.as_str())
    });
    // OpenAI's string codes (`content_filter`, `rate_limit_exceeded`) say what kind of refusal
    // it is; callers such as the evaluation's judge classify on them.
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("error")?.get("code")?.as_str().map(str::to_owned));
    match (message, code) {
        (Some(message), Some(code)) if !message.contains(&code) => {
            shorten(&format!("{} (code: {code})", message.trim()))
        }
        (message, _) => shorten(message.unwrap_or(body).trim()),
    }
}

/// Cuts a message to [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Describes a transport failure without leaking the URL's secrets (keys are never in URLs here,
/// but reqwest errors print the URL).
pub(crate) fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "connection dropped while reading the response"
    } else if error.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", shorten(&cause))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_accepts_seconds_fractions_and_dates() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&headers("0.5")),
            Some(Duration::from_millis(500))
        );
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        assert_eq!(retry_after(&headers(&past)), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let parsed = retry_after(&headers(&future)).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn hostile_retry_after_values_are_capped_or_ignored_never_a_panic() {
        for huge in [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999",
            "1e20",
            "1.7976931348623157e308",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(parse_retry_after(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for junk in [
            "-1",
            "-0.5",
            "NaN",
            "inf",
            "-inf",
            "",
            "1e",
            "0x10",
            "Sun, 99 Foo 2026",
        ] {
            assert_eq!(parse_retry_after(junk), None, "{junk:?}");
        }
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
    }

    proptest::proptest! {
        #[test]
        fn any_retry_after_parses_without_panic_and_within_the_cap(value in "\\PC{0,40}") {
            if let Some(wait) = parse_retry_after(&value) {
                proptest::prop_assert!(wait <= MAX_RETRY_AFTER);
            }
        }
    }

    #[test]
    fn error_messages_are_extracted_from_known_shapes() {
        assert_eq!(
            error_message(r#"{"id":"x","message":"invalid api token"}"#),
            "invalid api token"
        );
        assert_eq!(
            error_message(r#"{"error":{"message":"Rate limit exceeded","code":429}}"#),
            "Rate limit exceeded"
        );
        assert_eq!(
            error_message("<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(
            error_message(&"x".repeat(1000)).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }
}
