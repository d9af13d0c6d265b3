//! Retries with exponential backoff and jitter, honouring `Retry-After`, within a deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_retry::strategy::{ExponentialBackoff, jitter};

use crate::ports::{ChatModelError, EmbedError, ModerationError};

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The delay before the first retry; each further retry doubles it.
    pub initial_backoff: Duration,
    /// No backoff delay exceeds this.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Backoff delays: `initial · 2ⁿ`, capped, each with "equal jitter" (half fixed, half random),
    /// so that clients who failed together do not retry together.
    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let initial_ms = u64::try_from(self.initial_backoff.as_millis()).unwrap_or(u64::MAX);
        // from_millis(2).factor(f) yields 2f, 4f, 8f…: f = initial/2 starts at `initial`.
        ExponentialBackoff::from_millis(2)
            .factor(initial_ms.div_ceil(2).max(1))
            .max_delay(self.max_backoff)
            .map(|delay| delay / 2 + jitter(delay / 2))
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Permanent: give up now.
    GiveUp,
    /// Transient: try again, after the given delay when the upstream asked for one.
    Retry {
        /// The upstream's `Retry-After`.
        after: Option<Duration>,
    },
}

/// Classifies an error as transient or permanent.
pub trait Retryable {
    /// Whether retrying may help.
    fn retry_decision(&self) -> RetryDecision;
    /// A short, stable name of the kind of failure, for metrics (`rate_limited`, …).
    fn cause(&self) -> &'static str;
}

impl Retryable for ChatModelError {
    fn retry_decision(&self) -> RetryDecision {
        match self {
            Self::RateLimited { retry_after, .. } => RetryDecision::Retry {
                after: *retry_after,
            },
            Self::Unavailable { retry_after, .. } => RetryDecision::Retry {
                after: *retry_after,
            },
            Self::InvalidResponse(_) => RetryDecision::Retry { after: None },
            Self::NotConfigured(_) | Self::Rejected { .. } => RetryDecision::GiveUp,
        }
    }

    fn cause(&self) -> &'static str {
        match self {
            Self::NotConfigured(_) => "not_configured",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::InvalidResponse(_) => "invalid_response",
        }
    }
}

impl Retryable for EmbedError {
    fn retry_decision(&self) -> RetryDecision {
        match self {
            Self::RateLimited { retry_after } => RetryDecision::Retry {
                after: *retry_after,
            },
            Self::Unavailable(_) | Self::InvalidResponse(_) => RetryDecision::Retry { after: None },
            Self::Unauthorized(_) | Self::InvalidInput(_) => RetryDecision::GiveUp,
        }
    }

    fn cause(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidInput(_) => "invalid_input",
            Self::InvalidResponse(_) => "invalid_response",
        }
    }
}

impl Retryable for ModerationError {
    fn retry_decision(&self) -> RetryDecision {
        match self {
            Self::RateLimited { retry_after, .. } => RetryDecision::Retry {
                after: *retry_after,
            },
            Self::Unavailable(_) | Self::InvalidResponse(_) => RetryDecision::Retry { after: None },
            Self::Rejected { .. } => RetryDecision::GiveUp,
        }
    }

    fn cause(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::InvalidResponse(_) => "invalid_response",
        }
    }
}

/// Why retrying ended without success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryError<E> {
    /// The last attempt failed permanently, attempts ran out, or the upstream asked to wait past
    /// the deadline.
    #[error("failed after {attempts} attempt(s): {last}")]
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: E,
    },
    /// The deadline passed while an attempt was running.
    #[error("no answer before the deadline ({attempts} attempt(s))")]
    DeadlineExceeded {
        /// Attempts made, the interrupted one included.
        attempts: u32,
    },
}

/// Runs `operation` until it succeeds, fails permanently, runs out of attempts, or `deadline`
/// passes. An attempt still running at the deadline is dropped (which cancels its request).
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    deadline: Instant,
    what: &'static str,
    mut operation: F,
) -> Result<T, RetryError<E>>
where
    E: Retryable + Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = policy.delays();
    let mut attempts = 0;
    let failed = |cause: &'static str| {
        metrics::counter!("ragback_upstream_failures_total", "operation" => what, "cause" => cause)
            .increment(1);
    };
    loop {
        attempts += 1;
        let error = match tokio::time::timeout_at(deadline, operation()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_elapsed) => {
                failed("deadline");
                return Err(RetryError::DeadlineExceeded { attempts });
            }
        };
        let RetryDecision::Retry { after } = error.retry_decision() else {
            failed(error.cause());
            return Err(RetryError::Failed {
                attempts,
                last: error,
            });
        };
        if attempts >= policy.max_attempts.max(1) {
            failed(error.cause());
            return Err(RetryError::Failed {
                attempts,
                last: error,
            });
        }
        let backoff = delays.next().unwrap_or(policy.max_backoff);
        let delay = after.unwrap_or(backoff);
        // Compared as durations: `now + delay` overflows for a delay an upstream may send.
        if delay >= deadline.saturating_duration_since(Instant::now()) {
            failed(error.cause());
            tracing::warn!(attempt = attempts, ?delay, %error, "{what} failed; no time left to retry");
            return Err(RetryError::Failed {
                attempts,
                last: error,
            });
        }
        tracing::warn!(attempt = attempts, ?delay, %error, "{what} failed; retrying");
        metrics::counter!("ragback_upstream_retries_total", "operation" => what, "cause" => error.cause())
            .increment(1);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }

    fn unavailable() -> ChatModelError {
        ChatModelError::unavailable("502")
    }

    /// Runs `retry` over scripted outcomes; returns the result and the instants of each attempt.
    async fn run(
        policy: RetryPolicy,
        deadline: Duration,
        script: Vec<Result<u32, ChatModelError>>,
    ) -> (Result<u32, RetryError<ChatModelError>>, Vec<Duration>) {
        let start = Instant::now();
        let script = Mutex::new(script.into_iter());
        let calls = Mutex::new(Vec::new());
        let result = retry(&policy, start + deadline, "test call", || {
            calls.lock().unwrap().push(start.elapsed());
            let next = script.lock().unwrap().next();
            async move { next.unwrap_or(Ok(0)) }
        })
        .await;
        (result, calls.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_growing_jittered_backoff() {
        let (result, calls) = run(
            policy(4),
            Duration::from_secs(60),
            vec![
                Err(unavailable()),
                Err(unavailable()),
                Err(unavailable()),
                Ok(7),
            ],
        )
        .await;

        assert_eq!(result, Ok(7));
        assert_eq!(calls.len(), 4);
        let gaps: Vec<_> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        // Equal jitter: each delay lies in [d/2, d] for d = 100, 200, 400 ms.
        for (gap, full) in gaps.iter().zip([100u64, 200, 400]) {
            assert!(
                *gap >= Duration::from_millis(full / 2),
                "{gap:?} < {full}/2 ms"
            );
            assert!(*gap <= Duration::from_millis(full), "{gap:?} > {full} ms");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let limited = ChatModelError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
            message: "slow down".into(),
        };
        let (result, calls) = run(
            policy(3),
            Duration::from_secs(60),
            vec![Err(limited), Ok(1)],
        )
        .await;

        assert_eq!(result, Ok(1));
        assert_eq!(calls[1] - calls[0], Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let rejected = ChatModelError::Rejected {
            status: 401,
            message: "bad key".into(),
        };
        let (result, calls) = run(
            policy(5),
            Duration::from_secs(60),
            vec![Err(rejected.clone())],
        )
        .await;

        assert_eq!(
            result,
            Err(RetryError::Failed {
                attempts: 1,
                last: rejected
            })
        );
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let (result, calls) = run(
            policy(2),
            Duration::from_secs(60),
            vec![Err(unavailable()); 5],
        )
        .await;

        assert!(matches!(
            result,
            Err(RetryError::Failed { attempts: 2, .. })
        ));
        assert_eq!(calls.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
        let limited = ChatModelError::RateLimited {
            retry_after: Some(Duration::from_secs(120)),
            message: "slow down".into(),
        };
        let (result, calls) = run(policy(5), Duration::from_secs(10), vec![Err(limited)]).await;

        assert!(matches!(
            result,
            Err(RetryError::Failed { attempts: 1, .. })
        ));
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_of_centuries_gives_up_without_overflow() {
        let limited = ChatModelError::RateLimited {
            retry_after: Some(Duration::MAX),
            message: "come back never".into(),
        };
        let (result, calls) = run(policy(5), Duration::from_secs(10), vec![Err(limited)]).await;
        assert!(matches!(
            result,
            Err(RetryError::Failed { attempts: 1, .. })
        ));
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_attempt_ends_at_the_deadline() {
        let start = Instant::now();
        let result: Result<(), RetryError<ChatModelError>> =
            retry(&policy(3), start + Duration::from_secs(5), "stall", || {
                std::future::pending::<Result<(), ChatModelError>>()
            })
            .await;

        assert_eq!(result, Err(RetryError::DeadlineExceeded { attempts: 1 }));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
