//! sd-notify: the VM lane's systemd-notify for busybox containers (which
//! have no way to send a datagram). It sends one datagram to
//! $NOTIFY_SOCKET: its arguments joined by newlines, as sd_notify(3) sends
//! several assignments at once (`sd-notify STATUS=up READY=1`).
//!
//! Built by tests/vm/lane with rustc for the musl target, static, and put
//! into the lane's test image as /bin/sd-notify.

use std::os::unix::net::UnixDatagram;
use std::process::exit;

fn main() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        eprintln!("sd-notify: NOTIFY_SOCKET is not set");
        exit(2);
    };
    let msg = std::env::args().skip(1).collect::<Vec<_>>().join("\n");
    let sent = UnixDatagram::unbound().and_then(|s| s.send_to(msg.as_bytes(), &path));
    if let Err(e) = sent {
        eprintln!("sd-notify: sending to {}: {e}", path.to_string_lossy());
        exit(1);
    }
}
