//! Percentiles of a bench's samples.

/// p50, p90, p99 and the maximum of a sample (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// How many values.
    pub n: usize,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest value.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `values`; `None` for an empty sample (NaNs sort last).
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let last = sorted.len().checked_sub(1)?;
        let at = |p: f64| sorted[((last as f64) * p).round() as usize];
        Some(Self {
            n: sorted.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: sorted[last],
        })
    }
}

/// One report line: `name` padded to `width`, then p50/p90/p99/max in `unit` and the count, or
/// `no samples`.
pub fn line(name: &str, width: usize, unit: &str, values: &[f64]) -> String {
    match Percentiles::of(values) {
        Some(p) => format!(
            "{name:<width$} p50 {:>9.3}  p90 {:>9.3}  p99 {:>9.3}  max {:>9.3}  ({unit}, n={})",
            p.p50, p.p90, p.p99, p.max, p.n
        ),
        None => format!("{name:<width$} no samples"),
    }
}

/// Prints [`line`].
pub fn report(name: &str, width: usize, unit: &str, values: &[f64]) {
    println!("{}", line(name, width, unit, values));
}

/// `name` from the environment as a number, or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
