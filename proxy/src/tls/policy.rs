//! Per-host HTTPS policy on the request path: the HTTP → HTTPS redirect and HSTS.
//!
//! Hosts are matched exactly like the router matches virtual hosts (exact, then a wildcard one
//! label up, then the rule without host), so the policy applied is the one of the virtual host
//! that serves the request.

use crate::table::{normalize_host, HostMap, HostTls, RoutingTable};

/// ACME HTTP-01 challenges must stay reachable over plain HTTP, or certificates could never
/// be issued for a host that redirects.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The compiled [`HostTls`] entries of one table.
#[derive(Debug, Default)]
pub struct HostPolicies {
    hosts: HostMap<HostTls>,
}

impl HostPolicies {
    /// Indexes the table's per-host TLS policies.
    pub fn build(table: &RoutingTable) -> HostPolicies {
        let mut policies = HostPolicies::default();
        for entry in &table.tls_hosts {
            policies.hosts.insert(&entry.host, entry.clone());
        }
        policies
    }

    /// The policy for a raw request host (`Host` or `:authority`).
    pub fn lookup(&self, raw_host: &str) -> Option<&HostTls> {
        if self.hosts.is_empty() {
            return None;
        }
        self.hosts.lookup(raw_host)
    }

    /// Where a plain-HTTP request must be redirected, if its host redirects:
    /// `https://<host without port><path>?<query>`.
    pub fn redirect_location(&self, raw_host: &str, path_and_query: &str) -> Option<String> {
        if path_and_query.starts_with(ACME_CHALLENGE_PREFIX) {
            return None;
        }
        let policy = self.lookup(raw_host)?;
        if !policy.ssl_redirect {
            return None;
        }
        let host = normalize_host(raw_host);
        if host.is_empty() {
            return None;
        }
        let path = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        Some(format!("https://{host}{path}"))
    }

    /// The `Strict-Transport-Security` value for an HTTPS answer to this host, if any.
    pub fn hsts(&self, raw_host: &str) -> Option<&str> {
        self.lookup(raw_host)?.hsts.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::HostMatch;
    use std::sync::Arc;

    fn policies() -> HostPolicies {
        let entry = |host: &str, ssl_redirect: bool, hsts: Option<&str>| HostTls {
            host: HostMatch::from_rule_host(host),
            ssl_redirect,
            hsts: hsts.map(Arc::from),
        };
        HostPolicies::build(&RoutingTable {
            tls_hosts: vec![
                entry("secure.example", true, Some("max-age=60")),
                entry("*.example", true, None),
                entry("plain.example", false, None),
            ],
            ..RoutingTable::default()
        })
    }

    #[test]
    fn redirect_keeps_path_and_query_and_drops_the_port() {
        let p = policies();
        assert_eq!(
            p.redirect_location("Secure.Example:8080", "/a/b?x=1&y=2")
                .as_deref(),
            Some("https://secure.example/a/b?x=1&y=2")
        );
        assert_eq!(
            p.redirect_location("w.example", "/").as_deref(),
            Some("https://w.example/")
        );
    }

    #[test]
    fn exact_host_without_redirect_shadows_the_wildcard() {
        let p = policies();
        assert_eq!(p.redirect_location("plain.example", "/"), None);
        assert_eq!(p.redirect_location("other.test", "/"), None);
        assert_eq!(
            p.redirect_location("secure.example", "/.well-known/acme-challenge/t"),
            None
        );
    }

    #[test]
    fn hsts_per_host() {
        let p = policies();
        assert_eq!(p.hsts("secure.example"), Some("max-age=60"));
        assert_eq!(p.hsts("w.example"), None);
        assert_eq!(HostPolicies::default().hsts("secure.example"), None);
    }
}
