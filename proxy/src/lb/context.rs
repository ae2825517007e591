//! What the balancers may look at in a request, whichever HTTP front end parsed it.

use super::affinity;
use super::maglev::hash64;
use crate::ip_text::IpText;
use crate::table::HashKey;
use http::HeaderMap;
use std::net::IpAddr;

/// A request's headers: Pingora's parsed map (HTTP/2 and the general path) or the raw fields
/// of pier's HTTP/1.1 fast path, read in place without building a map.
#[derive(Debug, Clone, Copy)]
pub enum RequestHeaders<'a> {
    /// A parsed header map.
    Map(&'a HeaderMap),
    /// Header fields as they arrived (names in any case).
    Raw(&'a [httparse::Header<'a>]),
}

impl<'a> RequestHeaders<'a> {
    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        match self {
            RequestHeaders::Map(map) => map.get(name).map(|v| v.as_bytes()),
            RequestHeaders::Raw(fields) => fields
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
        }
    }

    /// Every value of header `name`, in order.
    pub fn get_all(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (map, fields) = match *self {
            RequestHeaders::Map(map) => (Some(map), None),
            RequestHeaders::Raw(fields) => (None, Some(fields)),
        };
        let from_map = map
            .into_iter()
            .flat_map(move |m| m.get_all(name).iter().map(|v| v.as_bytes()));
        let from_fields = fields.into_iter().flat_map(move |f| {
            f.iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        });
        from_map.chain(from_fields)
    }
}

impl<'a> From<&'a HeaderMap> for RequestHeaders<'a> {
    fn from(map: &'a HeaderMap) -> Self {
        RequestHeaders::Map(map)
    }
}

/// What a balancer may look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// Request headers.
    pub headers: RequestHeaders<'a>,
    /// Request path without the query.
    pub path: &'a str,
    /// Raw query string.
    pub query: Option<&'a str>,
}

impl<'a> PickContext<'a> {
    /// Value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        affinity::find_cookie(self.headers.get_all("cookie"), name)
    }

    /// The value of header `name` as text, when it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query?
            .split('&')
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The consistent-hash key, if the request has it.
    pub(super) fn hash_key(&self, key: &HashKey) -> Option<u64> {
        const SEED: u64 = 0x4a5b;
        Some(match key {
            HashKey::Header(name) => hash64(self.headers.get(name)?, SEED),
            HashKey::Cookie(name) => hash64(self.cookie(name)?.as_bytes(), SEED),
            // The address as text: the key pier has always hashed.
            HashKey::SourceIp => hash64(IpText::new(Some(self.client_ip?)).as_bytes(), SEED),
            HashKey::Path => hash64(self.path.as_bytes(), SEED),
            HashKey::Query(name) => hash64(self.query_param(name)?.as_bytes(), SEED),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(fields: &'a [(&'a str, &'a str)]) -> Vec<httparse::Header<'a>> {
        fields
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect()
    }

    #[test]
    fn raw_and_map_headers_answer_alike() {
        let fields = [
            ("Cookie", "a=1"),
            ("X-Canary", "always"),
            ("cookie", "pier-affinity=abc"),
        ];
        let raw = raw(&fields);
        let mut map = HeaderMap::new();
        for (n, v) in fields {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        for headers in [RequestHeaders::Raw(&raw), RequestHeaders::Map(&map)] {
            let ctx = PickContext {
                client_ip: None,
                headers,
                path: "/",
                query: None,
            };
            assert_eq!(ctx.header_str("x-canary"), Some("always"));
            assert_eq!(ctx.header_str("X-CANARY"), Some("always"));
            assert_eq!(
                ctx.cookie("pier-affinity"),
                Some("abc"),
                "second Cookie field"
            );
            assert_eq!(ctx.cookie("a"), Some("1"));
            assert_eq!(ctx.cookie("b"), None);
            assert_eq!(headers.get_all("cookie").count(), 2);
        }
    }

    #[test]
    fn the_source_ip_key_is_the_address_as_text() {
        for ip in [
            "192.0.2.7",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let map = http::HeaderMap::new();
            let ctx = PickContext {
                client_ip: Some(ip),
                headers: RequestHeaders::Map(&map),
                path: "/",
                query: None,
            };
            assert_eq!(
                ctx.hash_key(&HashKey::SourceIp),
                Some(hash64(ip.to_string().as_bytes(), 0x4a5b)),
                "{ip}"
            );
        }
    }
}
