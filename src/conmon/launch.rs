//! The launcher: what the manager runs. It parses the command line, checks
//! and opens what can be checked before detaching (so a bad path is an
//! error the manager sees on stderr), forks the daemon and returns.

use core::ffi::{c_char, c_int, CStr};
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use super::cli::{self, Action};
use super::{Report, Start};
use crate::buf::{parse_u64, Buf};
use crate::daemon::{self, Daemon};
use crate::diag::say;
use crate::logfile::LogFile;
use crate::sys::{self, OFlags, OwnedFd};

/// Exit statuses of the launcher.
pub const EXIT_OK: c_int = 0;
pub const EXIT_FAILED: c_int = 1;
pub const EXIT_USAGE: c_int = 2;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The conmon release whose behaviour shimlet follows.
pub const CONMON_COMPAT: &str = "2.1.6";

/// What the daemon keeps for its life, in one page-aligned static: the
/// parsed command line (not in a stack frame: the daemon keeps every frame
/// between `main` and its loop for its whole life, so those frames are
/// kept small), then the daemon (zeroed, see `Daemon::init`), whose fields
/// and first process slot share the command line's page.
#[repr(C, align(4096))]
struct Resident {
    config: MaybeUninit<cli::Config<'static>>,
    daemon: MaybeUninit<Daemon<'static>>,
}
#[link_section = ".sbss.pages"]
static mut RESIDENT: Resident = Resident { config: MaybeUninit::uninit(), daemon: MaybeUninit::zeroed() };

// The command line, the daemon's fields and slot 0 fit in one page.
const _: () = assert!(
    core::mem::size_of::<cli::Config<'static>>()
        + core::mem::offset_of!(Daemon<'static>, procs)
        + crate::table::SLOTS_OFFSET
        + core::mem::size_of::<crate::process::Proc<'static>>()
        <= 4096
);

/// The daemon's start, kept where its new stack can reach it; its page is
/// handed back once the daemon has taken it.
#[repr(C, align(4096))]
struct StartPage(MaybeUninit<Start<'static>>);
#[link_section = ".sbss.pages"]
static mut START: StartPage = StartPage(MaybeUninit::uninit());
/// The daemon's buffers.
#[link_section = ".sbss.pages"]
static mut BUFS: daemon::Bufs = daemon::Bufs::ZERO;

/// The conmon command line: parse, check, launch.
///
/// # Safety
/// `argv` holds `argc` valid C strings that live as long as the process;
/// called once.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // From here on argv is the copy in .bss (see `stack`): the daemon can
    // then let the kernel's stack go.
    let argv = crate::stack::adopt_args(argc, argv);
    match parse_args(argc, argv) {
        Ok(cfg) => launch(cfg),
        Err(code) => code,
    }
}

/// The daemon, on its own stack: the kernel's stack is dropped, then the
/// shim runs.
extern "C" fn daemon() -> ! {
    crate::stack::drop_old_stack();
    // SAFETY: START was written just before the switch to this stack, and
    // is read once, here; its page is dead afterwards.
    let start = unsafe { (*addr_of_mut!(START)).0.assume_init_read() };
    sys::release(addr_of_mut!(START) as usize, core::mem::size_of::<StartPage>());
    run_daemon(start)
}

fn run_daemon(start: Start<'static>) -> ! {
    // SAFETY: the one reference to the daemon's statics, taken once, in
    // the daemon.
    let (slot, bufs) = unsafe { (&mut (*addr_of_mut!(RESIDENT)).daemon, &mut *addr_of_mut!(BUFS)) };
    match Daemon::init(slot, bufs) {
        Ok(d) => super::run(d, start),
        Err(e) => super::fail_early(start, e),
    }
}

/// Parse argv into CONFIG; Err is the exit status after help, version or a
/// usage error.
#[inline(never)]
unsafe fn parse_args(argc: c_int, argv: *const *const c_char) -> Result<&'static cli::Config<'static>, c_int> {
    // SAFETY (caller): argv holds argc C strings for the process's life.
    let args = (1..argc.max(1) as usize).map(|i| CStr::from_ptr(*argv.add(i)));
    let conmon_style = cli::is_conmon(args.clone());
    match cli::parse(args) {
        Ok(Action::Run(c)) => Ok((*addr_of_mut!(RESIDENT)).config.write(c)),
        Ok(Action::Help) => {
            cli::write_help(&mut |b| {
                let _ = sys::write_all(sys::borrow(1), b);
            });
            Err(EXIT_OK)
        }
        Ok(Action::Version) => {
            // The first line is what podman's probe parses; it must read
            // like conmon's. The second says what this really is.
            let mut m: Buf<128> = Buf::new();
            m.push(b"conmon version ");
            m.push(CONMON_COMPAT.as_bytes());
            m.push(b"\nshimlet version ");
            m.push(VERSION.as_bytes());
            m.push(b" (conmon-compatible)\n");
            let _ = sys::write_all(sys::borrow(1), m.as_bytes());
            Err(EXIT_OK)
        }
        Err(u) => {
            let mut raw: Buf<512> = Buf::new();
            u.write_to(&mut raw);
            // Values come from argv: control bytes are shown as `?`, so a
            // usage error is always one line.
            let mut m: Buf<512> = Buf::new();
            for &b in raw.as_bytes() {
                m.push_byte(if b < 0x20 || b == 0x7f { b'?' } else { b });
            }
            if conmon_style {
                // conmon's texts and status for a conmon command line.
                say(&[m.as_bytes()]);
                return Err(EXIT_FAILED);
            }
            say(&[m.as_bytes(), b" (see shimlet --help)"]);
            Err(EXIT_USAGE)
        }
    }
}

/// A descriptor number named by an environment variable.
fn env_fd(name: &CStr) -> Option<&'static [u8]> {
    sys::getenv(name).map(|v| v.to_bytes())
}

fn env_fd_num(name: &CStr) -> Option<i32> {
    env_fd(name).and_then(|v| parse_u64(v, i32::MAX as u64)).map(|n| n as i32)
}

/// An inherited descriptor, close-on-exec from now on (the runtime and the
/// container must not get it).
fn take_inherited(fd: i32) -> Option<OwnedFd> {
    let fd = sys::adopt(fd)?;
    let _ = sys::set_cloexec(&fd, true);
    Some(fd)
}

fn launch(cfg: &'static cli::Config<'static>) -> c_int {
    // The sync fd: from the option, else from the environment (conmon's way).
    let mut sync_num = cfg.sync_fd;
    if sync_num.is_none() {
        if let Some(v) = env_fd(c"_OCI_SYNCPIPE") {
            match parse_u64(v, i32::MAX as u64) {
                Some(n) => sync_num = Some(n as i32),
                None => {
                    say(&[b"invalid _OCI_SYNCPIPE '", v, b"'"]);
                    return EXIT_USAGE;
                }
            }
        }
    }
    let sync = match sync_num {
        Some(n) => match take_inherited(n) {
            Some(fd) => Some(fd),
            None => {
                let mut b: Buf<12> = Buf::new();
                b.push_i64(n as i64);
                say(&[b"sync fd ", b.as_bytes(), b" is not open"]);
                return EXIT_USAGE;
            }
        },
        None => None,
    };

    // The bundle and pidfile defaults are resolved where they are used:
    // no path buffer stays resident in the daemon.
    let runtime = cfg.runtime.unwrap_or(c"runc");
    if cfg.conmon {
        if let Err(e) = sys::executable(runtime) {
            say(&[b"Runtime path ", runtime.to_bytes(), b" is not valid: ", sys::text(e)]);
            return EXIT_FAILED;
        }
    }
    // exec-attach: podman's go-ahead (a second start-pipe record) and the
    // pipe where we say the attach socket is ready.
    let attach_pipe = if cfg.exec_attach {
        match env_fd_num(c"_OCI_ATTACHPIPE").and_then(take_inherited) {
            Some(fd) => Some(fd),
            None => {
                say(&[b"--exec-attach specified but _OCI_ATTACHPIPE was not"]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    // The manager moves us into a cgroup, then says go: nothing may be
    // forked before that.
    let mut gate = None;
    if let Some(fd) = env_fd_num(c"_OCI_STARTPIPE").and_then(take_inherited) {
        let mut b = [0u8; 64];
        if let Err(e) = sys::read(&fd, &mut b) {
            say(&[b"start pipe read failed: ", sys::text(e)]);
            return EXIT_FAILED;
        }
        if cfg.exec_attach {
            gate = Some(fd);
        }
    }

    // Check and open what can fail before detaching: the manager sees
    // these errors on stderr, and nothing is left running.
    if let Err(e) = crate::diag::open(cfg.diag, cfg.syslog, cfg.id) {
        say(&[b"cannot open --diag ", cfg.diag.unwrap_or(c"").to_bytes(), b": ", sys::text(e)]);
        return EXIT_FAILED;
    }
    // Records written at exit: their paths must be buildable (".tmp" is
    // added for the atomic rename) and their directories must exist.
    let room = crate::buf::PATH_MAX - 8;
    let too_long = |p: Option<&CStr>, extra: usize| p.is_some_and(|p| p.to_bytes().len() + extra > room);
    let id_len = cfg.id.map_or(0, |i| i.to_bytes().len()) + 1;
    for (what, p, extra) in [
        (&b"--status-file"[..], cfg.status_file, 0),
        (b"--exit-dir", cfg.exit_dir, id_len),
        (b"--persist-dir", cfg.persist_dir, 5),
        (b"--log", cfg.log, 2),
    ] {
        if too_long(p, extra) {
            say(&[what, b" path is too long"]);
            return EXIT_FAILED;
        }
    }
    for (what, dir) in [(&b"--exit-dir"[..], cfg.exit_dir), (b"--persist-dir", cfg.persist_dir)] {
        if let Some(d) = dir {
            if let Err(e) = sys::exists(d) {
                say(&[what, b" ", d.to_bytes(), b": ", sys::text(e)]);
                return EXIT_FAILED;
            }
        }
    }
    let log = match cfg.log {
        Some(path) => match LogFile::open(path) {
            Ok(mut l) => {
                l.limit(cfg.log_size_max, cfg.log_global_size_max);
                l
            }
            Err(e) => {
                say(&[b"cannot open log ", path.to_bytes(), b": ", sys::text(e)]);
                return EXIT_FAILED;
            }
        },
        None => LogFile::none(),
    };
    let shim_pidfile = match cfg.shim_pidfile {
        Some(path) => match sys::open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, 0o644) {
            Ok(fd) => Some(fd),
            Err(e) => {
                say(&[b"cannot open shim pidfile ", path.to_bytes(), b": ", sys::text(e)]);
                return EXIT_FAILED;
            }
        },
        None => None,
    };

    // Signals are blocked from here on, inherited by the daemon, and read
    // from its signalfd: none can kill it between fork and the loop.
    sys::block_signals(&daemon::SIGNALS);

    let journal = if cfg.journald {
        match crate::journal::Journal::open(cfg.id.unwrap_or(c""), cfg.name, cfg.log_tag) {
            Ok(j) => Some(j),
            Err(e) => {
                say(&[
                    b"journald log driver: cannot connect to ",
                    crate::journal::socket_path().to_bytes(),
                    b": ",
                    sys::text(e),
                ]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    // Survive the host's OOM killer before the container does: set here,
    // inherited by the daemon.
    let reset_oom = sys::set_oom_score_adj(b"-1000");
    let start = |report| Start { cfg, runtime, report, log, journal, gate, attach_pipe, reset_oom };
    if cfg.sync {
        // Not detached: the caller waits for this very process.
        if let Some(fd) = shim_pidfile {
            write_pid(&fd, sys::getpid());
        }
        run_daemon(start(sync.map(Report::Sync)));
    }
    // conmon's launcher never waits: the manager reads the sync pipe.
    let wait_pipe = if sync.is_none() && !cfg.conmon {
        match sys::pipe() {
            Ok(p) => Some(p),
            Err(e) => {
                say(&[b"pipe: ", sys::text(e)]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };

    let pid = match sys::fork() {
        Ok(p) => p,
        Err(e) => {
            say(&[b"fork: ", sys::text(e)]);
            return EXIT_FAILED;
        }
    };
    if pid == 0 {
        drop(shim_pidfile);
        let report = match (sync, wait_pipe) {
            (Some(fd), _) => Some(Report::Sync(fd)),
            (None, Some((_r, w))) => Some(Report::Launcher(w)),
            (None, None) => None,
        };
        // SAFETY: the one write of START, in the daemon's process, before
        // the switch; `daemon` reads it once.
        unsafe {
            (*addr_of_mut!(START)).0.write(start(report));
            crate::stack::switch(daemon)
        }
    }

    // The launcher: record the daemon's pid, then either leave the outcome
    // to the manager (sync pipe) or wait for it.
    if let Some(fd) = shim_pidfile {
        write_pid(&fd, pid);
    }
    let Some((r, w)) = wait_pipe else { return EXIT_OK };
    drop(w);
    wait_outcome(r)
}

fn write_pid(fd: &OwnedFd, pid: sys::Pid) {
    let mut n: Buf<12> = Buf::new();
    n.push_i64(pid as i64);
    if let Err(e) = sys::write_small_file(fd, n.as_bytes()) {
        say(&[b"cannot write shim pidfile: ", sys::text(e)]);
    }
}

/// Kept out of `launch`'s frame: the daemon forks from `launch` and should
/// not carry this buffer's stack pages.
#[inline(never)]
fn wait_outcome(r: OwnedFd) -> c_int {
    let mut msg: Buf<4096> = Buf::new();
    let mut chunk = [0u8; 512];
    while let Ok(n) = sys::read(&r, &mut chunk) {
        if n == 0 || !msg.push(&chunk[..n]) {
            break;
        }
    }
    match msg.as_bytes().split_first() {
        Some((b'0', _)) => EXIT_OK,
        Some((_, text)) => {
            say(&[b"create failed: ", text]);
            EXIT_FAILED
        }
        None => {
            say(&[b"the shim exited before reporting the create outcome"]);
            EXIT_FAILED
        }
    }
}
