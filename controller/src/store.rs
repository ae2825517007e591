//! The Store: every Kubernetes object pier reads, as typed values, filled by a source.
//!
//! Sources (files, Kubernetes) only fill a Store; everything after it is the same for both.

mod slice;

pub use slice::{EndpointSlice, SliceEndpoint, SlicePort};

use crds::BackendPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Identifies a namespaced object of one kind: `(namespace, name)`. Cluster-scoped objects use
/// an empty namespace. Ordered and hashed as the pair, so a map keyed by it can be searched
/// with a borrowed [`KeyRef`] (see [`find`]) without building a key.
#[derive(Debug, Clone)]
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

/// `(namespace, name)` of an object, owned ([`ObjectKey`]) or borrowed (`(&str, &str)`).
pub trait KeyRef {
    /// Namespace and name.
    fn parts(&self) -> (&str, &str);
}

impl KeyRef for ObjectKey {
    fn parts(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl KeyRef for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn KeyRef + 'a> for ObjectKey {
    fn borrow(&self) -> &(dyn KeyRef + 'a) {
        self
    }
}

impl PartialEq for dyn KeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyRef + '_ {}

impl PartialOrd for dyn KeyRef + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyRef + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl std::hash::Hash for dyn KeyRef + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

// The owned key compares and hashes exactly like its borrowed form, as `Borrow` requires.
impl PartialEq for ObjectKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for ObjectKey {}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl std::hash::Hash for ObjectKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// The object `namespace/name` of one kind's map, found without building an [`ObjectKey`].
pub fn find<'m, V>(map: &'m BTreeMap<ObjectKey, V>, namespace: &str, name: &str) -> Option<&'m V> {
    map.get(&(namespace, name) as &dyn KeyRef)
}

/// `namespace/name`, or `name` alone without a namespace.
struct KeyName<'a>(&'a str, &'a str);

impl std::fmt::Display for KeyName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let KeyName(namespace, name) = *self;
        if namespace.is_empty() {
            f.write_str(name)
        } else {
            write!(f, "{namespace}/{name}")
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        KeyName(&self.namespace, &self.name).fmt(f)
    }
}

/// `namespace/name` (`name` alone without a namespace), as [`ObjectKey`] displays.
pub fn key_name(namespace: &str, name: &str) -> String {
    KeyName(namespace, name).to_string()
}

/// What [`Store::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// No object of that kind and key was there.
    Added,
    /// One was there and differed: replaced.
    Replaced,
    /// An equal one was there and was kept.
    Unchanged,
}

/// Puts `new` under `key` in one kind's map, keeping an equal object already there.
fn put<V: PartialEq>(
    map: &mut BTreeMap<ObjectKey, Arc<V>>,
    key: ObjectKey,
    new: Arc<V>,
) -> Inserted {
    match map.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(new);
            Inserted::Added
        }
        Entry::Occupied(slot) if **slot.get() == *new => Inserted::Unchanged,
        Entry::Occupied(mut slot) => {
            slot.insert(new);
            Inserted::Replaced
        }
    }
}

/// All objects translate() reads, keyed by namespace/name (IngressClass by name only).
///
/// Objects are shared (`Arc`): a source that keeps its own copy (the file source) and the
/// Store hold one allocation, a cloned Store costs pointers, and translate() can tell an
/// object that did not change from one that did by pointer (see `translate::Translator`).
/// Replacing an object always stores a new `Arc`; never mutate one in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    /// networking.k8s.io/v1 Ingress.
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped: empty namespace).
    pub ingress_classes: BTreeMap<ObjectKey, Arc<IngressClass>>,
    /// v1 Service.
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    /// discovery.k8s.io/v1 EndpointSlice, reduced to what routing reads.
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    /// v1 Secret (only `kubernetes.io/tls` ones matter).
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
    /// pier.dev/v1alpha1 BackendPolicy.
    pub backend_policies: BTreeMap<ObjectKey, Arc<BackendPolicy>>,
}

/// One object of a kind the Store holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// An Ingress.
    Ingress(Arc<Ingress>),
    /// An IngressClass.
    IngressClass(Arc<IngressClass>),
    /// A Service.
    Service(Arc<Service>),
    /// An EndpointSlice (reduced: see [`EndpointSlice`]).
    EndpointSlice(Arc<EndpointSlice>),
    /// A Secret.
    Secret(Arc<Secret>),
    /// A BackendPolicy.
    BackendPolicy(Arc<BackendPolicy>),
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

    /// `(namespace, name)` as the object says.
    fn names(&self) -> (Option<&str>, Option<&str>) {
        let meta = match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => return (o.namespace.as_deref(), Some(&o.name)),
            Object::Secret(o) => &o.metadata,
            Object::BackendPolicy(o) => &o.metadata,
        };
        (meta.namespace.as_deref(), meta.name.as_deref())
    }

    /// The object's key; namespace defaults to `default` for namespaced kinds, and is empty for
    /// IngressClass.
    pub fn key(&self) -> ObjectKey {
        let (namespace, name) = self.names();
        let namespace = match self {
            Object::IngressClass(_) => "",
            _ => namespace.unwrap_or("default"),
        };
        ObjectKey::new(namespace, name.unwrap_or_default())
    }

    /// Sets the namespace a namespaced object without one gets (`default`), so that the
    /// object says what its key says. Copies the object only when it is shared and lacks it.
    pub fn with_namespace(mut self) -> Object {
        if matches!(self, Object::IngressClass(_)) || self.names().0.is_some() {
            return self;
        }
        let namespace = Some("default".to_string());
        match &mut self {
            Object::Ingress(o) => Arc::make_mut(o).metadata.namespace = namespace,
            Object::Service(o) => Arc::make_mut(o).metadata.namespace = namespace,
            Object::EndpointSlice(o) => Arc::make_mut(o).namespace = namespace,
            Object::Secret(o) => Arc::make_mut(o).metadata.namespace = namespace,
            Object::BackendPolicy(o) => Arc::make_mut(o).metadata.namespace = namespace,
            Object::IngressClass(_) => {}
        }
        self
    }
}

impl Store {
    /// Inserts (or replaces) an object. An object equal in value to the one already there
    /// leaves that one in place, so translate() sees it unchanged (same `Arc`).
    pub fn insert(&mut self, object: Object) -> Inserted {
        let object = object.with_namespace();
        let key = object.key();
        match object {
            Object::Ingress(o) => put(&mut self.ingresses, key, o),
            Object::IngressClass(o) => put(&mut self.ingress_classes, key, o),
            Object::Service(o) => put(&mut self.services, key, o),
            Object::EndpointSlice(o) => put(&mut self.endpoint_slices, key, o),
            Object::Secret(o) => put(&mut self.secrets, key, o),
            Object::BackendPolicy(o) => put(&mut self.backend_policies, key, o),
        }
    }

    /// Removes the object of this kind with this object's key, if present.
    pub fn remove(&mut self, object: &Object) {
        let key = object.key();
        match object {
            Object::Ingress(_) => drop(self.ingresses.remove(&key)),
            Object::IngressClass(_) => drop(self.ingress_classes.remove(&key)),
            Object::Service(_) => drop(self.services.remove(&key)),
            Object::EndpointSlice(_) => drop(self.endpoint_slices.remove(&key)),
            Object::Secret(_) => drop(self.secrets.remove(&key)),
            Object::BackendPolicy(_) => drop(self.backend_policies.remove(&key)),
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

    /// Whether both hold equal objects under the same keys, like `==`, but comparing shared
    /// objects by pointer first: two loads that share most objects compare in a walk.
    pub fn same_as(&self, other: &Store) -> bool {
        fn same<T: PartialEq>(
            a: &BTreeMap<ObjectKey, Arc<T>>,
            b: &BTreeMap<ObjectKey, Arc<T>>,
        ) -> bool {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && (Arc::ptr_eq(va, vb) || va == vb))
        }
        same(&self.ingresses, &other.ingresses)
            && same(&self.ingress_classes, &other.ingress_classes)
            && same(&self.services, &other.services)
            && same(&self.endpoint_slices, &other.endpoint_slices)
            && same(&self.secrets, &other.secrets)
            && same(&self.backend_policies, &other.backend_policies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(port_name: &str) -> Arc<Service> {
        let mut service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        service.metadata.labels = Some([("port".to_string(), port_name.to_string())].into());
        Arc::new(service)
    }

    #[test]
    fn an_equal_object_keeps_the_one_held_and_a_different_one_replaces_it() {
        let mut store = Store::default();
        let first = service("http");
        assert_eq!(
            store.insert(Object::Service(first.clone())),
            Inserted::Added
        );
        // An equal copy (a re-list, a file rewritten as it was) leaves the held one in place.
        assert_eq!(
            store.insert(Object::Service(service("http"))),
            Inserted::Unchanged
        );
        let held = find(&store.services, "shop", "web").expect("held");
        assert!(Arc::ptr_eq(held, &first));
        let changed = service("grpc");
        assert_eq!(
            store.insert(Object::Service(changed.clone())),
            Inserted::Replaced
        );
        let held = find(&store.services, "shop", "web").expect("held");
        assert!(Arc::ptr_eq(held, &changed));
    }
}
