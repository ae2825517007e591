//! Relaying a response body to an HTTP/1.1 client as it arrives from the endpoint, by its
//! framing, and telling whether the upstream connection ended cleanly enough to be reused.

use super::chunked::{BadChunk, ChunkedEnd};
use super::connection::Io;
use super::exchange::{Answered, Relayed, UpstreamIo};
use super::response::Framing;
use bytes::Buf;
use std::time::Duration;
use tokio::net::TcpStream;

/// Sends the client's response head (in `io.out`) with the body bytes already read, then the
/// rest of the body as it arrives; after a `101`, the head and whatever the endpoint sent after
/// it in the new protocol.
pub(super) async fn relay(
    io: &mut Io,
    up: &mut UpstreamIo,
    answered: &mut Answered,
    read_timeout: Duration,
) -> Relayed {
    if answered.upgraded {
        io.out.extend_from_slice(&up.buf);
        up.buf.clear();
        return match io.send_out().await {
            Ok(()) => Relayed::Upgraded,
            Err(_) => Relayed::ClientGone,
        };
    }
    let stream = &mut answered.stream;
    let result = match answered.framing {
        Framing::Empty => io.send_out().await.map_err(|_| Relayed::ClientGone),
        Framing::Length(n) => relay_length(io, up, stream, n, read_timeout).await,
        Framing::Chunked => relay_chunked(io, up, stream, read_timeout).await,
        Framing::UntilClose => relay_until_close(io, up, stream, read_timeout).await,
    };
    match result {
        Err(why) => why,
        Ok(()) if answered.close_client => Relayed::CloseClient,
        Ok(()) => Relayed::KeepClient,
    }
}

/// Sends the first `n` bytes of `up.buf` to the client (within the send timeout; a client
/// that takes none of them in time is gone) and drops them from the buffer.
async fn send_body(io: &mut Io, up: &mut UpstreamIo, n: usize) -> Result<(), Relayed> {
    io.send(&up.buf[..n])
        .await
        .map_err(|_| Relayed::ClientGone)?;
    up.buf.advance(n);
    io.body_sent += n as u64;
    Ok(())
}

async fn relay_length(
    io: &mut Io,
    up: &mut UpstreamIo,
    stream: &mut TcpStream,
    length: u64,
    read_timeout: Duration,
) -> Result<(), Relayed> {
    let first = length.min(up.buf.len() as u64) as usize;
    io.out.extend_from_slice(&up.buf[..first]);
    up.buf.advance(first);
    io.body_sent += first as u64;
    io.send_out().await.map_err(|_| Relayed::ClientGone)?;
    let mut left = length - first as u64;
    while left > 0 {
        up.buf.clear();
        if up.read_more(stream, read_timeout).await? == 0 {
            return Err(Relayed::UpstreamBroke);
        }
        let take = left.min(up.buf.len() as u64) as usize;
        send_body(io, up, take).await?;
        left -= take as u64;
    }
    Ok(())
}

async fn relay_chunked(
    io: &mut Io,
    up: &mut UpstreamIo,
    stream: &mut TcpStream,
    read_timeout: Duration,
) -> Result<(), Relayed> {
    let mut end = ChunkedEnd::default();
    let first = end
        .advance(&up.buf)
        .map_err(|BadChunk| Relayed::UpstreamBroke)?;
    io.out.extend_from_slice(&up.buf[..first]);
    up.buf.advance(first);
    io.body_sent += first as u64;
    io.send_out().await.map_err(|_| Relayed::ClientGone)?;
    while !end.is_done() {
        if up.read_more(stream, read_timeout).await? == 0 {
            return Err(Relayed::UpstreamBroke);
        }
        let n = end
            .advance(&up.buf)
            .map_err(|BadChunk| Relayed::UpstreamBroke)?;
        send_body(io, up, n).await?;
    }
    Ok(())
}

async fn relay_until_close(
    io: &mut Io,
    up: &mut UpstreamIo,
    stream: &mut TcpStream,
    read_timeout: Duration,
) -> Result<(), Relayed> {
    io.out.extend_from_slice(&up.buf);
    io.body_sent += up.buf.len() as u64;
    up.buf.clear();
    io.send_out().await.map_err(|_| Relayed::ClientGone)?;
    while up.read_more(stream, read_timeout).await? > 0 {
        let n = up.buf.len();
        send_body(io, up, n).await?;
    }
    Ok(())
}
