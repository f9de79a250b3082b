//! An attach-socket client for the tests: connects by a path of any length
//! (through /proc/self/fd, as shimlet binds), sends input, receives and
//! keeps output records; and a started `cat` container to attach to.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// Largest record the shim may send: one stream byte + 8192 data bytes.
pub const MAX_RECORD: usize = 1 + 8192;

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn os_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

// ---------------------------------------------------------------------------
// connecting

/// A socket address that may be longer than `sun_path`: the directory is
/// held open with O_PATH and the socket is reached through
/// `/proc/self/fd/<dirfd>/<name>` (the trick shimlet uses itself).
pub struct Target {
    pub path: PathBuf,
    dir: OwnedFd,
    name: CString,
}

impl Target {
    pub fn new(path: &Path) -> Target {
        let parent = path.parent().expect("socket path has a directory");
        let name = path.file_name().expect("socket path has a name");
        let cdir = CString::new(parent.as_os_str().as_bytes()).unwrap();
        // SAFETY: open(2) of a NUL-terminated path.
        let d = unsafe { libc::open(cdir.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        assert!(d >= 0, "open O_PATH {}: {}", parent.display(), os_err());
        Target {
            path: path.to_path_buf(),
            // SAFETY: d was just opened and is owned here.
            dir: unsafe { OwnedFd::from_raw_fd(d) },
            name: CString::new(name.as_bytes()).unwrap(),
        }
    }

    fn sockaddr(&self) -> (libc::sockaddr_un, libc::socklen_t) {
        let short = format!("/proc/self/fd/{}/{}", self.dir.as_raw_fd(), self.name.to_str().unwrap());
        // SAFETY: sockaddr_un is plain data.
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        assert!(short.len() < a.sun_path.len(), "socket name too long even through /proc: {short}");
        for (d, &c) in a.sun_path.iter_mut().zip(short.as_bytes()) {
            *d = c as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + short.len() + 1;
        (a, len as libc::socklen_t)
    }

    /// connect(2) a SOCK_SEQPACKET socket; Err(errno) when refused.
    pub fn try_connect(&self) -> Result<OwnedFd, i32> {
        let (a, len) = self.sockaddr();
        // SAFETY: socket(2).
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", os_err());
        // SAFETY: fd was just created and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        loop {
            // SAFETY: a valid sockaddr_un of length len.
            let r = unsafe { libc::connect(fd.as_raw_fd(), &a as *const _ as *const libc::sockaddr, len) };
            if r == 0 {
                return Ok(fd);
            }
            let e = errno();
            if e != libc::EINTR {
                return Err(e);
            }
        }
    }

    pub fn connect(&self) -> Client {
        let fd = self
            .try_connect()
            .unwrap_or_else(|e| panic!("connect {}: {}", self.path.display(), std::io::Error::from_raw_os_error(e)));
        Client::new(fd)
    }
}

// ---------------------------------------------------------------------------
// a raw attach client

/// What one receive produced.
#[derive(Debug)]
pub enum Recv {
    Record(u8, Vec<u8>),
    /// The shim closed the connection: recv returned 0 (None) or an error.
    Closed(Option<i32>),
    /// Nothing within the bound.
    Nothing,
}

/// A client on the attach socket that keeps what it received.
pub struct Client {
    pub fd: OwnedFd,
    /// Concatenated payloads of stream-2 records.
    pub stdout: Vec<u8>,
    /// Concatenated payloads of stream-3 records.
    pub stderr: Vec<u8>,
    pub records: usize,
    /// Set once the shim closed the connection: None = orderly (recv 0),
    /// Some(errno) = an error such as ECONNRESET.
    pub closed: Option<Option<i32>>,
}

impl Client {
    pub fn new(fd: OwnedFd) -> Client {
        Client { fd, stdout: vec![], stderr: vec![], records: 0, closed: None }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one message (raw input for the container), waiting (bounded)
    /// while the socket is full.
    pub fn send(&self, data: &[u8]) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.try_send(data) {
                Ok(()) => return,
                Err(libc::EAGAIN) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        panic!("send {} bytes: the socket stayed full for {}s", data.len(), WAIT.as_secs());
                    }
                    let mut pfd = libc::pollfd { fd: self.raw(), events: libc::POLLOUT, revents: 0 };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
                }
                Err(e) => panic!("send {:?}: {}", tail_str(data), std::io::Error::from_raw_os_error(e)),
            }
        }
    }

    /// One non-blocking send of a whole message: Err(errno), EAGAIN when
    /// the socket is full.
    pub fn try_send(&self, data: &[u8]) -> Result<(), i32> {
        loop {
            // SAFETY: sending from a valid buffer.
            let r = unsafe {
                libc::send(self.raw(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
            };
            if r >= 0 {
                assert_eq!(r as usize, data.len(), "a SEQPACKET send was cut");
                return Ok(());
            }
            let e = errno();
            if e != libc::EINTR {
                return Err(e);
            }
        }
    }

    /// shutdown(SHUT_WR): end of input from this client.
    /// Sends one record (blocking); Err(errno) when the shim has closed the
    /// connection (it drops clients that do not read their output).
    pub fn send_or_closed(&self, data: &[u8]) -> Result<(), i32> {
        // SAFETY: sending from a valid buffer.
        let r = unsafe { libc::send(self.raw(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if r < 0 {
            return Err(errno());
        }
        assert_eq!(r as usize, data.len(), "a SEQPACKET send is all or nothing");
        Ok(())
    }

    /// Sends one record without waiting: Ok(true) sent, Ok(false) the socket
    /// is full, Err(errno) otherwise.
    pub fn try_send_full(&self, data: &[u8]) -> Result<bool, i32> {
        // SAFETY: sending from a valid buffer.
        let r = unsafe {
            libc::send(self.raw(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        };
        if r >= 0 {
            assert_eq!(r as usize, data.len(), "a SEQPACKET send is all or nothing");
            return Ok(true);
        }
        match errno() {
            libc::EAGAIN => Ok(false),
            e => Err(e),
        }
    }

    pub fn shutdown_wr(&self) {
        // SAFETY: shutdown(2).
        let r = unsafe { libc::shutdown(self.raw(), libc::SHUT_WR) };
        assert_eq!(r, 0, "shutdown(SHUT_WR): {}", os_err());
    }

    /// Receives one record, waiting at most `limit`. Checks its shape: a
    /// stream byte 2 or 3 and at most 8192 data bytes, never truncated.
    pub fn recv(&mut self, limit: Duration) -> Recv {
        if let Some(how) = self.closed {
            return Recv::Closed(how);
        }
        let mut pfd = libc::pollfd { fd: self.raw(), events: libc::POLLIN, revents: 0 };
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            assert_eq!(errno(), libc::EINTR, "poll: {}", os_err());
            return Recv::Nothing;
        }
        if r == 0 {
            return Recv::Nothing;
        }
        let mut buf = vec![0u8; MAX_RECORD + 1];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr is plain data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: recvmsg into the local buffer.
        let n = unsafe { libc::recvmsg(self.raw(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN || e == libc::EINTR {
                return Recv::Nothing;
            }
            self.closed = Some(Some(e));
            return Recv::Closed(Some(e));
        }
        if n == 0 {
            self.closed = Some(None);
            return Recv::Closed(None);
        }
        let n = n as usize;
        assert!(msg.msg_flags & libc::MSG_TRUNC == 0, "a record longer than {MAX_RECORD} bytes was truncated");
        assert!(n <= MAX_RECORD, "record of {n} bytes: more than 1 + 8192");
        assert!(n >= 2, "record of {n} bytes: a stream byte without data");
        let (stream, data) = (buf[0], buf[1..n].to_vec());
        match stream {
            2 => self.stdout.extend_from_slice(&data),
            3 => self.stderr.extend_from_slice(&data),
            s => panic!("record with stream byte {s}: want 2 (stdout) or 3 (stderr)"),
        }
        self.records += 1;
        Recv::Record(stream, data)
    }

    /// Receives until the stdout payloads hold `needle`; panics with what
    /// was received when it does not come within `limit`.
    pub fn read_until(&mut self, needle: &[u8], limit: Duration) {
        let deadline = Instant::now() + limit;
        while !contains(&self.stdout, needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "client: no {:?} on stream 2 within {}s; got {} records, stdout tail {:?}, stderr {:?}",
                    String::from_utf8_lossy(needle),
                    limit.as_secs(),
                    self.records,
                    tail_str(&self.stdout),
                    tail_str(&self.stderr)
                );
            }
            if let Recv::Closed(how) = self.recv(left.min(Duration::from_millis(200))) {
                panic!(
                    "client: connection closed ({how:?}) before {:?} arrived; stdout tail {:?}",
                    String::from_utf8_lossy(needle),
                    tail_str(&self.stdout)
                );
            }
        }
    }

    /// Receives (keeping everything) until the shim closes the connection;
    /// panics when that does not happen within `limit`.
    pub fn wait_closed(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(how) = self.closed {
                return how;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "client: the connection was not closed within {}s ({} records, stdout tail {:?})",
                    limit.as_secs(),
                    self.records,
                    tail_str(&self.stdout)
                );
            }
            self.recv(left.min(Duration::from_millis(200)));
        }
    }
}

// ---------------------------------------------------------------------------
// a container to attach to

/// A started `cat` container with an attach socket and a stdin kept open
/// across clients; with `probe`, a first client has round-tripped a line
/// and been let go, so the shim holds only its listening socket.
pub fn cat_with_attach(fx: &Fixture, probe: bool) -> (Container, i32, Target) {
    let c = fx.bundle(&["cat"]);
    let sock = c.dir.join("attach.sock");
    fx.launch_ok(&c, fx.launcher(&c).opt("--attach", &sock).args(&["--stdin", "--leave-stdin-open"]));
    let shim = c.shim_pid();
    fx.start(&c);
    let target = Target::new(&sock);
    if probe {
        let mut p = target.connect();
        p.send(b"probe-line\n");
        p.read_until(b"probe-line\n", WAIT);
        drop(p);
        wait_until("the probe client to be let go", WAIT, || (socket_count(shim) == 1).then_some(()));
    }
    (c, shim, target)
}
