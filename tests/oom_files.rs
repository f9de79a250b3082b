//! The files that tell a manager its container was killed for memory:
//! conmon 2.2 writes BUNDLE/oom (podman 4 reads it) and PERSIST_DIR/oom
//! (podman 5 reads that, and always passes --persist-dir). conmon 2.1.6
//! writes PERSIST_DIR/oom too (and its `oom` into its working directory
//! rather than the bundle). A container over a 16 MiB limit runs under
//! both shims with conmon's command line.

mod common;

use std::fs;

use common::*;

// Proves an OOM kill leaves PERSIST_DIR/oom under conmon and under
// shimlet alike, and BUNDLE/oom under shimlet (conmon 2.2's place; 2.1.6
// puts it in its working directory), with exit status 137.
#[test]
fn oom_kill_files_like_conmon() {
    let fx = Fixture::new("o-files");
    for shim in Shim::BOTH {
        let c = fx.bundle(&["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"]);
        c.edit_config(|v| {
            v["linux"]["resources"]["memory"] =
                serde_json::json!({"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024});
        });
        let persist = c.dir.join("persist");
        fs::create_dir(&persist).unwrap();
        fx.launch_ok(&c, conmon_logged(&fx, &c, shim).opt("--persist-dir", &persist));
        fx.start(&c);
        assert_eq!(c.wait_exit_file(), "137", "[{shim}] killed");
        c.wait_no_shim(None);
        assert!(persist.join("oom").exists(), "[{shim}] PERSIST_DIR/oom");
        assert_eq!(fs::read_to_string(persist.join("exit")).unwrap(), "137", "[{shim}] PERSIST_DIR/exit");
        let in_bundle = c.bundle.join("oom").exists();
        eprintln!("[{shim}] persist/oom, bundle/oom: {in_bundle}, cwd/oom: {}", c.dir.join("oom").exists());
        if shim == Shim::Shimlet {
            assert!(in_bundle, "BUNDLE/oom");
        }
    }
}
