//! The shim daemon: after the launcher forks it, it owns the container.
//!
//! One epoll loop. Each entry's 64-bit data packs (kind, client index, fd),
//! so dispatch is a match, not a lookup. The states, in order:
//!
//! | state    | leaves when                     | TERM, INT, ... signals    |
//! |----------|---------------------------------|---------------------------|
//! | creating | the runtime is reaped           | held, sent once pid known |
//! | running  | the container is reaped         | forwarded                 |
//! | finished | output drained, records written | -                         |
//!
//! Output (pipes or pty) goes to the log first, then to attach clients;
//! input from clients goes to the container's stdin pipe or pty. Nothing
//! here blocks: every descriptor the loop touches is non-blocking.

use core::ffi::{c_int, CStr};
use core::ptr::addr_of_mut;

use crate::attach::{self, Clients, Pending};
use crate::buf::{parse_u64, Buf, PathBuf};
use crate::cli::Config;
use crate::ctl;
use crate::diag;
use crate::exit::{self, Ended};
use crate::journal::Journal;
use crate::json;
use crate::logfile::{LogFile, Stream};
use crate::oom::Oom;
use crate::sock::{self, Place};
use crate::spawn;
use crate::sys::{self, cvt, Errno};
use crate::timefmt;
use crate::tty;

/// Signals forwarded to the container.
pub const FORWARDED: [c_int; 6] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

// Kinds of epoll entries.
const K_SIGNAL: u64 = 1;
const K_STDOUT: u64 = 2;
const K_STDERR: u64 = 3;
const K_PTY: u64 = 4;
const K_LISTEN: u64 = 5;
const K_CLIENT: u64 = 6;
const K_CONSOLE: u64 = 7;
const K_CONSOLE_CONN: u64 = 8;
const K_CTL: u64 = 9;
const K_STDIN: u64 = 10;
const K_TIMER: u64 = 11;
const K_OOM: u64 = 12;

#[inline]
fn pack(kind: u64, index: usize, fd: c_int) -> u64 {
    kind << 56 | (index as u64 & 0xff_ffff) << 32 | fd as u32 as u64
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
/// Output read size: one attach record (conmon reads 8192 too).
const IO_SIZE: usize = attach::RECORD;

/// The daemon's static buffers. Page-aligned, in .bss: a page costs memory
/// only once touched, and can be handed back with MADV_DONTNEED (it is
/// zero-filled again on the next touch).
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

/// Give back the I/O buffers and the stack pages below the current frame
/// (dead: nothing lives below the stack pointer). The page in use is kept,
/// and the one under it too when less than 1 KiB of it is left for the
/// calls made from here (madvise's own frame, the red zone).
#[inline(never)]
fn trim(keep_input: bool) {
    release(addr_of_mut!(IOBUF), IO_SIZE);
    if !keep_input {
        attach::release_inbuf();
    }
    let here = 0u8;
    let sp = core::hint::black_box(&here) as *const u8 as usize;
    let mut keep = sp & !4095;
    if sp - keep < 1024 {
        keep -= 4096;
    }
    // On our own stack (in .bss), never below its start: other statics
    // live there. On the kernel's, parts of the range below the mapping
    // are skipped by the kernel.
    let low = match crate::restack::own_stack() {
        Some((lo, _)) => lo,
        None => keep.saturating_sub(60 * 1024),
    };
    if keep > low {
        release(low as *mut u8, keep - low);
    }
}

pub struct Shim<'a> {
    cfg: &'a Config<'a>,
    epfd: c_int,
    sigfd: c_int,
    /// Container stdout/stderr pipes (also the runtime's own stdio).
    out: c_int,
    err: c_int,
    /// Terminal mode: the pty master, once the runtime sent it.
    pty: c_int,
    console: c_int,
    console_conn: c_int,
    console_place: Option<Place<'a>>,
    console_path: Buf<108>,
    /// The runtime did send a pty (it may since have closed: a quick exec).
    pty_received: bool,
    /// A window size that arrived before the pty.
    winsz: Option<(u16, u16)>,
    /// Write end of the container's stdin pipe (`--stdin`, no terminal).
    stdin: c_int,
    /// Close stdin once pending input is out (a client's EOF came first).
    stdin_close_pending: bool,
    pending: Pending,
    /// Clients are not read while input is pending.
    paused: bool,
    listen: c_int,
    attach_place: Option<Place<'a>>,
    ctl_place: Option<Place<'a>>,
    /// The bundle directory (O_PATH): where conmon's files go.
    bundle_fd: c_int,
    /// Made SOCKET_DIR/UUID -> BUNDLE (removed at exit).
    symlink: bool,
    timer: c_int,
    timed_out: bool,
    oom: Option<Oom>,
    oomed: bool,
    gate: Option<c_int>,
    /// The log is failing (disk full...): said once, and once when it recovers.
    log_failing: bool,
    clients: Clients,
    ctl: c_int,
    ctl_w: c_int,
    ctl_lines: ctl::Lines,
    runtime: libc::pid_t,
    container: libc::pid_t,
    ended: Option<Ended>,
    /// Signals that arrived before the container pid was known (bit N = signal N).
    held: u64,
    report: Option<Report>,
    log: LogFile<'a>,
    journal: Option<Journal>,
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
    /// The journald driver, connected by the launcher.
    pub journal: Option<Journal>,
    /// exec-attach: the start pipe, for the runtime child to wait on.
    pub gate: Option<c_int>,
    /// exec-attach: where to say the attach socket is ready.
    pub attach_pipe: Option<c_int>,
}

/// The shim's state: a static, not a frame, so the daemon's stack stays
/// one page deep.
static mut SHIM: core::mem::MaybeUninit<Shim<'static>> = core::mem::MaybeUninit::uninit();

/// The daemon's body: never returns.
pub fn run(s: &'static mut Start<'static>) -> ! {
    let log = core::mem::replace(&mut s.log, LogFile::none());
    let shim = unsafe { (*addr_of_mut!(SHIM)).write(Shim {
        cfg: s.cfg,
        epfd: -1,
        sigfd: -1,
        out: -1,
        err: -1,
        pty: -1,
        pty_received: false,
        console: -1,
        console_conn: -1,
        console_place: None,
        console_path: Buf::new(),
        winsz: None,
        stdin: -1,
        stdin_close_pending: false,
        pending: Pending::default(),
        paused: false,
        listen: -1,
        attach_place: None,
        ctl_place: None,
        bundle_fd: -1,
        symlink: false,
        timer: -1,
        timed_out: false,
        oom: None,
        oomed: false,
        gate: s.gate,
        log_failing: false,
        clients: Clients::new(),
        ctl: -1,
        ctl_w: -1,
        ctl_lines: ctl::Lines::new(),
        runtime: 0,
        container: 0,
        ended: None,
        held: 0,
        report: s.report,
        log,
        journal: s.journal.take(),
        early: [(0, Ended { code: 0, signal: 0 }); 8],
        n_early: 0,
    }) };
    if let Err((what, e)) = shim.setup(s) {
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
    #[inline(never)]
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
        // Our stdio is nobody's business: /dev/null, which is also the
        // container's stdin unless it gets a pipe. With passthrough logging
        // the runtime inherits it first, then we let go of it.
        let null = ctx(sys::open(c"/dev/null", libc::O_RDWR, 0), b"open /dev/null")?;
        // --sync: the caller waits for this very process; a create failure
        // with no sync fd is told on its stderr, so that stays.
        let keep = if self.cfg.sync && self.report.is_none() { 2 } else { 0 };
        if !self.cfg.passthrough {
            for fd in 0..3 - keep {
                ctx(sys::dup2(null, fd), b"dup2")?;
            }
        }
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
        ctx(self.watch(K_SIGNAL, 0, self.sigfd, libc::EPOLLIN), b"epoll_ctl")?;

        if self.cfg.bundle_sockets() || self.cfg.conmon {
            let dir = self.cfg.bundle.unwrap_or(c".");
            self.bundle_fd = ctx(sys::open(dir, libc::O_PATH | libc::O_DIRECTORY, 0), b"open bundle")?;
        }
        let (out_r, out_w) = ctx(sys::pipe(), b"pipe")?;
        let (err_r, err_w) = ctx(sys::pipe(), b"pipe")?;
        self.out = out_r;
        self.err = err_r;
        let mut stdin_r = 0;
        if self.cfg.stdin && !self.cfg.terminal {
            let (r, w) = ctx(sys::pipe(), b"pipe")?;
            let _ = sys::set_nonblock(w);
            stdin_r = r;
            self.stdin = w;
        }
        // The attach socket and ctl FIFO exist before the outcome is
        // reported, so a manager can attach as soon as it hears back.
        let in_bundle = |name: &'a CStr| Place { dirfd: self.bundle_fd, name };
        let attach = match self.cfg.attach {
            Some(path) => Some(ctx(sock::place(path), b"attach socket directory")?),
            None if self.cfg.bundle_sockets() => Some(in_bundle(c"attach")),
            None => None,
        };
        if let Some(p) = attach {
            self.attach_place = Some(p);
            self.listen = ctx(sock::listen(&p, libc::SOCK_SEQPACKET, 128, 0o700), b"attach socket")?;
            ctx(self.watch(K_LISTEN, 0, self.listen, libc::EPOLLIN), b"epoll_ctl")?;
        }
        let ctl = match self.cfg.ctl {
            Some(path) => Some(ctx(sock::place(path), b"ctl fifo directory")?),
            None if self.cfg.bundle_sockets() => Some(in_bundle(c"ctl")),
            None => None,
        };
        if let Some(p) = ctl {
            let (r, w) = ctx(ctl::make_fifo(&p), b"ctl fifo")?;
            self.ctl_place = Some(p);
            self.ctl = r;
            self.ctl_w = w;
            ctx(self.watch(K_CTL, 0, r, libc::EPOLLIN), b"epoll_ctl")?;
        }
        if self.cfg.bundle_sockets() {
            // conmon relays sizes through BUNDLE/winsz; it must exist.
            let _ = ctl::make_fifo_only(&in_bundle(c"winsz"));
            if !self.cfg.full_attach && self.cfg.cuuid.is_some() {
                ctx(self.make_symlink(), b"attach symlink")?;
            }
        }
        if let Some(fd) = s.attach_pipe {
            // The socket, ctl and winsz exist: the manager may connect.
            let _ = sys::write_all(fd, b"{\"data\": 0}\n");
            sys::close(fd);
        }
        if self.cfg.timeout > 0 {
            let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
            let mut t: libc::itimerspec = unsafe { core::mem::zeroed() };
            t.it_value.tv_sec = self.cfg.timeout as _;
            if fd < 0 || unsafe { libc::timerfd_settime(fd, 0, &t, core::ptr::null_mut()) } < 0 {
                return Err((b"timerfd", Errno::last()));
            }
            self.timer = fd;
            ctx(self.watch(K_TIMER, 0, fd, libc::EPOLLIN), b"epoll_ctl")?;
        }
        if self.cfg.terminal {
            if !tty::console_path(&mut self.console_path) {
                return Err((b"console socket path", Errno(libc::ENAMETOOLONG)));
            }
        }
        let console = if self.cfg.terminal {
            // Re-borrow the path from self for the socket's lifetime.
            let path: &'a CStr = unsafe { &*(self.console_path.as_cstr().unwrap_or(c"") as *const CStr) };
            let p = ctx(sock::place(path), b"console socket directory")?;
            self.console_place = Some(p);
            self.console = ctx(sock::listen(&p, libc::SOCK_STREAM, 1, 0o700), b"console socket")?;
            ctx(self.watch(K_CONSOLE, 0, self.console, libc::EPOLLIN), b"epoll_ctl")?;
            Some(path)
        } else {
            None
        };
        let stdio = if self.cfg.passthrough { [0, 1, 2] } else { [stdin_r, out_w, err_w] };
        let create = spawn::Create { cfg: self.cfg, runtime: s.runtime, console, gate: self.gate, stdio, reset_oom };
        self.runtime = ctx(spawn::create(&create), b"fork")?;
        sys::close(out_w);
        sys::close(err_w);
        if stdin_r > 0 {
            sys::close(stdin_r);
        }
        if let Some(fd) = self.gate.take() {
            sys::close(fd);
        }
        if self.cfg.passthrough {
            for fd in 0..3 {
                let _ = sys::dup2(null, fd);
            }
        }
        sys::close(null);
        Ok(())
    }

    /// SOCKET_DIR/UUID -> BUNDLE, so clients reach BUNDLE/attach by a path
    /// short enough for sun_path (conmon's scheme without --full-attach).
    #[inline(never)]
    fn make_symlink(&mut self) -> sys::Result<()> {
        let sc = scratch();
        let r = link_path(self.cfg, &mut sc.a).ok_or(Errno(libc::ENAMETOOLONG)).and_then(|link| {
            let target: &CStr = match self.cfg.bundle {
                Some(b) if b.to_bytes().starts_with(b"/") => b,
                _ => {
                    let spare = sc.b.spare();
                    let p = unsafe { libc::getcwd(spare.as_mut_ptr() as *mut libc::c_char, spare.len()) };
                    if p.is_null() {
                        return Err(Errno::last());
                    }
                    unsafe { CStr::from_ptr(p) }
                }
            };
            let _ = sys::unlink(link);
            cvt(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }).map(|_| ())
        });
        self.symlink = r.is_ok();
        release(addr_of_mut!(SCRATCH), core::mem::size_of::<Scratch>());
        r
    }

    fn watch(&self, kind: u64, index: usize, fd: c_int, events: c_int) -> sys::Result<()> {
        let mut ev = libc::epoll_event { events: events as u32, u64: pack(kind, index, fd) };
        cvt(unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
    }

    fn rewatch(&self, kind: u64, index: usize, fd: c_int, events: c_int) {
        let mut ev = libc::epoll_event { events: events as u32, u64: pack(kind, index, fd) };
        unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, &mut ev) };
    }

    fn unwatch_close(&self, fd: c_int) {
        if fd >= 0 {
            unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, core::ptr::null_mut()) };
            sys::close(fd);
        }
    }

    fn serve(&mut self) -> ! {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
        let mut busy = true;
        loop {
            let timeout = if busy { IDLE_TRIM_MS } else { -1 };
            let n = unsafe { libc::epoll_wait(self.epfd, evs.as_mut_ptr(), evs.len() as c_int, timeout) };
            if n == 0 {
                trim(!self.pending.is_empty());
                busy = false;
                continue;
            }
            busy = true;
            for ev in &evs[..n.max(0) as usize] {
                let (data, events) = (ev.u64, ev.events as c_int);
                let (kind, index, fd) = (data >> 56, (data >> 32) as usize & 0xff_ffff, data as u32 as c_int);
                match kind {
                    K_SIGNAL => self.on_signals(),
                    K_STDOUT => self.on_output(fd, Stream::Stdout),
                    K_STDERR => self.on_output(fd, Stream::Stderr),
                    K_PTY if events & libc::EPOLLOUT != 0 => self.flush_input(),
                    K_PTY => self.on_output(fd, Stream::Stdout),
                    K_STDIN => self.flush_input(),
                    K_LISTEN => self.on_accept(),
                    K_CLIENT => self.on_client(index, fd, events),
                    K_CONSOLE => self.on_console(),
                    K_CONSOLE_CONN => self.on_console_conn(),
                    K_CTL => self.on_ctl(),
                    K_TIMER => self.on_timeout(),
                    K_OOM => self.on_oom(),
                    _ => {}
                }
            }
            if let Some(e) = self.ended {
                self.finish(e);
            }
        }
    }

    // ---- signals and children ------------------------------------------

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
            } else if (1..64).contains(&sig) {
                self.held |= 1 << sig;
                if matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
                    self.arm_grace();
                }
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

    #[inline(never)]
    fn runtime_exited(&mut self, e: Ended) {
        if self.timed_out {
            let mut msg: Buf<96> = Buf::new();
            if self.held != 0 && self.cfg.timeout == 0 {
                msg.push(b"the runtime was still creating when the shim was told to stop; it was killed");
            } else {
                msg.push(b"the runtime did not finish within ");
                msg.push_u64(self.cfg.timeout as u64);
                msg.push(b" s and was killed");
            }
            self.fail(e, msg.as_bytes());
        }
        // For exec, the runtime's status is not the verdict: a missing
        // pidfile is (conmon's rule).
        if !e.success() && !self.cfg.exec {
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
            Err(why) => {
                let mut msg: Buf<ERR_MAX> = Buf::new();
                if self.cfg.exec {
                    self.collect_error(&mut msg);
                }
                if msg.is_empty() {
                    msg.push(b"the container pid could not be read from the runtime's pidfile: ");
                    msg.push(why);
                }
                self.fail(Ended { code: 1, signal: 0 }, msg.as_bytes());
            }
        };
        if self.cfg.terminal && !self.pty_received {
            // The runtime sends the pty before it exits; pick it up if the
            // loop has not yet.
            self.on_console();
            self.on_console_conn();
            if !self.pty_received {
                let _ = sys::kill(pid, libc::SIGKILL);
                self.fail(Ended { code: 1, signal: 0 }, b"the runtime did not send a terminal over the console socket");
            }
        }
        if self.timer >= 0 && self.cfg.timeout == 0 {
            // Only a grace for held signals was armed: create is over.
            let t: libc::itimerspec = unsafe { core::mem::zeroed() };
            unsafe { libc::timerfd_settime(self.timer, 0, &t, core::ptr::null_mut()) };
        }
        self.container = pid;
        for &(p, e) in &self.early[..self.n_early] {
            if p == pid {
                self.ended = Some(e);
            }
        }
        // A legacy exec (no API version) reports only the final status.
        if !self.cfg.exec || self.cfg.api_version {
            let line = self.sync_line(false, pid as i64, b"");
            self.send_report(true, line.as_bytes());
        }
        self.oom = Oom::watch(pid, &mut scratch().a);
        release(addr_of_mut!(SCRATCH), core::mem::size_of::<Scratch>());
        if let Some(o) = &self.oom {
            if o.watch >= 0 {
                let ev = if o.v2 { libc::EPOLLPRI } else { libc::EPOLLIN };
                let _ = self.watch(K_OOM, 0, o.watch, ev);
            }
        }
        for (fd, kind) in [(self.out, K_STDOUT), (self.err, K_STDERR)] {
            let _ = sys::set_nonblock(fd);
            let _ = self.watch(kind, 0, fd, libc::EPOLLIN);
        }
        for sig in 1..64 {
            if self.held & (1 << sig) != 0 {
                let _ = sys::kill(pid, sig);
            }
        }
        self.held = 0;
    }

    fn read_pidfile(&self) -> Result<libc::pid_t, &'static [u8]> {
        let pid = self.read_pidfile_raw()?;
        // The container must be ours to reap: re-parented to us when the
        // runtime exited (or already reaped, if it was that quick).
        if self.early[..self.n_early].iter().any(|&(p, _)| p == pid) || parent_of(pid) == Some(sys::getpid()) {
            Ok(pid)
        } else {
            Err(b"it names a process that is not a child of the shim")
        }
    }

    fn read_pidfile_raw(&self) -> Result<libc::pid_t, &'static [u8]> {
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
            if !crate::buf::trim(msg.as_bytes()).is_empty() {
                return;
            }
            msg.clear();
        }
    }

    /// `{"KEY": N}` or `{"KEY": N, "message": "TEXT"}`, one line, < 4 KiB.
    fn sync_line(&self, final_exec: bool, n: i64, text: &[u8]) -> Buf<4000> {
        let mut line: Buf<4000> = Buf::new();
        line.push(b"{\"");
        line.push(self.cfg.sync_key(final_exec || (self.cfg.exec && !self.cfg.api_version)));
        line.push(b"\": ");
        line.push_i64(n);
        if !text.is_empty() {
            // Escaped apart, so the closing always fits.
            let mut esc: Buf<3900> = Buf::new();
            json::escape_into(&mut esc, text);
            line.push(b", \"message\": \"");
            line.push(esc.as_bytes());
            line.push(b"\"");
        }
        line.push(b"}\n");
        line
    }

    fn send_report(&mut self, ok: bool, text: &[u8]) {
        // An exec keeps the sync pipe for its final status.
        let keep = ok && self.cfg.exec;
        match if keep { self.report } else { self.report.take() } {
            Some(Report::Sync(fd)) => {
                let _ = sys::write_all(fd, text);
                if !keep {
                    sys::close(fd);
                }
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

    /// Create failed: record, report, clean up, exit. Nothing is left running.
    #[inline(never)]
    fn fail(&mut self, e: Ended, text: &[u8]) -> ! {
        // Whatever the runtime left (a container process stuck before its
        // start, a runtime child) goes with us, not on as an orphan.
        kill_children();
        // Record first: once the report is out, the manager may look.
        self.write_status(b"failed", e, 0);
        self.reap();
        self.remove_sockets();
        let text = crate::buf::trim(text);
        match self.report {
            Some(Report::Sync(_)) => {
                let line = self.sync_line(false, -1, text);
                self.send_report(false, line.as_bytes());
            }
            None if self.cfg.sync => crate::launch::err_line(&[b"create failed: ", text]),
            _ => self.send_report(false, text),
        }
        unsafe { libc::_exit(1) }
    }

    // ---- output ----------------------------------------------------------

    /// Read while the pipe keeps filling the buffer (a flood), up to 8
    /// reads, before going back to epoll: fewer wake-ups per byte. A short
    /// read means the pipe is empty, so a quiet container costs one read.
    fn on_output(&mut self, fd: c_int, stream: Stream) {
        let buf = iobuf();
        for _ in 0..8 {
            match sys::read(fd, buf) {
                Ok(n) if n > 0 => {
                    self.emit(stream, &buf[..n]);
                    if n < buf.len() {
                        return;
                    }
                }
                Err(Errno(libc::EAGAIN)) => return,
                // EOF, or EIO from a pty whose last user closed it.
                _ => return self.close_output(fd),
            }
        }
    }

    /// The log first (it is the record), then every client.
    fn emit(&mut self, stream: Stream, data: &[u8]) {
        let lost = self.log.lost;
        self.log.write(stream, data, &timefmt::now());
        if let Some(j) = &mut self.journal {
            j.write(stream, data);
        }
        if self.log.lost != lost && !self.log_failing {
            self.log_failing = true;
            let e = self.log.last_error.unwrap_or(Errno(libc::EIO));
            diag::warn_errno(b"cannot write the log, container output is being dropped (counted in the exit record)", e);
        } else if self.log.lost == lost && self.log_failing {
            self.log_failing = false;
            let mut n: Buf<24> = Buf::new();
            n.push_u64(self.log.lost);
            diag::warn(&[b"the log is writable again; bytes lost so far: ", n.as_bytes()]);
        }
        let code = if stream == Stream::Stdout { attach::STREAM_STDOUT } else { attach::STREAM_STDERR };
        let (mut slow, mut left): (u64, u64) = (0, 0);
        for (i, fd) in self.clients.live() {
            if self.clients.is_gone(i) {
                continue;
            }
            match attach::send_record(fd, code, data) {
                Ok(()) => {}
                Err(Errno(libc::EAGAIN | libc::ENOBUFS)) => slow |= 1 << i,
                Err(_) => left |= 1 << i,
            }
        }
        if slow | left == 0 {
            return;
        }
        for i in 0..attach::MAX_CLIENTS {
            if slow & (1 << i) != 0 {
                diag::warn(&[b"an attach client could not keep up and was disconnected"]);
                self.drop_client(i);
            } else if left & (1 << i) != 0 {
                self.client_gone(i);
            }
        }
    }

    fn close_output(&mut self, fd: c_int) {
        self.unwatch_close(fd);
        if fd == self.out {
            self.out = -1;
        } else if fd == self.err {
            self.err = -1;
        } else if fd == self.pty {
            self.pty = -1;
        }
    }

    /// Everything the container wrote before it died is in the pipes (or
    /// the pty) now; read it all. Bounded, in case something re-parented
    /// keeps writing.
    fn drain(&mut self) {
        for (fd, stream) in [(self.out, Stream::Stdout), (self.err, Stream::Stderr), (self.pty, Stream::Stdout)] {
            if fd < 0 {
                continue;
            }
            let _ = sys::set_nonblock(fd);
            let buf = iobuf();
            for _ in 0..1024 {
                match sys::read(fd, buf) {
                    Ok(n) if n > 0 => self.emit(stream, &buf[..n]),
                    _ => break,
                }
            }
            self.close_output(fd);
        }
    }

    // ---- attach clients and input ------------------------------------

    fn on_accept(&mut self) {
        loop {
            let fd = unsafe { libc::accept4(self.listen, core::ptr::null_mut(), core::ptr::null_mut(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) };
            if fd < 0 {
                return;
            }
            if self.clients.count() == attach::MAX_CLIENTS {
                self.sweep_clients();
            }
            match self.clients.add(fd) {
                Some(i) => {
                    attach::give_slack(fd);
                    let ev = if self.paused { 0 } else { libc::EPOLLIN };
                    if self.watch(K_CLIENT, i, fd, ev).is_err() {
                        self.clients.take(i);
                        sys::close(fd);
                    }
                }
                None => {
                    // Full: the client sees its connection closed at once.
                    sys::close(fd);
                }
            }
        }
    }

    /// The table is full: before refusing anyone, find clients that have
    /// hung up but whose hang-up the loop has not handled yet (one poll).
    #[inline(never)]
    fn sweep_clients(&mut self) {
        let mut p = [libc::pollfd { fd: -1, events: 0, revents: 0 }; attach::MAX_CLIENTS];
        for (i, fd) in self.clients.live() {
            p[i].fd = fd;
        }
        if unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, 0) } <= 0 {
            return;
        }
        for (i, q) in p.iter().enumerate() {
            if q.fd >= 0 && q.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                self.on_client(i, q.fd, libc::EPOLLHUP | (q.revents as c_int & libc::EPOLLIN));
            }
        }
    }

    fn drop_client(&mut self, i: usize) {
        let fd = self.clients.take(i);
        self.unwatch_close(fd);
    }

    fn input_target(&self) -> c_int {
        if self.cfg.terminal { self.pty } else { self.stdin }
    }

    fn on_client(&mut self, i: usize, fd: c_int, events: c_int) {
        if self.clients.fd(i) != fd {
            return;
        }
        let hup = events & (libc::EPOLLHUP | libc::EPOLLERR) != 0;
        if self.clients.is_eof(i) {
            // Its input is over; it only waited for output.
            if hup {
                self.drop_client(i);
            }
        } else if self.paused {
            // Not read now; if it left, keep what it sent for later.
            if hup {
                self.client_gone(i);
            }
        } else {
            self.read_client(i);
        }
    }

    /// The client's peer left: no more output for it, no more epoll
    /// reports; its queued input is read once input flows again.
    fn client_gone(&mut self, i: usize) {
        let fd = self.clients.fd(i);
        self.clients.set_gone(i);
        unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, core::ptr::null_mut()) };
        let mut queued: c_int = 0;
        let nothing_queued = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) } == 0 && queued == 0;
        if self.clients.is_eof(i) {
            self.drop_client(i);
        } else if nothing_queued {
            // Nothing left to read: its hang-up is its end of input.
            self.clients.set_eof(i);
            self.client_eof();
            self.drop_client(i);
        } else if !self.paused {
            self.drain_gone();
        }
    }

    /// Read what clients that left still have queued, until input pauses.
    fn drain_gone(&mut self) {
        for i in 0..attach::MAX_CLIENTS {
            while !self.paused && self.clients.gone_with_input() & (1 << i) != 0 {
                self.read_client(i);
            }
        }
    }

    /// One record of client `i`'s input, or its end.
    fn read_client(&mut self, i: usize) {
        let fd = self.clients.fd(i);
        let buf = attach::inbuf();
        let mut recv = || unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut _, buf.len(), libc::MSG_DONTWAIT) };
        let mut r = recv();
        if r < 0 && Errno::last().0 == libc::ECONNRESET {
            // The peer left with our output unread; that error comes first,
            // but its own input may still be queued behind it.
            r = recv();
        }
        if r > 0 {
            self.input(r as usize);
            return;
        }
        if r < 0 && matches!(Errno::last().0, libc::EAGAIN | libc::EINTR) && !self.clients.is_gone(i) {
            return;
        }
        // End of this client's input: it may still want output until it
        // hangs up, unless it already has.
        self.clients.set_eof(i);
        self.client_eof();
        if self.clients.is_gone(i) || r < 0 {
            self.drop_client(i);
        } else {
            self.rewatch(K_CLIENT, i, fd, 0);
        }
    }

    /// `n` bytes of input are at the start of INBUF.
    fn input(&mut self, n: usize) {
        let target = self.input_target();
        if target < 0 && !(self.cfg.terminal && self.pty < 0 && self.ended.is_none()) {
            return; // no stdin, or already closed: input is dropped
        }
        self.pending = Pending { off: 0, len: n };
        self.flush_input();
    }

    fn flush_input(&mut self) {
        let target = self.input_target();
        let done = target < 0 && !self.cfg.terminal || target >= 0 && self.pending.flush(target);
        if done {
            self.pending = Pending::default();
            if self.paused {
                self.set_paused(false);
            }
            if self.stdin_close_pending {
                self.close_stdin();
            }
            self.drain_gone();
        } else if !self.paused {
            self.set_paused(true);
        }
    }

    /// Stop (or resume) reading clients, and wait for the target to drain.
    fn set_paused(&mut self, on: bool) {
        self.paused = on;
        for (i, fd) in self.clients.live() {
            if !self.clients.is_gone(i) {
                let ev = if on || self.clients.is_eof(i) { 0 } else { libc::EPOLLIN };
                self.rewatch(K_CLIENT, i, fd, ev);
            }
        }
        let target = self.input_target();
        if target < 0 {
            return;
        }
        let out = if on { libc::EPOLLOUT } else { 0 };
        if self.cfg.terminal {
            self.rewatch(K_PTY, 0, target, libc::EPOLLIN | out);
        } else if on {
            let _ = self.watch(K_STDIN, 0, target, libc::EPOLLOUT);
        } else {
            unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, target, core::ptr::null_mut()) };
        }
    }

    fn client_eof(&mut self) {
        // In terminal mode stdin is never closed by a client.
        if self.stdin < 0 || self.cfg.terminal || self.cfg.leave_stdin_open {
            return;
        }
        if self.pending.is_empty() {
            self.close_stdin();
        } else {
            self.stdin_close_pending = true;
        }
    }

    fn close_stdin(&mut self) {
        if self.paused {
            self.set_paused(false);
        }
        self.unwatch_close(self.stdin);
        self.stdin = -1;
        self.stdin_close_pending = false;
    }

    // ---- terminal ----------------------------------------------------

    #[inline(never)]
    fn on_console(&mut self) {
        if self.console < 0 {
            return;
        }
        let fd = unsafe { libc::accept4(self.console, core::ptr::null_mut(), core::ptr::null_mut(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) };
        if fd < 0 {
            return;
        }
        self.unwatch_close(self.console_conn);
        self.console_conn = fd;
        if self.watch(K_CONSOLE_CONN, 0, fd, libc::EPOLLIN).is_err() {
            self.console_conn = -1;
            sys::close(fd);
            return;
        }
        self.on_console_conn();
    }

    fn on_console_conn(&mut self) {
        if self.console_conn < 0 {
            return;
        }
        match sock::recv_fd(self.console_conn) {
            Ok(None) => {}
            Ok(Some(pty)) => {
                self.unwatch_close(self.console_conn);
                self.console_conn = -1;
                self.set_pty(pty);
            }
            Err(_) => {
                self.unwatch_close(self.console_conn);
                self.console_conn = -1;
            }
        }
    }

    fn set_pty(&mut self, fd: c_int) {
        if self.pty_received {
            sys::close(fd);
            return;
        }
        self.pty_received = true;
        let _ = sys::set_nonblock(fd);
        tty::set_onlcr(fd);
        if let Some((rows, cols)) = self.winsz.take() {
            let _ = tty::resize(fd, rows, cols);
        }
        self.pty = fd;
        let out = if self.pending.is_empty() { 0 } else { libc::EPOLLOUT };
        let _ = self.watch(K_PTY, 0, fd, libc::EPOLLIN | out);
        // One pty per container: the console socket is done.
        self.unwatch_close(self.console);
        self.console = -1;
        if let Some(p) = self.console_place.take() {
            sock::remove(&p);
            sys::close(p.dirfd);
        }
    }

    #[inline(never)]
    fn on_ctl(&mut self) {
        let mut chunk = [0u8; 128];
        let n = match sys::read(self.ctl, &mut chunk) {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        let mut lines = core::mem::take(&mut self.ctl_lines);
        lines.feed(&chunk[..n], &mut |cmd| match cmd {
            Ok(ctl::Cmd::Resize { rows, cols }) => {
                if self.pty >= 0 {
                    let _ = tty::resize(self.pty, rows, cols);
                } else {
                    self.winsz = Some((rows, cols));
                }
            }
            Ok(ctl::Cmd::Reopen) => {
                if let Err(e) = self.log.reopen() {
                    diag::warn_errno(b"cannot reopen the log", e);
                }
            }
            Err(bad) => diag::warn(&[b"ignored a malformed control line: ", match bad {
                ctl::Bad::Format => b"not `TYPE HEIGHT WIDTH`",
                ctl::Bad::Type => b"unknown type",
                ctl::Bad::Size => b"size out of 0..1000",
                ctl::Bad::TooLong => b"too long",
            }]),
        });
        self.ctl_lines = lines;
    }

    // ---- timeout and OOM -------------------------------------------

    /// A terminating signal came while the runtime was still creating: it
    /// is held for the container, but a runtime that hangs must not keep
    /// the shim alive for ever. After this grace the runtime is killed and
    /// the create reported as failed.
    fn arm_grace(&mut self) {
        const GRACE_S: i64 = 5;
        if self.cfg.timeout > 0 {
            return; // --timeout bounds the create already
        }
        if self.timer < 0 {
            self.timer = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
            if self.timer < 0 || self.watch(K_TIMER, 0, self.timer, libc::EPOLLIN).is_err() {
                return;
            }
        } else {
            let mut cur: libc::itimerspec = unsafe { core::mem::zeroed() };
            unsafe { libc::timerfd_gettime(self.timer, &mut cur) };
            let armed = cur.it_value.tv_sec != 0 || cur.it_value.tv_nsec != 0;
            if armed && (cur.it_value.tv_sec as i64) < GRACE_S {
                return; // an earlier deadline stands
            }
        }
        let mut t: libc::itimerspec = unsafe { core::mem::zeroed() };
        t.it_value.tv_sec = GRACE_S as _;
        unsafe { libc::timerfd_settime(self.timer, 0, &t, core::ptr::null_mut()) };
    }

    /// `--timeout` passed: kill the container's process group (or a runtime
    /// still creating it). The end is recorded as conmon does: status -1,
    /// `command timed out`.
    fn on_timeout(&mut self) {
        let mut v = 0u64;
        unsafe { libc::read(self.timer, &mut v as *mut u64 as *mut _, 8) };
        self.timed_out = true;
        if self.container > 0 {
            let pgid = unsafe { libc::getpgid(self.container) };
            // A group of 1 would make kill(-1) hit everything we may signal.
            let _ = if pgid > 1 { sys::kill(-pgid, libc::SIGKILL) } else { sys::kill(self.container, libc::SIGKILL) };
        } else if self.runtime > 0 {
            let _ = sys::kill(self.runtime, libc::SIGKILL);
        }
    }

    fn on_oom(&mut self) {
        if let Some(o) = &self.oom {
            if o.killed() {
                self.mark_oom();
            }
        }
    }

    fn mark_oom(&mut self) {
        if self.oomed {
            return;
        }
        self.oomed = true;
        // Podman looks for BUNDLE/oom.
        if self.bundle_fd >= 0 {
            let fd = unsafe { libc::openat(self.bundle_fd, c"oom".as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
            sys::close(fd);
        }
    }

    // ---- the end -----------------------------------------------------

    /// In conmon's order: output drained and synced, clients told, OOM
    /// checked, inherited descriptors let go (podman's port reservations
    /// must be free before it hears of the exit), then the exit records,
    /// the final sync message, and the exit command.
    #[inline(never)]
    fn finish(&mut self, e: Ended) -> ! {
        self.drain();
        if !self.cfg.no_sync_log {
            let _ = self.log.sync();
        }
        // Clients see the end of the stream only after the last record.
        for i in 0..attach::MAX_CLIENTS {
            sys::close(self.clients.take(i));
        }
        self.remove_sockets();
        if let Some(o) = &self.oom {
            if o.killed() {
                self.mark_oom();
            }
        }
        let sync = match self.report {
            Some(Report::Sync(fd)) => fd,
            _ => -1,
        };
        let [d1, d2] = diag::fds();
        sys::close_from_except(3, &[sync, d1, d2]);
        let status = if self.timed_out { -1 } else { e.code };
        self.write_status(b"exited", e, self.container);
        self.write_exit_files(status);
        if self.cfg.exec && sync >= 0 {
            let text: &[u8] = if self.timed_out { b"command timed out" } else { b"" };
            let line = self.sync_line(true, status as i64, text);
            let _ = sys::write_all(sync, line.as_bytes());
        }
        self.reap();
        if let Some(cmd) = self.cfg.exit_command {
            crate::exitcmd::run(cmd, &self.cfg.exit_args, self.cfg.exit_delay);
        }
        let code = if self.cfg.sync { status & 0xff } else { 0 };
        unsafe { libc::_exit(code) }
    }

    fn remove_sockets(&mut self) {
        if let Some(p) = self.attach_place.take() {
            sock::remove(&p);
        }
        if let Some(p) = self.console_place.take() {
            sock::remove(&p);
        }
        if let Some(p) = self.ctl_place.take() {
            sock::remove(&p);
            if self.cfg.bundle_sockets() {
                sock::remove(&Place { dirfd: p.dirfd, name: c"winsz" });
            }
        }
        if self.symlink {
            self.symlink = false;
            if let Some(link) = link_path(self.cfg, &mut scratch().a) {
                let _ = sys::unlink(link);
            }
        }
    }

    fn write_exit_files(&mut self, status: i32) {
        let sc = scratch();
        let (a, b) = (&mut sc.a, &mut sc.b);
        if let (Some(dir), Some(id)) = (self.cfg.exit_dir, self.cfg.id) {
            if let Err(e) = exit::write_exit_file(dir, id, status, a, b) {
                diag::warn_errno(b"cannot write the exit file in --exit-dir", e);
            }
        }
        if let Some(dir) = self.cfg.persist_dir {
            if let Err(e) = exit::write_exit_file(dir, c"exit", status, a, b) {
                diag::warn_errno(b"cannot write the exit file in --persist-dir", e);
            }
        }
    }

    fn write_status(&mut self, kind: &[u8], e: Ended, pid: libc::pid_t) {
        if let Some(path) = self.cfg.status_file {
            let lost = self.log.lost + self.journal.as_ref().map_or(0, |j| j.lost);
            let line = exit::status_line(kind, e, self.oomed, pid, &timefmt::now(), lost);
            if let Err(e) = sys::write_file_atomic(path, &mut scratch().b, line.as_bytes(), 0o644) {
                diag::warn_errno(b"cannot write the status file", e);
            }
        }
    }
}

/// SOCKET_DIR/UUID, one byte shorter when it would be exactly as long as
/// sun_path allows (conmon's workaround, so the same names result).
fn link_path<'b>(cfg: &Config, buf: &'b mut PathBuf) -> Option<&'b CStr> {
    buf.clear();
    let dir = cfg.socket_dir.unwrap_or(c"/var/run/crio");
    if !(buf.push(dir.to_bytes()) && buf.push(b"/") && buf.push(cfg.cuuid?.to_bytes())) {
        return None;
    }
    if buf.len() == 107 {
        let keep = buf.as_bytes()[..106].len();
        let mut t: Buf<108> = Buf::new();
        t.push(&buf.as_bytes()[..keep]);
        buf.clear();
        buf.push(t.as_bytes());
    }
    buf.as_cstr()
}

/// SIGKILL every remaining child of ours (from /proc/self/task/PID/children,
/// so no process table walk) and reap them, looking again for processes
/// re-parented to us meanwhile; bounded (about 2 s), never blocking for
/// ever on something unkillable.
fn kill_children() {
    let mut path: Buf<48> = Buf::new();
    path.push(b"/proc/self/task/");
    path.push_u64(sys::getpid() as u64);
    path.push(b"/children");
    let Some(p) = path.as_cstr() else { return };
    for _round in 0..100 {
        let mut any = false;
        if let Ok(fd) = sys::open(p, libc::O_RDONLY, 0) {
            let mut b = [0u8; 512];
            let n = sys::read(fd, &mut b).unwrap_or(0);
            sys::close(fd);
            for w in b[..n].split(|c| *c == b' ' || *c == b'\n') {
                if let Some(pid) = parse_u64(w, i32::MAX as u64) {
                    let _ = sys::kill(pid as libc::pid_t, libc::SIGKILL);
                    any = true;
                }
            }
        }
        loop {
            let mut si: libc::siginfo_t = unsafe { core::mem::zeroed() };
            let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut si, libc::WEXITED | libc::WNOHANG) };
            if r < 0 || unsafe { si.si_pid() } == 0 {
                break;
            }
            any = true;
        }
        if !any {
            return;
        }
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 20_000_000 };
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
    }
}

/// The parent pid of `pid`, from /proc/PID/stat (the field after the
/// parenthesised command name, which may itself hold spaces or parens).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let mut path: Buf<32> = Buf::new();
    path.push(b"/proc/");
    path.push_u64(pid as u64);
    path.push(b"/stat");
    let fd = sys::open(path.as_cstr()?, libc::O_RDONLY, 0).ok()?;
    let mut b = [0u8; 512];
    let n = sys::read(fd, &mut b).unwrap_or(0);
    sys::close(fd);
    let b = &b[..n];
    let close = b.iter().rposition(|&c| c == b')')?;
    let mut f = b[close + 1..].split(|&c| c == b' ').filter(|w| !w.is_empty());
    f.next()?; // state
    parse_u64(f.next()?, i32::MAX as u64).map(|p| p as libc::pid_t)
}
