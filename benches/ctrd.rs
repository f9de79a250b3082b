//! Figure 7, containerd: the memory of one container's shim when containerd
//! itself (no CRI, no pods) runs the containers, containerd-shim-runc-v2
//! against shimlet's `containerd-shim-shimlet-v1`, both as runtimes of one
//! private containerd (containerd.rs).
//!
//! Each run starts, under each shim in turn, N idle containers (`sleep`,
//! default 20) with `ctr run -d --null-io --runtime <wrapper>`, one shim
//! each, and a group of 4 containers sharing one shim (the OCI annotation
//! `io.containerd.runc.v2.group`, which both shims read). The wrapper puts
//! each shim's `start`, and the daemon it forks, into a memory cgroup of its
//! own named after the container; runc runs from the runtime's own cgroup,
//! counted apart (the runc residual, as figure 1's no-shim row).
//!
//! Per single-container shim, `settle` seconds after the last start:
//! **charge** = anon + file + kernel of its cgroup, RssAnon and VmPTE
//! (status) and Pss (smaps_rollup) of the daemon; medians over the N
//! containers, then median [min–max] over the runs. The group's shim is
//! measured with its first container, and again with all 4: **each further
//! container** = (charge with 4 − charge with 1) / 3. Targets (shimlet):
//! a single-container shim ≤ 128 KiB, each further container ≤ 24 KiB.
//! The per-container charges also become lines of figure 1's chart
//! (`Report::linear`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cgroup::Cgroups;
use crate::containerd::{self, image_tar, measure, ppid, runc_residual, wait_for, Containerd, Handler, ShimMem};
use crate::containerd::{Setup, TIMEOUT};
use crate::report::{fmt, fmt_ratio, Report, Stat};
use crate::sys;
use crate::Ctx;

/// How many containers, how many runs, how long to wait before measuring.
#[derive(Clone, Copy, Debug)]
struct Plan {
    n: usize,
    runs: usize,
    settle: Duration,
}

/// The containerd namespace of the figure's containers.
const NS: &str = "shimlet-bench";
const TAG: &str = "shimlet-bench/busybox:1";
/// TAG as `ctr images import` names it.
const IMAGE: &str = "docker.io/shimlet-bench/busybox:1";
/// Containers of the group that shares one shim.
const GROUP: usize = 4;
const GROUP_KEY: &str = "io.containerd.runc.v2.group";
const KIB_TARGET_SINGLE: f64 = 128.0;
const KIB_TARGET_FURTHER: f64 = 24.0;

/// One runtime in one run.
#[derive(Clone, Copy, Default, Debug)]
struct RowRun {
    /// Medians over the single-container shims (runc: per container).
    single: ShimMem,
    /// The group's shim charge with its first container, and with all.
    group1: f64,
    group_all: f64,
}

impl RowRun {
    fn further(&self) -> f64 {
        (self.group_all - self.group1) / (GROUP - 1) as f64
    }
}

/// The private containerd; dropping it first deletes every task and
/// container of the figure's namespace, so that no container outlives its
/// shim.
struct World {
    ctrd: Containerd,
}

impl World {
    fn ctr(&self, args: &[&str]) -> Result<String, String> {
        self.ctrd.ctr(NS, args)
    }

    /// `ctr run -d` of container `id` under runtime `h`, in group `group`
    /// when given.
    fn run(&self, setup: &Setup, cg: &Cgroups, h: Handler, id: &str, group: Option<&str>) -> Result<(), String> {
        let runtime = setup.runtime(h).display().to_string();
        let cgroup = format!("{}/{id}", cg.ctr_parent);
        let mut args = vec!["run", "-d", "--null-io", "--runtime", &runtime, "--cgroup", &cgroup];
        let annotation = group.map(|g| format!("{GROUP_KEY}={g}"));
        if let Some(a) = &annotation {
            args.extend(["--annotation", a]);
        }
        args.extend([IMAGE, id]);
        self.ctr(&args).map(|_| ()).map_err(|e| format!("{e}\n{}", self.ctrd.log_tail()))
    }

    /// Container id → its task's pid, for the running tasks.
    fn tasks(&self) -> Result<HashMap<String, i32>, String> {
        let out = self.ctr(&["tasks", "ls"])?;
        Ok(out
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_string(), f.next()?.parse().ok()?))
            })
            .collect())
    }

    /// Kills and deletes every task, then every container.
    fn remove_all(&self) -> Result<(), String> {
        let tasks: Vec<String> = self.tasks()?.into_keys().collect();
        if !tasks.is_empty() {
            let mut args = vec!["tasks", "delete", "--force"];
            args.extend(tasks.iter().map(String::as_str));
            self.ctr(&args)?;
        }
        let out = self.ctr(&["containers", "ls", "-q"])?;
        let ids: Vec<&str> = out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if !ids.is_empty() {
            let mut args = vec!["containers", "delete"];
            args.extend(ids);
            self.ctr(&args)?;
        }
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Err(e) = self.remove_all() {
            sys::problem(&format!("containerd figure: removing the containers: {e}"));
        }
        // Then containerd itself (the field).
    }
}

/// Starts the private containerd (without its CRI plugin) and imports the
/// busybox image.
fn start_world(setup: &Setup) -> Result<World, String> {
    let tar = image_tar(&setup.dir, &setup.rootfs, TAG, &["/bin/sleep", "2147483647"])?;
    let top = r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#;
    let w = World { ctrd: Containerd::start(&setup.dir, top, "")? };
    w.ctr(&["images", "import", &tar.display().to_string()]).map_err(|e| format!("{e}\n{}", w.ctrd.log_tail()))?;
    Ok(w)
}

/// The shim of container `id`: the one process of its cgroup.
fn shim_of(cg: &Cgroups, group: &str, id: &str) -> Result<i32, String> {
    let leaf = cg.leaf(group, id).map_err(|e| e.to_string())?;
    match leaf.pids()[..] {
        [p] => Ok(p),
        ref v => Err(format!("{id}: {} processes in its shim's cgroup {}", v.len(), leaf.mem.display())),
    }
}

/// Deletes every container, waits for the shims `pids` to exit, and
/// empties the runtime's cgroup group for the next row.
fn reset(w: &World, cg: &Cgroups, h: Handler, group: &str, pids: &[i32]) -> Result<(), String> {
    w.remove_all()?;
    wait_for(&format!("the {} shims to exit", h.name()), TIMEOUT, || {
        sys::reap_all();
        pids.iter().all(|&p| !Path::new(&format!("/proc/{p}")).exists()).then_some(())
    })?;
    for e in cg.remove_group(group) {
        sys::problem(&format!("containerd figure: {e}"));
    }
    cg.group(group).map_err(|e| e.to_string())
}

/// One runtime's row of one run; every container is deleted again at the end.
fn one_row(w: &World, setup: &Setup, cg: &Cgroups, o: &Plan, h: Handler, run: usize) -> Result<RowRun, String> {
    let group = &setup.groups[&h];
    let t = Instant::now();
    let singles: Vec<String> = (0..o.n).map(|i| format!("{}-{run}-{i}", h.name())).collect();
    let members: Vec<String> = (0..GROUP).map(|i| format!("{}-{run}-g{i}", h.name())).collect();
    let gname = format!("{}-{run}-group", h.name());
    for id in &singles {
        sys::check_stop()?;
        w.run(setup, cg, h, id, None)?;
    }
    w.run(setup, cg, h, &members[0], Some(&gname))?;
    sys::sleep(o.settle);
    sys::check_stop()?;
    let shims =
        singles.iter().map(|id| Ok((id.clone(), shim_of(cg, group, id)?))).collect::<Result<Vec<_>, String>>()?;
    let group_shim = shim_of(cg, group, &members[0])?;
    let m = measure(cg, group, &shims)?;
    let runc = runc_residual(cg, group, o.n + 1)?;
    let group1 = measure(cg, group, &[(members[0].clone(), group_shim)])?[0].charge;

    for id in &members[1..] {
        w.run(setup, cg, h, id, Some(&gname))?;
    }
    sys::sleep(o.settle);
    sys::check_stop()?;
    // The group must really share one shim: every member's task a child of it.
    let tasks = w.tasks()?;
    for id in &members {
        let parent = tasks.get(id).and_then(|&p| ppid(p));
        if parent != Some(group_shim) {
            return Err(format!("{}: {id} is not served by its group's shim {group_shim} ({parent:?})", h.name()));
        }
    }
    let group_all = measure(cg, group, &[(members[0].clone(), group_shim)])?[0].charge;
    eprintln!(
        "[containerd] run {}/{}: {} + {GROUP} containers under {} in {:.1} s",
        run + 1,
        o.runs,
        o.n,
        h.name(),
        t.elapsed().as_secs_f64()
    );

    let mut pids: Vec<i32> = shims.iter().map(|s| s.1).collect();
    pids.push(group_shim);
    reset(w, cg, h, group, &pids)?;
    Ok(RowRun { single: ShimMem { runc, ..ShimMem::median(&m) }, group1, group_all })
}

/// Figure 7: N single-container shims and a group per runtime, `runs`
/// times; its containerd under the bench's temp dir, its cgroups removed by
/// the caller's `Cgroups::remove_all`, as for the other figures.
pub fn run(ctx: &Ctx, rep: &mut Report, n: usize, runs: usize) -> Result<(), String> {
    let cg = ctx.cg.as_ref().map_err(|e| format!("no usable memory cgroup: {e}"))?;
    let shimlet = ctx.tools.shimlet.as_ref().ok_or("shimlet is not built: make build")?;
    let busybox = ctx.tools.busybox.as_ref().ok_or("busybox-static is missing")?;
    let o = &Plan { n, runs, settle: ctx.settle };
    cg.setup().map_err(|e| format!("cgroup setup: {e}"))?;
    let setup = containerd::prepare("ctrd", shimlet, busybox, cg, &ctx.tmp)?;
    let w = start_world(&setup)?;

    // Warm-up: a container per runtime brings runc, both shims and busybox
    // into the page cache, charged to whoever reads them first: not to a
    // measured shim; the runtime's cgroups (and runc's residual) are then
    // emptied for the first row.
    for h in Handler::BOTH {
        let id = format!("{}-warm", h.name());
        w.run(&setup, cg, h, &id, None)?;
        let shim = shim_of(cg, &setup.groups[&h], &id)?;
        reset(&w, cg, h, &setup.groups[&h], &[shim])?;
    }

    let mut rows: HashMap<Handler, Vec<RowRun>> = HashMap::new();
    let (mut ratios, mut further_ratios) = (vec![], vec![]);
    for run in 0..o.runs {
        let order = if run % 2 == 0 { Handler::BOTH } else { [Handler::Shimlet, Handler::Runc] };
        let mut this = HashMap::new();
        for h in order {
            let r = one_row(&w, &setup, cg, o, h, run)?;
            this.insert(h, r);
            rows.entry(h).or_default().push(r);
        }
        let (r, s) = (this[&Handler::Runc], this[&Handler::Shimlet]);
        ratios.push(r.single.charge / s.single.charge);
        further_ratios.push(r.further() / s.further());
    }
    drop(w);
    report(rep, o, &rows, &ratios, &further_ratios);
    Ok(())
}

fn report(rep: &mut Report, o: &Plan, rows: &HashMap<Handler, Vec<RowRun>>, ratios: &[f64], further_ratios: &[f64]) {
    let f = "containerd";
    let kib = |r: &[RowRun], x: fn(&RowRun) -> f64| Stat::of(&r.iter().map(|v| x(v) / 1024.0).collect::<Vec<_>>());
    let met = |s: &Option<Stat>, target: f64| {
        let ok = s.map(|s| s.med <= target).unwrap_or(false);
        format!(" (target ≤ {target:.0} KiB: {})", if ok { "met" } else { "MISSED" })
    };
    let (ratio, further_ratio) = (Stat::of(ratios), Stat::of(further_ratios));
    rep.say(&format!(
        "\n### 7. containerd (ctr run): {} single-container shims and a group of {GROUP} per runtime, {} runs, median \
         [min–max]\n",
        o.n, o.runs
    ));
    let (mut single, mut grouped, mut parts) = (vec![], vec![], vec![]);
    for h in Handler::BOTH {
        let r = rows.get(&h).cloned().unwrap_or_default();
        let charge = kib(&r, |x| x.single.charge);
        let (rss, pss, pte) = (kib(&r, |x| x.single.rss_anon), kib(&r, |x| x.single.pss), kib(&r, |x| x.single.pte));
        let runc = kib(&r, |x| x.single.runc);
        let (g1, g4, further) = (kib(&r, |x| x.group1), kib(&r, |x| x.group_all), kib(&r, RowRun::further));
        let (a, fl, k) = (kib(&r, |x| x.single.anon), kib(&r, |x| x.single.file), kib(&r, |x| x.single.kernel));
        for (metric, s) in [
            ("charge_per_container", &charge),
            ("RssAnon_median", &rss),
            ("Pss_median", &pss),
            ("VmPTE_median", &pte),
            ("runc_residual_per_container", &runc),
            ("anon_per_container", &a),
            ("file_per_container", &fl),
            ("kernel_per_container", &k),
            ("group_charge_1", &g1),
            (&format!("group_charge_{GROUP}"), &g4),
            ("group_per_further_container", &further),
        ] {
            rep.add(f, h.label(), metric, s, "KiB");
        }
        let (vs, vs_further, t1, t2) = match h {
            Handler::Runc => ("1.00x".to_string(), "1.00x".to_string(), String::new(), String::new()),
            Handler::Shimlet => {
                rep.add(f, h.label(), "runc_v2_over_shimlet_charge", &ratio, "x");
                rep.add(f, h.label(), "runc_v2_over_shimlet_further", &further_ratio, "x");
                (
                    fmt_ratio(&ratio),
                    fmt_ratio(&further_ratio),
                    met(&charge, KIB_TARGET_SINGLE),
                    met(&further, KIB_TARGET_FURTHER),
                )
            }
        };
        single.push(vec![
            h.label().to_string(),
            format!("{}{t1}", fmt(&charge, 0)),
            fmt(&rss, 0),
            fmt(&pss, 0),
            fmt(&pte, 0),
            fmt(&runc, 0),
            vs,
        ]);
        grouped.push(vec![
            h.label().to_string(),
            fmt(&g1, 0),
            fmt(&g4, 0),
            format!("{}{t2}", fmt(&further, 1)),
            vs_further,
        ]);
        parts.push(vec![h.label().to_string(), fmt(&a, 0), fmt(&fl, 0), fmt(&k, 0)]);
        // Figure 1's chart: this runtime's per-container charge × N.
        let name = match h {
            Handler::Runc => "containerd-shim-runc-v2",
            Handler::Shimlet => "shimlet as containerd shim",
        };
        let color = match h {
            Handler::Runc => "#2563eb",
            Handler::Shimlet => "#7c3aed",
        };
        if let Some(s) = kib(&r, |x| x.single.charge) {
            rep.linear(&format!("{name} (figure 7's charge per container × N)"), color, s);
        }
    }
    rep.table(
        &[
            "shim (one per container)",
            "charge KiB",
            "RssAnon KiB",
            "Pss KiB",
            "VmPTE KiB",
            "runc residual KiB",
            "runc-v2 / shim",
        ],
        &single,
    );
    rep.say(&format!("\nA group of {GROUP} containers in one shim (annotation {GROUP_KEY}):\n"));
    rep.table(
        &[
            "shim",
            "charge, 1 container KiB",
            &format!("charge, {GROUP} containers KiB"),
            "each further container KiB",
            "runc-v2 / shim",
        ],
        &grouped,
    );
    rep.say("\nThe single-container shim's charge by kind:\n");
    rep.table(&["shim", "anon KiB", "file KiB", "kernel KiB"], &parts);
    rep.say(&format!(
        "\ncharge = anon + file + kernel of the shim's cgroup (its daemon), after warm-up; runc residual = what the runc \
         processes the shims ran left charged to the runtime's own runc cgroup, per container; RssAnon/VmPTE (status) \
         and Pss (smaps_rollup) of the shim daemon; medians over the {} containers of a run; each further container = \
         (charge with {GROUP} − charge with 1) / {}; ratios paired per run.",
        o.n,
        GROUP - 1
    ));
}
