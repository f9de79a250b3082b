//! The pod sandbox image: tests/pause/main.rs (a no_std program over
//! musl, about 13 KB) built with rustc for the musl target, static, once per
//! test process, and put into an image whose entrypoint it is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::super::image::ImageSpec;
use super::super::*;

/// The image name the CRI's `sandbox_image` gives.
pub const PAUSE_TAG: &str = "shimlet-test/pause:1";

/// Where the program sits in the image.
pub const PAUSE_PATH: &str = "/pause";

static PAUSE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();

/// rustc: `$RUSTC`, else the one beside the cargo that runs the tests
/// (`$CARGO`), else PATH.
fn rustc() -> PathBuf {
    if let Some(p) = std::env::var_os("RUSTC").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(c) = std::env::var_os("CARGO") {
        let p = Path::new(&c).with_file_name("rustc");
        if p.is_file() {
            return p;
        }
    }
    which("rustc").unwrap_or_else(|| panic!("rustc is missing: install Rust (rustup), it builds the pause program"))
}

fn build() -> Result<Vec<u8>, String> {
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("pause/main.rs");
    let dir = TempDir::new("pause");
    let out = dir.join("pause");
    let mut c = Command::new(rustc());
    c.args(["--edition", "2021", "--crate-type", "bin", "--target", &target])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "relocation-model=static", "-C", "target-feature=+crt-static"]);
    if std::env::consts::ARCH == "aarch64" {
        // As the shim's own aarch64 build: no cross toolchain needed.
        c.args(["-C", "linker=rust-lld"]);
    }
    c.arg("-o").arg(&out).arg(&src).current_dir(dir.path()).stdin(Stdio::null());
    let o = c.output().map_err(|e| format!("running rustc: {e}"))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let hint = if err.contains("target may not be installed") || err.contains("can't find crate for `core`") {
            format!("\nthe Rust target is missing: rustup target add {target}")
        } else {
            String::new()
        };
        return Err(format!("building the pause program from {} failed:\n{err}{hint}", src.display()));
    }
    std::fs::read(&out).map_err(|e| format!("read {}: {e}", out.display()))
}

/// The pause program's bytes (built once per test process).
pub fn pause_program() -> Vec<u8> {
    PAUSE.get_or_init(build).clone().unwrap_or_else(|e| panic!("{e}"))
}

/// The sandbox image: busybox (for a look inside when debugging) and
/// /pause, its entrypoint.
pub fn pause_image() -> ImageSpec {
    let mut spec = ImageSpec::busybox(PAUSE_TAG).executable(PAUSE_PATH, &pause_program());
    spec.entrypoint = vec![PAUSE_PATH.to_string()];
    spec.cmd = vec![];
    spec
}
