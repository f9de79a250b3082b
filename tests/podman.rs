//! shimlet as a drop-in replacement for conmon, driven by a real podman
//! (`podman --conmon PATH ...`) and, for the CRI-O protocol, by the test
//! itself. Run as root.
//!
//! Every scenario runs twice in the same test: first with /usr/bin/conmon,
//! which proves the scenario (and this harness) right, then with shimlet.
//! Each test has its own podman world (configuration, storage, tmpdir; see
//! podman_support.rs); between the two runs every container is removed and
//! no shim may be left. Failure messages start with `[conmon]` or
//! `[shimlet]` and carry podman's output.
//!
//! Networking: every container runs with `--network none`, so no network is
//! ever set up; podman 4.3 still initializes its network backend (the
//! netavark binary, which `apt-get install podman` brings in through
//! golang-github-containers-common) and, as root, creates the empty
//! /run/containers/networks. Everything else stays in the test's directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::podman::*;
use common::{comm, processes_mentioning, try_wait_child, Stream, POLL, WAIT};

/// Removes the containers of one shim's run and requires that none of its
/// processes stay behind.
fn finish(p: &Podman, shim: Shim) {
    if let Err(e) = p.cleanup() {
        panic!("[{shim}] {e}");
    }
}

/// A container's full id.
fn full_id(p: &Podman, shim: Shim, name: &str) -> String {
    p.inspect(shim, name, "{{.Id}}")
}

/// `podman wait NAME` (must succeed): the exit code it prints.
fn podman_wait(p: &Podman, shim: Shim, name: &str) -> i32 {
    let o = p.ok(shim, &["wait", name]);
    o.text().parse().unwrap_or_else(|_| panic!("[{shim}] `podman wait` printed no exit code:\n{}", o.describe()))
}

/// Runs `scenario` for conmon then shimlet in one podman world.
fn each_shim(label: &str, mut scenario: impl FnMut(&Podman, Shim)) {
    let p = Podman::new(label);
    for shim in Shim::BOTH {
        scenario(&p, shim);
        finish(&p, shim);
    }
}

// ---------------------------------------------------------------------------
// run, logs

// `podman run --rm IMG echo hi` prints `hi` and leaves no container; podman
// has nothing to complain about (its stderr is empty under shimlet when it
// is under conmon).
#[test]
fn run_rm_prints_output() {
    let mut conmon_stderr = None;
    each_shim("run-rm", |p, shim| {
        let o = p.run(shim, &["run", "--rm", "--network", "none", IMAGE, "echo", "hi"]);
        if o.code() != 0 || o.stdout != b"hi\n" {
            panic!("[{shim}] want exit 0 and stdout \"hi\\n\":\n{}", o.describe());
        }
        match shim {
            Shim::Conmon => conmon_stderr = Some(o.stderr.is_empty()),
            Shim::Shimlet => {
                if conmon_stderr == Some(true) && !o.stderr.is_empty() {
                    panic!("[shimlet] podman wrote to stderr (it does not with conmon):\n{}", o.describe());
                }
            }
        }
        let ps = p.ok(shim, &["ps", "-a", "-q"]);
        assert!(ps.text().is_empty(), "[{shim}] `run --rm` left a container: {}", ps.describe());
    });
}

// The exit command: after a `run -d` container exits, the shim runs podman's
// `--exit-command` (`podman container cleanup`), which unmounts the
// container's root filesystem and /dev/shm; the shim then exits.
#[test]
fn exit_command_cleans_up() {
    each_shim("exitcmd", |p, shim| {
        let name = p.name(shim, "exitcmd");
        p.run_d(shim, &name, &[], &["sh", "-c", "sleep 1; exit 4"]);
        let id = full_id(p, shim, &name);
        let merged = p.inspect(shim, &name, "{{.GraphDriver.Data.MergedDir}}");
        let shim_pid: i32 = p.inspect(shim, &name, "{{.State.ConmonPid}}").parse().expect("ConmonPid");
        let mounts = || -> Vec<String> {
            fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&id) || l.contains(&merged))
                .map(|l| l.to_string())
                .collect()
        };
        assert!(!mounts().is_empty(), "[{shim}] the running container has no mounts? (merged dir {merged})");
        assert_eq!(podman_wait(p, shim, &name), 4, "[{shim}] exit code");
        wait_for(
            &format!("[{shim}] the shim (pid {shim_pid}) to exit after the container exited"),
            WAIT,
            || !common::pid_alive(shim_pid),
            || common::proc_cmdline(shim_pid),
        );
        wait_for(
            &format!("[{shim}] the exit command (podman container cleanup) to unmount the container's rootfs and shm"),
            WAIT,
            || mounts().is_empty(),
            || mounts().join("\n"),
        );
        assert_eq!(p.inspect(shim, &name, "{{.State.Status}}"), "exited", "[{shim}] state after the exit");
    });
}

// `run -d` then `podman logs`: stdout lines on podman's stdout, stderr lines
// on its stderr, in order.
#[test]
fn run_detached_then_logs() {
    each_shim("logs", |p, shim| {
        let name = p.name(shim, "logs");
        p.run_d(shim, &name, &[], &["sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2"]);
        assert_eq!(podman_wait(p, shim, &name), 0, "[{shim}] exit code of the container");
        let o = p.ok(shim, &["logs", &name]);
        assert_eq!(o.stdout_str(), "out-1\nout-2\n", "[{shim}] stdout of `podman logs`:\n{}", o.describe());
        assert_eq!(o.stderr_str(), "err-1\nerr-2\n", "[{shim}] stderr of `podman logs`:\n{}", o.describe());
    });
}

// `podman logs -f` follows: it shows the first line, keeps running while the
// container waits, shows what the container prints later, and ends (exit 0)
// when the container exits.
#[test]
fn logs_follow() {
    each_shim("logs-f", |p, shim| {
        let shared = p.tmp.join(format!("shared-{shim}"));
        fs::create_dir_all(&shared).unwrap();
        let vol = format!("{}:/shared", shared.display());
        let name = p.name(shim, "follow");
        p.run_d(
            shim,
            &name,
            &["-v", &vol],
            &[
                "sh",
                "-c",
                "echo first; while [ ! -e /shared/go ]; do sleep 0.1; done; echo second; sleep 0.5; echo third",
            ],
        );
        let mut child = p.spawn(shim, &["logs", "-f", &name], Stdio::null(), Stdio::piped(), Stdio::piped());
        let out = Collector::start(child.stdout.take().unwrap(), None);
        let err = Collector::start(child.stderr.take().unwrap(), None);
        let fail = |what: String, child_out: &Collector, child_err: &Collector| -> ! {
            panic!(
                "[{shim}] podman logs -f: {what}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                child_err.text(),
                child_out.text()
            )
        };
        let at = out.wait_for(b"first\n", 0, WAIT).unwrap_or_else(|e| fail(e, &out, &err));
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(st)) = child.try_wait() {
            fail(format!("ended ({st}) while the container was still running: it does not follow"), &out, &err);
        }
        fs::write(shared.join("go"), b"").unwrap();
        let at = out.wait_for(b"second\n", at, WAIT).unwrap_or_else(|e| fail(e, &out, &err));
        out.wait_for(b"third\n", at, WAIT).unwrap_or_else(|e| fail(e, &out, &err));
        match try_wait_child(&mut child, WAIT) {
            Ok(st) if st.success() => {}
            Ok(st) => fail(format!("exited with {st} after the container ended"), &out, &err),
            Err(e) => fail(format!("does not end after the container exited: {e}"), &out, &err),
        }
        out.wait_eof(WAIT);
        assert_eq!(out.text(), "first\nsecond\nthird\n", "[{shim}] output of podman logs -f");
        assert_eq!(podman_wait(p, shim, &name), 0, "[{shim}] exit code of the container");
    });
}

// ---------------------------------------------------------------------------
// exit codes

// `podman wait` gives 0, 3 and 137 (SIGKILL) for the matching exits, and
// `podman stop -t 1` of a `sleep 1000` (pid 1 ignores SIGTERM) ends with the
// same code under shimlet as under conmon.
#[test]
fn wait_exit_codes_and_stop() {
    let p = Podman::new("wait");
    let mut stop_codes = vec![];
    for shim in Shim::BOTH {
        let a = p.run_d(shim, &p.name(shim, "true"), &[], &["true"]);
        let b = p.run_d(shim, &p.name(shim, "three"), &[], &["sh", "-c", "exit 3"]);
        let c = p.run_d(shim, &p.name(shim, "killed"), &[], &["sleep", "1000"]);
        let d = p.run_d(shim, &p.name(shim, "stopped"), &[], &["sleep", "1000"]);
        assert_eq!(podman_wait(&p, shim, &a), 0, "[{shim}] podman wait of `true`");
        assert_eq!(podman_wait(&p, shim, &b), 3, "[{shim}] podman wait of `exit 3`");
        p.wait_inspect(shim, &c, "{{.State.Running}}", "true");
        p.ok(shim, &["kill", "-s", "KILL", &c]);
        assert_eq!(podman_wait(&p, shim, &c), 137, "[{shim}] podman wait after `podman kill -s KILL`");
        for (n, want) in [(&a, "0"), (&b, "3"), (&c, "137")] {
            assert_eq!(p.inspect(shim, n, "{{.State.ExitCode}}"), want, "[{shim}] inspect .State.ExitCode of {n}");
        }
        p.wait_inspect(shim, &d, "{{.State.Running}}", "true");
        let t0 = Instant::now();
        p.ok(shim, &["stop", "-t", "1", &d]);
        let took = t0.elapsed();
        let code = podman_wait(&p, shim, &d);
        assert!(code == 137 || code == 143, "[{shim}] podman stop -t 1: exit code {code}, want 137 or 143");
        assert_eq!(p.inspect(shim, &d, "{{.State.ExitCode}}"), code.to_string(), "[{shim}] inspect after stop");
        eprintln!("[{shim}] podman stop -t 1 of `sleep 1000`: exit code {code}, took {:.1}s", took.as_secs_f64());
        stop_codes.push(code);
        finish(&p, shim);
    }
    assert_eq!(
        stop_codes[1], stop_codes[0],
        "[shimlet] podman stop -t 1 gives {} where conmon gives {}",
        stop_codes[1], stop_codes[0]
    );
}

// ---------------------------------------------------------------------------
// stdin and terminals

// `echo data | podman run -i --rm IMG cat` returns `data`; a larger input
// goes through intact and its end of file ends `cat`.
#[test]
fn run_interactive_stdin_pipe() {
    each_shim("stdin", |p, shim| {
        let o = p.run_input(shim, &["run", "-i", "--rm", "--network", "none", IMAGE, "cat"], b"data\n");
        if o.code() != 0 || o.stdout != b"data\n" {
            panic!("[{shim}] echo data | podman run -i --rm IMG cat: want exit 0 and \"data\\n\":\n{}", o.describe());
        }
        let big: Vec<u8> = (0..20000).flat_map(|i| format!("stdin line {i}\n").into_bytes()).collect();
        let o = p.run_input(shim, &["run", "-i", "--rm", "--network", "none", IMAGE, "cat"], &big);
        if o.code() != 0 || o.stdout != big {
            panic!(
                "[{shim}] {} bytes through `run -i cat`: {}\n{}",
                big.len(),
                common::first_difference(&o.stdout, &big),
                o.describe()
            );
        }
    });
}

// `podman run -it` on a pseudo-terminal: a shell prompt, a command, and
// `exit 7` makes podman exit 7.
#[test]
fn run_it_terminal() {
    each_shim("run-it", |p, shim| {
        let mut t = p.spawn_pty(shim, &["run", "-it", "--rm", "--network", "none", IMAGE, "sh"], 24, 80);
        let ck = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("[{shim}] {e}"));
        ck(t.expect("# ", WAIT));
        t.send(b"echo hi-$((6*7))\r");
        ck(t.expect("hi-42", WAIT));
        t.send(b"exit 7\r");
        let st = t.wait(WAIT).unwrap_or_else(|e| panic!("[{shim}] {e}"));
        assert_eq!(
            code_of(st),
            7,
            "[{shim}] exit code of podman run -it after `exit 7`; terminal:\n{}",
            t.transcript()
        );
    });
}

// `podman attach` (on a pty) to a running `run -dit` container shows its new
// output; ctrl-p ctrl-q detaches: podman attach exits 0 and the container
// keeps running.
#[test]
fn attach_and_detach_keys() {
    each_shim("attach", |p, shim| {
        let name = p.name(shim, "attach");
        p.run_d(shim, &name, &["-it"], &["sh", "-c", "while true; do echo tick; sleep 0.2; done"]);
        p.wait_inspect(shim, &name, "{{.State.Running}}", "true");
        let mut t = p.spawn_pty(shim, &["attach", &name], 24, 80);
        let ck = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("[{shim}] {e}"));
        ck(t.expect("tick", WAIT));
        ck(t.expect("tick", WAIT));
        // podman recognizes the detach keys only when each arrives in a read
        // of its own, as when typed: send them apart.
        t.send(b"\x10");
        std::thread::sleep(Duration::from_millis(300));
        t.send(b"\x11");
        let st = t.wait(WAIT).unwrap_or_else(|e| panic!("[{shim}] detaching with ctrl-p ctrl-q: {e}"));
        assert_eq!(
            code_of(st),
            0,
            "[{shim}] exit code of podman attach after ctrl-p ctrl-q; terminal:\n{}",
            t.transcript()
        );
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            p.inspect(shim, &name, "{{.State.Running}}"),
            "true",
            "[{shim}] the container must keep running after a detach"
        );
        // And it still runs what it ran: the log keeps growing.
        let n0 = p.ok(shim, &["logs", &name]).stdout_str().matches("tick").count();
        wait_for(
            &format!("[{shim}] new output of {name} after the detach"),
            WAIT,
            || p.ok(shim, &["logs", &name]).stdout_str().matches("tick").count() > n0 + 2,
            String::new,
        );
        p.ok(shim, &["stop", "-t", "1", &name]);
    });
}

// ---------------------------------------------------------------------------
// exec

// `podman exec` returns the command's exit code; `exec -it` runs a shell on
// a pty; `exec -t` gives the process a terminal of podman's terminal's size.
#[test]
fn exec_codes_and_terminals() {
    each_shim("exec", |p, shim| {
        let name = p.name(shim, "exec");
        p.run_d(shim, &name, &[], &["sleep", "1000"]);
        p.wait_inspect(shim, &name, "{{.State.Running}}", "true");

        let o = p.run(shim, &["exec", &name, "sh", "-c", "exit 42"]);
        assert_eq!(o.code(), 42, "[{shim}] podman exec sh -c 'exit 42':\n{}", o.describe());
        let o = p.run(shim, &["exec", &name, "sh", "-c", "echo out; echo err >&2"]);
        assert!(
            o.code() == 0 && o.stdout_str() == "out\n" && o.stderr_str().contains("err\n"),
            "[{shim}] podman exec sh -c 'echo out; echo err >&2':\n{}",
            o.describe()
        );

        let ck = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("[{shim}] {e}"));
        let mut t = p.spawn_pty(shim, &["exec", "-it", &name, "sh"], 24, 80);
        ck(t.expect("# ", WAIT));
        t.send(b"echo hi-$((6*7))\r");
        ck(t.expect("hi-42", WAIT));
        t.send(b"exit 5\r");
        let st = t.wait(WAIT).unwrap_or_else(|e| panic!("[{shim}] {e}"));
        assert_eq!(
            code_of(st),
            5,
            "[{shim}] exit code of podman exec -it after `exit 5`; terminal:\n{}",
            t.transcript()
        );

        let mut t = p.spawn_pty(shim, &["exec", "-t", &name, "stty", "size"], 33, 77);
        ck(t.expect("33 77", WAIT));
        let st = t.wait(WAIT).unwrap_or_else(|e| panic!("[{shim}] {e}"));
        assert_eq!(code_of(st), 0, "[{shim}] podman exec -t stty size; terminal:\n{}", t.transcript());

        assert_eq!(p.inspect(shim, &name, "{{.State.Running}}"), "true", "[{shim}] the container after the execs");
        p.ok(shim, &["stop", "-t", "1", &name]);
    });
}

// ---------------------------------------------------------------------------
// log rotation

/// The log file of a container and its `.1`.
fn log_files(p: &Podman, shim: Shim, name: &str) -> (PathBuf, Vec<u8>, Option<Vec<u8>>) {
    let path = PathBuf::from(p.inspect(shim, name, "{{.HostConfig.LogConfig.Path}}"));
    let cur = fs::read(&path).unwrap_or_else(|e| panic!("[{shim}] read the log {}: {e}", path.display()));
    let old = fs::read(format!("{}.1", path.display())).ok();
    (path, cur, old)
}

/// The numbered lines of a log file. A file after a rotation may open with
/// the rest of a line begun (as a P record) in the file before it: one such
/// leading fragment is skipped, nothing else.
fn numbered_stdout(shim: Shim, what: &str, data: &[u8]) -> Vec<u64> {
    let mut lines =
        log_lines(data, Stream::Stdout).unwrap_or_else(|e| panic!("[{shim}] {what} is not a k8s-file log: {e}"));
    if lines.first().is_some_and(|l| !l.starts_with("line-")) {
        lines.remove(0);
    }
    numbered(&lines, "line-").unwrap_or_else(|e| panic!("[{shim}] {what}: {e}"))
}

fn contiguous_to(ns: &[u64], last: u64) -> bool {
    !ns.is_empty() && ns[ns.len() - 1] == last && ns.windows(2).all(|w| w[1] == w[0] + 1)
}

// `--log-opt max-size=10k`: `podman logs` shows the tail of 2000 numbered
// lines, contiguous up to the last. podman passes `--log-size-max`, never
// `--log-rotate`: under conmon and shimlet alike the file is started anew
// at the limit (its old lines are gone, no `<log>.1`), so the current log
// stays within the limit and ends with a contiguous run up to the last
// line; 150 lines (about 7.7 KiB of records) fit whole.
#[test]
fn log_rotation_max_size() {
    const MAX: usize = 10 * 1024;
    each_shim("logrot", |p, shim| {
        let script = |n: u32| format!("i=1; while [ $i -le {n} ]; do echo line-$i; i=$((i+1)); done");
        let big = p.run_d(shim, &p.name(shim, "rot2000"), &["--log-opt", "max-size=10k"], &["sh", "-c", &script(2000)]);
        let small = p.run_d(shim, &p.name(shim, "rot150"), &["--log-opt", "max-size=10k"], &["sh", "-c", &script(150)]);
        assert_eq!(podman_wait(p, shim, &big), 0, "[{shim}] exit code of the 2000-line container");
        assert_eq!(podman_wait(p, shim, &small), 0, "[{shim}] exit code of the 150-line container");

        // podman logs: the tail, contiguous, up to the last line.
        let o = p.ok(shim, &["logs", &big]);
        let lines: Vec<String> = o.stdout_str().lines().map(|s| s.to_string()).collect();
        let ns = numbered(&lines, "line-").unwrap_or_else(|e| panic!("[{shim}] podman logs: {e}"));
        assert!(
            contiguous_to(&ns, 2000),
            "[{shim}] podman logs of the 2000-line container must show a contiguous tail ending at line-2000; got {}",
            summarize(&ns)
        );

        for (name, n) in [(&big, 2000u64), (&small, 150u64)] {
            let (path, cur, old) = log_files(p, shim, name);
            let cur_ns = numbered_stdout(shim, "the current log", &cur);
            let record =
                format!("{n} lines, max-size 10k: current log {} bytes holding {}", cur.len(), summarize(&cur_ns));
            eprintln!("[{shim}] {record}");
            assert!(
                contiguous_to(&cur_ns, n),
                "[{shim}] the current log must end with a contiguous run up to line-{n}: {record}"
            );
            assert!(cur.len() <= MAX, "[{shim}] the current log outgrew max-size=10k: {record}");
            assert!(old.is_none(), "[{shim}] {}.1 exists: only --log-rotate keeps old files", path.display());
            if n == 150 {
                assert_eq!(cur_ns.first(), Some(&1), "[{shim}] 150 lines fit whole: {record}");
            }
        }
    });
}

// ---------------------------------------------------------------------------
// OOM

// `podman run --memory=32m` with a shell that builds a 100 MB string: the
// kernel kills it (exit 137) and `podman inspect` says OOMKilled.
//
// conmon 2.1.6 on cgroup v1 sees the OOM event but writes its `oom` file into
// its working directory (podman's, here `cwd/`), while podman 4.3 looks for
// it in the bundle: with conmon, OOMKilled stays false. The conmon run
// therefore proves that the OOM happened (exit 137 and conmon's stray `oom`
// file, or OOMKilled); shimlet must make podman report OOMKilled=true.
#[test]
fn oom_killed() {
    let hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}";
    each_shim("oom", |p, shim| {
        let stray = p.cwd.join("oom");
        let _ = fs::remove_file(&stray);
        let name = p.name(shim, "oom");
        p.run_d(shim, &name, &["--memory=32m"], &["sh", "-c", hog]);
        let code = podman_wait(p, shim, &name);
        let oom = p.inspect(shim, &name, "{{.State.OOMKilled}}");
        let exit = p.inspect(shim, &name, "{{.State.ExitCode}}");
        let logs = p.run(shim, &["logs", &name]);
        eprintln!(
            "[{shim}] memory hog under --memory=32m: podman wait {code}, OOMKilled {oom}, ExitCode {exit}, stray {} {}",
            stray.display(),
            if stray.exists() { "exists" } else { "absent" }
        );
        match shim {
            Shim::Conmon => {
                if code != 137 || !(oom == "true" || stray.exists()) {
                    panic!(
                        "[conmon] the OOM could not be triggered: --memory=32m with a 100 MB string gave exit {code}, \
                         OOMKilled {oom}, no oom file from conmon; check /sys/fs/cgroup/memory (cgroup v1 memory \
                         controller) and that swap does not absorb the allocation\n{}",
                        logs.describe()
                    );
                }
            }
            Shim::Shimlet => {
                assert_eq!(code, 137, "[shimlet] exit code of the OOM-killed container\n{}", logs.describe());
                assert_eq!(oom, "true", "[shimlet] podman inspect .State.OOMKilled after an OOM kill (exit {code})");
            }
        }
    });
}

// ---------------------------------------------------------------------------
// the shim process

// `podman ps` shows the container's pid, `inspect .State.ConmonPid` is the
// shim's (comm `conmon` resp. `shimlet`) and the shim is the container's
// parent. A `podman attach` SIGKILLed mid-attach harms nothing: the
// container keeps running and printing, `podman exec` works, `podman stop`
// ends it, and the shim then exits. Also reports the shim's memory for a
// `sleep 1000` container.
#[test]
fn shim_pid_and_killed_attach() {
    each_shim("shimpid", |p, shim| {
        // The memory of an idle shim.
        let idle = p.run_d(shim, &p.name(shim, "idle"), &[], &["sleep", "1000"]);
        p.wait_inspect(shim, &idle, "{{.State.Running}}", "true");
        let idle_shim: i32 = p.inspect(shim, &idle, "{{.State.ConmonPid}}").parse().expect("ConmonPid");
        std::thread::sleep(Duration::from_millis(300));
        eprintln!(
            "[{shim}] shim of `podman run -d ... sleep 1000` (pid {idle_shim}, comm {}): {}",
            comm(idle_shim),
            memory_of(idle_shim)
        );

        let name = p.name(shim, "ticker");
        p.run_d(shim, &name, &[], &["sh", "-c", "while true; do echo tick; sleep 0.2; done"]);
        p.wait_inspect(shim, &name, "{{.State.Running}}", "true");
        let id = full_id(p, shim, &name);
        let ps = p.ok(shim, &["ps", "--format", "{{.ID}} {{.Pid}}"]);
        let pid: i32 = ps
            .stdout_str()
            .lines()
            .find_map(|l| {
                let (i, pid) = l.split_once(' ')?;
                (!i.is_empty() && id.starts_with(i)).then(|| pid.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("[{shim}] podman ps does not list {id} with a pid:\n{}", ps.describe()));
        assert_eq!(
            p.inspect(shim, &name, "{{.State.Pid}}"),
            pid.to_string(),
            "[{shim}] ps and inspect disagree on the pid"
        );
        let shim_pid: i32 = p.inspect(shim, &name, "{{.State.ConmonPid}}").parse().expect("ConmonPid");
        assert_eq!(
            comm(shim_pid),
            shim.comm(),
            "[{shim}] /proc/{shim_pid}/comm of .State.ConmonPid ({})",
            common::proc_cmdline(shim_pid)
        );
        assert_eq!(common::proc_ppid(pid), Some(shim_pid), "[{shim}] the container's parent must be the shim");

        // Attach, see new output, SIGKILL the attach.
        let mut child = p.spawn(shim, &["attach", "--no-stdin", &name], Stdio::null(), Stdio::piped(), Stdio::piped());
        let out = Collector::start(child.stdout.take().unwrap(), None);
        let err = Collector::start(child.stderr.take().unwrap(), None);
        let at = out
            .wait_for(b"tick\n", 0, WAIT)
            .unwrap_or_else(|e| panic!("[{shim}] podman attach: {e}\nstderr: {}", err.text()));
        out.wait_for(b"tick\n", at, WAIT)
            .unwrap_or_else(|e| panic!("[{shim}] podman attach: {e}\nstderr: {}", err.text()));
        child.kill().unwrap();
        let _ = child.wait();

        std::thread::sleep(Duration::from_millis(500));
        assert!(common::pid_alive(shim_pid), "[{shim}] the shim died with the killed podman attach");
        assert_eq!(
            p.inspect(shim, &name, "{{.State.Running}}"),
            "true",
            "[{shim}] the container after a killed attach"
        );
        let n0 = p.ok(shim, &["logs", &name]).stdout_str().matches("tick").count();
        wait_for(
            &format!("[{shim}] new output of {name} after the killed attach"),
            WAIT,
            || p.ok(shim, &["logs", &name]).stdout_str().matches("tick").count() > n0 + 2,
            String::new,
        );
        let o = p.run(shim, &["exec", &name, "echo", "alive"]);
        assert!(
            o.code() == 0 && o.stdout == b"alive\n",
            "[{shim}] podman exec after a killed attach:\n{}",
            o.describe()
        );
        let o = p.run(shim, &["stop", "-t", "1", &name]);
        assert_eq!(o.code(), 0, "[{shim}] podman stop after a killed attach:\n{}", o.describe());
        let code = podman_wait(p, shim, &name);
        assert!(code == 137 || code == 143, "[{shim}] exit code after stop: {code}");
        wait_for(
            &format!("[{shim}] the shim (pid {shim_pid}) to exit after the container stopped"),
            WAIT,
            || !common::pid_alive(shim_pid),
            || common::proc_cmdline(shim_pid),
        );
    });
}

// ---------------------------------------------------------------------------
// CRI-O style: the shim run directly, conmon's command line and pipes

/// A runc bundle and the directories of a CRI-O style container.
struct Crio {
    tmp: common::TempDir,
    id: String,
    bundle: PathBuf,
    runc_root: PathBuf,
    exits: PathBuf,
    persist: PathBuf,
    sockets: PathBuf,
    log: PathBuf,
}

impl Crio {
    fn new(label: &str, shim: Shim, args: &[&str]) -> Crio {
        common::runc_bin();
        let tmp = common::TempDir::new(&format!("crio-{label}-{shim}"));
        let id = format!("crio-{label}-{shim}-{}", std::process::id());
        let bundle = tmp.join("bundle");
        let c = Crio {
            id,
            runc_root: tmp.join("runc"),
            exits: tmp.join("exits"),
            persist: tmp.join("persist"),
            sockets: tmp.join("sockets"),
            log: tmp.join("ctr.log"),
            bundle,
            tmp,
        };
        for d in [&c.bundle, &c.runc_root, &c.exits, &c.persist, &c.sockets] {
            fs::create_dir_all(d).unwrap();
        }
        let rootfs = c.bundle.join("rootfs");
        common::build_rootfs(&rootfs);
        let out = std::process::Command::new(common::runc_bin()).arg("spec").current_dir(&c.bundle).output().unwrap();
        assert!(out.status.success(), "runc spec: {}", String::from_utf8_lossy(&out.stderr));
        let cfg_p = c.bundle.join("config.json");
        let mut cfg: Value = serde_json::from_slice(&fs::read(&cfg_p).unwrap()).unwrap();
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(args);
        cfg["root"]["path"] = json!(rootfs.display().to_string());
        cfg["linux"]["cgroupsPath"] = json!(format!("/{}", c.id));
        fs::write(&cfg_p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        c
    }

    fn runc(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(common::runc_bin())
            .arg("--root")
            .arg(&self.runc_root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The create command line of CRI-O.
    fn create(&self, shim: Shim) -> common::Launched {
        let mut l = common::Launcher::new()
            .opt("-b", &self.bundle)
            .opt("-c", &self.id)
            .opt("-u", &self.id)
            .opt("--exit-dir", &self.exits)
            .opt("-l", format!("k8s-file:{}", self.log.display()))
            .opt("-P", self.bundle.join("conmon-pidfile"))
            .opt("-p", self.bundle.join("pidfile"))
            .opt("--persist-dir", &self.persist)
            .opt("-r", common::runc_bin())
            .opt("--runtime-arg", format!("--root={}", self.runc_root.display()))
            .opt("--socket-dir-path", &self.sockets)
            .arg("--syslog")
            .opt("--log-level", "error")
            .arg("--leave-stdin-open")
            .arg("-i")
            .cwd(&self.bundle)
            .sync(common::Sync::Env);
        l.bin = Some(shim.path());
        l.run(self.tmp.path())
    }

    /// The ExecSync command line of CRI-O.
    fn exec_sync(&self, shim: Shim, n: u32, args: &[&str], timeout: u32) -> common::Launched {
        let spec = json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin:/usr/bin", "TERM=xterm"],
            "cwd": "/",
        });
        let spec_p = self.tmp.join(format!("exec-{n}.json"));
        fs::write(&spec_p, serde_json::to_vec(&spec).unwrap()).unwrap();
        let mut l = common::Launcher::new()
            .opt("-c", &self.id)
            .opt("-n", format!("name-{}", self.id))
            .opt("-r", common::runc_bin())
            .opt("-p", self.tmp.join(format!("exec-{n}.pid")))
            .arg("-e")
            .opt("-l", self.tmp.join(format!("exec-{n}.log")))
            .opt("--socket-dir-path", &self.sockets)
            .opt("--log-level", "error")
            .opt("-T", timeout.to_string())
            .opt("--exec-process-spec", &spec_p)
            .opt("--runtime-arg", format!("--root={}", self.runc_root.display()))
            .sync(common::Sync::Env);
        l.bin = Some(shim.path());
        l.run(self.tmp.path())
    }

    fn processes(&self) -> Vec<(i32, String, String)> {
        processes_mentioning(&self.tmp.path().display().to_string())
    }

    /// Deletes the container; no process of the test may stay.
    fn cleanup(&self) -> Result<(), String> {
        let _ = self.runc(&["delete", "-f", &self.id]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let left = self.processes();
        for (pid, _, _) in &left {
            // SAFETY: kill(2) of a process of this test.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "processes of the test still alive 20s after `runc delete -f`:{}",
                left.iter().map(|(p, c, l)| format!("\n  {p} {c}: {}", clip(l, 300))).collect::<String>()
            ))
        }
    }
}

impl Drop for Crio {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            if std::thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

fn launched_info(l: &common::Launched) -> String {
    format!(
        "launcher {:?}\nstderr: {}\nstdout: {}\nargs: {:?}",
        l.status,
        l.stderr_str(),
        String::from_utf8_lossy(&l.stdout),
        l.args
    )
}

/// Reads a file that a shim writes once (bounded wait for it to appear).
fn wait_file(shim: Shim, p: &Path, diag: impl Fn() -> String) -> String {
    wait_for(&format!("[{shim}] {}", p.display()), WAIT, || p.exists(), diag);
    std::thread::sleep(Duration::from_millis(50));
    fs::read_to_string(p).unwrap()
}

// CRI-O's create: `{"pid": PID}\n` on _OCI_SYNCPIPE (no --api-version: key
// `pid`), PID is the container's (BUNDLE/pidfile); after `runc start` and
// the container's exit, EXIT_DIR/ID and PERSIST_DIR/exit hold the status,
// the log holds the output and the shim exits.
#[test]
fn crio_create_start_exit() {
    for shim in Shim::BOTH {
        let c = Crio::new("create", shim, &["sh", "-c", "echo out-line; echo err-line >&2; exit 3"]);
        let l = c.create(shim);
        assert!(l.status.success(), "[{shim}] CRI-O create: {}", launched_info(&l));
        let sync = l.sync.as_ref().expect("sync");
        let ctr_pid = common::read_pidfile(&c.bundle.join("pidfile"));
        assert_eq!(
            String::from_utf8_lossy(&sync.raw),
            format!("{{\"pid\": {ctr_pid}}}\n"),
            "[{shim}] the sync message must be exactly {{\"pid\": PID}} with BUNDLE/pidfile's pid; {}",
            launched_info(&l)
        );
        let shim_pid = common::read_pidfile(&c.bundle.join("conmon-pidfile"));
        assert_eq!(comm(shim_pid), shim.comm(), "[{shim}] -P (conmon pidfile) must name the shim");
        assert_eq!(common::proc_ppid(ctr_pid), Some(shim_pid), "[{shim}] the container's parent must be the shim");
        let out = c.runc(&["start", &c.id]);
        assert!(out.status.success(), "[{shim}] runc start: {}", String::from_utf8_lossy(&out.stderr));
        let diag = || format!("shim alive: {}; {}", common::pid_alive(shim_pid), launched_info(&l));
        let exit = wait_file(shim, &c.exits.join(&c.id), diag);
        assert_eq!(exit.trim(), "3", "[{shim}] EXIT_DIR/ID");
        let pexit = wait_file(shim, &c.persist.join("exit"), diag);
        assert_eq!(pexit.trim(), "3", "[{shim}] PERSIST_DIR/exit");
        wait_for(&format!("[{shim}] the shim to exit"), WAIT, || !common::pid_alive(shim_pid), diag);
        let log = fs::read(&c.log).unwrap_or_else(|e| panic!("[{shim}] read {}: {e}", c.log.display()));
        let lo = log_lines(&log, Stream::Stdout).unwrap_or_else(|e| panic!("[{shim}] the log: {e}"));
        let le = log_lines(&log, Stream::Stderr).unwrap_or_else(|e| panic!("[{shim}] the log: {e}"));
        assert_eq!((lo, le), (vec!["out-line".to_string()], vec!["err-line".to_string()]), "[{shim}] the log's lines");
        let rest = sync.rest();
        eprintln!(
            "[{shim}] CRI-O create: sync {:?}, then {:?}; exit file {exit:?}",
            String::from_utf8_lossy(&sync.raw),
            String::from_utf8_lossy(&rest)
        );
        c.cleanup().unwrap_or_else(|e| panic!("[{shim}] {e}"));
    }
}

// CRI-O's ExecSync against a running container: the final sync message is
// `{"exit_code": 5}\n` for `sh -c 'echo out; exit 5'` (its output in the exec
// log), and `{"exit_code": -1, "message": "command timed out"}\n` for a
// `sleep 100` with -T 2, which is killed.
#[test]
fn crio_exec_sync() {
    for shim in Shim::BOTH {
        let c = Crio::new("exec", shim, &["sleep", "1000"]);
        let l = c.create(shim);
        assert!(l.status.success(), "[{shim}] CRI-O create: {}", launched_info(&l));
        let shim_pid = common::read_pidfile(&c.bundle.join("conmon-pidfile"));
        let out = c.runc(&["start", &c.id]);
        assert!(out.status.success(), "[{shim}] runc start: {}", String::from_utf8_lossy(&out.stderr));

        let e = c.exec_sync(shim, 1, &["sh", "-c", "echo out; exit 5"], 2);
        assert!(e.status.success(), "[{shim}] ExecSync launcher: {}", launched_info(&e));
        let sync = e.sync.as_ref().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sync.raw),
            "{\"exit_code\": 5}\n",
            "[{shim}] ExecSync sync message; {}",
            launched_info(&e)
        );
        let rest = sync.rest();
        assert!(rest.is_empty(), "[{shim}] ExecSync: more after the exit code: {:?}", String::from_utf8_lossy(&rest));
        let elog = fs::read(c.tmp.join("exec-1.log")).unwrap_or_default();
        let lines = log_lines(&elog, Stream::Stdout).unwrap_or_else(|e| panic!("[{shim}] the exec log: {e}"));
        assert_eq!(
            lines,
            vec!["out".to_string()],
            "[{shim}] the exec log's stdout lines: {:?}",
            String::from_utf8_lossy(&elog)
        );

        let t0 = Instant::now();
        let e = c.exec_sync(shim, 2, &["sleep", "100"], 2);
        assert!(e.status.success(), "[{shim}] ExecSync launcher: {}", launched_info(&e));
        let sync = e.sync.as_ref().unwrap();
        let took = t0.elapsed();
        assert_eq!(
            String::from_utf8_lossy(&sync.raw),
            "{\"exit_code\": -1, \"message\": \"command timed out\"}\n",
            "[{shim}] ExecSync timeout message; {}",
            launched_info(&e)
        );
        assert!(took >= Duration::from_millis(900), "[{shim}] timed out after {took:?}, well before -T 2");
        let rest = sync.rest();
        assert!(rest.is_empty(), "[{shim}] ExecSync: more after the timeout: {:?}", String::from_utf8_lossy(&rest));
        wait_for(
            &format!("[{shim}] the timed-out `sleep 100` to be killed"),
            WAIT,
            || {
                !String::from_utf8_lossy(&c.runc(&["ps", &c.id]).stdout)
                    .lines()
                    .any(|l| l.trim_end().ends_with(" sleep 100"))
            },
            || String::from_utf8_lossy(&c.runc(&["ps", &c.id]).stdout).into_owned(),
        );
        assert!(common::pid_alive(shim_pid), "[{shim}] the container's shim must survive the execs");
        let st = c.runc(&["state", &c.id]);
        assert!(
            String::from_utf8_lossy(&st.stdout).contains("\"running\""),
            "[{shim}] the container after the execs: {}",
            String::from_utf8_lossy(&st.stdout)
        );
        eprintln!("[{shim}] ExecSync timeout message after {:.1}s", took.as_secs_f64());
        let _ = c.runc(&["kill", &c.id, "KILL"]);
        wait_for(&format!("[{shim}] the shim to exit"), WAIT, || !common::pid_alive(shim_pid), String::new);
        c.cleanup().unwrap_or_else(|e| panic!("[{shim}] {e}"));
    }
}
