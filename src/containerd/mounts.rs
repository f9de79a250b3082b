//! A container's rootfs as containerd hands it over: a list of mounts
//! (`containerd.types.Mount{type=1, source=2, target=3, options=4}`), all
//! mounted on `BUNDLE/rootfs` in order (a target, as 1.7 sends it, is
//! taken relative to it), and unmounted again at Delete.

use core::ffi::CStr;

use rustix::mount::{MountFlags, UnmountFlags};

use super::proto::{self, Value};
use crate::buf::{Buf, PathBuf};
use crate::sys::{self, Errno};

/// One mount option word: its flag, and whether it sets or clears it;
/// None for a word that goes to the filesystem's data.
fn flag(word: &[u8]) -> Option<(u32, bool)> {
    use linux_flags::*;
    Some(match word {
        b"bind" => (MS_BIND, true),
        b"rbind" => (MS_BIND | MS_REC, true),
        b"ro" => (MS_RDONLY, true),
        b"rw" => (MS_RDONLY, false),
        b"nosuid" => (MS_NOSUID, true),
        b"suid" => (MS_NOSUID, false),
        b"nodev" => (MS_NODEV, true),
        b"dev" => (MS_NODEV, false),
        b"noexec" => (MS_NOEXEC, true),
        b"exec" => (MS_NOEXEC, false),
        b"noatime" => (MS_NOATIME, true),
        b"atime" => (MS_NOATIME, false),
        b"nodiratime" => (MS_NODIRATIME, true),
        b"diratime" => (MS_NODIRATIME, false),
        b"relatime" => (MS_RELATIME, true),
        b"norelatime" => (MS_RELATIME, false),
        b"strictatime" => (MS_STRICTATIME, true),
        b"nostrictatime" => (MS_STRICTATIME, false),
        b"sync" => (MS_SYNCHRONOUS, true),
        b"async" => (MS_SYNCHRONOUS, false),
        b"dirsync" => (MS_DIRSYNC, true),
        b"mand" => (MS_MANDLOCK, true),
        b"nomand" => (MS_MANDLOCK, false),
        b"remount" => (MS_REMOUNT, true),
        b"defaults" => (0, true),
        _ => return None,
    })
}

/// The kernel's MS_* values (the same on every architecture).
mod linux_flags {
    pub const MS_RDONLY: u32 = 1;
    pub const MS_NOSUID: u32 = 2;
    pub const MS_NODEV: u32 = 4;
    pub const MS_NOEXEC: u32 = 8;
    pub const MS_SYNCHRONOUS: u32 = 16;
    pub const MS_REMOUNT: u32 = 32;
    pub const MS_MANDLOCK: u32 = 64;
    pub const MS_DIRSYNC: u32 = 128;
    pub const MS_NOATIME: u32 = 1024;
    pub const MS_NODIRATIME: u32 = 2048;
    pub const MS_BIND: u32 = 4096;
    pub const MS_REC: u32 = 16384;
    pub const MS_RELATIME: u32 = 1 << 21;
    pub const MS_STRICTATIME: u32 = 1 << 24;
}

/// Flags and data of an options list.
pub fn options<'o>(opts: impl Iterator<Item = &'o [u8]>, data: &mut PathBuf) -> Option<u32> {
    let mut flags = 0u32;
    data.clear();
    for o in opts {
        match flag(o) {
            Some((f, true)) => flags |= f,
            Some((f, false)) => flags &= !f,
            None => {
                if (!data.is_empty() && !data.push(b",")) || !data.push(o) {
                    return None;
                }
            }
        }
    }
    Some(flags)
}

/// Mount one `containerd.types.Mount` (its encoded message) at `rootfs`.
pub fn mount_one(m: &[u8], rootfs: &CStr) -> Result<(), (&'static [u8], Errno)> {
    let (mut ty, mut src, mut target): (&[u8], &[u8], &[u8]) = (b"", b"", b"");
    proto::each(m, |f, v| match (f, v) {
        (1, Value::Bytes(b)) => ty = b,
        (2, Value::Bytes(b)) => src = b,
        (3, Value::Bytes(b)) => target = b,
        _ => {}
    })
    .map_err(|_| (&b"malformed mount"[..], Errno::INVAL))?;
    let opts = proto::Reader::new(m).filter(|(f, _)| *f == 4).map(|(_, v)| v.bytes());
    let mut data = PathBuf::new();
    let flags = options(opts, &mut data).ok_or((&b"mount options too long"[..], Errno::NAMETOOLONG))?;
    let mut at = PathBuf::new();
    at.push(rootfs.to_bytes());
    if !target.is_empty() && target != b"/" {
        if !target.starts_with(b"/") {
            at.push(b"/");
        }
        at.push(target);
    }
    let (mut t, mut s): (Buf<64>, PathBuf) = (Buf::new(), PathBuf::new());
    t.push(ty);
    s.push(src);
    let (Some(t), Some(s), Some(at)) = (t.as_cstr(), s.as_cstr(), at.as_cstr()) else {
        return Err((b"mount path too long", Errno::NAMETOOLONG));
    };
    let data_c = data.as_cstr();
    let mf = MountFlags::from_bits_retain(flags);
    rustix::mount::mount(s, at, t, mf, data_c).map_err(|e| (&b"mount rootfs"[..], e))?;
    // A read-only bind takes a second, remounting call.
    if flags & linux_flags::MS_BIND != 0 && flags & linux_flags::MS_RDONLY != 0 {
        let re = MountFlags::from_bits_retain(flags | linux_flags::MS_REMOUNT);
        rustix::mount::mount(s, at, t, re, data_c).map_err(|e| (&b"remount rootfs read-only"[..], e))?;
    }
    Ok(())
}

/// Unmount everything on `path` (stacked mounts too), lazily.
pub fn unmount_all(path: &CStr) {
    for _ in 0..64 {
        if rustix::mount::unmount(path, UnmountFlags::DETACH).is_err() {
            return;
        }
    }
}

/// Create `BUNDLE/rootfs` if missing (0711, as containerd does).
pub fn make_rootfs(rootfs: &CStr) -> sys::Result<()> {
    match rustix::fs::mkdir(rootfs, sys::Mode::from_bits_truncate(0o711)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let mut data = PathBuf::new();
        let opts: [&[u8]; 4] = [b"index=off", b"ro", b"lowerdir=/a:/b", b"nosuid"];
        let f = options(opts.into_iter(), &mut data).unwrap();
        assert_eq!(f, linux_flags::MS_RDONLY | linux_flags::MS_NOSUID);
        assert_eq!(data.as_bytes(), b"index=off,lowerdir=/a:/b");
        let opts: [&[u8]; 3] = [b"rbind", b"ro", b"rw"];
        assert_eq!(options(opts.into_iter(), &mut data), Some(linux_flags::MS_BIND | linux_flags::MS_REC));
        assert!(data.is_empty());
    }
}
