//! A private containerd for figures 6 (cri.rs) and 7 (ctrd.rs): its own
//! config, root, state and socket in the bench's temp dir, in a private
//! mount namespace with its own /run (its shims' sockets are under the
//! fixed /run/containerd/s, runc's state under /run/containerd/runc), and
//! the two shims under test as runtimes whose `runtime_type` is a wrapper
//! script that charges each shim's `start` (and the daemon it forks) to a
//! memory cgroup of its own. Everything is stopped by pid and removed when
//! the `Containerd` is dropped.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cgroup::{Cgroups, Leaf};
use crate::report::Stat;
use crate::sys;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The two shims under test.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Handler {
    Runc,
    Shimlet,
}

impl Handler {
    pub const BOTH: [Handler; 2] = [Handler::Runc, Handler::Shimlet];

    pub fn name(self) -> &'static str {
        match self {
            Handler::Runc => "runc",
            Handler::Shimlet => "shimlet",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Handler::Runc => "containerd-shim-runc-v2",
            Handler::Shimlet => "shimlet",
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(d.into());
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

fn need(name: &str, pkg: &str) -> Result<PathBuf, String> {
    which(name).ok_or_else(|| format!("{name} is missing: apt-get install {pkg}"))
}

/// A `kB` field of /proc/PID/<file> (status, smaps_rollup).
fn proc_kb(pid: i32, file: &str, key: &str) -> Option<f64> {
    let t = fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    t.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()
    })
}

pub fn ppid(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

fn mnt_ns(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// Runs `cmd`; its stdout, or an error with its stderr.
pub fn command(cmd: &mut Command, what: &str) -> Result<String, String> {
    let o = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{what}: {}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn sha256(p: &Path) -> Result<String, String> {
    let out = command(Command::new("sha256sum").arg(p), "sha256sum")?;
    out.split_whitespace().next().map(String::from).ok_or_else(|| "sha256sum printed nothing".into())
}

/// A docker-archive image of `rootfs` (what `ctr images import` takes).
pub fn image_tar(work: &Path, rootfs: &Path, tag: &str, entrypoint: &[&str]) -> Result<PathBuf, String> {
    let out = work.join(format!("img-{}", tag.replace(['/', ':'], "-")));
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let layer = out.join("layer.tar");
    command(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
            .arg(&layer)
            .arg("."),
        "tar (layer)",
    )?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => return Err(format!("no image architecture for {a}")),
    };
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": { "Entrypoint": entrypoint, "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{}", sha256(&layer)?)] },
    });
    let tmp = out.join("config.json");
    fs::write(&tmp, serde_json::to_vec(&config).unwrap()).map_err(|e| e.to_string())?;
    let name = format!("{}.json", sha256(&tmp)?);
    fs::rename(&tmp, out.join(&name)).map_err(|e| e.to_string())?;
    let manifest = json!([{ "Config": name, "RepoTags": [tag], "Layers": ["layer.tar"] }]);
    fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).map_err(|e| e.to_string())?;
    let tar = work.join(format!("{}.tar", tag.replace(['/', ':'], "-")));
    command(Command::new("tar").arg("-C").arg(&out).arg("-cf").arg(&tar).arg("."), "tar (image)")?;
    let _ = fs::remove_dir_all(&out);
    Ok(tar)
}

/// A busybox root filesystem (the containers run its sleep).
pub fn build_rootfs(dir: &Path, busybox: &Path) -> std::io::Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    fs::copy(busybox, rootfs.join("bin/busybox"))?;
    for a in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a))?;
    }
    Ok(rootfs)
}

/// Polls `f` every 50 ms until it gives a value, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        sys::check_stop()?;
        if Instant::now() >= end {
            return Err(format!("gave up after {}s waiting for {what}", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The wrapper a runtime_type names: the shim's `start` goes to
/// `<group>/<task id>` in each hierarchy, and `runc_dir` (holding the runc
/// wrapper) goes first on its PATH; then it is the shim.
fn shim_wrapper(path: &Path, real: &Path, groups: &[PathBuf], runc_dir: &Path) -> Result<(), String> {
    let mut s = String::from(
        "#!/bin/sh\n\
         # shimlet-bench: a shim's start, and the daemon it forks, in a memory cgroup of its own.\n\
         eval \"last=\\${$#}\"\n\
         if [ \"$last\" = start ]; then\n\
         \x20 id=; prev=\n\
         \x20 for a in \"$@\"; do [ \"$prev\" = -id ] && id=$a; prev=$a; done\n",
    );
    for g in groups {
        s.push_str(&format!(
            "  mkdir -p '{0}/'\"$id\" && echo $$ > '{0}/'\"$id\"/cgroup.procs || exit 1\n",
            g.display()
        ));
    }
    s.push_str(&format!(
        "fi\nPATH='{}':\"$PATH\"; export PATH\nexec '{}' \"$@\"\n",
        runc_dir.display(),
        real.display()
    ));
    write_script(path, &s)
}

/// The runc the shims find on their PATH: the real one, run from the
/// handler's `runc` cgroup, so that what runc leaves charged (the
/// containers' task structures it forked, its state files, the cgroups it
/// made) is counted apart from the shims.
fn runc_wrapper(path: &Path, real: &Path, groups: &[PathBuf]) -> Result<(), String> {
    let mut s = String::from("#!/bin/sh\n# shimlet-bench: runc, charged to the handler's runc cgroup.\n");
    for g in groups {
        s.push_str(&format!("mkdir -p '{0}/runc' && echo $$ > '{0}/runc/cgroup.procs' || exit 1\n", g.display()));
    }
    s.push_str(&format!("exec '{}' \"$@\"\n", real.display()));
    write_script(path, &s)
}

fn write_script(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// The work directory of a private containerd, its busybox rootfs, and per
/// handler the cgroup group `<prefix>-<handler>` with the wrappers
/// `<dir>/shim-<handler>` (the runtime_type to name) and its runc.
pub struct Setup {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub groups: HashMap<Handler, String>,
}

impl Setup {
    /// The runtime_type (a path) of handler `h`.
    pub fn runtime(&self, h: Handler) -> PathBuf {
        self.dir.join(format!("shim-{}", h.name()))
    }
}

/// Checks the tools, makes the work dir under `tmp`, the rootfs, the
/// handlers' cgroup groups and wrappers. `shimlet` is the shimlet binary
/// (the shim is the `containerd-shim-shimlet-v1` link beside it).
pub fn prepare(prefix: &str, shimlet: &Path, busybox: &Path, cg: &Cgroups, tmp: &Path) -> Result<Setup, String> {
    for (t, p) in [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("runc", "runc"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("tar", "tar"),
        ("sha256sum", "coreutils"),
    ] {
        need(t, p)?;
    }
    let runc = need("runc", "runc")?;
    let shim = shimlet.with_file_name("containerd-shim-shimlet-v1");
    if !shim.is_file() {
        return Err(format!("{} is missing: make build", shim.display()));
    }
    let dir = tmp.join(format!("{prefix}-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let rootfs = build_rootfs(&dir, busybox).map_err(|e| format!("rootfs: {e}"))?;

    // The shims' cgroups: one group per handler; the wrapper makes the leaves.
    let mut groups = HashMap::new();
    for h in Handler::BOTH {
        let group = format!("{prefix}-{}", h.name());
        cg.group(&group).map_err(|e| e.to_string())?;
        let probe = cg.leaf(&group, "probe").map_err(|e| e.to_string())?;
        let mut dirs = vec![probe.mem.parent().unwrap().to_path_buf()];
        if let Some(c) = &probe.cpu {
            dirs.push(c.parent().unwrap().to_path_buf());
        }
        let real = match h {
            Handler::Runc => which("containerd-shim-runc-v2").unwrap(),
            Handler::Shimlet => shim.clone(),
        };
        let runc_dir = dir.join(format!("runc-{}", h.name()));
        fs::create_dir_all(&runc_dir).map_err(|e| e.to_string())?;
        runc_wrapper(&runc_dir.join("runc"), &runc, &dirs)?;
        shim_wrapper(&dir.join(format!("shim-{}", h.name())), &real, &dirs, &runc_dir)?;
        groups.insert(h, group);
    }
    Ok(Setup { dir, rootfs, groups })
}

/// The private containerd, started in its own mount namespace.
pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    log: PathBuf,
    holder: Option<Child>,
    holder_pid: i32,
    daemon: Option<Child>,
}

impl Containerd {
    /// Starts containerd with its state under `dir`: `top` goes before the
    /// config's tables (e.g. required_plugins), `tables` after them.
    pub fn start(dir: &Path, top: &str, tables: &str) -> Result<Containerd, String> {
        let ds = dir.display();
        let config = format!(
            "version = 2\nroot = \"{ds}/root\"\nstate = \"{ds}/state\"\n{top}\n[grpc]\n  address = \
             \"{ds}/containerd.sock\"\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{ds}/root/opt\"\n{tables}"
        );
        let cfg = dir.join("config.toml");
        fs::write(&cfg, config).map_err(|e| e.to_string())?;

        // The private mount namespace with its own /run, held by a sleep.
        let ready = dir.join("ns-ready");
        let script = format!(
            "mount -t tmpfs -o mode=0755,size=64m shimlet-bench-run /run && mkdir -p /run/containerd && : > '{}' && exec sleep 2147483647",
            ready.display()
        );
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let holder_pid = holder.id() as i32;
        let mut c = Containerd {
            dir: dir.to_path_buf(),
            sock: dir.join("containerd.sock"),
            log: dir.join("containerd.log"),
            holder: Some(holder),
            holder_pid,
            daemon: None,
        };
        wait_for("the mount namespace", TIMEOUT, || {
            (ready.exists() && mnt_ns(holder_pid) != mnt_ns(std::process::id() as i32)).then_some(())
        })?;
        let logf = fs::File::create(&c.log).map_err(|e| e.to_string())?;
        let mut d = c.nsenter("containerd");
        d.arg("--config").arg(&cfg).stdin(Stdio::null()).stdout(logf.try_clone().unwrap()).stderr(logf);
        c.daemon = Some(d.spawn().map_err(|e| format!("containerd: {e}"))?);
        let mut last = String::new();
        wait_for("containerd to answer", TIMEOUT, || c.ctr("default", &["version"]).map_err(|e| last = e).ok())
            .map_err(|e| format!("{e}: {last}\n{}", c.log_tail()))?;
        Ok(c)
    }

    /// `prog` run in containerd's mount namespace.
    pub fn nsenter(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.holder_pid.to_string()).arg("-m").arg("--").arg(prog);
        c
    }

    /// `ctr --namespace ns args...`; its stdout.
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let mut c = self.nsenter("ctr");
        c.arg("--address").arg(&self.sock).args(["--namespace", ns]).args(args);
        command(&mut c, &format!("ctr {}", args.join(" ")))
    }

    pub fn log_tail(&self) -> String {
        let d = fs::read(&self.log).unwrap_or_default();
        let s = String::from_utf8_lossy(&d[d.len().saturating_sub(3000)..]).into_owned();
        format!("containerd log tail:\n{s}")
    }

    /// Processes in containerd's mount namespace other than the holder and
    /// containerd (shims, what they left).
    fn processes(&self) -> Vec<i32> {
        let Some(ns) = mnt_ns(self.holder_pid) else { return vec![] };
        let daemon = self.daemon.as_ref().map(|c| c.id() as i32);
        fs::read_dir("/proc")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|&p| p != self.holder_pid && Some(p) != daemon && mnt_ns(p).as_ref() == Some(&ns))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) of the containerd this bench started.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(10);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        let left = self.processes();
        if !left.is_empty() {
            sys::problem(&format!("containerd: processes left in its namespace (killed): {left:?}"));
        }
        for p in left {
            // SAFETY: kill(2) of a process in the bench's private mount namespace.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        sys::reap_all();
        // The overlay mounts went with the namespace.
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            sys::problem(&format!("containerd: removing {}: {e}", self.dir.display()));
        }
    }
}

/// One shim daemon, measured (or the medians over several).
#[derive(Clone, Copy, Default, Debug)]
pub struct ShimMem {
    /// anon + file + kernel of the shim's cgroup.
    pub charge: f64,
    /// runc's residual charge (per pod or container of the row).
    pub runc: f64,
    pub anon: f64,
    pub file: f64,
    pub kernel: f64,
    pub rss_anon: f64,
    pub pss: f64,
    pub pte: f64,
}

fn median(v: &[f64]) -> f64 {
    Stat::of(v).map(|s| s.med).unwrap_or(f64::NAN)
}

impl ShimMem {
    /// Field by field medians (runc left 0).
    pub fn median(m: &[ShimMem]) -> ShimMem {
        let med = |f: fn(&ShimMem) -> f64| median(&m.iter().map(f).collect::<Vec<_>>());
        ShimMem {
            runc: 0.0,
            charge: med(|x| x.charge),
            anon: med(|x| x.anon),
            file: med(|x| x.file),
            kernel: med(|x| x.kernel),
            rss_anon: med(|x| x.rss_anon),
            pss: med(|x| x.pss),
            pte: med(|x| x.pte),
        }
    }
}

/// What runc left charged to the handler's runc cgroup, per pod or container.
pub fn runc_residual(cg: &Cgroups, group: &str, count: usize) -> Result<f64, String> {
    let leaf = cg.leaf(group, "runc").map_err(|e| e.to_string())?;
    Ok(leaf.mem_usage().charge() as f64 / count as f64)
}

/// Each (leaf, shim pid): the charge of `<group>/<leaf>`, which must hold
/// the shim, and the shim's RssAnon, VmPTE and Pss.
pub fn measure(cg: &Cgroups, group: &str, shims: &[(String, i32)]) -> Result<Vec<ShimMem>, String> {
    let mut v = vec![];
    for (name, shim) in shims {
        let leaf: Leaf = cg.leaf(group, name).map_err(|e| e.to_string())?;
        if !leaf.pids().contains(shim) {
            return Err(format!("the shim {shim} of {name} is not in its cgroup {}", leaf.mem.display()));
        }
        let kb = |f: &str, k: &str| proc_kb(*shim, f, k).unwrap_or(f64::NAN) * 1024.0;
        let u = leaf.mem_usage();
        v.push(ShimMem {
            charge: u.charge() as f64,
            runc: 0.0,
            anon: u.anon as f64,
            file: u.file as f64,
            kernel: u.kernel as f64,
            rss_anon: kb("status", "RssAnon"),
            pte: kb("status", "VmPTE"),
            pss: kb("smaps_rollup", "Pss"),
        });
    }
    Ok(v)
}
