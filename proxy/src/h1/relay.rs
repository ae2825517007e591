//! Relaying a response body to the client as it arrives from the endpoint, by its framing,
//! and telling whether the upstream connection ended cleanly enough to be reused.

use super::chunked::{BadChunk, ChunkedEnd};
use super::connection::Io;
use super::exchange::{Answered, READ_CHUNK};
use super::response::Framing;
use bytes::Buf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How relaying the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relayed {
    /// Complete; the client connection can take another request.
    KeepClient,
    /// Complete, but the client connection closes (asked for, or the body ran to EOF).
    CloseClient,
    /// The client went away.
    ClientGone,
    /// The endpoint failed in the middle of the body: the client connection must close.
    UpstreamBroke,
}

/// Sends the client's response head with the body bytes already read, then the rest of the
/// body as it arrives. Returns the upstream connection too when it ended cleanly (reusable).
pub(super) async fn relay(
    io: &mut Io,
    answered: Answered,
    read_timeout: Duration,
) -> (Relayed, Option<TcpStream>) {
    let Answered {
        mut stream,
        head_len,
        framing,
        reusable,
        close_client,
        ..
    } = answered;
    io.upbuf.advance(head_len);
    let result = match framing {
        Framing::Empty => io.send_out().await.map_err(|_| Relayed::ClientGone),
        Framing::Length(n) => relay_length(io, &mut stream, n, read_timeout).await,
        Framing::Chunked => relay_chunked(io, &mut stream, read_timeout).await,
        Framing::UntilClose => relay_until_close(io, &mut stream, read_timeout).await,
    };
    if let Err(why) = result {
        return (why, None);
    }
    let reusable = reusable && io.upbuf.is_empty();
    io.upbuf.clear();
    let relayed = if close_client {
        Relayed::CloseClient
    } else {
        Relayed::KeepClient
    };
    (relayed, reusable.then_some(stream))
}

/// Sends the first `n` bytes of `io.upbuf` to the client and drops them from the buffer.
async fn send_body(io: &mut Io, n: usize) -> Result<(), Relayed> {
    io.client
        .write_all(&io.upbuf[..n])
        .await
        .map_err(|_| Relayed::ClientGone)?;
    io.upbuf.advance(n);
    io.body_sent += n as u64;
    Ok(())
}

async fn flush(io: &mut Io) -> Result<(), Relayed> {
    io.client.flush().await.map_err(|_| Relayed::ClientGone)
}

/// Reads more of the body into `io.upbuf` (appending); `Ok(0)` at end of file.
async fn read_more(
    io: &mut Io,
    stream: &mut TcpStream,
    read_timeout: Duration,
) -> Result<usize, Relayed> {
    if io.upbuf.capacity() - io.upbuf.len() < READ_CHUNK / 2 {
        io.upbuf.reserve(READ_CHUNK);
    }
    io.upstream_timer.arm(read_timeout);
    match io.upstream_timer.run(stream.read_buf(&mut io.upbuf)).await {
        Some(Ok(n)) => Ok(n),
        Some(Err(_)) | None => Err(Relayed::UpstreamBroke),
    }
}

async fn relay_length(
    io: &mut Io,
    stream: &mut TcpStream,
    length: u64,
    read_timeout: Duration,
) -> Result<(), Relayed> {
    let first = length.min(io.upbuf.len() as u64) as usize;
    io.out.extend_from_slice(&io.upbuf[..first]);
    io.upbuf.advance(first);
    io.body_sent += first as u64;
    io.send_out().await.map_err(|_| Relayed::ClientGone)?;
    let mut left = length - first as u64;
    while left > 0 {
        io.upbuf.clear();
        if read_more(io, stream, read_timeout).await? == 0 {
            return Err(Relayed::UpstreamBroke);
        }
        let take = left.min(io.upbuf.len() as u64) as usize;
        send_body(io, take).await?;
        left -= take as u64;
    }
    flush(io).await
}

async fn relay_chunked(
    io: &mut Io,
    stream: &mut TcpStream,
    read_timeout: Duration,
) -> Result<(), Relayed> {
    let mut end = ChunkedEnd::default();
    let first = end
        .advance(&io.upbuf)
        .map_err(|BadChunk| Relayed::UpstreamBroke)?;
    io.out.extend_from_slice(&io.upbuf[..first]);
    io.upbuf.advance(first);
    io.body_sent += first as u64;
    io.send_out().await.map_err(|_| Relayed::ClientGone)?;
    while !end.is_done() {
        if read_more(io, stream, read_timeout).await? == 0 {
            return Err(Relayed::UpstreamBroke);
        }
        let n = end
            .advance(&io.upbuf)
            .map_err(|BadChunk| Relayed::UpstreamBroke)?;
        send_body(io, n).await?;
    }
    flush(io).await
}

async fn relay_until_close(
    io: &mut Io,
    stream: &mut TcpStream,
    read_timeout: Duration,
) -> Result<(), Relayed> {
    io.out.extend_from_slice(&io.upbuf);
    io.body_sent += io.upbuf.len() as u64;
    io.upbuf.clear();
    io.send_out().await.map_err(|_| Relayed::ClientGone)?;
    while read_more(io, stream, read_timeout).await? > 0 {
        let n = io.upbuf.len();
        send_body(io, n).await?;
    }
    flush(io).await
}
