//! shimlet-bench: shimlet against conmon and no shim (`runc create` +
//! `runc start` with stdio on /dev/null).
//!
//! Figures: 1 memory per idle container (N = 100), 2 scale (N = 1,000,
//! `--scale`), 3 log throughput, 4 create latency, 5 binary size, 7 the
//! containerd shim against containerd-shim-runc-v2 (ctrd.rs). Each row
//! is a median of several runs with min and max; ratios against conmon are
//! taken pair by pair within a run. Results go to stdout (markdown tables),
//! to a CSV file and to a markdown file under target/bench/.
//!
//! Installs nothing. Needs root (runc, cgroups). Run `shimlet-bench --help`.

mod cgroup;
mod containerd;
mod ctrd;
mod latency;
mod log;
mod memory;
mod probe;
mod procev;
mod report;
mod shim;
mod size;
mod sys;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use cgroup::Cgroups;
use report::Report;
use shim::{Kind, Tools};

pub const KIB: f64 = 1024.0;
pub const MIB: f64 = 1024.0 * 1024.0;

const USAGE: &str = "\
shimlet-bench: benchmark shimlet against conmon and no shim (runc create + start)

usage: shimlet-bench [options]        (make bench / make bench-scale BENCH_ARGS='...')

  --only LIST        figures to run, comma-separated: memory,scale,flood,log,latency,size,containerd
                     (default: memory,log,latency,size,containerd; with --scale: scale,flood)
  --scale            figure 2: N = 2000 idle containers per shim, and 2b: 100 flooding at once
  --n N              containers per shim in the memory figure (default 100; --scale 2000)
  --flood-n N        containers flooding at once in figure 2b (default 100)
  --flood-mib M      MiB each of them writes (default 16)
  --runs K           runs of the memory/scale figure (default 5; --scale 3)
  --log-runs K       runs of the log figure (default 5)
  --log-mib M        MiB written by the log container (default 256)
  --latency-runs K   runs of the latency figure (default 50)
  --ctrd-n N         single-container shims per runtime in the containerd figure (default 20)
  --ctrd-runs K      runs of the containerd figure (default 3)
  --settle S         seconds to wait after the last start before measuring (default 3)
  --quick            smoke run: N = 10, 2 runs, 16 MiB log, 10 latency runs, 10 x 4 MiB flood,
                     containerd N = 5, 1 run
  --csv PATH         CSV output (default target/bench/results.csv, or results-scale.csv
                     for the scale figure alone, results-containerd.csv for the containerd
                     figure alone; the markdown text beside it, .md)
  -h, --help         this text

environment: SHIMLET_BIN (default target/x86_64-unknown-linux-musl/release/shimlet),
             CONMON (default: conmon in PATH), RUNC (default: runc in PATH);
             the containerd figure needs containerd, ctr, containerd-shim-runc-v2, util-linux";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Figure {
    Memory,
    Scale,
    Flood,
    Log,
    Latency,
    Size,
    Containerd,
}

struct Opts {
    figures: Vec<Figure>,
    n: usize,
    scale_n: usize,
    runs: usize,
    scale_runs: usize,
    log_runs: usize,
    log_mib: u64,
    latency_runs: usize,
    flood_n: usize,
    flood_mib: u64,
    ctrd_n: usize,
    ctrd_runs: usize,
    settle: Duration,
    csv: PathBuf,
    args: Vec<String>,
}

fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn parse_args() -> Result<Opts, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts {
        figures: vec![Figure::Memory, Figure::Log, Figure::Latency, Figure::Size, Figure::Containerd],
        n: 100,
        scale_n: 2000,
        runs: 5,
        scale_runs: 3,
        log_runs: 5,
        log_mib: 256,
        latency_runs: 50,
        flood_n: 100,
        flood_mib: 16,
        ctrd_n: 20,
        ctrd_runs: 3,
        settle: Duration::from_secs(3),
        csv: PathBuf::new(),
        args: args.clone(),
    };
    let (mut only, mut scale, mut quick, mut csv) = (None, false, false, None);
    let (mut n, mut runs, mut log_runs, mut log_mib, mut lat, mut settle) = (None, None, None, None, None, None);
    let (mut flood_n, mut flood_mib, mut ctrd_n, mut ctrd_runs) = (None, None, None, None);
    // --opt=value is --opt value
    let split: Vec<String> = args
        .iter()
        .flat_map(|a| match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => vec![k.to_string(), v.to_string()],
            _ => vec![a.clone()],
        })
        .collect();
    let mut it = split.iter();
    fn val<T: std::str::FromStr>(it: &mut std::slice::Iter<String>, name: &str) -> Result<T, String> {
        let v = it.next().ok_or(format!("{name} needs a value"))?;
        v.parse().map_err(|_| format!("{name}: bad value {v:?}"))
    }
    while let Some(a) = it.next() {
        let it2 = &mut it;
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--only" => {
                let s: String = val(it2, "--only")?;
                let mut v = Vec::new();
                for f in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    v.push(match f {
                        "memory" | "mem" | "1" => Figure::Memory,
                        "scale" | "2" => Figure::Scale,
                        "flood" | "2b" => Figure::Flood,
                        "log" | "3" => Figure::Log,
                        "latency" | "create" | "4" => Figure::Latency,
                        "size" | "5" => Figure::Size,
                        "containerd" | "ctrd" | "7" => Figure::Containerd,
                        _ => {
                            return Err(format!(
                                "--only: unknown figure {f:?} (memory,scale,flood,log,latency,size,containerd)"
                            ))
                        }
                    });
                }
                only = Some(v);
            }
            "--scale" => scale = true,
            "--quick" => quick = true,
            "--n" | "-n" => n = Some(val::<usize>(it2, "--n")?),
            "--runs" => runs = Some(val::<usize>(it2, "--runs")?),
            "--log-runs" => log_runs = Some(val::<usize>(it2, "--log-runs")?),
            "--log-mib" => log_mib = Some(val::<u64>(it2, "--log-mib")?),
            "--latency-runs" => lat = Some(val::<usize>(it2, "--latency-runs")?),
            "--flood-n" => flood_n = Some(val::<usize>(it2, "--flood-n")?),
            "--flood-mib" => flood_mib = Some(val::<u64>(it2, "--flood-mib")?),
            "--ctrd-n" => ctrd_n = Some(val::<usize>(it2, "--ctrd-n")?),
            "--ctrd-runs" => ctrd_runs = Some(val::<usize>(it2, "--ctrd-runs")?),
            "--settle" => settle = Some(val::<f64>(it2, "--settle")?),
            "--csv" => csv = Some(PathBuf::from(val::<String>(it2, "--csv")?)),
            _ => return Err(format!("unknown option {a:?}\n\n{USAGE}")),
        }
    }
    if quick {
        o.n = 10;
        o.scale_n = 50;
        o.runs = 2;
        o.scale_runs = 2;
        o.log_runs = 2;
        o.log_mib = 16;
        o.latency_runs = 10;
        o.flood_n = 10;
        o.flood_mib = 4;
        o.ctrd_n = 5;
        o.ctrd_runs = 1;
    }
    if scale {
        o.figures = vec![Figure::Scale, Figure::Flood];
    }
    if let Some(v) = only {
        o.figures = v;
    }
    if let Some(x) = n {
        o.n = x;
        o.scale_n = x;
    }
    if let Some(x) = runs {
        o.runs = x;
        o.scale_runs = x;
    }
    if let Some(x) = log_runs {
        o.log_runs = x;
    }
    if let Some(x) = log_mib {
        o.log_mib = x;
    }
    if let Some(x) = lat {
        o.latency_runs = x;
    }
    if let Some(x) = flood_n {
        o.flood_n = x;
    }
    if let Some(x) = flood_mib {
        o.flood_mib = x;
    }
    if let Some(x) = ctrd_n {
        o.ctrd_n = x;
    }
    if let Some(x) = ctrd_runs {
        o.ctrd_runs = x;
    }
    if let Some(x) = settle {
        o.settle = Duration::from_secs_f64(x);
    }
    // The scale figure alone, and the containerd figure alone, have their
    // own default files, so that `make bench-scale` or `make
    // bench-containerd` does not overwrite `make bench`'s results.
    let stem = if o.figures.iter().all(|f| matches!(f, Figure::Scale | Figure::Flood)) {
        "results-scale"
    } else if o.figures == [Figure::Containerd] {
        "results-containerd"
    } else {
        "results"
    };
    o.csv = csv.unwrap_or_else(|| workspace().join("target/bench").join(format!("{stem}.csv")));
    if o.n == 0
        || o.scale_n == 0
        || o.runs == 0
        || o.scale_runs == 0
        || o.log_runs == 0
        || o.latency_runs == 0
        || o.log_mib == 0
        || o.flood_n == 0
        || o.flood_mib == 0
        || o.ctrd_n == 0
        || o.ctrd_runs == 0
    {
        return Err("counts must be at least 1".into());
    }
    Ok(o)
}

/// Everything the figures share.
pub struct Ctx {
    pub tools: Tools,
    pub tmp: PathBuf,
    pub rootfs: PathBuf,
    pub template: Value,
    pub cg: Result<Cgroups, String>,
    /// Rows to run: shimlet, conmon, no shim, those available.
    pub kinds: Vec<Kind>,
    pub settle: Duration,
}

impl Ctx {
    pub fn note_failure(&self, rep: &mut Report, fig: &str, k: Kind, e: &str) {
        rep.notes.push(format!("{fig}: {} row dropped: {e}", k.name()));
    }
}

/// Each run starts the rows in a different order.
pub fn rotate(kinds: &[Kind], run: usize) -> Vec<Kind> {
    let mut v = kinds.to_vec();
    if !v.is_empty() {
        let l = v.len();
        v.rotate_left(run % l);
    }
    v
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(d.into());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| is_exec(p))
}

fn is_exec(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn first_line(cmd: &Path, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        })
        .map(|kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{os}, kernel {kernel}, {ncpu} CPUs ({cpu}), {mem}")
}

fn command_line(o: &Opts) -> String {
    let args = o.args.join(" ");
    if std::env::var_os("MAKELEVEL").is_some() {
        let scale = o.args.iter().any(|a| a == "--scale");
        let mut rest: Vec<&str> = o.args.iter().map(String::as_str).filter(|a| *a != "--scale").collect();
        // make bench-containerd puts `--only containerd` first.
        let ctrd = rest.starts_with(&["--only", "containerd"]);
        if ctrd {
            rest.drain(..2);
        }
        let target = if scale {
            "make bench-scale"
        } else if ctrd {
            "make bench-containerd"
        } else {
            "make bench"
        };
        if rest.is_empty() {
            target.into()
        } else {
            format!("{target} BENCH_ARGS='{}'", rest.join(" "))
        }
    } else if args.is_empty() {
        "shimlet-bench".into()
    } else {
        format!("shimlet-bench {args}")
    }
}

fn main() {
    // Re-executed as a probe of kernel memory (see probe.rs).
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() == 5 && argv[1] == "--probe" {
        probe::child_main(&argv[2], argv[3].parse().unwrap_or(probe::K), Path::new(&argv[4]));
    }
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shimlet-bench: {e}");
            std::process::exit(2);
        }
    };
    sys::install_signal_handlers();
    // Whatever the bench inherited (a shell's descriptors) must not reach
    // the shims: a stray descriptor numbered 64 or more makes the kernel
    // give each daemon a larger descriptor table, 2 KiB of charge.
    sys::cloexec_inherited();
    let mut rep = Report::default();
    let started = Instant::now();

    // --- what is there, what is skipped and why --------------------------
    let mut skips: Vec<String> = Vec::new();
    let from_env = |var: &str, name: &str| match std::env::var_os(var) {
        Some(v) => Some(PathBuf::from(v)).filter(|p| is_exec(p)),
        None => which(name),
    };
    let runc = from_env("RUNC", "runc");
    if runc.is_none() {
        skips.push("runc not installed: apt-get install runc (memory, scale, log and latency figures skipped)".into());
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].iter().map(PathBuf::from).find(|p| is_exec(p));
    let busybox = match busybox {
        Some(b) if size::elf(&b).map(|e| e.interp.is_none()).unwrap_or(false) => Some(b),
        Some(b) => {
            skips.push(format!(
                "{} is dynamically linked and cannot run alone in the container rootfs: apt-get install busybox-static (container figures skipped)",
                b.display()
            ));
            None
        }
        None => {
            skips.push("busybox not installed: apt-get install busybox-static (container figures skipped)".into());
            None
        }
    };
    let conmon = from_env("CONMON", "conmon");
    if conmon.is_none() {
        skips.push("conmon not installed: apt-get install conmon (conmon rows and ratios skipped)".into());
    }
    let shimlet_path = std::env::var_os("SHIMLET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/x86_64-unknown-linux-musl/release/shimlet"));
    let shimlet = if is_exec(&shimlet_path) {
        Some(shimlet_path.clone())
    } else {
        skips
            .push(format!("shimlet not built ({} missing): make build (shimlet rows skipped)", shimlet_path.display()));
        None
    };
    let tools =
        Tools { runc: runc.clone(), shimlet: shimlet.clone(), conmon: conmon.clone(), busybox: busybox.clone() };
    let root = sys::is_root();
    if !root {
        skips.push("not root: runc containers and cgroups need root (container figures skipped)".into());
    }
    let cg = Cgroups::detect();

    rep.say("## shimlet benchmark\n");
    rep.say(&format!("- command: `{}`", command_line(&o)));
    rep.say(&format!("- machine: {}", machine()));
    let date = first_line(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]);
    if !date.is_empty() {
        rep.say(&format!("- date: {date}"));
    }
    let ver = |p: &Option<PathBuf>, a: &[&str]| {
        p.as_ref().map(|p| first_line(p, a)).unwrap_or_else(|| "not installed".into())
    };
    rep.say(&format!(
        "- runc: {} ({})",
        ver(&runc, &["--version"]),
        runc.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    ));
    rep.say(&format!("- conmon: {}", ver(&conmon, &["--version"])));
    rep.say(&format!(
        "- shimlet: {}",
        match &shimlet {
            Some(p) => format!("{} ({} bytes)", p.display(), fs::metadata(p).map(|m| m.len()).unwrap_or(0)),
            None => "not built".into(),
        }
    ));
    rep.say(&format!("- busybox: {}", ver(&busybox, &["--help"]).split(" multi-call").next().unwrap_or("")));
    match &cg {
        Ok(c) => rep.say(&format!("- cgroups: {}", c.description)),
        Err(e) => rep.say(&format!("- cgroups: none usable ({e}): memory figures skipped, log CPU from rusage")),
    }
    for s in &skips {
        rep.say(&format!("- SKIP: {s}"));
    }

    let containers_ok = runc.is_some() && busybox.is_some() && root;
    let mut kinds = Vec::new();
    if shimlet.is_some() {
        kinds.push(Kind::Shimlet);
    }
    if conmon.is_some() {
        kinds.push(Kind::Conmon);
    }
    kinds.push(Kind::NoShim);

    // --- workspace --------------------------------------------------------
    let tmp = std::env::temp_dir().join(format!("shimlet-bench-{}", std::process::id()));
    let mut template = Value::Null;
    let mut rootfs = PathBuf::new();
    let mut setup_err = None;
    if containers_ok {
        if let Err(e) = sys::set_subreaper() {
            setup_err = Some(format!("PR_SET_CHILD_SUBREAPER: {e}"));
        }
        let r = fs::create_dir_all(&tmp)
            .map_err(|e| e.to_string())
            .and_then(|_| shim::build_rootfs(&tmp, busybox.as_ref().unwrap()).map_err(|e| format!("rootfs: {e}")))
            .and_then(|rf| {
                rootfs = rf;
                shim::spec_template(runc.as_ref().unwrap(), &tmp)
            });
        match r {
            Ok(t) => template = t,
            Err(e) => setup_err = Some(e),
        }
    }
    if let Some(e) = &setup_err {
        rep.say(&format!("- SKIP: container figures: {e}"));
    }
    let ctx = Ctx { tools, tmp: tmp.clone(), rootfs, template, cg, kinds, settle: o.settle };

    for fig in &o.figures {
        if sys::stopped() {
            break;
        }
        let needs_containers = *fig != Figure::Size;
        if needs_containers && (!containers_ok || setup_err.is_some()) {
            rep.say(&format!("\n### {fig:?}: skipped (see SKIP above)"));
            continue;
        }
        let t = Instant::now();
        let r = match fig {
            Figure::Memory => memory::run(&ctx, &mut rep, o.n, o.runs, false),
            Figure::Scale => memory::run(&ctx, &mut rep, o.scale_n, o.scale_runs, true),
            Figure::Flood => log::many(&ctx, &mut rep, o.flood_n, o.flood_mib),
            Figure::Log => log::run(&ctx, &mut rep, o.log_runs, o.log_mib),
            Figure::Latency => latency::run(&ctx, &mut rep, o.latency_runs),
            Figure::Size => size::run(&ctx, &mut rep),
            Figure::Containerd => ctrd::run(&ctx, &mut rep, o.ctrd_n, o.ctrd_runs),
        };
        if let Ok(c) = &ctx.cg {
            if needs_containers {
                for e in c.remove_all() {
                    sys::problem(&format!("cleanup: {e}"));
                }
            }
        }
        match r {
            Ok(()) => eprintln!("[{fig:?}] done in {:.0} s", t.elapsed().as_secs_f64()),
            Err(e) => rep.say(&format!("\n### {fig:?}: FAILED: {e}")),
        }
    }

    // --- clean-up and output ----------------------------------------------
    if let Ok(c) = &ctx.cg {
        for e in c.remove_all() {
            sys::problem(&format!("cleanup: {e}"));
        }
    }
    sys::reap_all();
    sys::forget_reaped();
    if tmp.exists() {
        if let Err(e) = fs::remove_dir_all(&tmp) {
            sys::problem(&format!("removing {}: {e}", tmp.display()));
        }
    }
    if sys::problems() == 0 {
        eprintln!("cleanup: containers deleted, shims exited, cgroups and {} removed", tmp.display());
    } else {
        eprintln!("cleanup: {} problem(s), see the warnings above", sys::problems());
    }
    if !rep.notes.is_empty() {
        rep.say("\nNotes:");
        for n in rep.notes.clone() {
            rep.say(&format!("- {n}"));
        }
    }
    rep.say(&format!("\n(total bench time {:.0} s)", started.elapsed().as_secs_f64()));
    rep.finish_charts();
    match rep.write_csv(&o.csv) {
        Ok(()) => eprintln!("CSV: {}", o.csv.display()),
        Err(e) => eprintln!("CSV {}: {e}", o.csv.display()),
    }
    for c in &rep.charts {
        let path = o.csv.with_file_name(&c.file);
        match fs::write(&path, c.svg()) {
            Ok(()) => eprintln!("chart: {}", path.display()),
            Err(e) => eprintln!("chart {}: {e}", path.display()),
        }
    }
    let md = o.csv.with_extension("md");
    match fs::write(&md, &rep.md) {
        Ok(()) => eprintln!("markdown: {}", md.display()),
        Err(e) => eprintln!("markdown {}: {e}", md.display()),
    }
    if sys::stopped() {
        eprintln!("interrupted: cleaned up");
        std::process::exit(130);
    }
}
