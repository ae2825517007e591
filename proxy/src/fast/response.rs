//! The endpoint's response head: parsed in place, its body framing decided (RFC 9112 §6.3),
//! and rewritten for the client without the fields that describe the upstream connection.

use super::head::{parse_length, tokens, ConnectionNamed};
use std::mem::MaybeUninit;

/// Most header fields an upstream response may have.
pub(super) const MAX_RESPONSE_HEADERS: usize = 128;

/// Room for the header fields of one response, left uninitialised (filled by the parser).
pub(super) fn header_storage<'b>() -> [MaybeUninit<httparse::Header<'b>>; MAX_RESPONSE_HEADERS] {
    [const { MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS]
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: relayed as it is, ending with the last chunk.
    Chunked,
    /// Until the endpoint closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct ResponseHead<'b> {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'b str,
    /// Header fields in arrival order.
    pub headers: &'b [httparse::Header<'b>],
    /// Length of the head, including the empty line.
    pub head_len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the endpoint keeps the connection open for another request.
    pub reusable: bool,
}

/// Why a response head is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadResponse {
    /// Not HTTP/1.x, or malformed.
    #[error("malformed response head")]
    Malformed,
    /// Conflicting or invalid `Content-Length`.
    #[error("invalid Content-Length in the response")]
    Length,
}

/// Parses the response head at the start of `buf`; `Ok(None)`: incomplete. `head_request`:
/// the request was `HEAD`, so the response has no body whatever it says.
pub(super) fn parse<'b>(
    buf: &'b [u8],
    storage: &'b mut [MaybeUninit<httparse::Header<'b>>],
    head_request: bool,
) -> Result<Option<ResponseHead<'b>>, BadResponse> {
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, storage);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(version), Some(code)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed);
    };
    let reason = resp.reason.unwrap_or("");
    let headers: &'b [httparse::Header<'b>] = resp.headers;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = version == 0;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(BadResponse::Length)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse::Length);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Chunked must be the last coding for the length to be known.
            chunked = tokens(h.value)
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if version == 0 && token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let framing = if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
        Framing::Empty
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some(ResponseHead {
        code,
        reason,
        headers,
        head_len,
        framing,
        reusable: !close && framing != Framing::UntilClose,
    }))
}

/// What pier adds to the response for the client.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Additions<'a> {
    /// `Strict-Transport-Security` value (replaces the endpoint's).
    pub hsts: Option<&'a str>,
    /// An affinity `Set-Cookie` value.
    pub set_cookie: Option<&'a str>,
    /// The client connection closes after this response.
    pub close: bool,
}

/// Whether a field of the endpoint's response goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// Yes.
    Yes,
    /// No: it describes the upstream connection, is named in `Connection`, is wrong once
    /// the body is relayed (`Content-Length` beside `Transfer-Encoding`) or is replaced by
    /// pier's own (`Strict-Transport-Security`).
    No,
    /// Only to an HTTP/1.1 client: `Transfer-Encoding` and `Upgrade`, which HTTP/2 has no
    /// place for (RFC 9113 §8.2.2).
    Http1Only,
}

/// Whether the field `name` of `head` goes to the client, given pier's additions and the
/// names listed in the head's `Connection` fields.
#[inline]
pub(super) fn kept_from(
    head: &ResponseHead<'_>,
    name: &str,
    add: Additions<'_>,
    named: &ConnectionNamed<'_>,
) -> Kept {
    let chunked = head.framing == Framing::Chunked;
    let dropped = match name.len() {
        10 => name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive"),
        16 => name.eq_ignore_ascii_case("proxy-connection"),
        // With Transfer-Encoding, a Content-Length is wrong and must not reach the client.
        14 => chunked && name.eq_ignore_ascii_case("content-length"),
        25 => add.hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security"),
        7 | 17
            if name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("transfer-encoding") =>
        {
            return if named.contains(name) {
                Kept::No
            } else {
                Kept::Http1Only
            };
        }
        _ => false,
    } || named.contains(name);
    if dropped {
        Kept::No
    } else {
        Kept::Yes
    }
}

/// Writes the client's response head into `out` (cleared first): status line as HTTP/1.1,
/// the endpoint's fields without connection-scoped ones, pier's additions.
pub(super) fn write_head(out: &mut Vec<u8>, head: &ResponseHead<'_>, add: Additions<'_>) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(head.code).as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let named = ConnectionNamed::of(head.headers);
    for h in head.headers {
        let name = h.name;
        if kept_from(head, name, add, &named) == Kept::No {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(hsts) = add.hsts {
        out.extend_from_slice(b"strict-transport-security: ");
        out.extend_from_slice(hsts.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(cookie) = add.set_cookie {
        out.extend_from_slice(b"set-cookie: ");
        out.extend_from_slice(cookie.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if head.code == 101 {
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if add.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed<R>(raw: &str, head_request: bool, f: impl FnOnce(ResponseHead<'_>) -> R) -> R {
        let mut storage = header_storage();
        let head = parse(raw.as_bytes(), &mut storage, head_request)
            .expect("valid")
            .expect("complete");
        f(head)
    }

    fn framing(raw: &str) -> (Framing, bool) {
        parsed(raw, false, |h| (h.framing, h.reusable))
    }

    #[test]
    fn framing_follows_the_rules() {
        use Framing::*;
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                (Length(5), true),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
                (Chunked, true),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                (UntilClose, false),
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", (UntilClose, false)),
            ("HTTP/1.1 204 No Content\r\n\r\n", (Empty, true)),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                (Empty, true),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                (Length(5), false),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                (Length(5), false),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
                (Length(5), true),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(framing(raw), want, "{raw:?}");
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parsed(head, true, |h| h.framing), Empty, "HEAD request");
    }

    #[test]
    fn bad_heads_are_errors() {
        for (raw, want) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                BadResponse::Length,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                BadResponse::Length,
            ),
            ("HTTP/2 200\r\n\r\n", BadResponse::Malformed),
            ("SSH-2.0-OpenSSH\r\n\r\n", BadResponse::Malformed),
        ] {
            let mut storage = header_storage();
            assert_eq!(
                parse(raw.as_bytes(), &mut storage, false).unwrap_err(),
                want,
                "{raw:?}"
            );
        }
        let mut storage = header_storage();
        assert!(parse(b"HTTP/1.1 200 OK\r\nA: b\r\n", &mut storage, false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_client_head_drops_connection_fields_and_adds_pier_s() {
        let raw = "HTTP/1.1 200 OK\r\nServer: app\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
                   Keep-Alive: timeout=5\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 2\r\n\r\n";
        let out = parsed(raw, false, |h| {
            let mut out = Vec::new();
            write_head(
                &mut out,
                &h,
                Additions {
                    hsts: Some("max-age=31536000"),
                    set_cookie: Some("pier-affinity=abc; Path=/"),
                    close: true,
                },
            );
            String::from_utf8(out).unwrap()
        });
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: app\r\nContent-Length: 2\r\n\
             strict-transport-security: max-age=31536000\r\nset-cookie: pier-affinity=abc; Path=/\r\n\
             connection: close\r\n\r\n"
        );
    }

    #[test]
    fn chunked_answers_lose_a_stray_content_length() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let out = parsed(raw, false, |h| {
            let mut out = Vec::new();
            write_head(&mut out, &h, Additions::default());
            String::from_utf8(out).unwrap()
        });
        assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    }
}
