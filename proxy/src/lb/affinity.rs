//! Client stickiness: the affinity cookie and Service `sessionAffinity: ClientIP`.

use super::maglev::hash64;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many bindings a table holds before expired ones are swept.
const SWEEP_ABOVE: usize = 4096;

/// The cookie value naming an endpoint: a stable hash of its address, so the address is not
/// disclosed and every pier replica agrees.
pub fn cookie_token(addr: &SocketAddr) -> String {
    format!("{:016x}", hash64(addr.to_string().as_bytes(), 0xaff1))
}

/// The `Set-Cookie` value binding a client to an endpoint.
pub fn set_cookie(name: &str, token: &str, max_age: Option<u64>) -> String {
    match max_age {
        Some(age) => format!("{name}={token}; Path=/; HttpOnly; Max-Age={age}"),
        None => format!("{name}={token}; Path=/; HttpOnly"),
    }
}

/// Finds cookie `name` in the request's `Cookie` header values.
pub fn find_cookie<'a>(
    cookie_headers: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Option<&'a str> {
    for header in cookie_headers {
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name {
                    return Some(v.trim_matches('"'));
                }
            }
        }
    }
    None
}

/// Client IP → endpoint bindings that expire `timeout` after the client's last request.
#[derive(Debug)]
pub struct ClientIpTable {
    timeout: Duration,
    bindings: Mutex<HashMap<IpAddr, (SocketAddr, Instant)>>,
}

impl ClientIpTable {
    /// An empty table.
    pub fn new(timeout: Duration) -> ClientIpTable {
        ClientIpTable {
            timeout,
            bindings: Mutex::new(HashMap::new()),
        }
    }

    /// The binding idle timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The endpoint `ip` is bound to, if the binding is fresh and `usable` accepts it; refreshes
    /// the binding's clock.
    pub fn lookup(
        &self,
        ip: IpAddr,
        now: Instant,
        usable: impl Fn(&SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        let mut map = self.bindings.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.get_mut(&ip)?;
        if now.saturating_duration_since(entry.1) > self.timeout || !usable(&entry.0) {
            return None;
        }
        entry.1 = now;
        Some(entry.0)
    }

    /// Binds `ip` to `endpoint` from `now` on and returns it, unless another request of the
    /// same client bound it meanwhile (both found no binding) to an endpoint `usable` accepts:
    /// that binding stands and is returned, so concurrent first requests agree.
    pub fn bind(
        &self,
        ip: IpAddr,
        endpoint: SocketAddr,
        now: Instant,
        usable: impl Fn(&SocketAddr) -> bool,
    ) -> SocketAddr {
        let mut map = self.bindings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((bound, seen)) = map.get_mut(&ip) {
            if now.saturating_duration_since(*seen) <= self.timeout && usable(bound) {
                *seen = (*seen).max(now);
                return *bound;
            }
        }
        if map.len() >= SWEEP_ABOVE {
            let timeout = self.timeout;
            map.retain(|_, (_, seen)| now.saturating_duration_since(*seen) <= timeout);
        }
        map.insert(ip, (endpoint, now));
        endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let headers: Vec<&[u8]> = vec![b"a=1; pier-affinity=abc", b"x=\"q\""];
        assert_eq!(
            find_cookie(headers.iter().copied(), "pier-affinity"),
            Some("abc")
        );
        assert_eq!(find_cookie(headers.iter().copied(), "x"), Some("q"));
        assert_eq!(find_cookie(headers.iter().copied(), "b"), None);
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(cookie_token(&a), cookie_token(&a));
        assert_ne!(cookie_token(&a), cookie_token(&b));
        assert_eq!(
            set_cookie("c", "t", Some(60)),
            "c=t; Path=/; HttpOnly; Max-Age=60"
        );
    }

    #[test]
    fn client_ip_bindings_expire_after_idle_timeout() {
        let t = ClientIpTable::new(Duration::from_secs(10));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let ep: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(t.bind(ip, ep, t0, |_| true), ep);
        assert_eq!(
            t.lookup(ip, t0 + Duration::from_secs(8), |_| true),
            Some(ep)
        );
        // Refreshed at 8 s, so still bound at 16 s.
        assert_eq!(
            t.lookup(ip, t0 + Duration::from_secs(16), |_| true),
            Some(ep)
        );
        assert_eq!(t.lookup(ip, t0 + Duration::from_secs(40), |_| true), None);
        assert_eq!(
            t.lookup(ip, t0, |_| false),
            None,
            "unusable endpoint is not returned"
        );
    }

    #[test]
    fn the_first_binding_of_a_client_stands() {
        let t = ClientIpTable::new(Duration::from_secs(10));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        let t0 = Instant::now();
        // Two requests found no binding and picked different endpoints: the later one gets
        // the earlier one's.
        assert_eq!(t.bind(ip, a, t0, |_| true), a);
        assert_eq!(t.bind(ip, b, t0, |_| true), a);
        assert_eq!(t.lookup(ip, t0, |_| true), Some(a));
        // A binding to an endpoint no longer usable, or an expired one, is replaced.
        assert_eq!(t.bind(ip, b, t0, |e| *e != a), b);
        assert_eq!(t.bind(ip, a, t0 + Duration::from_secs(60), |_| true), a);
    }
}
