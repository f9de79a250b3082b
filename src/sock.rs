//! Unix sockets by path, without the 108-byte `sun_path` limit: the
//! directory is opened with O_PATH and the socket is named through
//! `/proc/self/fd/<dirfd>/<name>`, so only the last component must be short.

use core::ffi::{c_int, CStr};

use crate::buf::Buf;
use crate::sys::{self, Errno};

/// A socket's place: its directory (kept open, for the final unlink) and
/// its name within it (borrowed from the full path).
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub dirfd: c_int,
    pub name: &'a CStr,
}

/// Split `path` at its last `/` and open the directory.
#[inline(never)]
pub fn place(path: &CStr) -> sys::Result<Place<'_>> {
    let b = path.to_bytes_with_nul();
    let slash = b.iter().rposition(|&c| c == b'/');
    let (dir, name) = match slash {
        Some(0) => (c"/", &b[1..]),
        Some(i) => {
            let mut d: Buf<{ libc::PATH_MAX as usize }> = Buf::new();
            d.push(&b[..i]);
            let fd = sys::open(d.as_cstr().ok_or(Errno(libc::ENAMETOOLONG))?, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            let name = CStr::from_bytes_with_nul(&b[i + 1..]).map_err(|_| Errno(libc::EINVAL))?;
            if name.is_empty() {
                sys::close(fd);
                return Err(Errno(libc::EINVAL));
            }
            return Ok(Place { dirfd: fd, name });
        }
        None => (c".", b),
    };
    let fd = sys::open(dir, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let name = CStr::from_bytes_with_nul(name).map_err(|_| Errno(libc::EINVAL))?;
    Ok(Place { dirfd: fd, name })
}

fn addr(p: &Place) -> sys::Result<(libc::sockaddr_un, libc::socklen_t)> {
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let mut s: Buf<108> = Buf::new();
    let ok = s.push(b"/proc/self/fd/") && s.push_u64(p.dirfd as u64) && s.push(b"/") && s.push(p.name.to_bytes());
    if !ok || s.len() >= a.sun_path.len() {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    for (d, &c) in a.sun_path.iter_mut().zip(s.as_bytes()) {
        *d = c as libc::c_char;
    }
    let len = core::mem::size_of::<libc::sa_family_t>() + s.len() + 1;
    Ok((a, len as libc::socklen_t))
}

/// A listening socket at `p`, replacing a stale one, with `mode`.
#[inline(never)]
pub fn listen(p: &Place, ty: c_int, backlog: c_int, mode: libc::mode_t) -> sys::Result<c_int> {
    let (a, len) = addr(p)?;
    unsafe { libc::unlinkat(p.dirfd, p.name.as_ptr(), 0) };
    let fd = unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // Created with no access for anyone but us, then set to `mode`: never
    // briefly wider than asked.
    let old = unsafe { libc::umask(0o077) };
    let r = unsafe { libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) };
    unsafe { libc::umask(old) };
    let r = sys::cvt(r)
        .and_then(|_| sys::cvt(unsafe { libc::fchmodat(p.dirfd, p.name.as_ptr(), mode, 0) }))
        .and_then(|_| sys::cvt(unsafe { libc::listen(fd, backlog) }));
    sys::keep_or_close(fd, r)
}

pub fn connect(path: &CStr, ty: c_int) -> sys::Result<c_int> {
    let p = place(path)?;
    let r = addr(&p).and_then(|(a, len)| {
        let fd = sys::cvt(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
        let r = sys::retry(|| sys::cvt(unsafe { libc::connect(fd, &a as *const _ as *const libc::sockaddr, len) }));
        sys::keep_or_close(fd, r)
    });
    sys::close(p.dirfd);
    r
}

pub fn remove(p: &Place) {
    unsafe { libc::unlinkat(p.dirfd, p.name.as_ptr(), 0) };
}

/// Receive one descriptor passed with SCM_RIGHTS (the runtime sends the
/// pty master this way). Ok(None) when nothing has arrived yet; extra
/// descriptors are closed.
#[inline(never)]
pub fn recv_fd(conn: c_int) -> sys::Result<Option<c_int>> {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr() as *mut _, iov_len: data.len() };
    // Room for a few descriptors; CMSG_SPACE(4 * 4) is 32.
    let mut ctl = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.as_mut_ptr() as *mut _;
    msg.msg_controllen = core::mem::size_of_val(&ctl) as _;
    let n = unsafe { libc::recvmsg(conn, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = Errno::last();
        return if e.0 == libc::EAGAIN || e.0 == libc::EINTR { Ok(None) } else { Err(e) };
    }
    let mut got = None;
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const c_int;
                for i in 0..n {
                    let fd = core::ptr::read_unaligned(p.add(i));
                    if got.is_none() { got = Some(fd) } else { sys::close(fd) }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    match got {
        Some(fd) => Ok(Some(fd)),
        None if n == 0 => Err(Errno(libc::ECONNRESET)),
        None => Err(Errno(libc::EBADMSG)),
    }
}
