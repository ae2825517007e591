//! Memory per idle client connection. Keep-alive: N clients each send one request over their
//! own connection and then stay connected without sending anything; the proxy's resident
//! memory growth per connection is printed right after the answers and once idle connections
//! have settled. Silent: N clients connect and send nothing (as a browser's preconnection);
//! growth per connection after a moment, in a fresh process. For pier and, when nginx is
//! installed (`/usr/sbin` or `/usr/bin`), for nginx configured like the side-by-side benchmark
//! (`e2e/bench/peers/nginx.conf`).
//!
//! `cargo bench -p pier-e2e --bench idle_connections [-- --connections N]` (default 2,000;
//! uses `target/release/pier` when it exists; `PIER_BIN` overrides). Loopback only; bounded in
//! time. Never fails on a number.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{free_port, Echo, Pier, TempDir};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long after the last answer the settled figure is read (pier gives an idle
/// connection's buffers back after a second; allocators return memory lazily).
const SETTLE: Duration = Duration::from_secs(12);

/// Resident memory (`VmRSS`) of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    e2e::bench::proc_status_kib(pid, "VmRSS").unwrap_or(0)
}

/// Opens `n` connections to `addr`, one request each, and returns them (still open).
async fn idle_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: idle.example\r\n\r\n")
            .await
            .expect("send");
        conns.push(s);
    }
    for s in &mut conns {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.expect("answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "not answered 200");
    }
    conns
}

/// What is measured.
#[derive(Clone, Copy, PartialEq)]
enum Clients {
    /// One request each, then idle.
    KeepAlive,
    /// Connected, nothing sent.
    Silent,
}

/// How long silent connections are given to be accepted before memory is read. pier (and
/// nginx as configured here) defer accepting until the first bytes or the kernel's SYN-ACK
/// retransmission: one second, and for some of thousands opened at once the next one, three
/// seconds after connecting.
const SILENT_SETTLE: Duration = Duration::from_secs(5);

/// Measures one proxy (memory of `pid`) at `addr`; prints a table row.
async fn measure(clients: Clients, name: &str, pid: u32, addr: SocketAddr, n: usize) {
    let before = rss_kib(pid);
    let per = |kib: u64| kib.saturating_sub(before) as f64 / n as f64;
    if clients == Clients::Silent {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(TcpStream::connect(addr).await.expect("connect"));
        }
        tokio::time::sleep(SILENT_SETTLE).await;
        println!("| {name} | {n} | {:.1} |", per(rss_kib(pid)));
        return;
    }
    let conns = idle_clients(addr, n).await;
    let busy = rss_kib(pid);
    tokio::time::sleep(SETTLE).await;
    let settled = rss_kib(pid);
    drop(conns);
    println!("| {name} | {n} | {:.1} | {:.1} |", per(busy), per(settled));
}

/// nginx proxying to `backend`, configured as in the side-by-side benchmark.
fn start_nginx(dir: &TempDir, backend: SocketAddr) -> Option<(Child, SocketAddr)> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = free_port();
    let template = include_str!("peers/nginx.conf");
    let conf: String = template
        .lines()
        .filter(|l| !l.trim_start().starts_with("#@tls"))
        .map(|l| l.replace("#@plain ", ""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("@WORKERS@", "1")
        .replace("@DIR@", &dir.path().display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("127.0.0.1:@BACKEND_PORT@", &backend.to_string());
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).ok()?;
    std::fs::create_dir_all(dir.path().join("nginx-tmp")).ok()?;
    let child = Command::new(nginx)
        .args(["-p", &dir.path().display().to_string(), "-c"])
        .arg(&path)
        .args(["-e", &dir.path().join("error.log").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Stops nginx through its master (SIGTERM: the master stops its worker, then exits); killing
/// the master outright would leave the worker running, listening, after the bench.
fn stop_nginx(master: &mut Child) {
    let terminated = Command::new("kill")
        .args(["-TERM", &master.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !terminated {
        let _ = master.kill();
    }
    let _ = master.wait();
}

/// The single worker of an nginx master.
fn nginx_worker(master: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    e2e::prefer_release_binary();
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--connections")
        .and_then(|i| args.get(i + 1))
        .map_or(2000, |v| v.parse().expect("--connections N"));
    let echo = Echo::start(Ipv4Addr::new(127, 0, 6, 1), "idle").await;
    let manifests = join(&[
        backend(NAMESPACE, "idle", &[Endpoint::ready(echo.addr())]),
        Ingress::new(NAMESPACE, "idle")
            .route("idle.example", "/", PathType::Prefix, "idle")
            .to_yaml(),
    ]);
    println!("Memory per idle keep-alive client connection (RSS growth / connections, KiB)\n");
    println!(
        "| proxy | connections | right after the answers | after {} s idle |",
        SETTLE.as_secs()
    );
    println!("|---|---|---|---|");
    each_proxy(Clients::KeepAlive, &manifests, echo.addr(), n).await;
    println!(
        "\nMemory per silent client connection (connected, nothing sent; RSS growth / \
         connections after {} s, KiB)\n",
        SILENT_SETTLE.as_secs()
    );
    println!("| proxy | connections | connected |");
    println!("|---|---|---|");
    each_proxy(Clients::Silent, &manifests, echo.addr(), n).await;
}

/// Measures pier, then nginx where installed, each in a fresh process.
async fn each_proxy(clients: Clients, manifests: &str, backend: SocketAddr, n: usize) {
    let pier = Pier::start(&[("idle.yaml", manifests.to_string())]).await;
    measure(clients, "pier", pier.pid(), pier.http_addr(), n).await;
    drop(pier);
    let dir = TempDir::new("idle-nginx");
    match start_nginx(&dir, backend) {
        Some((mut child, addr)) => {
            let ready = e2e::net::wait_connectable(addr, Duration::from_secs(5))
                .await
                .is_ok();
            match (ready, nginx_worker(child.id())) {
                (true, Some(worker)) => measure(clients, "nginx", worker, addr, n).await,
                _ => println!("| nginx | did not start |"),
            }
            stop_nginx(&mut child);
        }
        None => println!("| nginx | not installed |"),
    }
}
