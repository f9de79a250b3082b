//! Fixed-capacity buffers. The shim has no allocator: every message, path
//! and record is built in one of these, and its size is its cost.

use core::ffi::CStr;

/// A byte buffer that truncates instead of growing. `push` reports whether
/// everything fitted, for callers (paths) where truncation is an error.
#[derive(Clone, Copy)]
pub struct Buf<const N: usize> {
    len: usize,
    data: [u8; N],
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf { len: 0, data: [0; N] }
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn room(&self) -> usize {
        N - self.len
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
    /// The unused tail, for a syscall to fill; then `commit` what it wrote.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.data[self.len..]
    }
    pub fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(N);
    }
    /// Append as much of `s` as fits; false when something was cut.
    pub fn push(&mut self, s: &[u8]) -> bool {
        push_into(&mut self.data, &mut self.len, s)
    }
    pub fn push_byte(&mut self, b: u8) -> bool {
        self.push(&[b])
    }
    pub fn push_u64(&mut self, v: u64) -> bool {
        let mut tmp = [0u8; 20];
        let s = fmt_u64(v, &mut tmp);
        push_into(&mut self.data, &mut self.len, s)
    }
    pub fn push_i64(&mut self, v: i64) -> bool {
        if v < 0 {
            self.push_byte(b'-') && self.push_u64(v.unsigned_abs())
        } else {
            self.push_u64(v as u64)
        }
    }
    /// The content as a C string (a NUL is appended, not counted in `len`).
    /// None when there is no room for the NUL or the content holds a NUL.
    pub fn as_cstr(&mut self) -> Option<&CStr> {
        cstr_of(&mut self.data, self.len)
    }
}

/// The body of every `Buf::push`: one copy for all sizes.
#[inline(never)]
fn push_into(data: &mut [u8], len: &mut usize, s: &[u8]) -> bool {
    let n = s.len().min(data.len() - *len);
    data[*len..*len + n].copy_from_slice(&s[..n]);
    *len += n;
    n == s.len()
}

/// The body of every `Buf::as_cstr`.
#[inline(never)]
fn cstr_of(data: &mut [u8], len: usize) -> Option<&CStr> {
    if len >= data.len() {
        return None;
    }
    data[len] = 0;
    CStr::from_bytes_with_nul(&data[..len + 1]).ok()
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Linux's longest path, NUL included.
pub const PATH_MAX: usize = 4096;
/// Room for any Linux path plus its NUL.
pub type PathBuf = Buf<PATH_MAX>;

/// Decimal digits of `v` in `tmp`.
pub fn fmt_u64(mut v: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &tmp[i..]
}

/// Parse a decimal (optionally surrounded by ASCII white space, as in a
/// pidfile written with or without a newline). None on anything else or
/// on overflow past `max`.
pub fn parse_u64(s: &[u8], max: u64) -> Option<u64> {
    let s = trim(s);
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Position of the first `byte` in `s`, a word at a time (the log writer
/// calls this for every line).
#[inline]
pub fn find_byte(byte: u8, s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pat = LO * byte as u64;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ pat;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == byte).map(|p| i + p)
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_truncates_and_reports() {
        let mut b: Buf<4> = Buf::new();
        assert!(b.push(b"ab"));
        assert!(!b.push(b"cde"));
        assert_eq!(b.as_bytes(), b"abcd");
        assert!(b.as_cstr().is_none(), "no room for the NUL");
    }

    #[test]
    fn numbers() {
        let mut b: Buf<64> = Buf::new();
        b.push_u64(0);
        b.push_byte(b' ');
        b.push_i64(-42);
        b.push_byte(b' ');
        b.push_u64(u64::MAX);
        assert_eq!(b.as_bytes(), b"0 -42 18446744073709551615");
        assert_eq!(b.as_cstr().unwrap().to_bytes(), b"0 -42 18446744073709551615");
    }

    #[test]
    fn finds_bytes_like_position() {
        let mut seed = 7u32;
        for len in 0..80 {
            for _ in 0..20 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        [b'a', b'\n', 0x80, 0x0a ^ 0x80, 0xff][(seed >> 16) as usize % 5]
                    })
                    .collect();
                assert_eq!(find_byte(b'\n', &v), v.iter().position(|&b| b == b'\n'), "{v:?}");
            }
        }
    }

    #[test]
    fn parse_numbers() {
        assert_eq!(parse_u64(b"1234\n", u64::MAX), Some(1234));
        assert_eq!(parse_u64(b"  7 ", 10), Some(7));
        assert_eq!(parse_u64(b"11", 10), None);
        assert_eq!(parse_u64(b"", 10), None);
        assert_eq!(parse_u64(b"12a", 100), None);
        assert_eq!(parse_u64(b"99999999999999999999999", u64::MAX), None);
    }
}
