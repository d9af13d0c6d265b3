//! Query strings, parsed by serde like JSON bodies: percent-decoded, typed, unknown parameters
//! refused, and every failure a 422 naming the parameter.

use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::json::{field_of, strip_position};

/// Parses a query string (without the `?`) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = strip_position(&error.into_inner().to_string());
        let field = field_of(&path, &message).unwrap_or_else(|| "query".to_owned());
        ApiError::invalid_field(field, message)
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Page {
        #[serde(default)]
        limit: Option<usize>,
        #[serde(default)]
        with_vectors: bool,
    }

    #[test]
    fn values_are_percent_decoded_and_typed() {
        let page: Page = parse(Some("limit=%31%30&with_vectors=true")).unwrap();
        assert_eq!(
            page,
            Page {
                limit: Some(10),
                with_vectors: true
            }
        );
        let none: Page = parse(None).unwrap();
        assert_eq!(none.limit, None);
    }

    #[test]
    fn failures_name_the_parameter() {
        let bad = parse::<Page>(Some("limit=ten")).unwrap_err();
        assert_eq!(bad.code().as_str(), "invalid_field");
        assert!(
            bad.body().error.field.as_deref() == Some("limit"),
            "{bad:?}"
        );
        let unknown = parse::<Page>(Some("limit=1&colour=red")).unwrap_err();
        assert_eq!(unknown.body().error.field.as_deref(), Some("colour"));
    }
}
