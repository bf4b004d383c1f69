//! Smooth weighted round robin (the nginx algorithm): deterministic, and spreads picks
//! evenly in time (weights 3:1 give A A B A, A A B A, …), so tests can assert exact counts.

use std::collections::HashMap;

use crate::state::BackendKey;

/// Per-backend running scores; keys that leave the rotation are forgotten.
#[derive(Debug, Default)]
pub struct Wrr {
    current: HashMap<BackendKey, i64>,
}

impl Wrr {
    /// Picks one of `candidates` (key, weight); zero weights are never picked.
    pub fn pick<'a>(&mut self, candidates: &[(&'a BackendKey, u32)]) -> Option<&'a BackendKey> {
        self.current
            .retain(|k, _| candidates.iter().any(|(c, w)| *c == k && *w > 0));
        let total: i64 = candidates.iter().map(|(_, w)| i64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut best: Option<(&BackendKey, i64)> = None;
        for (k, w) in candidates.iter().filter(|(_, w)| *w > 0) {
            let c = self.current.entry((*k).clone()).or_insert(0);
            *c += i64::from(*w);
            if best.is_none_or(|(_, b)| *c > b) {
                best = Some((k, *c));
            }
        }
        let (chosen, _) = best?;
        if let Some(c) = self.current.get_mut(chosen) {
            *c -= total;
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> BackendKey {
        BackendKey {
            server_id: id.into(),
            server_ip: None,
            port: 1,
        }
    }

    #[test]
    fn exact_spread_and_zero_weight() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let cands = [(&a, 3), (&b, 1), (&c, 0)];
        let mut w = Wrr::default();
        let picks: Vec<_> = (0..400)
            .map(|_| w.pick(&cands).unwrap().server_id.clone())
            .collect();
        assert_eq!(picks.iter().filter(|p| *p == "a").count(), 300);
        assert_eq!(picks.iter().filter(|p| *p == "b").count(), 100);
        assert_eq!(&picks[..4], &["a", "a", "b", "a"]);
        assert!(w.pick(&[(&c, 0)]).is_none());
    }
}
