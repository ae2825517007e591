//! pier's listeners leave a new connection with the kernel until its first bytes arrive
//! (`--defer-accept`, `TCP_DEFER_ACCEPT`), on the HTTP and the HTTPS listener alike.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::net::poll_until;
use e2e::{Echo, Pier};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The kernel's TCP states, as `/proc/net/tcp` writes them.
const ESTABLISHED: &str = "01";
/// The kernel holds the connection (handshake done from the client's side, nothing accepted).
const SYN_RECV: &str = "03";

async fn start(extra_args: &[&str]) -> (Pier, Echo) {
    let echo = Echo::start(Ipv4Addr::new(127, 0, 7, 1), "deferred").await;
    let manifests = join(&[
        backend(NAMESPACE, "deferred", &[Endpoint::ready(echo.addr())]),
        Ingress::new(NAMESPACE, "deferred")
            .route("deferred.example", "/", PathType::Prefix, "deferred")
            .to_yaml(),
    ]);
    let pier = Pier::start_with_args(&[("deferred.yaml", manifests)], extra_args).await;
    (pier, echo)
}

/// `/proc/net/tcp`'s form of an IPv4 address and port: `0100007F:1F90`.
fn proc_net_address(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        panic!("not IPv4: {addr}")
    };
    let ip = u32::from_le_bytes(v4.ip().octets());
    format!("{ip:08X}:{:04X}", v4.port())
}

/// The state of the server's side of the connection from `client` to `server`.
fn server_side_state(server: SocketAddr, client: SocketAddr) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let (local, remote) = (proc_net_address(server), proc_net_address(client));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(3).map(|s| s.to_string()))
            .flatten()
    })
}

/// Connects to `addr` and sends nothing; the connection and its server side's state `after`
/// that long.
async fn silent_connection(addr: SocketAddr, after: Duration) -> (TcpStream, Option<String>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let client = tcp.local_addr().expect("client address");
    tokio::time::sleep(after).await;
    (tcp, server_side_state(addr, client))
}

#[tokio::test]
async fn a_silent_connection_waits_in_the_kernel_then_is_served_when_it_speaks() {
    let (pier, _echo) = start(&[]).await;
    // Read at once: the default deferral (1 s) ends at the kernel's first SYN-ACK
    // retransmission, a second after connecting.
    let (mut http, state) = silent_connection(pier.http_addr(), Duration::ZERO).await;
    assert_eq!(state.as_deref(), Some(SYN_RECV), "HTTP listener");
    let (_https, state) = silent_connection(pier.https_addr(), Duration::ZERO).await;
    assert_eq!(state.as_deref(), Some(SYN_RECV), "HTTPS listener");

    // After a second without bytes the kernel hands it over; pier waits for the request.
    let client = http.local_addr().expect("client address");
    poll_until(Duration::from_secs(5), || async {
        match server_side_state(pier.http_addr(), client) {
            Some(state) if state == ESTABLISHED => Ok(()),
            other => Err(format!("server side {other:?}")),
        }
    })
    .await
    .expect("handed over once the deferral ends");
    http.write_all(b"GET / HTTP/1.1\r\nHost: deferred.example\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), http.read_to_end(&mut reply))
        .await
        .expect("answered in time")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("deferred"), "not the echo backend: {reply}");
}

#[tokio::test]
async fn with_defer_accept_0s_a_connection_is_handed_over_at_once() {
    let (pier, _echo) = start(&["--defer-accept", "0s"]).await;
    let moment = Duration::from_millis(200);
    let (_http, state) = silent_connection(pier.http_addr(), moment).await;
    assert_eq!(state.as_deref(), Some(ESTABLISHED), "HTTP listener");
    let (_https, state) = silent_connection(pier.https_addr(), moment).await;
    assert_eq!(state.as_deref(), Some(ESTABLISHED), "HTTPS listener");
}
