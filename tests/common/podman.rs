//! The real-podman world of a test (tests/podman.rs): an isolated podman
//! installation per test, podman commands with timeouts, pseudo-terminal
//! sessions and process checks. Only the podman suite uses this module.
//!
//! Every test gets its own temporary directory holding a `containers.conf`,
//! a `storage.conf` (overlay, graphroot and runroot inside the directory), an
//! empty `registries.conf`, podman's `--tmpdir` (where the exit files and the
//! events log go), the network config dir and the working directory of every
//! podman command. The busybox image is built from the rootfs helper of
//! tests/common, tarred and `podman import`ed into that storage. Nothing is
//! written under /etc or into the default storage (see `Podman::new` for the
//! two places outside the directory that podman itself touches).
//!
//! Dropping the world removes every container (`podman rm -af -t 0`), checks
//! that no shim (`conmon` or `shimlet`) or other process of the test is left,
//! unmounts what podman may have left mounted and removes the directory.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// The image every test imports into its own storage.
pub const IMAGE: &str = "localhost/shimlet-test:latest";

/// Bound of every podman command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Extra busybox applets the podman tests use (on top of super::APPLETS).
pub const MORE_APPLETS: &[&str] = &["tail", "awk", "id", "grep", "touch", "rm", "mkdir", "ps", "hostname"];

static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn seq() -> u64 {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// the shims

/// Which conmon-compatible shim podman (or the CRI-O style launcher) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shim {
    Conmon,
    Shimlet,
}

impl Shim {
    /// Conmon first (to prove the scenario right), then shimlet.
    pub const BOTH: [Shim; 2] = [Shim::Conmon, Shim::Shimlet];

    pub fn path(self) -> PathBuf {
        match self {
            Shim::Conmon => conmon_bin(),
            Shim::Shimlet => super::shimlet_bin(),
        }
    }

    /// The process name (/proc/PID/comm) of the shim.
    pub fn comm(self) -> &'static str {
        match self {
            Shim::Conmon => "conmon",
            Shim::Shimlet => "shimlet",
        }
    }
}

impl std::fmt::Display for Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.comm())
    }
}

/// /usr/bin/conmon (or `$SHIMLET_TEST_CONMON`, to hold the same scenarios
/// against another conmon build), or a failure saying what to install.
pub fn conmon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SHIMLET_TEST_CONMON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/bin/conmon");
    if !p.is_file() {
        panic!("/usr/bin/conmon is missing: apt-get install podman conmon");
    }
    p
}

pub fn podman_bin() -> PathBuf {
    super::which("podman").unwrap_or_else(|| panic!("podman is missing: apt-get install podman conmon"))
}

// ---------------------------------------------------------------------------
// command results

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Out {
    /// The exit code; a death by signal N counts as 128+N.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stdout without its trailing whitespace.
    pub fn text(&self) -> String {
        self.stdout_str().trim_end().to_string()
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code(),
            self.elapsed.as_secs_f64(),
            clip(&self.stdout_str(), 3000),
            clip(&self.stderr_str(), 3000)
        )
    }
}

/// The last `n` characters of a text (for failure messages).
pub fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    format!("[...{} bytes cut...]{}", i, &s[i..])
}

/// Runs a command with stdout/stderr sent to files (a daemon that inherits
/// them can then not block the test), kills it when it outlives `limit`.
/// Returns Err(message) on a timeout.
pub fn run_bounded(
    mut cmd: Command,
    what: String,
    dir: &Path,
    input: Option<&[u8]>,
    limit: Duration,
) -> Result<Out, String> {
    let n = seq();
    let out_p = dir.join(format!("cmd-{n}.out"));
    let err_p = dir.join(format!("cmd-{n}.err"));
    cmd.stdout(fs::File::create(&out_p).unwrap()).stderr(fs::File::create(&err_p).unwrap());
    let in_p = dir.join(format!("cmd-{n}.in"));
    match input {
        Some(data) => {
            fs::write(&in_p, data).unwrap();
            cmd.stdin(fs::File::open(&in_p).unwrap());
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = fs::read(&out_p).unwrap_or_default();
    let stderr = fs::read(&err_p).unwrap_or_default();
    let _ = fs::remove_file(&out_p);
    let _ = fs::remove_file(&err_p);
    let _ = fs::remove_file(&in_p);
    match status {
        Some(status) => Ok(Out { what, status, stdout, stderr, elapsed }),
        None => Err(format!(
            "`{what}` did not finish within {}s: killed it\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
            limit.as_secs(),
            clip(&String::from_utf8_lossy(&stdout), 3000),
            clip(&String::from_utf8_lossy(&stderr), 3000)
        )),
    }
}

// ---------------------------------------------------------------------------
// the podman world of a test

pub struct Podman {
    pub tmp: super::TempDir,
    pub graphroot: PathBuf,
    pub runroot: PathBuf,
    pub tmpdir: PathBuf,
    /// Working directory of every podman command (conmon writes its stray
    /// `oom` file there, see the OOM test).
    pub cwd: PathBuf,
    label: String,
    env: Vec<(String, String)>,
}

impl Podman {
    /// A fresh podman world with the test image imported.
    pub fn new(label: &str) -> Podman {
        podman_bin();
        conmon_bin();
        super::runc_bin();
        let tmp = super::TempDir::new(&format!("pm-{label}"));
        let graphroot = tmp.join("graph");
        let runroot = tmp.join("run");
        let tmpdir = tmp.join("tmp");
        let cwd = tmp.join("cwd");
        let netdir = tmp.join("networks");
        let xdg = tmp.join("xdg");
        for d in [&tmpdir, &cwd, &netdir, &xdg] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(
            tmp.join("containers.conf"),
            format!(
                "[engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 runtime = \"runc\"\n\
                 events_logger = \"file\"\n\
                 [containers]\n\
                 default_ulimits = []\n\
                 log_driver = \"k8s-file\"\n\
                 [network]\n\
                 network_config_dir = \"{}\"\n",
                netdir.display()
            ),
        )
        .unwrap();
        fs::write(
            tmp.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                graphroot.display(),
                runroot.display()
            ),
        )
        .unwrap();
        fs::write(tmp.join("registries.conf"), "").unwrap();
        let env = vec![
            ("CONTAINERS_CONF".to_string(), tmp.join("containers.conf").display().to_string()),
            ("CONTAINERS_STORAGE_CONF".to_string(), tmp.join("storage.conf").display().to_string()),
            ("CONTAINERS_REGISTRIES_CONF".to_string(), tmp.join("registries.conf").display().to_string()),
            ("XDG_RUNTIME_DIR".to_string(), xdg.display().to_string()),
            ("TMPDIR".to_string(), tmpdir.display().to_string()),
        ];
        let p = Podman { tmp, graphroot, runroot, tmpdir, cwd, label: label.to_string(), env };

        // The image: a busybox root filesystem, tarred and imported.
        let rootfs = p.tmp.join("rootfs");
        super::build_rootfs(&rootfs);
        for a in MORE_APPLETS {
            let l = rootfs.join("bin").join(a);
            if !l.exists() {
                symlink("busybox", l).unwrap();
            }
        }
        let tar = p.tmp.join("rootfs.tar");
        let out = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").output().expect("run tar");
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        p.import(&tar);
        let _ = fs::remove_dir_all(&rootfs);
        let _ = fs::remove_file(&tar);
        p
    }

    /// `podman import TAR IMAGE`, in a private mount namespace with a tmpfs
    /// on /var/lib: containers/image keeps a blob-info cache at
    /// /var/lib/containers/cache when run as root, with no setting to move
    /// it; this way it stays out of the host's /var/lib.
    fn import(&self, tar: &Path) {
        let unshare = super::need("unshare", "util-linux");
        let mut c = Command::new(unshare);
        c.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /var/lib && exec \"$0\" \"$@\"",
        ]);
        let podman = self.command(Shim::Conmon, &[OsStr::new("import"), tar.as_os_str(), OsStr::new(IMAGE)]);
        c.arg(podman.get_program()).args(podman.get_args());
        c.current_dir(&self.cwd);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let what = format!("podman import {} {IMAGE} (in a private mount namespace)", tar.display());
        let o = run_bounded(c, what, self.tmp.path(), None, CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        if o.code() != 0 {
            panic!("importing the test image failed:\n{}", o.describe());
        }
    }

    /// `podman --conmon SHIM --root --runroot --tmpdir ARGS...` with the
    /// world's environment, run in the world's working directory.
    pub fn command<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S]) -> Command {
        let mut c = Command::new(podman_bin());
        c.arg("--conmon")
            .arg(shim.path())
            .arg("--root")
            .arg(&self.graphroot)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--tmpdir")
            .arg(&self.tmpdir);
        c.args(args);
        c.current_dir(&self.cwd);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn what<S: AsRef<OsStr>>(shim: Shim, args: &[S]) -> String {
        let a: Vec<String> = args.iter().map(|s| s.as_ref().to_string_lossy().into_owned()).collect();
        format!("podman --conmon <{shim}> {}", a.join(" "))
    }

    /// Runs podman (stdin /dev/null) bounded by CMD_TIMEOUT; a timeout fails
    /// the test.
    pub fn run<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S]) -> Out {
        self.run_limit(shim, args, None, CMD_TIMEOUT)
    }

    pub fn run_input<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S], input: &[u8]) -> Out {
        self.run_limit(shim, args, Some(input), CMD_TIMEOUT)
    }

    pub fn run_limit<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S], input: Option<&[u8]>, limit: Duration) -> Out {
        let mut what = Self::what(shim, args);
        if let Some(i) = input {
            what.push_str(&format!(" (with {} bytes on stdin)", i.len()));
        }
        run_bounded(self.command(shim, args), what, self.tmp.path(), input, limit)
            .unwrap_or_else(|e| panic!("[{shim}] {e}"))
    }

    /// Runs podman (stdin /dev/null) with `files` as its descriptors 3, 4,
    /// ... (as a shell's `3<file` gives them), bounded by CMD_TIMEOUT.
    pub fn run_with_fds<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S], files: &[&fs::File]) -> Out {
        // Moved above every target number first, then dup2'd into place.
        let high: Vec<OwnedFd> = files
            .iter()
            .map(|f| {
                // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor owned here.
                let d = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
                assert!(d >= 0, "F_DUPFD_CLOEXEC: {}", std::io::Error::last_os_error());
                // SAFETY: d was just created.
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(d) }
            })
            .collect();
        let moves: Vec<(i32, i32)> = high.iter().enumerate().map(|(i, f)| (f.as_raw_fd(), 3 + i as i32)).collect();
        let mut cmd = self.command(shim, args);
        // SAFETY: only dup2 (async-signal-safe) in the child.
        unsafe {
            cmd.pre_exec(move || {
                for &(from, to) in &moves {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let what = format!("{} (with {} files from fd 3)", Self::what(shim, args), files.len());
        let o = run_bounded(cmd, what, self.tmp.path(), None, CMD_TIMEOUT).unwrap_or_else(|e| panic!("[{shim}] {e}"));
        drop(high);
        o
    }

    /// Runs podman and requires exit code 0.
    pub fn ok<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S]) -> Out {
        let o = self.run(shim, args);
        if o.code() != 0 {
            panic!("[{shim}] podman failed:\n{}", o.describe());
        }
        o
    }

    /// `podman inspect --format FMT CTR`, trimmed.
    pub fn inspect(&self, shim: Shim, ctr: &str, fmt: &str) -> String {
        self.ok(shim, &["inspect", "--format", fmt, ctr]).text()
    }

    /// A container name unique in this world.
    pub fn name(&self, shim: Shim, what: &str) -> String {
        format!("{what}-{shim}-{}", seq())
    }

    /// `podman run -d --network none --name NAME EXTRA... IMAGE CMD...`;
    /// requires success, returns the container name.
    pub fn run_d(&self, shim: Shim, name: &str, extra: &[&str], cmd: &[&str]) -> String {
        let mut a: Vec<&str> = vec!["run", "-d", "--network", "none", "--name", name];
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.ok(shim, &a);
        name.to_string()
    }

    /// Spawns podman with the given stdio (for long-running commands such as
    /// `logs -f` or `attach`); the caller bounds its wait.
    pub fn spawn<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S], stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Child {
        let mut c = self.command(shim, args);
        c.stdin(stdin).stdout(stdout).stderr(stderr);
        c.spawn().unwrap_or_else(|e| panic!("[{shim}] spawn {}: {e}", Self::what(shim, args)))
    }

    /// Spawns podman on a new pseudo-terminal of `rows` x `cols` that is its
    /// controlling terminal (new session, TIOCSCTTY).
    pub fn spawn_pty<S: AsRef<OsStr>>(&self, shim: Shim, args: &[S], rows: u16, cols: u16) -> PtySession {
        PtySession::spawn(self.command(shim, args), Self::what(shim, args), rows, cols)
    }

    /// Waits until `podman inspect` of `ctr` gives `want` for `fmt`.
    pub fn wait_inspect(&self, shim: Shim, ctr: &str, fmt: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            let o = self.run(shim, &["inspect", "--format", fmt, ctr]);
            last = if o.code() == 0 { o.text() } else { o.describe() };
            if o.code() == 0 && last == want {
                return;
            }
            std::thread::sleep(POLL);
        }
        panic!("[{shim}] {ctr}: `inspect --format {fmt}` is not {want:?} after {}s; last: {last}", WAIT.as_secs());
    }

    /// The path of this world's temp dir (every podman, conmon and shimlet
    /// command line of the test mentions it).
    pub fn token(&self) -> String {
        self.tmp.path().display().to_string()
    }

    /// Live processes (other than the test itself) whose command line
    /// mentions this world's directory.
    pub fn processes(&self) -> Vec<(i32, String, String)> {
        let tok = self.token();
        processes_mentioning(&tok)
    }

    /// Removes every container and requires that no shim of the world stays.
    /// (Also run on drop; call it explicitly to have its checks fail the test.)
    pub fn cleanup(&self) -> Result<(), String> {
        let mut problems = vec![];
        match run_bounded(
            self.command(Shim::Conmon, &["rm", "-af", "-t", "0"]),
            "podman rm -af -t 0".into(),
            self.tmp.path(),
            None,
            CMD_TIMEOUT,
        ) {
            Ok(o) if o.code() == 0 => {}
            Ok(o) => problems.push(format!("cleanup: {}", o.describe())),
            Err(e) => problems.push(format!("cleanup: {e}")),
        }
        // Exit commands (`podman container cleanup`) and shims may need a
        // moment to go.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let left = self.processes();
        if !left.is_empty() {
            let shims: Vec<_> = left.iter().filter(|(_, c, _)| c == "conmon" || c == "shimlet").collect();
            if !shims.is_empty() {
                problems.push(format!(
                    "shim processes of the test are still alive 20s after `podman rm -af`: {}",
                    shims.iter().map(|(p, c, l)| format!("\n  {p} {c}: {}", clip(l, 300))).collect::<String>()
                ));
            }
            for (pid, _, _) in &left {
                // SAFETY: kill(2) of a process of this test's world.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.processes().is_empty() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Unmounts whatever is still mounted inside the world's directory.
    fn unmount_all(&self) {
        let tok = self.token();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(|s| s.to_string()))
            .filter(|m| m.starts_with(&tok))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = Command::new("umount").arg("-l").arg(&m).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let r = self.cleanup();
        self.unmount_all();
        // TempDir removes the directory.
        if let Err(e) = r {
            if !std::thread::panicking() {
                panic!("[{}] {e}", self.label);
            } else {
                eprintln!("[{}] (while failing) {e}", self.label);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// processes

/// Fields of /proc/PID/status of interest for the memory report.
pub fn memory_of(pid: i32) -> String {
    let st = super::proc_status(pid).unwrap_or_default();
    let get = |k: &str| st.get(k).cloned().unwrap_or_else(|| "?".into());
    format!("RssAnon {}, VmPTE {}, VmRSS {}", get("RssAnon"), get("VmPTE"), get("VmRSS"))
}

/// Waits (bounded) until `f` holds; panics with `what` and the diagnostic.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool, diag: impl FnOnce() -> String) {
    wait_until_or(what, limit, || f().then_some(()), diag)
}

pub fn code_of(st: ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

// ---------------------------------------------------------------------------
// output collected by a thread

/// What a collector's thread has read and whether it saw the end of file,
/// with a condition variable signalled at every change.
type Collected = Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>;

/// Bytes read from a descriptor by a background thread until end of file.
#[derive(Clone)]
pub struct Collector {
    inner: Collected,
}

impl Collector {
    /// Reads `r` until EOF (or an error such as EIO on a pty master) in a
    /// thread. With `answer_cursor_query`, writes `ESC[1;1R` to `reply`
    /// whenever `ESC[6n` (busybox sh's cursor position query) arrives.
    pub fn start<R: Read + Send + 'static>(mut r: R, mut reply: Option<fs::File>) -> Collector {
        let c = Collector { inner: Arc::new((Mutex::new((Vec::new(), false)), Condvar::new())) };
        let c2 = c.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut scanned = 0usize;
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let (lock, cv) = &*c2.inner;
                let mut g = lock.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.extend_from_slice(&buf[..n]);
                if let Some(w) = reply.as_mut() {
                    let from = scanned.saturating_sub(3);
                    let queries = count(&g.0[from..], b"\x1b[6n");
                    scanned = g.0.len();
                    for _ in 0..queries {
                        let _ = w.write_all(b"\x1b[1;1R");
                    }
                }
                cv.notify_all();
            }
        });
        c
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.inner.0.lock().unwrap().0.clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until the output from byte `from` on contains `needle`; returns
    /// the offset just past it.
    pub fn wait_for(&self, needle: &[u8], from: usize, limit: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + limit;
        let (lock, cv) = &*self.inner;
        let mut g = lock.lock().unwrap();
        loop {
            if g.0.len() > from {
                if let Some(i) = find(&g.0[from..], needle) {
                    return Ok(from + i + needle.len());
                }
            }
            let now = Instant::now();
            if now >= deadline || g.1 {
                let all = String::from_utf8_lossy(&g.0).into_owned();
                return Err(format!(
                    "{:?} not seen {} (output so far, {} bytes: {:?})",
                    String::from_utf8_lossy(needle),
                    if g.1 { "before end of output".to_string() } else { format!("within {}s", limit.as_secs()) },
                    g.0.len(),
                    clip(&all, 2000)
                ));
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for end of file.
    pub fn wait_eof(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let (lock, cv) = &*self.inner;
        let mut g = lock.lock().unwrap();
        while !g.1 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
        true
    }
}

// ---------------------------------------------------------------------------
// pseudo-terminals

/// A process running on a pseudo-terminal: its output is collected, input is
/// written to the master.
pub struct PtySession {
    pub what: String,
    pub child: Child,
    master: fs::File,
    pub out: Collector,
    /// Offset up to which `expect` has consumed the output.
    pos: usize,
}

impl PtySession {
    pub fn spawn(mut cmd: Command, what: String, rows: u16, cols: u16) -> PtySession {
        let Pty { master, slave } = open_pty();
        set_winsize(slave.as_raw_fd(), rows, cols);
        let sl = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup slave"));
        cmd.stdin(sl(&slave)).stdout(sl(&slave)).stderr(sl(&slave));
        // SAFETY: only async-signal-safe calls in the child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what} on a pty: {e}"));
        drop(slave);
        drop(cmd);
        let master = fs::File::from(master);
        let reader = master.try_clone().unwrap();
        let replier = master.try_clone().unwrap();
        let out = Collector::start(reader, Some(replier));
        PtySession { what, child, master, out, pos: 0 }
    }

    /// Waits for `needle` after what was already matched.
    pub fn expect(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        match self.out.wait_for(needle.as_bytes(), self.pos, limit) {
            Ok(p) => {
                self.pos = p;
                Ok(())
            }
            Err(e) => Err(format!("{}: {e}", self.what)),
        }
    }

    pub fn send(&mut self, data: &[u8]) {
        self.master.write_all(data).unwrap_or_else(|e| panic!("write to the pty of {}: {e}", self.what));
    }

    /// Waits for the process to exit (bounded; kills it on timeout).
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        try_wait_child(&mut self.child, limit)
            .map_err(|e| format!("{} {e}\n--- terminal output ---\n{}", self.what, clip(&self.out.text(), 3000)))
    }

    pub fn transcript(&self) -> String {
        clip(&self.out.text(), 3000)
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// k8s-file logs

/// The lines (reassembled from F/P records) of one stream of a k8s-file log;
/// Err when the file is not well formed.
pub fn log_lines(data: &[u8], stream: super::Stream) -> Result<Vec<String>, String> {
    let end = data.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    let log = super::Log::parse(&data[..end])?;
    Ok(log.lines(stream).into_iter().map(|(l, _)| String::from_utf8_lossy(&l).into_owned()).collect())
}

/// Parses `line-N` lines; Err for any other line.
pub fn numbered(lines: &[String], prefix: &str) -> Result<Vec<u64>, String> {
    lines
        .iter()
        .map(|l| {
            l.strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("unexpected line {l:?} (want {prefix}N)"))
        })
        .collect()
}

/// A short summary of a list of numbers: "first..last (count), gaps at ...".
pub fn summarize(ns: &[u64]) -> String {
    if ns.is_empty() {
        return "none".into();
    }
    let gaps: Vec<String> =
        ns.windows(2).filter(|w| w[1] != w[0] + 1).take(5).map(|w| format!("{}->{}", w[0], w[1])).collect();
    format!(
        "{}..{} ({} lines){}",
        ns[0],
        ns[ns.len() - 1],
        ns.len(),
        if gaps.is_empty() { String::new() } else { format!(", jumps at {}", gaps.join(" ")) }
    )
}
