//! Routes, host merging, conflict resolution, default backends, determinism.

use super::*;
use proxy::table::BackendGroup;

/// A store with Services `a`, `b`, `c` and `d` (port 80) in `default` and `other`, so that only
/// the Diagnostics under test appear.
fn store() -> Store {
    let mut store = Store::default();
    for ns in ["default", "other"] {
        for svc in ["a", "b", "c", "d"] {
            service(&mut store, ns, svc, &[(Some("http"), 80)]);
        }
    }
    store
}

fn ids(group: &BackendGroup) -> Vec<&str> {
    group.services.iter().map(|s| &*s.id).collect()
}

#[test]
fn path_types_hosts_and_sources() {
    let mut store = store();
    IngressBuilder::new("default", "web")
        .rule("foo.com", "/exact", "Exact", "a", 80)
        .rule("foo.com", "/prefix/", "Prefix", "b", 80)
        .rule("foo.com", "/impl", "ImplementationSpecific", "c", "http")
        .rule("*.wild.com", "/", "Prefix", "a", 80)
        .rule("", "/any", "Prefix", "d", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert!(diags.is_empty(), "{diags:?}");
    let hosts: Vec<&HostMatch> = table.virtual_hosts.iter().map(|v| &v.host).collect();
    assert_eq!(
        hosts,
        [
            &HostMatch::Exact("foo.com".into()),
            &HostMatch::Wildcard("wild.com".into()),
            &HostMatch::Any
        ]
    );
    let foo = &table.virtual_hosts[0];
    let paths: Vec<&PathMatch> = foo.routes.iter().map(|r| &r.path).collect();
    assert_eq!(
        paths,
        [
            &PathMatch::exact("/exact"),
            &PathMatch::prefix("/impl"),
            &PathMatch::prefix("/prefix")
        ]
    );
    assert!(foo.routes.iter().all(|r| &*r.source == "default/web"));
    assert_eq!(ids(&foo.routes[0].backend), ["default/a:80"]);
    assert_eq!(ids(&foo.routes[1].backend), ["default/c:http"]);
    assert!(route(&table, "", &PathMatch::prefix("/any")).is_some());
    assert!(route(&table, "*.wild.com", &PathMatch::prefix("/")).is_some());
    assert!(table.default_backend.is_none());
}

#[test]
fn rules_for_the_same_host_merge_into_one_virtual_host() {
    let mut store = store();
    IngressBuilder::new("default", "one")
        .rule("foo.com", "/a", "Prefix", "a", 80)
        .insert(&mut store);
    IngressBuilder::new("other", "two")
        .rule("foo.com", "/b", "Prefix", "b", 80)
        .rule("foo.com", "/c", "Exact", "c", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(table.virtual_hosts.len(), 1);
    let sources: Vec<&str> = table.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| &*r.source)
        .collect();
    assert_eq!(sources, ["other/two", "default/one", "other/two"]);
    assert_eq!(
        ids(&route(&table, "foo.com", &PathMatch::prefix("/b"))
            .unwrap()
            .backend),
        ["other/b:80"]
    );
}

fn conflict_loser_diags(diags: &[Diagnostic], loser: &str) -> Vec<String> {
    diags_for(diags, loser)
        .iter()
        .map(|d| d.reason.clone())
        .collect()
}

#[test]
fn oldest_ingress_wins_a_conflict_and_the_loser_keeps_its_other_paths() {
    let mut store = store();
    IngressBuilder::new("default", "a-new")
        .created("2024-06-01T00:00:00Z")
        .rule("foo.com", "/api", "Prefix", "a", 80)
        .rule("foo.com", "/only-new", "Prefix", "a", 80)
        .insert(&mut store);
    IngressBuilder::new("default", "z-old")
        .created("2024-01-01T00:00:00Z")
        .rule("foo.com", "/api/", "Prefix", "b", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert_eq!(
        prefix_backend(&table, "foo.com", "/api").id.as_ref(),
        "default/b:80"
    );
    assert_eq!(
        route(&table, "foo.com", &PathMatch::prefix("/api"))
            .unwrap()
            .source
            .as_ref(),
        "default/z-old"
    );
    assert!(route(&table, "foo.com", &PathMatch::prefix("/only-new")).is_some());
    let reasons = conflict_loser_diags(&diags, "default/a-new");
    assert_eq!(reasons.len(), 1, "{diags:?}");
    assert!(
        reasons[0].contains("Prefix /api on host foo.com"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("already defined by Ingress default/z-old"),
        "{}",
        reasons[0]
    );
    assert!(diags_for(&diags, "default/z-old").is_empty());
}

#[test]
fn equal_age_conflicts_go_to_namespace_then_name() {
    let mut store = store();
    for (ns, name, svc) in [
        ("other", "a", "a"),
        ("default", "z", "b"),
        ("default", "y", "c"),
    ] {
        IngressBuilder::new(ns, name)
            .created("2024-01-01T00:00:00Z")
            .rule("foo.com", "/", "Prefix", svc, 80)
            .insert(&mut store);
    }
    let (table, diags) = run(&store);
    assert_eq!(
        prefix_backend(&table, "foo.com", "/").id.as_ref(),
        "default/c:80"
    );
    for loser in ["default/z", "other/a"] {
        let reasons = conflict_loser_diags(&diags, loser);
        assert_eq!(reasons.len(), 1, "{diags:?}");
        assert!(reasons[0].contains("default/y"), "{}", reasons[0]);
    }
}

#[test]
fn ingresses_without_a_timestamp_lose_to_those_with_one() {
    let mut store = store();
    IngressBuilder::new("default", "a")
        .rule("foo.com", "/", "Exact", "a", 80)
        .insert(&mut store);
    IngressBuilder::new("default", "b")
        .created("2030-01-01T00:00:00Z")
        .rule("foo.com", "/", "Exact", "b", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    let winner = route(&table, "foo.com", &PathMatch::exact("/")).unwrap();
    assert_eq!(&*winner.source, "default/b");
    assert_eq!(conflict_loser_diags(&diags, "default/a").len(), 1);
}

#[test]
fn a_path_defined_twice_in_one_ingress_keeps_the_first() {
    let mut store = store();
    IngressBuilder::new("default", "web")
        .rule("foo.com", "/x", "Prefix", "a", 80)
        .rule("foo.com", "/x/", "Prefix", "b", 80)
        // Exact and Prefix on the same path are different routes, not a conflict.
        .rule("foo.com", "/x", "Exact", "c", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert_eq!(
        prefix_backend(&table, "foo.com", "/x").id.as_ref(),
        "default/a:80"
    );
    assert!(route(&table, "foo.com", &PathMatch::exact("/x")).is_some());
    let reasons = conflict_loser_diags(&diags, "default/web");
    assert_eq!(reasons.len(), 1, "{diags:?}");
    assert!(
        reasons[0].contains("spec.rules[1].http.paths[0]"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("defined twice in this Ingress"),
        "{}",
        reasons[0]
    );
}

#[test]
fn ingress_default_backend_applies_to_its_hosts_and_globally() {
    let mut store = store();
    IngressBuilder::new("default", "old")
        .created("2024-01-01T00:00:00Z")
        .rule("foo.com", "/", "Prefix", "a", 80)
        .rule("", "/any", "Prefix", "a", 80)
        .default_backend(service_backend("b", 80))
        .insert(&mut store);
    IngressBuilder::new("default", "new")
        .created("2024-02-01T00:00:00Z")
        .rule("bar.com", "/", "Prefix", "a", 80)
        .rule("foo.com", "/new", "Prefix", "a", 80)
        .default_backend(service_backend("c", 80))
        .insert(&mut store);
    let (table, diags) = run(&store);
    let default_of = |host: &str| {
        let host = HostMatch::from_rule_host(host);
        let vhost = table.virtual_hosts.iter().find(|v| v.host == host).unwrap();
        vhost.default_backend.as_ref().map(ids)
    };
    assert_eq!(default_of("foo.com"), Some(vec!["default/b:80"]));
    assert_eq!(default_of(""), Some(vec!["default/b:80"]));
    assert_eq!(default_of("bar.com"), Some(vec!["default/c:80"]));
    assert_eq!(
        table.default_backend.as_ref().map(ids),
        Some(vec!["default/b:80"])
    );
    let reasons = conflict_loser_diags(&diags, "default/new");
    assert_eq!(reasons.len(), 2, "{diags:?}");
    assert!(reasons
        .iter()
        .any(|r| r.contains("spec.defaultBackend for host foo.com")));
    assert!(reasons
        .iter()
        .any(|r| r.contains("default for unmatched hosts")));
    assert!(reasons.iter().all(|r| r.contains("default/old")));
}

#[test]
fn a_rule_without_paths_still_gets_the_ingress_default_backend() {
    let mut store = store();
    let rule = k8s_openapi::api::networking::v1::IngressRule {
        host: Some("host-only.com".into()),
        http: None,
    };
    IngressBuilder::new("default", "web")
        .raw_rule(rule)
        .default_backend(service_backend("a", 80))
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(table.virtual_hosts.len(), 1);
    assert!(table.virtual_hosts[0].routes.is_empty());
    assert!(table.virtual_hosts[0].default_backend.is_some());
}

#[test]
fn default_backend_only_ingress_sets_just_the_global_default() {
    let mut store = store();
    IngressBuilder::new("default", "catch-all")
        .default_backend(service_backend("a", "http"))
        .insert(&mut store);
    let settings = Settings {
        default_backend: Some("other/b:80".into()),
        ..Settings::default()
    };
    let (table, diags) = translate(&store, &settings);
    assert!(diags.is_empty(), "{diags:?}");
    assert!(table.virtual_hosts.is_empty());
    assert_eq!(
        table.default_backend.as_ref().map(ids),
        Some(vec!["default/a:http"])
    );
}

#[test]
fn settings_default_backend_is_the_fallback() {
    let mut store = store();
    IngressBuilder::new("default", "web")
        .rule("foo.com", "/", "Prefix", "a", 80)
        .insert(&mut store);
    for (value, id) in [
        ("other/b:80", "other/b:80"),
        ("other/c:http", "other/c:http"),
    ] {
        let settings = Settings {
            default_backend: Some(value.into()),
            ..Settings::default()
        };
        let (table, diags) = translate(&store, &settings);
        assert!(diags.is_empty(), "{diags:?}");
        let backend = table.default_backend.expect("fallback set");
        assert_eq!(ids(&backend), [id]);
        assert!(backend.services[0].unavailable.is_none());
    }
}

#[test]
fn unresolvable_or_malformed_settings_default_backend_is_diagnosed() {
    let store = store();
    let settings = Settings {
        default_backend: Some("other/missing:80".into()),
        ..Settings::default()
    };
    let (table, diags) = translate(&store, &settings);
    let backend = &table
        .default_backend
        .expect("still set: answers 503")
        .services[0];
    assert_eq!(
        backend.unavailable.as_deref(),
        Some("service other/missing not found")
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].kind, "Settings");
    assert!(diags[0].reason.contains("other/missing"));

    for bad in ["no-slash:80", "ns/no-port", "/svc:80"] {
        let settings = Settings {
            default_backend: Some(bad.into()),
            ..Settings::default()
        };
        let (table, diags) = translate(&store, &settings);
        assert!(table.default_backend.is_none());
        assert_eq!(diags.len(), 1, "{bad}: {diags:?}");
        assert!(diags[0].reason.contains("namespace/name:port"));
    }
}

#[test]
fn translation_is_deterministic() {
    let build = |reverse: bool| {
        let mut ingresses = vec![
            IngressBuilder::new("default", "x")
                .created("2024-03-01T00:00:00Z")
                .rule("foo.com", "/", "Prefix", "a", 80)
                .rule("*.foo.com", "/b", "Exact", "b", 80)
                .default_backend(service_backend("c", 80)),
            IngressBuilder::new("other", "y")
                .created("2024-01-01T00:00:00Z")
                .rule("foo.com", "/", "Prefix", "missing", 80)
                .rule("", "/z", "Prefix", "d", 80)
                .tls(&["foo.com"], Some("cert"))
                .default_backend(service_backend("a", 80)),
        ];
        if reverse {
            ingresses.reverse();
        }
        let mut s = store();
        SliceBuilder::new("default", "a-1", "a")
            .port(Some("http"), 8080)
            .endpoint(&["10.0.0.2", "10.0.0.1"], READY)
            .insert(&mut s);
        for i in ingresses {
            i.insert(&mut s);
        }
        s
    };
    let first = run(&build(false));
    let second = run(&build(false));
    let reversed = run(&build(true));
    assert_eq!(first, second);
    assert_eq!(first, reversed);
    assert!(!first.1.is_empty(), "the fixture should produce conflicts");
    let mut sorted = first.1.clone();
    sorted.sort();
    assert_eq!(first.1, sorted, "diagnostics are sorted");
}
