//! Error messages with their causes.

/// An error and its sources, `: `-separated: what a log line or a 4xx message shows of an error
/// whose `Display` leaves its cause out (Tera's, reqwest's).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_source_is_named_in_order() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(super::chain(&error), "outer: inner");
    }
}
