//! What the container, the runtime and the exit command inherit from the
//! shim: no shim descriptor, whichever options opened one; and an
//! oom_score_adj of 0 while the shim protects itself with -1000.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

// ---------------------------------------------------------------------------
// descriptors, and oom_score_adj

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

// Proves the OOM score adjustments, as conmon 2.2 makes them: the shim
// protects itself (-1000); the runtime, the container and the exit command
// get back what the launcher was given, here 300 (conmon 2.1.6 gave them
// 0). (Where the tests lack CAP_SYS_RESOURCE, as in some sandboxes, -1000
// is impossible: then the shim keeps the launcher's 300 and hands that on.)
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
        assert_eq!(runtime, "300", "the runtime's");
        assert_eq!(container, "300", "the container's");
    } else {
        eprintln!("oom_score_adj: no CAP_SYS_RESOURCE here: -1000 cannot be tested, checking the fallback");
        assert_eq!(shim_adj, Some(300), "the shim's own, when it cannot lower it");
        assert_eq!(runtime, "300", "the runtime's, when the shim could not protect itself");
        assert_eq!(container, "300", "the container's, when the shim could not protect itself");
    }
    assert_eq!(exit_cmd.trim(), "300", "the exit command's");
    end(&fx, &c, shim);
}
