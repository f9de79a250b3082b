//! Signals at every stage, and the shim's children: signals sent while the
//! runtime is still creating are held and delivered, a held SIGINT's grace
//! ends with the create, a storm of signals through serving and draining
//! disturbs nothing; children re-parented to the shim are reaped without
//! delaying its end; --timeout kills a running container's process group.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------
// signals at every stage

/// Traps of the signal tests' containers: TERM exits 42, HUP and INT print.
const TRAPS: &str = "trap 'echo got-TERM; exit 42' TERM; trap 'echo got-HUP' HUP; trap 'echo got-INT' INT";

/// Launches `c` through the slow fake runtime (1 s before runc; with
/// `start`, it also starts the container and waits until its traps are
/// set) and sends `sig` to the shim while the runtime is still creating.
/// Returns the launcher's result and the shim's pid.
fn signal_while_creating(fx: &Fixture, c: &Container, sig: i32, start: bool) -> (Launched, i32) {
    let rt = fake_runtime("slow.sh", &c.dir, 0o755);
    let mut l = fx.launcher(c).opt("--runtime", &rt).env("FAKE_SLEEP", "1").env("FAKE_RUNC_ROOT", &fx.runc_root);
    if start {
        l = l.env("FAKE_START", "1");
    }
    let dir = c.dir.clone();
    let launcher = std::thread::spawn(move || l.run(&dir));
    let shim = wait_pid_file(&c.shim_pidfile);
    fx.track(shim);
    wait_until("the slow runtime to start", WAIT, || c.dir.join("slow-started").exists().then_some(()));
    kill(shim, sig);
    let r = launcher.join().expect("launcher thread");
    (r, shim)
}

// Proves SIGTERM and SIGHUP sent to the shim while the runtime is still
// creating are held, not lost: the runtime (a fake that takes 1 s, then
// creates and starts the container and waits for its traps) returns, and
// the held signal reaches the container: its TERM trap exits 42 (recorded
// in the status file and the exit dir), its HUP trap prints got-HUP.
#[test]
fn signal_held_while_creating_reaches_container() {
    let fx = Fixture::new("f-held");
    let script = format!("{TRAPS}; : > /dev/shm/ready; echo ready; while :; do sleep 1000 & wait $!; done");

    let c = fx.bundle(&["sh", "-c", &script]);
    let (r, shim) = signal_while_creating(&fx, &c, libc::SIGTERM, true);
    assert!(r.status.success(), "launcher: {:?} {}", r.status, r.stderr_str());
    let st = c.wait_status();
    assert_exited(&st, 42, 0);
    assert_eq!(c.wait_exit_file(), "42");
    assert!(contains(&c.log().stream(Stream::Stdout), b"got-TERM\n"));
    end(&fx, &c, shim);

    let c = fx.bundle(&["sh", "-c", &script]);
    let (r, shim) = signal_while_creating(&fx, &c, libc::SIGHUP, true);
    assert!(r.status.success(), "launcher: {:?} {}", r.status, r.stderr_str());
    c.wait_log_contains(Stream::Stdout, "got-HUP\n");
    assert!(pid_alive(c.container_pid()), "the container must survive its HUP trap");
    runc_kill(&fx, &c, "KILL");
    assert_exited(&c.wait_status(), 137, 9);
    end(&fx, &c, shim);
}

// Proves a held SIGINT that the container survives (its trap prints
// got-INT) does not later kill it: the 5 s grace that bounds a runtime
// still creating after a stop signal must end with the create. 7 s after
// the signal the container still runs; a TERM then ends it with code 42,
// and the exit file says 42 (not -1, the timeout's mark).
#[test]
fn held_sigint_grace_ends_with_create() {
    let fx = Fixture::new("f-grace");
    let script = format!("{TRAPS}; : > /dev/shm/ready; echo ready; while :; do sleep 1000 & wait $!; done");
    let c = fx.bundle(&["sh", "-c", &script]);
    let sent = Instant::now();
    let (r, shim) = signal_while_creating(&fx, &c, libc::SIGINT, true);
    assert!(r.status.success(), "launcher: {:?} {}", r.status, r.stderr_str());
    c.wait_log_contains(Stream::Stdout, "got-INT\n");
    let pid = c.container_pid();
    let until = sent + Duration::from_secs(7);
    while Instant::now() < until {
        std::thread::sleep(POLL);
    }
    let early = status_within(&c, Duration::from_millis(1));
    assert!(
        early.is_none() && pid_alive(pid),
        "the container was killed after surviving a held SIGINT (the stop grace went on after the create): status {:?}",
        early.map(|s| s.raw)
    );
    runc_kill(&fx, &c, "TERM");
    assert_exited(&c.wait_status(), 42, 0);
    assert_eq!(c.wait_exit_file(), "42");
    end(&fx, &c, shim);
}

// Proves a SIGTERM held while plain `runc create` runs is delivered as soon
// as the pid is known, i.e. to the created, not yet started container,
// which ends: the create still succeeds, the exit is recorded (status
// `exited`, non-zero) and the shim ends; nothing is lost or left.
#[test]
fn signal_held_while_creating_before_start() {
    let fx = Fixture::new("f-held-created");
    let c = fx.bundle(&["sh", "-c", "echo never-started; exit 0"]);
    let (r, shim) = signal_while_creating(&fx, &c, libc::SIGTERM, false);
    assert!(r.status.success(), "launcher: {:?} {}", r.status, r.stderr_str());
    let st = c.wait_status();
    eprintln!("TERM held during plain create: {:?}", st.raw.trim());
    assert_eq!(st.kind, "exited", "{:?}", st.raw);
    assert!(st.num("code") != 0, "the held SIGTERM was lost: {:?}", st.raw);
    assert!(c.log().stream(Stream::Stdout).is_empty(), "the container ran");
    end(&fx, &c, shim);
}

// Proves signals are forwarded while serving and never disturb the end:
// SIGHUP, SIGINT and SIGTERM go to the shim every 0.2 ms from the
// moment the container runs, through its 4 MB of output and its exit, to
// the shim's own end. The container's traps see them (got-HUP/INT/TERM
// logged), its exit code 7 is recorded, all 4 MB are logged, and the shim
// itself exits 0 (no signal kills it).
#[test]
fn signal_storm_through_serving_and_draining() {
    let line: String = "0123456789abcdef".repeat(4)[..63].to_string();
    let fx = Fixture::new("f-storm");
    let script = format!(
        "trap 'echo got-HUP' HUP; trap 'echo got-INT' INT; trap 'echo got-TERM' TERM; echo ready; {}; \
         yes \"$0\" | head -c 4000000; exit 7",
        wait_file_sh("go")
    );
    let c = fx.bundle(&["sh", "-c", &script, &line]);
    fx.launch_ok(&c, fx.launcher(&c));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "ready\n");
    let storm = std::thread::spawn(move || {
        let mut n = 0u64;
        let sigs = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];
        let deadline = Instant::now() + LONG_WAIT;
        // Until the shim is a zombie (the test reaps it only after this).
        while matches!(proc_state(shim), Some(s) if s != 'Z') && Instant::now() < deadline {
            // SAFETY: kill(2) of the shim, which cannot be reaped meanwhile.
            unsafe { libc::kill(shim, sigs[(n % 3) as usize]) };
            n += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        n
    });
    c.wait_log_contains(Stream::Stdout, "got-TERM\n");
    touch_in_container(pid, "go");
    let st = c.wait_status_for(LONG_WAIT);
    let sent = storm.join().expect("storm thread");
    let ws = wait_pid_gone(shim, "the shim");
    assert_exited(&st, 7, 0);
    if let Some(ws) = ws {
        assert_eq!(decode_wait(ws), (Some(0), None), "the shim's own end (exit status, signal)");
    }
    let out = c.log().stream(Stream::Stdout);
    let text = String::from_utf8_lossy(&out);
    for s in ["got-HUP", "got-INT", "got-TERM"] {
        assert!(text.contains(s), "{s} not logged");
    }
    let flood: Vec<u8> = out
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"got-") && *l != b"ready\n")
        .flatten()
        .copied()
        .collect();
    let want = format!("{line}\n").repeat(4000000 / 64);
    assert!(flood == want.as_bytes(), "the 4 MB: {}", first_difference(&flood, want.as_bytes()));
    eprintln!("storm: {sent} signals sent to the shim; exit 7 recorded; 4000000 bytes logged");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// children re-parented to the shim

// Proves the shim reaps what is re-parented to it: a fake runtime leaves 24
// background sleeps (0, 1 and 2 s) that become the shim's children once
// runc exits. While the container runs they all end and are reaped (no
// zombie child of the shim at any check); then the container exits and the
// shim ends. A second run whose container exits at once shows the shim
// does not wait for such children: it ends, and the test reaps them.
#[test]
fn reparented_children_are_reaped() {
    let fx = Fixture::new("f-children");
    let c = fx.bundle(&["sh", "-c", &format!("echo up; {}; exit 0", wait_file_sh("go"))]);
    let rt = fake_runtime("spawner.sh", &c.dir, 0o755);
    fx.launch_ok(&c, fx.launcher(&c).opt("--runtime", &rt));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    let spawned: Vec<i32> =
        fs::read_to_string(c.dir.join("spawned.pids")).unwrap().lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(spawned.len(), 24);
    let _guard = KillOnDrop(spawned.iter().map(|&p| (p, "sleep")).collect());
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "up\n");
    // A child may be a zombie for the moment between its end and the
    // shim's SIGCHLD handling; every zombie seen must then go away.
    let mut zombies_seen: Vec<i32> = vec![];
    let mut zombie_checks = 0;
    wait_until_or(
        "every spawned sleep to end and be reaped",
        WAIT,
        || {
            for z in zombie_children(shim) {
                if !zombies_seen.contains(&z) {
                    zombies_seen.push(z);
                }
            }
            zombie_checks += 1;
            spawned.iter().all(|&p| !pid_exists(p)).then_some(())
        },
        || {
            spawned
                .iter()
                .filter(|&&p| pid_exists(p))
                .map(|&p| format!("{p}: state {:?} parent {:?}", proc_state(p), proc_ppid(p)))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    wait_until_or(
        "no zombie child under the shim",
        WAIT,
        || {
            (zombie_children(shim).is_empty()
                && zombies_seen.iter().all(|&z| !is_zombie(z) || proc_ppid(z) != Some(shim)))
            .then_some(())
        },
        || format!("zombies under the shim: {:?}", zombie_children(shim)),
    );
    assert!(pid_alive(shim) && pid_alive(pid), "the shim and the container still run");
    touch_in_container(pid, "go");
    assert_exited(&c.wait_status(), 0, 0);
    end(&fx, &c, shim);
    eprintln!(
        "children: 24 re-parented sleeps reaped while the container ran ({zombie_checks} checks; \
         {} transient zombies seen, all reaped)",
        zombies_seen.len()
    );

    // The container ends first: the shim must not wait for the sleeps.
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("spawner.sh", &c.dir, 0o755);
    fx.launch_ok(&c, fx.launcher(&c).opt("--runtime", &rt).env("FAKE_CHILDREN", "6"));
    let shim = c.shim_pid();
    let spawned: Vec<i32> =
        fs::read_to_string(c.dir.join("spawned.pids")).unwrap().lines().filter_map(|l| l.trim().parse().ok()).collect();
    let _guard2 = KillOnDrop(spawned.iter().map(|&p| (p, "sleep")).collect());
    fx.start(&c);
    assert_exited(&c.wait_status(), 0, 0);
    c.wait_no_shim(Some(shim));
    for &p in &spawned {
        wait_pid_gone(p, "a spawned sleep");
    }
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// --timeout on a running container

// Proves --timeout kills the running container's process group (a shell
// and its sleep) when the time is up, and the exit dir's file then holds
// -1; nothing of the container is left.
#[test]
fn timeout_kills_running_container() {
    let fx = Fixture::new("f-timeout");
    let c = fx.bundle(&["sh", "-c", "echo started; sleep 1000 & wait"]);
    fx.launch_ok(&c, fx.launcher(&c).opt("--timeout", "2"));
    let shim = c.shim_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "started\n");
    let st = c.wait_status();
    assert_eq!(st.kind, "exited");
    assert_eq!(st.num("signal"), 9, "killed: {:?}", st.raw);
    assert_eq!(c.wait_exit_file(), "-1", "the exit file after a timeout");
    wait_until("the container's cgroups to be empty", WAIT, || cgroup_procs(&c.id).is_empty().then_some(()));
    end(&fx, &c, shim);
}
