//! IngressClass selection and watch_namespace.

use super::*;
use crate::translate::is_served;

fn served_with(store: &Store, settings: &Settings) -> Vec<String> {
    let (table, _) = translate(store, settings);
    route_sources(&table)
        .into_iter()
        .map(String::from)
        .collect()
}

fn served(store: &Store) -> Vec<String> {
    served_with(store, &Settings::default())
}

fn web(name: &str) -> IngressBuilder {
    IngressBuilder::new("default", name).rule("foo.com", &format!("/{name}"), "Prefix", "svc", 80)
}

#[test]
fn class_field_naming_an_ingress_class_with_our_controller_is_served() {
    let mut store = Store::default();
    ingress_class(&mut store, "edge", our_class(), None);
    web("a").class("edge").insert(&mut store);
    assert_eq!(served(&store), ["default/a"]);
}

#[test]
fn ingress_class_of_another_controller_is_ignored_silently() {
    let mut store = Store::default();
    ingress_class(&mut store, "nginx", "k8s.io/ingress-nginx", None);
    // Even an invalid Ingress of another class must not produce a Diagnostic.
    web("a")
        .class("nginx")
        .rule("Bad_Host", "rel", "Regex", "svc", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    assert!(table.virtual_hosts.is_empty());
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn existing_class_object_overrides_the_settings_name() {
    // An IngressClass named like our --ingress-class but owned by someone else is theirs.
    let mut store = Store::default();
    ingress_class(&mut store, "pier", "example.com/other", None);
    web("a").class("pier").insert(&mut store);
    assert!(served(&store).is_empty());
}

#[test]
fn settings_class_name_is_served_without_an_ingress_class_object() {
    let mut store = Store::default();
    web("a").class("pier").insert(&mut store);
    web("b").class("other").insert(&mut store);
    assert_eq!(served(&store), ["default/a"]);

    let settings = Settings {
        ingress_class: "edge".into(),
        ..Settings::default()
    };
    web("c").class("edge").insert(&mut store);
    assert_eq!(served_with(&store, &settings), ["default/c"]);
}

#[test]
fn legacy_annotation_selects_the_class() {
    let mut store = Store::default();
    let key = "kubernetes.io/ingress.class";
    web("a")
        .classless()
        .annotation(key, "pier")
        .insert(&mut store);
    web("b")
        .classless()
        .annotation(key, "nginx")
        .insert(&mut store);
    ingress_class(&mut store, "edge", our_class(), None);
    web("c")
        .classless()
        .annotation(key, "edge")
        .insert(&mut store);
    assert_eq!(served(&store), ["default/a", "default/c"]);
}

#[test]
fn class_field_takes_precedence_over_the_annotation() {
    let mut store = Store::default();
    let key = "kubernetes.io/ingress.class";
    web("a")
        .class("nginx")
        .annotation(key, "pier")
        .insert(&mut store);
    web("b")
        .class("pier")
        .annotation(key, "nginx")
        .insert(&mut store);
    assert_eq!(served(&store), ["default/b"]);
}

#[test]
fn classless_ingress_is_ignored_without_a_default_class() {
    let mut store = Store::default();
    ingress_class(&mut store, "pier", our_class(), None);
    ingress_class(&mut store, "marked-false", our_class(), Some("false"));
    ingress_class(&mut store, "theirs", "example.com/other", Some("true"));
    web("a").classless().insert(&mut store);
    assert!(served(&store).is_empty());
}

#[test]
fn classless_ingress_is_served_when_our_class_is_the_default() {
    let mut store = Store::default();
    ingress_class(&mut store, "edge", our_class(), Some("true"));
    web("a").classless().insert(&mut store);
    // An empty class name counts as no class.
    web("b").class("").insert(&mut store);
    assert_eq!(served(&store), ["default/a", "default/b"]);
}

#[test]
fn watch_namespace_ignores_other_namespaces() {
    let mut store = Store::default();
    IngressBuilder::new("team-a", "web")
        .rule("a.com", "/", "Prefix", "svc", 80)
        .insert(&mut store);
    IngressBuilder::new("team-b", "web")
        .rule("b.com", "/", "Prefix", "svc", 80)
        .default_backend(service_backend("svc", 80))
        .insert(&mut store);
    let settings = Settings {
        watch_namespace: Some("team-a".into()),
        ..Settings::default()
    };
    let (table, _) = translate(&store, &settings);
    assert_eq!(route_sources(&table), ["team-a/web"]);
    assert!(
        table.default_backend.is_none(),
        "team-b's defaultBackend leaked"
    );
    assert_eq!(served(&store), ["team-a/web", "team-b/web"]);
}

#[test]
fn is_served_agrees_with_translate() {
    let mut store = Store::default();
    web("a").insert(&mut store);
    web("b").class("nginx").insert(&mut store);
    let settings = Settings::default();
    let answers: Vec<bool> = store
        .ingresses
        .iter()
        .map(|(key, ing)| is_served(&store, &settings, key, ing))
        .collect();
    assert_eq!(answers, [true, false]);
}
