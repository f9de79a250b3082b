//! tmpfs mounts of a test (a small or read-only disk), undone on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::tools::need;

/// A tmpfs mounted on a directory; unmounted on drop (lazily if busy).
pub struct Mount {
    pub dir: PathBuf,
}

impl Mount {
    pub fn tmpfs(dir: &Path, opts: &str) -> Mount {
        fs::create_dir_all(dir).unwrap();
        let out =
            Command::new(need("mount", "mount")).args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs -o {opts} {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount { dir: dir.to_path_buf() }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let umount = need("umount", "mount");
        let ok =
            Command::new(&umount).arg(&self.dir).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            let _ = Command::new(&umount).arg("-l").arg(&self.dir).status();
        }
    }
}
