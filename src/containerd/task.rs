//! The `containerd.task.v2.Task` service: each method's request decoded
//! from the ttrpc payload, acted on, and answered, with the codes and
//! messages containerd-shim-runc-v2 answers with (containerd and its CRI
//! plugin act on them: a Kill after the exit must be NotFound, and so on).
//!
//! A `Task` is the front end's view of one process (a container's init or
//! an exec in it), kept in a table beside the daemon's, slot for slot.

use core::ffi::CStr;

use super::proto::{self, Value, ZERO_TIME_SECS};
use super::server::{Job, JobKind, Reply, Shim};
use super::stats::{self, Cgroup};
use super::stdio;
use super::ttrpc::{
    ALREADY_EXISTS, FAILED_PRECONDITION, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNIMPLEMENTED,
    UNKNOWN,
};
use crate::attach::Policy;
use crate::buf::{Buf, PathBuf};
use crate::create::{self, Argv, Spawn};
use crate::daemon::{Daemon, Kind, Token};
use crate::exit::Ended;
use crate::logfile::LogFile;
use crate::output::Output;
use crate::process::{Phase, Proc, Stdio};
use crate::sys::{self, AsFd, BorrowedFd, EventFlags, OFlags, OwnedFd, Pid};
use crate::tty::Console;

pub const SERVICE: &[u8] = b"containerd.task.v2.Task";

/// The longest container or exec id taken.
pub const ID_MAX: usize = 128;
/// The longest bundle or stdio path taken (containerd's are ~100 bytes).
pub const PATH_SZ: usize = 512;

/// `containerd.v1.types.Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Created = 1,
    Running = 2,
    Stopped = 3,
    Paused = 4,
}

pub struct Task {
    /// The container's init slot (its own for an init).
    pub init: u16,
    pub is_exec: bool,
    pub id: Buf<ID_MAX>,
    pub exec_id: Buf<ID_MAX>,
    pub bundle: Buf<PATH_SZ>,
    pub stdin: Buf<PATH_SZ>,
    pub stdout: Buf<PATH_SZ>,
    pub stderr: Buf<PATH_SZ>,
    pub terminal: bool,
    pub status: Status,
    pub pid: u32,
    /// How it ended: status, seconds, nanoseconds.
    pub exit: Option<(u32, i64, i32)>,
    /// The runtime and its root (inits; execs use their init's).
    pub binary: Buf<256>,
    pub root: Buf<PATH_SZ>,
    pub systemd: bool,
    /// An exec's process spec (JSON), from Exec until Start.
    pub spec: Option<OwnedFd>,
    /// Our writer on the stdin FIFO (CloseIO drops it).
    pub stdin_w: Option<OwnedFd>,
    /// Our readers on the output FIFOs.
    pub keep: [Option<OwnedFd>; 2],
    /// A `binary://` logger's pid, or 0.
    pub logger: Pid,
    /// We mounted its rootfs.
    pub mounted: bool,
    /// A Create or Start waiting for the runtime.
    pub pending: Option<Reply>,
    /// `runc start` is running: an exit now waits for its TaskStart.
    pub starting: bool,
    pub exit_held: bool,
    /// It shares a pid namespace: at its init's exit, `kill --all`.
    pub kill_all: bool,
}

impl Task {
    /// The process's own id: its exec id, or the container's.
    fn proc_id(&self) -> &[u8] {
        if self.is_exec {
            self.exec_id.as_bytes()
        } else {
            self.id.as_bytes()
        }
    }
}

fn status_code(t: &Task) -> u64 {
    t.status as u64
}

// ---- decoding ------------------------------------------------------------

/// The fields every request names its process by: id(1), exec_id(2).
fn ids(p: &[u8]) -> (&[u8], &[u8]) {
    let (mut id, mut exec): (&[u8], &[u8]) = (b"", b"");
    let _ = proto::each(p, |f, v| match (f, v) {
        (1, Value::Bytes(b)) => id = b,
        (2, Value::Bytes(b)) => exec = b,
        _ => {}
    });
    (id, exec)
}

fn find(s: &Shim, id: &[u8], exec: &[u8]) -> Option<usize> {
    s.tasks.used().find(|&i| s.tasks.get(i).is_some_and(|t| t.id.as_bytes() == id && t.exec_id.as_bytes() == exec))
}

fn copy<const N: usize>(b: &[u8]) -> Option<Buf<N>> {
    let mut out: Buf<N> = Buf::new();
    (b.len() < N && !b.contains(&0) && out.push(b)).then_some(out)
}

/// The answer to a Create or Exec beyond the table's capacity.
const FULL: &[u8] = b"shimlet: this shim serves at most 64 processes (containers and their execs), and it is full";

/// Reply with runc-v2's "id X: already exists".
fn already_exists(s: &mut Shim, d: &mut Daemon, r: Reply, id: &[u8]) {
    let mut m: Buf<200> = Buf::new();
    m.push(b"id ");
    m.push(id);
    m.push(b": already exists");
    s.fail(d, r, ALREADY_EXISTS, m.as_bytes());
}

/// Reply with "container not created" or "process does not exist".
fn missing(s: &mut Shim, d: &mut Daemon, r: Reply, id: &[u8], exec: &[u8]) {
    if exec.is_empty() || find(s, id, b"").is_none() {
        return s.fail(d, r, NOT_FOUND, b"container not created: not found");
    }
    let mut m: Buf<200> = Buf::new();
    m.push(b"process does not exist ");
    m.push(exec);
    m.push(b": not found");
    s.fail(d, r, NOT_FOUND, m.as_bytes());
}

pub fn call(s: &mut Shim, d: &mut Daemon, r: Reply, method: &[u8], p: &[u8]) {
    // Every request message is read field by field below; one that is not
    // a protobuf message at all is refused first, as Go's ttrpc does.
    if proto::each(p, |_, _| {}).is_err() {
        return s.fail(d, r, INTERNAL, b"ttrpc: error unmarshalling payload: malformed message");
    }
    match method {
        b"Create" => create(s, d, r, p),
        b"Start" => start(s, d, r, p),
        b"State" => state(s, d, r, p),
        b"Kill" => kill(s, d, r, p),
        b"Exec" => exec(s, d, r, p),
        b"Wait" => wait(s, d, r, p),
        b"Delete" => delete(s, d, r, p),
        b"Pids" => pids(s, d, r, p),
        b"Pause" => runtime_call(s, d, r, p, JobKind::Pause),
        b"Resume" => runtime_call(s, d, r, p, JobKind::Resume),
        b"Update" => update(s, d, r, p),
        b"ResizePty" => resize(s, d, r, p),
        b"CloseIO" => close_io(s, d, r, p),
        b"Stats" => stats(s, d, r, p),
        b"Connect" => connect(s, d, r, p),
        b"Shutdown" => {
            s.ok(d, r, |_| {});
            s.shutdown_if_idle(d);
        }
        b"Checkpoint" => s.fail(d, r, UNIMPLEMENTED, b"shimlet: checkpoint is not supported"),
        other => {
            let mut m: Buf<96> = Buf::new();
            m.push(b"method ");
            m.push(&other[..other.len().min(64)]);
            s.fail(d, r, UNIMPLEMENTED, m.as_bytes());
        }
    }
}

// ---- the runtime ---------------------------------------------------------

/// `RUNTIME --root ROOT --log BUNDLE/log.json --log-format json
/// [--systemd-cgroup]`, then `words`.
fn runtime_argv<'w>(
    init: &'w Task,
    log: &'w mut PathBuf,
    bin: &'w mut Buf<256>,
    root: &'w mut Buf<PATH_SZ>,
    words: &[&'w CStr],
) -> Argv<'w> {
    log.clear();
    log.push(init.bundle.as_bytes());
    log.push(b"/log.json");
    bin.clear();
    bin.push(init.binary.as_bytes());
    root.clear();
    root.push(init.root.as_bytes());
    let mut a = Argv::new();
    let bin: &'w CStr = bin.as_cstr().unwrap_or(c"runc");
    a.push(bin);
    a.push(c"--root");
    a.push(root.as_cstr().unwrap_or(c"/run/containerd/runc"));
    a.push(c"--log");
    a.push(log.as_cstr().unwrap_or(c"/dev/null"));
    a.push(c"--log-format");
    a.push(c"json");
    if init.systemd {
        a.push(c"--systemd-cgroup");
    }
    for w in words {
        a.push(w);
    }
    a
}

/// The runtime's last error in BUNDLE/log.json, as runc-v2 reports it.
#[inline(never)]
fn runtime_error(bundle: &[u8], out: &mut Buf<1024>) {
    let mut p = PathBuf::new();
    p.push(bundle);
    p.push(b"/log.json");
    let Some(p) = p.as_cstr() else { return };
    let Ok(fd) = sys::open(p, OFlags::RDONLY, 0) else { return };
    let size = sys::file_size(&fd);
    let mut b = [0u8; 4096];
    let at = size.saturating_sub(b.len() as u64);
    let n = sys::pread(&fd, &mut b, at).unwrap_or(0);
    for line in b[..n].rsplit(|&c| c == b'\n') {
        let level = crate::json::lookup(line, &[b"level"]);
        if level == Some(&br#""error""#[..]) || level == Some(&br#""fatal""#[..]) {
            if let Some(m) = crate::json::lookup(line, &[b"msg"]) {
                out.clear();
                crate::json::unescape(m, out);
                return;
            }
        }
    }
}

/// Start a runtime job for slot `slot`'s container; its stderr is kept for
/// the error text.
#[inline(never)]
fn job(
    s: &mut Shim,
    slot: usize,
    kind: JobKind,
    reply: Option<Reply>,
    words: &[&CStr],
    stdin: Option<BorrowedFd>,
) -> Result<(), (u32, &'static [u8])> {
    if !s.job_slots_free() {
        return Err((RESOURCE_EXHAUSTED, b"shimlet: too many runtime calls in flight"));
    }
    let Some(t) = s.tasks.get(slot) else { return Err((NOT_FOUND, b"container not created: not found")) };
    let init = if t.is_exec { t.init as usize } else { slot };
    let Some(it) = s.tasks.get(init) else { return Err((NOT_FOUND, b"container not created: not found")) };
    let (mut log, mut bin, mut root) = (PathBuf::new(), Buf::new(), Buf::new());
    let argv = runtime_argv(it, &mut log, &mut bin, &mut root, words);
    let null = sys::open(c"/dev/null", OFlags::RDWR, 0).map_err(|_| (UNKNOWN, &b"open /dev/null"[..]))?;
    let (err_r, err_w) = sys::pipe().map_err(|_| (UNKNOWN, &b"pipe"[..]))?;
    let prog = argv.words().next().unwrap_or(c"runc");
    let stdio = [stdin.unwrap_or(null.as_fd()), null.as_fd(), err_w.as_fd()];
    let pid =
        create::spawn(&Spawn::plain(prog, &argv, stdio)).map_err(|_| (UNKNOWN, &b"cannot run the runtime"[..]))?;
    drop(err_w);
    let _ = sys::set_nonblock(&err_r);
    s.add_job(Job { pid, slot: slot as u16, kind, reply, err: Some(err_r) });
    Ok(())
}

// ---- methods -------------------------------------------------------------

/// The options Any of a Create: `containerd.runc.v1.Options`.
#[derive(Default)]
struct Opts<'p> {
    binary: &'p [u8],
    root: &'p [u8],
    systemd: bool,
    no_pivot: bool,
    no_new_keyring: bool,
}

fn opts(any: &[u8]) -> Opts<'_> {
    let mut o = Opts::default();
    let mut value: &[u8] = b"";
    let _ = proto::each(any, |f, v| {
        if f == 2 {
            value = v.bytes();
        }
    });
    let _ = proto::each(value, |f, v| match f {
        1 => o.no_pivot = v.bool(),
        2 => o.no_new_keyring = v.bool(),
        6 => o.binary = v.bytes(),
        7 => o.root = v.bytes(),
        9 => o.systemd = v.bool(),
        _ => {}
    });
    o
}

/// Whether the spec in `config` shares a pid namespace (no pid namespace
/// of its own): then its processes outlive its init unless killed.
fn shares_pid_ns(config: &[u8]) -> bool {
    let Some(nss) = crate::json::lookup(config, &[b"linux", b"namespaces"]) else { return true };
    let mut own = false;
    for item in crate::json::items(nss) {
        if crate::json::lookup(item, &[b"type"]) == Some(&br#""pid""#[..]) {
            own = crate::json::lookup(item, &[b"path"]).is_none_or(|p| p == br#""""#);
        }
    }
    !own
}

#[inline(never)]
fn create(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (mut id, mut bundle, mut stdin, mut stdout, mut stderr, mut terminal) =
        (&b""[..], &b""[..], &b""[..], &b""[..], &b""[..], false);
    let (mut checkpoint, mut options, mut mounts) = (&b""[..], &b""[..], 0usize);
    let decoded = proto::each(p, |f, v| match f {
        1 => id = v.bytes(),
        2 => bundle = v.bytes(),
        3 => mounts += 1,
        4 => terminal = v.bool(),
        5 => stdin = v.bytes(),
        6 => stdout = v.bytes(),
        7 => stderr = v.bytes(),
        8 => checkpoint = v.bytes(),
        10 => options = v.bytes(),
        _ => {}
    });
    if decoded.is_err() {
        return s.fail(d, r, INVALID_ARGUMENT, b"malformed CreateTaskRequest");
    }
    if id.is_empty() || id.contains(&b'/') || !bundle.starts_with(b"/") {
        return s.fail(d, r, INVALID_ARGUMENT, b"id and an absolute bundle path are required");
    }
    if !checkpoint.is_empty() {
        return s.fail(d, r, UNIMPLEMENTED, b"shimlet: restoring a checkpoint is not supported");
    }
    if find(s, id, b"").is_some() {
        return already_exists(s, d, r, id);
    }
    let Some(slot) = free_slot(s, d) else { return s.fail(d, r, RESOURCE_EXHAUSTED, FULL) };
    let o = opts(options);
    let ns = s.args.namespace.to_bytes();
    let fields = (copy(id), copy(bundle), copy(stdin), copy(stdout), copy(stderr));
    let (Some(id_b), Some(bundle_b), Some(in_b), Some(out_b), Some(err_b)) = fields else {
        return s.fail(d, r, INVALID_ARGUMENT, b"shimlet: an id or path in the request is too long");
    };
    let mut binary: Buf<256> = Buf::new();
    binary.push(if o.binary.is_empty() { b"runc" } else { o.binary });
    let mut root: Buf<PATH_SZ> = Buf::new();
    root.push(if o.root.is_empty() { b"/run/containerd/runc" } else { o.root });
    root.push(b"/");
    root.push(ns);
    // What `delete` needs, when the shim is gone, if it is not the
    // default (a page of the file cache, charged to the shim, is saved).
    let default_runtime = o.binary.is_empty() && o.root.is_empty();
    let mut file = PathBuf::new();
    file.push(bundle);
    file.push(b"/");
    file.push(super::start::RUNTIME_FILE.to_bytes());
    let mut content: Buf<1024> = Buf::new();
    content.push(binary.as_bytes());
    content.push(b"\n");
    content.push(root.as_bytes());
    content.push(b"\n");
    let mut tmp = PathBuf::new();
    if let (false, Some(f)) = (default_runtime, file.as_cstr()) {
        let _ = sys::write_file_atomic(f, &mut tmp, content.as_bytes(), 0o600);
    }
    // The rootfs.
    let mut rootfs = PathBuf::new();
    rootfs.push(bundle);
    rootfs.push(b"/rootfs");
    let rootfs_c = rootfs.as_cstr().unwrap_or(c"/nonexistent");
    if mounts > 0 {
        if let Err((what, e)) = mount_rootfs(p, rootfs_c) {
            super::mounts::unmount_all(rootfs_c);
            let mut m: Buf<256> = Buf::new();
            m.push(b"failed to mount rootfs component: ");
            m.push(what);
            m.push(b": ");
            m.push(sys::text(e));
            return s.fail(d, r, UNKNOWN, m.as_bytes());
        }
    }
    let kill_all = {
        let mut cfg = PathBuf::new();
        cfg.push(bundle);
        cfg.push(b"/config.json");
        match cfg.as_cstr() {
            Some(c) => shares_pid_ns(sys::read_file(c, &mut d.bufs.input).unwrap_or(b"")),
            None => false,
        }
    };
    let opened = match stdio::open(ns, id, stdin, stdout, stderr, terminal) {
        Ok(o) => o,
        Err((what, e)) => {
            if mounts > 0 {
                super::mounts::unmount_all(rootfs_c);
            }
            let mut m: Buf<256> = Buf::new();
            m.push(b"failed to create shim task: ");
            m.push(what);
            m.push(b": ");
            m.push(sys::text(e));
            return s.fail(d, r, UNKNOWN, m.as_bytes());
        }
    };
    let t = Task {
        init: slot as u16,
        is_exec: false,
        id: id_b,
        exec_id: Buf::new(),
        bundle: bundle_b,
        stdin: in_b,
        stdout: out_b,
        stderr: err_b,
        terminal,
        status: Status::Created,
        pid: 0,
        exit: None,
        binary,
        root,
        systemd: o.systemd,
        spec: None,
        stdin_w: None,
        keep: [None, None],
        logger: 0,
        mounted: mounts > 0,
        pending: Some(r),
        starting: false,
        exit_held: false,
        kill_all,
    };
    s.tasks.put(slot, t);
    let mut pidfile = PathBuf::new();
    pidfile.push(bundle);
    pidfile.push(b"/init.pid");
    let mut words: [&CStr; 10] = [c""; 10];
    let mut n = 0;
    let mut bundle_c: Buf<PATH_SZ> = Buf::new();
    bundle_c.push(bundle);
    let mut id_c: Buf<ID_MAX> = Buf::new();
    id_c.push(id);
    for w in [
        c"create",
        c"--bundle",
        bundle_c.as_cstr().unwrap_or(c"."),
        c"--pid-file",
        pidfile.as_cstr().unwrap_or(c"init.pid"),
    ] {
        words[n] = w;
        n += 1;
    }
    if o.no_pivot {
        words[n] = c"--no-pivot";
        n += 1;
    }
    if o.no_new_keyring {
        words[n] = c"--no-new-keyring";
        n += 1;
    }
    if let Err(m) = launch(s, d, slot, opened, &words[..n], id_c.as_cstr().unwrap_or(c""), None) {
        release(s, d, slot);
        s.fail(d, r, UNKNOWN, m);
    }
}

#[inline(never)]
fn mount_rootfs(p: &[u8], rootfs: &CStr) -> Result<(), (&'static [u8], sys::Errno)> {
    super::mounts::make_rootfs(rootfs).map_err(|e| (&b"mkdir rootfs"[..], e))?;
    for (f, v) in proto::Reader::new(p) {
        if f == 3 {
            super::mounts::mount_one(v.bytes(), rootfs)?;
        }
    }
    Ok(())
}

/// A slot free in both tables.
fn free_slot(s: &Shim, d: &Daemon) -> Option<usize> {
    (0..s.tasks.capacity()).find(|&i| s.tasks.get(i).is_none() && d.procs.get(i).is_none())
}

/// Spawn the runtime that creates (or execs) slot `slot`'s process on
/// `opened` stdio, with `words` then [--console-socket S] then `id`, and
/// put its Proc in the daemon's table.
#[inline(never)]
fn launch(
    s: &mut Shim,
    d: &mut Daemon,
    slot: usize,
    mut opened: stdio::Opened,
    words: &[&CStr],
    id: &CStr,
    spec: Option<BorrowedFd>,
) -> Result<(), &'static [u8]> {
    let Some(t) = s.tasks.get(slot) else { return Err(b"no task") };
    let terminal = t.terminal;
    let init = t.init as usize;
    let mut console = if terminal {
        Some(Console::make(slot).map_err(|_| &b"failed to create the console socket"[..])?)
    } else {
        None
    };
    let runtime = {
        let Some(it) = s.tasks.get(init) else { return Err(b"no container") };
        let mut all: [&CStr; 16] = [c""; 16];
        let mut n = 0;
        for w in words.iter().take(12) {
            all[n] = w;
            n += 1;
        }
        let path = console.as_mut().map(|c| c.path() as *const CStr);
        // SAFETY: the path lives in `console`, which outlives the spawn.
        let path = path.map(|p| unsafe { &*p });
        if let Some(p) = path {
            all[n] = c"--console-socket";
            all[n + 1] = p;
            n += 2;
        }
        all[n] = id;
        n += 1;
        let (mut log, mut bin, mut root) = (PathBuf::new(), Buf::new(), Buf::new());
        let argv = runtime_argv(it, &mut log, &mut bin, &mut root, &all[..n]);
        let null = sys::open(c"/dev/null", OFlags::RDWR, 0).map_err(|_| &b"open /dev/null"[..])?;
        let fd = |i: usize| opened.child[i].as_ref().map_or(null.as_fd(), |f| f.as_fd());
        let stdio = [fd(0), fd(1), fd(2)];
        let extra: [BorrowedFd; 1] = [spec.unwrap_or(null.as_fd())];
        let prog = argv.words().next().unwrap_or(c"runc");
        let sp = Spawn {
            prog,
            argv: &argv,
            stdio,
            gate: None,
            reset_oom: false,
            keep_from_3: 0,
            extra: if spec.is_some() { &extra } else { &[] },
            env: None,
            own_listen_pid: false,
        };
        create::spawn(&sp).map_err(|_| &b"cannot run the runtime"[..])?
    };
    let mut io = Stdio::new(terminal);
    io.pty = None;
    let mut proc =
        Proc::new(slot, Phase::Creating { runtime, held: 0 }, io, Output::new(LogFile::none(), None), Policy::Terminal);
    proc.relay.out = opened.relay_out.take();
    proc.relay.inp = opened.relay_in.take();
    if let Some(c) = console.take() {
        let _ = d.poll.add(Token::new(Kind::Console, slot, 0, &c.listen), &c.listen, EventFlags::IN);
        proc.console = Some(c);
    }
    d.procs.put(slot, proc);
    if let Some(t) = s.tasks.get_mut(slot) {
        t.stdin_w = opened.stdin_w.take();
        t.keep = [opened.keep[0].take(), opened.keep[1].take()];
        t.logger = opened.logger.unwrap_or(0);
    }
    Ok(())
}

/// Let go of slot `slot` in both tables (its fds close), and of what its
/// container holds: the logger, the rootfs mounts.
#[inline(never)]
fn release(s: &mut Shim, d: &mut Daemon, slot: usize) {
    if let Some(t) = s.tasks.get(slot) {
        if t.logger > 0 {
            let _ = sys::kill(t.logger, libc::SIGTERM);
        }
        if t.mounted {
            let mut rootfs = PathBuf::new();
            rootfs.push(t.bundle.as_bytes());
            rootfs.push(b"/rootfs");
            if let Some(p) = rootfs.as_cstr() {
                super::mounts::unmount_all(p);
            }
        }
    }
    if let Some(p) = d.procs.get_mut(slot) {
        p.remove_places();
    }
    d.procs.remove(slot);
    s.tasks.remove(slot);
    for w in s.waits.iter_mut() {
        if w.is_some_and(|(sl, _)| sl as usize == slot) {
            *w = None;
        }
    }
}

/// The runtime creating (or exec'ing) slot `slot`'s process is done.
#[inline(never)]
pub fn created(s: &mut Shim, d: &mut Daemon, slot: usize, e: Ended) {
    let Some(t) = s.tasks.get_mut(slot) else { return };
    let reply = t.pending.take();
    let is_exec = t.is_exec;
    let op: &[u8] = if is_exec { b"OCI runtime exec failed: " } else { b"OCI runtime create failed: " };
    let mut msg: Buf<1024> = Buf::new();
    let init = t.init as usize;
    let bundle = s.tasks.get(init).map(|i| i.bundle).unwrap_or_default();
    let Some(t) = s.tasks.get(slot) else { return };
    let mut pidfile = PathBuf::new();
    pidfile.push(bundle.as_bytes());
    pidfile.push(b"/");
    if is_exec {
        pidfile.push(t.exec_id.as_bytes());
        pidfile.push(b".pid");
    } else {
        pidfile.push(b"init.pid");
    }
    let pid = if e.success() {
        match pidfile.as_cstr().map(create::read_pidfile) {
            Some(Ok(p)) if d.early.contains(p) || create::parent_of(p) == Some(sys::getpid()) => Some(p),
            _ => None,
        }
    } else {
        None
    };
    let terminal = t.terminal;
    let pty_ok = match pid {
        Some(_) if terminal => d.procs.get_mut(slot).is_some_and(|p| p.take_pending_pty(&d.poll)),
        _ => true,
    };
    let Some(pid) = pid.filter(|_| pty_ok) else {
        runtime_error(bundle.as_bytes(), &mut msg);
        if msg.is_empty() {
            msg.push(if !e.success() {
                b"the runtime failed"
            } else if !pty_ok {
                b"the runtime did not send a terminal"
            } else {
                b"no pid in the runtime's pidfile"
            });
        }
        let mut m: Buf<1100> = Buf::new();
        m.push(op);
        m.push(msg.as_bytes());
        if let Some(pid) = pid {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        if is_exec {
            // The exec stays, as never started: its Wait says 0.
            d.procs.remove(slot);
            if let Some(t) = s.tasks.get_mut(slot) {
                t.status = Status::Stopped;
                t.exit = Some((0, ZERO_TIME_SECS, 0));
            }
        } else {
            release(s, d, slot);
        }
        if let Some(r) = reply {
            s.fail(d, r, UNKNOWN, m.as_bytes());
        }
        return;
    };
    let already = d.early.take(pid);
    let poll = &d.poll;
    if let Some(p) = d.procs.get_mut(slot) {
        p.adopt(poll, pid, already);
    }
    let Some(t) = s.tasks.get_mut(slot) else { return };
    t.pid = pid as u32;
    t.status = if is_exec { Status::Running } else { Status::Created };
    let (id, exec_id, stdin, stdout, stderr) = (t.id, t.exec_id, t.stdin, t.stdout, t.stderr);
    if let Some(r) = reply {
        s.ok(d, r, |w| w.uint(1, pid as u64));
    }
    if is_exec {
        s.events.publish(b"/tasks/exec-started", b"containerd.events.TaskExecStarted", |w| {
            w.bytes(1, id.as_bytes());
            w.bytes(2, exec_id.as_bytes());
            w.uint(3, pid as u64);
        });
    } else {
        s.events.publish(b"/tasks/create", b"containerd.events.TaskCreate", |w| {
            w.bytes(1, id.as_bytes());
            w.bytes(2, bundle.as_bytes());
            let io = w.open(4);
            w.bytes(1, stdin.as_bytes());
            w.bytes(2, stdout.as_bytes());
            w.bytes(3, stderr.as_bytes());
            w.bool(4, terminal);
            w.close(io);
            w.uint(6, pid as u64);
        });
    }
}

#[inline(never)]
fn start(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    let Some(t) = s.tasks.get(slot) else { return };
    match (t.status, t.pending.is_some() || t.starting) {
        (_, true) => {
            return s.fail(d, r, FAILED_PRECONDITION, b"a start or create is already in progress: failed precondition")
        }
        (Status::Created, _) => {}
        (Status::Running, _) => return s.fail(d, r, UNKNOWN, b"cannot start a running process"),
        (Status::Stopped, _) => return s.fail(d, r, UNKNOWN, b"cannot start a stopped process"),
        (Status::Paused, _) => return s.fail(d, r, UNKNOWN, b"cannot start a paused process"),
    }
    if !t.is_exec {
        let mut id_c: Buf<ID_MAX> = Buf::new();
        id_c.push(id);
        let words = [c"start", id_c.as_cstr().unwrap_or(c"")];
        match job(s, slot, JobKind::Start, Some(r), &words, None) {
            Ok(()) => {
                if let Some(t) = s.tasks.get_mut(slot) {
                    t.starting = true;
                }
            }
            Err((code, m)) => s.fail(d, r, code, m),
        }
        return;
    }
    // An exec: its stdio and runtime now.
    let init = t.init as usize;
    if s.tasks.get(init).is_none_or(|i| i.status != Status::Running && i.status != Status::Created) {
        return s.fail(d, r, FAILED_PRECONDITION, b"the container's init process is not running: failed precondition");
    }
    let ns = s.args.namespace.to_bytes();
    let opened = match stdio::open(
        ns,
        t.id.as_bytes(),
        t.stdin.as_bytes(),
        t.stdout.as_bytes(),
        t.stderr.as_bytes(),
        t.terminal,
    ) {
        Ok(o) => o,
        Err((what, e)) => {
            let mut m: Buf<256> = Buf::new();
            m.push(what);
            m.push(b": ");
            m.push(sys::text(e));
            return s.fail(d, r, UNKNOWN, m.as_bytes());
        }
    };
    let bundle = s.tasks.get(init).map(|i| i.bundle).unwrap_or_default();
    let mut pidfile = PathBuf::new();
    pidfile.push(bundle.as_bytes());
    pidfile.push(b"/");
    pidfile.push(exec);
    pidfile.push(b".pid");
    let mut id_c: Buf<ID_MAX> = Buf::new();
    id_c.push(id);
    let spec = s.tasks.get_mut(slot).and_then(|t| t.spec.take());
    let words = [
        c"exec",
        c"--detach",
        c"--pid-file",
        pidfile.as_cstr().unwrap_or(c"exec.pid"),
        c"--process",
        c"/proc/self/fd/3",
    ];
    if let Some(t) = s.tasks.get_mut(slot) {
        t.pending = Some(r);
    }
    if let Err(m) = launch(s, d, slot, opened, &words, id_c.as_cstr().unwrap_or(c""), spec.as_ref().map(|f| f.as_fd()))
    {
        if let Some(t) = s.tasks.get_mut(slot) {
            t.pending = None;
        }
        s.fail(d, r, UNKNOWN, m);
    }
}

#[inline(never)]
fn state(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    let Some(t) = s.tasks.get(slot) else { return };
    let bundle = s.tasks.get(t.init as usize).map_or(Buf::new(), |i| i.bundle);
    let (pid, status, terminal, exit) = (t.pid, status_code(t), t.terminal, t.exit);
    let (pid_id, stdin, stdout, stderr) =
        (copy::<ID_MAX>(t.proc_id()).unwrap_or_default(), t.stdin, t.stdout, t.stderr);
    s.ok(d, r, |w| {
        w.bytes(1, pid_id.as_bytes());
        w.bytes(2, bundle.as_bytes());
        w.uint(3, pid as u64);
        w.uint(4, status);
        w.bytes(5, stdin.as_bytes());
        w.bytes(6, stdout.as_bytes());
        w.bytes(7, stderr.as_bytes());
        w.bool(8, terminal);
        let (st, secs, nanos) = exit.unwrap_or((0, ZERO_TIME_SECS, 0));
        w.uint(9, st as u64);
        w.timestamp(10, secs, nanos);
    });
}

#[inline(never)]
fn kill(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let (mut sig, mut all) = (0u32, false);
    let _ = proto::each(p, |f, v| match f {
        3 => sig = v.u32(),
        4 => all = v.bool(),
        _ => {}
    });
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    let Some(t) = s.tasks.get(slot) else { return };
    if t.is_exec && t.pid == 0 {
        return s.fail(d, r, FAILED_PRECONDITION, b"process not created: failed precondition");
    }
    if t.status == Status::Stopped {
        return s.fail(d, r, NOT_FOUND, b"process already finished: not found");
    }
    if all && !t.is_exec {
        let mut id_c: Buf<ID_MAX> = Buf::new();
        id_c.push(id);
        let mut n: Buf<12> = Buf::new();
        n.push_u64(sig as u64);
        let words = [c"kill", c"--all", id_c.as_cstr().unwrap_or(c""), n.as_cstr().unwrap_or(c"15")];
        if let Err((code, m)) = job(s, slot, JobKind::KillAll, Some(r), &words, None) {
            s.fail(d, r, code, m);
        }
        return;
    }
    match sys::kill(t.pid as Pid, sig as i32) {
        Ok(()) => s.ok(d, r, |_| {}),
        Err(sys::Errno::SRCH) => s.fail(d, r, NOT_FOUND, b"process already finished: not found"),
        Err(e) => {
            let mut m: Buf<128> = Buf::new();
            m.push(b"unknown error after kill: ");
            m.push(sys::text(e));
            s.fail(d, r, UNKNOWN, m.as_bytes());
        }
    }
}

#[inline(never)]
fn exec(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let (mut terminal, mut stdin, mut stdout, mut stderr, mut spec) = (false, &b""[..], &b""[..], &b""[..], &b""[..]);
    let _ = proto::each(p, |f, v| match f {
        3 => terminal = v.bool(),
        4 => stdin = v.bytes(),
        5 => stdout = v.bytes(),
        6 => stderr = v.bytes(),
        7 => spec = v.bytes(),
        _ => {}
    });
    let Some(init) = find(s, id, b"") else { return s.fail(d, r, NOT_FOUND, b"container not created: not found") };
    match s.tasks.get(init).map(|t| t.status) {
        Some(Status::Stopped) => return s.fail(d, r, UNKNOWN, b"cannot exec in a stopped state"),
        Some(Status::Paused) => return s.fail(d, r, UNKNOWN, b"cannot exec in a paused state"),
        _ => {}
    }
    if exec.is_empty() || find(s, id, exec).is_some() {
        return already_exists(s, d, r, exec);
    }
    let Some(slot) = free_slot(s, d) else { return s.fail(d, r, RESOURCE_EXHAUSTED, FULL) };
    let (Some(exec_b), Some(in_b), Some(out_b), Some(err_b)) = (copy(exec), copy(stdin), copy(stdout), copy(stderr))
    else {
        return s.fail(d, r, INVALID_ARGUMENT, b"shimlet: an id or path in the request is too long");
    };
    // The spec (JSON in an Any) waits in a memfd until Start hands it to
    // the runtime as /proc/self/fd/3.
    let mut json: &[u8] = b"";
    let _ = proto::each(spec, |f, v| {
        if f == 2 {
            json = v.bytes();
        }
    });
    let memfd = match rustix::fs::memfd_create(c"exec-spec", rustix::fs::MemfdFlags::CLOEXEC) {
        Ok(m) => m,
        Err(e) => {
            let mut m: Buf<128> = Buf::new();
            m.push(b"memfd: ");
            m.push(sys::text(e));
            return s.fail(d, r, UNKNOWN, m.as_bytes());
        }
    };
    if sys::write_all(&memfd, json).is_err() || rustix::fs::seek(&memfd, rustix::fs::SeekFrom::Start(0)).is_err() {
        return s.fail(d, r, UNKNOWN, b"cannot keep the exec spec");
    }
    let Some(it) = s.tasks.get(init) else { return };
    let id_b = it.id;
    let t = Task {
        init: init as u16,
        is_exec: true,
        id: id_b,
        exec_id: exec_b,
        bundle: Buf::new(),
        stdin: in_b,
        stdout: out_b,
        stderr: err_b,
        terminal,
        status: Status::Created,
        pid: 0,
        exit: None,
        binary: Buf::new(),
        root: Buf::new(),
        systemd: false,
        spec: Some(memfd),
        stdin_w: None,
        keep: [None, None],
        logger: 0,
        mounted: false,
        pending: None,
        starting: false,
        exit_held: false,
        kill_all: false,
    };
    s.tasks.put(slot, t);
    s.events.publish(b"/tasks/exec-added", b"containerd.events.TaskExecAdded", |w| {
        w.bytes(1, id);
        w.bytes(2, exec);
    });
    s.ok(d, r, |_| {});
}

fn wait(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    if let Some((st, secs, nanos)) = s.tasks.get(slot).and_then(|t| t.exit) {
        return s.ok(d, r, |w| {
            w.uint(1, st as u64);
            w.timestamp(2, secs, nanos);
        });
    }
    match s.waits.iter().position(|w| w.is_none()) {
        Some(i) => s.waits[i] = Some((slot as u16, r)),
        None => s.fail(d, r, RESOURCE_EXHAUSTED, b"shimlet: too many waits at once"),
    }
}

#[inline(never)]
fn delete(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    let Some(t) = s.tasks.get(slot) else { return };
    match t.status {
        Status::Running => return s.fail(d, r, UNKNOWN, b"cannot delete a running process"),
        Status::Paused => return s.fail(d, r, UNKNOWN, b"cannot delete a paused process"),
        _ => {}
    }
    if t.pending.is_some() || t.starting {
        return s.fail(d, r, FAILED_PRECONDITION, b"a start or create is in progress: failed precondition");
    }
    if t.is_exec {
        let (pid, exit) = (t.pid, t.exit.unwrap_or((0, ZERO_TIME_SECS, 0)));
        release(s, d, slot);
        return s.ok(d, r, |w| {
            w.uint(1, pid as u64);
            w.uint(2, exit.0 as u64);
            w.timestamp(3, exit.1, exit.2);
        });
    }
    let mut id_c: Buf<ID_MAX> = Buf::new();
    id_c.push(id);
    // A container that never started still has its runtime process.
    let words: &[&CStr] = if t.status == Status::Created {
        &[c"delete", c"--force", id_c.as_cstr().unwrap_or(c"")]
    } else {
        &[c"delete", id_c.as_cstr().unwrap_or(c"")]
    };
    if let Err((code, m)) = job(s, slot, JobKind::Delete, Some(r), words, None) {
        s.fail(d, r, code, m);
    }
}

#[inline(never)]
fn pids(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, _) = ids(p);
    let Some(slot) = find(s, id, b"") else { return s.fail(d, r, NOT_FOUND, b"container not created: not found") };
    let pid = s.tasks.get(slot).map_or(0, |t| t.pid);
    let mut list = [0u32; 1024];
    let n = Cgroup::of(pid as Pid).map_or(0, |c| c.procs(&mut list));
    let n = if n == 0 && pid > 0 {
        list[0] = pid;
        1
    } else {
        n
    };
    let tasks = &*s.tasks;
    let execs: [(u32, Buf<ID_MAX>); 8] = {
        let mut e: [(u32, Buf<ID_MAX>); 8] = core::array::from_fn(|_| (0, Buf::new()));
        let mut k = 0;
        for i in tasks.used() {
            if let Some(t) =
                tasks.get(i).filter(|t| t.is_exec && t.id.as_bytes() == id && t.pid > 0 && t.status == Status::Running)
            {
                if k < e.len() {
                    e[k] = (t.pid, t.exec_id);
                    k += 1;
                }
            }
        }
        e
    };
    s.ok(d, r, |w| {
        for &pid in &list[..n] {
            let pi = w.open(1);
            w.uint(1, pid as u64);
            if let Some((_, eid)) = execs.iter().find(|(p, _)| *p == pid && *p != 0) {
                w.any(2, b"containerd.runc.v1.ProcessDetails", |w| w.bytes(1, eid.as_bytes()));
            }
            w.close(pi);
        }
    });
}

#[inline(never)]
fn runtime_call(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8], kind: JobKind) {
    let (id, _) = ids(p);
    let Some(slot) = find(s, id, b"") else { return s.fail(d, r, NOT_FOUND, b"container not created: not found") };
    let Some(t) = s.tasks.get(slot) else { return };
    let refusal: Option<&[u8]> = match (kind, t.status) {
        (JobKind::Pause, Status::Running) | (JobKind::Resume, Status::Paused) => None,
        (JobKind::Pause, Status::Created) => Some(b"cannot pause task in created state"),
        (JobKind::Pause, Status::Paused) => Some(b"cannot pause a paused container"),
        (JobKind::Pause, _) => Some(b"cannot pause a stopped container"),
        (JobKind::Resume, Status::Running) => Some(b"cannot resume a running process"),
        (JobKind::Resume, Status::Created) => Some(b"cannot resume task in created state"),
        _ => Some(b"cannot resume a stopped container"),
    };
    if let Some(m) = refusal {
        return s.fail(d, r, UNKNOWN, m);
    }
    let mut id_c: Buf<ID_MAX> = Buf::new();
    id_c.push(id);
    let verb = if kind == JobKind::Pause { c"pause" } else { c"resume" };
    if let Err((code, m)) = job(s, slot, kind, Some(r), &[verb, id_c.as_cstr().unwrap_or(c"")], None) {
        s.fail(d, r, code, m);
    }
}

#[inline(never)]
fn update(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, _) = ids(p);
    let mut resources: &[u8] = b"";
    let _ = proto::each(p, |f, v| {
        if f == 2 {
            resources = v.bytes();
        }
    });
    let Some(slot) = find(s, id, b"") else { return s.fail(d, r, NOT_FOUND, b"container not created: not found") };
    if s.tasks.get(slot).is_some_and(|t| t.status == Status::Stopped) {
        return s.fail(d, r, UNKNOWN, b"cannot update a stopped container");
    }
    // The resources are JSON (`LinuxResources`) in an Any: the runtime
    // reads them on its stdin.
    let mut json: &[u8] = b"";
    let _ = proto::each(resources, |f, v| {
        if f == 2 {
            json = v.bytes();
        }
    });
    let Ok((rd, wr)) = sys::pipe() else { return s.fail(d, r, UNKNOWN, b"pipe") };
    if json.len() > 60 * 1024 || sys::write_all(&wr, json).is_err() {
        return s.fail(d, r, INVALID_ARGUMENT, b"shimlet: the resources do not fit a pipe");
    }
    drop(wr);
    let mut id_c: Buf<ID_MAX> = Buf::new();
    id_c.push(id);
    if let Err((code, m)) = job(
        s,
        slot,
        JobKind::Update,
        Some(r),
        &[c"update", c"--resources", c"-", id_c.as_cstr().unwrap_or(c"")],
        Some(rd.as_fd()),
    ) {
        s.fail(d, r, code, m);
    }
}

fn resize(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let (mut width, mut height) = (0u32, 0u32);
    let _ = proto::each(p, |f, v| match f {
        3 => width = v.u32(),
        4 => height = v.u32(),
        _ => {}
    });
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    if s.tasks.get(slot).is_some_and(|t| t.is_exec && t.status == Status::Stopped) {
        return s.fail(d, r, UNKNOWN, b"cannot resize a stopped container");
    }
    if let Some(proc) = d.procs.get_mut(slot) {
        proc.resize(height.min(u16::MAX as u32) as u16, width.min(u16::MAX as u32) as u16);
    }
    s.ok(d, r, |_| {});
}

fn close_io(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, exec) = ids(p);
    let Some(slot) = find(s, id, exec) else { return missing(s, d, r, id, exec) };
    if let Some(t) = s.tasks.get_mut(slot) {
        t.stdin_w = None;
    }
    s.ok(d, r, |_| {});
}

#[inline(never)]
fn stats(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, _) = ids(p);
    let Some(slot) = find(s, id, b"") else { return s.fail(d, r, NOT_FOUND, b"container not created: not found") };
    let pid = s.tasks.get(slot).map_or(0, |t| t.pid);
    let Some(cg) = Cgroup::of(pid as Pid).filter(|_| pid > 0) else {
        return s.fail(d, r, NOT_FOUND, b"cgroup does not exist: not found");
    };
    let url = if cg.v2 { stats::V2 } else { stats::V1 };
    s.ok(d, r, |w| w.any(1, url, |w| cg.metrics(w)));
}

fn connect(s: &mut Shim, d: &mut Daemon, r: Reply, p: &[u8]) {
    let (id, _) = ids(p);
    let task_pid = find(s, id, b"").and_then(|i| s.tasks.get(i)).map_or(0, |t| t.pid);
    let me = sys::getpid() as u64;
    s.ok(d, r, |w| {
        w.uint(1, me);
        w.uint(2, task_pid as u64);
    });
}

// ---- completions ---------------------------------------------------------

fn publish_exit(s: &mut Shim, slot: usize) {
    let Some(t) = s.tasks.get(slot) else { return };
    let (id, pid, (st, secs, nanos)) = (t.id, t.pid, t.exit.unwrap_or((0, ZERO_TIME_SECS, 0)));
    let pid_id = copy::<ID_MAX>(t.proc_id()).unwrap_or_default();
    s.events.publish(b"/tasks/exit", b"containerd.events.TaskExit", |w| {
        w.bytes(1, id.as_bytes());
        w.bytes(2, pid_id.as_bytes());
        w.uint(3, pid as u64);
        w.uint(4, st as u64);
        w.timestamp(5, secs, nanos);
    });
}

/// Slot `slot`'s process has ended.
#[inline(never)]
pub fn exited(s: &mut Shim, d: &mut Daemon, slot: usize, e: Ended) {
    // The cgroup v1 notification comes as the OOM begins, before the kill
    // is counted: look at the counter once more now, before the exit.
    if d.procs.get_mut(slot).is_some_and(|p| p.check_oom()) {
        oom(s, d, slot);
    }
    let (secs, nanos) = sys::now();
    let Some(t) = s.tasks.get_mut(slot) else { return };
    let status = e.code as u32;
    t.status = Status::Stopped;
    t.exit = Some((status, secs, nanos as i32));
    let (held, kill_all, is_exec) = (t.starting, t.kill_all, t.is_exec);
    if held {
        t.exit_held = true;
    }
    for i in 0..s.waits.len() {
        if let Some((sl, r)) = s.waits[i] {
            if sl as usize == slot {
                s.waits[i] = None;
                s.ok(d, r, |w| {
                    w.uint(1, status as u64);
                    w.timestamp(2, secs, nanos as i32);
                });
            }
        }
    }
    if !held {
        publish_exit(s, slot);
    }
    if !is_exec && kill_all {
        let mut id_c: Buf<ID_MAX> = Buf::new();
        if let Some(t) = s.tasks.get(slot) {
            id_c.push(t.id.as_bytes());
        }
        let _ = job(s, slot, JobKind::Reap, None, &[c"kill", c"--all", id_c.as_cstr().unwrap_or(c""), c"9"], None);
    }
}

pub fn oom(s: &mut Shim, _d: &mut Daemon, slot: usize) {
    let Some(t) = s.tasks.get(slot) else { return };
    let id = t.id;
    s.events.publish(b"/tasks/oom", b"containerd.events.TaskOOM", |w| w.bytes(1, id.as_bytes()));
}

/// A runtime call ended.
#[inline(never)]
pub fn job_done(s: &mut Shim, d: &mut Daemon, job: Job, e: Ended) {
    let mut err: Buf<1024> = Buf::new();
    if let Some(fd) = &job.err {
        let n = sys::read(fd, err.spare()).unwrap_or(0);
        err.commit(n);
    }
    let text = crate::buf::trim(err.as_bytes());
    let slot = job.slot as usize;
    let fail = |s: &mut Shim, d: &mut Daemon, op: &[u8]| {
        if let Some(r) = job.reply {
            let mut m: Buf<1100> = Buf::new();
            m.push(op);
            m.push(if text.is_empty() { b"the runtime failed" } else { text });
            s.fail(d, r, UNKNOWN, m.as_bytes());
        }
    };
    match job.kind {
        JobKind::Start => {
            let Some(t) = s.tasks.get_mut(slot) else { return };
            t.starting = false;
            if !e.success() {
                return fail(s, d, b"OCI runtime start failed: ");
            }
            if t.status == Status::Created {
                t.status = Status::Running;
            }
            let (id, pid, held) = (t.id, t.pid, t.exit_held);
            t.exit_held = false;
            if let Some(r) = job.reply {
                s.ok(d, r, |w| w.uint(1, pid as u64));
            }
            s.events.publish(b"/tasks/start", b"containerd.events.TaskStart", |w| {
                w.bytes(1, id.as_bytes());
                w.uint(2, pid as u64);
            });
            if held {
                publish_exit(s, slot);
            }
        }
        JobKind::Delete => {
            let gone = e.success() || contains(text, b"does not exist") || contains(text, b"not exist");
            if !gone {
                return fail(s, d, b"failed to delete task: ");
            }
            let Some(t) = s.tasks.get(slot) else { return };
            let (id, pid, (st, secs, nanos)) = (t.id, t.pid, t.exit.unwrap_or((137, 0, 0)));
            let (secs, nanos) = if secs == 0 {
                let (a, b) = sys::now();
                (a, b as i32)
            } else {
                (secs, nanos)
            };
            // Its execs go with it.
            let execs: u64 = s
                .tasks
                .used()
                .filter(|&i| i != slot && s.tasks.get(i).is_some_and(|x| x.is_exec && x.init as usize == slot))
                .fold(0, |a, i| a | 1 << i);
            for i in 0..64 {
                if execs & (1 << i) != 0 {
                    release(s, d, i);
                }
            }
            release(s, d, slot);
            if let Some(r) = job.reply {
                s.ok(d, r, |w| {
                    w.uint(1, pid as u64);
                    w.uint(2, st as u64);
                    w.timestamp(3, secs, nanos);
                });
            }
            s.events.publish(b"/tasks/delete", b"containerd.events.TaskDelete", |w| {
                w.bytes(1, id.as_bytes());
                w.uint(2, pid as u64);
                w.uint(3, st as u64);
                w.timestamp(4, secs, nanos);
            });
        }
        JobKind::Pause | JobKind::Resume => {
            if !e.success() {
                return fail(
                    s,
                    d,
                    if job.kind == JobKind::Pause {
                        b"OCI runtime pause failed: "
                    } else {
                        b"OCI runtime resume failed: "
                    },
                );
            }
            let Some(t) = s.tasks.get_mut(slot) else { return };
            let id = t.id;
            let (status, topic, url): (Status, &[u8], &[u8]) = if job.kind == JobKind::Pause {
                (Status::Paused, b"/tasks/paused", b"containerd.events.TaskPaused")
            } else {
                (Status::Running, b"/tasks/resumed", b"containerd.events.TaskResumed")
            };
            if t.status != Status::Stopped {
                t.status = status;
            }
            if let Some(r) = job.reply {
                s.ok(d, r, |_| {});
            }
            s.events.publish(topic, url, |w| w.bytes(1, id.as_bytes()));
        }
        JobKind::Update => {
            if !e.success() {
                return fail(s, d, b"OCI runtime update failed: ");
            }
            if let Some(r) = job.reply {
                s.ok(d, r, |_| {});
            }
        }
        JobKind::KillAll => {
            if e.success() {
                if let Some(r) = job.reply {
                    s.ok(d, r, |_| {});
                }
            } else if contains(text, b"not running")
                || contains(text, b"no such process")
                || contains(text, b"process already finished")
            {
                if let Some(r) = job.reply {
                    s.fail(d, r, NOT_FOUND, b"process already finished: not found");
                }
            } else {
                fail(s, d, b"unknown error after kill: ");
            }
        }
        JobKind::Reap => {}
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::proto::Writer;
    use super::*;

    #[test]
    fn pid_namespace_sharing() {
        assert!(!shares_pid_ns(br#"{"linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}"#));
        assert!(shares_pid_ns(
            br#"{"linux":{"namespaces":[{"type":"mount"},{"type":"pid","path":"/proc/1/ns/pid"}]}}"#
        ));
        assert!(shares_pid_ns(br#"{"linux":{"namespaces":[{"type":"mount"}]}}"#));
        assert!(shares_pid_ns(b"{}"));
    }

    #[test]
    fn runc_options() {
        // Any{type_url: "containerd.runc.v1.Options", value: {binary_name: "crun", root: "/r", systemd_cgroup: true}}
        let mut b = [0u8; 128];
        let mut w = Writer::new(&mut b);
        w.bytes(1, b"containerd.runc.v1.Options");
        let v = w.open(2);
        w.bytes(6, b"crun");
        w.bytes(7, b"/r");
        w.bool(9, true);
        w.close(v);
        let bytes = w.as_bytes().to_vec();
        let o = opts(&bytes);
        assert_eq!((o.binary, o.root, o.systemd, o.no_pivot), (&b"crun"[..], &b"/r"[..], true, false));
        let o = opts(b"");
        assert!(o.binary.is_empty() && !o.systemd);
    }
}
