//! Least-request: the power of two random choices over in-flight requests, weight-aware.

/// Picks among `candidates` (indices), scoring each by `weight / (in_flight + 1)`: two random
/// distinct candidates are compared and the better one wins (ties go to the first drawn).
pub fn pick(
    candidates: &[usize],
    weight: impl Fn(usize) -> f64,
    in_flight: impl Fn(usize) -> u64,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        n => {
            let a = rng.usize(..n);
            let mut b = rng.usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (candidates[a], candidates[b]);
            let score = |i: usize| weight(i) / (in_flight(i) as f64 + 1.0);
            Some(if score(b) > score(a) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Keeps `outstanding` requests open, finishing the oldest first, and counts picks.
    fn simulate(weights: &[f64], outstanding: usize, requests: usize) -> Vec<usize> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut in_flight = vec![0u64; weights.len()];
        let mut open = VecDeque::new();
        let mut counts = vec![0usize; weights.len()];
        let candidates: Vec<usize> = (0..weights.len()).collect();
        for _ in 0..requests {
            let snapshot = in_flight.clone();
            let i = pick(&candidates, |i| weights[i], |i| snapshot[i], &mut rng).unwrap();
            counts[i] += 1;
            in_flight[i] += 1;
            open.push_back(i);
            if open.len() > outstanding {
                let done = open.pop_front().unwrap();
                in_flight[done] -= 1;
            }
        }
        counts
    }

    #[test]
    fn equal_endpoints_stay_balanced() {
        let counts = simulate(&[1.0; 10], 20, 20_000);
        let mean = 2000.0;
        let max = *counts.iter().max().unwrap() as f64;
        assert!(max / mean <= 1.1, "max/mean = {}", max / mean);
    }

    #[test]
    fn busy_endpoint_is_avoided() {
        let mut rng = fastrand::Rng::with_seed(1);
        let in_flight = [50u64, 0, 0];
        let mut busy = 0;
        for _ in 0..1000 {
            if pick(&[0, 1, 2], |_| 1.0, |i| in_flight[i], &mut rng) == Some(0) {
                busy += 1;
            }
        }
        assert_eq!(busy, 0, "the loaded endpoint loses every comparison");
    }

    #[test]
    fn heavier_endpoint_gets_more() {
        let counts = simulate(&[3.0, 1.0], 8, 10_000);
        assert!(counts[0] > 2 * counts[1], "{counts:?}");
    }
}
