//! Load-balancing policies through the `pier` binary, configured by Ingress annotations.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{Echo, HttpClient, Pier, Reply};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

async fn echoes(first_ip: u8, delays: &[u64]) -> Vec<Echo> {
    named_echoes("ep", first_ip, delays).await
}

async fn named_echoes(prefix: &str, first_ip: u8, delays: &[u64]) -> Vec<Echo> {
    let mut v = Vec::new();
    for (i, delay) in delays.iter().enumerate() {
        let ip = Ipv4Addr::new(127, 0, 0, first_ip + i as u8);
        let addr = SocketAddr::from((ip, e2e::free_port_on(ip)));
        v.push(Echo::start_with(addr, &format!("{prefix}{i}"), *delay, 200).await);
    }
    v
}

fn ready(echoes: &[Echo]) -> Vec<Endpoint> {
    echoes.iter().map(|e| Endpoint::ready(e.addr())).collect()
}

async fn start(echoes: &[Echo], annotations: &[(&str, &str)]) -> Pier {
    let mut ingress = Ingress::new(NAMESPACE, "lb").route("lb.test", "/", PathType::Prefix, "pool");
    for (k, v) in annotations {
        ingress = ingress.annotation(k, v);
    }
    Pier::start(&[
        (
            "backends.yaml",
            join(&[backend(NAMESPACE, "pool", &ready(echoes))]),
        ),
        ("ingress.yaml", ingress.to_yaml()),
    ])
    .await
}

async fn get(pier: &Pier, headers: &[(&str, &str)]) -> Reply {
    let client = HttpClient::new();
    let reply = client
        .request(
            http::Method::GET,
            pier.http_addr(),
            Some("lb.test"),
            "/",
            headers,
            bytes::Bytes::new(),
        )
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "{}", reply.summary());
    reply
}

/// Requests per endpoint name with `concurrency` clients sending `total` requests.
async fn spread(pier: &Pier, concurrency: usize, total: usize) -> HashMap<String, usize> {
    let client = HttpClient::new();
    let addr = pier.http_addr();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut names = Vec::new();
            for _ in 0..total / concurrency {
                let r = client.get(addr, "lb.test", "/").await.expect("request");
                assert_eq!(r.status, 200, "{}", r.summary());
                names.push(r.echo_name().expect("echo answer"));
            }
            names
        }));
    }
    let mut counts = HashMap::new();
    for t in tasks {
        for n in t.await.expect("task") {
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn least_request_avoids_the_slow_endpoint() {
    // ep2 answers 10× slower than ep0 and ep1.
    let eps = echoes(121, &[3, 3, 30]).await;
    let rr = start(&eps, &[]).await;
    let rr_slow = spread(&rr, 8, 240).await.get("ep2").copied().unwrap_or(0);
    drop(rr);
    let lr = start(&eps, &[("pier.dev/load-balance", "least-request")]).await;
    let lr_slow = spread(&lr, 8, 240).await.get("ep2").copied().unwrap_or(0);
    assert!(
        (lr_slow as f64) < 0.6 * rr_slow as f64,
        "least-request sent {lr_slow} to the slow endpoint, round-robin {rr_slow}"
    );
}

#[tokio::test]
async fn consistent_hash_keeps_each_user_on_one_endpoint() {
    let eps = echoes(131, &[0, 0, 0]).await;
    let pier = start(
        &eps,
        &[
            ("pier.dev/load-balance", "consistent-hash"),
            ("pier.dev/hash-by", "header:x-user"),
        ],
    )
    .await;
    let mut owners = HashMap::new();
    for round in 0..3 {
        for user in 0..30 {
            let u = format!("u{user}");
            let name = get(&pier, &[("x-user", &u)])
                .await
                .echo_name()
                .expect("echo");
            let first = owners.entry(u.clone()).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "{u} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(distinct.len() > 1, "30 users all hashed to one endpoint");
}

#[tokio::test]
async fn cookie_affinity_pins_a_client() {
    let eps = echoes(141, &[0, 0, 0]).await;
    let pier = start(&eps, &[("pier.dev/affinity", "cookie")]).await;
    let first = get(&pier, &[]).await;
    let cookie = first
        .header("set-cookie")
        .expect("affinity cookie set")
        .to_string();
    assert!(
        cookie.starts_with("pier-affinity=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("cookie pair").to_string();
    let pinned = first.echo_name();
    for _ in 0..15 {
        let r = get(&pier, &[("cookie", &pair)]).await;
        assert_eq!(r.echo_name(), pinned);
        assert!(
            r.header("set-cookie").is_none(),
            "cookie re-set while valid"
        );
    }
}

#[tokio::test]
async fn canary_by_weight_and_header() {
    let stable = named_echoes("stable", 151, &[0]).await;
    let canary = named_echoes("canary", 152, &[0]).await;
    let primary = Ingress::new(NAMESPACE, "main").route("lb.test", "/", PathType::Prefix, "stable");
    let canary_ing = |weight: &str| {
        Ingress::new(NAMESPACE, "main-canary")
            .route("lb.test", "/", PathType::Prefix, "canary")
            .annotation("pier.dev/canary", "true")
            .annotation("pier.dev/canary-weight", weight)
            .annotation("pier.dev/canary-by-header", "x-canary")
            .to_yaml()
    };
    let pier = Pier::start(&[
        (
            "backends.yaml",
            join(&[
                backend(NAMESPACE, "stable", &ready(&stable)),
                backend(NAMESPACE, "canary", &ready(&canary)),
            ]),
        ),
        ("main.yaml", primary.to_yaml()),
        ("canary.yaml", canary_ing("0")),
    ])
    .await;
    let counts = spread(&pier, 4, 80).await;
    assert_eq!(
        counts.get("stable0"),
        Some(&80),
        "weight 0 sends nothing to the canary: {counts:?}"
    );
    let name = |r: Reply| r.echo_name().expect("echo");
    assert_eq!(name(get(&pier, &[("x-canary", "always")]).await), "canary0");
    assert_eq!(name(get(&pier, &[("x-canary", "never")]).await), "stable0");

    pier.write("canary.yaml", &canary_ing("30"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let counts = spread(&pier, 4, 400).await;
    let share = counts.get("canary0").copied().unwrap_or(0) as f64 / 400.0;
    assert!(
        (share - 0.3).abs() < 0.08,
        "canary share {share:.2} for weight 30: {counts:?}"
    );
    assert_eq!(name(get(&pier, &[("x-canary", "never")]).await), "stable0");
}

#[tokio::test]
async fn service_client_ip_affinity_is_honoured() {
    let eps = echoes(161, &[0, 0, 0]).await;
    let backends = join(&[backend(NAMESPACE, "pool", &ready(&eps))]).replacen(
        "type: ClusterIP",
        "type: ClusterIP\n  sessionAffinity: ClientIP",
        1,
    );
    assert!(backends.contains("sessionAffinity"), "{backends}");
    let ingress = Ingress::new(NAMESPACE, "lb").route("lb.test", "/", PathType::Prefix, "pool");
    let pier = Pier::start(&[
        ("backends.yaml", backends),
        ("ingress.yaml", ingress.to_yaml()),
    ])
    .await;
    // Every request comes from 127.0.0.1: all of them reach one endpoint.
    let counts = spread(&pier, 4, 60).await;
    assert_eq!(
        counts.len(),
        1,
        "ClientIP affinity spread one client: {counts:?}"
    );
}

#[tokio::test]
async fn slow_start_ramps_a_new_endpoint() {
    let eps = echoes(171, &[0, 0]).await;
    let ingress = Ingress::new(NAMESPACE, "lb")
        .route("lb.test", "/", PathType::Prefix, "pool")
        .annotation("pier.dev/slow-start", "60s")
        .to_yaml();
    let pier = Pier::start(&[
        (
            "backends.yaml",
            join(&[backend(NAMESPACE, "pool", &ready(&eps[..1]))]),
        ),
        ("ingress.yaml", ingress),
    ])
    .await;
    // ep1 joins an existing Service: within its 60 s window it starts near 10 % weight.
    pier.write(
        "backends.yaml",
        &join(&[backend(NAMESPACE, "pool", &ready(&eps))]),
    );
    e2e::poll_until(Duration::from_secs(3), || async {
        let r = pier.get("lb.test", "/").await.map_err(|e| e.to_string())?;
        match r.echo_name().as_deref() {
            Some("ep1") => Ok(()),
            other => Err(format!("answered by {other:?}")),
        }
    })
    .await
    .expect("the new endpoint receives traffic");
    let counts = spread(&pier, 2, 300).await;
    let new = counts.get("ep1").copied().unwrap_or(0);
    assert!(
        (5..=75).contains(&new),
        "new endpoint got {new} of 300 while slow-starting (equal share would be 150)"
    );
}

#[tokio::test]
async fn random_spreads_over_every_endpoint() {
    let eps = echoes(181, &[0, 0, 0]).await;
    let pier = start(&eps, &[("pier.dev/load-balance", "random")]).await;
    let counts = spread(&pier, 3, 300).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|n| (60..=140).contains(n)),
        "random should give each of 3 endpoints about 100 of 300: {counts:?}"
    );
}
