//! The fingerprint's token stream and its fixed-key hash.

use crate::lexer::{Token, TokenKind};

/// A fast 64-bit hash with fixed keys (FxHash-style mixing, 8 bytes per step, final avalanche):
/// equal input, equal hash, in every process. Not for untrusted keys of a DoS-sensitive map.
pub fn stable_hash(b: &[u8]) -> u64 {
    let mut h = SEED ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
    }
    avalanche(h)
}

pub(super) const K: u64 = 0x9E37_79B9_7F4A_7C15;
pub(super) const SEED: u64 = 0x7067_7469_6465_6670; // "pgtidefp"

fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(K)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h
}

/// Code tokens (comments left out), hashing every literal as it is consumed. Cheap to clone for
/// look-ahead: a clone that is kept (`*self = clone`) keeps the literals it passed over.
#[derive(Clone)]
pub(super) struct Toks<'t, 'a> {
    toks: std::slice::Iter<'t, Token<'a>>,
    h: u64,
}

impl<'t, 'a> Toks<'t, 'a> {
    pub(super) fn new(code: &'t [Token<'a>]) -> Self {
        Toks {
            toks: code.iter(),
            h: SEED,
        }
    }

    pub(super) fn peek(&self) -> Option<Token<'a>> {
        self.toks.as_slice().first().copied()
    }

    pub(super) fn finish(&self) -> u64 {
        avalanche(self.h)
    }

    /// Skips a balanced `( .. )` or `[ .. ]` group whose opener has just been consumed.
    pub(super) fn skip_group(&mut self) {
        let mut depth = 1u32;
        for t in self.by_ref() {
            match t.kind {
                TokenKind::LParen | TokenKind::LBracket => depth += 1,
                TokenKind::RParen | TokenKind::RBracket => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'a> Iterator for Toks<'_, 'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let t = *self.toks.next()?;
        let tag = match t.kind {
            TokenKind::Number => 1,
            TokenKind::String(_) => 2,
            TokenKind::Param => 3,
            TokenKind::Operator if t.text == "-" => 4,
            _ => return Some(t),
        };
        self.h = mix(self.h, tag ^ stable_hash(t.text.as_bytes()));
        Some(t)
    }
}
