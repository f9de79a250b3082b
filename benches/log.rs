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
    let fs = fs_type(&site.dir);
    drop(site);
    report(rep, &kinds, &results, runs, mib, lines, cg.is_some(), &fs);
    Ok(())
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
    let wall;
    match has_shim {
        true => {
            let exit_file = site.exits.join(&id);
            if !watch.wait_for(&exit_file, deadline).map_err(|e| e.to_string())? {
                return Err("no exit file within 900 s".into());
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
    Ok(Run { run: 0, kind: k, cpu, user_sys, rusage, wall, lines_ok })
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
            format!("CPU ≤0.40x conmon: {}", met_str(ratio.map(|r| r.med <= 0.4)))
        } else {
            String::new()
        };
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
