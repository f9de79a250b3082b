//! Hostile attach clients: one that floods stdin while the container does
//! not read it is pushed back by the kernel, not buffered; garbage records
//! and abrupt hang-ups break nothing; a rush of 500 clients keeps 64 and
//! refuses the rest; a client that half-closes and then vanishes is let go.
//! Each time the container's output keeps flowing and the shim's descriptor
//! count returns to its start value.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------
// hostile attach clients

// Proves a client flooding stdin while the container does not read it is
// pushed back by the kernel, not buffered by the shim: its non-blocking
// sends hit EAGAIN (steadily) after a bounded amount, the shim's RssAnon
// grows by at most its 32 KiB input buffer and a page, and the container's
// output keeps reaching the log and another client (every tick is logged,
// in order). Then both clients hang up: the one that sent nothing is let
// go at once (the shim's descriptor count drops back to its start value
// plus the flooder at most); the flooder's queued input is kept for the
// container (the attach suite requires input sent before a hang-up to be
// delivered), and once the container reads its stdin, that client is let
// go too: the count returns to its start value.
#[test]
fn attach_stdin_flood_is_pushed_back() {
    let fx = Fixture::new("f-stdin-flood");
    let script = "echo start; i=0; while [ ! -e /dev/shm/read ]; do echo tick-$i; i=$((i+1)); \
                  [ $i -gt 6000 ] && exit 99; sleep 0.05; done; echo reading; exec cat >/dev/null";
    let c = fx.bundle(&["sh", "-c", script]);
    let sock = c.dir.join("attach.sock");
    fx.launch_ok(&c, fx.launcher(&c).opt("--attach", &sock).args(&["--stdin", "--leave-stdin-open"]));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "tick-2\n");
    let target = Target::new(&sock);
    let fds_before = proc_fds(shim);
    let mut before = 0;
    for _ in 0..5 {
        before = before.max(status_kb(shim, "RssAnon").unwrap());
        std::thread::sleep(Duration::from_millis(30));
    }

    let flooder = target.connect();
    let chunk = Rng::new(7).bytes(8192);
    let mut sent: u64 = 0;
    let mut rss = RssTrack::default();
    let mut full_in_a_row = 0;
    while full_in_a_row < 10 {
        match flooder.try_send_full(&chunk) {
            Ok(true) => {
                sent += chunk.len() as u64;
                full_in_a_row = 0;
                assert!(sent < 256 << 20, "256 MiB went in without push-back: the shim buffers input");
            }
            Ok(false) => {
                full_in_a_row += 1;
                rss.sample(shim);
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("send: errno {e}"),
        }
        if sent.is_multiple_of(64 << 10) {
            rss.sample(shim);
        }
    }
    // Output is unaffected: new ticks reach the log and a second client.
    let last_tick = |c: &Container| -> usize {
        let out = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).into_owned();
        out.lines().filter_map(|l| l.strip_prefix("tick-")?.parse().ok()).max().unwrap_or(0)
    };
    let t0 = last_tick(&c);
    let mut reader = target.connect();
    reader.read_until(format!("tick-{}\n", t0 + 5).as_bytes(), WAIT);
    c.wait_log_contains(Stream::Stdout, &format!("tick-{}\n", t0 + 10));
    for _ in 0..10 {
        rss.sample(shim);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still pushed back.
    assert_eq!(flooder.try_send_full(&chunk), Ok(false), "the flooder's socket should still be full");
    eprintln!(
        "stdin flood: {sent} bytes accepted before steady push-back; shim RssAnon before {before} kB, max {} kB ({} samples); fds before {}",
        rss.max,
        rss.samples,
        fds_before.len()
    );
    assert!(sent < 4 << 20, "{sent} bytes went in before push-back");
    assert!(
        rss.max <= before + 32 + 4,
        "shim RssAnon {} kB, {before} kB before the flood: more than the 32 KiB input buffer and a page",
        rss.max
    );
    drop(flooder);
    drop(reader);
    let released = poll_for(Duration::from_secs(10), || (fd_count(shim) <= fds_before.len() + 1).then_some(()));
    assert!(
        released.is_some(),
        "10 s after it hung up, the shim still holds the socket of a client that sent nothing \
         (it was accepted and left while another client's input waited): nothing is kept for \
         it, yet its descriptor and client slot stay taken while the container does not read.\n\
         before: {fds_before:?}\nnow: {:?}",
        proc_fds(shim)
    );
    let fds_gone = fd_count(shim);
    // The container reads: the flooder's queued input goes in, then it goes.
    touch_in_container(pid, "read");
    // Every client socket is let go: only the listening socket remains.
    // (The count itself may end below its start: `exec cat >/dev/null`
    // closes the container's stdout, and the shim then closes that pipe.)
    let sockets = || socket_count(shim);
    wait_until_or(
        "the shim to hold no client socket",
        WAIT,
        || (sockets() == 1 && fd_count(shim) <= fds_before.len()).then_some(()),
        || format!("before: {fds_before:?}\nnow: {:?}", proc_fds(shim)),
    );
    let out = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).into_owned();
    let ticks: Vec<usize> = out.lines().filter_map(|l| l.strip_prefix("tick-")?.parse().ok()).collect();
    assert!(ticks.iter().enumerate().all(|(i, &t)| i == t), "ticks missing or out of order in the log");
    eprintln!(
        "stdin flood: fds {} before, {fds_gone} once both clients left, {} once the container read; {} ticks logged",
        fds_before.len(),
        fd_count(shim),
        ticks.len()
    );
    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    end(&fx, &c, shim);
}

// Proves garbage input breaks nothing. First, one client sends 1 MiB of
// random bytes in records of random sizes (1 to 32768 bytes) to `cat | wc
// -c`, then half-closes: every byte reaches the container (wc counts them
// all) and the EOF ends it. Then, against `cat` with --leave-stdin-open,
// 30 clients each send random records and hang up abruptly (some after a
// half-close): the shim and the container live on, a last client's line
// still comes back, and the shim's descriptor count returns to its start
// value.
#[test]
fn attach_garbage_input() {
    let fx = Fixture::new("f-garbage");
    let mut rng = Rng::new(0x6a7b_a9e0);

    let c = fx.bundle(&["sh", "-c", "cat | wc -c"]);
    let sock = c.dir.join("attach.sock");
    fx.launch_ok(&c, fx.launcher(&c).opt("--attach", &sock).arg("--stdin"));
    let shim = c.shim_pid();
    fx.start(&c);
    let mut cl = Target::new(&sock).connect();
    let mut sent = 0usize;
    while sent < 1 << 20 {
        let n = 1 + rng.below(32768);
        cl.send(&rng.bytes(n));
        sent += n;
    }
    cl.shutdown_wr();
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    cl.wait_closed(WAIT);
    let counted = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).trim().to_string();
    assert_eq!(counted, sent.to_string(), "bytes the container read vs bytes sent");
    eprintln!("garbage: {sent} bytes sent in random records, {counted} read by the container");
    end(&fx, &c, shim);

    let (c, shim, target) = cat_with_attach(&fx, true);
    let fds_before = proc_fds(shim);
    for i in 0..30 {
        let cl = target.connect();
        for _ in 0..1 + rng.below(8) {
            let n = 1 + rng.below(32768);
            // cat echoes the garbage; a client that does not read it may
            // be dropped (EPIPE, ECONNRESET): that is the policy.
            if let Err(e) = cl.send_or_closed(&rng.bytes(n)) {
                assert!(e == libc::EPIPE || e == libc::ECONNRESET, "send: errno {e}");
                break;
            }
        }
        if i % 3 == 0 {
            // SAFETY: shutdown(2) on our socket (may fail if already closed).
            unsafe { libc::shutdown(cl.raw(), libc::SHUT_WR) };
        }
        drop(cl);
    }
    assert!(pid_alive(shim), "the shim died of garbage input");
    let mut last = target.connect();
    last.send(b"\nFINAL-MARK-4242\n");
    last.read_until(b"FINAL-MARK-4242\n", WAIT);
    drop(last);
    wait_until_or(
        "the shim's descriptor count to return to its start value",
        WAIT,
        || (fd_count(shim) == fds_before.len()).then_some(()),
        || format!("before: {fds_before:?}\nnow: {:?}", proc_fds(shim)),
    );
    assert_eq!(runc_status(&fx, &c), "running");
    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    c.log(); // still well-formed
    end(&fx, &c, shim);
}

// Proves the client limit under a rush: 500 clients connect at once; 64 are
// kept and 436 are closed at once; a line sent by one of the 64 reaches all
// 64; the shim's descriptor count returns to its start value after they
// all leave, and a new client is served.
#[test]
fn attach_rush_of_500_clients() {
    raise_nofile();
    let fx = Fixture::new("f-rush");
    let (c, shim, target) = cat_with_attach(&fx, false);
    let fds_before = proc_fds(shim);
    let mut clients: Vec<Client> = (0..500).map(|_| target.connect()).collect();
    // Closed ones see recv() == 0 (or ECONNRESET) at once.
    let mut closed = vec![false; clients.len()];
    let ok = poll_for(WAIT, || {
        for (i, cl) in clients.iter_mut().enumerate() {
            if !closed[i] {
                if let Recv::Closed(_) = cl.recv(Duration::from_millis(0)) {
                    closed[i] = true;
                }
            }
        }
        (closed.iter().filter(|&&x| x).count() >= 436).then_some(())
    });
    assert!(ok.is_some(), "only {} of the 500 clients were closed", closed.iter().filter(|&&x| x).count());
    // No more than 436: the 64 others stay.
    std::thread::sleep(Duration::from_millis(300));
    for (i, cl) in clients.iter_mut().enumerate() {
        if !closed[i] {
            if let Recv::Closed(_) = cl.recv(Duration::from_millis(0)) {
                closed[i] = true;
            }
        }
    }
    let mut kept: Vec<Client> = clients.into_iter().zip(closed.iter()).filter(|(_, &c)| !c).map(|(cl, _)| cl).collect();
    assert_eq!(kept.len(), 64, "clients kept out of 500");
    assert_eq!(fd_count(shim), fds_before.len() + 64, "the shim's descriptors with 64 clients");
    kept[17].send(b"to-all-64\n");
    for (i, cl) in kept.iter_mut().enumerate() {
        cl.read_until(b"to-all-64\n", WAIT);
        assert!(cl.closed.is_none(), "kept client {i} was closed");
    }
    drop(kept);
    wait_until_or(
        "the shim's descriptor count to return to its start value",
        WAIT,
        || (fd_count(shim) == fds_before.len()).then_some(()),
        || format!("before: {fds_before:?}\nnow: {:?}", proc_fds(shim)),
    );
    let mut again = target.connect();
    again.send(b"after-the-rush\n");
    again.read_until(b"after-the-rush\n", WAIT);
    eprintln!(
        "rush: 500 connected, 64 kept, 436 closed; shim fds {} before, {} with 64 clients, {} after",
        fds_before.len(),
        fds_before.len() + 64,
        fd_count(shim) - 1
    );
    drop(again);
    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// a client that half-closes, then goes

// Proves a client that first half-closes (its EOF is taken) and hangs up
// later is noticed and let go even when the container prints nothing: the
// shim's descriptor count returns to its start value. (A container that
// prints would make the next send to the dead client fail and drop it;
// this one stays quiet.)
#[test]
fn attach_half_closed_then_gone_client_is_released() {
    let fx = Fixture::new("f-halfclose");
    let (c, shim, target) = cat_with_attach(&fx, true);
    let fds_before = proc_fds(shim);
    let cl = target.connect();
    cl.shutdown_wr();
    // The shim takes the EOF (the client stays, for output).
    wait_until("the shim to take the client", WAIT, || (fd_count(shim) == fds_before.len() + 1).then_some(()));
    std::thread::sleep(Duration::from_millis(300));
    drop(cl);
    let back = poll_for(Duration::from_secs(10), || (fd_count(shim) == fds_before.len()).then_some(()));
    assert!(
        back.is_some(),
        "10 s after a half-closed client hung up, the shim still holds its socket (a quiet \
         container never sends it anything that would fail)\nbefore: {fds_before:?}\nnow: {:?}",
        proc_fds(shim)
    );
    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    end(&fx, &c, shim);
}
