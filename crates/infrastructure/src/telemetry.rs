//! Logging: `tracing` with an `EnvFilter` from `RUST_LOG` (default [`DEFAULT_FILTER`] for the
//! server, [`COMMAND_FILTER`] for the other commands), pretty or JSON lines, coloured only on a
//! terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::LogFormat;

/// The server's: `info`, except the libraries' own bookkeeping — Qdrant Edge's (its WAL opening
/// segments; two start-up warnings about its process-wide flags, which say nothing to an
/// operator: its real failures come back as errors) and llama.cpp's description of every model
/// it loads (their warnings and errors stay).
pub const DEFAULT_FILTER: &str = "info,qdrant_edge=warn,qdrant_edge::common=error,llama-cpp-2=warn";

/// The other commands' (`facts`, `eval`, `guard`, `model`): warnings and errors only — their
/// output is what they print.
pub const COMMAND_FILTER: &str = "warn,qdrant_edge::common=error";

/// Who logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `ragback serve`: what a running service does, at `info`.
    Server,
    /// A command: warnings and errors.
    Command,
}

/// Installs the global subscriber. Call once, at start-up; later calls are ignored.
pub fn init(format: LogFormat, verbosity: Verbosity) {
    let default = match verbosity {
        Verbosity::Server => DEFAULT_FILTER,
        Verbosity::Command => COMMAND_FILTER,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::NONE);
    let _already_set = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            // Every enclosing span, so the request's id is on each line of that request.
            .with_current_span(false)
            .with_span_list(true)
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

/// The process's metrics registry, rendered in the Prometheus text format by `GET /metrics`.
#[derive(Clone)]
pub struct Metrics {
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Every metric, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets. Call every few seconds: without it
    /// samples pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Latency buckets, in seconds: 0.5 ms to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Facts given to one reply.
const FACT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 50.0];

/// The metrics recorder: installed as the global `metrics` recorder on the first call, the same
/// registry afterwards (tests build many servers in one process).
pub fn metrics() -> Metrics {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    let handle = HANDLE.get_or_init(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("ragback_facts_per_reply".into()),
                    FACT_BUCKETS,
                )
            });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            // Only empty bucket lists fail, and ours are constants.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics will stay empty");
        }
        describe();
        handle
    });
    Metrics {
        handle: handle.clone(),
    }
}

/// Help texts for `/metrics`.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ragback_http_requests_total",
        "HTTP requests by route, method and status"
    );
    describe_histogram!(
        "ragback_http_request_duration_seconds",
        Unit::Seconds,
        "Time to the response head, by route, method and status (a stream's events come after)"
    );
    describe_gauge!(
        "ragback_http_requests_in_flight",
        "HTTP requests being handled"
    );
    describe_gauge!(
        "ragback_generations_in_flight",
        "Generations holding a slot"
    );
    describe_counter!(
        "ragback_generations_rejected_total",
        "Generations refused with 503 after waiting for a slot"
    );
    describe_counter!(
        "ragback_generations_total",
        "Generations by outcome (`ok` or the error code)"
    );
    describe_histogram!(
        "ragback_stage_duration_seconds",
        Unit::Seconds,
        "Time per stage: embed, search, render, llm, first_token (streams), total"
    );
    describe_counter!(
        "ragback_upstream_retries_total",
        "Retried upstream calls by operation and cause"
    );
    describe_counter!(
        "ragback_upstream_failures_total",
        "Upstream calls that failed for good, by operation and cause"
    );
    describe_counter!(
        "ragback_retrievals_total",
        "Retrievals by outcome: ok, skipped, degraded"
    );
    describe_histogram!(
        "ragback_facts_per_reply",
        "Facts given to the model per reply"
    );
    describe_counter!(
        "ragback_llm_tokens_total",
        "LLM tokens by kind: prompt, completion"
    );
}
