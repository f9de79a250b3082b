//! A minimal unary gRPC client over a unix socket: h2 (HTTP/2 with HPACK,
//! flow control, PING and SETTINGS handled by the crate) on a current-thread
//! tokio runtime, messages encoded with prost. Every call carries a
//! `grpc-timeout` (containerd turns it into the request's deadline: the CRI's
//! StopContainer and StopPodSandbox have no bound of their own) and is
//! bounded on the client side too, a little later, so that a server that
//! never answers gives an error instead of a hung test.
//!
//! Self-contained (it uses nothing of the test crate), so that the benchmark
//! can include it with `#[path]`.

use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

/// A gRPC status: `code` as in grpc's codes (0 OK, 2 UNKNOWN, 4
/// DEADLINE_EXCEEDED, 5 NOT_FOUND, ...), `message` percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: u32,
    pub message: String,
}

impl Status {
    fn local(m: impl std::fmt::Display) -> Status {
        // UNKNOWN, as grpc-go reports transport failures of a call.
        Status { code: 2, message: format!("client: {m}") }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code {} ({}): {}", self.code, code_name(self.code), self.message)
    }
}

pub fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("?")
}

/// One HTTP/2 connection to a gRPC server on a unix socket.
pub struct Grpc {
    rt: tokio::runtime::Runtime,
    send: h2::client::SendRequest<Bytes>,
    /// The `grpc-timeout` of calls that do not give their own.
    pub timeout: Duration,
}

/// How much longer than the server's deadline the client waits for an
/// answer (the server reports DEADLINE_EXCEEDED itself when it can).
const CLIENT_GRACE: Duration = Duration::from_secs(5);

impl Grpc {
    /// Connects and does the HTTP/2 handshake (bounded by `timeout`).
    pub fn connect(sock: &Path, timeout: Duration) -> io::Result<Grpc> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let sock = sock.to_path_buf();
        let send = rt.block_on(async move {
            let handshake = async {
                let io = tokio::net::UnixStream::connect(&sock).await?;
                // Large windows: ExecSync output and long lists fit without
                // waiting for window updates.
                let (send, conn) = h2::client::Builder::new()
                    .initial_window_size(1 << 24)
                    .initial_connection_window_size(1 << 24)
                    .max_frame_size(1 << 20)
                    .handshake::<_, Bytes>(io)
                    .await
                    .map_err(io::Error::other)?;
                // The connection task runs whenever a call is in flight
                // (block_on drives the current-thread runtime).
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok::<_, io::Error>(send)
            };
            tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP/2 handshake timed out"))?
        })?;
        Ok(Grpc { rt, send, timeout })
    }

    /// A unary call with the default timeout. `path` is
    /// `/package.Service/Method`.
    pub fn call<Q: Message, R: Message + Default>(&mut self, path: &str, req: &Q) -> Result<R, Status> {
        let t = self.timeout;
        self.call_timeout(path, req, t)
    }

    /// A unary call with `grpc-timeout` = `timeout`.
    pub fn call_timeout<Q: Message, R: Message + Default>(
        &mut self,
        path: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<R, Status> {
        let mut msg = Vec::with_capacity(5 + req.encoded_len());
        msg.push(0); // not compressed
        msg.extend_from_slice(&(req.encoded_len() as u32).to_be_bytes());
        req.encode(&mut msg).map_err(Status::local)?;
        let head = http::Request::post(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", grpc_timeout(timeout))
            .body(())
            .map_err(Status::local)?;
        let send = self.send.clone();
        let exchange = async move {
            let mut send = send.ready().await.map_err(Status::local)?;
            let (resp, mut tx) = send.send_request(head, false).map_err(Status::local)?;
            tx.send_data(Bytes::from(msg), true).map_err(Status::local)?;
            let (parts, mut body) = resp.await.map_err(Status::local)?.into_parts();
            let mut data = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(Status::local)?;
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            let trailers = body.trailers().await.map_err(Status::local)?;
            Ok::<_, Status>((parts, data, trailers))
        };
        let (parts, data, trailers) = self.rt.block_on(async move {
            tokio::time::timeout(timeout + CLIENT_GRACE, exchange).await.unwrap_or_else(|_| {
                Err(Status::local(format!("no answer within {}s of the call's deadline", CLIENT_GRACE.as_secs())))
            })
        })?;
        if parts.status != http::StatusCode::OK {
            return Err(Status::local(format!("HTTP status {}", parts.status)));
        }
        // Errors usually come "trailers-only": grpc-status in the headers.
        let h = trailers.as_ref().filter(|t| t.contains_key("grpc-status")).unwrap_or(&parts.headers);
        let code = h.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<u32>().ok());
        let Some(code) = code else { return Err(Status::local("no grpc-status in the answer")) };
        if code != 0 {
            let message = h.get("grpc-message").map(|v| percent_decode(v.as_bytes())).unwrap_or_default();
            return Err(Status { code, message });
        }
        if data.len() < 5 || data[0] != 0 {
            return Err(Status::local(format!("short or compressed message ({} bytes)", data.len())));
        }
        let n = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        let m = data.get(5..5 + n).ok_or_else(|| Status::local("truncated message"))?;
        R::decode(m).map_err(Status::local)
    }
}

/// `grpc-timeout`: at most 8 digits and a unit.
fn grpc_timeout(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", d.as_secs().min(99_999_999))
    }
}

/// grpc-message is percent-encoded outside printable ASCII (and `%`).
fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if v[i] == b'%' && i + 2 < v.len() {
            if let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
