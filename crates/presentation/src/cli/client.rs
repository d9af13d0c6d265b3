//! What the clients of a running ragback share (`ragback facts` through a server, `ragback
//! chat`): the bearer header, and reading the API's error body.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::wire::{ErrorBody, ErrorDetail};

/// What a path segment keeps as it is (RFC 3986 unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one path segment, percent-encoded.
pub(crate) fn path_segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// `Authorization: Bearer <key>` (marked sensitive, so never printed), or nothing.
pub(crate) fn bearer_headers(key: Option<&SecretString>) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(key) = key {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            .map_err(|_| anyhow::anyhow!("the API key holds characters a header cannot carry"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// The API's error in `body`, or, for anything else that came with `status` (a proxy's page),
/// `unexpected_response` with the start of it on one line.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ErrorDetail {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error, .. }) => error,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = text.chars().take(200).collect();
            ErrorDetail {
                code: "unexpected_response".into(),
                message: format!(
                    "HTTP {status}: {}",
                    if text.is_empty() {
                        "(empty body)"
                    } else {
                        &text
                    }
                ),
                field: None,
                request_id: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_and_other_bodies_are_read() {
        let json = br#"{"error": {"code": "llm_unavailable", "message": "try again later"}}"#;
        let error = api_error(502, json);
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            ("llm_unavailable", "try again later")
        );
        let html = b"<html>\n<body>Bad Gateway</body>\n</html>";
        let error = api_error(502, html);
        assert_eq!(error.code, "unexpected_response");
        assert_eq!(
            error.message,
            "HTTP 502: <html> <body>Bad Gateway</body> </html>"
        );
    }
}
