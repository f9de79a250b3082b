//! A runtime that hangs, dies or lies in `create`: it never finishes (bounded
//! by --timeout or by the manager's SIGTERM), it is SIGKILLed at any point,
//! it writes no pidfile, garbage or a pid that is not its child, it fails
//! leaving a helper behind, it forks the container and exits first, or it
//! prints an error text full of quotes, control bytes and invalid UTF-8.
//! Each time the create fails cleanly (or, where it can work, works): the
//! sync message is valid JSON, the status file says `failed`, and nothing
//! the runtime started is left running.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::fs;
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------
// the runtime hangs in create

// Proves --timeout bounds a runtime that never finishes `create` (a fake
// that waits on a `sleep 1000` child): the sync message is {"pid": -1} with
// a message saying the runtime did not finish within 2 s, the status file
// says `failed`, and nothing is left: no shim, no runtime, no orphaned
// sleep (it was re-parented to the shim, which must kill it).
#[test]
fn runtime_hangs_in_create_timeout() {
    let fx = Fixture::new("f-hang-timeout");
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("hang.sh", &c.dir, 0o755);
    let l = fx.launcher(&c).opt("--runtime", &rt).opt("--timeout", "2").sync(Sync::Fd);
    let r = fx.launch(&c, l);
    let m = assert_sync_failure(&r, "did not finish within 2 s");
    let rt_pid = wait_pid_file(&c.dir.join("hang-runtime.pid"));
    let sleep_pid = wait_pid_file(&c.dir.join("hang-sleep.pid"));
    assert_nothing_left(&fx, &c, &[rt_pid, sleep_pid]);
    let st = c.wait_status();
    assert_eq!(st.kind, "failed", "status line {:?}", st.raw);
    eprintln!("hang + --timeout 2: message {m:?}; status {:?}", st.raw);
}

// Proves a SIGTERM to the shim while the runtime hangs in `create` (no
// --timeout) ends it: about 5 s later the runtime is killed, the waiting
// launcher exits 1 with a message saying the runtime was still creating
// when the shim was told to stop, and nothing is left running.
#[test]
fn runtime_hangs_in_create_sigterm() {
    let fx = Fixture::new("f-hang-term");
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("hang.sh", &c.dir, 0o755);
    let l = fx.launcher(&c).opt("--runtime", &rt);
    let dir = c.dir.clone();
    let launcher = std::thread::spawn(move || l.run(&dir));
    let shim = wait_pid_file(&c.shim_pidfile);
    fx.track(shim);
    let rt_pid = wait_pid_file(&c.dir.join("hang-runtime.pid"));
    let sleep_pid = wait_pid_file(&c.dir.join("hang-sleep.pid"));
    kill(shim, libc::SIGTERM);
    let r = launcher.join().expect("launcher thread");
    let err = r.stderr_str();
    assert_eq!(r.status.code(), Some(1), "launcher exit; stderr {err:?}");
    assert!(err.contains("still creating when the shim was told to stop"), "launcher stderr {err:?}");
    assert_nothing_left(&fx, &c, &[rt_pid, sleep_pid]);
    let st = c.wait_status();
    assert_eq!(st.kind, "failed", "status line {:?}", st.raw);
    eprintln!("hang + SIGTERM: launcher said {:?}", err.trim());
}

// ---------------------------------------------------------------------------
// the runtime dies or lies

// Proves a runtime that dies by SIGKILL in the middle of `create` is a clean
// failure, whatever point it reached: a fake starts the real runc in the
// background and SIGKILLs itself after 0, 0.02, 0.05, 0.1, 0.3 and 1 s
// (runc is then an orphan, possibly with a `runc init` of its own, and the
// shim must kill both); and a hanging fake is SIGKILLed by the test. Each
// time, within 15 s: {"pid": -1} with a message, no shim, no runc, nothing
// in the container's cgroups.
#[test]
fn runtime_sigkilled_mid_create() {
    let fx = Fixture::new("f-rt-killed");
    for delay in ["0", "0.02", "0.05", "0.1", "0.3", "1"] {
        let c = fx.bundle(&["true"]);
        let rt = fake_runtime("killself.sh", &c.dir, 0o755);
        let l = fx.launcher(&c).opt("--runtime", &rt).env("FAKE_DELAY", delay);
        let v = launch_sync_bounded(&fx, &c, l, Duration::from_secs(15));
        assert_eq!(v["pid"], -1, "runtime SIGKILLed after {delay} s: sync {v}");
        let m = v["message"].as_str().unwrap_or_default().to_string();
        assert!(!m.trim().is_empty(), "no message: {v}");
        let runc_pid = wait_pid_file(&c.dir.join("killself-runc.pid"));
        assert_nothing_left(&fx, &c, &[runc_pid]);
        assert_eq!(c.wait_status().kind, "failed");
        eprintln!("runtime SIGKILLed itself after {delay} s: {m:?}");
    }
    // The test kills a runtime that hangs.
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("hang.sh", &c.dir, 0o755);
    let l = fx.launcher(&c).opt("--runtime", &rt).sync(Sync::Fd);
    let dir = c.dir.clone();
    let launcher = std::thread::spawn(move || l.run(&dir));
    let rt_pid = wait_pid_file(&c.dir.join("hang-runtime.pid"));
    let sleep_pid = wait_pid_file(&c.dir.join("hang-sleep.pid"));
    kill(rt_pid, libc::SIGKILL);
    let r = launcher.join().expect("launcher thread");
    if let Ok(s) = fs::read_to_string(&c.shim_pidfile) {
        fx.track(s.trim().parse().unwrap_or(0));
    }
    let m = assert_sync_failure(&r, "signal 9");
    assert_nothing_left(&fx, &c, &[rt_pid, sleep_pid]);
    eprintln!("hanging runtime SIGKILLed by the test: {m:?}");
}

// Proves a runtime that exits 0 without a usable pidfile is a clean
// failure: no pidfile at all, or one holding "abc", "-5", "0", "" or a
// number beyond any pid. The message says the pid could not be read.
#[test]
fn runtime_writes_no_or_garbage_pidfile() {
    let fx = Fixture::new("f-pidfile");
    let cases: Vec<Option<&str>> =
        vec![None, Some("abc"), Some("-5"), Some("0"), Some(""), Some("99999999999"), Some("12abc")];
    for case in cases {
        let c = fx.bundle(&["true"]);
        let rt = fake_runtime("pidfile.sh", &c.dir, 0o755);
        let mut l = fx.launcher(&c).opt("--runtime", &rt).sync(Sync::Fd);
        if let Some(text) = case {
            l = l.env("FAKE_PIDFILE", text);
        }
        let r = fx.launch(&c, l);
        let m = assert_sync_failure(&r, "pid");
        assert!(
            m.contains("pidfile") || m.contains("pid file"),
            "{case:?}: the message should name the pidfile: {m:?}"
        );
        assert_nothing_left(&fx, &c, &[]);
        assert_eq!(c.wait_status().kind, "failed");
        eprintln!("pidfile {case:?}: {m:?}");
    }
}

// Proves a pidfile naming a live process that is not the shim's (a
// `sleep` of the test's, in its own process group) is no way to hang the
// shim: either the create fails clearly, or, if the shim takes that pid,
// it notices when that process ends, records an exit and ends (15 s
// bound). A shim that cannot wait for its "container" would otherwise
// serve nothing for ever and forward its signals to whatever the pid
// becomes.
#[test]
fn runtime_reports_a_foreign_pid() {
    use std::os::unix::process::CommandExt;
    let fx = Fixture::new("f-foreign");
    let mut foreign = std::process::Command::new("sleep").arg("1000").process_group(0).spawn().expect("spawn sleep");
    let fpid = foreign.id() as i32;
    let _guard = KillOnDrop(vec![(fpid, "sleep")]);
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("pidfile.sh", &c.dir, 0o755);
    let l = fx.launcher(&c).opt("--runtime", &rt).env("FAKE_PIDFILE", fpid.to_string()).sync(Sync::Fd);
    let r = fx.launch(&c, l);
    assert!(r.status.success(), "launcher: {:?} {}", r.status, r.stderr_str());
    let shim = c.shim_pid();
    let pid = r.sync_pid();
    eprintln!("foreign pid {fpid} in the pidfile: sync {}", r.sync_text().trim());
    if pid == -1 {
        assert_nothing_left(&fx, &c, &[]);
        assert!(pid_alive(fpid), "the shim killed a process that was not its own");
        let _ = foreign.kill();
        let _ = foreign.wait();
        return;
    }
    assert_eq!(pid, fpid as i64, "the sync pid must be the pidfile's");
    let _ = foreign.kill();
    let _ = foreign.wait();
    let st = status_within(&c, Duration::from_secs(15));
    assert!(
        st.is_some(),
        "the shim reported pid {fpid}, which is not its child, as the container's; 15 s after that \
         process ended the shim (pid {shim}, alive: {}) has recorded nothing: it hangs",
        pid_alive(shim)
    );
    c.wait_no_shim(Some(shim));
}

// Proves that when the real runc did create the container (its `runc init`
// waits for `start`) but the pidfile is then removed or replaced by "abc",
// the create fails and the stuck `runc init` is killed: nothing is left in
// the container's cgroups.
#[test]
fn runtime_creates_then_loses_the_pidfile() {
    let fx = Fixture::new("f-pidfile-real");
    for text in ["__delete__", "abc"] {
        let c = fx.bundle(&["true"]);
        let rt = fake_runtime("pidfile.sh", &c.dir, 0o755);
        let l = fx.launcher(&c).opt("--runtime", &rt).env("FAKE_REAL", "1").env("FAKE_PIDFILE", text).sync(Sync::Fd);
        let r = fx.launch(&c, l);
        let m = assert_sync_failure(&r, "pid");
        assert_nothing_left(&fx, &c, &[]);
        assert_eq!(c.wait_status().kind, "failed");
        eprintln!("real create, then pidfile {text:?}: {m:?}");
    }
}

// Proves the normal case of a runtime that forks the container and exits
// before it (a wrapper around the real `runc create`): the sync pid is the
// container's (what runc state reports), and the exit is recorded.
#[test]
fn runtime_forks_container_and_exits_first() {
    let fx = Fixture::new("f-forks");
    let c = fx.bundle(&["sh", "-c", "echo forked-ok; exit 5"]);
    let rt = fake_runtime("pidfile.sh", &c.dir, 0o755);
    let l = fx.launcher(&c).opt("--runtime", &rt).env("FAKE_REAL", "1").sync(Sync::Fd);
    let r = fx.launch_ok(&c, l);
    let pid = r.sync_pid() as i32;
    let state_pid = fx.state(&c).and_then(|s| s["pid"].as_i64()).unwrap_or(-1);
    assert_eq!(pid as i64, state_pid, "sync pid vs runc state's pid");
    assert_eq!(pid, c.container_pid(), "sync pid vs the pidfile");
    let shim = c.shim_pid();
    fx.start(&c);
    let st = c.wait_status();
    assert_exited(&st, 5, 0);
    assert_eq!(st.num("pid"), pid as i64);
    assert_eq!(c.log().stream(Stream::Stdout), b"forked-ok\n");
    end(&fx, &c, shim);
}

// Proves a runtime that fails and leaves a helper behind (a shell waiting
// on a `sleep 1000` of its own) is a clean failure too: the shim kills the
// helper, then the sleep that this re-parents to it, reports the failure
// (bounded: 15 s) and exits; nothing is left. The shim must not wait for a
// re-parented grandchild it has not killed.
#[test]
fn runtime_fails_leaving_a_grandchild() {
    let fx = Fixture::new("f-grandchild");
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("orphan.sh", &c.dir, 0o755);
    let l = fx.launcher(&c).opt("--runtime", &rt);
    // The fake writes both pids before it exits, so they are known even if
    // the outcome never comes; the guard kills them whatever happens.
    let dir = c.dir.clone();
    let pids = std::thread::spawn(move || {
        (wait_pid_file(&dir.join("orphan-sh.pid")), wait_pid_file(&dir.join("orphan-sleep.pid")))
    });
    let v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        launch_sync_bounded(&fx, &c, l, Duration::from_secs(15))
    }));
    let (helper, sleep) = pids.join().expect("pid files");
    let _guard = KillOnDrop(vec![(helper, "sh"), (sleep, "sleep")]);
    let v = v.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_eq!(v["pid"], -1, "sync line {v}");
    let m = v["message"].as_str().unwrap_or_default();
    assert!(m.contains("a helper is left behind"), "message {m:?}");
    assert_nothing_left(&fx, &c, &[helper, sleep]);
    assert_eq!(c.wait_status().kind, "failed");
}

// ---------------------------------------------------------------------------
// JSON escaping of the runtime's error

// Proves the sync message stays valid JSON whatever the runtime prints: a
// fake runtime's error with quotes, backslashes, \x01, ESC, tab, CR and
// invalid UTF-8 round-trips exactly (invalid bytes become U+FFFD); 3000
// control bytes (6 bytes each escaped) and 1000 euro signs cut at 2048
// bytes give a valid line under 4 KiB whose message is a prefix of the
// text. Without a sync fd, the launcher prints the raw text.
#[test]
fn runtime_error_text_is_escaped() {
    let fx = Fixture::new("f-json");
    for text in ["mixed", "ctl", "euro"] {
        let c = fx.bundle(&["true"]);
        let rt = fake_runtime("errtext.sh", &c.dir, 0o755);
        let raw = std::process::Command::new(&rt).env("FAKE_TEXT", text).output().unwrap().stderr;
        let cut = &raw[..raw.len().min(2048)];
        let want = String::from_utf8_lossy(cut.trim_ascii()).into_owned();
        let r = fx.launch(&c, fx.launcher(&c).opt("--runtime", &rt).env("FAKE_TEXT", text).sync(Sync::Fd));
        let sync = r.sync.as_ref().unwrap();
        assert!(sync.raw.len() < 4096, "{text}: sync line of {} bytes", sync.raw.len());
        assert!(
            sync.raw.iter().all(|&b| b >= 0x20 || b == b'\n') && std::str::from_utf8(&sync.raw).is_ok(),
            "{text}: raw control bytes or invalid UTF-8 in the JSON line: {:?}",
            String::from_utf8_lossy(&sync.raw)
        );
        assert_eq!(r.sync_pid(), -1);
        let m = r.sync_message().expect("a message");
        if text == "ctl" {
            assert!(
                m.chars().count() >= 600 && want.starts_with(&m),
                "{text}: message of {} chars is not a prefix of the text",
                m.chars().count()
            );
        } else {
            assert_eq!(m, want, "{text}: the message must round-trip");
        }
        assert_nothing_left(&fx, &c, &[]);
        eprintln!(
            "{text}: {} bytes of error text -> {}-byte sync line, message {} chars",
            raw.len(),
            sync.raw.len(),
            m.chars().count()
        );
    }
    let c = fx.bundle(&["true"]);
    let rt = fake_runtime("errtext.sh", &c.dir, 0o755);
    let raw = std::process::Command::new(&rt).output().unwrap().stderr;
    let r = fx.launch(&c, fx.launcher(&c).opt("--runtime", &rt));
    assert_eq!(r.status.code(), Some(1));
    let mut want = b"shimlet: create failed: ".to_vec();
    want.extend_from_slice(raw.trim_ascii());
    want.push(b'\n');
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        String::from_utf8_lossy(&want),
        "the waiting launcher prints the runtime's text"
    );
    assert_nothing_left(&fx, &c, &[]);
}
