//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted.
//!
//! Every endpoint walks its own permutation of the table's slots and claims free slots in
//! turn; endpoints with higher weight take turns more often. Removing one of N endpoints moves
//! little more than the keys it owned.

/// Default table size: a prime well above 100 × the endpoints of typical Services.
pub const DEFAULT_TABLE_SIZE: usize = 65537;

/// A lookup table from hash to endpoint index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    slots: Vec<u32>,
}

/// 64-bit FNV-1a, then a SplitMix64 finaliser to spread low-entropy inputs. Stable across
/// processes and versions, so replicas agree on where a key goes.
pub fn hash64(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The smallest prime ≥ `n` (table sizes must be prime for the permutations to cover it).
pub fn next_prime(n: usize) -> usize {
    let is_prime = |k: usize| {
        k >= 2
            && (2..)
                .take_while(|d| d * d <= k)
                .all(|d| !k.is_multiple_of(d))
    };
    (n.max(2)..)
        .find(|k| is_prime(*k))
        .unwrap_or(DEFAULT_TABLE_SIZE)
}

impl Maglev {
    /// Builds the table for endpoints named by `names` with `weights` (0 = never chosen).
    /// `size` must be prime; use [`Maglev::size_for`].
    pub fn new(names: &[String], weights: &[u32], size: usize) -> Option<Maglev> {
        let max_weight = weights.iter().copied().max().unwrap_or(0);
        if names.is_empty() || max_weight == 0 || size < 2 {
            return None;
        }
        let perms: Vec<(usize, usize)> = names
            .iter()
            .map(|n| {
                let offset = (hash64(n.as_bytes(), 0x5eed_0001) % size as u64) as usize;
                let skip = (hash64(n.as_bytes(), 0x5eed_0002) % (size as u64 - 1)) as usize + 1;
                (offset, skip)
            })
            .collect();
        // next[i]: position in endpoint i's permutation; claimed[i]: slots it owns.
        let mut next = vec![0usize; names.len()];
        let mut claimed = vec![0u64; names.len()];
        let mut slots = vec![u32::MAX; size];
        let mut filled = 0usize;
        let mut round = 0u64;
        while filled < size {
            round += 1;
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                // Weighted turns: by round r, endpoint i may own ceil(r × w_i / w_max) slots.
                let w = u64::from(weights[i]);
                let allowed = (round * w).div_ceil(u64::from(max_weight));
                if claimed[i] >= allowed {
                    continue;
                }
                let mut c = (offset + next[i] * skip) % size;
                while slots[c] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % size;
                }
                slots[c] = i as u32;
                next[i] += 1;
                claimed[i] += 1;
                filled += 1;
                if filled == size {
                    break;
                }
            }
        }
        Some(Maglev { slots })
    }

    /// The table size for `n` endpoints: the default, or a prime ≥ 100 × n when larger.
    pub fn size_for(n: usize) -> usize {
        if n * 100 <= DEFAULT_TABLE_SIZE {
            DEFAULT_TABLE_SIZE
        } else {
            next_prime(n * 100)
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot a hash falls in.
    pub fn slot(&self, hash: u64) -> usize {
        (hash % self.slots.len() as u64) as usize
    }

    /// The endpoint index owning a slot.
    pub fn owner(&self, slot: usize) -> usize {
        self.slots[slot % self.slots.len()] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:8080", i / 250, i % 250))
            .collect()
    }

    fn counts(m: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for s in 0..m.len() {
            c[m.owner(s)] += 1;
        }
        c
    }

    #[test]
    fn table_is_balanced() {
        for n in [3, 10, 100] {
            let m = Maglev::new(&names(n), &vec![1; n], DEFAULT_TABLE_SIZE).unwrap();
            let c = counts(&m, n);
            let (min, max) = (*c.iter().min().unwrap(), *c.iter().max().unwrap());
            assert!(
                max as f64 / min as f64 <= 1.01,
                "n={n}: min {min} max {max}"
            );
        }
    }

    #[test]
    fn removing_one_endpoint_moves_few_keys() {
        let n = 20;
        let all = names(n);
        let before = Maglev::new(&all, &vec![1; n], DEFAULT_TABLE_SIZE).unwrap();
        let mut fewer = all.clone();
        let removed = fewer.remove(7);
        let after = Maglev::new(&fewer, &vec![1; n - 1], DEFAULT_TABLE_SIZE).unwrap();
        let mut moved_from_survivors = 0usize;
        let mut on_survivors = 0usize;
        for key in 0..100_000u64 {
            let h = hash64(&key.to_le_bytes(), 0);
            let a = &all[before.owner(before.slot(h))];
            let b = &fewer[after.owner(after.slot(h))];
            if *a != removed {
                on_survivors += 1;
                if a != b {
                    moved_from_survivors += 1;
                }
            }
        }
        let share = moved_from_survivors as f64 / on_survivors as f64;
        assert!(share <= 2.0 / n as f64, "moved {share:.4} of survivor keys");
    }

    #[test]
    fn weights_shape_the_table() {
        let m = Maglev::new(&names(3), &[1, 2, 1], DEFAULT_TABLE_SIZE).unwrap();
        let c = counts(&m, 3);
        let share = c[1] as f64 / m.len() as f64;
        assert!(
            (share - 0.5).abs() < 0.02,
            "weight-2 endpoint share {share:.3}"
        );
        let zero = Maglev::new(&names(2), &[0, 1], 101).unwrap();
        assert_eq!(counts(&zero, 2), vec![0, 101]);
    }

    #[test]
    fn sizes_are_prime_and_large_enough() {
        assert_eq!(Maglev::size_for(10), DEFAULT_TABLE_SIZE);
        let s = Maglev::size_for(1000);
        assert!(s >= 100_000);
        assert_eq!(next_prime(s), s);
        assert_eq!(next_prime(100), 101);
    }
}
