//! What a conmon command line is checked for before anything starts, and
//! the words of each refusal: the log drivers (`-l`), the ids, the log
//! level, exec and restore, the runtime, `--version`. Each case runs
//! against /usr/bin/conmon (2.1.6) and shimlet with the same command line
//! and must give the same message (each shim's prefix aside) and exit
//! status; the options conmon 2.1.6 lacks (`--log-label`,
//! `--no-container-partial-message`, `--log-max-files`) are held to conmon
//! 2.2's documented texts (see the notes of issue 13).
//!
//! The runtime is /bin/false where a check must pass: a launch that gets
//! past every check exits 0 (conmon's launcher never waits), and its
//! create fails at once, so nothing is left running.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// `-c ID -u ID -r RUNTIME` and `extra`, run by `shim` in `dir`.
fn line(shim: Shim, id: &str, runtime: &str, dir: &Path, extra: &[&str]) -> Launcher {
    let mut l = Launcher::new().bin(shim.path()).cwd(dir);
    for (o, v) in [("-c", id), ("-u", id), ("-r", runtime)] {
        if !v.is_empty() {
            l = l.opt(o, v);
        }
    }
    l.args(extra)
}

/// Runs the case with both shims; both must exit 1 with the same message,
/// which must satisfy `want`. Returns conmon's message.
fn refused_alike(fx: &Fixture, what: &str, id: Option<&str>, runtime: &str, extra: &[&str], want: &str) -> String {
    let mut texts = vec![];
    for shim in Shim::BOTH {
        let dir = fx.tmp.join(format!("{}-{}", shim, next_n()));
        fs::create_dir(&dir).unwrap();
        let own_id = fx.new_id();
        let id = id.unwrap_or(&own_id);
        let r = line(shim, id, runtime, &dir, extra).run(&dir);
        assert_eq!(r.status.code(), Some(1), "[{shim}] {what}: exit status; stderr {:?}", r.stderr_str());
        let m = one_message(shim, &r);
        assert!(m.starts_with(want), "[{shim}] {what}: {m:?} should start with {want:?}");
        texts.push(m);
    }
    eprintln!("{what}: conmon {:?}, shimlet {:?}", texts[0], texts[1]);
    texts.swap_remove(0)
}

/// Runs the case with both shims; both must launch (exit 0) and leave the
/// files `check` looks for in the working directory, once the shim (whose
/// runtime fails) is gone: what it made and removed meanwhile is not left.
fn accepted_alike(fx: &Fixture, what: &str, extra: &[&str], check: impl Fn(Shim, &Path)) {
    for shim in Shim::BOTH {
        let dir = fx.tmp.join(format!("{}-{}", shim, next_n()));
        fs::create_dir(&dir).unwrap();
        // The shim's pidfile beside the directory, not in it.
        let pidfile = fx.tmp.join(format!("{}-{}.pid", shim, next_n()));
        let pf = pidfile.display().to_string();
        let r = line(shim, &fx.new_id(), "/bin/false", &dir, extra).opt("-P", &pf).run(&dir);
        assert_eq!(r.status.code(), Some(0), "[{shim}] {what}: exit status; stderr {:?}", r.stderr_str());
        let pid: i32 = wait_until(&format!("[{shim}] {what}: the shim's pidfile"), WAIT, || {
            fs::read_to_string(&pidfile).ok().and_then(|t| t.trim().parse().ok())
        });
        wait_until(&format!("[{shim}] {what}: the shim (pid {pid}) gone"), WAIT, || (!pid_alive(pid)).then_some(()));
        check(shim, &dir);
    }
}

// Proves every `-l` refusal of conmon's is shimlet's, with conmon's words:
// no `-l`, an empty one, `k8s-file` without a file, an unknown driver (also
// where a path holds a colon), a file that cannot be opened, `--log-tag`
// with k8s-file alone, journald with an id of 12 characters.
#[test]
fn log_drivers_refused_like_conmon() {
    let fx = Fixture::new("c-logbad");
    let f = "/bin/false";
    refused_alike(&fx, "no -l", None, f, &[], "Log driver not provided. Use --log-path");
    for l in ["", ":", "::"] {
        refused_alike(&fx, &format!("-l {l:?}"), None, f, &["-l", l], "log-path must not be empty");
    }
    for l in ["k8s-file", "k8s-file:"] {
        refused_alike(&fx, &format!("-l {l}"), None, f, &["-l", l], "k8s-file requires a filename");
    }
    for l in ["invalid:/x", "invalid:"] {
        let m = refused_alike(&fx, &format!("-l {l}"), None, f, &["-l", l], "No such log driver invalid");
        assert_eq!(m, "No such log driver invalid");
    }
    refused_alike(&fx, "-l /a/b:c", None, f, &["-l", "/a/b:c"], "No such log driver /a/b");
    let nowhere = format!("/nonexistent-{}/ctr.log", fx.token);
    let m = refused_alike(&fx, "-l in a missing directory", None, f, &["-l", &nowhere], "Failed to open log file");
    assert!(m.contains("No such file or directory"), "{m}");
    let log = fx.tmp.join("tagged.log").display().to_string();
    refused_alike(
        &fx,
        "k8s-file and --log-tag",
        None,
        f,
        &["-l", &log, "--log-tag", "t"],
        "k8s-file doesn't support --log-tag",
    );
    refused_alike(
        &fx,
        "journald, 12-character id",
        Some("abcdefghijkl"),
        f,
        &["-l", "journald:"],
        "Container ID must be longer than 12 characters",
    );
    refused_alike(&fx, "one bad of several", None, f, &["-l", "journald", "-l", "bad:x"], "No such log driver bad");
}

// Proves the `-l` forms conmon accepts are shimlet's, with the same files:
// `:PATH` and `::PATH` log to PATH, `:journald` to a file named
// `journald`, `journald:` to no file, `none:`/`off:`/`null:` to none,
// k8s-file with journald and a tag; a log level in capitals is fine.
#[test]
fn log_drivers_accepted_like_conmon() {
    let fx = Fixture::new("c-logok");
    accepted_alike(&fx, "-l :PATH", &["-l", ":a.log"], |s, d| assert!(d.join("a.log").is_file(), "[{s}] a.log"));
    accepted_alike(&fx, "-l ::PATH", &["-l", "::b.log"], |s, d| assert!(d.join("b.log").is_file(), "[{s}] b.log"));
    accepted_alike(&fx, "-l :journald", &["-l", ":journald"], |s, d| {
        assert!(d.join("journald").is_file(), "[{s}] a file named journald")
    });
    accepted_alike(&fx, "-l journald:", &["-l", "journald:"], |s, d| {
        assert!(!d.join("journald").exists(), "[{s}] no file named journald")
    });
    for l in ["none:", "off:", "null:"] {
        accepted_alike(&fx, l, &["-l", l], |s, d| {
            let names: Vec<_> = fs::read_dir(d).unwrap().flatten().map(|e| e.file_name()).collect();
            assert!(names.iter().all(|n| n.to_string_lossy().starts_with("launcher-")), "[{s}] -l {l}: {names:?}");
        });
    }
    accepted_alike(
        &fx,
        "k8s-file, journald and a tag",
        &["-l", "k8s-file:c.log", "-l", "journald", "--log-tag", "t"],
        |s, d| assert!(d.join("c.log").is_file(), "[{s}] c.log"),
    );
    accepted_alike(&fx, "--log-level DEBUG", &["-l", "none", "--log-level", "DEBUG"], |_, _| {});
}

// Proves the other checks come in conmon's order with conmon's words: no
// id, a bad log level (before the uuid), no uuid, no runtime, a runtime
// that is not executable (before the log drivers), exec and restore
// together, --exec-attach without exec or without the API version, exec
// without a process spec, a negative exit delay, and --exec-attach
// without $_OCI_ATTACHPIPE (here with --sync, where both say it on
// stderr and exit 1).
#[test]
fn other_checks_like_conmon() {
    let fx = Fixture::new("c-checks");
    let f = "/bin/false";
    let nocid = &["-u", "x", "-r", f][..];
    for shim in Shim::BOTH {
        let r = Launcher::new().bin(shim.path()).args(nocid).run(fx.tmp.path());
        assert_eq!(r.status.code(), Some(1), "[{shim}] no --cid");
        assert_eq!(one_message(shim, &r), "Container ID not provided. Use --cid", "[{shim}]");
    }
    refused_alike(&fx, "bad log level", None, "", &["--log-level", "loud"], "No such log level loud");
    for shim in Shim::BOTH {
        let id = fx.new_id();
        let r = Launcher::new().bin(shim.path()).args(&["-c", &id, "-r", f, "-l", "none"]).run(fx.tmp.path());
        assert_eq!(r.status.code(), Some(1), "[{shim}] no --cuuid");
        assert_eq!(one_message(shim, &r), "Container UUID not provided. Use --cuuid", "[{shim}]");
    }
    refused_alike(&fx, "no runtime", None, "", &["-l", "none"], "Runtime path not provided. Use --runtime");
    refused_alike(
        &fx,
        "runtime not there",
        None,
        "/not/a/path",
        &["-l", "bad:"],
        "Runtime path /not/a/path is not valid",
    );
    refused_alike(
        &fx,
        "exec and restore",
        None,
        f,
        &["-e", "--restore", "/x"],
        "Cannot use 'exec' and 'restore' at the same time",
    );
    refused_alike(
        &fx,
        "exec-attach without exec",
        None,
        f,
        &["--exec-attach"],
        "Attach can only be specified with exec",
    );
    refused_alike(
        &fx,
        "exec-attach, legacy exec",
        None,
        f,
        &["-e", "--exec-attach"],
        "Attach can only be specified for a non-legacy exec session",
    );
    refused_alike(
        &fx,
        "exec without spec",
        None,
        f,
        &["-e", "--api-version", "-l", "none"],
        "Exec process spec path not provided. Use --exec-process-spec",
    );
    refused_alike(
        &fx,
        "negative exit delay",
        None,
        f,
        &["--exit-delay", "-1", "-l", "none"],
        "Delay before invoking exit command must be greater than or equal to 0",
    );
    let spec = fx.tmp.join("spec.json");
    fs::write(&spec, b"{}").unwrap();
    let spec = spec.display().to_string();
    refused_alike(
        &fx,
        "exec-attach without its pipe",
        None,
        f,
        &["-e", "--api-version", "--exec-attach", "--exec-process-spec", &spec, "-l", "none", "--sync"],
        "--attach specified but _OCI_ATTACHPIPE was not",
    );
}

// Proves `--version` prints conmon's two lines, the second `commit: ...`,
// with both shims, and nothing else; shimlet's says it is shimlet.
#[test]
fn version_has_a_commit_line() {
    let fx = Fixture::new("c-version");
    for shim in Shim::BOTH {
        let r = Launcher::new().bin(shim.path()).arg("--version").run(fx.tmp.path());
        assert_eq!(r.status.code(), Some(0), "[{shim}] --version");
        let out = String::from_utf8_lossy(&r.stdout).into_owned();
        let lines: Vec<&str> = out.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "[{shim}] two lines: {out:?}");
        assert!(lines[0].starts_with("conmon version 2."), "[{shim}] {out:?}");
        assert!(lines[1].starts_with("commit: "), "[{shim}] {out:?}");
        eprintln!("[{shim}] {out:?}");
        if shim == Shim::Shimlet {
            assert!(lines[1].contains("(shimlet "), "{out:?}");
        }
    }
}

// Proves the checks of conmon 2.2's new options, with its documented
// words (conmon 2.1.6 does not know the options): --log-max-files bounds
// (checked before the container id, after --version), --log-label's
// format with journald and its refusal with k8s-file alone, and the
// warning (not an error) for --no-container-partial-message without
// journald.
#[test]
fn conmon_22_option_checks() {
    let fx = Fixture::new("c-22");
    let run = |extra: &[&str]| line(Shim::Shimlet, &fx.new_id(), "/bin/false", fx.tmp.path(), extra).run(fx.tmp.path());
    let refused = |extra: &[&str], want: &str| {
        let r = run(extra);
        assert_eq!(r.status.code(), Some(1), "{extra:?}: {:?}", r.stderr_str());
        assert_eq!(one_message(Shim::Shimlet, &r), want, "{extra:?}");
    };
    refused(&["--log-max-files", "-1"], "log-max-files must be non-negative, got -1");
    refused(
        &["--log-max-files", "0", "--log-rotate", "-l", "none"],
        "log-max-files must be at least 1 when log-rotate is enabled, got 0",
    );
    refused(&["--log-max-files", "2147483648"], "Integer value “2147483648” for --log-max-files out of range");
    let r = Launcher::new().args(&["--log-max-files", "-1", "--version"]).run(fx.tmp.path());
    assert_eq!(r.status.code(), Some(0), "--version comes first");
    let r = Launcher::new().args(&["-u", "x", "--log-max-files", "-1"]).run(fx.tmp.path());
    assert_eq!(one_message(Shim::Shimlet, &r), "log-max-files must be non-negative, got -1", "before the id");
    for (l, want) in [
        ("=A", "Container labels must be in format LABEL=VALUE (no LABEL present in '=A')"),
        ("A", "Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'A')"),
        ("A=B=C", "Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'A=B=C')"),
        ("a=B", "Container label names must contain only uppercase letters, numbers and underscore (in 'a=B')"),
        (
            "MY%LABEL=x",
            "Container label names must contain only uppercase letters, numbers and underscore (in 'MY%LABEL=x')",
        ),
    ] {
        refused(&["-l", "journald", "--log-label", l], want);
    }
    let log = fx.tmp.join("l.log").display().to_string();
    refused(&["-l", &log, "--log-label", "A=B"], "k8s-file doesn't support --log-label");
    let r = run(&["-l", "none", "--log-label", "whatever"]);
    assert_eq!(r.status.code(), Some(0), "labels are not looked at without journald: {:?}", r.stderr_str());
    let r = run(&["-l", &log, "--no-container-partial-message"]);
    assert_eq!(r.status.code(), Some(0), "{:?}", r.stderr_str());
    assert_eq!(
        one_message(Shim::Shimlet, &r),
        "--no-container-partial-message has no effect without journald log driver"
    );
    let r = run(&["-l", &log, "--no-container-partial-message", "--log-level", "error"]);
    assert!(r.stderr.is_empty(), "no warning at level error: {:?}", r.stderr_str());
}
