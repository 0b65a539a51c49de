//! The generator's seeded PRNG and the feature switch (`PGTIDE_FUZZ_FEATURES`).

/// xorshift64*: small, deterministic, good enough to pick statements.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub const ALL_FEATURES: &[&str] = &[
    "set", "role", "listen", "lock", "temp", "prepare", "proto", "txn", "error", "discard", "scs",
    "multi", "ext",
];

/// The statement classes a run may use (`PGTIDE_FUZZ_FEATURES=set,listen,...`).
#[derive(Clone, Debug)]
pub struct Features(Vec<&'static str>);

impl Features {
    pub fn all() -> Features {
        Features(ALL_FEATURES.to_vec())
    }
    pub fn parse(list: &str) -> Features {
        let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
        for w in &wanted {
            assert!(
                ALL_FEATURES.contains(w),
                "unknown feature {w:?}; known: {ALL_FEATURES:?}"
            );
        }
        Features(
            ALL_FEATURES
                .iter()
                .copied()
                .filter(|f| wanted.contains(f))
                .collect(),
        )
    }
    pub fn has(&self, f: &str) -> bool {
        self.0.contains(&f)
    }
    /// Features that produce statements on their own (txn/error/multi/ext only shape them).
    pub fn sources(&self) -> Vec<&'static str> {
        let s: Vec<&'static str> = self
            .0
            .iter()
            .copied()
            .filter(|f| !["txn", "multi", "ext"].contains(f))
            .collect();
        if s.is_empty() {
            vec!["plain"]
        } else {
            s
        }
    }
}
