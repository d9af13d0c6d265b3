//! The ranges a number must lie in, defined once: configuration (`RAGBACK_LLM__TEMPERATURE`) and
//! requests (`generation.temperature`) are checked against the same bound, and a setting that is
//! out of its bound is an [`InvalidSetting`] naming its key.

use std::fmt::Display;
use std::time::Duration;

use ragback_domain::ValidationError;

/// A setting that cannot be used: its key (dotted, from its section down: `local.batch_size`) and
/// why. Configuration turns the key into the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidSetting {
    /// The key, dotted.
    pub key: String,
    /// What is wrong with its value.
    pub problem: String,
}

impl InvalidSetting {
    /// `key` cannot be used because of `problem`.
    pub fn new(key: impl Into<String>, problem: impl Display) -> Self {
        Self {
            key: key.into(),
            problem: problem.to_string(),
        }
    }

    /// The same problem, seen from the section holding this one (`batch_size` under `local` is
    /// `local.batch_size`).
    pub fn under(self, section: &str) -> Self {
        Self {
            key: format!("{section}.{}", self.key),
            ..self
        }
    }
}

/// Checks the optional sampling settings `temperature`, `top_p` and `max_tokens`, named so.
pub fn sampling(
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
) -> Result<(), InvalidSetting> {
    if let Some(t) = temperature {
        TEMPERATURE.setting("temperature", t)?;
    }
    if let Some(p) = top_p {
        TOP_P.setting("top_p", p)?;
    }
    if let Some(n) = max_tokens {
        MAX_TOKENS.setting("max_tokens", n)?;
    }
    Ok(())
}

/// `Ok` unless `duration` is zero.
pub fn nonzero(key: &str, duration: Duration) -> Result<(), InvalidSetting> {
    if duration.is_zero() {
        Err(InvalidSetting::new(key, "must be above 0"))
    } else {
        Ok(())
    }
}

/// A range of accepted values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    min: f64,
    max: f64,
    /// Whether `min` itself is refused (`top_p` must be above 0).
    above_min: bool,
}

impl Bound {
    /// `min..=max`.
    pub const fn between(min: f64, max: f64) -> Self {
        Self {
            min,
            max,
            above_min: false,
        }
    }

    /// `min..` (counts, sizes, timeouts).
    pub const fn at_least(min: f64) -> Self {
        Self::between(min, f64::INFINITY)
    }

    /// `(min, max]`.
    pub const fn above(min: f64, max: f64) -> Self {
        Self {
            min,
            max,
            above_min: true,
        }
    }

    /// Whether `value` lies in the range.
    pub fn contains(&self, value: f64) -> bool {
        let above = if self.above_min {
            value > self.min
        } else {
            value >= self.min
        };
        above && value <= self.max
    }

    /// `Ok` when `value` lies in the range; else why not.
    pub fn check(&self, value: impl Into<f64>) -> Result<(), ValidationError> {
        let actual = value.into();
        if self.contains(actual) {
            Ok(())
        } else if self.max.is_infinite() {
            Err(ValidationError::TooSmall {
                min: self.min,
                actual,
            })
        } else {
            Err(ValidationError::OutOfRange {
                min: self.min,
                max: self.max,
                actual,
            })
        }
    }

    /// [`check`](Self::check) for counts and sizes.
    pub fn check_count(&self, value: usize) -> Result<(), ValidationError> {
        self.check(value as f64)
    }

    /// [`check`](Self::check) for the setting `key`.
    pub fn setting(&self, key: &str, value: impl Into<f64>) -> Result<(), InvalidSetting> {
        self.check(value).map_err(|e| InvalidSetting::new(key, e))
    }

    /// [`check_count`](Self::check_count) for the setting `key`.
    pub fn setting_count(&self, key: &str, value: usize) -> Result<(), InvalidSetting> {
        self.check_count(value)
            .map_err(|e| InvalidSetting::new(key, e))
    }
}

/// Sampling temperature.
pub const TEMPERATURE: Bound = Bound::between(0.0, 2.0);
/// Nucleus sampling: above 0, at most 1.
pub const TOP_P: Bound = Bound::above(0.0, 1.0);
/// Tokens to generate.
pub const MAX_TOKENS: Bound = Bound::between(1.0, crate::chat::MAX_TOKENS_LIMIT as f64);
/// Largest `top_k` a request may ask for.
pub const MAX_TOP_K: usize = 50;
/// Facts per reply or search: 1 to [`MAX_TOP_K`].
pub const TOP_K: Bound = Bound::between(1.0, MAX_TOP_K as f64);
/// A cosine similarity threshold.
pub const THRESHOLD: Bound = Bound::between(-1.0, 1.0);
/// A share or a weight.
pub const UNIT: Bound = Bound::between(0.0, 1.0);
/// How far below the best fact the others may score (2: any, cosines being in −1…1).
pub const MARGIN: Bound = Bound::between(0.0, 2.0);
/// Anything that must be there at least once: attempts, batch sizes, concurrency, timeouts.
pub const POSITIVE: Bound = Bound::at_least(1.0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_accept_their_range_and_say_why_not() {
        assert!(TOP_P.check(1.0).is_ok());
        assert_eq!(
            TOP_P.check(0.0),
            Err(ValidationError::OutOfRange {
                min: 0.0,
                max: 1.0,
                actual: 0.0
            })
        );
        assert!(TEMPERATURE.check(0.0).is_ok());
        assert!(TEMPERATURE.check(2.5).is_err());
        assert!(THRESHOLD.check(-1.0).is_ok());
        assert!(TOP_K.check_count(0).is_err());
        assert!(TOP_K.check_count(50).is_ok());
        assert!(TOP_K.check_count(51).is_err());
        assert_eq!(
            POSITIVE.check_count(0).unwrap_err().to_string(),
            "must be at least 1 (got 0)"
        );
    }
}
