//! The JSON body extractor: serde failures become the API's JSON errors, with the path of the
//! offending field (`messages[2].role`).

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::SharedState;

/// A JSON body. Malformed JSON → 400; a missing or ill-typed field → 422 naming it; a body over
/// the limit → 413; a body not declared as JSON → 415; a body not received within the body
/// timeout → 408.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<SharedState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(ApiError::unsupported_media_type());
        }
        let limit = state.limits.body_bytes;
        // The whole body within the body timeout: a sender trickling it byte by byte is cut off.
        let timeout = state.limits.body_timeout;
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(request, state))
            .await
            .map_err(|_elapsed| ApiError::body_timeout(timeout))?
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(limit)
                } else {
                    ApiError::malformed_json(format!(
                        "the request body could not be read: {rejection}"
                    ))
                }
            })?;
        parse(&bytes).map(ApiJson)
    }
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a body, classifying failures: not JSON at all → 400, JSON of the wrong shape → 422
/// with the path of the offending field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that `{} trailing` is malformed JSON rather than a missing field.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
        ApiError::malformed_json(format!("the request body is not valid JSON: {e}"))
    })?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = strip_position(&error.into_inner().to_string());
        let field = field_of(&path, &message).unwrap_or_else(|| "body".to_owned());
        ApiError::invalid_field(field, message)
    })
}

/// The field a serde error is about, from `serde_path_to_error`'s path (`.` for the top) and the
/// message: a missing field is named by the message, under its parent. `None` for the top level.
pub(crate) fn field_of(path: &str, message: &str) -> Option<String> {
    match (named_in(message, "missing field `"), path) {
        (Some(name), ".") => Some(name.to_owned()),
        (Some(name), parent) => Some(format!("{parent}.{name}")),
        (None, ".") => named_in(message, "unknown field `").map(str::to_owned),
        (None, _) => Some(path.to_owned()),
    }
}

/// The name in serde's "missing field `name`" or "unknown field `name`, expected …".
fn named_in<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message
        .strip_prefix(prefix)
        .and_then(|rest| rest.split('`').next())
}

/// serde_json appends " at line 1 column 42" to data errors; the field path says more.
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}
