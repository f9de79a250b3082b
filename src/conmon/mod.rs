//! The conmon front end: podman and CRI-O run shimlet as they run conmon.
//! One process per shim (the table's capacity is 1): the launcher
//! (`launch`) parses the command line (`cli`), checks what it can, forks
//! the daemon; the daemon sets the process up as conmon would (the attach
//! socket, ctl and winsz FIFOs in the bundle, the attach symlink), runs
//! the runtime with conmon's argument order, and reports as conmon does:
//! `{"pid": N}` (or `data` with `--api-version`) on the sync pipe, the
//! exit files, the exit command.

mod allowlist;
pub mod cli;
mod exitcmd;
mod inherit;
pub mod launch;
mod notify;

use core::ffi::CStr;

use crate::attach::Policy;
use crate::buf::{Buf, PathBuf};
use crate::create::{self, Argv, Spawn};
use crate::ctl::{self, Ctl};
use crate::daemon::{Daemon, Front, Kind, Token};
use crate::diag;
use crate::exit::{self, Ended};
use crate::journal::Journal;
use crate::json;
use crate::logfile::LogFile;
use crate::output::Output;
use crate::process::{Phase, Proc, Stdio};
use crate::sock::{self, Place};
use crate::sys::{self, AsFd, AsRawFd, BorrowedFd, Errno, EventFlags, OFlags, OwnedFd, Pid};
use crate::timefmt;
use crate::tty::Console;
use cli::Config;

/// Where the create outcome goes.
pub enum Report {
    /// The manager's sync pipe: one JSON line.
    Sync(OwnedFd),
    /// The waiting launcher's pipe: `0` or `1` then the error text.
    Launcher(OwnedFd),
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
    pub gate: Option<OwnedFd>,
    /// exec-attach: where to say the attach socket is ready.
    pub attach_pipe: Option<OwnedFd>,
    /// The launcher lowered the OOM score the daemon inherits: the runtime
    /// puts it back. (Set there: /proc/self entries looked up by the daemon
    /// would stay charged to it for its whole life.)
    pub reset_oom: bool,
}

/// The one process's slot.
const SLOT: usize = 0;
/// Runtime error text kept for the report; the JSON line stays < 4 KiB.
const ERR_MAX: usize = 2048;
/// A terminating signal while the runtime creates: it is held for the
/// container, but a runtime that hangs must not keep the shim alive for
/// ever. After this grace the runtime is killed.
const GRACE_MS: u64 = 5000;

pub struct Conmon<'a> {
    cfg: &'a Config<'a>,
    runtime: &'a CStr,
    report: Option<Report>,
    /// The bundle directory (O_PATH): where conmon's files go.
    bundle: Option<OwnedFd>,
    /// Made SOCKET_DIR/UUID -> BUNDLE (removed at exit).
    symlink: bool,
    /// The deadline fired: `--timeout`, or the grace for held signals.
    timed_out: bool,
    /// --sdnotify-socket: the container's socket and the relay.
    notify: Option<notify::Notify<'a>>,
}

type Step<T> = Result<T, (&'static [u8], Errno)>;

fn ctx<T>(r: sys::Result<T>, what: &'static [u8]) -> Step<T> {
    r.map_err(|e| (what, e))
}

/// The daemon's body: never returns.
pub fn run<'a>(d: &mut Daemon<'a>, s: Start<'a>) -> ! {
    d.procs.set_capacity(1);
    let mut c = Conmon {
        cfg: s.cfg,
        runtime: s.runtime,
        report: s.report,
        bundle: None,
        symlink: false,
        timed_out: false,
        notify: None,
    };
    if let Err((what, e)) = c.setup(d, s.log, s.journal, s.gate, s.attach_pipe, s.reset_oom) {
        let mut m: Buf<256> = Buf::new();
        m.push(b"shimlet: ");
        m.push(what);
        m.push(b": ");
        m.push(sys::text(e));
        c.fail(d, Ended { code: 1, signal: 0 }, m.as_bytes());
    }
    d.serve(&mut c)
}

/// The daemon could not even start (no epoll set, no signalfd): said as
/// a failed create.
pub fn fail_early(s: Start<'_>, e: Errno) -> ! {
    let mut c = Conmon {
        cfg: s.cfg,
        runtime: s.runtime,
        report: s.report,
        bundle: None,
        symlink: false,
        timed_out: false,
        notify: None,
    };
    c.write_status(b"failed", Ended { code: 1, signal: 0 }, 0, 0, false);
    let mut m: Buf<256> = Buf::new();
    m.push(b"shimlet: cannot start the event loop: ");
    m.push(sys::text(e));
    c.report_failure(m.as_bytes())
}

impl<'a> Conmon<'a> {
    #[inline(never)]
    fn setup(
        &mut self,
        d: &mut Daemon<'a>,
        log: LogFile<'a>,
        journal: Option<Journal>,
        gate: Option<OwnedFd>,
        attach_pipe: Option<OwnedFd>,
        reset_oom: bool,
    ) -> Step<()> {
        let cfg = self.cfg;
        // Detach: own session, child subreaper (so the container, once the
        // runtime exits, is re-parented to us and reaped here).
        sys::detach();
        // Our stdio is nobody's business: /dev/null, which is also the
        // container's stdin unless it gets a pipe. With passthrough logging
        // the runtime inherits it first, then we let go of it.
        let null = ctx(sys::open(c"/dev/null", OFlags::RDWR, 0), b"open /dev/null")?;
        // --sync: the caller waits for this very process; a create failure
        // with no sync fd is told on its stderr, so that stays.
        let keep = if cfg.sync && self.report.is_none() { 2 } else { 0 };
        if !cfg.passthrough {
            for fd in 0..3 - keep {
                ctx(sys::dup_to(&null, fd), b"dup2")?;
            }
        }
        if cfg.bundle_sockets() || cfg.conmon {
            let dir = cfg.bundle.unwrap_or(c".");
            self.bundle = Some(ctx(sys::open_dir(dir), b"open bundle")?);
        }
        if let Some(host) = cfg.sdnotify.filter(|_| !cfg.exec) {
            // conmon's place, in the bundle whatever --socket-dir-path says.
            let dir = match &self.bundle {
                Some(b) => b.as_fd(),
                None => sys::cwd(),
            };
            let n = ctx(notify::Notify::open(dir, host), b"sd-notify socket BUNDLE/notify/notify.sock")?;
            ctx(d.poll.add(Token::new(Kind::Front, SLOT, 0, &n.sock), &n.sock, EventFlags::IN), b"epoll_ctl")?;
            self.notify = Some(n);
        }
        let (out_r, out_w) = ctx(sys::pipe(), b"pipe")?;
        let (err_r, err_w) = ctx(sys::pipe(), b"pipe")?;
        let mut io = Stdio::new(cfg.terminal);
        io.out = Some(out_r);
        io.err = Some(err_r);
        let mut stdin_r = None;
        if cfg.stdin && !cfg.terminal {
            let (r, w) = ctx(sys::pipe(), b"pipe")?;
            let _ = sys::set_nonblock(&w);
            stdin_r = Some(r);
            io.stdin = Some(w);
        }
        let policy = if cfg.terminal {
            Policy::Terminal
        } else if cfg.leave_stdin_open {
            Policy::LeaveOpen
        } else {
            Policy::Once
        };
        let output = Output::new(log, journal);
        // Until the runtime's pid is known the phase has none: it is set
        // right after the spawn below.
        let p = Proc::new(SLOT, Phase::Creating { runtime: 0, held: 0 }, io, output, policy);
        d.procs.put(SLOT, p);

        // The attach socket and ctl FIFO exist before the outcome is
        // reported, so a manager can attach as soon as it hears back.
        let bundle = self.bundle.as_ref().map(|b| b.as_raw_fd());
        let in_bundle = |name: &'a CStr| -> Step<Place<'a>> {
            let dir = bundle.ok_or((&b"bundle"[..], Errno::BADF))?;
            ctx(Place::within(sys::borrow(dir), name), b"bundle")
        };
        let attach = match cfg.attach {
            Some(path) => Some(ctx(Place::of(path), b"attach socket directory")?),
            None if cfg.bundle_sockets() => Some(in_bundle(c"attach")?),
            None => None,
        };
        if let Some(place) = attach {
            let l = ctx(sock::listen(&place, sock::SEQPACKET, 128, 0o700), b"attach socket")?;
            let p = d.procs.get_mut(SLOT).ok_or((&b"slot"[..], Errno::NOMEM))?;
            ctx(d.poll.add(Token::new(Kind::Listen, SLOT, 0, &l), &l, EventFlags::IN), b"epoll_ctl")?;
            p.listen = Some((l, place));
        }
        let ctl_place = match cfg.ctl {
            Some(path) => Some(ctx(Place::of(path), b"ctl fifo directory")?),
            None if cfg.bundle_sockets() => Some(in_bundle(c"ctl")?),
            None => None,
        };
        if let Some(place) = ctl_place {
            let c = ctx(Ctl::make(place), b"ctl fifo")?;
            ctx(d.poll.add(Token::new(Kind::Ctl, SLOT, 0, &c.r), &c.r, EventFlags::IN), b"epoll_ctl")?;
            if let Some(p) = d.procs.get_mut(SLOT) {
                p.ctl = Some(c);
            }
        }
        if cfg.bundle_sockets() {
            // conmon relays sizes through BUNDLE/winsz; it must exist.
            if let Ok(w) = in_bundle(c"winsz") {
                let _ = ctl::make_fifo(&w);
            }
            if !cfg.full_attach && cfg.cuuid.is_some() {
                ctx(self.make_symlink(), b"attach symlink")?;
            }
        }
        if let Some(fd) = attach_pipe {
            // The socket, ctl and winsz exist: the manager may connect.
            let _ = sys::write_all(&fd, b"{\"data\": 0}\n");
        }
        if cfg.timeout > 0 {
            if let Some(p) = d.procs.get_mut(SLOT) {
                p.deadline = Some(Daemon::after_ms(cfg.timeout as u64 * 1000));
            }
        }
        if cfg.terminal {
            let c = ctx(Console::make(SLOT), b"console socket")?;
            ctx(d.poll.add(Token::new(Kind::Console, SLOT, 0, &c.listen), &c.listen, EventFlags::IN), b"epoll_ctl")?;
            if let Some(p) = d.procs.get_mut(SLOT) {
                p.console = Some(c);
            }
        }
        // conmon's runtime child refuses a bad LISTEN_PID; its words reach
        // the manager as the create's failure.
        let handed = match inherit::handed(cfg) {
            Ok(h) => h,
            Err(v) => {
                let mut m: Buf<40> = Buf::new();
                m.push(b"Invalid LISTEN_PID ");
                m.push(&v.to_bytes()[..v.to_bytes().len().min(10)]);
                self.fail(d, Ended { code: 1, signal: 0 }, m.as_bytes())
            }
        };
        let runtime = {
            let p = d.procs.get_mut(SLOT).ok_or((&b"slot"[..], Errno::NOMEM))?;
            let stdio: [BorrowedFd<'_>; 3] = if cfg.passthrough {
                [sys::borrow(0), sys::borrow(1), sys::borrow(2)]
            } else {
                [stdin_r.as_ref().map_or(null.as_fd(), |r| r.as_fd()), out_w.as_fd(), err_w.as_fd()]
            };
            let console = p.console.as_mut().map(|c| c.path() as *const CStr);
            // SAFETY: the console's path lives in the process's Console,
            // which outlives the spawn (the child has exec'd when it returns).
            let console = console.map(|c| unsafe { &*c });
            ctx(self.spawn(stdio, console, gate.as_ref().map(|g| g.as_fd()), reset_oom, &handed), b"fork")?
        };
        if let Some(p) = d.procs.get_mut(SLOT) {
            p.phase = Phase::Creating { runtime, held: 0 };
        }
        drop((out_w, err_w, stdin_r, gate));
        if cfg.passthrough {
            for fd in 0..3 {
                let _ = sys::dup_to(&null, fd);
            }
        }
        Ok(())
    }

    /// Run the runtime with conmon's argument order:
    /// `RUNTIME [--systemd-cgroup] [args] create --bundle B --pid-file P
    /// [--no-pivot] [--no-new-keyring] [opts] [--console-socket S] ID`;
    /// with --restore, `restore` for `create` and `--detach --image-path
    /// DIR --work-path B` after the keyring; or `RUNTIME [args] exec
    /// --pid-file P --process SPEC --detach [opts] [--console-socket S] ID`.
    #[inline(never)]
    fn spawn(
        &self,
        stdio: [BorrowedFd<'_>; 3],
        console: Option<&CStr>,
        gate: Option<BorrowedFd<'_>>,
        reset_oom: bool,
        handed: &inherit::Handed,
    ) -> sys::Result<Pid> {
        let cfg = self.cfg;
        let mut cwd = PathBuf::new();
        let mut pidbuf = PathBuf::new();
        let bundle: &CStr = match cfg.bundle {
            Some(b) => b,
            None => sys::getcwd(cwd.spare()).unwrap_or(c"."),
        };
        let pidfile = pidfile_path(cfg, &mut pidbuf).ok_or(Errno::NAMETOOLONG)?;
        let mut a = Argv::new();
        a.push(self.runtime);
        if !cfg.exec && cfg.systemd_cgroup {
            a.push(c"--systemd-cgroup");
        }
        for w in cfg.values(cli::Key::RuntimeArg) {
            a.push(w);
        }
        if cfg.exec {
            for w in [c"exec", c"--pid-file", pidfile, c"--process", cfg.exec_spec.unwrap_or(c""), c"--detach"] {
                a.push(w);
            }
        } else {
            let command = if cfg.restore.is_some() { c"restore" } else { c"create" };
            for w in [command, c"--bundle", bundle, c"--pid-file", pidfile] {
                a.push(w);
            }
            if cfg.no_pivot {
                a.push(c"--no-pivot");
            }
            if cfg.no_new_keyring {
                a.push(c"--no-new-keyring");
            }
            if let Some(image) = cfg.restore {
                // The restored container runs at once: the runtime returns
                // once it does (--detach); CRIU works in the bundle.
                for w in [c"--detach", c"--image-path", image, c"--work-path", bundle] {
                    a.push(w);
                }
            }
        }
        for w in cfg.values(cli::Key::RuntimeOpt) {
            a.push(w);
        }
        if let Some(s) = console {
            a.push(c"--console-socket");
            a.push(s);
        }
        a.push(cfg.id.unwrap_or(c""));
        if diag::wants(cli::level::TRACE) {
            let mut m: Buf<480> = Buf::new();
            for w in a.words() {
                m.push(w.to_bytes());
                m.push(b" ");
            }
            diag::note(cli::level::TRACE, &[b"calling runtime args: ", m.as_bytes()]);
        }
        let (keep_from_3, own_listen_pid) = (handed.keep, handed.own_listen_pid);
        create::spawn(&Spawn {
            prog: self.runtime,
            argv: &a,
            stdio,
            gate,
            reset_oom,
            keep_from_3,
            extra: &[],
            env: None,
            own_listen_pid,
        })
    }

    /// SOCKET_DIR/UUID -> BUNDLE, so clients reach BUNDLE/attach by a path
    /// short enough for sun_path (conmon's scheme without --full-attach).
    #[inline(never)]
    fn make_symlink(&mut self) -> sys::Result<()> {
        let mut link = PathBuf::new();
        let mut cwd = PathBuf::new();
        let link = link_path(self.cfg, &mut link).ok_or(Errno::NAMETOOLONG)?;
        let target: &CStr = match self.cfg.bundle {
            Some(b) if b.to_bytes().starts_with(b"/") => b,
            _ => sys::getcwd(cwd.spare()).ok_or_else(sys::last_errno)?,
        };
        let _ = sys::unlink(link);
        sys::symlink(target, link)?;
        self.symlink = true;
        Ok(())
    }

    fn held(d: &mut Daemon<'a>) -> u64 {
        match d.proc(SLOT).map(|p| p.phase) {
            Some(Phase::Creating { held, .. }) => held,
            _ => 0,
        }
    }

    /// The container's pid from the pidfile; it must be ours to reap:
    /// re-parented to us when the runtime exited (or reaped already, if it
    /// was that quick).
    fn read_pid(&self, d: &Daemon<'a>) -> Result<Pid, &'static [u8]> {
        let mut buf = PathBuf::new();
        let path = pidfile_path(self.cfg, &mut buf).ok_or(&b"path too long"[..])?;
        let pid = create::read_pidfile(path)?;
        if d.early.contains(pid) || sys::is_child(pid) {
            Ok(pid)
        } else {
            Err(b"it names a process that is not a child of the shim")
        }
    }

    /// What the failed runtime printed: its stderr, else its stdout.
    fn runtime_error(d: &mut Daemon<'a>, msg: &mut Buf<ERR_MAX>) {
        let Some(p) = d.procs.get(SLOT) else { return };
        let (err, out) = (p.io.err.as_ref().map(|f| f.as_fd()), p.io.out.as_ref().map(|f| f.as_fd()));
        create::collect_error(err, out, &mut d.bufs.io, msg);
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
        match (&self.report, keep) {
            (Some(Report::Sync(fd)), true) => {
                let _ = sys::write_all(fd, text);
            }
            _ => match self.report.take() {
                Some(Report::Sync(fd)) => {
                    let _ = sys::write_all(&fd, text);
                }
                Some(Report::Launcher(fd)) => {
                    let _ = sys::write_all(&fd, if ok { b"0" } else { b"1" });
                    if !ok {
                        let _ = sys::write_all(&fd, text);
                    }
                }
                None => {}
            },
        }
    }

    /// Create failed: record, report, clean up, exit. Nothing is left running.
    #[inline(never)]
    fn fail(&mut self, d: &mut Daemon<'a>, e: Ended, text: &[u8]) -> ! {
        // Whatever the runtime left (a container process stuck before its
        // start, a runtime child) goes with us, not on as an orphan.
        create::kill_leftovers();
        // Record first: once the report is out, the manager may look.
        self.write_status(b"failed", e, 0, d.proc(SLOT).map_or(0, |p| p.output.lost()), false);
        while sys::reap_one().is_some() {}
        self.remove_places(d);
        self.report_failure(text)
    }

    fn report_failure(&mut self, text: &[u8]) -> ! {
        let text = crate::buf::trim(text);
        match self.report {
            Some(Report::Sync(_)) => {
                let line = self.sync_line(false, -1, text);
                self.send_report(false, line.as_bytes());
            }
            None if self.cfg.sync => diag::say(&[b"create failed: ", text]),
            _ => self.send_report(false, text),
        }
        sys::exit(1)
    }

    fn remove_places(&mut self, d: &mut Daemon<'a>) {
        if let Some(n) = &self.notify {
            n.remove();
        }
        if let Some(p) = d.proc(SLOT) {
            p.remove_places();
            if self.cfg.bundle_sockets() {
                if let Some(c) = &p.ctl {
                    if let Ok(w) = c.place.sibling(c"winsz") {
                        w.remove();
                    }
                }
            }
        }
        if core::mem::take(&mut self.symlink) {
            let mut buf = PathBuf::new();
            if let Some(link) = link_path(self.cfg, &mut buf) {
                let _ = sys::unlink(link);
            }
        }
    }

    /// The OOM files conmon 2.2 makes: BUNDLE/oom (podman 4 looks there)
    /// and PERSIST_DIR/oom (podman 5 looks there).
    fn mark_oom(&self) {
        if let Some(b) = &self.bundle {
            let _ = sys::openat(b, c"oom", OFlags::CREATE | OFlags::WRONLY, 0o644);
        }
        if let Some(dir) = self.cfg.persist_dir {
            if let Ok(d) = sys::open_dir(dir) {
                let _ = sys::openat(&d, c"oom", OFlags::CREATE | OFlags::WRONLY, 0o644);
            }
        }
    }

    fn write_exit_files(&self, status: i32) {
        let (mut a, mut b) = (PathBuf::new(), PathBuf::new());
        if let (Some(dir), Some(id)) = (self.cfg.exit_dir, self.cfg.id) {
            if let Err(e) = exit::write_exit_file(dir, id, status, &mut a, &mut b) {
                diag::warn_errno(b"cannot write the exit file in --exit-dir", e);
            }
        }
        if let Some(dir) = self.cfg.persist_dir {
            if let Err(e) = exit::write_exit_file(dir, c"exit", status, &mut a, &mut b) {
                diag::warn_errno(b"cannot write the exit file in --persist-dir", e);
            }
        }
    }

    fn write_status(&self, kind: &[u8], e: Ended, pid: Pid, lost: u64, oom: bool) {
        if let Some(path) = self.cfg.status_file {
            let line = exit::status_line(kind, e, oom, pid, &timefmt::now(), lost);
            let mut tmp = PathBuf::new();
            if let Err(e) = sys::write_file_atomic(path, &mut tmp, line.as_bytes(), 0o644) {
                diag::warn_errno(b"cannot write the status file", e);
            }
        }
    }
}

impl<'a> Front<'a> for Conmon<'a> {
    /// The container's sd-notify socket has datagrams.
    fn ready(&mut self, d: &mut Daemon<'a>, tok: Token, _ev: EventFlags) {
        if let Some(n) = self.notify.as_mut().filter(|n| n.sock.as_raw_fd() == tok.fd) {
            n.relay(&mut d.bufs.io);
        }
    }

    fn signal(&mut self, d: &mut Daemon<'a>, sig: i32) {
        let timeout = self.cfg.timeout;
        let Some(p) = d.proc(SLOT) else { return };
        let held = p.signal(sig);
        if held && matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) && timeout == 0 {
            // --timeout bounds the create already; else a grace, unless an
            // earlier deadline stands.
            let grace = Daemon::after_ms(GRACE_MS);
            if p.deadline.is_none_or(|d| d > grace) {
                p.deadline = Some(grace);
            }
        }
    }

    #[inline(never)]
    fn runtime_exited(&mut self, d: &mut Daemon<'a>, _slot: usize, e: Ended) {
        let cfg = self.cfg;
        if self.timed_out {
            let mut msg: Buf<96> = Buf::new();
            if Self::held(d) != 0 && cfg.timeout == 0 {
                msg.push(b"the runtime was still creating when the shim was told to stop; it was killed");
            } else {
                msg.push(b"the runtime did not finish within ");
                msg.push_u64(cfg.timeout as u64);
                msg.push(b" s and was killed");
            }
            self.fail(d, e, msg.as_bytes());
        }
        // For exec, the runtime's status is not the verdict: a missing
        // pidfile is (conmon's rule).
        if !e.success() && !cfg.exec {
            let mut msg: Buf<ERR_MAX> = Buf::new();
            Self::runtime_error(d, &mut msg);
            if msg.is_empty() {
                msg.push(b"runtime ");
                msg.push(cfg.runtime.unwrap_or(c"runc").to_bytes());
                if e.signal != 0 {
                    msg.push(b" was killed by signal ");
                    msg.push_i64(e.signal as i64);
                } else {
                    msg.push(b" exited with status ");
                    msg.push_i64(e.code as i64);
                }
            }
            self.fail(d, e, msg.as_bytes());
        }
        let pid = match self.read_pid(d) {
            Ok(pid) => pid,
            Err(why) => {
                let mut msg: Buf<ERR_MAX> = Buf::new();
                if cfg.exec {
                    Self::runtime_error(d, &mut msg);
                }
                if msg.is_empty() {
                    msg.push(b"the container pid could not be read from the runtime's pidfile: ");
                    msg.push(why);
                }
                self.fail(d, Ended { code: 1, signal: 0 }, msg.as_bytes());
            }
        };
        if cfg.terminal && !d.procs.get_mut(SLOT).is_some_and(|p| p.take_pending_pty(&d.poll)) {
            let _ = sys::kill(pid, libc::SIGKILL);
            self.fail(d, Ended { code: 1, signal: 0 }, b"the runtime did not send a terminal over the console socket");
        }
        // A legacy exec (no API version) reports only the final status.
        if !cfg.exec || cfg.api_version {
            let line = self.sync_line(false, pid as i64, b"");
            self.send_report(true, line.as_bytes());
        }
        let already = d.early.take(pid);
        if diag::wants(cli::level::DEBUG) {
            let mut n: Buf<12> = Buf::new();
            n.push_i64(pid as i64);
            diag::note(cli::level::DEBUG, &[b"container PID: ", n.as_bytes()]);
        }
        let poll = &d.poll;
        if let Some(p) = d.procs.get_mut(SLOT) {
            if cfg.timeout == 0 {
                // Only a grace for held signals was armed: create is over.
                p.deadline = None;
            }
            p.adopt(poll, pid, already);
        }
    }

    /// `--timeout` passed, or the grace for held signals: kill the
    /// container's process group (or a runtime still creating it). The end
    /// is recorded as conmon does: status -1, `command timed out`.
    fn deadline(&mut self, d: &mut Daemon<'a>, _slot: usize) {
        self.timed_out = true;
        match d.proc(SLOT).map(|p| p.phase) {
            Some(Phase::Running { pid }) => {
                // A group of 1 would make kill(-1) hit everything we may signal.
                let _ = match sys::getpgid(pid) {
                    Some(g) if g > 1 => sys::kill_group(g, libc::SIGKILL),
                    _ => sys::kill(pid, libc::SIGKILL),
                };
            }
            Some(Phase::Creating { runtime, .. }) if runtime > 0 => {
                let _ = sys::kill(runtime, libc::SIGKILL);
            }
            _ => {}
        }
    }

    fn oom(&mut self, _d: &mut Daemon<'a>, _slot: usize) {
        self.mark_oom();
    }

    /// In conmon's order: output drained and synced (the daemon drained
    /// it), clients told, OOM checked, inherited descriptors let go
    /// (podman's port reservations must be free before it hears of the
    /// exit), then the exit records, the final sync message, and the exit
    /// command.
    #[inline(never)]
    fn exited(&mut self, d: &mut Daemon<'a>, _slot: usize, e: Ended) {
        let cfg = self.cfg;
        let poll = &d.poll;
        let Some(p) = d.procs.get_mut(SLOT) else { sys::exit(1) };
        if !cfg.no_sync_log {
            let _ = p.output.log.sync();
        }
        // Clients see the end of the stream only after the last record.
        p.close_clients(poll);
        if p.check_oom() {
            self.mark_oom();
        }
        let (lost, oomed, pid) = (p.output.lost(), p.oomed, p.pid().unwrap_or(0));
        self.remove_places(d);
        d.procs.remove(SLOT);
        let sync = match &self.report {
            Some(Report::Sync(fd)) => fd.as_raw_fd(),
            _ => -1,
        };
        let [d1, d2] = diag::fds();
        sys::close_from_except(3, &[sync, d1, d2]);
        let status = if self.timed_out { -1 } else { e.code };
        if diag::wants(cli::level::INFO) {
            let mut n: Buf<32> = Buf::new();
            n.push_i64(pid as i64);
            n.push(b" exited with status ");
            n.push_i64(status as i64);
            diag::note(cli::level::INFO, &[b"container ", n.as_bytes()]);
        }
        self.write_status(b"exited", e, pid, lost, oomed);
        self.write_exit_files(status);
        if cfg.exec && sync >= 0 {
            let text: &[u8] = if self.timed_out { b"command timed out" } else { b"" };
            let line = self.sync_line(true, status as i64, text);
            let _ = sys::write_all(sys::borrow(sync), line.as_bytes());
        }
        while sys::reap_one().is_some() {}
        if let Some(cmd) = cfg.exit_command {
            exitcmd::run(cmd, cfg.values(cli::Key::ExitCommandArg), cfg.exit_delay);
        }
        sys::exit(if cfg.sync { status & 0xff } else { 0 })
    }
}

/// The pidfile path the runtime is told to write: `--pidfile`; else on a
/// conmon command line or for exec, `pidfile-ID` in the working directory
/// (conmon's default); else `BUNDLE/pidfile`, or `pidfile` in the working
/// directory when that is the bundle. The shim never changes directory,
/// so relative paths mean the same to it and to the runtime.
pub fn pidfile_path<'b>(cfg: &Config<'b>, buf: &'b mut PathBuf) -> Option<&'b CStr> {
    if let Some(p) = cfg.pidfile {
        return Some(p);
    }
    buf.clear();
    if cfg.conmon || cfg.exec {
        if !(buf.push(b"pidfile-") && buf.push(cfg.id.unwrap_or(c"").to_bytes())) {
            return None;
        }
        return buf.as_cstr();
    }
    if let Some(b) = cfg.bundle {
        if !(buf.push(b.to_bytes()) && buf.push(b"/")) {
            return None;
        }
    }
    if !buf.push(b"pidfile") {
        return None;
    }
    buf.as_cstr()
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
        let mut t: Buf<108> = Buf::new();
        t.push(&buf.as_bytes()[..106]);
        buf.clear();
        buf.push(t.as_bytes());
    }
    buf.as_cstr()
}
