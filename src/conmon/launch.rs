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

pub use crate::VERSION;
/// The conmon release whose behaviour shimlet follows.
pub const CONMON_COMPAT: &str = "2.2.1";
/// The git commit of the build (`make` passes it), as conmon's `commit:`.
pub const COMMIT: &str = match option_env!("SHIMLET_COMMIT") {
    Some(c) if !c.is_empty() => c,
    _ => "unknown",
};

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
#[link_section = ".sbss.zcold"]
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
    let words = core::slice::from_raw_parts(argv.add(1), (argc.max(1) - 1) as usize);
    let args = cli::Args::new(words);
    let conmon_style = cli::is_conmon(args.iter());
    match cli::parse(args) {
        Ok(Action::Run(c)) => Ok((*addr_of_mut!(RESIDENT)).config.write(c)),
        Ok(Action::Help) => {
            cli::write_help(&mut |b| {
                let _ = sys::write_all(sys::borrow(1), b);
            });
            Err(EXIT_OK)
        }
        Ok(Action::Version) => {
            // conmon's two lines: the first is what managers parse (the
            // conmon release whose behaviour shimlet has); the second,
            // `commit: `, also says what this really is.
            let mut m: Buf<192> = Buf::new();
            m.push(b"conmon version ");
            m.push(CONMON_COMPAT.as_bytes());
            m.push(b"\ncommit: ");
            m.push(COMMIT.as_bytes());
            m.push(b" (shimlet ");
            m.push(VERSION.as_bytes());
            m.push(b")\n");
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
    // What shimlet creates gets conmon 2.2's modes whatever the caller's
    // umask (conmon sets 0022 too).
    sys::umask(0o022);
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
    // no path buffer stays resident in the daemon. (A conmon command
    // line's runtime was checked with the options, in conmon's order.)
    let runtime = cfg.runtime.unwrap_or(c"runc");
    // exec-attach: podman's go-ahead (a second start-pipe record) and the
    // pipe where we say the attach socket is ready.
    let attach_pipe = if cfg.exec_attach {
        match env_fd_num(c"_OCI_ATTACHPIPE").and_then(take_inherited) {
            Some(fd) => Some(fd),
            None => {
                say(&[b"--attach specified but _OCI_ATTACHPIPE was not"]);
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
    if let Err(e) = crate::diag::open(cfg.diag, cfg.syslog, cfg.id, cfg.log_level) {
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
    if cfg.no_partial && !cfg.journald {
        crate::diag::say_warning(
            cfg.log_level,
            &[b"--no-container-partial-message has no effect without journald log driver"],
        );
    }
    let log = match cfg.log {
        Some(path) => match open_log(cfg, path) {
            Some(mut l) => {
                l.limit(cfg.log_size_max, cfg.log_global_size_max);
                // Without --log-rotate conmon throws the old lines away when it
                // starts the file anew; shimlet keeps them in FILE.1.
                l.keep_old(if cfg.log_rotate { cfg.log_max_files } else { 1 });
                l
            }
            None => return EXIT_FAILED,
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
        let labels = cfg.values(cli::Key::LogLabel);
        match crate::journal::Journal::open(cfg.id.unwrap_or(c""), cfg.name, cfg.log_tag, labels, !cfg.no_partial) {
            Ok(j) => {
                // No journal is no error (conmon carries on too): its
                // records are counted as lost until one answers.
                if !j.connected() {
                    crate::diag::say_warning(
                        cfg.log_level,
                        &[b"journald: no journal at ", crate::journal::socket_path().to_bytes(), b" (yet)"],
                    );
                }
                Some(j)
            }
            Err(_) => {
                say(&[b"journald: the id, --name, --log-tag and --log-label fields take more than 640 bytes"]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    // Survive the host's OOM killer before the container does: set here,
    // inherited by the daemon, with the value given to us remembered for
    // the children to get back (the runtime's, the exit command's).
    let reset_oom = sys::protect_from_oom();
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

/// The k8s-file log, opened (and created) before detaching; with an
/// allowlist, in its checked directory. None: said on stderr already.
fn open_log(cfg: &cli::Config<'static>, path: &'static CStr) -> Option<LogFile<'static>> {
    let r = if cfg.log_allowlist {
        let (dir, name) = super::allowlist::check(cfg, path).ok()?;
        LogFile::open_in(dir, name)
    } else {
        LogFile::open(path)
    };
    match r {
        Ok(l) => Some(l),
        Err(sys::Errno::LOOP) if cfg.log_allowlist => {
            say(&[b"Log path is a symbolic link: ", path.to_bytes()]);
            None
        }
        Err(e) => {
            say(&[b"Failed to open log file ", path.to_bytes(), b": ", sys::text(e)]);
            None
        }
    }
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
