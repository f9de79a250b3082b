//! Processes seen through /proc and the calls that end and reap them.
//!
//! The test process makes itself a child subreaper, so that a shim that
//! detached from its launcher is reparented to the test (not to the machine's
//! pid 1, which may never reap it): the tests can then observe the shim's end
//! exactly, and reap it so that no zombie is left behind.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Once;
use std::time::{Duration, Instant};

use super::wait::{wait_until, POLL, WAIT};

/// KiB of the shim's buffers that a flood of output touches, on top of its
/// idle pages: the read buffer and the log's batch (`READ` and `LOG_BATCH`
/// in src/daemon.rs, 64 + 260 KiB). Fixed, whatever the amount of output;
/// the idle trim hands them back.
pub const FLOOD_BUFFERS_KB: u64 = 324;

/// Makes the test process a child subreaper (once).
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain prctl on the calling process.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(r, 0, "prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
    });
}

/// /proc/PID/status as a map (None when the process does not exist).
pub fn proc_status(pid: i32) -> Option<BTreeMap<String, String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        s.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// The state letter of a process (R, S, Z, ...), None when it does not exist.
pub fn proc_state(pid: i32) -> Option<char> {
    proc_status(pid)?.get("State")?.chars().next()
}

/// The parent pid of a process.
pub fn proc_ppid(pid: i32) -> Option<i32> {
    proc_status(pid)?.get("PPid")?.parse().ok()
}

/// Whether a process exists at all (a zombie exists).
pub fn pid_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn is_zombie(pid: i32) -> bool {
    proc_state(pid) == Some('Z')
}

/// Exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

/// The open descriptors of a process with what they point to.
pub fn proc_fds(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n: i32 = e.file_name().to_str()?.parse().ok()?;
                    let t = fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
                    Some((n, t))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The NUL-separated command line of a process, NULs turned into spaces.
pub fn proc_cmdline(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default()
}

/// Whether `token` (a test's container id, id prefix or directory) is in a
/// process's command line or in the path of one of its open files. A
/// detached shim's command line reads empty (the daemon copies its
/// arguments and unmaps the kernel's stack, where /proc reads them from):
/// its open files (its log, the container's directory, the cgroup's
/// memory.oom_control) tell which test it belongs to.
pub fn process_mentions(pid: i32, token: &str) -> bool {
    proc_cmdline(pid).contains(token) || proc_fds(pid).iter().any(|(_, t)| t.contains(token))
}

/// A process for a report: its command line, or its open files when the
/// command line reads empty.
pub fn process_text(pid: i32) -> String {
    let cl = proc_cmdline(pid);
    if !cl.trim().is_empty() {
        return cl;
    }
    let files: Vec<String> = proc_fds(pid).into_iter().map(|(n, t)| format!("{n}:{t}")).collect();
    format!("[no command line; open: {}]", files.join(" "))
}

/// Live (non-zombie) processes whose comm is `shimlet` (or `conmon`, run
/// side by side) that mention `token` (see `process_mentions`).
pub fn find_shims(token: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| matches!(comm(p).as_str(), "shimlet" | "conmon") && pid_alive(p) && process_mentions(p, token))
        .collect()
}

/// Live (non-zombie) processes other than this one that mention `token`
/// (see `process_mentions`): (pid, comm, `process_text`).
pub fn processes_mentioning(token: &str) -> Vec<(i32, String, String)> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&p| p != me && pid_alive(p) && process_mentions(p, token))
        .map(|p| (p, comm(p), process_text(p)))
        .collect()
}

/// Direct children of `pid` that are zombies.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    all_pids().into_iter().filter(|&p| proc_ppid(p) == Some(pid) && is_zombie(p)).collect()
}

/// Live processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| proc_ppid(p) == Some(pid))
                .collect()
        })
        .unwrap_or_default()
}

/// Reaps `pid` if it is an exited child of the test process. Returns its wait
/// status when it was reaped now.
pub fn try_reap(pid: i32) -> Option<i32> {
    let mut st = 0;
    // SAFETY: waitpid on a specific pid with WNOHANG.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}

/// Waits until `pid` has ended: reaped by the test process when it is its
/// child, otherwise gone from /proc or a zombie of someone else. Returns the
/// wait status when the test reaped it.
pub fn wait_pid_gone(pid: i32, what: &str) -> Option<i32> {
    wait_until(&format!("{what} (pid {pid}) to end"), WAIT, || {
        let mut st = 0;
        // SAFETY: waitpid on a specific pid with WNOHANG.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return Some(Some(st));
        }
        if r == 0 {
            return None; // our child, still running
        }
        // Not our child.
        if !pid_exists(pid) || is_zombie(pid) {
            Some(None)
        } else {
            None
        }
    })
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2).
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// Decodes a waitpid status: (exit code, signal).
pub fn decode_wait(st: i32) -> (Option<i32>, Option<i32>) {
    let e = ExitStatus::from_raw(st);
    (e.code(), e.signal())
}

/// Kills (SIGKILL) and reaps the listed processes on drop, if they still
/// run the expected command: what a failing test must not leave behind.
pub struct KillOnDrop(pub Vec<(i32, &'static str)>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &(p, what) in &self.0 {
            if p > 1 && pid_alive(p) && proc_cmdline(p).contains(what) {
                // SAFETY: kill(2) of a process this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        for &(p, _) in &self.0 {
            if p > 1 {
                let deadline = Instant::now() + Duration::from_secs(5);
                while pid_exists(p) && Instant::now() < deadline {
                    try_reap(p);
                    if !pid_exists(p) || (is_zombie(p) && proc_ppid(p) != Some(std::process::id() as i32)) {
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// figures of a process

/// A `NNN kB` field of /proc/PID/status, in kB (None when the process is
/// gone).
pub fn status_kb(pid: i32, key: &str) -> Option<u64> {
    let st = proc_status(pid)?;
    let v = st.get(key)?;
    v.trim_end_matches("kB").trim().parse().ok()
}

/// The number of open descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|rd| rd.count()).unwrap_or(0)
}

/// Sockets the shim holds (its listening one plus clients).
pub fn socket_count(shim: i32) -> usize {
    proc_fds(shim).iter().filter(|(_, t)| t.starts_with("socket:")).count()
}

pub fn oom_score_adj(pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).ok()?.trim().parse().ok()
}

/// Keeps the maximum of the shim's RssAnon over samples.
#[derive(Debug, Default, Clone, Copy)]
pub struct RssTrack {
    pub max: u64,
    pub samples: usize,
    pub last: u64,
}

impl RssTrack {
    pub fn sample(&mut self, pid: i32) {
        if let Some(r) = status_kb(pid, "RssAnon") {
            self.max = self.max.max(r);
            self.last = r;
            self.samples += 1;
        }
    }
}

/// Raises the soft descriptor limit to the hard one (for many clients).
pub fn raise_nofile() {
    // SAFETY: get/setrlimit on plain data.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// The processes in the container's cgroups (v1 controllers and v2).
pub fn cgroup_procs(id: &str) -> Vec<i32> {
    let mut v: Vec<i32> = vec![];
    let mut files = vec![Path::new("/sys/fs/cgroup").join(id).join("cgroup.procs")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            files.push(e.path().join(id).join("cgroup.procs"));
        }
    }
    for f in files {
        if let Ok(s) = fs::read_to_string(&f) {
            v.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    v.sort();
    v.dedup();
    v
}
