//! Integration tests of shimlet against real runc containers (run as root).
//!
//! Each test has its own temp dir, runc root and container ids (see
//! common/mod.rs), so they run in parallel; waits are bounded and nothing is
//! timed.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::*;

fn lines(v: &[(&str, bool)]) -> Vec<(Vec<u8>, bool)> {
    v.iter().map(|(s, t)| (s.as_bytes().to_vec(), *t)).collect()
}

// ---------------------------------------------------------------------------
// the harness itself (no shim involved)

// Proves the helpers work without the shim: the rootfs and bundle builders
// make a bundle that `runc run` runs (output and exit code come through), and
// the fixture's runc root is empty afterwards.
#[test]
fn harness_runc_runs_a_bundle() {
    let fx = Fixture::new("harness");
    let c = fx.bundle(&["sh", "-c", "echo hi from $(cat /etc/who); printf err >&2; exit 3"]);
    c.add_file("/etc/who", b"busybox\n");
    let out_p = c.dir.join("run.out");
    let err_p = c.dir.join("run.err");
    let mut child = fx
        .runc()
        .args(["run", "--bundle"])
        .arg(&c.bundle)
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).unwrap())
        .stderr(fs::File::create(&err_p).unwrap())
        .spawn()
        .unwrap();
    let st = wait_child(&mut child, "runc run", WAIT);
    assert_eq!(st.code(), Some(3), "runc run: stderr {:?}", String::from_utf8_lossy(&read_all(&err_p)));
    assert_eq!(read_all(&out_p), b"hi from busybox\n");
    assert_eq!(read_all(&err_p), b"err");
    fx.delete_all();
    assert!(fx.runc_list().is_empty());
}

// Proves the launcher helper really hands over the sync socket (at the number
// given by --sync-fd) and the extra descriptor 77, so the descriptor test
// cannot pass vacuously: a (busybox) shell stands in for shimlet, lists its descriptors
// and answers on the sync socket.
#[test]
fn harness_launcher_passes_descriptors() {
    let dir = TempDir::new("harness-fds");
    let mut l = Launcher::new()
        .args(&["sh", "-c", r#"ls /proc/$$/fd | tr '\n' ' '; eval "echo '{\"pid\": 1}' >&$2""#, "sh"])
        .sync(Sync::Fd)
        .leak_fd(77);
    // busybox sh, since dash cannot redirect to descriptors above 9.
    l.bin = Some(busybox_static());
    let r = l.run(dir.path());
    assert!(r.status.success(), "stderr {:?}", r.stderr_str());
    let fds: Vec<String> = String::from_utf8_lossy(&r.stdout).split_whitespace().map(|s| s.to_string()).collect();
    let sync_fd = r.args.last().unwrap().to_str().unwrap().to_string();
    assert!(fds.contains(&"77".to_string()), "fd 77 not inherited: {fds:?}");
    assert!(fds.contains(&sync_fd), "sync fd {sync_fd} not inherited: {fds:?}");
    assert_eq!(r.sync_pid(), 1);
    assert!(r.sync.as_ref().unwrap().rest().is_empty(), "EOF once the writer is gone");
}

// Proves the log and status parsers accept the specified format, reassemble
// P/F records per stream and reject malformed input.
#[test]
fn harness_parsers() {
    let ts = "2026-11-28T19:33:42.123456789+00:00";
    let data = format!(
        "{ts} stdout F hello\n{ts} stderr P par\n{ts} stdout F \n{ts} stderr F tial\n{ts} stdout P no newline\n"
    );
    let log = Log::parse(data.as_bytes()).unwrap();
    assert_eq!(log.stream(Stream::Stdout), b"hello\n\nno newline");
    assert_eq!(log.stream(Stream::Stderr), b"partial\n");
    assert_eq!(log.lines(Stream::Stdout), lines(&[("hello", true), ("", true), ("no newline", false)]));
    assert_eq!(log.lines(Stream::Stderr), lines(&[("partial", true)]));
    for bad in [
        format!("{ts} stdout F hello"),                              // no final newline
        format!("{ts} stdout X hello\n"),                            // bad tag
        format!("{ts} stdin F hello\n"),                             // bad stream
        format!("{ts} stdout F\n"),                                  // no space after the tag
        "2026-11-28T19:33:42.123456+00:00 stdout F x\n".to_string(), // 6 digits
        "2026-11-28T19:33:42.123456789Z stdout F x\n".to_string(),   // no numeric offset
    ] {
        assert!(Log::parse(bad.as_bytes()).is_err(), "accepted {bad:?}");
    }
    let st = StatusLine::parse(format!("exited code=137 signal=9 oom=0 pid=42 at={ts} lost=0\n").as_bytes()).unwrap();
    assert_eq!((st.num("code"), st.num("signal"), st.num("pid")), (137, 9, 42));
    assert!(StatusLine::parse(b"failed code=1\n").is_ok());
    for bad in [
        format!("exited code=137 signal=9 oom=0 pid=42 at={ts} lost=0"),
        format!("exited code=137 signal=9 oom=0 pid=42 at={ts}\n"), // no lost=
        format!("exited code=3 signal=9 oom=0 pid=42 at={ts}\n"),
        format!("exited code=3 oom=0 pid=42 at={ts}\n"),
        format!("done code=3 signal=0 oom=0 pid=42 at={ts}\n"),
    ] {
        assert!(StatusLine::parse(bad.as_bytes()).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------
// 1. output

// Proves stdout and stderr lines land in the log under the right stream, that
// full lines (including an empty one) are F records, and that a last line
// without a newline is kept, as a P record, on both streams.
#[test]
fn stdout_and_stderr_records() {
    let fx = Fixture::new("streams");
    let c = fx.bundle(&[
        "sh",
        "-c",
        "echo out-1; echo err-1 >&2; echo; echo out-3; printf 'err-2 no newline' >&2; printf 'out-4 no newline'",
    ]);
    fx.launch_ok(&c, fx.launcher(&c));
    let pid = c.container_pid();
    fx.start(&c);
    let st = c.wait_status();
    assert_exited_pid(&st, 0, 0, pid);
    c.wait_no_shim(Some(c.shim_pid()));

    let log = c.log();
    assert_eq!(
        log.lines(Stream::Stdout),
        lines(&[("out-1", true), ("", true), ("out-3", true), ("out-4 no newline", false)]),
        "stdout lines; log:\n{}",
        c.log_tail()
    );
    assert_eq!(log.lines(Stream::Stderr), lines(&[("err-1", true), ("err-2 no newline", false)]), "stderr lines");
    for s in [Stream::Stdout, Stream::Stderr] {
        let recs = log.records_of(s);
        assert!(recs.last().unwrap().partial, "the last {s:?} record must be P (no newline)");
        assert!(recs.iter().any(|r| !r.partial), "{s:?} has F records for its full lines");
    }
}

// Proves 64 MiB on stdout (while stderr carries 100000 lines at the same
// time) arrive complete and in order: every byte is in the reassembled
// streams, and the last, unterminated piece is kept.
#[test]
fn large_output_arrives_complete() {
    const TOTAL: usize = 64 << 20;
    let line = "0123456789abcdef".repeat(4);
    let fx = Fixture::new("large");
    let script = format!("seq 1 100000 >&2 & yes {line} | head -c {TOTAL}; wait");
    let c = fx.bundle(&["sh", "-c", &script]);
    fx.launch_ok(&c, fx.launcher(&c));
    let pid = c.container_pid();
    fx.start(&c);
    let st = c.wait_status_for(LONG_WAIT);
    assert_exited_pid(&st, 0, 0, pid);
    c.wait_no_shim(Some(c.shim_pid()));

    let log = c.log();
    let out = log.stream(Stream::Stdout);
    let full = format!("{line}\n");
    let n = TOTAL / full.len();
    let mut want = full.repeat(n).into_bytes();
    want.extend_from_slice(&full.as_bytes()[..TOTAL - want.len()]);
    assert_eq!(out.len(), TOTAL, "stdout byte count");
    assert!(out == want, "stdout content: {}", first_difference(&out, &want));
    let out_lines = log.lines(Stream::Stdout);
    assert_eq!(out_lines.len(), n + 1, "stdout line count");
    assert_eq!(out_lines.last().unwrap(), &(full.as_bytes()[..TOTAL % full.len()].to_vec(), false));

    let err = log.stream(Stream::Stderr);
    let want_err: String = (1..=100000).map(|i| format!("{i}\n")).collect();
    assert!(err == want_err.as_bytes(), "stderr content: {}", first_difference(&err, want_err.as_bytes()));
}

// Proves arbitrary bytes survive exactly on both streams: \r, \r\n, NULs,
// invalid UTF-8, blank lines, text that looks like record fields, a 200 kB
// line, random binary data, and a last line without a newline.
#[test]
fn binary_bytes_survive() {
    let mut data: Vec<u8> = vec![];
    data.extend_from_slice(b"plain line\n\r\ncarriage\rreturn\r\n\n\n\n");
    data.extend_from_slice(b"nul\0in\0the\0middle\n");
    data.extend_from_slice(&[0u8; 100]);
    data.extend_from_slice(b"\ninvalid utf-8 \xff\xfe \xc3\x28 \xed\xa0\x80 \xf0\x9f\n");
    data.extend_from_slice(b"2026-11-28T19:33:42.123456789+00:00 stderr P fake record\n");
    data.extend_from_slice(b"  leading and trailing spaces  \n\t\x1b[31mescape\x1b[0m\x7f\n");
    data.extend_from_slice(&pseudo_random(1 << 20, 0x5eed_1234_abcd_0001));
    data.extend_from_slice(&vec![b'x'; 200_000]);
    data.extend_from_slice(b"\nlast line without a newline \xff\r");

    let fx = Fixture::new("binary");
    let c = fx.bundle(&["sh", "-c", "cat /data.bin; cat /data.bin >&2"]);
    c.add_file("/data.bin", &data);
    fx.launch_ok(&c, fx.launcher(&c));
    let pid = c.container_pid();
    fx.start(&c);
    assert_exited_pid(&c.wait_status(), 0, 0, pid);
    c.wait_no_shim(Some(c.shim_pid()));

    let log = c.log();
    for s in [Stream::Stdout, Stream::Stderr] {
        let got = log.stream(s);
        assert!(got == data, "{s:?} differs from /data.bin: {}", first_difference(&got, &data));
        assert!(log.records_of(s).last().unwrap().partial, "{s:?}: the unterminated end is a P record");
    }
}

// ---------------------------------------------------------------------------
// 4. exit codes

/// Runs `args` in a container under the shim, optionally SIGKILLs it, and
/// returns the status line, the exit-dir file and the container's pid.
fn exit_case(name: &str, args: &[&str], sigkill: bool) -> (StatusLine, String, i32) {
    let fx = Fixture::new(name);
    let c = fx.bundle(args);
    let r = fx.launch_ok(&c, fx.launcher(&c).sync(Sync::Fd));
    let pid = r.sync_pid() as i32;
    assert_eq!(pid, c.container_pid(), "the sync message's pid is the pidfile's (BUNDLE/pidfile)");
    fx.start(&c);
    if sigkill {
        kill(pid, libc::SIGKILL);
    }
    let st = c.wait_status();
    let exit_file = c.wait_exit_file();
    let shim = c.shim_pid();
    c.wait_no_shim(Some(shim));
    let rest = r.sync.as_ref().unwrap().rest();
    assert!(rest.is_empty(), "the sync descriptor got more than one line: {:?}", String::from_utf8_lossy(&rest));
    (st, exit_file, pid)
}

// Proves a clean exit is recorded as code=0 signal=0 in the status file and
// as "0" in EXIT_DIR/ID.
#[test]
fn exit_code_zero_recorded() {
    let (st, exit_file, pid) = exit_case("exit0", &["true"], false);
    assert_exited_pid(&st, 0, 0, pid);
    assert_eq!(exit_file, "0", "EXIT_DIR/ID holds the decimal status without a newline");
}

// Proves a non-zero exit code (3) is recorded in the status file and the exit dir.
#[test]
fn exit_code_three_recorded() {
    let (st, exit_file, pid) = exit_case("exit3", &["sh", "-c", "exit 3"], false);
    assert_exited_pid(&st, 3, 0, pid);
    assert_eq!(exit_file, "3");
}

// Proves a container killed by SIGKILL is recorded as code=137 signal=9, and
// as "137" in the exit dir.
#[test]
fn exit_by_sigkill_recorded() {
    let (st, exit_file, pid) = exit_case("kill9", &["sleep", "1000"], true);
    assert_exited_pid(&st, 137, 9, pid);
    assert_eq!(exit_file, "137");
}

// ---------------------------------------------------------------------------
// 5. create failures

/// Runs a failing create twice: with a sync descriptor (the launcher exits 0,
/// the sync line is `{"pid": -1, "message": ...}`) and without (the launcher
/// exits 1 with the error on stderr). Both times no shim remains, runc lists
/// nothing and the status file says `failed`.
fn create_fails(
    name: &str,
    make: &dyn Fn(&Fixture) -> (Container, Launcher),
    want_text: Option<&str>,
    want_code: Option<i64>,
) {
    let fx = Fixture::new(name);
    for mode in [Sync::Fd, Sync::None] {
        let (c, l) = make(&fx);
        let r = fx.launch(&c, l.sync(mode));
        let what = format!("{name} with sync {mode:?}");
        let text = if mode == Sync::None {
            assert_eq!(r.status.code(), Some(1), "{what}: launcher exit status; stderr {:?}", r.stderr_str());
            let e = r.stderr_str();
            assert!(!e.trim().is_empty(), "{what}: the launcher must print the runtime's error");
            e
        } else {
            assert!(r.status.success(), "{what}: with a sync fd the launcher exits 0; stderr {:?}", r.stderr_str());
            assert_eq!(r.sync_pid(), -1, "{what}: sync message {}", r.sync_text());
            let m = r.sync_message().unwrap_or_else(|| panic!("{what}: no string message in {}", r.sync_text()));
            assert!(!m.trim().is_empty(), "{what}: empty message in {}", r.sync_text());
            m
        };
        if let Some(t) = want_text {
            assert!(text.contains(t), "{what}: the error {text:?} should contain {t:?}");
        }
        let shim = fs::read_to_string(&c.shim_pidfile).ok().and_then(|s| s.trim().parse().ok());
        c.wait_no_shim(shim);
        assert!(find_shims(&fx.token).is_empty(), "{what}: a shim is left");
        let st = c.wait_status();
        assert_eq!(st.kind, "failed", "{what}: status line {:?}", st.raw);
        if let Some(code) = want_code {
            assert_eq!(st.num("code"), code, "{what}: the runtime's exit status in {:?}", st.raw);
        }
        assert!(fx.runc_list().is_empty(), "{what}: runc lists a container");
    }
}

// Proves a runtime path that does not exist makes create fail cleanly.
#[test]
fn create_fails_runtime_missing() {
    create_fails(
        "rt-missing",
        &|fx| {
            let c = fx.bundle(&["true"]);
            let l = fx.launcher(&c).opt("--runtime", c.dir.join("no-such-runtime"));
            (c, l)
        },
        None,
        None,
    );
}

// Proves a runtime that is not executable makes create fail cleanly.
#[test]
fn create_fails_runtime_not_executable() {
    create_fails(
        "rt-noexec",
        &|fx| {
            let c = fx.bundle(&["true"]);
            let rt = fake_runtime("fail.sh", &c.dir, 0o644);
            let l = fx.launcher(&c).opt("--runtime", rt);
            (c, l)
        },
        None,
        None,
    );
}

// Proves a bundle without config.json makes create fail, with runc's error
// (which names config.json) passed on.
#[test]
fn create_fails_without_config() {
    create_fails(
        "no-config",
        &|fx| {
            let c = fx.bare_bundle();
            build_rootfs(&c.rootfs);
            let l = fx.launcher(&c);
            (c, l)
        },
        Some("config.json"),
        Some(1),
    );
}

// Proves an invalid config.json makes create fail with runc's error passed on.
#[test]
fn create_fails_bad_json() {
    create_fails(
        "bad-json",
        &|fx| {
            let c = fx.bundle(&["true"]);
            fs::write(c.config_path(), b"{ \"ociVersion\": \"1.0.2\", not json").unwrap();
            let l = fx.launcher(&c);
            (c, l)
        },
        None,
        Some(1),
    );
}

// Proves the runtime's stderr is what is reported, exactly (JSON-escaped on
// the sync fd: quotes, a backslash and a tab), and that the failed status
// carries the runtime's exit status (1).
#[test]
fn create_fails_runtime_error_message() {
    create_fails(
        "rt-error",
        &|fx| {
            let c = fx.bundle(&["true"]);
            let rt = fake_runtime("fail.sh", &c.dir, 0o755);
            let l = fx.launcher(&c).opt("--runtime", rt);
            (c, l)
        },
        Some("fake runtime: \"create\" failed on purpose \\ tab:\there"),
        Some(1),
    );
}

// ---------------------------------------------------------------------------
// 6. the launcher's parent dies

/// Starts the launcher from an intermediate `sh -c '... &'` that exits at
/// once, or that stays (as `exec sleep`, same process) and is SIGKILLed; the
/// shim must carry on.
fn parent_dies(name: &str, kill_parent: bool) {
    let fx = Fixture::new(name);
    let c = fx.bundle(&["sh", "-c", "echo survived; exit 5"]);
    let l = fx.launcher(&c);
    let script = if kill_parent {
        r#""$0" "$@" >"$DIR/l.out" 2>"$DIR/l.err" </dev/null & echo $! >"$DIR/launcher.tmp"; mv "$DIR/launcher.tmp" "$DIR/launcher.pid"; exec sleep 1000"#
    } else {
        r#""$0" "$@" >"$DIR/l.out" 2>"$DIR/l.err" </dev/null & echo $! >"$DIR/launcher.tmp"; mv "$DIR/launcher.tmp" "$DIR/launcher.pid"; exit 0"#
    };
    let mut sh = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(shimlet_bin())
        .args(&l.args)
        .env("DIR", &c.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pf = c.dir.join("launcher.pid");
    wait_until("the intermediate shell to start the launcher", WAIT, || pf.exists().then_some(()));
    let launcher = read_pidfile(&pf);
    fx.track(launcher);
    if kill_parent {
        sh.kill().unwrap();
    }
    let sh_st = wait_child(&mut sh, "the intermediate shell", WAIT);
    if kill_parent {
        assert_eq!(sh_st.signal(), Some(libc::SIGKILL));
    }
    // The launcher was reparented to the test (a subreaper) unless the shell
    // reaped it first.
    if let Some(ws) = wait_pid_gone(launcher, "the orphaned launcher") {
        let err = fs::read_to_string(c.dir.join("l.err")).unwrap_or_default();
        assert_eq!(decode_wait(ws), (Some(0), None), "launcher exit; its stderr: {err:?}");
    }
    let shim = c.shim_pid();
    fx.track(shim);
    assert!(pid_alive(shim), "the shim must outlive its launcher's parent");
    let pid = c.container_pid();
    assert_eq!(
        fx.state(&c).map(|s| s["status"].as_str().unwrap_or_default().to_string()),
        Some("created".to_string()),
        "the container is created"
    );
    fx.start(&c);
    assert_exited_pid(&c.wait_status(), 5, 0, pid);
    assert_eq!(c.log().stream(Stream::Stdout), b"survived\n");
    c.wait_no_shim(Some(shim));
}

// Proves the shim and container survive when the launcher's parent exits
// right after starting it, and the exit is still recorded.
#[test]
fn launcher_parent_exits() {
    parent_dies("parent-exits", false);
}

// Proves the shim and container survive when the launcher's parent is
// SIGKILLed, and the exit is still recorded.
#[test]
fn launcher_parent_killed() {
    parent_dies("parent-killed", true);
}

// ---------------------------------------------------------------------------
// 7. signals

// Proves SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 sent to the shim reach
// the container (whose traps print them) without ending the shim, and that
// SIGTERM reaches it too; its trap's exit code 42 is recorded.
#[test]
fn signals_are_forwarded() {
    let fx = Fixture::new("signals");
    let script = r#"for s in INT QUIT HUP USR1 USR2; do trap "echo got-$s" $s; done
trap 'echo got-TERM; exit 42' TERM
echo ready
while :; do sleep 1000 & wait $!; done"#;
    let c = fx.bundle(&["sh", "-c", script]);
    fx.launch_ok(&c, fx.launcher(&c));
    let pid = c.container_pid();
    let shim = c.shim_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "ready\n");
    for (sig, name) in [
        (libc::SIGINT, "INT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
    ] {
        kill(shim, sig);
        c.wait_log_contains(Stream::Stdout, &format!("got-{name}\n"));
        assert!(pid_alive(shim), "the shim must survive SIG{name}");
        assert!(pid_alive(pid), "the container must survive SIG{name} (it has a trap)");
    }
    kill(shim, libc::SIGTERM);
    assert_exited_pid(&c.wait_status(), 42, 0, pid);
    c.wait_no_shim(Some(shim));
    assert!(contains(&c.log().stream(Stream::Stdout), b"got-TERM\n"));
}

// ---------------------------------------------------------------------------
// 8. descriptors

// Proves the container inherits only 0, 1 and 2: neither the sync socket nor
// an extra descriptor the launcher inherited (fd 77) reaches it. Checked
// inside (ls /proc/self/fd shows 0-2 plus its own directory fd 3) and from
// the host (/proc/PID/fd of the container's process).
#[test]
fn no_descriptor_leaks_into_container() {
    let fx = Fixture::new("fds");
    let c = fx.bundle(&["sh", "-c", "ls /proc/self/fd; echo end-of-list; exec sleep 1000"]);
    let r = fx.launch_ok(&c, fx.launcher(&c).sync(Sync::Fd).leak_fd(77));
    let pid = r.sync_pid() as i32;
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "end-of-list\n");
    let out = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).into_owned();
    let listed: Vec<&str> = out.lines().take_while(|l| *l != "end-of-list").collect();
    assert_eq!(listed, ["0", "1", "2", "3"], "descriptors seen by ls in the container (3 is ls's own)");
    wait_until("the container to exec sleep", WAIT, || {
        (fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim() == "sleep").then_some(())
    });
    let fds = proc_fds(pid);
    assert_eq!(fds.iter().map(|f| f.0).collect::<Vec<_>>(), [0, 1, 2], "the container's descriptors: {fds:?}");
    kill(pid, libc::SIGKILL);
    assert_exited_pid(&c.wait_status(), 137, 9, pid);
    c.wait_no_shim(Some(c.shim_pid()));
}

// ---------------------------------------------------------------------------
// 9. nothing left behind

// Proves the shim reaps everything: the runtime's create process leaves no
// zombie under the shim, the container is the shim's child (it subreaps), the
// container's process is gone (not a zombie) after its exit, the shim ends,
// and after `runc delete` no process, container or cgroup of the test remains.
#[test]
fn nothing_left_behind() {
    let fx = Fixture::new("leftovers");
    let c = fx.bundle(&["sh", "-c", "echo up; exec sleep 1000"]);
    fx.launch_ok(&c, fx.launcher(&c));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "up\n");
    wait_until_or(
        "no zombie child under the shim",
        WAIT,
        || zombie_children(shim).is_empty().then_some(()),
        || format!("zombies under the shim: {:?}", zombie_children(shim)),
    );
    assert_eq!(proc_ppid(pid), Some(shim), "the container's process is reparented to the shim (child subreaper)");
    kill(pid, libc::SIGKILL);
    assert_exited_pid(&c.wait_status(), 137, 9, pid);
    wait_until_or(
        "the container's process to be reaped",
        WAIT,
        || (!pid_exists(pid)).then_some(()),
        || format!("pid {pid} state {:?} parent {:?}", proc_state(pid), proc_ppid(pid)),
    );
    c.wait_no_shim(Some(shim));
    assert!(!pid_exists(shim), "the shim is gone (reaped by the test, its subreaper)");
    fx.delete_all();
    assert!(fx.runc_list().is_empty());
    let mentions: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| proc_cmdline(p).contains(&fx.token))
        .map(|p| format!("{p}: {}", proc_cmdline(p)))
        .collect();
    assert!(mentions.is_empty(), "processes still mention the container: {mentions:?}");
    let cgroups: Vec<String> = fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join(&c.id))
                .chain([std::path::PathBuf::from("/sys/fs/cgroup").join(&c.id)])
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(cgroups.is_empty(), "cgroups left after delete: {cgroups:?}");
}

// ---------------------------------------------------------------------------
// 10. command line

// Proves bad command lines (unknown option, option without its value,
// missing --id) exit 2 with one line on stderr naming the problem, and start
// no shim.
#[test]
fn usage_errors_exit_2() {
    let fx = Fixture::new("usage");
    let id = fx.new_id();
    let dir = fx.tmp.path();
    let b = dir.display().to_string();
    let log = dir.join("x.log").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--id", &id, "--bundle", &b, "--bogus-option"], "--bogus-option"),
        (vec!["--id", &id, "--bogus-option=1"], "--bogus-option"),
        (vec!["--id", &id, "--bundle", &b, "--log"], "--log"),
        (vec!["--bundle", &b, "--id"], "--id"),
        (vec!["--bundle", &b, "--log", &log], "id"),
        (vec![], "id"),
    ];
    for (args, needle) in cases {
        let r = Launcher::new().args(&args).run(dir);
        let err = r.stderr_str();
        assert_eq!(r.status.code(), Some(2), "{args:?}: exit status; stderr {err:?}");
        assert!(
            err.ends_with('\n') && err.matches('\n').count() == 1 && err.trim().len() > 3,
            "{args:?}: want exactly one line on stderr, got {err:?}"
        );
        assert!(err.contains(needle), "{args:?}: the message {err:?} should name {needle:?}");
        assert!(find_shims(&fx.token).is_empty(), "{args:?}: a shim was started");
    }
}

// Proves --help lists every option and exits 0, and --version prints a
// version and exits 0.
#[test]
fn help_and_version() {
    let dir = TempDir::new("help");
    let r = Launcher::new().arg("--help").run(dir.path());
    assert_eq!(r.status.code(), Some(0), "--help: stderr {:?}", r.stderr_str());
    let text = format!("{}{}", String::from_utf8_lossy(&r.stdout), r.stderr_str());
    for o in [
        "--id",
        "--bundle",
        "--runtime",
        "--runtime-arg",
        "--pidfile",
        "--shim-pidfile",
        "--log",
        "--status-file",
        "--exit-dir",
        "--sync-fd",
    ] {
        assert!(text.contains(o), "--help does not mention {o}:\n{text}");
    }
    let r = Launcher::new().arg("--version").run(dir.path());
    assert_eq!(r.status.code(), Some(0), "--version: stderr {:?}", r.stderr_str());
    let text = format!("{}{}", String::from_utf8_lossy(&r.stdout), r.stderr_str());
    assert!(text.chars().any(|ch| ch.is_ascii_digit()), "--version prints no version: {text:?}");
}

// ---------------------------------------------------------------------------
// 11. option forms and defaults

/// Runs a container whose script exits with `code` and checks everything the
/// options asked for: sync pid, pidfile, shim pidfile, log, status, exit dir.
fn check_full_run(fx: &Fixture, c: &Container, l: Launcher, pidfile: &std::path::Path, code: i64) {
    let r = fx.launch_ok(c, l);
    let pid = r.sync_pid() as i32;
    assert_eq!(read_pidfile(pidfile), pid, "the pidfile holds the container's pid");
    let shim = c.shim_pid();
    assert!(pid_alive(shim), "the shim pidfile names a live process");
    fx.start(c);
    assert_exited_pid(&c.wait_status(), code, 0, pid);
    assert_eq!(c.wait_exit_file(), code.to_string());
    c.wait_no_shim(Some(shim));
    assert_eq!(c.log().stream(Stream::Stdout), format!("code {code}\n").as_bytes());
}

// Proves every option is accepted in the `--opt=value` form (including
// --sync-fd=N, --runtime=PATH and --runtime-arg=--root=R) and honoured: the
// explicit --pidfile is used instead of BUNDLE/pidfile.
#[test]
fn options_in_equals_form() {
    let fx = Fixture::new("eqform");
    let c = fx.bundle(&["sh", "-c", "echo code 7; exit 7"]);
    let pidfile = c.dir.join("explicit.pid");
    let l = Launcher::new()
        .opt_eq("--id", &c.id)
        .opt_eq("--bundle", &c.bundle)
        .opt_eq("--runtime", runc_bin())
        .opt_eq("--runtime-arg", format!("--root={}", fx.runc_root.display()))
        .opt_eq("--pidfile", &pidfile)
        .opt_eq("--shim-pidfile", &c.shim_pidfile)
        .opt_eq("--log", &c.log)
        .opt_eq("--status-file", &c.status)
        .opt_eq("--exit-dir", &c.exit_dir)
        .sync(Sync::FdEq);
    check_full_run(&fx, &c, l, &pidfile, 7);
    assert!(!c.pidfile.exists(), "with --pidfile, BUNDLE/pidfile is not written");
}

// Proves every option is accepted in the `--opt value` form, including a
// --runtime-arg whose value starts with dashes and --runtime given as a bare
// name looked up in PATH.
#[test]
fn options_in_space_form() {
    let fx = Fixture::new("spform");
    let c = fx.bundle(&["sh", "-c", "echo code 8; exit 8"]);
    let pidfile = c.dir.join("explicit.pid");
    let l = Launcher::new()
        .opt("--id", &c.id)
        .opt("--bundle", &c.bundle)
        .opt("--runtime", "runc")
        .opt("--runtime-arg", format!("--root={}", fx.runc_root.display()))
        .opt("--pidfile", &pidfile)
        .opt("--shim-pidfile", &c.shim_pidfile)
        .opt("--log", &c.log)
        .opt("--status-file", &c.status)
        .opt("--exit-dir", &c.exit_dir)
        .sync(Sync::Fd);
    check_full_run(&fx, &c, l, &pidfile, 8);
}

// Proves the defaults: the bundle is the working directory, the pidfile is
// BUNDLE/pidfile, and the sync descriptor can come from _OCI_SYNCPIPE.
#[test]
fn defaults_and_sync_from_env() {
    let fx = Fixture::new("defaults");
    let c = fx.bundle(&["sh", "-c", "echo code 9; exit 9"]);
    let l = Launcher::new()
        .opt("--id", &c.id)
        .arg(format!("--runtime-arg=--root={}", fx.runc_root.display()))
        .opt("--shim-pidfile", &c.shim_pidfile)
        .opt("--log", &c.log)
        .opt("--status-file", &c.status)
        .opt("--exit-dir", &c.exit_dir)
        .cwd(&c.bundle)
        .sync(Sync::Env);
    let pidfile = c.pidfile.clone();
    check_full_run(&fx, &c, l, &pidfile, 9);
}

// Proves --runtime-arg values (both forms, in order) are passed to the
// runtime before `create`, and that the container id is passed to create;
// the runtime here is a wrapper that records its arguments and runs runc.
#[test]
fn runtime_args_precede_create() {
    let fx = Fixture::new("rtargs");
    let c = fx.bundle(&["sh", "-c", "echo code 4; exit 4"]);
    let rt = fake_runtime("record.sh", &c.dir, 0o755);
    let root_arg = format!("--root={}", fx.runc_root.display());
    let l = Launcher::new()
        .opt("--id", &c.id)
        .opt("--bundle", &c.bundle)
        .opt("--runtime", &rt)
        .arg("--runtime-arg=--log-format=json")
        .opt("--runtime-arg", &root_arg)
        .opt("--shim-pidfile", &c.shim_pidfile)
        .opt("--log", &c.log)
        .opt("--status-file", &c.status)
        .opt("--exit-dir", &c.exit_dir)
        .sync(Sync::Fd);
    let pidfile = c.pidfile.clone();
    check_full_run(&fx, &c, l, &pidfile, 4);
    let recorded = fs::read_to_string(c.dir.join("args.txt")).expect("the wrapper recorded no call");
    let first: Vec<&str> = recorded.lines().take_while(|l| *l != "--end--").collect();
    let create = first.iter().position(|a| *a == "create").unwrap_or_else(|| panic!("no create in {first:?}"));
    let before = &first[..create];
    let a = before.iter().position(|x| *x == "--log-format=json");
    let b = before.iter().position(|x| *x == root_arg);
    assert!(
        matches!((a, b), (Some(a), Some(b)) if a < b),
        "the runtime args, in order, must precede create: {first:?}"
    );
    assert!(first[create + 1..].contains(&c.id.as_str()), "create gets the id: {first:?}");
}
