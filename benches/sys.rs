//! Thin wrappers over the few Linux calls the benchmark needs: a child
//! reaper (the bench is a child subreaper, so the shims' daemons and the
//! no-shim containers become its children), pidfd waits, pipes with
//! deadlines, inotify waits and signal handling.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exit of a reaped child: exit code or signal, and the CPU time
/// (user+system) of the child and of the descendants it reaped itself.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu: Duration,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (_, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown exit".into(),
        }
    }
    fn from_status(st: i32, cpu: Duration) -> Exit {
        if libc::WIFEXITED(st) {
            Exit { code: Some(libc::WEXITSTATUS(st)), signal: None, cpu }
        } else if libc::WIFSIGNALED(st) {
            Exit { code: None, signal: Some(libc::WTERMSIG(st)), cpu }
        } else {
            Exit { code: None, signal: None, cpu }
        }
    }
}

pub enum Waited {
    /// Reaped by us (a child, or an orphan reparented to us).
    Exited(Exit),
    /// The process is gone but was not ours to reap.
    Gone,
    Timeout,
}

/// Exits reaped by `reap_all` before anyone waited for them, by pid. Only
/// looked up for a process whose pidfd already says it exited, so an entry
/// left by an earlier process with a reused pid is overwritten first.
static REAPED: Mutex<BTreeMap<i32, Exit>> = Mutex::new(BTreeMap::new());
static STOP: AtomicBool = AtomicBool::new(false);
static PROBLEMS: AtomicUsize = AtomicUsize::new(0);

/// A clean-up problem: printed, and counted for the summary at the end.
pub fn problem(msg: &str) {
    PROBLEMS.fetch_add(1, Ordering::SeqCst);
    eprintln!("warning: {msg}");
}

pub fn problems() -> usize {
    PROBLEMS.load(Ordering::SeqCst)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Reap every child that has exited (orphans reparented to the bench
/// included), keeping the statuses for `Proc::wait`.
pub fn reap_all() {
    loop {
        let mut st = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(-1, &mut st, libc::WNOHANG, &mut ru) };
        if r <= 0 {
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        REAPED.lock().unwrap().insert(r, Exit::from_status(st, tv(ru.ru_utime) + tv(ru.ru_stime)));
    }
}

/// Forget the statuses of reaped processes nobody waited for.
pub fn forget_reaped() -> usize {
    let mut m = REAPED.lock().unwrap();
    let n = m.len();
    m.clear();
    n
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

const P_PIDFD: libc::c_int = 3;

/// A process held by a pidfd: signals and waits reach that process even
/// after its pid is reused (runc's threads make pids wrap quickly at scale).
pub struct Proc {
    pub pid: i32,
    fd: OwnedFd,
}

impl Proc {
    /// Open a pidfd; for a child before it is reaped, or a process known
    /// to be alive.
    pub fn open(pid: i32) -> io::Result<Proc> {
        if pid <= 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(Proc { pid, fd: pidfd_open(pid)? })
    }

    pub fn alive(&self) -> bool {
        !poll_in(self.fd.as_raw_fd(), Instant::now()).unwrap_or(true)
    }

    pub fn kill(&self, sig: i32) -> bool {
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
                == 0
        }
    }

    /// Wait for the process to exit, and reap it when it is ours.
    pub fn wait(&self, timeout: Duration) -> Waited {
        match poll_in(self.fd.as_raw_fd(), Instant::now() + timeout) {
            Ok(true) => {}
            _ => return Waited::Timeout,
        }
        // Exited: reap exactly this process if it is our child.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            let r = unsafe {
                libc::syscall(
                    libc::SYS_waitid,
                    P_PIDFD,
                    self.fd.as_raw_fd(),
                    &mut info as *mut libc::siginfo_t,
                    libc::WEXITED,
                    &mut ru as *mut libc::rusage,
                )
            };
            if r == 0 {
                let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
                let status = unsafe { info.si_status() };
                return Waited::Exited(match info.si_code {
                    libc::CLD_EXITED => Exit { code: Some(status), signal: None, cpu },
                    _ => Exit { code: None, signal: Some(status), cpu },
                });
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break,
            }
        }
        // Not our child, or reaped already by reap_all.
        reap_all();
        REAPED.lock().unwrap().remove(&self.pid).map(Waited::Exited).unwrap_or(Waited::Gone)
    }

    /// SIGKILL and reap, for clean-up paths.
    pub fn kill_wait(&self) {
        self.kill(libc::SIGKILL);
        self.wait(Duration::from_secs(10));
    }
}

/// poll() one fd for input until the deadline; true when readable (or hung up).
pub fn poll_in(fd: RawFd, deadline: Instant) -> io::Result<bool> {
    loop {
        let now = Instant::now();
        let ms = if deadline > now {
            let d = deadline - now;
            (d.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32
        } else {
            0
        };
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            if stopped() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            continue;
        }
        return Err(e);
    }
}

/// A pipe, both ends close-on-exec, both numbered above 9 so that a child
/// can dup2 its end onto a small fixed number without clobbering.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(r)?, high(w)?))
}

fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Read one line (up to '\n', EOF or the deadline) from a pipe.
/// Returns the line without the newline; `Ok(None)` on timeout.
pub fn read_line(fd: &OwnedFd, deadline: Instant) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if !poll_in(fd.as_raw_fd(), deadline)? {
            return Ok(None);
        }
        let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        buf.extend_from_slice(&chunk[..n as usize]);
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(i);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
    }
}

/// Watches a directory for a file to appear (inotify, so that the time it
/// appears is seen at once without polling).
pub struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirWatch { fd })
    }

    /// Wait until `path` exists; false on timeout.
    pub fn wait_for(&self, path: &Path, deadline: Instant) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            if path.exists() {
                return Ok(true);
            }
            if !poll_in(self.fd.as_raw_fd(), deadline)? {
                return Ok(path.exists());
            }
            // Drain the events; we only re-check the path.
            while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM/SIGHUP only set a flag: the bench then stops at the next
/// check and cleans up what it started.
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0; // no SA_RESTART: blocking calls return EINTR
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

pub fn check_stop() -> Result<(), String> {
    if stopped() {
        Err("interrupted by a signal".into())
    } else {
        Ok(())
    }
}

/// Sleep, waking early when a stop signal arrives.
pub fn sleep(d: Duration) {
    let end = Instant::now() + d;
    while !stopped() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// Mark every descriptor from 3 up close-on-exec.
pub fn cloexec_inherited() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
}

pub fn set_subreaper() -> io::Result<()> {
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub fn cstring(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path with NUL")
}
