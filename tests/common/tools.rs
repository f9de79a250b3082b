//! The binary under test and the tools the tests run: where they are, and a
//! failure saying what to install when one is missing (never a skip).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the root Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

/// The shimlet binary under test: `$SHIMLET_BIN`, or the release musl build.
pub fn shimlet_bin() -> PathBuf {
    let p = match std::env::var_os("SHIMLET_BIN") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join("target/x86_64-unknown-linux-musl/release/shimlet"),
    };
    if !p.is_file() {
        panic!("{} does not exist: build it first: make build", p.display());
    }
    p
}

/// Finds an executable in PATH (and the sbin directories, which a non-login
/// PATH may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

/// Fails the test (never skips it) when a tool is missing.
pub fn need(tool: &str, pkg: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| panic!("{tool} is missing: apt-get install {pkg}"))
}

/// runc's path (fails the test when runc is missing).
pub fn runc_bin() -> PathBuf {
    need("runc", "runc")
}

/// The static busybox to copy into root filesystems.
pub fn busybox_static() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    let data = fs::read(&p).unwrap_or_else(|_| panic!("/bin/busybox is missing: apt-get install busybox-static"));
    if !elf_is_static(&data) {
        panic!("/bin/busybox is dynamically linked: apt-get install busybox-static");
    }
    p
}

/// True when an ELF64 file has no PT_INTERP program header (no dynamic loader).
fn elf_is_static(d: &[u8]) -> bool {
    if d.len() < 64 || &d[..4] != b"\x7fELF" || d[4] != 2 {
        return false;
    }
    let u16at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(d[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16at(0x36), u16at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 > d.len() || u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) != 3
    })
}
