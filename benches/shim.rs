//! Launching containers under each shim (shimlet, conmon, or none), and
//! tearing them down.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cgroup::Leaf;
use crate::sys::{self, Proc, Waited};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The fd number the sync pipe gets in the shim (both shims are told).
const SYNC_FD: i32 = 3;
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Shimlet,
    Conmon,
    NoShim,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shimlet => "shimlet",
            Kind::Conmon => "conmon",
            Kind::NoShim => "no shim",
        }
    }
    /// Its line in the charts.
    pub fn color(self) -> &'static str {
        match self {
            Kind::Shimlet => "#1a7f37",
            Kind::Conmon => "#c2410c",
            Kind::NoShim => "#6b7280",
        }
    }
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Shimlet => "shimlet",
            Kind::Conmon => "conmon",
            Kind::NoShim => "noshim",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tools {
    pub runc: Option<PathBuf>,
    pub shimlet: Option<PathBuf>,
    pub conmon: Option<PathBuf>,
    pub busybox: Option<PathBuf>,
}

impl Tools {
    pub fn bin(&self, k: Kind) -> Option<&Path> {
        match k {
            Kind::Shimlet => self.shimlet.as_deref(),
            Kind::Conmon => self.conmon.as_deref(),
            Kind::NoShim => self.runc.as_deref(),
        }
    }
}

/// A busybox root filesystem shared read-only by every container.
pub fn build_rootfs(dir: &Path, busybox: &Path) -> io::Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    fs::copy(busybox, rootfs.join("bin/busybox"))?;
    for a in ["sh", "sleep", "yes", "head", "seq", "cat", "true", "echo", "wc"] {
        symlink("busybox", rootfs.join("bin").join(a))?;
    }
    Ok(rootfs)
}

/// `runc spec`'s default config.json, to be edited per container.
pub fn spec_template(runc: &Path, dir: &Path) -> Result<Value, String> {
    let d = dir.join("spec");
    fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let out = Command::new(runc)
        .args(["spec", "--bundle"])
        .arg(&d)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("runc spec: {e}"))?;
    if !out.status.success() {
        return Err(format!("runc spec failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = fs::read_to_string(d.join("config.json")).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&d);
    serde_json::from_str(&text).map_err(|e| format!("runc spec output: {e}"))
}

pub struct Ctr {
    pub id: String,
    pub kind: Kind,
    pub dir: PathBuf,
    /// Container init pid (-1 when unknown), and a pidfd on it.
    pub pid: i32,
    pub ctr: Option<Proc>,
    /// The shim's daemon (None for no shim).
    pub shim_pid: Option<i32>,
    pub shim: Option<Proc>,
    /// Launch to sync report (shims) or to `runc create`'s exit (no shim).
    pub create: Duration,
    /// The process the bench spawned (the shim's launcher, or runc create).
    pub launcher: i32,
    /// CLOCK_MONOTONIC ns just before the spawn and when the report came.
    pub t0_ns: u64,
    pub t1_ns: u64,
}

impl Ctr {
    pub fn log(&self) -> PathBuf {
        self.dir.join("ctr.log")
    }
}

/// One figure's workspace: runc root, bundles, exit dir; tears down every
/// container it launched and removes itself when dropped.
pub struct Site {
    pub tools: Tools,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub exits: PathBuf,
    socks: PathBuf,
    rootfs: PathBuf,
    template: Value,
    ctr_parent: Option<String>,
    pub live: Vec<Ctr>,
    seq: usize,
    pub warnings: Vec<String>,
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("non-UTF-8 path")
}

impl Site {
    pub fn new(
        tools: &Tools,
        dir: PathBuf,
        rootfs: &Path,
        template: &Value,
        ctr_parent: Option<String>,
    ) -> io::Result<Site> {
        fs::create_dir_all(&dir)?;
        let s = Site {
            tools: tools.clone(),
            root: dir.join("runc"),
            exits: dir.join("exits"),
            socks: dir.join("socks"),
            dir,
            rootfs: rootfs.to_path_buf(),
            template: template.clone(),
            ctr_parent,
            live: Vec::new(),
            seq: 0,
            warnings: Vec::new(),
        };
        for d in [&s.root, &s.exits, &s.socks] {
            fs::create_dir_all(d)?;
        }
        Ok(s)
    }

    fn runc(&self) -> &Path {
        self.tools.runc.as_deref().expect("runc")
    }

    fn config(&self, id: &str, args: &[&str]) -> Value {
        let mut v = self.template.clone();
        v["process"]["terminal"] = Value::Bool(false);
        v["process"]["args"] = Value::Array(args.iter().map(|a| Value::String(a.to_string())).collect());
        v["root"]["path"] = Value::String(path_str(&self.rootfs).to_string());
        v["root"]["readonly"] = Value::Bool(true);
        if let Some(p) = &self.ctr_parent {
            v["linux"]["cgroupsPath"] = Value::String(format!("{p}/{id}"));
        }
        v
    }

    /// Create a container under `kind`, its launcher placed in `leaf`.
    /// Returns the index in `live`. The container is not started.
    pub fn launch(&mut self, kind: Kind, args: &[&str], leaf: Option<&Leaf>) -> Result<usize, String> {
        sys::check_stop()?;
        self.seq += 1;
        let id = format!("sb{}-{}-{}", std::process::id(), kind.tag(), self.seq);
        let dir = self.dir.join(&id);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cfg = serde_json::to_vec_pretty(&self.config(&id, args)).unwrap();
        fs::write(dir.join("config.json"), cfg).map_err(|e| e.to_string())?;
        let runc = self.runc().to_path_buf();
        let root_arg = format!("--root={}", self.root.display());

        let mut cmd;
        match kind {
            Kind::Shimlet => {
                cmd = Command::new(self.tools.shimlet.as_ref().ok_or("shimlet missing")?);
                cmd.arg("--id").arg(&id);
                cmd.arg("--bundle").arg(&dir);
                cmd.arg("--runtime").arg(&runc);
                cmd.arg(format!("--runtime-arg={root_arg}"));
                cmd.arg("--pidfile").arg(dir.join("ctr.pid"));
                cmd.arg("--shim-pidfile").arg(dir.join("shim.pid"));
                cmd.arg("--log").arg(dir.join("ctr.log"));
                cmd.arg("--status-file").arg(dir.join("status"));
                cmd.arg("--exit-dir").arg(&self.exits);
                cmd.arg("--sync-fd").arg(SYNC_FD.to_string());
            }
            Kind::Conmon => {
                cmd = Command::new(self.tools.conmon.as_ref().ok_or("conmon missing")?);
                cmd.args(["--api-version", "1", "-c", &id, "-u", &id, "-n", &id]);
                cmd.arg("-r").arg(&runc);
                cmd.arg("-b").arg(&dir);
                cmd.arg("-p").arg(dir.join("ctr.pid"));
                cmd.arg("--exit-dir").arg(&self.exits);
                cmd.arg("--runtime-arg").arg(&root_arg);
                cmd.arg("-l").arg(format!("k8s-file:{}", dir.join("ctr.log").display()));
                cmd.args(["--log-level", "error"]);
                cmd.arg("--conmon-pidfile").arg(dir.join("shim.pid"));
                cmd.arg("--socket-dir-path").arg(&self.socks);
            }
            Kind::NoShim => {
                cmd = Command::new(&runc);
                cmd.arg(&root_arg).args(["create", "--bundle"]).arg(&dir);
                cmd.arg("--pid-file").arg(dir.join("ctr.pid")).arg(&id);
            }
        }
        cmd.env_clear().env("PATH", PATH).current_dir(&dir);
        if kind == Kind::Conmon {
            cmd.env("_OCI_SYNCPIPE", SYNC_FD.to_string());
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        if kind == Kind::NoShim {
            // The container inherits runc create's stdio: all /dev/null.
            cmd.stderr(Stdio::null());
        } else {
            let f = fs::File::create(dir.join("launcher.err")).map_err(|e| e.to_string())?;
            cmd.stderr(f);
        }
        let sync = if kind == Kind::NoShim { None } else { Some(sys::pipe().map_err(|e| e.to_string())?) };
        let wfd = sync.as_ref().map(|(_, w)| w.as_raw_fd());
        let procs: Vec<_> = leaf.map(|l| l.procs.clone()).unwrap_or_default();
        unsafe {
            cmd.pre_exec(move || {
                // Own process group: a ^C to the bench must not reach the shims.
                libc::setpgid(0, 0);
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let r = libc::write(fd, b"0\n".as_ptr().cast(), 2);
                    libc::close(fd);
                    if r < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(w) = wfd {
                    if libc::dup2(w, SYNC_FD) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }

        let mut ctr = Ctr {
            id: id.clone(),
            kind,
            dir: dir.clone(),
            pid: -1,
            ctr: None,
            shim_pid: None,
            shim: None,
            create: Duration::ZERO,
            launcher: -1,
            t0_ns: 0,
            t1_ns: 0,
        };
        ctr.t0_ns = crate::procev::now_ns();
        let t0 = Instant::now();
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(format!("{}: spawn: {e}", kind.name())),
        };
        let lpid = child.id() as i32;
        drop(child); // never waited through std: the pidfd does it
        ctr.launcher = lpid;
        // Our child, not reaped yet: the pid is still its own.
        let launcher = Proc::open(lpid).map_err(|e| format!("pidfd_open: {e}"))?;
        let read_end = sync.map(|(r, w)| {
            drop(w);
            r
        });
        let res = match &read_end {
            None => match launcher.wait(CREATE_TIMEOUT) {
                Waited::Exited(e) if e.success() => {
                    ctr.create = t0.elapsed();
                    ctr.t1_ns = crate::procev::now_ns();
                    Ok(())
                }
                Waited::Exited(e) => Err(format!("runc create: {}", e.describe())),
                Waited::Gone => Err("runc create: lost".into()),
                Waited::Timeout => {
                    launcher.kill_wait();
                    Err("runc create: timed out".into())
                }
            },
            Some(r) => match sys::read_line(r, Instant::now() + CREATE_TIMEOUT) {
                Ok(Some(line)) => {
                    ctr.create = t0.elapsed();
                    ctr.t1_ns = crate::procev::now_ns();
                    match parse_sync(&line) {
                        Some(p) if p > 0 && p <= i32::MAX as i64 => {
                            ctr.pid = p as i32;
                            Ok(())
                        }
                        _ if line.is_empty() => Err("the sync pipe closed without a report".into()),
                        _ => Err(format!("sync report: {:?}", line)),
                    }
                }
                Ok(None) => Err("no sync report within 30 s".into()),
                Err(e) => Err(format!("sync pipe: {e}")),
            },
        };
        let mut launcher_exit = String::new();
        if kind != Kind::NoShim {
            // The launcher exits once the daemon is forked.
            match launcher.wait(Duration::from_secs(10)) {
                Waited::Timeout => launcher.kill_wait(),
                Waited::Exited(e) if !e.success() => {
                    if res.is_ok() {
                        self.warnings.push(format!("{} launcher: {}", kind.name(), e.describe()));
                    } else {
                        launcher_exit = format!(" (launcher: {})", e.describe());
                    }
                }
                _ => {}
            }
            ctr.shim_pid = read_pid(&dir.join("shim.pid"), Duration::from_secs(2));
            ctr.shim = ctr.shim_pid.and_then(|p| Proc::open(p).ok());
        }
        if ctr.pid <= 0 {
            ctr.pid = read_pid(&dir.join("ctr.pid"), Duration::from_millis(if res.is_ok() { 2000 } else { 10 }))
                .unwrap_or(-1);
        }
        // Created and not started: the container's init is alive, its pid its own.
        ctr.ctr = Proc::open(ctr.pid).ok();
        let failed = res.is_err() || ctr.pid <= 0;
        self.live.push(ctr);
        match res {
            Err(e) => {
                let err = fs::read_to_string(dir.join("launcher.err")).unwrap_or_default();
                let err = err.trim();
                Err(if err.is_empty() {
                    format!("{e}{launcher_exit}")
                } else {
                    format!("{e}{launcher_exit}; stderr: {}", tail(err, 400))
                })
            }
            Ok(()) if failed => Err("no container pid".into()),
            Ok(()) => Ok(self.live.len() - 1),
        }
    }

    /// `runc start`; returns its duration.
    pub fn start(&self, idx: usize) -> Result<Duration, String> {
        let id = &self.live[idx].id;
        let t0 = Instant::now();
        let p = self.spawn_runc(&["start", id])?;
        match p.wait(Duration::from_secs(30)) {
            Waited::Exited(e) if e.success() => Ok(t0.elapsed()),
            Waited::Exited(e) => Err(format!("runc start {id}: {}", e.describe())),
            Waited::Gone => Err(format!("runc start {id}: lost")),
            Waited::Timeout => {
                p.kill_wait();
                Err(format!("runc start {id}: timed out"))
            }
        }
    }

    fn spawn_runc(&self, args: &[&str]) -> Result<Proc, String> {
        let mut cmd = Command::new(self.runc());
        cmd.arg(format!("--root={}", self.root.display()))
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("runc: {e}"))?;
        Proc::open(child.id() as i32).map_err(|e| format!("pidfd_open: {e}"))
    }

    /// Run `runc VERB.. ID` for every id, `par` at a time.
    fn runc_each(&self, verb: &[&str], ids: &[String], par: usize) {
        let mut running: Vec<Proc> = Vec::new();
        for id in ids {
            while running.len() >= par {
                let p = running.remove(0);
                if let Waited::Timeout = p.wait(Duration::from_secs(30)) {
                    p.kill_wait();
                }
            }
            let mut a: Vec<&str> = verb.to_vec();
            a.push(id);
            if let Ok(p) = self.spawn_runc(&a) {
                running.push(p);
            }
        }
        for p in running {
            if let Waited::Timeout = p.wait(Duration::from_secs(30)) {
                p.kill_wait();
            }
        }
    }

    /// Kill every live container, wait for the shims to exit, `runc delete`.
    pub fn teardown(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let live = std::mem::take(&mut self.live);
        let mut unknown = Vec::new();
        for c in &live {
            match &c.ctr {
                Some(p) => {
                    p.kill(libc::SIGKILL);
                }
                None => unknown.push(c.id.clone()),
            }
        }
        for id in &unknown {
            if let Ok(p) = self.spawn_runc(&["kill", id, "KILL"]) {
                p.wait(Duration::from_secs(10));
            }
        }
        for c in &live {
            if let Some(sp) = &c.shim {
                if let Waited::Timeout = sp.wait(Duration::from_secs(10)) {
                    sys::problem(&format!(
                        "{} {} did not exit after its container was killed: SIGKILL",
                        c.kind.name(),
                        sp.pid
                    ));
                    sp.kill_wait();
                }
            } else if let Some(p) = &c.ctr {
                // No shim: the container init was reparented to us.
                p.wait(Duration::from_secs(10));
            }
        }
        let ids: Vec<String> = live.iter().map(|c| c.id.clone()).collect();
        self.runc_each(&["delete", "-f"], &ids, 4);
        sys::reap_all();
    }

    /// Ids runc still knows in this site's root.
    pub fn runc_list(&self) -> Vec<String> {
        let out = Command::new(self.runc())
            .arg(format!("--root={}", self.root.display()))
            .args(["list", "-q"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.teardown();
        let left = self.runc_list();
        if !left.is_empty() {
            self.runc_each(&["delete", "-f"], &left, 4);
            let still = self.runc_list();
            if !still.is_empty() {
                sys::problem(&format!("runc --root {} still lists {:?}", self.root.display(), still));
            }
        }
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        sys::reap_all();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            sys::problem(&format!("removing {}: {e}", self.dir.display()));
        }
    }
}

/// `{"pid": N}` (shimlet) or `{"data": N}` (conmon).
pub fn parse_sync(line: &str) -> Option<i64> {
    for key in ["\"pid\"", "\"data\""] {
        if let Some(i) = line.find(key) {
            let rest = line[i + key.len()..].trim_start().strip_prefix(':')?.trim_start();
            let end = rest.find(|c: char| !(c == '-' || c.is_ascii_digit())).unwrap_or(rest.len());
            return rest[..end].parse().ok();
        }
    }
    None
}

fn read_pid(p: &Path, wait: Duration) -> Option<i32> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(s) = fs::read_to_string(p) {
            if let Ok(n) = s.trim().parse::<i32>() {
                if n > 0 {
                    return Some(n);
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        s
    } else {
        let mut i = s.len() - n;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        &s[i..]
    }
}
