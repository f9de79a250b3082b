//! Thin syscall wrappers: every failure is an `Errno` value, never a panic.
//! Nothing here allocates; paths are `&CStr` borrowed from argv or from a
//! fixed `PathBuf`.

use core::ffi::{c_int, c_void, CStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub c_int);

pub type Result<T> = core::result::Result<T, Errno>;

impl Errno {
    pub fn last() -> Errno {
        Errno(unsafe { *libc::__errno_location() })
    }
    /// The C library's text for this error ("No such file or directory").
    pub fn text(self) -> &'static [u8] {
        unsafe {
            let p = libc::strerror(self.0);
            if p.is_null() {
                return b"unknown error";
            }
            CStr::from_ptr(p).to_bytes()
        }
    }
}

/// A C return value as a Result (negative: errno).
#[inline]
pub fn cvt(r: c_int) -> Result<c_int> {
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

/// `fd` when `r` is Ok; otherwise close `fd` and pass the error on.
pub fn keep_or_close<T>(fd: c_int, r: Result<T>) -> Result<c_int> {
    match r {
        Ok(_) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

#[inline]
fn cvt_size(r: isize) -> Result<usize> {
    if r < 0 { Err(Errno::last()) } else { Ok(r as usize) }
}

/// Retry a call while it fails with EINTR.
#[inline]
pub fn retry<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Errno(libc::EINTR)) => continue,
            r => return r,
        }
    }
}

pub fn read(fd: c_int, buf: &mut [u8]) -> Result<usize> {
    retry(|| cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr() as *mut c_void, buf.len()) }))
}

pub fn write(fd: c_int, buf: &[u8]) -> Result<usize> {
    retry(|| cvt_size(unsafe { libc::write(fd, buf.as_ptr() as *const c_void, buf.len()) }))
}

/// Write everything or fail. Meant for small records to files and pipes.
pub fn write_all(fd: c_int, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        buf = &buf[n..];
    }
    Ok(())
}

pub fn close(fd: c_int) {
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
}

pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int> {
    retry(|| cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) }))
}

pub fn pipe() -> Result<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

pub fn set_nonblock(fd: c_int) -> Result<()> {
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(|_| ())
}

pub fn set_cloexec(fd: c_int) -> Result<()> {
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, fl | libc::FD_CLOEXEC) }).map(|_| ())
}

pub fn dup2(from: c_int, to: c_int) -> Result<()> {
    retry(|| cvt(unsafe { libc::dup2(from, to) })).map(|_| ())
}

pub fn fsync(fd: c_int) -> Result<()> {
    retry(|| cvt(unsafe { libc::fsync(fd) })).map(|_| ())
}

pub fn rename(from: &CStr, to: &CStr) -> Result<()> {
    cvt(unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(|_| ())
}

pub fn unlink(path: &CStr) -> Result<()> {
    cvt(unsafe { libc::unlink(path.as_ptr()) }).map(|_| ())
}

pub fn getpid() -> libc::pid_t {
    unsafe { libc::getpid() }
}

pub fn kill(pid: libc::pid_t, sig: c_int) -> Result<()> {
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// Close every descriptor from `first` up.
pub fn close_from(first: c_int) {
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, !0u32, 0) };
    if r < 0 {
        // Kernels before 5.9: walk a bounded range.
        for fd in first..4096 {
            close(fd);
        }
    }
}

/// Close every descriptor from `first` up, except those in `keep`
/// (negative entries are ignored).
pub fn close_from_except(first: c_int, keep: &[c_int]) {
    let mut from = first;
    loop {
        // The lowest kept descriptor at or above `from`.
        match keep.iter().copied().filter(|&k| k >= from).min() {
            Some(k) => {
                if k > from {
                    unsafe { libc::syscall(libc::SYS_close_range, from as libc::c_uint, (k - 1) as libc::c_uint, 0) };
                }
                from = k + 1;
            }
            None => {
                close_from(from);
                return;
            }
        }
    }
}

/// Current wall-clock time, by the system call itself: the daemon unmaps
/// the vDSO (see `drop_mappings` and `restack`), so the C library's fast path must not be
/// used. One call per read from the container, not per line.
pub fn now() -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_REALTIME, &mut ts as *mut libc::timespec) };
    ts
}

/// Unmap the mappings /proc/self/maps names `names` (`[vdso]`...). The
/// vDSO and its data pages sit in their own 2 MiB region, so their
/// page-table pages go with them; the daemon calls clock_gettime through
/// the kernel instead (`now`).
pub fn drop_mappings(names: &[&[u8]]) {
    let Ok(fd) = open(c"/proc/self/maps", libc::O_RDONLY, 0) else { return };
    let mut b = [0u8; 2048];
    let mut n = 0;
    while n < b.len() {
        match read(fd, &mut b[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    close(fd);
    for line in b[..n].split(|&c| c == b'\n') {
        if !names.iter().any(|n| line.ends_with(n)) {
            continue;
        }
        let range = line.split(|&c| c == b' ').next().unwrap_or(b"");
        let mut ends = range.split(|&c| c == b'-');
        let (Some(lo), Some(hi)) = (ends.next().and_then(hex), ends.next().and_then(hex)) else { continue };
        if hi > lo {
            unsafe { libc::munmap(lo as *mut libc::c_void, hi - lo) };
        }
    }
}

fn hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0usize, |v, &c| Some(v * 16 + (c as char).to_digit(16)? as usize))
}

/// Write `data` to a new file at `path` through `PATH.tmp` and rename, so a
/// reader sees either nothing or the whole record.
pub fn write_file_atomic(path: &CStr, tmp: &mut crate::buf::PathBuf, data: &[u8], mode: libc::mode_t) -> Result<()> {
    tmp.clear();
    if !tmp.push(path.to_bytes()) || !tmp.push(b".tmp") {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    let tmp_path = tmp.as_cstr().ok_or(Errno(libc::ENAMETOOLONG))?;
    let fd = open(tmp_path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, mode)?;
    let r = write_all(fd, data).and_then(|_| fsync(fd));
    close(fd);
    if let Err(e) = r.and_then(|_| rename(tmp_path, path)) {
        let _ = unlink(tmp_path);
        return Err(e);
    }
    Ok(())
}
