//! The report's plots as inline SVG: small pure functions of the statistics, every text
//! escaped, no script, no external reference.

use std::fmt::Write as _;

use ragback_application::evaluation::moderation::Tag;
use ragback_application::evaluation::policy::Policy;
use ragback_application::evaluation::scoring::{CriterionStats, ModerationStats};
use ragback_application::evaluation::verdict::Arm;

/// `text` safe inside SVG markup.
fn escape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    // Writing into a Vec cannot fail.
    let _ = tera::escape_html(text, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The forest plot: each criterion's win rate and LC with their intervals on [0, 1].
pub(super) fn forest(criteria: &[CriterionStats], policy: &Policy) -> String {
    let (width, row, left) = (640.0, 34.0, 140.0);
    let height = row * criteria.len() as f64 + 40.0;
    let x = |v: f64| left + v.clamp(0.0, 1.0) * (width - left - 20.0);
    let mut svg = format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="win rates">"#
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" font-size="11" text-anchor="middle">{tick}</text>"##,
            x(tick),
            height - 25.0,
            height - 10.0
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#444" stroke-dasharray="4 3"/>"##,
        x(0.5),
        height - 25.0
    );
    let ni = 0.5 - policy.non_inferiority_margin;
    let _ = write!(
        svg,
        r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#c77" stroke-dasharray="2 3"/>"##,
        x(ni),
        height - 25.0
    );
    for (i, c) in criteria.iter().enumerate() {
        let y = 25.0 + row * i as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{}" font-size="13">{}</text>"#,
            y + 4.0,
            escape(&c.criterion)
        );
        if let Some(ci) = c.win_rate.ci {
            let _ = write!(
                svg,
                r##"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="#1f5fa8" stroke-width="3"/>"##,
                x(ci.low),
                x(ci.high)
            );
        }
        if c.win_rate.value.is_finite() {
            let _ = write!(
                svg,
                r##"<circle class="wr" cx="{}" cy="{y}" r="5" fill="#1f5fa8"/>"##,
                x(c.win_rate.value)
            );
        }
        if let Some(ci) = c.length_controlled.ci {
            let _ = write!(
                svg,
                r##"<line x1="{0}" x2="{2}" y1="{1}" y2="{1}" stroke="#e08a1e" stroke-width="2"/>"##,
                x(ci.low),
                y + 9.0,
                x(ci.high)
            );
        }
        if c.length_controlled.value.is_finite() {
            let _ = write!(
                svg,
                r##"<rect x="{}" y="{}" width="7" height="7" fill="#e08a1e"/>"##,
                x(c.length_controlled.value) - 3.5,
                y + 5.5
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Overlaid histograms of the two arms' reply lengths.
pub(super) fn histogram(a: &[usize], b: &[usize]) -> String {
    let (width, height, bins) = (640.0, 160.0, 20usize);
    let max = a.iter().chain(b).copied().max().unwrap_or(1).max(1) as f64;
    let count = |values: &[usize]| {
        let mut counts = vec![0usize; bins];
        for &v in values {
            counts[((v as f64 / max) * (bins as f64 - 1.0)).round() as usize] += 1;
        }
        counts
    };
    let (ca, cb) = (count(a), count(b));
    let top = ca.iter().chain(&cb).copied().max().unwrap_or(1).max(1) as f64;
    let bar = (width - 40.0) / bins as f64;
    let mut svg = format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="reply lengths">"#
    );
    for (i, (na, nb)) in ca.iter().zip(&cb).enumerate() {
        let x0 = 20.0 + bar * i as f64;
        for (n, offset, colour) in [(na, 0.0, "#1f5fa8"), (nb, bar / 2.0, "#e08a1e")] {
            let h = *n as f64 / top * (height - 40.0);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                x0 + offset,
                height - 25.0 - h,
                bar / 2.0 - 1.0
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="20" y="{}" font-size="11">0</text><text x="{}" y="{}" font-size="11" text-anchor="end">{max} characters</text></svg>"#,
        height - 8.0,
        width - 20.0,
        height - 8.0
    );
    svg
}

/// Per-tag rate bars of both arms with their Wilson intervals.
pub(super) fn moderation_bars(moderation: &ModerationStats) -> String {
    let (width, row) = (640.0, 22.0);
    let height = row * Tag::ALL.len() as f64 * 2.0 + 30.0;
    let max = moderation
        .arms
        .iter()
        .flat_map(|(_, rates)| rates.iter().filter_map(|r| r.wilson.map(|w| w.high)))
        .fold(0.01f64, f64::max)
        * 1.25;
    let x = |v: f64| 130.0 + v / max * (width - 200.0);
    let mut svg = format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="moderation">"#
    );
    let mut y = 15.0;
    for tag in &Tag::ALL {
        for (arm, rates) in &moderation.arms {
            let Some(rate) = rates.iter().find(|r| r.tag == *tag) else {
                continue;
            };
            let colour = if *arm == Arm::A { "#1f5fa8" } else { "#e08a1e" };
            let label = if *arm == Arm::A {
                format!("{} A", tag.key())
            } else {
                "B".to_owned()
            };
            let _ = write!(
                svg,
                r#"<text x="4" y="{}" font-size="11">{}</text><rect x="130" y="{}" width="{:.1}" height="12" fill="{colour}"/>"#,
                y + 10.0,
                escape(&label),
                y,
                x(rate.rate) - 130.0
            );
            if let Some(w) = rate.wilson {
                let _ = write!(
                    svg,
                    r##"<line x1="{:.1}" x2="{:.1}" y1="{2}" y2="{2}" stroke="#333"/>"##,
                    x(w.low),
                    x(w.high),
                    y + 6.0
                );
            }
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="10">{}/{}</text>"#,
                x(rate.wilson.map_or(rate.rate, |w| w.high)) + 4.0,
                y + 10.0,
                rate.flagged,
                rate.n
            );
            y += row;
        }
    }
    let _ = write!(
        svg,
        r#"<text x="130" y="{}" font-size="10">0</text><text x="{:.1}" y="{}" font-size="10" text-anchor="end">{:.1} %</text>"#,
        height - 4.0,
        x(max),
        height - 4.0,
        100.0 * max
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use ragback_application::evaluation::scoring::{Counts, Estimate, Lengths};
    use ragback_application::evaluation::stats::Interval;

    use super::*;

    fn criterion(name: &str, win_rate: f64) -> CriterionStats {
        let estimate = Estimate {
            value: win_rate,
            ci: Some(Interval {
                low: win_rate - 0.1,
                high: win_rate + 0.1,
                se: 0.05,
            }),
        };
        CriterionStats {
            criterion: name.into(),
            n_pairs: 10,
            n_dialogues: 5,
            counts: Counts::default(),
            win_rate: estimate,
            p_value: 0.5,
            decisive_win_rate: None,
            order_mean_score: None,
            length_controlled: Estimate {
                value: f64::NAN,
                ci: None,
            },
            swap_consistency: None,
            first_slot_rate: None,
            refusal_rate: 0.0,
            unjudged_rate: 0.0,
            lengths: Lengths {
                median_chars: (0.0, 0.0),
                mean_chars: (0.0, 0.0),
                median_tokens: (None, None),
                b_longer_share: 0.0,
                win_rate_b_longer: None,
                win_rate_b_not_longer: None,
                chars_a: vec![],
                chars_b: vec![],
            },
            warnings: vec![],
            segments: vec![],
            design_effect: None,
            minimum_detectable_effect: None,
            pairs_needed_for_observed: None,
            samples: None,
        }
    }

    #[test]
    fn the_forest_has_a_dot_per_criterion_at_its_win_rate_and_escapes_names() {
        let svg = forest(
            &[criterion("<b>x</b>", 0.75), criterion("engagement", 0.5)],
            &Policy::default(),
        );
        assert_eq!(svg.matches("<circle class=\"wr\"").count(), 2);
        assert!(
            svg.contains("&lt;b&gt;x&lt;/b&gt;") && !svg.contains("<b>"),
            "{svg}"
        );
        // [0, 1] maps onto x from 140 to 620: 0.75 is at 500.
        assert!(svg.contains(r#"cx="500""#), "{svg}");
        assert!(!svg.contains("NaN"), "an undefined LC draws nothing: {svg}");
    }

    #[test]
    fn the_histogram_counts_every_reply_once() {
        let svg = histogram(&[10, 10, 20], &[20]);
        assert!(svg.contains("20 characters"), "{svg}");
        let bars = svg.matches("<rect").count();
        assert_eq!(bars, 40, "two bars per bin");
        assert!(
            histogram(&[], &[]).contains("<svg"),
            "no replies: an empty plot"
        );
    }

    #[test]
    fn moderation_bars_show_every_tag_of_both_arms() {
        let rates = |flagged| {
            Tag::ALL
                .iter()
                .map(|tag| ragback_application::evaluation::scoring::TagRate {
                    tag: *tag,
                    n: 10,
                    flagged,
                    rate: flagged as f64 / 10.0,
                    wilson: ragback_application::evaluation::stats::wilson(flagged, 10),
                    bootstrap: None,
                    dialogue_share: 0.0,
                })
                .collect()
        };
        let stats = ModerationStats {
            arms: vec![(Arm::A, rates(1)), (Arm::B, rates(2))],
            differences: vec![],
            unjudged: vec![],
            refused: vec![],
        };
        let svg = moderation_bars(&stats);
        assert_eq!(svg.matches("1/10").count(), Tag::ALL.len());
        assert_eq!(svg.matches("2/10").count(), Tag::ALL.len());
    }
}
