//! Fault-injection and hostile-input tests of shimlet, against real runc
//! containers (run as root). Where runc cannot be made to fail in the way
//! wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc).
//!
//! Each test has its own temp dir, runc root and container ids (see
//! common/mod.rs), so they run in parallel; waits are bounded and nothing is
//! timed. Figures (RssAnon, descriptor counts, bytes in and out) are printed
//! with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------
// 1. the runtime hangs in create

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
// 2. the runtime dies or lies

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
// 3. the manager closes the sync descriptor unread

// Proves the shim does not depend on anyone reading the sync descriptor:
// the manager closes its end (a socketpair, then a pipe) right after
// starting the launcher. The container is still created and served:
// `runc start` works, its output is logged and its exit recorded.
#[test]
fn sync_descriptor_closed_unread() {
    let fx = Fixture::new("f-sync-closed");
    for kind in ["socketpair", "pipe"] {
        let c = fx.bundle(&["sh", "-c", "echo served-out; echo served-err >&2; exit 6"]);
        let (r, w) = if kind == "socketpair" { seqpacket_pair() } else { pipe_pair() };
        let args = fx.launcher(&c).args;
        let (mut child, _out, err) = spawn_with_fd(&args, &[], w.as_raw_fd(), &c.dir);
        drop(r); // the manager is gone before anything was written
        drop(w);
        let st = wait_child(&mut child, "the launcher", WAIT);
        assert!(st.success(), "{kind}: launcher {st:?}: {}", String::from_utf8_lossy(&read_all(&err)));
        let shim = c.shim_pid();
        fx.track(shim);
        wait_until_or(
            &format!("{kind}: the container to be created"),
            WAIT,
            || (runc_status(&fx, &c) == "created").then_some(()),
            || format!("runc state: {}; shim alive: {}", runc_status(&fx, &c), pid_alive(shim)),
        );
        fx.start(&c);
        let st = c.wait_status();
        assert_exited(&st, 6, 0);
        let log = c.log();
        assert_eq!(log.stream(Stream::Stdout), b"served-out\n", "{kind}: stdout");
        assert_eq!(log.stream(Stream::Stderr), b"served-err\n", "{kind}: stderr");
        end(&fx, &c, shim);
    }
}

// ---------------------------------------------------------------------------
// 4. the log's disk fills up

// Proves a full disk never blocks the container and is accounted for: the
// log lives on a 2 MiB tmpfs half taken by a filler file; the container
// writes 3 MiB (49152 lines of 64 bytes), then waits. It finishes its
// writes (it is never blocked), the diag file says the log cannot be
// written, and once the filler is deleted the next 200 lines are logged
// again and the diag file says so, with the count of bytes lost so far.
// The status file's lost= equals that count and the 3 MiB exactly: logged
// bytes + lost bytes = bytes written; and the log is still a well-formed
// sequence of whole records (a write cut short by the full disk must not
// leave half a record for the next one to be glued to).
#[test]
fn log_disk_full_drops_counts_and_recovers() {
    const LINES: usize = 49152;
    let line: String = "0123456789abcdef".repeat(4)[..63].to_string();
    let fx = Fixture::new("f-enospc");
    let script = format!(
        "yes \"$0\" | head -n {LINES}; : > /dev/shm/flood-done; {}; \
         i=0; while [ $i -lt 200 ]; do echo after-space-$i; i=$((i+1)); done; exit 0",
        wait_file_sh("go")
    );
    let mut c = fx.bundle(&["sh", "-c", &script, &line]);
    let small = c.dir.join("small");
    let _mount = Mount::tmpfs(&small, "size=2m");
    let filler = small.join("filler");
    fs::write(&filler, vec![b'f'; 1 << 20]).unwrap();
    c.log = small.join("ctr.log");
    let diag = c.dir.join("diag.txt");
    fx.launch_ok(&c, fx.launcher(&c).opt("--diag", &diag));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    // Never blocked: the container gets through all its writes.
    wait_until_or(
        "the container to finish writing its 3 MiB",
        LONG_WAIT,
        || shm_path(pid, "flood-done").exists().then_some(()),
        || format!("diag: {}", read_text(&diag)),
    );
    wait_until_or(
        "the diag file to say the log cannot be written",
        WAIT,
        || read_text(&diag).contains("cannot write the log").then_some(()),
        || format!("diag: {:?}", read_text(&diag)),
    );
    assert!(pid_alive(shim), "the shim died on a full disk");
    let logged_before = fs::metadata(&c.log).map(|m| m.len()).unwrap_or(0);
    // Space comes back.
    fs::remove_file(&filler).unwrap();
    touch_in_container(pid, "go");
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    c.wait_no_shim(Some(shim));
    let lost = st.num("lost") as usize;
    let d = read_text(&diag);
    eprintln!("disk full: log {logged_before} bytes when full; status {:?}; diag:\n{d}", st.raw.trim());
    assert!(lost > 0, "lost= must count the dropped bytes: {:?}", st.raw);
    let again = d
        .lines()
        .find_map(|l| l.split("the log is writable again; bytes lost so far: ").nth(1))
        .unwrap_or_else(|| panic!("the diag file does not say the log is writable again:\n{d}"));
    assert_eq!(again.trim().parse::<usize>().ok(), Some(lost), "bytes lost in the diag vs lost= in the status");
    let raw = fs::read(&c.log).unwrap();
    let log = Log::parse(&raw).unwrap_or_else(|e| panic!("after the disk was full the log is malformed: {e}"));
    let out = log.stream(Stream::Stdout);
    let flood_bytes = LINES * (line.len() + 1);
    let after: String = (0..200).map(|i| format!("after-space-{i}\n")).collect();
    assert!(
        out.ends_with(after.as_bytes()),
        "the 200 lines written after the space came back are not all logged: tail {:?}",
        tail_str(&out)
    );
    let flood_part = &out[..out.len() - after.len()];
    let full_line = format!("{line}\n");
    let bad: Vec<String> = flood_part
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| *l != full_line.as_bytes())
        .map(|(i, l)| format!("line {i}: {:?}", String::from_utf8_lossy(l)))
        .collect();
    assert!(
        bad.is_empty() && flood_part.len() + lost == flood_bytes,
        "after the disk was full the log holds records the container did not write \
         (a record cut short by ENOSPC, with the next record glued to it): {bad:?}; \
         logged {} + lost {lost} = {} bytes, the container wrote {flood_bytes}",
        flood_part.len(),
        flood_part.len() + lost
    );
}

// ---------------------------------------------------------------------------
// 5. the log file is deleted or renamed under the shim

/// The shim's descriptor whose target is `path` followed by " (deleted)".
fn deleted_log_fd(shim: i32, path: &Path) -> Option<PathBuf> {
    let want = format!("{} (deleted)", path.display());
    proc_fds(shim).into_iter().find(|(_, t)| *t == want).map(|(n, _)| PathBuf::from(format!("/proc/{shim}/fd/{n}")))
}

// Proves the shim survives its log being deleted and renamed, and that
// `2 0 0` on the ctl FIFO reopens it by path: after a delete, output goes on
// into the deleted file (no crash); the reopen creates a new file at the
// path with only the later lines. After a rename, lines go to the renamed
// file until the reopen, then into a new file at the path.
#[test]
fn log_deleted_or_renamed_then_reopened() {
    let fx = Fixture::new("f-reopen");
    let script = format!(
        "echo before-delete; {}; echo while-deleted; {}; echo after-reopen; {}; \
         echo after-rename-1; {}; echo after-rename-2; exit 0",
        wait_file_sh("go1"),
        wait_file_sh("go2"),
        wait_file_sh("go3"),
        wait_file_sh("go4")
    );
    let c = fx.bundle(&["sh", "-c", &script]);
    let ctl = c.dir.join("ctl");
    fx.launch_ok(&c, fx.launcher(&c).opt("--ctl", &ctl));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "before-delete\n");

    // Deleted: the shim keeps writing into the unlinked file.
    fs::remove_file(&c.log).unwrap();
    touch_in_container(pid, "go1");
    wait_until_or(
        "while-deleted to reach the deleted log",
        WAIT,
        || {
            let p = deleted_log_fd(shim, &c.log)?;
            contains(&fs::read(p).ok()?, b"stdout F while-deleted\n").then_some(())
        },
        || format!("shim fds: {:?}", proc_fds(shim)),
    );
    assert!(pid_alive(shim), "the shim died when its log was deleted");
    ctl_send(&ctl, b"2 0 0\n");
    wait_until("the reopen to create a new log", WAIT, || c.log.exists().then_some(()));
    touch_in_container(pid, "go2");
    c.wait_log_contains(Stream::Stdout, "after-reopen\n");
    assert_eq!(c.log().stream(Stream::Stdout), b"after-reopen\n", "the new log");

    // Renamed: lines follow the file until the reopen.
    let renamed = c.dir.join("ctr.log.renamed");
    fs::rename(&c.log, &renamed).unwrap();
    touch_in_container(pid, "go3");
    wait_until("after-rename-1 in the renamed file", WAIT, || {
        contains(&fs::read(&renamed).ok()?, b"stdout F after-rename-1\n").then_some(())
    });
    assert!(!c.log.exists(), "nothing may create the log before the reopen");
    ctl_send(&ctl, b"2 0 0\n");
    wait_until("the second reopen to create a new log", WAIT, || c.log.exists().then_some(()));
    touch_in_container(pid, "go4");
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    assert_eq!(st.num("lost"), 0, "nothing was lost: {:?}", st.raw);
    assert_eq!(c.log().stream(Stream::Stdout), b"after-rename-2\n", "the newest log");
    let old = Log::parse(&fs::read(&renamed).unwrap()).expect("renamed log well-formed");
    assert_eq!(
        old.stream(Stream::Stdout),
        b"after-reopen\nafter-rename-1\n",
        "the renamed log keeps the lines written before the reopen"
    );
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 6. floods of output, and 19. hostile output: memory stays put

/// A running flood: the container printed `first-line`, heartbeats on
/// stderr until /dev/shm/go, ran the flood (stdout), printed
/// "\nFLOOD-END\n" and now waits for /dev/shm/stop.
struct Flood {
    shim: i32,
    pid: i32,
    /// RssAnon (kB) while heartbeats flowed, before the flood.
    before: u64,
    during: RssTrack,
    /// Right after FLOOD-END was logged.
    after: u64,
    /// 1.5 s later (the shim trims after 1 s idle).
    after_idle: u64,
}

/// The container script of a flood: `setup` runs first (silently),
/// `flood` writes what is measured.
fn flood_script(setup: &str, flood: &str) -> String {
    format!(
        "{setup}\necho first-line\n\
         i=0; while [ ! -e /dev/shm/go ]; do echo hb-$i >&2; i=$((i+1)); [ $i -gt 1200 ] && exit 99; sleep 0.1; done\n\
         {flood}\nprintf '\\nFLOOD-END\\n'\n{}\nexit 0",
        wait_file_sh("stop")
    )
}

/// Launches and starts `c` (whose script is a `flood_script`), takes the
/// shim's RssAnon before, during and after the flood.
fn run_flood(fx: &Fixture, c: &Container) -> Flood {
    fx.launch_ok(c, fx.launcher(c));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(c);
    c.wait_log_contains(Stream::Stdout, "first-line\n");
    c.wait_log_contains(Stream::Stderr, "hb-3\n");
    // Heartbeats every 100 ms keep the shim busy: no idle trim meanwhile.
    let mut before = 0;
    for _ in 0..10 {
        before = before.max(status_kb(shim, "RssAnon").expect("shim RssAnon"));
        std::thread::sleep(Duration::from_millis(50));
    }
    touch_in_container(pid, "go");
    let mut during = RssTrack::default();
    wait_until_or(
        "FLOOD-END at the end of the log",
        LONG_WAIT,
        || {
            during.sample(shim);
            contains(&file_tail(&c.log, 64 << 10), b" stdout F FLOOD-END\n").then_some(())
        },
        || c.log_tail(),
    );
    let after = status_kb(shim, "RssAnon").expect("shim RssAnon");
    std::thread::sleep(Duration::from_millis(1500));
    let after_idle = status_kb(shim, "RssAnon").expect("shim RssAnon");
    Flood { shim, pid, before, during, after, after_idle }
}

impl Flood {
    /// Lets the container exit; checks the status and that the shim ends.
    fn stop(&self, fx: &Fixture, c: &Container) {
        touch_in_container(self.pid, "stop");
        let st = c.wait_status_for(LONG_WAIT);
        assert_exited(&st, 0, 0);
        assert_eq!(st.num("lost"), 0, "nothing may be lost: {:?}", st.raw);
        end(fx, c, self.shim);
    }

    /// RssAnon during and after must stay within one page of `before`.
    fn check_memory(&self, what: &str) {
        eprintln!(
            "{what}: shim RssAnon before {} kB, max during {} kB ({} samples), right after {} kB, after 1.5 s idle {} kB",
            self.before, self.during.max, self.during.samples, self.after, self.after_idle
        );
        assert!(self.during.samples > 0, "no RssAnon sample during the flood");
        let limit = self.before + 4;
        assert!(
            self.during.max <= limit && self.after <= limit && self.after_idle <= limit,
            "{what}: the shim's RssAnon grew by more than a page: before {} kB, max during {} kB, after {} kB, after idle {} kB",
            self.before,
            self.during.max,
            self.after,
            self.after_idle
        );
    }
}

/// Checks the stdout stream of a (huge) log against `want`, streaming; all
/// records at most 8192 payload bytes. Returns the scan and the stderr
/// stream's bytes when `keep_stderr`.
fn check_flood_log(c: &Container, want: Vec<Seg>, keep_stderr: bool) -> (Scan, Vec<u8>) {
    let mut exp = Expect::new(want);
    let mut err = Vec::new();
    let scan = scan_log(
        &c.log,
        Stream::Stdout,
        |d| exp.feed(d),
        |d| {
            if keep_stderr {
                err.extend_from_slice(d)
            }
        },
    )
    .unwrap_or_else(|e| panic!("the log is malformed: {e}"));
    if let Err(e) = exp.finish() {
        panic!("stdout in the log: {e} ({} records, {} payload bytes)", scan.records, scan.bytes);
    }
    assert!(scan.max_payload <= 8192, "a record carries {} bytes: reads are at most 8192 bytes", scan.max_payload);
    (scan, err)
}

/// How much the no-newline flood writes: 1 GiB unless FAULTS_FLOOD_MIB
/// says otherwise.
fn flood_mib() -> u64 {
    std::env::var("FAULTS_FLOOD_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024)
}

// Proves a flood without any newline (1 GiB of 'a', as 1024 x a 1 MiB file)
// neither grows the shim (RssAnon within a page of its value before the
// flood, during and after) nor alters a byte: the P records reassemble to
// exactly the bytes written, each at most 8192 bytes.
#[test]
fn flood_without_newline() {
    let mib = flood_mib();
    let fx = Fixture::new("f-nonl");
    let script = flood_script("", &format!("i=0; while [ $i -lt {mib} ]; do cat /a.bin; i=$((i+1)); done"));
    let c = fx.bundle(&["sh", "-c", &script]);
    c.add_file("/a.bin", &vec![b'a'; 1 << 20]);
    let f = run_flood(&fx, &c);
    f.check_memory(&format!("{mib} MiB without newline"));
    f.stop(&fx, &c);
    let (scan, _) = check_flood_log(
        &c,
        vec![Seg::Bytes(b"first-line\n".to_vec()), Seg::cycle(b"a", mib << 20), Seg::Bytes(b"\nFLOOD-END\n".to_vec())],
        false,
    );
    eprintln!(
        "{mib} MiB without newline: {} bytes in, {} stdout payload bytes logged in {} records ({} P), longest {}",
        (mib << 20) + 22,
        scan.bytes,
        scan.records,
        scan.partial,
        scan.max_payload
    );
}

// Proves 10 million one-byte lines (`yes a | head -n 10000000`, 20 MB that
// make 10 million records) do not grow the shim and are all logged, in
// order.
#[test]
fn flood_of_ten_million_short_lines() {
    let fx = Fixture::new("f-10m");
    let script = flood_script("", "yes a | head -n 10000000");
    let c = fx.bundle(&["sh", "-c", &script]);
    let f = run_flood(&fx, &c);
    f.check_memory("10M one-byte lines");
    f.stop(&fx, &c);
    let (scan, _) = check_flood_log(
        &c,
        vec![
            Seg::Bytes(b"first-line\n".to_vec()),
            Seg::cycle(b"a\n", 20_000_000),
            Seg::Bytes(b"\nFLOOD-END\n".to_vec()),
        ],
        false,
    );
    assert!(scan.full >= 10_000_002, "only {} F records", scan.full);
    eprintln!(
        "10M lines: 20000022 bytes in, {} payload bytes logged, {} records ({} F)",
        scan.bytes, scan.records, scan.full
    );
}

// Proves 50 MB of random binary (from the container's /dev/urandom, kept in
// its /dev/shm to compare) come through byte-exact and do not grow the shim.
#[test]
fn flood_of_random_binary() {
    const N: usize = 50_000_000;
    let fx = Fixture::new("f-bin");
    let script = flood_script(&format!("head -c {N} /dev/urandom > /dev/shm/r"), "cat /dev/shm/r");
    let c = fx.bundle(&["sh", "-c", &script]);
    let f = run_flood(&fx, &c);
    let data = fs::read(shm_path(f.pid, "r")).expect("the container's random data");
    assert_eq!(data.len(), N);
    f.check_memory("50 MB random binary");
    f.stop(&fx, &c);
    let (scan, _) = check_flood_log(
        &c,
        vec![Seg::Bytes(b"first-line\n".to_vec()), Seg::Bytes(data), Seg::Bytes(b"\nFLOOD-END\n".to_vec())],
        false,
    );
    eprintln!("random binary: {} bytes in, {} payload bytes logged in {} records", N + 22, scan.bytes, scan.records);
}

/// Output meant to confuse: a 4 MiB line, terminal escapes, fake record
/// headers, NULs, invalid UTF-8, CRs, a 1 MiB line of random printable
/// bytes, and no final newline.
fn hostile_bytes() -> Vec<u8> {
    let mut h: Vec<u8> = b"HOSTILE-BEGIN\n".to_vec();
    h.extend(std::iter::repeat(b'x').take(4 << 20));
    h.extend_from_slice(b"\n\x1b[2J\x1b[H\x1b]0;title\x07\x1bP+q\x1b\\\x1b[6n\x1b[?1049h\x1b[31mred\x1b[0m\n");
    h.extend_from_slice(b"2026-11-28T19:33:42.123456789+00:00 stderr F forged record\n");
    h.extend_from_slice(b" stdout P \n F \n P\n\x00\x00\x00\n\xff\xfe\xfd\r\r\r\n\r");
    let mut rng = Rng::new(0xbad_5eed);
    h.extend((0..(1 << 20)).map(|_| b' ' + (rng.next() % 95) as u8));
    h.extend_from_slice(b"\n\t\x08\x7f\x1b[1;1H");
    h.extend_from_slice(&rng.bytes(100_000));
    h.extend_from_slice(b"no final newline\x1b");
    h
}

// Proves nothing a container prints makes the shim allocate: 64 MiB of
// random binary then hostile text (a 4 MiB line, escapes, forged records,
// NULs, invalid UTF-8) on stdout, the hostile text on stderr too; RssAnon
// stays within a page of its value before the flood (during, right after,
// after idle), and both streams are byte-exact in the log.
#[test]
fn hostile_output_does_not_grow_the_shim() {
    const N: usize = 64 << 20;
    let fx = Fixture::new("f-hostile");
    let script = flood_script(
        &format!("head -c {N} /dev/urandom > /dev/shm/r"),
        "cat /dev/shm/r /hostile.bin; cat /hostile.bin >&2",
    );
    let c = fx.bundle(&["sh", "-c", &script]);
    let hostile = hostile_bytes();
    c.add_file("/hostile.bin", &hostile);
    c.edit_config(|v| {
        for m in v["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev/shm" {
                let opts = m["options"].as_array_mut().unwrap();
                opts.retain(|o| !o.as_str().unwrap_or("").starts_with("size="));
                opts.push(serde_json::Value::from("size=160m"));
            }
        }
    });
    let f = run_flood(&fx, &c);
    let data = fs::read(shm_path(f.pid, "r")).expect("the container's random data");
    assert_eq!(data.len(), N);
    f.check_memory("64 MiB random + hostile text");
    f.stop(&fx, &c);
    let (scan, err) = check_flood_log(
        &c,
        vec![
            Seg::Bytes(b"first-line\n".to_vec()),
            Seg::Bytes(data),
            Seg::Bytes(hostile.clone()),
            Seg::Bytes(b"\nFLOOD-END\n".to_vec()),
        ],
        true,
    );
    let at = err.windows(13).take(1 << 20).position(|w| w == b"HOSTILE-BEGIN").expect("the hostile text on stderr");
    assert!(err[at..] == hostile[..], "stderr: {}", first_difference(&err[at..], &hostile));
    eprintln!(
        "hostile: {} bytes in on stdout, {} logged in {} records; {} bytes on stderr",
        N + hostile.len() + 22,
        scan.bytes,
        scan.records,
        hostile.len()
    );
}

// ---------------------------------------------------------------------------
// 7. hostile attach clients

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
        if sent % (64 << 10) == 0 {
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
// 8. the container exits with output in flight and clients attached

// Proves every byte is in the log before the exit is recorded: the
// container writes 1 MiB on stdout and 256 KiB on stderr as fast as it can
// and exits 3, while one client reads slowly and another not at all. The
// moment the status file appears, the log already holds every byte; the
// slow client got a prefix of stdout, then its connection was closed.
#[test]
fn exit_with_output_in_flight_log_complete() {
    let line: String = "0123456789abcdef".repeat(4)[..63].to_string();
    let fx = Fixture::new("f-inflight");
    let c = fx.bundle(&["sh", "-c", "yes \"$0\" | head -c 1048576; yes \"$0\" | head -c 262144 >&2; exit 3", &line]);
    let sock = c.dir.join("attach.sock");
    fx.launch_ok(&c, fx.launcher(&c).opt("--attach", &sock));
    let shim = c.shim_pid();
    let target = Target::new(&sock);
    let mut slow = target.connect();
    let idle = target.connect();
    let reader = std::thread::spawn(move || {
        loop {
            match slow.recv(Duration::from_millis(200)) {
                Recv::Closed(_) => break,
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
            if slow.records > 100_000 {
                break;
            }
        }
        slow
    });
    fx.start(&c);
    let deadline = Instant::now() + WAIT;
    while !c.status.exists() {
        assert!(Instant::now() < deadline, "no status file");
        std::thread::sleep(Duration::from_millis(1));
    }
    let log_at_exit = fs::read(&c.log).unwrap();
    let st = StatusLine::parse(&fs::read(&c.status).unwrap()).unwrap();
    assert_exited(&st, 3, 0);
    let log = Log::parse(&log_at_exit).expect("the log at the time of the status file");
    let full = format!("{line}\n");
    let want_out = full.repeat(1048576 / 64);
    let want_err = full.repeat(262144 / 64);
    let out = log.stream(Stream::Stdout);
    let err = log.stream(Stream::Stderr);
    assert!(
        out == want_out.as_bytes(),
        "stdout in the log when the exit was recorded: {}",
        first_difference(&out, want_out.as_bytes())
    );
    assert!(
        err == want_err.as_bytes(),
        "stderr in the log when the exit was recorded: {}",
        first_difference(&err, want_err.as_bytes())
    );
    let slow = reader.join().expect("reader thread");
    assert!(slow.closed.is_some(), "the slow client was not closed");
    assert!(
        want_out.as_bytes().starts_with(&slow.stdout),
        "the slow client's stdout is not a prefix of what was written"
    );
    drop(idle);
    eprintln!(
        "in flight: 1048576 + 262144 bytes written, {} + {} in the log when the status appeared; slow client got {} bytes",
        out.len(),
        err.len(),
        slow.stdout.len()
    );
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 9. signals at every stage

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
// 10. children re-parented to the shim

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
// 11. the status file cannot be written

// Proves a status file that cannot be written (its directory is a
// read-only tmpfs) is reported in --diag, and the exit dir's file is still
// written with the container's code.
#[test]
fn status_file_unwritable() {
    let fx = Fixture::new("f-status-ro");
    let mut c = fx.bundle(&["sh", "-c", "echo bye; exit 4"]);
    let ro = c.dir.join("ro");
    let _mount = Mount::tmpfs(&ro, "ro,size=64k");
    c.status = ro.join("status");
    let diag = c.dir.join("diag.txt");
    fx.launch_ok(&c, fx.launcher(&c).opt("--diag", &diag));
    let shim = c.shim_pid();
    fx.start(&c);
    assert_eq!(c.wait_exit_file(), "4", "the exit dir's file");
    c.wait_no_shim(Some(shim));
    let d = read_text(&diag);
    eprintln!("status file unwritable: diag:\n{d}");
    assert!(d.contains("cannot write the status file"), "diag: {d:?}");
    assert!(!c.status.exists());
    assert_eq!(c.log().stream(Stream::Stdout), b"bye\n");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 12. hostile command lines

/// Every option spelling shimlet accepts (its own and conmon's).
const OPTION_NAMES: &[&str] = &[
    "--id",
    "--bundle",
    "--runtime",
    "--runtime-arg",
    "--runtime-opt",
    "--pidfile",
    "--shim-pidfile",
    "--log",
    "--log-size-max",
    "--log-global-size-max",
    "--log-tag",
    "--log-level",
    "--no-sync-log",
    "--syslog",
    "--diag",
    "--status-file",
    "--exit-dir",
    "--persist-dir",
    "--sync-fd",
    "--attach",
    "--stdin",
    "--stdin-once",
    "--leave-stdin-open",
    "--terminal",
    "--ctl",
    "--exec",
    "--exec-attach",
    "--exec-process-spec",
    "--exit-command",
    "--exit-command-arg",
    "--exit-delay",
    "--timeout",
    "--systemd-cgroup",
    "--no-pivot",
    "--no-new-keyring",
    "--sync",
    "--help",
    "-h",
    "--version",
    "-c",
    "--cid",
    "-u",
    "--cuuid",
    "-n",
    "--name",
    "-b",
    "-r",
    "-p",
    "--container-pidfile",
    "-P",
    "--conmon-pidfile",
    "-l",
    "--log-path",
    "--restore-arg",
    "-0",
    "-i",
    "-t",
    "-e",
    "-T",
    "--api-version",
    "-s",
    "--full-attach",
    "--socket-dir-path",
    "--replace-listen-pid",
    "--no-container-partial-message",
    "--log-rotate",
    "--log-label",
    "--log-max-files",
    "--log-allowlist-dir",
    "--restore",
    "--sdnotify-socket",
];

/// Words that look like options but are none.
const NOT_OPTIONS: &[&str] = &["--", "-", "---", "--=", "-=", "--id-", "--ID", "-x", "-Z", "---id", "--log=", "-c="];

struct ArgGen<'a> {
    rng: Rng,
    dir: &'a Path,
    nowhere: String,
}

impl ArgGen<'_> {
    fn ascii(&mut self, max: usize) -> Vec<u8> {
        const CH: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:;=+%@ !?*'\"\\$()[]{}<>|&~#";
        let n = 1 + self.rng.below(max);
        let mut w: Vec<u8> = (0..n).map(|_| *self.rng.pick(CH)).collect();
        if w[0] == b'/' {
            w[0] = b'x';
        }
        w
    }

    fn value(&mut self) -> Vec<u8> {
        let d = self.dir.display().to_string();
        match self.rng.below(14) {
            0 => format!("{d}/p{}", self.rng.below(5)).into_bytes(),
            1 => format!("{d}/no-such-dir/x{}", self.rng.below(3)).into_bytes(),
            2 => format!("{}/x", self.nowhere).into_bytes(),
            3 => self
                .rng
                .pick(&[
                    "0",
                    "1",
                    "2",
                    "-1",
                    "3",
                    "4096",
                    "2147483647",
                    "2147483648",
                    "4294967296",
                    "18446744073709551615",
                    "18446744073709551616",
                    "99999999999999999999999",
                    " 5",
                    "5 ",
                    "+5",
                    "0x10",
                    "1e3",
                    "07",
                    "-0",
                ])
                .as_bytes()
                .to_vec(),
            4 => vec![],
            5 => self
                .rng
                .pick(&[
                    "journald",
                    "none",
                    "off",
                    "null",
                    "k8s-file:",
                    "k8s-file",
                    "journald:x",
                    "bogus:x",
                    "passthrough",
                    "error",
                    "warn",
                    "info",
                    "debug",
                    "trace",
                    "WARN",
                    "ctrl-p,ctrl-q",
                ])
                .as_bytes()
                .to_vec(),
            6 => format!("k8s-file:{d}/k8s-{}.log", self.rng.below(3)).into_bytes(),
            7 | 8 => self.ascii(40),
            9 => {
                // Invalid UTF-8, no NUL.
                let n = 1 + self.rng.below(40);
                let mut v: Vec<u8> = (0..n).map(|_| (self.rng.next() % 255 + 1) as u8).collect();
                v.push(0xff);
                if v[0] == b'/' {
                    v[0] = 0xfe;
                }
                v
            }
            10 => vec![b'a'; 1000 + self.rng.below(9000)],
            11 => {
                let mut v = self.ascii(60);
                v.extend(std::iter::repeat(b'L').take(100_000));
                v
            }
            12 => b"line one\nline two\r\n".to_vec(),
            _ => b"a=b=c".to_vec(),
        }
    }

    /// One to three words.
    fn words(&mut self) -> Vec<Vec<u8>> {
        match self.rng.below(20) {
            0..=7 => {
                let name = self.rng.pick(OPTION_NAMES).as_bytes().to_vec();
                match self.rng.below(4) {
                    0 => vec![name],
                    1 => {
                        let mut w = name;
                        w.push(b'=');
                        w.extend(self.value());
                        vec![w]
                    }
                    _ => vec![name, self.value()],
                }
            }
            8..=10 => vec![self.value()],
            11..=12 => vec![self.rng.pick(NOT_OPTIONS).as_bytes().to_vec()],
            13 => {
                let mut w = b"--".to_vec();
                w.extend(self.ascii(20));
                vec![w]
            }
            _ => vec![self.ascii(30)],
        }
    }
}

// Proves the launcher survives hostile command lines: 15 fixed edge cases
// and 400 generated argv sets (option names of both spellings, `=` forms, stray and option-like
// words, empty, huge, multi-line and non-UTF-8 values) never kill it with
// a signal or hang it; it exits 0 (help, version, or a launch that
// reported through a sync fd), 1 or 2, and an error is one line on stderr.
// No generated line may start a container: most end in two unknown
// options (an error whatever came before); a fifth end in a forced
// nonexistent runtime (PATH holds no runc either), so a complete line fails
// its create; a tenth end in --help or --version. Every shim started is
// waited for and reaped.
#[test]
fn command_line_property() {
    let fx = Fixture::new("f-argv");
    let dir = fx.tmp.path().to_path_buf();
    let cwd = dir.join("cwd");
    let empty_bin = dir.join("emptybin");
    let out = dir.join("out");
    for d in [&cwd, &empty_bin, &out] {
        fs::create_dir_all(d).unwrap();
    }
    let mut g =
        ArgGen { rng: Rng::new(0x0a26_5eed_1234_5678), dir: &dir, nowhere: format!("/nonexistent-{}", fx.token) };
    // Failures by kind, with up to three examples each.
    let mut failures: std::collections::BTreeMap<&str, (usize, Vec<String>)> = Default::default();
    let mut fail = |kind: &'static str, what: String| {
        let e = failures.entry(kind).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(what);
        }
    };
    let mut codes = std::collections::BTreeMap::new();
    let runs: usize = std::env::var("FAULTS_ARGV_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    if let Some(seed) = std::env::var("FAULTS_ARGV_SEED").ok().and_then(|v| v.parse().ok()) {
        g.rng = Rng::new(seed);
    }
    // Fixed edge cases first (class 10), then the generated ones.
    let id = format!("--id={}fixed", fx.token);
    let rt = format!("--runtime={}/runtime", g.nowhere);
    // Lines that may start a shim name its pidfile, so that it is reaped.
    let sp = |k: usize| -> OsString {
        let mut a = OsString::from("--shim-pidfile=");
        a.push(dir.join(format!("shim-{k}.pid")));
        a
    };
    let fixed: Vec<Vec<OsString>> = vec![
        vec!["--help".into()],
        vec!["-h".into()],
        vec!["--version".into()],
        vec![],
        vec!["--id".into()],
        vec!["--id=".into()],
        vec![id.clone().into(), os(b"\xff\xfe")],
        vec![id.clone().into(), rt.clone().into(), sp(7), "--sync-fd".into(), "99".into()],
        vec![id.clone().into(), rt.clone().into(), sp(8), "--timeout".into(), "-1".into()],
        vec![id.clone().into(), rt.clone().into(), sp(9), "--exit-command".into(), "relative/cmd".into()],
        vec![id.clone().into(), rt.clone().into(), sp(10), "--log-level".into(), "loud\n2nd line".into()],
        vec!["-c".into(), "x".into(), "-u".into(), "x".into(), "-r".into(), format!("{}/rt", g.nowhere).into()],
        vec![id.clone().into(), rt.clone().into(), sp(12)],
        vec![id.clone().into(), rt.clone().into(), sp(13), "--sync".into()],
        vec![os(&[b'i'; 100_000]), "--zz".into()],
    ];
    for n in 0..runs + fixed.len() {
        let class = if n < fixed.len() { 10 } else { n % 10 };
        let mut args: Vec<OsString> = vec![format!("--log-tag={}", fx.token).into()];
        if class == 10 {
            args.extend(fixed[n].iter().cloned());
        }
        let k = if class == 10 { 0 } else { g.rng.below(12) };
        for _ in 0..k {
            for w in g.words() {
                args.push(os(&w));
            }
        }
        let shim_pidfile = dir.join(format!("shim-{n}.pid"));
        match class {
            10 => {}
            0..=6 => {
                args.push("--zz-bogus-1".into());
                args.push("--zz-bogus-2".into());
            }
            7 | 8 => {
                for _ in 0..2 {
                    args.push(format!("--runtime={}/runtime", g.nowhere).into());
                }
                for _ in 0..2 {
                    args.push(format!("--id={}{n}", fx.token).into());
                }
                for _ in 0..2 {
                    let mut a = OsString::from("--shim-pidfile=");
                    a.push(&shim_pidfile);
                    args.push(a);
                }
            }
            _ => {
                let w = if n % 20 == 9 { "--help" } else { "--version" };
                args.push(w.into());
                args.push(w.into());
            }
        }
        let l = Launcher::new().args(&args).cwd(&cwd).env("PATH", &empty_bin).env("TMPDIR", &dir);
        let r = l.run(&out);
        let code = r.status.code();
        *codes
            .entry(format!(
                "{} exit {code:?}",
                match class {
                    0..=6 => "bogus-tail",
                    7 | 8 => "no-runtime",
                    9 => "help",
                    _ => "fixed",
                }
            ))
            .or_insert(0) += 1;
        let show = || {
            format!(
                "run {n}: argv {:?}\n  exit {:?}\n  stderr {:?}\n  stdout {:?}",
                args.iter()
                    .map(|a| {
                        let s = a.to_string_lossy();
                        if s.len() > 120 {
                            format!("{}...({} bytes)", &s[..100], s.len())
                        } else {
                            s.into_owned()
                        }
                    })
                    .collect::<Vec<_>>(),
                r.status,
                String::from_utf8_lossy(&r.stderr[..r.stderr.len().min(400)]),
                String::from_utf8_lossy(&r.stdout[..r.stdout.len().min(200)])
            )
        };
        match code {
            None => fail("killed by a signal", show()),
            Some(0) => {
                if class <= 6 {
                    fail("a line ending in unknown options was accepted", show());
                } else if class == 9 && r.stdout.is_empty() {
                    fail("--help/--version printed nothing", show());
                }
            }
            Some(1) | Some(2) => {
                if r.stderr.is_empty() {
                    fail("an error exit with nothing on stderr", show());
                } else if !one_line(&r.stderr) {
                    fail("the error message is not exactly one line (an argument is echoed raw)", show());
                }
            }
            Some(_) => fail("exit status outside 0-2", show()),
        }
        // Whatever was started must end by itself (its create cannot work).
        if let Some(p) = fs::read_to_string(&shim_pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            fx.track(p);
            wait_pid_gone(p, "a shim started by a generated command line");
        }
        let stray = find_shims(&fx.token);
        if !stray.is_empty() {
            fail("shims still running after the run", format!("{stray:?}: {}", show()));
            for p in stray {
                // SAFETY: kill(2) of a shim this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
                fx.track(p);
                wait_pid_gone(p, "a stray shim");
            }
        }
    }
    eprintln!("command lines: {} runs: {codes:?}", runs + fixed.len());
    assert!(fx.runc_list().is_empty(), "a generated command line created a container");
    let report: Vec<String> =
        failures.iter().map(|(k, (n, ex))| format!("{n} runs: {k}; for example:\n{}", ex.join("\n"))).collect();
    assert!(failures.is_empty(), "generated command lines broke the rules:\n{}", report.join("\n\n"));
}

// ---------------------------------------------------------------------------
// 13. hostile ctl FIFO lines

/// Whether the shim would act on this ctl line as a resize (the spec's
/// rules: at most 64 bytes, three integers split by spaces, tabs or CRs,
/// type 1, sizes 0..=1000).
fn ctl_resizes(line: &[u8]) -> bool {
    if line.len() > 64 {
        return false;
    }
    let words: Vec<&[u8]> = line.split(|&b| b == b' ' || b == b'\t' || b == b'\r').filter(|w| !w.is_empty()).collect();
    let int = |w: &[u8]| -> Option<i64> {
        let (neg, d) = match w.split_first() {
            Some((b'-', r)) => (true, r),
            Some((b'+', r)) => (false, r),
            _ => (false, w),
        };
        if d.is_empty() || d.len() > 9 || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = std::str::from_utf8(d).ok()?.parse::<i64>().ok()?;
        Some(if neg { -v } else { v })
    };
    if words.len() != 3 {
        return false;
    }
    match (int(words[0]), int(words[1]), int(words[2])) {
        (Some(1), Some(h), Some(w)) => (0..=1000).contains(&h) && (0..=1000).contains(&w),
        _ => false,
    }
}

// Proves hostile ctl input changes nothing: 300 lines of random bytes,
// near-miss commands (wrong counts, types, signs, out-of-range sizes, NULs,
// non-ASCII digits), over-long lines (one a valid resize padded to 65
// bytes), long random text, empty lines and reopen commands, written in
// random pieces, leave a --terminal container's size at the 11x22 set
// before, and the shim running. A valid resize padded to exactly 64 bytes
// acts; a final `1 30 70` makes `stty size` in the container say `30 70`.
// The diag file lists the ignored lines.
#[test]
fn ctl_fifo_garbage() {
    let fx = Fixture::new("f-ctl");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl, diag) = (c.dir.join("attach.sock"), c.dir.join("ctl"), c.dir.join("diag.txt"));
    let l =
        fx.launcher(&c).opt("--attach", &sock).opt("--ctl", &ctl).opt("--diag", &diag).args(&["--terminal", "--stdin"]);
    fx.launch_ok(&c, l);
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    let mut cl = Target::new(&sock).connect();
    cl.send(b"echo up-$((6*7))\n");
    cl.read_until(b"up-42", WAIT);
    ctl_send(&ctl, b"1 11 22\n");
    let size_is = |rows, cols| {
        wait_until_or(
            &format!("the container's pty to be {rows}x{cols}"),
            WAIT,
            || (proc_tty_size(pid) == Some((rows, cols))).then_some(()),
            || format!("size now {:?}", proc_tty_size(pid)),
        )
    };
    size_is(11, 22);

    let mut rng = Rng::new(0xc71_f1f0);
    let near: &[&[u8]] = &[
        b"1 30",
        b"1 30 70 5",
        b"3 1 1",
        b"0 5 5",
        b"1 -1 5",
        b"1 1001 5",
        b"1 99999999999 5",
        b"x 1 1",
        b"1 5 5x",
        b"1\x005 5",
        b"1 5\x0c5",
        b"\xd9\xa1 \xd9\xa5 \xd9\xa5",
        b"1,5,5",
        b"1  5  ",
        b"--1 5 5",
        b"1 0x10 5",
        b"1 5 5;2 0 0",
        b"2 0 0",
        b"2 0 0\r",
        b"\x1b[8;5;5t",
    ];
    let mut stream: Vec<u8> = vec![];
    let mut kinds = [0usize; 6];
    for _ in 0..300 {
        let k = rng.below(6);
        kinds[k] += 1;
        let mut line: Vec<u8> = match k {
            0 => {
                let n = rng.below(200);
                rng.bytes(n).into_iter().filter(|&b| b != b'\n').collect()
            }
            1 => rng.pick(near).to_vec(),
            2 => {
                let mut l = b"1 20 20".to_vec();
                let (n, pad) = (65 + rng.below(300), if rng.chance(50) { b' ' } else { b'\t' });
                l.resize(n, pad);
                l
            }
            3 => {
                let n = 1000 + rng.below(4000);
                (0..n).map(|_| b' ' + (rng.next() % 95) as u8).collect()
            }
            4 => vec![],
            _ => b"2 0 0".to_vec(),
        };
        if ctl_resizes(&line) {
            line.insert(0, b'x');
        }
        stream.extend_from_slice(&line);
        stream.push(b'\n');
    }
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().write(true).open(&ctl).unwrap();
        let mut i = 0;
        while i < stream.len() {
            let n = (1 + rng.below(300)).min(stream.len() - i);
            f.write_all(&stream[i..i + n]).unwrap();
            i += n;
            if rng.chance(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    wait_until("the shim to read all of the ctl garbage", WAIT, || (fifo_pending(&ctl) == 0).then_some(()));
    // The shim has consumed it all: one more round trip through it.
    cl.send(b"echo still-$((7*6))\n");
    cl.read_until(b"still-42", WAIT);
    assert!(pid_alive(shim), "the shim died of ctl garbage");
    assert_eq!(proc_tty_size(pid), Some((11, 22)), "ctl garbage changed the terminal size");

    // The 64-byte limit: 65 bytes are dropped, 64 act.
    let mut l65 = b"1 44 44".to_vec();
    l65.resize(65, b' ');
    l65.push(b'\n');
    ctl_send(&ctl, &l65);
    let mut l64 = b"1 20 20".to_vec();
    l64.resize(64, b' ');
    l64.push(b'\n');
    ctl_send(&ctl, &l64);
    size_is(20, 20);
    ctl_send(&ctl, b"1 30 70\n");
    size_is(30, 70);
    cl.send(b"stty size\n");
    cl.read_until(b"30 70", WAIT);
    let d = read_text(&diag);
    let ignored = d.matches("ignored a malformed control line").count();
    eprintln!("ctl garbage: {} bytes in 300 lines (kinds {kinds:?}); {ignored} ignored-line diagnostics", stream.len());
    assert!(ignored > 100, "the diag file should list the ignored lines: {ignored}");
    assert!(d.contains("too long"), "over-long lines are reported as such");
    cl.send(b"exit 0\n");
    assert_exited(&c.wait_status(), 0, 0);
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 14. paths

/// A path longer than PATH_MAX (4096) under `base`.
fn overlong(base: &Path, leaf: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    while p.as_os_str().len() < 4200 {
        p.push("d".repeat(200));
    }
    p.push(leaf);
    p
}

// Proves bad paths are errors the manager sees before the shim detaches:
// --log, --status-file and --exit-dir longer than PATH_MAX, a --log,
// --diag or --shim-pidfile in a missing directory, a missing --exit-dir:
// the launcher exits 1 with one line naming the problem, and nothing runs
// (no shim, no container). Attach socket and ctl FIFO paths are checked
// after detaching: a missing directory there fails the create, cleanly.
#[test]
fn bad_paths_fail_before_detaching() {
    let fx = Fixture::new("f-paths");
    let nowhere = PathBuf::from(format!("/nonexistent-{}", fx.token));
    type Case = (&'static str, &'static str, PathBuf, &'static str);
    let cases: Vec<Case> = vec![
        ("long log", "--log", overlong(fx.tmp.path(), "ctr.log"), "--log path is too long"),
        ("long status", "--status-file", overlong(fx.tmp.path(), "status"), "--status-file path is too long"),
        ("long exit dir", "--exit-dir", overlong(fx.tmp.path(), "exits"), "--exit-dir path is too long"),
        ("missing log dir", "--log", nowhere.join("dir/x.log"), "cannot open log"),
        ("missing diag dir", "--diag", nowhere.join("dir/diag"), "cannot open --diag"),
        ("missing exit dir", "--exit-dir", nowhere.join("exits"), "--exit-dir"),
        ("missing shim pidfile dir", "--shim-pidfile", nowhere.join("shim.pid"), "shim pidfile"),
    ];
    for (what, opt, path, want) in cases {
        let c = fx.bundle(&["true"]);
        let r = fx.launch(&c, fx.launcher(&c).opt(opt, &path));
        let err = r.stderr_str();
        assert_eq!(r.status.code(), Some(1), "{what}: launcher exit; stderr {err:?}");
        assert!(one_line(&r.stderr), "{what}: want one line on stderr, got {err:?}");
        assert!(err.contains(want), "{what}: {err:?} should say {want:?}");
        assert!(find_shims(&fx.token).is_empty(), "{what}: a shim was started");
        assert!(fx.runc_list().is_empty(), "{what}: a container was created");
        assert!(!c.status.exists(), "{what}: a status file was written");
        eprintln!("{what}: {}", err.trim().chars().take(150).collect::<String>());
    }
    // Checked after detaching: the create fails and nothing is left.
    for (what, opt, leaf) in [("attach", "--attach", "sock"), ("ctl", "--ctl", "ctl")] {
        for path in [nowhere.join(leaf), overlong(fx.tmp.path(), leaf)] {
            let c = fx.bundle(&["true"]);
            let r = fx.launch(&c, fx.launcher(&c).opt(opt, &path));
            let err = r.stderr_str();
            assert_eq!(r.status.code(), Some(1), "{what}: launcher exit; stderr {err:?}");
            assert!(err.contains(what), "{what}: {err:?}");
            assert_nothing_left(&fx, &c, &[]);
            assert!(fx.runc_list().is_empty(), "{what}: a container was created");
            eprintln!("{what} in a bad place: {}", err.trim().chars().take(150).collect::<String>());
        }
    }
}

// Proves non-UTF-8 bytes in paths are just bytes: a log, a status file and
// an exit dir whose names hold \xff \xfe \x01 work, and the files with
// those byte names exist afterwards with the expected content.
#[test]
fn non_utf8_paths_work() {
    let fx = Fixture::new("f-nonutf8");
    let mut c = fx.bundle(&["sh", "-c", "echo non-utf8-ok; exit 3"]);
    c.log = c.dir.join(std::ffi::OsStr::from_bytes(b"log-\xff\xfe\x01.txt"));
    c.status = c.dir.join(std::ffi::OsStr::from_bytes(b"status-\xff"));
    c.exit_dir = c.dir.join(std::ffi::OsStr::from_bytes(b"exits-\xfe\x80"));
    fs::create_dir(&c.exit_dir).unwrap();
    fx.launch_ok(&c, fx.launcher(&c));
    let shim = c.shim_pid();
    fx.start(&c);
    assert_exited(&c.wait_status(), 3, 0);
    assert_eq!(c.wait_exit_file(), "3");
    let names: Vec<Vec<u8>> =
        fs::read_dir(&c.dir).unwrap().filter_map(|e| Some(e.ok()?.file_name().as_bytes().to_vec())).collect();
    assert!(names.iter().any(|n| n == b"log-\xff\xfe\x01.txt"), "no log with the byte name: {names:?}");
    assert_eq!(c.log().stream(Stream::Stdout), b"non-utf8-ok\n");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 15. JSON escaping of the runtime's error

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

// ---------------------------------------------------------------------------
// 16. modes of what the shim creates

// Proves nothing the shim creates is world-writable, even under umask 0
// (set for the launcher only): attach socket 0700, ctl FIFO 0660, log and
// diag 0600, the shim pidfile, status file and exit file not writable by
// group or others.
#[test]
fn created_files_are_not_world_writable() {
    let fx = Fixture::new("f-modes");
    let c = fx.bundle(&["cat"]);
    let (sock, ctl, diag) = (c.dir.join("attach.sock"), c.dir.join("ctl"), c.dir.join("diag.txt"));
    let inner = fx.launcher(&c).opt("--attach", &sock).opt("--ctl", &ctl).opt("--diag", &diag).arg("--stdin");
    fx.launch_ok(&c, wrapped("umask 000", inner));
    let shim = c.shim_pid();
    let mode = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        (m.file_type(), m.mode() & 0o7777)
    };
    let (t, m) = mode(&sock);
    assert!(t.is_socket() && m == 0o700, "attach socket: {t:?} {m:o}");
    let (t, m) = mode(&ctl);
    assert!(t.is_fifo() && m == 0o660, "ctl FIFO: {t:?} {m:o}");
    assert_eq!(mode(&c.log).1, 0o600, "log");
    assert_eq!(mode(&diag).1, 0o600, "diag");
    let cl = Target::new(&sock).connect();
    fx.start(&c);
    cl.send(b"bye\n");
    cl.shutdown_wr();
    assert_exited(&c.wait_status(), 0, 0);
    c.wait_exit_file();
    c.wait_no_shim(Some(shim));
    let mut seen = vec![];
    for e in fs::read_dir(&c.dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "bundle" || name.starts_with("launcher-") {
            continue;
        }
        let (t, m) = mode(&e.path());
        seen.push(format!("{name} {m:o}"));
        if t.is_dir() {
            continue; // made by the test
        }
        assert!(m & 0o022 == 0, "{name} is group- or world-writable: {m:o}");
    }
    for e in fs::read_dir(&c.exit_dir).unwrap().flatten() {
        let (_, m) = mode(&e.path());
        seen.push(format!("exits/{} {m:o}", e.file_name().to_string_lossy()));
        assert!(m & 0o022 == 0, "exit file {:?} is group- or world-writable: {m:o}", e.file_name());
    }
    eprintln!("modes under umask 0: socket 700, FIFO 660; after the exit: {seen:?}");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// 17. descriptors, and 18. oom_score_adj

/// An exit command that records its descriptors (`ls -l /proc/self/fd`)
/// and its oom_score_adj into files beside it.
fn exit_command_script(dir: &Path) -> PathBuf {
    let p = dir.join("exit-cmd.sh");
    write_script(
        &p,
        &format!(
            "#!/bin/sh\nls -l /proc/self/fd >'{0}/exit-fds.tmp'\ncat /proc/self/oom_score_adj >'{0}/exit-oom.tmp'\n\
             mv '{0}/exit-oom.tmp' '{0}/exit-oom.txt'\nmv '{0}/exit-fds.tmp' '{0}/exit-fds.txt'\n",
            dir.display()
        ),
    );
    p
}

// Proves no shimlet descriptor reaches the container or the exit command
// with every option that opens one on (--attach, --ctl, --terminal,
// --diag, --stdin, a log and an exit command): the container's `ls -1
// /proc/self/fd` shows 0 1 2 and ls's own 3, its process has just 0 1 2
// seen from the host, and the exit command's `ls -l /proc/self/fd` shows 0
// and 2 on /dev/null, 1 on its output file and ls's own 3, nothing else.
#[test]
fn no_descriptor_reaches_container_or_exit_command() {
    let fx = Fixture::new("f-fds");
    let c = tty_bundle(&fx, &["sh", "-c", "ls -1 /proc/self/fd; echo end-of-list; exec sleep 1000"]);
    let (sock, ctl, diag) = (c.dir.join("attach.sock"), c.dir.join("ctl"), c.dir.join("diag.txt"));
    let cmd = exit_command_script(&c.dir);
    let l = fx
        .launcher(&c)
        .opt("--attach", &sock)
        .opt("--ctl", &ctl)
        .opt("--diag", &diag)
        .opt("--exit-command", &cmd)
        .args(&["--terminal", "--stdin"])
        .sync(Sync::Fd)
        .leak_fd(77);
    let r = fx.launch_ok(&c, l);
    let pid = r.sync_pid() as i32;
    let shim = c.shim_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "end-of-list");
    let out = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).into_owned();
    let listed: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).take_while(|l| *l != "end-of-list").collect();
    assert_eq!(listed, ["0", "1", "2", "3"], "descriptors seen by ls in the container (3 is ls's own)");
    wait_until("the container to exec sleep", WAIT, || {
        (fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim() == "sleep").then_some(())
    });
    let fds = proc_fds(pid);
    assert_eq!(fds.iter().map(|f| f.0).collect::<Vec<_>>(), [0, 1, 2], "the container's descriptors: {fds:?}");
    eprintln!("shim descriptors while serving: {:?}", proc_fds(shim));
    kill(pid, libc::SIGKILL);
    assert_exited(&c.wait_status(), 137, 9);
    let listing =
        wait_until("the exit command's listing", WAIT, || fs::read_to_string(c.dir.join("exit-fds.txt")).ok());
    c.wait_no_shim(Some(shim));
    let fds: Vec<(i32, String)> = listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            Some((left.rsplit(' ').next()?.parse().ok()?, target.to_string()))
        })
        .collect();
    let nums: Vec<i32> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, [0, 1, 2, 3], "the exit command's descriptors:\n{listing}");
    assert_eq!(fds[0].1, "/dev/null", "{listing}");
    assert_eq!(fds[2].1, "/dev/null", "{listing}");
    assert!(fds[1].1.ends_with("exit-fds.tmp"), "{listing}");
    assert!(fds[3].1.starts_with("/proc/"), "{listing}");
    end(&fx, &c, shim);
}

/// Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE in
/// its effective set): without it no process can go below 0, the shim's
/// -1000 included.
fn can_lower_oom_score_adj() -> bool {
    proc_status(std::process::id() as i32)
        .and_then(|s| u64::from_str_radix(s.get("CapEff")?, 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0) // CAP_SYS_RESOURCE
}

// Proves the OOM score adjustments: the shim protects itself (-1000), the
// runtime, the container and the exit command get 0, even when the
// launcher itself ran with 300. (Where the tests lack CAP_SYS_RESOURCE, as
// in some sandboxes, -1000 is impossible: then the shim must keep the
// launcher's 300 and hand that on unchanged, and the exit command gets 0.)
#[test]
fn oom_score_adj_of_shim_runtime_container_exit_command() {
    let fx = Fixture::new("f-oom");
    let c = fx.bundle(&["sh", "-c", "cat /proc/self/oom_score_adj; exec sleep 1000"]);
    let rt = fake_runtime("oomprobe.sh", &c.dir, 0o755);
    let cmd = exit_command_script(&c.dir);
    let inner = fx.launcher(&c).opt("--runtime", &rt).opt("--exit-command", &cmd);
    fx.launch_ok(&c, wrapped("echo 300 > /proc/self/oom_score_adj", inner));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "\n");
    let container = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).trim().to_string();
    let runtime = fs::read_to_string(c.dir.join("runtime-oom.txt")).unwrap().trim().to_string();
    let shim_adj = oom_score_adj(shim);
    kill(pid, libc::SIGKILL);
    assert_exited(&c.wait_status(), 137, 9);
    let exit_cmd =
        wait_until("the exit command's oom_score_adj", WAIT, || fs::read_to_string(c.dir.join("exit-oom.txt")).ok());
    eprintln!(
        "oom_score_adj: launcher 300, shim {shim_adj:?}, runtime {runtime}, container {container}, exit command {}",
        exit_cmd.trim()
    );
    if can_lower_oom_score_adj() {
        assert_eq!(shim_adj, Some(-1000), "the shim's own");
        assert_eq!(runtime, "0", "the runtime's");
        assert_eq!(container, "0", "the container's");
    } else {
        eprintln!("oom_score_adj: no CAP_SYS_RESOURCE here: -1000 cannot be tested, checking the fallback");
        assert_eq!(shim_adj, Some(300), "the shim's own, when it cannot lower it");
        assert_eq!(runtime, "300", "the runtime's, when the shim could not protect itself");
        assert_eq!(container, "300", "the container's, when the shim could not protect itself");
    }
    assert_eq!(exit_cmd.trim(), "0", "the exit command's");
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
