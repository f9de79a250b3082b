//! Figure 6, Kubernetes pods: the memory of a pod's shim when containerd's
//! CRI plugin runs the pods, runc-v2 against shimlet as RuntimeClass
//! handlers of one private containerd.
//!
//! Each row runs P pods (default 10) of C containers (default 3) each, all
//! idle (`sleep`), on the host network (no CNI), with a pause program as
//! the sandbox. Both shims serve a whole pod from one process. Each
//! handler's `runtime_type` is a small wrapper script that puts the shim's
//! `start` into a memory cgroup of its own, named after the task id, before
//! it execs the shim: the daemon that the sandbox's `start` forks, and the
//! `runc` processes it runs, are charged there; a container's `start` only
//! finds that daemon and exits. The containers themselves go to their own
//! cgroups under the bench's container parent (the pod's cgroup_parent).
//!
//! Per pod, `settle` seconds after the last container started: **charge**
//! = anon + file + kernel of the pod's shim cgroup (as figure 1), RssAnon
//! and VmPTE (/proc/PID/status) and Pss (smaps_rollup) of the shim daemon;
//! medians over the P pods, then median [min–max] over the runs; the ratio
//! runc-v2 / shimlet is paired within each run. Target: a pod's shim at
//! most 1/20 of runc-v2's charge.
//!
//! Needs root, containerd (1.6 with its CRI plugin), ctr, runc,
//! util-linux (unshare, nsenter), busybox-static, tar, coreutils; rustc with
//! the musl target builds the pause program (tests/pause/main.rs), else
//! busybox's sleep stands in. containerd runs in a private mount namespace
//! with its own /run (its shims' sockets are under the fixed
//! /run/containerd/s), with its own root, state and socket in the bench's
//! temp dir; everything is stopped by pid and removed at the end.
//!
//! Called by the main bench (`Figure::Cri`) or by `shimlet-bench-cri`
//! (cri_main.rs).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cgroup::{Cgroups, Leaf};
use crate::report::{fmt, fmt_ratio, Report, Stat};
use crate::sys;

#[path = "../tests/common/cri/api.rs"]
#[allow(dead_code)]
mod api;
#[path = "../tests/common/cri/grpc.rs"]
#[allow(dead_code)]
mod grpc;

use api::*;
use grpc::Grpc;

/// What figure 6 runs.
#[derive(Clone, Debug)]
pub struct Opts {
    pub pods: usize,
    pub per_pod: usize,
    pub runs: usize,
    pub settle: Duration,
    /// `target/x86_64-unknown-linux-musl/release/shimlet` (the shim is the
    /// `containerd-shim-shimlet-v1` link beside it).
    pub shimlet: PathBuf,
    pub busybox: PathBuf,
}

const TIMEOUT: Duration = Duration::from_secs(60);
const PAUSE_TAG: &str = "shimlet-bench/pause:1";
const BOX_TAG: &str = "shimlet-bench/busybox:1";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Handler {
    Runc,
    Shimlet,
}

impl Handler {
    const BOTH: [Handler; 2] = [Handler::Runc, Handler::Shimlet];

    fn name(self) -> &'static str {
        match self {
            Handler::Runc => "runc",
            Handler::Shimlet => "shimlet",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Handler::Runc => "containerd-shim-runc-v2",
            Handler::Shimlet => "shimlet",
        }
    }
}

/// One pod's shim, measured.
#[derive(Clone, Copy, Default, Debug)]
struct PodMem {
    charge: f64,
    /// runc's residual charge (per pod of the row).
    runc: f64,
    anon: f64,
    file: f64,
    kernel: f64,
    rss_anon: f64,
    pss: f64,
    pte: f64,
}

fn which(name: &str) -> Option<PathBuf> {
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

fn proc_kb(pid: i32, file: &str, key: &str) -> Option<f64> {
    let t = fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    t.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()
    })
}

fn ppid(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

fn mnt_ns(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

fn command(cmd: &mut Command, what: &str) -> Result<String, String> {
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
fn image_tar(work: &Path, rootfs: &Path, tag: &str, entrypoint: &[&str]) -> Result<PathBuf, String> {
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
fn build_rootfs(dir: &Path, busybox: &Path) -> std::io::Result<PathBuf> {
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

/// The pause program (tests/pause/main.rs) built with rustc, static; None
/// when that fails (busybox's sleep then stands in).
fn build_pause(work: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pause/main.rs");
    let out = work.join("pause");
    let rustc = std::env::var_os("RUSTC").map(PathBuf::from).or_else(|| which("rustc"))?;
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let mut c = Command::new(rustc);
    c.args(["--edition", "2021", "--crate-type", "bin", "--target", &target])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "relocation-model=static", "-C", "target-feature=+crt-static"]);
    if std::env::consts::ARCH == "aarch64" {
        c.args(["-C", "linker=rust-lld"]);
    }
    c.arg("-o").arg(&out).arg(&src).current_dir(work);
    command(&mut c, "rustc (pause)").ok().map(|_| out)
}

/// The private containerd and what it started.
struct World {
    dir: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    holder: Option<Child>,
    holder_pid: i32,
    daemon: Option<Child>,
    client: Option<Grpc>,
}

impl World {
    fn nsenter(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.holder_pid.to_string()).arg("-m").arg("--").arg(prog);
        c
    }

    fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let mut c = self.nsenter("ctr");
        c.arg("--address").arg(&self.sock).args(["--namespace", "k8s.io"]).args(args);
        command(&mut c, &format!("ctr {}", args.join(" ")))
    }

    fn log_tail(&self) -> String {
        let d = fs::read(&self.log).unwrap_or_default();
        let s = String::from_utf8_lossy(&d[d.len().saturating_sub(3000)..]).into_owned();
        format!("containerd log tail:\n{s}")
    }

    fn call<Q: prost::Message, R: prost::Message + Default>(&mut self, method: &str, req: &Q) -> Result<R, String> {
        let c = self.client.as_mut().ok_or("no CRI connection")?;
        c.call(&format!("{RUNTIME}{method}"), req).map_err(|e| format!("{method}: {e}"))
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

    /// Stops and removes every pod.
    fn remove_pods(&mut self) -> Result<(), String> {
        let r: ListPodSandboxResponse = self.call("ListPodSandbox", &ListPodSandboxRequest { filter: None })?;
        for p in r.items {
            let req = PodSandboxIdRequest { pod_sandbox_id: p.id.clone() };
            let _: Empty = self.call("StopPodSandbox", &req)?;
            let _: Empty = self.call("RemovePodSandbox", &req)?;
        }
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.client.is_some() {
            if let Err(e) = self.remove_pods() {
                sys::problem(&format!("cri: removing the pods: {e}"));
            }
        }
        self.client = None;
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
            sys::problem(&format!("cri: processes left in containerd's namespace (killed): {left:?}"));
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
            sys::problem(&format!("cri: removing {}: {e}", self.dir.display()));
        }
    }
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
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

/// The wrapper a handler's runtime_type names: the shim's `start` goes to
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

fn start_world(o: &Opts, cg: &Cgroups, tmp: &Path) -> Result<(World, HashMap<Handler, String>), String> {
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
    let shim = o.shimlet.with_file_name("containerd-shim-shimlet-v1");
    if !shim.is_file() {
        return Err(format!("{} is missing: make build", shim.display()));
    }
    let dir = tmp.join(format!("cri-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    // Images: busybox (the containers), the pause program (the sandboxes).
    let rootfs = build_rootfs(&dir, &o.busybox).map_err(|e| format!("rootfs: {e}"))?;
    let box_tar = image_tar(&dir, &rootfs, BOX_TAG, &["/bin/sleep", "2147483647"])?;
    let pause = build_pause(&dir);
    let pause_tar = match &pause {
        Some(p) => {
            fs::copy(p, rootfs.join("pause")).map_err(|e| e.to_string())?;
            image_tar(&dir, &rootfs, PAUSE_TAG, &["/pause"])?
        }
        None => image_tar(&dir, &rootfs, PAUSE_TAG, &["/bin/sleep", "2147483647"])?,
    };

    // The shims' cgroups: one group per handler; the wrapper makes the leaves.
    let mut handlers = HashMap::new();
    for h in Handler::BOTH {
        let group = format!("cri-{}", h.name());
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
        handlers.insert(h, group);
    }

    let sock = dir.join("containerd.sock");
    let ds = dir.display();
    let config = format!(
        r#"version = 2
root = "{ds}/root"
state = "{ds}/state"
required_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{ds}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{ds}/root/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_TAG}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{ds}/cni-bin"
    conf_dir = "{ds}/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "{ds}/shim-runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shimlet]
      runtime_type = "{ds}/shim-shimlet"
"#
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
    let log = dir.join("containerd.log");
    let mut w = World { dir: dir.clone(), sock, log, holder: Some(holder), holder_pid, daemon: None, client: None };
    wait_for("the mount namespace", TIMEOUT, || {
        (ready.exists() && mnt_ns(holder_pid) != mnt_ns(std::process::id() as i32)).then_some(())
    })?;
    let logf = fs::File::create(&w.log).map_err(|e| e.to_string())?;
    let mut c = w.nsenter("containerd");
    c.arg("--config").arg(&cfg).stdin(Stdio::null()).stdout(logf.try_clone().unwrap()).stderr(logf);
    w.daemon = Some(c.spawn().map_err(|e| format!("containerd: {e}"))?);
    let sock = w.sock.clone();
    let mut last = String::new();
    let client = wait_for("the CRI to answer Version", TIMEOUT, || {
        let mut g = Grpc::connect(&sock, TIMEOUT).map_err(|e| last = e.to_string()).ok()?;
        let r = g.call::<_, VersionResponse>(&format!("{RUNTIME}Version"), &VersionRequest { version: "v1".into() });
        r.map_err(|e| last = e.to_string()).ok().map(|_| g)
    })
    .map_err(|e| format!("{e}: {last}\n{}", w.log_tail()))?;
    w.client = Some(client);
    for (tar, tag) in [(&box_tar, BOX_TAG), (&pause_tar, PAUSE_TAG)] {
        w.ctr(&["images", "import", &tar.display().to_string()]).map_err(|e| format!("{e}\n{}", w.log_tail()))?;
        let req = ImageStatusRequest { image: Some(ImageSpec { image: tag.into() }) };
        let c = w.client.as_mut().unwrap();
        wait_for(&format!("the CRI to see {tag}"), TIMEOUT, || {
            let r = c.call::<_, ImageStatusResponse>(&format!("{IMAGE}ImageStatus"), &req).ok()?;
            r.image.map(|_| ())
        })?;
    }
    if pause.is_none() {
        eprintln!("[cri] rustc could not build tests/pause/main.rs: busybox's sleep is the pause program");
    }
    Ok((w, handlers))
}

/// P pods of C containers under one handler: their ids and shim pids.
fn start_pods(w: &mut World, h: Handler, cg: &Cgroups, o: &Opts, run: usize) -> Result<Vec<(String, i32)>, String> {
    let mut pods = vec![];
    for p in 0..o.pods {
        sys::check_stop()?;
        let name = format!("{}-{run}-{p}", h.name());
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: format!("uid-{name}"),
                namespace: "shimlet-bench".into(),
                attempt: 0,
            }),
            log_directory: w.dir.join("logs").join(&name).display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cg.ctr_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: ns_mode::NODE,
                        pid: ns_mode::POD,
                        ipc: ns_mode::POD,
                    }),
                }),
            }),
            ..Default::default()
        };
        let r: RunPodSandboxResponse = w
            .call(
                "RunPodSandbox",
                &RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: h.name().into() },
            )
            .map_err(|e| format!("{e}\n{}", w.log_tail()))?;
        let pod = r.pod_sandbox_id;
        for c in 0..o.per_pod {
            let cc = ContainerConfig {
                metadata: Some(ContainerMetadata { name: format!("c{c}"), attempt: 0 }),
                image: Some(ImageSpec { image: BOX_TAG.into() }),
                log_path: format!("c{c}.log"),
                linux: Some(LinuxContainerConfig {
                    resources: None,
                    security_context: Some(LinuxContainerSecurityContext {
                        namespace_options: Some(NamespaceOption {
                            network: ns_mode::NODE,
                            pid: ns_mode::CONTAINER,
                            ipc: ns_mode::POD,
                        }),
                    }),
                }),
                ..Default::default()
            };
            let r: CreateContainerResponse = w.call(
                "CreateContainer",
                &CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(cc),
                    sandbox_config: Some(config.clone()),
                },
            )?;
            let _: Empty = w.call("StartContainer", &ContainerIdRequest { container_id: r.container_id })?;
        }
        let st: PodSandboxStatusResponse =
            w.call("PodSandboxStatus", &PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: true })?;
        let info: Value = st.info.get("info").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        let sandbox = info["pid"].as_i64().unwrap_or(0) as i32;
        let shim = ppid(sandbox).ok_or_else(|| format!("pod {name}: no sandbox process ({info})"))?;
        pods.push((pod, shim));
    }
    Ok(pods)
}

/// What runc left charged to the handler's runc cgroup, per pod.
fn runc_residual(cg: &Cgroups, group: &str, pods: usize) -> Result<f64, String> {
    let leaf = cg.leaf(group, "runc").map_err(|e| e.to_string())?;
    Ok(leaf.mem_usage().charge() as f64 / pods as f64)
}

fn measure(cg: &Cgroups, group: &str, pods: &[(String, i32)]) -> Result<Vec<PodMem>, String> {
    let mut v = vec![];
    for (pod, shim) in pods {
        let leaf: Leaf = cg.leaf(group, pod).map_err(|e| e.to_string())?;
        if !leaf.pids().contains(shim) {
            return Err(format!("the shim {shim} of pod {pod} is not in its cgroup {}", leaf.mem.display()));
        }
        let kb = |f: &str, k: &str| proc_kb(*shim, f, k).unwrap_or(f64::NAN) * 1024.0;
        let u = leaf.mem_usage();
        v.push(PodMem {
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

fn median(v: &[f64]) -> f64 {
    Stat::of(v).map(|s| s.med).unwrap_or(f64::NAN)
}

/// Figure 6: its world under `tmp`, its cgroups under `cg` (removed by the
/// caller's `Cgroups::remove_all`, as for the other figures).
pub fn run(o: &Opts, cg: &Cgroups, rep: &mut Report, tmp: &Path) -> Result<(), String> {
    cg.setup().map_err(|e| format!("cgroup setup: {e}"))?;
    let (mut w, handlers) = start_world(o, cg, tmp)?;

    // Warm-up: one pod per handler brings runc, both shims, busybox and
    // the pause program into the page cache, charged to whoever reads them
    // first: not to a measured pod.
    for h in Handler::BOTH {
        let o1 = Opts { pods: 1, per_pod: 1, ..o.clone() };
        start_pods(&mut w, h, cg, &o1, 999)?;
        w.remove_pods()?;
    }

    // per handler: per run, medians over the pods
    let mut rows: HashMap<Handler, Vec<PodMem>> = HashMap::new();
    let (mut ratios, mut total_ratios) = (vec![], vec![]);
    for run in 0..o.runs {
        let order = if run % 2 == 0 { Handler::BOTH } else { [Handler::Shimlet, Handler::Runc] };
        let mut this: HashMap<Handler, PodMem> = HashMap::new();
        for h in order {
            let group = &handlers[&h];
            let t = Instant::now();
            let pods = start_pods(&mut w, h, cg, o, run)?;
            eprintln!(
                "[cri] run {}/{}: {} pods x {} containers under {} started in {:.1} s",
                run + 1,
                o.runs,
                o.pods,
                o.per_pod,
                h.name(),
                t.elapsed().as_secs_f64()
            );
            let mut shims: Vec<i32> = pods.iter().map(|p| p.1).collect();
            shims.sort();
            shims.dedup();
            if shims.len() != o.pods {
                return Err(format!("{}: {} shim processes for {} pods", h.name(), shims.len(), o.pods));
            }
            sys::sleep(o.settle);
            sys::check_stop()?;
            let m = measure(cg, group, &pods)?;
            let runc = runc_residual(cg, group, pods.len())?;
            let med = PodMem {
                runc,
                charge: median(&m.iter().map(|x| x.charge).collect::<Vec<_>>()),
                anon: median(&m.iter().map(|x| x.anon).collect::<Vec<_>>()),
                file: median(&m.iter().map(|x| x.file).collect::<Vec<_>>()),
                kernel: median(&m.iter().map(|x| x.kernel).collect::<Vec<_>>()),
                rss_anon: median(&m.iter().map(|x| x.rss_anon).collect::<Vec<_>>()),
                pss: median(&m.iter().map(|x| x.pss).collect::<Vec<_>>()),
                pte: median(&m.iter().map(|x| x.pte).collect::<Vec<_>>()),
            };
            this.insert(h, med);
            rows.entry(h).or_default().push(med);
            w.remove_pods()?;
            wait_for(&format!("the {} shims to exit", h.name()), TIMEOUT, || {
                sys::reap_all();
                shims.iter().all(|&p| !Path::new(&format!("/proc/{p}")).exists()).then_some(())
            })?;
            sys::reap_all();
            for e in cg.remove_group(group) {
                sys::problem(&format!("cri: {e}"));
            }
            cg.group(group).map_err(|e| e.to_string())?;
        }
        if let (Some(r), Some(s)) = (this.get(&Handler::Runc), this.get(&Handler::Shimlet)) {
            ratios.push(r.charge / s.charge);
            total_ratios.push((r.charge + r.runc) / (s.charge + s.runc));
        }
    }
    drop(w);

    let kib = |v: &[f64]| Stat::of(&v.iter().map(|x| x / 1024.0).collect::<Vec<_>>());
    rep.say(&format!(
        "\n### 6. Kubernetes pods (containerd CRI): {} pods x {} containers per handler, {} runs, median [min–max]\n",
        o.pods, o.per_pod, o.runs
    ));
    let mut table = vec![];
    let f = "cri";
    let ratio = Stat::of(&ratios);
    let total_ratio = Stat::of(&total_ratios);
    for h in Handler::BOTH {
        let r = rows.get(&h).cloned().unwrap_or_default();
        let charge = kib(&r.iter().map(|x| x.charge).collect::<Vec<_>>());
        let runc = kib(&r.iter().map(|x| x.runc).collect::<Vec<_>>());
        let total = kib(&r.iter().map(|x| x.charge + x.runc).collect::<Vec<_>>());
        rep.add(f, h.label(), "runc_residual_per_pod", &runc, "KiB");
        rep.add(f, h.label(), "charge_with_runc_per_pod", &total, "KiB");
        let rss = kib(&r.iter().map(|x| x.rss_anon).collect::<Vec<_>>());
        let pss = kib(&r.iter().map(|x| x.pss).collect::<Vec<_>>());
        let pte = kib(&r.iter().map(|x| x.pte).collect::<Vec<_>>());
        rep.add(f, h.label(), "charge_per_pod", &charge, "KiB");
        rep.add(f, h.label(), "RssAnon_median", &rss, "KiB");
        rep.add(f, h.label(), "Pss_median", &pss, "KiB");
        rep.add(f, h.label(), "VmPTE_median", &pte, "KiB");
        let vs = match h {
            Handler::Runc => "1.00x".to_string(),
            Handler::Shimlet => {
                rep.add(f, h.label(), "runc_v2_over_shimlet_charge", &ratio, "x");
                rep.add(f, h.label(), "runc_v2_over_shimlet_charge_with_runc", &total_ratio, "x");
                let met = ratio.map(|s| s.med >= 20.0).unwrap_or(false);
                format!("{} (target ≥ 20x: {})", fmt_ratio(&ratio), if met { "met" } else { "MISSED" })
            }
        };
        table.push(vec![
            h.label().to_string(),
            fmt(&charge, 0),
            fmt(&rss, 0),
            fmt(&pss, 0),
            fmt(&pte, 0),
            fmt(&runc, 0),
            fmt(&total, 0),
            vs,
        ]);
    }
    rep.table(
        &[
            "shim (one per pod)",
            "shim charge per pod KiB",
            "RssAnon KiB",
            "Pss KiB",
            "VmPTE KiB",
            "runc residual KiB",
            "shim + runc KiB",
            "runc-v2 / shim (shim charge)",
        ],
        &table,
    );
    let mut parts = vec![];
    for h in Handler::BOTH {
        let r = rows.get(&h).cloned().unwrap_or_default();
        let (a, fl, k) = (
            kib(&r.iter().map(|x| x.anon).collect::<Vec<_>>()),
            kib(&r.iter().map(|x| x.file).collect::<Vec<_>>()),
            kib(&r.iter().map(|x| x.kernel).collect::<Vec<_>>()),
        );
        rep.add(f, h.label(), "anon_per_pod", &a, "KiB");
        rep.add(f, h.label(), "file_per_pod", &fl, "KiB");
        rep.add(f, h.label(), "kernel_per_pod", &k, "KiB");
        parts.push(vec![h.label().to_string(), fmt(&a, 0), fmt(&fl, 0), fmt(&k, 0)]);
    }
    rep.say("\nThe charge per pod by kind:\n");
    rep.table(&["shim", "anon KiB", "file KiB", "kernel KiB"], &parts);
    rep.say(&format!(
        "\nshim charge = anon + file + kernel of the pod's shim cgroup (its daemon), after warm-up; runc residual = \
         what the runc processes the shims ran left charged to the handler's own runc cgroup (the containers' task \
         structures runc forked, its state files, the cgroups it made), per pod; RssAnon/VmPTE (status) and Pss \
         (smaps_rollup) of the shim daemon; medians over the pods of a run; ratios paired per run. With runc's \
         residual, runc-v2 / shimlet = {}.",
        fmt_ratio(&total_ratio)
    ));
    Ok(())
}
