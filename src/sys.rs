//! The syscall layer: every system call the shim makes goes through here or
//! through `sock`, so the rest of the crate is safe code over typed
//! descriptors (`OwnedFd` closes itself) and errors as values (`Errno`).
//!
//! The calls are rustix's (its `linux_raw` backend: raw system calls, no
//! C library state, so they are also safe to make in a child that has not
//! exec'd yet).
//! The C library (musl, linked statically) is kept only for what rustix
//! lacks or must not do here:
//!
//! | call | why libc |
//! |---|---|
//! | `signalfd` | rustix has no signalfd |
//! | `waitid(P_ALL)` | rustix's `WaitIdStatus` does not give the child's pid |
//! | `clone(CLONE_VFORK)`, `fork`, `execv`, `execvp` | process creation: rustix's are for programs without a C library |
//! | `clock_gettime` (as a raw `syscall`) | rustix would call the vDSO, which the daemon unmaps |
//! | `close_range` (as a raw `syscall`) | not in rustix |
//! | `sigprocmask`, `signal(SIGPIPE)` | the process-wide mask, set before the fork |
//! | `strerror`, `getenv`, `getcwd`, `environ` | the C library's message table and its environment |
//! | `_exit` | ends the process without running anything else |

use core::ffi::{c_char, c_int, CStr};

pub use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
pub use rustix::fs::{Mode, OFlags};
pub use rustix::io::Errno;

use rustix::event::epoll;

pub type Result<T> = core::result::Result<T, Errno>;

/// The C library's text for an error ("No such file or directory").
pub fn text(e: Errno) -> &'static [u8] {
    // SAFETY: strerror returns a pointer to a static, NUL-terminated string
    // (musl's table), valid for the life of the process.
    unsafe {
        let p = libc::strerror(e.raw_os_error());
        if p.is_null() {
            return b"unknown error";
        }
        CStr::from_ptr(p).to_bytes()
    }
}

/// The error of the last failed C library call.
pub fn last_errno() -> Errno {
    // SAFETY: __errno_location returns this thread's errno slot.
    Errno::from_raw_os_error(unsafe { *libc::__errno_location() })
}

/// A C return value as a Result (negative: errno).
fn cvt(r: c_int) -> Result<c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// Retry a call while it fails with EINTR.
#[inline]
pub fn retry<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

// ---- descriptors -----------------------------------------------------------

pub fn read(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    retry(|| rustix::io::read(fd.as_fd(), &mut *buf))
}

pub fn pread(fd: impl AsFd, buf: &mut [u8], at: u64) -> Result<usize> {
    retry(|| rustix::io::pread(fd.as_fd(), &mut *buf, at))
}

pub fn write(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    retry(|| rustix::io::write(fd.as_fd(), buf))
}

/// Write everything or fail. Meant for small records to files and pipes.
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> Result<()> {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        if n == 0 {
            return Err(Errno::IO);
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// The whole content of a small file just opened with O_TRUNC, without
/// keeping its page in the page cache (RWF_DONTCACHE, Linux 6.14+): written
/// back at once and dropped, instead of a page charged to the shim's memory
/// cgroup for as long as the kernel keeps it. A pidfile is read once in a
/// while, from disk then. Where the kernel or the file system does not do
/// it, a plain write.
pub fn write_small_file(fd: impl AsFd, buf: &[u8]) -> Result<()> {
    const RWF_DONTCACHE: u32 = 0x80;
    let fd = fd.as_fd();
    let flags = rustix::io::ReadWriteFlags::from_bits_retain(RWF_DONTCACHE);
    match retry(|| rustix::io::pwritev2(fd, &[rustix::io::IoSlice::new(buf)], 0, flags)) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(n) => {
            let mut at = n;
            while at < buf.len() {
                match retry(|| rustix::io::pwrite(fd, &buf[at..], at as u64))? {
                    0 => return Err(Errno::IO),
                    k => at += k,
                }
            }
            Ok(())
        }
        Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => write_all(fd, buf),
        Err(e) => Err(e),
    }
}

/// writev until everything is out, resuming after short writes (a regular
/// file gives one when the disk fills mid-write). On failure: how many
/// bytes did go out, and why the rest did not.
pub fn writev_all(fd: impl AsFd, mut iov: &mut [rustix::io::IoSlice<'_>]) -> core::result::Result<(), (usize, Errno)> {
    let fd = fd.as_fd();
    let mut total = 0usize;
    while !iov.is_empty() {
        let mut done = retry(|| rustix::io::writev(fd, iov)).map_err(|e| (total, e))?;
        if done == 0 {
            return Err((total, Errno::IO));
        }
        total += done;
        while let Some(first) = iov.first_mut() {
            let len = first.as_slice().len();
            if done >= len {
                done -= len;
                iov = &mut iov[1..];
            } else {
                first.advance(done);
                break;
            }
        }
    }
    Ok(())
}

/// Open with O_CLOEXEC always.
pub fn open(path: &CStr, flags: OFlags, mode: u32) -> Result<OwnedFd> {
    retry(|| rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::from_bits_truncate(mode)))
}

pub fn openat(dir: impl AsFd, path: &CStr, flags: OFlags, mode: u32) -> Result<OwnedFd> {
    retry(|| rustix::fs::openat(dir.as_fd(), path, flags | OFlags::CLOEXEC, Mode::from_bits_truncate(mode)))
}

/// A directory, for *at calls (O_PATH: no read access needed).
pub fn open_dir(path: &CStr) -> Result<OwnedFd> {
    open(path, OFlags::PATH | OFlags::DIRECTORY, 0)
}

/// The current working directory, for the relative names in *at calls.
pub fn cwd() -> BorrowedFd<'static> {
    rustix::fs::CWD
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
}

/// Resize a pipe (F_SETPIPE_SZ); fails while it holds more than fits.
pub fn set_pipe_size(fd: impl AsFd, bytes: usize) -> Result<()> {
    rustix::pipe::fcntl_setpipe_size(fd, bytes).map(|_| ())
}

pub fn set_nonblock(fd: impl AsFd) -> Result<()> {
    let fd = fd.as_fd();
    let fl = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, fl | OFlags::NONBLOCK)
}

pub fn set_cloexec(fd: impl AsFd, on: bool) -> Result<()> {
    let flags = if on { rustix::io::FdFlags::CLOEXEC } else { rustix::io::FdFlags::empty() };
    rustix::io::fcntl_setfd(fd, flags)
}

/// Whether a descriptor number is open.
pub fn is_open(fd: RawFd) -> bool {
    fd >= 0 && rustix::io::fcntl_getfd(borrow(fd)).is_ok()
}

/// A descriptor number the process inherited or was told about (not
/// negative). Borrowing it is sound for any such number: a closed one
/// gives EBADF.
pub fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    let fd = fd.max(0);
    // SAFETY: the syscalls made through it only see a number; a number
    // that is not open fails with EBADF, and nothing here closes it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Take ownership of an inherited descriptor number (the manager's pipes).
pub fn adopt(fd: RawFd) -> Option<OwnedFd> {
    if !is_open(fd) {
        return None;
    }
    // SAFETY: the number is open and nothing else in the process owns it:
    // it was inherited, and each is adopted once, by the launcher.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Make `fd` also descriptor number `to` (0, 1, 2 in a child).
pub fn dup_to(fd: impl AsFd, to: RawFd) -> Result<()> {
    let fd = fd.as_fd();
    if fd.as_raw_fd() == to {
        return set_cloexec(fd, false);
    }
    // SAFETY: `to` is a descriptor number we mean to replace; the
    // ManuallyDrop keeps the temporary OwnedFd from closing it.
    let mut target = core::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(to) });
    retry(|| rustix::io::dup2(fd, &mut target))
}

/// Make sure descriptors 0-2 are open (on /dev/null when they were not),
/// so no descriptor of ours lands there and is later replaced.
pub fn fill_stdio() {
    while let Ok(fd) = open(c"/dev/null", OFlags::RDWR, 0) {
        if fd.as_raw_fd() > 2 {
            return;
        }
        let _ = set_cloexec(&fd, false);
        // It stays open as 0, 1 or 2 for the life of the process.
        let _ = fd.into_raw_fd();
    }
}

/// Close an inherited descriptor number we do not own as an OwnedFd.
pub fn close_raw(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the caller names a number nothing else owns.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Close every descriptor from `first` up.
pub fn close_from(first: RawFd) {
    // SAFETY: close_range takes plain numbers; closing what nobody owns
    // any more is the point.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, !0u32, 0) };
    if r < 0 {
        // Kernels before 5.9: walk a bounded range.
        for fd in first..4096 {
            // SAFETY: as above, one number at a time.
            unsafe { libc::close(fd) };
        }
    }
}

/// Close every descriptor from `first` up, except those in `keep`
/// (negative entries are ignored).
pub fn close_from_except(first: RawFd, keep: &[RawFd]) {
    let mut from = first;
    loop {
        match keep.iter().copied().filter(|&k| k >= from).min() {
            Some(k) => {
                if k > from {
                    // SAFETY: as in close_from, for the range below `k`.
                    unsafe { libc::syscall(libc::SYS_close_range, from as libc::c_uint, (k - 1) as libc::c_uint, 0) };
                }
                from = k + 1;
            }
            None => return close_from(from),
        }
    }
}

/// Bytes waiting to be read (FIONREAD).
pub fn queued(fd: impl AsFd) -> Result<u64> {
    rustix::io::ioctl_fionread(fd)
}

// ---- files -----------------------------------------------------------------

pub fn fsync(fd: impl AsFd) -> Result<()> {
    retry(|| rustix::fs::fsync(fd.as_fd()))
}

pub fn file_size(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).map(|st| st.st_size as u64).unwrap_or(0)
}

/// Cut the last `bytes` off a file (a write that failed half-way).
pub fn truncate_tail(fd: impl AsFd, bytes: u64) {
    let fd = fd.as_fd();
    if let Ok(end) = rustix::fs::seek(fd, rustix::fs::SeekFrom::End(0)) {
        if end >= bytes {
            let _ = rustix::fs::ftruncate(fd, end - bytes);
        }
    }
}

pub fn rename(from: &CStr, to: &CStr) -> Result<()> {
    rustix::fs::rename(from, to)
}

/// Rename within one directory (`dir` may be `cwd()`).
pub fn renameat(dir: impl AsFd, from: &CStr, to: &CStr) -> Result<()> {
    let dir = dir.as_fd();
    rustix::fs::renameat(dir, from, dir, to)
}

/// The path the kernel has for an open descriptor (its symlinks and `..`
/// resolved), read from /proc/self/fd/N into `buf`.
pub fn fd_path(fd: impl AsFd, buf: &mut [u8]) -> Result<&[u8]> {
    let mut p: crate::buf::Buf<32> = crate::buf::Buf::new();
    p.push(b"/proc/self/fd/");
    p.push_u64(fd.as_fd().as_raw_fd() as u64);
    let path = p.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    let n = rustix::fs::readlinkat_raw(rustix::fs::CWD, path, &mut *buf)?;
    if n >= buf.len() {
        return Err(Errno::NAMETOOLONG);
    }
    Ok(&buf[..n])
}

/// Whether `name` exists in `dir` (a symbolic link is not followed).
pub fn present_at(dir: impl AsFd, name: &CStr) -> Result<bool> {
    match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Set a descriptor's file mode (a pipe's too).
pub fn fchmod(fd: impl AsFd, mode: u32) -> Result<()> {
    rustix::fs::fchmod(fd, Mode::from_bits_truncate(mode))
}

pub fn unlink(path: &CStr) -> Result<()> {
    rustix::fs::unlink(path)
}

/// A second name `to` for the file `from`, both in `dir`.
pub fn linkat(dir: impl AsFd, from: &CStr, to: &CStr) -> Result<()> {
    let dir = dir.as_fd();
    rustix::fs::linkat(dir, from, dir, to, rustix::fs::AtFlags::empty())
}

pub fn unlinkat(dir: impl AsFd, name: &CStr) -> Result<()> {
    rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty())
}

pub fn symlink(target: &CStr, link: &CStr) -> Result<()> {
    rustix::fs::symlink(target, link)
}

/// A FIFO `name` in `dir` with exactly `mode` (the umask is bypassed).
pub fn mkfifoat(dir: impl AsFd, name: &CStr, mode: u32) -> Result<()> {
    let dir = dir.as_fd();
    let m = Mode::from_bits_truncate(mode);
    rustix::fs::mknodat(dir, name, rustix::fs::FileType::Fifo, m, 0)?;
    // mknod's mode is filtered by the umask; set it exactly.
    rustix::fs::chmodat(dir, name, m, rustix::fs::AtFlags::empty())
}

pub fn chmodat(dir: impl AsFd, name: &CStr, mode: u32) -> Result<()> {
    rustix::fs::chmodat(dir, name, Mode::from_bits_truncate(mode), rustix::fs::AtFlags::empty())
}

pub fn exists(path: &CStr) -> Result<()> {
    rustix::fs::access(path, rustix::fs::Access::EXISTS)
}

pub fn executable(path: &CStr) -> Result<()> {
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK)
}

/// Set the umask, returning the old one.
pub fn umask(mask: u32) -> u32 {
    rustix::process::umask(Mode::from_bits_truncate(mask)).bits()
}

/// Read a small file whole (bounded by `buf`).
pub fn read_file<'b>(path: &CStr, buf: &'b mut [u8]) -> Result<&'b [u8]> {
    let fd = open(path, OFlags::RDONLY, 0)?;
    let mut n = 0;
    while n < buf.len() {
        match read(&fd, &mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(&buf[..n])
}

/// Write `data` to a new file at `path` through `PATH.tmp` and rename, so a
/// reader sees either nothing or the whole record.
pub fn write_file_atomic(path: &CStr, tmp: &mut crate::buf::PathBuf, data: &[u8], mode: u32) -> Result<()> {
    tmp.clear();
    if !tmp.push(path.to_bytes()) || !tmp.push(b".tmp") {
        return Err(Errno::NAMETOOLONG);
    }
    let tmp_path = tmp.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    let fd = open(tmp_path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, mode)?;
    let r = write_all(&fd, data).and_then(|_| fsync(&fd));
    drop(fd);
    if let Err(e) = r.and_then(|_| rename(tmp_path, path)) {
        let _ = unlink(tmp_path);
        return Err(e);
    }
    Ok(())
}

/// The working directory's path, in `buf`.
pub fn getcwd(buf: &mut [u8]) -> Option<&CStr> {
    // SAFETY: getcwd writes at most buf.len() bytes, NUL included.
    let p = unsafe { libc::getcwd(buf.as_mut_ptr() as *mut c_char, buf.len()) };
    if p.is_null() {
        return None;
    }
    CStr::from_bytes_until_nul(buf).ok()
}

/// An environment variable.
pub fn getenv(name: &CStr) -> Option<&'static CStr> {
    // SAFETY: getenv returns a pointer into `environ`, which the process
    // never modifies after start (the launcher's copy lives in .bss for
    // the life of the process).
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p))
        }
    }
}

/// Remove a variable from the environment. Only at the start, before any
/// `getenv` or `env_slot` (musl shifts the later entries of `environ`
/// down; the strings themselves stay where they are).
pub fn unsetenv(name: &CStr) {
    // SAFETY: a valid C string; single-threaded, nothing holds a slot.
    unsafe {
        libc::unsetenv(name.as_ptr());
    }
}

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// The slot of `NAME=...` in the environment, for a child to point at
/// another string before it execs (the parent puts the old one back).
pub fn env_slot(name: &[u8]) -> Option<*mut *mut c_char> {
    // SAFETY: `environ` is a NULL-terminated array of C strings that the
    // process does not change (see `getenv`); only reads here.
    unsafe {
        let env = environ;
        if env.is_null() {
            return None;
        }
        let mut i = 0;
        loop {
            let p = *env.add(i);
            if p.is_null() {
                return None;
            }
            let s = CStr::from_ptr(p).to_bytes();
            if s.len() > name.len() && s.starts_with(name) && s[name.len()] == b'=' {
                return Some(env.add(i));
            }
            i += 1;
        }
    }
}

// ---- memory ----------------------------------------------------------------

/// Hand pages back to the kernel (they read as zero when touched again).
/// `addr` and `len` are rounded inward to whole pages.
pub fn release(addr: usize, len: usize) {
    let lo = (addr + 4095) & !4095;
    let hi = (addr + len) & !4095;
    if hi > lo {
        // SAFETY: MADV_DONTNEED on private anonymous memory only zeroes
        // it; callers pass buffers whose contents are dead.
        let _ = unsafe { rustix::mm::madvise(lo as *mut _, hi - lo, rustix::mm::Advice::LinuxDontNeed) };
    }
}

/// Make whole pages inaccessible: a guard that faults instead of being
/// overwritten.
pub fn guard(addr: usize, len: usize) -> Result<()> {
    // SAFETY: the caller passes page-aligned memory that nothing uses.
    unsafe { rustix::mm::mprotect(addr as *mut _, len, rustix::mm::MprotectFlags::empty()) }
}

/// Unmap the mappings /proc/self/maps names `names` (`[vdso]`...). The
/// vDSO and its data pages sit in their own 2 MiB region, so their
/// page-table pages go with them; the daemon then calls clock_gettime
/// through the kernel (`now`).
pub fn drop_mappings(names: &[&[u8]]) {
    let mut found = [(0, 0); 4];
    let n = find_mappings(names, &mut found);
    unmap(&found[..n]);
}

/// The ranges of the mappings /proc/self/maps names `names`, at most as
/// many as `out` holds; returns how many.
pub fn find_mappings(names: &[&[u8]], out: &mut [(usize, usize)]) -> usize {
    let mut b = [0u8; 2048];
    let Ok(maps) = read_file(c"/proc/self/maps", &mut b) else { return 0 };
    let mut n = 0;
    for line in maps.split(|&c| c == b'\n') {
        if n == out.len() || !names.iter().any(|m| line.ends_with(m)) {
            continue;
        }
        let range = line.split(|&c| c == b' ').next().unwrap_or(b"");
        let mut ends = range.split(|&c| c == b'-');
        let (Some(lo), Some(hi)) = (ends.next().and_then(hex), ends.next().and_then(hex)) else { continue };
        if hi > lo {
            out[n] = (lo, hi);
            n += 1;
        }
    }
    n
}

/// Unmap the kernel's mappings `find_mappings` found (stack, vDSO).
pub fn unmap(ranges: &[(usize, usize)]) {
    for &(lo, hi) in ranges {
        // SAFETY: the mapping is the kernel's (stack, vDSO) and nothing
        // points into it any more (see `stack`).
        let _ = unsafe { rustix::mm::munmap(lo as *mut _, hi - lo) };
    }
}

fn hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0usize, |v, &c| Some(v * 16 + (c as char).to_digit(16)? as usize))
}

// ---- time ------------------------------------------------------------------

/// Wall-clock time, by the system call itself: the daemon has unmapped
/// the vDSO. One call per read from the container, not per line.
pub fn now() -> (i64, i64) {
    clock(libc::CLOCK_REALTIME)
}

/// Monotonic milliseconds, for deadlines.
pub fn monotonic_ms() -> u64 {
    let (s, ns) = clock(libc::CLOCK_MONOTONIC);
    s as u64 * 1000 + ns as u64 / 1_000_000
}

fn clock(id: libc::clockid_t) -> (i64, i64) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::syscall(libc::SYS_clock_gettime, id, &mut ts as *mut libc::timespec) };
    (ts.tv_sec, ts.tv_nsec)
}

pub fn sleep_ms(ms: u64) {
    let t = rustix::time::Timespec { tv_sec: (ms / 1000) as _, tv_nsec: ((ms % 1000) * 1_000_000) as _ };
    let _ = rustix::thread::clock_nanosleep_relative(rustix::time::ClockId::Monotonic, &t);
}

// ---- processes -------------------------------------------------------------

pub type Pid = i32;

pub fn getpid() -> Pid {
    rustix::process::getpid().as_raw_nonzero().get()
}

fn pid(p: Pid) -> Result<rustix::process::Pid> {
    rustix::process::Pid::from_raw(p).ok_or(Errno::SRCH)
}

fn signal(sig: c_int) -> Result<rustix::process::Signal> {
    if !(1..=64).contains(&sig) {
        return Err(Errno::INVAL);
    }
    // SAFETY: any number in 1..=64 is a signal the kernel knows (the
    // real-time ones included); the kernel checks the rest.
    Ok(unsafe { rustix::process::Signal::from_raw_unchecked(sig) })
}

pub fn kill(p: Pid, sig: c_int) -> Result<()> {
    rustix::process::kill_process(pid(p)?, signal(sig)?)
}

pub fn kill_group(pgid: Pid, sig: c_int) -> Result<()> {
    rustix::process::kill_process_group(pid(pgid)?, signal(sig)?)
}

pub fn getpgid(p: Pid) -> Option<Pid> {
    rustix::process::getpgid(Some(pid(p).ok()?)).ok().map(|g| g.as_raw_nonzero().get())
}

/// Own session, and every orphan of ours re-parented to us (so the
/// container, once the runtime exits, is reaped here).
pub fn detach() {
    let _ = rustix::process::setsid();
    set_subreaper(true);
}

pub fn set_subreaper(on: bool) {
    let me = if on { Some(rustix::process::getpid()) } else { None };
    let _ = rustix::process::set_child_subreaper(me);
}

/// Die with our parent (for the runtime's child).
pub fn die_with_parent() {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
}

pub fn getppid() -> Pid {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}

/// One exited child, reaped: (pid, si_code, si_status); None when no child
/// has exited (or there are none).
pub fn reap_one() -> Option<(Pid, i32, i32)> {
    // SAFETY: waitid writes one siginfo_t; zeroed is a valid one.
    unsafe {
        let mut si: libc::siginfo_t = core::mem::zeroed();
        let r = libc::waitid(libc::P_ALL, 0, &mut si, libc::WEXITED | libc::WNOHANG);
        let pid = si.si_pid();
        if r < 0 || pid == 0 {
            None
        } else {
            Some((pid, si.si_code, si.si_status()))
        }
    }
}

/// Whether `pid` is a child of ours, running or exited and not reaped yet
/// (waitid with WNOWAIT reaps nothing): one system call, and no /proc/PID
/// lookup, whose entries (when the shim is the first to look) stay charged
/// to the shim while the child lives.
pub fn is_child(pid: Pid) -> bool {
    use rustix::process::{WaitId, WaitIdOptions};
    let Some(p) = rustix::process::Pid::from_raw(pid) else { return false };
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    retry(|| rustix::process::waitid(WaitId::Pid(p), opts)).is_ok()
}

/// Wait (blocking) until `child` has exited, reaping whatever else ends
/// meanwhile.
pub fn wait_for(child: Pid) {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, _))) if p.as_raw_nonzero().get() == child => return,
            Err(Errno::INTR) | Ok(_) => continue,
            Err(_) => return,
        }
    }
}

/// fork(2). Ok(0) in the child.
pub fn fork() -> Result<Pid> {
    // SAFETY: the process has one thread; the child only makes system
    // calls and execs or exits.
    cvt(unsafe { libc::fork() })
}

/// Run `entry(arg)` in a child on `stack`, with us suspended until it has
/// exec'd or exited (CLONE_VFORK). The child gets a copy of our (small)
/// address space, not a share of it: on recent kernels (6.18 here) a
/// CLONE_VM child makes the kernel give our memory a private futex hash
/// (2 KiB, charged to the shim for its whole life); the copy costs some
/// 30 µs, once, and is gone when the child execs. Returns the child's pid.
///
/// # Safety
/// `entry` may only make raw system calls (no C library state: it is the
/// parent's) and must exec or `_exit`; `stack` is unused by anyone else.
pub unsafe fn spawn_vfork(
    entry: extern "C" fn(*mut core::ffi::c_void) -> c_int,
    stack: &mut [u8],
    arg: *mut core::ffi::c_void,
) -> Result<Pid> {
    let top = stack.as_mut_ptr().add(stack.len() & !15) as *mut core::ffi::c_void;
    let flags = libc::CLONE_VFORK | libc::SIGCHLD;
    cvt(libc::clone(entry, top, flags, arg))
}

/// exec a program (execvp when `prog` has no slash). Returns only on failure.
///
/// # Safety
/// `argv` is a NULL-terminated array of pointers to C strings.
pub unsafe fn exec(prog: &CStr, argv: *const *const c_char) -> Errno {
    if prog.to_bytes().contains(&b'/') {
        libc::execv(prog.as_ptr(), argv);
    } else {
        libc::execvp(prog.as_ptr(), argv);
    }
    last_errno()
}

/// exec `prog` (an absolute path) with `envp` as its whole environment.
/// Returns only on failure.
///
/// # Safety
/// `argv` and `envp` are NULL-terminated arrays of pointers to C strings.
pub unsafe fn exec_env(prog: &CStr, argv: *const *const c_char, envp: *const *const c_char) -> Errno {
    libc::execve(prog.as_ptr(), argv, envp);
    last_errno()
}

/// End the process now.
pub fn exit(code: c_int) -> ! {
    // SAFETY: _exit never returns and runs nothing of ours.
    unsafe { libc::_exit(code) }
}

/// In a child: an empty signal mask and SIGPIPE back to its default, with
/// raw system calls (the C library's wrappers keep state of their own).
pub fn reset_signals_raw() {
    let set: u64 = 0;
    // SAFETY: an all-zero sigaction is a valid one (no flags, empty mask);
    // both calls read one kernel-sized sigset / sigaction.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &set as *const u64,
            core::ptr::null_mut::<u64>(),
            8usize,
        );
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGPIPE,
            &dfl as *const libc::sigaction,
            core::ptr::null_mut::<libc::sigaction>(),
            8usize,
        );
    }
}

/// Block `sigs` process-wide (before the fork: the daemon inherits the
/// mask and reads them from its signalfd) and ignore SIGPIPE.
pub fn block_signals(sigs: &[c_int]) {
    // SAFETY: plain mask manipulation on a local sigset_t.
    unsafe {
        let mut mask: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut mask);
        for &s in sigs {
            libc::sigaddset(&mut mask, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &mask, core::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// A signalfd for `sigs` (already blocked), non-blocking.
pub fn signalfd(sigs: &[c_int]) -> Result<OwnedFd> {
    // SAFETY: a local sigset_t; signalfd returns a new descriptor we own.
    unsafe {
        let mut mask: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut mask);
        for &s in sigs {
            libc::sigaddset(&mut mask, s);
        }
        let fd = cvt(libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The next signal from a signalfd, if any.
pub fn next_signal(fd: impl AsFd) -> Option<c_int> {
    let mut si = [0u8; core::mem::size_of::<libc::signalfd_siginfo>()];
    match read(fd, &mut si) {
        Ok(n) if n == si.len() => Some(u32::from_ne_bytes([si[0], si[1], si[2], si[3]]) as c_int),
        _ => None,
    }
}

// ---- epoll -----------------------------------------------------------------

pub use rustix::event::epoll::{Event, EventFlags};

pub fn epoll_create() -> Result<OwnedFd> {
    epoll::create(epoll::CreateFlags::CLOEXEC)
}

pub fn epoll_add(ep: impl AsFd, fd: impl AsFd, data: u64, flags: EventFlags) -> Result<()> {
    epoll::add(ep, fd, epoll::EventData::new_u64(data), flags)
}

pub fn epoll_mod(ep: impl AsFd, fd: impl AsFd, data: u64, flags: EventFlags) -> Result<()> {
    epoll::modify(ep, fd, epoll::EventData::new_u64(data), flags)
}

pub fn epoll_del(ep: impl AsFd, fd: impl AsFd) {
    let _ = epoll::delete(ep, fd);
}

/// Wait up to `timeout_ms` (None: for ever); the events that came.
pub fn epoll_wait(ep: impl AsFd, evs: &mut [Event], timeout_ms: Option<u64>) -> &[Event] {
    let t = timeout_ms
        .map(|ms| rustix::time::Timespec { tv_sec: (ms / 1000) as _, tv_nsec: ((ms % 1000) * 1_000_000) as _ });
    match epoll::wait(ep, &mut *evs, t.as_ref()) {
        Ok(n) => &evs[..n],
        Err(_) => &evs[..0],
    }
}

/// One zero-timeout poll of `fds` for hang-ups: bit i set when fds[i] hung up.
pub fn hung_up(fds: &[Option<BorrowedFd<'_>>]) -> u64 {
    use rustix::event::{PollFd, PollFlags};
    let mut index = [0u8; 64];
    let mut p: [Option<PollFd<'_>>; 64] = [const { None }; 64];
    let mut n = 0;
    for (i, f) in fds.iter().enumerate().take(64) {
        if let Some(fd) = f {
            p[n] = Some(PollFd::from_borrowed_fd(*fd, PollFlags::empty()));
            index[n] = i as u8;
            n += 1;
        }
    }
    let mut list: [PollFd<'_>; 64] =
        core::array::from_fn(|i| p[i].take().unwrap_or_else(|| PollFd::from_borrowed_fd(cwd(), PollFlags::empty())));
    let t = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    if rustix::event::poll(&mut list[..n], Some(&t)).unwrap_or(0) == 0 {
        return 0;
    }
    let mut bits = 0;
    for (k, q) in list[..n].iter().enumerate() {
        if q.revents().intersects(PollFlags::HUP | PollFlags::ERR) {
            bits |= 1 << index[k];
        }
    }
    bits
}

// ---- terminals -------------------------------------------------------------

/// Translate `\n` to `\r\n` on output, as a terminal user expects.
pub fn tty_onlcr(fd: impl AsFd) {
    use rustix::termios::{tcgetattr, tcsetattr, OptionalActions, OutputModes};
    let fd = fd.as_fd();
    if let Ok(mut t) = tcgetattr(fd) {
        t.output_modes |= OutputModes::ONLCR | OutputModes::OPOST;
        let _ = tcsetattr(fd, OptionalActions::Now, &t);
    }
}

pub fn tty_resize(fd: impl AsFd, rows: u16, cols: u16) -> Result<()> {
    rustix::termios::tcsetwinsize(
        fd,
        rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 },
    )
}

pub fn tty_size(fd: impl AsFd) -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(fd).ok().map(|w| (w.ws_row, w.ws_col))
}

pub fn is_tty(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}

pub use rustix::termios::Termios;

pub fn tty_get(fd: impl AsFd) -> Option<Termios> {
    rustix::termios::tcgetattr(fd).ok()
}

pub fn tty_set(fd: impl AsFd, t: &Termios) {
    let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, t);
}

/// `t` in raw mode (as cfmakeraw), for the attach client.
pub fn tty_raw(t: &Termios) -> Termios {
    let mut r = t.clone();
    r.make_raw();
    r
}

// ---- oom score -------------------------------------------------------------

/// Write our own /proc/self/oom_score_adj; true when it took.
pub fn set_oom_score_adj(v: &[u8]) -> bool {
    match open(c"/proc/self/oom_score_adj", OFlags::WRONLY, 0) {
        Ok(fd) => write(&fd, v).is_ok(),
        Err(_) => false,
    }
}

/// The oom_score_adj the process had before `protect_from_oom`.
static mut OOM_BEFORE: ([u8; 12], usize) = ([0; 12], 0);

/// Survive the host's OOM killer before the container does (-1000),
/// remembering the value the shim was given, which its children get back
/// (conmon 2.2's way: they get what the manager gave the shim). True when
/// the protection took.
pub fn protect_from_oom() -> bool {
    let mut b = [0u8; 12];
    let n = read_file(c"/proc/self/oom_score_adj", &mut b).map(|v| crate::buf::trim(v).len()).unwrap_or(0);
    // SAFETY: written here, in the daemon before any child exists, and
    // only read afterwards (by children, before they exec).
    unsafe { *core::ptr::addr_of_mut!(OOM_BEFORE) = (b, n) };
    set_oom_score_adj(b"-1000")
}

/// In a child: the oom_score_adj the shim was given back (0 when unknown).
pub fn restore_oom_score_adj() {
    // SAFETY: see `protect_from_oom`: nothing writes it any more.
    let (b, n) = unsafe { *core::ptr::addr_of!(OOM_BEFORE) };
    set_oom_score_adj(if n > 0 { &b[..n] } else { b"0" });
}

// ---- eventfd ---------------------------------------------------------------

pub fn eventfd() -> Result<OwnedFd> {
    rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)
}
