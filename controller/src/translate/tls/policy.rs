//! Per-host HTTPS policy: `pier.dev/ssl-redirect` and `pier.dev/hsts`, decided per host by the
//! oldest Ingress that sets them, and which hosts a TLS binding covers.

use super::super::admit::Admitted;
use super::super::annotations;
use crate::diagnostic::Diagnostic;
use crate::store::ObjectKey;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::{HostMatch, TlsBinding};
use std::collections::HashSet;
use std::sync::Arc;

/// Reads `ssl-redirect` and `hsts` of one Ingress; an invalid value is a Diagnostic and is
/// ignored.
pub(crate) fn policy_annotations(
    key: &ObjectKey,
    meta: &ObjectMeta,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Option<bool>, Option<Arc<str>>) {
    let ssl_redirect = annotations::get(meta, "ssl-redirect").and_then(|v| {
        let parsed = annotations::parse_bool(v);
        if parsed.is_none() {
            let reason = format!("pier.dev/ssl-redirect: {v:?} is not true or false; ignored");
            diagnostics.push(Diagnostic::new("Ingress", key.to_string(), reason));
        }
        parsed
    });
    let hsts = annotations::get(meta, "hsts").and_then(|v| {
        if valid_hsts(v) {
            Some(Arc::from(v))
        } else {
            let reason = format!("pier.dev/hsts: {v:?} is not \"max-age=SECONDS[; …]\"; ignored");
            diagnostics.push(Diagnostic::new("Ingress", key.to_string(), reason));
            None
        }
    });
    (ssl_redirect, hsts)
}

/// `max-age=<seconds>` optionally followed by `; includeSubDomains` / `; preload`.
fn valid_hsts(value: &str) -> bool {
    let mut parts = value.split(';').map(str::trim);
    let max_age = parts.next().and_then(|p| p.strip_prefix("max-age="));
    max_age.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && parts.all(|p| p.eq_ignore_ascii_case("includeSubDomains") || p == "preload")
}

/// What the Ingresses of one host ask for: the oldest that sets a value decides.
#[derive(Debug, Default)]
pub(crate) struct HostPolicy {
    /// `ssl-redirect` as decided (a host with TLS redirects unless this is `false`).
    pub(crate) redirect: Option<bool>,
    /// `hsts` as decided.
    pub(crate) hsts: Option<Arc<str>>,
    /// Later Ingresses that disagree; reported only when the table has TLS.
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl HostPolicy {
    /// Decides for `host` from its Ingresses (served and valid, canaries included), oldest
    /// first.
    pub(crate) fn decide(host: &HostMatch, members: &[Arc<Admitted>]) -> HostPolicy {
        let mut diagnostics = Vec::new();
        let redirect = decide(
            host,
            "ssl-redirect",
            members,
            |m| m.ssl_redirect,
            &mut diagnostics,
        );
        let hsts = decide(host, "hsts", members, |m| m.hsts.clone(), &mut diagnostics);
        HostPolicy {
            redirect,
            hsts,
            diagnostics,
        }
    }
}

/// The first claim's value; later Ingresses that disagree get a Diagnostic.
fn decide<T: PartialEq + std::fmt::Debug>(
    host: &HostMatch,
    what: &str,
    members: &[Arc<Admitted>],
    value: impl Fn(&Admitted) -> Option<T>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut set = members.iter().filter_map(|m| value(m).map(|v| (m, v)));
    let (winner, chosen) = set.next()?;
    for (loser, v) in set.filter(|(_, v)| *v != chosen) {
        let reason = format!(
            "pier.dev/{what} {v:?} for host {host} conflicts with {chosen:?} from Ingress {}, \
             which takes precedence; ignored",
            winner.source
        );
        diagnostics.push(Diagnostic::new("Ingress", &*loser.source, reason));
    }
    Some(chosen)
}

/// The host patterns of every TLS binding, to tell which virtual hosts have TLS with a
/// lookup rather than a scan of the bindings.
pub(crate) struct Covered {
    exact: HashSet<String>,
    wildcard: HashSet<String>,
}

impl Covered {
    /// Indexes the hosts of `tls`.
    pub(crate) fn new(tls: &[TlsBinding]) -> Covered {
        let mut covered = Covered {
            exact: HashSet::new(),
            wildcard: HashSet::new(),
        };
        for host in tls.iter().flat_map(|b| &b.hosts) {
            match HostMatch::from_rule_host(host) {
                HostMatch::Exact(h) => drop(covered.exact.insert(h)),
                HostMatch::Wildcard(s) => drop(covered.wildcard.insert(s)),
                HostMatch::Any => {}
            }
        }
        covered
    }

    /// Whether a TLS host pattern covers the virtual host: the same exact host, a wildcard
    /// matching it, or the same wildcard. A rule without host never has TLS.
    pub(crate) fn covers(&self, host: &HostMatch) -> bool {
        match host {
            HostMatch::Exact(h) => {
                self.exact.contains(h)
                    || h.split_once('.').is_some_and(|(label, rest)| {
                        !label.is_empty() && self.wildcard.contains(rest)
                    })
            }
            HostMatch::Wildcard(s) => self.wildcard.contains(s),
            HostMatch::Any => false,
        }
    }
}
