//! A container's metrics, read from its cgroup and encoded as containerd's
//! `io.containerd.cgroups.v1.Metrics` (cgroup v1 and hybrid hosts) or
//! `io.containerd.cgroups.v2.Metrics` (a unified host), as `ctr task
//! metrics` and the CRI plugin read them: CPU, memory (usage, limit, the
//! `memory.stat` counters the working set is computed from) and pids.

use super::proto::Writer;
use crate::buf::{parse_u64, Buf, PathBuf};
use crate::sys::{self, Pid};

pub const V1: &[u8] = b"io.containerd.cgroups.v1.Metrics";
pub const V2: &[u8] = b"io.containerd.cgroups.v2.Metrics";

/// `memory.stat` keys of cgroup v1 and their MemoryStat field numbers.
const V1_MEMORY: [(&[u8], u32); 32] = [
    (b"cache", 1),
    (b"rss", 2),
    (b"rss_huge", 3),
    (b"mapped_file", 4),
    (b"dirty", 5),
    (b"writeback", 6),
    (b"pgpgin", 7),
    (b"pgpgout", 8),
    (b"pgfault", 9),
    (b"pgmajfault", 10),
    (b"inactive_anon", 11),
    (b"active_anon", 12),
    (b"inactive_file", 13),
    (b"active_file", 14),
    (b"unevictable", 15),
    (b"hierarchical_memory_limit", 16),
    (b"hierarchical_memsw_limit", 17),
    (b"total_cache", 18),
    (b"total_rss", 19),
    (b"total_rss_huge", 20),
    (b"total_mapped_file", 21),
    (b"total_dirty", 22),
    (b"total_writeback", 23),
    (b"total_pgpgin", 24),
    (b"total_pgpgout", 25),
    (b"total_pgfault", 26),
    (b"total_pgmajfault", 27),
    (b"total_inactive_anon", 28),
    (b"total_active_anon", 29),
    (b"total_inactive_file", 30),
    (b"total_active_file", 31),
    (b"total_unevictable", 32),
];

/// `memory.stat` keys of cgroup v2 and their MemoryStat field numbers.
const V2_MEMORY: [(&[u8], u32); 31] = [
    (b"anon", 1),
    (b"file", 2),
    (b"kernel_stack", 3),
    (b"slab", 4),
    (b"sock", 5),
    (b"shmem", 6),
    (b"file_mapped", 7),
    (b"file_dirty", 8),
    (b"file_writeback", 9),
    (b"anon_thp", 10),
    (b"inactive_anon", 11),
    (b"active_anon", 12),
    (b"inactive_file", 13),
    (b"active_file", 14),
    (b"unevictable", 15),
    (b"slab_reclaimable", 16),
    (b"slab_unreclaimable", 17),
    (b"pgfault", 18),
    (b"pgmajfault", 19),
    (b"workingset_refault", 20),
    (b"workingset_activate", 21),
    (b"workingset_nodereclaim", 22),
    (b"pgrefill", 23),
    (b"pgscan", 24),
    (b"pgsteal", 25),
    (b"pgactivate", 26),
    (b"pgdeactivate", 27),
    (b"pglazyfree", 28),
    (b"pglazyfreed", 29),
    (b"thp_fault_alloc", 30),
    (b"thp_collapse_alloc", 31),
];

/// Where a process's cgroups are.
pub struct Cgroup {
    /// cgroup v2 only (the unified hierarchy mounted at /sys/fs/cgroup).
    pub v2: bool,
    /// The path within the hierarchies (v1: of the memory controller).
    pub path: Buf<1024>,
}

/// The unified hierarchy is what /sys/fs/cgroup itself is.
pub fn unified() -> bool {
    rustix::fs::statfs(c"/sys/fs/cgroup").is_ok_and(|s| s.f_type as u64 == 0x6367_7270)
}

impl Cgroup {
    pub fn of(pid: Pid) -> Option<Cgroup> {
        let mut p: Buf<32> = Buf::new();
        p.push(b"/proc/");
        p.push_u64(pid as u64);
        p.push(b"/cgroup");
        let mut b = [0u8; 2048];
        let content = sys::read_file(p.as_cstr()?, &mut b).ok()?;
        let v2 = unified();
        let mut path: Buf<1024> = Buf::new();
        for line in content.split(|&c| c == b'\n') {
            let mut parts = line.splitn(3, |&c| c == b':');
            let (Some(id), Some(ctrls), Some(cg)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let hit =
                if v2 { id == b"0" && ctrls.is_empty() } else { ctrls.split(|&c| c == b',').any(|c| c == b"memory") };
            if hit {
                path.push(cg);
                return Some(Cgroup { v2, path });
            }
        }
        None
    }

    /// `/sys/fs/cgroup[/CONTROLLER]/PATH/FILE`.
    #[inline(never)]
    fn file(&self, ctrl: &[u8], name: &[u8], out: &mut PathBuf) -> bool {
        out.clear();
        out.push(b"/sys/fs/cgroup");
        if !self.v2 {
            out.push(b"/");
            out.push(ctrl);
        }
        out.push(self.path.as_bytes()) && out.push(b"/") && out.push(name) && out.as_cstr().is_some()
    }

    #[inline(never)]
    fn read<'b>(&self, ctrl: &[u8], name: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut p = PathBuf::new();
        if !self.file(ctrl, name, &mut p) {
            return None;
        }
        sys::read_file(p.as_cstr()?, buf).ok()
    }

    /// One number from a file ("max" reads as `max`).
    #[inline(never)]
    fn number(&self, ctrl: &[u8], name: &[u8], max: u64) -> Option<u64> {
        let mut b = [0u8; 64];
        let v = crate::buf::trim(self.read(ctrl, name, &mut b)?);
        if v == b"max" {
            return Some(max);
        }
        parse_u64(v, u64::MAX)
    }

    /// The `PATH/procs`-style list of pids, for Pids.
    pub fn procs(&self, out: &mut [u32]) -> usize {
        let mut b = [0u8; 8192];
        let ctrl: &[u8] = b"memory";
        let Some(list) = self.read(ctrl, b"cgroup.procs", &mut b) else { return 0 };
        let mut n = 0;
        for w in list.split(|&c| c == b'\n') {
            if let Some(p) = parse_u64(w, u32::MAX as u64) {
                if n < out.len() {
                    out[n] = p as u32;
                    n += 1;
                }
            }
        }
        n
    }

    /// The Metrics message.
    pub fn metrics(&self, w: &mut Writer<'_>) {
        if self.v2 {
            self.v2_metrics(w)
        } else {
            self.v1_metrics(w)
        }
    }

    #[inline(never)]
    fn keyed(&self, ctrl: &[u8], name: &[u8], table: &[(&[u8], u32)], w: &mut Writer<'_>) {
        let mut b = [0u8; 4096];
        let Some(content) = self.read(ctrl, name, &mut b) else { return };
        for line in content.split(|&c| c == b'\n') {
            let mut kv = line.split(|&c| c == b' ');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
            if let Some(&(_, field)) = table.iter().find(|(key, _)| *key == k) {
                w.uint(field, parse_u64(v, u64::MAX).unwrap_or(0));
            }
        }
    }

    fn v1_metrics(&self, w: &mut Writer<'_>) {
        // pids(2)
        let p = w.open(2);
        w.uint(1, self.number(b"pids", b"pids.current", 0).unwrap_or(0));
        w.uint(2, self.number(b"pids", b"pids.max", 0).unwrap_or(0));
        w.close(p);
        // cpu(3): usage(1) always, as ctr reads it unchecked.
        let cpu = w.open(3);
        let usage = w.open(1);
        w.uint(1, self.number(b"cpuacct", b"cpuacct.usage", 0).unwrap_or(0));
        let mut b = [0u8; 512];
        if let Some(stat) = self.read(b"cpuacct", b"cpuacct.stat", &mut b) {
            // Ticks, as nanoseconds (USER_HZ is 100 on Linux).
            for line in stat.split(|&c| c == b'\n') {
                let mut kv = line.split(|&c| c == b' ');
                let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
                let ns = parse_u64(v, u64::MAX / 10_000_000).unwrap_or(0) * 10_000_000;
                match k {
                    b"system" => w.uint(2, ns),
                    b"user" => w.uint(3, ns),
                    _ => {}
                }
            }
        }
        let mut b = [0u8; 2048];
        if let Some(per) = self.read(b"cpuacct", b"cpuacct.usage_percpu", &mut b) {
            let packed = w.open(4);
            for v in per.split(|&c| c == b' ' || c == b'\n').filter_map(|v| parse_u64(v, u64::MAX)) {
                // Packed: the values without keys.
                w.uint_raw(v);
            }
            w.close(packed);
        }
        w.close(usage);
        let mut b = [0u8; 256];
        if let Some(stat) = self.read(b"cpu", b"cpu.stat", &mut b) {
            let t = w.open(2);
            for line in stat.split(|&c| c == b'\n') {
                let mut kv = line.split(|&c| c == b' ');
                let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
                let v = parse_u64(v, u64::MAX).unwrap_or(0);
                match k {
                    b"nr_periods" => w.uint(1, v),
                    b"nr_throttled" => w.uint(2, v),
                    b"throttled_time" => w.uint(3, v),
                    _ => {}
                }
            }
            w.close(t);
        }
        w.close(cpu);
        // memory(4): the stat counters, then usage(33) always, swap(34),
        // kernel(35), kernel_tcp(36).
        let m = w.open(4);
        self.keyed(b"memory", b"memory.stat", &V1_MEMORY, w);
        for (field, prefix) in
            [(33u32, &b"memory."[..]), (34, b"memory.memsw."), (35, b"memory.kmem."), (36, b"memory.kmem.tcp.")]
        {
            let e = w.open(field);
            let mut name: Buf<64> = Buf::new();
            for (f, suffix) in
                [(1u32, &b"limit_in_bytes"[..]), (2, b"usage_in_bytes"), (3, b"max_usage_in_bytes"), (4, b"failcnt")]
            {
                name.clear();
                name.push(prefix);
                name.push(suffix);
                w.uint(f, self.number(b"memory", name.as_bytes(), 0).unwrap_or(0));
            }
            w.close(e);
        }
        w.close(m);
    }

    fn v2_metrics(&self, w: &mut Writer<'_>) {
        let p = w.open(1);
        w.uint(1, self.number(b"", b"pids.current", 0).unwrap_or(0));
        w.uint(2, self.number(b"", b"pids.max", 0).unwrap_or(0));
        w.close(p);
        let cpu = w.open(2);
        let mut b = [0u8; 1024];
        if let Some(stat) = self.read(b"", b"cpu.stat", &mut b) {
            for line in stat.split(|&c| c == b'\n') {
                let mut kv = line.split(|&c| c == b' ');
                let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
                let v = parse_u64(v, u64::MAX).unwrap_or(0);
                let field = match k {
                    b"usage_usec" => 1,
                    b"user_usec" => 2,
                    b"system_usec" => 3,
                    b"nr_periods" => 4,
                    b"nr_throttled" => 5,
                    b"throttled_usec" => 6,
                    _ => continue,
                };
                w.uint(field, v);
            }
        }
        w.close(cpu);
        let m = w.open(4);
        self.keyed(b"", b"memory.stat", &V2_MEMORY, w);
        w.uint(32, self.number(b"", b"memory.current", 0).unwrap_or(0));
        w.uint(33, self.number(b"", b"memory.max", u64::MAX).unwrap_or(u64::MAX));
        w.uint(34, self.number(b"", b"memory.swap.current", 0).unwrap_or(0));
        w.uint(35, self.number(b"", b"memory.swap.max", u64::MAX).unwrap_or(0));
        w.close(m);
        let ev = w.open(8);
        let events: [(&[u8], u32); 5] = [(b"low", 1), (b"high", 2), (b"max", 3), (b"oom", 4), (b"oom_kill", 5)];
        self.keyed(b"", b"memory.events", &events, w);
        w.close(ev);
    }
}
