//! Hot reload of the manifests directory.

use e2e::manifests::{backend, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{Echo, Pier};
use http::StatusCode;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// pier promises to apply a file change within 1 s; the tests allow 2 s of polling.
const RELOAD_WITHIN: Duration = Duration::from_secs(2);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn ingress(name: &str, host: &str, path: &str, service: &str) -> String {
    Ingress::new(NAMESPACE, name)
        .route(host, path, PathType::Prefix, service)
        .to_yaml()
}

async fn expect_echo(pier: &Pier, host: &str, path: &str, name: &str, step: &str) {
    match pier.wait_for_echo(host, path, name, RELOAD_WITHIN).await {
        Ok(took) => println!("{step}: applied after {took:?}"),
        Err(e) => panic!("{step}: {e}"),
    }
}

async fn expect_status(pier: &Pier, host: &str, path: &str, status: u16, step: &str) {
    match pier
        .wait_for_status(host, path, status, RELOAD_WITHIN)
        .await
    {
        Ok(took) => println!("{step}: applied after {took:?}"),
        Err(e) => panic!("{step}: {e}"),
    }
}

/// Asserts `host` keeps answering with echo `name` on every request during `period`.
async fn stays_on(pier: &Pier, host: &str, name: &str, period: Duration, step: &str) {
    let started = Instant::now();
    while started.elapsed() < period {
        let reply = pier.get(host, "/").await.unwrap();
        assert!(
            reply.status == StatusCode::OK && reply.echo_name().as_deref() == Some(name),
            "{step}: {host} stopped answering with {name}: {}",
            reply.summary()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn add_modify_replace_delete() {
    let first = Echo::start(ip(41), "first").await;
    let second = Echo::start(ip(42), "second").await;
    let pier = Pier::start(&[(
        "backends.yaml",
        backend(NAMESPACE, "svc", &[Endpoint::ready(first.addr())]),
    )])
    .await;
    let reply = pier.get("reload.example", "/").await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "before: {}",
        reply.summary()
    );

    pier.write(
        "ingress.yaml",
        &ingress("reload", "reload.example", "/", "svc"),
    );
    expect_echo(&pier, "reload.example", "/", "first", "add Ingress file").await;

    pier.write(
        "backends.yaml",
        &backend(NAMESPACE, "svc", &[Endpoint::ready(second.addr())]),
    );
    expect_echo(&pier, "reload.example", "/", "second", "modify endpoints").await;
    // Once switched, it stays switched.
    for _ in 0..5 {
        let reply = pier.get("reload.example", "/").await.unwrap();
        assert_eq!(
            reply.echo_name().as_deref(),
            Some("second"),
            "{}",
            reply.summary()
        );
    }

    pier.write_atomic(
        "ingress.yaml",
        &ingress("reload", "renamed.example", "/", "svc"),
    );
    expect_echo(
        &pier,
        "renamed.example",
        "/",
        "second",
        "atomic replace (new host)",
    )
    .await;
    expect_status(
        &pier,
        "reload.example",
        "/",
        404,
        "atomic replace (old host gone)",
    )
    .await;

    pier.write_atomic(
        "backends.yaml",
        &backend(NAMESPACE, "svc", &[Endpoint::ready(first.addr())]),
    );
    expect_echo(
        &pier,
        "renamed.example",
        "/",
        "first",
        "atomic replace of endpoints",
    )
    .await;

    pier.remove("ingress.yaml");
    expect_status(&pier, "renamed.example", "/", 404, "delete Ingress file").await;
}

#[tokio::test]
async fn broken_yaml_only_affects_its_own_file() {
    let echo = Echo::start(ip(43), "steady").await;
    let pier = Pier::start(&[
        (
            "backends.yaml",
            backend(NAMESPACE, "svc", &[Endpoint::ready(echo.addr())]),
        ),
        ("good.yaml", ingress("good", "good.example", "/", "svc")),
        ("prev.yaml", ingress("prev", "prev.example", "/", "svc")),
    ])
    .await;
    expect_echo(&pier, "good.example", "/", "steady", "initial good").await;
    expect_echo(&pier, "prev.example", "/", "steady", "initial prev").await;

    // A broken file appears next to good ones. A new good file written after it proves the
    // reload that saw the broken file has been applied.
    pier.write(
        "broken.yaml",
        "kind: Ingress\nmetadata: [this is: {not valid yaml\n",
    );
    pier.write("new1.yaml", &ingress("new1", "new1.example", "/", "svc"));
    expect_echo(
        &pier,
        "new1.example",
        "/",
        "steady",
        "good file next to a broken one",
    )
    .await;
    stays_on(
        &pier,
        "good.example",
        "steady",
        Duration::from_millis(300),
        "broken file",
    )
    .await;
    stays_on(
        &pier,
        "prev.example",
        "steady",
        Duration::from_millis(100),
        "broken file",
    )
    .await;

    // A previously good file becomes broken: its routes keep being served.
    // Atomically, so pier never sees a half-written (e.g. empty, hence valid) version.
    pier.write_atomic(
        "prev.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nspec: [\n",
    );
    pier.write("new2.yaml", &ingress("new2", "new2.example", "/", "svc"));
    expect_echo(
        &pier,
        "new2.example",
        "/",
        "steady",
        "good file after breaking one",
    )
    .await;
    stays_on(
        &pier,
        "prev.example",
        "steady",
        Duration::from_millis(300),
        "broken prev",
    )
    .await;
    stays_on(
        &pier,
        "good.example",
        "steady",
        Duration::from_millis(100),
        "broken prev",
    )
    .await;

    let reply = pier.admin_get("/readyz").await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "/readyz with broken files: {}",
        reply.summary()
    );

    // Fixing it applies the fixed content.
    pier.write("prev.yaml", &ingress("prev", "fixed.example", "/", "svc"));
    expect_echo(&pier, "fixed.example", "/", "steady", "broken file fixed").await;
    expect_status(
        &pier,
        "prev.example",
        "/",
        404,
        "broken file fixed (old host gone)",
    )
    .await;
}
