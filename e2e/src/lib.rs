//! Black-box end-to-end tests of the `pier` binary.
//!
//! The harness runs the real binary as a child process: [`Pier`] runs `pier run` on a temporary
//! manifests directory, [`Echo`] runs `pier echo` backends on distinct 127.0.0.x addresses,
//! [`manifests`] builds the Kubernetes YAML they are wired with, and [`HttpClient`] talks to the
//! proxy with any `Host`. Only loopback traffic is involved.
//!
//! Build the binary before running the tests:
//! `cargo build -p pier-controller --bin pier && cargo test -p pier-e2e`
//! (set `PIER_BIN` to test another build).

pub mod apiserver;
pub mod bench;
pub mod binary;
pub mod client;
pub mod echo;
pub mod manifests;
pub mod net;
pub mod pier;
pub mod raw;
pub mod tempdir;

pub use apiserver::ApiServer;
pub use binary::{pier_bin, pier_check, prefer_release_binary};
pub use client::{HttpClient, KeepAliveConnection, Reply};
pub use echo::Echo;
pub use net::{common_free_port, free_port, free_port_on, free_ports, poll_until};
pub use pier::{Pier, ReadyWait};
pub use tempdir::TempDir;
