//! The request as it goes to the endpoint: the client's request line and header fields,
//! without hop-by-hop fields, plus the forwarding fields pier sets. Written into one buffer so
//! head and (buffered) body leave in one write.

use super::head::{ConnectionNamed, RequestHead};
use std::io::Write;
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
    ip_text: [u8; 46],
    ip_len: u8,
}

impl Client {
    /// A client at `ip`.
    pub fn new(ip: Option<IpAddr>, tls: bool) -> Client {
        let mut ip_text = [0u8; 46];
        let mut ip_len = 0;
        if let Some(ip) = ip {
            // The longest textual IPv6 address is 45 bytes: this cannot fail.
            let mut cursor = std::io::Cursor::new(&mut ip_text[..]);
            if write!(cursor, "{ip}").is_ok() {
                ip_len = cursor.position() as u8;
            }
        }
        Client {
            ip,
            tls,
            ip_text,
            ip_len,
        }
    }

    fn ip_text(&self) -> &[u8] {
        &self.ip_text[..usize::from(self.ip_len)]
    }
}

/// Writes the upstream request (head, then `body`) into `out`, which is cleared first.
///
/// Path, query and `Host` stay as the client sent them. `X-Forwarded-For` gets the client's
/// address appended to what earlier proxies wrote; `X-Real-IP`, `X-Forwarded-Host` and
/// `X-Forwarded-Proto` are set. Fields named in `Connection` are dropped with it.
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
        if DROPPED.iter().any(|d| is(name, d)) {
            forwarded_for |= is(name, "x-forwarded-for") && !h.value.trim_ascii().is_empty();
            continue;
        }
        if named.contains(name) {
            continue;
        }
        field(out, name.as_bytes(), h.value);
    }
    if !head.host.is_empty() {
        field(out, b"x-forwarded-host", head.host.as_bytes());
    }
    if client.ip.is_some() {
        let ip = client.ip_text();
        out.extend_from_slice(b"x-forwarded-for: ");
        if forwarded_for {
            for h in head.headers {
                let value = h.value.trim_ascii();
                if is(h.name, "x-forwarded-for") && !value.is_empty() {
                    out.extend_from_slice(value);
                    out.extend_from_slice(b", ");
                }
            }
        }
        out.extend_from_slice(ip);
        out.extend_from_slice(b"\r\n");
        field(out, b"x-real-ip", ip);
    }
    let proto: &[u8] = if client.tls { b"https" } else { b"http" };
    field(out, b"x-forwarded-proto", proto);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

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
}
