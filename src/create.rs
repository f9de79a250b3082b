//! Starting the OCI runtime, and what its end leaves to read: the
//! container's pid in the pidfile, or its error text on its stdio.
//!
//! The child gets the given stdio and nothing else of the shim's: every
//! other descriptor is closed (except those the shim inherited for it, in
//! the kept range: `--preserve-fds`), the signal mask and SIGPIPE
//! disposition the shim set up are undone, PDEATHSIG ties it to the shim,
//! and its OOM score adjustment is put back to the one the shim was given
//! when the shim protected itself (conmon 2.2's way). The front end builds the
//! command line (conmon's and containerd's orders differ).

use core::ffi::{c_char, CStr};
use core::marker::PhantomData;
use core::ptr::addr_of_mut;

use crate::buf::{parse_u64, Buf};
use crate::sys::{self, AsFd, AsRawFd, BorrowedFd, OwnedFd, Pid};

/// Most words a runtime command line can have.
pub const MAX_ARGV: usize = 72;

/// A command line: pointers to C strings that outlive it, NULL-terminated.
pub struct Argv<'a> {
    ptrs: [*const c_char; MAX_ARGV + 1],
    len: usize,
    _life: PhantomData<&'a CStr>,
}

impl<'a> Argv<'a> {
    pub fn new() -> Self {
        Argv { ptrs: [core::ptr::null(); MAX_ARGV + 1], len: 0, _life: PhantomData }
    }
    /// Append a word; false when the line is full (the word is dropped).
    pub fn push(&mut self, s: &'a CStr) -> bool {
        if self.len == MAX_ARGV {
            return false;
        }
        self.ptrs[self.len] = s.as_ptr();
        self.len += 1;
        true
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// exec `prog` with these words. Returns only on failure.
    pub fn exec(&self, prog: &CStr) -> sys::Errno {
        // SAFETY: the array is NULL-terminated (one slot is kept for it)
        // and its pointers are C strings that outlive the call.
        unsafe { sys::exec(prog, self.ptrs.as_ptr()) }
    }
    /// exec `prog` (an absolute path) with these words and `env` as its
    /// whole environment. Returns only on failure.
    pub fn exec_env(&self, prog: &CStr, env: &Argv<'_>) -> sys::Errno {
        // SAFETY: both arrays are NULL-terminated arrays of C strings that
        // outlive the call.
        unsafe { sys::exec_env(prog, self.ptrs.as_ptr(), env.ptrs.as_ptr()) }
    }
    /// The words, for tests and diagnostics.
    pub fn words(&self) -> impl Iterator<Item = &'a CStr> + '_ {
        // SAFETY: every pointer came from a &'a CStr (see `push`).
        self.ptrs[..self.len].iter().map(|&p| unsafe { CStr::from_ptr(p) })
    }
}

impl Default for Argv<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// One run of the runtime.
pub struct Spawn<'a> {
    pub prog: &'a CStr,
    pub argv: &'a Argv<'a>,
    /// The child's stdin, stdout, stderr.
    pub stdio: [BorrowedFd<'a>; 3],
    /// Read one record from here (the manager's go-ahead) before exec'ing.
    /// Waiting in the child keeps the shim's loop serving meanwhile, so
    /// this case forks instead of sharing our memory.
    pub gate: Option<BorrowedFd<'a>>,
    /// The shim lowered its own oom_score_adj: the child puts it back.
    pub reset_oom: bool,
    /// Descriptors from 3 up that the runtime may get (`--preserve-fds`,
    /// socket activation): those the shim inherited, not close-on-exec,
    /// reach it; the shim's own in that range are close-on-exec and do not.
    pub keep_from_3: u32,
    /// Descriptors the child gets as 3, 4, ... (a logger's pipes), instead.
    pub extra: &'a [BorrowedFd<'a>],
    /// The child's whole environment, instead of ours.
    pub env: Option<&'a Argv<'a>>,
    /// Set LISTEN_PID to the child's own pid before it execs (socket
    /// activation handed on: conmon's --replace-listen-pid).
    pub own_listen_pid: bool,
}

impl<'a> Spawn<'a> {
    /// A plain run: `argv` with `stdio`, nothing kept, nothing waited for.
    pub fn plain(prog: &'a CStr, argv: &'a Argv<'a>, stdio: [BorrowedFd<'a>; 3]) -> Spawn<'a> {
        Spawn {
            prog,
            argv,
            stdio,
            gate: None,
            reset_oom: false,
            keep_from_3: 0,
            extra: &[],
            env: None,
            own_listen_pid: false,
        }
    }
}

/// The runtime's child runs on this stack until it execs (on its copy of
/// our memory: the pages it touches are its own, gone when it execs).
#[repr(C, align(4096))]
struct ChildStack([u8; CHILD_STACK]);
const CHILD_STACK: usize = 32 * 1024;
#[link_section = ".sbss.pages"]
static mut STACK: ChildStack = ChildStack([0; CHILD_STACK]);

struct Args<'a, 'b> {
    s: &'b Spawn<'a>,
    parent: Pid,
    /// The environment's LISTEN_PID slot, to point at `LISTEN_PID_ENV`.
    listen_pid: Option<*mut *mut c_char>,
}

/// `LISTEN_PID=<the child's pid>`, written by the child before it execs.
static mut LISTEN_PID_ENV: [u8; 32] = [0; 32];

extern "C" fn child_entry(arg: *mut core::ffi::c_void) -> core::ffi::c_int {
    // SAFETY: `arg` is the `Args` that `spawn` passed, alive while the
    // parent waits for this child to exec (CLONE_VFORK).
    let a = unsafe { &*(arg as *const Args) };
    child(a.s, a.parent, a.listen_pid)
}

/// Start the runtime; the parent gets its pid. Like posix_spawn, we wait
/// until the child has exec'd (CLONE_VFORK); it runs on a copy of our
/// memory rather than on it (see `sys::spawn_vfork`).
#[inline(never)]
pub fn spawn(s: &Spawn) -> sys::Result<Pid> {
    let parent = sys::getpid();
    let listen_pid = if s.own_listen_pid { sys::env_slot(b"LISTEN_PID") } else { None };
    // SAFETY: a slot of `environ` (see `env_slot`), read before the child
    // may change it.
    let saved = listen_pid.map(|slot| unsafe { *slot });
    let r = if s.gate.is_some() {
        match sys::fork() {
            Ok(0) => child(s, parent, listen_pid),
            r => r,
        }
    } else {
        let args = Args { s, parent, listen_pid };
        // SAFETY: the child stack is used by nobody else (one spawn at a
        // time: the parent is suspended until the child execs); the child
        // only makes raw system calls and execs or exits.
        let r = unsafe {
            let stack = &mut (*addr_of_mut!(STACK)).0;
            sys::spawn_vfork(child_entry, stack, &args as *const Args as *mut core::ffi::c_void)
        };
        sys::release(addr_of_mut!(STACK) as usize, CHILD_STACK);
        r
    };
    if let (Some(slot), Some(old)) = (listen_pid, saved) {
        // SAFETY: the child has exec'd (CLONE_VFORK) or has its own copy
        // (fork): the slot is ours again; put back what was there.
        unsafe { *slot = old };
    }
    r
}

/// In the child: only raw system calls, and it never returns.
#[inline(never)]
fn child(s: &Spawn, parent: Pid, listen_pid: Option<*mut *mut c_char>) -> ! {
    if let Some(fd) = s.gate {
        let mut b = [0u8; 64];
        let _ = sys::read(fd, &mut b);
    }
    // Each descriptor to its number: through copies above them all first,
    // so no target number overwrites a source still to be moved.
    let mut high: [Option<OwnedFd>; 8] = [const { None }; 8];
    for (i, fd) in s.stdio.iter().chain(s.extra.iter()).take(8).enumerate() {
        high[i] = rustix::io::fcntl_dupfd_cloexec(fd, 100).ok();
    }
    let n = (3 + s.extra.len()).min(8);
    let ok =
        high[..n].iter().enumerate().all(|(i, fd)| fd.as_ref().is_some_and(|fd| sys::dup_to(fd, i as i32).is_ok()));
    if !ok {
        sys::exit(127);
    }
    drop(high);
    // Above the kept range everything goes; within it, exec closes what is
    // close-on-exec (all the shim's own descriptors), so only what the
    // shim inherited for the runtime reaches it. Extra descriptors (a
    // logger's) replace the kept range.
    let keep = if s.extra.is_empty() { s.keep_from_3.min(1 << 20) as i32 } else { 0 };
    sys::close_from(n as i32 + keep);
    if let Some(slot) = listen_pid {
        let mut v: Buf<32> = Buf::new();
        v.push(b"LISTEN_PID=");
        v.push_u64(sys::getpid() as u64);
        // SAFETY: only this child writes LISTEN_PID_ENV (one spawn at a
        // time), and the slot is `environ`'s, which the parent restores
        // once this child has exec'd.
        unsafe {
            let buf = &mut *addr_of_mut!(LISTEN_PID_ENV);
            buf[..v.len()].copy_from_slice(v.as_bytes());
            buf[v.len()] = 0;
            *slot = buf.as_mut_ptr().cast();
        }
    }
    sys::reset_signals_raw();
    sys::die_with_parent();
    if sys::getppid() != parent {
        sys::exit(127);
    }
    if s.reset_oom {
        sys::restore_oom_score_adj();
    }
    let e = match s.env {
        Some(env) => s.argv.exec_env(s.prog, env),
        None => s.argv.exec(s.prog),
    };
    // Reaches the shim through the stderr pipe, as the runtime's error.
    let mut msg: Buf<512> = Buf::new();
    msg.push(b"shimlet: cannot execute runtime ");
    msg.push(s.prog.to_bytes());
    msg.push(b": ");
    msg.push(sys::text(e));
    msg.push(b"\n");
    let _ = sys::write_all(sys::borrow(2), msg.as_bytes());
    sys::exit(127)
}

/// The pid in a pidfile the runtime wrote.
pub fn read_pidfile(path: &CStr) -> Result<Pid, &'static [u8]> {
    let mut b = [0u8; 32];
    let content = sys::read_file(path, &mut b).map_err(sys::text)?;
    match parse_u64(content, i32::MAX as u64) {
        Some(p) if p > 0 => Ok(p as Pid),
        _ => Err(b"not a pid"),
    }
}

/// The parent pid of `pid`, from /proc/PID/stat (the field after the
/// parenthesised command name, which may itself hold spaces or parens).
pub fn parent_of(pid: Pid) -> Option<Pid> {
    let mut path: Buf<32> = Buf::new();
    path.push(b"/proc/");
    path.push_u64(pid as u64);
    path.push(b"/stat");
    let mut b = [0u8; 512];
    let b = sys::read_file(path.as_cstr()?, &mut b).ok()?;
    let close = b.iter().rposition(|&c| c == b')')?;
    let mut f = b[close + 1..].split(|&c| c == b' ').filter(|w| !w.is_empty());
    f.next()?; // state
    parse_u64(f.next()?, i32::MAX as u64).map(|p| p as Pid)
}

/// What a failed runtime printed: on `first`, else on `second` (its stderr,
/// then its stdout), read without waiting, bounded by `msg`; `scratch` is
/// the buffer reads go through.
pub fn collect_error<const N: usize>(
    first: Option<BorrowedFd>,
    second: Option<BorrowedFd>,
    scratch: &mut [u8],
    msg: &mut Buf<N>,
) {
    for fd in [first, second].into_iter().flatten() {
        let _ = sys::set_nonblock(fd);
        while msg.room() > 0 {
            let room = msg.room().min(scratch.len());
            match sys::read(fd, &mut scratch[..room]) {
                Ok(n) if n > 0 => {
                    msg.push(&scratch[..n]);
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

/// SIGKILL every remaining child of ours (from /proc/self/task/PID/children,
/// so no process table walk) and reap them, looking again for processes
/// re-parented to us meanwhile; bounded (about 2 s), never blocking for
/// ever on something unkillable.
pub fn kill_leftovers() {
    let mut path: Buf<48> = Buf::new();
    path.push(b"/proc/self/task/");
    path.push_u64(sys::getpid() as u64);
    path.push(b"/children");
    let Some(p) = path.as_cstr() else { return };
    for _round in 0..100 {
        let mut any = false;
        let mut b = [0u8; 512];
        if let Ok(list) = sys::read_file(p, &mut b) {
            for w in list.split(|c| *c == b' ' || *c == b'\n') {
                if let Some(pid) = parse_u64(w, i32::MAX as u64) {
                    let _ = sys::kill(pid as Pid, 9);
                    any = true;
                }
            }
        }
        while sys::reap_one().is_some() {
            any = true;
        }
        if !any {
            return;
        }
        sys::sleep_ms(20);
    }
}

/// A descriptor's number, for command lines and epoll tokens.
pub fn raw(fd: impl AsFd) -> i32 {
    fd.as_fd().as_raw_fd()
}
