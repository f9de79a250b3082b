//! Input queued by attach clients that then hung up, while the container
//! does not read its stdin: the shim holds what it cannot write (its input
//! is paused), so each departed client's records stay in that client's
//! socket. What becomes of that backlog when the container exits, is
//! killed, closes its stdin or starts to read: the exit record is written,
//! the shim exits (by itself, status 0), the backlog is dropped or
//! delivered in full, every departed client is let go, and nothing is left
//! running. The backlog is thousands of 1-byte SEQPACKET records: a shim
//! that handles one record per level of recursion runs out of stack.
//!
//! Real runc containers, as root (an 8 MiB client send buffer needs
//! SO_SNDBUFFORCE). Each test has its own temp dir, runc root and container
//! ids (see tests/common), so they run in parallel; waits are bounded and
//! nothing is timed. Figures are printed with eprintln! for the report.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use common::*;

/// Records of 32 KiB (the shim's largest input record) that the first
/// client sends to fill the container's 64 KiB stdin pipe: two go into the
/// pipe, the third waits in the shim, the fourth in the client's socket.
const FILL_RECORDS: usize = 4;
const FILL_RECORD: usize = 32 << 10;
/// More 1-byte records than this from one client: nothing pushes back.
const NO_PUSH_BACK: usize = 1 << 20;

/// Bytes waiting in the container's stdin pipe and the pipe's size, through
/// a reader opened on /proc/PID/fd/0 and closed at once (the pipe has one
/// more reader only for that moment; never when the container ends).
fn stdin_fill(pid: i32) -> Option<(usize, usize)> {
    let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(format!("/proc/{pid}/fd/0")).ok()?;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD into an int, on a descriptor we own.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    // SAFETY: F_GETPIPE_SZ on a descriptor we own.
    let size = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) };
    (r == 0 && size > 0).then_some((n as usize, size as usize))
}

/// Gives a client's socket a send buffer of `bytes` (SO_SNDBUFFORCE, past
/// wmem_max: root only) and returns the size the kernel reports.
fn force_sndbuf(cl: &Client, bytes: libc::c_int) -> usize {
    let set = |opt| {
        // SAFETY: setsockopt with a c_int value, on our socket.
        unsafe { libc::setsockopt(cl.raw(), libc::SOL_SOCKET, opt, (&bytes as *const libc::c_int).cast(), 4) }
    };
    if set(libc::SO_SNDBUFFORCE) < 0 {
        set(libc::SO_SNDBUF);
    }
    let (mut v, mut len): (libc::c_int, libc::socklen_t) = (0, 4);
    // SAFETY: getsockopt into a c_int of the given length.
    let r = unsafe {
        libc::getsockopt(cl.raw(), libc::SOL_SOCKET, libc::SO_SNDBUF, (&mut v as *mut libc::c_int).cast(), &mut len)
    };
    assert_eq!(r, 0, "getsockopt(SO_SNDBUF): {}", os_err());
    v as usize
}

/// What became of the shim, for a failure message: reaped now (how it
/// died), or still running (state, CPU used, where it waits).
fn shim_fate(shim: i32) -> String {
    if let Some(st) = try_reap(shim) {
        let (code, signal) = decode_wait(st);
        let name = match signal {
            Some(libc::SIGSEGV) => " (SIGSEGV)",
            Some(libc::SIGBUS) => " (SIGBUS)",
            Some(libc::SIGABRT) => " (SIGABRT)",
            _ => "",
        };
        return format!("the shim (pid {shim}) died: exit code {code:?}, signal {signal:?}{name}");
    }
    let Some(state) = proc_state(shim) else {
        return format!("the shim (pid {shim}) is gone");
    };
    let stat = fs::read_to_string(format!("/proc/{shim}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let wchan = fs::read_to_string(format!("/proc/{shim}/wchan")).unwrap_or_default();
    let kids: Vec<String> =
        children_of(shim).iter().map(|&p| format!("{p} {} ({:?})", comm(p), proc_state(p))).collect();
    format!(
        "the shim (pid {shim}) still runs: state {state}, {} clock ticks of CPU so far, waiting in {wchan:?}, \
         {} descriptors, children {kids:?}",
        ticks(11) + ticks(12),
        fd_count(shim)
    )
}

/// A started container with an attach socket that runs `script` and does
/// not read its stdin (it prints `ready` first); `opts` are the stdin
/// options. Returns the container, the shim's pid and the socket.
fn not_reading(fx: &Fixture, script: &str, opts: &[&str]) -> (Container, i32, Target) {
    let c = fx.bundle(&["sh", "-c", script]);
    let sock = c.dir.join("attach.sock");
    fx.launch_ok(&c, fx.launcher(&c).opt("--attach", &sock).args(opts));
    let shim = c.shim_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "ready\n");
    (c, shim, Target::new(&sock))
}

/// The script of a container that never reads its stdin: it prints ready,
/// waits for /dev/shm/exit and exits 3.
fn idle_then_exit_3() -> String {
    format!("echo ready; {}; exit 3", wait_file_sh("exit"))
}

/// Input queued by clients that have hung up.
#[derive(Debug)]
struct Backlog {
    clients: usize,
    /// 1-byte records (the fill records not counted).
    records: usize,
    /// Every byte sent, the fill records included.
    bytes: usize,
}

/// Connects `n` clients; the first fills the container's stdin pipe (the
/// shim's input is then paused: it holds a record it cannot write and
/// reads no client), then every client queues 1-byte records until its
/// socket is full, and all hang up. With `sndbuf`, the first client's
/// send buffer is that large (and must be at least that large).
fn queue_backlog(c: &Container, target: &Target, n: usize, sndbuf: Option<libc::c_int>) -> Backlog {
    let pid = c.container_pid();
    let clients: Vec<Client> = (0..n).map(|_| target.connect()).collect();
    if let Some(want) = sndbuf {
        let got = force_sndbuf(&clients[0], want);
        assert!(
            got >= want as usize,
            "a client send buffer of {want} bytes needs SO_SNDBUFFORCE (root, CAP_NET_ADMIN); the kernel gave {got}"
        );
    }
    let fill = vec![b'F'; FILL_RECORD];
    for _ in 0..FILL_RECORDS {
        clients[0].send(&fill);
    }
    wait_until_or(
        "the container's stdin pipe to be full",
        WAIT,
        || matches!(stdin_fill(pid), Some((n, size)) if n == size).then_some(()),
        || format!("stdin pipe (bytes waiting, size): {:?}", stdin_fill(pid)),
    );
    let mut records = 0;
    for (i, cl) in clients.iter().enumerate() {
        let mut mine = 0;
        while cl.try_send_full(b"x").unwrap_or_else(|e| panic!("client {i}: send: errno {e}")) {
            mine += 1;
            assert!(mine < NO_PUSH_BACK, "client {i}: {mine} records went in without push-back");
        }
        records += mine;
    }
    drop(clients);
    Backlog { clients: n, records, bytes: FILL_RECORDS * FILL_RECORD + records }
}

/// After `how` (the container ended): within WAIT the status file records
/// `code` and `signal` and no lost output, the exit file holds the code,
/// the shim ends by itself with status 0, and nothing of the container or
/// the shim is left.
fn expect_exit_record(fx: &Fixture, c: &Container, shim: i32, b: &Backlog, how: &str, code: i64, signal: i64) {
    let st = status_within(c, WAIT).unwrap_or_else(|| {
        panic!(
            "{how} with {} 1-byte input records ({} bytes in all) queued by {} clients that had hung up; \
             {}s later there is no exit record: {}",
            b.records,
            b.bytes,
            b.clients,
            WAIT.as_secs(),
            shim_fate(shim)
        )
    });
    assert_exited(&st, code, signal);
    assert_eq!(st.num("lost"), 0, "no output may be lost: {:?}", st.raw);
    assert_eq!(c.wait_exit_file(), code.to_string(), "the exit file");
    let ws = wait_pid_gone(shim, "the shim");
    assert_eq!(ws.map(decode_wait), Some((Some(0), None)), "the shim's own end (exit code, signal)");
    assert_nothing_left(fx, c, &[]);
    end(fx, c, shim);
}

/// Waits until the shim holds no client socket (only its listening one)
/// and at most the descriptors `before` it had; `exact`: exactly those.
fn wait_clients_released(c: &Container, shim: i32, before: &[(i32, String)], exact: bool, b: &Backlog, after: &str) {
    wait_until_or(
        &format!("the shim to let go of the {} departed clients {after}", b.clients),
        WAIT,
        || {
            let now = proc_fds(shim);
            (socket_count(shim) == 1 && (now == before || !exact && now.len() <= before.len())).then_some(())
        },
        || {
            let stdin = fs::read_link(format!("/proc/{}/fd/0", c.container_pid())).map(|p| p.display().to_string());
            format!(
                "before the clients: {before:?}\nnow: {:?}\nthe container's stdin: {stdin:?}\n{}",
                proc_fds(shim),
                shim_fate(shim)
            )
        },
    );
}

// Proves the CRI-O shape (--stdin --leave-stdin-open) survives a backlog
// when the container exits: 12 clients each queue 1-byte records until
// their socket buffers are full (about 3,300 records), then hang up; the
// container then exits 3 by itself. The exit record says 3, the shim
// exits 0, nothing is left.
#[test]
fn twelve_departed_clients_then_the_container_exits() {
    let fx = Fixture::new("ib-twelve");
    let (c, shim, target) = not_reading(&fx, &idle_then_exit_3(), &["--stdin", "--leave-stdin-open"]);
    let pid = c.container_pid();
    let b = queue_backlog(&c, &target, 12, None);
    eprintln!("twelve clients: {b:?}");
    touch_in_container(pid, "exit");
    expect_exit_record(&fx, &c, shim, &b, "the container exited 3", 3, 0);
}

// Proves one client with an 8 MiB send buffer (SO_SNDBUFFORCE) and the
// default --stdin-once cannot stop the shim from ending: it queues 1-byte
// records until its buffer is full (about 20,000), then hangs up; `runc
// kill` ends the container. The exit record says 137 (signal 9), the shim
// exits 0, nothing is left.
#[test]
fn one_deep_client_with_stdin_once_then_runc_kill() {
    let fx = Fixture::new("ib-deep");
    let (c, shim, target) = not_reading(&fx, &idle_then_exit_3(), &["--stdin"]);
    let b = queue_backlog(&c, &target, 1, Some(8 << 20));
    eprintln!("one deep client: {b:?}");
    runc_kill(&fx, &c, "KILL");
    expect_exit_record(&fx, &c, shim, &b, "runc kill ended the container", 137, 9);
}

// Proves the shape of the first test with the client table full: 64
// clients (the limit) each queue 1-byte records until full and hang up at
// once; the container exits 3. The exit record says 3, the shim exits 0,
// nothing is left.
#[test]
fn sixty_four_departed_clients_then_the_container_exits() {
    let fx = Fixture::new("ib-sixty-four");
    let (c, shim, target) = not_reading(&fx, &idle_then_exit_3(), &["--stdin", "--leave-stdin-open"]);
    let pid = c.container_pid();
    let b = queue_backlog(&c, &target, 64, None);
    eprintln!("64 clients: {b:?}");
    touch_in_container(pid, "exit");
    expect_exit_record(&fx, &c, shim, &b, "the container exited 3", 3, 0);
}

// Proves a backlog is dropped, and its clients let go, when the container
// closes its stdin and goes on running: 12 clients queue 1-byte records
// and hang up, then the container closes fd 0. The shim holds no client
// socket any more and no more descriptors than before the clients came,
// still logs the container's output, and records its exit 3 later.
#[test]
fn departed_clients_input_is_dropped_when_the_container_closes_stdin() {
    let fx = Fixture::new("ib-closed");
    let script = format!(
        "echo ready; {}; exec 0<&-; echo stdin-closed; {}; echo exiting; exit 3",
        wait_file_sh("close"),
        wait_file_sh("exit")
    );
    let (c, shim, target) = not_reading(&fx, &script, &["--stdin", "--leave-stdin-open"]);
    let pid = c.container_pid();
    let fds_before = proc_fds(shim);
    let b = queue_backlog(&c, &target, 12, None);
    eprintln!("twelve clients, then stdin closed: {b:?}");
    touch_in_container(pid, "close");
    wait_clients_released(&c, shim, &fds_before, false, &b, "once the container closed its stdin");
    c.wait_log_contains(Stream::Stdout, "stdin-closed\n");
    touch_in_container(pid, "exit");
    expect_exit_record(&fx, &c, shim, &b, "the container closed its stdin, then exited 3", 3, 0);
    assert!(contains(&c.log().stream(Stream::Stdout), b"exiting\n"), "the output after the close is logged");
}

// Proves a backlog is delivered whole, and its clients let go, when the
// container starts reading: 12 clients queue 1-byte records and hang up,
// then the container reads exactly the bytes sent (`head -c N | wc -c`
// counts them all) and no byte more reaches its stdin. The shim then holds
// exactly the descriptors it had before the clients came (its end of the
// container's stdin included: --leave-stdin-open), and records the exit 3.
#[test]
fn departed_clients_input_is_delivered_when_the_container_reads() {
    let fx = Fixture::new("ib-read");
    let script = format!(
        "echo ready; {}; n=$(cat /dev/shm/total); echo count: $(head -c \"$n\" | wc -c); {}; exit 3",
        wait_file_sh("read"),
        wait_file_sh("exit")
    );
    let (c, shim, target) = not_reading(&fx, &script, &["--stdin", "--leave-stdin-open"]);
    let pid = c.container_pid();
    let fds_before = proc_fds(shim);
    let b = queue_backlog(&c, &target, 12, None);
    eprintln!("twelve clients, then the container reads: {b:?}");
    fs::write(shm_path(pid, "total"), b.bytes.to_string()).unwrap();
    touch_in_container(pid, "read");
    let count = wait_until_or(
        "the container to count what it read",
        WAIT,
        || {
            // The last line may be in the middle of being written.
            let d = fs::read(&c.log).ok()?;
            let whole = d.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let out = Log::parse(&d[..whole]).ok()?.stream(Stream::Stdout);
            String::from_utf8_lossy(&out).lines().find_map(|l| l.strip_prefix("count: ").map(|n| n.trim().to_string()))
        },
        || format!("{}\n{}", c.log_tail(), shim_fate(shim)),
    );
    assert_eq!(
        count,
        b.bytes.to_string(),
        "bytes the container read vs bytes the departed clients sent; {}",
        shim_fate(shim)
    );
    wait_clients_released(&c, shim, &fds_before, true, &b, "once their input was read");
    assert_eq!(stdin_fill(pid).map(|(n, _)| n), Some(0), "bytes beyond those sent reached the container's stdin");
    touch_in_container(pid, "exit");
    expect_exit_record(&fx, &c, shim, &b, "the container read the backlog, then exited 3", 3, 0);
}
