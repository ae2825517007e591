use super::*;
use crate::lb::EndpointRegistry;
use crate::table::{Endpoint, HostMatch, LbPolicy, PathMatch, Route, ServiceBackend, VirtualHost};
use http::HeaderMap;
use std::net::SocketAddr;

fn group(name: &str) -> BackendGroup {
    BackendGroup {
        services: vec![ServiceBackend {
            id: Arc::from(name),
            weight: 100,
            endpoints: Arc::from([Endpoint {
                address: SocketAddr::from(([127, 0, 0, 1], 80)),
                weight: 1,
                ready: true,
                serving: true,
                terminating: false,
            }]),
            unavailable: None,
            policy: LbPolicy::default(),
        }],
        canary: None,
    }
}

fn route(path: PathMatch, name: &str) -> Route {
    Route {
        path,
        backend: group(name),
        source: format!("ns/{name}").into(),
    }
}

fn vhost(host: &str, routes: Vec<Route>) -> Arc<VirtualHost> {
    Arc::new(VirtualHost {
        host: HostMatch::from_rule_host(host),
        routes,
        default_backend: None,
    })
}

/// The service id a request is routed to, or `None` for 404.
fn target(router: &Router, host: &str, path: &str) -> Option<String> {
    let headers = HeaderMap::new();
    let req = PickContext {
        client_ip: None,
        headers: (&headers).into(),
        path,
        query: None,
    };
    let mut rng = fastrand::Rng::with_seed(1);
    router
        .route(host, path)
        .and_then(|t| t.group.pick_service(&req, &mut rng))
        .map(|s| s.id.to_string())
}

fn router(vhosts: Vec<Arc<VirtualHost>>, default: Option<BackendGroup>) -> Router {
    let registry = EndpointRegistry::default();
    let mut next = EndpointRegistry::next_generation(&registry);
    let table = RoutingTable {
        virtual_hosts: vhosts,
        default_backend: default,
        ..RoutingTable::default()
    };
    Router::new(Arc::new(table), &mut next)
}

#[test]
fn longest_prefix_wins_and_exact_beats_prefix_on_a_tie() {
    let r = router(
        vec![vhost(
            "foo.com",
            vec![
                route(PathMatch::prefix("/"), "root"),
                route(PathMatch::prefix("/api"), "api"),
                route(PathMatch::prefix("/api/v2/"), "v2"),
                route(PathMatch::exact("/api"), "api-exact"),
                route(PathMatch::exact("/api/v2/x"), "x-exact"),
            ],
        )],
        None,
    );
    let t = |p: &str| target(&r, "foo.com", p);
    assert_eq!(t("/").as_deref(), Some("root"));
    assert_eq!(t("/apix").as_deref(), Some("root"));
    assert_eq!(t("/api").as_deref(), Some("api-exact"));
    assert_eq!(t("/api/").as_deref(), Some("api"));
    assert_eq!(t("/api/v1").as_deref(), Some("api"));
    assert_eq!(t("/api/v2").as_deref(), Some("v2"));
    assert_eq!(t("/api/v2/y/z").as_deref(), Some("v2"));
    assert_eq!(t("/api/v2/x").as_deref(), Some("x-exact"));
    assert_eq!(t("/api/v2/x/").as_deref(), Some("v2"));
}

#[test]
fn prefix_is_element_wise() {
    let r = router(
        vec![vhost("", vec![route(PathMatch::prefix("/foo"), "foo")])],
        None,
    );
    assert_eq!(target(&r, "a", "/foo").as_deref(), Some("foo"));
    assert_eq!(target(&r, "a", "/foo/").as_deref(), Some("foo"));
    assert_eq!(target(&r, "a", "/foo/bar").as_deref(), Some("foo"));
    assert_eq!(target(&r, "a", "/foo//").as_deref(), Some("foo"));
    assert_eq!(target(&r, "a", "/foobar"), None);
    assert_eq!(target(&r, "a", "/"), None);
    assert_eq!(target(&r, "a", "/FOO"), None);
}

#[test]
fn exact_host_beats_wildcard_beats_any() {
    let r = router(
        vec![
            vhost("*.foo.com", vec![route(PathMatch::prefix("/"), "wild")]),
            vhost("bar.foo.com", vec![route(PathMatch::prefix("/"), "exact")]),
            vhost("", vec![route(PathMatch::prefix("/"), "any")]),
        ],
        None,
    );
    assert_eq!(target(&r, "bar.foo.com", "/").as_deref(), Some("exact"));
    assert_eq!(
        target(&r, "BAR.Foo.com:8080", "/").as_deref(),
        Some("exact")
    );
    assert_eq!(target(&r, "baz.foo.com", "/").as_deref(), Some("wild"));
    assert_eq!(target(&r, "a.baz.foo.com", "/").as_deref(), Some("any"));
    assert_eq!(target(&r, "foo.com", "/").as_deref(), Some("any"));
    assert_eq!(target(&r, "other.org", "/").as_deref(), Some("any"));
}

#[test]
fn matched_host_without_matching_path_uses_defaults_not_other_hosts() {
    let mut with_default = vhost("a.com", vec![route(PathMatch::prefix("/api"), "api")]);
    Arc::make_mut(&mut with_default).default_backend = Some(group("host-default"));
    let r = router(
        vec![
            with_default,
            vhost("b.com", vec![route(PathMatch::prefix("/api"), "b-api")]),
            vhost("", vec![route(PathMatch::prefix("/"), "any")]),
        ],
        Some(group("global")),
    );
    assert_eq!(target(&r, "a.com", "/x").as_deref(), Some("host-default"));
    assert_eq!(target(&r, "b.com", "/x").as_deref(), Some("global"));
    let no_global = router(
        vec![vhost("b.com", vec![route(PathMatch::prefix("/api"), "b")])],
        None,
    );
    assert_eq!(target(&no_global, "b.com", "/x"), None);
    assert_eq!(target(&no_global, "c.com", "/api"), None);
}

#[test]
fn unmatched_host_falls_back_to_global_default() {
    let r = router(
        vec![vhost("a.com", vec![route(PathMatch::prefix("/"), "a")])],
        Some(group("global")),
    );
    assert_eq!(target(&r, "z.com", "/").as_deref(), Some("global"));
}

#[test]
fn many_hosts_route_correctly() {
    let vhosts = (0..5000)
        .map(|i| {
            vhost(
                &format!("h{i}.example.com"),
                vec![route(PathMatch::prefix("/"), &format!("svc{i}"))],
            )
        })
        .collect();
    let r = router(vhosts, None);
    for i in [0, 17, 4999] {
        let want = format!("svc{i}");
        let host = format!("h{i}.example.com");
        assert_eq!(target(&r, &host, "/x").as_deref(), Some(want.as_str()));
    }
}

#[test]
fn weighted_group_splits_by_weight() {
    let mut g = group("a");
    g.services[0].weight = 3;
    g.services.push(group("b").services.remove(0));
    g.services[1].weight = 1;
    let r = router(
        vec![vhost(
            "",
            vec![Route {
                path: PathMatch::prefix("/"),
                backend: g,
                source: "ns/x".into(),
            }],
        )],
        None,
    );
    let mut a = 0;
    for _ in 0..400 {
        if target(&r, "h", "/").as_deref() == Some("a") {
            a += 1;
        }
    }
    assert_eq!(a, 300);
}

fn canary_router(canary: crate::table::Canary) -> Router {
    let mut g = group("primary");
    g.canary = Some(Box::new(canary));
    router(
        vec![vhost(
            "",
            vec![Route {
                path: PathMatch::prefix("/"),
                backend: g,
                source: "ns/x".into(),
            }],
        )],
        None,
    )
}

fn canary(weight: u32) -> crate::table::Canary {
    crate::table::Canary {
        backend: group("canary").services.remove(0),
        weight,
        weight_total: 100,
        by_header: None,
        by_cookie: None,
    }
}

/// Service picked for a request with the given headers, over `n` requests.
fn canary_share(r: &Router, headers: &[(&'static str, &str)], n: usize) -> f64 {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, v.parse().unwrap());
    }
    let req = PickContext {
        client_ip: None,
        headers: (&map).into(),
        path: "/",
        query: None,
    };
    let mut rng = fastrand::Rng::with_seed(11);
    let t = r.route("h", "/").unwrap();
    let hits = (0..n)
        .filter(|_| &*t.group.pick_service(&req, &mut rng).unwrap().id == "canary")
        .count();
    hits as f64 / n as f64
}

#[test]
fn canary_weight_takes_its_share() {
    assert_eq!(canary_share(&canary_router(canary(0)), &[], 1000), 0.0);
    let share = canary_share(&canary_router(canary(20)), &[], 2000);
    assert!((share - 0.2).abs() < 0.03, "share {share}");
    assert_eq!(canary_share(&canary_router(canary(100)), &[], 100), 1.0);
}

#[test]
fn canary_header_beats_cookie_beats_weight() {
    let mut c = canary(50);
    c.by_header = Some(crate::table::HeaderRule {
        name: "x-canary".into(),
        value: None,
    });
    c.by_cookie = Some("canary".into());
    let r = canary_router(c);
    assert_eq!(canary_share(&r, &[("x-canary", "always")], 50), 1.0);
    assert_eq!(
        canary_share(
            &r,
            &[("x-canary", "never"), ("cookie", "canary=always")],
            50
        ),
        0.0
    );
    assert_eq!(canary_share(&r, &[("cookie", "canary=always")], 50), 1.0);
    assert_eq!(canary_share(&r, &[("cookie", "canary=never")], 50), 0.0);

    let mut valued = canary(0);
    valued.by_header = Some(crate::table::HeaderRule {
        name: "x-env".into(),
        value: Some("beta".into()),
    });
    let r = canary_router(valued);
    assert_eq!(canary_share(&r, &[("x-env", "beta")], 50), 1.0);
    assert_eq!(canary_share(&r, &[("x-env", "prod")], 50), 0.0);
}

/// The balancer a request to `host` is routed to.
fn balancer_of(router: &Router, host: &str) -> Arc<ServiceBalancer> {
    let target = router.route(host, "/").expect("routed");
    target.group.services[0].1.clone()
}

#[test]
fn unchanged_services_keep_their_balancer_and_endpoint_state() {
    let table = RoutingTable {
        virtual_hosts: vec![
            vhost("a.com", vec![route(PathMatch::prefix("/"), "ns/a:80")]),
            vhost("b.com", vec![route(PathMatch::prefix("/"), "ns/b:80")]),
        ],
        ..RoutingTable::default()
    };
    let empty = EndpointRegistry::default();
    let mut next = EndpointRegistry::next_generation(&empty);
    let first = Router::new(Arc::new(table.clone()), &mut next);
    let registry = next.finish();
    let headers = HeaderMap::new();
    let req = PickContext {
        client_ip: None,
        headers: (&headers).into(),
        path: "/",
        query: None,
    };
    let mut rng = fastrand::Rng::with_seed(1);
    let held = balancer_of(&first, "a.com").pick(&req, &[], &mut rng);
    assert!(held.is_some());

    let mut changed = table;
    let b = &mut Arc::make_mut(&mut changed.virtual_hosts[1]).routes[0]
        .backend
        .services[0];
    let mut endpoints = b.endpoints.to_vec();
    endpoints[0].weight = 2;
    b.endpoints = endpoints.into();
    let mut next = EndpointRegistry::next_generation(&registry);
    let second = Router::compile(Arc::new(changed), &mut next, &first);
    let registry = next.finish();

    assert!(Arc::ptr_eq(
        &balancer_of(&first, "a.com"),
        &balancer_of(&second, "a.com")
    ));
    assert!(!Arc::ptr_eq(
        &balancer_of(&first, "b.com"),
        &balancer_of(&second, "b.com")
    ));
    // The carried-over endpoint is still known to the registry, so the next table that
    // rebuilds its balancer finds the same state.
    assert_eq!(registry.states().count(), 2);
    let mut next = EndpointRegistry::next_generation(&registry);
    let third = Router::new(Arc::new(second.table().as_ref().clone()), &mut next);
    assert!(!Arc::ptr_eq(
        &balancer_of(&first, "a.com"),
        &balancer_of(&third, "a.com")
    ));
    assert_eq!(balancer_of(&third, "a.com").in_flight()[0].1, 1);
    drop(held);
    assert_eq!(balancer_of(&third, "a.com").in_flight()[0].1, 0);
}
