//! Figures 1 and 2: memory per idle container (N = 100), and the same at
//! scale (N = 2,000) with the time to start them all. Figure 1 also says
//! where shimlet's charge goes (see `breakdown`), and both give the points
//! of the chart of memory above no shim against the number of containers.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use crate::cgroup::{Cgroups, Leaf, MemUsage};
use crate::probe::{self, Costs};
use crate::report::{fmt, fmt_ratio, median, percentile, Chart, Report, Series, Stat};
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
    /// Exact charge of each shim's cgroup, bytes, in start order.
    per_cg: Vec<f64>,
    /// The same split into anon, file and kernel.
    per_cg_usage: Vec<MemUsage>,
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
    let mut snap: Option<Snapshot> = None;
    let mut rows: Vec<RowRun> = Vec::new();
    let mut failed: Vec<Kind> = Vec::new();
    for run in 0..runs {
        for k in rotate(&kinds, run) {
            if failed.contains(&k) {
                continue;
            }
            sys::check_stop()?;
            let group = format!("{fig}-r{run}-{}", k.tag());
            let res = one_row(ctx, &mut site, cg, &group, k, n, run, &mut detail, &mut snap);
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
    // What each kind of object costs, measured in cgroups beside the shims'
    // once the containers are gone (figure 1 only).
    let mut costs = None;
    if !scale && snap.is_some() {
        eprintln!("[{fig}] measuring kernel objects per kind ({} per probe) and the floor process", probe::K);
        let r = cg
            .group("probe")
            .map_err(|e| e.to_string())
            .and_then(|_| probe::measure(cg, "probe", &ctx.tmp, ctx.tools.busybox.as_deref()));
        for e in cg.remove_group("probe") {
            sys::problem(&e);
        }
        match r {
            Ok(c) => costs = Some(c),
            Err(e) => rep.notes.push(format!("{fig}: kernel objects per kind not measured: {e}")),
        }
    }
    report(rep, ctx, fig, n, runs, &kinds, &rows, &detail, scale);
    if let (Some(s), Some(c)) = (&snap, &costs) {
        breakdown(rep, &rows, s, c);
    }
    spread(rep, fig, &kinds, &rows);
    chart(rep, fig, n, &kinds, &rows);
    Ok(())
}

/// One shimlet daemon as it idles: its anonymous pages by mapping, its
/// page tables, and its descriptors by kind (`probe::KINDS` keys).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub anon_maps: Vec<(String, f64)>,
    pub pte: f64,
    pub fds: Vec<&'static str>,
    pub epoll_watches: usize,
}

impl Snapshot {
    fn of(pid: i32) -> Option<Snapshot> {
        let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let mut anon_maps = Vec::new();
        let mut cur = String::new();
        for l in smaps.lines() {
            let first = l.split_whitespace().next().unwrap_or("");
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                let w: Vec<&str> = l.split_whitespace().collect();
                let name = w.get(5).map(|n| n.rsplit('/').next().unwrap_or(n)).unwrap_or("anonymous");
                cur = format!("{} {} {}", w[0], w.get(1).unwrap_or(&""), name);
            } else if let Some(v) = l.strip_prefix("Anonymous:") {
                let kb: f64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0.0);
                if kb > 0.0 {
                    anon_maps.push((cur.clone(), kb * KIB));
                }
            }
        }
        let pte = probe::kb(pid, "VmPTE")? * KIB + probe::pgd_bytes();
        let mut fds = Vec::new();
        let mut epoll_watches = 0;
        let mut null_seen = false;
        for e in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            let Ok(t) = fs::read_link(e.path()) else { continue };
            let t = t.to_string_lossy().into_owned();
            let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy()))
                .unwrap_or_default();
            let kind = if t.starts_with("pipe:") {
                // The pipe's size, through a descriptor of our own on it.
                let size = fs::File::open(e.path())
                    .map(|f| unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GETPIPE_SZ) })
                    .unwrap_or(-1);
                if size == 4096 {
                    "pipe1"
                } else {
                    "pipe"
                }
            } else if t == "anon_inode:[eventpoll]" {
                epoll_watches += info.lines().filter(|l| l.starts_with("tfd:")).count();
                "epoll"
            } else if t == "anon_inode:[signalfd]" {
                "signalfd"
            } else if t == "anon_inode:[eventfd]" {
                "oomevent"
            } else if t.starts_with("anon_inode:[timerfd]") {
                "timerfd"
            } else if t.starts_with("socket:") {
                "unix"
            } else if t == "/dev/null" {
                // 0, 1 and 2 are one open file, dup'd.
                if null_seen {
                    continue;
                }
                null_seen = true;
                "devnull"
            } else if t.starts_with("/sys/fs/cgroup") {
                let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap_or("0").trim().to_string();
                let o_path = u64::from_str_radix(&flags, 8).unwrap_or(0) & libc::O_PATH as u64 != 0;
                if o_path {
                    "dir"
                } else {
                    "cgfile"
                }
            } else if fs::metadata(&t).map(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type())).unwrap_or(false)
            {
                "fifo"
            } else {
                "file"
            };
            fds.push(kind);
        }
        fds.sort();
        Some(Snapshot { anon_maps, pte, fds, epoll_watches })
    }
}

/// THREAD_SIZE: the kernel stack of a process, on x86_64 and aarch64.
const KERNEL_STACK: f64 = 16.0 * KIB;

/// Where shimlet's charge above no shim goes, every KiB named: measured
/// on one daemon (anonymous pages, page tables, descriptors) and priced
/// with the probes and the floor process.
fn breakdown(rep: &mut Report, rows: &[RowRun], s: &Snapshot, c: &Costs) {
    let Some(above) = above(rows, Kind::Shimlet) else { return };
    let file = paired(rows, Kind::Shimlet, Kind::NoShim, |r, o| Some(r.file - o.file)).map(|s| s.med).unwrap_or(0.0);
    let mut lines: Vec<(String, f64, String)> = Vec::new();
    for (m, b) in &s.anon_maps {
        lines.push((format!("anonymous pages: {m}"), *b, "smaps Anonymous".into()));
    }
    lines.push(("page tables".into(), s.pte, "VmPTE + the top-level page".into()));
    lines.push(("kernel stack".into(), KERNEL_STACK, "THREAD_SIZE".into()));
    if let Some((fl, fpte, fanon)) = &c.floor {
        let task = fl.kernel as f64 - fpte - KERNEL_STACK;
        lines.push((
            "the process itself: task, mm, signal handlers, files table, VMAs".into(),
            task,
            format!(
                "the floor process's kernel charge ({:.1} KiB) less its page tables and kernel stack",
                fl.kernel as f64 / KIB
            ),
        ));
        let _ = fanon;
    }
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &s.fds {
        *by.entry(k).or_default() += 1;
    }
    for (k, n) in by {
        if let Some(cost) = c.get(k) {
            let what = probe::KINDS.iter().find(|(x, _)| *x == k).map(|(_, w)| *w).unwrap_or(k);
            lines.push((format!("{n} × {what}"), n as f64 * cost, format!("probe: {:.0} B each", cost)));
        }
    }
    if let (Some(w), Some(e)) = (c.get("epollwatch"), c.get("eventfd")) {
        let each = w - e;
        lines.push((
            format!("{} epoll entries", s.epoll_watches),
            s.epoll_watches as f64 * each,
            format!("probe: {each:.0} B each"),
        ));
    }
    if let (Some(nf), Some(f)) = (c.get("newfile"), c.get("file")) {
        lines.push((
            "2 files created (log, shim pidfile): inode and dentry".into(),
            2.0 * (nf - f),
            format!("probe: {:.0} B each beyond an open file", nf - f),
        ));
    }
    lines.push(("file pages (page cache)".into(), file, "file charge above no shim, median".into()));
    let named: f64 = lines.iter().map(|l| l.1).sum();
    lines.push((
        "rest: cgroupfs lookups, the kernel's page rounding".into(),
        above.med - named,
        "above no shim less the lines above".into(),
    ));
    let rows_t: Vec<Vec<String>> =
        lines.iter().map(|(w, b, how)| vec![w.clone(), format!("{:.1}", b / KIB), how.clone()]).collect();
    rep.say(&format!(
        "\nWhere shimlet's {:.1} KiB above no shim go (one idle daemon of run 1; objects priced by probes in cgroups beside the shims'):\n",
        above.med / KIB
    ));
    rep.table(&["item", "KiB", "measured as"], &rows_t);
    if let Some((fl, fpte, fanon)) = &c.floor {
        // Its own memory: kernel and anonymous. Its cgroup's file charge is
        // busybox sh's pages, read there if they were not cached yet.
        let own = fl.kernel as f64 + fl.anon as f64;
        rep.say(&format!(
            "\nFloor: the smallest static process that only sleeps (pause() in a loop, forked inside its own cgroup) is charged \
             {:.1} KiB (kernel {:.1} incl. page tables {:.1} and kernel stack {:.0}; anonymous {:.1}); shimlet is {:.1} KiB \
             above no shim, {:+.1} KiB from it.",
            own / KIB,
            fl.kernel as f64 / KIB,
            fpte / KIB,
            KERNEL_STACK / KIB,
            fanon / KIB,
            above.med / KIB,
            (above.med - own) / KIB
        ));
        rep.add("memory", "floor", "charge", &Some(Stat::one(own / KIB)), "KiB");
    }
    let mut kinds_t = Vec::new();
    for (k, what) in probe::KINDS {
        if let Some(v) = c.get(k) {
            kinds_t.push(vec![what.to_string(), format!("{v:.0}")]);
            rep.add("memory", "probe", k, &Some(Stat::one(v)), "B");
        }
    }
    rep.say(&format!(
        "\nCharge per kernel object, by kind ({} of one kind in a fresh cgroup, the charge before and after / {}):\n",
        probe::K,
        probe::K
    ));
    rep.table(&["object", "bytes"], &kinds_t);
}

/// What moves the figure from run to run and from cgroup to cgroup.
fn spread(rep: &mut Report, fig: &str, kinds: &[Kind], rows: &[RowRun]) {
    let mut text = Vec::new();
    for &k in kinds {
        let runs: Vec<String> = rows
            .iter()
            .filter(|r| r.kind == k)
            .map(|r| {
                let base = rows.iter().find(|o| o.kind == Kind::NoShim && o.run == r.run);
                match base {
                    Some(b) if k != Kind::NoShim => format!("{:.1}", (r.charge - b.charge) / KIB),
                    _ => format!("{:.1}", r.charge / KIB),
                }
            })
            .collect();
        let hist = |f: fn(&MemUsage) -> u64| {
            let mut h: BTreeMap<u64, usize> = BTreeMap::new();
            for r in rows.iter().filter(|r| r.kind == k) {
                for u in &r.per_cg_usage {
                    *h.entry((f(u) as f64 / KIB).round() as u64).or_default() += 1;
                }
            }
            let mut v: Vec<(u64, usize)> = h.into_iter().collect();
            v.sort_by_key(|x| std::cmp::Reverse(x.1));
            v.iter().take(4).map(|(kib, n)| format!("{kib} ×{n}")).collect::<Vec<_>>().join(", ")
        };
        text.push(format!(
            "- {}: {} per run {}; per cgroup, kernel KiB {}; file KiB {}",
            k.name(),
            if k == Kind::NoShim { "charge" } else { "above no shim" },
            runs.join(" / "),
            hist(|u| u.kernel),
            hist(|u| u.file)
        ));
    }
    rep.say(&format!("\nSpread ({fig}): the figure per run, and the commonest per-cgroup values:\n"));
    for t in text {
        rep.say(&t);
    }
    rep.say(
        "\nWhat moves it: the kernel counts its own memory in whole pages per cgroup (slab objects are charged a page at \
        a time and the remainder kept for the cgroup's next objects), so a shim whose objects sit near a page boundary \
        reads 4 KiB more in some cgroups than in others; and a page of file-system metadata (an ext4 inode-table block \
        holds 16 inodes, a directory block many names) is charged to whichever cgroup touches it first, so the file \
        charge of one cgroup depends on its neighbours. Anonymous pages and page tables are exact. The bench marks \
        what it inherited close-on-exec: a stray descriptor numbered 64 or more reaching a shim would make its \
        daemon's descriptor table 2 KiB larger.",
    );
}

/// Memory above no shim against the number of containers: the cumulative
/// charge of the first k shims of each row (in start order) less k times
/// that run's median no-shim charge, at ten points, median over runs.
fn chart(rep: &mut Report, fig: &str, n: usize, kinds: &[Kind], rows: &[RowRun]) {
    if !kinds.contains(&Kind::NoShim) {
        return;
    }
    let mut series = Vec::new();
    for &k in kinds.iter().filter(|&&k| k != Kind::NoShim) {
        let mut pts = Vec::new();
        for step in 0..=10 {
            let at = n * step / 10;
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.kind == k)
                .filter_map(|r| {
                    let base = rows.iter().find(|o| o.kind == Kind::NoShim && o.run == r.run)?;
                    let b = median(&base.per_cg)?;
                    Some((r.per_cg.iter().take(at).sum::<f64>() - at as f64 * b) / MIB)
                })
                .collect();
            if let Some(s) = Stat::of(&v) {
                pts.push((at as f64, s.med, s.min, s.max));
                rep.add(fig, k.name(), &format!("above_noshim_total_at_{at}"), &Some(s), "MiB");
            }
        }
        series.push(Series { name: k.name().to_string(), color: k.color(), points: pts });
    }
    let file = if fig == "scale" { "memory-scale.svg" } else { "memory.svg" };
    rep.charts.push(Chart {
        file: file.into(),
        title: format!("Memory above no shim, idle containers (N up to {n}, median of runs, bars min–max)"),
        x_label: "containers".into(),
        y_label: "MiB above no shim".into(),
        y_unit: "MiB".into(),
        series,
    });
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
    snap: &mut Option<Snapshot>,
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
            if k == Kind::Shimlet {
                *snap = Snapshot::of(p);
            }
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
        per_cg_usage: usages.clone(),
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
    let target_mem = 80.0;
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
    // The fields the charge is read from: v2 names them apart from v1.
    let fields = if ctx.cg.as_ref().map(|c| c.mode) == Ok(crate::cgroup::Mode::V2) {
        "v2 memory.stat anon + file + kernel"
    } else {
        "v1 memory.stat rss+cache, plus kmem"
    };
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
            "\ncharge = anon + file + kernel of each shim's own memory cgroup ({fields}),\n\
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
        // On paper: the measured cost per container, times 10,000.
        for &k in kinds.iter().filter(|&&k| k != Kind::NoShim) {
            if let (Some(a), Some(t)) = (above(rows, k), per_run(rows, k, |r| Some(r.start_all.as_secs_f64()))) {
                let mib = a.med * 10_000.0 / MIB;
                rep.add(fig, k.name(), "on_paper_10000_above_noshim", &Some(Stat::one(mib)), "MiB");
                rep.say(&format!(
                    "- {} at 10,000 containers, on paper: {:.0} MiB above no shim ({:.1} KiB each, measured at {n}); \
                     started one after the other in about {:.0} s at the measured rate",
                    k.name(),
                    mib,
                    a.med / KIB,
                    t.med * 10_000.0 / n as f64
                ));
            }
        }
        rep.say("");
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
