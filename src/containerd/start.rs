//! The shim's two short-lived commands, as containerd runs them in the
//! bundle: `start` finds the daemon of the container's group (a pod's
//! sandbox id, or the container's own id) or starts it, and prints its
//! socket address; `delete` cleans up after a container whose shim is
//! gone and prints a `DeleteResponse`.

use core::ffi::{c_int, CStr};

use super::proto::Writer;
use super::sha256;
use super::Args;
use crate::buf::{Buf, PathBuf};
use crate::create::{self, Argv, Spawn};
use crate::diag::say;
use crate::sock;
use crate::sys::{self, AsFd, Errno, OFlags, OwnedFd};

/// Where containerd's shims put their sockets (a compile-time constant in
/// containerd, whatever its state directory).
pub const SOCKET_DIR: &CStr = c"/run/containerd/s";

/// The file in the bundle where the shim keeps what `delete` needs: the
/// runtime binary, then its root, one per line.
pub const RUNTIME_FILE: &CStr = c"shimlet-runtime";

/// Go's `filepath.Clean` of `parts` joined by `/`, into `out`.
pub fn clean_join(parts: &[&[u8]], out: &mut PathBuf) -> bool {
    let mut raw = PathBuf::new();
    let mut first = true;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        if !first && !raw.push(b"/") {
            return false;
        }
        if !raw.push(p) {
            return false;
        }
        first = false;
    }
    let s = raw.as_bytes();
    out.clear();
    if s.is_empty() {
        return out.push(b".");
    }
    let rooted = s[0] == b'/';
    let mut buf = [0u8; crate::buf::PATH_MAX];
    let mut w = 0;
    let mut r = 0;
    // Where `..` may not back up past.
    let mut dotdot = 0;
    if rooted {
        buf[0] = b'/';
        w = 1;
        r = 1;
        dotdot = 1;
    }
    let n = s.len();
    while r < n {
        let dot = s[r] == b'.' && (r + 1 == n || s[r + 1] == b'/');
        if s[r] == b'/' || dot {
            // An empty element, or `.`.
            r += 1;
        } else if s[r] == b'.' && s.get(r + 1) == Some(&b'.') && (r + 2 == n || s[r + 2] == b'/') {
            r += 2;
            if w > dotdot {
                w -= 1;
                while w > dotdot && buf[w] != b'/' {
                    w -= 1;
                }
            } else if !rooted {
                if w > 0 {
                    buf[w] = b'/';
                    w += 1;
                }
                buf[w] = b'.';
                buf[w + 1] = b'.';
                w += 2;
                dotdot = w;
            }
        } else {
            if (rooted && w != 1) || (!rooted && w != 0) {
                buf[w] = b'/';
                w += 1;
            }
            while r < n && s[r] != b'/' {
                buf[w] = s[r];
                w += 1;
                r += 1;
            }
        }
    }
    if w == 0 {
        return out.push(b".");
    }
    out.push(&buf[..w])
}

/// `unix:///run/containerd/s/HEX`, HEX being sha256(ADDRESS/NS/GROUP): the
/// address containerd's own shims use for the same group.
pub fn socket_address(address: &[u8], ns: &[u8], group: &[u8], out: &mut Buf<128>) -> bool {
    let mut joined = PathBuf::new();
    if !clean_join(&[address, ns, group], &mut joined) {
        return false;
    }
    let hex = sha256::hex(&sha256::digest(&[joined.as_bytes()]));
    out.clear();
    out.push(b"unix://") && out.push(SOCKET_DIR.to_bytes()) && out.push(b"/") && out.push(&hex)
}

/// The group of the container in `config` (its OCI spec): its pod's
/// sandbox id, or an explicit group, else its own id.
pub fn group<'c>(config: &'c [u8], id: &'c [u8], out: &'c mut Buf<256>) -> &'c [u8] {
    for key in [&b"io.containerd.runc.v2.group"[..], b"io.kubernetes.cri.sandbox-id"] {
        if let Some(v) = crate::json::lookup(config, &[b"annotations", key]) {
            out.clear();
            if crate::json::unescape(v, out) && !out.is_empty() {
                return out.as_bytes();
            }
        }
    }
    id
}

/// `start`: print the address of the group's daemon, starting it first if
/// it is not running.
#[inline(never)]
pub fn start(a: &Args<'static>) -> c_int {
    let mut address: Buf<128> = Buf::new();
    {
        // The spec is read on the kernel's stack, which the daemon drops.
        let mut config = [0u8; 64 * 1024];
        let config = sys::read_file(c"config.json", &mut config).unwrap_or(&[]);
        let mut g: Buf<256> = Buf::new();
        let group = group(config, a.id.to_bytes(), &mut g);
        if !socket_address(a.address.to_bytes(), a.namespace.to_bytes(), group, &mut address) {
            say(&[b"socket address too long"]);
            return 1;
        }
    }
    // containerd sends the task options on stdin (the daemon gets them
    // again with each Create): `shim_cgroup` is for the shim itself.
    let mut opts = [0u8; 8192];
    let n = read_stdin(&mut opts);
    let cgroup = shim_cgroup(&opts[..n]);
    let name_at = b"unix://".len() + SOCKET_DIR.to_bytes().len() + 1;
    let mut path: Buf<108> = Buf::new();
    path.push(&address.as_bytes()[b"unix://".len()..]);
    let Some(path_c) = path.as_cstr() else { return 1 };
    // A live daemon of this group already listens there: use it.
    let existing = sock::connect(path_c, sock::STREAM).is_ok();
    let listen = if existing {
        None
    } else {
        match listen_at(&address.as_bytes()[name_at..]) {
            Ok(l) => Some(l),
            Err(e) => {
                say(&[b"cannot listen on ", path.as_bytes(), b": ", sys::text(e)]);
                return 1;
            }
        }
    };
    let mut tmp = PathBuf::new();
    if let Err(e) = sys::write_file_atomic(c"address", &mut tmp, address.as_bytes(), 0o644) {
        say(&[b"cannot write the address file: ", sys::text(e)]);
        return 1;
    }
    if let Some(l) = listen {
        // The daemon is charged to the shim cgroup from its first page.
        if let Some(cg) = cgroup {
            join_cgroup(cg);
        }
        if let Err(e) = super::server::spawn_daemon(a, l, &path) {
            say(&[b"cannot start the shim daemon: ", sys::text(e)]);
            return 1;
        }
    }
    // The address, and nothing else: containerd reads stdout and stderr
    // together as the address.
    let _ = sys::write_all(sys::borrow(1), address.as_bytes());
    0
}

/// Read stdin to its end (what does not fit in `buf` is read past).
fn read_stdin(buf: &mut [u8]) -> usize {
    let mut n = 0;
    let mut skip = [0u8; 512];
    for _ in 0..4096 {
        let r =
            if n < buf.len() { sys::read(sys::borrow(0), &mut buf[n..]) } else { sys::read(sys::borrow(0), &mut skip) };
        match r {
            Ok(k) if k > 0 => {
                if n < buf.len() {
                    n += k;
                }
            }
            _ => break,
        }
    }
    n
}

/// `containerd.runc.v1.Options.shim_cgroup` (field 3) of the options Any.
fn shim_cgroup(any: &[u8]) -> Option<&[u8]> {
    let mut value: &[u8] = b"";
    super::proto::each(any, |f, v| {
        if f == 2 {
            value = v.bytes();
        }
    })
    .ok()?;
    let mut cg: &[u8] = b"";
    super::proto::each(value, |f, v| {
        if f == 3 {
            cg = v.bytes();
        }
    })
    .ok()?;
    (!cg.is_empty()).then_some(cg)
}

/// Move this process into the cgroup `path` (a path within the
/// hierarchies): every v1 hierarchy that has it, or the unified one.
fn join_cgroup(path: &[u8]) {
    let roots: &[&[u8]] = if super::stats::unified() {
        &[b""]
    } else {
        &[
            b"/memory",
            b"/cpu,cpuacct",
            b"/pids",
            b"/blkio",
            b"/devices",
            b"/freezer",
            b"/cpuset",
            b"/hugetlb",
            b"/net_cls,net_prio",
            b"/perf_event",
            b"/systemd",
            b"/unified",
        ]
    };
    for root in roots {
        let mut p = PathBuf::new();
        let ok = p.push(b"/sys/fs/cgroup")
            && p.push(root)
            && p.push(b"/")
            && p.push(path.strip_prefix(b"/").unwrap_or(path))
            && p.push(b"/cgroup.procs");
        if let (true, Some(c)) = (ok, p.as_cstr()) {
            if let Ok(fd) = sys::open(c, OFlags::WRONLY, 0) {
                let _ = sys::write(&fd, b"0");
            }
        }
    }
}

/// Listen at SOCKET_DIR/NAME (made 0700 if missing), replacing a stale
/// socket.
fn listen_at(name: &[u8]) -> sys::Result<OwnedFd> {
    let _ = rustix::fs::mkdir(c"/run/containerd", sys::Mode::from_bits_truncate(0o711));
    let _ = rustix::fs::mkdir(SOCKET_DIR, sys::Mode::from_bits_truncate(0o700));
    let dir = sys::open_dir(SOCKET_DIR)?;
    let mut n: Buf<80> = Buf::new();
    n.push(name);
    let n = n.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    sock::listen_at(dir.as_fd(), n, sock::STREAM, 128, 0o600)
}

/// The runtime and root `delete` uses: from the bundle's file, else runc's
/// defaults under containerd's.
fn runtime_of(ns: &CStr, file: &mut Buf<1024>) -> (Buf<256>, Buf<512>) {
    let mut bin: Buf<256> = Buf::new();
    let mut root: Buf<512> = Buf::new();
    let content = sys::read_file(RUNTIME_FILE, file.spare()).map(|c| c.len()).unwrap_or(0);
    file.commit(content);
    let mut lines = file.as_bytes().split(|&c| c == b'\n');
    if let (Some(b), Some(r)) = (lines.next(), lines.next()) {
        if !b.is_empty() && !r.is_empty() {
            bin.push(b);
            root.push(r);
            return (bin, root);
        }
    }
    bin.push(b"runc");
    root.push(b"/run/containerd/runc/");
    root.push(ns.to_bytes());
    (bin, root)
}

/// `delete`: the shim is gone (or done); make sure the container is too,
/// then say how it ended (as runc-v2 does: killed).
#[inline(never)]
pub fn delete(a: &Args<'static>) -> c_int {
    if let Some(b) = a.bundle {
        if let Err(e) = rustix::process::chdir(b) {
            say(&[b"cannot enter the bundle ", b.to_bytes(), b": ", sys::text(e)]);
        }
    }
    let mut file: Buf<1024> = Buf::new();
    let (mut bin, mut root) = runtime_of(a.namespace, &mut file);
    if let (Some(bin_c), Some(root_c)) = (bin.as_cstr(), root.as_cstr()) {
        let mut argv = Argv::new();
        for w in [bin_c, c"--root", root_c, c"delete", c"--force", a.id] {
            argv.push(w);
        }
        if let Ok(null) = sys::open(c"/dev/null", OFlags::RDWR, 0) {
            let stdio = [null.as_fd(), null.as_fd(), null.as_fd()];
            if let Ok(pid) = create::spawn(&Spawn::plain(bin_c, &argv, stdio)) {
                sys::wait_for(pid);
            }
        }
    }
    super::mounts::unmount_all(c"rootfs");
    let pid = create::read_pidfile(c"init.pid").unwrap_or(0) as u64;
    let (secs, nanos) = sys::now();
    let mut out = [0u8; 64];
    let mut w = Writer::new(&mut out);
    w.uint(1, pid);
    w.uint(2, 137);
    w.timestamp(3, secs, nanos as i32);
    let _ = sys::write_all(sys::borrow(1), w.as_bytes());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(parts: &[&str]) -> String {
        let mut out = PathBuf::new();
        let p: Vec<&[u8]> = parts.iter().map(|s| s.as_bytes()).collect();
        assert!(clean_join(&p, &mut out));
        String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn joins_like_go() {
        assert_eq!(
            clean(&["/run/containerd/containerd.sock", "default", "c1"]),
            "/run/containerd/containerd.sock/default/c1"
        );
        assert_eq!(clean(&["/a//b/", "ns", "g"]), "/a/b/ns/g");
        assert_eq!(clean(&["/a/./b/../c", "ns", "g"]), "/a/c/ns/g");
        assert_eq!(clean(&["/../a", "..", "g"]), "/g");
        assert_eq!(clean(&["a", "../..", "g"]), "../g");
        assert_eq!(clean(&["", "", ""]), ".");
        assert_eq!(clean(&["/"]), "/");
    }

    #[test]
    fn the_address_containerd_expects() {
        let mut a: Buf<128> = Buf::new();
        assert!(socket_address(b"/run/containerd/containerd.sock", b"default", b"cdexp1", &mut a));
        let s = core::str::from_utf8(a.as_bytes()).unwrap();
        assert!(s.starts_with("unix:///run/containerd/s/db339e74"), "{s}");
        assert_eq!(s.len(), 7 + 17 + 1 + 64);
    }

    #[test]
    fn groups_by_sandbox() {
        let mut g: Buf<256> = Buf::new();
        let spec = br#"{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod1"}}"#;
        assert_eq!(group(spec, b"c1", &mut g), b"pod1");
        let spec = br#"{"annotations":{"io.containerd.runc.v2.group":"grp","io.kubernetes.cri.sandbox-id":"pod1"}}"#;
        assert_eq!(group(spec, b"c1", &mut g), b"grp");
        assert_eq!(group(b"{}", b"c1", &mut g), b"c1");
        assert_eq!(group(b"not json", b"c1", &mut g), b"c1");
    }
}
