//! What the replay and the judges share: the service's retry policy, counted across runs,
//! a price table, a cost budget, and stopping on Ctrl-C.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::{Stream, StreamExt};
use ragback_application::retry::{RetryDecision, RetryError, RetryPolicy, Retryable, retry};
use tokio::time::Instant;

/// How a stage calls out: what `replay`, `pairwise` and `moderate` share.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Calls in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Attempts per row, counted across runs.
    #[arg(long, default_value_t = 4)]
    pub max_attempts: u32,
    /// First retry delay, ms (doubles up to 30 s; `Retry-After` wins).
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Price of a model, USD per million tokens: `MODEL=INPUT:OUTPUT` (repeatable).
    #[arg(long = "price")]
    pub prices: Vec<String>,
    /// Stop issuing calls once this much is spent (USD); rerun to continue.
    #[arg(long)]
    pub max_cost: Option<f64>,
    /// Start the journal over even if it was written with another configuration.
    #[arg(long)]
    pub new_run: bool,
}

impl CallArgs {
    /// The retry policy.
    pub fn retries(&self) -> Retries {
        Retries {
            max_attempts: self.max_attempts.max(1),
            backoff: Duration::from_millis(self.backoff_ms),
        }
    }
}

/// Counts the rows a stage wrote: `Some(true)` made, `Some(false)` failed, `None` not started
/// (stopped, or the budget ran out).
pub async fn tally(
    rows: impl Stream<Item = anyhow::Result<Option<bool>>>,
) -> anyhow::Result<(usize, usize)> {
    let mut rows = std::pin::pin!(rows);
    let (mut ok, mut failed) = (0, 0);
    while let Some(row) = rows.next().await {
        match row? {
            Some(true) => ok += 1,
            Some(false) => failed += 1,
            None => {}
        }
    }
    Ok((ok, failed))
}

/// A failed call.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What another attempt would do.
    pub kind: FailureKind,
    /// The server's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// What happened.
    pub message: String,
}

/// Whether a failed call is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 429, 5xx, a timeout, a reset: worth another attempt.
    Transient,
    /// Another attempt will not fix it.
    Permanent,
    /// The upstream refused the content (a content filter): never retried, never redone.
    Refused,
}

impl Failure {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            kind: FailureKind::Transient,
            retry_after,
            message: message.into(),
        }
    }

    /// A failure another attempt will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            retry_after: None,
            message: message.into(),
        }
    }

    /// A refusal of the content.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Refused,
            ..Self::permanent(message)
        }
    }

    /// An upstream's error, classified as the service classifies it ([`Retryable`]).
    pub fn upstream<E: Retryable + std::fmt::Display>(error: &E) -> Self {
        match error.retry_decision() {
            RetryDecision::Retry { after } => Self::transient(error.to_string(), after),
            RetryDecision::GiveUp => Self::permanent(error.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Retryable for Failure {
    fn retry_decision(&self) -> RetryDecision {
        match self.kind {
            FailureKind::Transient => RetryDecision::Retry {
                after: self.retry_after,
            },
            FailureKind::Permanent | FailureKind::Refused => RetryDecision::GiveUp,
        }
    }

    fn cause(&self) -> &'static str {
        match self.kind {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::Refused => "refused",
        }
    }
}

/// How calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Attempts per key, counted across runs.
    pub max_attempts: u32,
    /// First backoff; doubles up to [`MAX_BACKOFF`], with jitter.
    pub backoff: Duration,
}

/// The longest backoff between two attempts (a `Retry-After` may ask for more).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long a row may keep retrying in all: far more than any stage needs, so that only the
/// attempts bound it.
const PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// Calls `call` until it succeeds, fails for good, or the key's attempts (`spent` by earlier
/// runs included) are used up, with the service's retry policy ([`retry`]: exponential backoff
/// with jitter, `Retry-After` honoured). Returns the result and the attempts made in all.
pub async fn retrying<T, F, Fut>(
    retries: Retries,
    spent: u32,
    mut call: F,
) -> (Result<T, Failure>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let policy = RetryPolicy {
        max_attempts: retries.max_attempts.saturating_sub(spent).max(1),
        initial_backoff: retries.backoff,
        max_backoff: MAX_BACKOFF,
    };
    let mut made = 0;
    let result = retry(&policy, Instant::now() + PATIENCE, "eval_call", || {
        made += 1;
        call()
    })
    .await;
    let attempts = spent.saturating_add(made);
    match result {
        Ok(value) => (Ok(value), attempts),
        Err(RetryError::Failed { last, .. }) => (Err(last), attempts),
        Err(RetryError::DeadlineExceeded { .. }) => (
            Err(Failure::transient(
                format!("no answer within {PATIENCE:?}"),
                None,
            )),
            attempts,
        ),
    }
}

/// One chat completion of an evaluation model (`who` names it in the error) within `timeout`:
/// a missed deadline is a transient failure, the model's own errors are classified by `classify`.
pub async fn complete_within(
    model: &dyn ragback_application::ports::ChatModel,
    request: &ragback_application::ports::ChatRequest,
    timeout: Duration,
    who: &str,
    classify: impl Fn(ragback_application::ports::ChatModelError) -> Failure,
) -> Result<ragback_application::ports::Completion, Failure> {
    tokio::time::timeout(timeout, model.complete(request))
        .await
        .map_err(|_| {
            Failure::transient(format!("the {who} did not answer within {timeout:?}"), None)
        })?
        .map_err(classify)
}

/// Prices per million tokens, by model: `MODEL=INPUT:OUTPUT` (USD).
#[derive(Debug, Clone, Default)]
pub struct Prices(Vec<(String, f64, f64)>);

impl Prices {
    /// Parses `--price` flags.
    pub fn parse(flags: &[String]) -> anyhow::Result<Self> {
        flags
            .iter()
            .map(|flag| {
                let (model, rates) = flag
                    .rsplit_once('=')
                    .with_context(|| format!("--price {flag:?}: MODEL=INPUT:OUTPUT"))?;
                let (input, output) = rates
                    .split_once(':')
                    .with_context(|| format!("--price {flag:?}: MODEL=INPUT:OUTPUT"))?;
                Ok((model.to_owned(), input.parse()?, output.parse()?))
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    /// The cost of a call, when the model has a price.
    pub fn cost(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        self.0
            .iter()
            .find(|(m, _, _)| m == model)
            .map(|(_, input, output)| {
                (prompt_tokens as f64 * input + completion_tokens as f64 * output) / 1e6
            })
    }
}

/// A soft spending cap shared by the calls of a run: in micro-dollars.
#[derive(Debug, Clone)]
pub struct Budget {
    spent: Arc<AtomicU64>,
    cap: Option<u64>,
}

impl Budget {
    /// A cap of `max_usd` (none when `None`), with `already` spent by earlier runs.
    pub fn new(max_usd: Option<f64>, already: f64) -> Self {
        Self {
            spent: Arc::new(AtomicU64::new((already * 1e6).round() as u64)),
            cap: max_usd.map(|usd| (usd * 1e6).round() as u64),
        }
    }

    /// Adds a call's cost.
    pub fn add(&self, usd: f64) {
        self.spent
            .fetch_add((usd * 1e6).round() as u64, Ordering::SeqCst);
    }

    /// Whether the cap is reached.
    pub fn exhausted(&self) -> bool {
        self.cap
            .is_some_and(|cap| self.spent.load(Ordering::SeqCst) >= cap)
    }

    /// Spent so far, USD.
    pub fn spent(&self) -> f64 {
        self.spent.load(Ordering::SeqCst) as f64 / 1e6
    }
}

/// Set on Ctrl-C: no new call starts; those in flight finish and are written.
pub fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the calls in flight…");
            flag.store(true, Ordering::SeqCst);
        }
    });
    stop
}

/// The budget ran out: exit 3, rerun to continue.
#[derive(Debug, thiserror::Error)]
#[error("budget reached (${0:.6} spent): rerun with a higher --max-cost to continue")]
pub struct BudgetReached(pub f64);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prices_and_budgets_count_micro_dollars() {
        let prices = Prices::parse(&["vendor/m=0.15:0.6".into()]).unwrap();
        assert_eq!(prices.cost("vendor/m", 1_000_000, 500_000), Some(0.45));
        assert_eq!(prices.cost("other", 1, 1), None);
        let budget = Budget::new(Some(0.001), 0.0005);
        assert!(!budget.exhausted());
        budget.add(0.0005);
        assert!(budget.exhausted());
        assert!(Prices::parse(&["nope".into()]).is_err());
    }

    #[tokio::test]
    async fn retries_honour_retry_after_and_stop_at_the_limit() {
        let retries = Retries {
            max_attempts: 3,
            backoff: Duration::from_millis(10),
        };
        let mut calls = 0;
        let started = std::time::Instant::now();
        let (result, attempts) = retrying(retries, 0, || {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(Failure::transient("429", Some(Duration::from_millis(50))))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!((result.unwrap(), attempts), (2, 2));
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "Retry-After was waited"
        );
        let (result, attempts) = retrying(retries, 1, || async {
            Err::<(), _>(Failure::transient("500", None))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts, 3, "one attempt of an earlier run counts");
        let (_, attempts) = retrying(retries, 0, || async {
            Err::<(), _>(Failure::permanent("400"))
        })
        .await;
        assert_eq!(attempts, 1);
    }
}
