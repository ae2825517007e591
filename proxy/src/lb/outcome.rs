//! Outcomes of real requests fed to passive health, and the per-endpoint debug view.

use super::{EndpointState, LbEndpoint, RegistryBuilder, ServiceBalancer, ServiceStatesBuilder};
use crate::health::{metrics, passive, CheckTarget, HealthView};
use crate::table::{LbPolicy, ServiceBackend};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// Which endpoints one selection may use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Healthy by checks and not ejected (the normal case).
    Healthy,
    /// Every routable endpoint (panic mode: none is healthy).
    Panic,
}

/// Appends the draining endpoints (terminating, still serving, not routable) when the
/// Service has affinity: the clients bound to them keep reaching them while they serve.
pub(super) fn add_draining(
    backend: &ServiceBackend,
    endpoints: &mut Vec<LbEndpoint>,
    states: &mut ServiceStatesBuilder<'_>,
    now: std::time::Instant,
) {
    if backend.policy.affinity.is_none() {
        return;
    }
    let routable = backend.routable_filter();
    let draining = backend
        .endpoints
        .iter()
        .filter(|e| e.serving && e.terminating && !routable(e));
    for e in draining {
        endpoints.push(LbEndpoint {
            address: e.address,
            weight: e.weight,
            state: states.state(e, now),
        });
    }
}

/// Hands the routable endpoints of Service `id` to the health-check scheduler when its
/// policy has checks.
pub(super) fn register_checks(
    id: &Arc<str>,
    policy: &LbPolicy,
    routable: &[LbEndpoint],
    registry: &mut RegistryBuilder<'_>,
) {
    let Some(check) = &policy.health.active else {
        return;
    };
    for e in routable {
        registry.check(CheckTarget {
            service: id.clone(),
            address: e.address,
            check: check.clone(),
            state: e.state.clone(),
        });
    }
}

/// One endpoint of a balancer as `/debug/routes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// Where it listens.
    pub address: SocketAddr,
    /// Requests in flight.
    pub in_flight: u64,
    /// Terminating but still serving requests bound by affinity.
    pub draining: bool,
    /// Whether new requests may go there now (healthy and not ejected).
    pub routable: bool,
    /// Checks and ejection.
    pub health: HealthView,
}

impl ServiceBalancer {
    /// The Service's policy (timeouts, retries, health).
    pub fn policy(&self) -> &LbPolicy {
        &self.policy
    }

    /// Feeds an answer's status to the passive health of `state` at `address`: 5xx is a
    /// failure, anything else a success.
    pub fn record_answer(&self, state: &EndpointState, address: SocketAddr, code: u16) {
        if code >= 500 {
            self.record_failure(state, address);
        } else {
            self.record_success(state, address);
        }
    }

    /// Whether the retry budget allows another attempt after `tried` (`retries` extra
    /// attempts after the first) and an endpoint not in `tried` is left.
    pub fn may_retry(&self, tried: &[SocketAddr]) -> bool {
        tried.len() <= self.policy.upstream.retries as usize && self.has_untried(tried)
    }

    /// A request to `state` at `address` got an answer below 500.
    pub fn record_success(&self, state: &EndpointState, address: SocketAddr) {
        if let Some(change) = state.health.passive.success(Instant::now()) {
            metrics().report(&self.id, address, change);
        }
    }

    /// A request to `state` at `address` failed (connect error, 5xx, broken connection);
    /// may eject it, within the Service's `max_ejection_percent`.
    pub fn record_failure(&self, state: &EndpointState, address: SocketAddr) {
        let outlier = &self.policy.health.outlier;
        let now = Instant::now();
        let may_eject = || {
            // Scans the Service, but only when an endpoint reaches the failure threshold.
            let routable = &self.endpoints[..self.routable];
            let ejected = routable
                .iter()
                .filter(|e| e.state.health.passive.is_ejected(now))
                .count();
            passive::within_cap(ejected, routable.len(), outlier.max_ejection_percent)
        };
        if let Some(change) = state.health.passive.failure(outlier, now, may_eject) {
            metrics().report(&self.id, address, change);
        }
    }

    /// Every endpoint with its live state.
    pub fn endpoint_views(&self) -> Vec<EndpointView> {
        let checked = self.policy.health.active.is_some();
        let now = Instant::now();
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| EndpointView {
                address: e.address,
                in_flight: e.state.in_flight(),
                draining: i >= self.routable,
                routable: i < self.routable && e.state.health.routable(checked, now),
                health: e.state.health.view(checked, now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{affinity, EndpointRegistry, PickContext};
    use super::*;
    use crate::table::{ActiveCheck, Affinity, Endpoint, ServiceBackend};
    use http::HeaderMap;
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    fn ep(i: u8, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            address: SocketAddr::from(([10, 0, 0, i], 80)),
            weight: 1,
            ready,
            serving: true,
            terminating,
        }
    }

    fn balancer(endpoints: Vec<Endpoint>, policy: LbPolicy) -> ServiceBalancer {
        let backend = ServiceBackend {
            id: Arc::from("ns/health:80"),
            weight: 1,
            endpoints: endpoints.into(),
            unavailable: None,
            policy,
        };
        let registry = EndpointRegistry::default();
        let mut b = EndpointRegistry::next_generation(&registry);
        ServiceBalancer::new(&backend, &mut b)
    }

    fn picked(b: &ServiceBalancer, headers: &HeaderMap, n: usize) -> HashSet<SocketAddr> {
        let ctx = PickContext {
            client_ip: None,
            headers: headers.into(),
            path: "/",
            query: None,
        };
        let mut rng = fastrand::Rng::with_seed(3);
        (0..n)
            .filter_map(|_| b.pick(&ctx, &[], &mut rng).map(|p| p.address))
            .collect()
    }

    fn fail(b: &ServiceBalancer, i: usize, times: u32) {
        let e = &b.endpoints[i];
        for _ in 0..times {
            b.record_failure(&e.state, e.address);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ejected_endpoints_are_skipped_within_the_cap_and_return() {
        let b = balancer(
            vec![ep(1, true, false), ep(2, true, false), ep(3, true, false)],
            LbPolicy::default(),
        );
        let none = HeaderMap::new();
        fail(&b, 0, 4);
        assert_eq!(picked(&b, &none, 30).len(), 3, "below the threshold");
        fail(&b, 0, 1);
        assert!(!picked(&b, &none, 30).contains(&b.endpoints[0].address));
        // 50 % of 3: a second ejection would exceed the cap.
        fail(&b, 1, 10);
        assert_eq!(picked(&b, &none, 30).len(), 2);
        let views = b.endpoint_views();
        assert!(views[0].health.ejected_for_ms.is_some() && !views[0].routable);
        assert!(views[1].health.ejected_for_ms.is_none());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(picked(&b, &none, 30).len(), 3, "the ejection ends");
    }

    #[tokio::test(start_paused = true)]
    async fn panic_mode_fails_open_when_nothing_is_healthy() {
        let mut policy = LbPolicy::default();
        policy.health.active = Some(ActiveCheck {
            path: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        });
        policy.health.outlier.max_ejection_percent = 100;
        let b = balancer(vec![ep(1, true, false), ep(2, true, false)], policy);
        let none = HeaderMap::new();
        let check = b.policy.health.active.clone().expect("check");
        // Unchecked endpoints are not healthy: panic mode balances over all of them.
        assert_eq!(picked(&b, &none, 20).len(), 2);
        b.endpoints[1].state.health.active.record(true, &check);
        assert_eq!(
            picked(&b, &none, 20),
            HashSet::from([b.endpoints[1].address]),
            "checked endpoints first"
        );
        fail(&b, 1, 5);
        assert_eq!(picked(&b, &none, 20).len(), 2, "ejected too: panic again");
    }

    #[tokio::test(start_paused = true)]
    async fn draining_endpoints_keep_only_their_bound_clients() {
        let policy = LbPolicy {
            affinity: Some(Affinity::Cookie {
                name: "a".into(),
                max_age: None,
            }),
            ..LbPolicy::default()
        };
        let b = balancer(vec![ep(1, true, false), ep(2, false, true)], policy);
        assert!(b.has_endpoints());
        let none = HeaderMap::new();
        let draining = SocketAddr::from(([10, 0, 0, 2], 80));
        assert_eq!(
            picked(&b, &none, 20),
            HashSet::from([SocketAddr::from(([10, 0, 0, 1], 80))])
        );
        let mut bound = HeaderMap::new();
        let cookie = format!("a={}", affinity::cookie_token(&draining));
        bound.insert(http::header::COOKIE, cookie.parse().expect("cookie"));
        assert_eq!(picked(&b, &bound, 5), HashSet::from([draining]));
        assert!(b.endpoint_views()[1].draining);
        assert!(!b.has_untried(&[SocketAddr::from(([10, 0, 0, 1], 80))]));
    }
}
