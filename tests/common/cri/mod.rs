//! Kubernetes' view of a shim: containerd's built-in CRI plugin, driven over
//! gRPC the way kubelet drives it, with runc-v2 and shimlet as two
//! RuntimeClass handlers of one containerd.
//!
//! - `grpc`: a unary gRPC client over the containerd socket (h2 + prost);
//! - `api`: the CRI messages, hand-written with their real field numbers;
//! - `pause`: the sandbox image, a tiny static program built from
//!   tests/pause/main.rs;
//! - `stream`: Exec and Attach sessions with containerd's stream server
//!   (WebSocket, `v4.channel.k8s.io`), as kubectl exec/attach reach them;
//! - here: `CriWorld`, a private containerd (`containerd::Containerd`) with
//!   the CRI plugin on, handlers `runc` (io.containerd.runc.v2) and
//!   `shimlet` (the shim binary's absolute path as runtime_type: 1.6.20
//!   drops runtime_path), pods on the host network (no CNI), and the calls
//!   the tests make, each bounded (grpc-timeout) and failing the test with
//!   the handler's name and containerd's log on an error.
//!
//! Teardown: `finish(rt)` removes every pod through the CRI
//! (StopPodSandbox, RemovePodSandbox), then the containerd world checks
//! that nothing is left: no task, container, process in the namespace
//! (shims), runc state, shim socket, bundle or cgroup.

pub mod api;
pub mod grpc;
pub mod pause;
pub mod stream;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use self::api::*;
pub use self::grpc::{Grpc, Status};
pub use self::pause::*;
use super::containerd::*;
use super::podman::clip;
use super::{poll_for, Stream, WAIT};

/// The containerd namespace of the CRI.
pub const K8S_NS: &str = "k8s.io";

/// grpc-timeout of a call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The RuntimeClass handler of a runtime.
pub fn handler(rt: Runtime) -> &'static str {
    match rt {
        Runtime::RuncV2 => "runc",
        Runtime::Shimlet => "shimlet",
    }
}

/// The CRI plugin's table: sandbox image, the two handlers.
fn cri_sections() -> String {
    let shim = shimlet_shim_path();
    format!(
        r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_TAG}"
  # No CAP_SYS_RESOURCE on these machines: runc cannot give the sandbox -998.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  disable_cgroup = false
  # Exec/Attach/PortForward's stream server (unused): an ephemeral loopback
  # port, so that parallel containerds never clash.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$D/cni-bin"
    conf_dir = "$D/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shimlet]
      runtime_type = "{}"
"#,
        shim.display()
    )
}

/// A pod of a test: its id and the config it was run with (CreateContainer
/// needs it again).
#[derive(Clone, Debug)]
pub struct Pod {
    pub id: String,
    pub name: String,
    pub config: PodSandboxConfig,
    pub rt: Runtime,
}

impl Pod {
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.log_directory)
    }
}

/// A container of a pod.
#[derive(Clone, Debug)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    /// The full path of its log (the pod's log directory + the container's
    /// log_path).
    pub log: PathBuf,
}

/// A private containerd with the CRI plugin and a client of it.
pub struct CriWorld {
    client: RefCell<Option<Grpc>>,
    pub cd: Containerd,
}

impl CriWorld {
    /// containerd with the CRI plugin, the busybox and pause images
    /// imported in k8s.io and seen by the CRI.
    pub fn start(label: &str) -> CriWorld {
        Runtime::RuncV2.require();
        Runtime::Shimlet.require();
        let mut cfg = Config::new(label).with_cri().namespace(K8S_NS).image(pause_image()).sections(&cri_sections());
        // Fail at start, rather than run without the CRI, if it cannot load.
        cfg.required_plugins.push("io.containerd.grpc.v1.cri".to_string());
        let cd = Containerd::start(cfg);
        let w = CriWorld { client: RefCell::new(None), cd };
        w.connect();
        for img in w.cd.images.clone() {
            w.wait_image(&img.name);
        }
        w
    }

    /// (Re)connects and waits until the CRI answers Version (it answers
    /// `server is not initialized yet` while it recovers).
    pub fn connect(&self) {
        let mut last = String::new();
        let c = poll_for(WAIT, || {
            let mut g = match Grpc::connect(&self.cd.sock, CALL_TIMEOUT) {
                Ok(g) => g,
                Err(e) => {
                    last = format!("connect: {e}");
                    return None;
                }
            };
            match g.call::<_, VersionResponse>(&format!("{RUNTIME}Version"), &VersionRequest { version: "v1".into() }) {
                Ok(v) if v.runtime_api_version == "v1" => Some(g),
                Ok(v) => {
                    last = format!("Version answered {v:?}");
                    None
                }
                Err(e) => {
                    last = format!("Version: {e}");
                    None
                }
            }
        });
        let c = c.unwrap_or_else(|| {
            panic!("the CRI did not answer Version within {}s: {last}\n{}", WAIT.as_secs(), self.cd.log_tail())
        });
        *self.client.borrow_mut() = Some(c);
    }

    /// containerd stopped and started again (same state and namespace), and
    /// a new connection once the CRI has recovered.
    pub fn restart(&self) {
        *self.client.borrow_mut() = None;
        self.cd.restart();
        self.connect();
    }

    /// A call; Err is the gRPC status.
    pub fn try_call<Q: prost::Message, R: prost::Message + Default>(
        &self,
        path: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<R, Status> {
        let mut c = self.client.borrow_mut();
        let c = c.as_mut().unwrap_or_else(|| panic!("{}no CRI connection", self.cd.tag()));
        c.call_timeout(path, req, timeout)
    }

    /// A RuntimeService call that must succeed.
    pub fn rpc<Q: prost::Message + std::fmt::Debug, R: prost::Message + Default>(&self, method: &str, req: &Q) -> R {
        self.try_rpc(method, req)
            .unwrap_or_else(|e| panic!("{}{method}({req:?}) failed: {e}\n{}", self.cd.tag(), self.cd.log_tail()))
    }

    pub fn try_rpc<Q: prost::Message, R: prost::Message + Default>(&self, method: &str, req: &Q) -> Result<R, Status> {
        self.try_call(&format!("{RUNTIME}{method}"), req, CALL_TIMEOUT)
    }

    /// Waits until the CRI's image cache has the image (it is updated
    /// asynchronously after `ctr images import`).
    pub fn wait_image(&self, name: &str) {
        let mut last = String::new();
        let req = ImageStatusRequest { image: Some(ImageSpec { image: name.to_string() }) };
        let found = poll_for(WAIT, || {
            match self.try_call::<_, ImageStatusResponse>(&format!("{IMAGE}ImageStatus"), &req, CALL_TIMEOUT) {
                Ok(r) => {
                    last = format!("{r:?}");
                    r.image.filter(|i| !i.id.is_empty())
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        });
        if found.is_none() {
            panic!("the CRI did not see image {name} within {}s: {last}\n{}", WAIT.as_secs(), self.cd.log_tail());
        }
    }

    /// The busybox image's name.
    pub fn image(&self) -> String {
        self.cd.image().to_string()
    }

    // -- pods ---------------------------------------------------------------

    /// The config of a pod: host network (no CNI), its own pid and ipc
    /// namespaces, the world's cgroup parent, a log directory in `$D`.
    pub fn pod_config(&self, rt: Runtime, what: &str) -> PodSandboxConfig {
        let name = self.cd.new_id(rt, what);
        let log_dir = self.cd.dir.join("pods").join(&name);
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: format!("uid-{name}"),
                namespace: "shimlet-test".into(),
                attempt: 0,
            }),
            // No hostname: a host-network pod has no UTS namespace of its own.
            hostname: String::new(),
            log_directory: log_dir.display().to_string(),
            labels: HashMap::from([("shimlet-test".to_string(), name.clone())]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cd.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: ns_mode::NODE,
                        pid: ns_mode::POD,
                        ipc: ns_mode::POD,
                    }),
                }),
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with the runtime's handler; the pod must be READY.
    pub fn run_pod(&self, rt: Runtime, what: &str) -> Pod {
        let config = self.pod_config(rt, what);
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let r: RunPodSandboxResponse = self.rpc(
            "RunPodSandbox",
            &RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler(rt).into() },
        );
        assert_eq!(r.pod_sandbox_id.len(), 64, "{}RunPodSandbox gave id {:?}", self.cd.tag(), r.pod_sandbox_id);
        let pod = Pod { id: r.pod_sandbox_id, name, config, rt };
        let st = self.pod_status(&pod);
        assert_eq!(
            st.state,
            sandbox_state::READY,
            "{}pod {} is {} after RunPodSandbox",
            self.cd.tag(),
            pod.name,
            sandbox_state::name(st.state)
        );
        assert_eq!(st.runtime_handler, handler(rt), "{}pod {}: runtime handler", self.cd.tag(), pod.name);
        let (_, info) = self.pod_status_verbose(&pod);
        let want = match rt {
            Runtime::RuncV2 => rt.name().to_string(),
            Runtime::Shimlet => shimlet_shim_path().display().to_string(),
        };
        assert_eq!(info["runtimeType"], want.as_str(), "{}pod {}: runtime type in {info}", self.cd.tag(), pod.name);
        pod
    }

    pub fn pod_status(&self, pod: &Pod) -> PodSandboxStatus {
        self.pod_status_verbose(pod).0
    }

    /// The status and containerd's verbose info (JSON: pid, runtimeType, ...).
    pub fn pod_status_verbose(&self, pod: &Pod) -> (PodSandboxStatus, Value) {
        let r: PodSandboxStatusResponse =
            self.rpc("PodSandboxStatus", &PodSandboxStatusRequest { pod_sandbox_id: pod.id.clone(), verbose: true });
        let info = r.info.get("info").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        (r.status.unwrap_or_else(|| panic!("{}PodSandboxStatus of {} has no status", self.cd.tag(), pod.name)), info)
    }

    /// The sandbox's (pause) pid, from the verbose status.
    pub fn pod_pid(&self, pod: &Pod) -> i32 {
        let (_, info) = self.pod_status_verbose(pod);
        let pid = info["pid"].as_i64().unwrap_or(0) as i32;
        assert!(pid > 1, "{}pod {}: no pid in the verbose status: {info}", self.cd.tag(), pod.name);
        pid
    }

    pub fn wait_pod_state(&self, pod: &Pod, state: i32) -> PodSandboxStatus {
        let mut last = None;
        poll_for(WAIT, || {
            let st = self.pod_status(pod);
            let ok = st.state == state;
            last = Some(st.clone());
            ok.then_some(st)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}pod {} did not become {} within {}s; last: {last:?}\n{}",
                self.cd.tag(),
                pod.name,
                sandbox_state::name(state),
                WAIT.as_secs(),
                self.cd.log_tail()
            )
        })
    }

    pub fn stop_pod(&self, pod: &Pod) {
        let _: Empty = self.rpc("StopPodSandbox", &PodSandboxIdRequest { pod_sandbox_id: pod.id.clone() });
    }

    pub fn remove_pod(&self, pod: &Pod) {
        let _: Empty = self.rpc("RemovePodSandbox", &PodSandboxIdRequest { pod_sandbox_id: pod.id.clone() });
    }

    pub fn list_pods(&self) -> Vec<PodSandbox> {
        let r: ListPodSandboxResponse = self.rpc("ListPodSandbox", &ListPodSandboxRequest { filter: None });
        r.items
    }

    // -- containers ---------------------------------------------------------

    /// A container config: the busybox image, `sh -c SCRIPT`, its own pid
    /// namespace (as kubelet without shareProcessNamespace), log `NAME.log`.
    pub fn container_config(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(ImageSpec { image: self.image() }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: ns_mode::NODE,
                        pid: ns_mode::CONTAINER,
                        ipc: ns_mode::POD,
                    }),
                }),
            }),
            ..Default::default()
        }
    }

    pub fn create_container_with(&self, pod: &Pod, config: ContainerConfig) -> Ctr {
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let log = pod.log_dir().join(&config.log_path);
        let r: CreateContainerResponse = self.rpc(
            "CreateContainer",
            &CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            },
        );
        assert!(!r.container_id.is_empty(), "{}CreateContainer({name}) gave no id", self.cd.tag());
        Ctr { id: r.container_id, name, log }
    }

    /// CreateContainer + StartContainer of `sh -c SCRIPT`; RUNNING after.
    pub fn start_container(&self, pod: &Pod, name: &str, script: &str) -> Ctr {
        let c = self.create_container_with(pod, self.container_config(name, script));
        assert_eq!(self.status(&c).state, container_state::CREATED, "{}{name} after CreateContainer", self.cd.tag());
        let _: Empty = self.rpc("StartContainer", &ContainerIdRequest { container_id: c.id.clone() });
        let st = self.status(&c);
        assert_eq!(
            st.state,
            container_state::RUNNING,
            "{}{name} after StartContainer: {st:?}\n{}",
            self.cd.tag(),
            self.cd.log_tail()
        );
        c
    }

    pub fn status(&self, c: &Ctr) -> ContainerStatus {
        self.status_verbose(c).0
    }

    /// The status and containerd's verbose info (JSON: pid, sandboxID, ...).
    pub fn status_verbose(&self, c: &Ctr) -> (ContainerStatus, Value) {
        let r: ContainerStatusResponse =
            self.rpc("ContainerStatus", &ContainerStatusRequest { container_id: c.id.clone(), verbose: true });
        let info = r.info.get("info").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        (r.status.unwrap_or_else(|| panic!("{}ContainerStatus of {} has no status", self.cd.tag(), c.name)), info)
    }

    /// The container's init pid (from the verbose status).
    pub fn container_pid(&self, c: &Ctr) -> i32 {
        let (_, info) = self.status_verbose(c);
        let pid = info["pid"].as_i64().unwrap_or(0) as i32;
        assert!(pid > 1, "{}{}: no pid in the verbose status: {info}", self.cd.tag(), c.name);
        pid
    }

    pub fn wait_state(&self, c: &Ctr, state: i32) -> ContainerStatus {
        let mut last = None;
        poll_for(WAIT, || {
            let st = self.status(c);
            let ok = st.state == state;
            last = Some(st.clone());
            ok.then_some(st)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}{} did not become {} within {}s; last: {last:?}\n{}",
                self.cd.tag(),
                c.name,
                container_state::name(state),
                WAIT.as_secs(),
                self.cd.log_tail()
            )
        })
    }

    /// StopContainer with a timeout in seconds (grpc-timeout well beyond it).
    pub fn stop_container(&self, c: &Ctr, timeout: i64) {
        let req = StopContainerRequest { container_id: c.id.clone(), timeout };
        let t = CALL_TIMEOUT + Duration::from_secs(timeout.max(0) as u64);
        let r: Result<Empty, Status> = self.try_call(&format!("{RUNTIME}StopContainer"), &req, t);
        if let Err(e) = r {
            panic!("{}StopContainer({}, {timeout}) failed: {e}\n{}", self.cd.tag(), c.name, self.cd.log_tail());
        }
    }

    pub fn list_containers(&self, pod: &Pod) -> Vec<Container> {
        let r: ListContainersResponse = self.rpc(
            "ListContainers",
            &ListContainersRequest {
                filter: Some(ContainerFilter { id: String::new(), pod_sandbox_id: pod.id.clone() }),
            },
        );
        r.containers
    }

    /// ExecSync; Err is the gRPC status (a non-zero exit is not an error).
    pub fn exec(&self, c: &Ctr, cmd: &[&str], timeout: i64) -> Result<ExecSyncResponse, Status> {
        let req =
            ExecSyncRequest { container_id: c.id.clone(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout };
        self.try_call(&format!("{RUNTIME}ExecSync"), &req, CALL_TIMEOUT + Duration::from_secs(timeout.max(0) as u64))
    }

    /// ExecSync that must be answered (any exit code).
    pub fn exec_ok(&self, c: &Ctr, cmd: &[&str]) -> ExecSyncResponse {
        self.exec(c, cmd, 0).unwrap_or_else(|e| {
            panic!("{}ExecSync({}, {cmd:?}) failed: {e}\n{}", self.cd.tag(), c.name, self.cd.log_tail())
        })
    }

    // -- the end of a half ----------------------------------------------------

    /// Stops and removes every pod (as kubelet does when pods go), best
    /// effort; the problems found.
    fn remove_all_pods(&self) -> Vec<String> {
        let mut problems = vec![];
        let pods: Result<ListPodSandboxResponse, Status> =
            self.try_rpc("ListPodSandbox", &ListPodSandboxRequest { filter: None });
        match pods {
            Ok(r) => {
                for p in r.items {
                    let req = PodSandboxIdRequest { pod_sandbox_id: p.id.clone() };
                    for m in ["StopPodSandbox", "RemovePodSandbox"] {
                        if let Err(e) = self.try_rpc::<_, Empty>(m, &req) {
                            problems.push(format!("{m}({}): {e}", p.id));
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("ListPodSandbox: {e}")),
        }
        problems
    }

    /// Ends one handler's half: every pod removed through the CRI, then the
    /// containerd world requires that nothing of it is left.
    pub fn finish(&self, rt: Runtime) {
        let problems = self.remove_all_pods();
        if !problems.is_empty() {
            panic!("{}removing the pods:\n{}\n{}", self.cd.tag(), problems.join("\n"), self.cd.log_tail());
        }
        let left = self.list_pods();
        assert!(left.is_empty(), "{}pods listed after RemovePodSandbox: {left:?}", self.cd.tag());
        self.cd.finish(rt);
    }

    // -- inspection -----------------------------------------------------------

    /// The runc state directories in the world (the shims' runc roots are
    /// under the namespace's /run).
    pub fn runc_state(&self) -> Vec<PathBuf> {
        self.cd.runc_state()
    }
}

impl Drop for CriWorld {
    fn drop(&mut self) {
        // Pods first, through the CRI, while containerd runs; the
        // containerd world then stops it and cleans what is left.
        if self.cd.daemon_pid().is_some() && self.client.borrow().is_some() {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.remove_all_pods()));
            if let (Ok(p), false) = (&r, std::thread::panicking()) {
                if !p.is_empty() {
                    eprintln!("removing the pods at the end: {}", p.join("; "));
                }
            }
        }
        *self.client.borrow_mut() = None;
    }
}

// ---------------------------------------------------------------------------
// the CRI's container log

/// One record of the log the CRI writes: `TIME STREAM TAG LINE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriRecord {
    pub time: String,
    pub stream: Stream,
    pub partial: bool,
    pub line: String,
}

/// Go's RFC3339Nano in UTC, as the CRI logger writes it: trailing zeros of
/// the fraction dropped (and the dot when none is left), `Z`.
pub fn check_rfc3339nano_utc(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let pat = b"dddd-dd-ddTdd:dd:dd";
    let head = b.len() > pat.len()
        && b.iter().zip(pat.iter()).all(|(&c, &p)| if p == b'd' { c.is_ascii_digit() } else { c == p });
    if !head || !t.ends_with('Z') {
        return Err(format!("bad timestamp {t:?}: want YYYY-MM-DDTHH:MM:SS[.fraction]Z"));
    }
    let frac = &t[pat.len()..t.len() - 1];
    if !frac.is_empty() {
        let digits = frac.strip_prefix('.').ok_or_else(|| format!("bad fraction in {t:?}"))?;
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit()) || digits.ends_with('0')
        {
            return Err(format!("bad fraction in {t:?} (1 to 9 digits, no trailing zero)"));
        }
    }
    Ok(())
}

/// Parses a whole CRI log file (each line complete).
pub fn parse_cri_log(data: &[u8]) -> Result<Vec<CriRecord>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "the log is not UTF-8".to_string())?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(format!("the log does not end with a newline: {:?}", clip(text, 200)));
    }
    let mut v = vec![];
    for (i, l) in text.lines().enumerate() {
        let bad = |why: &str| format!("record {}: {why}: {l:?}", i + 1);
        let mut f = l.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag), Some(line)) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(bad("not TIME STREAM TAG LINE"));
        };
        check_rfc3339nano_utc(time).map_err(|e| bad(&e))?;
        let stream = match stream {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => return Err(bad("stream is neither stdout nor stderr")),
        };
        let partial = match tag {
            "F" => false,
            "P" => true,
            _ => return Err(bad("tag is neither F nor P")),
        };
        v.push(CriRecord { time: time.into(), stream, partial, line: line.into() });
    }
    Ok(v)
}

/// The complete records of a log file that is still being written.
pub fn read_cri_log(p: &Path) -> Vec<CriRecord> {
    let d = fs::read(p).unwrap_or_default();
    let end = d.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    parse_cri_log(&d[..end]).unwrap_or_else(|e| panic!("malformed CRI log {}: {e}", p.display()))
}

/// The lines of one stream.
pub fn lines_of(recs: &[CriRecord], s: Stream) -> Vec<String> {
    recs.iter().filter(|r| r.stream == s && !r.partial).map(|r| r.line.clone()).collect()
}
