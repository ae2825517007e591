//! `pier echo` backends run as child processes.

use crate::binary::pier_bin;
use crate::net::{free_port_on, wait_connectable};
use crate::tempdir::TempDir;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long an echo backend may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `pier echo` process; killed on drop.
#[derive(Debug)]
pub struct Echo {
    child: Child,
    addr: SocketAddr,
    name: String,
    // Holds the process's output; removed after the process is gone (field order).
    logs: TempDir,
}

impl Echo {
    /// Starts backend `name` on a free port of `ip` (e.g. 127.0.0.21), answering 200 at once.
    pub async fn start(ip: Ipv4Addr, name: &str) -> Echo {
        let addr = SocketAddr::new(IpAddr::V4(ip), free_port_on(ip));
        Echo::start_with(addr, name, 0, 200).await
    }

    /// Starts backend `name` on `addr`, answering `status` after `delay_ms`; waits until it
    /// accepts connections (panics with its output if it does not within 10 s).
    pub async fn start_with(addr: SocketAddr, name: &str, delay_ms: u64, status: u16) -> Echo {
        let logs = TempDir::new(&format!("echo-{name}"));
        let log_path = logs.path().join("output.log");
        let log = File::create(&log_path).expect("cannot create echo log file");
        let child = Command::new(pier_bin())
            .args(["echo", "--listen", &addr.to_string(), "--name", name])
            .args(["--delay-ms", &delay_ms.to_string()])
            .args(["--status", &status.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot clone log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn pier echo: {e}"));
        let mut echo = Echo {
            child,
            addr,
            name: name.to_string(),
            logs,
        };
        if let Err(err) = wait_connectable(addr, START_TIMEOUT).await {
            let exited = echo.child.try_wait().ok().flatten();
            panic!(
                "echo {name} on {addr} did not start ({err}); exit status {exited:?}; output:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        echo
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name it puts in its answers.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory holding its output log.
    pub fn log_dir(&self) -> &std::path::Path {
        self.logs.path()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
