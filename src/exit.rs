//! How a process ended, and the records of it: the status file
//! (`exited code=0 signal=0 oom=0 pid=42 at=...`) and the exit-dir file
//! (just the decimal status, as podman and CRI-O read it).

use core::ffi::CStr;

use crate::buf::{Buf, PathBuf};
use crate::sys;
use crate::timefmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The exit code, or 128+N when killed by signal N.
    pub code: i32,
    /// The killing signal, or 0.
    pub signal: i32,
}

impl Ended {
    /// From `waitid`'s `si_code` and `si_status`.
    pub fn from_wait(si_code: i32, si_status: i32) -> Ended {
        match si_code {
            libc::CLD_KILLED | libc::CLD_DUMPED => Ended { code: 128 + si_status, signal: si_status },
            _ => Ended { code: si_status & 0xff, signal: 0 },
        }
    }
    pub fn success(self) -> bool {
        self.code == 0 && self.signal == 0
    }
}

pub type Line = Buf<160>;

/// `KIND code=C signal=S oom=O pid=P at=STAMP lost=B\n`; KIND is `exited`
/// or `failed`; `lost` counts output bytes that could not be logged.
pub fn status_line(kind: &[u8], e: Ended, oom: bool, pid: i32, stamp: &timefmt::Stamp, lost: u64) -> Line {
    let mut l = Line::new();
    l.push(kind);
    l.push(b" code=");
    l.push_i64(e.code as i64);
    l.push(b" signal=");
    l.push_i64(e.signal as i64);
    l.push(b" oom=");
    l.push(if oom { b"1" } else { b"0" });
    l.push(b" pid=");
    l.push_i64(pid as i64);
    l.push(b" at=");
    l.push(stamp);
    l.push(b" lost=");
    l.push_u64(lost);
    l.push(b"\n");
    l
}

/// Write `DIR/ID` with the decimal status. `path` and `tmp` are scratch.
pub fn write_exit_file(dir: &CStr, id: &CStr, code: i32, path: &mut PathBuf, tmp: &mut PathBuf) -> sys::Result<()> {
    path.clear();
    let fits = path.push(dir.to_bytes()) && path.push(b"/") && path.push(id.to_bytes());
    if !fits {
        return Err(sys::Errno::NAMETOOLONG);
    }
    let mut num: Buf<12> = Buf::new();
    num.push_i64(code as i64);
    let p = path.as_cstr().ok_or(sys::Errno::NAMETOOLONG)?;
    sys::write_file_atomic(p, tmp, num.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(Ended::from_wait(libc::CLD_EXITED, 3), Ended { code: 3, signal: 0 });
        assert_eq!(Ended::from_wait(libc::CLD_KILLED, 9), Ended { code: 137, signal: 9 });
        assert_eq!(Ended::from_wait(libc::CLD_DUMPED, 11), Ended { code: 139, signal: 11 });
        assert!(Ended::from_wait(libc::CLD_EXITED, 0).success());
    }

    #[test]
    fn line_is_fixed_order() {
        let st = timefmt::format(0, 0);
        let l = status_line(b"exited", Ended { code: 137, signal: 9 }, false, 4242, &st, 0);
        assert_eq!(
            l.as_bytes(),
            b"exited code=137 signal=9 oom=0 pid=4242 at=1970-01-01T00:00:00.000000000+00:00 lost=0\n"
        );
    }
}
