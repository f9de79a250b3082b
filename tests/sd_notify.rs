//! `--sdnotify-socket PATH`: the shim binds BUNDLE/notify/notify.sock
//! (podman makes BUNDLE/notify and mounts it in the container) and relays
//! the container's sd_notify messages to PATH as conmon does. A datagram
//! listener stands in for systemd's socket; the container's side is the
//! bundle's socket itself, sent to from the host (what a container process
//! sends through /run/notify/notify.sock arrives there).
//!
//! conmon 2.1.6 relays READY=1 and WATCHDOG=1 only; the rules of conmon
//! 2.2 (which lines pass, MAINPID dropped) are held to its documented
//! behaviour. podman 4.3.1's `run --sdnotify=container` (its default when
//! podman itself runs under a notify unit) runs under both shims.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// The host's side: systemd's notify socket, stood in for.
struct Host {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Host {
    fn bind(path: PathBuf) -> Host {
        let sock = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Host { sock, path }
    }

    /// The next datagram (fails after 20 s without one).
    fn next(&self, what: &str) -> String {
        let mut b = vec![0u8; 4096];
        let n = self.sock.recv(&mut b).unwrap_or_else(|e| panic!("{what}: no datagram on the host socket: {e}"));
        String::from_utf8_lossy(&b[..n]).into_owned()
    }
}

/// Sends one datagram to the container's socket (named through its open
/// directory: podman's bundle paths are longer than sun_path allows).
fn send(container_sock: &Path, data: &[u8]) {
    let dir = fs::File::open(container_sock.parent().unwrap()).unwrap();
    let name = container_sock.file_name().unwrap().to_string_lossy();
    let via = format!("/proc/self/fd/{}/{name}", std::os::fd::AsRawFd::as_raw_fd(&dir));
    let s = UnixDatagram::unbound().unwrap();
    s.send_to(data, &via).unwrap_or_else(|e| panic!("send to {}: {e}", container_sock.display()));
}

// Proves the relay conmon 2.1.6 and 2.2 share, under conmon and shimlet
// alike: BUNDLE/notify/notify.sock is a socket with mode 0777; READY=1
// and WATCHDOG=1 reach the host socket as they were sent; a message with
// neither (FOO=1) reaches nothing (the next datagram on the host socket
// is the next READY=1).
#[test]
fn relay_like_conmon() {
    let fx = Fixture::new("n-relay");
    for shim in Shim::BOTH {
        let c = fx.bundle(&["sleep", "1000"]);
        fs::create_dir(c.bundle.join("notify")).unwrap();
        let host = Host::bind(c.dir.join("host-notify.sock"));
        let l = conmon_logged(&fx, &c, shim).arg(format!("--sdnotify-socket={}", host.path.display()));
        let r = fx.launch_ok(&c, l);
        let pid = r.sync_pid() as i32;
        let sock = c.bundle.join("notify/notify.sock");
        let m = fs::symlink_metadata(&sock).unwrap_or_else(|e| panic!("[{shim}] {}: {e}", sock.display()));
        assert!(m.file_type().is_socket(), "[{shim}] a socket");
        assert_eq!(m.mode() & 0o777, 0o777, "[{shim}] its mode");
        fx.start(&c);
        send(&sock, b"READY=1");
        assert_eq!(host.next("READY=1"), "READY=1", "[{shim}]");
        send(&sock, b"WATCHDOG=1");
        assert_eq!(host.next("WATCHDOG=1"), "WATCHDOG=1", "[{shim}]");
        send(&sock, b"FOO=1");
        send(&sock, b"READY=1");
        assert_eq!(host.next("after FOO=1"), "READY=1", "[{shim}] FOO=1 is not relayed");
        eprintln!("[{shim}] relayed READY=1 and WATCHDOG=1, dropped FOO=1");
        kill(pid, libc::SIGKILL);
        assert_eq!(c.wait_exit_file(), "137", "[{shim}]");
        c.wait_no_shim(None);
    }
}

// Proves conmon 2.2's filter: a datagram's lines (split at \n and \r)
// that are READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1, WATCHDOG=trigger
// or start with STATUS=, ERRNO=, BUSERROR=, MONOTONIC_USEC= go on joined
// by \n; MAINPID= and the rest are dropped; an empty datagram changes
// nothing (conmon would stop relaying for good).
#[test]
fn relay_filters_as_conmon_22() {
    let fx = Fixture::new("n-filter");
    let c = fx.bundle(&["sleep", "1000"]);
    fs::create_dir(c.bundle.join("notify")).unwrap();
    let host = Host::bind(c.dir.join("host-notify.sock"));
    let l = conmon_logged(&fx, &c, Shim::Shimlet).arg(format!("--sdnotify-socket={}", host.path.display()));
    let r = fx.launch_ok(&c, l);
    let pid = r.sync_pid() as i32;
    fx.start(&c);
    let sock = c.bundle.join("notify/notify.sock");
    for (sent, want) in [
        (&b"STATUS=hello world\nFOO=bar\nERRNO=5"[..], "STATUS=hello world\nERRNO=5"),
        (b"READY=1\r\nSTOPPING=1\n", "READY=1\nSTOPPING=1"),
        (b"MAINPID=4242\nREADY=1", "READY=1"),
        (
            b"RELOADING=1\nMONOTONIC_USEC=12\nBUSERROR=x\nWATCHDOG=trigger",
            "RELOADING=1\nMONOTONIC_USEC=12\nBUSERROR=x\nWATCHDOG=trigger",
        ),
    ] {
        send(&sock, sent);
        assert_eq!(host.next(&String::from_utf8_lossy(sent)), want, "{:?}", String::from_utf8_lossy(sent));
    }
    send(&sock, b"xREADY=1x\nMAINPID=1");
    send(&sock, b"");
    send(&sock, b"STATUS=still relaying");
    assert_eq!(host.next("after nothing passed"), "STATUS=still relaying");
    kill(pid, libc::SIGKILL);
    assert_eq!(c.wait_exit_file(), "137");
    c.wait_no_shim(None);
    assert!(!sock.exists(), "the shim removes its socket at the end");
}

// Proves a bundle without the notify directory (podman makes it) fails
// the create, reported on the sync pipe with what was wrong, and nothing
// is left (conmon says it on its inherited stderr, and its sync pipe just
// closes).
#[test]
fn no_notify_directory_fails_the_create() {
    let fx = Fixture::new("n-nodir");
    let c = fx.bundle(&["sleep", "1000"]);
    let host = fx.tmp.join("host.sock");
    let r = fx.launch(&c, conmon_logged(&fx, &c, Shim::Shimlet).arg(format!("--sdnotify-socket={}", host.display())));
    assert_eq!(r.sync_pid(), -1, "{}", r.sync_text());
    let m = r.sync_message().unwrap_or_default();
    assert!(m.contains("notify/notify.sock") && m.contains("No such file or directory"), "{m:?}");
    c.wait_no_shim(None);
    assert!(fx.state(&c).is_none(), "no container");
}

// Proves `podman run --sdnotify=container` works under both shims: with
// NOTIFY_SOCKET (the host socket) in podman's environment the container
// starts; podman tells the host socket MAINPID=<the shim's pid>; the
// container has NOTIFY_SOCKET=/run/notify/notify.sock and that socket;
// and READY=1 sent to it reaches the host socket.
#[test]
fn podman_sdnotify_container() {
    let p = podman::Podman::new("sdnotify");
    for shim in Shim::BOTH {
        let host = Host::bind(p.tmp.join(format!("systemd-notify-{shim}.sock")));
        let name = p.name(shim, "notify");
        let args =
            ["run", "-d", "--network", "none", "--sdnotify=container", "--name", &name, podman::IMAGE, "sleep", "1000"];
        let mut cmd = p.command(shim, &args);
        cmd.env("NOTIFY_SOCKET", &host.path);
        let o = podman::run_bounded(
            cmd,
            format!("[{shim}] podman run --sdnotify=container"),
            p.tmp.path(),
            None,
            podman::CMD_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.code(), 0, "[{shim}] {}", o.describe());
        let shim_pid: i32 = p.inspect(shim, &name, "{{.State.ConmonPid}}").parse().unwrap();
        assert_eq!(comm(shim_pid), shim.comm(), "[{shim}] the container's shim");
        assert_eq!(host.next("podman's MAINPID"), format!("MAINPID={shim_pid}"), "[{shim}] podman names the shim");
        let ctr_pid: i32 = p.inspect(shim, &name, "{{.State.Pid}}").parse().unwrap();
        let environ = fs::read(format!("/proc/{ctr_pid}/environ")).unwrap();
        assert!(
            environ.split(|&b| b == 0).any(|v| v == b"NOTIFY_SOCKET=/run/notify/notify.sock"),
            "[{shim}] the container's environment: {:?}",
            String::from_utf8_lossy(&environ)
        );
        let o = p.ok(shim, &["exec", &name, "sh", "-c", "test -S /run/notify/notify.sock && echo socket"]);
        assert_eq!(o.text(), "socket", "[{shim}] the socket in the container");
        let bundle = PathBuf::from(p.inspect(shim, &name, "{{.StaticDir}}"));
        send(&bundle.join("notify/notify.sock"), b"READY=1");
        assert_eq!(host.next("READY=1"), "READY=1", "[{shim}] relayed");
        eprintln!("[{shim}] podman --sdnotify=container: MAINPID={shim_pid}, READY=1 relayed");
        if let Err(e) = p.cleanup() {
            panic!("[{shim}] {e}");
        }
    }
}
