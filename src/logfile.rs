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

use core::ffi::CStr;

use rustix::io::IoSlice;

use crate::sys::{self, Errno, OFlags, OwnedFd};
use crate::timefmt;

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
    path: Option<&'a CStr>,
    /// Rotate to `PATH.1` before the file would pass this size (0: never).
    max_size: u64,
    /// Stop logging once this much has been written in all (0: no limit).
    global_max: u64,
    size: u64,
    total: u64,
    /// Rotations done.
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
            path: None,
            max_size: 0,
            global_max: 0,
            size: 0,
            total: 0,
            rotations: 0,
            lost: 0,
            written: 0,
            last_error: None,
        }
    }

    pub fn open(path: &'a CStr) -> sys::Result<Self> {
        let fd = Self::open_fd(path)?;
        let mut l = Self::none();
        l.size = sys::file_size(&fd);
        l.fd = Some(fd);
        l.path = Some(path);
        Ok(l)
    }

    pub fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    /// `max_size`: rotate before passing it; `global_max`: stop after it.
    pub fn limit(&mut self, max_size: Option<u64>, global_max: Option<u64>) {
        self.max_size = max_size.unwrap_or(0);
        self.global_max = global_max.unwrap_or(0);
    }

    fn open_fd(path: &CStr) -> sys::Result<OwnedFd> {
        sys::open(path, OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE, 0o600)
    }

    /// Keep the full file as `PATH.1` (replacing an older one) and start
    /// a new one. conmon 2.1.6 truncates instead, losing the old lines.
    fn rotate(&mut self) {
        let Some(path) = self.path else { return };
        let mut old = crate::buf::PathBuf::new();
        old.push(path.to_bytes());
        if !old.push(b".1") {
            return;
        }
        let Some(old_c) = old.as_cstr() else { return };
        if sys::rename(path, old_c).is_err() {
            return;
        }
        match Self::open_fd(path) {
            Ok(fd) => {
                self.fd = Some(fd);
                self.size = 0;
                self.rotations += 1;
            }
            // Keep writing into the renamed file rather than nowhere.
            Err(e) => self.last_error = Some(e),
        }
    }

    /// Reopen by path (after someone rotated the file away). On failure the
    /// old descriptor is kept, so writing goes on somewhere.
    pub fn reopen(&mut self) -> sys::Result<()> {
        let Some(path) = self.path else { return Ok(()) };
        let fd = Self::open_fd(path)?;
        self.size = sys::file_size(&fd);
        self.fd = Some(fd);
        Ok(())
    }

    pub fn sync(&self) -> sys::Result<()> {
        match &self.fd {
            Some(fd) => sys::fsync(fd),
            None => Ok(()),
        }
    }

    /// Write one batch of iovecs, within the limits.
    fn flush(&mut self, iov: &mut [IoSlice<'_>], payload: usize) {
        // Sizes are only needed for --log-size-max / --log-global-size-max.
        let limited = self.max_size > 0 || self.global_max > 0;
        let bytes: u64 = if limited { iov.iter().map(|v| v.as_slice().len() as u64).sum() } else { 0 };
        if self.global_max > 0 && self.total + bytes > self.global_max {
            self.lost += payload as u64;
            return;
        }
        if self.max_size > 0 && self.size > 0 && self.size + bytes > self.max_size {
            self.rotate();
        }
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
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
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
        let st = timefmt::format(0, 0);
        for i in 0..100 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes(), &st);
        }
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(dir.join("log.1")).unwrap();
        assert!(cur.len() <= 1000 && old.len() <= 1000, "{} {}", cur.len(), old.len());
        assert!(log.rotations > 1);
        // The two files end with the newest lines, contiguous.
        let lines: Vec<&str> = old.lines().chain(cur.lines()).collect();
        assert!(lines.last().unwrap().ends_with("line 99"));
        let first: usize = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
        for (k, l) in lines.iter().enumerate() {
            assert!(l.ends_with(&format!("line {}", first + k)), "{l}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
