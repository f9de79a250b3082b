//! The launcher: what the manager runs. It parses the command line, checks
//! and opens what can be checked before detaching (so a bad path is an
//! error the manager sees on stderr), forks the daemon and returns.

use core::ffi::{c_char, c_int, CStr};
use core::ptr::addr_of_mut;

use crate::buf::Buf;
use crate::cli::{self, Action};
use crate::logfile::LogFile;
use crate::shim::{self, Report, FORWARDED};
use crate::sys::{self, Errno};

/// Exit statuses of the launcher.
pub const EXIT_OK: c_int = 0;
pub const EXIT_FAILED: c_int = 1;
pub const EXIT_USAGE: c_int = 2;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The conmon release whose behaviour shimlet follows.
pub const CONMON_COMPAT: &str = "2.1.6";

/// `shimlet: ` and the parts on stderr, then a newline.
pub fn err_line(parts: &[&[u8]]) {
    let mut m: Buf<1024> = Buf::new();
    m.push(b"shimlet: ");
    for p in parts {
        m.push(p);
    }
    m.push(b"\n");
    let _ = sys::write_all(2, m.as_bytes());
}

/// # Safety
/// `argv` holds `argc` valid C strings that live as long as the process.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // Descriptors 0-2 must be taken before anything else is opened, or a
    // pipe could land there and later be replaced by /dev/null.
    loop {
        match sys::open(c"/dev/null", libc::O_RDWR, 0) {
            Ok(fd) if fd <= 2 => {
                let _ = clear_cloexec(fd);
            }
            Ok(fd) => {
                sys::close(fd);
                break;
            }
            Err(_) => break,
        }
    }
    if argc > 1 && CStr::from_ptr(*argv.add(1)).to_bytes() == b"attach" {
        let args = (2..argc as usize).map(|i| CStr::from_ptr(*argv.add(i)));
        return crate::client::main(args);
    }
    // From here on argv is the copy in .bss (see `restack`): the daemon
    // can then let the kernel's stack go.
    let argv = crate::restack::adopt_args(argc, argv);
    match parse_args(argc, argv) {
        Ok(cfg) => launch(cfg),
        Err(code) => code,
    }
}

static mut START: core::mem::MaybeUninit<shim::Start<'static>> = core::mem::MaybeUninit::uninit();

/// The daemon, on its own stack: the kernel's stack is dropped, then the
/// shim runs.
extern "C" fn daemon() -> ! {
    crate::restack::drop_old_stack();
    shim::run(unsafe { (*addr_of_mut!(START)).assume_init_mut() })
}

/// The parsed command line lives here, not in a stack frame: the daemon
/// keeps every frame between `main` and its loop for its whole life, so
/// those frames are kept small.
static mut CONFIG: core::mem::MaybeUninit<cli::Config<'static>> = core::mem::MaybeUninit::uninit();

/// Parse argv into CONFIG; Err is the exit status after help, version or a
/// usage error.
#[inline(never)]
unsafe fn parse_args(argc: c_int, argv: *const *const c_char) -> Result<&'static cli::Config<'static>, c_int> {
    let args = (1..argc.max(1) as usize).map(|i| CStr::from_ptr(*argv.add(i)));
    let conmon_style = cli::is_conmon(args.clone());
    match cli::parse(args) {
        Ok(Action::Run(c)) => Ok((*addr_of_mut!(CONFIG)).write(c)),
        Ok(Action::Help) => {
            cli::write_help(&mut |b| {
                let _ = sys::write_all(1, b);
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
            let _ = sys::write_all(1, m.as_bytes());
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
                err_line(&[m.as_bytes()]);
                return Err(EXIT_FAILED);
            }
            err_line(&[m.as_bytes(), b" (see shimlet --help)"]);
            Err(EXIT_USAGE)
        }
    }
}


fn clear_cloexec(fd: c_int) -> sys::Result<()> {
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

fn env_fd(name: &CStr) -> Option<&'static [u8]> {
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() { None } else { Some(unsafe { CStr::from_ptr(p) }.to_bytes()) }
}

fn launch(cfg: &'static cli::Config<'static>) -> c_int {
    // The sync fd: from the option, else from the environment (conmon's way).
    let mut sync = cfg.sync_fd;
    if sync.is_none() {
        if let Some(v) = env_fd(c"_OCI_SYNCPIPE") {
            match crate::buf::parse_u64(v, i32::MAX as u64) {
                Some(n) => sync = Some(n as c_int),
                None => {
                    err_line(&[b"invalid _OCI_SYNCPIPE '", v, b"'"]);
                    return EXIT_USAGE;
                }
            }
        }
    }
    if let Some(fd) = sync {
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let mut n: Buf<12> = Buf::new();
            n.push_i64(fd as i64);
            err_line(&[b"sync fd ", n.as_bytes(), b" is not open"]);
            return EXIT_USAGE;
        }
        let _ = sys::set_cloexec(fd);
    }

    // The bundle and pidfile defaults are resolved in the runtime's child
    // (its memory is not ours to keep) and, for the pidfile, again when it
    // is read: no path buffer stays resident in the daemon.
    let runtime = cfg.runtime.unwrap_or(c"runc");
    if cfg.conmon && unsafe { libc::access(runtime.as_ptr(), libc::X_OK) } < 0 {
        err_line(&[b"Runtime path ", runtime.to_bytes(), b" is not valid: ", Errno::last().text()]);
        return EXIT_FAILED;
    }
    // exec-attach: podman's go-ahead (a second start-pipe record) and the
    // pipe where we say the attach socket is ready.
    let attach_pipe = if cfg.exec_attach {
        match env_fd(c"_OCI_ATTACHPIPE").and_then(|v| crate::buf::parse_u64(v, i32::MAX as u64)) {
            Some(fd) => {
                let _ = sys::set_cloexec(fd as c_int);
                Some(fd as c_int)
            }
            None => {
                err_line(&[b"--exec-attach specified but _OCI_ATTACHPIPE was not"]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    // The manager moves us into a cgroup, then says go: nothing may be
    // forked before that.
    let mut gate = None;
    if let Some(fd) = env_fd(c"_OCI_STARTPIPE").and_then(|v| crate::buf::parse_u64(v, i32::MAX as u64)) {
        let fd = fd as c_int;
        let _ = sys::set_cloexec(fd);
        let mut b = [0u8; 64];
        if let Err(e) = sys::read(fd, &mut b) {
            err_line(&[b"start pipe read failed: ", e.text()]);
            return EXIT_FAILED;
        }
        if cfg.exec_attach {
            gate = Some(fd);
        } else {
            sys::close(fd);
        }
    }

    // Check and open what can fail before detaching: the manager sees
    // these errors on stderr, and nothing is left running.
    if let Err(e) = crate::diag::open(cfg.diag, cfg.syslog, cfg.id) {
        err_line(&[b"cannot open --diag ", cfg.diag.unwrap_or(c"").to_bytes(), b": ", e.text()]);
        return EXIT_FAILED;
    }
    // Records written at exit: their paths must be buildable (".tmp" is
    // added for the atomic rename) and their directories must exist.
    let room = libc::PATH_MAX as usize - 8;
    let too_long = |p: Option<&CStr>, extra: usize| p.is_some_and(|p| p.to_bytes().len() + extra > room);
    let id_len = cfg.id.map_or(0, |i| i.to_bytes().len()) + 1;
    for (what, p, extra) in [
        (&b"--status-file"[..], cfg.status_file, 0),
        (b"--exit-dir", cfg.exit_dir, id_len),
        (b"--persist-dir", cfg.persist_dir, 5),
        (b"--log", cfg.log, 2),
    ] {
        if too_long(p, extra) {
            err_line(&[what, b" path is too long"]);
            return EXIT_FAILED;
        }
    }
    for (what, dir) in [(&b"--exit-dir"[..], cfg.exit_dir), (b"--persist-dir", cfg.persist_dir)] {
        if let Some(d) = dir {
            if unsafe { libc::access(d.as_ptr(), libc::F_OK) } < 0 {
                err_line(&[what, b" ", d.to_bytes(), b": ", Errno::last().text()]);
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
                err_line(&[b"cannot open log ", path.to_bytes(), b": ", e.text()]);
                return EXIT_FAILED;
            }
        },
        None => LogFile::none(),
    };
    let shim_pidfile = match cfg.shim_pidfile {
        Some(path) => match sys::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644) {
            Ok(fd) => Some(fd),
            Err(e) => {
                err_line(&[b"cannot open shim pidfile ", path.to_bytes(), b": ", e.text()]);
                return EXIT_FAILED;
            }
        },
        None => None,
    };

    // Signals are blocked from here on, inherited by the daemon, and read
    // from its signalfd: none can kill it between fork and the loop.
    unsafe {
        let mut mask: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        for sig in FORWARDED {
            libc::sigaddset(&mut mask, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &mask, core::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }

    let journal = if cfg.journald {
        match crate::journal::Journal::open(cfg.id.unwrap_or(c""), cfg.name, cfg.log_tag) {
            Ok(j) => Some(j),
            Err(e) => {
                err_line(&[b"journald log driver: cannot connect to ", crate::journal::socket_path().to_bytes(), b": ", e.text()]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    let start = |report| shim::Start { cfg, runtime, report, log, journal, gate, attach_pipe };
    if cfg.sync {
        // Not detached: the caller waits for this very process.
        if let Some(fd) = shim_pidfile {
            let mut n: Buf<12> = Buf::new();
            n.push_i64(sys::getpid() as i64);
            let _ = sys::write_all(fd, n.as_bytes());
            sys::close(fd);
        }
        let s = unsafe { (*addr_of_mut!(START)).write(start(sync.map(Report::Sync))) };
        shim::run(s);
    }
    // conmon's launcher never waits: the manager reads the sync pipe.
    let wait_pipe = if sync.is_none() && !cfg.conmon {
        match sys::pipe() {
            Ok(p) => Some(p),
            Err(e) => {
                err_line(&[b"pipe: ", e.text()]);
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };

    let pid = unsafe { libc::fork() };
    if pid < 0 {
        err_line(&[b"fork: ", Errno::last().text()]);
        return EXIT_FAILED;
    }
    if pid == 0 {
        if let Some(fd) = shim_pidfile {
            sys::close(fd);
        }
        let report = match (sync, wait_pipe) {
            (Some(fd), _) => Some(Report::Sync(fd)),
            (None, Some((r, w))) => {
                sys::close(r);
                Some(Report::Launcher(w))
            }
            (None, None) => None,
        };
        // The daemon's start, kept where its new stack can reach it.
        unsafe { (*addr_of_mut!(START)).write(start(report)) };
        unsafe { crate::restack::switch(daemon) }
    }

    // The launcher: record the daemon's pid, then either leave the outcome
    // to the manager (sync pipe) or wait for it.
    if let Some(fd) = shim_pidfile {
        let mut n: Buf<12> = Buf::new();
        n.push_i64(pid as i64);
        let r = sys::write_all(fd, n.as_bytes());
        sys::close(fd);
        if let Err(e) = r {
            err_line(&[b"cannot write shim pidfile: ", e.text()]);
        }
    }
    let Some((r, w)) = wait_pipe else { return EXIT_OK };
    sys::close(w);
    wait_outcome(r)
}

/// Kept out of `launch`'s frame: the daemon forks from `launch` and should
/// not carry this buffer's stack pages.
#[inline(never)]
fn wait_outcome(r: c_int) -> c_int {
    let mut msg: Buf<4096> = Buf::new();
    let mut chunk = [0u8; 512];
    while let Ok(n) = sys::read(r, &mut chunk) {
        if n == 0 || !msg.push(&chunk[..n]) {
            break;
        }
    }
    match msg.as_bytes().split_first() {
        Some((b'0', _)) => EXIT_OK,
        Some((_, text)) => {
            err_line(&[b"create failed: ", text]);
            EXIT_FAILED
        }
        None => {
            err_line(&[b"the shim exited before reporting the create outcome"]);
            EXIT_FAILED
        }
    }
}
