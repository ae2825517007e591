//! IngressClass selection: which Ingresses pier serves.
//!
//! Everything not ours is ignored silently: other controllers own those Ingresses, and a
//! Diagnostic about them would be noise.

use crate::settings::{Settings, CONTROLLER_NAME};
use crate::store::{ObjectKey, Store};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// Pre-`ingressClassName` way of naming a class; still common in older manifests.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks the class that classless Ingresses belong to.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Whether pier serves this Ingress: it lives in the watched namespace (if one is set) and its
/// class is ours. The status writer must use the same answer as translate(), hence public.
pub fn is_served(store: &Store, settings: &Settings, key: &ObjectKey, ingress: &Ingress) -> bool {
    if let Some(ns) = &settings.watch_namespace {
        if *ns != key.namespace {
            return false;
        }
    }
    match class_name(ingress) {
        // A cluster has few IngressClasses: a scan spares building a key per Ingress.
        Some(name) => match store
            .ingress_classes
            .iter()
            .find(|(key, _)| key.namespace.is_empty() && key.name == name)
        {
            Some((_, class)) => is_our_controller(class),
            // Without an IngressClass object, the legacy name-only convention applies.
            None => name == settings.ingress_class,
        },
        None => store
            .ingress_classes
            .values()
            .any(|c| is_our_controller(c) && is_default_class(c)),
    }
}

/// The field wins over the legacy annotation, as in the Ingress specification; an empty value
/// names no class.
fn class_name(ingress: &Ingress) -> Option<&str> {
    let field = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .filter(|n| !n.is_empty());
    let annotation = || {
        ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    };
    field.or_else(annotation)
}

fn is_our_controller(class: &IngressClass) -> bool {
    class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER_NAME)
}

fn is_default_class(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}
