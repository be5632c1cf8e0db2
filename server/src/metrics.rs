//! The Prometheus text exposition (format 0.0.4) of the metric series.
//!
//! | action's metric | family | type |
//! |---|---|---|
//! | counter | `scry_hits_total` | counter |
//! | tictoc | `scry_tictoc_seconds` | histogram |
//! | duration | `scry_duration_seconds` | histogram |
//! | value | `scry_value` | histogram |
//!
//! Every series has the labels `action`, `agent` and `location`.

use crate::api::{MetricKind, MetricSeries};
use std::fmt::Write;

/// The families, in the order they are written: (kind, name, type, help).
const FAMILIES: [(MetricKind, &str, &str, &str); 4] = [
    (
        MetricKind::Counter,
        "scry_hits_total",
        "counter",
        "Hits of a counter action's location.",
    ),
    (
        MetricKind::Tictoc,
        "scry_tictoc_seconds",
        "histogram",
        "Time from a tictoc action's location to its end location on the same thread.",
    ),
    (
        MetricKind::Duration,
        "scry_duration_seconds",
        "histogram",
        "Time from a function's entry to its return, of a duration action.",
    ),
    (
        MetricKind::Value,
        "scry_value",
        "histogram",
        "Values of a value action's expression.",
    ),
];

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value or bucket bound as Prometheus writes it.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// The exposition of every series (buckets cumulative, as [`crate::db::metric_series`]
/// gives them).
pub fn prometheus(series: &[MetricSeries]) -> String {
    let mut out = String::new();
    for (kind, name, ty, help) in FAMILIES {
        let mut of_kind = series.iter().filter(|s| s.kind == kind).peekable();
        if of_kind.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {ty}");
        for s in of_kind {
            let labels = format!(
                "action=\"{}\",agent=\"{}\",location=\"{}\"",
                escape_label(&s.action_id),
                escape_label(&s.agent_id),
                escape_label(&s.location)
            );
            if kind == MetricKind::Counter {
                let _ = writeln!(out, "{name}{{{labels}}} {}", s.count);
                continue;
            }
            let mut last = 0;
            for &(le, n) in s.buckets.iter().filter(|b| b.0 != f64::INFINITY) {
                last = n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{}\"}} {n}", number(le));
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count.max(last)
            );
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", number(s.sum));
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count.max(last));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_histogram() {
        let series = vec![
            MetricSeries {
                action_id: "act-1".into(),
                kind: MetricKind::Counter,
                location: "a\"b\\c\nd".into(),
                agent_id: "a-1".into(),
                count: 7,
                sum: 0.0,
                buckets: vec![],
            },
            MetricSeries {
                action_id: "act-2".into(),
                kind: MetricKind::Duration,
                location: "work".into(),
                agent_id: "a-1".into(),
                count: 3,
                sum: 0.25,
                buckets: vec![(0.001, 1), (0.1, 3)],
            },
        ];
        let text = prometheus(&series);
        assert!(text.contains(
            "scry_hits_total{action=\"act-1\",agent=\"a-1\",location=\"a\\\"b\\\\c\\nd\"} 7\n"
        ));
        assert!(text.contains("# TYPE scry_duration_seconds histogram\n"));
        assert!(text.contains(
            "scry_duration_seconds_bucket{action=\"act-2\",agent=\"a-1\",location=\"work\",le=\"0.001\"} 1\n"
        ));
        assert!(text.contains(
            "scry_duration_seconds_bucket{action=\"act-2\",agent=\"a-1\",location=\"work\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains(
            "scry_duration_seconds_sum{action=\"act-2\",agent=\"a-1\",location=\"work\"} 0.25\n"
        ));
        assert!(text.contains(
            "scry_duration_seconds_count{action=\"act-2\",agent=\"a-1\",location=\"work\"} 3\n"
        ));
        assert!(!text.contains("scry_tictoc"));
    }
}
