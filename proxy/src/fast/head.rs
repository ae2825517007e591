//! A request head as the fast path sees it: parsed in place (no copies, no header map) and
//! classified as one it serves itself or one it hands to Pingora's general path.

use std::mem::MaybeUninit;

/// Most header fields a request may have on the fast path (Pingora takes larger heads).
pub(super) const MAX_HEADERS: usize = 96;
/// Largest request body the fast path buffers whole (so a failed attempt can be retried);
/// larger or chunked bodies go to the general path, which streams them.
pub(super) const MAX_BUFFERED_BODY: u64 = 64 * 1024;

/// A parsed request the fast path serves: HTTP/1.1, origin-form target, one Host, no body or
/// a `Content-Length` body of at most [`MAX_BUFFERED_BODY`] (none with an upgrade), no
/// `Expect`.
#[derive(Debug)]
pub(super) struct RequestHead<'b> {
    /// The method token, e.g. `GET`.
    pub method: &'b str,
    /// The request target as sent: path and query.
    pub target: &'b str,
    /// The target's path (without the query).
    pub path: &'b str,
    /// The target's query string, if any.
    pub query: Option<&'b str>,
    /// Every header field in arrival order, names in their original case.
    pub headers: &'b [httparse::Header<'b>],
    /// Length of the head, up to and including the empty line.
    pub head_len: usize,
    /// The `Host` header value (may carry a `:port`).
    pub host: &'b str,
    /// Body length (0 without `Content-Length`).
    pub content_length: usize,
    /// The client asked to close the connection after this request (`Connection: close`).
    pub close: bool,
    /// The client asks to switch protocols (`Upgrade`, named in `Connection`), e.g. WebSocket.
    pub upgrade: bool,
}

impl RequestHead<'_> {
    /// Whether sending this request twice can do no harm (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
    }

    /// Whether this is a `HEAD` request (its answer has no body).
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// What to do with the bytes read so far.
#[derive(Debug)]
pub(super) enum Classified<'b> {
    /// The head is not complete yet: read more.
    Partial,
    /// A request the fast path serves; its body may still be arriving
    /// (`head_len + content_length` bytes make the whole request).
    Serve(RequestHead<'b>),
    /// Anything else goes to Pingora's general path, which also answers malformed requests.
    HandOff(&'static str),
}

/// Header fields most requests fit in: room for them is part of the connection's state.
pub(super) const USUAL_HEADERS: usize = 32;

/// Room for the header fields of one request, left uninitialised (filled by the parser):
/// [`USUAL_HEADERS`] in place, up to [`MAX_HEADERS`] on the heap for a request with more.
/// Only the usual room is held in the connection's future (1 KiB of the 3 KiB that room
/// for all would take), which is copied whole when a connection starts and held while it
/// is idle; a usual request allocates nothing for its fields.
pub(super) struct HeaderStorage<'b> {
    usual: [MaybeUninit<httparse::Header<'b>>; USUAL_HEADERS],
    more: Option<Box<[MaybeUninit<httparse::Header<'b>>]>>,
}

/// Empty header storage.
pub(super) fn header_storage<'b>() -> HeaderStorage<'b> {
    HeaderStorage {
        usual: [const { MaybeUninit::uninit() }; USUAL_HEADERS],
        more: None,
    }
}

/// Parses and classifies the request at the start of `buf`.
pub(super) fn classify<'b>(buf: &'b [u8], storage: &'b mut HeaderStorage<'b>) -> Classified<'b> {
    let HeaderStorage { usual, more } = storage;
    let mut req = httparse::Request::new(&mut []);
    let mut parsed = req.parse_with_uninit_headers(buf, usual);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        let more = more.insert(Box::new_uninit_slice(MAX_HEADERS));
        req = httparse::Request::new(&mut []);
        parsed = req.parse_with_uninit_headers(buf, more);
    }
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Classified::Partial,
        Err(httparse::Error::TooManyHeaders) => return Classified::HandOff("many header fields"),
        Err(_) => return Classified::HandOff("malformed head"),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Classified::HandOff("malformed head");
    };
    if version != 1 {
        return Classified::HandOff("HTTP/1.0");
    }
    if !target.starts_with('/') || method == "CONNECT" {
        return Classified::HandOff("not an origin-form target");
    }
    let headers: &'b [httparse::Header<'b>] = req.headers;
    let mut host = None;
    let mut content_length: Option<u64> = None;
    let mut close = false;
    let mut upgrade_field = false;
    let mut upgrade_named = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Classified::HandOff("two Host fields");
            }
            match std::str::from_utf8(h.value) {
                Ok(v) => host = Some(v),
                Err(_) => return Classified::HandOff("Host is not text"),
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Classified::HandOff("two Content-Length fields");
            }
            match parse_length(h.value) {
                Some(n) => content_length = Some(n),
                None => return Classified::HandOff("bad Content-Length"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Classified::HandOff("request body with Transfer-Encoding");
        } else if name.eq_ignore_ascii_case("expect") {
            return Classified::HandOff("Expect");
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_field = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    upgrade_named = true;
                }
            }
        }
    }
    let Some(host) = host else {
        return Classified::HandOff("no Host");
    };
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BUFFERED_BODY {
        return Classified::HandOff("large request body");
    }
    // An `Upgrade` field not named in `Connection` is ignored (and not forwarded).
    let upgrade = upgrade_field && upgrade_named;
    if upgrade && content_length > 0 {
        return Classified::HandOff("Upgrade with a body");
    }
    let (path, query) = match target.find('?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    Classified::Serve(RequestHead {
        method,
        target,
        path,
        query,
        headers,
        head_len,
        host,
        // Bounded by MAX_BUFFERED_BODY above.
        content_length: content_length as usize,
        close,
        upgrade,
    })
}

/// A `Content-Length` value: digits only (no sign, no list).
pub(super) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The comma-separated tokens of a header value such as `Connection`, trimmed.
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Field names a message lists in its `Connection` fields (other than `keep-alive`): hop-by-hop
/// like `Connection` itself, so never forwarded. At most eight are kept.
pub(super) struct ConnectionNamed<'b> {
    names: [&'b [u8]; 8],
    len: usize,
}

impl<'b> ConnectionNamed<'b> {
    /// The names listed in the `Connection` fields among `headers`.
    pub fn of(headers: &[httparse::Header<'b>]) -> ConnectionNamed<'b> {
        let mut named = ConnectionNamed {
            names: [&b""[..]; 8],
            len: 0,
        };
        for h in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        {
            for token in tokens(h.value) {
                if named.len < named.names.len() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    named.names[named.len] = token;
                    named.len += 1;
                }
            }
        }
        named
    }

    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        self.names[..self.len]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<R>(raw: &str, f: impl FnOnce(Classified<'_>) -> R) -> R {
        let mut storage = header_storage();
        f(classify(raw.as_bytes(), &mut storage))
    }

    fn handed_off(raw: &str) -> &'static str {
        with(raw, |c| match c {
            Classified::HandOff(why) => why,
            other => panic!("expected a hand-off for {raw:?}, got {other:?}"),
        })
    }

    #[test]
    fn a_plain_get_is_served_with_its_parts() {
        let raw = "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nX-A: 1\r\n\r\nNEXT";
        with(raw, |c| {
            let Classified::Serve(h) = c else {
                panic!("not served: {c:?}")
            };
            assert_eq!(h.method, "GET");
            assert_eq!(h.path, "/a/b");
            assert_eq!(h.query, Some("x=1"));
            assert_eq!(h.host, "Example.com:8080");
            assert_eq!(h.head_len, raw.len() - "NEXT".len());
            assert_eq!(h.content_length, 0);
            assert!(!h.close);
            assert!(h.is_idempotent());
            assert_eq!(h.headers.len(), 2);
        });
    }

    #[test]
    fn an_upgrade_needs_the_field_and_its_connection_token() {
        let upgrade = |raw: &str| {
            with(raw, |c| match c {
                Classified::Serve(h) => h.upgrade,
                other => panic!("not served: {other:?}"),
            })
        };
        assert!(upgrade(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
        ));
        assert!(upgrade(
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nHost: a\r\nConnection: upgrade\r\n\r\n"
        ));
        assert!(!upgrade(
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n"
        ));
        assert!(!upgrade(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"
        ));
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(with("GET / HTTP/1.1\r\nHost: a\r\n", |c| matches!(
            c,
            Classified::Partial
        )));
    }

    #[test]
    fn connection_close_and_bodies_are_noted() {
        let raw = "POST /x HTTP/1.1\r\nhost: a\r\nConnection: keep-alive, Close\r\nContent-Length: 5\r\n\r\nhello";
        with(raw, |c| {
            let Classified::Serve(h) = c else {
                panic!("not served: {c:?}")
            };
            assert!(h.close);
            assert_eq!(h.content_length, 5);
            assert!(!h.is_idempotent());
        });
    }

    #[test]
    fn what_the_fast_path_does_not_serve_is_handed_off() {
        let cases = [
            ("GET / HTTP/1.0\r\nHost: a\r\n\r\n", "HTTP/1.0"),
            (
                "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
                "not an origin-form target",
            ),
            (
                "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
                "not an origin-form target",
            ),
            ("GET / HTTP/1.1\r\n\r\n", "no Host"),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                "two Host fields",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                "request body with Transfer-Encoding",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                "two Content-Length fields",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n",
                "large request body",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
                "Expect",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 1\r\n\r\n",
                "Upgrade with a body",
            ),
            ("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", "malformed head"),
        ];
        for (raw, why) in cases {
            assert_eq!(handed_off(raw), why, "{raw:?}");
        }
    }

    #[test]
    fn more_fields_than_usual_are_all_read() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..USUAL_HEADERS + 10 {
            raw.push_str(&format!("X-{i}: v{i}\r\n"));
        }
        raw.push_str("\r\n");
        with(&raw, |c| {
            let Classified::Serve(head) = c else {
                panic!("not served: {c:?}")
            };
            assert_eq!(head.headers.len(), USUAL_HEADERS + 11);
            let last = &head.headers[USUAL_HEADERS + 10];
            assert_eq!((last.name, last.value), ("X-41", &b"v41"[..]));
        });
    }

    #[test]
    fn too_many_fields_are_handed_off() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..MAX_HEADERS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(handed_off(&raw), "many header fields");
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(parse_length(b"0"), Some(0));
        for bad in [&b""[..], b"+1", b"1,1", b"0x10", b"99999999999999999999"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
