//! The control FIFO: lines `TYPE HEIGHT WIDTH\n` from the manager.
//! `1 ROWS COLS` resizes the terminal, `2 0 0` reopens the log file.
//!
//! Lines may arrive split across reads and are assembled in a small fixed
//! buffer; a line longer than that buffer is dropped whole (up to its
//! newline), and anything malformed is ignored, never fatal.

use crate::sock::{self, Place};
use crate::sys::{self, OFlags, OwnedFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Resize { rows: u16, cols: u16 },
    Reopen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    Format,
    Type,
    Size,
    TooLong,
}

/// conmon accepts sizes from 0 to 1000; so does shimlet.
pub const MAX_SIZE: i64 = 1000;

fn int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |v, d| v * 10 + (d - b'0') as i64);
    Some(if neg { -v } else { v })
}

/// Parse one line (without its newline).
pub fn parse(line: &[u8]) -> Result<Cmd, Bad> {
    let mut words = line.split(|b| *b == b' ' || *b == b'\t' || *b == b'\r').filter(|w| !w.is_empty());
    let mut next = || words.next().and_then(int).ok_or(Bad::Format);
    let (kind, h, w) = (next()?, next()?, next()?);
    if words.next().is_some() {
        return Err(Bad::Format);
    }
    if !(0..=MAX_SIZE).contains(&h) || !(0..=MAX_SIZE).contains(&w) {
        return Err(Bad::Size);
    }
    match kind {
        1 => Ok(Cmd::Resize { rows: h as u16, cols: w as u16 }),
        2 => Ok(Cmd::Reopen),
        _ => Err(Bad::Type),
    }
}

/// Longest line kept; `1 1000 1000` is 11 bytes.
pub const LINE_MAX: usize = 64;

pub struct Lines {
    buf: [u8; LINE_MAX],
    len: usize,
    /// In the middle of an over-long line: drop until its newline.
    skipping: bool,
}

impl Lines {
    pub const fn new() -> Self {
        Lines { buf: [0; LINE_MAX], len: 0, skipping: false }
    }

    /// Feed bytes; `f` gets each complete line's parse result.
    pub fn feed(&mut self, mut data: &[u8], f: &mut dyn FnMut(Result<Cmd, Bad>)) {
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n');
            let piece = &data[..nl.unwrap_or(data.len())];
            if !self.skipping {
                if self.len + piece.len() > LINE_MAX {
                    self.skipping = true;
                    self.len = 0;
                } else {
                    self.buf[self.len..self.len + piece.len()].copy_from_slice(piece);
                    self.len += piece.len();
                }
            }
            match nl {
                Some(i) => {
                    if self.skipping {
                        f(Err(Bad::TooLong));
                    } else {
                        f(parse(&self.buf[..self.len]));
                    }
                    self.len = 0;
                    self.skipping = false;
                    data = &data[i + 1..];
                }
                None => break,
            }
        }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

/// A FIFO at `p`, 0640 (what conmon 2.2 makes: 0660 less its umask
/// 0022), replacing whatever was there.
pub fn make_fifo(p: &Place) -> sys::Result<()> {
    p.remove();
    sys::mkfifoat(&p.dir, p.name, 0o640)
}

/// The control FIFO of one process: opened for reading (non-blocking)
/// plus a writer of our own, so the reader never sees end-of-file when the
/// manager's writer closes.
pub struct Ctl<'a> {
    pub r: OwnedFd,
    _w: Option<OwnedFd>,
    pub place: Place<'a>,
    lines: Lines,
}

impl<'a> Ctl<'a> {
    pub fn make(place: Place<'a>) -> sys::Result<Ctl<'a>> {
        make_fifo(&place)?;
        let r = sock::open_fifo(&place, OFlags::RDONLY)?;
        let w = sock::open_fifo(&place, OFlags::WRONLY).ok();
        Ok(Ctl { r, _w: w, place, lines: Lines::new() })
    }

    /// Read what is there (one bounded read) and hand each complete line's
    /// command to `f`.
    pub fn read(&mut self, f: &mut dyn FnMut(Result<Cmd, Bad>)) {
        let mut chunk = [0u8; 128];
        if let Ok(n @ 1..) = sys::read(&self.r, &mut chunk) {
            self.lines.feed(&chunk[..n], f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conmon_lines() {
        assert_eq!(parse(b"1 40 100"), Ok(Cmd::Resize { rows: 40, cols: 100 }));
        assert_eq!(parse(b"2 0 0"), Ok(Cmd::Reopen));
        assert_eq!(parse(b" 1  24\t80 "), Ok(Cmd::Resize { rows: 24, cols: 80 }));
        assert_eq!(parse(b"1 40"), Err(Bad::Format));
        assert_eq!(parse(b"1 40 100 7"), Err(Bad::Format));
        assert_eq!(parse(b"x 1 1"), Err(Bad::Format));
        assert_eq!(parse(b"3 1 1"), Err(Bad::Type));
        assert_eq!(parse(b"1 -1 5"), Err(Bad::Size));
        assert_eq!(parse(b"1 1001 5"), Err(Bad::Size));
        assert_eq!(parse(b"1 99999999999 5"), Err(Bad::Format));
        assert_eq!(parse(b""), Err(Bad::Format));
    }

    fn feed_all(chunks: &[&[u8]]) -> Vec<Result<Cmd, Bad>> {
        let mut l = Lines::new();
        let mut out = Vec::new();
        for c in chunks {
            l.feed(c, &mut |r| out.push(r));
        }
        out
    }

    #[test]
    fn assembles_split_lines() {
        assert_eq!(
            feed_all(&[b"1 4", b"0 10", b"0\n2 0 0\n1 1"]),
            vec![Ok(Cmd::Resize { rows: 40, cols: 100 }), Ok(Cmd::Reopen)]
        );
    }

    #[test]
    fn drops_long_lines_whole() {
        let long = [b'7'; 200];
        let out = feed_all(&[&long, &long, b"\n1 2 3\n"]);
        assert_eq!(out, vec![Err(Bad::TooLong), Ok(Cmd::Resize { rows: 2, cols: 3 })]);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: every split of some hostile input.
        let input: Vec<u8> = (0..=255u8).chain(b"\n1 5 5\n\n\n2 0 0\n".iter().copied()).collect();
        for cut in 0..input.len() {
            let out = feed_all(&[&input[..cut], &input[cut..]]);
            assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 2, "cut {cut}");
        }
    }
}
