//! Helpers of the fault-injection tests (tests/faults.rs): a raw attach
//! client, the ctl FIFO, /proc figures of the shim, tmpfs mounts that are
//! undone on drop, a streaming checker for logs too large to parse in
//! memory, and a launcher that hands over a sync descriptor without
//! reading it.
//!
//! Everything that waits is bounded; nothing measures time.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::*;

pub use super::common::attach_client::*;

/// Polls `f` up to `limit`; None when it never answered.
pub fn poll_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// /proc figures

pub fn oom_score_adj(pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).ok()?.trim().parse().ok()
}

/// Live processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| proc_ppid(p) == Some(pid))
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the maximum of the shim's RssAnon over samples.
#[derive(Debug, Default, Clone, Copy)]
pub struct RssTrack {
    pub max: u64,
    pub samples: usize,
    pub last: u64,
}

impl RssTrack {
    pub fn sample(&mut self, pid: i32) {
        if let Some(r) = status_kb(pid, "RssAnon") {
            self.max = self.max.max(r);
            self.last = r;
            self.samples += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// files inside a running container

/// `/proc/PID/root/dev/shm/NAME`: a file in the container's (writable)
/// /dev/shm, seen from the host.
pub fn shm_path(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root/dev/shm/{name}"))
}

/// Creates /dev/shm/NAME in the container: the go-ahead the container's
/// script waits for.
pub fn touch_in_container(pid: i32, name: &str) {
    let p = shm_path(pid, name);
    fs::write(&p, b"").unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
}

/// A shell loop waiting (bounded, 60 s) for /dev/shm/NAME to exist.
pub fn wait_file_sh(name: &str) -> String {
    format!("i=0; while [ ! -e /dev/shm/{name} ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 99; sleep 0.05; done")
}

// ---------------------------------------------------------------------------
// mounts

/// A tmpfs mounted on a directory; unmounted on drop (lazily if busy).
pub struct Mount {
    pub dir: PathBuf,
}

impl Mount {
    pub fn tmpfs(dir: &Path, opts: &str) -> Mount {
        fs::create_dir_all(dir).unwrap();
        let out =
            Command::new(need("mount", "mount")).args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs -o {opts} {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount { dir: dir.to_path_buf() }
    }

    pub fn remount(&self, opts: &str) {
        let out = Command::new(need("mount", "mount"))
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -o remount,{opts} {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let umount = need("umount", "mount");
        let ok =
            Command::new(&umount).arg(&self.dir).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            let _ = Command::new(&umount).arg("-l").arg(&self.dir).status();
        }
    }
}

// ---------------------------------------------------------------------------
// the ctl FIFO

/// Writes `data` into the ctl FIFO with a blocking writer (the shim holds a
/// reader, so the open does not block; a full FIFO makes the write wait).
pub fn ctl_send(path: &Path, data: &[u8]) {
    let mut f =
        fs::OpenOptions::new().write(true).open(path).unwrap_or_else(|e| panic!("open ctl {}: {e}", path.display()));
    f.write_all(data).unwrap_or_else(|e| panic!("write ctl {}: {e}", path.display()));
}

/// Raises the soft descriptor limit to the hard one (for many clients).
pub fn raise_nofile() {
    // SAFETY: get/setrlimit on plain data.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
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
            if line_no == 1 || line_no % 4096 == 0 {
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
// launching by hand

/// Starts the launcher with `args` plus `--sync-fd N`, N being `fd` (which
/// the launcher inherits); stdout/stderr go to files in `dir`. Returns the
/// child and the paths of its stdout and stderr.
pub fn spawn_with_fd(
    args: &[OsString],
    env: &[(OsString, OsString)],
    fd: RawFd,
    dir: &Path,
) -> (std::process::Child, PathBuf, PathBuf) {
    let out_p = dir.join("raw-launcher.out");
    let err_p = dir.join("raw-launcher.err");
    let mut cmd = Command::new(shimlet_bin());
    cmd.args(args)
        .arg("--sync-fd")
        .arg(fd.to_string())
        .env_remove("_OCI_SYNCPIPE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).unwrap())
        .stderr(fs::File::create(&err_p).unwrap());
    // SAFETY: fcntl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (cmd.spawn().expect("spawn shimlet"), out_p, err_p)
}

/// pipe2(O_CLOEXEC): (read end, write end).
pub fn pipe_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", os_err());
    // SAFETY: both were just created and are owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

// ---------------------------------------------------------------------------
// a small deterministic PRNG (xorshift64*)

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// An OsString from raw bytes (may be invalid UTF-8).
pub fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

/// Text of a diagnostics file ("" when it does not exist).
pub fn read_text(p: &Path) -> String {
    fs::read(p).map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default()
}

/// Kills (SIGKILL) and reaps the listed processes on drop, if they still
/// run the expected command: what a failing test must not leave behind.
pub struct KillOnDrop(pub Vec<(i32, &'static str)>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &(p, what) in &self.0 {
            if p > 1 && pid_alive(p) && proc_cmdline(p).contains(what) {
                // SAFETY: kill(2) of a process this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        for &(p, _) in &self.0 {
            if p > 1 {
                let deadline = Instant::now() + Duration::from_secs(5);
                while pid_exists(p) && Instant::now() < deadline {
                    try_reap(p);
                    if !pid_exists(p) || (is_zombie(p) && proc_ppid(p) != Some(std::process::id() as i32)) {
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            }
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
