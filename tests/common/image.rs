//! A locally built busybox image as a docker-archive tar, for
//! `ctr images import` (containerd suites; the CRI suite imports its pause
//! image the same way). No registry: the layer is the busybox rootfs of
//! `fixture::build_rootfs` plus the files a suite adds.
//!
//! The archive is the minimal docker-archive that containerd 1.6 imports:
//! - `layer.tar`: an uncompressed tar of the rootfs;
//! - `<sha256 of the config>.json`: the image config (architecture, os,
//!   entrypoint/cmd, env, `rootfs.diff_ids` = the sha256 of layer.tar);
//! - `manifest.json`: `[{"Config": ..., "RepoTags": [TAG], "Layers": ["layer.tar"]}]`.
//!
//! `ctr images import` normalizes the tag like a docker reference:
//! `shimlet-test/busybox:1` becomes `docker.io/shimlet-test/busybox:1`.
//! Tarring and hashing use tar(1) and sha256sum(1) (Debian's essential
//! packages tar and coreutils).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::*;

/// The busybox applets of the image, beyond `fixture::APPLETS`.
pub const IMAGE_APPLETS: &[&str] = &["tail", "touch", "test", "[", "rm", "mkdir", "id", "ps", "grep", "mkfifo"];

/// What the image is and holds.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The tag in manifest.json, e.g. `shimlet-test/busybox:1`.
    pub tag: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// Extra files: (absolute path in the image, content).
    pub files: Vec<(String, Vec<u8>)>,
    /// Which of `files` are executable (mode 0755; the others 0644).
    pub executables: Vec<String>,
}

impl ImageSpec {
    /// busybox with `sh` as its command and PATH=/bin.
    pub fn busybox(tag: &str) -> ImageSpec {
        ImageSpec {
            tag: tag.to_string(),
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            files: vec![],
            executables: vec![],
        }
    }

    pub fn file(mut self, path: &str, data: &[u8]) -> ImageSpec {
        self.files.push((path.to_string(), data.to_vec()));
        self
    }

    /// An extra file with mode 0755 (a program, e.g. the CRI's pause).
    pub fn executable(mut self, path: &str, data: &[u8]) -> ImageSpec {
        self.executables.push(path.to_string());
        self.file(path, data)
    }
}

/// A built image archive.
#[derive(Clone, Debug)]
pub struct Image {
    pub tar: PathBuf,
    /// The tag as written in manifest.json.
    pub tag: String,
    /// The name containerd gives it on import (docker normalization).
    pub name: String,
}

/// The docker normalization of a reference: `x:1` → `docker.io/library/x:1`,
/// `a/x:1` → `docker.io/a/x:1`; a first component with a dot, a colon or
/// `localhost` is a registry and stays.
pub fn normalized_name(tag: &str) -> String {
    let first = tag.split('/').next().unwrap_or("");
    let has_registry = tag.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let with_tag =
        if tag.rsplit('/').next().unwrap_or("").contains(':') { tag.to_string() } else { format!("{tag}:latest") };
    if has_registry {
        with_tag
    } else if tag.contains('/') {
        format!("docker.io/{with_tag}")
    } else {
        format!("docker.io/library/{with_tag}")
    }
}

fn sha256_file(p: &Path) -> String {
    let out = Command::new(need("sha256sum", "coreutils"))
        .arg(p)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("sha256sum {}: {e}", p.display()));
    assert!(out.status.success(), "sha256sum {}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    let h = s.split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(h.len(), 64, "sha256sum printed {s:?}");
    h
}

fn tar_dir(dir: &Path, out: &Path) {
    let o = Command::new(need("tar", "tar"))
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
        .arg(out)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(
        o.status.success(),
        "tar -C {} -cf {}: {}",
        dir.display(),
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The Go architecture name of this machine (what the image config must
/// say so that containerd's default platform matches).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => panic!("no image architecture for {a}"),
    }
}

/// Builds the archive in `work` (a directory the caller owns; the archive is
/// `work/image.tar`).
pub fn build_image(work: &Path, spec: &ImageSpec) -> Image {
    let rootfs = work.join("image-rootfs");
    let out = work.join("image-out");
    fs::create_dir_all(&out).unwrap();
    build_rootfs(&rootfs);
    for a in IMAGE_APPLETS {
        let l = rootfs.join("bin").join(a);
        if !l.exists() {
            symlink("busybox", l).unwrap();
        }
    }
    for (p, data) in &spec.files {
        let f = rootfs.join(p.trim_start_matches('/'));
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, data).unwrap();
        if spec.executables.contains(p) {
            fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let layer = out.join("layer.tar");
    tar_dir(&rootfs, &layer);
    let diff_id = sha256_file(&layer);
    let mut config = json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": { "Env": spec.env },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
    });
    if !spec.entrypoint.is_empty() {
        config["config"]["Entrypoint"] = json!(spec.entrypoint);
    }
    if !spec.cmd.is_empty() {
        config["config"]["Cmd"] = json!(spec.cmd);
    }
    let cfg_tmp = work.join("image-config.json");
    fs::write(&cfg_tmp, serde_json::to_vec(&config).unwrap()).unwrap();
    let cfg_name = format!("{}.json", sha256_file(&cfg_tmp));
    fs::rename(&cfg_tmp, out.join(&cfg_name)).unwrap();
    let manifest = json!([{ "Config": cfg_name, "RepoTags": [spec.tag], "Layers": ["layer.tar"] }]);
    fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let tar = work.join("image.tar");
    tar_dir(&out, &tar);
    let _ = fs::remove_dir_all(&rootfs);
    let _ = fs::remove_dir_all(&out);
    Image { tar, tag: spec.tag.clone(), name: normalized_name(&spec.tag) }
}
