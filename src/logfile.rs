//! The container's output log in the CRI "k8s-file" format that podman,
//! kubelet and crictl read:
//!
//! `2026-11-28T19:33:42.123456789+00:00 stdout F hello\n`
//!
//! Every read from a container pipe is cut at its newlines: each complete
//! line is an `F` record, a trailing piece without its newline is a `P`
//! record (the rest of that line follows in later records), and a line
//! longer than `MAX_PAYLOAD` goes in `P` pieces of that size. Nothing is held
//! back between reads, so there is no line buffer to bound and nothing is
//! lost if the shim dies. Payload bytes are written exactly as read.
//!
//! Records are formatted into one contiguous buffer (a `Batch`, the
//! daemon's) and written a batch at a time: when the next record does not
//! fit, and at the end of the wake-up, so the log is current whenever the
//! loop sleeps. The kernel's cost is in the number and the shape of the
//! writes, not in the bytes: one 64 KiB `write` costs a fraction of the
//! `writev`s of [header, payload] pairs that carry the same records.
//!
//! Limits, as conmon 2.2 applies them, record by record (a batch is cut
//! where a limit decides): before a record that would take the file past
//! `--log-size-max`, the file is started anew: a new empty file replaces
//! it, or, with `--log-rotate`, the old one is kept as `PATH.1` and older
//! ones move up to `PATH.N` (without `--log-rotate` shimlet still keeps
//! one, `PATH.1`, where conmon throws the old lines away). The new file
//! is made beside the old one and renamed over it, so the path always
//! names a file. Past `--log-global-size-max` in all, the rest is dropped
//! (the record that crosses it is still written). Log files are created
//! 0640, as conmon 2.2 creates them.

use core::ffi::CStr;

use rustix::io::IoSlice;

use crate::buf::PathBuf;
use crate::sys::{self, AsFd, Errno, OFlags, OwnedFd};
use crate::timefmt;

/// The mode of log files (conmon 2.2's).
pub const MODE: u32 = 0o640;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static [u8; 6] {
        match self {
            Stream::Stdout => b"stdout",
            Stream::Stderr => b"stderr",
        }
    }
}

/// Cut `data` into records: `f(true, line_with_its_newline)` for each
/// complete line, then `f(false, rest)` for a trailing piece, if any.
pub fn for_each_record(mut data: &[u8], mut f: impl FnMut(bool, &[u8])) {
    while let Some(i) = crate::buf::find_byte(b'\n', data) {
        f(true, &data[..=i]);
        data = &data[i + 1..];
    }
    if !data.is_empty() {
        f(false, data);
    }
}

/// `TIMESTAMP STREAM T ` (with the trailing space).
pub const HEADER_LEN: usize = timefmt::LEN + 10;

/// Payload bytes of one record, at most: a longer line is logged in `P`
/// pieces of this size, as conmon does (and as reads of this size did).
pub const MAX_PAYLOAD: usize = 8192;

pub fn header(stamp: &timefmt::Stamp, stream: Stream, full: bool) -> [u8; HEADER_LEN] {
    let mut h = [b' '; HEADER_LEN];
    h[..timefmt::LEN].copy_from_slice(stamp);
    h[timefmt::LEN + 1..timefmt::LEN + 7].copy_from_slice(stream.name());
    h[timefmt::LEN + 8] = if full { b'F' } else { b'P' };
    h
}

/// Bytes a record of `seg` takes: the header, the payload, and for a
/// piece without its newline (`P`) the newline that ends the record.
pub const fn record_len(seg: usize, full: bool) -> usize {
    HEADER_LEN + seg + if full { 0 } else { 1 }
}

/// Records formatted and not yet written: the front of `buf`. It belongs to
/// one `LogFile` between two flushes; nothing stays in it across wake-ups.
pub struct Batch<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// Payload bytes of the records in it.
    payload: usize,
}

impl<'b> Batch<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        Batch { buf, len: 0, payload: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
        self.payload = 0;
    }

    /// The record whose payload (`n` bytes) `copy_line` put in place goes
    /// in: its header before it, and a `P` record's newline after it.
    fn commit(&mut self, header: &[u8; HEADER_LEN], n: usize, full: bool) {
        let at = self.len;
        self.buf[at..at + HEADER_LEN].copy_from_slice(header);
        self.len = at + HEADER_LEN + n;
        if !full {
            self.buf[at + timefmt::LEN + 8] = b'P';
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
        self.payload += n;
    }
}

/// Copy `src` into `dst` up to its first newline (included), looking for
/// it as the bytes go: one pass instead of a search and a copy, sixteen
/// bytes at a time where SSE2 is there (every x86_64), else eight.
/// Returns the bytes copied and whether a newline ended them. `dst` must
/// be at least as long as `src`.
fn copy_line(src: &[u8], dst: &mut [u8]) -> (usize, bool) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let dst = &mut dst[..src.len()];
    let mut i = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8, _mm_storeu_si128,
        };
        while i + 16 <= src.len() {
            // SAFETY: SSE2 is enabled (cfg); the 16 bytes at `i` lie within
            // `src` and within `dst` (as long as `src`), and the unaligned
            // load and store need no alignment.
            let m = unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, v);
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))) as u32
            };
            if m != 0 {
                return (i + m.trailing_zeros() as usize + 1, true);
            }
            i += 16;
        }
    }
    while i + 8 <= src.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&src[i..i + 8]);
        dst[i..i + 8].copy_from_slice(&w);
        let x = u64::from_le_bytes(w) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            // The lowest flagged byte is the first newline (a borrow can
            // only flag bytes above it).
            return (i + (found.trailing_zeros() / 8) as usize + 1, true);
        }
        i += 8;
    }
    while i < src.len() {
        dst[i] = src[i];
        i += 1;
        if src[i - 1] == b'\n' {
            return (i, true);
        }
    }
    (i, false)
}

impl Batch<'_> {
    /// Bytes a payload can take now, the record's header and a `P`
    /// record's newline set aside.
    fn room(&self) -> usize {
        self.buf.len().saturating_sub(self.len + HEADER_LEN + 1)
    }
}

/// Of `bytes`, formatted records written whole or cut short: how many end
/// with a complete record, and the payload those carry. Every record ends
/// with its only newline (a header holds none, an `F` payload holds just
/// its last byte, a `P` record gets one appended), so the last newline is
/// the end of the last complete record.
fn whole_records(bytes: &[u8]) -> (usize, usize) {
    let keep = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => return (0, 0),
    };
    let (mut at, mut payload) = (0, 0);
    while at < keep {
        let full = bytes.get(at + timefmt::LEN + 8) == Some(&b'F');
        let end = match crate::buf::find_byte(b'\n', &bytes[at..keep]) {
            Some(i) => at + i + 1,
            None => break,
        };
        payload += (end - at).saturating_sub(record_len(0, full));
        at = end;
    }
    (keep, payload)
}

pub struct LogFile<'a> {
    fd: Option<OwnedFd>,
    /// The log's directory when it was pinned (checked against an
    /// allowlist): `path` is then the name in it. Else `path` is the path
    /// as given (a relative one means the same to the shim all its life:
    /// it never changes directory).
    dir: Option<OwnedFd>,
    path: Option<&'a CStr>,
    /// Start the file anew before it would pass this size (0: never).
    max_size: u64,
    /// Stop logging once this much has been written in all (0: no limit).
    global_max: u64,
    /// Old files kept when the file is started anew: 0 keeps none
    /// (conmon's default), N keeps `PATH.1` ... `PATH.N` (`--log-rotate`).
    keep: u32,
    /// Starting anew failed and was said: said again only once it works.
    renew_failing: bool,
    /// Starting anew failed during this read: not tried again before the
    /// next one (the file grows on meanwhile).
    renew_held: bool,
    size: u64,
    total: u64,
    /// Files started anew.
    pub rotations: u64,
    /// Payload bytes that could not be written (disk full, I/O error).
    pub lost: u64,
    /// Payload bytes written.
    pub written: u64,
    /// The last write error, for the shim's diagnostics.
    pub last_error: Option<Errno>,
}

impl<'a> LogFile<'a> {
    /// No log: output is read and dropped.
    pub const fn none() -> Self {
        LogFile {
            fd: None,
            dir: None,
            path: None,
            max_size: 0,
            global_max: 0,
            keep: 0,
            renew_failing: false,
            renew_held: false,
            size: 0,
            total: 0,
            rotations: 0,
            lost: 0,
            written: 0,
            last_error: None,
        }
    }

    /// Open (or create) the log at `path`, appending.
    pub fn open(path: &'a CStr) -> sys::Result<Self> {
        let fd = sys::openat(sys::cwd(), path, OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE, MODE)?;
        Ok(Self::opened(None, path, fd))
    }

    /// The log `name` in the directory `dir`, pinned: every later open and
    /// rename is made in that directory. The file itself may not be a
    /// symbolic link.
    pub fn open_in(dir: OwnedFd, name: &'a CStr) -> sys::Result<Self> {
        let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW;
        let fd = sys::openat(&dir, name, flags, MODE)?;
        Ok(Self::opened(Some(dir), name, fd))
    }

    fn opened(dir: Option<OwnedFd>, path: &'a CStr, fd: OwnedFd) -> Self {
        let mut l = Self::none();
        // What the file holds already counts, toward both limits (conmon
        // 2.2 counts so too).
        l.size = sys::file_size(&fd);
        l.total = l.size;
        l.fd = Some(fd);
        l.dir = dir;
        l.path = Some(path);
        l
    }

    pub fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    /// `max_size`: start anew before passing it; `global_max`: stop after it.
    pub fn limit(&mut self, max_size: Option<u64>, global_max: Option<u64>) {
        self.max_size = max_size.unwrap_or(0);
        self.global_max = global_max.unwrap_or(0);
    }

    /// Keep `n` old files when the file is started anew (`--log-rotate
    /// --log-max-files n`); 0: keep none.
    pub fn keep_old(&mut self, n: u32) {
        self.keep = n;
    }

    fn dir_fd(&self) -> sys::BorrowedFd<'_> {
        self.dir.as_ref().map_or(sys::cwd(), |d| d.as_fd())
    }

    /// The manager's `2 0 0` on the ctl FIFO, as conmon does it: the file
    /// is started anew (see `renew`). After an outside rotation (the file
    /// was renamed or deleted) that is a new file at the path. On failure
    /// the old descriptor is kept, so writing goes on somewhere.
    pub fn reopen(&mut self) -> sys::Result<()> {
        let r = self.renew();
        self.said(r);
        r
    }

    /// Start a new file at the path: made beside it (`PATH.new` when old
    /// files are kept, else `PATH.tmp`), the old ones shifted up to
    /// `PATH.N` and the current one linked as `PATH.1` (when kept; else it
    /// is replaced and its lines are gone), then renamed over the path.
    /// The path names a file all along.
    #[inline(never)]
    fn renew(&mut self) -> sys::Result<()> {
        let Some(path) = self.path else { return Ok(()) };
        let dir = self.dir_fd();
        let (mut a, mut b) = (PathBuf::new(), PathBuf::new());
        let fresh = if self.keep > 0 { &b".new"[..] } else { b".tmp" };
        let name = suffixed(&mut a, path, fresh, 0)?;
        // One left by a shim that died half-way would block us for ever.
        let _ = sys::unlinkat(dir, name);
        let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = sys::openat(dir, name, flags, MODE)?;
        let kept = match self.shift(dir, path, &mut a, &mut b) {
            Ok(kept) => kept,
            Err(e) => {
                let _ = sys::unlinkat(dir, suffixed(&mut a, path, fresh, 0)?);
                return Err(e);
            }
        };
        let name = suffixed(&mut a, path, fresh, 0)?;
        // The new file replaces the old one at the path in one step (the old
        // one is `PATH.1` too by now): a reader never finds the path empty.
        if let Err(e) = sys::renameat(dir, name, path) {
            let _ = sys::unlinkat(dir, name);
            if kept {
                // Back as it was: the old file under its name alone.
                let old = suffixed(&mut b, path, b".", 1)?;
                if !sys::present_at(dir, path).unwrap_or(true) {
                    let _ = sys::renameat(dir, old, path);
                } else {
                    let _ = sys::unlinkat(dir, old);
                }
            }
            return Err(e);
        }
        self.fd = Some(fd);
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }

    /// With --log-rotate: `PATH.(i-1)` to `PATH.i` for i from N down to 2
    /// (the oldest is replaced), then `PATH` also as `PATH.1`. True when there
    /// was a `PATH` to keep (someone may have moved it away).
    fn shift(&self, dir: sys::BorrowedFd<'_>, path: &CStr, a: &mut PathBuf, b: &mut PathBuf) -> sys::Result<bool> {
        // Nothing to keep (moved or deleted away): nothing moves up either.
        if self.keep == 0 || !sys::present_at(dir, path)? {
            return Ok(false);
        }
        for i in (2..=self.keep as u64).rev() {
            let from = suffixed(a, path, b".", i - 1)?;
            let to = suffixed(b, path, b".", i)?;
            match sys::renameat(dir, from, to) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
        // `PATH.1` is a second name of the current file (the path keeps
        // naming it until the new file replaces it); where the file system
        // has no hard links, it is renamed.
        let old = suffixed(b, path, b".", 1)?;
        match sys::unlinkat(dir, old) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        if sys::linkat(dir, path, old).is_err() {
            sys::renameat(dir, path, old)?;
        }
        Ok(true)
    }

    /// A failure to start anew is said once, and once more when it works
    /// again; meanwhile the old file goes on growing (conmon's way too).
    fn said(&mut self, r: sys::Result<()>) {
        match r {
            Err(e) if !self.renew_failing => {
                self.renew_failing = true;
                self.last_error = Some(e);
                crate::diag::warn_errno(b"cannot start the log file anew, writing on in the old one", e);
            }
            Ok(()) if self.renew_failing => {
                self.renew_failing = false;
                crate::diag::warn(&[b"the log file was started anew"]);
            }
            _ => {}
        }
    }

    pub fn sync(&self) -> sys::Result<()> {
        match &self.fd {
            Some(fd) => sys::fsync(fd),
            None => Ok(()),
        }
    }

    /// Bytes that may still be written before a limit decides what comes
    /// next (starting the file anew, or dropping): a batch is cut there, so
    /// those decisions fall between records, as conmon makes them.
    fn room(&self) -> u64 {
        let mut room = u64::MAX;
        if self.max_size > 0 && !self.renew_held {
            room = self.max_size.saturating_sub(self.size);
        }
        if self.global_max > 0 {
            room = room.min(self.global_max.saturating_sub(self.total));
        }
        room
    }

    /// Write `parts` (whole records carrying `payload` bytes), within the
    /// limits: once `--log-global-size-max` is reached the rest is dropped
    /// and counted (the batch that crosses it is still written: batches are
    /// cut at `room`, so that is one record); before a write that would take
    /// a non-empty file past `--log-size-max` the file is started anew. A
    /// write cut short (disk full) keeps the complete records it wrote and
    /// cuts the file back to the last of them, so the file holds whole
    /// records only; the rest is counted as lost. `batch`: the parts are
    /// this one buffer of records; else they are the pieces of a single
    /// record, written whole or not at all.
    fn write_out(&mut self, parts: &mut [IoSlice<'_>], payload: usize, batch: Option<&[u8]>) {
        if self.global_max > 0 && self.total >= self.global_max {
            self.lost += payload as u64;
            return;
        }
        let bytes: u64 = parts.iter().map(|v| v.as_slice().len() as u64).sum();
        if self.max_size > 0 && self.size > 0 && self.size + bytes > self.max_size && !self.renew_held {
            let r = self.renew();
            // Failing, it is tried again at the next read, not per record.
            self.renew_held = r.is_err();
            self.said(r);
        }
        let Some(fd) = &self.fd else { return };
        let (done, kept, wrote) = match sys::writev_all(fd, parts) {
            Ok(()) => (bytes, bytes, payload),
            Err((done, e)) => {
                self.last_error = Some(e);
                let (keep, wrote) = batch.map_or((0, 0), |b| whole_records(&b[..done.min(b.len())]));
                (done as u64, keep as u64, wrote)
            }
        };
        if kept < done {
            sys::truncate_tail(fd, done - kept);
        }
        self.size += kept;
        self.total += kept;
        self.written += wrote as u64;
        self.lost += (payload - wrote) as u64;
    }

    /// Write out what `b` holds (at the end of a wake-up, or when full).
    pub fn flush(&mut self, b: &mut Batch<'_>) {
        if b.is_empty() {
            return;
        }
        let (len, payload) = (b.len, b.payload);
        b.clear();
        let records = &b.buf[..len];
        self.write_out(&mut [IoSlice::new(records)], payload, Some(records));
    }

    /// Format one read's worth of output from `stream` into `b`, writing
    /// the batch out whenever the next record would not fit (or would pass
    /// a limit). The caller flushes `b` before the loop sleeps.
    pub fn write(&mut self, b: &mut Batch<'_>, stream: Stream, data: &[u8], stamp: &timefmt::Stamp) {
        if self.fd.is_none() || data.is_empty() {
            return;
        }
        self.renew_held = false;
        let full = header(stamp, stream, true);
        let mut rest = data;
        while !rest.is_empty() {
            // At most MAX_PAYLOAD bytes: a longer line goes in `P` pieces.
            let most = rest.len().min(MAX_PAYLOAD);
            // The payload goes straight into place, as far as the batch
            // has room, while its end is looked for.
            let room = b.room().min(most);
            let at = b.len + HEADER_LEN;
            let (n, is_full) = if room > 0 { copy_line(&rest[..room], &mut b.buf[at..]) } else { (0, false) };
            let fits = is_full || n == most;
            if fits && (b.is_empty() || (b.len + record_len(n, is_full)) as u64 <= self.room()) {
                b.commit(&full, n, is_full);
                rest = &rest[n..];
                continue;
            }
            if !b.is_empty() {
                // Out with what is there; this record starts the next batch.
                self.flush(b);
                continue;
            }
            // Longer than a whole batch: on its own, from where it is.
            let (seg, is_full) = match crate::buf::find_byte(b'\n', &rest[..most]) {
                Some(i) => (&rest[..=i], true),
                None => (&rest[..most], false),
            };
            let h = header(stamp, stream, is_full);
            let nl: &[u8] = if is_full { b"" } else { b"\n" };
            self.write_out(&mut [IoSlice::new(&h), IoSlice::new(seg), IoSlice::new(nl)], seg.len(), None);
            rest = &rest[seg.len()..];
        }
    }
}

/// `PATH` + `sep` (+ `n` when not 0), as a C string in `buf`.
fn suffixed<'b>(buf: &'b mut PathBuf, path: &CStr, sep: &[u8], n: u64) -> sys::Result<&'b CStr> {
    buf.clear();
    let ok = buf.push(path.to_bytes()) && buf.push(sep) && (n == 0 || buf.push_u64(n));
    if !ok {
        return Err(Errno::NAMETOOLONG);
    }
    buf.as_cstr().ok_or(Errno::NAMETOOLONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(data: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut v = Vec::new();
        for_each_record(data, |f, s| v.push((f, s.to_vec())));
        v
    }

    #[test]
    fn cuts_at_newlines() {
        assert_eq!(records(b""), vec![]);
        assert_eq!(records(b"a\n"), vec![(true, b"a\n".to_vec())]);
        assert_eq!(records(b"a\n\nb"), vec![(true, b"a\n".to_vec()), (true, b"\n".to_vec()), (false, b"b".to_vec())]);
        assert_eq!(records(b"\x00\r\xff"), vec![(false, b"\x00\r\xff".to_vec())]);
    }

    #[test]
    fn header_shape() {
        let st = timefmt::format(0, 5);
        assert_eq!(&header(&st, Stream::Stderr, false), b"1970-01-01T00:00:00.000000005+00:00 stderr P ");
        assert_eq!(&header(&st, Stream::Stdout, true)[timefmt::LEN..], b" stdout F ");
    }

    /// A log file in a fresh directory, for one test.
    struct TmpLog {
        dir: std::path::PathBuf,
        path: &'static CStr,
    }

    impl TmpLog {
        fn new(name: &str) -> TmpLog {
            let dir = std::env::temp_dir().join(format!("shimlet-logfile-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = std::ffi::CString::new(dir.join("log").to_str().unwrap()).unwrap();
            TmpLog { dir, path: Box::leak(path.into_boxed_c_str()) }
        }
        fn read(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.dir.join(name)).unwrap_or_default()
        }
    }

    impl Drop for TmpLog {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The records of one read as the format defines them, written out
    /// naively: what the batched writer must produce byte for byte.
    fn reference(reads: &[(Stream, &[u8])], stamp: &timefmt::Stamp) -> Vec<u8> {
        let mut out = Vec::new();
        for (stream, data) in reads {
            for_each_record(data, |full, seg| {
                let n = seg.len().div_ceil(MAX_PAYLOAD);
                for (i, piece) in seg.chunks(MAX_PAYLOAD).enumerate() {
                    let full = full && i + 1 == n;
                    out.extend_from_slice(&header(stamp, *stream, full));
                    out.extend_from_slice(piece);
                    if !full {
                        out.push(b'\n');
                    }
                }
            });
        }
        out
    }

    /// Each read through `write` with a batch of `cap` bytes, flushed at
    /// the end of each "wake-up" of `per_wake` reads.
    fn through(log: &mut LogFile<'_>, cap: usize, per_wake: usize, reads: &[(Stream, &[u8])], st: &timefmt::Stamp) {
        let mut buf = vec![0u8; cap];
        for wake in reads.chunks(per_wake) {
            let mut b = Batch::new(&mut buf);
            for (stream, data) in wake {
                log.write(&mut b, *stream, data, st);
            }
            log.flush(&mut b);
            assert!(b.is_empty());
        }
    }

    fn payload(reads: &[(Stream, &[u8])]) -> u64 {
        reads.iter().map(|(_, d)| d.len() as u64).sum()
    }

    #[test]
    fn copy_line_stops_after_the_first_newline() {
        for len in 0..70 {
            for nl in (0..len).map(Some).chain([None]) {
                let mut src: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                if let Some(k) = nl {
                    src[k] = b'\n';
                    // A second newline after it must not count.
                    if k + 3 < len {
                        src[k + 3] = b'\n';
                    }
                }
                let mut dst = vec![0xeeu8; len + 5];
                let (n, found) = copy_line(&src, &mut dst);
                let want = nl.map_or(len, |k| k + 1);
                assert_eq!((n, found), (want, nl.is_some()), "len {len} newline {nl:?}");
                assert_eq!(&dst[..n], &src[..n]);
                assert!(dst[len..].iter().all(|&b| b == 0xee), "nothing past the source");
            }
        }
    }

    #[test]
    fn records_are_byte_exact_for_every_batch_size() {
        let st = timefmt::format(1_795_894_422, 123_456_789);
        let long = vec![b'x'; 5000];
        // Longer than a record: P pieces of MAX_PAYLOAD, then the rest.
        let longer: Vec<u8> = [b'y'; 20000].iter().copied().chain([b'\n']).collect();
        let exact: Vec<u8> = [b'z'; MAX_PAYLOAD - 1].iter().copied().chain([b'\n']).collect();
        let over: Vec<u8> = [b'w'; MAX_PAYLOAD].iter().copied().chain([b'\n']).collect();
        let open_end = vec![b'v'; 3 * MAX_PAYLOAD];
        let mut many = Vec::new();
        for i in 0..1000 {
            many.push(b'a' + (i % 26) as u8);
            many.push(b'\n');
        }
        many.extend_from_slice(b"tail");
        let reads: Vec<(Stream, &[u8])> = vec![
            (Stream::Stdout, b"hello\n"),
            (Stream::Stderr, b"a\n\nb"),
            (Stream::Stdout, b"\x00\r\xff\r\n"),
            (Stream::Stdout, &long),
            (Stream::Stdout, b"\n"),
            (Stream::Stderr, &many),
            (Stream::Stdout, b"no newline"),
            (Stream::Stdout, &longer),
            (Stream::Stderr, &exact),
            (Stream::Stdout, &over),
            (Stream::Stdout, &open_end),
        ];
        let want = reference(&reads, &st);
        // From a batch smaller than one record (each record written on its
        // own) to one that holds everything; wake-ups of 1, 2 and 7 reads.
        for cap in [10, HEADER_LEN + 1, 100, 4096, HEADER_LEN + 5000, HEADER_LEN + MAX_PAYLOAD, 65536, 1 << 20] {
            for per_wake in [1, 2, 7] {
                let t = TmpLog::new(&format!("exact-{cap}-{per_wake}"));
                let mut log = LogFile::open(t.path).unwrap();
                through(&mut log, cap, per_wake, &reads, &st);
                assert_eq!(t.read("log"), want, "batch of {cap}, {per_wake} reads per wake-up");
                assert_eq!((log.written, log.lost), (payload(&reads), 0));
            }
        }
    }

    #[test]
    fn a_line_cut_by_reads_is_p_then_f() {
        let st = timefmt::format(0, 0);
        let t = TmpLog::new("pf");
        let mut log = LogFile::open(t.path).unwrap();
        // One wake-up, three reads: a line in three pieces, then a whole one.
        through(
            &mut log,
            4096,
            3,
            &[(Stream::Stdout, b"hel"), (Stream::Stdout, b"lo wor"), (Stream::Stdout, b"ld\nnext\n")],
            &st,
        );
        let text = String::from_utf8(t.read("log")).unwrap();
        let h = "1970-01-01T00:00:00.000000000+00:00 stdout";
        assert_eq!(text, format!("{h} P hel\n{h} P lo wor\n{h} F ld\n{h} F next\n"));
    }

    #[test]
    fn a_batch_fills_and_is_written_mid_read() {
        // 1000 records of 47 bytes through a 4 KiB batch: written each
        // time the next record would not fit, whole records every time.
        let st = timefmt::format(0, 0);
        let t = TmpLog::new("fill");
        let mut log = LogFile::open(t.path).unwrap();
        let data: Vec<u8> = (0..1000).flat_map(|i| [b'a' + (i % 26) as u8, b'\n']).collect();
        let mut buf = vec![0u8; 4096];
        let mut b = Batch::new(&mut buf);
        log.write(&mut b, Stream::Stdout, &data, &st);
        // What did not fit has been written already; the rest waits in the
        // batch for the flush.
        let (rec, per) = (record_len(2, true), 4096 / record_len(2, true));
        assert_eq!(t.read("log").len(), 1000 / per * per * rec, "full batches only");
        assert_eq!(b.len, 1000 % per * rec);
        log.flush(&mut b);
        assert_eq!(t.read("log"), reference(&[(Stream::Stdout, &data)], &st));
    }

    #[test]
    fn whole_records_of_a_cut_write() {
        let st = timefmt::format(0, 0);
        let recs = reference(&[(Stream::Stdout, b"one\ntwo\nthr")], &st);
        let (r1, r2) = (record_len(4, true), record_len(4, true));
        assert_eq!(whole_records(&recs[..0]), (0, 0));
        assert_eq!(whole_records(&recs[..r1 - 1]), (0, 0));
        assert_eq!(whole_records(&recs[..r1]), (r1, 4));
        assert_eq!(whole_records(&recs[..r1 + 10]), (r1, 4));
        assert_eq!(whole_records(&recs[..r1 + r2]), (r1 + r2, 8));
        // The P record: its appended newline is not payload.
        assert_eq!(whole_records(&recs), (recs.len(), 11));
    }

    /// In a child process whose files may not grow past `limit` bytes
    /// (RLIMIT_FSIZE: a write that would pass it is cut short, the next
    /// fails, as on a full disk), log `reads` in wake-ups of `per_wake`;
    /// returns (written, lost) and the file.
    fn with_file_limit(
        name: &str,
        limit: u64,
        cap: usize,
        per_wake: usize,
        reads: &[(Stream, &[u8])],
    ) -> (u64, u64, Vec<u8>) {
        let t = TmpLog::new(name);
        let st = timefmt::format(0, 0);
        let mut buf = vec![0u8; cap];
        let mut rfd = [0i32; 2];
        // SAFETY: plain system calls; the child only writes with buffers
        // made before the fork, and leaves with _exit.
        unsafe {
            assert_eq!(libc::pipe(rfd.as_mut_ptr()), 0);
            let wfd = rfd[1];
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
                libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                let mut log = match LogFile::open(t.path) {
                    Ok(l) => l,
                    Err(_) => libc::_exit(2),
                };
                for wake in reads.chunks(per_wake) {
                    let mut b = Batch::new(&mut buf);
                    for (stream, data) in wake {
                        log.write(&mut b, *stream, data, &st);
                    }
                    log.flush(&mut b);
                }
                let out = [log.written, log.lost, log.last_error.map_or(0, |e| e.raw_os_error() as u64)];
                libc::write(wfd, out.as_ptr().cast(), 24);
                libc::_exit(0);
            }
            libc::close(wfd);
            let mut out = [0u64; 3];
            assert_eq!(libc::read(rfd[0], out.as_mut_ptr().cast(), 24), 24);
            libc::close(rfd[0]);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert_eq!(status, 0);
            assert_eq!(out[2], libc::EFBIG as u64, "the writes failed as on a full disk");
            (out[0], out[1], t.read("log"))
        }
    }

    /// `file` is whole records of `reads`, in order (some may be missing:
    /// lost), and the payload bytes it holds are `written`.
    fn whole_and_in_order(file: &[u8], reads: &[(Stream, &[u8])], written: u64) {
        let st = timefmt::format(0, 0);
        let all = reference(reads, &st);
        assert!(file.is_empty() || file.ends_with(b"\n"), "the file ends with a whole record");
        let mut want = all.split_inclusive(|&b| b == b'\n');
        for rec in file.split_inclusive(|&b| b == b'\n') {
            assert!(
                want.any(|w| w == rec),
                "a record of the file that is not the next one of the input: {:?}",
                String::from_utf8_lossy(rec)
            );
        }
        assert_eq!(whole_records(file), (file.len(), written as usize));
    }

    #[test]
    fn a_full_disk_mid_batch_keeps_whole_records_and_counts_the_rest() {
        let line: Vec<u8> = [b'y'; 99].iter().copied().chain([b'\n']).collect();
        let big: Vec<u8> = line.iter().copied().cycle().take(100 * 100).collect();
        let reads: Vec<(Stream, &[u8])> = vec![(Stream::Stdout, &big), (Stream::Stderr, b"after\n")];
        let total = payload(&reads);
        // The disk fills inside the first batch, inside a later one, and
        // exactly at a record's end.
        for (limit, cap) in [(5000, 65536), (5000, 1024), (7 * record_len(100, true) as u64, 1024), (1, 65536)] {
            let (written, lost, file) = with_file_limit(&format!("full-{limit}-{cap}"), limit, cap, 1, &reads);
            whole_and_in_order(&file, &reads, written);
            assert_eq!(written + lost, total, "every payload byte is written or counted lost");
            assert!(file.len() as u64 <= limit);
            // What fit was kept: less than one batch (and one record) short.
            assert!(file.len() as u64 + cap as u64 + record_len(100, true) as u64 > limit, "{limit} {cap}");
        }
    }

    #[test]
    fn a_full_disk_on_a_record_too_big_for_the_batch() {
        let long = vec![b'z'; 3000];
        let reads: Vec<(Stream, &[u8])> = vec![(Stream::Stdout, b"first\n"), (Stream::Stdout, &long)];
        // The long record goes out on its own (the batch is 1 KiB) and
        // is cut short: it is gone whole; the first record stays.
        let (written, lost, file) = with_file_limit("full-long", 2000, 1024, 2, &reads);
        whole_and_in_order(&file, &reads, written);
        assert_eq!((written, lost), (6, 3000));
        assert_eq!(file.len(), record_len(6, true));
    }

    #[test]
    fn writes_a_real_file_and_batches_many_lines() {
        let dir = std::env::temp_dir().join(format!("shimlet-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let cpath: &'static CStr = Box::leak(cpath.into_boxed_c_str());
        let mut log = LogFile::open(cpath).unwrap();
        let st = timefmt::format(0, 0);
        let mut buf = vec![0u8; 4096];
        let mut b = Batch::new(&mut buf);
        // 1000 one-byte lines: many batches.
        let mut input = Vec::new();
        for i in 0..1000 {
            input.push(b'a' + (i % 26) as u8);
            input.push(b'\n');
        }
        input.extend_from_slice(b"tail");
        log.write(&mut b, Stream::Stdout, &input, &st);
        log.write(&mut b, Stream::Stderr, b"more\n", &st);
        log.flush(&mut b);
        assert_eq!(log.written as usize, input.len() + 5);
        assert_eq!(log.lost, 0);
        let text = std::fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1002);
        assert_eq!(lines[0], b"1970-01-01T00:00:00.000000000+00:00 stdout F a");
        assert_eq!(lines[1000], b"1970-01-01T00:00:00.000000000+00:00 stdout P tail");
        assert_eq!(lines[1001], b"1970-01-01T00:00:00.000000000+00:00 stderr F more");
        let mode = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, MODE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One read in a wake-up of its own: formatted into a batch, flushed.
    fn put(log: &mut LogFile<'_>, stream: Stream, data: &[u8], st: &timefmt::Stamp) {
        let mut buf = vec![0u8; 65536];
        let mut b = Batch::new(&mut buf);
        log.write(&mut b, stream, data, st);
        log.flush(&mut b);
    }

    /// A fresh directory for one test, and a leaked C path in it.
    fn scratch(tag: &str) -> (std::path::PathBuf, &'static CStr) {
        let dir = std::env::temp_dir().join(format!("shimlet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        (dir, Box::leak(c.into_boxed_c_str()))
    }

    /// 86-byte records (45 of header): `line NNN` padded to 40 bytes + \n.
    fn rec(i: usize) -> String {
        format!("{:<40}\n", format!("line {i:03}"))
    }

    fn lines_of(p: &std::path::Path) -> Vec<usize> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| l[HEADER_LEN..].trim_end().trim_start_matches("line ").parse().unwrap())
            .collect()
    }

    #[test]
    fn size_limit_starts_an_empty_file_record_by_record() {
        let (dir, path) = scratch("truncate");
        let mut log = LogFile::open(path).unwrap();
        log.limit(Some(400), None);
        let st = timefmt::format(0, 0);
        // One read of 10 records: 4 fit in 400 bytes (344), then anew.
        let data: String = (0..10).map(rec).collect();
        put(&mut log, Stream::Stdout, data.as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![8, 9]);
        for i in 10..12 {
            put(&mut log, Stream::Stdout, rec(i).as_bytes(), &st);
        }
        assert_eq!(lines_of(&dir.join("log")), vec![8, 9, 10, 11]);
        assert_eq!(std::fs::metadata(dir.join("log")).unwrap().len(), 344);
        put(&mut log, Stream::Stdout, rec(12).as_bytes(), &st);
        put(&mut log, Stream::Stdout, rec(13).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![12, 13]);
        // Nothing kept, nothing left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("log")]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("log")).unwrap().permissions().mode() & 0o777, MODE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_global_limit_falls_between_records() {
        let st = timefmt::format(0, 0);
        let t = TmpLog::new("global");
        let mut log = LogFile::open(t.path).unwrap();
        log.limit(None, Some(1000));
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}\n")).collect();
        let reads: Vec<(Stream, &[u8])> = lines.iter().map(|l| (Stream::Stdout, l.as_bytes())).collect();
        through(&mut log, 65536, 10, &reads, &st);
        let file = t.read("log");
        // The first records, whole, up to the one that crosses 1000 bytes
        // (conmon writes that one too).
        let all = reference(&reads, &st);
        let fit = all.split_inclusive(|&b| b == b'\n').scan(0, |n, r| {
            let starts = *n;
            *n += r.len();
            (starts < 1000).then_some(r.len())
        });
        assert_eq!(file.len(), fit.sum::<usize>());
        whole_and_in_order(&file, &reads, log.written);
        assert_eq!(log.written + log.lost, payload(&reads));
    }

    #[test]
    fn rotation_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("shimlet-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let cpath: &'static CStr =
            Box::leak(std::ffi::CString::new(path.to_str().unwrap()).unwrap().into_boxed_c_str());
        let mut log = LogFile::open(cpath).unwrap();
        log.limit(Some(1000), None);
        log.keep_old(1);
        let st = timefmt::format(0, 0);
        let mut buf = vec![0u8; 65536];
        for i in 0..100 {
            // Ten lines per wake-up: a batch is cut where the file must rotate.
            let mut b = Batch::new(&mut buf);
            for j in 0..10 {
                log.write(&mut b, Stream::Stdout, format!("line {}\n", i * 10 + j).as_bytes(), &st);
            }
            log.flush(&mut b);
        }
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(dir.join("log.1")).unwrap();
        assert!(cur.len() <= 1000 && old.len() <= 1000, "{} {}", cur.len(), old.len());
        assert!(log.rotations > 1);
        // The two files end with the newest lines, contiguous.
        let lines: Vec<&str> = old.lines().chain(cur.lines()).collect();
        assert!(lines.last().unwrap().ends_with("line 999"));
        let first: usize = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
        for (k, l) in lines.iter().enumerate() {
            assert!(l.ends_with(&format!("line {}", first + k)), "{l}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_n_old_files() {
        let (dir, path) = scratch("rotate");
        let mut log = LogFile::open(path).unwrap();
        log.limit(Some(400), None);
        log.keep_old(3);
        let st = timefmt::format(0, 0);
        for i in 0..30 {
            put(&mut log, Stream::Stdout, rec(i).as_bytes(), &st);
        }
        assert_eq!(lines_of(&dir.join("log")), vec![28, 29]);
        assert_eq!(lines_of(&dir.join("log.1")), vec![24, 25, 26, 27]);
        assert_eq!(lines_of(&dir.join("log.2")), vec![20, 21, 22, 23]);
        assert_eq!(lines_of(&dir.join("log.3")), vec![16, 17, 18, 19]);
        assert!(!dir.join("log.4").exists() && !dir.join("log.new").exists());
        assert_eq!(log.rotations, 7);
        // The manager's reopen rotates too; a file moved away is not needed.
        std::fs::rename(dir.join("log"), dir.join("moved")).unwrap();
        log.reopen().unwrap();
        put(&mut log, Stream::Stdout, rec(30).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![30]);
        assert_eq!(lines_of(&dir.join("log.1")), vec![24, 25, 26, 27]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_path_names_a_file_while_it_is_started_anew() {
        let (dir, path) = scratch("always");
        let mut log = LogFile::open(path).unwrap();
        log.limit(Some(200), None);
        log.keep_old(1);
        let st = timefmt::format(0, 0);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, d) = (dir.join("log"), done.clone());
        let watcher = std::thread::spawn(move || {
            let mut missing = 0;
            while !d.load(std::sync::atomic::Ordering::Relaxed) {
                missing += usize::from(std::fs::symlink_metadata(&p).is_err());
            }
            missing
        });
        for i in 0..3000 {
            put(&mut log, Stream::Stdout, rec(i).as_bytes(), &st);
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(log.rotations >= 1000, "{}", log.rotations);
        assert_eq!(watcher.join().unwrap(), 0, "times the log path named nothing");
        assert_eq!(lines_of(&dir.join("log.1")), vec![2996, 2997]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_record_bigger_than_the_limit_gets_a_file() {
        let (dir, path) = scratch("big");
        let mut log = LogFile::open(path).unwrap();
        log.limit(Some(100), None);
        log.keep_old(1);
        let st = timefmt::format(0, 0);
        let big = "x".repeat(300);
        put(&mut log, Stream::Stdout, big.as_bytes(), &st);
        put(&mut log, Stream::Stdout, big.as_bytes(), &st);
        // The first went into the (empty) file as it was, the second into a new one.
        assert_eq!(std::fs::metadata(dir.join("log")).unwrap().len(), 300 + 46);
        assert_eq!(std::fs::metadata(dir.join("log.1")).unwrap().len(), 300 + 46);
        assert_eq!(log.rotations, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn global_cap_writes_the_crossing_record() {
        let (dir, path) = scratch("global");
        let mut log = LogFile::open(path).unwrap();
        log.limit(None, Some(200));
        let st = timefmt::format(0, 0);
        let data: String = (0..5).map(rec).collect();
        put(&mut log, Stream::Stdout, data.as_bytes(), &st);
        put(&mut log, Stream::Stdout, rec(5).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![0, 1, 2]);
        assert_eq!(log.lost, 3 * 41);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_without_rotation_starts_an_empty_file() {
        let (dir, path) = scratch("reopen");
        let mut log = LogFile::open(path).unwrap();
        let st = timefmt::format(0, 0);
        put(&mut log, Stream::Stdout, rec(1).as_bytes(), &st);
        log.reopen().unwrap();
        put(&mut log, Stream::Stdout, rec(2).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![2]);
        assert!(!dir.join("log.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
