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
//! with its own /run, with its own root, state and socket in the bench's
//! temp dir (containerd.rs); everything is stopped by pid and removed at
//! the end.
//!
//! Called by the main bench (`Figure::Cri`) or by `shimlet-bench-cri`
//! (cri_main.rs).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cgroup::Cgroups;
use crate::containerd::{
    self, command, image_tar, measure, ppid, runc_residual, wait_for, which, Containerd, Handler, ShimMem, TIMEOUT,
};
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

const PAUSE_TAG: &str = "shimlet-bench/pause:1";
const BOX_TAG: &str = "shimlet-bench/busybox:1";

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

/// The private containerd and the CRI connection to it.
struct World {
    ctrd: Containerd,
    client: Option<Grpc>,
}

impl World {
    fn dir(&self) -> &Path {
        &self.ctrd.dir
    }

    fn call<Q: prost::Message, R: prost::Message + Default>(&mut self, method: &str, req: &Q) -> Result<R, String> {
        let c = self.client.as_mut().ok_or("no CRI connection")?;
        c.call(&format!("{RUNTIME}{method}"), req).map_err(|e| format!("{method}: {e}"))
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
        // Then the connection, then containerd (the fields, in order).
    }
}

fn start_world(o: &Opts, cg: &Cgroups, tmp: &Path) -> Result<(World, HashMap<Handler, String>), String> {
    let setup = containerd::prepare("cri", &o.shimlet, &o.busybox, cg, tmp)?;
    let (dir, rootfs) = (&setup.dir, &setup.rootfs);

    // Images: busybox (the containers), the pause program (the sandboxes).
    let box_tar = image_tar(dir, rootfs, BOX_TAG, &["/bin/sleep", "2147483647"])?;
    let pause = build_pause(dir);
    let pause_tar = match &pause {
        Some(p) => {
            fs::copy(p, rootfs.join("pause")).map_err(|e| e.to_string())?;
            image_tar(dir, rootfs, PAUSE_TAG, &["/pause"])?
        }
        None => image_tar(dir, rootfs, PAUSE_TAG, &["/bin/sleep", "2147483647"])?,
    };

    let ds = dir.display();
    let tables = format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
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
      runtime_type = "{}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shimlet]
      runtime_type = "{}"
"#,
        setup.runtime(Handler::Runc).display(),
        setup.runtime(Handler::Shimlet).display()
    );
    let ctrd = Containerd::start(dir, r#"required_plugins = ["io.containerd.grpc.v1.cri"]"#, &tables)?;
    let mut w = World { ctrd, client: None };
    let sock = w.ctrd.sock.clone();
    let mut last = String::new();
    let client = wait_for("the CRI to answer Version", TIMEOUT, || {
        let mut g = Grpc::connect(&sock, TIMEOUT).map_err(|e| last = e.to_string()).ok()?;
        let r = g.call::<_, VersionResponse>(&format!("{RUNTIME}Version"), &VersionRequest { version: "v1".into() });
        r.map_err(|e| last = e.to_string()).ok().map(|_| g)
    })
    .map_err(|e| format!("{e}: {last}\n{}", w.ctrd.log_tail()))?;
    w.client = Some(client);
    for (tar, tag) in [(&box_tar, BOX_TAG), (&pause_tar, PAUSE_TAG)] {
        w.ctrd
            .ctr("k8s.io", &["images", "import", &tar.display().to_string()])
            .map_err(|e| format!("{e}\n{}", w.ctrd.log_tail()))?;
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
    Ok((w, setup.groups))
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
            log_directory: w.dir().join("logs").join(&name).display().to_string(),
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
            .map_err(|e| format!("{e}\n{}", w.ctrd.log_tail()))?;
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
    let mut rows: HashMap<Handler, Vec<ShimMem>> = HashMap::new();
    let (mut ratios, mut total_ratios) = (vec![], vec![]);
    for run in 0..o.runs {
        let order = if run % 2 == 0 { Handler::BOTH } else { [Handler::Shimlet, Handler::Runc] };
        let mut this: HashMap<Handler, ShimMem> = HashMap::new();
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
            let med = ShimMem { runc, ..ShimMem::median(&m) };
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
