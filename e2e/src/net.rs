//! Loopback ports and polling.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0, read, released).
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// `N` different ports that were free on 127.0.0.1 a moment ago (held together while they
/// are chosen, so the system cannot hand out one of them twice).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"))
        })
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"))
            .port()
    })
}

/// A port that was free on `ip` a moment ago.
pub fn free_port_on(ip: Ipv4Addr) -> u16 {
    TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("cannot bind {ip}:0: {e}"))
        .port()
}

/// A port that was free on every one of `ips` a moment ago, so several backends can share one
/// EndpointSlice port. Panics after a few unlucky tries.
pub fn common_free_port(ips: &[Ipv4Addr]) -> u16 {
    for _ in 0..50 {
        let first = ips.first().copied().unwrap_or(Ipv4Addr::LOCALHOST);
        let port = free_port_on(first);
        let all_free = ips
            .iter()
            .all(|ip| TcpListener::bind(SocketAddr::new(IpAddr::V4(*ip), port)).is_ok());
        if all_free {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// Calls `check` every 50 ms until it returns `Ok`, for at most `within`.
///
/// Returns the first `Ok` value, or the last error message prefixed with how long it tried.
pub async fn poll_until<T, F, Fut>(within: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if started.elapsed() >= within {
            return Err(format!("still failing after {within:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until something accepts TCP connections on `addr`, for at most `within`.
pub async fn wait_connectable(addr: SocketAddr, within: Duration) -> Result<(), String> {
    poll_until(within, || async move {
        tokio::net::TcpStream::connect(addr)
            .await
            .map(drop)
            .map_err(|e| format!("connect {addr}: {e}"))
    })
    .await
}
