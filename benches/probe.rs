//! What each kind of kernel object a shim holds costs its memory cgroup,
//! measured the only way the charge can be: a probe process is put into a
//! fresh cgroup beside the shims' (the bench itself, re-executed as
//! `shimlet-bench --probe KIND K`), creates K objects of one kind and keeps
//! them; the cgroup's charge before and after, divided by K. The kernel
//! counts its own memory in pages per cgroup (slab objects are charged a
//! page at a time, the rest kept as a per-cgroup remainder), so K = 128
//! objects make the rounding negligible.
//!
//! And the floor: the smallest static process that only sleeps (an ELF of
//! a few instructions the bench writes, `pause()` in a loop), forked
//! inside its own cgroup as a shim's daemon is, is what any process costs.

use std::ffi::CString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cgroup::{Cgroups, MemUsage};
use crate::sys;

pub const K: usize = 128;

/// The kinds a probe can make, with what the report calls them.
pub const KINDS: &[(&str, &str)] = &[
    ("pipe", "pipe, both ends (kernel default size, 16 page slots)"),
    ("pipe1", "pipe, both ends, one page (F_SETPIPE_SZ 4096)"),
    ("pipe1m", "pipe, both ends, grown to 1 MiB (F_SETPIPE_SZ)"),
    ("epoll", "epoll instance"),
    ("epollwatch", "eventfd watched by an epoll (the fd and its epoll entry)"),
    ("signalfd", "signalfd"),
    ("eventfd", "eventfd"),
    ("timerfd", "timerfd"),
    ("oomevent", "eventfd registered for memcg v1 OOM events"),
    ("unix", "unix SOCK_SEQPACKET socket, bound and listening"),
    ("fifo", "FIFO made and opened"),
    ("newfile", "regular file created and opened (ext4 inode, dentry)"),
    ("file", "regular file opened (one that exists)"),
    ("dir", "directory opened O_PATH"),
    ("cgfile", "cgroup file opened and read (keeps a page for the next read)"),
    ("devnull", "/dev/null opened"),
];

/// Bytes of charge per object of each kind (anon + file + kernel).
#[derive(Clone, Debug, Default)]
pub struct Costs {
    pub per_kind: Vec<(String, f64)>,
    /// The floor process: its charge, its page tables (VmPTE + the PGD
    /// page) and its RssAnon, bytes.
    pub floor: Option<(MemUsage, f64, f64)>,
}

impl Costs {
    pub fn get(&self, kind: &str) -> Option<f64> {
        self.per_kind.iter().find(|(k, _)| k == kind).map(|(_, v)| *v)
    }
}

/// In the probe process: make K objects of `kind` when told, keep them
/// until told to go.
pub fn child_main(kind: &str, k: usize, dir: &Path) -> ! {
    let mut out = std::io::stdout();
    let stdin = std::io::stdin();
    let mut line = String::new();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let _ = stdin.lock().read_line(&mut line);
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let cg = own_memory_cgroup().unwrap_or_default();
    for i in 0..k {
        let path = |p: &str| CString::new(dir.join(format!("{p}{i}")).into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY (all): plain system calls on descriptors and paths made
        // here; every object is kept (leaked) until the process exits.
        unsafe {
            match kind {
                "pipe" | "pipe1" | "pipe1m" => {
                    let mut fds = [0; 2];
                    libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC);
                    match kind {
                        "pipe1" => libc::fcntl(fds[0], libc::F_SETPIPE_SZ, 4096),
                        "pipe1m" => libc::fcntl(fds[0], libc::F_SETPIPE_SZ, 1 << 20),
                        _ => 0,
                    };
                }
                "epoll" => {
                    libc::epoll_create1(libc::EPOLL_CLOEXEC);
                }
                "epollwatch" => {
                    let e = libc::eventfd(0, libc::EFD_CLOEXEC);
                    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
                    libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, e, &mut ev);
                }
                "signalfd" => {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGCHLD);
                    libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
                }
                "eventfd" => {
                    libc::eventfd(0, libc::EFD_CLOEXEC);
                }
                "timerfd" => {
                    libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC);
                }
                "oomevent" => {
                    let e = libc::eventfd(0, libc::EFD_CLOEXEC);
                    let ctl = CString::new(format!("{cg}/memory.oom_control")).unwrap();
                    let c = libc::open(ctl.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    let ev = CString::new(format!("{cg}/cgroup.event_control")).unwrap();
                    let w = libc::open(ev.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    let s = format!("{e} {c}");
                    libc::write(w, s.as_ptr().cast(), s.len());
                    libc::close(w);
                    libc::close(c);
                }
                "unix" => {
                    let s = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
                    let mut a: libc::sockaddr_un = std::mem::zeroed();
                    a.sun_family = libc::AF_UNIX as u16;
                    let p = path("s");
                    for (d, b) in a.sun_path.iter_mut().zip(p.as_bytes()) {
                        *d = *b as libc::c_char;
                    }
                    libc::bind(
                        s,
                        (&a as *const libc::sockaddr_un).cast(),
                        std::mem::size_of::<libc::sockaddr_un>() as u32,
                    );
                    libc::listen(s, 128);
                }
                "fifo" => {
                    let p = path("f");
                    libc::mkfifo(p.as_ptr(), 0o600);
                    libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                }
                "newfile" => {
                    let p = path("n");
                    libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC, 0o600);
                }
                "file" => {
                    let p = CString::new(dir.join("existing").into_os_string().into_encoded_bytes()).unwrap();
                    libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                }
                "dir" => {
                    let p = CString::new(cg.clone()).unwrap();
                    libc::open(p.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
                }
                "cgfile" => {
                    let p = CString::new(format!("{cg}/memory.stat")).unwrap();
                    let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    let mut b = [0u8; 256];
                    libc::pread(fd, b.as_mut_ptr().cast(), b.len(), 0);
                }
                "devnull" => {
                    libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                }
                _ => {}
            }
        }
    }
    let _ = writeln!(out, "made");
    let _ = out.flush();
    line.clear();
    let _ = stdin.lock().read_line(&mut line);
    std::process::exit(0)
}

/// This process's memory cgroup directory (v1 memory hierarchy, else v2).
fn own_memory_cgroup() -> Option<String> {
    let t = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let v1 = t.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, c, p) = (it.next()?, it.next()?, it.next()?);
        c.split(',').any(|x| x == "memory").then(|| p.to_string())
    });
    let (path, fstype, opt) = match v1 {
        Some(p) => (p, "cgroup", Some("memory")),
        None => (t.lines().find_map(|l| l.strip_prefix("0::").map(String::from))?, "cgroup2", None),
    };
    for m in mounts.lines() {
        let (pre, post) = m.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if post.first() != Some(&fstype) || pre.len() < 5 {
            continue;
        }
        if let Some(o) = opt {
            if !post.get(2).is_some_and(|x| x.split(',').any(|y| y == o)) {
                continue;
            }
        }
        let root = pre[3].trim_end_matches('/');
        let rel = path.strip_prefix(root).unwrap_or(&path);
        return Some(format!("{}{}", pre[4], rel));
    }
    None
}

/// The floor process, x86_64: an ELF of one PT_LOAD segment whose code is
/// `pause(); jmp back`, so nothing but the kernel's own pages and the
/// stack it sets up. None elsewhere (the floor is then not measured).
fn floor_elf() -> Option<Vec<u8>> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let base: u64 = 0x400000;
    let code: [u8; 9] = [0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]; // mov eax,34; syscall; jmp -9
    let entry = base + 64 + 56;
    let mut e = Vec::new();
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&entry.to_le_bytes());
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    let size = (64 + 56 + code.len()) as u64;
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R X
    for v in [0u64, base, base, size, size, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes()); // offset, vaddr, paddr, filesz, memsz, align
    }
    e.extend_from_slice(&code);
    Some(e)
}

/// The top page-table page, which VmPTE leaves out: one page, two with
/// page-table isolation (Meltdown).
pub fn pgd_bytes() -> f64 {
    let pti = fs::read_to_string("/sys/devices/system/cpu/vulnerabilities/meltdown").unwrap_or_default();
    if pti.contains("PTI") {
        8192.0
    } else {
        4096.0
    }
}

pub fn kb(pid: i32, key: &str) -> Option<f64> {
    let t = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    t.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Measure every kind (and the floor) in cgroups under `group`.
pub fn measure(cg: &Cgroups, group: &str, tmp: &Path, busybox: Option<&Path>) -> Result<Costs, String> {
    let all: Vec<&str> = KINDS.iter().map(|k| k.0).collect();
    let mut costs = measure_kinds(cg, group, tmp, &all)?;
    costs.floor = floor(cg, group, &tmp.join("probe"), busybox).ok();
    Ok(costs)
}

/// Measure the given kinds only.
pub fn measure_kinds(cg: &Cgroups, group: &str, tmp: &Path, kinds: &[&str]) -> Result<Costs, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = tmp.join("probe");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut costs = Costs::default();
    for kind in kinds {
        sys::check_stop()?;
        let leaf = cg.leaf(group, &format!("probe-{kind}")).map_err(|e| e.to_string())?;
        let kdir = dir.join(kind);
        fs::create_dir_all(&kdir).map_err(|e| e.to_string())?;
        fs::write(kdir.join("existing"), b"x").map_err(|e| e.to_string())?;
        let procs = leaf.procs.clone();
        let mut cmd = Command::new(&exe);
        cmd.arg("--probe").arg(kind).arg(K.to_string()).arg(&kdir);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut one);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
                enter(&procs)
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("probe: {e}"))?;
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut l = String::new();
        let step = |out: &mut BufReader<_>, l: &mut String, want: &str| -> Result<(), String> {
            l.clear();
            out.read_line(l).map_err(|e| e.to_string())?;
            if l.trim() == want {
                Ok(())
            } else {
                Err(format!("probe {kind}: {:?} instead of {want}", l.trim()))
            }
        };
        let r = (|| -> Result<f64, String> {
            step(&mut out, &mut l, "ready")?;
            sys::sleep(settle(&leaf));
            let before = leaf.mem_usage();
            writeln!(stdin, "go").map_err(|e| e.to_string())?;
            step(&mut out, &mut l, "made")?;
            sys::sleep(settle(&leaf));
            let after = leaf.mem_usage();
            Ok((after.charge() as f64 - before.charge() as f64) / K as f64)
        })();
        let _ = writeln!(stdin, "end");
        drop(stdin);
        let _ = child.wait();
        sys::sleep(Duration::from_millis(50));
        let _ = fs::remove_dir_all(&kdir);
        costs.per_kind.push((kind.to_string(), r?));
    }
    Ok(costs)
}

/// How long to wait before reading a probe's cgroup. v2's memory.stat is
/// flushed from per-CPU counters only past a batch of updates or by the
/// kernel's periodic flush (every 2 s): a probe's few objects would read 0.
fn settle(leaf: &crate::cgroup::Leaf) -> Duration {
    match leaf.mode {
        crate::cgroup::Mode::V1 => Duration::from_millis(150),
        crate::cgroup::Mode::V2 => Duration::from_millis(2200),
    }
}

/// In a child between fork and exec: move it into the cgroups whose
/// `cgroup.procs` files are `procs` (only async-signal-safe calls).
fn enter(procs: &[std::ffi::CString]) -> std::io::Result<()> {
    for p in procs {
        // SAFETY: a NUL-terminated path, a two-byte buffer, and a
        // descriptor this function owns; open/write/close are
        // async-signal-safe.
        unsafe {
            let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::write(fd, b"0\n".as_ptr().cast(), 2);
            libc::close(fd);
        }
    }
    Ok(())
}

/// The floor process in its own cgroup: busybox sh, put there, forks it
/// and exits; what remains is the process.
fn floor(cg: &Cgroups, group: &str, dir: &Path, busybox: Option<&Path>) -> Result<(MemUsage, f64, f64), String> {
    let elf = floor_elf().ok_or("no floor ELF for this architecture")?;
    let sh = busybox.ok_or("no busybox to fork the floor process")?;
    let bin: PathBuf = dir.join("pause");
    fs::write(&bin, elf).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    let leaf = cg.leaf(group, "floor").map_err(|e| e.to_string())?;
    let procs = leaf.procs.clone();
    let mut cmd = Command::new(sh);
    cmd.arg0("sh").args(["-c", &format!("{} </dev/null >/dev/null 2>&1 & exit 0", bin.display())]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || enter(&procs));
    }
    let status = cmd.status().map_err(|e| format!("floor: {e}"))?;
    if !status.success() {
        return Err(format!("floor: sh {status}"));
    }
    sys::sleep(settle(&leaf).max(Duration::from_millis(500)));
    let pids = leaf.pids();
    let pid = *pids.first().ok_or("the floor process is not in its cgroup")?;
    let p = sys::Proc::open(pid).map_err(|e| e.to_string())?;
    let usage = leaf.mem_usage();
    let pte = kb(pid, "VmPTE").unwrap_or(0.0) * 1024.0 + pgd_bytes();
    let anon = kb(pid, "RssAnon").unwrap_or(0.0) * 1024.0;
    p.kill_wait();
    sys::reap_all();
    Ok((usage, pte, anon))
}
