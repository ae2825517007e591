//! Reading `pier.dev/…` annotations (design.md §9) from object metadata.
//!
//! Each feature parses its own keys; this module only finds them, so that the prefix and the
//! "Ingress annotation overrides Service annotation" rule live in one place.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The prefix of every pier annotation.
pub const PREFIX: &str = "pier.dev/";

/// The value of annotation `pier.dev/<key>` on an object, trimmed; `None` when absent.
pub fn get<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    let annotations = meta.annotations.as_ref()?;
    annotations
        .iter()
        .find(|(k, _)| k.strip_prefix(PREFIX) == Some(key))
        .map(|(_, v)| v.trim())
}

/// The first of several objects (most specific first, e.g. the Ingress, then the Service)
/// that carries `pier.dev/<key>`.
pub fn first<'a>(metas: &[&'a ObjectMeta], key: &str) -> Option<&'a str> {
    metas.iter().find_map(|m| get(m, key))
}

/// Parses a boolean annotation value (`true`/`false`, case-insensitive).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(pairs: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn finds_prefixed_keys_only() {
        let m = meta(&[("pier.dev/ssl-redirect", " false "), ("other/x", "1")]);
        assert_eq!(get(&m, "ssl-redirect"), Some("false"));
        assert_eq!(get(&m, "x"), None);
        assert_eq!(get(&ObjectMeta::default(), "x"), None);
    }

    #[test]
    fn most_specific_object_wins() {
        let ingress = meta(&[("pier.dev/load-balance", "least-request")]);
        let service = meta(&[
            ("pier.dev/load-balance", "random"),
            ("pier.dev/retries", "3"),
        ]);
        assert_eq!(
            first(&[&ingress, &service], "load-balance"),
            Some("least-request")
        );
        assert_eq!(first(&[&ingress, &service], "retries"), Some("3"));
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
