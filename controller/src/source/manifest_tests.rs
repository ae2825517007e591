use super::*;

fn only(text: &str) -> Object {
    let mut objects = parse_manifest(text).unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    objects.remove(0)
}

#[test]
fn parses_each_kind() {
    let ingress = only(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: shop\n\
         spec:\n  rules:\n  - host: a.example\n    http:\n      paths:\n      - path: /\n        \
         pathType: Prefix\n        backend:\n          service: {name: web, port: {number: 80}}\n",
    );
    let Object::Ingress(ingress) = ingress else {
        panic!("not an Ingress: {ingress:?}")
    };
    assert_eq!(ingress.metadata.namespace.as_deref(), Some("shop"));
    let rules = ingress.spec.clone().unwrap().rules.unwrap();
    assert_eq!(rules[0].host.as_deref(), Some("a.example"));

    let class = only(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: pier}\n\
         spec: {controller: pier.dev/ingress-controller}\n",
    );
    assert!(matches!(&class, Object::IngressClass(c)
        if c.spec.as_ref().unwrap().controller.as_deref() == Some("pier.dev/ingress-controller")));

    let service = only(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - {name: http, port: 80}\n",
    );
    assert!(
        matches!(&service, Object::Service(s) if s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port == 80)
    );
    assert_eq!(
        service.key(),
        crate::store::ObjectKey::new("default", "web")
    );

    let secret = only(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\n\
         stringData: {tls.crt: abc}\n",
    );
    assert!(
        matches!(&secret, Object::Secret(s) if s.type_.as_deref() == Some("kubernetes.io/tls"))
    );

    let slice = only(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  labels: \
         {kubernetes.io/service-name: web}\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n  \
         conditions: {ready: true}\nports:\n- {name: http, port: 8080}\n",
    );
    assert!(
        matches!(&slice, Object::EndpointSlice(s) if s.endpoints[0].address == Ok("10.0.0.1".parse().unwrap()))
    );
}

#[test]
fn multi_document_skips_empty_and_unknown_kinds() {
    let text = "---\n# leading comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n\
                spec: {replicas: 1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\n\
                apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n...\n--- # trailing\n\
                apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n---\n";
    let objects = parse_manifest(text).unwrap();
    let kinds: Vec<_> = objects.iter().map(|o| (o.kind(), o.key().name)).collect();
    assert_eq!(
        kinds,
        [("Service", "a".to_string()), ("Secret", "b".to_string())]
    );
    assert!(parse_manifest("").unwrap().is_empty());
    assert!(parse_manifest("# nothing\n\n").unwrap().is_empty());
}

#[test]
fn list_items_are_read() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n\
                - apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: d}\n\
                - apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n";
    let objects = parse_manifest(text).unwrap();
    assert_eq!(objects.len(), 2);
    let bad =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\n\
               items:\n- apiVersion: v1\n  kind: Service\n  metadata: {namespace: x}\n";
    let err = parse_manifest(bad).unwrap_err();
    assert_eq!(err.line(), 4);
    assert_eq!(
        err.to_string(),
        "line 4: Service: missing field `metadata.name`"
    );
}

#[test]
fn json_is_accepted() {
    let text = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Service\",\n\t\"metadata\": {\"name\": \"j\"}\n}\n";
    assert_eq!(only(text).key().name, "j");
}

#[test]
fn syntax_error_reports_its_line() {
    let text =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\n\
                metadata:\n  name: b\n    bad: indentation\n";
    let err = parse_manifest(text).unwrap_err();
    assert!(
        matches!(err, ManifestError::Syntax { line: 9, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("line 9: "), "{err}");
    assert!(
        !err.to_string().contains("at line 9 column"),
        "location repeated: {err}"
    );
}

#[test]
fn type_error_reports_the_field_line() {
    let text = [
        "apiVersion: v1",
        "kind: Service",
        "metadata: {name: a}",
        "---",
        "apiVersion: networking.k8s.io/v1",
        "kind: Ingress",
        "metadata:",
        "  name: web",
        "spec:",
        "  rules:",
        "  - http:",
        "      paths:",
        "      - path: /",
        "        pathType: Prefix",
        "        backend:",
        "          service: {name: web, port: {number: eighty}}",
    ]
    .join("\n");
    let err = parse_manifest(&text).unwrap_err();
    assert_eq!(err.line(), 16, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("line 16: Ingress: spec.rules[0].http.paths[0]"),
        "{message}"
    );
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn document_problems_report_the_document_line() {
    let err =
        parse_manifest("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: Service\n")
            .unwrap_err();
    assert_eq!(
        err,
        ManifestError::MissingType {
            line: 4,
            field: "apiVersion"
        }
    );
    let err = parse_manifest("\n\n---\napiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
    assert_eq!(
        err,
        ManifestError::MissingType {
            line: 3,
            field: "kind"
        }
    );
    let err = parse_manifest(
        "# c\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {namespace: x}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: Ingress: missing field `metadata.name`"
    );
    let err = parse_manifest("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n- a list\n")
        .unwrap_err();
    assert_eq!(err, ManifestError::NotAnObject { line: 4 });
}

#[test]
fn block_scalars_and_crlf_keep_their_content() {
    let text = "apiVersion: v1\r\nkind: Secret\r\nmetadata: {name: tls}\r\nstringData:\r\n  tls.crt: |\r\n    \
                -----BEGIN CERTIFICATE-----\r\n    abc\r\n    -----END CERTIFICATE-----\r\n---\r\n\
                apiVersion: v1\r\nkind: Service\r\nmetadata: {name: a}\r\n";
    let objects = parse_manifest(text).unwrap();
    assert_eq!(objects.len(), 2);
    let Object::Secret(secret) = &objects[0] else {
        panic!("{objects:?}")
    };
    let crt = &secret.string_data.as_ref().unwrap()["tls.crt"];
    assert!(
        crt.starts_with("-----BEGIN CERTIFICATE-----\nabc\n"),
        "{crt:?}"
    );
}
