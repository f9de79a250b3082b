//! The control FIFO: lines `TYPE HEIGHT WIDTH\n` from the manager.
//! `1 ROWS COLS` resizes the terminal, `2 0 0` starts the log anew.
//!
//! A line is read as conmon reads it (`sscanf("%d %d %d")`): three
//! integers, each after optional white space, with nothing but white space
//! (or the next one's sign) between the first three, and anything after
//! the third ignored (`1 2 2 3` resizes to 2x2, `1 0010 0020` to 10x20;
//! `1 10.5 20` and `1 0x10 0x20` are malformed); a NUL ends the line for
//! the parser, as it ends conmon's string. Then, as in conmon 2.2, the type
//! must be 1 or 2 and both sizes within 0..=1000, for either type. A line
//! longer than conmon's buffer holds (198 bytes) is dropped whole. Lines
//! are parsed as they stream in, a byte at a time, so there is no line
//! buffer at all; every line is taken on its own (conmon drops the rest of
//! a read after a bad line: not followed), and nothing malformed is fatal.

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

/// Longest line taken (conmon's buffer is 200 bytes: 198, a newline and
/// its NUL).
pub const LINE_MAX: usize = 198;

/// Where the scan of one line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Before integer `n` (0..3), skipping white space.
    Gap,
    /// After its sign.
    Sign,
    /// In its digits.
    Digits,
    /// The three are read; the rest of the line does not matter.
    Done,
    /// Malformed; the rest of the line does not matter.
    Failed,
}

/// One line, scanned as it streams in.
#[derive(Clone, Copy)]
pub struct Lines {
    at: At,
    n: u8,
    neg: bool,
    val: i64,
    vals: [i64; 3],
    len: usize,
}

fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

impl Lines {
    pub const fn new() -> Self {
        Lines { at: At::Gap, n: 0, neg: false, val: 0, vals: [0; 3], len: 0 }
    }

    /// The integer being read has ended.
    fn end_number(&mut self) {
        self.vals[self.n as usize] = if self.neg { -self.val } else { self.val };
        self.n += 1;
        self.at = if self.n == 3 { At::Done } else { At::Gap };
    }

    fn step(&mut self, b: u8) {
        match self.at {
            At::Done | At::Failed => {}
            _ if b == 0 => {
                // The end of conmon's string.
                if self.at == At::Digits {
                    self.end_number();
                }
                if self.at != At::Done {
                    self.at = At::Failed;
                }
            }
            At::Gap if space(b) => {}
            At::Gap | At::Digits if b == b'-' || b == b'+' => {
                // A sign right after a number starts the next one (sscanf's
                // ` ` matches no white space too).
                if self.at == At::Digits {
                    self.end_number();
                    if self.at == At::Done {
                        return;
                    }
                }
                (self.neg, self.val, self.at) = (b == b'-', 0, At::Sign);
            }
            At::Gap | At::Sign | At::Digits if b.is_ascii_digit() => {
                if self.at == At::Gap {
                    (self.neg, self.val) = (false, 0);
                }
                // Anything past 1000 is refused: no need to count further.
                self.val = (self.val * 10 + (b - b'0') as i64).min(1 << 40);
                self.at = At::Digits;
            }
            At::Digits if space(b) => self.end_number(),
            At::Digits => {
                self.end_number();
                if self.at != At::Done {
                    self.at = At::Failed;
                }
            }
            At::Gap | At::Sign => self.at = At::Failed,
        }
    }

    /// The line has ended (its newline).
    fn finish(&mut self) -> Result<Cmd, Bad> {
        let too_long = self.len > LINE_MAX;
        if self.at == At::Digits {
            self.end_number();
        }
        let done = self.at == At::Done;
        let [kind, h, w] = self.vals;
        *self = Lines::new();
        if too_long {
            return Err(Bad::TooLong);
        }
        if !done {
            return Err(Bad::Format);
        }
        if kind != 1 && kind != 2 {
            return Err(Bad::Type);
        }
        if !(0..=MAX_SIZE).contains(&h) || !(0..=MAX_SIZE).contains(&w) {
            return Err(Bad::Size);
        }
        Ok(if kind == 1 { Cmd::Resize { rows: h as u16, cols: w as u16 } } else { Cmd::Reopen })
    }

    /// Feed bytes; `f` gets each complete line's parse result.
    pub fn feed(&mut self, data: &[u8], f: &mut dyn FnMut(Result<Cmd, Bad>)) {
        for &b in data {
            if b == b'\n' {
                f(self.finish());
            } else {
                self.len += 1;
                self.step(b);
            }
        }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

/// Parse one line (without its newline).
pub fn parse(line: &[u8]) -> Result<Cmd, Bad> {
    let mut l = Lines::new();
    let mut out = Err(Bad::Format);
    l.feed(line, &mut |_| {});
    l.feed(b"\n", &mut |r| out = r);
    out
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
        // conmon's sscanf: what follows the third integer is ignored.
        assert_eq!(parse(b"1 2 2 3"), Ok(Cmd::Resize { rows: 2, cols: 2 }));
        assert_eq!(parse(b"1 5 5x"), Ok(Cmd::Resize { rows: 5, cols: 5 }));
        assert_eq!(parse(b"1 5 5;2 0 0"), Ok(Cmd::Resize { rows: 5, cols: 5 }));
        assert_eq!(parse(b"1 0010 0020"), Ok(Cmd::Resize { rows: 10, cols: 20 }));
        assert_eq!(parse(b"1 5\x0c5"), Ok(Cmd::Resize { rows: 5, cols: 5 }));
        assert_eq!(parse(b"1+2 3"), Ok(Cmd::Resize { rows: 2, cols: 3 }));
        assert_eq!(parse(b"1 1000 1000"), Ok(Cmd::Resize { rows: 1000, cols: 1000 }));
        assert_eq!(parse(b"1 40"), Err(Bad::Format));
        assert_eq!(parse(b"1"), Err(Bad::Format));
        assert_eq!(parse(b"x 1 1"), Err(Bad::Format));
        assert_eq!(parse(b"1 10.5 20.3"), Err(Bad::Format));
        assert_eq!(parse(b"1 0x10 0x20"), Err(Bad::Format));
        assert_eq!(parse(b"1 5x 5"), Err(Bad::Format));
        assert_eq!(parse(b"1\x005 5"), Err(Bad::Format));
        assert_eq!(parse(b"--1 5 5"), Err(Bad::Format));
        assert_eq!(parse(b"1 - 5"), Err(Bad::Format));
        assert_eq!(parse(b"3 1 1"), Err(Bad::Type));
        assert_eq!(parse(b"999 2 2"), Err(Bad::Type));
        assert_eq!(parse(b"0 5 5"), Err(Bad::Type));
        assert_eq!(parse(b"1 -1 5"), Err(Bad::Size));
        assert_eq!(parse(b"2 -1 -1"), Err(Bad::Size));
        assert_eq!(parse(b"1 1001 5"), Err(Bad::Size));
        assert_eq!(parse(b"1 1000 1001"), Err(Bad::Size));
        assert_eq!(parse(b"1 100000 100000"), Err(Bad::Size));
        assert_eq!(parse(b"1 99999999999 5"), Err(Bad::Size));
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
        let mut padded = b"1 20 20".to_vec();
        padded.resize(LINE_MAX, b' ');
        assert_eq!(parse(&padded), Ok(Cmd::Resize { rows: 20, cols: 20 }));
        padded.push(b' ');
        assert_eq!(parse(&padded), Err(Bad::TooLong));
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
