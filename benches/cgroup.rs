//! Memory (and CPU) cgroups for the shims, cgroup v1 or v2.
//!
//! Layout (v1): in the memory and cpuacct hierarchies, under the bench's own
//! cgroup, `shimlet-bench-PID/<group>/<leaf>`: one leaf per shim process.
//! The containers go to `<own memory cgroup>/shimlet-bench-PID/ctr/<id>`
//! (their `linux.cgroupsPath`), which runc creates in every hierarchy.
//! Keeping everything below the bench's own memory cgroup keeps the charge
//! inside whatever accounts for the bench itself.
//!
//! v2: the no-internal-process rule forbids enabling controllers below a
//! cgroup that holds processes, so the tree is made at the root of the
//! unified hierarchy: `/shimlet-bench-PID/...`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::ffi::CString;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    V1,
    V2,
}

pub struct Cgroups {
    pub mode: Mode,
    /// v1: the bench root in the memory hierarchy; v2: in the unified one.
    mem_root: PathBuf,
    /// v1 only: the bench root in the cpuacct hierarchy.
    cpu_root: Option<PathBuf>,
    /// `linux.cgroupsPath` prefix of the containers (a path inside each hierarchy).
    pub ctr_parent: String,
    /// Every cgroup mount point with the directories to remove there at the
    /// end, and those of their ancestors that did not exist before us.
    cleanup: Vec<(PathBuf, Vec<PathBuf>)>,
    pub description: String,
}

/// One cgroup (per hierarchy) a process is placed into before exec.
pub struct Leaf {
    pub mem: PathBuf,
    pub cpu: Option<PathBuf>,
    pub mode: Mode,
    pub procs: Vec<CString>,
}

/// Memory charged to one cgroup, in bytes.
#[derive(Clone, Copy, Default, Debug)]
pub struct MemUsage {
    /// The page counter (v1 memory.usage_in_bytes, v2 memory.current):
    /// includes pages pre-charged to per-CPU stocks.
    pub counter: u64,
    pub anon: u64,
    pub file: u64,
    pub kernel: u64,
}

impl MemUsage {
    /// anon + file + kernel, from memory.stat and (v1) memory.kmem.usage_in_bytes:
    /// exact, unlike the page counter.
    pub fn charge(&self) -> u64 {
        self.anon + self.file + self.kernel
    }
}

struct Mount {
    point: PathBuf,
    root: String,
    fstype: String,
    opts: Vec<String>,
}

fn mounts() -> Vec<Mount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for line in text.lines() {
        let (pre, post) = match line.split_once(" - ") {
            Some(x) => x,
            None => continue,
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0].to_string();
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        v.push(Mount {
            point: PathBuf::from(unescape(pre[4])),
            root: unescape(pre[3]),
            fstype,
            opts: post[2].split(',').map(String::from).collect(),
        });
    }
    v
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Own cgroup path per v1 controller (and "" for v2).
fn own_path(controller: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        if controller.is_empty() {
            if ctrls.is_empty() {
                return Some(path.to_string());
            }
        } else if ctrls.split(',').any(|c| c == controller) {
            return Some(path.to_string());
        }
    }
    None
}

fn join(mount: &Mount, path: &str) -> PathBuf {
    // Path relative to the mount's own root (cgroup namespaces, bind mounts).
    let rel = path.strip_prefix(mount.root.trim_end_matches('/')).unwrap_or(path);
    let mut p = mount.point.clone();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
    }
    p
}

fn with_child(path: &str, child: &str) -> String {
    format!("{}/{}", path.trim_end_matches('/'), child)
}

impl Cgroups {
    /// Find a usable memory controller; Err says why there is none.
    pub fn detect() -> Result<Cgroups, String> {
        let ms = mounts();
        let name = format!("shimlet-bench-{}", std::process::id());
        let mem_v1 = ms.iter().find(|m| m.fstype == "cgroup" && m.opts.iter().any(|o| o == "memory"));
        let (mode, mem_root, cpu_root, ctr_parent, description);
        if let Some(mm) = mem_v1 {
            let own = own_path("memory").unwrap_or_else(|| "/".into());
            let bench = with_child(&own, &name);
            mem_root = join(mm, &bench);
            cpu_root = ms
                .iter()
                .find(|m| m.fstype == "cgroup" && m.opts.iter().any(|o| o == "cpuacct"))
                .map(|cm| join(cm, &with_child(&own_path("cpuacct").unwrap_or_else(|| "/".into()), &name)));
            ctr_parent = with_child(&bench, "ctr");
            mode = Mode::V1;
            description = format!(
                "cgroup v1: shims in {}/<group>/<n>{}; containers in {}/<id> (linux.cgroupsPath)",
                mem_root.display(),
                cpu_root.as_ref().map(|c| format!(" and {}/...", c.display())).unwrap_or_default(),
                ctr_parent
            );
        } else {
            let m2 = ms
                .iter()
                .find(|m| m.fstype == "cgroup2")
                .ok_or("no cgroup v1 memory controller and no cgroup2 mount")?;
            let ctrls = fs::read_to_string(m2.point.join("cgroup.controllers")).unwrap_or_default();
            if !ctrls.split_whitespace().any(|c| c == "memory") {
                return Err(format!(
                    "the memory controller is neither mounted as cgroup v1 nor available in {}/cgroup.controllers",
                    m2.point.display()
                ));
            }
            mem_root = m2.point.join(&name);
            cpu_root = None;
            ctr_parent = format!("/{name}/ctr");
            mode = Mode::V2;
            description = format!(
                "cgroup v2: shims in {}/<group>/<n>; containers in {}/<id> (linux.cgroupsPath)",
                mem_root.display(),
                ctr_parent
            );
        }
        // What to remove at the end, in every hierarchy runc may touch: the
        // bench's trees, and the container tree (whose ancestors runc creates
        // in hierarchies where our own cgroup is elsewhere).
        let mut targets: Vec<String> = vec![ctr_parent.clone()];
        let bench_parent = ctr_parent.rsplit_once('/').map(|(a, _)| a.to_string()).unwrap_or_default();
        targets.push(bench_parent);
        let mut cleanup = Vec::new();
        for m in &ms {
            let mut dirs = Vec::new();
            for t in &targets {
                let full = join(m, t);
                // The target and its ancestors that do not exist yet.
                let mut p = full.clone();
                while p != m.point && !p.exists() {
                    if !dirs.contains(&p) {
                        dirs.push(p.clone());
                    }
                    if !p.pop() {
                        break;
                    }
                }
            }
            for extra in [&mem_root, cpu_root.as_ref().unwrap_or(&mem_root)] {
                if extra.starts_with(&m.point) && !dirs.contains(extra) && !extra.exists() {
                    dirs.push(extra.clone());
                }
            }
            // Deepest first.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            cleanup.push((m.point.clone(), dirs));
        }
        Ok(Cgroups { mode, mem_root, cpu_root, ctr_parent, cleanup, description })
    }

    /// Create the bench roots (and enable the v2 controllers).
    pub fn setup(&self) -> io::Result<()> {
        match self.mode {
            Mode::V1 => {
                mkdir(&self.mem_root)?;
                if let Some(c) = &self.cpu_root {
                    mkdir(c)?;
                }
            }
            Mode::V2 => {
                let root = self.mem_root.parent().unwrap();
                let sub = fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
                if !sub.split_whitespace().any(|c| c == "memory") {
                    fs::write(root.join("cgroup.subtree_control"), "+memory")?;
                }
                mkdir(&self.mem_root)?;
                enable_v2(&self.mem_root)?;
            }
        }
        Ok(())
    }

    /// An intermediate cgroup grouping leaves (e.g. one row of one run).
    pub fn group(&self, name: &str) -> io::Result<()> {
        mkdir(&self.mem_root.join(name))?;
        if self.mode == Mode::V2 {
            enable_v2(&self.mem_root.join(name))?;
        }
        if let Some(c) = &self.cpu_root {
            mkdir(&c.join(name))?;
        }
        Ok(())
    }

    /// A leaf cgroup `group/name` (memory, and CPU accounting).
    pub fn leaf(&self, group: &str, name: &str) -> io::Result<Leaf> {
        let mem = self.mem_root.join(group).join(name);
        mkdir(&mem)?;
        let mut procs = vec![crate::sys::cstring(&mem.join("cgroup.procs"))];
        let cpu = match &self.cpu_root {
            Some(c) => {
                let d = c.join(group).join(name);
                mkdir(&d)?;
                procs.push(crate::sys::cstring(&d.join("cgroup.procs")));
                Some(d)
            }
            None => None,
        };
        Ok(Leaf { mem, cpu, mode: self.mode, procs })
    }

    /// Remove a group and its leaves (after their processes are gone).
    pub fn remove_group(&self, name: &str) -> Vec<String> {
        let mut errs = Vec::new();
        remove_tree(&self.mem_root.join(name), &mut errs);
        if let Some(c) = &self.cpu_root {
            remove_tree(&c.join(name), &mut errs);
        }
        errs
    }

    /// Remove everything the bench and runc made; returns what could not be removed.
    pub fn remove_all(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (_, dirs) in &self.cleanup {
            for d in dirs {
                if d.exists() {
                    remove_tree(d, &mut errs);
                }
            }
        }
        errs
    }
}

fn mkdir(p: &Path) -> io::Result<()> {
    match fs::create_dir(p) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r.map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", p.display()))),
    }
}

fn enable_v2(p: &Path) -> io::Result<()> {
    let avail = fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default();
    for c in ["memory", "cpu"] {
        if avail.split_whitespace().any(|x| x == c) {
            // cpu is optional: cpu.stat's usage_usec exists without it.
            let r = fs::write(p.join("cgroup.subtree_control"), format!("+{c}"));
            if c == "memory" {
                r.map_err(|e| io::Error::new(e.kind(), format!("enable memory in {}: {e}", p.display())))?;
            }
        }
    }
    Ok(())
}

/// rmdir a cgroup and its children, deepest first, retrying while the
/// kernel still counts exiting tasks.
fn remove_tree(p: &Path, errs: &mut Vec<String>) {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path(), errs);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(p) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                if Instant::now() >= deadline {
                    errs.push(format!("rmdir {}: {e}", p.display()));
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_map(p: &Path) -> Vec<(String, u64)> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn get(m: &[(String, u64)], k: &str) -> Option<u64> {
    m.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
}

impl Leaf {
    pub fn mem_usage(&self) -> MemUsage {
        match self.mode {
            Mode::V1 => {
                let st = stat_map(&self.mem.join("memory.stat"));
                MemUsage {
                    counter: read_u64(&self.mem.join("memory.usage_in_bytes")).unwrap_or(0),
                    anon: get(&st, "rss").unwrap_or(0),
                    file: get(&st, "cache").unwrap_or(0),
                    kernel: read_u64(&self.mem.join("memory.kmem.usage_in_bytes")).unwrap_or(0),
                }
            }
            Mode::V2 => {
                let st = stat_map(&self.mem.join("memory.stat"));
                let kernel = get(&st, "kernel").unwrap_or_else(|| {
                    ["kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock", "vmalloc", "slab"]
                        .iter()
                        .filter_map(|k| get(&st, k))
                        .sum()
                });
                MemUsage {
                    counter: read_u64(&self.mem.join("memory.current")).unwrap_or(0),
                    anon: get(&st, "anon").unwrap_or(0),
                    file: get(&st, "file").unwrap_or(0),
                    kernel,
                }
            }
        }
    }

    /// CPU time used by the cgroup's processes, dead or alive.
    pub fn cpu_ns(&self) -> Option<u64> {
        match self.mode {
            Mode::V1 => read_u64(&self.cpu.as_ref()?.join("cpuacct.usage")),
            Mode::V2 => get(&stat_map(&self.mem.join("cpu.stat")), "usage_usec").map(|u| u * 1000),
        }
    }

    /// User and system CPU of the cgroup, ns.
    pub fn cpu_user_sys_ns(&self) -> Option<(u64, u64)> {
        match self.mode {
            Mode::V1 => {
                let c = self.cpu.as_ref()?;
                Some((read_u64(&c.join("cpuacct.usage_user"))?, read_u64(&c.join("cpuacct.usage_sys"))?))
            }
            Mode::V2 => {
                let st = stat_map(&self.mem.join("cpu.stat"));
                Some((get(&st, "user_usec")? * 1000, get(&st, "system_usec")? * 1000))
            }
        }
    }

    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.mem.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}
