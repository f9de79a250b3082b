//! OOM kills of the container: its memory cgroup is found from
//! /proc/PID/cgroup and watched, so the manager can be told (BUNDLE/oom,
//! `oom=1` in the status file) why the container died.
//!
//! - cgroup v1: an eventfd registered through `cgroup.event_control` for
//!   `memory.oom_control`; an event is confirmed by the `oom_kill` counter
//!   in `memory.oom_control` (an event also comes when the cgroup goes).
//!   That file is opened only to be read: an open cgroup file that has been
//!   read keeps a page of kernel memory for its next read, so the watch
//!   holds the cgroup's directory instead (O_PATH, no such page).
//! - cgroup v2: `memory.events` is pollable (EPOLLPRI on change); its
//!   `oom_kill` counter says whether a process was killed.
//!
//! The counter is read once more when the container has exited.

use crate::buf::{parse_u64, Buf, PathBuf};
use crate::sys::{self, AsFd, BorrowedFd, OFlags, OwnedFd};

pub struct Oom {
    /// v2: memory.events, whose `oom_kill` line counts kills; v1: the
    /// cgroup's directory, where memory.oom_control counts them.
    counter: OwnedFd,
    /// v1: the eventfd registered for OOM notifications (epoll watches it);
    /// v2: none, epoll watches `counter` itself (EPOLLPRI on change).
    event: Option<OwnedFd>,
    pub v2: bool,
    /// Kills counted when the watch began (a reused cgroup may have some).
    base: u64,
}

/// The memory cgroup path in /proc/PID/cgroup content: the v1 `memory`
/// controller line, else the v2 `0::` line. Returns (path, is_v2).
pub fn cgroup_of(content: &[u8]) -> Option<(&[u8], bool)> {
    let mut v2 = None;
    for line in content.split(|&b| b == b'\n') {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if ctrls.split(|&b| b == b',').any(|c| c == b"memory") {
            return Some((path, false));
        }
        if id == b"0" && ctrls.is_empty() {
            v2 = Some((path, true));
        }
    }
    v2
}

/// The `oom_kill N` counter in memory.oom_control or memory.events content.
pub fn oom_kills(content: &[u8]) -> Option<u64> {
    content.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"oom_kill ").and_then(|n| parse_u64(n, u64::MAX)))
}

fn read_counter(fd: impl AsFd) -> u64 {
    let mut b = [0u8; 512];
    match sys::pread(fd, &mut b, 0) {
        Ok(n) => oom_kills(&b[..n]).unwrap_or(0),
        Err(_) => 0,
    }
}

/// v1: the counter in `dir`/memory.oom_control, the file open only meanwhile.
fn read_v1_counter(dir: impl AsFd) -> u64 {
    sys::openat(dir, c"memory.oom_control", OFlags::RDONLY, 0).map_or(0, read_counter)
}

impl Oom {
    /// Start watching the container `pid`'s memory cgroup. `path` is scratch.
    #[inline(never)]
    pub fn watch(pid: sys::Pid, path: &mut PathBuf) -> Option<Oom> {
        let mut content = [0u8; 1024];
        path.clear();
        path.push(b"/proc/");
        path.push_u64(pid as u64);
        path.push(b"/cgroup");
        let content = sys::read_file(path.as_cstr()?, &mut content).ok()?;
        let (cg, v2) = cgroup_of(content)?;
        let mut dir: Buf<1200> = Buf::new();
        let root: &[u8] = if v2 {
            // A hybrid host mounts v2 at /sys/fs/cgroup/unified.
            if sys::exists(c"/sys/fs/cgroup/unified").is_ok() {
                b"/sys/fs/cgroup/unified"
            } else {
                b"/sys/fs/cgroup"
            }
        } else {
            b"/sys/fs/cgroup/memory"
        };
        if !(dir.push(root) && dir.push(cg)) {
            return None;
        }
        let file = |name: &[u8], path: &mut PathBuf, flags: OFlags| -> Option<OwnedFd> {
            path.clear();
            if !(path.push(dir.as_bytes()) && path.push(b"/") && path.push(name)) {
                return None;
            }
            sys::open(path.as_cstr()?, flags, 0).ok()
        };
        if v2 {
            let counter = file(b"memory.events", path, OFlags::RDONLY)?;
            let base = read_counter(&counter);
            return Some(Oom { counter, event: None, v2, base });
        }
        path.clear();
        if !path.push(dir.as_bytes()) {
            return None;
        }
        let cdir = sys::open_dir(path.as_cstr()?).ok()?;
        let base = read_v1_counter(&cdir);
        // The registration needs memory.oom_control open; the kernel keeps
        // what it needs of it (the event), so it is closed again.
        let control = sys::openat(&cdir, c"memory.oom_control", OFlags::RDONLY, 0).ok()?;
        let event = sys::eventfd().ok().filter(|efd| {
            let Some(ctl) = file(b"cgroup.event_control", path, OFlags::WRONLY) else { return false };
            let mut line: Buf<32> = Buf::new();
            line.push_u64(sys::AsRawFd::as_raw_fd(efd) as u64);
            line.push(b" ");
            line.push_u64(sys::AsRawFd::as_raw_fd(&control) as u64);
            sys::write_all(&ctl, line.as_bytes()).is_ok()
        });
        // Without the eventfd, the counter alone still answers at exit.
        Some(Oom { counter: cdir, event, v2, base })
    }

    /// What epoll should watch, if anything (EPOLLPRI for v2, EPOLLIN for v1).
    pub fn watched(&self) -> Option<BorrowedFd<'_>> {
        if self.v2 {
            Some(self.counter.as_fd())
        } else {
            self.event.as_ref().map(|e| e.as_fd())
        }
    }

    /// After an event (or at exit): has a process been OOM-killed?
    pub fn killed(&self) -> bool {
        if let Some(e) = &self.event {
            let mut v = [0u8; 8];
            let _ = sys::read(e, &mut v);
        }
        let kills = if self.v2 { read_counter(&self.counter) } else { read_v1_counter(&self.counter) };
        kills > self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_memory_cgroup() {
        let v1 = b"12:pids:/x\n11:memory:/ctr/abc\n10:cpu,cpuacct:/ctr/abc\n0::/\n";
        assert_eq!(cgroup_of(v1), Some((&b"/ctr/abc"[..], false)));
        let v2 = b"0::/machine.slice/libpod-abc.scope/container\n";
        assert_eq!(cgroup_of(v2), Some((&b"/machine.slice/libpod-abc.scope/container"[..], true)));
        assert_eq!(cgroup_of(b"garbage"), None);
    }

    #[test]
    fn counts_kills() {
        // Recorded from a v2 memory.events and a v1 memory.oom_control.
        let events = b"low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kills(events), Some(1));
        let control = b"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(oom_kills(control), Some(3));
        assert_eq!(oom_kills(b"oom 1\n"), None);
    }
}
