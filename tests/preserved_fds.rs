//! The descriptors a manager hands over reach the runtime and the
//! container as conmon passes them, and nothing of the shim's does:
//! `--preserve-fds N` (podman's `--runtime-opt --preserve-fds
//! --runtime-opt N`) for create and exec, and socket activation
//! (`LISTEN_FDS`, `LISTEN_PID`, `--replace-listen-pid`). Every scenario
//! runs under /usr/bin/conmon and under shimlet: with conmon's command
//! line, and with real podman 4.3.1 (`podman run --preserve-fds`, `podman
//! exec --preserve-fds`).
//!
//! The defect these prove fixed: shimlet closed every descriptor from 3 in
//! the runtime's child, so runc opened its own log (podman's
//! `--log BUNDLE/oci-log`) and its epoll set as 3 and 4 and preserved
//! those: the container got a writable descriptor on the host's runtime
//! log instead of podman's files.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// A file holding `text`, opened for reading.
fn file(dir: &Path, name: &str, text: &str) -> (PathBuf, fs::File) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    let f = fs::File::open(&p).unwrap();
    (p, f)
}

/// The container's descriptors, seen from the host, once it has exec'd
/// `sleep`.
fn fds_of_sleeper(pid: i32) -> Vec<(i32, String)> {
    wait_until("the container to exec sleep", WAIT, || {
        (fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim() == "sleep").then_some(())
    });
    proc_fds(pid)
}

// Proves `--runtime-opt --preserve-fds --runtime-opt 2` hands the
// launcher's descriptors 3 and 4 to the container under conmon and under
// shimlet alike, with runc's own log on (as podman runs it): the container
// reads both files and has exactly 0-4, 3 and 4 on those files; without
// the option the container has 0-2 only.
#[test]
fn preserve_fds_reach_the_container_like_conmon() {
    let fx = Fixture::new("fd-create");
    for shim in Shim::BOTH {
        for preserve in [true, false] {
            let c = fx.bundle(&["sh", "-c", "cat <&3; cat <&4; exec sleep 1000"]);
            let (p3, f3) = file(&c.dir, "three.txt", "three\n");
            let (p4, f4) = file(&c.dir, "four.txt", "four\n");
            let oci_log = c.bundle.join("oci-log");
            let mut l = conmon_logged(&fx, &c, shim)
                .arg("--runtime-arg=--log-format=json")
                .opt("--runtime-arg", "--log")
                .opt("--runtime-arg", &oci_log)
                .pass_fd(f3, 3)
                .pass_fd(f4, 4);
            if preserve {
                l = l.args(&["--runtime-opt", "--preserve-fds", "--runtime-opt", "2"]);
            }
            let r = fx.launch_ok(&c, l);
            let pid = r.sync_pid() as i32;
            fx.start(&c);
            let fds = fds_of_sleeper(pid);
            let nums: Vec<i32> = fds.iter().map(|f| f.0).collect();
            eprintln!("[{shim}] preserve={preserve}: container fds {fds:?}");
            if preserve {
                c.wait_log_contains(Stream::Stdout, "three\nfour\n");
                assert_eq!(nums, [0, 1, 2, 3, 4], "[{shim}] the container's descriptors: {fds:?}");
                assert_eq!(fds[3].1, p3.display().to_string(), "[{shim}] fd 3");
                assert_eq!(fds[4].1, p4.display().to_string(), "[{shim}] fd 4");
            } else {
                assert_eq!(nums, [0, 1, 2], "[{shim}] nothing but stdio without --preserve-fds: {fds:?}");
            }
            assert!(!fds.iter().any(|f| f.1.contains("oci-log")), "[{shim}] the runtime's log leaked: {fds:?}");
            kill(pid, libc::SIGKILL);
            assert_eq!(c.wait_exit_file(), "137", "[{shim}]");
            c.wait_no_shim(None);
        }
    }
}

// Proves `--preserve-fds` for an exec (CRI-O's legacy exec command line):
// the exec's process reads the launcher's descriptor 3, under conmon and
// shimlet alike, and its output is in the exec's log.
#[test]
fn preserve_fds_reach_an_exec_like_conmon() {
    let fx = Fixture::new("fd-exec");
    let c = fx.bundle(&["sleep", "1000"]);
    fx.launch_ok(&c, fx.launcher(&c));
    fx.start(&c);
    for shim in Shim::BOTH {
        let spec = c.dir.join(format!("exec-{shim}.json"));
        let process = serde_json::json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": ["sh", "-c", "cat <&3; ls /proc/self/fd"], "env": ["PATH=/bin"],
        });
        fs::write(&spec, serde_json::to_vec(&process).unwrap()).unwrap();
        let (_, f3) = file(&c.dir, "exec-three.txt", "for the exec\n");
        let log = c.dir.join(format!("exec-{shim}.log"));
        let l = Launcher::new()
            .bin(shim.path())
            .opt("-c", &c.id)
            .opt("-r", runc_bin())
            .arg(format!("--runtime-arg=--root={}", fx.runc_root.display()))
            .arg("-e")
            .opt("--exec-process-spec", &spec)
            .opt("-p", c.dir.join(format!("exec-{shim}.pid")))
            .opt("-l", &log)
            .args(&["--runtime-opt", "--preserve-fds", "--runtime-opt", "1"])
            .pass_fd(f3, 3)
            .sync(Sync::Env);
        let r = l.run(&c.dir);
        assert!(r.status.success(), "[{shim}] launcher: {:?}", r.stderr_str());
        assert_eq!(r.sync.as_ref().unwrap().json["exit_code"], 0, "[{shim}] {}", r.sync_text());
        let out = Log::parse(&fs::read(&log).unwrap()).unwrap().stream(Stream::Stdout);
        let text = String::from_utf8_lossy(&out).into_owned();
        eprintln!("[{shim}] exec output {text:?}");
        assert!(text.starts_with("for the exec\n"), "[{shim}] the exec read fd 3: {text:?}");
        // ls's own directory descriptor is the next one, 4: nothing else.
        assert_eq!(text.lines().skip(1).collect::<Vec<_>>(), ["0", "1", "2", "3", "4"], "[{shim}] {text:?}");
    }
    runc_kill(&fx, &c, "KILL");
    c.wait_status();
}

// Proves socket activation is handed on as conmon hands it: with
// LISTEN_FDS=1 and --replace-listen-pid the runtime gets LISTEN_PID =
// its own pid, so runc takes descriptor 3 as an activation socket and the
// container gets it as 3 with LISTEN_FDS=1 LISTEN_PID=1; without the flag
// (LISTEN_PID naming someone else) runc ignores it and the container has
// neither. Under conmon and shimlet alike.
#[test]
fn socket_activation_like_conmon() {
    let fx = Fixture::new("fd-listen");
    let script = "echo \"fds=[$LISTEN_FDS] pid=[$LISTEN_PID]\"; [ -e /proc/self/fd/3 ] && cat <&3 || echo no-fd-3";
    for shim in Shim::BOTH {
        for replace in [true, false] {
            let c = fx.bundle(&["sh", "-c", script]);
            let (_, f3) = file(&c.dir, "socket.txt", "activated\n");
            let mut l = conmon_logged(&fx, &c, shim).pass_fd(f3, 3).env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
            if replace {
                l = l.arg("--replace-listen-pid");
            }
            fx.launch_ok(&c, l);
            fx.start(&c);
            assert_eq!(c.wait_exit_file(), "0", "[{shim}]");
            c.wait_no_shim(None);
            let out = String::from_utf8_lossy(&c.log().stream(Stream::Stdout)).into_owned();
            eprintln!("[{shim}] replace={replace}: {out:?}");
            let want = if replace { "fds=[1] pid=[1]\nactivated\n" } else { "fds=[] pid=[]\nno-fd-3\n" };
            assert_eq!(out, want, "[{shim}] replace={replace}");
        }
    }
}

// Proves a LISTEN_PID that is not a positive number fails the create with
// conmon's words (`Invalid LISTEN_PID abc`) on the sync pipe, under
// conmon and shimlet alike, and nothing is left.
#[test]
fn invalid_listen_pid_like_conmon() {
    let fx = Fixture::new("fd-badpid");
    for shim in Shim::BOTH {
        let c = fx.bundle(&["true"]);
        let r = fx.launch(&c, conmon_logged(&fx, &c, shim).env("LISTEN_PID", "abc"));
        assert!(r.status.success(), "[{shim}] {:?}", r.stderr_str());
        assert_eq!(r.sync_pid(), -1, "[{shim}] {}", r.sync_text());
        let m = r.sync_message().unwrap_or_default();
        assert!(m.contains("Invalid LISTEN_PID abc"), "[{shim}] {m:?}");
        eprintln!("[{shim}] {}", r.sync_text().trim());
        c.wait_no_shim(None);
        assert!(fx.state(&c).is_none(), "[{shim}] no container");
    }
}

// Proves issue 13's podman scenario: `podman run -i --preserve-fds=2 IMG sh
// -c 'cat <&3; cat <&4'` with two files as podman's 3 and 4 prints both,
// and `podman exec --preserve-fds=1 CTR sh -c 'cat <&3'` prints its file,
// under conmon and shimlet alike.
#[test]
fn podman_preserve_fds() {
    let p = podman::Podman::new("preserve");
    for shim in Shim::BOTH {
        let (_, a) = file(p.tmp.path(), "a.txt", "from podman's fd 3\n");
        let (_, b) = file(p.tmp.path(), "b.txt", "from podman's fd 4\n");
        let name = p.name(shim, "pfd");
        let args = ["run", "-i", "--rm", "--network", "none", "--name", &name, "--preserve-fds=2", podman::IMAGE];
        let mut argv: Vec<&str> = args.to_vec();
        argv.extend(["sh", "-c", "cat <&3; cat <&4"]);
        let o = p.run_with_fds(shim, &argv, &[&a, &b]);
        assert_eq!(o.code(), 0, "[{shim}] {}", o.describe());
        assert_eq!(o.stdout_str(), "from podman's fd 3\nfrom podman's fd 4\n", "[{shim}] {}", o.describe());

        let ctr = p.run_d(shim, &p.name(shim, "pfdexec"), &[], &["sleep", "1000"]);
        let (_, e) = file(p.tmp.path(), "e.txt", "for podman exec\n");
        let o = p.run_with_fds(shim, &["exec", "--preserve-fds=1", &ctr, "sh", "-c", "cat <&3"], &[&e]);
        assert_eq!(o.code(), 0, "[{shim}] {}", o.describe());
        assert_eq!(o.stdout_str(), "for podman exec\n", "[{shim}] {}", o.describe());
        eprintln!("[{shim}] podman run and exec read the preserved descriptors");
        if let Err(e) = p.cleanup() {
            panic!("[{shim}] {e}");
        }
    }
}
