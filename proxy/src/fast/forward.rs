//! The request as it goes to the endpoint: the client's request line and header fields,
//! without hop-by-hop fields, plus the forwarding fields pier sets. Written into one buffer so
//! head and (buffered) body leave in one write.

use super::head::{ConnectionNamed, RequestHead};
use crate::ip_text::IpText;
use std::net::IpAddr;

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), and the
/// forwarding fields pier writes itself.
const DROPPED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Who sent the request and how.
#[derive(Debug, Clone)]
pub(super) struct Client {
    /// The client's address (`None` for a Unix socket).
    pub ip: Option<IpAddr>,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// The address as text, formatted once per connection.
    ip_text: IpText,
}

impl Client {
    /// A client at `ip`.
    pub fn new(ip: Option<IpAddr>, tls: bool) -> Client {
        Client {
            ip,
            tls,
            ip_text: IpText::new(ip),
        }
    }

    fn ip_text(&self) -> &[u8] {
        self.ip_text.as_bytes()
    }
}

/// Writes the upstream request (head, then `body`) into `out`, which is cleared first.
///
/// Path, query and `Host` stay as the client sent them. `X-Forwarded-For` gets the client's
/// address appended to what earlier proxies wrote; `X-Real-IP`, `X-Forwarded-Host` and
/// `X-Forwarded-Proto` are set. Fields named in `Connection` are dropped with it, except
/// `Upgrade` when the client asks to switch protocols: that is forwarded, with
/// `Connection: upgrade`.
pub(super) fn write_request(
    out: &mut Vec<u8>,
    head: &RequestHead<'_>,
    client: &Client,
    body: &[u8],
) {
    out.clear();
    // Room for the head as received, pier's fields and the body: one allocation at most.
    out.reserve(head.head_len + 256 + body.len());
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let named = ConnectionNamed::of(head.headers);
    let mut forwarded_for = false;
    for h in head.headers {
        let name = h.name;
        let forwarded_upgrade = head.upgrade && is(name, "upgrade");
        if !forwarded_upgrade && (DROPPED.iter().any(|d| is(name, d)) || named.contains(name)) {
            forwarded_for |= is(name, "x-forwarded-for");
            continue;
        }
        field(out, name.as_bytes(), h.value);
    }
    if head.upgrade {
        field(out, b"connection", b"upgrade");
    }
    // Earlier proxies' addresses, looked for only when the request has any.
    let with_prior: &[httparse::Header<'_>] = if forwarded_for { head.headers } else { &[] };
    let prior_for = with_prior
        .iter()
        .filter(|h| is(h.name, "x-forwarded-for"))
        .map(|h| h.value);
    forwarding_fields(out, head.host.as_bytes(), prior_for, client);
    out.extend_from_slice(body);
}

/// Writes the upstream request for an HTTP/2 request without body into `out` (cleared
/// first), as HTTP/1.1: the same fields as [`write_request`] gives an HTTP/1.1 request, with
/// `Host` from `:authority` when the request has none, and `Cookie` fields joined into one
/// (RFC 9113 §8.2.3).
pub(super) fn write_request_from_map(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &http::HeaderMap,
    client: &Client,
) {
    out.clear();
    out.reserve(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // A scan of the few names is cheaper than hashing one.
    if !host.is_empty() && !headers.keys().any(|n| n == http::header::HOST) {
        field(out, b"host", host.as_bytes());
    }
    let mut cookies = false;
    let mut forwarded_for = false;
    for (name, value) in headers {
        let name = name.as_str();
        if name == "cookie" {
            cookies = true;
        } else if DROPPED.contains(&name) {
            forwarded_for |= name == "x-forwarded-for";
        } else {
            field(out, name.as_bytes(), value.as_bytes());
        }
    }
    if cookies {
        out.extend_from_slice(b"cookie: ");
        for (i, value) in headers.get_all(http::header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    // Earlier proxies' addresses, looked up only when the request has any.
    let prior_for = forwarded_for
        .then(|| headers.get_all(http::HeaderName::from_static("x-forwarded-for")))
        .into_iter()
        .flatten()
        .map(|v| v.as_bytes());
    forwarding_fields(out, host.as_bytes(), prior_for, client);
}

/// Writes pier's forwarding fields and the empty line ending the head: `X-Forwarded-Host`,
/// `X-Forwarded-For` (the client appended to the non-empty `prior_for` values), `X-Real-IP`
/// and `X-Forwarded-Proto`.
fn forwarding_fields<'v>(
    out: &mut Vec<u8>,
    host: &[u8],
    prior_for: impl Iterator<Item = &'v [u8]>,
    client: &Client,
) {
    if !host.is_empty() {
        field(out, b"x-forwarded-host", host);
    }
    if client.ip.is_some() {
        let ip = client.ip_text();
        out.extend_from_slice(b"x-forwarded-for: ");
        append_forwarded_for(out, prior_for, ip);
        out.extend_from_slice(b"\r\n");
        field(out, b"x-real-ip", ip);
    }
    let proto: &[u8] = if client.tls { b"https" } else { b"http" };
    field(out, b"x-forwarded-proto", proto);
    out.extend_from_slice(b"\r\n");
}

/// Appends the `X-Forwarded-For` value to `out`: the non-empty values of the request's
/// `X-Forwarded-For` fields (`prior`, earlier proxies' addresses), then `ip`, the client's.
pub(crate) fn append_forwarded_for<'v>(
    out: &mut Vec<u8>,
    prior: impl Iterator<Item = &'v [u8]>,
    ip: &[u8],
) {
    for value in prior {
        let value = value.trim_ascii();
        if !value.is_empty() {
            out.extend_from_slice(value);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(ip);
}

#[inline]
fn is(name: &str, lower: &str) -> bool {
    name.eq_ignore_ascii_case(lower)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::head::{classify, header_storage, Classified};
    use super::*;

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        let addresses = [
            "0.0.0.0",
            "127.0.0.1",
            "10.0.100.9",
            "192.168.1.254",
            "255.255.255.255",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:192.0.2.1",
        ];
        for text in addresses {
            let ip: IpAddr = text.parse().unwrap();
            let client = Client::new(Some(ip), false);
            assert_eq!(client.ip_text(), ip.to_string().as_bytes(), "{text}");
        }
        assert_eq!(Client::new(None, false).ip_text(), b"");
    }

    fn forwarded(raw: &str, client: Client) -> String {
        let client = &client;
        let mut storage = header_storage();
        let Classified::Serve(head) = classify(raw.as_bytes(), &mut storage) else {
            panic!("not served")
        };
        let body = &raw.as_bytes()[head.head_len..];
        let mut out = Vec::new();
        write_request(&mut out, &head, client, body);
        String::from_utf8(out).unwrap()
    }

    fn client(tls: bool) -> Client {
        Client::new(Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7))), tls)
    }

    #[test]
    fn keeps_the_request_and_adds_forwarding_fields() {
        let out = forwarded(
            "POST /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-Custom: Yes\r\nContent-Length: 2\r\n\r\nhi",
            client(false),
        );
        assert_eq!(
            out,
            "POST /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-Custom: Yes\r\nContent-Length: 2\r\n\
             x-forwarded-host: a.example:8080\r\nx-forwarded-for: 192.0.2.7\r\nx-real-ip: 192.0.2.7\r\n\
             x-forwarded-proto: http\r\n\r\nhi"
        );
    }

    #[test]
    fn appends_to_earlier_forwarded_for_and_replaces_the_rest() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-real-ip: 6.6.6.6\r\n\
             X-Forwarded-Proto: https\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\n\r\n",
            client(true),
        );
        assert!(
            out.contains("x-forwarded-for: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n"),
            "{out}"
        );
        assert!(!out.contains("6.6.6.6"), "{out}");
        assert_eq!(out.matches("x-forwarded-proto").count(), 1, "{out}");
        assert!(out.contains("x-forwarded-proto: https\r\n"), "{out}");
        assert_eq!(
            out.to_ascii_lowercase().matches("x-forwarded-for").count(),
            1
        );
    }

    #[test]
    fn drops_hop_by_hop_fields_and_those_named_in_connection() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nX-Secret: 1\r\nHost: a\r\nConnection: close, X-Secret\r\n\
             Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Kept: 2\r\n\r\n",
            client(false),
        );
        let lower = out.to_ascii_lowercase();
        for gone in ["connection:", "keep-alive:", "te:", "x-secret:"] {
            assert!(!lower.contains(gone), "{gone} forwarded: {out}");
        }
        assert!(
            out.starts_with("GET / HTTP/1.1\r\nHost: a\r\nX-Kept: 2\r\n"),
            "{out}"
        );
    }

    #[test]
    fn without_a_client_address_no_address_fields() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Client::new(None, false),
        );
        assert!(
            !out.contains("x-forwarded-for") && !out.contains("x-real-ip"),
            "{out}"
        );
    }

    #[test]
    fn an_http2_request_becomes_http1_with_host_and_one_cookie_field() {
        let mut headers = http::HeaderMap::new();
        headers.append("cookie", "a=1".parse().unwrap());
        headers.append("accept", "*/*".parse().unwrap());
        headers.append("cookie", "b=2".parse().unwrap());
        headers.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        headers.append("te", "trailers".parse().unwrap());
        headers.append("x-real-ip", "6.6.6.6".parse().unwrap());
        let mut out = Vec::new();
        write_request_from_map(
            &mut out,
            "GET",
            "/p?q=1",
            "h2.example",
            &headers,
            &client(true),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\nhost: h2.example\r\naccept: */*\r\ncookie: a=1; b=2\r\n\
             x-forwarded-host: h2.example\r\nx-forwarded-for: 10.0.0.1, 192.0.2.7\r\n\
             x-real-ip: 192.0.2.7\r\nx-forwarded-proto: https\r\n\r\n"
        );
        // A Host field of its own is kept as it is, not doubled.
        headers.insert("host", "h2.example:8443".parse().unwrap());
        let mut out = Vec::new();
        write_request_from_map(&mut out, "GET", "/", "h2.example", &headers, &client(true));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("host: h2.example").count(), 2, "{text}");
        assert!(text.contains("host: h2.example:8443\r\n"), "{text}");
    }

    #[test]
    fn an_upgrade_is_forwarded_with_its_connection_token() {
        let out = forwarded(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: k\r\n\r\n",
            client(false),
        );
        assert!(
            out.starts_with(
                "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\
                 connection: upgrade\r\n"
            ),
            "{out}"
        );
        // Without the Connection token, Upgrade is not a request to switch: dropped.
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n",
            client(false),
        );
        assert!(!out.to_ascii_lowercase().contains("upgrade"), "{out}");
    }
}
