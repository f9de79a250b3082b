//! shimlet-bench-cri: figure 6 (Kubernetes pods through containerd's CRI
//! plugin, runc-v2 against shimlet) on its own, until the main bench calls
//! `cri::run` as a figure of its own (see benches/README.md).

#[allow(dead_code)]
mod cgroup;
#[allow(dead_code)]
mod containerd;
mod cri;
#[allow(dead_code)]
mod report;
#[allow(dead_code)]
mod sys;

use std::path::{Path, PathBuf};
use std::time::Duration;

const USAGE: &str = "\
shimlet-bench-cri: the memory of a pod's shim, runc-v2 against shimlet, pods run by containerd's CRI plugin

usage: shimlet-bench-cri [--pods P] [--per-pod C] [--runs K] [--settle S] [--csv PATH] [--quick]

  --pods P      pods per handler (default 10)
  --per-pod C   containers per pod (default 3)
  --runs K      runs (default 3)
  --settle S    seconds between the last start and the measurement (default 3)
  --quick       smoke run: 3 pods, 1 run
  --csv PATH    CSV output (default target/bench/results-cri.csv; the markdown beside it, .md)

environment: SHIMLET_BIN (default target/x86_64-unknown-linux-musl/release/shimlet)";

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ws = here.parent().unwrap_or(here).to_path_buf();
    let shimlet = std::env::var_os("SHIMLET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target/x86_64-unknown-linux-musl/release/shimlet"));
    let mut o = cri::Opts {
        pods: 10,
        per_pod: 3,
        runs: 3,
        settle: Duration::from_secs(3),
        shimlet,
        busybox: PathBuf::from("/bin/busybox"),
    };
    let mut csv = ws.join("target/bench/results-cri.csv");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> String {
            it.next().cloned().unwrap_or_else(|| {
                eprintln!("shimlet-bench-cri: {name} needs a value");
                std::process::exit(2)
            })
        };
        let num = |v: String| -> usize {
            v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                eprintln!("shimlet-bench-cri: bad count {v:?}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            "--pods" => o.pods = num(val("--pods")),
            "--per-pod" => o.per_pod = num(val("--per-pod")),
            "--runs" => o.runs = num(val("--runs")),
            "--settle" => o.settle = Duration::from_secs_f64(val("--settle").parse().unwrap_or(3.0)),
            "--csv" => csv = PathBuf::from(val("--csv")),
            "--quick" => {
                o.pods = 3;
                o.runs = 1;
            }
            _ => {
                eprintln!("shimlet-bench-cri: unknown option {a:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    sys::install_signal_handlers();
    if !sys::is_root() {
        eprintln!("shimlet-bench-cri: needs root (containerd, runc, cgroups)");
        std::process::exit(2);
    }
    let busybox_static =
        std::fs::read(&o.busybox).map(|d| !d.windows(12).any(|w| w == b"/lib64/ld-li")).unwrap_or(false);
    if !busybox_static {
        eprintln!("shimlet-bench-cri: /bin/busybox is missing or dynamic: apt-get install busybox-static");
        std::process::exit(2);
    }
    if let Err(e) = sys::set_subreaper() {
        eprintln!("shimlet-bench-cri: PR_SET_CHILD_SUBREAPER: {e}");
        std::process::exit(2);
    }
    let cg = match cgroup::Cgroups::detect() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shimlet-bench-cri: no usable memory cgroup: {e}");
            std::process::exit(2);
        }
    };
    let tmp = std::env::temp_dir().join(format!("shimlet-bench-{}", std::process::id()));
    let mut rep = report::Report::default();
    rep.say("## shimlet benchmark: Kubernetes pods\n");
    rep.say(&format!("- cgroups: {}", cg.description));
    let r = cri::run(&o, &cg, &mut rep, &tmp);
    for e in cg.remove_all() {
        sys::problem(&format!("cleanup: {e}"));
    }
    sys::reap_all();
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = &r {
        rep.say(&format!("\n### 6: FAILED: {e}"));
    }
    match rep.write_csv(&csv) {
        Ok(()) => eprintln!("CSV: {}", csv.display()),
        Err(e) => eprintln!("CSV {}: {e}", csv.display()),
    }
    let md = csv.with_extension("md");
    let _ = std::fs::write(&md, &rep.md);
    eprintln!("markdown: {}", md.display());
    if sys::problems() > 0 {
        eprintln!("cleanup: {} problem(s), see the warnings above", sys::problems());
    }
    if r.is_err() || sys::stopped() {
        std::process::exit(1);
    }
}
