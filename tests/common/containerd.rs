//! A private containerd per test, and `ctr` driven against it (the
//! containerd suites; the CRI suite reuses the launcher with its own config
//! sections and runtime handlers).
//!
//! The world of a test (`Containerd::start`):
//! - a temp dir `$D` holding containerd's config, root, state, gRPC socket
//!   (`$D/containerd.sock`, ttrpc `$D/containerd.sock.ttrpc`) and log;
//! - a private mount namespace with its own tmpfs on /run, held by a holder
//!   process (`unshare --mount`, then a copy of sleep(1) named
//!   `HOLDER_COMM`): containerd 1.6 puts shim sockets under the fixed
//!   /run/containerd/s, and runc-v2 its runc root under /run/containerd/runc.
//!   The namespace outlives a containerd restart. containerd, every `ctr`
//!   and every inspection that needs the namespace run in it through
//!   nsenter(1) (the test process is multi-threaded: it cannot setns itself);
//!   files inside it are read through /proc/HOLDER/root;
//! - a cgroup parent `/shimlet-ctrd-<pid>-<n>` for its containers (`ctr run
//!   --cgroup PARENT/ID`): ctr's default `/<ns>/<id>` would leave a shared
//!   `/<ns>` cgroup behind in every hierarchy;
//! - the locally built busybox image, imported with `ctr images import`.
//!
//! `finish(rt)` ends one runtime's half of a test and fails it (naming the
//! runtime) when anything is left: tasks and containers are deleted, then
//! no process may remain in the namespace (shims, loggers), no runc state,
//! no shim socket, no bundle, no process or cgroup under the parent.
//! Dropping the world stops containerd (by pid), kills what is left (by
//! pid), removes the cgroups and the directory, and fails the test when it
//! had to clean up after a runtime.
//!
//! Orphans: the test process is a child subreaper (as in every suite), so
//! shims that detach, and container processes whose shim died, become its
//! children; `reap_orphans` reaps them (never the test's own `Child`ren,
//! told apart by their command names).

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::image::{build_image, Image, ImageSpec};
use super::podman::{clip, run_bounded, Out};
use super::ttrpc::Ttrpc;
use super::*;

/// The containerd namespace of the tests (not `default`: a shim must use
/// the one it is given).
pub const NS: &str = "shimlet-test";

/// The tag of the test image; containerd names it `docker.io/` + this.
pub const IMAGE_TAG: &str = "shimlet-test/busybox:1";

/// Where the binary payload lives in the image.
pub const BYTES_PATH: &str = "/data/bytes.bin";

/// Bound of one ctr command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The command name (/proc/PID/comm) of the namespace holder.
pub const HOLDER_COMM: &str = "shimlet-nshold";

/// shimlet's containerd shim: the shimlet binary under this name.
pub const SHIMLET_SHIM: &str = "containerd-shim-shimlet-v1";

/// The default search path of containerd and ctr (the shim's directory is
/// put in front of it).
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The binary payload of the image: every byte value, then pseudo-random
/// bytes (fixed seed), so that a lost, doubled or translated byte shows.
pub fn binary_payload() -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend((0..=255u8).rev());
    v.extend_from_slice(b"\r\n\n\r\0\x1b[6n\x04\x03\x1a\x7f");
    v.extend(pseudo_random(256 * 1024 - v.len(), 0x5eed_c0de));
    v
}

// ---------------------------------------------------------------------------
// the runtimes

/// The shim a half of a test runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// containerd's own `containerd-shim-runc-v2`: the reference.
    RuncV2,
    /// shimlet as `containerd-shim-shimlet-v1`.
    Shimlet,
}

/// How `ctr run --runtime` names the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// The absolute path of the shim binary.
    Path,
    /// The runtime name (`io.containerd.X.vN`), found on containerd's PATH.
    Name,
}

impl Runtime {
    /// runc-v2 first (it proves the scenario and the harness), then shimlet.
    pub const BOTH: [Runtime; 2] = [Runtime::RuncV2, Runtime::Shimlet];

    pub fn label(self) -> &'static str {
        match self {
            Runtime::RuncV2 => "runc-v2",
            Runtime::Shimlet => "shimlet",
        }
    }

    /// The runtime name containerd resolves to `containerd-shim-X-vN`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::RuncV2 => "io.containerd.runc.v2",
            Runtime::Shimlet => "io.containerd.shimlet.v1",
        }
    }

    /// The shim binary's absolute path (not checked; see `require`).
    pub fn binary(self) -> PathBuf {
        match self {
            Runtime::RuncV2 => {
                which("containerd-shim-runc-v2").unwrap_or_else(|| PathBuf::from("/usr/bin/containerd-shim-runc-v2"))
            }
            Runtime::Shimlet => shimlet_shim_path(),
        }
    }

    /// The binary, failing the test (never skipping it) when it is missing.
    pub fn require(self) -> PathBuf {
        let p = self.binary();
        let ok = fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false);
        if !ok {
            match self {
                Runtime::RuncV2 => panic!("[runc-v2] {} is missing: apt-get install containerd", p.display()),
                Runtime::Shimlet => panic!(
                    "[shimlet] the shim binary {} is missing: `make build` leaves it there (shimlet's containerd \
                     front end, src/containerd/: the shimlet binary run as {SHIMLET_SHIM})",
                    p.display()
                ),
            }
        }
        p
    }

    /// The `--runtime` argument of ctr run.
    pub fn arg(self, by: By) -> String {
        match by {
            By::Path => self.binary().display().to_string(),
            By::Name => self.name().to_string(),
        }
    }

    /// A short form for container ids.
    pub fn short(self) -> &'static str {
        match self {
            Runtime::RuncV2 => "runc",
            Runtime::Shimlet => "shimlet",
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// shimlet's shim: beside `$SHIMLET_BIN` (the Makefile exports it), else in
/// the release musl target directory.
pub fn shimlet_shim_path() -> PathBuf {
    let dir = match std::env::var_os("SHIMLET_BIN") {
        Some(v) if !v.is_empty() => PathBuf::from(v).parent().map(Path::to_path_buf).unwrap_or_default(),
        _ => workspace_root().join("target/x86_64-unknown-linux-musl/release"),
    };
    dir.join(SHIMLET_SHIM)
}

// ---------------------------------------------------------------------------
// configuration

/// What a test's containerd looks like. `Config::new` gives the ctr suites'
/// setup: CRI plugin disabled, the test image, the shimlet shim's directory
/// first on PATH.
#[derive(Clone)]
pub struct Config {
    /// Part of the temp dir's name (keep it short: socket paths are bounded).
    pub label: String,
    /// The namespace ctr uses.
    pub namespace: String,
    pub disabled_plugins: Vec<String>,
    pub required_plugins: Vec<String>,
    /// TOML appended to the config (after `[plugins."io.containerd.internal.v1.opt"]`);
    /// `$D` stands for the world's directory. E.g. the CRI plugin's table
    /// with its runtime handlers.
    pub sections: String,
    /// Directories put before `BASE_PATH` in containerd's (and ctr's) PATH.
    pub path_dirs: Vec<PathBuf>,
    /// More environment for containerd.
    pub env: Vec<(String, String)>,
    /// Images imported at start, into `namespace`.
    pub images: Vec<ImageSpec>,
    /// containerd's log level (`debug`: its log has every shim call and the
    /// shims' own log lines).
    pub log_level: String,
}

impl Config {
    pub fn new(label: &str) -> Config {
        Config {
            label: format!("cd-{label}"),
            namespace: NS.to_string(),
            disabled_plugins: vec!["io.containerd.grpc.v1.cri".to_string()],
            required_plugins: vec![],
            sections: String::new(),
            path_dirs: vec![shimlet_shim_path().parent().map(Path::to_path_buf).unwrap_or_default()],
            env: vec![],
            images: vec![ImageSpec::busybox(IMAGE_TAG).file(BYTES_PATH, &binary_payload())],
            log_level: "debug".to_string(),
        }
    }

    /// Keeps the CRI plugin (the CRI suite; its table goes in `sections`).
    pub fn with_cri(mut self) -> Config {
        self.disabled_plugins.retain(|p| p != "io.containerd.grpc.v1.cri");
        self
    }

    pub fn sections(mut self, toml: &str) -> Config {
        self.sections.push_str(toml);
        self.sections.push('\n');
        self
    }

    pub fn namespace(mut self, ns: &str) -> Config {
        self.namespace = ns.to_string();
        self
    }

    pub fn image(mut self, spec: ImageSpec) -> Config {
        self.images.push(spec);
        self
    }

    fn toml(&self, d: &Path) -> String {
        let q = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let ds = d.display().to_string();
        format!(
            "version = 2\n\
             root = \"{ds}/root\"\n\
             state = \"{ds}/state\"\n\
             disabled_plugins = [{}]\n\
             required_plugins = [{}]\n\
             \n\
             [grpc]\n  address = \"{ds}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{ds}/containerd.sock.ttrpc\"\n\
             [debug]\n  level = \"{}\"\n\
             \n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{ds}/root/opt\"\n\
             {}\n",
            q(&self.disabled_plugins),
            q(&self.required_plugins),
            self.log_level,
            self.sections.replace("$D", &ds)
        )
    }
}

// ---------------------------------------------------------------------------
// the world

/// A task as `ctr task ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub pid: i32,
    pub status: String,
}

/// A private containerd in a private mount namespace (see the module doc).
pub struct Containerd {
    pub cfg: Config,
    pub dir: TempDir,
    pub sock: PathBuf,
    pub config_path: PathBuf,
    /// containerd's stdout and stderr (every daemon run appends).
    pub log: PathBuf,
    pub ns: String,
    /// `/shimlet-ctrd-<pid>-<n>`: every container's cgroup is under it.
    pub cgroup_parent: String,
    pub images: Vec<Image>,
    holder: RefCell<Option<Child>>,
    holder_pid: i32,
    holder_mntns: String,
    daemon: RefCell<Option<Child>>,
    path_env: String,
    /// The runtime of the half being run (failure messages start with it).
    phase: Cell<Option<Runtime>>,
    ids: Cell<u64>,
}

impl Containerd {
    /// Starts the world: directory, namespace, containerd, images.
    pub fn start(cfg: Config) -> Containerd {
        need("containerd", "containerd");
        need("ctr", "containerd");
        let unshare = need("unshare", "util-linux");
        need("nsenter", "util-linux");
        let sleep = need("sleep", "coreutils");
        become_subreaper();
        let dir = TempDir::new(&cfg.label);
        let sock = dir.join("containerd.sock");
        let ttrpc_len = sock.as_os_str().len() + ".ttrpc".len();
        assert!(ttrpc_len < 100, "socket path too long ({ttrpc_len}): shorten the label {:?}", cfg.label);
        let config_path = dir.join("config.toml");
        fs::write(&config_path, cfg.toml(dir.path())).unwrap();
        for d in ["root", "state"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let mut path_env = String::new();
        for p in &cfg.path_dirs {
            if !p.as_os_str().is_empty() {
                path_env.push_str(&format!("{}:", p.display()));
            }
        }
        path_env.push_str(BASE_PATH);

        // The holder: a copy of sleep(1) under a name no other process of
        // the test has (see reap_orphans).
        let holder_bin = dir.join(HOLDER_COMM);
        // A link, not a copy: a copy's write descriptor, inherited for a
        // moment by another test thread's fork, makes exec fail (ETXTBSY).
        std::os::unix::fs::symlink(&sleep, &holder_bin).unwrap();
        let ready = dir.join("ns-ready");
        let script = format!(
            "mount -t tmpfs -o mode=0755,size=64m shimlet-ctrd-run /run || exit 97; \
             mkdir -p /run/containerd || exit 98; : > '{}' || exit 99; exec '{}' infinity",
            ready.display(),
            holder_bin.display()
        );
        let hlog = fs::File::create(dir.join("holder.log")).unwrap();
        let mut holder = Command::new(unshare)
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(hlog.try_clone().unwrap())
            .stderr(hlog)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn unshare: {e}"));
        let holder_pid = holder.id() as i32;
        let deadline = Instant::now() + WAIT;
        while !(ready.exists() && comm(holder_pid) == HOLDER_COMM) {
            match holder.try_wait() {
                Ok(None) => {}
                Ok(Some(st)) => {
                    panic!("the mount namespace holder exited ({st}): {}", read_text(&dir.join("holder.log")))
                }
                Err(e) => panic!("the mount namespace holder is gone ({e}): {}", read_text(&dir.join("holder.log"))),
            }
            if Instant::now() >= deadline {
                let _ = holder.kill();
                let _ = holder.wait();
                panic!("the mount namespace holder did not get ready: {}", read_text(&dir.join("holder.log")));
            }
            std::thread::sleep(POLL);
        }
        let holder_mntns = mnt_ns(holder_pid).unwrap_or_default();
        let ours = mnt_ns(std::process::id() as i32).unwrap_or_default();
        assert!(!holder_mntns.is_empty() && holder_mntns != ours, "the holder has no mount namespace of its own");

        let cgroup_parent = format!("/shimlet-ctrd-{}-{}", std::process::id(), next_n());
        let ns = cfg.namespace.clone();
        let log = dir.join("containerd.log");
        let mut w = Containerd {
            cfg,
            dir,
            sock,
            config_path,
            log,
            ns,
            cgroup_parent,
            images: vec![],
            holder: RefCell::new(Some(holder)),
            holder_pid,
            holder_mntns,
            daemon: RefCell::new(None),
            path_env,
            phase: Cell::new(None),
            ids: Cell::new(0),
        };
        w.launch();
        let specs = w.cfg.images.clone();
        for (i, spec) in specs.iter().enumerate() {
            let work = w.dir.join(format!("image-{i}"));
            fs::create_dir_all(&work).unwrap();
            let img = build_image(&work, spec);
            w.import(&img);
            w.images.push(img);
        }
        w
    }

    /// The name of the first image (the busybox test image).
    pub fn image(&self) -> &str {
        &self.images.first().expect("no image").name
    }

    /// `[runc-v2] ` / `[shimlet] ` while a half runs.
    pub fn tag(&self) -> String {
        match self.phase.get() {
            Some(rt) => format!("[{rt}] "),
            None => String::new(),
        }
    }

    /// Starts one runtime's half: failure messages name it; fails at once
    /// when its binary is missing.
    pub fn begin(&self, rt: Runtime) {
        self.phase.set(Some(rt));
        rt.require();
    }

    /// A fresh container id: `<what>-<runtime>-<n>`.
    pub fn new_id(&self, rt: Runtime, what: &str) -> String {
        let n = self.ids.get();
        self.ids.set(n + 1);
        format!("{what}-{}-{n}", rt.short())
    }

    pub fn holder_pid(&self) -> i32 {
        self.holder_pid
    }

    /// containerd's pid (None when it is not running).
    pub fn daemon_pid(&self) -> Option<i32> {
        self.daemon.borrow().as_ref().map(|c| c.id() as i32)
    }

    /// A path inside the namespace, as the test reaches it.
    pub fn in_ns(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/{}", self.holder_pid, p.trim_start_matches('/')))
    }

    /// A command run inside the namespace (cwd `$D`, the world's PATH).
    pub fn nsenter<S: AsRef<OsStr>>(&self, prog: S) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.holder_pid.to_string()).arg("-m").arg(format!("--wd={}", self.dir.path().display()));
        c.arg("--").arg(prog);
        c.env("PATH", &self.path_env).current_dir(self.dir.path());
        c
    }

    fn launch(&self) {
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut c = self.nsenter("containerd");
        c.arg("--config").arg(&self.config_path);
        // Not the test's NOTIFY_SOCKET (a test may give containerd one).
        c.env_remove("NOTIFY_SOCKET");
        for (k, v) in &self.cfg.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn containerd: {e}"));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("containerd exited at start ({st}):\n{}", self.log_tail());
            }
            let o = self.ctr(&["version"]);
            if o.code() == 0 && o.stdout_str().contains("Server:") {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "containerd did not answer `ctr version` within {}s:\n{}\n{}",
                    WAIT.as_secs(),
                    o.describe(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *self.daemon.borrow_mut() = Some(child);
    }

    /// Stops containerd (SIGTERM, then SIGKILL if it outlives the bound) and
    /// waits for it. Its shims keep running.
    pub fn stop_daemon(&self) {
        let Some(mut child) = self.daemon.borrow_mut().take() else { return };
        // SAFETY: kill(2) of the containerd this world started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        if try_wait_child(&mut child, WAIT).is_err() {
            panic!(
                "{}containerd did not exit within {}s of SIGTERM (killed it)\n{}",
                self.tag(),
                WAIT.as_secs(),
                self.log_tail()
            );
        }
    }

    /// A containerd restart with the same config, state and namespace.
    pub fn restart(&self) {
        self.stop_daemon();
        self.launch();
    }

    pub fn log_tail(&self) -> String {
        let d = file_tail(&self.log, 6000);
        format!("--- containerd log (tail) ---\n{}", String::from_utf8_lossy(&d))
    }

    // -- ctr ----------------------------------------------------------------

    /// `ctr --address SOCK --namespace NS ARGS...` inside the namespace.
    pub fn ctr_command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = self.nsenter("ctr");
        c.arg("--address").arg(&self.sock).arg("--namespace").arg(&self.ns);
        c.args(args);
        c
    }

    fn what<S: AsRef<OsStr>>(args: &[S]) -> String {
        let a: Vec<String> = args.iter().map(|s| s.as_ref().to_string_lossy().into_owned()).collect();
        format!("ctr {}", a.join(" "))
    }

    /// Runs ctr (stdin /dev/null) within `CMD_TIMEOUT`; a timeout fails the
    /// test.
    pub fn ctr<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        self.ctr_limit(args, None, CMD_TIMEOUT)
    }

    pub fn ctr_input<S: AsRef<OsStr>>(&self, args: &[S], input: &[u8]) -> Out {
        self.ctr_limit(args, Some(input), CMD_TIMEOUT)
    }

    pub fn ctr_limit<S: AsRef<OsStr>>(&self, args: &[S], input: Option<&[u8]>, limit: Duration) -> Out {
        let what = Self::what(args);
        run_bounded(self.ctr_command(args), what, self.dir.path(), input, limit)
            .unwrap_or_else(|e| panic!("{}{e}\n{}", self.tag(), self.log_tail()))
    }

    /// ctr that must exit 0.
    pub fn ctr_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        let o = self.ctr(args);
        if o.code() != 0 {
            panic!("{}{}\n{}", self.tag(), o.describe(), self.log_tail());
        }
        o
    }

    /// A ctr process the test talks to (its stdio as given).
    pub fn spawn_ctr<S: AsRef<OsStr>>(&self, args: &[S], stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Child {
        let mut c = self.ctr_command(args);
        c.stdin(stdin).stdout(stdout).stderr(stderr);
        c.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", Self::what(args)))
    }

    pub fn import(&self, img: &Image) {
        let o = self.ctr(&[OsStr::new("images"), OsStr::new("import"), img.tar.as_os_str()]);
        if o.code() != 0 {
            panic!("importing {}:\n{}\n{}", img.tar.display(), o.describe(), self.log_tail());
        }
        let ls = self.ctr_ok(&["images", "ls", "-q"]);
        assert!(
            ls.stdout_str().lines().any(|l| l.trim() == img.name),
            "{} not listed after import: {}",
            img.name,
            ls.describe()
        );
    }

    /// The arguments of `ctr run` for a container of this world: runtime,
    /// the container's own cgroup, FLAGS, image, id, command.
    pub fn run_args(&self, rt: Runtime, by: By, id: &str, flags: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into(), "--runtime".into(), rt.arg(by), "--cgroup".into(), self.cgroup(id)];
        a.extend(flags.iter().map(|s| s.to_string()));
        a.push(self.image().to_string());
        a.push(id.to_string());
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    }

    /// `ctr run -d` (by absolute path) of a container that must start.
    pub fn run_detached(&self, rt: Runtime, id: &str, flags: &[&str], cmd: &[&str]) -> Task {
        let mut f = vec!["-d"];
        f.extend_from_slice(flags);
        self.ctr_ok(&self.run_args(rt, By::Path, id, &f, cmd));
        let t = self.wait_task_status(id, "RUNNING");
        assert!(t.pid > 0, "{}task {id} has pid {}", self.tag(), t.pid);
        t
    }

    // -- state --------------------------------------------------------------

    /// `ctr task ls`.
    pub fn tasks(&self) -> Vec<Task> {
        parse_tasks(&self.ctr_ok(&["task", "ls"]).stdout_str())
    }

    pub fn task(&self, id: &str) -> Option<Task> {
        self.tasks().into_iter().find(|t| t.id == id)
    }

    /// Waits until `ctr task ls` shows the task with this status.
    pub fn wait_task_status(&self, id: &str, status: &str) -> Task {
        let mut last = None;
        let r = poll_for(WAIT, || {
            let t = self.task(id);
            last = t.clone();
            t.filter(|t| t.status == status)
        });
        r.unwrap_or_else(|| {
            panic!(
                "{}task {id} did not become {status} within {}s; last seen: {last:?}\n{}",
                self.tag(),
                WAIT.as_secs(),
                self.log_tail()
            )
        })
    }

    /// Waits until `ctr task ls` no longer lists the task.
    pub fn wait_task_gone(&self, id: &str) {
        let mut last = None;
        if poll_for(WAIT, || {
            last = self.task(id);
            last.is_none().then_some(())
        })
        .is_none()
        {
            panic!("{}task {id} still listed after {}s: {last:?}\n{}", self.tag(), WAIT.as_secs(), self.log_tail());
        }
    }

    /// `ctr containers ls -q`.
    pub fn containers(&self) -> Vec<String> {
        let o = self.ctr_ok(&["containers", "ls", "-q"]);
        o.stdout_str().lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    }

    /// The bundle containerd made for a task.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir.join("state/io.containerd.runtime.v2.task").join(&self.ns).join(id)
    }

    /// The cgroup path given to a container.
    pub fn cgroup(&self, id: &str) -> String {
        format!("{}/{id}", self.cgroup_parent)
    }

    /// The shim's address from the bundle's `address` file (`unix:///run/...`).
    pub fn shim_address(&self, id: &str) -> String {
        let p = self.bundle(id).join("address");
        wait_until(&format!("{}{} to be written", self.tag(), p.display()), WAIT, || {
            fs::read_to_string(&p).ok().filter(|s| !s.is_empty())
        })
    }

    /// The shim's socket as the test reaches it (through /proc/HOLDER/root).
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let a = self.shim_address(id);
        let path = a
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("{}address {a:?} of {id} has no unix:// prefix", self.tag()));
        assert!(!a.ends_with('\n'), "{}the address file of {id} ends with a newline: {a:?}", self.tag());
        self.in_ns(path)
    }

    /// A ttrpc connection to the shim serving `id`.
    pub fn shim_client(&self, id: &str) -> Ttrpc {
        let p = self.shim_socket(id);
        Ttrpc::connect(&p).unwrap_or_else(|e| panic!("{}connect to the shim's socket {}: {e}", self.tag(), p.display()))
    }

    /// (shim pid, task pid) through Connect on the shim's own socket.
    pub fn shim_pids(&self, id: &str) -> (i32, i32) {
        let mut c = self.shim_client(id);
        let (s, t) = c.connect_task(id).unwrap_or_else(|e| panic!("{}Connect({id}): {e}", self.tag()));
        assert!(s > 1, "{}Connect({id}) gave shim_pid {s}", self.tag());
        (s as i32, t as i32)
    }

    /// Live processes in the world's mount namespace other than the holder,
    /// containerd and ctr: (pid, comm, command line or open files).
    pub fn processes(&self) -> Vec<(i32, String, String)> {
        let daemon = self.daemon_pid();
        all_pids()
            .into_iter()
            .filter(|&p| p != self.holder_pid && Some(p) != daemon)
            .filter(|&p| mnt_ns(p).as_deref() == Some(self.holder_mntns.as_str()))
            .map(|p| (p, comm(p), process_text(p)))
            .filter(|(_, c, _)| c != "ctr" && c != "nsenter")
            .collect()
    }

    /// The processes of the world that run `rt`'s shim binary (e.g. to
    /// count shims: one per container, or one per pod).
    pub fn shim_processes(&self, rt: Runtime) -> Vec<i32> {
        let want = fs::canonicalize(rt.binary()).unwrap_or_default();
        self.processes()
            .into_iter()
            .map(|(p, _, _)| p)
            .filter(|p| fs::read_link(format!("/proc/{p}/exe")).map(|e| e == want).unwrap_or(false))
            .collect()
    }

    /// The cgroup directories of the parent (or of one container) in every
    /// hierarchy where it exists.
    pub fn cgroup_dirs(&self, id: Option<&str>) -> Vec<PathBuf> {
        let rel = match id {
            Some(id) => self.cgroup(id),
            None => self.cgroup_parent.clone(),
        };
        cgroup_roots().into_iter().map(|r| r.join(rel.trim_start_matches('/'))).filter(|p| p.is_dir()).collect()
    }

    /// Every pid in the parent's (or one container's) cgroups, recursively.
    pub fn cgroup_pids(&self, id: Option<&str>) -> Vec<i32> {
        let mut v = vec![];
        for d in self.cgroup_dirs(id) {
            walk_dirs(&d, &mut |p| {
                if let Ok(s) = fs::read_to_string(p.join("cgroup.procs")) {
                    v.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            });
        }
        v.sort();
        v.dedup();
        v
    }

    /// The cgroups under the parent (not the parent itself).
    pub fn child_cgroups(&self) -> Vec<PathBuf> {
        let mut v = vec![];
        for d in self.cgroup_dirs(None) {
            walk_dirs(&d, &mut |p| {
                if p != d {
                    v.push(p.to_path_buf());
                }
            });
        }
        v
    }

    /// Whether a container's cgroup is frozen (cgroup v1 freezer or v2
    /// cgroup.freeze); None when neither is there.
    pub fn frozen(&self, id: &str) -> Option<bool> {
        let rel = self.cgroup(id);
        let rel = rel.trim_start_matches('/');
        if let Ok(s) = fs::read_to_string(Path::new("/sys/fs/cgroup/freezer").join(rel).join("freezer.state")) {
            return Some(s.trim() == "FROZEN");
        }
        if let Ok(s) = fs::read_to_string(Path::new("/sys/fs/cgroup").join(rel).join("cgroup.events")) {
            return Some(s.lines().any(|l| l.trim() == "frozen 1"));
        }
        None
    }

    /// runc state directories (holding state.json) anywhere under the
    /// namespace's /run, and under `$D` (a runc `Root` option may put them
    /// there) except containerd's root, which holds the containers' files.
    pub fn runc_state(&self) -> Vec<PathBuf> {
        let mut roots = vec![(self.in_ns("/run"), 6)];
        if let Ok(rd) = fs::read_dir(self.dir.path()) {
            roots.extend(rd.flatten().map(|e| e.path()).filter(|p| !p.ends_with("root")).map(|p| (p, 5)));
        }
        let mut v = vec![];
        for (root, depth) in roots {
            walk_dirs_depth(&root, depth, &mut |p| {
                if p.join("state.json").is_file() {
                    v.push(p.to_path_buf());
                }
            });
        }
        v
    }

    /// What is in the namespace's /run/containerd/s (shim sockets).
    pub fn shim_sockets(&self) -> Vec<String> {
        fs::read_dir(self.in_ns("/run/containerd/s"))
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    /// The bundles left in containerd's state (hidden `.ID` ones too).
    pub fn bundles(&self) -> Vec<String> {
        fs::read_dir(self.dir.join("state/io.containerd.runtime.v2.task").join(&self.ns))
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    // -- events -------------------------------------------------------------

    /// `ctr events`, subscribed before this returns.
    pub fn events(&self) -> Events {
        let out = self.dir.join(format!("events-{}.txt", next_n()));
        let f = fs::File::create(&out).unwrap();
        let child = self.spawn_ctr(&["events"], Stdio::null(), Stdio::from(f.try_clone().unwrap()), Stdio::from(f));
        let ev = Events { child, out, tag: self.tag() };
        // A namespace created and removed: once its event shows, the
        // subscription is in place.
        let sentinel = format!("sentinel-{}", next_n());
        let deadline = Instant::now() + WAIT;
        loop {
            self.ctr_ok(&["namespaces", "create", &sentinel]);
            let seen = poll_for(Duration::from_secs(2), || {
                ev.all()
                    .iter()
                    .any(|e| e.topic == "/namespaces/create" && e.body["name"] == sentinel.as_str())
                    .then_some(())
            });
            self.ctr_ok(&["namespaces", "remove", &sentinel]);
            if seen.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}`ctr events` never showed a namespace event: {}",
                self.tag(),
                ev.raw()
            );
        }
        ev
    }

    // -- the end of a half, the end of a test --------------------------------

    /// ctr without failing the test: Err on a timeout.
    pub fn try_ctr<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Out, String> {
        run_bounded(self.ctr_command(args), Self::what(args), self.dir.path(), None, CMD_TIMEOUT)
    }

    /// `ctr task ls`, or Err (never fails the test).
    fn try_tasks(&self) -> Result<Vec<Task>, String> {
        let o = self.try_ctr(&["task", "ls"])?;
        if o.code() != 0 {
            return Err(o.describe());
        }
        Ok(parse_tasks(&o.stdout_str()))
    }

    /// Deletes every task (SIGKILL first) and container; returns what went
    /// wrong (never fails the test: Drop uses it).
    fn delete_everything(&self) -> Vec<String> {
        let mut problems = vec![];
        let tasks = match self.try_tasks() {
            Ok(t) => t,
            Err(e) => return vec![format!("ctr task ls failed: {e}")],
        };
        let status_of =
            |id: &str| self.try_tasks().ok().and_then(|v| v.into_iter().find(|t| t.id == id)).map(|t| t.status);
        for t in tasks {
            if t.status != "STOPPED" {
                let _ = self.try_ctr(&["task", "kill", "--all", "--signal", "SIGKILL", &t.id]);
                if poll_for(WAIT, || (status_of(&t.id).as_deref().unwrap_or("STOPPED") == "STOPPED").then_some(()))
                    .is_none()
                {
                    problems.push(format!("task {} did not stop after SIGKILL: {:?}", t.id, status_of(&t.id)));
                }
            }
            let o = self.try_ctr(&["task", "delete", &t.id]);
            if status_of(&t.id).is_some() {
                problems.push(format!(
                    "task {} could not be deleted: {}",
                    t.id,
                    o.map(|o| o.describe()).unwrap_or_else(|e| e)
                ));
            }
        }
        let cs = match self.try_ctr(&["containers", "ls", "-q"]) {
            Ok(o) => o.stdout_str().lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
            Err(e) => {
                problems.push(format!("ctr containers ls failed: {e}"));
                vec![]
            }
        };
        for c in cs {
            match self.try_ctr(&["containers", "rm", &c]) {
                Ok(o) if o.code() == 0 => {}
                Ok(o) => problems.push(format!("container {c} could not be removed:\n{}", o.describe())),
                Err(e) => problems.push(format!("container {c} could not be removed: {e}")),
            }
        }
        problems
    }

    /// Ends one runtime's half: deletes its tasks and containers, then
    /// requires that nothing of it is left (see the module doc). Leftover
    /// processes are killed before the test fails.
    pub fn finish(&self, rt: Runtime) {
        self.phase.set(Some(rt));
        let tag = self.tag();
        let mut problems = self.delete_everything();
        if poll_for(WAIT, || self.processes().is_empty().then_some(())).is_none() {
            let left = self.processes();
            for &(p, _, _) in &left {
                // SAFETY: kill(2) of a process in this world's namespace.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            problems.push(format!(
                "processes left in the namespace after every task was deleted (killed them):\n{}",
                left.iter().map(|(p, c, t)| format!("  {p} {c}: {}", clip(t, 300))).collect::<Vec<_>>().join("\n")
            ));
        }
        if poll_for(WAIT, || self.cgroup_pids(None).is_empty().then_some(())).is_none() {
            let left = self.cgroup_pids(None);
            for &p in &left {
                // SAFETY: kill(2) of a process in this world's cgroups.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            problems.push(format!(
                "container processes left in {} (killed them): {}",
                self.cgroup_parent,
                left.iter().map(|&p| format!("{p} {}", clip(&process_text(p), 200))).collect::<Vec<_>>().join("; ")
            ));
        }
        let checks: [Check; 4] = [
            ("runc state left", Box::new(|| self.runc_state().iter().map(|p| p.display().to_string()).collect())),
            ("shim sockets left in /run/containerd/s", Box::new(|| self.shim_sockets())),
            ("bundles left", Box::new(|| self.bundles())),
            (
                "cgroups left under the parent",
                Box::new(|| self.child_cgroups().iter().map(|p| p.display().to_string()).collect()),
            ),
        ];
        for (what, f) in checks.iter() {
            if poll_for(WAIT, || f().is_empty().then_some(())).is_none() {
                problems.push(format!("{what}: {:?}", f()));
            }
        }
        reap_orphans();
        if !problems.is_empty() {
            panic!("{tag}after the scenario:\n{}\n{}", problems.join("\n"), self.log_tail());
        }
        // Shown with a later failure: this half passed.
        eprintln!("{tag}the scenario passed and left nothing behind");
        self.phase.set(None);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut problems = vec![];
        // After a failure, containerd or a shim may be what hangs: go
        // straight to killing by pid (the namespace, its /run and its mounts
        // go with the last process).
        if self.daemon_pid().is_some() && !panicking {
            problems.extend(self.delete_everything());
        }
        if let Some(mut child) = self.daemon.borrow_mut().take() {
            // SAFETY: kill(2) of the containerd this world started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if try_wait_child(&mut child, Duration::from_secs(10)).is_err() {
                problems.push("containerd ignored SIGTERM (killed it)".to_string());
            }
        }
        let left = self.processes();
        if !left.is_empty() {
            problems.push(format!(
                "processes left in the namespace at the end (killed them): {}",
                left.iter().map(|(p, c, t)| format!("{p} {c} {}", clip(t, 200))).collect::<Vec<_>>().join("; ")
            ));
        }
        for &(p, _, _) in &left {
            // SAFETY: kill(2) of a process in this world's namespace.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let in_cg = self.cgroup_pids(None);
        for &p in &in_cg {
            // SAFETY: kill(2) of a process in this world's cgroups.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if !in_cg.is_empty() {
            problems.push(format!("container processes left at the end (killed them): {in_cg:?}"));
        }
        // Wait until they are gone, reaping as they become the test's
        // zombies (a container process is reparented to the test when its
        // shim dies): a zombie left at the test's exit would go to pid 1.
        let victims: Vec<i32> = left.iter().map(|(p, _, _)| *p).chain(in_cg.iter().copied()).collect();
        let _ = poll_for(Duration::from_secs(10), || {
            reap_orphans();
            victims.iter().all(|&p| !pid_exists(p)).then_some(())
        });
        if let Some(mut h) = self.holder.borrow_mut().take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        reap_orphans();
        // The cgroups: deepest first, in every hierarchy.
        let _ = poll_for(Duration::from_secs(5), || self.cgroup_pids(None).is_empty().then_some(()));
        for d in self.cgroup_dirs(None) {
            let mut all = vec![];
            walk_dirs(&d, &mut |p| all.push(p.to_path_buf()));
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for p in all {
                let _ = fs::remove_dir(&p);
            }
        }
        let cg_left = self.cgroup_dirs(None);
        if !cg_left.is_empty() {
            problems.push(format!("cgroups that could not be removed: {cg_left:?}"));
        }
        let _ = fs::remove_dir_all(self.dir.path());
        if self.dir.path().exists() {
            problems.push(format!("{} could not be removed", self.dir.path().display()));
        }
        if !panicking && !problems.is_empty() {
            panic!("tearing down the containerd world:\n{}", problems.join("\n"));
        }
    }
}

/// A named check of what a half may not leave: the leftovers it finds.
type Check<'a> = (&'static str, Box<dyn Fn() -> Vec<String> + 'a>);

/// Runs `scenario` for runc-v2 then shimlet in one containerd (`finish`
/// after each half).
pub fn each_runtime(label: &str, mut scenario: impl FnMut(&Containerd, Runtime)) {
    let w = Containerd::start(Config::new(label));
    for rt in Runtime::BOTH {
        w.begin(rt);
        scenario(&w, rt);
        w.finish(rt);
    }
}

/// Kills a running task with SIGKILL, waits for it to stop, deletes it and
/// its container.
pub fn kill_and_remove(w: &Containerd, id: &str) {
    w.ctr_ok(&["task", "kill", "--signal", "SIGKILL", id]);
    w.wait_task_status(id, "STOPPED");
    w.ctr(&["task", "delete", id]);
    w.wait_task_gone(id);
    w.ctr_ok(&["containers", "rm", id]);
}

// ---------------------------------------------------------------------------
// events

/// One line of `ctr events`: `DATE TIME ZONE TZ NAMESPACE TOPIC JSON`.
#[derive(Clone, Debug)]
pub struct Event {
    pub namespace: String,
    pub topic: String,
    pub body: Value,
}

impl Event {
    pub fn parse(line: &str) -> Option<Event> {
        let f: Vec<&str> = line.splitn(7, ' ').collect();
        if f.len() < 6 || !f[5].starts_with('/') {
            return None;
        }
        let body = f.get(6).and_then(|j| serde_json::from_str(j).ok()).unwrap_or(Value::Null);
        Some(Event { namespace: f[4].to_string(), topic: f[5].to_string(), body })
    }

    /// The container the event is about (`container_id` or `id`).
    pub fn container(&self) -> Option<&str> {
        self.body.get("container_id").and_then(Value::as_str)
    }
}

/// A running `ctr events` whose output goes to a file.
pub struct Events {
    child: Child,
    out: PathBuf,
    tag: String,
}

impl Events {
    pub fn raw(&self) -> String {
        read_text(&self.out)
    }

    pub fn all(&self) -> Vec<Event> {
        let t = self.raw();
        // The last line may be incomplete.
        let end = t.rfind('\n').map(|i| i + 1).unwrap_or(0);
        t[..end].lines().filter_map(Event::parse).collect()
    }

    /// The /tasks/ events of one container, in order.
    pub fn tasks_of(&self, id: &str) -> Vec<Event> {
        self.all().into_iter().filter(|e| e.topic.starts_with("/tasks/") && e.container() == Some(id)).collect()
    }

    /// The topics of `tasks_of`.
    pub fn topics_of(&self, id: &str) -> Vec<String> {
        self.tasks_of(id).into_iter().map(|e| e.topic).collect()
    }

    /// Waits until the container's /tasks/ events satisfy `f`.
    pub fn wait_tasks(&self, id: &str, what: &str, f: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        poll_for(WAIT, || {
            let v = self.tasks_of(id);
            f(&v).then_some(v)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}events of {id}: {what} not seen within {}s; seen: {:?}",
                self.tag,
                WAIT.as_secs(),
                self.topics_of(id)
            )
        })
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// helpers

/// The rows of `ctr task ls`.
pub fn parse_tasks(out: &str) -> Vec<Task> {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| Task {
                id: f[0].to_string(),
                pid: f[1].parse().unwrap_or(-1),
                status: f[2].to_string(),
            })
        })
        .collect()
}

/// The mount namespace of a process (`mnt:[N]`), None for a zombie or a
/// gone process.
pub fn mnt_ns(pid: i32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().map(|p| p.display().to_string())
}

/// The cgroup hierarchies: /sys/fs/cgroup itself (v2, or the v1 tmpfs) and
/// each directory in it (v1 controllers, `unified`, `systemd`).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            // Real directories only: `cpu` may be a symlink to `cpu,cpuacct`.
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.push(e.path());
            }
        }
    }
    v
}

/// Calls `f` on `root` and every directory below it (symlinks not followed).
pub fn walk_dirs(root: &Path, f: &mut dyn FnMut(&Path)) {
    walk_dirs_depth(root, usize::MAX, f)
}

pub fn walk_dirs_depth(root: &Path, depth: usize, f: &mut dyn FnMut(&Path)) {
    if !fs::symlink_metadata(root).map(|m| m.is_dir()).unwrap_or(false) {
        return;
    }
    f(root);
    if depth == 0 {
        return;
    }
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk_dirs_depth(&e.path(), depth - 1, f);
            }
        }
    }
}

/// Command names of the test's own children (std `Child`ren that their
/// owners wait for): never reaped here.
const OWN_CHILDREN: &[&str] = &["ctr", "nsenter", "containerd", "unshare", HOLDER_COMM];

/// Reaps the zombies reparented to the test process (it is a subreaper):
/// detached shims and the processes of a container whose shim died. The
/// test's own children are told apart by their command names.
pub fn reap_orphans() {
    let me = std::process::id() as i32;
    // A child forked by a test thread that does not exec (a probe that runs
    // in `pre_exec` and exits) carries that thread's name: the thread waits
    // for it itself.
    let mut ours = vec![comm(me)];
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        ours.extend(tasks.flatten().filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok()));
    }
    let ours: Vec<String> = ours.iter().map(|c| c.trim_end().to_string()).collect();
    for p in all_pids() {
        if proc_ppid(p) != Some(me) || !is_zombie(p) {
            continue;
        }
        let c = comm(p);
        if OWN_CHILDREN.contains(&c.as_str()) || ours.contains(&c) {
            continue;
        }
        try_reap(p);
    }
}

/// `ctr task metrics` table rows: (metric, value).
pub fn metrics_table(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let k = f.next()?;
            let v = f.collect::<Vec<_>>().join(" ");
            (k.contains('.') && !v.is_empty()).then(|| (k.to_string(), v))
        })
        .collect()
}

/// FNV-1a, 64 bits: a checksum for failure messages.
pub fn fnv64(d: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in d {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
