//! HTTP/1.1 at the byte level, for tests that must control exactly what goes over the wire:
//! pipelined requests, interim (1xx) responses, chunked and close-delimited bodies, and
//! backends that misbehave on purpose.

use anyhow::{anyhow, bail, Context};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for any single read.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Header fields, names lower-cased, in order.
pub type Fields = Vec<(String, String)>;

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header fields, names lower-cased, in order.
    pub headers: Fields,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_value(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection that sends raw bytes and reads messages one by one: responses on a client
/// connection, requests on one a test backend accepted.
pub struct RawConnection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Longest wait for one read (`None`: a backend waits for its client as long as it likes).
    read_timeout: Option<Duration>,
}

impl RawConnection {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RawConnection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            buf: Vec::new(),
            read_timeout: Some(READ_TIMEOUT),
        })
    }

    /// The server side of a connection a test backend accepted.
    pub fn accepted(stream: TcpStream) -> RawConnection {
        let _ = stream.set_nodelay(true);
        RawConnection {
            stream,
            buf: Vec::new(),
            read_timeout: None,
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await.context("write")
    }

    /// Reads one response (an interim 1xx response counts as one). `head_request`: the
    /// request was HEAD, so no body follows.
    pub async fn read_response(&mut self, head_request: bool) -> anyhow::Result<RawResponse> {
        let (status_line, headers) = loop {
            if let Some(head) = self.take_head()? {
                break head;
            }
            if self.fill().await? == 0 {
                bail!("connection closed before a response head");
            }
        };
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("status line {status_line:?}"))?;
        let response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let no_body = head_request || status < 200 || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            self.read_chunked().await?
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.trim().parse().context("content-length")?;
            self.read_exact_body(length).await?
        } else {
            while self.fill().await? > 0 {}
            std::mem::take(&mut self.buf)
        };
        Ok(RawResponse { body, ..response })
    }

    /// Whether the server closed the connection (reads end of file within a second).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Reads one request (head and `Content-Length` body); `None` when the client closed the
    /// connection before a complete head.
    pub async fn read_request(&mut self) -> anyhow::Result<Option<RawRequest>> {
        let (request_line, headers) = loop {
            if let Some(head) = self.take_head()? {
                break head;
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        };
        let target = request_line.split(' ').nth(1).unwrap_or("").to_string();
        let length: usize = first_value(&headers, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = self.read_exact_body(length).await?;
        Ok(Some(RawRequest {
            target,
            headers,
            body,
        }))
    }

    /// Takes a complete head off the buffer: its first line and its fields; `None` if the
    /// head is not complete yet.
    fn take_head(&mut self) -> anyhow::Result<Option<(String, Fields)>> {
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&self.buf[..end]).context("head is not text")?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or("").to_string();
        let fields = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.buf.drain(..end + 4);
        Ok(Some((first, fields)))
    }

    async fn fill(&mut self) -> anyhow::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.stream.read(&mut chunk);
        let n = match self.read_timeout {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| anyhow!("read timed out"))?,
            None => read.await,
        }
        .context("read")?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn read_exact_body(&mut self, length: usize) -> anyhow::Result<Vec<u8>> {
        while self.buf.len() < length {
            if self.fill().await? == 0 {
                bail!("connection closed mid-body");
            }
        }
        Ok(self.buf.drain(..length).collect())
    }

    async fn read_line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.fill().await? == 0 {
                bail!("connection closed mid-line");
            }
        }
    }

    async fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).context("chunk size")?;
            if size == 0 {
                // Trailer fields until the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact_body(size).await?);
            if !self.read_line().await?.is_empty() {
                bail!("chunk data not followed by CRLF");
            }
        }
    }
}

/// A request as a test backend received it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Request target.
    pub target: String,
    /// Header fields.
    pub headers: Fields,
    /// The `Content-Length` body.
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_value(&self.headers, name)
    }
}

fn first_value<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
