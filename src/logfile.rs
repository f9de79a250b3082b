//! The container's output log in the CRI "k8s-file" format that podman,
//! kubelet and crictl read:
//!
//! `2026-11-28T19:33:42.123456789+00:00 stdout F hello\n`
//!
//! Every read from a container pipe is cut at its newlines: each complete
//! line is an `F` record, a trailing piece without its newline is a `P`
//! record (the rest of that line follows in later records). Nothing is held
//! back between reads, so there is no line buffer to bound and nothing is
//! lost if the shim dies. Payload bytes are written exactly as read.
//!
//! Records of one read are gathered into one `writev`, so the cost is one
//! syscall per read rather than one per line.
//!
//! Limits, as conmon 2.2 applies them, record by record: before a record
//! that would take the file past `--log-size-max`, the file is started
//! anew: a new empty file replaces it (conmon's default, the old lines are
//! gone) or, with `--log-rotate`, the old one is kept as `PATH.1` and older
//! ones move up to `PATH.N`. The new file is made beside the old one and
//! renamed over it, so the path always names a file. Past
//! `--log-global-size-max` in all, the rest is dropped (the record that
//! crosses it is still written). Log files are created 0640, as conmon
//! 2.2 creates them.

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

pub fn header(stamp: &timefmt::Stamp, stream: Stream, full: bool) -> [u8; HEADER_LEN] {
    let mut h = [b' '; HEADER_LEN];
    h[..timefmt::LEN].copy_from_slice(stamp);
    h[timefmt::LEN + 1..timefmt::LEN + 7].copy_from_slice(stream.name());
    h[timefmt::LEN + 8] = if full { b'F' } else { b'P' };
    h
}

/// iovecs gathered per writev: 64 records. 2 KiB of stack.
const IOV_MAX: usize = 128;

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

    /// Start a new file at the path: made beside it (`PATH.new` with
    /// --log-rotate, else `PATH.tmp`), the old ones shifted up to
    /// `PATH.N` and the current one renamed to `PATH.1` (with --log-rotate;
    /// else it is replaced and its lines are gone), then renamed into
    /// place. The path names a file all along.
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
        if let Err(e) = sys::renameat(dir, name, path) {
            let _ = sys::unlinkat(dir, name);
            if kept {
                // Put the old file back where it was.
                let _ = sys::renameat(dir, suffixed(&mut b, path, b".", 1)?, path);
            }
            return Err(e);
        }
        self.fd = Some(fd);
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }

    /// With --log-rotate: `PATH.(i-1)` to `PATH.i` for i from N down to 2
    /// (the oldest is replaced), then `PATH` to `PATH.1`. True when there
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
        sys::renameat(dir, path, suffixed(b, path, b".", 1)?)?;
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

    /// Write one batch of iovecs, within the limits.
    fn flush(&mut self, iov: &mut [IoSlice<'_>], payload: usize) {
        // Sizes are only needed for --log-size-max / --log-global-size-max
        // (`write_limited` keeps each batch within them).
        let limited = self.max_size > 0 || self.global_max > 0;
        let bytes: u64 = if limited { iov.iter().map(|v| v.as_slice().len() as u64).sum() } else { 0 };
        let Some(fd) = &self.fd else { return };
        match sys::writev_all(fd, iov) {
            Ok(()) => {
                self.size += bytes;
                self.total += bytes;
                self.written += payload as u64;
            }
            Err((done, e)) => {
                // A record cut short (disk full mid-write) would have the
                // next one glued to it: cut the file back to where this
                // batch began, so it holds whole records only.
                if done > 0 {
                    sys::truncate_tail(fd, done as u64);
                }
                self.lost += payload as u64;
                self.last_error = Some(e);
            }
        }
    }

    /// Log one read's worth of output from `stream`.
    pub fn write(&mut self, stream: Stream, data: &[u8], stamp: &timefmt::Stamp) {
        if self.fd.is_none() || data.is_empty() {
            return;
        }
        if self.max_size > 0 || self.global_max > 0 {
            return self.write_limited(stream, data, stamp);
        }
        let full = header(stamp, stream, true);
        let part = header(stamp, stream, false);
        let mut iov: [IoSlice<'_>; IOV_MAX] = core::array::from_fn(|_| IoSlice::new(&[]));
        let mut n = 0;
        let mut payload = 0usize;
        let mut rest = data;
        // Records of this read, batched: 64 per writev.
        loop {
            let (seg, is_full) = match crate::buf::find_byte(b'\n', rest) {
                Some(i) => (&rest[..=i], true),
                None if !rest.is_empty() => (rest, false),
                None => break,
            };
            rest = &rest[seg.len()..];
            if n + 3 > IOV_MAX {
                self.flush(&mut iov[..n], payload);
                n = 0;
                payload = 0;
            }
            if is_full {
                iov[n] = IoSlice::new(&full);
                iov[n + 1] = IoSlice::new(seg);
                n += 2;
            } else {
                iov[n] = IoSlice::new(&part);
                iov[n + 1] = IoSlice::new(seg);
                iov[n + 2] = IoSlice::new(b"\n");
                n += 3;
            }
            payload += seg.len();
        }
        if n > 0 {
            self.flush(&mut iov[..n], payload);
        }
    }

    /// `write` under the size limits, checked before each record as conmon
    /// does: a batch ends before a record that would take the file past
    /// `max_size` (then the file is started anew, unless it is empty:
    /// a record larger than the limit goes whole into a file of its own),
    /// and once `global_max` is reached the rest is dropped and counted.
    #[inline(never)]
    fn write_limited(&mut self, stream: Stream, data: &[u8], stamp: &timefmt::Stamp) {
        let full = header(stamp, stream, true);
        let part = header(stamp, stream, false);
        let mut iov: [IoSlice<'_>; IOV_MAX] = core::array::from_fn(|_| IoSlice::new(&[]));
        let (mut n, mut payload, mut pending) = (0, 0usize, 0u64);
        // One attempt to start anew per read, when it fails.
        let mut may_renew = true;
        let mut rest = data;
        loop {
            let (seg, is_full) = match crate::buf::find_byte(b'\n', rest) {
                Some(i) => (&rest[..=i], true),
                None if !rest.is_empty() => (rest, false),
                None => break,
            };
            if self.global_max > 0 && self.total + pending >= self.global_max {
                self.lost += rest.len() as u64;
                break;
            }
            let rec = (HEADER_LEN + seg.len() + usize::from(!is_full)) as u64;
            let used = self.size + pending;
            if self.max_size > 0 && used > 0 && used + rec > self.max_size && may_renew {
                if n > 0 {
                    self.flush(&mut iov[..n], payload);
                    (n, payload, pending) = (0, 0, 0);
                }
                let r = self.renew();
                may_renew = r.is_ok();
                self.said(r);
            }
            rest = &rest[seg.len()..];
            if n + 3 > IOV_MAX {
                self.flush(&mut iov[..n], payload);
                (n, payload, pending) = (0, 0, 0);
            }
            iov[n] = IoSlice::new(if is_full { &full } else { &part });
            iov[n + 1] = IoSlice::new(seg);
            n += 2;
            if !is_full {
                iov[n] = IoSlice::new(b"\n");
                n += 1;
            }
            payload += seg.len();
            pending += rec;
        }
        if n > 0 {
            self.flush(&mut iov[..n], payload);
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

    #[test]
    fn writes_a_real_file_and_batches_many_lines() {
        let dir = std::env::temp_dir().join(format!("shimlet-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let cpath: &'static CStr = Box::leak(cpath.into_boxed_c_str());
        let mut log = LogFile::open(cpath).unwrap();
        let st = timefmt::format(0, 0);
        // 1000 one-byte lines: many writev batches.
        let mut input = Vec::new();
        for i in 0..1000 {
            input.push(b'a' + (i % 26) as u8);
            input.push(b'\n');
        }
        input.extend_from_slice(b"tail");
        log.write(Stream::Stdout, &input, &st);
        log.write(Stream::Stderr, b"more\n", &st);
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
        log.write(Stream::Stdout, data.as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![8, 9]);
        for i in 10..12 {
            log.write(Stream::Stdout, rec(i).as_bytes(), &st);
        }
        assert_eq!(lines_of(&dir.join("log")), vec![8, 9, 10, 11]);
        assert_eq!(std::fs::metadata(dir.join("log")).unwrap().len(), 344);
        log.write(Stream::Stdout, rec(12).as_bytes(), &st);
        log.write(Stream::Stdout, rec(13).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![12, 13]);
        // Nothing kept, nothing left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("log")]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("log")).unwrap().permissions().mode() & 0o777, MODE);
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
            log.write(Stream::Stdout, rec(i).as_bytes(), &st);
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
        log.write(Stream::Stdout, rec(30).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![30]);
        assert_eq!(lines_of(&dir.join("log.1")), vec![24, 25, 26, 27]);
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
        log.write(Stream::Stdout, big.as_bytes(), &st);
        log.write(Stream::Stdout, big.as_bytes(), &st);
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
        log.write(Stream::Stdout, data.as_bytes(), &st);
        log.write(Stream::Stdout, rec(5).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![0, 1, 2]);
        assert_eq!(log.lost, 3 * 41);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_without_rotation_starts_an_empty_file() {
        let (dir, path) = scratch("reopen");
        let mut log = LogFile::open(path).unwrap();
        let st = timefmt::format(0, 0);
        log.write(Stream::Stdout, rec(1).as_bytes(), &st);
        log.reopen().unwrap();
        log.write(Stream::Stdout, rec(2).as_bytes(), &st);
        assert_eq!(lines_of(&dir.join("log")), vec![2]);
        assert!(!dir.join("log.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
