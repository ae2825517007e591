//! An IP address as text on the stack, for what pier writes or hashes per request or
//! connection (the forwarding fields, `X-Real-IP`, the source-IP hash key): the same text as
//! `Display`, without an allocation, and for IPv4 without the formatting machinery.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

/// Room for the longest textual address (IPv6, 45 bytes).
const CAPACITY: usize = 46;

/// An address written out; empty when made from no address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpText {
    buf: [u8; CAPACITY],
    len: u8,
}

impl IpText {
    /// `ip` as text, or empty for `None`.
    pub fn new(ip: Option<IpAddr>) -> IpText {
        let mut buf = [0u8; CAPACITY];
        let len = match ip {
            Some(IpAddr::V4(v4)) => write_ipv4(v4, &mut buf),
            Some(ip) => {
                // The buffer holds any address: this cannot fail.
                let mut cursor = std::io::Cursor::new(&mut buf[..]);
                match write!(cursor, "{ip}") {
                    Ok(()) => cursor.position() as u8,
                    Err(_) => 0,
                }
            }
            None => 0,
        };
        IpText { buf, len }
    }

    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// Writes `ip` in dotted-decimal form at the start of `out`, returning its length: the
/// formatting machinery costs more than the rest of a new connection's forwarding fields.
fn write_ipv4(ip: Ipv4Addr, out: &mut [u8; CAPACITY]) -> u8 {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(octet).as_bytes();
        out[len..len + digits.len()].copy_from_slice(digits);
        len += digits.len();
    }
    len as u8
}
