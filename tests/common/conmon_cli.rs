//! Both shims driven by conmon's own command line (the way podman and
//! CRI-O drive conmon), so that one scenario runs against /usr/bin/conmon
//! and against shimlet in the same test: the command line of a fixture's
//! container, and conmon's messages with their prefixes taken off.

use std::path::Path;

pub use super::podman::Shim;
use super::*;

/// conmon's command line for `c`, run by `shim`: `-c ID -u ID -b BUNDLE
/// -r RUNC --runtime-arg --root=ROOT -p BUNDLE/pidfile -P SHIM_PIDFILE
/// --exit-dir EXITS --socket-dir-path DIR/sockets`, in the container's
/// directory, the create outcome on `$_OCI_SYNCPIPE`. No log option: add
/// `-l ...`.
pub fn conmon_line(fx: &Fixture, c: &Container, shim: Shim) -> Launcher {
    conmon_line_with(&fx.runc_root, c, shim, &runc_bin())
}

/// `conmon_line` with another runtime (a fake one).
pub fn conmon_line_with(runc_root: &Path, c: &Container, shim: Shim, runtime: &Path) -> Launcher {
    let sockets = c.dir.join("sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    Launcher::new()
        .opt("-c", &c.id)
        .opt("-u", &c.id)
        .opt("-b", &c.bundle)
        .opt("-r", runtime)
        .arg(format!("--runtime-arg=--root={}", runc_root.display()))
        .opt("-p", &c.pidfile)
        .opt("-P", &c.shim_pidfile)
        .opt("--exit-dir", &c.exit_dir)
        .opt("--socket-dir-path", &sockets)
        .cwd(&c.dir)
        .sync(Sync::Env)
        .bin(shim.path())
}

/// `conmon_line` with `-l k8s-file:LOG`.
pub fn conmon_logged(fx: &Fixture, c: &Container, shim: Shim) -> Launcher {
    conmon_line(fx, c, shim).opt("-l", format!("k8s-file:{}", c.log.display()))
}

/// The text of a shim's message lines, without the prefix each shim puts
/// before them (`[conmon:e]: `, `[conmon:e] `, `[conmon:w]: `, `conmon: `,
/// `shimlet: `, `shimlet: warning: `), one line each.
pub fn message_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            let mut l = l.trim_end();
            for p in [
                "[conmon:e]: ",
                "[conmon:e] ",
                "[conmon:w]: ",
                "[conmon:w] ",
                "conmon: ",
                "shimlet: warning: ",
                "shimlet: ",
            ] {
                if let Some(rest) = l.strip_prefix(p) {
                    l = rest;
                    break;
                }
            }
            l.to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// The one message of a shim on stderr (fails the test when there is not
/// exactly one line).
pub fn one_message(shim: Shim, r: &Launched) -> String {
    let lines = message_lines(&r.stderr);
    assert_eq!(
        lines.len(),
        1,
        "[{shim}] want one message on stderr, got {:?}; stdout {:?}",
        lines,
        String::from_utf8_lossy(&r.stdout)
    );
    lines[0].clone()
}
