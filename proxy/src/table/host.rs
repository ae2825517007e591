//! Host patterns of virtual hosts and normalisation of request hosts.

use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// Which request hosts a virtual host answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostMatch {
    /// One host name, lower-case, e.g. `foo.bar.com`.
    Exact(String),
    /// `*.foo.com`, stored as the suffix `foo.com`: matches exactly one extra leading label.
    Wildcard(String),
    /// A rule without host: any host that no other virtual host matches.
    Any,
}

impl HostMatch {
    /// Builds a pattern from an Ingress rule host (`""` means any host). Case is folded.
    pub fn from_rule_host(host: &str) -> HostMatch {
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostMatch::Wildcard(suffix.to_string())
        } else {
            HostMatch::Exact(host)
        }
    }

    /// Whether a normalised request host (see [`normalize_host`]) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h == host,
            HostMatch::Wildcard(suffix) => match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            },
            HostMatch::Any => true,
        }
    }
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*.{s}"),
            HostMatch::Any => f.write_str("*"),
        }
    }
}

impl Serialize for HostMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Values keyed by host pattern, looked up the way the Ingress specification matches hosts:
/// the exact host, else the wildcard one label up, else the rule without host. Two hash probes
/// at most; shared by the router and the per-host TLS policies so both always agree.
#[derive(Debug)]
pub struct HostMap<T> {
    exact: crate::FastMap<String, T>,
    wildcard: crate::FastMap<String, T>,
    any: Option<T>,
}

impl<T> Default for HostMap<T> {
    fn default() -> Self {
        HostMap {
            exact: crate::FastMap::default(),
            wildcard: crate::FastMap::default(),
            any: None,
        }
    }
}

impl<T> HostMap<T> {
    /// Sets the value of a pattern (replacing an earlier one).
    pub fn insert(&mut self, host: &HostMatch, value: T) {
        match host {
            HostMatch::Exact(h) => {
                self.exact.insert(h.clone(), value);
            }
            HostMatch::Wildcard(s) => {
                self.wildcard.insert(s.clone(), value);
            }
            HostMatch::Any => self.any = Some(value),
        }
    }

    /// The value of exactly this pattern (not a request-style lookup).
    pub fn get(&self, host: &HostMatch) -> Option<&T> {
        match host {
            HostMatch::Exact(h) => self.exact.get(h),
            HostMatch::Wildcard(s) => self.wildcard.get(s),
            HostMatch::Any => self.any.as_ref(),
        }
    }

    /// Whether no pattern has a value.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any.is_none()
    }

    /// The value for a raw request host (`Host` or `:authority`; normalised here).
    pub fn lookup(&self, raw_host: &str) -> Option<&T> {
        let host = normalize_host(raw_host);
        self.exact
            .get(&*host)
            .or_else(|| match host.split_once('.') {
                Some((label, rest)) if !label.is_empty() => self.wildcard.get(rest),
                _ => None,
            })
            .or(self.any.as_ref())
    }
}

/// Normalises a request's host (HTTP/1 `Host` header or HTTP/2 `:authority`) for matching:
/// drops userinfo and `:port`, a trailing dot, and folds case. IPv6 literals keep their brackets.
/// Borrows when no case folding is needed (the usual request), so the hot path does not allocate.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim();
    let bytes = raw.as_bytes();
    // One pass from the end finds where the userinfo ends (the last '@'), the port (digits
    // after the last ':' that follows it) and whether any letter needs folding.
    let mut start = 0;
    let mut port_at = None;
    let mut colon_seen = false;
    let mut digits_only = true;
    let mut upper = false;
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b'@' => {
                start = i + 1;
                break;
            }
            b':' => {
                if !colon_seen && digits_only {
                    port_at = Some(i);
                }
                colon_seen = true;
                digits_only = false;
            }
            b'0'..=b'9' => {}
            _ => {
                digits_only = false;
                upper |= b.is_ascii_uppercase();
            }
        }
    }
    let host = &raw[start..];
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match port_at {
            Some(colon) => &raw[start..colon],
            None => host,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if upper {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_port_and_trailing_dot() {
        assert_eq!(normalize_host("Foo.Example.COM:8080"), "foo.example.com");
        assert_eq!(normalize_host("foo.example.com."), "foo.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("user@host.test:1"), "host.test");
        assert_eq!(normalize_host("plain"), "plain");
    }

    #[test]
    fn userinfo_ports_and_brackets_are_read_from_the_end() {
        let cases = [
            ("a@b:12", "b"),
            ("User:Pw@Host.Test.:443", "host.test"),
            ("host:", "host"),
            ("host:8a", "host:8a"),
            ("host:80@x", "x"),
            ("[::A]:1", "[::a]"),
            ("[::1]", "[::1]"),
            ("[::1", "[::1"),
            (" Example.com:80 ", "example.com"),
            ("", ""),
            ("1.2.3.4:5", "1.2.3.4"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_host(raw), expected, "{raw:?}");
        }
        assert!(matches!(normalize_host("h.test:80"), Cow::Borrowed(_)));
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let w = HostMatch::from_rule_host("*.Foo.com");
        assert!(w.matches("bar.foo.com"));
        assert!(!w.matches("baz.bar.foo.com"));
        assert!(!w.matches("foo.com"));
        assert!(!w.matches(".foo.com"));
    }

    #[test]
    fn exact_and_any() {
        assert!(HostMatch::from_rule_host("FOO.com").matches("foo.com"));
        assert!(!HostMatch::from_rule_host("foo.com").matches("bar.foo.com"));
        assert!(HostMatch::from_rule_host("").matches("anything"));
    }
}
