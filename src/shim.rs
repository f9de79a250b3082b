//! The shim daemon: after the launcher forks it, it owns the container.
//!
//! One epoll loop over a signalfd and the container's stdout/stderr pipes.
//! Each epoll entry's 64-bit data packs (kind << 32 | fd), so dispatch is a
//! match, not a lookup. States, in order:
//!
//! | state    | leaves when                    | signals (TERM, INT, ...) |
//! |----------|--------------------------------|--------------------------|
//! | creating | the runtime is reaped          | held, sent once pid known|
//! | running  | the container is reaped        | forwarded                |
//! | finished | output drained, records written| -                        |

use core::ffi::{c_int, CStr};
use core::ptr::addr_of_mut;

use crate::buf::{parse_u64, Buf, PathBuf};
use crate::cli::Config;
use crate::exit::{self, Ended};
use crate::json;
use crate::logfile::{LogFile, Stream};
use crate::spawn;
use crate::sys::{self, Errno};
use crate::timefmt;

/// Signals forwarded to the container.
pub const FORWARDED: [c_int; 6] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

const K_SIGNAL: u64 = 1;
const K_STDOUT: u64 = 2;
const K_STDERR: u64 = 3;

#[inline]
fn pack(kind: u64, fd: c_int) -> u64 {
    kind << 32 | fd as u32 as u64
}

/// Where the create outcome goes.
#[derive(Clone, Copy)]
pub enum Report {
    /// The manager's sync pipe: one JSON line.
    Sync(c_int),
    /// The waiting launcher's pipe: `0` or `1` then the error text.
    Launcher(c_int),
}

/// Runtime error text kept for the report; the JSON line stays < 4 KiB.
const ERR_MAX: usize = 2048;
/// Output read buffer: one attach record's worth, conmon's size too.
const IO_SIZE: usize = 8192;

/// The daemon's only static buffers. Page-aligned, in .bss, so a page
/// costs memory only once touched, and can be handed back with
/// MADV_DONTNEED (zero-filled again on the next touch).
#[repr(C, align(4096))]
struct IoBuf([u8; IO_SIZE]);
static mut IOBUF: IoBuf = IoBuf([0; IO_SIZE]);
/// Paths composed for one-off uses: the pidfile read, the exit records.
#[repr(C, align(4096))]
struct Scratch {
    a: PathBuf,
    b: PathBuf,
}
static mut SCRATCH: Scratch = Scratch { a: PathBuf::new(), b: PathBuf::new() };

fn iobuf() -> &'static mut [u8; IO_SIZE] {
    // Single-threaded; every use is a short borrow within one call.
    unsafe { &mut (*addr_of_mut!(IOBUF)).0 }
}

fn scratch() -> &'static mut Scratch {
    unsafe { &mut *addr_of_mut!(SCRATCH) }
}

/// After this long without events, hand touched buffer and stack pages
/// back to the kernel: an idle shim should cost what an idle shim needs.
const IDLE_TRIM_MS: c_int = 1000;

fn release<T>(p: *mut T, len: usize) {
    unsafe { libc::madvise(p as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Give back the I/O buffer and the stack pages below the current frame
/// (dead: nothing lives below the stack pointer). One page under the
/// current one is kept for the calls made from here.
#[inline(never)]
fn trim() {
    release(addr_of_mut!(IOBUF), IO_SIZE);
    let here = 0u8;
    let sp = core::hint::black_box(&here) as *const u8 as usize;
    let keep = (sp & !4095) - 4096;
    let span = 60 * 1024;
    // Parts of the range below the stack mapping are skipped by the kernel.
    release((keep - span) as *mut u8, span);
}

pub struct Shim<'a> {
    cfg: &'a Config<'a>,
    epfd: c_int,
    sigfd: c_int,
    out: c_int,
    err: c_int,
    runtime: libc::pid_t,
    container: libc::pid_t,
    ended: Option<Ended>,
    /// Signals that arrived before the container pid was known (bit N = signal N).
    held: u64,
    report: Option<Report>,
    log: LogFile<'a>,
    /// Exits reaped before the container pid was known.
    early: [(libc::pid_t, Ended); 8],
    n_early: usize,
}

/// Everything the launcher prepared for the daemon.
pub struct Start<'a> {
    pub cfg: &'a Config<'a>,
    pub runtime: &'a CStr,
    pub report: Option<Report>,
    /// Opened by the launcher, so a bad path is an error before detaching.
    pub log: LogFile<'a>,
}

/// The daemon's body: never returns.
pub fn run(mut s: Start) -> ! {
    let log = core::mem::replace(&mut s.log, LogFile::none());
    let mut shim = Shim {
        cfg: s.cfg,
        epfd: -1,
        sigfd: -1,
        out: -1,
        err: -1,
        runtime: 0,
        container: 0,
        ended: None,
        held: 0,
        report: s.report,
        log,
        early: [(0, Ended { code: 0, signal: 0 }); 8],
        n_early: 0,
    };
    if let Err((what, e)) = shim.setup(&s) {
        let mut m: Buf<256> = Buf::new();
        m.push(b"shimlet: ");
        m.push(what);
        m.push(b": ");
        m.push(e.text());
        shim.fail(Ended { code: 1, signal: 0 }, m.as_bytes());
    }
    shim.serve()
}

type Step<T> = Result<T, (&'static [u8], Errno)>;

fn ctx<T>(r: sys::Result<T>, what: &'static [u8]) -> Step<T> {
    r.map_err(|e| (what, e))
}

impl<'a> Shim<'a> {
    fn setup(&mut self, s: &Start<'a>) -> Step<()> {
        // Detach: own session, child subreaper (so the container, once the
        // runtime exits, is re-parented to us and reaped here).
        unsafe {
            libc::setsid();
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        }
        // Survive the host's OOM killer before the container does.
        let reset_oom = match sys::open(c"/proc/self/oom_score_adj", libc::O_WRONLY, 0) {
            Ok(fd) => {
                let ok = sys::write(fd, b"-1000").is_ok();
                sys::close(fd);
                ok
            }
            Err(_) => false,
        };
        let (out_r, out_w) = ctx(sys::pipe(), b"pipe")?;
        let (err_r, err_w) = ctx(sys::pipe(), b"pipe")?;
        self.out = out_r;
        self.err = err_r;
        // Our stdio is nobody's business: /dev/null, which is also the
        // container's stdin.
        let null = ctx(sys::open(c"/dev/null", libc::O_RDWR, 0), b"open /dev/null")?;
        for fd in 0..3 {
            ctx(sys::dup2(null, fd), b"dup2")?;
        }
        sys::close(null);
        self.epfd = ctx(cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }), b"epoll_create1")?;
        let mut mask: libc::sigset_t = unsafe { core::mem::zeroed() };
        unsafe {
            libc::sigemptyset(&mut mask);
            libc::sigaddset(&mut mask, libc::SIGCHLD);
            for sig in FORWARDED {
                libc::sigaddset(&mut mask, sig);
            }
        }
        self.sigfd = ctx(cvt(unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) }), b"signalfd")?;
        ctx(self.watch(K_SIGNAL, self.sigfd), b"epoll_ctl")?;
        let create = spawn::Create {
            cfg: self.cfg,
            runtime: s.runtime,
            stdio: [0, out_w, err_w],
            reset_oom,
        };
        self.runtime = ctx(spawn::create(&create), b"fork")?;
        sys::close(out_w);
        sys::close(err_w);
        Ok(())
    }

    fn watch(&self, kind: u64, fd: c_int) -> sys::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: pack(kind, fd) };
        cvt(unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
    }

    fn serve(&mut self) -> ! {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
        let mut busy = true;
        loop {
            let timeout = if busy { IDLE_TRIM_MS } else { -1 };
            let n = unsafe { libc::epoll_wait(self.epfd, evs.as_mut_ptr(), evs.len() as c_int, timeout) };
            if n == 0 {
                trim();
                busy = false;
                continue;
            }
            busy = true;
            for ev in &evs[..n.max(0) as usize] {
                let data = ev.u64;
                let fd = data as u32 as c_int;
                match data >> 32 {
                    K_SIGNAL => self.on_signals(),
                    K_STDOUT => self.on_output(fd, Stream::Stdout),
                    K_STDERR => self.on_output(fd, Stream::Stderr),
                    _ => {}
                }
            }
            if let Some(e) = self.ended {
                self.finish(e);
            }
        }
    }

    fn on_signals(&mut self) {
        let mut si: libc::signalfd_siginfo = unsafe { core::mem::zeroed() };
        let size = core::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            let r = unsafe { libc::read(self.sigfd, &mut si as *mut _ as *mut _, size) };
            if r != size as isize {
                return;
            }
            let sig = si.ssi_signo as c_int;
            if sig == libc::SIGCHLD {
                self.reap();
            } else if self.container > 0 {
                let _ = sys::kill(self.container, sig);
            } else {
                self.held |= 1 << sig;
            }
        }
    }

    /// Reap every child that has exited: the runtime, the container, and
    /// anything re-parented to us.
    fn reap(&mut self) {
        loop {
            let mut si: libc::siginfo_t = unsafe { core::mem::zeroed() };
            let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut si, libc::WEXITED | libc::WNOHANG) };
            let pid = unsafe { si.si_pid() };
            if r < 0 || pid == 0 {
                return;
            }
            let ended = Ended::from_wait(si.si_code, unsafe { si.si_status() });
            if pid == self.runtime {
                self.runtime = 0;
                self.runtime_exited(ended);
            } else if self.container > 0 && pid == self.container {
                self.ended = Some(ended);
            } else if self.container == 0 && self.n_early < self.early.len() {
                self.early[self.n_early] = (pid, ended);
                self.n_early += 1;
            }
        }
    }

    fn runtime_exited(&mut self, e: Ended) {
        if !e.success() {
            let mut msg: Buf<ERR_MAX> = Buf::new();
            self.collect_error(&mut msg);
            if msg.is_empty() {
                msg.push(b"runtime ");
                msg.push(self.cfg.runtime.unwrap_or(c"runc").to_bytes());
                if e.signal != 0 {
                    msg.push(b" was killed by signal ");
                    msg.push_i64(e.signal as i64);
                } else {
                    msg.push(b" exited with status ");
                    msg.push_i64(e.code as i64);
                }
            }
            self.fail(e, msg.as_bytes());
        }
        let pid = match self.read_pidfile() {
            Ok(pid) => pid,
            Err(e) => {
                let mut msg: Buf<ERR_MAX> = Buf::new();
                msg.push(b"runtime succeeded but the container pid could not be read from its pidfile: ");
                msg.push(e);
                self.fail(Ended { code: 1, signal: 0 }, msg.as_bytes());
            }
        };
        self.container = pid;
        for &(p, e) in &self.early[..self.n_early] {
            if p == pid {
                self.ended = Some(e);
            }
        }
        let mut line: Buf<32> = Buf::new();
        line.push(b"{\"pid\": ");
        line.push_i64(pid as i64);
        line.push(b"}\n");
        self.send_report(true, line.as_bytes());
        let _ = self.watch(K_STDOUT, self.out);
        let _ = self.watch(K_STDERR, self.err);
        let _ = sys::set_nonblock(self.out);
        let _ = sys::set_nonblock(self.err);
        for sig in 1..64 {
            if self.held & (1 << sig) != 0 {
                let _ = sys::kill(pid, sig);
            }
        }
        self.held = 0;
    }

    fn read_pidfile(&self) -> Result<libc::pid_t, &'static [u8]> {
        let sc = scratch();
        let path = spawn::pidfile_path(self.cfg, &mut sc.a).ok_or(&b"path too long"[..])?;
        let fd = sys::open(path, libc::O_RDONLY, 0).map_err(|e| e.text());
        release(addr_of_mut!(sc.a), core::mem::size_of::<PathBuf>());
        let fd = fd?;
        let mut b = [0u8; 32];
        let n = sys::read(fd, &mut b);
        sys::close(fd);
        let n = n.map_err(|e| e.text())?;
        match parse_u64(&b[..n], i32::MAX as u64) {
            Some(p) if p > 0 => Ok(p as libc::pid_t),
            _ => Err(b"not a pid"),
        }
    }

    /// What the failed runtime printed: its stderr, else its stdout.
    fn collect_error(&mut self, msg: &mut Buf<ERR_MAX>) {
        for fd in [self.err, self.out] {
            let _ = sys::set_nonblock(fd);
            let buf = iobuf();
            while msg.room() > 0 {
                match sys::read(fd, &mut buf[..msg.room().min(IO_SIZE)]) {
                    Ok(n) if n > 0 => {
                        msg.push(&buf[..n]);
                    }
                    _ => break,
                }
            }
            let t = crate::buf::trim(msg.as_bytes()).len();
            if t > 0 {
                return;
            }
            msg.clear();
        }
    }

    fn send_report(&mut self, ok: bool, text: &[u8]) {
        match self.report.take() {
            Some(Report::Sync(fd)) => {
                let _ = sys::write_all(fd, text);
                sys::close(fd);
            }
            Some(Report::Launcher(fd)) => {
                let _ = sys::write_all(fd, if ok { b"0" } else { b"1" });
                if !ok {
                    let _ = sys::write_all(fd, text);
                }
                sys::close(fd);
            }
            None => {}
        }
    }

    /// Create failed: report, record, exit. Nothing is left running.
    fn fail(&mut self, e: Ended, text: &[u8]) -> ! {
        // Record first: once the report is out, the manager may look.
        self.write_status(b"failed", e, 0);
        self.reap();
        let text = crate::buf::trim(text);
        match self.report {
            Some(Report::Sync(_)) => {
                let mut line: Buf<4000> = Buf::new();
                line.push(b"{\"pid\": -1, \"message\": \"");
                json::escape_into(&mut line, &text[..text.len().min(ERR_MAX)]);
                // Room for the closing `"}\n` was kept below 4000 by ERR_MAX.
                line.push(b"\"}\n");
                self.send_report(false, line.as_bytes());
            }
            _ => self.send_report(false, text),
        }
        unsafe { libc::_exit(1) }
    }

    fn on_output(&mut self, fd: c_int, stream: Stream) {
        let buf = iobuf();
        match sys::read(fd, buf) {
            Ok(n) if n > 0 => self.log.write(stream, &buf[..n], &timefmt::now()),
            Err(Errno(libc::EAGAIN)) => {}
            _ => self.close_output(fd),
        }
    }

    fn close_output(&mut self, fd: c_int) {
        unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, core::ptr::null_mut()) };
        sys::close(fd);
        if fd == self.out {
            self.out = -1;
        } else if fd == self.err {
            self.err = -1;
        }
    }

    /// Everything the container wrote before it died is in the pipes now;
    /// read it all. Bounded, in case something re-parented keeps writing.
    fn drain(&mut self) {
        for (fd, stream) in [(self.out, Stream::Stdout), (self.err, Stream::Stderr)] {
            if fd < 0 {
                continue;
            }
            let buf = iobuf();
            for _ in 0..1024 {
                match sys::read(fd, buf) {
                    Ok(n) if n > 0 => self.log.write(stream, &buf[..n], &timefmt::now()),
                    _ => break,
                }
            }
            self.close_output(fd);
        }
    }

    fn finish(&mut self, e: Ended) -> ! {
        self.drain();
        let _ = self.log.sync();
        self.write_status(b"exited", e, self.container);
        self.reap();
        unsafe { libc::_exit(0) }
    }

    fn write_status(&mut self, kind: &[u8], e: Ended, pid: libc::pid_t) {
        let stamp = timefmt::now();
        let sc = scratch();
        let (a, b) = (&mut sc.a, &mut sc.b);
        if let Some(path) = self.cfg.status_file {
            let line = exit::status_line(kind, e, false, pid, &stamp);
            let _ = sys::write_file_atomic(path, b, line.as_bytes(), 0o644);
        }
        if kind == b"exited" {
            if let (Some(dir), Some(id)) = (self.cfg.exit_dir, self.cfg.id) {
                let _ = exit::write_exit_file(dir, id, e.code, a, b);
            }
        }
    }
}

fn cvt(r: c_int) -> sys::Result<c_int> {
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}
