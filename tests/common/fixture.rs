//! A test's world: every test builds a `Fixture`: its own temporary
//! directory under /tmp, its own runc state root inside it and container ids
//! that embed the test's name and the test process's pid, so that tests run
//! in parallel and never see each other's containers or shims. Dropping the
//! fixture deletes the containers (`runc delete -f`), checks that `runc list`
//! is empty, makes sure no shim of the test survives, reaps what was
//! reparented to the test process and removes the directory.

use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// The busybox applets that the tests' containers use.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "printf", "head", "yes", "kill", "ls", "seq", "dd", "tr", "true", "false", "wc",
    "stty", "env",
];

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
            || find_shims(&self.id).iter().map(|p| format!("{p}: {}", process_text(*p))).collect::<Vec<_>>().join("\n"),
        );
    }
}

pub fn read_pidfile(p: &Path) -> i32 {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read pidfile {}: {e}", p.display()));
    s.trim().parse().unwrap_or_else(|_| panic!("pidfile {} holds {s:?}, not a pid", p.display()))
}

/// Reads a pid file a fake runtime wrote beside itself (waits for it).
pub fn wait_pid_file(p: &Path) -> i32 {
    wait_until(&format!("{} to be written", p.display()), WAIT, || {
        fs::read_to_string(p).ok()?.trim().parse::<i32>().ok()
    })
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

/// A bundle whose process runs on a terminal (process.terminal = true).
pub fn tty_bundle(fx: &Fixture, args: &[&str]) -> Container {
    let c = fx.bundle(args);
    c.edit_config(|v| v["process"]["terminal"] = serde_json::Value::Bool(true));
    c
}

pub fn runc_status(fx: &Fixture, c: &Container) -> String {
    fx.state(c).and_then(|v| v["status"].as_str().map(|s| s.to_string())).unwrap_or_else(|| "<unknown>".into())
}

pub fn runc_kill(fx: &Fixture, c: &Container, sig: &str) {
    let out = fx.runc_output(&["kill", &c.id, sig]);
    assert!(out.status.success(), "runc kill {} {sig}: {}", c.id, String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------
// files inside a running container

/// `/proc/PID/root/dev/shm/NAME`: a file in the container's (writable)
/// /dev/shm, seen from the host.
pub fn shm_path(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root/dev/shm/{name}"))
}

/// Creates /dev/shm/NAME in the container: the go-ahead the container's
/// script waits for.
pub fn touch_in_container(pid: i32, name: &str) {
    let p = shm_path(pid, name);
    fs::write(&p, b"").unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
}

/// A shell loop waiting (bounded, 60 s) for /dev/shm/NAME to exist.
pub fn wait_file_sh(name: &str) -> String {
    format!("i=0; while [ ! -e /dev/shm/{name} ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 99; sleep 0.05; done")
}
