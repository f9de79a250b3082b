//! The k8s-file (CRI) log the shim writes: parsed in memory, or checked as
//! a stream when too large for that, against expected byte streams.

use std::fs;
use std::io::Read;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub ts: String,
    pub stream: Stream,
    /// `P`: a segment without its newline; `F`: the end of a line.
    pub partial: bool,
    pub payload: Vec<u8>,
}

/// A parsed k8s-file (CRI) log.
#[derive(Clone, Debug, Default)]
pub struct Log {
    pub records: Vec<Record>,
}

/// Checks `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM` (numeric offset).
pub fn check_timestamp(ts: &str) -> Result<(), String> {
    let b = ts.as_bytes();
    let pat = b"dddd-dd-ddTdd:dd:dd.ddddddddd+dd:dd";
    let ok = b.len() == pat.len()
        && b.iter().zip(pat.iter()).all(|(&c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ => c == p,
        });
    if !ok {
        return Err(format!("bad timestamp {ts:?}: want RFC3339 with 9-digit nanoseconds and a numeric offset"));
    }
    let num = |a: usize, z: usize| ts[a..z].parse::<u32>().unwrap();
    let (mo, d, h, mi, s, oh, om) =
        (num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19), num(30, 32), num(33, 35));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || oh > 23 || om > 59 {
        return Err(format!("timestamp out of range: {ts:?}"));
    }
    Ok(())
}

impl Log {
    /// Parses a whole log: every record is `TS STREAM TAG PAYLOAD\n`.
    pub fn parse(data: &[u8]) -> Result<Log, String> {
        let mut records = vec![];
        if data.is_empty() {
            return Ok(Log { records });
        }
        if !data.ends_with(b"\n") {
            return Err(format!("the log does not end with a newline: ...{:?}", tail(data)));
        }
        for (i, line) in data[..data.len() - 1].split(|&b| b == b'\n').enumerate() {
            let bad = |why: &str| {
                format!("record {}: {why}: {:?}", i + 1, String::from_utf8_lossy(&line[..line.len().min(200)]))
            };
            let mut parts = line.splitn(4, |&b| b == b' ');
            let ts = parts.next().ok_or_else(|| bad("empty"))?;
            let stream = parts.next().ok_or_else(|| bad("no stream"))?;
            let tag = parts.next().ok_or_else(|| bad("no tag"))?;
            let payload = parts.next().ok_or_else(|| bad("no space after the tag"))?;
            let ts = std::str::from_utf8(ts).map_err(|_| bad("timestamp not UTF-8"))?;
            check_timestamp(ts).map_err(|e| bad(&e))?;
            let stream = match stream {
                b"stdout" => Stream::Stdout,
                b"stderr" => Stream::Stderr,
                _ => return Err(bad("stream is neither stdout nor stderr")),
            };
            let partial = match tag {
                b"F" => false,
                b"P" => true,
                _ => return Err(bad("tag is neither F nor P")),
            };
            records.push(Record { ts: ts.to_string(), stream, partial, payload: payload.to_vec() });
        }
        Ok(Log { records })
    }

    pub fn records_of(&self, s: Stream) -> Vec<&Record> {
        self.records.iter().filter(|r| r.stream == s).collect()
    }

    /// The bytes a stream carried: P payloads as they are, F payloads
    /// followed by a newline.
    pub fn stream(&self, s: Stream) -> Vec<u8> {
        let mut out = Vec::new();
        for r in self.records_of(s) {
            out.extend_from_slice(&r.payload);
            if !r.partial {
                out.push(b'\n');
            }
        }
        out
    }

    /// A stream's lines: (content without newline, terminated?). The last
    /// one is unterminated when the stream ended with P records.
    pub fn lines(&self, s: Stream) -> Vec<(Vec<u8>, bool)> {
        let mut out = vec![];
        let mut cur: Option<Vec<u8>> = None;
        for r in self.records_of(s) {
            let c = cur.get_or_insert_with(Vec::new);
            c.extend_from_slice(&r.payload);
            if !r.partial {
                out.push((cur.take().unwrap(), true));
            }
        }
        if let Some(c) = cur {
            out.push((c, false));
        }
        out
    }
}

fn tail(d: &[u8]) -> String {
    String::from_utf8_lossy(&d[d.len().saturating_sub(80)..]).into_owned()
}

// ---------------------------------------------------------------------------
// huge logs

/// What a streaming pass over a k8s-file log found for one stream.
#[derive(Debug, Default)]
pub struct Scan {
    pub records: u64,
    pub partial: u64,
    pub full: u64,
    /// Payload bytes of the stream (F records count their newline).
    pub bytes: u64,
    /// The longest payload of a record of the stream (without newline).
    pub max_payload: u64,
}

/// Walks a (possibly huge) log file record by record without holding it in
/// memory, checks every record's shape (timestamp, stream, tag) and hands
/// the payloads of `stream` (with the newline for F records) to `sink`.
/// The other stream's payloads go to `other`.
pub fn scan_log(
    path: &Path,
    stream: Stream,
    mut sink: impl FnMut(&[u8]),
    mut other: impl FnMut(&[u8]),
) -> Result<Scan, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let want: &[u8] = match stream {
        Stream::Stdout => b"stdout",
        Stream::Stderr => b"stderr",
    };
    let mut scan = Scan::default();
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 20);
    let mut chunk = vec![0u8; 8 << 20];
    let mut line_no: u64 = 0;
    let mut eof = false;
    loop {
        // Handle every complete line in buf.
        let mut start = 0usize;
        loop {
            let rest = &buf[start..];
            // SAFETY: memchr over a valid slice.
            let p = unsafe { libc::memchr(rest.as_ptr().cast(), b'\n' as i32, rest.len()) };
            if p.is_null() {
                break;
            }
            let i = p as usize - rest.as_ptr() as usize;
            let line = &rest[..i];
            line_no += 1;
            // TS(35) SP STREAM(6) SP TAG(1) SP PAYLOAD
            if line.len() < 45 || line[35] != b' ' || line[42] != b' ' || line[44] != b' ' {
                return Err(format!(
                    "record {line_no}: malformed: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(120)])
                ));
            }
            if line_no == 1 || line_no.is_multiple_of(4096) {
                let ts =
                    std::str::from_utf8(&line[..35]).map_err(|_| format!("record {line_no}: timestamp not UTF-8"))?;
                check_timestamp(ts).map_err(|e| format!("record {line_no}: {e}"))?;
            } else if !line[..35].iter().all(|&b| b.is_ascii_digit() || b"-+:.T".contains(&b)) {
                return Err(format!("record {line_no}: bad timestamp {:?}", String::from_utf8_lossy(&line[..35])));
            }
            let s = &line[36..42];
            let full = match line[43] {
                b'F' => true,
                b'P' => false,
                t => return Err(format!("record {line_no}: tag {:?}", t as char)),
            };
            let payload = &line[45..];
            if s == want {
                scan.records += 1;
                scan.max_payload = scan.max_payload.max(payload.len() as u64);
                if full {
                    scan.full += 1;
                    scan.bytes += payload.len() as u64 + 1;
                    sink(&rest[45..=i]);
                } else {
                    scan.partial += 1;
                    scan.bytes += payload.len() as u64;
                    sink(payload);
                }
            } else if s == b"stdout" || s == b"stderr" {
                if full {
                    other(&rest[45..=i]);
                } else {
                    other(payload);
                }
            } else {
                return Err(format!("record {line_no}: stream {:?}", String::from_utf8_lossy(s)));
            }
            start += i + 1;
        }
        buf.drain(..start);
        if eof {
            if !buf.is_empty() {
                return Err(format!(
                    "the log ends without a newline: {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(120)])
                ));
            }
            return Ok(scan);
        }
        let n = f.read(&mut chunk).map_err(|e| format!("read log: {e}"))?;
        if n == 0 {
            eof = true;
        } else {
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

// ---------------------------------------------------------------------------
// expected byte streams, compared as they come

/// A piece of an expected stream.
pub enum Seg {
    Bytes(Vec<u8>),
    /// `pattern` repeated until `total` bytes (the last copy may be cut).
    Cycle {
        total: u64,
        pattern: Vec<u8>,
        buf: Vec<u8>,
    },
}

impl Seg {
    pub fn cycle(pattern: &[u8], total: u64) -> Seg {
        let mut buf = Vec::with_capacity((64 << 10) + pattern.len());
        while buf.len() < (64 << 10) + pattern.len() {
            buf.extend_from_slice(pattern);
        }
        Seg::Cycle { total, pattern: pattern.to_vec(), buf }
    }
    fn len(&self) -> u64 {
        match self {
            Seg::Bytes(b) => b.len() as u64,
            Seg::Cycle { total, .. } => *total,
        }
    }
}

/// Compares a stream fed in pieces with an expected sequence of segments,
/// without holding the stream.
pub struct Expect {
    segs: Vec<Seg>,
    seg: usize,
    off: u64,
    pub pos: u64,
    pub err: Option<String>,
}

impl Expect {
    pub fn new(segs: Vec<Seg>) -> Expect {
        Expect { segs, seg: 0, off: 0, pos: 0, err: None }
    }

    pub fn total(&self) -> u64 {
        self.segs.iter().map(|s| s.len()).sum()
    }

    pub fn feed(&mut self, mut d: &[u8]) {
        while !d.is_empty() && self.err.is_none() {
            while self.seg < self.segs.len() && self.off == self.segs[self.seg].len() {
                self.seg += 1;
                self.off = 0;
            }
            if self.seg >= self.segs.len() {
                self.err = Some(format!(
                    "{} bytes more than expected after byte {}: {:?}",
                    d.len(),
                    self.pos,
                    String::from_utf8_lossy(&d[..d.len().min(80)])
                ));
                return;
            }
            let seg = &self.segs[self.seg];
            let n = (d.len() as u64).min(seg.len() - self.off) as usize;
            let ok = match seg {
                Seg::Bytes(b) => d[..n] == b[self.off as usize..self.off as usize + n],
                Seg::Cycle { pattern, buf, .. } => {
                    let mut ok = true;
                    let mut i = 0;
                    while i < n && ok {
                        let phase = ((self.off + i as u64) % pattern.len() as u64) as usize;
                        let k = (n - i).min(64 << 10);
                        ok = d[i..i + k] == buf[phase..phase + k];
                        i += k;
                    }
                    ok
                }
            };
            if !ok {
                self.err = Some(format!(
                    "differs from what was written within stream bytes {}..{} (segment {}): got {:?}",
                    self.pos,
                    self.pos + n as u64,
                    self.seg,
                    String::from_utf8_lossy(&d[..n.min(120)])
                ));
                return;
            }
            self.off += n as u64;
            self.pos += n as u64;
            d = &d[n..];
        }
    }

    pub fn finish(&self) -> Result<(), String> {
        if let Some(e) = &self.err {
            return Err(e.clone());
        }
        let total = self.total();
        if self.pos != total {
            return Err(format!("the stream ended after {} of {total} bytes ({} missing)", self.pos, total - self.pos));
        }
        Ok(())
    }
}
