//! EndpointSlices as the Store keeps them: only what translate() reads, addresses parsed.
//! At 50,000 endpoints the full API objects (node names, zones, hints, target references)
//! would be most of the controller's memory, and none of it is read.

use k8s_openapi::api::discovery::v1 as discovery;
use std::net::IpAddr;

/// Label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A discovery.k8s.io/v1 EndpointSlice, reduced to what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` once in a Store).
    pub namespace: Option<String>,
    /// The Service it belongs to: label `kubernetes.io/service-name`.
    pub service: Option<String>,
    /// `addressType: FQDN`: addresses are names, which pier does not route to.
    pub fqdn: bool,
    /// `ports`.
    pub ports: Box<[SlicePort]>,
    /// One entry per address of every endpoint, in order.
    pub endpoints: Box<[SliceEndpoint]>,
}

/// One port of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    /// `name` (absent and empty both mean unnamed).
    pub name: Option<String>,
    /// `port`.
    pub port: Option<i32>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}

/// One address of an endpoint, with the endpoint's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// The address; the text when it is not an IP address (translate reports it).
    pub address: Result<IpAddr, Box<str>>,
    /// `conditions.ready` (absent means ready).
    pub ready: bool,
    /// `conditions.serving` (absent means the value of `ready`).
    pub serving: bool,
    /// `conditions.terminating` (absent means false).
    pub terminating: bool,
    /// `targetRef.name`: the pod, for endpoint weights that name pods.
    pub pod: Option<Box<str>>,
}

impl From<discovery::EndpointSlice> for EndpointSlice {
    fn from(slice: discovery::EndpointSlice) -> EndpointSlice {
        let metadata = slice.metadata;
        let service = metadata
            .labels
            .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL));
        let ports = slice
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| SlicePort {
                name: p.name,
                port: p.port,
                app_protocol: p.app_protocol,
            });
        let mut endpoints = Vec::with_capacity(slice.endpoints.len());
        for endpoint in slice.endpoints {
            let conditions = endpoint.conditions.unwrap_or_default();
            let ready = conditions.ready.unwrap_or(true);
            let serving = conditions.serving.unwrap_or(ready);
            let terminating = conditions.terminating.unwrap_or(false);
            let pod = endpoint.target_ref.and_then(|r| r.name).map(Box::from);
            endpoints.extend(endpoint.addresses.into_iter().map(|a| SliceEndpoint {
                address: a.parse().map_err(|_| a.into_boxed_str()),
                ready,
                serving,
                terminating,
                pod: pod.clone(),
            }));
        }
        EndpointSlice {
            name: metadata.name.unwrap_or_default(),
            namespace: metadata.namespace,
            service,
            fqdn: slice.address_type == "FQDN",
            ports: ports.collect(),
            endpoints: endpoints.into_boxed_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_routing_reads_and_applies_condition_defaults() {
        let slice: discovery::EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web", "other": "x"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "appProtocol": "kubernetes.io/h2c"}],
            "endpoints": [
                {"addresses": ["10.0.0.1", "10.0.0.2"], "nodeName": "n1",
                 "conditions": {"ready": false, "terminating": true},
                 "targetRef": {"kind": "Pod", "name": "web-a"}},
                {"addresses": ["not-an-ip"]},
            ],
        }))
        .expect("valid slice");
        let slice = EndpointSlice::from(slice);
        assert_eq!(slice.name, "web-1");
        assert_eq!(slice.service.as_deref(), Some("web"));
        assert!(!slice.fqdn);
        assert_eq!(
            slice.ports[0].app_protocol.as_deref(),
            Some("kubernetes.io/h2c")
        );
        assert_eq!(slice.endpoints.len(), 3);
        let first = &slice.endpoints[0];
        assert_eq!(first.address, Ok("10.0.0.1".parse().expect("ip")));
        // serving defaults to ready; an absent conditions object means ready.
        assert!((!first.ready, !first.serving, first.terminating) == (true, true, true));
        assert_eq!(first.pod.as_deref(), Some("web-a"));
        assert_eq!(slice.endpoints[1].pod.as_deref(), Some("web-a"));
        let bare = &slice.endpoints[2];
        assert_eq!(bare.address, Err("not-an-ip".into()));
        assert!(bare.ready && bare.serving && !bare.terminating && bare.pod.is_none());
    }
}
