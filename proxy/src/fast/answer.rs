//! pier's own answers on the fast path, written as bytes.

use crate::answer::Answer;

/// Writes `answer` as a complete response into `out` (cleared first): `Server: pier`, a text
/// body (left out for HEAD, its length still announced), `Location` when given, and
/// `Connection: close` when the connection ends after it.
pub(super) fn write(
    out: &mut Vec<u8>,
    answer: Answer,
    location: Option<&str>,
    head_request: bool,
    close: bool,
) {
    out.clear();
    out.reserve(256 + answer.body.len());
    let reason = http::StatusCode::from_u16(answer.code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut code = itoa::Buffer::new();
    let mut length = itoa::Buffer::new();
    for part in [
        "HTTP/1.1 ",
        code.format(answer.code),
        " ",
        reason,
        "\r\nserver: pier\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ",
        length.format(answer.body.len()),
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    match location {
        Some(location) => {
            out.extend_from_slice(b"location: ");
            out.extend_from_slice(location.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"cache-control: no-store\r\n"),
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(answer.body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{HTTPS_ONLY, NO_ROUTE};

    #[test]
    fn answers_are_complete_responses() {
        let mut out = Vec::new();
        write(&mut out, NO_ROUTE, None, false, false);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 404 Not Found\r\nserver: pier\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 38\r\ncache-control: no-store\r\n\r\npier: no route for this host and path\n"
        );
        write(&mut out, HTTPS_ONLY, Some("https://a/"), true, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
            "{text}"
        );
        assert!(
            text.contains("location: https://a/\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"), "HEAD: no body: {text}");
    }
}
