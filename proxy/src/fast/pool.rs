//! Idle upstream connections kept for reuse, one pool per worker thread: taking and returning
//! a connection touches no lock and spawns no task. A connection is checked when it is taken
//! (the endpoint may have closed it while idle) and dropped once idle for too long.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long an idle connection is kept (endpoints commonly close theirs after 60–75 s).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per endpoint and worker thread.
const MAX_IDLE_PER_ENDPOINT: usize = 128;
/// How often a pool looks for connections that closed or timed out while idle.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: crate::FastMap<SocketAddr, Vec<Idle>>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Takes an idle connection to `addr` that still looks open, most recently used first.
pub(super) fn take(addr: SocketAddr, now: Instant) -> Option<TcpStream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.idle.get_mut(&addr)?;
        while let Some(conn) = idle.pop() {
            if now.duration_since(conn.since) < IDLE_TIMEOUT && looks_open(&conn.stream) {
                return Some(conn.stream);
            }
        }
        None
    })
}

/// Returns a connection whose last exchange completed cleanly (at `now`).
pub(super) fn put(addr: SocketAddr, stream: TcpStream, now: Instant) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            pool.last_sweep = Some(now);
            sweep(&mut pool.idle, now);
        }
        let idle = pool.idle.entry(addr).or_default();
        if idle.len() >= MAX_IDLE_PER_ENDPOINT {
            // Keep the most recently used ones: the oldest is the likeliest to time out.
            idle.remove(0);
        }
        idle.push(Idle { stream, since: now });
    });
}

/// Idle connections to `addr` on this thread (for tests and debugging).
#[cfg(test)]
pub(super) fn idle_count(addr: SocketAddr) -> usize {
    POOL.with(|pool| pool.borrow().idle.get(&addr).map_or(0, Vec::len))
}

/// Drops connections that timed out or closed while idle, and empty entries.
fn sweep(idle: &mut crate::FastMap<SocketAddr, Vec<Idle>>, now: Instant) {
    idle.retain(|_, conns| {
        conns.retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT && looks_open(&c.stream));
        !conns.is_empty()
    });
}

/// An idle connection must have nothing to read: end-of-file means the endpoint closed it,
/// and bytes nobody asked for mean it is out of step. Neither blocks nor consumes anything
/// that matters (a connection with data is dropped anyway).
fn looks_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    #[tokio::test]
    async fn reuses_open_connections_and_drops_closed_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, _open_server) = pair(&listener).await;
        let (closed, closed_server) = pair(&listener).await;
        let (chatty, mut chatty_server) = pair(&listener).await;
        let now = Instant::now();
        put(addr, open, now);
        put(addr, closed, now);
        put(addr, chatty, now);
        drop(closed_server);
        chatty_server.write_all(b"surprise").await.unwrap();
        // Let the reactor see the FIN and the unexpected bytes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let taken = take(addr, Instant::now()).expect("the open connection is reused");
        assert!(looks_open(&taken));
        assert!(
            take(addr, Instant::now()).is_none(),
            "closed and out-of-step connections are dropped"
        );
        assert_eq!(idle_count(addr), 0);
    }

    #[tokio::test]
    async fn keeps_a_bounded_number_per_endpoint() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut servers = Vec::new();
        for _ in 0..MAX_IDLE_PER_ENDPOINT + 3 {
            let (c, s) = pair(&listener).await;
            servers.push(s);
            put(addr, c, Instant::now());
        }
        assert_eq!(idle_count(addr), MAX_IDLE_PER_ENDPOINT);
    }
}
