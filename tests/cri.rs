//! Kubernetes pods through containerd's CRI plugin: every scenario runs
//! with containerd's runc-v2 handler (the reference) and then with the
//! shimlet handler, in the same test and the same containerd. A test drives
//! the CRI socket as kubelet does (tests/common/cri); pods are on the host
//! network, their sandbox is the project's pause program, and each half
//! ends with every pod removed and nothing left (no task, container, shim,
//! runc state, socket, bundle or cgroup).

mod common;

use std::fs;
use std::path::Path;

use common::containerd::*;
use common::cri::stream::{self, AttachRequest, ExecRequest, Session, UrlResponse};
use common::cri::*;
use common::*;

/// Writes one line on each stream, then sleeps as PID 1 of its own pid
/// namespace: it has no handler for SIGTERM, so the kernel drops it.
const LOGS_THEN_SLEEP: &str = "echo \"$0-out\"; echo \"$0-err\" >&2; exec sleep 2147483647";

/// Notes each SIGTERM on stdout and goes on.
const TRAPS_TERM: &str = "trap 'echo got-TERM' TERM; echo ready; while :; do sleep 2147483647 & wait $!; done";

/// Exits 7 on SIGTERM.
const EXITS_ON_TERM: &str = "trap 'exit 7' TERM; echo ready; while :; do sleep 2147483647 & wait $!; done";

/// Runs `f` for runc-v2, then for shimlet, in one containerd; each half
/// ends with `finish`.
fn both(label: &str, f: impl Fn(&CriWorld, Runtime)) {
    let w = CriWorld::start(label);
    for rt in Runtime::BOTH {
        w.cd.begin(rt);
        f(&w, rt);
        w.finish(rt);
    }
}

/// `sh -c SCRIPT NAME`: the script sees its container's name as $0.
fn named(w: &CriWorld, pod: &Pod, name: &str, script: &str) -> Ctr {
    let mut cfg = w.container_config(name, script);
    cfg.command.push(name.to_string());
    let c = w.create_container_with(pod, cfg);
    let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
    w.wait_state(&c, container_state::RUNNING);
    c
}

/// Waits until the container's log has `line` on `stream`.
fn wait_log_line(w: &CriWorld, c: &Ctr, stream: Stream, line: &str) {
    wait_until_or(
        &format!("{}{line:?} on {stream:?} in the log of {}", w.cd.tag(), c.name),
        WAIT,
        || lines_of(&read_cri_log(&c.log), stream).iter().any(|l| l == line).then_some(()),
        || format!("{}:\n{}", c.log.display(), String::from_utf8_lossy(&fs::read(&c.log).unwrap_or_default())),
    );
}

/// The single shim process of a pod: the parent of the sandbox's and every
/// container's init, the only shim process in the world's namespace.
fn pod_shim(w: &CriWorld, pod: &Pod, ctrs: &[&Ctr]) -> i32 {
    let tag = w.cd.tag();
    let sandbox = w.pod_pid(pod);
    let shim = proc_ppid(sandbox).unwrap_or_else(|| panic!("{tag}the sandbox's pid {sandbox} is gone"));
    for c in ctrs {
        let pid = w.container_pid(c);
        assert_eq!(
            proc_ppid(pid),
            Some(shim),
            "{tag}{}'s init {pid} is not a child of the process {shim} that runs the sandbox",
            c.name
        );
    }
    let exe = fs::read_link(format!("/proc/{shim}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
    let want = match pod.rt {
        Runtime::RuncV2 => "containerd-shim-runc-v2".to_string(),
        Runtime::Shimlet => fs::canonicalize(Runtime::Shimlet.binary())
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    assert!(exe.ends_with(&want), "{tag}the parent {shim} of the pod's processes runs {exe:?}, not the shim {want}");
    // containerd runs the shim binary for each task's `start` and `delete`
    // too: those end by themselves.
    wait_until_or(
        &format!("{tag}the pod's shim {shim} to be the only shim process in the namespace"),
        WAIT,
        || (w.cd.shim_processes(pod.rt) == vec![shim]).then_some(()),
        || format!("shim processes: {:?}", w.cd.shim_processes(pod.rt)),
    );
    shim
}

/// Writes a line into a FIFO of a container (through /proc/PID/root) once
/// the container has it open for reading (bounded: never blocks on a
/// container that is gone).
fn write_fifo(path: &str, line: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = wait_until(&format!("a reader on {path}"), WAIT, || {
        fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path).ok()
    });
    f.write_all(line.as_bytes()).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

/// A file of a container's cgroup (v1: in `controller`'s hierarchy; v2:
/// the unified one).
fn cgroup_file(w: &CriWorld, c: &Ctr, controller: &str, v1: &str, v2: &str) -> String {
    let rel = w.cd.cgroup(&c.id);
    let rel = rel.trim_start_matches('/');
    let v1p = Path::new("/sys/fs/cgroup").join(controller).join(rel).join(v1);
    let p = if Path::new("/sys/fs/cgroup").join(controller).is_dir() {
        v1p
    } else {
        Path::new("/sys/fs/cgroup").join(rel).join(v2)
    };
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}read {}: {e}", w.cd.tag(), p.display())).trim().to_string()
}

#[test]
fn pod_with_two_containers_is_served_by_one_shim() {
    both("cri-pod", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "pod");
        let (_, info) = w.pod_status_verbose(&pod);
        assert_eq!(info["runtimeHandler"], handler(rt), "{tag}verbose info: {info}");
        // The sandbox is the pause program (once runc's init has exec'd it:
        // runc start returns when the init is released, not after its exec).
        let sandbox = w.pod_pid(&pod);
        wait_until_or(
            &format!("{tag}the sandbox {sandbox} to run the pause program"),
            WAIT,
            || (comm(sandbox) == "pause").then_some(()),
            || format!("it runs {:?}", comm(sandbox)),
        );
        let a = named(w, &pod, "a", LOGS_THEN_SLEEP);
        let b = named(w, &pod, "b", TRAPS_TERM);
        let listed = w.list_containers(&pod);
        let mut names: Vec<(String, i32)> =
            listed.iter().map(|c| (c.metadata.clone().unwrap_or_default().name, c.state)).collect();
        names.sort();
        assert_eq!(
            names,
            vec![("a".to_string(), container_state::RUNNING), ("b".to_string(), container_state::RUNNING)],
            "{tag}ListContainers of the pod"
        );
        let shim = pod_shim(w, &pod, &[&a, &b]);

        // StopPodSandbox: containers killed, sandbox killed, the shim gone,
        // no task and no runc state; the containers stay until removal.
        w.stop_pod(&pod);
        for c in [&a, &b] {
            let st = w.status(c);
            assert_eq!(st.state, container_state::EXITED, "{tag}{} after StopPodSandbox: {st:?}", c.name);
            assert_eq!(st.exit_code, 137, "{tag}{} killed by StopPodSandbox: {st:?}", c.name);
        }
        assert_eq!(w.pod_status(&pod).state, sandbox_state::NOTREADY, "{tag}pod after StopPodSandbox");
        wait_until(&format!("{tag}the pod's shim {shim} to exit after StopPodSandbox"), WAIT, || {
            (!pid_alive(shim)).then_some(())
        });
        reap_orphans();
        assert!(w.cd.tasks().is_empty(), "{tag}tasks after StopPodSandbox: {:?}", w.cd.tasks());
        assert!(w.runc_state().is_empty(), "{tag}runc state after StopPodSandbox: {:?}", w.runc_state());
        assert_eq!(w.cd.containers().len(), 3, "{tag}containers before RemovePodSandbox: {:?}", w.cd.containers());

        // RemovePodSandbox: the pod and its containers are forgotten.
        w.remove_pod(&pod);
        let e = w
            .try_rpc::<_, PodSandboxStatusResponse>(
                "PodSandboxStatus",
                &PodSandboxStatusRequest { pod_sandbox_id: pod.id.clone(), verbose: false },
            )
            .expect_err("PodSandboxStatus after RemovePodSandbox");
        assert_eq!(e.code, 5, "{tag}PodSandboxStatus after RemovePodSandbox: {e}");
        assert!(w.cd.containers().is_empty(), "{tag}containers after RemovePodSandbox: {:?}", w.cd.containers());
    });
}

// A pod with many sidecars: containerd opens one ttrpc connection per task
// (the sandbox and each container) to the pod's one shim, and keeps it
// until the task is deleted.
#[test]
fn pod_with_twelve_containers() {
    both("cri-many", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "many");
        let ctrs: Vec<Ctr> = (0..12).map(|i| named(w, &pod, &format!("c{i}"), LOGS_THEN_SLEEP)).collect();
        let refs: Vec<&Ctr> = ctrs.iter().collect();
        pod_shim(w, &pod, &refs);
        for c in &ctrs {
            let r = w.exec_ok(c, &["echo", &c.name]);
            assert_eq!(r.stdout, format!("{}\n", c.name).into_bytes(), "{tag}ExecSync in {}", c.name);
        }
    });
}

#[test]
fn exec_sync_exit_code_output_and_timeout() {
    both("cri-exec", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "exec");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);

        let r = w.exec_ok(&c, &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]);
        assert_eq!(
            (r.exit_code, String::from_utf8_lossy(&r.stdout).as_ref(), String::from_utf8_lossy(&r.stderr).as_ref()),
            (3, "to-out\n", "to-err\n"),
            "{tag}ExecSync exit code, stdout, stderr"
        );

        // 256 KiB of every byte value, through the exec's stdout FIFO.
        let r = w.exec_ok(&c, &["cat", BYTES_PATH]);
        let want = binary_payload();
        assert_eq!(r.exit_code, 0, "{tag}cat {BYTES_PATH}: {}", String::from_utf8_lossy(&r.stderr));
        assert!(
            r.stdout == want,
            "{tag}ExecSync stdout of cat {BYTES_PATH}: {} bytes (fnv {:x}), want {} (fnv {:x})",
            r.stdout.len(),
            fnv64(&r.stdout),
            want.len(),
            fnv64(&want)
        );

        // The timeout: DEADLINE_EXCEEDED, and the exec is killed.
        let e = w.exec(&c, &["sleep", "31"], 1).expect_err("ExecSync of sleep 31 with timeout 1 s");
        assert_eq!(e.code, 4, "{tag}ExecSync past its timeout: {e}");
        let sleeper = || {
            w.cd.cgroup_pids(Some(&c.id))
                .into_iter()
                .filter(|&p| proc_cmdline(p).trim() == "sleep 31")
                .collect::<Vec<_>>()
        };
        wait_until_or(
            &format!("{tag}the timed-out exec (sleep 31) to be killed"),
            WAIT,
            || sleeper().is_empty().then_some(()),
            || format!("still there: {:?}", sleeper()),
        );

        // A program that does not exist: an error, not a hang.
        let e = w.exec(&c, &["/nonexistent"], 10).expect_err("ExecSync of /nonexistent");
        assert!(e.code == 2 && e.message.contains("no such file or directory"), "{tag}ExecSync of /nonexistent: {e}");

        // The container is unharmed and still takes execs.
        let r = w.exec_ok(&c, &["echo", "again"]);
        assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"again\n"[..]), "{tag}ExecSync after the failures");
        assert_eq!(w.status(&c).state, container_state::RUNNING, "{tag}the container after the execs");
    });
}

#[test]
fn container_stats_and_list_container_stats() {
    both("cri-stats", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "stats");
        // Some CPU and some memory of its own.
        let busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; x=$(head -c 1000000 /data/bytes.bin | wc -c); \
                    echo ready; exec sleep 2147483647";
        let a = named(w, &pod, "a", busy);
        // b has a memory limit: available_bytes = limit - working set.
        let limit = 64u64 << 20;
        let mut cfg = w.container_config("b", busy);
        cfg.command.push("b".into());
        if let Some(l) = cfg.linux.as_mut() {
            l.resources = Some(LinuxContainerResources { memory_limit_in_bytes: limit as i64, ..Default::default() });
        }
        let b = w.create_container_with(&pod, cfg);
        let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: b.id.clone() });
        wait_log_line(w, &a, Stream::Stdout, "ready");
        wait_log_line(w, &b, Stream::Stdout, "ready");

        let check = |s: &ContainerStats, c: &Ctr, what: &str| {
            let id = s.attributes.as_ref().map(|a| a.id.as_str()).unwrap_or("");
            assert_eq!(id, c.id, "{tag}{what}: attributes.id");
            let cpu = s.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds.as_ref()).map(|v| v.value).unwrap_or(0);
            let mem = |f: fn(&MemoryUsage) -> &Option<UInt64Value>| {
                s.memory.as_ref().and_then(|m| f(m).as_ref()).map(|v| v.value).unwrap_or(0)
            };
            let (ws, usage, rss, faults) = (
                mem(|m| &m.working_set_bytes),
                mem(|m| &m.usage_bytes),
                mem(|m| &m.rss_bytes),
                mem(|m| &m.page_faults),
            );
            assert!(cpu > 0, "{tag}{what} of {}: no CPU usage: {s:?}", c.name);
            assert!(ws > 0 && usage >= ws, "{tag}{what} of {}: working set {ws}, usage {usage}: {s:?}", c.name);
            assert!(rss > 0 && faults > 0, "{tag}{what} of {}: rss {rss}, page faults {faults}: {s:?}", c.name);
            let avail = mem(|m| &m.available_bytes);
            if c.name == "b" {
                assert_eq!(avail, limit - ws, "{tag}{what} of b: available bytes under a {limit}-byte limit: {s:?}");
            } else {
                assert_eq!(avail, 0, "{tag}{what} of a: available bytes with no limit: {s:?}");
            }
        };
        for c in [&a, &b] {
            let r: ContainerStatsResponse = w.rpc("ContainerStats", &ContainerIdRequest { container_id: c.id.clone() });
            let s = r.stats.unwrap_or_else(|| panic!("{tag}ContainerStats of {} has no stats", c.name));
            check(&s, c, "ContainerStats");
        }
        let r: ListContainerStatsResponse = w.rpc(
            "ListContainerStats",
            &ListContainerStatsRequest {
                filter: Some(ContainerStatsFilter { id: String::new(), pod_sandbox_id: pod.id.clone() }),
            },
        );
        assert_eq!(r.stats.len(), 2, "{tag}ListContainerStats of the pod: {:?}", r.stats);
        for c in [&a, &b] {
            let s = r
                .stats
                .iter()
                .find(|s| s.attributes.as_ref().map(|a| a.id == c.id).unwrap_or(false))
                .unwrap_or_else(|| panic!("{tag}ListContainerStats lacks {}: {:?}", c.name, r.stats));
            check(s, c, "ListContainerStats");
        }

        // PodSandboxStats (kubelet's CRI stats provider): the sandbox's own
        // metrics and process count from the shim (Stats, Pids), and the
        // containers'.
        let r: PodSandboxStatsResponse =
            w.rpc("PodSandboxStats", &PodSandboxStatsRequest { pod_sandbox_id: pod.id.clone() });
        let l = r.stats.and_then(|s| s.linux).unwrap_or_else(|| panic!("{tag}PodSandboxStats has no linux stats"));
        let cpu = l.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds.as_ref()).map(|v| v.value).unwrap_or(0);
        let ws = l.memory.as_ref().and_then(|m| m.working_set_bytes.as_ref()).map(|v| v.value).unwrap_or(0);
        let procs = l.process.as_ref().and_then(|p| p.process_count.as_ref()).map(|v| v.value).unwrap_or(0);
        assert!(
            cpu > 0 && ws > 0 && procs >= 1,
            "{tag}PodSandboxStats: cpu {cpu}, working set {ws}, processes {procs}"
        );
        for c in [&a, &b] {
            let s = l
                .containers
                .iter()
                .find(|s| s.attributes.as_ref().map(|a| a.id == c.id).unwrap_or(false))
                .unwrap_or_else(|| panic!("{tag}PodSandboxStats lacks {}: {:?}", c.name, l.containers));
            check(s, c, "PodSandboxStats");
        }
    });
}

#[test]
fn logs_in_k8s_file_format_and_reopen() {
    both("cri-logs", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "logs");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);
        assert_eq!(w.status(&c).log_path, c.log.display().to_string(), "{tag}ContainerStatus.log_path");
        wait_log_line(w, &c, Stream::Stdout, "c-out");
        wait_log_line(w, &c, Stream::Stderr, "c-err");
        let mut recs: Vec<(Stream, bool, String)> =
            read_cri_log(&c.log).into_iter().map(|r| (r.stream, r.partial, r.line)).collect();
        recs.sort_by_key(|r| r.2.clone());
        assert_eq!(
            recs,
            [(Stream::Stderr, false, "c-err".to_string()), (Stream::Stdout, false, "c-out".to_string())],
            "{tag}the records of {}",
            c.log.display()
        );

        // Lines written later by the container's own stdio (an exec writes
        // into its init's descriptors), and a long one in P/F parts.
        let long = "x".repeat(20_000);
        let r = w.exec_ok(
            &c,
            &[
                "sh",
                "-c",
                "echo more-out > /proc/1/fd/1; echo more-err > /proc/1/fd/2; head -c 20000 /dev/zero | tr '\\0' x > /proc/1/fd/1; echo > /proc/1/fd/1",
            ],
        );
        assert_eq!(r.exit_code, 0, "{tag}writing to the init's stdio: {}", String::from_utf8_lossy(&r.stderr));
        wait_log_line(w, &c, Stream::Stdout, "more-out");
        wait_log_line(w, &c, Stream::Stderr, "more-err");
        let joined = wait_until(&format!("{tag}the 20,000-byte line in the log"), WAIT, || {
            let recs = read_cri_log(&c.log);
            let mut line = String::new();
            for r in recs.iter().filter(|r| r.stream == Stream::Stdout) {
                line.push_str(&r.line);
                if !r.partial {
                    if line.len() >= 20_000 {
                        return Some((line, recs.iter().filter(|r| r.partial).count()));
                    }
                    line.clear();
                }
            }
            None
        });
        assert_eq!(joined.0, long, "{tag}the long line, joined from its P records and its F record");
        assert!(joined.1 >= 1, "{tag}a 20,000-byte line must be split (16 KiB maximum): no P record");

        // ReopenContainerLog: the old file is moved away, the CRI opens a new
        // one at log_path, and new lines go there only.
        let old = c.log.with_extension("log.1");
        fs::rename(&c.log, &old).unwrap();
        let _: Empty = w.rpc("ReopenContainerLog", &ContainerIdRequest { container_id: c.id.clone() });
        assert!(c.log.is_file(), "{tag}ReopenContainerLog did not create {}", c.log.display());
        let r = w.exec_ok(&c, &["sh", "-c", "echo after-out > /proc/1/fd/1; echo after-err > /proc/1/fd/2"]);
        assert_eq!(r.exit_code, 0, "{tag}writing after the reopen: {}", String::from_utf8_lossy(&r.stderr));
        wait_log_line(w, &c, Stream::Stdout, "after-out");
        wait_log_line(w, &c, Stream::Stderr, "after-err");
        let mut new: Vec<String> = read_cri_log(&c.log).into_iter().map(|r| r.line).collect();
        new.sort();
        assert_eq!(new, ["after-err", "after-out"], "{tag}the new log holds only the lines written after the reopen");
        let old_recs = read_cri_log(&old);
        assert!(
            !old_recs.iter().any(|r| r.line.starts_with("after-")),
            "{tag}lines written after the reopen went to the old file: {old_recs:?}"
        );

        // A terminal: one stream (the pty's), both lines on stdout, the
        // terminal's \r\n line ends become plain lines.
        let mut cfg = w.container_config("t", LOGS_THEN_SLEEP);
        cfg.command.push("t".into());
        cfg.tty = true;
        let t = w.create_container_with(&pod, cfg);
        let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: t.id.clone() });
        wait_log_line(w, &t, Stream::Stdout, "t-out");
        wait_log_line(w, &t, Stream::Stdout, "t-err");
        let recs = read_cri_log(&t.log);
        assert!(
            recs.iter().all(|r| r.stream == Stream::Stdout && !r.line.contains('\r')),
            "{tag}a terminal container's log: {recs:?}"
        );
    });
}

#[test]
fn update_container_resources() {
    both("cri-upd", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "update");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);
        let mib64 = 64 * 1024 * 1024;
        let _: Empty = w.rpc(
            "UpdateContainerResources",
            &UpdateContainerResourcesRequest {
                container_id: c.id.clone(),
                linux: Some(LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    memory_limit_in_bytes: mib64,
                    ..Default::default()
                }),
            },
        );
        // What the runtime applied to the container's cgroup.
        let mem = cgroup_file(w, &c, "memory", "memory.limit_in_bytes", "memory.max");
        assert_eq!(mem, mib64.to_string(), "{tag}memory limit in the container's cgroup");
        let shares = cgroup_file(w, &c, "cpu", "cpu.shares", "cpu.weight");
        let quota = cgroup_file(w, &c, "cpu", "cpu.cfs_quota_us", "cpu.max");
        if Path::new("/sys/fs/cgroup/cpu").is_dir() {
            assert_eq!((shares.as_str(), quota.as_str()), ("512", "50000"), "{tag}cpu.shares, cpu.cfs_quota_us");
        } else {
            assert_eq!(quota, "50000 100000", "{tag}cpu.max");
        }
        let st = w.status(&c);
        let lim = st.resources.and_then(|r| r.linux).map(|l| l.memory_limit_in_bytes).unwrap_or(0);
        assert_eq!(lim, mib64, "{tag}ContainerStatus.resources after the update");
        // Still running, and the limit holds inside too.
        let r = w.exec_ok(&c, &["echo", "fine"]);
        assert_eq!(r.exit_code, 0, "{tag}exec after the update");
    });
}

#[test]
fn stop_container_term_then_kill() {
    both("cri-stop", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "stop");
        let ignores = named(w, &pod, "ignores", LOGS_THEN_SLEEP);
        let notes = named(w, &pod, "notes", TRAPS_TERM);
        let exits = named(w, &pod, "exits", EXITS_ON_TERM);
        let done = named(w, &pod, "done", "echo finished");
        for c in [&notes, &exits] {
            wait_log_line(w, c, Stream::Stdout, "ready");
        }

        // A container that ends by itself: exit 0, Completed.
        let st = w.wait_state(&done, container_state::EXITED);
        assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"), "{tag}a container that exited 0: {st:?}");

        // SIGTERM ends it: its own exit code.
        w.stop_container(&exits, 30);
        let st = w.status(&exits);
        assert_eq!(
            (st.state, st.exit_code, st.reason.as_str()),
            (container_state::EXITED, 7, "Error"),
            "{tag}a container that exits 7 on SIGTERM, after StopContainer: {st:?}"
        );

        // SIGTERM ignored (PID 1 without a handler), then SIGKILL: 137.
        w.stop_container(&ignores, 2);
        let st = w.status(&ignores);
        assert_eq!(
            (st.state, st.exit_code, st.reason.as_str()),
            (container_state::EXITED, 137, "Error"),
            "{tag}a container that ignores SIGTERM, after StopContainer(timeout 2): {st:?}"
        );

        // SIGTERM caught and survived, then SIGKILL: 137, and the log shows
        // that the SIGTERM came first.
        w.stop_container(&notes, 2);
        let st = w.status(&notes);
        assert_eq!(
            (st.state, st.exit_code),
            (container_state::EXITED, 137),
            "{tag}a container that survives SIGTERM, after StopContainer(timeout 2): {st:?}"
        );
        wait_log_line(w, &notes, Stream::Stdout, "got-TERM");

        // The sandbox is unaffected, and the pod's shim, told to shut down
        // after each container's deletion, still serves the pod: removed
        // containers are forgotten, a new one joins the same shim.
        assert_eq!(w.pod_status(&pod).state, sandbox_state::READY, "{tag}the pod after its containers stopped");
        for c in [&done, &exits] {
            let _: Empty = w.rpc("RemoveContainer", &ContainerIdRequest { container_id: c.id.clone() });
            let e = w
                .try_rpc::<_, ContainerStatusResponse>(
                    "ContainerStatus",
                    &ContainerStatusRequest { container_id: c.id.clone(), verbose: false },
                )
                .expect_err("ContainerStatus after RemoveContainer");
            assert_eq!(e.code, 5, "{tag}ContainerStatus of {} after RemoveContainer: {e}", c.name);
        }
        let again = named(w, &pod, "again", LOGS_THEN_SLEEP);
        wait_log_line(w, &again, Stream::Stdout, "again-out");
        pod_shim(w, &pod, &[&again]);
    });
}

#[test]
fn killing_the_shim_marks_the_pods_containers_exited() {
    both("cri-kill", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "kill");
        let a = named(w, &pod, "a", LOGS_THEN_SLEEP);
        let b = named(w, &pod, "b", TRAPS_TERM);
        let shim = pod_shim(w, &pod, &[&a, &b]);
        let pids = [w.pod_pid(&pod), w.container_pid(&a), w.container_pid(&b)];
        let sock = w.cd.shim_socket(&pod.id);
        kill(shim, libc::SIGKILL);
        wait_until(&format!("{tag}the shim {shim} to die"), WAIT, || (!pid_alive(shim)).then_some(()));
        reap_orphans();
        for c in [&a, &b] {
            // The CRI's Wait on the task fails with the connection: exit
            // code 255 (as with runc-v2).
            let st = w.wait_state(c, container_state::EXITED);
            assert_eq!(
                (st.exit_code, st.reason.as_str()),
                (255, "Error"),
                "{tag}{} after its shim was killed: {st:?}",
                c.name
            );
        }
        w.wait_pod_state(&pod, sandbox_state::NOTREADY);
        for p in pids {
            wait_until(&format!("{tag}the pod's process {p} to be gone after its shim died"), WAIT, || {
                reap_orphans();
                (!pid_alive(p)).then_some(())
            });
        }
        // A dead shim cannot remove its socket (runc-v2 leaves it): it must
        // refuse connections; the next shim to bind the name replaces it.
        if sock.exists() {
            let e = std::os::unix::net::UnixStream::connect(&sock).err();
            assert_eq!(
                e.as_ref().and_then(|e| e.raw_os_error()),
                Some(libc::ECONNREFUSED),
                "{tag}the dead shim's socket {}: {e:?}",
                sock.display()
            );
            fs::remove_file(&sock).unwrap();
        }
    });
}

/// Logs one line on each stream, then waits for a line on the FIFO
/// /tmp/go (written from the host through /proc/PID/root) and logs it.
const LOGS_THEN_RELAYS: &str = "echo \"$0-out\"; echo \"$0-err\" >&2; mkfifo /tmp/go; read x < /tmp/go; echo \"$x\"; \
                                exec sleep 2147483647";

/// Waits for a line on the FIFO /tmp/go, then exits 5.
const EXITS_ON_LINE: &str = "mkfifo /tmp/go; echo ready; read x < /tmp/go; exit 5";

// The pause process dies (OOM, a stray kill): the CRI sees the sandbox's
// exit through the shim and marks the pod NOTREADY, while the shim goes on
// serving the containers, which keep running until kubelet stops the pod.
#[test]
fn sandbox_death_marks_the_pod_not_ready() {
    both("cri-sbx", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "sbx");
        let a = named(w, &pod, "a", LOGS_THEN_SLEEP);
        let shim = pod_shim(w, &pod, &[&a]);
        let pause = w.pod_pid(&pod);
        kill(pause, libc::SIGKILL);
        w.wait_pod_state(&pod, sandbox_state::NOTREADY);
        assert!(pid_alive(shim), "{tag}the pod's shim exited with its sandbox");
        assert_eq!(w.status(&a).state, container_state::RUNNING, "{tag}the container after its sandbox died");
        let r = w.exec_ok(&a, &["echo", "still"]);
        assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"still\n"[..]), "{tag}ExecSync after the sandbox died");
        // kubelet's next step: the pod is stopped (the container killed).
        w.stop_pod(&pod);
        let st = w.status(&a);
        assert_eq!((st.state, st.exit_code), (container_state::EXITED, 137), "{tag}a after StopPodSandbox: {st:?}");
        wait_until(&format!("{tag}the pod's shim {shim} to exit"), WAIT, || (!pid_alive(shim)).then_some(()));
    });
}

#[test]
fn containerd_restart_leaves_the_pod_running() {
    both("cri-rst", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "restart");
        let a = named(w, &pod, "a", LOGS_THEN_RELAYS);
        let b = named(w, &pod, "b", TRAPS_TERM);
        let e = named(w, &pod, "e", EXITS_ON_LINE);
        wait_log_line(w, &a, Stream::Stderr, "a-err");
        wait_log_line(w, &b, Stream::Stdout, "ready");
        let shim = pod_shim(w, &pod, &[&a, &b, &e]);
        let pids = (w.pod_pid(&pod), w.container_pid(&a), w.container_pid(&b));
        let e_pid = w.container_pid(&e);
        let fifo = |pid: i32| {
            let go = format!("/proc/{pid}/root/tmp/go");
            wait_until(&format!("{tag}{go} to be made"), WAIT, || Path::new(&go).exists().then_some(()));
            go
        };
        let (go_a, go_e) = (fifo(pids.1), fifo(e_pid));

        // containerd down: a container writes a line nobody reads yet,
        // another one exits 5.
        w.cd.stop_daemon();
        assert!(pid_alive(shim), "{tag}the shim {shim} exited with containerd");
        write_fifo(&go_a, "written-while-containerd-was-down\n");
        write_fifo(&go_e, "bye\n");
        wait_until(&format!("{tag}e's init {e_pid} to exit"), WAIT, || (!pid_alive(e_pid)).then_some(()));
        w.restart();

        // The exit the shim kept for containerd.
        let st = w.wait_state(&e, container_state::EXITED);
        assert_eq!(
            (st.exit_code, st.reason.as_str()),
            (5, "Error"),
            "{tag}a container that exited 5 while containerd was down: {st:?}"
        );

        assert_eq!(w.pod_status(&pod).state, sandbox_state::READY, "{tag}the pod after a containerd restart");
        for c in [&a, &b] {
            let st = w.status(c);
            assert_eq!(st.state, container_state::RUNNING, "{tag}{} after a containerd restart: {st:?}", c.name);
        }
        assert_eq!((w.pod_pid(&pod), w.container_pid(&a), w.container_pid(&b)), pids, "{tag}pids after the restart");
        assert!(
            w.cd.task(&e.id).is_none(),
            "{tag}the exited container's task after the restart: {:?}",
            w.cd.task(&e.id)
        );
        assert_eq!(pod_shim(w, &pod, &[&a, &b]), shim, "{tag}the pod's shim after the restart");

        // The shim still serves the pod: the output held in the FIFO
        // reaches the log, exec, stats, a stop with its exit code.
        wait_log_line(w, &a, Stream::Stdout, "written-while-containerd-was-down");
        let r = w.exec_ok(&a, &["sh", "-c", "echo alive; echo later > /proc/1/fd/1"]);
        assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"alive\n"[..]), "{tag}ExecSync after the restart");
        wait_log_line(w, &a, Stream::Stdout, "later");
        let s: ContainerStatsResponse = w.rpc("ContainerStats", &ContainerIdRequest { container_id: a.id.clone() });
        assert!(
            s.stats.and_then(|s| s.memory).and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0) > 0,
            "{tag}ContainerStats after the restart has no working set"
        );
        w.stop_container(&b, 2);
        let st = w.status(&b);
        assert_eq!(
            (st.state, st.exit_code),
            (container_state::EXITED, 137),
            "{tag}StopContainer after the restart: {st:?}"
        );
        wait_log_line(w, &b, Stream::Stdout, "got-TERM");
    });
}

// Probes: kubelet runs liveness and readiness execs of several containers
// at once, each on its own stream; every exec gets its own output and exit
// code back. 72 execs in all: more than a shimlet daemon's 64 process
// slots, so slots must be reused.
#[test]
fn concurrent_exec_syncs() {
    both("cri-cexec", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "cexec");
        let a = named(w, &pod, "a", LOGS_THEN_SLEEP);
        let b = named(w, &pod, "b", LOGS_THEN_SLEEP);
        // Probes run for the pod's whole life: the shim must hold nothing
        // more after them than before.
        let shim = pod_shim(w, &pod, &[&a, &b]);
        w.exec_ok(&a, &["true"]);
        let fds_before = fd_count(shim);
        let sock = w.cd.sock.clone();
        let failures: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|t| {
                    let (sock, id) = (sock.clone(), if t % 2 == 0 { a.id.clone() } else { b.id.clone() });
                    sc.spawn(move || {
                        let mut bad = vec![];
                        let mut g = match Grpc::connect(&sock, CALL_TIMEOUT) {
                            Ok(g) => g,
                            Err(e) => return vec![format!("thread {t}: connect: {e}")],
                        };
                        for j in 0..12 {
                            let req = ExecSyncRequest {
                                container_id: id.clone(),
                                cmd: vec![
                                    "sh".into(),
                                    "-c".into(),
                                    format!("echo o{t}-{j}; echo e{t}-{j} >&2; exit {}", j % 5),
                                ],
                                timeout: 30,
                            };
                            match g.call::<_, ExecSyncResponse>(&format!("{RUNTIME}ExecSync"), &req) {
                                Ok(r) => {
                                    let got = (r.exit_code, r.stdout.clone(), r.stderr.clone());
                                    let want =
                                        (j % 5, format!("o{t}-{j}\n").into_bytes(), format!("e{t}-{j}\n").into_bytes());
                                    if got != want {
                                        bad.push(format!("thread {t} exec {j}: got {got:?}, want {want:?}"));
                                    }
                                }
                                Err(e) => bad.push(format!("thread {t} exec {j}: {e}")),
                            }
                        }
                        bad
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| vec!["a thread panicked".into()])).collect()
        });
        assert!(failures.is_empty(), "{tag}concurrent ExecSyncs:\n{}\n{}", failures.join("\n"), w.cd.log_tail());
        for c in [&a, &b] {
            assert_eq!(w.status(c).state, container_state::RUNNING, "{tag}{} after the execs", c.name);
        }
        wait_until_or(
            &format!("{tag}the shim's descriptors to come back to {fds_before} after 72 execs"),
            WAIT,
            || (fd_count(shim) <= fds_before).then_some(()),
            || format!("it holds {}: {:?}", fd_count(shim), proc_fds(shim)),
        );
    });
}

#[test]
fn oom_kill_gives_reason_oom_killed() {
    both("cri-oom", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "oom");
        // main: the container's own process fills a 100 MiB buffer, far
        // past the 32 MiB limit; the kernel kills it and the container ends
        // with it (a pod's main process OOM-killed). child: tail, a child of
        // the container's shell, keeps 150 MB of its input; the shell exits
        // with the killed tail's status.
        let mut hogs = vec![];
        for (name, script) in [
            ("main", "exec dd if=/dev/zero of=/dev/null bs=100M count=1"),
            ("child", "head -c 200000000 /dev/zero | tail -c 150000000 > /dev/null"),
        ] {
            let mut cfg = w.container_config(name, script);
            if let Some(l) = cfg.linux.as_mut() {
                l.resources = Some(LinuxContainerResources { memory_limit_in_bytes: 32 << 20, ..Default::default() });
            }
            let c = w.create_container_with(&pod, cfg);
            let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
            hogs.push(c);
        }
        for c in &hogs {
            let st = w.wait_state(c, container_state::EXITED);
            // The reason comes from the shim's /tasks/oom event; it may
            // follow the exit.
            let st = poll_for(WAIT, || Some(w.status(c)).filter(|s| s.reason == "OOMKilled")).unwrap_or(st);
            assert_eq!(
                (st.exit_code, st.reason.as_str()),
                (137, "OOMKilled"),
                "{tag}{}: a container past its memory limit: {st:?}\n{}",
                c.name,
                w.cd.log_tail()
            );
        }
    });
}

/// An Exec or Attach session of `kubectl exec` / `kubectl attach`.
fn session(w: &CriWorld, method: &str, url: UrlResponse) -> Session {
    assert!(url.url.starts_with("http://127.0.0.1:"), "{}{method} gave the URL {:?}", w.cd.tag(), url.url);
    Session::open(&url.url).unwrap_or_else(|e| panic!("{}{method} stream: {e}\n{}", w.cd.tag(), w.cd.log_tail()))
}

// kubectl exec -it: a terminal exec with stdin; the terminal size follows
// the client's resizes, what is typed reaches the shell, and its exit code
// comes back.
#[test]
fn interactive_exec_with_a_terminal() {
    both("cri-tty", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "tty");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);
        let url: UrlResponse = w.rpc(
            "Exec",
            &ExecRequest {
                container_id: c.id.clone(),
                cmd: vec!["sh".into()],
                tty: true,
                stdin: true,
                stdout: true,
                stderr: false,
            },
        );
        let mut s = session(w, "Exec", url);
        s.resize(100, 30).unwrap();
        // The shell waits (boundedly) for the resize to land: it travels
        // apart from stdin.
        let script = "i=0; until [ \"$(stty size)\" = '30 100' ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done; \
                      echo \"size=$(stty size)\"; echo marker-$((6*7)); exit 3\n";
        s.send(stream::STDIN, script.as_bytes()).unwrap();
        s.read_to_end(LONG_WAIT).unwrap_or_else(|e| panic!("{tag}the interactive exec: {e}"));
        let out = s.text(stream::STDOUT);
        assert!(out.contains("size=30 100"), "{tag}the terminal size after a resize to 100x30: {}", s.describe());
        assert!(out.contains("marker-42\r\n"), "{tag}the shell's output through the terminal: {}", s.describe());
        assert_eq!(s.exit_code(), Some(3), "{tag}the exit status of the interactive exec: {}", s.describe());
        assert_eq!(w.status(&c).state, container_state::RUNNING, "{tag}the container after the exec");
    });
}

// kubectl exec -i (no terminal): stdin through the exec's stdin FIFO,
// stdout and stderr apart, the exit code.
#[test]
fn exec_with_stdin_and_no_terminal() {
    both("cri-stdin", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "stdin");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);
        let url: UrlResponse = w.rpc(
            "Exec",
            &ExecRequest {
                container_id: c.id.clone(),
                cmd: vec!["sh".into(), "-c".into(), "read a; read b; echo \"$b-$a\"; echo to-err >&2; exit 4".into()],
                tty: false,
                stdin: true,
                stdout: true,
                stderr: true,
            },
        );
        let mut s = session(w, "Exec", url);
        s.send(stream::STDIN, b"one\n").unwrap();
        s.send(stream::STDIN, b"two\n").unwrap();
        s.read_to_end(LONG_WAIT).unwrap_or_else(|e| panic!("{tag}the exec with stdin: {e}"));
        assert_eq!(
            (s.text(stream::STDOUT).as_str(), s.text(stream::STDERR).as_str(), s.exit_code()),
            ("two-one\n", "to-err\n", Some(4)),
            "{tag}an exec fed on stdin: {}",
            s.describe()
        );
    });
}

// kubectl attach -i to a container started with stdin: what is sent
// reaches the container's stdin, its answer comes back on the attach and
// goes to the log too.
#[test]
fn attach_to_a_container_with_stdin() {
    both("cri-attach", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "attach");
        let mut cfg = w.container_config("c", "echo ready; while read x; do echo \"got-$x\"; done; echo stdin-closed");
        cfg.stdin = true;
        let c = w.create_container_with(&pod, cfg);
        let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
        wait_log_line(w, &c, Stream::Stdout, "ready");
        let url: UrlResponse = w.rpc(
            "Attach",
            &AttachRequest { container_id: c.id.clone(), stdin: true, tty: false, stdout: true, stderr: true },
        );
        let mut s = session(w, "Attach", url);
        s.send(stream::STDIN, b"hello\n").unwrap();
        s.read_until(LONG_WAIT, |s| s.text(stream::STDOUT).contains("got-hello\n"))
            .unwrap_or_else(|e| panic!("{tag}the attach: {e}"));
        assert!(s.text(stream::STDOUT).contains("got-hello\n"), "{tag}the attach's stdout: {}", s.describe());
        s.close();
        wait_log_line(w, &c, Stream::Stdout, "got-hello");
        // Detaching leaves the container running, its stdin still open.
        assert_eq!(w.status(&c).state, container_state::RUNNING, "{tag}the container after the attach ended");
        let url: UrlResponse = w.rpc(
            "Attach",
            &AttachRequest { container_id: c.id.clone(), stdin: true, tty: false, stdout: true, stderr: true },
        );
        let mut s = session(w, "Attach", url);
        s.send(stream::STDIN, b"again\n").unwrap();
        s.read_until(LONG_WAIT, |s| s.text(stream::STDOUT).contains("got-again\n"))
            .unwrap_or_else(|e| panic!("{tag}the second attach: {e}"));
        s.close();
        wait_log_line(w, &c, Stream::Stdout, "got-again");
    });
}

// kubectl exec -i with its input piped: when the client is done, the stream
// server closes the exec's stdin (CloseIO) and the program sees its end.
#[test]
fn exec_stdin_ends_when_the_client_goes() {
    both("cri-eof", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "eof");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);
        let url: UrlResponse = w.rpc(
            "Exec",
            &ExecRequest {
                container_id: c.id.clone(),
                cmd: vec!["sh".into(), "-c".into(), "n=$(wc -l); echo \"eof-after-$n-lines\" > /proc/1/fd/1".into()],
                tty: false,
                stdin: true,
                stdout: true,
                stderr: true,
            },
        );
        let mut s = session(w, "Exec", url);
        s.wait_ready(LONG_WAIT).unwrap_or_else(|e| panic!("{tag}the exec: {e}"));
        s.send(stream::STDIN, b"1\n2\n3\n").unwrap();
        s.close();
        wait_log_line(w, &c, Stream::Stdout, "eof-after-3-lines");
    });
}

// kubectl run -i (stdinOnce): the container's stdin closes when the first
// attach ends, and the container sees its end.
#[test]
fn stdin_once_closes_the_containers_stdin_after_the_attach() {
    both("cri-once", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "once");
        let mut cfg = w.container_config(
            "c",
            "echo ready; while read x; do echo \"got-$x\"; done; echo stdin-closed; exec sleep 2147483647",
        );
        cfg.stdin = true;
        cfg.stdin_once = true;
        let c = w.create_container_with(&pod, cfg);
        let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
        wait_log_line(w, &c, Stream::Stdout, "ready");
        let url: UrlResponse = w.rpc(
            "Attach",
            &AttachRequest { container_id: c.id.clone(), stdin: true, tty: false, stdout: true, stderr: true },
        );
        let mut s = session(w, "Attach", url);
        s.send(stream::STDIN, b"only\n").unwrap();
        s.read_until(LONG_WAIT, |s| s.text(stream::STDOUT).contains("got-only\n"))
            .unwrap_or_else(|e| panic!("{tag}the attach: {e}"));
        s.close();
        wait_log_line(w, &c, Stream::Stdout, "stdin-closed");
        assert_eq!(w.status(&c).state, container_state::RUNNING, "{tag}the container after its stdin closed");
    });
}

// kubectl attach -it to a terminal container (kubectl run -it): keys reach
// the container's terminal, and the terminal takes the client's size.
#[test]
fn attach_to_a_terminal_container() {
    both("cri-atty", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "atty");
        let mut cfg = w.container_config("c", "echo ready; exec sh");
        cfg.stdin = true;
        cfg.tty = true;
        let c = w.create_container_with(&pod, cfg);
        let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
        wait_log_line(w, &c, Stream::Stdout, "ready");
        let url: UrlResponse = w.rpc(
            "Attach",
            &AttachRequest { container_id: c.id.clone(), stdin: true, tty: true, stdout: true, stderr: false },
        );
        let mut s = session(w, "Attach", url);
        s.resize(120, 40).unwrap();
        let script = "i=0; until [ \"$(stty size)\" = '40 120' ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done; \
                      echo \"tsize=$(stty size)\"; echo done-$((1+1))\n";
        s.send(stream::STDIN, script.as_bytes()).unwrap();
        // The terminal echoes the line as typed (done-$((1+1))); done-2 is
        // the shell's.
        s.read_until(LONG_WAIT, |s| s.text(stream::STDOUT).contains("done-2"))
            .unwrap_or_else(|e| panic!("{tag}the attach: {e}"));
        assert!(
            s.text(stream::STDOUT).contains("tsize=40 120"),
            "{tag}the container's terminal after a resize to 120x40: {}",
            s.describe()
        );
        s.close();
        wait_log_line(w, &c, Stream::Stdout, "tsize=40 120");
    });
}

// shareProcessNamespace and hostPID: a container without a pid namespace of
// its own; its init's death does not end its other processes, so stopping
// it must kill them all (containerd's Delete sends Kill with all=true), and
// none is left in its cgroup.
#[test]
fn stop_kills_every_process_when_the_pid_namespace_is_shared() {
    both("cri-pidns", |w, rt| {
        let tag = w.cd.tag();
        for (what, pod_pid, ctr_pid) in
            [("share", ns_mode::POD, ns_mode::POD), ("hostpid", ns_mode::NODE, ns_mode::NODE)]
        {
            let mut config = w.pod_config(rt, what);
            if let Some(o) = config
                .linux
                .as_mut()
                .and_then(|l| l.security_context.as_mut())
                .and_then(|s| s.namespace_options.as_mut())
            {
                o.pid = pod_pid;
            }
            let r: RunPodSandboxResponse = w.rpc(
                "RunPodSandbox",
                &RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler(rt).into() },
            );
            let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
            let pod = Pod { id: r.pod_sandbox_id, name, config, rt };
            let mut cfg = w.container_config("c", "sleep 1000 & echo \"child=$!\"; exec sleep 2000");
            if let Some(o) =
                cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut())
            {
                o.pid = ctr_pid;
            }
            let c = w.create_container_with(&pod, cfg);
            let _: Empty = w.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
            wait_until(&format!("{tag}{what}: the child's line in the log"), WAIT, || {
                lines_of(&read_cri_log(&c.log), Stream::Stdout).iter().any(|l| l.starts_with("child=")).then_some(())
            });
            wait_until(&format!("{tag}{what}: two processes in the container's cgroup"), WAIT, || {
                (w.cd.cgroup_pids(Some(&c.id)).len() == 2).then_some(())
            });
            // Not PID 1 of a namespace: SIGTERM's default action ends it.
            w.stop_container(&c, 10);
            let st = w.status(&c);
            assert_eq!(
                (st.state, st.exit_code),
                (container_state::EXITED, 143),
                "{tag}{what}: after StopContainer: {st:?}"
            );
            let left = poll_for(WAIT, || w.cd.cgroup_pids(Some(&c.id)).is_empty().then_some(()));
            assert!(
                left.is_some(),
                "{tag}{what}: processes left in the stopped container's cgroup: {:?}",
                w.cd.cgroup_pids(Some(&c.id)).iter().map(|&p| (p, proc_cmdline(p))).collect::<Vec<_>>()
            );
            assert_eq!(w.pod_status(&pod).state, sandbox_state::READY, "{tag}{what}: the pod after the stop");
            w.stop_pod(&pod);
            w.remove_pod(&pod);
        }
    });
}

// A long exec probe in flight when kubelet stops the pod: the container's
// death ends the exec, ExecSync answers, and the stop completes.
#[test]
fn exec_in_flight_when_the_pod_stops() {
    both("cri-inflt", |w, rt| {
        let tag = w.cd.tag();
        let pod = w.run_pod(rt, "inflight");
        let c = named(w, &pod, "c", LOGS_THEN_SLEEP);
        let (sock, id) = (w.cd.sock.clone(), c.id.clone());
        let probe = std::thread::spawn(move || {
            let mut g = Grpc::connect(&sock, CALL_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
            let req = ExecSyncRequest { container_id: id, cmd: vec!["sleep".into(), "1001".into()], timeout: 0 };
            g.call::<_, ExecSyncResponse>(&format!("{RUNTIME}ExecSync"), &req).map_err(|e| e.to_string())
        });
        let sleeper = || w.cd.cgroup_pids(Some(&c.id)).into_iter().find(|&p| proc_cmdline(p).trim() == "sleep 1001");
        wait_until(&format!("{tag}the exec (sleep 1001) to run"), WAIT, sleeper);
        w.stop_pod(&pod);
        let r = probe.join().unwrap_or_else(|_| Err("the probe thread panicked".into()));
        match &r {
            Ok(x) => assert_eq!(x.exit_code, 137, "{tag}the exec killed with its container: {x:?}"),
            Err(e) => panic!("{tag}ExecSync of an exec whose container was stopped: {e}\n{}", w.cd.log_tail()),
        }
        assert!(sleeper().is_none(), "{tag}the exec's process outlived the pod");
    });
}
