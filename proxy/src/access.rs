//! The access log: one line per request, text or JSON, on standard output.
//!
//! A request formats its line into a buffer shared by the workers (a short critical section:
//! appending a few hundred bytes); a writer thread takes the buffer every
//! [`FLUSH_EVERY`] and writes it out, so neither formatting machinery nor a slow terminal or
//! pipe sits on the request path. When the writer cannot keep up and [`MAX_PENDING`] bytes
//! are waiting, lines are dropped and counted (`pier_access_log_dropped_total`) rather than
//! slowing requests down. Off unless the binary calls [`install`]; then checking costs one
//! atomic load per request.

use prometheus_client::metrics::counter::Counter;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the writer thread writes what has accumulated.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes waiting to be written beyond which new lines are dropped.
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `key=value` pairs (values quoted when they contain spaces or quotes).
    Text,
    /// One JSON object per line.
    Json,
}

struct Logger {
    format: Format,
    pending: Mutex<Vec<u8>>,
    max_pending: usize,
}

impl Logger {
    fn new(format: Format, max_pending: usize) -> Logger {
        Logger {
            format,
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            max_pending,
        }
    }

    /// Queues a formatted line; `false` (and the line counted as dropped) when the writer is
    /// too far behind.
    fn push(&self, line: &str) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() + line.len() > self.max_pending {
            drop(pending);
            dropped().inc();
            return false;
        }
        pending.extend_from_slice(line.as_bytes());
        true
    }

    /// Takes what is pending, leaving `spare` (emptied) in its place.
    fn take(&self, spare: &mut Vec<u8>) {
        spare.clear();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *pending, spare);
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Lines dropped because the writer could not keep up (`pier_access_log_dropped_total`).
pub fn dropped() -> &'static Counter {
    static DROPPED: OnceLock<Counter> = OnceLock::new();
    DROPPED.get_or_init(Counter::default)
}

/// Turns the access log on for the rest of the process, writing to standard output. Later
/// calls change nothing.
pub fn install(format: Format) {
    let mut first = false;
    LOGGER.get_or_init(|| {
        first = true;
        Logger::new(format, MAX_PENDING)
    });
    if first {
        let spawned = std::thread::Builder::new()
            .name("pier-access-log".into())
            .spawn(|| write_forever(std::io::stdout()));
        if let Err(e) = spawned {
            tracing::error!("cannot start the access-log writer: {e}");
        }
    }
}

/// Whether the access log is on (then requests note their start time).
#[inline]
pub fn enabled() -> bool {
    LOGGER.get().is_some()
}

/// Writes what is pending now (at exit: the writer thread may not get another turn).
pub fn flush() {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let mut lines = Vec::new();
    logger.take(&mut lines);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&lines);
    let _ = out.flush();
}

/// Writes whatever is pending, every [`FLUSH_EVERY`], for ever.
fn write_forever(mut out: impl std::io::Write) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        std::thread::sleep(FLUSH_EVERY);
        logger.take(&mut spare);
        if !spare.is_empty() {
            // Standard output gone (closed pipe): the lines are lost, requests go on.
            let _ = out.write_all(&spare);
            let _ = out.flush();
        }
    }
}

/// What the access log says about one request.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The client's address.
    pub client: Option<IpAddr>,
    /// Request method.
    pub method: &'a str,
    /// The request's host as sent (`Host` or `:authority`).
    pub host: &'a str,
    /// Path and query as sent.
    pub target: &'a str,
    /// Status sent to the client (0: none could be sent).
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// From the request head being read to the response being done.
    pub duration: Duration,
    /// The endpoint that answered (the last one tried), if any.
    pub upstream: Option<SocketAddr>,
    /// The matched route (`namespace/ingress`), if any.
    pub route: Option<&'a str>,
}

/// Per worker thread: the line being formatted, and the current second already formatted.
struct Scratch {
    line: String,
    second: u64,
    stamp: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        line: String::with_capacity(512),
        second: u64::MAX,
        stamp: String::new(),
    });
}

/// Logs one request (nothing when the access log is off).
pub fn log(entry: &Entry<'_>) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    SCRATCH.with(|cell| {
        let scratch = &mut *cell.borrow_mut();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if now.as_secs() != scratch.second {
            scratch.second = now.as_secs();
            scratch.stamp = format_second(now.as_secs());
        }
        scratch.line.clear();
        let time = Time {
            second: &scratch.stamp,
            millis: now.subsec_millis(),
        };
        format_line(&mut scratch.line, logger.format, time, entry);
        logger.push(&scratch.line);
    });
}

/// A timestamp: the formatted second and the milliseconds.
#[derive(Clone, Copy)]
struct Time<'a> {
    second: &'a str,
    millis: u32,
}

impl std::fmt::Display for Time<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}Z", self.second, self.millis)
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second, in UTC.
fn format_second(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Formats `entry` as one line (with its newline) into `line`.
fn format_line(line: &mut String, format: Format, time: Time<'_>, entry: &Entry<'_>) {
    let client = entry.client.map(Addr::Ip);
    let upstream = entry.upstream.map(Addr::Socket);
    let route = entry.route.unwrap_or("-");
    let mut status = itoa::Buffer::new();
    let status = status.format(entry.status);
    let mut bytes = itoa::Buffer::new();
    let bytes = bytes.format(entry.bytes);
    let duration_ms = Millis(entry.duration);
    match format {
        Format::Text => {
            let _ = write!(line, "time={time} client=");
            text_addr(line, client);
            line.push_str(" method=");
            text_value(line, entry.method);
            line.push_str(" host=");
            text_value(line, entry.host);
            line.push_str(" uri=");
            text_value(line, entry.target);
            let _ = write!(
                line,
                " status={status} bytes={bytes} duration_ms={duration_ms} upstream="
            );
            text_addr(line, upstream);
            line.push_str(" route=");
            text_value(line, route);
        }
        Format::Json => {
            let _ = write!(line, "{{\"time\":\"{time}\",\"client\":\"");
            text_addr(line, client);
            line.push_str("\",\"method\":");
            json_string(line, entry.method);
            line.push_str(",\"host\":");
            json_string(line, entry.host);
            line.push_str(",\"uri\":");
            json_string(line, entry.target);
            let _ = write!(
                line,
                ",\"status\":{status},\"bytes\":{bytes},\"duration_ms\":{duration_ms},\"upstream\":\""
            );
            text_addr(line, upstream);
            line.push_str("\",\"route\":");
            json_string(line, route);
            line.push('}');
        }
    }
    line.push('\n');
}

/// A duration as milliseconds with three decimals, without floating point.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        let mut whole = itoa::Buffer::new();
        f.write_str(whole.format(micros / 1000))?;
        let frac = (micros % 1000) as u16;
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        f.write_str(std::str::from_utf8(&digits).unwrap_or(".000"))
    }
}

enum Addr {
    Ip(IpAddr),
    Socket(SocketAddr),
}

/// An address, or `-` (addresses need no quoting in either format).
fn text_addr(line: &mut String, addr: Option<Addr>) {
    let _ = match addr {
        Some(Addr::Ip(ip)) => write!(line, "{ip}"),
        Some(Addr::Socket(a)) => write!(line, "{a}"),
        None => write!(line, "-"),
    };
}

/// A text value: as it is, or quoted with `"` and `\` escaped when it holds spaces, quotes or
/// control characters (so a line always splits into its fields).
fn text_value(line: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b > b' ' && b != b'"' && b != b'\\' && b != 0x7f);
    if plain {
        line.push_str(value);
        return;
    }
    line.push('"');
    escaped(line, value, |line, b| match b {
        b'"' | b'\\' => {
            line.push('\\');
            line.push(char::from(b));
        }
        _ => {
            let _ = write!(line, "\\x{b:02x}");
        }
    });
    line.push('"');
}

/// A JSON string literal.
fn json_string(line: &mut String, value: &str) {
    line.push('"');
    escaped(line, value, |line, b| match b {
        b'"' => line.push_str("\\\""),
        b'\\' => line.push_str("\\\\"),
        b'\n' => line.push_str("\\n"),
        b'\r' => line.push_str("\\r"),
        b'\t' => line.push_str("\\t"),
        _ => {
            let _ = write!(line, "\\u{b:04x}");
        }
    });
    line.push('"');
}

/// Copies `value`, handing each quote, backslash and ASCII control byte to `escape` and the
/// runs between them over whole (multi-byte characters are never split: the bytes escaped
/// are all ASCII).
fn escaped(line: &mut String, value: &str, escape: impl Fn(&mut String, u8)) {
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        if b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f {
            line.push_str(&value[start..i]);
            escape(line, b);
            start = i + 1;
        }
    }
    line.push_str(&value[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(target: &'a str, host: &'a str) -> Entry<'a> {
        Entry {
            client: Some("192.0.2.7".parse().unwrap()),
            method: "GET",
            host,
            target,
            status: 200,
            bytes: 12,
            duration: Duration::from_micros(1500),
            upstream: Some("10.0.0.1:8080".parse().unwrap()),
            route: Some("shop/web"),
        }
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let mut line = String::new();
        let e = entry("/a?b=\"x\"\\y\n\u{1}é\u{7f}", "Shop.Example");
        let time = Time {
            second: "2026-11-29T13:46:54",
            millis: 889,
        };
        format_line(&mut line, Format::Json, time, &e);
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("valid JSON");
        assert_eq!(v["uri"], "/a?b=\"x\"\\y\n\u{1}é\u{7f}");
        assert_eq!(v["host"], "Shop.Example");
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 12);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["upstream"], "10.0.0.1:8080");
        assert_eq!(v["route"], "shop/web");
        assert_eq!(v["time"], "2026-11-29T13:46:54.889Z");
    }

    #[test]
    fn text_lines_quote_what_would_split_them() {
        let mut line = String::new();
        let mut e = entry("/a b\"c", "h");
        e.upstream = None;
        e.route = None;
        let time = Time {
            second: "T",
            millis: 7,
        };
        format_line(&mut line, Format::Text, time, &e);
        assert_eq!(
            line,
            "time=T.007Z client=192.0.2.7 method=GET host=h uri=\"/a b\\\"c\" status=200 bytes=12 \
             duration_ms=1.500 upstream=- route=-\n"
        );
    }

    #[test]
    fn lines_beyond_the_backlog_are_dropped_and_counted() {
        let logger = Logger::new(Format::Text, 10);
        let before = dropped().get();
        assert!(logger.push("12345\n"));
        assert!(!logger.push("123456\n"), "over the backlog");
        assert_eq!(dropped().get(), before + 1);
        let mut spare = Vec::new();
        logger.take(&mut spare);
        assert_eq!(spare, b"12345\n");
        assert!(logger.push("123456\n"), "room again once written");
    }

    #[test]
    fn durations_print_as_milliseconds_with_three_decimals() {
        for (micros, text) in [(0, "0.000"), (1_500, "1.500"), (12_345_678, "12345.678")] {
            assert_eq!(Millis(Duration::from_micros(micros)).to_string(), text);
        }
    }

    #[test]
    fn seconds_become_utc_dates() {
        assert_eq!(format_second(0), "1970-01-01T00:00:00");
        assert_eq!(format_second(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(format_second(1_795_959_014), "2026-11-29T13:30:14");
    }
}
