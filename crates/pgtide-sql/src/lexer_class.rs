//! What each byte can be in SQL text, as a table: the lexer's scanning loops cost one load per
//! byte.

const WS: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;
const OP: u8 = 8;

/// What each byte can be, so the scanning loops cost one load per byte.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut out = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            c |= WS;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            c |= IDENT_START | IDENT_CONT;
        }
        if b.is_ascii_digit() || b == b'$' {
            c |= IDENT_CONT;
        }
        let ops = b"~!@#^&|`?+-*/%<>=";
        let mut k = 0;
        while k < ops.len() {
            if ops[k] == b {
                c |= OP;
            }
            k += 1;
        }
        out[i] = c;
        i += 1;
    }
    out
}

pub(super) fn is_ws(b: u8) -> bool {
    CLASS[usize::from(b)] & WS != 0
}

pub(super) fn is_ident_start(b: u8) -> bool {
    CLASS[usize::from(b)] & IDENT_START != 0
}

pub(super) fn is_ident_cont(b: u8) -> bool {
    CLASS[usize::from(b)] & IDENT_CONT != 0
}

pub(super) fn is_op_char(b: u8) -> bool {
    CLASS[usize::from(b)] & OP != 0
}
