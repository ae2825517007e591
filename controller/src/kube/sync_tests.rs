//! The sync loop against a scripted watcher: no table before every kind has listed, re-lists
//! replace a kind's objects, deletes apply, and a burst becomes one rebuild.

use super::*;
use crate::kube::coalesce;
use crate::settings::Settings;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressClassSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::ProxyState;

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: (!namespace.is_empty()).then(|| namespace.into()),
        ..ObjectMeta::default()
    }
}

fn ingress(name: &str) -> Object {
    let value = serde_json::json!({
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "ingressClassName": "pier",
            "rules": [{ "host": format!("{name}.example"), "http": { "paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": { "service": { "name": "svc", "port": { "number": 80 } } },
            }]}}],
        },
    });
    Object::Ingress(Arc::new(
        serde_json::from_value::<Ingress>(value).expect("valid"),
    ))
}

fn list(kind: Kind, objects: Vec<Object>) -> Vec<Change> {
    let mut out = vec![Change::Init(kind)];
    out.extend(objects.into_iter().map(Change::InitApply));
    out.push(Change::InitDone(kind));
    out
}

struct Harness {
    tx: mpsc::Sender<Change>,
    controller: Arc<Controller>,
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
}

fn harness() -> Harness {
    let (tx, rx) = mpsc::channel(64);
    let controller = Arc::new(Controller::new(
        Arc::new(ProxyState::default()),
        Settings::default(),
    ));
    let (snap_tx, snapshots) = watch::channel(None);
    tokio::spawn(run(
        rx,
        controller.clone(),
        Arc::new(KubeMetrics::default()),
        snap_tx,
    ));
    Harness {
        tx,
        controller,
        snapshots,
    }
}

impl Harness {
    async fn send(&self, changes: Vec<Change>) {
        for c in changes {
            self.tx.send(c).await.expect("sync loop alive");
        }
    }

    /// Waits for the next snapshot and returns the Ingress names in it.
    async fn next(&mut self) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(5), self.snapshots.changed())
            .await
            .expect("a rebuild within 5 s")
            .expect("sync loop alive");
        let snapshot = self
            .snapshots
            .borrow_and_update()
            .clone()
            .expect("snapshot");
        snapshot
            .ingresses
            .iter()
            .map(|v| v.key.name.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_table_waits_for_every_kind_then_follows_changes() {
    let mut h = harness();
    h.send(list(Kind::Ingress, vec![ingress("a"), ingress("b")]))
        .await;
    h.send(list(Kind::IngressClass, vec![])).await;
    h.send(list(Kind::Service, vec![])).await;
    h.send(list(Kind::EndpointSlice, vec![])).await;
    tokio::time::sleep(coalesce::MAX_DELAY * 2).await;
    assert!(
        !h.controller.is_synced(),
        "ready before the Secrets were listed"
    );
    assert!(h.snapshots.borrow().is_none());

    h.send(list(Kind::Secret, vec![])).await;
    tokio::time::sleep(coalesce::MAX_DELAY * 2).await;
    assert!(
        !h.controller.is_synced(),
        "ready before the BackendPolicies were listed"
    );
    // A CRD that is not installed counts as listed (and empty).
    h.send(vec![Change::Error {
        kind: Kind::BackendPolicy,
        error: "404".into(),
        missing: true,
    }])
    .await;
    assert_eq!(h.next().await, vec!["a", "b"]);
    assert!(h.controller.is_synced());
    let generation = h.controller.proxy.generation();
    assert!(h.controller.proxy.table().virtual_hosts.len() == 2);

    // A burst of changes becomes one rebuild.
    h.send(vec![
        Change::Apply(ingress("c")),
        Change::Delete(ingress("a")),
        Change::Apply(ingress("d")),
    ])
    .await;
    assert_eq!(h.next().await, vec!["b", "c", "d"]);
    assert_eq!(h.controller.proxy.generation(), generation + 1);

    // A re-list (after 410 Gone) replaces the kind: what it does not hold is gone.
    h.send(list(Kind::Ingress, vec![ingress("d"), ingress("e")]))
        .await;
    assert_eq!(h.next().await, vec!["d", "e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_the_last_table() {
    let mut h = harness();
    for kind in Kind::ALL {
        let objects = match kind {
            Kind::Ingress => vec![ingress("a")],
            Kind::IngressClass => vec![Object::IngressClass(Arc::new(IngressClass {
                metadata: meta("", "pier"),
                spec: Some(IngressClassSpec {
                    controller: Some(crate::settings::CONTROLLER_NAME.into()),
                    ..IngressClassSpec::default()
                }),
            }))],
            Kind::Service => vec![Object::Service(Arc::new(Service {
                metadata: meta("default", "svc"),
                ..Service::default()
            }))],
            _ => vec![],
        };
        h.send(list(kind, objects)).await;
    }
    assert_eq!(h.next().await, vec!["a"]);
    h.send(vec![Change::Error {
        kind: Kind::Ingress,
        error: "connection refused".into(),
        missing: false,
    }])
    .await;
    tokio::time::sleep(coalesce::MAX_DELAY * 2).await;
    assert!(
        !h.snapshots.has_changed().expect("alive"),
        "an error must not rebuild"
    );
    assert_eq!(h.controller.proxy.table().virtual_hosts.len(), 1);
    assert!(h.controller.is_synced());
}
