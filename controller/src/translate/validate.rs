//! The API server's Ingress validation, repeated here because the file source never passes
//! through an API server, and a cluster may hold objects written before a rule was tightened.
//!
//! Each problem is one message naming the field; the caller turns them into Diagnostics and
//! leaves the whole Ingress out, as the API server would have refused it whole.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressServiceBackend, ServiceBackendPort,
};
use std::fmt::{Display, Formatter};
use std::net::IpAddr;

/// `spec.rules[i].http.paths[j]`; fields are formatted only for the problems found.
struct PathField(usize, usize);

impl Display for PathField {
    fn fmt(&self, f: &mut Formatter<'_>) -> std::fmt::Result {
        write!(f, "spec.rules[{}].http.paths[{}]", self.0, self.1)
    }
}

/// A field followed by more of its name.
struct Child<'a, T>(&'a dyn Display, T);

impl<T: Display> Display for Child<'_, T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// `.path "<value>"`, naming a path by its value.
struct PathValue<'a>(&'a str);

impl Display for PathValue<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> std::fmt::Result {
        write!(f, ".path {:?}", self.0)
    }
}

/// Every reason the API server would reject this Ingress, each naming the offending field.
pub(crate) fn validate(ingress: &Ingress) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = &ingress.spec else {
        out.push("spec: either defaultBackend or rules must be specified".to_string());
        return out;
    };
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        out.push("spec: either defaultBackend or rules must be specified".to_string());
    }
    if let Some(backend) = &spec.default_backend {
        check_backend(&"spec.defaultBackend", backend, &mut out);
    }
    for (i, rule) in rules.iter().enumerate() {
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            if let Some(problem) = host_problem(host, false) {
                out.push(format!("spec.rules[{i}].host {host:?}: {problem}"));
            }
        }
        let Some(http) = &rule.http else { continue };
        if http.paths.is_empty() {
            out.push(format!(
                "spec.rules[{i}].http.paths: at least one path is required"
            ));
        }
        for (j, path) in http.paths.iter().enumerate() {
            let field = PathField(i, j);
            check_path(&field, path, &mut out);
            check_backend(&Child(&field, ".backend"), &path.backend, &mut out);
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            // The API server accepts IP addresses here (they are valid subdomain strings).
            if let Some(problem) = host_problem(host, true) {
                out.push(format!("spec.tls[{i}].hosts[{j}] {host:?}: {problem}"));
            }
        }
    }
    out
}

/// `None` when `host` is acceptable as an Ingress host (`*.` wildcard allowed).
fn host_problem(host: &str, allow_ip: bool) -> Option<&'static str> {
    if !allow_ip && host.parse::<IpAddr>().is_ok() {
        return Some("must be a DNS name, not an IP address");
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if is_dns1123_subdomain(name) {
        None
    } else {
        Some(
            "must be a lower-case DNS name (RFC 1123 subdomain: labels of [a-z0-9-] up to 63 \
             characters, 253 in total), optionally prefixed by \"*.\"",
        )
    }
}

fn check_path(field: &dyn Display, path: &HTTPIngressPath, out: &mut Vec<String>) {
    match path.path_type.as_str() {
        "Exact" | "Prefix" | "ImplementationSpecific" => {}
        "" => {
            out.push(format!(
                "{field}.pathType is required (Exact, Prefix or ImplementationSpecific)"
            ));
            return;
        }
        other => {
            out.push(format!(
                "{field}.pathType {other:?} is not supported (Exact, Prefix or \
                 ImplementationSpecific)"
            ));
            return;
        }
    }
    // ImplementationSpecific gets Prefix's checks because pier serves it as Prefix.
    let value = path.path.as_deref().unwrap_or_default();
    let field = Child(field, PathValue(value));
    if !value.starts_with('/') {
        out.push(format!(
            "{field}: must be an absolute path (start with '/')"
        ));
    }
    for seq in ["//", "/./", "/../"] {
        if value.contains(seq) {
            out.push(format!("{field}: must not contain '{seq}'"));
        }
    }
    for suffix in ["/..", "/."] {
        if value.ends_with(suffix) {
            out.push(format!("{field}: must not end with '{suffix}'"));
        }
    }
    if !value.contains('%') {
        return;
    }
    let lower = value.to_ascii_lowercase();
    if lower.contains("%2f") {
        out.push(format!("{field}: must not contain an encoded '/' (%2F)"));
    }
    // An encoded dot segment would let a request escape the prefix after the backend decodes it.
    let decoded = lower.replace("%2e", ".");
    if decoded != lower && has_dot_segment(&decoded) {
        out.push(format!(
            "{field}: must not contain an encoded '.' or '..' segment (%2E)"
        ));
    }
}

fn has_dot_segment(path: &str) -> bool {
    path.contains("/./") || path.contains("/../") || path.ends_with("/.") || path.ends_with("/..")
}

fn check_backend(field: &dyn Display, backend: &IngressBackend, out: &mut Vec<String>) {
    match (&backend.service, &backend.resource) {
        (Some(service), None) => check_service(&Child(field, ".service"), service, out),
        // Valid for the API; translate() reports that pier cannot serve it.
        (None, Some(_)) => {}
        _ => out.push(format!(
            "{field}: must specify exactly one of service or resource"
        )),
    }
}

fn check_service(field: &dyn Display, service: &IngressServiceBackend, out: &mut Vec<String>) {
    if service.name.is_empty() {
        out.push(format!("{field}.name is required"));
    } else if !is_dns1035_label(&service.name) {
        out.push(format!(
            "{field}.name {:?}: must be a DNS-1035 label (a Service name)",
            service.name
        ));
    }
    let Some(port) = &service.port else {
        out.push(format!("{field}.port is required"));
        return;
    };
    if let Some(problem) = port_problem(port) {
        out.push(format!("{field}.port: {problem}"));
    }
}

fn port_problem(port: &ServiceBackendPort) -> Option<String> {
    let name = port.name.as_deref().filter(|n| !n.is_empty());
    match (name, port.number) {
        (Some(_), Some(_)) | (None, None) => {
            Some("must specify exactly one of name or number".to_string())
        }
        (Some(name), None) if !is_iana_svc_name(name) => Some(format!(
            "name {name:?} must be an IANA service name (at most 15 characters of [a-z0-9-], \
             with a letter)"
        )),
        (None, Some(n)) if !(1..=65535).contains(&n) => {
            Some(format!("number {n} must be between 1 and 65535"))
        }
        _ => None,
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| is_dns_label(l, 63))
}

fn is_dns_label(label: &str, max: usize) -> bool {
    let b = label.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= max
        && b.iter().all(inner_ok)
        && b.first().is_some_and(edge_ok)
        && b.last().is_some_and(edge_ok)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s, 63) && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

fn is_iana_svc_name(s: &str) -> bool {
    is_dns_label(s, 15) && !s.contains("--") && s.bytes().any(|c| c.is_ascii_lowercase())
}
