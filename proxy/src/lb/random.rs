//! Weighted uniform random choice.

/// Picks one of `candidates` with probability proportional to its weight.
pub fn pick(
    candidates: &[usize],
    weight: impl Fn(usize) -> f64,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let total: f64 = candidates.iter().map(|&i| weight(i)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut target = rng.f64() * total;
    for &i in candidates {
        let w = weight(i);
        if target < w {
            return Some(i);
        }
        target -= w;
    }
    candidates.iter().rev().copied().find(|&i| weight(i) > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_weights() {
        let mut rng = fastrand::Rng::with_seed(42);
        let w = [1.0, 3.0, 0.0];
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[pick(&[0, 1, 2], |i| w[i], &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[1] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }
}
