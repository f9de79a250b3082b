//! The kernel's process-events connector (netlink, root only): fork, exec
//! and exit of every process with nanosecond timestamps. The latency figure
//! uses it to find how long `runc create` itself ran inside each launch, so
//! that what the shim adds can be told apart from runc's own (noisy) time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
const EV_FORK: u32 = 0x1;
const EV_EXEC: u32 = 0x2;
const EV_EXIT: u32 = 0x8000_0000;

#[derive(Clone, Copy, Debug)]
pub struct Ev {
    pub what: u32,
    pub ts: u64,
    /// fork: parent pid, parent tgid, child pid, child tgid;
    /// exec/exit: pid, tgid, -, -.
    pub a: u32,
    pub b: u32,
    pub c: u32,
    pub d: u32,
}

pub struct ProcEvents {
    fd: OwnedFd,
    pub lost: bool,
}

fn control(fd: i32, op: u32) -> io::Result<()> {
    // nlmsghdr (16) + cn_msg (20) + op (4)
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    m.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&std::process::id().to_ne_bytes()); // pid
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // ack
    m.extend_from_slice(&4u16.to_ne_bytes()); // len
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&op.to_ne_bytes());
    let r = unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl ProcEvents {
    pub fn open() -> io::Result<ProcEvents> {
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = CN_IDX_PROC;
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let size: i32 = 32 << 20;
        unsafe {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&size as *const i32).cast(), 4);
        }
        control(fd.as_raw_fd(), PROC_CN_MCAST_LISTEN)?;
        Ok(ProcEvents { fd, lost: false })
    }

    /// Every event queued so far.
    pub fn drain(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        self.lost = true;
                        continue;
                    }
                    _ => break, // EAGAIN: empty
                }
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > n {
                    break;
                }
                let msg = &buf[off..off + len];
                // cn_msg at 16 (20 bytes), proc_event at 36.
                if msg.len() >= 36 + 32 {
                    let u32_at = |o: usize| u32::from_ne_bytes(msg[36 + o..36 + o + 4].try_into().unwrap());
                    let ts = u64::from_ne_bytes(msg[36 + 8..36 + 16].try_into().unwrap());
                    out.push(Ev { what: u32_at(0), ts, a: u32_at(16), b: u32_at(20), c: u32_at(24), d: u32_at(28) });
                }
                off += (len + 3) & !3;
            }
        }
        out
    }

    pub fn clear(&mut self) {
        self.drain();
        self.lost = false;
    }
}

impl Drop for ProcEvents {
    fn drop(&mut self) {
        let _ = control(self.fd.as_raw_fd(), PROC_CN_MCAST_IGNORE);
    }
}

/// When the runtime process exec'd and exited (CLOCK_MONOTONIC ns).
/// `launcher` is the process the bench spawned; with `direct` it is the
/// runtime itself (no shim), else the runtime is the first process below it
/// to exec.
pub fn runtime_span(evs: &[Ev], launcher: u32, direct: bool) -> Option<(u64, u64)> {
    let mut evs: Vec<Ev> = evs.to_vec();
    evs.sort_by_key(|e| e.ts);
    let mut tree = vec![launcher];
    let mut rt: Option<u32> = if direct { Some(launcher) } else { None };
    let mut exec_ts = None;
    for e in &evs {
        match e.what {
            EV_FORK if e.c == e.d && tree.contains(&e.b) => tree.push(e.d),
            EV_EXEC if e.a == e.b => {
                if direct && e.b == launcher && exec_ts.is_none() {
                    exec_ts = Some(e.ts);
                } else if !direct && rt.is_none() && e.b != launcher && tree.contains(&e.b) {
                    rt = Some(e.b);
                    exec_ts = Some(e.ts);
                }
            }
            EV_EXIT if e.a == e.b && Some(e.b) == rt => {
                return exec_ts.map(|x| (x, e.ts));
            }
            _ => {}
        }
    }
    None
}

/// CLOCK_MONOTONIC in ns, the clock of the events' timestamps.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
