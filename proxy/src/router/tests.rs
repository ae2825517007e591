use super::*;
use crate::table::{Endpoint, PathMatch, Route, ServiceBackend, VirtualHost};
use std::net::SocketAddr;

fn group(name: &str) -> BackendGroup {
    BackendGroup {
        services: vec![ServiceBackend {
            id: Arc::from(name),
            weight: 100,
            endpoints: vec![Endpoint {
                address: SocketAddr::from(([127, 0, 0, 1], 80)),
                ready: true,
                serving: true,
                terminating: false,
            }],
            unavailable: None,
        }],
    }
}

fn route(path: PathMatch, name: &str) -> Route {
    Route {
        path,
        backend: group(name),
        source: format!("ns/{name}"),
    }
}

fn vhost(host: &str, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        host: HostMatch::from_rule_host(host),
        routes,
        default_backend: None,
    }
}

/// The service id a request is routed to, or `None` for 404.
fn target(router: &Router, host: &str, path: &str) -> Option<String> {
    router
        .route(host, path)
        .and_then(|t| t.group.pick_service())
        .map(|s| s.id.to_string())
}

fn router(vhosts: Vec<VirtualHost>, default: Option<BackendGroup>) -> Router {
    Router::new(Arc::new(RoutingTable {
        virtual_hosts: vhosts,
        default_backend: default,
        tls: vec![],
    }))
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
    with_default.default_backend = Some(group("host-default"));
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
