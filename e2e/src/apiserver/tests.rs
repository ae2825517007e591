//! The test API server through kube-rs, as pier uses it.

use super::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, watcher, Event};
use serde_json::json;
use std::time::Duration;

fn ingress(name: &str) -> Ingress {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "ingressClassName": "pier" },
    }))
    .expect("valid Ingress")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_status_and_conflicts() {
    let server = ApiServer::start().await;
    let api: Api<Ingress> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &ingress("a"))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.clone().expect("rv");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert!(
        api.create(&PostParams::default(), &ingress("a"))
            .await
            .is_err(),
        "AlreadyExists"
    );

    // Status goes through /status only; the main resource ignores it and vice versa.
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    let patched = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    assert_eq!(
        patched
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("10.0.0.1")
    );
    let spec_and_status =
        json!({"spec": {"ingressClassName": "other"}, "status": {"loadBalancer": {}}});
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(&spec_and_status),
        )
        .await
        .expect("patch");
    assert_eq!(
        patched.spec.as_ref().unwrap().ingress_class_name.as_deref(),
        Some("other")
    );
    assert!(
        patched
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .is_some(),
        "status kept"
    );

    // A stale resourceVersion is a conflict.
    let mut stale = created.clone();
    stale.metadata.resource_version = Some(rv);
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .expect_err("conflict");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));

    assert_eq!(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    api.delete("a", &Default::default()).await.expect("delete");
    assert!(api.get_opt("a").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_filter_lists() {
    let server = ApiServer::start().await;
    let api: Api<Secret> = Api::namespaced(server.client(), "default");
    for (name, type_) in [("tls", "kubernetes.io/tls"), ("opaque", "Opaque")] {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "type": type_})).unwrap();
        api.create(&PostParams::default(), &secret)
            .await
            .expect("create");
    }
    let listed = api
        .list(&ListParams::default().fields("type=kubernetes.io/tls"))
        .await
        .expect("list");
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["tls"]);
}

/// Next watcher event that is not an error, within 10 s.
async fn next<S: futures::Stream<Item = watcher::Result<Event<Ingress>>> + Unpin>(
    stream: &mut S,
) -> Event<Ingress> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(event))) => return event,
            Ok(Some(Err(_))) => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(None) => panic!("watch stream ended"),
            Err(_) => panic!("no watch event within 10 s"),
        }
    }
}

fn name(event: &Event<Ingress>) -> String {
    match event {
        Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => {
            o.metadata.name.clone().unwrap_or_default()
        }
        Event::Init => "<init>".into(),
        Event::InitDone => "<done>".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_and_relist_after_410() {
    let mut server = ApiServer::start().await;
    let api: Api<Ingress> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &ingress("a"))
        .await
        .expect("create");
    let mut stream = Box::pin(watcher(api.clone(), watcher::Config::default()));
    let listed: Vec<String> = [
        next(&mut stream).await,
        next(&mut stream).await,
        next(&mut stream).await,
    ]
    .iter()
    .map(name)
    .collect();
    assert_eq!(listed, vec!["<init>", "a", "<done>"]);

    api.create(&PostParams::default(), &ingress("b"))
        .await
        .expect("create");
    assert!(
        matches!(next(&mut stream).await, Event::Apply(o) if o.metadata.name.as_deref() == Some("b"))
    );
    api.delete("a", &Default::default()).await.expect("delete");
    assert!(
        matches!(next(&mut stream).await, Event::Delete(o) if o.metadata.name.as_deref() == Some("a"))
    );

    // Away, changed and compacted: the resumed watch gets 410 and the watcher re-lists.
    server.stop().await;
    server
        .state()
        .create(RESOURCES[5], "default", json!({"metadata": {"name": "c"}}))
        .expect("create c");
    server.state().compact();
    server.restart().await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("<done>") {
        seen.push(name(&next(&mut stream).await));
    }
    assert_eq!(seen, vec!["<init>", "b", "c", "<done>"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_in_pages() {
    let server = ApiServer::start().await;
    let api: Api<Ingress> = Api::namespaced(server.client(), "default");
    for name in ["a", "b", "c", "d", "e"] {
        api.create(&PostParams::default(), &ingress(name))
            .await
            .expect("create");
    }
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("list");
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rv = first.metadata.resource_version.clone();
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|i| i.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut token = Some(token);
    while let Some(t) = token.take() {
        let page = api
            .list(&ListParams::default().limit(2).continue_token(&t))
            .await
            .expect("next page");
        assert_eq!(
            page.metadata.resource_version, rv,
            "every page has the list's version"
        );
        names.extend(
            page.items
                .iter()
                .map(|i| i.metadata.name.clone().unwrap_or_default()),
        );
        token = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);

    // kube-rs' watcher pages its initial list and still sees every object.
    let mut seen = Vec::new();
    let mut events = watcher(api, watcher::Config::default().page_size(2)).boxed();
    while let Some(event) = events.next().await {
        match event.expect("watch event") {
            Event::InitApply(i) => seen.push(i.metadata.name.unwrap_or_default()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
}
