//! Bounded waits: poll every 20 ms up to a limit, then fail saying what was
//! awaited (or, for `poll_for`, report that it never came). Nothing here
//! measures time.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Default bound of every wait.
pub const WAIT: Duration = Duration::from_secs(30);

/// Bound for waits that depend on moving a lot of data.
pub const LONG_WAIT: Duration = Duration::from_secs(180);

/// Poll period of the waits.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `f` every 20 ms until it returns Some, for at most `limit`; then
/// panics saying what was awaited.
pub fn wait_until<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_until_or(what, limit, f, String::new)
}

/// Like `wait_until`, with a diagnostic added to the panic message.
pub fn wait_until_or<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
    diag: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("gave up after {}s waiting for {what}\n{}", limit.as_secs(), diag());
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `f` up to `limit`; None when it never answered.
pub fn poll_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for a child with a bound; kills it and returns Err on timeout.
pub fn try_wait_child(child: &mut Child, limit: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Ok(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not exit within {}s (killed it)", limit.as_secs()));
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for a child with a bound; kills it and panics when it does not end.
pub fn wait_child(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    try_wait_child(child, limit).unwrap_or_else(|e| panic!("{what} (pid {}) {e}", child.id()))
}
