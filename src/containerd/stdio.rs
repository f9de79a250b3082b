//! A containerd process's stdio, from the paths in its Create or Exec
//! request.
//!
//! The container gets the manager's FIFOs (or file) as its own stdio: its
//! output goes into them with no copy by the shim, and a full FIFO pushes
//! back on that container only. The shim keeps what runc-v2 keeps, so the
//! same things happen when the manager goes away or comes back: a reader
//! on each output FIFO (a writer never sees EPIPE), and a writer on the
//! stdin FIFO (the container sees its end only after CloseIO and the
//! client's own close). `file://` appends to a file; `binary://` starts
//! a logger with the output pipes as its fds 3 and 4. A terminal's pty is
//! relayed (`relay.rs`) to the stdout FIFO and from the stdin FIFO.

use core::ffi::CStr;

use crate::buf::{Buf, PathBuf};
use crate::create::{self, Argv, Spawn};
use crate::sys::{self, AsFd, Errno, OFlags, OwnedFd, Pid};

/// What the shim opened for one process.
#[derive(Default)]
pub struct Opened {
    /// The runtime's (and so the container's) stdin, stdout, stderr; None
    /// is /dev/null.
    pub child: [Option<OwnedFd>; 3],
    /// The shim's own writer on the stdin FIFO (dropped by CloseIO).
    pub stdin_w: Option<OwnedFd>,
    /// The shim's readers on the output FIFOs.
    pub keep: [Option<OwnedFd>; 2],
    /// A `binary://` logger.
    pub logger: Option<Pid>,
    /// Terminal mode: where the pty's output goes, and its input comes from.
    pub relay_out: Option<OwnedFd>,
    pub relay_in: Option<OwnedFd>,
}

type Fail = (&'static [u8], Errno);

fn cpath(p: &[u8], buf: &mut PathBuf) -> Result<(), Fail> {
    buf.clear();
    if !buf.push(p) || buf.as_cstr().is_none() {
        return Err((b"stdio path too long", Errno::NAMETOOLONG));
    }
    Ok(())
}

fn is_fifo(path: &CStr) -> bool {
    rustix::fs::stat(path).is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo)
}

/// Our reader (kept) and a blocking writer for the container, on an output
/// FIFO; or an appending writer on a regular file.
fn open_out(p: &[u8], keep: &mut Option<OwnedFd>, nonblock: bool) -> Result<OwnedFd, Fail> {
    let mut buf = PathBuf::new();
    cpath(p, &mut buf)?;
    let path = buf.as_cstr().unwrap_or(c"");
    if is_fifo(path) {
        let r =
            sys::open(path, OFlags::RDONLY | OFlags::NONBLOCK, 0).map_err(|e| (&b"open stdout/stderr fifo"[..], e))?;
        // A reader exists now (ours), so this open does not wait.
        let flags = if nonblock { OFlags::WRONLY | OFlags::NONBLOCK } else { OFlags::WRONLY };
        let w = sys::open(path, flags, 0).map_err(|e| (&b"open stdout/stderr fifo"[..], e))?;
        *keep = Some(r);
        Ok(w)
    } else {
        sys::open(path, OFlags::WRONLY | OFlags::APPEND, 0).map_err(|e| (&b"open stdout/stderr"[..], e))
    }
}

/// The stdin FIFO: a reader (blocking, for the container, or non-blocking
/// for the relay) and our own writer.
fn open_in(p: &[u8], nonblock: bool) -> Result<(OwnedFd, OwnedFd), Fail> {
    let mut buf = PathBuf::new();
    cpath(p, &mut buf)?;
    let path = buf.as_cstr().unwrap_or(c"");
    let r = sys::open(path, OFlags::RDONLY | OFlags::NONBLOCK, 0).map_err(|e| (&b"open stdin fifo"[..], e))?;
    let w = sys::open(path, OFlags::WRONLY | OFlags::NONBLOCK, 0).map_err(|e| (&b"open stdin fifo"[..], e))?;
    if !nonblock {
        // The description is the container's now: it reads blocking.
        let fl = rustix::fs::fcntl_getfl(&r).map_err(|e| (&b"stdin fifo"[..], e))?;
        rustix::fs::fcntl_setfl(&r, fl - OFlags::NONBLOCK).map_err(|e| (&b"stdin fifo"[..], e))?;
    }
    Ok((r, w))
}

/// Open the stdio of a process (`id` for a logger's environment).
pub fn open(ns: &[u8], id: &[u8], stdin: &[u8], stdout: &[u8], stderr: &[u8], terminal: bool) -> Result<Opened, Fail> {
    let mut o = Opened::default();
    if stdin.is_empty() && stdout.is_empty() && stderr.is_empty() {
        return Ok(o);
    }
    if let Some(rest) = stdout.strip_prefix(b"binary://") {
        let (out_w, err_w, pid) = logger(ns, id, rest)?;
        o.logger = Some(pid);
        if terminal {
            let _ = sys::set_nonblock(&out_w);
            o.relay_out = Some(out_w);
        } else {
            o.child[1] = Some(out_w);
            o.child[2] = Some(err_w);
        }
        // No stdin with a logger (runc-v2 has none either).
        return Ok(o);
    }
    if let Some(path) = stdout.strip_prefix(b"file://") {
        let f = open_log_file(path)?;
        o.child[2] = Some(f.try_clone().map_err(|e| (&b"dup"[..], e))?);
        o.child[1] = Some(f);
        return Ok(o);
    }
    if !stdin.is_empty() {
        let (r, w) = open_in(stdin, terminal)?;
        o.stdin_w = Some(w);
        if terminal {
            o.relay_in = Some(r);
        } else {
            o.child[0] = Some(r);
        }
    }
    if terminal {
        // A terminal's output is all on stdout; its stderr path is sent
        // but that FIFO is never made.
        if !stdout.is_empty() {
            o.relay_out = Some(open_out(stdout, &mut o.keep[0], true)?);
        }
        return Ok(o);
    }
    if !stdout.is_empty() {
        o.child[1] = Some(open_out(stdout, &mut o.keep[0], false)?);
    }
    if !stderr.is_empty() {
        if stderr == stdout {
            let dup = o.child[1].as_ref().map(|f| f.try_clone()).transpose().map_err(|e| (&b"dup"[..], e))?;
            o.child[2] = dup;
        } else {
            o.child[2] = Some(open_out(stderr, &mut o.keep[1], false)?);
        }
    }
    Ok(o)
}

/// `file:///PATH`: appended to (created 0644, its directory too).
fn open_log_file(path: &[u8]) -> Result<OwnedFd, Fail> {
    let mut buf = PathBuf::new();
    cpath(path, &mut buf)?;
    if let Some(slash) = path.iter().rposition(|&c| c == b'/').filter(|&i| i > 0) {
        mkdir_p(&path[..slash]);
    }
    let p = buf.as_cstr().unwrap_or(c"");
    sys::open(p, OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE, 0o644).map_err(|e| (&b"open log file"[..], e))
}

/// `mkdir -p` (0755), bounded by the path's length.
fn mkdir_p(dir: &[u8]) {
    let mut b = PathBuf::new();
    for (i, &c) in dir.iter().enumerate() {
        if c == b'/' && i > 0 {
            b.clear();
            b.push(&dir[..i]);
            if let Some(p) = b.as_cstr() {
                let _ = rustix::fs::mkdir(p, sys::Mode::from_bits_truncate(0o755));
            }
        }
    }
    b.clear();
    b.push(dir);
    if let Some(p) = b.as_cstr() {
        let _ = rustix::fs::mkdir(p, sys::Mode::from_bits_truncate(0o755));
    }
}

/// Percent-decoding of a URI component (`%2F` → `/`, `+` stays).
fn unpercent<const N: usize>(s: &[u8], out: &mut Buf<N>) -> bool {
    out.clear();
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (s.get(i + 1).and_then(|&c| hex(c)), s.get(i + 2).and_then(|&c| hex(c))) {
                if !out.push_byte(h * 16 + l) {
                    return false;
                }
                i += 3;
                continue;
            }
        }
        if !out.push_byte(s[i]) {
            return false;
        }
        i += 1;
    }
    out.as_cstr().is_some()
}

/// Words of a logger's command line, decoded, in one arena.
struct Words {
    arena: [u8; 2048],
    used: usize,
}

impl Words {
    fn add(&mut self, s: &[u8]) -> Option<(usize, usize)> {
        let mut b: Buf<1024> = Buf::new();
        if !unpercent(s, &mut b) || self.used + b.len() + 1 > self.arena.len() {
            return None;
        }
        let at = self.used;
        self.arena[at..at + b.len()].copy_from_slice(b.as_bytes());
        self.arena[at + b.len()] = 0;
        self.used += b.len() + 1;
        Some((at, b.len() + 1))
    }
}

/// `binary:///PATH?k=v&...`: start PATH with the query as `k v` words,
/// `CONTAINER_ID` and `CONTAINER_NAMESPACE` as its only environment, the
/// stdout and stderr pipes' read ends as fds 3 and 4 and a ready pipe as
/// fd 5, and wait (bounded) until it says it is ready by closing fd 5.
/// Returns the pipes' write ends (the container's stdout and stderr).
#[inline(never)]
fn logger(ns: &[u8], id: &[u8], uri: &[u8]) -> Result<(OwnedFd, OwnedFd, Pid), Fail> {
    let (path, query) = match uri.iter().position(|&c| c == b'?') {
        Some(i) => (&uri[..i], &uri[i + 1..]),
        None => (uri, &b""[..]),
    };
    let mut w = Words { arena: [0; 2048], used: 0 };
    let too_long = (&b"binary log URI too long"[..], Errno::NAMETOOLONG);
    let mut spans: [(usize, usize); 40] = [(0, 0); 40];
    let mut n = 0;
    spans[n] = w.add(path).ok_or(too_long)?;
    n += 1;
    for kv in query.split(|&c| c == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match kv.iter().position(|&c| c == b'=') {
            Some(i) => (&kv[..i], &kv[i + 1..]),
            None => (kv, &b""[..]),
        };
        if n + 2 > spans.len() {
            return Err(too_long);
        }
        spans[n] = w.add(k).ok_or(too_long)?;
        spans[n + 1] = w.add(v).ok_or(too_long)?;
        n += 2;
    }
    let mut e1: Buf<512> = Buf::new();
    e1.push(b"CONTAINER_ID=");
    e1.push(id);
    let mut e2: Buf<512> = Buf::new();
    e2.push(b"CONTAINER_NAMESPACE=");
    e2.push(ns);
    let (Some(e1), Some(e2)) = (e1.as_cstr(), e2.as_cstr()) else { return Err(too_long) };
    let mut env = Argv::new();
    env.push(e1);
    env.push(e2);
    let arena = &w.arena;
    let word = |(at, len): (usize, usize)| CStr::from_bytes_with_nul(&arena[at..at + len]).unwrap_or(c"");
    let mut argv = Argv::new();
    for &s in &spans[..n] {
        argv.push(word(s));
    }
    let prog = word(spans[0]);
    let (out_r, out_w) = sys::pipe().map_err(|e| (&b"pipe"[..], e))?;
    let (err_r, err_w) = sys::pipe().map_err(|e| (&b"pipe"[..], e))?;
    let (ready_r, ready_w) = sys::pipe().map_err(|e| (&b"pipe"[..], e))?;
    let null = sys::open(c"/dev/null", OFlags::RDWR, 0).map_err(|e| (&b"open /dev/null"[..], e))?;
    let extra = [out_r.as_fd(), err_r.as_fd(), ready_w.as_fd()];
    let spawn = Spawn {
        prog,
        argv: &argv,
        stdio: [null.as_fd(), null.as_fd(), null.as_fd()],
        gate: None,
        // The shim keeps the score containerd gave it; so does its logger
        // (runc-v2's loggers inherit theirs too).
        reset_oom: false,
        keep_from_3: 0,
        extra: &extra,
        env: Some(&env),
        own_listen_pid: false,
    };
    let pid = create::spawn(&spawn).map_err(|e| (&b"start the logger"[..], e))?;
    drop((out_r, err_r, ready_w, null));
    // Ready: a byte, or its end. Bounded: a logger that never says so
    // does not hold the shim.
    let _ = rustix::event::poll(
        &mut [rustix::event::PollFd::new(&ready_r, rustix::event::PollFlags::IN)],
        Some(&rustix::time::Timespec { tv_sec: 10, tv_nsec: 0 }),
    );
    Ok((out_w, err_w, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        let mut b: Buf<64> = Buf::new();
        assert!(unpercent(b"%2Fvar%2flog a+b", &mut b));
        assert_eq!(b.as_bytes(), b"/var/log a+b");
        assert!(unpercent(b"100%", &mut b));
        assert_eq!(b.as_bytes(), b"100%");
        assert!(unpercent(b"%zz", &mut b));
        assert_eq!(b.as_bytes(), b"%zz");
    }

    #[test]
    fn fifos_are_held_both_ways() {
        let dir = std::env::temp_dir().join(format!("shimlet-stdio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let inp = dir.join("in");
        for p in [&out, &inp] {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                c.as_c_str(),
                rustix::fs::FileType::Fifo,
                sys::Mode::from_bits_truncate(0o600),
                0,
            )
            .unwrap();
        }
        let o =
            open(b"ns", b"id", inp.to_str().unwrap().as_bytes(), out.to_str().unwrap().as_bytes(), b"", false).unwrap();
        assert!(o.child[0].is_some() && o.child[1].is_some() && o.child[2].is_none());
        assert!(o.stdin_w.is_some() && o.keep[0].is_some());
        // The container's stdout takes a write with nobody else reading.
        assert_eq!(sys::write(o.child[1].as_ref().unwrap(), b"x").unwrap(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
