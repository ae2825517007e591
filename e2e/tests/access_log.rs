//! The access log: one line per request on standard output, from the fast path (HTTP/1.1
//! connections and HTTP/2 streams) and from the general path alike, with what an operator
//! looks for; nothing when it is off.

use bytes::Bytes;
use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::raw::RawConnection;
use e2e::{Echo, Pier};
use http_body_util::Full;
use std::net::Ipv4Addr;
use std::time::Duration;

fn manifests(echo: &Echo) -> Vec<(&'static str, String)> {
    vec![(
        "access.yaml",
        join(&[
            backend(NAMESPACE, "logged", &[Endpoint::ready(echo.addr())]),
            Ingress::new(NAMESPACE, "logged")
                .route("log.example", "/", PathType::Prefix, "logged")
                .to_yaml(),
        ]),
    )]
}

/// One HTTP/1.1 request on a new connection; returns the status.
async fn http1(pier: &Pier, request: &str) -> u16 {
    let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();
    conn.send(request.as_bytes()).await.unwrap();
    conn.read_response(false).await.unwrap().status
}

/// The access-log lines written so far, parsed.
fn entries(pier: &Pier) -> Vec<serde_json::Value> {
    pier.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("uri").is_some())
        .collect()
}

#[tokio::test]
async fn every_request_gets_one_line_from_either_path() {
    let echo = Echo::start(Ipv4Addr::new(127, 0, 0, 81), "logged").await;
    let pier = Pier::start_with_args(&manifests(&echo), &["--access-log", "json"]).await;

    let get = "GET /a/b?c=1 HTTP/1.1\r\nHost: log.example\r\n\r\n";
    let post = "POST /form HTTP/1.1\r\nHost: log.example\r\nContent-Length: 2\r\n\r\nhi";
    let unknown = "GET /x HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n";
    assert_eq!(http1(&pier, get).await, 200);
    assert_eq!(http1(&pier, post).await, 200);
    assert_eq!(http1(&pier, unknown).await, 404);
    // HTTP/2 with prior knowledge: a stream with a small body is the fast path's, one with a
    // body larger than the fast path buffers the general path's.
    let mut sender = e2e::client::h2c_connect(pier.http_addr()).await.unwrap();
    let request = http::Request::get("http://log.example/over/h2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    let request = http::Request::put("http://log.example/put/h2")
        .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    assert_eq!(pier.general_path_counts().await, vec![]);
    assert_eq!(
        pier.general_path_stream_counts().await,
        vec![("large request body".to_string(), 1)]
    );

    let found = e2e::poll_until(Duration::from_secs(5), || async {
        let lines = entries(&pier);
        if lines.len() >= 5 {
            Ok(lines)
        } else {
            Err(format!(
                "{} access lines so far:\n{}",
                lines.len(),
                pier.stdout()
            ))
        }
    })
    .await
    .unwrap();
    assert_eq!(found.len(), 5, "one line per request: {found:#?}");
    let line = |uri: &str| {
        found
            .iter()
            .find(|v| v["uri"] == uri)
            .unwrap_or_else(|| panic!("no line for {uri}: {found:#?}"))
            .clone()
    };
    let upstream = echo.addr().to_string();
    let g = line("/a/b?c=1");
    assert_eq!(
        (
            &g["method"],
            &g["host"],
            &g["status"],
            &g["route"],
            &g["upstream"]
        ),
        (
            &"GET".into(),
            &"log.example".into(),
            &200.into(),
            &format!("{NAMESPACE}/logged").into(),
            &upstream.clone().into()
        ),
        "{g}"
    );
    assert_eq!(g["client"], "127.0.0.1");
    assert!(g["bytes"].as_u64().unwrap() > 0, "{g}");
    assert!(g["duration_ms"].as_f64().unwrap() > 0.0, "{g}");
    assert_eq!(line("/form")["method"], "POST");
    let n = line("/x");
    assert_eq!(
        (&n["status"], &n["route"], &n["upstream"]),
        (&404.into(), &"-".into(), &"-".into())
    );
    for uri in ["/over/h2", "/put/h2"] {
        let h2 = line(uri);
        assert_eq!(
            (&h2["status"], &h2["upstream"], &h2["host"]),
            (&200.into(), &upstream.clone().into(), &"log.example".into()),
            "{h2}"
        );
        assert!(h2["bytes"].as_u64().unwrap() > 0, "{h2}");
    }
}

#[tokio::test]
async fn off_by_default() {
    let echo = Echo::start(Ipv4Addr::new(127, 0, 0, 82), "quiet").await;
    let pier = Pier::start(&manifests(&echo)).await;
    let get = "GET / HTTP/1.1\r\nHost: log.example\r\n\r\n";
    assert_eq!(http1(&pier, get).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pier.log_contains("\"uri\"") && !pier.log_contains("uri="),
        "no access line without --access-log:\n{}",
        pier.logs()
    );
}
