//! Compiling a table against the previous router: shared virtual hosts are reused as they
//! are, changed ones are compiled anew, and every balancer that keeps its Service (whatever
//! its policy) is carried over with the state it keeps in the registry.

use super::*;
use crate::lb::{EndpointRegistry, PickContext};
use crate::table::{
    ActiveCheck, Affinity, Algorithm, Endpoint, HashKey, HostMatch, LbPolicy, PathMatch, Route,
    ServiceBackend, VirtualHost,
};
use http::HeaderMap;
use std::net::SocketAddr;
use std::time::Duration;

fn endpoints(ports: &[u16]) -> Arc<[Endpoint]> {
    ports
        .iter()
        .map(|p| Endpoint {
            address: SocketAddr::from(([127, 0, 0, 1], *p)),
            weight: 1,
            ready: true,
            serving: true,
            terminating: false,
        })
        .collect()
}

fn vhost(host: &str, service: &str, endpoints: &Arc<[Endpoint]>, policy: &LbPolicy) -> VirtualHost {
    let backend = ServiceBackend {
        id: Arc::from(service),
        weight: 100,
        endpoints: endpoints.clone(),
        unavailable: None,
        policy: policy.clone(),
    };
    VirtualHost {
        host: HostMatch::from_rule_host(host),
        routes: vec![Route {
            path: PathMatch::prefix("/"),
            backend: BackendGroup {
                services: vec![backend],
                canary: None,
            },
            source: Arc::from("ns/ing"),
        }],
        default_backend: None,
    }
}

/// Routers compiled one after the other, each from the previous, with their registry.
struct Compiler {
    registry: EndpointRegistry,
    router: Router,
}

impl Compiler {
    fn new() -> Compiler {
        Compiler {
            registry: EndpointRegistry::default(),
            router: Router::default(),
        }
    }

    fn compile(&mut self, hosts: Vec<Arc<VirtualHost>>) {
        let table = RoutingTable {
            virtual_hosts: hosts,
            ..RoutingTable::default()
        };
        let mut next = EndpointRegistry::next_generation(&self.registry);
        self.router = Router::compile(Arc::new(table), &mut next, &self.router);
        self.registry = next.finish();
    }

    fn target(&self, host: &str) -> &RouteTarget {
        self.router.route(host, "/").expect("routed")
    }

    fn addresses(&self, host: &str) -> Vec<u16> {
        let target = self.target(host);
        let headers = HeaderMap::new();
        let req = PickContext {
            client_ip: None,
            headers: (&headers).into(),
            path: "/",
            query: None,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let balancer = target.group.pick_service(&req, &mut rng).expect("service");
        balancer.in_flight().iter().map(|(a, _)| a.port()).collect()
    }
}

#[test]
fn shared_hosts_are_reused_and_changed_ones_recompiled() {
    let policy = LbPolicy::default();
    let a = Arc::new(vhost("a.com", "ns/a:80", &endpoints(&[1, 2]), &policy));
    let b = Arc::new(vhost("b.com", "ns/b:80", &endpoints(&[3]), &policy));
    let mut c = Compiler::new();
    c.compile(vec![a.clone(), b.clone()]);
    let (a_group, b_group) = (
        c.target("a.com").group.clone(),
        c.target("b.com").group.clone(),
    );

    // b's Service gains an endpoint: a new virtual host; a's is shared.
    let b2 = Arc::new(vhost("b.com", "ns/b:80", &endpoints(&[3, 4]), &policy));
    c.compile(vec![a.clone(), b2]);
    assert!(Arc::ptr_eq(&c.target("a.com").group, &a_group));
    assert!(!Arc::ptr_eq(&c.target("b.com").group, &b_group));
    assert_eq!(c.addresses("b.com"), vec![3, 4]);
    assert_eq!(c.addresses("a.com"), vec![1, 2]);
    // Every endpoint of the table is in the registry, reused host or not.
    assert_eq!(c.registry.states().count(), 4);

    // An equal host that is a new allocation is compiled anew but keeps its balancer.
    let a_copy = Arc::new((*a).clone());
    let balancer = c
        .router
        .balancers()
        .into_iter()
        .find(|x| &*x.id == "ns/a:80");
    c.compile(vec![a_copy]);
    assert!(!Arc::ptr_eq(&c.target("a.com").group, &a_group));
    let again = c
        .router
        .balancers()
        .into_iter()
        .find(|x| &*x.id == "ns/a:80");
    assert!(Arc::ptr_eq(&balancer.expect("a"), &again.expect("a")));
    assert!(c.router.route("b.com", "/").is_none());
    assert_eq!(
        c.registry.states().count(),
        2,
        "b's endpoints are forgotten"
    );
}

#[test]
fn a_host_sharing_a_service_with_a_changed_host_gets_the_same_balancer() {
    let policy = LbPolicy::default();
    let list = endpoints(&[1]);
    let a = Arc::new(vhost("a.com", "ns/s:80", &list, &policy));
    let b = Arc::new(vhost("b.com", "ns/s:80", &list, &policy));
    let mut c = Compiler::new();
    c.compile(vec![a.clone(), b]);
    // b is replaced by an equal host (compiled anew); a is reused: one balancer for both.
    let b2 = Arc::new(vhost("b.com", "ns/s:80", &list, &policy));
    c.compile(vec![a, b2]);
    let of = |host: &str| c.target(host).group.services[0].1.clone();
    assert!(Arc::ptr_eq(&of("a.com"), &of("b.com")));
    assert_eq!(c.router.balancers().len(), 1);
}

#[test]
fn balancers_with_registry_state_are_carried_over() {
    let checked = LbPolicy {
        algorithm: Algorithm::ConsistentHash {
            key: HashKey::Path,
            balance_factor: None,
        },
        health: crate::table::HealthPolicy {
            active: Some(ActiveCheck {
                path: Some("/hz".into()),
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(1),
                healthy_threshold: 1,
                unhealthy_threshold: 2,
            }),
            ..Default::default()
        },
        ..LbPolicy::default()
    };
    let sticky = LbPolicy {
        affinity: Some(Affinity::ClientIp {
            timeout: Duration::from_secs(60),
        }),
        ..LbPolicy::default()
    };
    let a = Arc::new(vhost("a.com", "ns/a:80", &endpoints(&[1, 2]), &checked));
    let b = Arc::new(vhost("b.com", "ns/b:80", &endpoints(&[3]), &sticky));
    let mut c = Compiler::new();
    c.compile(vec![a.clone(), b.clone()]);
    let before = c.router.balancers();
    // A third host changes the table; a and b are reused, then compiled anew from copies.
    let other = Arc::new(vhost(
        "c.com",
        "ns/c:80",
        &endpoints(&[5]),
        &LbPolicy::default(),
    ));
    c.compile(vec![a.clone(), b.clone(), other]);
    c.compile(vec![Arc::new((*a).clone()), Arc::new((*b).clone())]);
    for balancer in before {
        let now = c
            .router
            .balancers()
            .into_iter()
            .find(|x| x.id == balancer.id);
        assert!(
            Arc::ptr_eq(&balancer, &now.expect("still there")),
            "{}",
            balancer.id
        );
    }
    // The checked Service's endpoints are still handed to the health checker.
    let checked_targets = c.registry.check_targets();
    assert_eq!(checked_targets.len(), 2);
    assert!(checked_targets.iter().all(|t| &*t.service == "ns/a:80"));
    assert_eq!(c.addresses("a.com"), vec![1, 2]);
}

#[test]
fn a_reused_host_never_keeps_a_balancer_the_table_replaced() {
    // Not what translate() produces (one endpoint list per Service), but a router must
    // behave like a fresh one for any table: the first route's balancer serves the Service.
    let policy = LbPolicy::default();
    let b = Arc::new(vhost("b.com", "ns/s:80", &endpoints(&[1]), &policy));
    let mut c = Compiler::new();
    c.compile(vec![
        Arc::new(vhost("a.com", "ns/s:80", &endpoints(&[1]), &policy)),
        b.clone(),
    ]);
    c.compile(vec![
        Arc::new(vhost("a.com", "ns/s:80", &endpoints(&[2]), &policy)),
        b,
    ]);
    assert_eq!(c.addresses("a.com"), vec![2]);
    assert_eq!(c.addresses("b.com"), vec![2]);
    assert_eq!(c.router.balancers().len(), 1);
}
