//! Hostile peers on a containerd shim's own ttrpc socket (the one named in
//! the bundle's `address` file), for containerd-shim-runc-v2 and for
//! shimlet, in the same test: malformed frames, a message over the size
//! bound, unknown services and methods, a client that sends requests but
//! never reads the replies, a peer with another uid. In every case the shim
//! must keep serving everyone else: a new connection's Connect and State,
//! and containerd itself (`ctr task exec`, pause and resume).
//!
//! The worlds are those of containerd.rs (tests/common/containerd.rs); the
//! raw client is tests/common/ttrpc.rs.

mod common;

use std::ffi::CString;
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::containerd::*;
use common::ttrpc::*;
use common::{try_wait_child, WAIT};

/// A running container to attack, and its shim's socket.
fn target(w: &Containerd, rt: Runtime, what: &str) -> (String, i32) {
    let id = w.new_id(rt, what);
    w.run_detached(rt, &id, &[], &["sleep", "1000000"]);
    let (shim, _) = w.shim_pids(&id);
    (id, shim)
}

/// The shim still serves: a fresh connection gets Connect (same shim pid)
/// and State (RUNNING); containerd still runs an exec and pauses and
/// resumes the task.
fn still_serves(w: &Containerd, id: &str, shim: i32, after: &str) {
    let mut c = w.shim_client(id);
    let (s, t) = c
        .connect_task(id)
        .unwrap_or_else(|e| panic!("{}after {after}: Connect on a new connection: {e}\n{}", w.tag(), w.log_tail()));
    assert_eq!(s as i32, shim, "{}after {after}: another shim answers", w.tag());
    assert!(t > 0, "{}after {after}: Connect's task_pid is 0", w.tag());
    let st = c.state(id).unwrap_or_else(|e| panic!("{}after {after}: State: {e}", w.tag()));
    assert_eq!(st.1, 2, "{}after {after}: State's status is {} (want 2, RUNNING)", w.tag(), st.1);
    let o = w.ctr(&["task", "exec", "--exec-id", &format!("x{}", common::next_n()), id, "echo", "served"]);
    if o.code() != 0 || o.stdout != b"served\n" {
        panic!("{}after {after}: ctr task exec:\n{}\n{}", w.tag(), o.describe(), w.log_tail());
    }
    w.ctr_ok(&["task", "pause", id]);
    w.wait_task_status(id, "PAUSED");
    w.ctr_ok(&["task", "resume", id]);
    w.wait_task_status(id, "RUNNING");
}

/// A request on the same connection must still be answered (Connect).
fn same_connection_usable(w: &Containerd, c: &mut Ttrpc, id: &str, after: &str) {
    match c.connect_task(id) {
        Ok((s, _)) => assert!(s > 1, "{}after {after}: Connect on the same connection gave shim_pid {s}", w.tag()),
        Err(e) => panic!("{}after {after}, the same connection is no longer usable: {e}\n{}", w.tag(), w.log_tail()),
    }
}

/// Sends `bytes` (a whole frame) and requires an error reply on `stream`;
/// returns it.
fn error_reply(w: &Containerd, c: &mut Ttrpc, bytes: &[u8], stream: u32, what: &str) -> Status {
    c.send_raw(bytes).unwrap_or_else(|e| panic!("{}sending {what}: {e}", w.tag()));
    match c.wait_response(stream) {
        Ok(Err(st)) => st,
        Ok(Ok(p)) => panic!("{}{what} was answered as a success ({p:02x?})", w.tag()),
        Err(e) => panic!("{}{what}: no error reply: {e}\n{}", w.tag(), w.log_tail()),
    }
}

// Malformed frames: a request that is not a protobuf `Request`, a Connect
// whose payload is not a `ConnectRequest` (both: an error reply, and the
// connection still answers a Connect); a frame of an unknown type and a
// request on an even stream id (an error reply, silence or a close: the
// shim decides; the connection stays usable or is closed, never stuck); a
// frame cut short by a close, and 10 bytes of 0xff (a header claiming 4
// GiB) followed by a close. After each, the shim serves a new connection
// and containerd.
#[test]
fn malformed_frames() {
    each_runtime("malformed", |w, rt| {
        let (id, shim) = target(w, rt, "mf");

        // Not a Request: field 1 claims 2^32-1 bytes.
        let mut c = w.shim_client(&id);
        let s = c.next_stream();
        let st = error_reply(
            w,
            &mut c,
            &frame(s, TYPE_REQUEST, 0, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            s,
            "an undecodable Request",
        );
        eprintln!("{}undecodable Request: {st}", w.tag());
        same_connection_usable(w, &mut c, &id, "an undecodable Request");

        // A Request whose payload is not a ConnectRequest (a truncated string).
        let s = c.next_stream();
        let req = request(TASK, "Connect", &[0x0a, 0x05, b'a'], 0, &[]);
        let st = error_reply(w, &mut c, &frame(s, TYPE_REQUEST, 0, &req), s, "a Connect with an undecodable payload");
        eprintln!("{}undecodable payload: {st}", w.tag());
        same_connection_usable(w, &mut c, &id, "an undecodable payload");
        still_serves(w, &id, shim, "undecodable requests");

        // An unknown frame type, then an even stream id: whatever the shim
        // does with them, a Connect on that connection is answered or the
        // connection is closed.
        for (what, f) in [
            ("a frame of type 7", frame(c.next_stream(), 7, 0, b"\x0a\x03abc")),
            (
                "a request on an even stream id",
                frame(2, TYPE_REQUEST, 0, &request(TASK, "Connect", &id_message(&id), 0, &[])),
            ),
        ] {
            let mut c = w.shim_client(&id);
            c.send_raw(&f).unwrap_or_else(|e| panic!("{}sending {what}: {e}", w.tag()));
            let probe = c.send_request(TASK, "Connect", &id_message(&id));
            let mut outcome = String::new();
            if let Ok(probe) = probe {
                c.set_read_timeout(Duration::from_secs(10));
                loop {
                    match c.read_frame() {
                        Read1::Frame(f) if f.stream == probe => {
                            outcome = format!("the Connect after it was answered: {:?}", f.response());
                            assert!(matches!(f.response(), Ok(Ok(_))), "{}after {what}: {outcome}", w.tag());
                            break;
                        }
                        Read1::Frame(f) => {
                            outcome.push_str(&format!("[a reply to it: stream {} {:?}] ", f.stream, f.response()))
                        }
                        Read1::Closed { .. } => {
                            outcome.push_str("the shim closed the connection");
                            break;
                        }
                        Read1::TimedOut => panic!(
                            "{}after {what}, the connection is stuck: no reply to a Connect and no close",
                            w.tag()
                        ),
                        Read1::Error(e) => panic!("{}after {what}: {e}", w.tag()),
                    }
                }
            } else {
                outcome = "the shim closed the connection (the probe could not be sent)".into();
            }
            eprintln!("{}{what}: {outcome}", w.tag());
            still_serves(w, &id, shim, what);
        }

        // Cut short: a header for 100 bytes, 10 of them, a close.
        let mut c = w.shim_client(&id);
        let mut f = frame(c.next_stream(), TYPE_REQUEST, 0, &[0u8; 100]);
        f.truncate(20);
        c.send_raw(&f).unwrap();
        drop(c);
        still_serves(w, &id, shim, "a frame cut short by a close");

        // Garbage: a header claiming 4 GiB, then a close.
        let mut c = w.shim_client(&id);
        c.send_raw(&[0xff; 10]).unwrap();
        drop(c);
        still_serves(w, &id, shim, "a garbage header and a close");

        kill_and_remove(w, &id);
    });
}

// A message over the bound (5 MiB; runc-v2's bound is 4 MiB, shimlet's is
// smaller): an error reply on its stream, the connection still answers a
// Connect, and the shim serves everyone else.
#[test]
fn oversized_message() {
    each_runtime("oversized", |w, rt| {
        let (id, shim) = target(w, rt, "big");
        let mut c = w.shim_client(&id);
        let s = c.next_stream();
        let mut payload = vec![];
        put_str(&mut payload, 1, &id);
        put_bytes(&mut payload, 15, &vec![b'x'; 5 << 20]);
        let f = frame(s, TYPE_REQUEST, 0, &request(TASK, "Connect", &payload, 0, &[]));
        assert!(f.len() > 5 << 20);
        let st = error_reply(w, &mut c, &f, s, "a 5 MiB Connect");
        eprintln!("{}5 MiB message: {st}", w.tag());
        same_connection_usable(w, &mut c, &id, "a 5 MiB message");
        still_serves(w, &id, shim, "a 5 MiB message");
        kill_and_remove(w, &id);
    });
}

// Unknown service, unknown method: code 12 (Unimplemented), and the
// connection goes on.
#[test]
fn unknown_service_and_method() {
    each_runtime("unknown", |w, rt| {
        let (id, shim) = target(w, rt, "unk");
        let mut c = w.shim_client(&id);
        for (service, method) in [(TASK, "NoSuchMethod"), ("no.such.Service", "Connect"), (TASK, "connect")] {
            match c.call(service, method, &id_message(&id)) {
                Ok(Err(st)) => {
                    eprintln!("{}{service}/{method}: {st}", w.tag());
                    assert_eq!(st.code, 12, "{}{service}/{method}: {st}", w.tag());
                }
                other => panic!("{}{service}/{method}: want code 12, got {other:?}", w.tag()),
            }
            same_connection_usable(w, &mut c, &id, &format!("{service}/{method}"));
        }
        still_serves(w, &id, shim, "unknown methods");
        kill_and_remove(w, &id);
    });
}

// A client that sends requests (State, thousands) and never reads the
// replies: while it is connected and its replies pile up, the shim serves a
// new connection and containerd (exec, pause, resume); after it goes, too.
#[test]
fn client_that_never_reads() {
    each_runtime("noread", |w, rt| {
        let (id, shim) = target(w, rt, "nr");
        let mut c = w.shim_client(&id);
        c.set_nonblocking(true);
        let one = request(TASK, "State", &id_message(&id), 0, &[]);
        let (mut sent, mut blocked) = (0, false);
        let mut pending: Vec<u8> = vec![];
        while sent < 4000 {
            if pending.is_empty() {
                pending = frame(c.next_stream(), TYPE_REQUEST, 0, &one);
            }
            match c.sock.write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                    if pending.is_empty() {
                        sent += 1;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The shim stopped reading this client: its replies are
                    // blocked (runc-v2 does that). That is allowed; serving
                    // others is not.
                    blocked = true;
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                    // The shim let this client go once its replies no
                    // longer fit (shimlet does that). Allowed too.
                    eprintln!("{}the shim closed the non-reading client after {sent} requests: {e}", w.tag());
                    blocked = true;
                    break;
                }
                Err(e) => panic!("{}writing to the shim after {sent} requests: {e}", w.tag()),
            }
        }
        eprintln!("{}never-reading client: {sent} requests sent, writes blocked: {blocked}", w.tag());
        still_serves(w, &id, shim, "a client that never reads (still connected)");
        drop(c);
        still_serves(w, &id, shim, "a client that never read (gone)");
        kill_and_remove(w, &id);
    });
}

// A peer whose effective uid and gid are not the shim's (nobody, 65534)
// is refused: the connection is closed without a reply. (It reaches the
// root-only socket directory with fsuid 0; SO_PEERCRED reports the
// effective ids, which the shim must compare with its own.)
#[test]
fn peer_with_another_uid_is_refused() {
    each_runtime("peeruid", |w, rt| {
        let (id, shim) = target(w, rt, "uid");
        let sock = w.shim_socket(&id);
        let dir = CString::new(sock.parent().unwrap().as_os_str().as_bytes()).unwrap();
        let name = CString::new(sock.file_name().unwrap().as_bytes()).unwrap();
        let req = frame(1, TYPE_REQUEST, 0, &request(TASK, "Connect", &id_message(&id), 0, &[]));
        let mut cmd = Command::new("/bin/true");
        // SAFETY: only async-signal-safe system calls in the child, on data
        // prepared before the fork; the child ends with _exit.
        unsafe {
            cmd.pre_exec(move || {
                libc::_exit(refused_probe(&dir, &name, &req));
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn the probe: {e}"));
        let st = try_wait_child(&mut child, WAIT).unwrap_or_else(|e| panic!("{}the other-uid probe {e}", w.tag()));
        let why = match st.code() {
            Some(0) => "",
            Some(1) => "the shim answered a peer with another uid",
            Some(2) => "the probe could not connect",
            Some(3) => "the shim neither answered nor closed the connection",
            Some(4) => "the probe could not take uid 65534",
            Some(c) if c > 100 => "the probe could not connect (exit code = 100 + errno)",
            _ => "the probe failed",
        };
        assert_eq!(st.code(), Some(0), "{}{why} ({st})", w.tag());
        still_serves(w, &id, shim, "a peer with another uid");
        kill_and_remove(w, &id);
    });
}

/// In the forked child: enter the socket's directory (as root: the path
/// goes through /proc/HOLDER/root), become uid/gid 65534 (effective; fsuid
/// and fsgid back to 0 to reach the root-only directory), connect to the
/// socket by name, send a Connect, read. 0: closed without a byte; 1: got
/// bytes; 2: read failed; 3: timed out; 4: setup; 100+errno: connect
/// failed.
///
/// # Safety
/// Only system calls, no allocation: it runs between fork and exec.
unsafe fn refused_probe(dir: &CString, name: &CString, req: &[u8]) -> i32 {
    if libc::chdir(dir.as_ptr()) != 0 {
        return 4;
    }
    if libc::setegid(65534) != 0 || libc::seteuid(65534) != 0 {
        return 4;
    }
    libc::setfsuid(0);
    libc::setfsgid(0);
    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return 4;
    }
    let mut addr: libc::sockaddr_un = std::mem::zeroed();
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = name.as_bytes();
    if b.len() >= addr.sun_path.len() {
        return 4;
    }
    for (i, &c) in b.iter().enumerate() {
        addr.sun_path[i] = c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    if libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len as libc::socklen_t) != 0 {
        return 100 + *libc::__errno_location();
    }
    let tv = libc::timeval { tv_sec: 20, tv_usec: 0 };
    libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVTIMEO,
        &tv as *const _ as *const libc::c_void,
        std::mem::size_of::<libc::timeval>() as libc::socklen_t,
    );
    // The write may fail if the shim closed already: that is a refusal too.
    libc::send(fd, req.as_ptr() as *const libc::c_void, req.len(), libc::MSG_NOSIGNAL);
    let mut buf = [0u8; 64];
    let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
    if n == 0 {
        return 0;
    }
    if n > 0 {
        return 1;
    }
    match *libc::__errno_location() {
        libc::ECONNRESET => 0,
        libc::EAGAIN => 3,
        _ => 2,
    }
}
