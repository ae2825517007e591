//! The Store: every Kubernetes object pier reads, as typed values, filled by a source.
//!
//! Sources (files, Kubernetes) only fill a Store; everything after it is the same for both.

use crds::BackendPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::BTreeMap;

/// Identifies a namespaced object of one kind: `(namespace, name)`. Cluster-scoped objects use
/// an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// All objects translate() reads, keyed by namespace/name (IngressClass by name only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    /// networking.k8s.io/v1 Ingress.
    pub ingresses: BTreeMap<ObjectKey, Ingress>,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped: empty namespace).
    pub ingress_classes: BTreeMap<ObjectKey, IngressClass>,
    /// v1 Service.
    pub services: BTreeMap<ObjectKey, Service>,
    /// discovery.k8s.io/v1 EndpointSlice.
    pub endpoint_slices: BTreeMap<ObjectKey, EndpointSlice>,
    /// v1 Secret (only `kubernetes.io/tls` ones matter).
    pub secrets: BTreeMap<ObjectKey, Secret>,
    /// pier.dev/v1alpha1 BackendPolicy.
    pub backend_policies: BTreeMap<ObjectKey, BackendPolicy>,
}

/// One object of a kind the Store holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// An Ingress.
    Ingress(Box<Ingress>),
    /// An IngressClass.
    IngressClass(Box<IngressClass>),
    /// A Service.
    Service(Box<Service>),
    /// An EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// A Secret.
    Secret(Box<Secret>),
    /// A BackendPolicy.
    BackendPolicy(Box<BackendPolicy>),
}

impl Object {
    /// The kind name as in `kind:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Ingress(_) => "Ingress",
            Object::IngressClass(_) => "IngressClass",
            Object::Service(_) => "Service",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::Secret(_) => "Secret",
            Object::BackendPolicy(_) => "BackendPolicy",
        }
    }

    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::BackendPolicy(o) => &o.metadata,
        }
    }

    /// The object's key; namespace defaults to `default` for namespaced kinds, and is empty for
    /// IngressClass.
    pub fn key(&self) -> ObjectKey {
        let meta = self.meta();
        let namespace = match self {
            Object::IngressClass(_) => String::new(),
            _ => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        };
        ObjectKey::new(namespace, meta.name.clone().unwrap_or_default())
    }
}

impl Store {
    /// Inserts (or replaces) an object. Returns the replaced object's presence.
    pub fn insert(&mut self, object: Object) -> bool {
        let key = object.key();
        match object {
            Object::Ingress(mut o) => {
                o.metadata.namespace = Some(key.namespace.clone());
                self.ingresses.insert(key, *o).is_some()
            }
            Object::IngressClass(o) => self.ingress_classes.insert(key, *o).is_some(),
            Object::Service(mut o) => {
                o.metadata.namespace = Some(key.namespace.clone());
                self.services.insert(key, *o).is_some()
            }
            Object::EndpointSlice(mut o) => {
                o.metadata.namespace = Some(key.namespace.clone());
                self.endpoint_slices.insert(key, *o).is_some()
            }
            Object::Secret(mut o) => {
                o.metadata.namespace = Some(key.namespace.clone());
                self.secrets.insert(key, *o).is_some()
            }
            Object::BackendPolicy(mut o) => {
                o.metadata.namespace = Some(key.namespace.clone());
                self.backend_policies.insert(key, *o).is_some()
            }
        }
    }

    /// Whether an object of this kind and key is present.
    pub fn contains(&self, kind: &str, key: &ObjectKey) -> bool {
        match kind {
            "Ingress" => self.ingresses.contains_key(key),
            "IngressClass" => self.ingress_classes.contains_key(key),
            "Service" => self.services.contains_key(key),
            "EndpointSlice" => self.endpoint_slices.contains_key(key),
            "Secret" => self.secrets.contains_key(key),
            "BackendPolicy" => self.backend_policies.contains_key(key),
            _ => false,
        }
    }

    /// Total number of objects.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
            + self.backend_policies.len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
