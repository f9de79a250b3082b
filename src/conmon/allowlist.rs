//! `--log-allowlist-dir DIR` (repeatable): the log file must be inside one
//! of the listed directories. conmon 2.2 documents that log files "can
//! only be created within these allowed directories", but looks at the
//! list only when it rotates a file that has gone missing, and then only
//! warns; shimlet does what the documentation says, when the launcher
//! opens the log: the log's directory, with its symbolic links and `..`
//! resolved by the kernel (the path of the open directory, from
//! /proc/self/fd), must be a listed directory (also resolved) or below
//! one, or the launcher refuses with conmon's words, `Parent directory not
//! in allowlist`. The file itself may not be a symbolic link (conmon's
//! rotation refuses one too), and the checked directory stays open: every
//! later open and rename of the log is made in it, so swapping a symbolic
//! link in the path afterwards cannot move the log out.

use core::ffi::CStr;

use super::cli::{Config, Key};
use crate::buf::PathBuf;
use crate::diag;
use crate::sock::Place;
use crate::sys::{self, OwnedFd};

/// Whether the resolved directory `dir` is `allowed` or below it.
pub fn within(dir: &[u8], allowed: &[u8]) -> bool {
    if allowed == b"/" {
        return dir.starts_with(b"/");
    }
    dir.starts_with(allowed) && matches!(dir.get(allowed.len()), None | Some(b'/'))
}

/// The log's directory, opened and checked, and the file's name in it.
/// Err: said on stderr already.
#[inline(never)]
pub fn check<'a>(cfg: &Config<'a>, path: &'a CStr) -> Result<(OwnedFd, &'a CStr), ()> {
    let place = match Place::of(path) {
        Ok(p) => p,
        Err(e) => {
            diag::say(&[b"Failed to open log file ", path.to_bytes(), b": ", sys::text(e)]);
            return Err(());
        }
    };
    let (mut dir_buf, mut allowed_buf) = (PathBuf::new(), PathBuf::new());
    let dir = match sys::fd_path(&place.dir, dir_buf.spare()) {
        Ok(d) => d,
        Err(e) => {
            diag::say(&[b"cannot resolve the log's directory: ", sys::text(e)]);
            return Err(());
        }
    };
    for entry in cfg.values(Key::LogAllowlistDir).filter(|d| !d.is_empty()) {
        let resolved = sys::open_dir(entry).and_then(|fd| {
            let n = sys::fd_path(&fd, allowed_buf.spare())?.len();
            Ok(n)
        });
        match resolved {
            Ok(n) if within(dir, &allowed_buf.spare()[..n]) => return Ok((place.dir, place.name)),
            Ok(_) => {}
            Err(e) => diag::say_warning(
                cfg.log_level,
                &[b"Invalid allowlist directory ", entry.to_bytes(), b": ", sys::text(e)],
            ),
        }
    }
    diag::say(&[b"Parent directory not in allowlist: ", dir, b" (log path ", path.to_bytes(), b")"]);
    Err(())
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn prefix_ends_at_a_component() {
        assert!(within(b"/var/log", b"/var/log"));
        assert!(within(b"/var/log/pods/x", b"/var/log"));
        assert!(!within(b"/var/logs", b"/var/log"));
        assert!(!within(b"/var", b"/var/log"));
        assert!(within(b"/anything", b"/"));
        assert!(!within(b"relative", b"/"));
    }
}
