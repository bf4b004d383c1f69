//! Percentiles and summaries of measured durations.

use std::time::Duration;

use serde::Serialize;

/// Nearest-rank percentile (`q` in 0–100) of `values`, `None` when empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Count, median, p99 and max of a set of seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    pub fn of(values: &[f64]) -> Self {
        Summary {
            n: values.len(),
            p50: percentile(values, 50.0),
            p99: percentile(values, 99.0),
            max: percentile(values, 100.0),
        }
    }

    pub fn of_durations(values: &[Duration]) -> Self {
        Self::of(&values.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
    }

    /// `p50 / p99 / max (n)` in seconds, `-` where there is nothing.
    pub fn show(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        format!(
            "{} / {} / {} s (n={})",
            f(self.p50),
            f(self.p99),
            f(self.max),
            self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_summary_of_few_values_is_their_maximum_at_p99() {
        let s = Summary::of(&[0.4, 0.2, 1.5]);
        assert_eq!(
            (s.n, s.p50, s.p99, s.max),
            (3, Some(0.4), Some(1.5), Some(1.5))
        );
        assert_eq!(Summary::of(&[]).show(), "- / - / - s (n=0)");
    }
}
