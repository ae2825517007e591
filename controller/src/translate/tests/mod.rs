//! Fixture builders shared by the translate() tests, and the tests grouped by topic.

mod backends;
mod classes;
mod generate;
mod health_policy;
mod incremental;
mod lb_canary;
mod lb_crd;
mod lb_policy;
mod reuse;
mod routes;
mod tls;
mod validation;

use super::translate;
use crate::diagnostic::Diagnostic;
use crate::settings::{Settings, CONTROLLER_NAME};
use crate::store::{Object, Store};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec, TypedLocalObjectReference};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec,
    IngressRule, IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use proxy::table::{HostMatch, PathMatch, Route, RoutingTable, ServiceBackend};
use std::sync::Arc;

/// An Ingress port reference: a number or a name.
pub(super) enum Port {
    Number(i32),
    Name(&'static str),
}

impl From<i32> for Port {
    fn from(n: i32) -> Port {
        Port::Number(n)
    }
}

impl From<&'static str> for Port {
    fn from(n: &'static str) -> Port {
        Port::Name(n)
    }
}

pub(super) fn service_backend(service: &str, port: impl Into<Port>) -> IngressBackend {
    let port = match port.into() {
        Port::Number(n) => ServiceBackendPort {
            number: Some(n),
            ..Default::default()
        },
        Port::Name(n) => ServiceBackendPort {
            name: Some(n.to_string()),
            ..Default::default()
        },
    };
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.to_string(),
            port: Some(port),
        }),
        resource: None,
    }
}

pub(super) fn resource_backend() -> IngressBackend {
    IngressBackend {
        service: None,
        resource: Some(TypedLocalObjectReference {
            api_group: Some("storage.example.com".into()),
            kind: "Bucket".into(),
            name: "static".into(),
        }),
    }
}

/// Builds an Ingress of class `pier` (served with default Settings) unless told otherwise.
pub(super) struct IngressBuilder(Ingress);

impl IngressBuilder {
    pub(super) fn new(namespace: &str, name: &str) -> IngressBuilder {
        IngressBuilder(Ingress {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(IngressSpec {
                ingress_class_name: Some("pier".into()),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn spec(&mut self) -> &mut IngressSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    pub(super) fn class(mut self, class: &str) -> Self {
        self.spec().ingress_class_name = Some(class.into());
        self
    }

    pub(super) fn classless(mut self) -> Self {
        self.spec().ingress_class_name = None;
        self
    }

    pub(super) fn annotation(mut self, key: &str, value: &str) -> Self {
        let annotations = self
            .0
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.insert(key.into(), value.into());
        self
    }

    /// `at` is RFC 3339, e.g. `2024-01-01T00:00:00Z`.
    pub(super) fn created(mut self, at: &str) -> Self {
        self.0.metadata.creation_timestamp = Some(Time(at.parse().unwrap()));
        self
    }

    /// Adds a rule (`""` host = no host) with one path to a Service.
    pub(super) fn rule(
        self,
        host: &str,
        path: &str,
        path_type: &str,
        svc: &str,
        port: impl Into<Port>,
    ) -> Self {
        self.rule_to(host, Some(path), path_type, service_backend(svc, port))
    }

    /// Adds a rule with one path and any backend.
    pub(super) fn rule_to(
        mut self,
        host: &str,
        path: Option<&str>,
        path_type: &str,
        backend: IngressBackend,
    ) -> Self {
        let rule = IngressRule {
            host: (!host.is_empty()).then(|| host.to_string()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    backend,
                    path: path.map(str::to_string),
                    path_type: path_type.into(),
                }],
            }),
        };
        self.spec().rules.get_or_insert_with(Vec::new).push(rule);
        self
    }

    /// Adds a raw rule, e.g. one without `http`.
    pub(super) fn raw_rule(mut self, rule: IngressRule) -> Self {
        self.spec().rules.get_or_insert_with(Vec::new).push(rule);
        self
    }

    pub(super) fn default_backend(mut self, backend: IngressBackend) -> Self {
        self.spec().default_backend = Some(backend);
        self
    }

    pub(super) fn tls(mut self, hosts: &[&str], secret: Option<&str>) -> Self {
        let tls = IngressTLS {
            hosts: Some(hosts.iter().map(|h| h.to_string()).collect()),
            secret_name: secret.map(str::to_string),
        };
        self.spec().tls.get_or_insert_with(Vec::new).push(tls);
        self
    }

    pub(super) fn insert(self, store: &mut Store) {
        store.insert(Object::Ingress(Arc::new(self.0)));
    }
}

pub(super) fn ingress_class(
    store: &mut Store,
    name: &str,
    controller: &str,
    default: Option<&str>,
) {
    let mut metadata = ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    if let Some(value) = default {
        let key = "ingressclass.kubernetes.io/is-default-class".to_string();
        metadata.annotations = Some([(key, value.to_string())].into());
    }
    let class = IngressClass {
        metadata,
        spec: Some(IngressClassSpec {
            controller: Some(controller.into()),
            parameters: None,
        }),
    };
    store.insert(Object::IngressClass(Arc::new(class)));
}

/// A ClusterIP Service with `(name, port)` ports.
pub(super) fn service(
    store: &mut Store,
    namespace: &str,
    name: &str,
    ports: &[(Option<&str>, i32)],
) {
    let ports = ports
        .iter()
        .map(|(n, p)| ServicePort {
            name: n.map(str::to_string),
            port: *p,
            ..Default::default()
        })
        .collect();
    let svc = Service {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    };
    store.insert(Object::Service(Arc::new(svc)));
}

/// Builds an EndpointSlice for one Service.
pub(super) struct SliceBuilder(EndpointSlice);

impl SliceBuilder {
    pub(super) fn new(namespace: &str, name: &str, service: &str) -> SliceBuilder {
        let label = (
            "kubernetes.io/service-name".to_string(),
            service.to_string(),
        );
        SliceBuilder(EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Vec::new(),
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                labels: Some([label].into()),
                ..Default::default()
            },
            ports: None,
        })
    }

    pub(super) fn address_type(mut self, t: &str) -> Self {
        self.0.address_type = t.into();
        self
    }

    pub(super) fn port(mut self, name: Option<&str>, port: i32) -> Self {
        self.0
            .ports
            .get_or_insert_with(Vec::new)
            .push(EndpointPort {
                name: name.map(str::to_string),
                port: Some(port),
                ..Default::default()
            });
        self
    }

    /// An endpoint with conditions `(ready, serving, terminating)`, each possibly absent.
    pub(super) fn endpoint(
        mut self,
        addresses: &[&str],
        c: (Option<bool>, Option<bool>, Option<bool>),
    ) -> Self {
        let conditions = EndpointConditions {
            ready: c.0,
            serving: c.1,
            terminating: c.2,
        };
        self.0.endpoints.push(Endpoint {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            conditions: Some(conditions),
            ..Default::default()
        });
        self
    }

    /// An endpoint without a `conditions` object at all.
    pub(super) fn bare_endpoint(mut self, address: &str) -> Self {
        self.0.endpoints.push(Endpoint {
            addresses: vec![address.to_string()],
            ..Default::default()
        });
        self
    }

    pub(super) fn insert(self, store: &mut Store) {
        store.insert(Object::EndpointSlice(Arc::new(self.0.into())));
    }
}

/// Conditions shorthand: ready, everything else absent.
pub(super) const READY: (Option<bool>, Option<bool>, Option<bool>) = (Some(true), None, None);

pub(super) fn run(store: &Store) -> (RoutingTable, Vec<Diagnostic>) {
    translate(store, &Settings::default())
}

pub(super) fn our_class() -> &'static str {
    CONTROLLER_NAME
}

/// Diagnostics about one object (`ns/name`).
pub(super) fn diags_for<'a>(diags: &'a [Diagnostic], object: &str) -> Vec<&'a Diagnostic> {
    diags.iter().filter(|d| d.object == object).collect()
}

/// The route for `path` (a PathMatch) under the rule host `host` (`""` = any host).
pub(super) fn route<'a>(
    table: &'a RoutingTable,
    host: &str,
    path: &PathMatch,
) -> Option<&'a Route> {
    let host = HostMatch::from_rule_host(host);
    table
        .virtual_hosts
        .iter()
        .find(|v| v.host == host)?
        .routes
        .iter()
        .find(|r| r.path == *path)
}

/// The single service behind the route `Prefix path` on `host`.
pub(super) fn prefix_backend<'a>(
    table: &'a RoutingTable,
    host: &str,
    path: &str,
) -> &'a ServiceBackend {
    let route = route(table, host, &PathMatch::prefix(path)).expect("route exists");
    assert_eq!(route.backend.services.len(), 1);
    &route.backend.services[0]
}

/// Every Ingress that contributed at least one route.
pub(super) fn route_sources(table: &RoutingTable) -> Vec<&str> {
    let mut sources: Vec<&str> = table
        .virtual_hosts
        .iter()
        .flat_map(|v| v.routes.iter().map(|r| &*r.source))
        .collect();
    sources.sort();
    sources.dedup();
    sources
}
