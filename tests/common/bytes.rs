//! Byte strings in assertions and failure messages.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Where `needle` first occurs in `hay` (an empty needle is at 0).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Shows bytes for a failure message: the first difference between two.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let i = a.iter().zip(b.iter()).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let win = |d: &[u8]| format!("{:?}", String::from_utf8_lossy(&d[i.saturating_sub(20)..(i + 40).min(d.len())]));
    format!("lengths {} vs {}; first difference at byte {i}: {} vs {}", a.len(), b.len(), win(a), win(b))
}

pub fn tail_str(d: &[u8]) -> String {
    String::from_utf8_lossy(&d[d.len().saturating_sub(300)..]).into_owned()
}

/// An OsString from raw bytes (may be invalid UTF-8).
pub fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}
