//! Figure 3: log throughput. One container writes LINES lines of 100 bytes
//! to stdout; the shim's CPU (its own cgroup, the container excluded) and
//! the wall time from `runc start` to the exit file; the log is checked line
//! by line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::memory::met_str;
use crate::report::{fmt, fmt_ratio, Report, Stat};
use crate::shim::{Kind, Site};
use crate::sys::{self, DirWatch, Waited};
use crate::{rotate, Ctx, MIB};

/// 99 characters; with its newline a 100-byte line.
fn line() -> String {
    let s: String = (0..99).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    assert_eq!(s.len(), 99);
    s
}

struct Run {
    run: usize,
    kind: Kind,
    /// Shim cgroup CPU (cpuacct / cpu.stat), s.
    cpu: Option<f64>,
    /// The same split into user and system time, s.
    user_sys: Option<(f64, f64)>,
    /// rusage of the shim daemon and the children it reaped (runc create), s.
    rusage: Option<f64>,
    wall: f64,
    lines_ok: Option<u64>,
    /// The shim daemon's largest RssAnon during the flood, KiB.
    peak_anon: Option<f64>,
}

pub struct Check {
    pub ok: u64,
    pub bad: u64,
    pub partial_records: u64,
    pub first_bad: Option<String>,
}

/// Read a k8s-file log: `TIMESTAMP STREAM TAG CONTENT\n`, TAG `F` (full)
/// or `P` (partial, continued by the next record of the same stream).
pub fn check_log(path: &Path, expect: &str) -> std::io::Result<Check> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut rec = Vec::with_capacity(256);
    let mut acc: Vec<u8> = Vec::new();
    let mut c = Check { ok: 0, bad: 0, partial_records: 0, first_bad: None };
    let e = expect.as_bytes();
    loop {
        rec.clear();
        if r.read_until(b'\n', &mut rec)? == 0 {
            break;
        }
        let body = rec.strip_suffix(b"\n").unwrap_or(&rec[..]);
        let mut parts = body.splitn(4, |&b| b == b' ');
        let (_ts, stream, tag, content) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(b""));
        let good_stream = stream == Some(b"stdout");
        match tag {
            Some(b"P") if good_stream => {
                c.partial_records += 1;
                acc.extend_from_slice(content);
            }
            Some(b"F") if good_stream => {
                let full: &[u8] = if acc.is_empty() {
                    content
                } else {
                    acc.extend_from_slice(content);
                    &acc
                };
                if full == e {
                    c.ok += 1;
                } else {
                    c.bad += 1;
                    if c.first_bad.is_none() {
                        c.first_bad = Some(String::from_utf8_lossy(&full[..full.len().min(200)]).into_owned());
                    }
                }
                acc.clear();
            }
            _ => {
                c.bad += 1;
                if c.first_bad.is_none() {
                    c.first_bad = Some(String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
                }
            }
        }
    }
    if !acc.is_empty() {
        c.bad += 1;
    }
    Ok(c)
}

pub fn run(ctx: &Ctx, rep: &mut Report, runs: usize, mib: u64) -> Result<(), String> {
    let lines = mib * MIB as u64 / 100;
    let text = line();
    let script = format!("yes {text} | head -n {lines}");
    let args = ["sh", "-c", script.as_str()];
    let cg = ctx.cg.as_ref().ok();
    if let Some(cg) = cg {
        cg.setup().map_err(|e| format!("cgroup setup: {e}"))?;
    }
    let ctr_parent = cg.map(|c| c.ctr_parent.clone());
    let mut site = Site::new(&ctx.tools, ctx.tmp.join("log"), &ctx.rootfs, &ctx.template, ctr_parent)
        .map_err(|e| e.to_string())?;
    let watch = DirWatch::new(&site.exits).map_err(|e| format!("inotify: {e}"))?;
    let mut kinds = ctx.kinds.clone();
    let mut results: Vec<Run> = Vec::new();
    for run in 0..runs {
        for k in rotate(&kinds.clone(), run) {
            sys::check_stop()?;
            let group = format!("log-r{run}-{}", k.tag());
            let res = one(&mut site, cg, &group, k, &args, lines, &text, &watch);
            site.teardown();
            if let Some(cg) = cg {
                for e in cg.remove_group(&group) {
                    sys::problem(&e);
                }
            }
            match res {
                Ok(mut r) => {
                    r.run = run;
                    eprintln!(
                        "[log] run {}/{runs} {:<8} cpu {} s, wall {:.2} s{}",
                        run + 1,
                        k.name(),
                        r.cpu.or(r.rusage).map(|c| format!("{c:.3}")).unwrap_or("?".into()),
                        r.wall,
                        r.lines_ok.map(|l| format!(", {l} lines ok")).unwrap_or_default()
                    );
                    results.push(r);
                }
                Err(e) => {
                    sys::check_stop()?;
                    eprintln!("[log] run {} {}: {e}; row dropped", run + 1, k.name());
                    ctx.note_failure(rep, "log", k, &e);
                    kinds.retain(|x| *x != k);
                    results.retain(|r| r.kind != k);
                }
            }
        }
    }
    // The flood buffers are handed back: one more flood per shim, whose
    // container then stays, idle.
    let mut back = Vec::new();
    for &k in kinds.iter().filter(|&&k| k != Kind::NoShim) {
        sys::check_stop()?;
        match handback(&mut site, k, &text, lines.min(MIB as u64 * 64 / 100)) {
            Ok(h) => back.push((k, h)),
            Err(e) => rep.notes.push(format!("log: {} hand-back run: {e}", k.name())),
        }
        site.teardown();
    }
    let fs = fs_type(&site.dir);
    drop(site);
    let pipes = match cg {
        Some(cg) => cg
            .group("log-probe")
            .map_err(|e| e.to_string())
            .and_then(|_| crate::probe::measure_kinds(cg, "log-probe", &ctx.tmp, &["pipe", "pipe1", "pipe1m"]))
            .ok(),
        None => None,
    };
    if let Some(cg) = cg {
        for e in cg.remove_group("log-probe") {
            sys::problem(&e);
        }
    }
    report(rep, &kinds, &results, runs, mib, lines, cg.is_some(), &fs);
    report_handback(rep, &back, pipes.as_ref());
    Ok(())
}

/// RssAnon of one shim daemon before, during and after a flood, KiB.
struct Handback {
    before: f64,
    peak: f64,
    after: f64,
    idle: f64,
}

/// A container floods `lines` lines, prints FLOOD-END and sleeps: the
/// daemon's RssAnon before, at its peak during the flood, right after the
/// flood and 2 s later (after the idle trim).
fn handback(site: &mut Site, k: Kind, text: &str, lines: u64) -> Result<Handback, String> {
    let script = format!("sleep 2; yes {text} | head -n {lines}; echo FLOOD-END; sleep 2147483647");
    let idx = site.launch(k, &["sh", "-c", &script], None)?;
    let (pid, log) = (site.live[idx].shim_pid.ok_or("no shim pid")?, site.live[idx].log());
    site.start(idx)?;
    sys::sleep(Duration::from_millis(1500));
    let rss = || crate::probe::kb(pid, "RssAnon").unwrap_or(f64::NAN);
    let before = rss();
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        peak = peak.max(rss());
        if tail_has(&log, b" F FLOOD-END\n") {
            break;
        }
        if Instant::now() >= deadline {
            return Err("no FLOOD-END in the log within 300 s".into());
        }
        sys::check_stop()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = rss();
    sys::sleep(Duration::from_millis(2000));
    Ok(Handback { before, peak, after, idle: rss() })
}

fn tail_has(path: &Path, what: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else { return false };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256)));
    let mut t = Vec::new();
    let _ = f.read_to_end(&mut t);
    t.windows(what.len()).any(|w| w == what)
}

fn report_handback(rep: &mut Report, back: &[(Kind, Handback)], pipes: Option<&crate::probe::Costs>) {
    if back.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = back
        .iter()
        .map(|(k, h)| {
            rep.add("log", k.name(), "handback_RssAnon_idle_after", &Some(Stat::one(h.idle)), "KiB");
            vec![
                k.name().to_string(),
                format!("{:.0}", h.before),
                format!("{:.0}", h.peak),
                format!("{:.0}", h.after),
                format!("{:.0}", h.idle),
            ]
        })
        .collect();
    rep.say("
The buffers a flood uses are handed back: one more flood (64 MiB) per shim, the container then idle; the daemon's RssAnon:
");
    rep.table(&["shim", "before KiB", "peak during KiB", "right after KiB", "2 s later KiB"], &rows);
    if let Some(c) = pipes {
        let g = |k: &str| c.get(k).map(|v| format!("{:.1}", v / 1024.0)).unwrap_or("–".into());
        rep.say(&format!(
            "
Pipes (kernel memory charged to the shim per pipe, probe): default size {} KiB, one page (shimlet, quiet) {} KiB, \
             grown to 1 MiB for a flood (shimlet, while it lasts) {} KiB; the pages holding the data are charged to the writer.",
            g("pipe"),
            g("pipe1"),
            g("pipe1m")
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn one(
    site: &mut Site,
    cg: Option<&crate::cgroup::Cgroups>,
    group: &str,
    k: Kind,
    args: &[&str],
    lines: u64,
    text: &str,
    watch: &DirWatch,
) -> Result<Run, String> {
    let leaf = match cg {
        Some(cg) => {
            cg.group(group).map_err(|e| e.to_string())?;
            Some(cg.leaf(group, "0").map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let idx = site.launch(k, args, leaf.as_ref())?;
    let (id, has_shim, log) = {
        let c = &site.live[idx];
        (c.id.clone(), c.shim.is_some(), c.log())
    };
    let t0 = Instant::now();
    site.start(idx)?;
    let deadline = t0 + Duration::from_secs(900);
    let mut rusage = None;
    let mut peak_anon = None;
    let wall;
    match has_shim {
        true => {
            let exit_file = site.exits.join(&id);
            // RssAnon sampled meanwhile (the bench's reads of /proc, not the
            // shim's CPU).
            let daemon = site.live[idx].shim_pid;
            loop {
                if let Some(a) = daemon.and_then(|p| crate::probe::kb(p, "RssAnon")) {
                    peak_anon = Some(peak_anon.map_or(a, |m: f64| m.max(a)));
                }
                let step = (Instant::now() + Duration::from_millis(20)).min(deadline);
                if watch.wait_for(&exit_file, step).map_err(|e| e.to_string())? {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err("no exit file within 900 s".into());
                }
            }
            wall = t0.elapsed().as_secs_f64();
            match site.live[idx].shim.as_ref().unwrap().wait(Duration::from_secs(60)) {
                Waited::Exited(e) => rusage = Some(e.cpu.as_secs_f64()),
                Waited::Gone => {}
                Waited::Timeout => return Err(format!("{} did not exit after its container", k.name())),
            }
        }
        false if k != Kind::NoShim => return Err("the shim's pid is unknown".into()),
        false => {
            // No shim: the container init is our child (subreaper).
            let p = site.live[idx].ctr.as_ref().ok_or("container pid unknown")?;
            match p.wait(Duration::from_secs(900)) {
                Waited::Timeout => return Err("container did not exit within 900 s".into()),
                _ => wall = t0.elapsed().as_secs_f64(),
            }
        }
    }
    let cpu = leaf.as_ref().and_then(|l| l.cpu_ns()).map(|ns| ns as f64 / 1e9);
    let user_sys = leaf.as_ref().and_then(|l| l.cpu_user_sys_ns()).map(|(u, s)| (u as f64 / 1e9, s as f64 / 1e9));
    if k == Kind::NoShim {
        // runc create's own rusage is not available here (reaped at launch);
        // the cgroup has it.
        rusage = None;
    }
    let lines_ok = if k != Kind::NoShim {
        let c = check_log(&log, text).map_err(|e| format!("reading the log: {e}"))?;
        let _ = std::fs::remove_file(&log);
        if c.ok != lines || c.bad != 0 {
            return Err(format!(
                "log check: {} of {lines} lines intact, {} bad{}",
                c.ok,
                c.bad,
                c.first_bad.map(|b| format!(" (first: {b:?})")).unwrap_or_default()
            ));
        }
        Some(c.ok)
    } else {
        None
    };
    Ok(Run { run: 0, kind: k, cpu, user_sys, rusage, wall, lines_ok, peak_anon })
}

/// The file system a directory is on, for the record.
fn fs_type(p: &Path) -> String {
    let c = crate::sys::cstring(p);
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    let name = match st.f_type as u64 {
        0xEF53 => "ext4",
        0x0102_1994 => "tmpfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x6573_5546 => "fuse",
        _ => "",
    };
    if name.is_empty() {
        format!("f_type {:#x}", st.f_type)
    } else {
        name.into()
    }
}

#[allow(clippy::too_many_arguments)]
fn report(rep: &mut Report, kinds: &[Kind], rs: &[Run], runs: usize, mib: u64, lines: u64, cgroup: bool, fs: &str) {
    let stat = |k: Kind, f: &dyn Fn(&Run) -> Option<f64>| {
        Stat::of(&rs.iter().filter(|r| r.kind == k).filter_map(f).collect::<Vec<_>>())
    };
    let cpu_of = |r: &Run| if cgroup { r.cpu } else { r.rusage };
    let paired = |k: Kind, other: Kind, f: &dyn Fn(f64, f64) -> Option<f64>| {
        let v: Vec<f64> = rs
            .iter()
            .filter(|r| r.kind == k)
            .filter_map(|r| {
                let o = rs.iter().find(|o| o.kind == other && o.run == r.run)?;
                f(cpu_of(r)?, cpu_of(o)?)
            })
            .collect();
        Stat::of(&v)
    };
    let has = |k: Kind| kinds.contains(&k);
    let mut table = Vec::new();
    for &k in kinds {
        let cpu = stat(k, &|r| cpu_of(r));
        let wall = stat(k, &|r| Some(r.wall));
        let mibs = stat(k, &|r| Some(mib as f64 / r.wall));
        let ratio =
            if has(Kind::Conmon) && k != Kind::NoShim { paired(k, Kind::Conmon, &|a, b| Some(a / b)) } else { None };
        let net =
            if has(Kind::NoShim) && k != Kind::NoShim { paired(k, Kind::NoShim, &|a, b| Some(a - b)) } else { None };
        let net_ratio = if has(Kind::NoShim) && has(Kind::Conmon) && k != Kind::NoShim {
            let v: Vec<f64> = rs
                .iter()
                .filter(|r| r.kind == k)
                .filter_map(|r| {
                    let b = rs.iter().find(|o| o.kind == Kind::NoShim && o.run == r.run)?;
                    let c = rs.iter().find(|o| o.kind == Kind::Conmon && o.run == r.run)?;
                    let d = cpu_of(c)? - cpu_of(b)?;
                    let x = cpu_of(r)? - cpu_of(b)?;
                    (d > 0.0).then_some(x / d)
                })
                .collect();
            Stat::of(&v)
        } else {
            None
        };
        let name = k.name();
        rep.add("log", name, "shim_cpu", &cpu, "s");
        rep.add("log", name, "shim_cpu_ratio_vs_conmon", &ratio, "x");
        rep.add("log", name, "shim_cpu_above_noshim", &net, "s");
        rep.add("log", name, "shim_cpu_above_noshim_ratio_vs_conmon", &net_ratio, "x");
        rep.add("log", name, "wall", &wall, "s");
        rep.add("log", name, "throughput", &mibs, "MiB/s");
        rep.add("log", name, "rusage_cpu", &stat(k, &|r| r.rusage), "s");
        let user = stat(k, &|r| r.user_sys.map(|x| x.0));
        let sys_ = stat(k, &|r| r.user_sys.map(|x| x.1));
        rep.add("log", name, "shim_cpu_user", &user, "s");
        rep.add("log", name, "shim_cpu_system", &sys_, "s");
        let target = if k == Kind::Shimlet {
            format!("CPU ≤0.30x conmon: {}", met_str(ratio.map(|r| r.med <= 0.3)))
        } else {
            String::new()
        };
        let peak = stat(k, &|r| r.peak_anon);
        rep.add("log", name, "peak_RssAnon", &peak, "KiB");
        let lines_col = match k {
            Kind::NoShim => "– (/dev/null)".to_string(),
            _ => {
                let ok = rs.iter().filter(|r| r.kind == k).all(|r| r.lines_ok == Some(lines));
                if ok {
                    format!("{lines} ×{} ok", rs.iter().filter(|r| r.kind == k).count())
                } else {
                    "FAILED".into()
                }
            }
        };
        table.push(vec![
            name.to_string(),
            fmt(&cpu, 3),
            match (user, sys_) {
                (Some(u), Some(s)) => format!("{:.2} / {:.2}", u.med, s.med),
                _ => "–".into(),
            },
            fmt_ratio(&ratio),
            if k == Kind::NoShim { "0 (baseline)".into() } else { fmt(&net, 3) },
            fmt_ratio(&net_ratio),
            fmt(&wall, 2),
            fmt(&mibs, 0),
            if k == Kind::NoShim { "–".into() } else { fmt(&peak, 0) },
            lines_col,
            target,
        ]);
    }
    rep.say(&format!(
        "\n### 3. Log throughput: {mib} MiB of 100-byte lines ({lines} lines) to stdout, {runs} runs, median [min–max]\n"
    ));
    rep.table(
        &[
            "shim",
            "shim CPU s",
            "user / sys s",
            "vs conmon",
            "CPU above no-shim s",
            "vs conmon",
            "wall s",
            "MiB/s",
            "peak RssAnon KiB",
            "log lines verified",
            "target",
        ],
        &table,
    );
    rep.say(&format!(
        "\nshim CPU = {} of the shim's own cgroup, which also holds the `runc create` it runs (the container is in its own cgroup);\n\
         the no-shim row is `runc create` alone, stdio to /dev/null, so \"above no-shim\" is the log handling itself.\n\
         user / sys: the cgroup's tick-sampled split (cpuacct.usage_user/_sys, cpu.stat user/system_usec), medians.\n\
         wall = `runc start` to the exit file (no shim: to the container's exit). The logs are written to {} ({fs}).\n",
        if cgroup { "cpuacct.usage (v1) / cpu.stat usage_usec (v2)" } else { "rusage (no cgroup available)" },
        std::env::temp_dir().display()
    ));
}

/// Part of `--scale`: N containers flood their logs at once (MIB_EACH MiB
/// of 100-byte lines each, started together), per shim: every line must be
/// in its log (lost lines are counted), and the shims' CPU during the
/// flood (their cgroups' CPU from the go to the last exit, so without the
/// `runc create` before) per MiB logged.
pub fn many(ctx: &Ctx, rep: &mut Report, n: usize, mib_each: u64) -> Result<(), String> {
    let cg = ctx.cg.as_ref().map_err(|e| format!("no cgroups for the shims' CPU: {e}"))?;
    cg.setup().map_err(|e| format!("cgroup setup: {e}"))?;
    let lines = mib_each * MIB as u64 / 100;
    let text = line();
    let mut site =
        Site::new(&ctx.tools, ctx.tmp.join("flood"), &ctx.rootfs, &ctx.template, Some(cg.ctr_parent.clone()))
            .map_err(|e| e.to_string())?;
    let watch = DirWatch::new(&site.exits).map_err(|e| format!("inotify: {e}"))?;
    let mut rows = Vec::new();
    for k in ctx.kinds.iter().copied().filter(|&k| k != Kind::NoShim) {
        sys::check_stop()?;
        let group = format!("flood-{}", k.tag());
        cg.group(&group).map_err(|e| e.to_string())?;
        // The go: a file in the (read-only, shared) rootfs, made from here.
        let go = ctx.rootfs.join(format!("go-{}-{}", k.tag(), std::process::id()));
        let script = format!(
            "while [ ! -e /{} ]; do sleep 0.05; done; yes {text} | head -n {lines}",
            go.file_name().unwrap().to_string_lossy()
        );
        let r = (|| -> Result<Vec<String>, String> {
            let mut leaves = Vec::new();
            let first = site.live.len();
            for i in 0..n {
                let leaf = cg.leaf(&group, &i.to_string()).map_err(|e| e.to_string())?;
                let idx = site.launch(k, &["sh", "-c", &script], Some(&leaf))?;
                site.start(idx)?;
                leaves.push(leaf);
            }
            sys::sleep(Duration::from_millis(500));
            let cpu0: u64 = leaves.iter().filter_map(|l| l.cpu_ns()).sum();
            let t0 = Instant::now();
            std::fs::write(&go, b"").map_err(|e| e.to_string())?;
            let deadline = t0 + Duration::from_secs(1800);
            for c in &site.live[first..] {
                if !watch.wait_for(&site.exits.join(&c.id), deadline).map_err(|e| e.to_string())? {
                    return Err(format!("{}: no exit file within 1800 s", c.id));
                }
            }
            let wall = t0.elapsed().as_secs_f64();
            // The daemons have exited: their cgroups' CPU is final.
            for c in &site.live[first..] {
                if let Some(s) = &c.shim {
                    s.wait(Duration::from_secs(60));
                }
            }
            let cpu1: u64 = leaves.iter().filter_map(|l| l.cpu_ns()).sum();
            let cpu = cpu1.saturating_sub(cpu0) as f64 / 1e9;
            let (mut ok, mut bad) = (0u64, 0u64);
            for c in &site.live[first..] {
                let chk = check_log(&c.log(), &text).map_err(|e| format!("reading {}: {e}", c.log().display()))?;
                ok += chk.ok.min(lines);
                bad += chk.bad + lines.saturating_sub(chk.ok);
                let _ = std::fs::remove_file(c.log());
            }
            let total_mib = (n as u64 * mib_each) as f64;
            rep.add("flood", k.name(), "lines_lost", &Some(Stat::one(bad as f64)), "lines");
            rep.add("flood", k.name(), "shim_cpu", &Some(Stat::one(cpu)), "s");
            rep.add("flood", k.name(), "shim_cpu_per_mib", &Some(Stat::one(cpu / total_mib * 1e3)), "ms/MiB");
            rep.add("flood", k.name(), "wall", &Some(Stat::one(wall)), "s");
            eprintln!("[flood] {} x{n}: {cpu:.2} s shim CPU, {wall:.1} s, {bad} lines lost", k.name());
            Ok(vec![
                k.name().to_string(),
                format!("{n} × {mib_each}"),
                format!("{ok} of {}", lines * n as u64),
                bad.to_string(),
                format!("{cpu:.2}"),
                format!("{:.2}", cpu / total_mib * 1e3),
                format!("{wall:.1}"),
                format!("{:.0}", total_mib / wall),
            ])
        })();
        let _ = std::fs::remove_file(&go);
        site.teardown();
        for e in cg.remove_group(&group) {
            sys::problem(&e);
        }
        match r {
            Ok(row) => rows.push(row),
            Err(e) => {
                sys::check_stop()?;
                ctx.note_failure(rep, "flood", k, &e);
            }
        }
    }
    drop(site);
    rep.say(&format!(
        "\n### 2b. {n} containers flooding their logs at once: {mib_each} MiB of 100-byte lines each, started together\n"
    ));
    rep.table(
        &[
            "shim",
            "containers × MiB",
            "lines in the logs",
            "lines lost",
            "shim CPU s",
            "ms per MiB",
            "wall s",
            "MiB/s in all",
        ],
        &rows,
    );
    rep.say(
        "\nshim CPU: the shims' cgroups (cpuacct), from the go to the last exit file, summed; lines: every log read back, \
         P records joined, each line compared.\n",
    );
    Ok(())
}
