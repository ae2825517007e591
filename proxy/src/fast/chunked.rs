//! Finding the end of a chunked body (RFC 9112 §7.1) while relaying it unchanged: the fast
//! path forwards chunks to HTTP/1.1 clients as they arrive and only needs to know where the
//! body stops, so the upstream connection can be reused. HTTP/2 clients get the chunks'
//! payload alone ([`ChunkedEnd::decode`]).

use std::ops::Range;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub(super) struct BadChunk;

/// A trailer or chunk-size line longer than this is refused (Pingora and nginx refuse far
/// shorter ones in practice).
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data: this many of its bytes seen.
    DataEnd(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// Tracks where a chunked body ends.
#[derive(Debug, Clone)]
pub(super) struct ChunkedEnd {
    state: State,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        ChunkedEnd { state: State::Size }
    }
}

impl ChunkedEnd {
    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Looks at the next bytes of the body and returns how many of them can be relayed now:
    /// all of `buf` up to the end of the body or to the start of an incomplete size or trailer
    /// line (which stays in the buffer until more arrives).
    pub fn advance(&mut self, buf: &[u8]) -> Result<usize, BadChunk> {
        self.decode(buf, |_| {})
    }

    /// Like [`ChunkedEnd::advance`], also giving `payload` each range of `buf` that is chunk
    /// data, in order.
    pub fn decode(
        &mut self,
        buf: &[u8],
        mut payload: impl FnMut(Range<usize>),
    ) -> Result<usize, BadChunk> {
        let mut at = 0;
        while at < buf.len() {
            let rest = &buf[at..];
            match self.state {
                State::Done => break,
                State::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        at += used;
                        self.state = State::Trailers;
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        at += used;
                        self.state = State::Data(size);
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= MAX_LINE => break,
                    _ => return Err(BadChunk),
                },
                State::Data(left) => {
                    let take = left.min(rest.len() as u64);
                    payload(at..at + take as usize);
                    at += take as usize;
                    self.state = if take == left {
                        State::DataEnd(0)
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if rest[0] != want {
                        return Err(BadChunk);
                    }
                    at += 1;
                    self.state = if seen == 0 {
                        State::DataEnd(1)
                    } else {
                        State::Size
                    };
                }
                State::Trailers => match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        let line = &rest[..end];
                        at += end + 1;
                        if line.is_empty() || line == b"\r" {
                            self.state = State::Done;
                        }
                    }
                    None if rest.len() <= MAX_LINE => break,
                    None => return Err(BadChunk),
                },
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes, as reads would deliver it, keeping what is not
    /// consumed; returns the bytes relayed and whether the end was found.
    fn feed(body: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut end = ChunkedEnd::default();
        let mut pending = Vec::new();
        let mut relayed = Vec::new();
        for piece in body.chunks(step) {
            pending.extend_from_slice(piece);
            let n = end.advance(&pending).expect("valid body");
            relayed.extend_from_slice(&pending[..n]);
            pending.drain(..n);
            if end.is_done() {
                break;
            }
        }
        (relayed, end.is_done())
    }

    #[test]
    fn finds_the_end_however_the_bytes_are_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: a\r\n\r\n";
        for step in 1..body.len() {
            let mut with_next = body.to_vec();
            with_next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            let (relayed, done) = feed(&with_next, step);
            assert!(done, "step {step}");
            assert_eq!(relayed, body, "step {step}: relayed past the end or short");
        }
    }

    #[test]
    fn decoding_gives_the_payload_however_the_bytes_are_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: a\r\n\r\n";
        for step in 1..body.len() {
            let mut end = ChunkedEnd::default();
            let mut pending = Vec::new();
            let mut payload = Vec::new();
            for piece in body.chunks(step) {
                pending.extend_from_slice(piece);
                let n = end
                    .decode(&pending, |r| payload.extend_from_slice(&pending[r]))
                    .expect("valid body");
                pending.drain(..n);
            }
            assert!(end.is_done(), "step {step}");
            assert_eq!(payload, b"hello0123456789abcdef", "step {step}");
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (relayed, done) = feed(b"5\r\nhel", 64);
        assert!(!done);
        assert_eq!(relayed, b"5\r\nhel");
        let (_, done) = feed(b"0\r\n", 64);
        assert!(!done, "the trailer section's empty line is missing");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [&b"zz\r\n"[..], b"5\r\nhelloXX", b"ffffffffffffffffff\r\n"] {
            let mut end = ChunkedEnd::default();
            assert_eq!(end.advance(bad), Err(BadChunk), "{bad:?}");
        }
        let mut end = ChunkedEnd::default();
        assert_eq!(end.advance(&[b'1'; MAX_LINE + 1]), Err(BadChunk));
    }
}
