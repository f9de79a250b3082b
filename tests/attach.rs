//! Integration tests of shimlet's attach side: the attach socket
//! (SOCK_SEQPACKET records, input, several clients, slow clients, limits),
//! the terminal mode with the ctl FIFO, and the `shimlet attach` client.
//! Real runc containers, real sockets and ptys; run as root.
//!
//! Each test has its own temp dir, runc root and container ids (see
//! common/mod.rs), so they run in parallel; waits are bounded and nothing is
//! timed. Each test ends with `end()`: no shimlet process of the test is
//! left and `runc list` is empty.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------
// helpers of this file

/// Paths of the attach socket and ctl FIFO of a container.
fn sock_path(c: &Container) -> PathBuf {
    c.dir.join("attach.sock")
}

fn ctl_path(c: &Container) -> PathBuf {
    c.dir.join("ctl")
}

/// Launches `c` with `extra` options added to the standard ones, starts it
/// and returns the shim's pid.
fn launch_start(fx: &Fixture, c: &Container, extra: &[&str]) -> i32 {
    let l = fx.launcher(c).args(extra);
    fx.launch_ok(c, l);
    let shim = c.shim_pid();
    fx.start(c);
    shim
}

/// Waits until the container's terminal (seen through /proc) has this size.
fn wait_tty_size(c: &Container, rows: u16, cols: u16) {
    let pid = c.container_pid();
    wait_until_or(
        &format!("the container's pty to be {rows}x{cols}"),
        WAIT,
        || (proc_tty_size(pid) == Some((rows, cols))).then_some(()),
        || format!("size now: {:?}", proc_tty_size(pid)),
    );
}

// ---------------------------------------------------------------------------
// 1. input and output through the socket (no terminal)

// Proves the basic attach path without a terminal: bytes a client sends reach
// the container's stdin (`cat`), come back as stream-2 records to the client
// and land in the log as stdout; the client's shutdown(SHUT_WR) closes the
// container's stdin (--stdin-once is the default), so `cat` exits 0, and the
// client then sees its connection closed after the last record.
#[test]
fn stdin_echo_and_eof_ends_cat() {
    let fx = Fixture::new("att-cat");
    let c = fx.bundle(&["cat"]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin"]);

    let mut cl = Target::new(&sock).connect();
    cl.send(b"hello-attach 1\n");
    cl.read_until(b"hello-attach 1\n", WAIT);
    // Binary bytes go through untouched (no terminal).
    let second: &[u8] = b"bytes \x00\x01\xfe\xff end\n";
    cl.send(second);
    cl.read_until(b"\xfe\xff end\n", WAIT);
    let sent: Vec<u8> = [&b"hello-attach 1\n"[..], second].concat();
    assert_eq!(cl.stdout, sent, "what came back on stream 2: {}", first_difference(&cl.stdout, &sent));

    cl.shutdown_wr();
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    let how = cl.wait_closed(WAIT);
    assert!(how.is_none() || how == Some(libc::ECONNRESET), "client connection ended with errno {how:?}");
    assert_eq!(cl.stdout, sent, "no more output after EOF");
    assert!(cl.stderr.is_empty(), "stream 3 got {:?}", cl.stderr);

    let log = c.log();
    assert_eq!(log.stream(Stream::Stdout), sent, "the log's stdout");
    assert!(log.stream(Stream::Stderr).is_empty(), "the log's stderr");
    end(&fx, &c, shim);
}

// Proves stderr output reaches clients as stream-3 records and stdout as
// stream 2, separately, without a terminal, for a client attached before
// `runc start`.
#[test]
fn stderr_records_use_stream_3() {
    let fx = Fixture::new("att-err");
    let c = fx.bundle(&["sh", "-c", "read x; echo to-out; echo to-err >&2; echo more-out"]);
    let sock = sock_path(&c);
    let l = fx.launcher(&c).args(&["--attach", sock.to_str().unwrap(), "--stdin"]);
    fx.launch_ok(&c, l);
    let shim = c.shim_pid();
    // Attached before `runc start`, as a manager does.
    let mut cl = Target::new(&sock).connect();
    fx.start(&c);
    cl.send(b"go\n");
    assert_exited(&c.wait_status(), 0, 0);
    cl.wait_closed(WAIT);
    assert_eq!(String::from_utf8_lossy(&cl.stdout), "to-out\nmore-out\n", "stream 2");
    assert_eq!(String::from_utf8_lossy(&cl.stderr), "to-err\n", "stream 3");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 2. --leave-stdin-open

// Proves --leave-stdin-open: a client's EOF (and hang-up) does not close the
// container's stdin; a second client's input still reaches `cat`, which
// keeps running until it is killed (status code 137 = 128 + SIGKILL).
#[test]
fn leave_stdin_open_keeps_cat_running() {
    let fx = Fixture::new("att-leave");
    let c = fx.bundle(&["cat"]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin", "--leave-stdin-open"]);
    let target = Target::new(&sock);
    let idle_fds = fd_count(shim);

    let mut c1 = target.connect();
    c1.send(b"one\n");
    c1.read_until(b"one\n", WAIT);
    c1.shutdown_wr();
    drop(c1);
    // The shim has seen the first client's EOF and hang-up once it has
    // closed its descriptor.
    wait_until_or(
        "the shim to close the first client",
        WAIT,
        || (fd_count(shim) == idle_fds).then_some(()),
        || format!("{:?}", proc_fds(shim)),
    );
    c.wait_log_contains(Stream::Stdout, "one");

    let mut c2 = target.connect();
    c2.send(b"two\n");
    c2.read_until(b"two\n", WAIT);
    c2.shutdown_wr();
    c.wait_log_contains(Stream::Stdout, "two");
    assert!(!c.status.exists(), "cat exited after a client's EOF: {:?}", fs::read_to_string(&c.status));
    assert_eq!(runc_status(&fx, &c), "running");

    runc_kill(&fx, &c, "KILL");
    let st = c.wait_status();
    assert_exited(&st, 137, 9);
    c2.wait_closed(WAIT);
    let lines: Vec<Vec<u8>> = c.log().lines(Stream::Stdout).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, vec![b"one".to_vec(), b"two".to_vec()], "log lines");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 3. two clients

// Proves fan-out: two clients attached at once each receive every output
// record, in order (their concatenated stream-2 payloads equal the exact
// bytes the container printed: 100 short lines from separate writes and a
// 20000-byte line, i.e. several records of both sizes). The container
// prints only after it has read one line from each client, so both were
// accepted before output started.
#[test]
fn two_clients_get_every_record() {
    let fx = Fixture::new("att-two");
    let script = "read a; read b; i=1; while [ $i -le 100 ]; do echo line-$i; i=$((i+1)); done; \
                  head -c 20000 /dev/zero | tr '\\0' z; echo; echo END";
    let c = fx.bundle(&["sh", "-c", script]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin"]);
    let target = Target::new(&sock);

    let mut expected = Vec::new();
    for i in 1..=100 {
        expected.extend_from_slice(format!("line-{i}\n").as_bytes());
    }
    expected.extend_from_slice(&[b'z'; 20000]);
    expected.extend_from_slice(b"\nEND\n");

    let a = target.connect();
    let b = target.connect();
    // Readers run before the trigger, so neither falls behind.
    let readers: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(i, cl)| {
            cl.send(if i == 0 { b"a\n" } else { b"b\n" });
            std::thread::spawn(move || {
                let mut cl = cl;
                cl.wait_closed(LONG_WAIT);
                cl
            })
        })
        .collect();
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    for (i, r) in readers.into_iter().enumerate() {
        let cl = r.join().expect("reader thread");
        assert!(cl.records >= 3, "client {i} got {} records: want several", cl.records);
        assert!(
            cl.stdout == expected,
            "client {i} did not get every record: {}",
            first_difference(&cl.stdout, &expected)
        );
        assert!(cl.stderr.is_empty(), "client {i} stream 3: {:?}", tail_str(&cl.stderr));
    }
    assert_eq!(c.log().stream(Stream::Stdout), expected, "the log");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 4. a client that never reads

// Proves the slow-client policy: a client that never reads while the
// container prints 64 MiB neither blocks the container (it finishes, exit 0)
// nor the log (every one of the 65536 lines is there) nor makes the shim
// buffer (RssAnon sampled during and after stays below 200 kB and its fixed
// flood buffers, far below the output size); the client is disconnected while the container still runs
// (it sees recv() == 0 or ECONNRESET after what was queued, not a hang).
#[test]
fn non_reading_client_is_dropped_and_nothing_grows() {
    let fx = Fixture::new("att-slow");
    let line: String = "0123456789abcdef".repeat(64)[..1023].to_string();
    const TOTAL: usize = 64 << 20;
    let script = format!("read go; yes \"$0\" | head -c {TOTAL}; echo DONE-MARKER; read end; exit 0");
    let c = fx.bundle(&["sh", "-c", &script, &line]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin"]);
    let target = Target::new(&sock);

    let mut slow = target.connect();
    slow.send(b"go\n"); // the trigger; this client never reads until the end

    let mut max_rss = 0u64;
    let mut max_pte = 0u64;
    let mut samples = 0;
    let tail_is_done = || {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = fs::File::open(&c.log).ok()?;
        let len = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64))).ok()?;
        let mut t = Vec::new();
        f.read_to_end(&mut t).ok()?;
        t.ends_with(b" stdout F DONE-MARKER\n").then_some(())
    };
    wait_until_or(
        "the 64 MiB and DONE-MARKER in the log",
        LONG_WAIT,
        || {
            if let Some(r) = status_kb(shim, "RssAnon") {
                max_rss = max_rss.max(r);
                samples += 1;
            }
            if let Some(p) = status_kb(shim, "VmPTE") {
                max_pte = max_pte.max(p);
            }
            tail_is_done()
        },
        || c.log_tail(),
    );
    // The container now waits on stdin: whatever closes the slow client
    // from here on is the drop, not the container's end.
    let how = slow.wait_closed(WAIT);
    assert!(how.is_none() || how == Some(libc::ECONNRESET), "slow client's connection ended with errno {how:?}");
    assert!(
        slow.stdout.len() < TOTAL / 4,
        "the non-reading client got {} bytes queued: it was not cut off",
        slow.stdout.len()
    );
    assert_eq!(runc_status(&fx, &c), "running", "the container must still run when the slow client is cut off");
    let rss_running = status_kb(shim, "RssAnon").unwrap();

    // A second client's EOF closes stdin: `read end` returns, exit 0.
    let closer = target.connect();
    closer.shutdown_wr();
    let st = c.wait_status_for(LONG_WAIT);
    assert_exited(&st, 0, 0);
    eprintln!(
        "slow client: shim RssAnon max {max_rss} kB over {samples} samples, {rss_running} kB after; VmPTE max {max_pte} kB; \
         the slow client got {} bytes in {} records before the drop",
        slow.stdout.len(),
        slow.records
    );
    assert!(samples > 0, "no RssAnon sample of the shim");
    assert!(max_rss < 200 + FLOOD_BUFFERS_KB, "shim RssAnon reached {max_rss} kB while 64 MiB went through");
    assert!(rss_running < 200 + FLOOD_BUFFERS_KB, "shim RssAnon {rss_running} kB after 64 MiB");

    let log = c.log();
    let lines = log.lines(Stream::Stdout);
    assert_eq!(lines.len(), TOTAL / 1024 + 1, "line count in the log");
    let bad = lines[..TOTAL / 1024].iter().position(|(l, t)| !t || l.as_slice() != line.as_bytes());
    assert!(
        bad.is_none(),
        "log line {} differs: {:?}",
        bad.unwrap_or(0),
        lines.get(bad.unwrap_or(0)).map(|(l, _)| tail_str(l))
    );
    assert_eq!(lines[TOTAL / 1024], (b"DONE-MARKER".to_vec(), true));
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 5. connect/disconnect cycles

// Proves no descriptor leaks: 1,000 clients connect and hang up (every tenth
// sends a line first, every fifth half-closes first; in bursts of 50, so the
// 64-client limit is never reached) against a running container; the shim's
// open descriptor count returns to what it was before,
// and the shim still serves a client afterwards. (Whether the lines sent
// right before a hang-up arrive is input_before_hangup_* 's business.)
#[test]
fn thousand_attach_cycles_leak_nothing() {
    let fx = Fixture::new("att-cycles");
    let c = fx.bundle(&["cat"]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin", "--leave-stdin-open"]);
    let target = Target::new(&sock);
    // One round trip: the shim is serving, nothing attached any more.
    {
        let mut cl = target.connect();
        cl.send(b"ready\n");
        cl.read_until(b"ready\n", WAIT);
    }
    // Only the listening socket is left once the shim dropped that client.
    let sockets = || proc_fds(shim).iter().filter(|(_, t)| t.starts_with("socket:")).count();
    wait_until_or(
        "the shim to drop the first client",
        WAIT,
        || (sockets() == 1).then_some(()),
        || format!("{:?}", proc_fds(shim)),
    );
    let before = proc_fds(shim);
    let n_before = before.len();

    for i in 0..1000 {
        let cl = target.connect();
        if i % 10 == 0 {
            cl.send(format!("ping-{i}\n").as_bytes());
        }
        if i % 5 == 0 {
            cl.shutdown_wr();
        }
        drop(cl);
        if i % 50 == 49 {
            // Keep the burst under the 64-client limit: connections the
            // shim has not yet seen hang up still count.
            wait_until_or(
                "the shim to close the hung-up clients",
                WAIT,
                || (sockets() == 1).then_some(()),
                || format!("{:?}", proc_fds(shim)),
            );
        }
    }
    wait_until_or(
        "the shim's descriptor count to return to its value before the cycles",
        WAIT,
        || (fd_count(shim) == n_before).then_some(()),
        || format!("before: {before:?}\nnow: {:?}", proc_fds(shim)),
    );
    let after = proc_fds(shim);
    assert_eq!(after.len(), n_before, "before: {before:?}\nafter: {after:?}");
    let mut cl = target.connect();
    cl.send(b"after-cycles\n");
    cl.read_until(b"after-cycles\n", WAIT);
    drop(cl);

    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// input right before a hang-up

// Proves input a client sent just before hanging up reaches the container
// even when that client left records unread. (The kernel then reports
// ECONNRESET on the shim's first recv() and the queued input only on the
// next one; ECONNRESET is not an end of input.) The shim is stopped
// (SIGSTOP) while the client sends and closes, so the order is fixed.
#[test]
fn input_before_hangup_with_unread_output_is_delivered() {
    let fx = Fixture::new("att-reset");
    let c = fx.bundle(&["cat"]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin", "--leave-stdin-open"]);
    let target = Target::new(&sock);
    let cl = target.connect();
    cl.send(b"first\n");
    // Its echo is now queued, unread, in this client's socket.
    c.wait_log_contains(Stream::Stdout, "first");
    kill(shim, libc::SIGSTOP);
    cl.send(b"sent-before-close\n");
    drop(cl);
    kill(shim, libc::SIGCONT);

    let mut check = target.connect();
    check.send(b"marker\n");
    check.read_until(b"marker\n", WAIT);
    let got = c.log().stream(Stream::Stdout);
    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    end(&fx, &c, shim);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "first\nsent-before-close\nmarker\n",
        "cat's output: the line sent right before the hang-up is missing"
    );
}

// ---------------------------------------------------------------------------
// flow control

// Proves the input path under flow control keeps every byte and the EOF
// (--stdin-once) of a client that hangs up while its input waits: the
// container does not read its stdin yet (it waits for a file), the client
// sends 8 KiB messages until its socket is full (the shim has filled the
// stdin pipe, holds the rest in its buffer and stopped reading clients),
// then hangs up. Once the container reads (`cat`), every byte the client
// sent must reach it, and the hang-up must then close stdin: `cat` exits 0.
#[test]
fn flow_control_keeps_input_and_eof_of_a_departed_client() {
    let fx = Fixture::new("att-flow");
    let c = fx.bundle(&["sh", "-c", "while [ ! -e /dev/shm/go ]; do sleep 0.05; done; exec cat"]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin"]);
    let target = Target::new(&sock);
    let cpid = c.container_pid();
    let stdin_pipe = PathBuf::from(format!("/proc/{cpid}/fd/0"));
    let pipe_full = || {
        let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&stdin_pipe).ok()?;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD / F_GETPIPE_SZ on a descriptor we own.
        let (r, size) = unsafe {
            (libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n), libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ))
        };
        (r == 0 && size > 0 && n == size).then_some(n as usize)
    };

    let cl = target.connect();
    let mut sent = Vec::new();
    let mut i = 0usize;
    // Send until the socket stays full once the container's stdin pipe is
    // full (bounded: at most 1 MiB, at most WAIT).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the container's stdin pipe never filled: {} bytes sent",
            sent.len()
        );
        let mut msg = Vec::with_capacity(8192);
        while msg.len() + 64 <= 8192 {
            msg.extend_from_slice(
                format!("input line {i:08} ...........................................\n").as_bytes(),
            );
            i += 1;
        }
        match cl.try_send(&msg) {
            Ok(()) => sent.extend_from_slice(&msg),
            Err(libc::EAGAIN) => {
                if pipe_full().is_some() {
                    break;
                }
                std::thread::sleep(POLL);
                continue; // the shim is still moving data: try again
            }
            Err(e) => panic!("send: {}", std::io::Error::from_raw_os_error(e)),
        }
        assert!(sent.len() < 1 << 20, "1 MiB sent and the socket never filled: no flow control");
    }
    let pipe = pipe_full().unwrap();
    assert!(sent.len() > pipe, "sent {} bytes, pipe holds {pipe}", sent.len());
    drop(cl); // hang up with input still waiting
              // Let the container read.
    let go = PathBuf::from(format!("/proc/{cpid}/root/dev/shm/go"));
    fs::write(&go, b"").unwrap_or_else(|e| panic!("create {}: {e}", go.display()));

    let done = poll_for(WAIT, || c.status.exists().then_some(()));
    let got =
        fs::read(&c.log).ok().and_then(|d| Log::parse(&d).ok()).map(|l| l.stream(Stream::Stdout)).unwrap_or_default();
    if done.is_none() {
        runc_kill(&fx, &c, "KILL");
        c.wait_status();
    }
    end(&fx, &c, shim);
    assert!(
        done.is_some(),
        "cat never saw the end of its stdin after the client hung up; it got {} of the {} bytes sent (pipe {pipe})",
        got.len(),
        sent.len()
    );
    assert_exited(&c.wait_status(), 0, 0);
    assert!(got == sent, "input through flow control: {}", first_difference(&got, &sent));
}

// ---------------------------------------------------------------------------
// 6. the 64-client limit

// Proves the client limit: with 64 clients attached, the 65th connection is
// accepted and closed at once (recv returns 0, no record); the 64 keep
// getting output; once one of them leaves, a new client is served again.
#[test]
fn sixty_fifth_client_is_refused() {
    let fx = Fixture::new("att-65");
    let c = fx.bundle(&["cat"]);
    let sock = sock_path(&c);
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin", "--leave-stdin-open"]);
    let target = Target::new(&sock);

    let mut clients: Vec<Client> = (0..64).map(|_| target.connect()).collect();
    for (i, cl) in clients.iter().enumerate() {
        cl.send(format!("c-{i}\n").as_bytes());
    }
    // Every one of the 64 was accepted: its line reached cat.
    for i in 0..64 {
        c.wait_log_contains(Stream::Stdout, &format!("c-{i}\n"));
    }
    let mut extra = target.connect();
    let how = extra.wait_closed(WAIT);
    assert_eq!(how, None, "the 65th client: want recv() == 0");
    assert_eq!(extra.records, 0, "the 65th client got records");

    clients[0].send(b"final\n");
    for (i, cl) in clients.iter_mut().enumerate() {
        cl.read_until(b"final\n", WAIT);
        assert!(cl.closed.is_none(), "client {i} was closed");
    }

    // A slot frees when a client leaves.
    let n = fd_count(shim);
    drop(clients.remove(5));
    wait_until_or(
        "the shim to close the departed client",
        WAIT,
        || (fd_count(shim) == n - 1).then_some(()),
        || format!("{:?}", proc_fds(shim)),
    );
    let mut again = target.connect();
    again.send(b"again\n");
    again.read_until(b"again\n", WAIT);
    clients[0].read_until(b"again\n", WAIT);

    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    for cl in clients.iter_mut() {
        cl.wait_closed(WAIT);
    }
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 7. terminal mode

// Proves the terminal path: a shell on the pty gets a client's input and its
// output comes back as stream-2 records (never 3); a `1 ROWS COLS` line on
// the ctl FIFO resizes the pty (`stty size` in the container reports it),
// malformed ctl lines before it are ignored; another client's EOF and
// hang-up do not end the shell's input;
// the pty output is in the log; `exit 7` ends with status code 7; the
// socket and FIFO are gone after the exit.
#[test]
fn terminal_shell_roundtrip_and_resize() {
    let fx = Fixture::new("att-tty");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl) = (sock_path(&c), ctl_path(&c));
    let shim = launch_start(
        &fx,
        &c,
        &["--attach", sock.to_str().unwrap(), "--ctl", ctl.to_str().unwrap(), "--terminal", "--stdin"],
    );
    let mut cl = Target::new(&sock).connect();
    cl.send(b"echo hi-$((6*7))\n");
    cl.read_until(b"hi-42", WAIT);

    // Malformed ctl lines are ignored; the valid one after them applies.
    ctl_send(&ctl, b"garbage\n1 x y\n9 1 1\n1 5000 5000\n");
    ctl_send(&ctl, b"1 40 100\n");
    wait_tty_size(&c, 40, 100);
    // In terminal mode a client's EOF and hang-up do not close the input.
    let other = Target::new(&sock).connect();
    other.shutdown_wr();
    drop(other);
    cl.send(b"stty size\n");
    cl.read_until(b"40 100", WAIT);
    c.wait_log_contains(Stream::Stdout, "hi-42");

    cl.send(b"exit 7\n");
    let st = c.wait_status();
    assert_exited(&st, 7, 0);
    cl.wait_closed(WAIT);
    assert!(cl.stderr.is_empty(), "terminal mode sent stream-3 records: {:?}", tail_str(&cl.stderr));
    c.wait_no_shim(Some(shim));
    assert!(!sock.exists(), "the attach socket is still there after the exit");
    assert!(!ctl.exists(), "the ctl FIFO is still there after the exit");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 8. a window size sent early

// Proves a size written to ctl before the pty exists is kept and applied
// when the pty arrives: the runtime is held back (a wrapper waits for a file)
// until the shim has consumed the ctl line, and only then runs `runc create`;
// `stty size` in the container shows the size.
#[test]
fn ctl_size_before_pty_exists() {
    let fx = Fixture::new("att-early");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl) = (sock_path(&c), ctl_path(&c));
    let gate = c.dir.join("go");
    let wrapper = c.dir.join("runtime.sh");
    write_script(
        &wrapper,
        &format!(
            "#!/bin/sh\ni=0\nwhile [ ! -e '{}' ]; do i=$((i+1)); [ $i -gt 3000 ] && exit 99; sleep 0.02; done\nexec '{}' \"$@\"\n",
            gate.display(),
            runc_bin().display()
        ),
    );
    let l = fx.launcher(&c).opt("--runtime", &wrapper).args(&[
        "--attach",
        sock.to_str().unwrap(),
        "--ctl",
        ctl.to_str().unwrap(),
        "--terminal",
        "--stdin",
    ]);
    let dir = c.dir.clone();
    let launcher = std::thread::spawn(move || l.run(&dir));
    wait_until("the ctl FIFO to exist", WAIT, || ctl.exists().then_some(()));
    wait_ctl_reader(&ctl);
    ctl_send(&ctl, b"1 33 77\n");
    // The shim has read the line: the pty cannot exist yet (no runtime ran).
    wait_until("the shim to read the ctl FIFO", WAIT, || (fifo_pending(&ctl) == 0).then_some(()));
    fs::write(&gate, b"").unwrap();
    let r = launcher.join().expect("launcher thread");
    let shim = c.shim_pid();
    fx.track(shim);
    assert!(r.status.success(), "launcher: {:?} {}", r.status, r.stderr_str());
    fx.start(&c);

    let mut cl = Target::new(&sock).connect();
    cl.send(b"stty size\n");
    cl.read_until(b"33 77", WAIT);
    cl.send(b"exit 0\n");
    assert_exited(&c.wait_status(), 0, 0);
    end(&fx, &c, shim);
}

// Proves a size written to ctl after the launcher returned but before
// `runc start` is applied to the pty the process starts on.
#[test]
fn ctl_size_before_start() {
    let fx = Fixture::new("att-prestart");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl) = (sock_path(&c), ctl_path(&c));
    let l = fx.launcher(&c).args(&[
        "--attach",
        sock.to_str().unwrap(),
        "--ctl",
        ctl.to_str().unwrap(),
        "--terminal",
        "--stdin",
    ]);
    fx.launch_ok(&c, l);
    let shim = c.shim_pid();
    ctl_send(&ctl, b"1 35 81\n");
    wait_until("the shim to read the ctl FIFO", WAIT, || (fifo_pending(&ctl) == 0).then_some(()));
    fx.start(&c);
    let mut cl = Target::new(&sock).connect();
    cl.send(b"stty size\n");
    cl.read_until(b"35 81", WAIT);
    cl.send(b"exit 0\n");
    assert_exited(&c.wait_status(), 0, 0);
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 9. `shimlet attach` on a terminal

// Proves the `shimlet attach` client on a real terminal (a pty the test
// owns, as its controlling terminal): it puts the terminal in raw mode,
// sends the terminal's size through --ctl at start (`stty size` in the
// container reports it) and again on SIGWINCH, carries typed input to the container and output
// back, leaves on ctrl-p ctrl-q with exit 0 while the container keeps
// running, and restores the terminal mode (ICANON and ECHO back, flags as
// before).
#[test]
fn attach_client_on_a_terminal() {
    let fx = Fixture::new("att-client");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl) = (sock_path(&c), ctl_path(&c));
    let shim = launch_start(
        &fx,
        &c,
        &["--attach", sock.to_str().unwrap(), "--ctl", ctl.to_str().unwrap(), "--terminal", "--stdin"],
    );

    let pty = open_pty();
    set_winsize(pty.master.as_raw_fd(), 31, 97);
    let before = tcgetattr(pty.slave.as_raw_fd());
    assert!(
        before.c_lflag & (libc::ICANON | libc::ECHO) == (libc::ICANON | libc::ECHO),
        "a fresh pty should be canonical with echo"
    );
    let slave = |p: &Pty| -> Stdio { Stdio::from(p.slave.try_clone().expect("dup slave")) };
    let mut cmd = Command::new(shimlet_bin());
    cmd.arg("attach").arg("--ctl").arg(&ctl).arg(&sock).stdin(slave(&pty)).stdout(slave(&pty)).stderr(slave(&pty));
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn shimlet attach");
    let m = pty.master.as_raw_fd();
    let mut screen = Vec::new();
    wait_until("shimlet attach to put the terminal in raw mode", WAIT, || {
        read_fd_some(m, &mut screen, Duration::from_millis(0));
        (tcgetattr(pty.slave.as_raw_fd()).c_lflag & libc::ICANON == 0).then_some(())
    });

    write_fd(m, b"echo typed-$((6*7))-ok\n");
    read_fd_until(m, &mut screen, b"typed-42-ok", WAIT, "the terminal of shimlet attach");
    // The size line was written before any input was forwarded, so by now
    // the shim has applied it.
    assert_eq!(proc_tty_size(c.container_pid()), Some((31, 97)), "container pty size");
    write_fd(m, b"stty size\n");
    read_fd_until(m, &mut screen, b"31 97", WAIT, "the terminal of shimlet attach");
    // A resize of the client's terminal (SIGWINCH) is passed on.
    set_winsize(m, 45, 120);
    wait_tty_size(&c, 45, 120);
    write_fd(m, b"stty size\n");
    read_fd_until(m, &mut screen, b"45 120", WAIT, "the terminal of shimlet attach");

    write_fd(m, b"\x10\x11");
    let st = wait_child(&mut child, "shimlet attach after ctrl-p ctrl-q", WAIT);
    assert_eq!(st.code(), Some(0), "shimlet attach exit after the detach keys; screen tail {:?}", tail_str(&screen));
    let after = tcgetattr(pty.slave.as_raw_fd());
    assert!(
        after.c_lflag & (libc::ICANON | libc::ECHO) == (libc::ICANON | libc::ECHO),
        "terminal not restored: c_lflag {:#o}",
        after.c_lflag
    );
    assert_eq!(
        (after.c_iflag, after.c_oflag, after.c_cflag, after.c_lflag),
        (before.c_iflag, before.c_oflag, before.c_cflag, before.c_lflag),
        "termios flags after detach differ from before"
    );
    assert_eq!(runc_status(&fx, &c), "running", "the container after the detach");
    assert!(!c.status.exists(), "the container exited on detach");

    // The container is still usable by the next client.
    let mut cl = Target::new(&sock).connect();
    cl.send(b"echo still-$((2+3))\n");
    cl.read_until(b"still-5", WAIT);
    cl.send(b"exit 3\n");
    assert_exited(&c.wait_status(), 3, 0);
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 10. a long socket path

// Proves a socket path longer than sun_path (108 bytes) works: a raw client
// reaches it through /proc/self/fd/N/name, and `shimlet attach` with piped
// (non-terminal) stdin connects by the full path, sends `echo long-ok`, its
// stdin EOF half-closes the socket (closing the container's stdin), and it
// prints the output and exits 0 when the shim closes the socket.
#[test]
fn long_socket_path() {
    let fx = Fixture::new("att-long");
    let c = fx.bundle(&["sh"]);
    let mut deep = c.dir.clone();
    for i in 0..4 {
        deep.push(format!("deep-directory-level-{i}-{}", "x".repeat(30)));
    }
    fs::create_dir_all(&deep).unwrap();
    let sock = deep.join("attach.sock");
    assert!(sock.as_os_str().len() > 108, "path only {} bytes", sock.as_os_str().len());
    let shim = launch_start(&fx, &c, &["--attach", sock.to_str().unwrap(), "--stdin"]);
    assert_eq!(file_mode(&sock).0, libc::S_IFSOCK, "{} is not a socket", sock.display());

    let mut raw = Target::new(&sock).connect();
    raw.send(b"echo raw-ok\n");
    raw.read_until(b"raw-ok\n", WAIT);

    let out_p = c.dir.join("attach.out");
    let err_p = c.dir.join("attach.err");
    let mut child = Command::new(shimlet_bin())
        .arg("attach")
        .arg(&sock)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out_p).unwrap())
        .stderr(fs::File::create(&err_p).unwrap())
        .spawn()
        .expect("spawn shimlet attach");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo long-ok\n").unwrap();
    } // EOF
    let st = wait_child(&mut child, "shimlet attach", WAIT);
    let out = read_all(&out_p);
    assert_eq!(st.code(), Some(0), "shimlet attach: stderr {:?}", String::from_utf8_lossy(&read_all(&err_p)));
    assert!(contains(&out, b"long-ok\n"), "shimlet attach printed {:?}", String::from_utf8_lossy(&out));
    assert_exited(&c.wait_status(), 0, 0);
    raw.wait_closed(WAIT);
    assert_eq!(raw.stdout, b"raw-ok\nlong-ok\n", "the raw client's view");
    c.wait_no_shim(Some(shim));
    assert!(!sock.exists(), "the long-path socket is still there");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 11. modes and removal

// Proves the permissions and the cleanup of the shim's files: the attach
// socket is a socket with mode 0700 and the ctl FIFO a FIFO with mode 0640,
// both exist as soon as the launcher returns (before `runc start`), and both
// are removed when the shim exits after the container.
#[test]
fn socket_and_fifo_modes_and_removal() {
    let fx = Fixture::new("att-modes");
    let c = fx.bundle(&["cat"]);
    let (sock, ctl) = (sock_path(&c), ctl_path(&c));
    let l = fx.launcher(&c).args(&["--attach", sock.to_str().unwrap(), "--ctl", ctl.to_str().unwrap(), "--stdin"]);
    // A permissive umask must not widen the modes.
    // SAFETY: umask(2); restored right after the launch.
    let old = unsafe { libc::umask(0) };
    fx.launch_ok(&c, l);
    // SAFETY: umask(2), putting back the test process's own mask.
    unsafe { libc::umask(old) };
    let shim = c.shim_pid();
    assert_eq!(file_mode(&sock), (libc::S_IFSOCK, 0o700), "attach socket (type, mode)");
    assert_eq!(file_mode(&ctl), (libc::S_IFIFO, 0o640), "ctl FIFO (type, mode)");
    fx.start(&c);
    let cl = Target::new(&sock).connect();
    cl.shutdown_wr();
    assert_exited(&c.wait_status(), 0, 0);
    c.wait_no_shim(Some(shim));
    assert!(!sock.exists(), "attach socket left behind");
    assert!(!ctl.exists(), "ctl FIFO left behind");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// figures

// Measures (and bounds) an idle terminal shim's memory with two clients
// attached: RssAnon and VmPTE from /proc/PID/status once the shim has been
// idle (it trims its buffers after 1 s without events), printed for the
// report; RssAnon must stay < 200 kB.
#[test]
fn idle_terminal_shim_footprint() {
    let fx = Fixture::new("att-idle");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl) = (sock_path(&c), ctl_path(&c));
    let shim = launch_start(
        &fx,
        &c,
        &["--attach", sock.to_str().unwrap(), "--ctl", ctl.to_str().unwrap(), "--terminal", "--stdin"],
    );
    let fig = |what: &str| {
        // Sample over ~3 s (past the 1 s idle trim); keep the last values.
        let mut last = (0, 0);
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            last = (status_kb(shim, "RssAnon").unwrap(), status_kb(shim, "VmPTE").unwrap());
        }
        eprintln!("idle terminal shim, {what}: RssAnon {} kB, VmPTE {} kB", last.0, last.1);
        last
    };
    let none = fig("no client");
    let mut a = Target::new(&sock).connect();
    let mut b = Target::new(&sock).connect();
    a.send(b"echo two-$((1+1))\n");
    a.read_until(b"two-2", WAIT);
    b.read_until(b"two-2", WAIT);
    let two = fig("two clients attached");
    assert!(none.0 < 200 && two.0 < 200, "idle RssAnon: {none:?} / {two:?} (kB)");
    a.send(b"exit 0\n");
    assert_exited(&c.wait_status(), 0, 0);
    end(&fx, &c, shim);
}
