//! Unix sockets: by path without the 108-byte `sun_path` limit (the
//! directory is opened with O_PATH and the socket is named through
//! `/proc/self/fd/<dirfd>/<name>`, so only the last component must be
//! short), datagrams and records without waiting, and descriptors passed
//! with SCM_RIGHTS.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use rustix::io::{IoSlice, IoSliceMut};
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::buf::Buf;
use crate::sys::{self, AsFd, BorrowedFd, Errno, OFlags, OwnedFd};

pub use rustix::net::SocketType as Type;
pub const STREAM: SocketType = SocketType::STREAM;
pub const SEQPACKET: SocketType = SocketType::SEQPACKET;
pub const DGRAM: SocketType = SocketType::DGRAM;

/// A socket's (or FIFO's) place: its directory, kept open for the final
/// unlink, and its name within it (borrowed from the full path).
pub struct Place<'a> {
    pub dir: OwnedFd,
    pub name: &'a CStr,
}

impl<'a> Place<'a> {
    /// Split `path` at its last `/` and open the directory.
    #[inline(never)]
    pub fn of(path: &'a CStr) -> sys::Result<Place<'a>> {
        let b = path.to_bytes_with_nul();
        let (dir, name) = match b.iter().rposition(|&c| c == b'/') {
            Some(0) => (sys::open_dir(c"/")?, &b[1..]),
            Some(i) => {
                let mut d: Buf<{ crate::buf::PATH_MAX }> = Buf::new();
                d.push(&b[..i]);
                (sys::open_dir(d.as_cstr().ok_or(Errno::NAMETOOLONG)?)?, &b[i + 1..])
            }
            None => (sys::open_dir(c".")?, b),
        };
        let name = CStr::from_bytes_with_nul(name).map_err(|_| Errno::INVAL)?;
        if name.is_empty() {
            return Err(Errno::INVAL);
        }
        Ok(Place { dir, name })
    }

    /// `name` inside an already open directory (a duplicate of `dir`).
    pub fn within(dir: BorrowedFd<'_>, name: &'a CStr) -> sys::Result<Place<'a>> {
        Ok(Place { dir: dir.try_clone_to_owned()?, name })
    }

    /// Remove what is at the place (a socket or FIFO we made).
    pub fn remove(&self) {
        let _ = sys::unlinkat(&self.dir, self.name);
    }

    /// The sibling `name` in the same directory.
    pub fn sibling(&self, name: &'a CStr) -> sys::Result<Place<'a>> {
        Place::within(self.dir.as_fd(), name)
    }

    fn addr(&self) -> sys::Result<SocketAddrUnix> {
        addr_at(self.dir.as_fd(), self.name)
    }
}

/// The address of `name` in the directory `dir`, by /proc/self/fd.
fn addr_at(dir: BorrowedFd<'_>, name: &CStr) -> sys::Result<SocketAddrUnix> {
    let mut s: Buf<108> = Buf::new();
    let ok = s.push(b"/proc/self/fd/")
        && s.push_u64(rustix::fd::AsRawFd::as_raw_fd(&dir) as u64)
        && s.push(b"/")
        && s.push(name.to_bytes());
    if !ok || s.len() >= 107 {
        return Err(Errno::NAMETOOLONG);
    }
    SocketAddrUnix::new(s.as_cstr().ok_or(Errno::NAMETOOLONG)?)
}

fn socket(ty: SocketType, nonblock: bool) -> sys::Result<OwnedFd> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblock {
        flags |= SocketFlags::NONBLOCK;
    }
    net::socket_with(AddressFamily::UNIX, ty, flags, None)
}

/// A listening socket at `p`, replacing a stale one, with `mode`: created
/// with no access for anyone but us, then set to `mode`, so it is never
/// briefly wider than asked.
pub fn listen(p: &Place, ty: SocketType, backlog: i32, mode: u32) -> sys::Result<OwnedFd> {
    listen_at(p.dir.as_fd(), p.name, ty, backlog, mode)
}

/// `listen` for `name` in the directory `dir`.
#[inline(never)]
pub fn listen_at(dir: BorrowedFd<'_>, name: &CStr, ty: SocketType, backlog: i32, mode: u32) -> sys::Result<OwnedFd> {
    let a = addr_at(dir, name)?;
    let _ = sys::unlinkat(dir, name);
    let fd = socket(ty, true)?;
    let old = sys::umask(0o077);
    let r = net::bind(&fd, &a);
    sys::umask(old);
    r?;
    sys::chmodat(dir, name, mode)?;
    net::listen(&fd, backlog)?;
    Ok(fd)
}

/// A datagram socket bound at `name` in `dir` (replacing a stale one),
/// non-blocking, then given `mode`.
#[inline(never)]
pub fn bind_dgram_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> sys::Result<OwnedFd> {
    let a = addr_at(dir, name)?;
    let _ = sys::unlinkat(dir, name);
    let fd = socket(DGRAM, true)?;
    let old = sys::umask(0o077);
    let r = net::bind(&fd, &a);
    sys::umask(old);
    r?;
    sys::chmodat(dir, name, mode)?;
    Ok(fd)
}

/// A datagram socket that sends to addresses (`send_to`).
pub fn dgram() -> sys::Result<OwnedFd> {
    socket(DGRAM, true)
}

/// One datagram to the socket at `path`, without waiting or SIGPIPE.
pub fn send_to(fd: impl AsFd, path: &CStr, data: &[u8]) -> sys::Result<usize> {
    let a = SocketAddrUnix::new(path)?;
    sys::retry(|| net::sendto(fd.as_fd(), data, SendFlags::DONTWAIT | SendFlags::NOSIGNAL, &a))
}

/// A blocking connection to the socket at `path`.
pub fn connect(path: &CStr, ty: SocketType) -> sys::Result<OwnedFd> {
    let p = Place::of(path)?;
    let a = p.addr()?;
    let fd = socket(ty, false)?;
    sys::retry(|| net::connect(&fd, &a))?;
    Ok(fd)
}

/// A non-blocking datagram socket connected to `path` (journald, syslog).
pub fn connect_dgram(path: &CStr) -> sys::Result<OwnedFd> {
    let a = SocketAddrUnix::new(path)?;
    let fd = socket(DGRAM, true)?;
    net::connect(&fd, &a)?;
    Ok(fd)
}

/// Accept one connection, non-blocking and close-on-exec; None when
/// nobody is waiting.
pub fn accept(listen: impl AsFd) -> Option<OwnedFd> {
    net::accept_with(listen, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK).ok()
}

/// Send without waiting and without SIGPIPE.
pub fn send(fd: impl AsFd, data: &[u8]) -> sys::Result<usize> {
    sys::retry(|| net::send(fd.as_fd(), data, SendFlags::DONTWAIT | SendFlags::NOSIGNAL))
}

/// Send the pieces as one message (one record on SEQPACKET, one datagram).
pub fn send_parts(fd: impl AsFd, parts: &[&[u8]]) -> sys::Result<usize> {
    let mut iov: [IoSlice<'_>; 8] = core::array::from_fn(|_| IoSlice::new(&[]));
    let n = parts.len().min(iov.len());
    for (v, p) in iov.iter_mut().zip(&parts[..n]) {
        *v = IoSlice::new(p);
    }
    let mut no_ctl = SendAncillaryBuffer::new(&mut []);
    sys::retry(|| net::sendmsg(fd.as_fd(), &iov[..n], &mut no_ctl, SendFlags::DONTWAIT | SendFlags::NOSIGNAL))
}

/// Receive without waiting. Ok(0) is the peer's end (or an empty record).
pub fn recv(fd: impl AsFd, buf: &mut [u8]) -> sys::Result<usize> {
    sys::retry(|| net::recv(fd.as_fd(), &mut *buf, RecvFlags::DONTWAIT)).map(|(n, _)| n)
}

/// Half-close: no more sending.
pub fn shutdown_write(fd: impl AsFd) {
    let _ = net::shutdown(fd, net::Shutdown::Write);
}

/// Let the kernel hold up to `bytes` of unread output for this peer
/// (forced past wmem_max when privileged).
pub fn set_send_buffer(fd: impl AsFd, bytes: usize) {
    let fd = fd.as_fd();
    if net::sockopt::set_socket_send_buffer_size_force(fd, bytes).is_err() {
        let _ = net::sockopt::set_socket_send_buffer_size(fd, bytes);
    }
}

/// The peer's uid.
pub fn peer_uid(fd: impl AsFd) -> Option<u32> {
    net::sockopt::socket_peercred(fd).ok().map(|c| c.uid.as_raw())
}

/// Receive one descriptor passed with SCM_RIGHTS (the runtime sends the
/// pty master this way). Ok(None) when nothing has arrived yet; extra
/// descriptors are closed (dropped).
#[inline(never)]
pub fn recv_fd(conn: impl AsFd) -> sys::Result<Option<OwnedFd>> {
    let mut data = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut space = [MaybeUninit::<u8>::uninit(); 64];
    let mut ctl = RecvAncillaryBuffer::new(&mut space);
    let r = net::recvmsg(conn, &mut iov, &mut ctl, RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT);
    let n = match r {
        Ok(m) => m.bytes,
        Err(Errno::AGAIN | Errno::INTR) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut got = None;
    for msg in ctl.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for fd in fds {
                if got.is_none() {
                    got = Some(fd);
                }
            }
        }
    }
    match got {
        Some(fd) => Ok(Some(fd)),
        None if n == 0 => Err(Errno::CONNRESET),
        None => Err(Errno::BADMSG),
    }
}

/// Send `fd` over `conn` with one byte of data.
pub fn send_fd(conn: impl AsFd, fd: BorrowedFd<'_>) -> sys::Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::<u8>::uninit(); 64];
    let mut ctl = SendAncillaryBuffer::new(&mut space);
    if !ctl.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Errno::NOBUFS);
    }
    net::sendmsg(conn, &[IoSlice::new(b"x")], &mut ctl, SendFlags::NOSIGNAL).map(|_| ())
}

/// Open a FIFO at a place (non-blocking).
pub fn open_fifo(p: &Place, flags: OFlags) -> sys::Result<OwnedFd> {
    sys::openat(&p.dir, p.name, flags | OFlags::NONBLOCK, 0)
}
