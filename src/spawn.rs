//! Starting the OCI runtime, with conmon's argument order:
//! `RUNTIME [--systemd-cgroup] [args] create --bundle B --pid-file P
//! [--no-pivot] [--no-new-keyring] [opts] [--console-socket S] ID`, or
//! `RUNTIME [args] exec --pid-file P --process SPEC --detach [opts]
//! [--console-socket S] ID`.
//!
//! The child gets the container's stdio, nothing else: every other
//! descriptor is closed, the signal mask and SIGPIPE disposition the shim
//! set up are undone, PDEATHSIG ties it to the shim, and its OOM score
//! adjustment is put back to 0 when the shim protected itself.

use core::ffi::{c_char, c_int, CStr};

use crate::buf::{Buf, PathBuf};
use crate::cli::{Config, MAX_RUNTIME_ARGS, MAX_RUNTIME_OPTS};
use crate::sys::{self, Errno};

pub struct Create<'a> {
    pub cfg: &'a Config<'a>,
    pub runtime: &'a CStr,
    /// `--console-socket` for terminal mode.
    pub console: Option<&'a CStr>,
    /// exec-attach: read one record from here (the manager's go-ahead)
    /// before exec'ing the runtime. Waiting in the child keeps the shim's
    /// loop serving the attach socket meanwhile.
    pub gate: Option<c_int>,
    /// The container's stdin, stdout, stderr.
    pub stdio: [c_int; 3],
    /// Whether the shim lowered its own oom_score_adj (so the child resets it).
    pub reset_oom: bool,
}

const MAX_ARGV: usize = MAX_RUNTIME_ARGS + MAX_RUNTIME_OPTS + 16;

/// The runtime's child runs on this stack until it execs (CLONE_VM: it
/// shares our memory meanwhile), then the pages are handed back.
#[repr(C, align(4096))]
struct ChildStack([u8; CHILD_STACK]);
const CHILD_STACK: usize = 32 * 1024;
static mut STACK: ChildStack = ChildStack([0; CHILD_STACK]);

struct Args<'a, 'b> {
    c: &'b Create<'a>,
    parent: libc::pid_t,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    let a = unsafe { &*(arg as *const Args) };
    child(a.c, a.parent)
}

/// Start the runtime; the parent gets its pid. Like posix_spawn, the child
/// shares our memory (CLONE_VM) and we wait until it has exec'd
/// (CLONE_VFORK): no address space is copied and no page is faulted in
/// twice, which is most of what a fork costs a shim. With an exec-attach
/// gate the child must wait for the manager while we keep serving, so
/// that case forks.
#[inline(never)]
pub fn create(c: &Create) -> sys::Result<libc::pid_t> {
    let parent = sys::getpid();
    if c.gate.is_some() {
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Errno::last());
        }
        if pid == 0 {
            child(c, parent);
        }
        return Ok(pid);
    }
    let args = Args { c, parent };
    let stack = core::ptr::addr_of_mut!(STACK);
    let top = unsafe { (stack as *mut u8).add(CHILD_STACK) } as *mut libc::c_void;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    let pid = unsafe { libc::clone(child_entry, top, flags, &args as *const Args as *mut libc::c_void) };
    let err = Errno::last();
    unsafe { libc::madvise(stack as *mut libc::c_void, CHILD_STACK, libc::MADV_DONTNEED) };
    if pid < 0 { Err(err) } else { Ok(pid) }
}

/// The pidfile path the runtime is told to write: `--pidfile`; else on a
/// conmon command line or for exec, `pidfile-ID` in the working directory
/// (conmon's default); else `BUNDLE/pidfile`, or `pidfile` in the working
/// directory when that is the bundle. The shim never changes directory,
/// so relative paths mean the same to it and to the runtime.
pub fn pidfile_path<'a>(cfg: &Config<'a>, buf: &'a mut PathBuf) -> Option<&'a CStr> {
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

/// In the forked child: only async-signal-safe calls, and it never returns.
#[inline(never)]
fn child(c: &Create, parent: libc::pid_t) -> ! {
    if let Some(fd) = c.gate {
        let mut b = [0u8; 64];
        let _ = sys::read(fd, &mut b);
    }
    let mut cwd = PathBuf::new();
    let mut pidbuf = PathBuf::new();
    let bundle: &CStr = match c.cfg.bundle {
        Some(b) => b,
        None => {
            let spare = cwd.spare();
            let p = unsafe { libc::getcwd(spare.as_mut_ptr() as *mut c_char, spare.len()) };
            if p.is_null() { c"." } else { unsafe { CStr::from_ptr(p) } }
        }
    };
    let Some(pidfile) = pidfile_path(c.cfg, &mut pidbuf) else {
        let _ = sys::write_all(c.stdio[2], b"shimlet: pidfile path too long\n");
        unsafe { libc::_exit(127) }
    };
    let mut argv: [*const c_char; MAX_ARGV] = [core::ptr::null(); MAX_ARGV];
    let mut n = 0;
    let mut add = |s: &CStr| {
        argv[n] = s.as_ptr();
        n += 1;
    };
    let cfg = c.cfg;
    add(c.runtime);
    if !cfg.exec && cfg.systemd_cgroup {
        add(c"--systemd-cgroup");
    }
    for a in cfg.runtime_args.iter() {
        add(a);
    }
    if cfg.exec {
        add(c"exec");
        add(c"--pid-file");
        add(pidfile);
        add(c"--process");
        add(cfg.exec_spec.unwrap_or(c""));
        add(c"--detach");
    } else {
        add(c"create");
        add(c"--bundle");
        add(bundle);
        add(c"--pid-file");
        add(pidfile);
        if cfg.no_pivot {
            add(c"--no-pivot");
        }
        if cfg.no_new_keyring {
            add(c"--no-new-keyring");
        }
    }
    for a in cfg.runtime_opts.iter() {
        add(a);
    }
    if let Some(sock) = c.console {
        add(c"--console-socket");
        add(sock);
    }
    add(c.cfg.id.unwrap_or(c""));
    unsafe {
        let ok = sys::dup2(c.stdio[0], 0).is_ok() && sys::dup2(c.stdio[1], 1).is_ok() && sys::dup2(c.stdio[2], 2).is_ok();
        if !ok {
            libc::_exit(127);
        }
        sys::close_from(3);
        // Raw system calls: the C library's wrappers keep state in memory
        // that, under CLONE_VM, is the shim's own.
        let set: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &set as *const u64, core::ptr::null_mut::<u64>(), 8usize);
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::syscall(libc::SYS_rt_sigaction, libc::SIGPIPE, &dfl as *const libc::sigaction, core::ptr::null_mut::<libc::sigaction>(), 8usize);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            libc::_exit(127);
        }
        if c.reset_oom {
            if let Ok(fd) = sys::open(c"/proc/self/oom_score_adj", libc::O_WRONLY, 0) {
                let _ = sys::write(fd, b"0");
                sys::close(fd);
            }
        }
        let prog = c.runtime;
        if prog.to_bytes().contains(&b'/') {
            libc::execv(prog.as_ptr(), argv.as_ptr());
        } else {
            libc::execvp(prog.as_ptr(), argv.as_ptr());
        }
        // Reaches the shim through the stderr pipe, as the runtime's error.
        let e = Errno::last();
        let mut msg: Buf<512> = Buf::new();
        msg.push(b"shimlet: cannot execute runtime ");
        msg.push(prog.to_bytes());
        msg.push(b": ");
        msg.push(e.text());
        msg.push(b"\n");
        let _ = sys::write_all(2, msg.as_bytes());
        libc::_exit(127);
    }
}
