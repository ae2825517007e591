//! Canary Ingresses: attachment by weight, header and cookie; missing primaries; two canaries.

use super::*;
use proxy::table::{Canary, HeaderRule};

/// Services `main` and `next` (port 80), and the primary Ingress `default/app` for
/// `foo.com` `Prefix /` → `main`, created 2024-01-01.
fn base() -> Store {
    let mut store = Store::default();
    service(&mut store, "default", "main", &[(None, 80)]);
    service(&mut store, "default", "next", &[(None, 80)]);
    IngressBuilder::new("default", "app")
        .created("2024-01-01T00:00:00Z")
        .rule("foo.com", "/", "Prefix", "main", 80)
        .insert(&mut store);
    store
}

/// A canary Ingress `default/<name>` for `foo.com` `Prefix /` → `next`.
fn canary(name: &str, annotations: &[(&str, &str)]) -> IngressBuilder {
    let mut b = IngressBuilder::new("default", name)
        .created("2024-02-01T00:00:00Z")
        .annotation("pier.dev/canary", "true")
        .rule("foo.com", "/", "Prefix", "next", 80);
    for (k, v) in annotations {
        b = b.annotation(&format!("pier.dev/{k}"), v);
    }
    b
}

fn attached(store: &Store) -> (Option<Canary>, Vec<Diagnostic>) {
    let (table, diags) = run(store);
    let route = route(&table, "foo.com", &PathMatch::prefix("/")).expect("primary route");
    assert_eq!(&*route.source, "default/app");
    assert_eq!(route.backend.services[0].id.as_ref(), "default/main:80");
    assert_eq!(
        route_sources(&table),
        vec!["default/app"],
        "a canary adds no route"
    );
    (route.backend.canary.as_deref().cloned(), diags)
}

fn clean(annotations: &[(&str, &str)]) -> Canary {
    let mut store = base();
    canary("app-canary", annotations).insert(&mut store);
    let (canary, diags) = attached(&store);
    assert_eq!(diags, vec![], "{annotations:?}");
    let canary = canary.expect("canary attached");
    assert_eq!(canary.backend.id.as_ref(), "default/next:80");
    canary
}

#[test]
fn by_weight() {
    let c = clean(&[("canary-weight", "20")]);
    assert_eq!((c.weight, c.weight_total), (20, 100));
    assert_eq!((c.by_header, c.by_cookie), (None, None));
    let c = clean(&[("canary-weight", "5"), ("canary-weight-total", "1000")]);
    assert_eq!((c.weight, c.weight_total), (5, 1000));
    // No rule at all: weight 0, the canary gets nothing.
    let c = clean(&[]);
    assert_eq!((c.weight, c.weight_total), (0, 100));
}

#[test]
fn by_header_and_cookie() {
    let c = clean(&[("canary-by-header", "X-Canary")]);
    let rule = HeaderRule {
        name: "x-canary".into(),
        value: None,
    };
    assert_eq!(c.by_header, Some(rule));
    let c = clean(&[
        ("canary-by-header", "x-region"),
        ("canary-by-header-value", "eu"),
    ]);
    let rule = HeaderRule {
        name: "x-region".into(),
        value: Some("eu".into()),
    };
    assert_eq!(c.by_header, Some(rule));
    let c = clean(&[("canary-by-cookie", "beta"), ("canary-weight", "10")]);
    assert_eq!((c.by_cookie.as_deref(), c.weight), (Some("beta"), 10));
}

#[test]
fn invalid_canary_annotations_fall_back_to_defaults() {
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("canary-weight", "101")], "pier.dev/canary-weight"),
        (&[("canary-weight", "ten")], "pier.dev/canary-weight"),
        (
            &[("canary-weight-total", "0")],
            "pier.dev/canary-weight-total",
        ),
        (
            &[("canary-by-header", "bad header")],
            "pier.dev/canary-by-header",
        ),
        (
            &[("canary-by-header-value", "eu")],
            "pier.dev/canary-by-header-value",
        ),
        (&[("canary-by-cookie", "a=b")], "pier.dev/canary-by-cookie"),
    ];
    for (annotations, key) in cases {
        let mut store = base();
        canary("app-canary", annotations).insert(&mut store);
        let (canary, diags) = attached(&store);
        let canary = canary.expect("still attached");
        assert_eq!(
            (canary.weight, canary.weight_total),
            (0, 100),
            "{annotations:?}"
        );
        assert_eq!((canary.by_header, canary.by_cookie), (None, None));
        assert_eq!(diags.len(), 1, "{annotations:?}: {diags:?}");
        assert_eq!(diags[0].object, "default/app-canary");
        assert!(diags[0].reason.contains(key), "{}", diags[0]);
    }
}

#[test]
fn missing_primary_is_reported_and_the_canary_ignored() {
    let mut store = base();
    IngressBuilder::new("default", "lonely")
        .annotation("pier.dev/canary", "true")
        .annotation("pier.dev/canary-weight", "50")
        .rule("bar.com", "/", "Prefix", "next", 80)
        .insert(&mut store);
    // Same host, same path string, other path type: not the same route.
    IngressBuilder::new("default", "exact")
        .annotation("pier.dev/canary", "true")
        .rule("foo.com", "/", "Exact", "next", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert_eq!(route_sources(&table), vec!["default/app"]);
    assert!(route(&table, "bar.com", &PathMatch::prefix("/")).is_none());
    let route = route(&table, "foo.com", &PathMatch::prefix("/")).expect("primary");
    assert_eq!(route.backend.canary, None);
    for name in ["default/lonely", "default/exact"] {
        let ours = diags_for(&diags, name);
        assert_eq!(ours.len(), 1, "{diags:?}");
        assert!(ours[0].reason.contains("no primary Ingress"), "{}", ours[0]);
    }
}

#[test]
fn the_older_of_two_canaries_wins() {
    let mut store = base();
    canary("newer", &[("canary-weight", "30")])
        .created("2024-03-01T00:00:00Z")
        .insert(&mut store);
    canary("older", &[("canary-weight", "10")]).insert(&mut store);
    let (canary, diags) = attached(&store);
    assert_eq!(canary.expect("attached").weight, 10);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].object, "default/newer");
    assert!(diags[0].reason.contains("default/older"), "{}", diags[0]);
}

#[test]
fn a_canary_is_not_a_path_conflict() {
    let mut store = base();
    // Older than the primary: as a primary it would take the route and push `app` out.
    canary("early", &[("canary-weight", "10")])
        .created("2023-01-01T00:00:00Z")
        .insert(&mut store);
    let (canary, diags) = attached(&store);
    assert_eq!(diags, vec![]);
    assert_eq!(canary.expect("attached").weight, 10);
}

#[test]
fn canary_false_or_invalid_is_a_primary() {
    let mut store = base();
    IngressBuilder::new("default", "other")
        .annotation("pier.dev/canary", "false")
        .rule("bar.com", "/", "Prefix", "next", 80)
        .insert(&mut store);
    IngressBuilder::new("default", "typo")
        .annotation("pier.dev/canary", "yes")
        .rule("baz.com", "/", "Prefix", "next", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert_eq!(
        route_sources(&table),
        vec!["default/app", "default/other", "default/typo"]
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].object, "default/typo");
    assert!(
        diags[0].reason.contains("pier.dev/canary \"yes\""),
        "{}",
        diags[0]
    );
}

#[test]
fn the_canary_backend_has_its_own_policy_and_reports_a_missing_service() {
    let mut store = base();
    canary("app-canary", &[("load-balance", "least-request")])
        .rule("foo.com", "/api", "Prefix", "gone", 80)
        .insert(&mut store);
    IngressBuilder::new("default", "app-api")
        .rule("foo.com", "/api", "Prefix", "main", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    let root = route(&table, "foo.com", &PathMatch::prefix("/")).expect("route");
    let c = root.backend.canary.as_ref().expect("canary");
    assert_eq!(
        c.backend.policy.algorithm,
        proxy::table::Algorithm::LeastRequest
    );
    assert_eq!(
        root.backend.services[0].policy.algorithm,
        proxy::table::Algorithm::RoundRobin
    );
    let api = route(&table, "foo.com", &PathMatch::prefix("/api")).expect("route");
    let c = api.backend.canary.as_ref().expect("canary");
    assert!(c.backend.unavailable.is_some());
    let ours = diags_for(&diags, "default/app-canary");
    assert_eq!(ours.len(), 1, "{diags:?}");
    assert!(ours[0].reason.contains("503"), "{}", ours[0]);
}
