//! Progress of a long seeding: a bar with facts/s on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Reports how many of `total` facts are stored.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    started: Instant,
}

impl Progress {
    /// A reporter for `total` facts; draws a bar when stderr is a terminal.
    pub fn new(total: usize) -> Self {
        let bar = (std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} facts ({per_sec})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self {
            bar,
            total,
            started: Instant::now(),
        }
    }

    /// `stored` of the total are stored now.
    pub fn update(&self, stored: usize) {
        match &self.bar {
            Some(bar) => bar.set_position(stored as u64),
            None if self.total > 0 => {
                let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
                eprintln!(
                    "stored {stored}/{} facts ({:.0} facts/s)",
                    self.total,
                    stored as f64 / seconds
                );
            }
            None => {}
        }
    }

    /// Removes the bar (the summary follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
