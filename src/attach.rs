//! Attach clients: a SOCK_SEQPACKET socket where each output record is one
//! stream byte (2 stdout, 3 stderr) followed by up to 8192 bytes, sent to
//! every client; what clients send is raw input for the container.
//!
//! Two promises, both kept by never blocking on a client:
//! - a slow or stuck client never holds up the container or the log: a
//!   record that does not fit in a client's socket buffer disconnects that
//!   client (it can attach again; the log is complete). A client that saw
//!   a gap would show a corrupt screen, so dropping records is not offered.
//! - a container that does not read its stdin never makes the shim buffer
//!   without bound: input waits in one 32 KiB buffer, and while it waits no
//!   client is read (the kernel's socket buffers then push back on them).

use core::ffi::c_int;
use core::ptr::addr_of_mut;

use crate::sys::{self, Errno};

/// At most this many clients at once; the next is accepted and closed.
pub const MAX_CLIENTS: usize = 64;
/// Output record payload (conmon's size; clients read 8193 bytes).
pub const RECORD: usize = 8192;
/// Largest input record (podman sends up to 32 KiB at a time); a smaller
/// buffer would silently truncate SEQPACKET records.
pub const IN_SIZE: usize = 32 * 1024;

pub const STREAM_STDOUT: u8 = 2;
pub const STREAM_STDERR: u8 = 3;

#[repr(C, align(4096))]
struct InBuf([u8; IN_SIZE]);
static mut INBUF: InBuf = InBuf([0; IN_SIZE]);

pub fn inbuf() -> &'static mut [u8; IN_SIZE] {
    unsafe { &mut (*addr_of_mut!(INBUF)).0 }
}

pub fn release_inbuf() {
    unsafe { libc::madvise(addr_of_mut!(INBUF) as *mut libc::c_void, IN_SIZE, libc::MADV_DONTNEED) };
}

pub struct Clients {
    fds: [c_int; MAX_CLIENTS],
    /// Bit i: client i has sent end-of-file (it still gets output).
    eof: u64,
    /// Bit i: client i's peer has left; its queued input is still to be
    /// read (it may hold the last of the container's stdin), then it goes.
    gone: u64,
}

impl Clients {
    pub const fn new() -> Self {
        Clients { fds: [-1; MAX_CLIENTS], eof: 0, gone: 0 }
    }

    pub fn add(&mut self, fd: c_int) -> Option<usize> {
        let i = self.fds.iter().position(|&f| f < 0)?;
        self.fds[i] = fd;
        self.eof &= !(1 << i);
        self.gone &= !(1 << i);
        Some(i)
    }

    pub fn fd(&self, i: usize) -> c_int {
        self.fds.get(i).copied().unwrap_or(-1)
    }

    pub fn count(&self) -> usize {
        self.fds.iter().filter(|&&f| f >= 0).count()
    }

    pub fn set_eof(&mut self, i: usize) {
        self.eof |= 1 << i;
    }

    pub fn is_eof(&self, i: usize) -> bool {
        self.eof & (1 << i) != 0
    }

    pub fn set_gone(&mut self, i: usize) {
        self.gone |= 1 << i;
    }

    pub fn is_gone(&self, i: usize) -> bool {
        self.gone & (1 << i) != 0
    }

    /// Clients whose peer left with input still to read.
    pub fn gone_with_input(&self) -> u64 {
        self.gone & !self.eof
    }

    /// Forget client `i`, returning its descriptor for the caller to close.
    pub fn take(&mut self, i: usize) -> c_int {
        let fd = self.fd(i);
        if i < MAX_CLIENTS {
            self.fds[i] = -1;
        }
        fd
    }

    pub fn live(&self) -> impl Iterator<Item = (usize, c_int)> + '_ {
        self.fds.iter().copied().enumerate().filter(|&(_, f)| f >= 0)
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

/// How far a client may fall behind before it counts as stuck: the kernel
/// holds this much of its unread output (not shimlet's memory, and only
/// while it lags). A reader that is merely busy for a moment (podman
/// copying a burst to its own stdout) is not cut off; one that stops
/// reading is, once this is full, and the container never waits for it.
pub const CLIENT_SLACK: c_int = 2 << 20;

/// Raise a client socket's send buffer to CLIENT_SLACK (forced past
/// wmem_max when privileged).
pub fn give_slack(fd: c_int) {
    let v = CLIENT_SLACK;
    let set = |opt| unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, &v as *const c_int as *const _, 4) };
    if set(libc::SO_SNDBUFFORCE) < 0 {
        set(libc::SO_SNDBUF);
    }
}

/// Send one record to one client without waiting. Err means the client is
/// gone or full and must be dropped.
pub fn send_record(fd: c_int, stream: u8, data: &[u8]) -> sys::Result<()> {
    let head = [stream];
    let mut iov = [
        libc::iovec { iov_base: head.as_ptr() as *mut _, iov_len: 1 },
        libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len().min(RECORD) },
    ];
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 2;
    let r = sys::retry(|| {
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if r < 0 { Err(Errno::last()) } else { Ok(r) }
    })?;
    if r as usize == 1 + iov[1].iov_len { Ok(()) } else { Err(Errno(libc::EMSGSIZE)) }
}

/// Input waiting for the container to read it: a window into INBUF.
#[derive(Default)]
pub struct Pending {
    pub off: usize,
    pub len: usize,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Write what can be written to `fd` now; true when all is out.
    /// A dead target (EPIPE, EIO) drops the input: nobody will read it.
    pub fn flush(&mut self, fd: c_int) -> bool {
        while self.len > 0 {
            let buf = inbuf();
            match sys::write(fd, &buf[self.off..self.off + self.len]) {
                Ok(n) => {
                    self.off += n;
                    self.len -= n;
                }
                Err(Errno(libc::EAGAIN)) => return false,
                Err(_) => self.len = 0,
            }
        }
        self.off = 0;
        true
    }
}
