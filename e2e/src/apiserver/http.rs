//! The HTTP side of the test API server: URL routing, list/get/create/update/patch/delete
//! and streaming watches in the real wire format (one JSON `{"type","object"}` per line).

use super::select::Selector;
use super::state::{resource_type, ApiError, Change, ResourceType, State};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Response body: a whole JSON document or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);
/// Upper bound of a watch's life (kube-rs asks for 290 s).
const MAX_WATCH: Duration = Duration::from_secs(290);

/// A parsed request path.
struct Target {
    resource: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Err(ApiError::new(404, "NotFound", format!("no route {path}"))),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (Some(ns.to_string()), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        _ => (None, rest.to_vec()),
    };
    let unknown = || {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(*sub)),
        _ => return Err(unknown()),
    };
    let resource = resource_type(&group_version, plural).ok_or_else(unknown)?;
    if sub.is_some_and(|s| s != "status" || !resource.status) {
        return Err(unknown());
    }
    Ok(Target {
        resource,
        namespace,
        name,
        status: sub.is_some(),
    })
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.code, &error.to_status())
}

/// Answers one request.
pub async fn handle(
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    if path == "/version" {
        return Ok(json_response(
            200,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-pier-e2e", "platform": "linux/amd64"}),
        ));
    }
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let method = request.method().clone();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(error_response(&ApiError::new(
                400,
                "BadRequest",
                e.to_string(),
            )))
        }
    };
    let result = (|| {
        let target = parse_path(&path)?;
        let namespace = target.namespace.clone().unwrap_or_default();
        let parse_body = || {
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| ApiError::new(400, "BadRequest", format!("invalid JSON: {e}")))
        };
        let r = target.resource;
        match (&method, target.name.as_deref()) {
            (&Method::GET, None)
                if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) =>
            {
                Ok(Err(watch_stream(
                    state.clone(),
                    shutdown.clone(),
                    &target,
                    &query,
                )))
            }
            (&Method::GET, None) => {
                let fields = Selector::parse(query.get("fieldSelector").map_or("", String::as_str));
                let labels = Selector::parse(query.get("labelSelector").map_or("", String::as_str));
                let (items, rv) = state.list(r, target.namespace.as_deref());
                let items: Vec<Value> = items
                    .into_iter()
                    .filter(|o| fields.matches_fields(o) && labels.matches_labels(o))
                    .collect();
                let page = Page::of(&query, rv)?;
                let total = items.len();
                let items: Vec<Value> = items
                    .into_iter()
                    .skip(page.offset)
                    .take(page.limit)
                    .collect();
                let mut metadata = json!({"resourceVersion": page.list_rv.to_string()});
                let next = page.offset + items.len();
                if next < total {
                    metadata["continue"] = json!(format!("{}:{next}", page.list_rv));
                }
                Ok(Ok((
                    200,
                    json!({
                        "kind": format!("{}List", r.kind), "apiVersion": r.group_version,
                        "metadata": metadata, "items": items,
                    }),
                )))
            }
            (&Method::GET, Some(name)) => Ok(Ok((200, state.get(r, &namespace, name)?))),
            (&Method::POST, None) => Ok(Ok((201, state.create(r, &namespace, parse_body()?)?))),
            (&Method::PUT, Some(name)) => Ok(Ok((
                200,
                state.update(r, &namespace, name, parse_body()?, target.status)?,
            ))),
            (&Method::PATCH, Some(name)) => {
                let json_patch = content_type.starts_with("application/json-patch+json");
                Ok(Ok((
                    200,
                    state.patch(
                        r,
                        &namespace,
                        name,
                        &parse_body()?,
                        json_patch,
                        target.status,
                    )?,
                )))
            }
            (&Method::DELETE, Some(name)) => Ok(Ok((200, state.delete(r, &namespace, name)?))),
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} {path}"),
            )),
        }
    })();
    Ok(match result {
        Ok(Ok((code, value))) => json_response(code, &value),
        Ok(Err(stream)) => stream,
        Err(error) => error_response(&error),
    })
}

/// One page of a list (`limit` and `continue`, as clients such as kube-rs' watcher send them:
/// 500 objects per page by default). The continue token is `<list resourceVersion>:<offset>`;
/// every page reports the first page's resourceVersion, so the watch that follows starts
/// there, like the real API server's. Unlike the real one, later pages are cut from the
/// current objects rather than a snapshot; the watch delivers what changed in between.
struct Page {
    list_rv: u64,
    offset: usize,
    limit: usize,
}

impl Page {
    fn of(query: &HashMap<String, String>, current_rv: u64) -> Result<Page, ApiError> {
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let Some(token) = query.get("continue").filter(|c| !c.is_empty()) else {
            return Ok(Page {
                list_rv: current_rv,
                offset: 0,
                limit,
            });
        };
        let invalid =
            || ApiError::new(400, "BadRequest", format!("invalid continue token {token}"));
        let (rv, offset) = token.split_once(':').ok_or_else(invalid)?;
        Ok(Page {
            list_rv: rv.parse().map_err(|_| invalid())?,
            offset: offset.parse().map_err(|_| invalid())?,
            limit,
        })
    }
}

/// `%2F`-style decoding of query parameters (selectors contain `/` and `=`).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Starts a watch: answers 200 at once and streams events from a task until the client goes
/// away, the timeout passes, or the server stops. A too-old resourceVersion is an `ERROR`
/// event with a 410 Status, as the real API server sends it (kube-rs then re-lists).
fn watch_stream(
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    target: &Target,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let r = target.resource;
    let namespace = target.namespace.clone();
    let fields = Selector::parse(query.get("fieldSelector").map_or("", String::as_str));
    let labels = Selector::parse(query.get("labelSelector").map_or("", String::as_str));
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map_or(MAX_WATCH, Duration::from_secs)
        .min(MAX_WATCH);
    let rv = query
        .get("resourceVersion")
        .and_then(|s| s.parse::<u64>().ok());
    let started = state.watch(r, rv);
    drop(state);
    tokio::spawn(async move {
        let matches = |c: &Change| {
            c.resource == r
                && namespace
                    .as_deref()
                    .is_none_or(|ns| c.object["metadata"]["namespace"].as_str() == Some(ns))
                && fields.matches_fields(&c.object)
                && labels.matches_labels(&c.object)
        };
        let (backlog, mut receiver) = match started {
            Ok(started) => started,
            Err(error) => {
                let _ = tx.send(watch_line("ERROR", &error.to_status())).await;
                return;
            }
        };
        // The newest rv this watch has accounted for (sent, or filtered out): bookmarks must
        // never claim more, or a client resuming from one would miss a queued change.
        let mut last_rv = rv.unwrap_or(0);
        for change in backlog.iter() {
            last_rv = last_rv.max(change.rv);
            if !matches(change) {
                continue;
            }
            if tx
                .send(watch_line(change.kind, &change.object))
                .await
                .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        loop {
            let line = tokio::select! {
                received = receiver.recv() => match received {
                    Ok(change) if change.rv > last_rv => {
                        last_rv = change.rv;
                        if !matches(&change) {
                            continue;
                        }
                        watch_line(change.kind, &change.object)
                    }
                    Ok(_) => continue,
                    // Fell behind: end the watch; the client resumes from its last rv.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmark.tick(), if bookmarks && last_rv > 0 => {
                    watch_line("BOOKMARK", &json!({
                        "kind": r.kind, "apiVersion": r.group_version,
                        "metadata": {"resourceVersion": last_rv.to_string()},
                    }))
                }
                () = &mut deadline => return,
                _ = shutdown.changed() => return,
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
