//! The status writer (leader only): `status.loadBalancer.ingress` of every Ingress pier
//! serves, from `--publish-service` or `--publish-status-address`.
//!
//! An Ingress pier no longer serves (deleted class, another class) is cleared when its status
//! still holds exactly our addresses: that is the only sign, surviving leader changes, that we
//! wrote it. Ingresses of other classes with other addresses are never touched.

use super::metrics::KubeMetrics;
use super::sync::{IngressView, Snapshot};
use ::kube::api::{Api, ListParams, Patch, PatchParams};
use ::kube::Client;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the published addresses are re-read (a LoadBalancer gets its IP late; nodes
/// come and go) and every status re-checked, even without changes.
const RESYNC: Duration = Duration::from_secs(10);

/// Where the status addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// `--publish-service ns/name`: a LoadBalancer Service's ingress IPs/hostnames; for a
    /// NodePort Service the nodes' addresses; else the Service's externalIPs.
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
    },
    /// `--publish-status-address`: fixed IPs or hostnames.
    Addresses(Vec<String>),
    /// Neither flag: status is not written.
    Nothing,
}

/// Writes Ingress status while this replica leads.
pub struct StatusWriter {
    client: Client,
    publish: Publish,
    metrics: Arc<KubeMetrics>,
}

impl StatusWriter {
    /// A writer publishing `publish`.
    pub fn new(client: Client, publish: Publish, metrics: Arc<KubeMetrics>) -> StatusWriter {
        StatusWriter {
            client,
            publish,
            metrics,
        }
    }

    /// Runs forever: after every rebuild, every leadership gain and every [`RESYNC`].
    pub async fn run(
        self,
        mut leading: watch::Receiver<bool>,
        mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    ) {
        if self.publish == Publish::Nothing {
            return;
        }
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { return },
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = resync.tick() => {}
            }
            if !*leading.borrow_and_update() {
                continue;
            }
            let Some(snapshot) = snapshots.borrow_and_update().clone() else {
                continue;
            };
            match self.addresses().await {
                Ok(addresses) => self.update_all(&snapshot.ingresses, &addresses).await,
                Err(error) => tracing::warn!(%error, "cannot read the addresses to publish"),
            }
        }
    }

    async fn update_all(
        &self,
        ingresses: &[IngressView],
        addresses: &[IngressLoadBalancerIngress],
    ) {
        for view in ingresses {
            let Some(desired) = desired(view, addresses) else {
                continue;
            };
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), &view.key.namespace);
            let patch = serde_json::json!({
                "status": { "loadBalancer": { "ingress": desired } }
            });
            match api
                .patch_status(
                    &view.key.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    self.metrics.status_updates.inc();
                    tracing::info!(ingress = %view.key, ?desired, "status updated");
                }
                // Deleted meanwhile: nothing to do.
                Err(::kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => tracing::warn!(ingress = %view.key, %error, "cannot update status"),
            }
        }
    }

    /// The addresses to publish now.
    async fn addresses(&self) -> Result<Vec<IngressLoadBalancerIngress>, ::kube::Error> {
        let names = match &self.publish {
            Publish::Nothing => Vec::new(),
            Publish::Addresses(list) => list.clone(),
            Publish::Service { namespace, name } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                match api.get_opt(name).await? {
                    Some(service) => self.service_addresses(&service).await?,
                    None => {
                        tracing::warn!(%namespace, %name, "--publish-service does not exist");
                        Vec::new()
                    }
                }
            }
        };
        Ok(names.iter().map(|n| to_lb_ingress(n)).collect())
    }

    async fn service_addresses(&self, service: &Service) -> Result<Vec<String>, ::kube::Error> {
        let spec = service.spec.clone().unwrap_or_default();
        let mut out = Vec::new();
        match spec.type_.as_deref() {
            Some("LoadBalancer") => {
                let lb = service
                    .status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref());
                for entry in lb.and_then(|lb| lb.ingress.as_ref()).into_iter().flatten() {
                    out.extend(entry.ip.clone().or_else(|| entry.hostname.clone()));
                }
            }
            Some("NodePort") => {
                let nodes: Api<Node> = Api::all(self.client.clone());
                for node in nodes.list(&ListParams::default()).await? {
                    out.extend(node_address(&node));
                }
            }
            _ => {}
        }
        out.extend(spec.external_ips.unwrap_or_default());
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The status an Ingress should get, or `None` when it should be left alone.
pub fn desired(
    view: &IngressView,
    ours: &[IngressLoadBalancerIngress],
) -> Option<Vec<IngressLoadBalancerIngress>> {
    if view.served {
        (view.addresses != ours).then(|| ours.to_vec())
    } else if !ours.is_empty() && view.addresses == ours {
        Some(Vec::new())
    } else {
        None
    }
}

/// An IP goes to `ip`, anything else to `hostname`.
fn to_lb_ingress(address: &str) -> IngressLoadBalancerIngress {
    let is_ip = address.parse::<std::net::IpAddr>().is_ok();
    IngressLoadBalancerIngress {
        ip: is_ip.then(|| address.to_string()),
        hostname: (!is_ip).then(|| address.to_string()),
        ports: None,
    }
}

/// A node's ExternalIP, else its InternalIP.
fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    let of = |t: &str| {
        addresses
            .iter()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
    };
    of("ExternalIP").or_else(|| of("InternalIP"))
}

/// Parses `--publish-status-address a,b` (comma-separated, blanks ignored).
pub fn parse_addresses(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKey;

    fn view(served: bool, addresses: &[&str]) -> IngressView {
        IngressView {
            key: ObjectKey::new("default", "a"),
            served,
            addresses: addresses.iter().map(|a| to_lb_ingress(a)).collect(),
        }
    }

    #[test]
    fn served_ingresses_get_our_addresses_others_are_left_alone() {
        let ours = vec![to_lb_ingress("10.0.0.1"), to_lb_ingress("lb.example")];
        assert_eq!(desired(&view(true, &[]), &ours), Some(ours.clone()));
        assert_eq!(
            desired(&view(true, &["10.0.0.1", "lb.example"]), &ours),
            None
        );
        // Not ours: cleared only when it still shows exactly what we published.
        assert_eq!(
            desired(&view(false, &["10.0.0.1", "lb.example"]), &ours),
            Some(vec![])
        );
        assert_eq!(desired(&view(false, &["192.0.2.9"]), &ours), None);
        assert_eq!(desired(&view(false, &[]), &ours), None);
        assert_eq!(desired(&view(false, &[]), &[]), None);
    }

    #[test]
    fn addresses_are_split_into_ips_and_hostnames() {
        assert_eq!(
            parse_addresses(" 10.0.0.1, ,lb.example"),
            vec!["10.0.0.1", "lb.example"]
        );
        assert_eq!(to_lb_ingress("10.0.0.1").ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            to_lb_ingress("lb.example").hostname.as_deref(),
            Some("lb.example")
        );
        assert_eq!(to_lb_ingress("::1").ip.as_deref(), Some("::1"));
    }
}
