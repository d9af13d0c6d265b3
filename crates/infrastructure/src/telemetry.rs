//! Logging: `tracing` with an `EnvFilter` from `RUST_LOG` (default [`DEFAULT_FILTER`]), pretty or
//! JSON lines.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::LogFormat;

/// `info`, except two start-up warnings of Qdrant Edge about its process-wide flags, which say
/// nothing to an operator (its real failures come back as errors).
pub const DEFAULT_FILTER: &str = "info,qdrant_edge::common=error";

/// Installs the global subscriber. Call once, at start-up; later calls are ignored.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let _already_set = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// For tests: logs to the test output when `TEST_LOG` is set, else nothing.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
        let _already_set = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
