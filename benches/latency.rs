//! Figure 4: create latency. Time from launching the shim to its sync-pipe
//! report, against `runc create` alone (launch to exit), paired per run.
//!
//! On this shared 2-CPU machine `runc create` itself varies by tens of ms
//! from one run to the next, far more than the 0.5 ms a shim may add. So
//! besides the plain paired difference, the process-events connector gives
//! the exec-to-exit time of the `runc create` process inside each launch;
//! subtracting it leaves the launcher's own time ("own"), and own(shim) −
//! own(no shim) in the same run is what the shim adds, runc's noise removed.

use std::time::Duration;

use crate::memory::met_str;
use crate::procev::{runtime_span, ProcEvents};
use crate::report::{fmt, fmt_ratio, median_ci, Report, Stat};
use crate::shim::{Kind, Site};
use crate::sys;
use crate::{rotate, Ctx};

const SLEEP: &[&str] = &["sleep", "2147483647"];
const WARMUP: usize = 3;
/// What a shim may add to `runc create`, judged on the upper end of the
/// 95% interval.
const TARGET_MS: f64 = 0.5;
/// Between launches: lets the previous teardown's kernel work (netns and
/// cgroup release) finish before the next launch is timed.
const PAUSE: Duration = Duration::from_millis(100);

struct Sample {
    run: usize,
    kind: Kind,
    /// Launch to report, ms.
    total: f64,
    /// `runc create` exec to exit, ms (process events).
    runc: Option<f64>,
    /// Launch to runc's exec, and runc's exit to the report, ms.
    before: Option<f64>,
    after: Option<f64>,
}

pub fn run(ctx: &Ctx, rep: &mut Report, runs: usize) -> Result<(), String> {
    // No cgroups here: nothing but the launch path is timed.
    let ctr_parent = ctx.cg.as_ref().ok().map(|c| c.ctr_parent.clone());
    let mut site = Site::new(&ctx.tools, ctx.tmp.join("latency"), &ctx.rootfs, &ctx.template, ctr_parent)
        .map_err(|e| e.to_string())?;
    let mut pe = match ProcEvents::open() {
        Ok(p) => Some(p),
        Err(e) => {
            rep.notes
                .push(format!("latency: process events connector unavailable ({e}): runc's own time not separated"));
            None
        }
    };
    let mut kinds = ctx.kinds.clone();
    let mut t: Vec<Sample> = Vec::new();
    let mut lost = 0;
    for run in 0..runs + WARMUP {
        for k in rotate(&kinds.clone(), run) {
            sys::check_stop()?;
            sys::sleep(PAUSE);
            if let Some(p) = pe.as_mut() {
                p.clear();
            }
            let r = site.launch(k, SLEEP, None).map(|i| {
                let c = &site.live[i];
                (c.create, c.launcher, c.t0_ns, c.t1_ns)
            });
            let span = match (pe.as_mut(), &r) {
                (Some(p), Ok((_, l, _, _))) => {
                    let evs = p.drain();
                    if p.lost {
                        lost += 1;
                        None
                    } else {
                        runtime_span(&evs, *l as u32, k == Kind::NoShim)
                    }
                }
                _ => None,
            };
            let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
            let (runc, before, after) = match (span, &r) {
                (Some((x, e)), Ok((_, _, t0, t1))) => (Some(ms(x, e)), Some(ms(*t0, x)), Some(ms(e, *t1))),
                _ => (None, None, None),
            };
            site.teardown();
            match r {
                Ok((d, ..)) => {
                    if run >= WARMUP {
                        t.push(Sample { run, kind: k, total: d.as_secs_f64() * 1e3, runc, before, after });
                    }
                }
                Err(e) => {
                    sys::check_stop()?;
                    eprintln!("[latency] run {} {}: {e}; row dropped", run + 1, k.name());
                    ctx.note_failure(rep, "latency", k, &e);
                    kinds.retain(|x| *x != k);
                    t.retain(|x| x.kind != k);
                }
            }
        }
        if run >= WARMUP && (run - WARMUP + 1).is_multiple_of(10) {
            eprintln!("[latency] {}/{runs} runs", run - WARMUP + 1);
        }
    }
    drop(site);
    drop(pe);
    if lost > 0 {
        rep.notes
            .push(format!("latency: process events lost in {lost} launches (socket overrun); those have no runc time"));
    }

    let own = |s: &Sample| s.runc.map(|r| s.total - r);
    let pairs = |k: Kind, other: Kind, f: &dyn Fn(&Sample, &Sample) -> Option<f64>| -> Vec<f64> {
        t.iter()
            .filter(|x| x.kind == k)
            .filter_map(|x| t.iter().find(|o| o.kind == other && o.run == x.run).and_then(|o| f(x, o)))
            .collect()
    };
    let has_base = kinds.contains(&Kind::NoShim);
    let mut table = Vec::new();
    for &k in &kinds {
        let of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            Stat::of(&t.iter().filter(|x| x.kind == k).filter_map(f).collect::<Vec<_>>())
        };
        let total = of(&|s| Some(s.total));
        let runc = of(&|s| s.runc);
        let own_s = of(&own);
        let before = of(&|s| s.before);
        let after = of(&|s| s.after);
        let base = has_base && k != Kind::NoShim;
        let added_v = if base { pairs(k, Kind::NoShim, &|a, b| Some(a.total - b.total)) } else { vec![] };
        let added = Stat::of(&added_v);
        let added_ci = median_ci(&added_v);
        let precise_v = if base { pairs(k, Kind::NoShim, &|a, b| Some(own(a)? - own(b)?)) } else { vec![] };
        let precise = Stat::of(&precise_v);
        let precise_ci = median_ci(&precise_v);
        let ratio = if kinds.contains(&Kind::Conmon) {
            Stat::of(&pairs(k, Kind::Conmon, &|a, b| Some(a.total / b.total)))
        } else {
            None
        };
        let name = k.name();
        rep.add("latency", name, "create", &total, "ms");
        rep.add("latency", name, "create_ratio_vs_conmon", &ratio, "x");
        rep.add("latency", name, "added_over_runc_create", &added, "ms");
        rep.add("latency", name, "runc_create_process", &runc, "ms");
        rep.add("latency", name, "launch_minus_runc_process", &own_s, "ms");
        rep.add("latency", name, "launch_to_runc_exec", &before, "ms");
        rep.add("latency", name, "runc_exit_to_report", &after, "ms");
        rep.add("latency", name, "added_runc_noise_removed", &precise, "ms");
        let ci = |c: Option<(f64, f64)>| c.map(|(a, b)| format!("{a:.2} – {b:.2}")).unwrap_or_else(|| "–".into());
        let target = if k == Kind::Shimlet {
            // Judged on the upper end of the 95% interval of the estimate
            // with runc's noise removed, when there is one.
            let (est, c) = if precise.is_some() { (precise, precise_ci) } else { (added, added_ci) };
            let hi = c.map(|(_, hi)| hi).or(est.map(|e| e.med));
            if let Some(h) = hi {
                rep.add("latency", name, "added_ci_upper", &Some(Stat::one(h)), "ms");
            }
            format!("added ≤{TARGET_MS} ms (CI upper end): {}", met_str(hi.map(|h| h <= TARGET_MS)))
        } else {
            String::new()
        };
        table.push(vec![
            if k == Kind::NoShim { "no shim (`runc create` alone)".to_string() } else { name.to_string() },
            fmt(&total, 1),
            fmt_ratio(&ratio),
            if base { format!("{} (CI {})", fmt(&added, 2), ci(added_ci)) } else { "0 (baseline)".into() },
            fmt(&runc, 1),
            fmt(&own_s, 2),
            format!(
                "{:.2} / {:.2}",
                before.map(|s| s.med).unwrap_or(f64::NAN),
                after.map(|s| s.med).unwrap_or(f64::NAN)
            ),
            if base { format!("{} (CI {})", fmt(&precise, 2), ci(precise_ci)) } else { "0 (baseline)".into() },
            target,
        ]);
    }
    rep.say(&format!(
        "\n### 4. Create latency: launch to sync-pipe report, {runs} runs (after {WARMUP} warm-up), median [min–max]\n"
    ));
    rep.table(
        &[
            "shim",
            "create ms",
            "vs conmon",
            "added over runc create ms",
            "runc create process ms",
            "launch − runc ms",
            "before / after runc ms",
            "added, runc noise removed ms",
            "target",
        ],
        &table,
    );
    rep.say(
        "\ncreate: shims from spawning the shim to reading its sync-pipe line; no shim from spawning `runc create` (stdio on /dev/null) to its exit.\n\
         added over runc create: paired per run (the rows rotate their order each run), 95% CI of the median from order statistics.\n\
         runc create process: exec to exit of the runc process inside that launch (kernel process events); launch − runc is the rest:\n\
         before (spawn to runc's exec) plus after (runc's exit to the report), medians;\n\
         and \"added, runc noise removed\" = (launch − runc) of the shim minus that of `runc create` alone, paired per run: the target is judged on the upper end of its 95% CI.\n",
    );
    Ok(())
}
