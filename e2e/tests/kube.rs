//! The Kubernetes source end to end: the real `pier` binary against the test API server,
//! objects created and changed through kube-rs.

use e2e::apiserver::{apply_yaml, delete_yaml};
use e2e::manifests::{
    backend, endpoint_slices, ingress_class, join, Endpoint, Ingress, PathType, NAMESPACE,
};
use e2e::{poll_until, ApiServer, Echo, Pier};
use k8s_openapi::api::networking::v1::Ingress as KIngress;
use kube::api::Api;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Generous: a change normally shows in well under a second.
const WITHIN: Duration = Duration::from_secs(10);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// The value of an unlabelled metric (or the `_count` of a histogram) on `/metrics`.
async fn metric(pier: &Pier, name: &str) -> Option<f64> {
    let text = pier.admin_get("/metrics").await.ok()?.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn wait_metric(pier: &Pier, name: &str, want: f64) {
    let result = poll_until(WITHIN, || async {
        match metric(pier, name).await {
            Some(v) if v == want => Ok(()),
            other => Err(format!("{name} = {other:?}, want {want}")),
        }
    })
    .await;
    if let Err(e) = result {
        panic!("{e}\n{}", pier.logs());
    }
}

fn site(name: &str, host: &str, service: &str) -> String {
    Ingress::new(NAMESPACE, name)
        .route(host, "/", PathType::Prefix, service)
        .to_yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_routes_follow_endpoints_and_deletion() {
    let server = ApiServer::start().await;
    let client = server.client();
    let one = Echo::start(ip(31), "one").await;
    let two = Echo::start(ip(32), "two").await;
    let objects = join(&[
        ingress_class(),
        backend(NAMESPACE, "svc", &[Endpoint::ready(one.addr())]),
        site("site", "k.example", "svc"),
    ]);
    apply_yaml(&client, &objects).await.expect("create objects");
    let pier = Pier::start_kube(server.kubeconfig(), &[]).await;
    pier.wait_for_echo("k.example", "/", "one", WITHIN)
        .await
        .expect("routable");

    // An EndpointSlice change takes effect.
    let moved = join(&endpoint_slices(
        NAMESPACE,
        "svc",
        &[Endpoint::ready(two.addr())],
    ));
    apply_yaml(&client, &moved).await.expect("update slice");
    pier.wait_for_echo("k.example", "/", "two", WITHIN)
        .await
        .expect("new endpoint");

    // Deleting the Ingress removes its routes.
    delete_yaml(&client, &site("site", "k.example", "svc"))
        .await
        .expect("delete");
    pier.wait_for_status("k.example", "/", 404, WITHIN)
        .await
        .expect("404 after delete");

    wait_metric(&pier, "pier_kube_in_sync", 1.0).await;
    let rebuilds = metric(&pier, "pier_config_propagation_seconds_count")
        .await
        .unwrap_or(0.0);
    assert!(
        rebuilds >= 3.0,
        "propagation histogram: {rebuilds} observations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_written_on_our_ingresses_only_and_cleared() {
    let server = ApiServer::start().await;
    let client = server.client();
    let other_class = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: other }
spec: { controller: example.com/other }
"#;
    let theirs = site("theirs", "t.example", "svc")
        .replace("ingressClassName: pier", "ingressClassName: other");
    let objects = join(&[
        ingress_class(),
        other_class.to_string(),
        site("mine", "m.example", "svc"),
        theirs,
    ]);
    apply_yaml(&client, &objects).await.expect("create objects");
    let _pier = Pier::start_kube(
        server.kubeconfig(),
        &["--publish-status-address", "10.0.0.7,lb.example"],
    )
    .await;

    let ingresses: Api<KIngress> = Api::namespaced(client.clone(), NAMESPACE);
    let addresses = |name: &'static str| {
        let ingresses = ingresses.clone();
        async move {
            let ingress = ingresses.get(name).await.map_err(|e| e.to_string())?;
            let list = ingress
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|l| l.ingress)
                .unwrap_or_default();
            Ok::<_, String>(
                list.iter()
                    .map(|a| a.ip.clone().or(a.hostname.clone()).unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
        }
    };
    poll_until(WITHIN, || async {
        match addresses("mine").await? {
            a if a == ["10.0.0.7", "lb.example"] => Ok(()),
            a => Err(format!("status of mine: {a:?}")),
        }
    })
    .await
    .expect("status written");
    assert!(
        addresses("theirs").await.expect("get").is_empty(),
        "another class's Ingress was touched"
    );

    // Moved to the other class: pier stops serving it and clears what it wrote.
    let moved = site("mine", "m.example", "svc")
        .replace("ingressClassName: pier", "ingressClassName: other");
    apply_yaml(&client, &moved).await.expect("change class");
    poll_until(WITHIN, || async {
        match addresses("mine").await? {
            a if a.is_empty() => Ok(()),
            a => Err(format!("status of mine: {a:?}")),
        }
    })
    .await
    .expect("status cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_become_events() {
    let server = ApiServer::start().await;
    let client = server.client();
    let broken = site("broken", "b.example", "svc").replace("path: /", "path: nope");
    apply_yaml(&client, &join(&[ingress_class(), broken]))
        .await
        .expect("create objects");
    let _pier = Pier::start_kube(server.kubeconfig(), &[]).await;
    let events = server.state();
    let events_type = e2e::apiserver::resource_of("v1", "Event").expect("known");
    poll_until(WITHIN, || async {
        let (items, _) = events.list(events_type, Some(NAMESPACE));
        let found = items.iter().any(|e| {
            e["involvedObject"]["name"] == "broken"
                && e["involvedObject"]["kind"] == "Ingress"
                && e["reason"] == "InvalidConfiguration"
                && e["type"] == "Warning"
        });
        if found {
            Ok(())
        } else {
            Err(format!("events: {items:?}"))
        }
    })
    .await
    .expect("an Event for the broken Ingress");
    // De-duplicated: the same diagnostic is not reported again on every rebuild.
    tokio::time::sleep(Duration::from_secs(1)).await;
    apply_yaml(&client, &site("fine", "f.example", "svc"))
        .await
        .expect("unrelated change");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (items, _) = events.list(events_type, Some(NAMESPACE));
    let about_broken = items
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "broken")
        .count();
    assert_eq!(about_broken, 1, "events: {items:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over() {
    let server = ApiServer::start().await;
    let client = server.client();
    apply_yaml(
        &client,
        &join(&[ingress_class(), site("a", "a.example", "svc")]),
    )
    .await
    .expect("create");
    let args = [
        "--publish-status-address",
        "10.0.0.7",
        "--lease-duration",
        "2s",
        "--election-id",
        "pier-e2e",
    ];
    let mut replicas = vec![
        Pier::start_kube(server.kubeconfig(), &args).await,
        Pier::start_kube(server.kubeconfig(), &args).await,
    ];
    let leaders = || async {
        let mut flags = Vec::new();
        for pier in &replicas {
            flags.push(metric(pier, "pier_leader").await == Some(1.0));
        }
        flags
    };
    let leader = poll_until(WITHIN, || async {
        match leaders().await.as_slice() {
            [true, false] => Ok(0),
            [false, true] => Ok(1),
            other => Err(format!("leader flags {other:?}")),
        }
    })
    .await
    .expect("exactly one leader");
    // It stays that way: the follower does not steal a Lease that is being renewed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flags = leaders().await;
    assert_eq!(
        flags.iter().filter(|f| **f).count(),
        1,
        "leader flags {flags:?}"
    );
    assert!(flags[leader]);

    // The leader dies without releasing the Lease (SIGKILL): the other takes over once it
    // expires, and writes status from then on.
    drop(replicas.remove(leader));
    let survivor = &replicas[0];
    wait_metric(survivor, "pier_leader", 1.0).await;
    apply_yaml(&client, &site("b", "b.example", "svc"))
        .await
        .expect("create b");
    let ingresses: Api<KIngress> = Api::namespaced(client.clone(), NAMESPACE);
    poll_until(WITHIN, || async {
        let b = ingresses.get("b").await.map_err(|e| e.to_string())?;
        let lb = b
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .unwrap_or_default();
        match lb.first().and_then(|a| a.ip.as_deref()) {
            Some("10.0.0.7") => Ok(()),
            other => Err(format!("status of b: {other:?}")),
        }
    })
    .await
    .expect("the new leader writes status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_loses_no_routes() {
    let mut server = ApiServer::start().await;
    let client = server.client();
    let one = Echo::start(ip(33), "one").await;
    let objects = join(&[
        ingress_class(),
        backend(NAMESPACE, "svc", &[Endpoint::ready(one.addr())]),
        site("site", "o.example", "svc"),
    ]);
    apply_yaml(&client, &objects).await.expect("create objects");
    let pier = Pier::start_kube(server.kubeconfig(), &[]).await;
    pier.wait_for_echo("o.example", "/", "one", WITHIN)
        .await
        .expect("routable");
    wait_metric(&pier, "pier_kube_in_sync", 1.0).await;

    // The API server goes away: the routes stay, pier reports itself out of sync.
    server.stop().await;
    wait_metric(&pier, "pier_kube_in_sync", 0.0).await;
    for _ in 0..10 {
        let reply = pier.get("o.example", "/").await.expect("proxy answers");
        assert_eq!(
            reply.echo_name().as_deref(),
            Some("one"),
            "{}",
            reply.summary()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pier.admin_get("/readyz")
            .await
            .expect("admin")
            .status
            .as_u16(),
        200
    );

    // Meanwhile an Ingress is added and the history compacted: on return, resuming watches
    // get 410 Gone and pier must re-list to see it.
    let later: serde_json::Value =
        serde_yaml::from_str(&site("later", "l.example", "svc")).expect("yaml");
    let ingress_type =
        e2e::apiserver::resource_of("networking.k8s.io/v1", "Ingress").expect("known");
    server
        .state()
        .create(ingress_type, NAMESPACE, later)
        .expect("create while away");
    server.state().compact();
    server.restart().await;
    pier.wait_for_echo("l.example", "/", "one", Duration::from_secs(15))
        .await
        .expect("re-listed");
    pier.wait_for_echo("o.example", "/", "one", WITHIN)
        .await
        .expect("still routable");
    poll_until(Duration::from_secs(20), || async {
        match metric(&pier, "pier_kube_in_sync").await {
            Some(1.0) => Ok(()),
            other => Err(format!("in sync: {other:?}")),
        }
    })
    .await
    .expect("back in sync");
}
