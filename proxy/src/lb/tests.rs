//! Behaviour of `ServiceBalancer` across policies, with fixed seeds.

use super::*;
use crate::table::Endpoint;
use crate::table::HashKey;
use http::HeaderMap;
use std::net::IpAddr;
use std::time::Duration;

fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| Endpoint {
            address: SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)),
            weight: *w,
            ready: true,
            serving: true,
            terminating: false,
        })
        .collect()
}

fn backend(weights: &[u32], policy: LbPolicy) -> ServiceBackend {
    ServiceBackend {
        id: Arc::from("ns/svc:80"),
        weight: 100,
        endpoints: endpoints(weights).into(),
        unavailable: None,
        policy,
    }
}

fn balancer(weights: &[u32], policy: LbPolicy) -> ServiceBalancer {
    let registry = EndpointRegistry::default();
    let mut b = EndpointRegistry::next_generation(&registry);
    ServiceBalancer::new(&backend(weights, policy), &mut b)
}

fn policy(algorithm: Algorithm) -> LbPolicy {
    LbPolicy {
        algorithm,
        ..LbPolicy::default()
    }
}

struct Req {
    headers: HeaderMap,
    ip: Option<IpAddr>,
    path: String,
}

impl Req {
    fn new() -> Req {
        Req {
            headers: HeaderMap::new(),
            ip: Some("192.0.2.7".parse().unwrap()),
            path: "/".into(),
        }
    }
    fn header(mut self, k: &'static str, v: &str) -> Req {
        self.headers.insert(k, v.parse().unwrap());
        self
    }
    fn ctx(&self) -> PickContext<'_> {
        PickContext {
            client_ip: self.ip,
            headers: (&self.headers).into(),
            path: &self.path,
            query: None,
        }
    }
}

fn count(
    b: &ServiceBalancer,
    req: &Req,
    n: usize,
    rng: &mut fastrand::Rng,
) -> HashMap<SocketAddr, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts
            .entry(b.pick(&req.ctx(), &[], rng).unwrap().address)
            .or_default() += 1;
    }
    counts
}

#[test]
fn every_policy_honours_weights_within_five_percent() {
    let algorithms = [
        Algorithm::RoundRobin,
        Algorithm::LeastRequest,
        Algorithm::Random,
    ];
    for algorithm in algorithms {
        let b = balancer(&[1, 3], policy(algorithm.clone()));
        let mut rng = fastrand::Rng::with_seed(3);
        let counts = count(&b, &Req::new(), 500, &mut rng);
        let heavy = counts[&SocketAddr::from(([10, 0, 0, 2], 80))] as f64 / 500.0;
        assert!((heavy - 0.75).abs() <= 0.05, "{algorithm:?}: share {heavy}");
    }
}

#[test]
fn zero_weight_gets_nothing() {
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::LeastRequest,
        Algorithm::Random,
    ] {
        let b = balancer(&[0, 1], policy(algorithm.clone()));
        let counts = count(&b, &Req::new(), 100, &mut fastrand::Rng::with_seed(1));
        assert_eq!(counts.len(), 1, "{algorithm:?}");
    }
}

#[test]
fn consistent_hash_keeps_a_key_on_one_endpoint_and_spreads_keys() {
    let b = balancer(
        &[1; 5],
        policy(Algorithm::ConsistentHash {
            key: HashKey::Header("x-user".into()),
            balance_factor: None,
        }),
    );
    let mut rng = fastrand::Rng::with_seed(1);
    let mut owners = std::collections::HashSet::new();
    for user in 0..50 {
        let req = Req::new().header("x-user", &format!("user-{user}"));
        let counts = count(&b, &req, 20, &mut rng);
        assert_eq!(counts.len(), 1, "user-{user} moved between endpoints");
        owners.extend(counts.keys().copied());
    }
    assert_eq!(owners.len(), 5, "50 keys should reach all 5 endpoints");
    // Without the key: round-robin.
    assert_eq!(count(&b, &Req::new(), 50, &mut rng).len(), 5);
}

#[test]
fn bounded_load_never_exceeds_the_cap() {
    let b = balancer(
        &[1; 4],
        policy(Algorithm::ConsistentHash {
            key: HashKey::Header("x-key".into()),
            balance_factor: Some(125),
        }),
    );
    let mut rng = fastrand::Rng::with_seed(9);
    let req = Req::new().header("x-key", "hot");
    // One hot key, 40 concurrent requests held open: no endpoint above 1.25 × mean.
    let guards: Vec<Pick> = (0..40)
        .map(|_| b.pick(&req.ctx(), &[], &mut rng).unwrap())
        .collect();
    for (addr, in_flight) in b.in_flight() {
        assert!(
            in_flight as f64 <= (1.25f64 * 10.0).ceil(),
            "{addr}: {in_flight}"
        );
    }
    drop(guards);
    assert!(b.in_flight().iter().all(|(_, n)| *n == 0));
}

#[test]
fn excluded_endpoints_are_never_picked() {
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::LeastRequest,
        Algorithm::Random,
        Algorithm::ConsistentHash {
            key: HashKey::Path,
            balance_factor: None,
        },
    ] {
        let b = balancer(&[1, 1, 1], policy(algorithm.clone()));
        let bad = [
            SocketAddr::from(([10, 0, 0, 1], 80)),
            SocketAddr::from(([10, 0, 0, 3], 80)),
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..30 {
            let p = b.pick(&Req::new().ctx(), &bad, &mut rng).unwrap();
            assert_eq!(
                p.address,
                SocketAddr::from(([10, 0, 0, 2], 80)),
                "{algorithm:?}"
            );
        }
    }
}

#[test]
fn cookie_affinity_sets_then_honours_the_cookie() {
    let b = balancer(
        &[1, 1, 1],
        LbPolicy {
            affinity: Some(Affinity::Cookie {
                name: "pier-affinity".into(),
                max_age: Some(60),
            }),
            ..LbPolicy::default()
        },
    );
    let mut rng = fastrand::Rng::with_seed(1);
    let first = b.pick(&Req::new().ctx(), &[], &mut rng).unwrap();
    let cookie = first
        .set_cookie
        .clone()
        .expect("a new client gets a cookie");
    assert!(
        cookie.starts_with("pier-affinity=")
            && cookie.contains("HttpOnly")
            && cookie.contains("Max-Age=60")
    );
    let value = cookie.split(';').next().unwrap().to_string();
    let req = Req::new().header("cookie", &value);
    for _ in 0..20 {
        let p = b.pick(&req.ctx(), &[], &mut rng).unwrap();
        assert_eq!(p.address, first.address);
        assert!(p.set_cookie.is_none());
    }
    // The bound endpoint failed: another one is chosen and a new cookie is set.
    let p = b.pick(&req.ctx(), &[first.address], &mut rng).unwrap();
    assert_ne!(p.address, first.address);
    assert!(p.set_cookie.is_some());
}

#[test]
fn client_ip_affinity_sticks_per_client() {
    let b = balancer(
        &[1, 1, 1],
        LbPolicy {
            affinity: Some(Affinity::ClientIp {
                timeout: Duration::from_secs(10800),
            }),
            ..LbPolicy::default()
        },
    );
    let mut rng = fastrand::Rng::with_seed(1);
    let mut owners = std::collections::HashSet::new();
    for client in 1..=9u8 {
        let mut req = Req::new();
        req.ip = Some(IpAddr::from([192, 0, 2, client]));
        let counts = count(&b, &req, 10, &mut rng);
        assert_eq!(counts.len(), 1, "client {client} moved");
        owners.extend(counts.keys().copied());
    }
    assert!(
        owners.len() > 1,
        "clients should not all share one endpoint"
    );
}

#[test]
fn slow_start_ramps_a_new_endpoint() {
    let window = Duration::from_secs(30);
    let p = LbPolicy {
        slow_start: Some(window),
        ..LbPolicy::default()
    };
    let gen0 = EndpointRegistry::default();
    let mut b = EndpointRegistry::next_generation(&gen0);
    let _old = ServiceBalancer::new(&backend(&[1], p.clone()), &mut b);
    let gen1 = b.finish();
    // A second endpoint joins the existing Service: it starts at 10 % of its weight.
    let mut b = EndpointRegistry::next_generation(&gen1);
    let ramped = ServiceBalancer::new(&backend(&[1, 1], p), &mut b);
    let counts = count(&ramped, &Req::new(), 1100, &mut fastrand::Rng::with_seed(1));
    let new = counts
        .get(&SocketAddr::from(([10, 0, 0, 2], 80)))
        .copied()
        .unwrap_or(0);
    assert!(
        (80..=120).contains(&new),
        "new endpoint got {new} of 1100 (expected ~100)"
    );
}

#[test]
fn in_flight_is_released_when_the_pick_is_dropped() {
    let b = balancer(&[1, 1], policy(Algorithm::LeastRequest));
    let mut rng = fastrand::Rng::with_seed(2);
    let held = b.pick(&Req::new().ctx(), &[], &mut rng).unwrap();
    // With one request held, the other endpoint wins every comparison.
    for _ in 0..10 {
        let p = b.pick(&Req::new().ctx(), &[], &mut rng).unwrap();
        assert_ne!(p.address, held.address);
    }
    drop(held);
    assert!(b.in_flight().iter().all(|(_, n)| *n == 0));
}
