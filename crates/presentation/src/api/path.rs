//! The path-parameter extractor: the router's percent-decoded captures, with every failure (a
//! capture that is not UTF-8 once decoded, or of the wrong type) answered with the API's JSON
//! error body rather than axum's plain text.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Path parameters, decoded: `ApiPath((kind, id))`.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(&rejection)),
        }
    }
}

/// The JSON error for a path that cannot be used.
fn rejected(rejection: &PathRejection) -> ApiError {
    let detail = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => e.body_text(),
        PathRejection::MissingPathParams(e) => e.body_text(),
        other => other.body_text(),
    };
    ApiError::invalid_path(format!(
        "the path cannot be used ({}); ids must be UTF-8 text once percent-decoded",
        crate::api::error::printable(&detail)
    ))
}
