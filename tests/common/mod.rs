//! Shared helpers of the shimlet integration tests.
//!
//! Every test builds a `Fixture`: its own temporary directory under /tmp, its
//! own runc state root inside it and container ids that embed the test's name
//! and the test process's pid, so that tests run in parallel and never see
//! each other's containers or shims. Dropping the fixture deletes the
//! containers (`runc delete -f`), checks that `runc list` is empty, makes sure
//! no shim of the test survives, reaps what was reparented to the test process
//! and removes the directory.
//!
//! The test process makes itself a child subreaper, so that a shim that
//! detached from its launcher is reparented to the test (not to the machine's
//! pid 1, which may never reap it): the tests can then observe the shim's end
//! exactly, and reap it so that no zombie is left behind.
//!
//! Waits are bounded (poll every 20 ms up to a limit, then panic with a
//! message saying what was awaited); nothing here measures time.

#![allow(dead_code)]

pub mod attach_client;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Default bound of every wait.
pub const WAIT: Duration = Duration::from_secs(30);
/// Bound for waits that depend on moving a lot of data.
pub const LONG_WAIT: Duration = Duration::from_secs(180);
/// Poll period of the waits.
pub const POLL: Duration = Duration::from_millis(20);

/// The busybox applets that the tests' containers use.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "printf", "head", "yes", "kill", "ls", "seq", "dd", "tr", "true", "false", "wc",
    "stty", "env",
];

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_n() -> u64 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// locating things

/// The workspace root (the directory holding the root Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

/// The shimlet binary under test: `$SHIMLET_BIN`, or the release musl build.
pub fn shimlet_bin() -> PathBuf {
    let p = match std::env::var_os("SHIMLET_BIN") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join("target/x86_64-unknown-linux-musl/release/shimlet"),
    };
    if !p.is_file() {
        panic!("{} does not exist: build it first: make build", p.display());
    }
    p
}

/// Finds an executable in PATH (and the sbin directories, which a non-login
/// PATH may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

/// Fails the test (never skips it) when a tool is missing.
pub fn need(tool: &str, pkg: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| panic!("{tool} is missing: apt-get install {pkg}"))
}

/// runc's path (fails the test when runc is missing).
pub fn runc_bin() -> PathBuf {
    need("runc", "runc")
}

/// The static busybox to copy into root filesystems.
pub fn busybox_static() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    let data = fs::read(&p).unwrap_or_else(|_| panic!("/bin/busybox is missing: apt-get install busybox-static"));
    if !elf_is_static(&data) {
        panic!("/bin/busybox is dynamically linked: apt-get install busybox-static");
    }
    p
}

/// True when an ELF64 file has no PT_INTERP program header (no dynamic loader).
fn elf_is_static(d: &[u8]) -> bool {
    if d.len() < 64 || &d[..4] != b"\x7fELF" || d[4] != 2 {
        return false;
    }
    let u16at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(d[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16at(0x36), u16at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 > d.len() || u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) != 3
    })
}

// ---------------------------------------------------------------------------
// temporary directories

/// A directory under /tmp with a unique name, removed (whole tree) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path =
            PathBuf::from(format!("/tmp/shimlet-test-{}-{}-{}-{:08x}", label, std::process::id(), next_n(), nanos));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// processes

/// Makes the test process a child subreaper (once).
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain prctl on the calling process.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(r, 0, "prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
    });
}

/// /proc/PID/status as a map (None when the process does not exist).
pub fn proc_status(pid: i32) -> Option<BTreeMap<String, String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        s.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// The state letter of a process (R, S, Z, ...), None when it does not exist.
pub fn proc_state(pid: i32) -> Option<char> {
    proc_status(pid)?.get("State")?.chars().next()
}

/// The parent pid of a process.
pub fn proc_ppid(pid: i32) -> Option<i32> {
    proc_status(pid)?.get("PPid")?.parse().ok()
}

/// Whether a process exists at all (a zombie exists).
pub fn pid_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn is_zombie(pid: i32) -> bool {
    proc_state(pid) == Some('Z')
}

/// Exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

/// The open descriptors of a process with what they point to.
pub fn proc_fds(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n: i32 = e.file_name().to_str()?.parse().ok()?;
                    let t = fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
                    Some((n, t))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The NUL-separated command line of a process, NULs turned into spaces.
pub fn proc_cmdline(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// Live (non-zombie) processes whose comm is `shimlet` and whose command line
/// contains `token` (a test's container id or id prefix).
pub fn find_shims(token: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| {
            fs::read_to_string(format!("/proc/{p}/comm")).map(|c| c.trim_end() == "shimlet").unwrap_or(false)
                && proc_cmdline(p).contains(token)
                && pid_alive(p)
        })
        .collect()
}

/// Direct children of `pid` that are zombies.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    all_pids().into_iter().filter(|&p| proc_ppid(p) == Some(pid) && is_zombie(p)).collect()
}

/// Reaps `pid` if it is an exited child of the test process. Returns its wait
/// status when it was reaped now.
pub fn try_reap(pid: i32) -> Option<i32> {
    let mut st = 0;
    // SAFETY: waitpid on a specific pid with WNOHANG.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}

/// Waits until `pid` has ended: reaped by the test process when it is its
/// child, otherwise gone from /proc or a zombie of someone else. Returns the
/// wait status when the test reaped it.
pub fn wait_pid_gone(pid: i32, what: &str) -> Option<i32> {
    wait_until(&format!("{what} (pid {pid}) to end"), WAIT, || {
        let mut st = 0;
        // SAFETY: waitpid on a specific pid with WNOHANG.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return Some(Some(st));
        }
        if r == 0 {
            return None; // our child, still running
        }
        // Not our child.
        if !pid_exists(pid) || is_zombie(pid) {
            Some(None)
        } else {
            None
        }
    })
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2).
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// Decodes a waitpid status: (exit code, signal).
pub fn decode_wait(st: i32) -> (Option<i32>, Option<i32>) {
    let e = ExitStatus::from_raw(st);
    (e.code(), e.signal())
}

// ---------------------------------------------------------------------------
// waiting

/// Polls `f` every 20 ms until it returns Some, for at most `limit`; then
/// panics saying what was awaited.
pub fn wait_until<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_until_or(what, limit, f, String::new)
}

/// Like `wait_until`, with a diagnostic added to the panic message.
pub fn wait_until_or<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
    diag: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("gave up after {}s waiting for {what}\n{}", limit.as_secs(), diag());
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for a child with a bound; kills it and panics when it does not end.
pub fn wait_child(child: &mut std::process::Child, what: &str, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gave up after {}s waiting for {what} (pid {}) to exit; killed it", limit.as_secs(), child.id());
        }
        std::thread::sleep(POLL);
    }
}

/// Reads until a newline or end of file from `fd`, bounded by `limit`.
/// Returns the bytes read (with the newline when there was one).
pub fn read_line_fd(fd: RawFd, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        if out.ends_with(b"\n") {
            return Ok(out);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete line after {}s (got {:?})",
                limit.as_secs(),
                String::from_utf8_lossy(&out)
            ));
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("read: {e}"));
        }
        if n == 0 {
            return Ok(out); // EOF
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

// ---------------------------------------------------------------------------
// root filesystems and bundles

/// Builds a busybox root filesystem in `dir`: bin/busybox, relative applet
/// symlinks, and the usual empty directories.
pub fn build_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(busybox_static(), bin.join("busybox")).expect("copy busybox");
    for a in APPLETS {
        symlink("busybox", bin.join(a)).unwrap();
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
}

/// One container of a test: its id, bundle and the files the shim writes.
#[derive(Clone, Debug)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Directory holding this container's output files (outside the bundle).
    pub dir: PathBuf,
    pub log: PathBuf,
    pub status: PathBuf,
    pub exit_dir: PathBuf,
    pub shim_pidfile: PathBuf,
    /// The default pidfile, BUNDLE/pidfile.
    pub pidfile: PathBuf,
}

impl Container {
    pub fn config_path(&self) -> PathBuf {
        self.bundle.join("config.json")
    }

    pub fn read_config(&self) -> Value {
        serde_json::from_slice(&fs::read(self.config_path()).expect("read config.json")).expect("config.json")
    }

    pub fn write_config(&self, v: &Value) {
        fs::write(self.config_path(), serde_json::to_vec_pretty(v).unwrap()).expect("write config.json");
    }

    /// Edits config.json in place.
    pub fn edit_config(&self, f: impl FnOnce(&mut Value)) {
        let mut v = self.read_config();
        f(&mut v);
        self.write_config(&v);
    }

    /// Puts a file into the root filesystem (before the container is created).
    pub fn add_file(&self, path_in_rootfs: &str, data: &[u8]) {
        let p = self.rootfs.join(path_in_rootfs.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }

    /// The standard shimlet options for this container: id, bundle, runc
    /// root, shim pidfile, log, status file and exit dir.
    pub fn launcher(&self, runc_root: &Path) -> Launcher {
        Launcher::new()
            .opt("--id", &self.id)
            .opt("--bundle", &self.bundle)
            .arg(format!("--runtime-arg=--root={}", runc_root.display()))
            .opt("--shim-pidfile", &self.shim_pidfile)
            .opt("--log", &self.log)
            .opt("--status-file", &self.status)
            .opt("--exit-dir", &self.exit_dir)
    }

    /// The log file parsed (fails the test when it is malformed).
    pub fn log(&self) -> Log {
        let data = fs::read(&self.log).unwrap_or_else(|e| panic!("read {}: {e}", self.log.display()));
        Log::parse(&data).unwrap_or_else(|e| panic!("malformed log {}: {e}", self.log.display()))
    }

    /// Raw log content, or a note when there is none (for diagnostics).
    pub fn log_tail(&self) -> String {
        match fs::read(&self.log) {
            Ok(d) => {
                let start = d.len().saturating_sub(2000);
                format!("log tail ({} bytes in all):\n{}", d.len(), String::from_utf8_lossy(&d[start..]))
            }
            Err(e) => format!("no log {}: {e}", self.log.display()),
        }
    }

    /// Waits until the log holds `needle` in `stream`'s reassembled content.
    pub fn wait_log_contains(&self, stream: Stream, needle: &str) {
        wait_until_or(
            &format!("{needle:?} on {stream:?} in the log of {}", self.id),
            WAIT,
            || {
                let d = fs::read(&self.log).ok()?;
                // The last line may be in the middle of being written.
                let end = d.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
                let log = Log::parse(&d[..end]).ok()?;
                contains(&log.stream(stream), needle.as_bytes()).then_some(())
            },
            || self.log_tail(),
        )
    }

    /// The shim's pid from --shim-pidfile (which exists once the launcher has
    /// exited).
    pub fn shim_pid(&self) -> i32 {
        read_pidfile(&self.shim_pidfile)
    }

    /// The container's pid from the default pidfile BUNDLE/pidfile.
    pub fn container_pid(&self) -> i32 {
        read_pidfile(&self.pidfile)
    }

    /// Waits for the status file and parses it. The file is written at once
    /// (atomically): as soon as it exists it must be complete.
    pub fn wait_status(&self) -> StatusLine {
        self.wait_status_for(WAIT)
    }

    pub fn wait_status_for(&self, limit: Duration) -> StatusLine {
        wait_until_or(
            &format!("the status file {}", self.status.display()),
            limit,
            || self.status.exists().then_some(()),
            || format!("shims alive for {}: {:?}\n{}", self.id, find_shims(&self.id), self.log_tail()),
        );
        let raw = fs::read(&self.status).unwrap();
        StatusLine::parse(&raw).unwrap_or_else(|e| panic!("status file {}: {e}", self.status.display()))
    }

    /// Waits for EXIT_DIR/ID and returns its content.
    pub fn wait_exit_file(&self) -> String {
        let p = self.exit_dir.join(&self.id);
        wait_until(&format!("the exit file {}", p.display()), WAIT, || p.exists().then_some(()));
        fs::read_to_string(&p).unwrap()
    }

    /// Waits until no live shim process mentions this container's id, and
    /// reaps `shim_pid` when it was reparented to the test.
    pub fn wait_no_shim(&self, shim_pid: Option<i32>) {
        if let Some(p) = shim_pid {
            wait_pid_gone(p, "the shim");
        }
        wait_until_or(
            &format!("no shimlet process for {}", self.id),
            WAIT,
            || find_shims(&self.id).is_empty().then_some(()),
            || find_shims(&self.id).iter().map(|p| format!("{p}: {}", proc_cmdline(*p))).collect::<Vec<_>>().join("\n"),
        );
    }
}

pub fn read_pidfile(p: &Path) -> i32 {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read pidfile {}: {e}", p.display()));
    s.trim().parse().unwrap_or_else(|_| panic!("pidfile {} holds {s:?}, not a pid", p.display()))
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// the fixture

/// A test's world: temp dir, runc root, containers; cleaned up on drop.
pub struct Fixture {
    pub name: String,
    /// Prefix of every container id of this test (and nothing else's).
    pub token: String,
    pub tmp: TempDir,
    pub runc_root: PathBuf,
    ids: RefCell<Vec<String>>,
    /// Pids the test learned (shims, containers, launchers) that may end up
    /// reparented to the test process: reaped on drop.
    pids: RefCell<Vec<i32>>,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        runc_bin();
        become_subreaper();
        let tmp = TempDir::new(name);
        let runc_root = tmp.join("runc");
        fs::create_dir(&runc_root).unwrap();
        let token = format!("t-{}-{}-{}-", name, std::process::id(), next_n());
        Fixture { name: name.to_string(), token, tmp, runc_root, ids: RefCell::new(vec![]), pids: RefCell::new(vec![]) }
    }

    /// A fresh unique container id.
    pub fn new_id(&self) -> String {
        let id = format!("{}{}", self.token, self.ids.borrow().len());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// Remembers a pid to reap at the end.
    pub fn track(&self, pid: i32) {
        self.pids.borrow_mut().push(pid);
    }

    /// A bundle (rootfs + config.json from `runc spec`) running `args`.
    pub fn bundle(&self, args: &[&str]) -> Container {
        let c = self.bare_bundle();
        build_rootfs(&c.rootfs);
        let out = Command::new(runc_bin()).arg("spec").current_dir(&c.bundle).output().unwrap();
        assert!(out.status.success(), "runc spec: {}", String::from_utf8_lossy(&out.stderr));
        let rootfs = c.rootfs.display().to_string();
        let cg = format!("/{}", c.id);
        c.edit_config(|v| {
            v["process"]["terminal"] = Value::Bool(false);
            v["process"]["args"] = Value::from(args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            v["root"]["path"] = Value::String(rootfs);
            v["root"]["readonly"] = Value::Bool(true);
            v["linux"]["cgroupsPath"] = Value::String(cg);
        });
        c
    }

    /// The paths of a new container without creating the bundle's content
    /// (only the bundle directory itself).
    pub fn bare_bundle(&self) -> Container {
        let id = self.new_id();
        let dir = self.tmp.join(&id);
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        fs::create_dir(dir.join("exits")).unwrap();
        Container {
            rootfs: bundle.join("rootfs"),
            pidfile: bundle.join("pidfile"),
            log: dir.join("ctr.log"),
            status: dir.join("status"),
            exit_dir: dir.join("exits"),
            shim_pidfile: dir.join("shim.pid"),
            dir,
            bundle,
            id,
        }
    }

    /// The standard launcher of `c` (see `Container::launcher`).
    pub fn launcher(&self, c: &Container) -> Launcher {
        c.launcher(&self.runc_root)
    }

    /// Runs the launcher and remembers the shim's pid when it wrote one.
    pub fn launch(&self, c: &Container, l: Launcher) -> Launched {
        let r = l.run(&c.dir);
        if let Ok(s) = fs::read_to_string(&c.shim_pidfile) {
            if let Ok(p) = s.trim().parse() {
                self.track(p);
            }
        }
        r
    }

    /// Launches and requires a successful create (launcher exit 0; with a
    /// sync fd, a `{"pid": N}` line with N > 0).
    pub fn launch_ok(&self, c: &Container, l: Launcher) -> Launched {
        let r = self.launch(c, l);
        assert!(
            r.status.success(),
            "the launcher failed: {:?}\nstderr: {}\nstdout: {}",
            r.status,
            r.stderr_str(),
            String::from_utf8_lossy(&r.stdout)
        );
        if r.sync.is_some() {
            let pid = r.sync_pid();
            assert!(pid > 0, "create failed: {}", r.sync_text());
            self.track(pid as i32);
        }
        r
    }

    /// `runc --root R ARGS...`
    pub fn runc(&self) -> Command {
        let mut c = Command::new(runc_bin());
        c.arg("--root").arg(&self.runc_root);
        c
    }

    pub fn runc_output(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.runc();
        c.args(args).stdin(Stdio::null());
        c.output().unwrap()
    }

    /// `runc start ID` (the manager's job after a successful create).
    pub fn start(&self, c: &Container) {
        if let Ok(s) = fs::read_to_string(&c.pidfile) {
            if let Ok(p) = s.trim().parse() {
                self.track(p);
            }
        }
        let out = self.runc_output(&["start", &c.id]);
        assert!(
            out.status.success(),
            "runc start {} failed: {}{}",
            c.id,
            String::from_utf8_lossy(&out.stderr),
            c.log_tail()
        );
    }

    /// `runc state ID` as JSON (None when runc does not know the container).
    pub fn state(&self, c: &Container) -> Option<Value> {
        let out = self.runc_output(&["state", &c.id]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The container ids runc lists under this test's root.
    pub fn runc_list(&self) -> Vec<String> {
        let out = self.runc_output(&["list", "-q"]);
        assert!(out.status.success(), "runc list: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|s| s.to_string()).filter(|s| !s.is_empty()).collect()
    }

    /// `runc delete -f` of every container of the test, then `runc list` must
    /// be empty.
    pub fn delete_all(&self) {
        for id in self.ids.borrow().iter() {
            let _ = self.runc_output(&["delete", "-f", id]);
        }
        let left = self.runc_list();
        assert!(left.is_empty(), "runc still lists containers after delete: {left:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for id in self.ids.borrow().iter() {
            let _ = self.runc_output(&["delete", "-f", id]);
        }
        let left = if self.runc_root.exists() { self.runc_list() } else { vec![] };
        // Shims whose container was force-deleted should end by themselves;
        // kill what is left so that nothing outlives the test.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !find_shims(&self.token).is_empty() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let stray = find_shims(&self.token);
        for &p in &stray {
            // SAFETY: kill(2) of a shim of this test.
            unsafe { libc::kill(p, libc::SIGKILL) };
            self.track(p);
        }
        for &p in &stray {
            let _ = wait_pid_gone(p, "a stray shim");
        }
        for &p in self.pids.borrow().iter() {
            if proc_ppid(p) == Some(std::process::id() as i32) && is_zombie(p) {
                try_reap(p);
            }
        }
        if !panicking {
            assert!(left.is_empty(), "runc still lists containers after delete -f: {left:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// running the shim

/// How the launcher gets a sync descriptor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sync {
    None,
    /// `--sync-fd N`, the write end of a SOCK_SEQPACKET socketpair.
    Fd,
    /// `--sync-fd=N`.
    FdEq,
    /// Environment `_OCI_SYNCPIPE=N`.
    Env,
}

/// A shimlet command line being built.
#[derive(Debug)]
pub struct Launcher {
    pub args: Vec<OsString>,
    pub sync: Sync,
    /// Descriptor number at which the launcher inherits an extra open file.
    pub leak_fd: Option<RawFd>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub bin: Option<PathBuf>,
}

impl Launcher {
    pub fn new() -> Launcher {
        Launcher { args: vec![], sync: Sync::None, leak_fd: None, cwd: None, env: vec![], bin: None }
    }

    pub fn arg<S: AsRef<OsStr>>(mut self, a: S) -> Launcher {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, a: &[S]) -> Launcher {
        for s in a {
            self.args.push(s.as_ref().to_os_string());
        }
        self
    }

    /// `--name value`
    pub fn opt<S: AsRef<OsStr>>(self, name: &str, value: S) -> Launcher {
        self.arg(name).arg(value)
    }

    /// `--name=value`
    pub fn opt_eq<S: AsRef<OsStr>>(self, name: &str, value: S) -> Launcher {
        let mut s = OsString::from(format!("{name}="));
        s.push(value.as_ref());
        self.arg(s)
    }

    pub fn sync(mut self, s: Sync) -> Launcher {
        self.sync = s;
        self
    }

    pub fn leak_fd(mut self, fd: RawFd) -> Launcher {
        self.leak_fd = Some(fd);
        self
    }

    pub fn cwd<P: AsRef<Path>>(mut self, p: P) -> Launcher {
        self.cwd = Some(p.as_ref().to_path_buf());
        self
    }

    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, k: K, v: V) -> Launcher {
        self.env.push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Runs the launcher with its stdout/stderr sent to files in `dir` (so
    /// that a daemon keeping them open cannot block the test), waits for it
    /// (bounded), then reads the sync line when there is a sync descriptor.
    pub fn run(self, dir: &Path) -> Launched {
        let n = next_n();
        let out_p = dir.join(format!("launcher-{n}.out"));
        let err_p = dir.join(format!("launcher-{n}.err"));
        let mut cmd = Command::new(self.bin.clone().unwrap_or_else(shimlet_bin));
        cmd.stdin(Stdio::null()).stdout(fs::File::create(&out_p).unwrap()).stderr(fs::File::create(&err_p).unwrap());
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd.env_remove("_OCI_SYNCPIPE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut args = self.args.clone();

        let mut read_end: Option<OwnedFd> = None;
        let mut write_end: Option<OwnedFd> = None;
        if self.sync != Sync::None {
            let (r, mut w) = seqpacket_pair();
            if Some(w.as_raw_fd()) == self.leak_fd {
                // Keep the sync descriptor away from the leak's number.
                // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor owned here.
                let d = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
                assert!(d >= 0, "F_DUPFD_CLOEXEC: {}", std::io::Error::last_os_error());
                // SAFETY: d was just created.
                w = unsafe { OwnedFd::from_raw_fd(d) };
            }
            let wfd = w.as_raw_fd();
            match self.sync {
                Sync::Fd => {
                    args.push("--sync-fd".into());
                    args.push(wfd.to_string().into());
                }
                Sync::FdEq => args.push(format!("--sync-fd={wfd}").into()),
                Sync::Env => {
                    cmd.env("_OCI_SYNCPIPE", wfd.to_string());
                }
                Sync::None => unreachable!(),
            }
            read_end = Some(r);
            write_end = Some(w);
        }
        let leak_file = self.leak_fd.map(|_| {
            let p = dir.join(format!("leaked-{n}.txt"));
            fs::write(&p, b"this descriptor must not reach the container\n").unwrap();
            fs::File::open(&p).unwrap()
        });
        let inherit_fd = write_end.as_ref().map(|w| w.as_raw_fd());
        let leak = leak_file.as_ref().map(|f| (f.as_raw_fd(), self.leak_fd.unwrap()));
        // SAFETY: only async-signal-safe calls (fcntl, dup2) in the child.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = inherit_fd {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some((from, to)) = leak {
                    // dup2 leaves the new descriptor without FD_CLOEXEC.
                    let r = if from == to { libc::fcntl(to, libc::F_SETFD, 0) } else { libc::dup2(from, to) };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.args(&args);
        let mut child = cmd.spawn().expect("spawn shimlet");
        drop(write_end);
        drop(leak_file);
        let status = wait_child(&mut child, "the shimlet launcher", WAIT);
        let stdout = fs::read(&out_p).unwrap_or_default();
        let stderr = fs::read(&err_p).unwrap_or_default();
        let sync = read_end.map(|r| {
            let line = read_line_fd(r.as_raw_fd(), WAIT).unwrap_or_else(|e| {
                panic!(
                    "reading the sync descriptor: {e}\nlauncher: {status:?}\nstderr: {}",
                    String::from_utf8_lossy(&stderr)
                )
            });
            SyncReply::new(line, r)
        });
        Launched { status, stdout, stderr, sync, args }
    }
}

impl Default for Launcher {
    fn default() -> Self {
        Launcher::new()
    }
}

/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): (read end, write end).
pub fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// What came back on the sync descriptor.
#[derive(Debug)]
pub struct SyncReply {
    pub raw: Vec<u8>,
    pub json: Value,
    pub fd: OwnedFd,
}

impl SyncReply {
    fn new(raw: Vec<u8>, fd: OwnedFd) -> SyncReply {
        assert!(
            raw.ends_with(b"\n"),
            "the sync message must be one line ending in a newline, got {:?}",
            String::from_utf8_lossy(&raw)
        );
        assert_eq!(
            raw.iter().filter(|&&b| b == b'\n').count(),
            1,
            "the sync message must be exactly one line: {:?}",
            String::from_utf8_lossy(&raw)
        );
        let json: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("sync message is not JSON ({e}): {:?}", String::from_utf8_lossy(&raw)));
        assert!(json.is_object(), "sync message is not a JSON object: {json}");
        SyncReply { raw, json, fd }
    }

    /// Reads what follows the first line until end of file (bounded): must
    /// be called once the shim has ended.
    pub fn rest(&self) -> Vec<u8> {
        read_line_fd(self.fd.as_raw_fd(), WAIT).unwrap_or_else(|e| panic!("sync descriptor after the line: {e}"))
    }
}

/// A finished launcher.
#[derive(Debug)]
pub struct Launched {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub sync: Option<SyncReply>,
    pub args: Vec<OsString>,
}

impl Launched {
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn sync_json(&self) -> &Value {
        &self.sync.as_ref().expect("launched without a sync descriptor").json
    }

    /// The `pid` of the sync message.
    pub fn sync_pid(&self) -> i64 {
        self.sync_json()["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("sync message without an integer pid: {}", self.sync_json()))
    }

    pub fn sync_message(&self) -> Option<String> {
        self.sync_json().get("message").and_then(|m| m.as_str()).map(|s| s.to_string())
    }

    pub fn sync_text(&self) -> String {
        String::from_utf8_lossy(&self.sync.as_ref().unwrap().raw).into_owned()
    }
}

/// A fake runtime from tests/fakes copied into `dir` with mode `mode`.
pub fn fake_runtime(name: &str, dir: &Path, mode: u32) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fakes").join(name);
    let dst = dir.join(name);
    fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).unwrap();
    dst
}

// ---------------------------------------------------------------------------
// the log format

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub ts: String,
    pub stream: Stream,
    /// `P`: a segment without its newline; `F`: the end of a line.
    pub partial: bool,
    pub payload: Vec<u8>,
}

/// A parsed k8s-file (CRI) log.
#[derive(Clone, Debug, Default)]
pub struct Log {
    pub records: Vec<Record>,
}

/// Checks `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM` (numeric offset).
pub fn check_timestamp(ts: &str) -> Result<(), String> {
    let b = ts.as_bytes();
    let pat = b"dddd-dd-ddTdd:dd:dd.ddddddddd+dd:dd";
    let ok = b.len() == pat.len()
        && b.iter().zip(pat.iter()).all(|(&c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ => c == p,
        });
    if !ok {
        return Err(format!("bad timestamp {ts:?}: want RFC3339 with 9-digit nanoseconds and a numeric offset"));
    }
    let num = |a: usize, z: usize| ts[a..z].parse::<u32>().unwrap();
    let (mo, d, h, mi, s, oh, om) =
        (num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19), num(30, 32), num(33, 35));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || oh > 23 || om > 59 {
        return Err(format!("timestamp out of range: {ts:?}"));
    }
    Ok(())
}

impl Log {
    /// Parses a whole log: every record is `TS STREAM TAG PAYLOAD\n`.
    pub fn parse(data: &[u8]) -> Result<Log, String> {
        let mut records = vec![];
        if data.is_empty() {
            return Ok(Log { records });
        }
        if !data.ends_with(b"\n") {
            return Err(format!("the log does not end with a newline: ...{:?}", tail(data)));
        }
        for (i, line) in data[..data.len() - 1].split(|&b| b == b'\n').enumerate() {
            let bad = |why: &str| {
                format!("record {}: {why}: {:?}", i + 1, String::from_utf8_lossy(&line[..line.len().min(200)]))
            };
            let mut parts = line.splitn(4, |&b| b == b' ');
            let ts = parts.next().ok_or_else(|| bad("empty"))?;
            let stream = parts.next().ok_or_else(|| bad("no stream"))?;
            let tag = parts.next().ok_or_else(|| bad("no tag"))?;
            let payload = parts.next().ok_or_else(|| bad("no space after the tag"))?;
            let ts = std::str::from_utf8(ts).map_err(|_| bad("timestamp not UTF-8"))?;
            check_timestamp(ts).map_err(|e| bad(&e))?;
            let stream = match stream {
                b"stdout" => Stream::Stdout,
                b"stderr" => Stream::Stderr,
                _ => return Err(bad("stream is neither stdout nor stderr")),
            };
            let partial = match tag {
                b"F" => false,
                b"P" => true,
                _ => return Err(bad("tag is neither F nor P")),
            };
            records.push(Record { ts: ts.to_string(), stream, partial, payload: payload.to_vec() });
        }
        Ok(Log { records })
    }

    pub fn records_of(&self, s: Stream) -> Vec<&Record> {
        self.records.iter().filter(|r| r.stream == s).collect()
    }

    /// The bytes a stream carried: P payloads as they are, F payloads
    /// followed by a newline.
    pub fn stream(&self, s: Stream) -> Vec<u8> {
        let mut out = Vec::new();
        for r in self.records_of(s) {
            out.extend_from_slice(&r.payload);
            if !r.partial {
                out.push(b'\n');
            }
        }
        out
    }

    /// A stream's lines: (content without newline, terminated?). The last
    /// one is unterminated when the stream ended with P records.
    pub fn lines(&self, s: Stream) -> Vec<(Vec<u8>, bool)> {
        let mut out = vec![];
        let mut cur: Option<Vec<u8>> = None;
        for r in self.records_of(s) {
            let c = cur.get_or_insert_with(Vec::new);
            c.extend_from_slice(&r.payload);
            if !r.partial {
                out.push((cur.take().unwrap(), true));
            }
        }
        if let Some(c) = cur {
            out.push((c, false));
        }
        out
    }
}

fn tail(d: &[u8]) -> String {
    String::from_utf8_lossy(&d[d.len().saturating_sub(80)..]).into_owned()
}

// ---------------------------------------------------------------------------
// the status file

/// `exited code=N signal=N oom=0|1 pid=N at=TS` (or a line starting with
/// `failed`).
#[derive(Clone, Debug, PartialEq)]
pub struct StatusLine {
    pub raw: String,
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl StatusLine {
    pub fn parse(raw: &[u8]) -> Result<StatusLine, String> {
        let s = std::str::from_utf8(raw).map_err(|_| format!("not UTF-8: {raw:?}"))?;
        if !s.ends_with('\n') || s.matches('\n').count() != 1 {
            return Err(format!("must be exactly one line ending in a newline: {s:?}"));
        }
        let line = &s[..s.len() - 1];
        let mut words = line.split(' ');
        let kind = words.next().unwrap_or_default().to_string();
        let mut fields = BTreeMap::new();
        let mut order = vec![];
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("word {w:?} is not key=value in {line:?}"))?;
            fields.insert(k.to_string(), v.to_string());
            order.push(k.to_string());
        }
        let st = StatusLine { raw: s.to_string(), kind, fields };
        if st.kind == "exited" {
            if order != ["code", "signal", "oom", "pid", "at", "lost"] {
                return Err(format!("want `exited code= signal= oom= pid= at= lost=`, got {line:?}"));
            }
            let code = st.num("code");
            if !(0..=255).contains(&code) {
                return Err(format!("code out of 0-255: {line:?}"));
            }
            let sig = st.num("signal");
            if sig != 0 && code != 128 + sig {
                return Err(format!("killed by a signal: code must be 128+signal: {line:?}"));
            }
            if !matches!(st.fields["oom"].as_str(), "0" | "1") {
                return Err(format!("oom must be 0 or 1: {line:?}"));
            }
            st.num("pid");
            check_timestamp(&st.fields["at"])?;
        } else if st.kind == "failed" {
            if !st.fields.contains_key("code") {
                return Err(format!("a `failed` line must have code=: {line:?}"));
            }
            st.num("code");
        } else {
            return Err(format!("the status line must start with `exited` or `failed`: {line:?}"));
        }
        Ok(st)
    }

    /// A numeric field (panics when missing or not a number).
    pub fn num(&self, k: &str) -> i64 {
        let v = self.fields.get(k).unwrap_or_else(|| panic!("status line without {k}=: {:?}", self.raw));
        v.parse().unwrap_or_else(|_| panic!("status field {k}={v} is not a number: {:?}", self.raw))
    }
}

// ---------------------------------------------------------------------------
// misc

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        v.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Shows bytes for a failure message: the first difference between two.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let i = a.iter().zip(b.iter()).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let win = |d: &[u8]| format!("{:?}", String::from_utf8_lossy(&d[i.saturating_sub(20)..(i + 40).min(d.len())]));
    format!("lengths {} vs {}; first difference at byte {i}: {} vs {}", a.len(), b.len(), win(a), win(b))
}

/// Writes a file and makes it executable.
pub fn write_script(p: &Path, text: &str) {
    let mut f = fs::File::create(p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    drop(f);
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn read_all(p: &Path) -> Vec<u8> {
    let mut v = vec![];
    fs::File::open(p).and_then(|mut f| f.read_to_end(&mut v)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    v
}

pub fn osstr_bytes(s: &OsStr) -> &[u8] {
    s.as_bytes()
}
