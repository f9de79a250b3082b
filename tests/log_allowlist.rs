//! `--log-allowlist-dir DIR` (conmon 2.2): the log file must be inside one
//! of the listed directories, after the kernel has resolved symbolic links
//! and `..`, so that neither can take it outside; the file may not itself
//! be a symbolic link; the checked directory stays the log's directory for
//! every later rotation. This is what conmon's documentation says; conmon
//! 2.2.1 itself only looks at the list when it rotates a file that has gone
//! missing, and then only warns (see the notes of issue 13), and conmon
//! 2.1.6 does not know the option: these tests hold shimlet to the
//! documented behaviour only.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;

struct Dirs {
    allowed: PathBuf,
    outside: PathBuf,
}

fn dirs(fx: &Fixture) -> Dirs {
    let d = Dirs { allowed: fx.tmp.join("allowed"), outside: fx.tmp.join("outside") };
    fs::create_dir_all(d.allowed.join("sub")).unwrap();
    fs::create_dir_all(&d.outside).unwrap();
    d
}

/// Launches `echo logged` with the log at `log` and the allowlist `list`.
fn launch(fx: &Fixture, log: &Path, list: &[&Path], sync: Sync) -> (Container, Launched) {
    let mut c = fx.bundle(&["sh", "-c", "echo logged"]);
    c.log = log.to_path_buf();
    let mut l = conmon_line(fx, &c, Shim::Shimlet).opt("-l", format!("k8s-file:{}", log.display()));
    for d in list {
        l = l.opt("--log-allowlist-dir", d);
    }
    let r = fx.launch(&c, l.sync(sync));
    (c, r)
}

fn accepted(fx: &Fixture, what: &str, log: &Path, list: &[&Path]) {
    let (c, r) = launch(fx, log, list, Sync::Env);
    assert_eq!(r.status.code(), Some(0), "{what}: {:?}", r.stderr_str());
    assert!(r.sync_pid() > 0, "{what}: {}", r.sync_text());
    fx.start(&c);
    assert_eq!(c.wait_exit_file(), "0", "{what}");
    c.wait_no_shim(None);
    assert_eq!(c.log().stream(Stream::Stdout), b"logged\n", "{what}: the log");
}

fn refused(fx: &Fixture, what: &str, log: &Path, list: &[&Path], want: &str) {
    let (c, r) = launch(fx, log, list, Sync::None);
    assert_eq!(r.status.code(), Some(1), "{what}: {:?}", r.stderr_str());
    let m = one_message(Shim::Shimlet, &r);
    assert!(m.starts_with(want), "{what}: {m:?} should start with {want:?}");
    assert!(!c.pidfile.exists() && fx.state(&c).is_none(), "{what}: a container was created");
    eprintln!("{what}: {m}");
}

// Proves logs inside a listed directory are accepted (also below it, also
// through `..` that stays inside, also when the listed directory is
// named through a symbolic link, also when only a later entry matches),
// and logs outside are refused with conmon's words before anything runs:
// elsewhere, through a symbolic link out, through `..` out, in a sibling
// whose name only starts like the listed one; a log file that is a
// symbolic link is refused too, and nothing is created outside.
#[test]
fn only_listed_directories() {
    let fx = Fixture::new("a-list");
    let d = dirs(&fx);
    let a = d.allowed.as_path();
    accepted(&fx, "in the listed directory", &a.join("ctr.log"), &[a]);
    accepted(&fx, "below it", &a.join("sub/ctr.log"), &[a]);
    accepted(&fx, "through .. that stays inside", &a.join("sub/../ctr2.log"), &[a]);
    let alias = fx.tmp.join("alias");
    symlink(a, &alias).unwrap();
    accepted(&fx, "listed through a symbolic link", &a.join("ctr3.log"), &[&alias]);
    accepted(&fx, "a later entry matches", &a.join("ctr4.log"), &[&d.outside.join("nope"), &d.outside, a]);

    let not = "Parent directory not in allowlist";
    refused(&fx, "elsewhere", &d.outside.join("ctr.log"), &[a], not);
    let out_link = a.join("out");
    symlink(&d.outside, &out_link).unwrap();
    refused(&fx, "through a symbolic link out", &out_link.join("ctr.log"), &[a], not);
    refused(&fx, "through .. out", &a.join("../outside/ctr.log"), &[a], not);
    let sibling = fx.tmp.join("allowed-other");
    fs::create_dir(&sibling).unwrap();
    refused(&fx, "a sibling with the same prefix", &sibling.join("ctr.log"), &[a], not);
    let target = d.outside.join("target.log");
    symlink(&target, a.join("link.log")).unwrap();
    refused(&fx, "a log file that is a symbolic link", &a.join("link.log"), &[a], "Log path is a symbolic link");
    assert!(!target.exists(), "nothing was created outside");
    let left: Vec<_> = fs::read_dir(&d.outside).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "files outside the allowlist: {left:?}");
}

// Proves the checked directory stays the log's: once the shim runs, the
// log's directory is renamed and a symbolic link to a directory outside
// put in its place; the rotations that follow (--log-rotate, a small
// --log-size-max) happen in the renamed, checked directory, and nothing
// is written outside.
#[test]
fn rotation_stays_in_the_checked_directory() {
    let fx = Fixture::new("a-pin");
    let d = dirs(&fx);
    let logdir = d.allowed.join("logs");
    fs::create_dir(&logdir).unwrap();
    let mut c = fx.bundle(&[
        "sh",
        "-c",
        &format!("echo first; {}; i=0; while [ $i -lt 20 ]; do echo line-$i; i=$((i+1)); done", wait_file_sh("go")),
    ]);
    c.log = logdir.join("ctr.log");
    let l = conmon_line(&fx, &c, Shim::Shimlet)
        .opt("-l", format!("k8s-file:{}", c.log.display()))
        .opt("--log-allowlist-dir", &d.allowed)
        .args(&["--log-rotate", "--log-size-max", "300", "--log-max-files", "2"]);
    let r = fx.launch_ok(&c, l);
    let pid = r.sync_pid() as i32;
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "first\n");
    let moved = d.allowed.join("logs.moved");
    fs::rename(&logdir, &moved).unwrap();
    symlink(&d.outside, &logdir).unwrap();
    touch_in_container(pid, "go");
    assert_eq!(c.wait_exit_file(), "0");
    c.wait_no_shim(None);
    let left: Vec<_> = fs::read_dir(&d.outside).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "files written outside: {left:?}");
    let mut names: Vec<String> =
        fs::read_dir(&moved).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, vec!["ctr.log", "ctr.log.1", "ctr.log.2"], "the rotated files, in the checked directory");
    let last = Log::parse(&fs::read(moved.join("ctr.log")).unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&last.stream(Stream::Stdout)).ends_with("line-19\n"));
}
