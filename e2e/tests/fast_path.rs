//! The HTTP/1.1 fast path through the real binary, byte for byte: request bodies, chunked,
//! close-delimited and interim responses, pipelining, hop-by-hop fields, a pooled upstream
//! connection that the endpoint closed, a broken endpoint, and what goes to the general path;
//! then the same endpoint behind HTTP/2 streams, which the fast path serves too.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::raw::RawConnection;
use e2e::{Echo, Pier};
use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "fast.example";
/// Length of the `/big` body.
const BIG: usize = 200_000;

/// A backend answering by path, to make pier face every framing:
/// - `/echo-body`: 200 with the request body, plus `x-seen-connection` (the request's
///   `Connection` field or `-`), `x-seen-hop` (`x-hop` or `-`) and `x-nth` (requests so far on
///   this connection);
/// - `/chunked`: a chunked body with a trailer;
/// - `/until-close`: a body delimited by closing the connection;
/// - `/early-hints`: a 103 before the 200;
/// - `/once-per-connection`: answered on a connection's first request only; a later request on
///   the same connection makes it close without an answer;
/// - `/no-content`: 204;
/// - `/big`: 200 with a 200,000-byte body (larger than an HTTP/2 stream's first window);
/// - `/broken-body`: announces 10 bytes, sends 3, closes;
/// - `/garbage`: not HTTP at all;
/// - `/silent`: no answer at all.
async fn scripted_backend(ip: Ipv4Addr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_connection(stream));
        }
    });
    addr
}

async fn serve_connection(stream: TcpStream) {
    let mut conn = RawConnection::accepted(stream);
    let mut nth = 0;
    while let Ok(Some(request)) = conn.read_request().await {
        nth += 1;
        let field = |name: &str| request.header(name).unwrap_or("-").to_string();
        let body = request.body.clone();
        let reply: Vec<u8> = match request.target.as_str() {
            "/echo-body" => {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nx-seen-connection: {}\r\n\
                     x-seen-hop: {}\r\nx-nth: {nth}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
                    body.len(),
                    field("connection"),
                    field("x-hop"),
                )
                .into_bytes();
                r.extend_from_slice(&body);
                r
            }
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
                .to_vec(),
            "/until-close" => {
                let _ = conn
                    .send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
                    .await;
                let _ = conn.send(b"close").await;
                return;
            }
            "/early-hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
                HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
            "/once-per-connection" if nth > 1 => return,
            "/once-per-connection" => {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                    .into_bytes()
                    .into_iter()
                    .chain(body)
                    .collect()
            }
            "/no-content" => b"HTTP/1.1 204 No Content\r\nx-empty: yes\r\n\r\n".to_vec(),
            "/big" => {
                let mut r =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
                r.extend((0..BIG).map(|i| b'a' + (i % 26) as u8));
                r
            }
            "/broken-body" => {
                let _ = conn
                    .send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                    .await;
                return;
            }
            "/garbage" => b"SSH-2.0-nonsense\r\n\r\n".to_vec(),
            "/silent" => {
                // Read the request, never answer (until the test ends).
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                return;
            }
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        };
        if conn.send(&reply).await.is_err() {
            return;
        }
    }
}

async fn pier_with(addr: SocketAddr) -> Pier {
    let manifests = join(&[
        backend(NAMESPACE, "scripted", &[Endpoint::ready(addr)]),
        Ingress::new(NAMESPACE, "fast")
            .annotation("pier.dev/read-timeout", "400ms")
            .route(HOST, "/", PathType::Prefix, "scripted")
            .to_yaml(),
    ]);
    Pier::start(&[("fast.yaml", manifests)]).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

/// What the general path served so far, as `(reason, count)`.
async fn general_path_counts(pier: &Pier) -> Vec<(String, u64)> {
    pier.general_path_counts().await
}

#[tokio::test]
async fn bodies_framings_and_pipelining_on_one_connection() {
    let backend = scripted_backend(Ipv4Addr::new(127, 0, 0, 71)).await;
    let pier = pier_with(backend).await;
    let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();

    // A request body, and hop-by-hop fields that must not reach the endpoint.
    conn.send(
        format!(
            "POST /echo-body HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, X-Hop\r\n\
             X-Hop: secret\r\nContent-Length: 11\r\n\r\nhello world"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("x-seen-connection"), Some("-"), "{r:?}");
    assert_eq!(r.header("x-seen-hop"), Some("-"), "{r:?}");
    assert_eq!(
        r.header("connection"),
        None,
        "upstream's keep-alive is not passed on"
    );
    assert_eq!(r.header("keep-alive"), None);

    // Chunked: relayed as chunks, and the connection is still usable afterwards.
    conn.send(get("/chunked").as_bytes()).await.unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));

    // An interim response is passed on before the final one.
    conn.send(get("/early-hints").as_bytes()).await.unwrap();
    let interim = conn.read_response(false).await.unwrap();
    assert_eq!(interim.status, 103);
    assert_eq!(interim.header("link"), Some("</a.css>; rel=preload"));
    let r = conn.read_response(false).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    // Two pipelined requests in one write: two answers, in order; the upstream connection
    // is reused between them (x-nth counts requests per upstream connection).
    let two = format!(
        "POST /echo-body HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\n\r\none\
         POST /echo-body HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\n\r\ntwo"
    );
    conn.send(two.as_bytes()).await.unwrap();
    let first = conn.read_response(false).await.unwrap();
    let second = conn.read_response(false).await.unwrap();
    assert_eq!((first.text(), second.text()), ("one".into(), "two".into()));
    let nth = |r: &e2e::raw::RawResponse| r.header("x-nth").unwrap_or("0").parse::<u32>().unwrap();
    assert_eq!(
        nth(&second),
        nth(&first) + 1,
        "pooled upstream connection not reused"
    );

    // HEAD: no body even though the endpoint announces one.
    conn.send(format!("HEAD /echo-body HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let r = conn.read_response(true).await.unwrap();
    assert_eq!(r.status, 200);

    // After more than a second idle the connection has given its buffers back and waits
    // with a small one: a request larger than that small buffer still arrives whole.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let big = "x".repeat(3000);
    conn.send(
        format!(
            "POST /echo-body HTTP/1.1\r\nHost: {HOST}\r\nX-Padding: {big}\r\nContent-Length: 4\r\n\r\nidle"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "idle"));

    // A close-delimited body: the client gets all of it and `Connection: close`.
    conn.send(get("/until-close").as_bytes()).await.unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "until close");
    assert!(conn.is_closed().await);

    assert!(
        general_path_counts(&pier).await.is_empty(),
        "all of this is the fast path's: {:?}",
        general_path_counts(&pier).await
    );
    // The count is live: a request the fast path does not serve shows up in it.
    let mut old = RawConnection::connect(pier.http_addr()).await.unwrap();
    old.send(format!("GET /chunked HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(old.read_response(false).await.unwrap().status, 200);
    assert_eq!(
        general_path_counts(&pier).await,
        vec![("HTTP/1.0".to_string(), 1)]
    );
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_endpoint_is_replaced_transparently() {
    let backend = scripted_backend(Ipv4Addr::new(127, 0, 0, 72)).await;
    let pier = pier_with(backend).await;
    let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();
    // Every second request meets a pooled connection that the endpoint closes on reading it;
    // even a POST (not idempotent) is resent, because nothing of it was processed.
    for i in 0..10 {
        let body = format!("body-{i}");
        conn.send(
            format!(
                "POST /once-per-connection HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let r = conn.read_response(false).await.unwrap();
        assert_eq!((r.status, r.text()), (200, body), "request {i}");
    }
    assert_eq!(general_path_counts(&pier).await, vec![]);
}

#[tokio::test]
async fn a_broken_endpoint_gets_502_and_the_client_connection_survives() {
    let backend = scripted_backend(Ipv4Addr::new(127, 0, 0, 73)).await;
    let pier = pier_with(backend).await;
    let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();
    conn.send(get("/garbage").as_bytes()).await.unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.header("server"), Some("pier"));
    conn.send(get("/chunked").as_bytes()).await.unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(general_path_counts(&pier).await, vec![]);
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_gets_504_after_the_read_timeout() {
    let backend = scripted_backend(Ipv4Addr::new(127, 0, 0, 75)).await;
    let pier = pier_with(backend).await;
    let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();
    let started = std::time::Instant::now();
    conn.send(get("/silent").as_bytes()).await.unwrap();
    let r = conn.read_response(false).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.header("server"), Some("pier"));
    assert!(
        waited >= std::time::Duration::from_millis(400)
            && waited < std::time::Duration::from_secs(3),
        "answered after {waited:?} (read timeout 400ms)"
    );
    // The client connection is still good.
    conn.send(get("/chunked").as_bytes()).await.unwrap();
    assert_eq!(conn.read_response(false).await.unwrap().status, 200);
    assert_eq!(general_path_counts(&pier).await, vec![]);
}

#[tokio::test]
async fn what_the_fast_path_does_not_serve_goes_to_the_general_path() {
    let echo = Echo::start(Ipv4Addr::new(127, 0, 0, 74), "echo").await;
    let pier = pier_with(echo.addr()).await;
    let cases: [(&str, &str); 3] = [
        (
            "POST / HTTP/1.1\r\nHost: fast.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "request body with Transfer-Encoding",
        ),
        ("GET / HTTP/1.0\r\nHost: fast.example\r\n\r\n", "HTTP/1.0"),
        (
            "GET http://fast.example/ HTTP/1.1\r\nHost: fast.example\r\n\r\n",
            "not an origin-form target",
        ),
    ];
    for (request, reason) in cases {
        let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();
        conn.send(request.as_bytes()).await.unwrap();
        let r = conn.read_response(false).await.unwrap();
        // The general path serves it: the echo backend answers.
        assert_eq!(r.status, 200, "{reason}: {r:?}");
        assert!(
            r.text().contains("\"name\":\"echo\""),
            "{reason}: {}",
            r.text()
        );
        let counts = general_path_counts(&pier).await;
        assert!(
            counts.iter().any(|(why, n)| why == reason && *n == 1),
            "{reason} not counted: {counts:?}"
        );
    }
}

/// One request on an HTTP/2 connection: status, header fields and the whole body, or what
/// went wrong (a reset stream shows up as an error reading the body).
async fn h2_request<B>(
    sender: &mut hyper::client::conn::http2::SendRequest<B>,
    method: http::Method,
    path: &str,
    body: B,
) -> Result<(u16, http::HeaderMap, bytes::Bytes), String>
where
    B: hyper::body::Body + Send + 'static,
{
    use http_body_util::BodyExt;
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{HOST}{path}"))
        .body(body)
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("{path}: body: {e}"))?
        .to_bytes();
    Ok((parts.status.as_u16(), parts.headers, body))
}

#[tokio::test]
async fn http2_streams_are_served_by_the_fast_path() {
    use http::Method;
    use http_body_util::{Empty, Full};
    let backend = scripted_backend(Ipv4Addr::new(127, 0, 0, 76)).await;
    let pier = pier_with(backend).await;
    let mut h2 = e2e::client::h2c_connect(pier.http_addr()).await.unwrap();
    let empty = Empty::<bytes::Bytes>::new;

    // A chunked body arrives as its payload; the trailer and the chunk framing stay behind.
    let (status, headers, body) = h2_request(&mut h2, Method::GET, "/chunked", empty())
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"hello world"[..]));
    assert!(headers.get("transfer-encoding").is_none(), "{headers:?}");

    // Close-delimited, after an interim response (not passed on over HTTP/2).
    let (status, _, body) = h2_request(&mut h2, Method::GET, "/until-close", empty())
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"until close"[..]));
    let (status, _, body) = h2_request(&mut h2, Method::GET, "/early-hints", empty())
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));

    // Hop-by-hop fields stay on their connection, in both directions.
    let (status, headers, _) = h2_request(&mut h2, Method::GET, "/echo-body", empty())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-seen-connection").unwrap(), "-");
    assert!(headers.get("keep-alive").is_none(), "{headers:?}");

    // No body: 204, and HEAD (the length is announced, nothing follows).
    let (status, headers, body) = h2_request(&mut h2, Method::GET, "/no-content", empty())
        .await
        .unwrap();
    assert_eq!((status, body.len()), (204, 0));
    assert_eq!(headers.get("x-empty").unwrap(), "yes");
    let (status, headers, body) = h2_request(&mut h2, Method::HEAD, "/big", empty())
        .await
        .unwrap();
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(headers.get("content-length").unwrap(), &BIG.to_string());

    // A body larger than the stream's flow-control window, on many streams at once.
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut sender = h2.clone();
        streams.spawn(async move { h2_request(&mut sender, Method::GET, "/big", empty()).await });
    }
    while let Some(done) = streams.join_next().await {
        let (status, _, body) = done.unwrap().unwrap();
        assert_eq!((status, body.len()), (200, BIG));
        assert!(body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == b'a' + (i % 26) as u8));
    }

    // Failures: a broken endpoint gets pier's 502, a silent one 504 after the read timeout,
    // and a body cut short resets the stream instead of ending it as if complete.
    let (status, headers, _) = h2_request(&mut h2, Method::GET, "/garbage", empty())
        .await
        .unwrap();
    assert_eq!(status, 502);
    assert_eq!(headers.get("server").unwrap(), "pier");
    let (status, _, _) = h2_request(&mut h2, Method::GET, "/silent", empty())
        .await
        .unwrap();
    assert_eq!(status, 504);
    let cut = h2_request(&mut h2, Method::GET, "/broken-body", empty()).await;
    assert!(cut.is_err(), "a cut body looked complete: {cut:?}");
    // The connection outlives all of that.
    let (status, _, body) = h2_request(&mut h2, Method::GET, "/chunked", empty())
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"hello world"[..]));

    assert_eq!(general_path_counts(&pier).await, vec![]);
    assert_eq!(pier.general_path_stream_counts().await, vec![]);

    // A request body with its length is buffered and sent with the request; a larger one
    // than the fast path buffers goes to the general path, which streams it.
    let mut with_body = e2e::client::h2c_connect(pier.http_addr()).await.unwrap();
    let body = Full::new(bytes::Bytes::from_static(b"over h2"));
    let (status, _, body) = h2_request(&mut with_body, Method::POST, "/echo-body", body)
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"over h2"[..]));
    // Buffered, so a pooled connection the endpoint closed is replaced and the body sent again.
    for i in 0..4 {
        let sent = bytes::Bytes::from(format!("body-{i}"));
        let (status, _, body) = h2_request(
            &mut with_body,
            Method::POST,
            "/once-per-connection",
            Full::new(sent.clone()),
        )
        .await
        .unwrap();
        assert_eq!((status, body), (200, sent), "request {i}");
    }
    assert_eq!(pier.general_path_stream_counts().await, vec![]);
    let large = bytes::Bytes::from(vec![b'x'; 100_000]);
    let (status, _, body) =
        h2_request(&mut with_body, Method::POST, "/echo-body", Full::new(large))
            .await
            .unwrap();
    assert_eq!((status, body.len()), (200, 100_000));
    assert_eq!(
        pier.general_path_stream_counts().await,
        vec![("large request body".to_string(), 1)]
    );
}

#[tokio::test]
async fn an_upgrade_the_endpoint_declines_is_an_ordinary_answer() {
    let echo = Echo::start(Ipv4Addr::new(127, 0, 0, 77), "echo").await;
    let pier = pier_with(echo.addr()).await;
    let mut conn = RawConnection::connect(pier.http_addr()).await.unwrap();
    conn.send(
        format!(
            "GET /up HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: foo\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = conn.read_response(false).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let seen: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    // The endpoint was asked to switch, and said no.
    assert_eq!(seen["headers"]["upgrade"], "foo", "{seen}");
    assert_eq!(seen["headers"]["connection"], "upgrade", "{seen}");
    // The connection goes on as HTTP/1.1.
    conn.send(get("/next").as_bytes()).await.unwrap();
    assert_eq!(conn.read_response(false).await.unwrap().status, 200);
    assert_eq!(general_path_counts(&pier).await, vec![]);
}
