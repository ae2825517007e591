//! API-server-style validation: an invalid Ingress is left out whole, with one Diagnostic per
//! problem, and nothing else is affected.

use super::*;
use k8s_openapi::api::networking::v1::IngressRule;

/// Translates `bad` next to a valid Ingress and checks: `bad` is left out, every expected reason
/// fragment appears in one of its Diagnostics (kind Ingress, object `default/bad`), and the
/// valid neighbour still routes.
fn assert_rejected(bad: IngressBuilder, fragments: &[&str]) {
    let mut store = Store::default();
    bad.insert(&mut store);
    IngressBuilder::new("default", "good")
        .rule("good.com", "/", "Prefix", "svc", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert_eq!(route_sources(&table), ["default/good"], "{diags:?}");
    assert!(table.tls.iter().all(|t| t.source != "default/bad"));
    assert!(table.default_backend.is_none());
    let ours = diags_for(&diags, "default/bad");
    assert!(!ours.is_empty(), "no diagnostic for default/bad");
    for d in &ours {
        assert_eq!(d.kind, "Ingress");
        assert!(d.reason.contains("the Ingress is ignored"), "{d}");
    }
    for fragment in fragments {
        assert!(
            ours.iter().any(|d| d.reason.contains(fragment)),
            "no diagnostic mentions {fragment:?}: {ours:?}"
        );
    }
    assert_eq!(
        ours.len(),
        fragments.len(),
        "one diagnostic per problem: {ours:?}"
    );
}

fn bad() -> IngressBuilder {
    IngressBuilder::new("default", "bad")
}

fn bad_path(path: &str, path_type: &str, fragment: &str) {
    assert_rejected(
        bad().rule("bad.com", path, path_type, "svc", 80),
        &[fragment],
    );
}

#[test]
fn path_must_be_absolute() {
    bad_path("api", "Prefix", "must be an absolute path");
    bad_path("api", "Exact", "must be an absolute path");
    bad_path("api", "ImplementationSpecific", "must be an absolute path");
    assert_rejected(
        bad().rule_to("bad.com", None, "Prefix", service_backend("svc", 80)),
        &["must be an absolute path"],
    );
}

#[test]
fn path_must_not_contain_dot_segments_or_double_slashes() {
    for path_type in ["Exact", "Prefix", "ImplementationSpecific"] {
        bad_path("/a//b", path_type, "must not contain '//'");
        bad_path("/a/./b", path_type, "must not contain '/./'");
        bad_path("/a/../b", path_type, "must not contain '/../'");
        bad_path("/a/..", path_type, "must not end with '/..'");
        bad_path("/a/.", path_type, "must not end with '/.'");
    }
}

#[test]
fn path_must_not_contain_encoded_slashes_or_dots() {
    bad_path("/a%2fb", "Prefix", "encoded '/'");
    bad_path("/a%2Fb", "Exact", "encoded '/'");
    bad_path("/a/%2e%2e/b", "Prefix", "encoded '.'");
    bad_path("/a/%2E%2e", "Exact", "encoded '.'");
    bad_path("/a/.%2E/b", "Prefix", "encoded '.'");
}

#[test]
fn unusual_but_valid_paths_are_accepted() {
    let mut store = Store::default();
    for (i, path) in ["/.well-known/acme", "/a..b", "/a/..b", "/%2efoo", "/"]
        .iter()
        .enumerate()
    {
        IngressBuilder::new("default", &format!("ok{i}"))
            .rule("ok.com", path, "Exact", "svc", 80)
            .insert(&mut store);
    }
    let (table, diags) = run(&store);
    assert_eq!(route_sources(&table).len(), 5, "{diags:?}");
}

#[test]
fn path_type_is_required_and_must_be_known() {
    bad_path("/a", "", "pathType is required");
    bad_path("/a", "Regex", "pathType \"Regex\" is not supported");
}

#[test]
fn host_must_be_a_lower_case_dns_subdomain() {
    let long_label = "a".repeat(64);
    let long_name = ["abcdefghij"; 24].join("."); // 263 characters
    for host in [
        "Foo.com",
        "foo_bar.com",
        "-foo.com",
        "foo-.com",
        "foo..com",
        "foo.com.",
        long_label.as_str(),
        long_name.as_str(),
        "foo.*.com",
        "*",
        "*foo.com",
        "*.Foo.com",
    ] {
        assert_rejected(
            bad().rule(host, "/", "Prefix", "svc", 80),
            &["must be a lower-case DNS name"],
        );
    }
}

#[test]
fn host_must_not_be_an_ip_address() {
    for host in ["10.0.0.1", "::1"] {
        assert_rejected(
            bad().rule(host, "/", "Prefix", "svc", 80),
            &["not an IP address"],
        );
    }
}

#[test]
fn valid_hosts_are_accepted() {
    let mut store = Store::default();
    let label63 = "a".repeat(63);
    for (i, host) in [
        "foo.com",
        "*.foo.com",
        "a-1.b2.c",
        label63.as_str(),
        "localhost",
    ]
    .iter()
    .enumerate()
    {
        IngressBuilder::new("default", &format!("ok{i}"))
            .rule(host, "/", "Prefix", "svc", 80)
            .insert(&mut store);
    }
    let (table, diags) = run(&store);
    assert_eq!(route_sources(&table).len(), 5, "{diags:?}");
}

#[test]
fn tls_hosts_are_validated() {
    assert_rejected(
        bad()
            .rule("bad.com", "/", "Prefix", "svc", 80)
            .tls(&["Bad.com"], Some("cert")),
        &["spec.tls[0].hosts[0]"],
    );
}

#[test]
fn backend_needs_exactly_one_of_service_or_resource() {
    let mut both = resource_backend();
    both.service = service_backend("svc", 80).service;
    assert_rejected(
        bad().rule_to("bad.com", Some("/"), "Prefix", both),
        &["exactly one of service or resource"],
    );
    let neither = IngressBackend::default();
    assert_rejected(
        bad().rule_to("bad.com", Some("/"), "Prefix", neither.clone()),
        &["exactly one of service or resource"],
    );
    assert_rejected(
        bad().default_backend(neither),
        &["spec.defaultBackend: must specify exactly one"],
    );
}

#[test]
fn service_port_needs_exactly_one_of_name_or_number() {
    let with_port = |port: Option<ServiceBackendPort>| {
        let mut b = service_backend("svc", 80);
        if let Some(s) = b.service.as_mut() {
            s.port = port;
        }
        bad().rule_to("bad.com", Some("/"), "Prefix", b)
    };
    let both = ServiceBackendPort {
        name: Some("http".into()),
        number: Some(80),
    };
    assert_rejected(with_port(Some(both)), &["exactly one of name or number"]);
    assert_rejected(
        with_port(Some(ServiceBackendPort::default())),
        &["exactly one of name or number"],
    );
    assert_rejected(with_port(None), &["service.port is required"]);
    for n in [0, -1, 65536] {
        let port = ServiceBackendPort {
            number: Some(n),
            ..Default::default()
        };
        assert_rejected(with_port(Some(port)), &["must be between 1 and 65535"]);
    }
    for name in ["HTTP", "a-very-long-port-name", "80"] {
        let port = ServiceBackendPort {
            name: Some(name.into()),
            ..Default::default()
        };
        assert_rejected(with_port(Some(port)), &["IANA service name"]);
    }
}

#[test]
fn an_empty_port_name_counts_as_unset() {
    let mut store = Store::default();
    let mut backend = service_backend("svc", 80);
    if let Some(port) = backend.service.as_mut().and_then(|s| s.port.as_mut()) {
        port.name = Some(String::new());
    }
    IngressBuilder::new("default", "ok")
        .rule_to("ok.com", Some("/"), "Prefix", backend)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert_eq!(route_sources(&table), ["default/ok"], "{diags:?}");
    assert_eq!(&*prefix_backend(&table, "ok.com", "/").id, "default/svc:80");
}

#[test]
fn service_name_is_required_and_must_be_a_dns_label() {
    assert_rejected(
        bad().rule("bad.com", "/", "Prefix", "", 80),
        &["service.name is required"],
    );
    assert_rejected(
        bad().rule("bad.com", "/", "Prefix", "My_Svc", 80),
        &["DNS-1035"],
    );
}

#[test]
fn ingress_needs_rules_or_a_default_backend() {
    assert_rejected(bad(), &["either defaultBackend or rules"]);
    let mut no_spec = bad();
    no_spec.0.spec = None;
    // Without a spec there is no class field either: make it ours by annotation.
    let no_spec = no_spec.annotation("kubernetes.io/ingress.class", "pier");
    assert_rejected(no_spec, &["either defaultBackend or rules"]);
}

#[test]
fn http_rule_needs_at_least_one_path() {
    let rule = IngressRule {
        host: Some("bad.com".into()),
        http: Some(Default::default()),
    };
    assert_rejected(bad().raw_rule(rule), &["at least one path"]);
}

#[test]
fn every_problem_gets_its_own_diagnostic() {
    let ingress = bad()
        .rule("Bad.com", "rel", "Prefix", "svc", 80)
        .rule("ok.com", "/x", "Nope", "svc", 0);
    assert_rejected(
        ingress,
        &[
            "spec.rules[0].host",
            "spec.rules[0].http.paths[0].path",
            "spec.rules[1].http.paths[0].pathType",
            "spec.rules[1].http.paths[0].backend.service.port",
        ],
    );
}

#[test]
fn resource_backends_are_left_out_but_the_rest_of_the_ingress_routes() {
    let mut store = Store::default();
    IngressBuilder::new("default", "mixed")
        .rule_to("a.com", Some("/static"), "Prefix", resource_backend())
        .rule("a.com", "/api", "Prefix", "svc", 80)
        .default_backend(resource_backend())
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert!(route(&table, "a.com", &PathMatch::prefix("/static")).is_none());
    assert!(route(&table, "a.com", &PathMatch::prefix("/api")).is_some());
    assert!(table.default_backend.is_none());
    assert!(table
        .virtual_hosts
        .iter()
        .all(|v| v.default_backend.is_none()));
    let reasons: Vec<&str> = diags_for(&diags, "default/mixed")
        .iter()
        .filter(|d| d.reason.contains("resource backends are not supported"))
        .map(|d| d.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{diags:?}");
    assert!(reasons
        .iter()
        .any(|r| r.starts_with("spec.rules[0].http.paths[0].backend")));
    assert!(reasons.iter().any(|r| r.starts_with("spec.defaultBackend")));
}

#[test]
fn yaml_fixture_with_bad_paths_is_rejected() {
    let ingress: Ingress = serde_yaml::from_str(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad, namespace: default}
spec:
  ingressClassName: pier
  rules:
  - host: bad.com
    http:
      paths:
      - path: /no-type
        backend: {service: {name: svc, port: {number: 80}}}
      - path: /a/../etc
        pathType: Exact
        backend: {service: {name: svc, port: {name: http}}}
"#,
    )
    .unwrap();
    assert_rejected(
        IngressBuilder(ingress),
        &[
            "paths[0].pathType is required",
            "paths[1].path \"/a/../etc\": must not contain '/../'",
        ],
    );
}
