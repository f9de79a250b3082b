//! `--restore DIR`: the runtime's `restore` with conmon's arguments, in
//! conmon's order, instead of `create`; the restored container runs at
//! once (nobody calls `start`), and the shim reports and serves it as a
//! created one. Both shims run the same command lines (podman's restore
//! options: `--runtime-opt --tcp-established --runtime-opt --file-locks`),
//! first with a fake runtime that records its arguments and plays the
//! restore with `runc create` + `runc start` (CRIU cannot checkpoint on
//! this host's kernel), then with the real runc and its real CRIU, which
//! fails here: the failure must reach the manager alike.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// The words of each run recorded by tests/fakes/restore.sh.
fn recorded(dir: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(dir.join("args.txt")).unwrap_or_default();
    let mut runs = vec![vec![]];
    for l in text.lines() {
        if l == "--end--" {
            runs.push(vec![]);
        } else {
            runs.last_mut().unwrap().push(l.to_string());
        }
    }
    runs.pop();
    runs
}

// Proves the restore command line is conmon's, word for word, under
// conmon and shimlet: `--root=R restore --bundle B --pid-file P --no-pivot
// --no-new-keyring --detach --image-path CKPT --work-path B
// --tcp-established --file-locks ID` (plus `--console-socket S` before the
// id with -t); that the pid reported is the restored container's, that the
// container runs without a `start`, and that its end is recorded (exit
// file 137 after SIGKILL).
#[test]
fn restore_command_line_like_conmon() {
    let fx = Fixture::new("r-argv");
    for shim in Shim::BOTH {
        for tty in [false, true] {
            let c = if tty { tty_bundle(&fx, &["sleep", "1000"]) } else { fx.bundle(&["sleep", "1000"]) };
            let fake = fake_runtime("restore.sh", &c.dir, 0o755);
            let ckpt = c.bundle.join("checkpoint");
            fs::create_dir(&ckpt).unwrap();
            let mut l = conmon_line_with(&fx.runc_root, &c, shim, &fake)
                .opt("-l", format!("k8s-file:{}", c.log.display()))
                .opt("--restore", &ckpt)
                .args(&["--runtime-opt", "--tcp-established", "--runtime-opt", "--file-locks"])
                .args(&["--no-pivot", "--no-new-keyring"]);
            if tty {
                l = l.arg("-t");
            }
            let r = fx.launch_ok(&c, l);
            let pid = r.sync_pid() as i32;
            assert_eq!(pid, c.container_pid(), "[{shim}] the pid reported is the pidfile's");
            assert_eq!(runc_status(&fx, &c), "running", "[{shim}] restored means running, with no start");
            let runs = recorded(&c.dir);
            assert_eq!(runs.len(), 1, "[{shim}] one run of the runtime: {runs:?}");
            let b = c.bundle.display().to_string();
            let mut want: Vec<String> = vec![
                format!("--root={}", fx.runc_root.display()),
                "restore".into(),
                "--bundle".into(),
                b.clone(),
                "--pid-file".into(),
                c.pidfile.display().to_string(),
                "--no-pivot".into(),
                "--no-new-keyring".into(),
                "--detach".into(),
                "--image-path".into(),
                ckpt.display().to_string(),
                "--work-path".into(),
                b,
                "--tcp-established".into(),
                "--file-locks".into(),
            ];
            let got = &runs[0];
            if tty {
                assert_eq!(got[got.len() - 3], "--console-socket", "[{shim}] {got:?}");
                want.push("--console-socket".into());
                want.push(got[got.len() - 2].clone());
            }
            want.push(c.id.clone());
            assert_eq!(got, &want, "[{shim}] tty={tty}: the runtime's words");
            eprintln!("[{shim}] tty={tty}: {}", got.join(" "));
            kill(pid, libc::SIGKILL);
            assert_eq!(c.wait_exit_file(), "137", "[{shim}] the exit file");
            c.wait_no_shim(None);
        }
    }
}

// Proves a real restore that fails reaches the manager as conmon reports
// it: runc restore runs CRIU in the bundle (--work-path: its restore.log
// is there) and CRIU fails on this kernel; both shims send `{"pid": -1}`
// with runc's words (`criu failed: type RESTORE`, the log file's path),
// and nothing is left running.
#[test]
fn real_restore_failure_like_conmon() {
    need("criu", "criu");
    let fx = Fixture::new("r-criu");
    for shim in Shim::BOTH {
        let c = fx.bundle(&["sleep", "1000"]);
        let ckpt = c.bundle.join("checkpoint");
        fs::create_dir(&ckpt).unwrap();
        // Enough of a checkpoint for runc to call CRIU.
        fs::write(ckpt.join("descriptors.json"), br#"["/dev/null","/dev/null","/dev/null"]"#).unwrap();
        let l = conmon_logged(&fx, &c, shim).opt("--restore", &ckpt);
        let r = fx.launch(&c, l);
        assert!(r.status.success(), "[{shim}] launcher: {:?}", r.stderr_str());
        assert_eq!(r.sync_pid(), -1, "[{shim}] {}", r.sync_text());
        let m = r.sync_message().unwrap_or_default();
        assert!(m.contains("criu failed: type RESTORE"), "[{shim}] the message: {m:?}");
        let log = c.bundle.join("restore.log");
        assert!(m.contains(&log.display().to_string()), "[{shim}] the message names the bundle's restore.log: {m:?}");
        assert!(log.exists(), "[{shim}] CRIU worked in the bundle");
        eprintln!("[{shim}] {}", r.sync_text().trim());
        c.wait_no_shim(None);
        assert!(fx.state(&c).is_none(), "[{shim}] no container is left");
    }
}
