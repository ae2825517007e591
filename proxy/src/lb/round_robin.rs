//! Round-robin over a Service's routable endpoints.

use crate::table::ServiceBackend;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Picks endpoints of one Service port in turn.
#[derive(Debug)]
pub struct ServiceBalancer {
    /// `namespace/name:port`.
    pub id: Arc<str>,
    /// Why the Service cannot serve at all (missing Service or port); answered with 503.
    pub unavailable: Option<String>,
    endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl ServiceBalancer {
    /// Builds a balancer over the backend's routable endpoints (ready, else serving+terminating).
    pub fn new(backend: &ServiceBackend) -> ServiceBalancer {
        ServiceBalancer {
            id: backend.id.clone(),
            unavailable: backend.unavailable.clone(),
            endpoints: backend.routable_endpoints(),
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints this balancer picks from.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Picks the next endpoint, skipping those in `exclude` (endpoints that already failed for
    /// this request). `None` when no endpoint is left.
    pub fn pick(&self, exclude: &[SocketAddr]) -> Option<SocketAddr> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| self.endpoints[(start + i) % n])
            .find(|addr| !exclude.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Endpoint;

    fn backend(ports: &[u16]) -> ServiceBackend {
        ServiceBackend {
            id: Arc::from("ns/svc:80"),
            weight: 1,
            endpoints: ports
                .iter()
                .map(|p| Endpoint {
                    address: SocketAddr::from(([127, 0, 0, 1], *p)),
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect(),
            unavailable: None,
        }
    }

    #[test]
    fn spreads_evenly() {
        let b = ServiceBalancer::new(&backend(&[1, 2, 3]));
        let mut counts = std::collections::HashMap::new();
        for _ in 0..300 {
            *counts.entry(b.pick(&[]).unwrap().port()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|c| *c == 100), "{counts:?}");
    }

    #[test]
    fn skips_excluded_endpoints() {
        let b = ServiceBalancer::new(&backend(&[1, 2]));
        let failed = SocketAddr::from(([127, 0, 0, 1], 1));
        for _ in 0..10 {
            assert_eq!(b.pick(&[failed]).unwrap().port(), 2);
        }
        let both = [failed, SocketAddr::from(([127, 0, 0, 1], 2))];
        assert_eq!(b.pick(&both), None);
    }
}
