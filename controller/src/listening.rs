//! Whether a local TCP address is in the LISTEN state, without connecting to it.
//!
//! Readiness waits for the proxy's listeners. Connecting to find out would make the TLS
//! listener log a failed handshake, so on Linux the kernel's socket tables are read instead.

use std::net::SocketAddr;

/// The kernel's `st` value for a listening socket in `/proc/net/tcp{,6}`.
const TCP_LISTEN: &str = "0A";

/// Whether some socket listens on `addr` (an unspecified-address listener counts for every
/// address of its family). `None` when the socket tables cannot be read (not Linux).
pub fn is_listening(addr: SocketAddr) -> Option<bool> {
    let table = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    Some(listens_in(&text, addr))
}

/// Parses one socket table (`/proc/net/tcp` format) looking for a listener on `addr`.
fn listens_in(table: &str, addr: SocketAddr) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(local), Some(_remote), Some(state)) =
            (fields.nth(1), fields.next(), fields.next())
        else {
            return false;
        };
        let Some((ip_hex, port_hex)) = local.split_once(':') else {
            return false;
        };
        let port_matches = u16::from_str_radix(port_hex, 16).is_ok_and(|p| p == addr.port());
        let ip_matches = ip_hex.chars().all(|c| c == '0') || ip_hex == kernel_hex(addr);
        state == TCP_LISTEN && port_matches && ip_matches
    })
}

/// An IP address as the kernel prints it: 32-bit words in host (little-endian) order.
fn kernel_hex(addr: SocketAddr) -> String {
    let bytes: Vec<u8> = match addr {
        SocketAddr::V4(a) => a.ip().octets().to_vec(),
        SocketAddr::V6(a) => a.ip().octets().to_vec(),
    };
    bytes
        .chunks(4)
        .map(|w| format!("{:02X}{:02X}{:02X}{:02X}", w[3], w[2], w[1], w[0]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_table_format() {
        let table = "  sl  local_address rem_address   st\n\
                     0: 0100007F:1F90 00000000:0000 0A 0\n\
                     1: 00000000:20FB 00000000:0000 0A 0\n\
                     2: 0100007F:2382 0100007F:1F90 01 0\n";
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(listens_in(table, at("127.0.0.1:8080")));
        assert!(
            listens_in(table, at("127.0.0.5:8443")),
            "0.0.0.0 listener covers every address"
        );
        assert!(
            !listens_in(table, at("127.0.0.1:9090")),
            "established, not listening"
        );
        assert!(!listens_in(table, at("127.0.0.2:8080")));
    }

    #[test]
    fn sees_a_real_listener_come_and_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        if let Some(listening) = is_listening(addr) {
            assert!(listening);
            drop(listener);
            assert_eq!(is_listening(addr), Some(false));
        }
    }
}
