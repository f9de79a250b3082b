//! Files of the tests: unique temporary directories (removed on drop),
//! scripts, and reading what the shim wrote.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number no other call in this test process gets (for unique names).
pub fn next_n() -> u64 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A directory under /tmp with a unique name, removed (whole tree) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path =
            PathBuf::from(format!("/tmp/shimlet-test-{}-{}-{}-{:08x}", label, std::process::id(), next_n(), nanos));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// reading and writing files

/// Writes a file and makes it executable.
pub fn write_script(p: &Path, text: &str) {
    let mut f = fs::File::create(p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    drop(f);
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn read_all(p: &Path) -> Vec<u8> {
    let mut v = vec![];
    fs::File::open(p).and_then(|mut f| f.read_to_end(&mut v)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    v
}

/// Text of a diagnostics file ("" when it does not exist).
pub fn read_text(p: &Path) -> String {
    fs::read(p).map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default()
}

/// The last `n` bytes of a file.
pub fn file_tail(p: &Path, n: u64) -> Vec<u8> {
    let mut f = match fs::File::open(p) {
        Ok(f) => f,
        Err(_) => return vec![],
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
    let mut v = vec![];
    let _ = f.read_to_end(&mut v);
    v
}

pub fn file_mode(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.mode() & libc::S_IFMT, m.mode() & 0o7777)
}
