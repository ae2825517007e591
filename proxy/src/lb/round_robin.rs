//! Smooth weighted round-robin: endpoints interleave in proportion to their weights
//! (weights 5,1,1 give a a b a c a a, not a a a a a b c).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Round-robin position of one Service.
#[derive(Debug, Default)]
pub struct SmoothRoundRobin {
    next: AtomicUsize,
    current: Mutex<Vec<f64>>,
}

impl SmoothRoundRobin {
    /// Picks among `weights.len()` endpoints (weight 0 or `excluded` ones are skipped). With
    /// all weights equal, [`SmoothRoundRobin::pick_in_turn`] gives the same sequence
    /// lock-free.
    pub fn pick(&self, weights: &[f64], excluded: impl Fn(usize) -> bool) -> Option<usize> {
        let n = weights.len();
        if n == 0 {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.len() != n {
            *current = vec![0.0; n];
        }
        let mut total = 0.0;
        let mut best: Option<usize> = None;
        for i in 0..n {
            if weights[i] <= 0.0 || excluded(i) {
                continue;
            }
            current[i] += weights[i];
            total += weights[i];
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= total;
        Some(b)
    }

    /// Takes turns among `n` endpoints of equal weight, lock-free, skipping `excluded` ones.
    pub fn pick_in_turn(&self, n: usize, excluded: impl Fn(usize) -> bool) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| (start + i) % n).find(|&i| !excluded(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_exactly_k_each() {
        let rr = SmoothRoundRobin::default();
        let mut counts = [0usize; 4];
        for _ in 0..4 * 25 {
            counts[rr.pick_in_turn(4, |_| false).unwrap()] += 1;
        }
        assert_eq!(counts, [25; 4]);
    }

    #[test]
    fn weighted_sequence_interleaves() {
        let rr = SmoothRoundRobin::default();
        let seq: Vec<usize> = (0..7)
            .map(|_| rr.pick(&[5.0, 1.0, 1.0], |_| false).unwrap())
            .collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weights_hold_over_many_requests() {
        let rr = SmoothRoundRobin::default();
        let w = [3.0, 1.0, 0.0, 4.0];
        let mut counts = [0usize; 4];
        for _ in 0..800 {
            counts[rr.pick(&w, |_| false).unwrap()] += 1;
        }
        assert_eq!(counts, [300, 100, 0, 400]);
    }

    #[test]
    fn excluded_endpoints_are_skipped() {
        let rr = SmoothRoundRobin::default();
        for _ in 0..10 {
            assert_eq!(rr.pick_in_turn(2, |i| i == 0), Some(1));
            assert_eq!(rr.pick(&[1.0, 1.0], |i| i == 0), Some(1));
        }
        assert_eq!(rr.pick_in_turn(2, |_| true), None);
        assert_eq!(rr.pick(&[1.0, 1.0], |_| true), None);
    }
}
