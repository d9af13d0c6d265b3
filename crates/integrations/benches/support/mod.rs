//! What the integrations benches share: reading counts from the environment, printing percentiles.

/// `name` from the environment as a number, or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints p50/p90/p99/max and the count of `values` (in `unit`) under `name`, padded to `width`.
pub fn percentiles(name: &str, width: usize, unit: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((values.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<width$} p50 {:>7.2}  p90 {:>7.2}  p99 {:>7.2}  max {:>7.2}  ({unit}, n={})",
        at(0.5),
        at(0.9),
        at(0.99),
        values[values.len() - 1],
        values.len()
    );
}
