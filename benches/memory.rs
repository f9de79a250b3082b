//! Figures 1 and 2: memory per idle container (N = 100), and the same at
//! scale (N = 1,000) with the time to start them all.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use crate::cgroup::{Cgroups, Leaf, MemUsage};
use crate::report::{fmt, fmt_ratio, median, percentile, Report, Stat};
use crate::shim::{Kind, Site};
use crate::sys;
use crate::{rotate, Ctx, KIB, MIB};

const SLEEP: &[&str] = &["sleep", "2147483647"];

/// One row (shim) of one run.
struct RowRun {
    run: usize,
    kind: Kind,
    /// Per container, bytes: exact charge (anon+file+kernel) and its parts.
    charge: f64,
    counter: f64,
    anon: f64,
    file: f64,
    kernel: f64,
    /// Exact charge of each shim's cgroup, bytes.
    per_cg: Vec<f64>,
    /// Medians over the shim daemons, KiB.
    rss_anon: Option<f64>,
    vm_pte: Option<f64>,
    pss: Option<f64>,
    private_dirty: Option<f64>,
    start_all: Duration,
    /// create + start of each container, ms.
    per_ctr_ms: Vec<f64>,
}

/// Fields in kB of /proc/PID/status and /proc/PID/smaps_rollup.
fn proc_kb(pid: i32, file: &str, key: &str) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix(key) {
            if let Some(rest) = rest.strip_prefix(':') {
                return rest.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

/// Private_Dirty of a process by origin, KiB: shared libraries (their
/// data, GOT and bss), heap, anonymous mappings, stack, its own binary.
fn dirty_by_origin(pid: i32) -> Vec<(String, u64)> {
    let text = match fs::read_to_string(format!("/proc/{pid}/smaps")) {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    // " (deleted)" when the binary was rebuilt while the shim ran.
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().trim_end_matches(" (deleted)").to_string());
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let mut libs = std::collections::BTreeSet::new();
    let mut cur = String::new();
    for l in text.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = l.split_whitespace().nth(5).unwrap_or("");
            cur = if name.is_empty() {
                "anon".into()
            } else if name == "[heap]" || name == "[stack]" {
                name.trim_matches(['[', ']']).into()
            } else if Some(name) == exe.as_deref() {
                "binary".into()
            } else if name.contains(".so") {
                libs.insert(name.to_string());
                "libs".into()
            } else {
                name.rsplit('/').next().unwrap_or(name).to_string()
            };
        } else if let Some(v) = l.strip_prefix("Private_Dirty:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            *by.entry(cur.clone()).or_default() += kb;
        }
    }
    let mut v: Vec<(String, u64)> = by
        .into_iter()
        .filter(|(_, k)| *k > 0)
        .map(|(n, k)| if n == "libs" { (format!("{} libs", libs.len()), k) } else { (n, k) })
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
    v
}

fn cgroup_line(pid: i32, ctrl: &str) -> Option<String> {
    let t = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    t.lines()
        .find(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next();
            let c = it.next().unwrap_or("");
            if ctrl.is_empty() {
                c.is_empty()
            } else {
                c.split(',').any(|x| x == ctrl)
            }
        })
        .and_then(|l| l.splitn(3, ':').nth(2).map(String::from))
}

/// Figure 1 (`scale` false) or 2 (`scale` true).
pub fn run(ctx: &Ctx, rep: &mut Report, n: usize, runs: usize, scale: bool) -> Result<(), String> {
    let fig = if scale { "scale" } else { "memory" };
    let cg: &Cgroups = ctx.cg.as_ref().map_err(|e| format!("no memory cgroup to measure: {e}"))?;
    cg.setup().map_err(|e| format!("cgroup setup: {e}"))?;
    let mut site = Site::new(&ctx.tools, ctx.tmp.join(fig), &ctx.rootfs, &ctx.template, Some(cg.ctr_parent.clone()))
        .map_err(|e| e.to_string())?;
    let mut kinds = ctx.kinds.clone();

    // Warm-up, outside the measured cgroups: the page cache of runc, the
    // shims and busybox is then charged to the bench's own cgroup and not
    // to whichever shim happens to read it first.
    for k in kinds.clone() {
        let r = site.launch(k, SLEEP, None).and_then(|i| site.start(i));
        site.teardown();
        if let Err(e) = r {
            eprintln!("[{fig}] {}: warm-up failed, row skipped: {e}", k.name());
            ctx.note_failure(rep, fig, k, &e);
            kinds.retain(|x| *x != k);
        }
    }
    let mut detail: Vec<(Kind, Vec<(String, u64)>)> = Vec::new();
    let mut rows: Vec<RowRun> = Vec::new();
    let mut failed: Vec<Kind> = Vec::new();
    for run in 0..runs {
        for k in rotate(&kinds, run) {
            if failed.contains(&k) {
                continue;
            }
            sys::check_stop()?;
            let group = format!("{fig}-r{run}-{}", k.tag());
            let res = one_row(ctx, &mut site, cg, &group, k, n, run, &mut detail);
            site.teardown();
            for e in cg.remove_group(&group) {
                sys::problem(&e);
            }
            match res {
                Ok(r) => {
                    eprintln!(
                        "[{fig}] run {}/{runs} {:<8} {:>4} containers in {:.1} s: {:.1} KiB charged per shim",
                        run + 1,
                        k.name(),
                        n,
                        r.start_all.as_secs_f64(),
                        r.charge / KIB
                    );
                    rows.push(r)
                }
                Err(e) => {
                    sys::check_stop()?;
                    eprintln!("[{fig}] run {} {}: {e}; row dropped", run + 1, k.name());
                    ctx.note_failure(rep, fig, k, &e);
                    failed.push(k);
                    rows.retain(|r| r.kind != k);
                }
            }
        }
    }
    drop(site);
    kinds.retain(|k| !failed.contains(k));
    report(rep, ctx, fig, n, runs, &kinds, &rows, &detail, scale);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn one_row(
    ctx: &Ctx,
    site: &mut Site,
    cg: &Cgroups,
    group: &str,
    k: Kind,
    n: usize,
    run: usize,
    detail: &mut Vec<(Kind, Vec<(String, u64)>)>,
) -> Result<RowRun, String> {
    cg.group(group).map_err(|e| e.to_string())?;
    let mut leaves: Vec<Leaf> = Vec::with_capacity(n);
    let mut per_ctr_ms = Vec::with_capacity(n);
    let first = site.live.len();
    let t0 = Instant::now();
    for i in 0..n {
        let leaf = cg.leaf(group, &i.to_string()).map_err(|e| e.to_string())?;
        let ti = Instant::now();
        let idx = site.launch(k, SLEEP, Some(&leaf))?;
        site.start(idx)?;
        per_ctr_ms.push(ti.elapsed().as_secs_f64() * 1e3);
        leaves.push(leaf);
        if n >= 200 && (i + 1) % (n / 10) == 0 {
            eprintln!("    {} {}/{n} started, {:.0} s", k.name(), i + 1, t0.elapsed().as_secs_f64());
        }
    }
    let start_all = t0.elapsed();
    sys::sleep(ctx.settle);
    sys::check_stop()?;

    let ctrs = &site.live[first..];
    // Check the placement once per row: the shim alone in its cgroup, the
    // container in its own.
    if let (Some(c), Some(l)) = (ctrs.first(), leaves.first()) {
        let pids = l.pids();
        let expect: Vec<i32> = c.shim_pid.into_iter().collect();
        if pids != expect {
            eprintln!("warning: {} cgroup {} holds pids {:?}, expected {:?}", k.name(), l.mem.display(), pids, expect);
        }
        let ctl = if cg.mode == crate::cgroup::Mode::V1 { "memory" } else { "" };
        match cgroup_line(c.pid, ctl) {
            Some(p) if p.ends_with(&format!("/ctr/{}", c.id)) => {}
            other => eprintln!("warning: container {} is in memory cgroup {:?}", c.id, other),
        }
    }
    for c in ctrs {
        if !c.ctr.as_ref().map(|p| p.alive()).unwrap_or(false) {
            return Err(format!("container {} is not running after {:?}", c.id, ctx.settle));
        }
    }

    let usages: Vec<MemUsage> = leaves.iter().map(|l| l.mem_usage()).collect();
    let nn = n as f64;
    let sum = |f: fn(&MemUsage) -> u64| usages.iter().map(f).sum::<u64>() as f64 / nn;
    let daemons: Vec<i32> = ctrs.iter().filter_map(|c| c.shim_pid).collect();
    let med = |file: &str, key: &str| -> Option<f64> {
        let v: Vec<f64> = daemons.iter().filter_map(|&p| proc_kb(p, file, key)).collect();
        median(&v)
    };
    if run == 0 {
        if let Some(&p) = daemons.first() {
            detail.push((k, dirty_by_origin(p)));
        }
    }
    Ok(RowRun {
        run,
        kind: k,
        charge: sum(|u| u.charge()),
        counter: sum(|u| u.counter),
        anon: sum(|u| u.anon),
        file: sum(|u| u.file),
        kernel: sum(|u| u.kernel),
        per_cg: usages.iter().map(|u| u.charge() as f64).collect(),
        rss_anon: med("status", "RssAnon"),
        vm_pte: med("status", "VmPTE"),
        pss: med("smaps_rollup", "Pss"),
        private_dirty: med("smaps_rollup", "Private_Dirty"),
        start_all,
        per_ctr_ms,
    })
}

/// Per-run value of a row, paired with the same run's no-shim / conmon rows.
fn paired(rows: &[RowRun], k: Kind, other: Kind, f: impl Fn(&RowRun, &RowRun) -> Option<f64>) -> Option<Stat> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.kind == k)
        .filter_map(|r| rows.iter().find(|o| o.kind == other && o.run == r.run).and_then(|o| f(r, o)))
        .collect();
    Stat::of(&v)
}

fn per_run(rows: &[RowRun], k: Kind, f: impl Fn(&RowRun) -> Option<f64>) -> Option<Stat> {
    let v: Vec<f64> = rows.iter().filter(|r| r.kind == k).filter_map(f).collect();
    Stat::of(&v)
}

fn above(rows: &[RowRun], k: Kind) -> Option<Stat> {
    paired(rows, k, Kind::NoShim, |r, o| Some(r.charge - o.charge))
}

#[allow(clippy::too_many_arguments)]
fn report(
    rep: &mut Report,
    ctx: &Ctx,
    fig: &str,
    n: usize,
    runs: usize,
    kinds: &[Kind],
    rows: &[RowRun],
    detail: &[(Kind, Vec<(String, u64)>)],
    scale: bool,
) {
    let has_noshim = kinds.contains(&Kind::NoShim);
    let ratio = |k: Kind| -> Option<Stat> {
        if !has_noshim || !kinds.contains(&Kind::Conmon) || k == Kind::NoShim {
            return None;
        }
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.kind == k)
            .filter_map(|r| {
                let base = rows.iter().find(|o| o.kind == Kind::NoShim && o.run == r.run)?;
                let con = rows.iter().find(|o| o.kind == Kind::Conmon && o.run == r.run)?;
                let d = con.charge - base.charge;
                (d > 0.0).then(|| (r.charge - base.charge) / d)
            })
            .collect();
        Stat::of(&v)
    };
    let kib = |s: Option<Stat>| s.map(|s| Stat { med: s.med / KIB, min: s.min / KIB, max: s.max / KIB, n: s.n });
    let mib_total = |s: Option<Stat>| {
        s.map(|s| Stat {
            med: s.med * n as f64 / MIB,
            min: s.min * n as f64 / MIB,
            max: s.max * n as f64 / MIB,
            n: s.n,
        })
    };
    let target_mem = 96.0;
    let target_anon = 24.0;
    let mut table = Vec::new();
    let mut breakdown = Vec::new();
    for &k in kinds {
        let charge = per_run(rows, k, |r| Some(r.charge));
        let abv = if has_noshim { above(rows, k) } else { None };
        let rat = ratio(k);
        let rss = per_run(rows, k, |r| r.rss_anon);
        let pte = per_run(rows, k, |r| r.vm_pte);
        let pss = per_run(rows, k, |r| r.pss);
        let pd = per_run(rows, k, |r| r.private_dirty);
        let start_all = per_run(rows, k, |r| Some(r.start_all.as_secs_f64()));
        let all_ms: Vec<f64> = rows.iter().filter(|r| r.kind == k).flat_map(|r| r.per_ctr_ms.iter().copied()).collect();
        let all_cg: Vec<f64> = rows.iter().filter(|r| r.kind == k).flat_map(|r| r.per_cg.iter().copied()).collect();
        let mut target = String::new();
        if k == Kind::Shimlet {
            let a = abv.map(|s| s.med / KIB);
            let r = rss.map(|s| s.med);
            target = format!(
                "above ≤{target_mem:.0} KiB: {}; RssAnon ≤{target_anon:.0} KiB: {}",
                met(a.map(|a| a <= target_mem)),
                met(r.map(|r| r <= target_anon))
            );
        }
        let f = fig;
        let name = k.name();
        rep.add(f, name, "charge_per_container", &kib(charge), "KiB");
        rep.add(f, name, "above_noshim_per_container", &kib(abv), "KiB");
        rep.add(f, name, "above_noshim_ratio_vs_conmon", &rat, "x");
        rep.add(f, name, "page_counter_per_container", &kib(per_run(rows, k, |r| Some(r.counter))), "KiB");
        rep.add(f, name, "anon_per_container", &kib(per_run(rows, k, |r| Some(r.anon))), "KiB");
        rep.add(f, name, "file_per_container", &kib(per_run(rows, k, |r| Some(r.file))), "KiB");
        rep.add(f, name, "kernel_per_container", &kib(per_run(rows, k, |r| Some(r.kernel))), "KiB");
        rep.add(f, name, "RssAnon_median", &rss, "KiB");
        rep.add(f, name, "VmPTE_median", &pte, "KiB");
        rep.add(f, name, "Pss_median", &pss, "KiB");
        rep.add(f, name, "Private_Dirty_median", &pd, "KiB");
        rep.add(f, name, "start_all", &start_all, "s");
        rep.add(f, name, "create_start_p50", &percentile(&all_ms, 50.0).map(Stat::one), "ms");
        rep.add(f, name, "create_start_p99", &percentile(&all_ms, 99.0).map(Stat::one), "ms");
        if scale {
            rep.add(f, name, "total_charge", &mib_total(charge), "MiB");
            rep.add(f, name, "total_above_noshim", &mib_total(abv), "MiB");
        }
        let dash = |s: &Option<Stat>, d| if k == Kind::NoShim { "–".to_string() } else { fmt(s, d) };
        if !scale {
            table.push(vec![
                name.to_string(),
                fmt(&kib(charge), 1),
                if k == Kind::NoShim { "0 (baseline)".into() } else { fmt(&kib(abv), 1) },
                fmt_ratio(&rat),
                dash(&rss, 0),
                dash(&pte, 0),
                dash(&pss, 0),
                dash(&pd, 0),
                target,
            ]);
        } else {
            let spread = match (percentile(&all_cg, 50.0), percentile(&all_cg, 0.0), percentile(&all_cg, 100.0)) {
                (Some(m), Some(lo), Some(hi)) => format!("{:.0} [{:.0}–{:.0}]", m / KIB, lo / KIB, hi / KIB),
                _ => "–".into(),
            };
            let ms = match (percentile(&all_ms, 50.0), percentile(&all_ms, 99.0)) {
                (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
                _ => "–".into(),
            };
            let mut t = String::new();
            if k == Kind::Shimlet {
                t = format!(
                    "above ≤{:.1} MiB: {}",
                    target_mem * n as f64 / 1024.0,
                    met(abv.map(|a| a.med / KIB <= target_mem))
                );
            }
            table.push(vec![
                name.to_string(),
                fmt(&mib_total(charge), 1),
                if k == Kind::NoShim { "0 (baseline)".into() } else { fmt(&mib_total(abv), 1) },
                fmt_ratio(&rat),
                fmt(&start_all, 1),
                ms,
                spread,
                t,
            ]);
        }
        breakdown.push(vec![
            name.to_string(),
            fmt(&kib(per_run(rows, k, |r| Some(r.anon))), 1),
            fmt(&kib(per_run(rows, k, |r| Some(r.file))), 1),
            fmt(&kib(per_run(rows, k, |r| Some(r.kernel))), 1),
            fmt(&kib(per_run(rows, k, |r| Some(r.counter))), 1),
            match (percentile(&all_ms, 50.0), percentile(&all_ms, 99.0)) {
                (Some(a), Some(b)) => format!("{a:.1} / {b:.1}"),
                _ => "–".into(),
            },
            detail
                .iter()
                .find(|(dk, _)| *dk == k)
                .map(|(_, v)| v.iter().map(|(n, kb)| format!("{n} {kb}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "–".into()),
        ]);
    }
    let cgname = if ctx.cg.as_ref().map(|c| c.mode) == Ok(crate::cgroup::Mode::V2) { "v2" } else { "v1" };
    if !scale {
        rep.say(&format!(
            "\n### 1. Memory per container: N = {n} idle containers (`sleep`), {runs} runs, median [min–max]\n"
        ));
        rep.table(
            &[
                "shim",
                "charge/ctr KiB",
                "above no-shim KiB",
                "vs conmon",
                "RssAnon KiB",
                "VmPTE KiB",
                "Pss KiB",
                "Private_Dirty KiB",
                "target",
            ],
            &table,
        );
        rep.say(&format!(
            "\ncharge = anon + file + kernel of each shim's own memory cgroup ({cgname} memory.stat rss+cache, plus kmem),\n\
             summed over the N shim cgroups / N (runc create, a child of the shim, is charged there while it runs; it is gone before the reading).\n\
             above no-shim and vs conmon are paired per run; RssAnon/VmPTE (status) and Pss/Private_Dirty (smaps_rollup) are medians over the N shim daemons.\n"
        ));
    } else {
        rep.say(&format!("\n### 2. Scale: N = {n} idle containers, {runs} runs, median [min–max]\n"));
        rep.table(
            &[
                "shim",
                "total charge MiB",
                "above no-shim MiB",
                "vs conmon",
                "start all s",
                "create+start ms p50 / p99",
                "per-shim KiB p50 [min–max]",
                "target",
            ],
            &table,
        );
        rep.say("\nstart all = sequential `create` + `runc start` of the N containers; per-shim spread over every cgroup of every run.\n");
    }
    rep.say(&format!("Breakdown ({fig}), per container, median over runs:\n"));
    rep.table(
        &[
            "shim",
            "anon KiB",
            "file KiB",
            "kernel KiB",
            "page counter KiB",
            "create+start ms p50 / p99",
            "Private_Dirty of one daemon by origin, KiB",
        ],
        &breakdown,
    );
    rep.say("\n(page counter = memory.usage_in_bytes / memory.current: includes pages pre-charged to per-CPU stocks, hence not used for the figure.)");
}

fn met(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

pub fn met_str(b: Option<bool>) -> &'static str {
    met(b)
}
