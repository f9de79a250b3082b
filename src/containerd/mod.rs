//! The containerd front end (runtime v2 shim protocol).
pub mod proto;
pub mod sha256;
pub mod ttrpc;
