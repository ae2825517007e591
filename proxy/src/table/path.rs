//! Path rules of routes (Ingress `Exact` and `Prefix`; `ImplementationSpecific` is `Prefix`).

use serde::Serialize;

/// How a route's path is compared with the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PathKind {
    /// The whole request path must equal the rule, case-sensitively.
    Exact,
    /// The rule's `/`-separated elements must be a prefix of the request path's elements.
    Prefix,
}

/// A route's path rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PathMatch {
    /// Exact or element-wise prefix.
    pub kind: PathKind,
    /// The path; for `Prefix`, stored without a trailing `/` (except the root `/`).
    pub path: String,
}

impl PathMatch {
    /// An exact path rule.
    pub fn exact(path: &str) -> PathMatch {
        PathMatch {
            kind: PathKind::Exact,
            path: path.to_string(),
        }
    }

    /// A prefix path rule; a trailing `/` is ignored, as the Ingress specification says.
    pub fn prefix(path: &str) -> PathMatch {
        PathMatch {
            kind: PathKind::Prefix,
            path: trim_trailing_slashes(path).to_string(),
        }
    }

    /// Whether the request path (without query string) matches. The matcher uses hash lookups
    /// instead; this is the reference definition it is tested against.
    pub fn matches(&self, request_path: &str) -> bool {
        match self.kind {
            PathKind::Exact => self.path == request_path,
            PathKind::Prefix => {
                let rule = self.path.as_str();
                if rule == "/" {
                    return request_path.starts_with('/');
                }
                let req = trim_trailing_slashes(request_path);
                req == rule
                    || (req.starts_with(rule) && req.as_bytes().get(rule.len()) == Some(&b'/'))
            }
        }
    }
}

/// Strips trailing slashes, keeping a lone `/`.
pub(crate) fn trim_trailing_slashes(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples table of the Ingress specification.
    #[test]
    fn ingress_spec_examples() {
        let cases: &[(PathMatch, &str, bool)] = &[
            (PathMatch::prefix("/"), "/anything", true),
            (PathMatch::exact("/foo"), "/foo", true),
            (PathMatch::exact("/foo"), "/bar", false),
            (PathMatch::exact("/foo"), "/foo/", false),
            (PathMatch::exact("/foo/"), "/foo", false),
            (PathMatch::prefix("/foo"), "/foo", true),
            (PathMatch::prefix("/foo"), "/foo/", true),
            (PathMatch::prefix("/foo/"), "/foo", true),
            (PathMatch::prefix("/foo/"), "/foo/", true),
            (PathMatch::prefix("/aaa/bb"), "/aaa/bbb", false),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbb", true),
            (PathMatch::prefix("/aaa/bbb/"), "/aaa/bbb", true),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbb/", true),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbb/ccc", true),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbbxyz", false),
            (PathMatch::prefix("/foo"), "/foobar", false),
            (PathMatch::prefix("/foo"), "/FOO", false),
        ];
        for (rule, req, want) in cases {
            assert_eq!(rule.matches(req), *want, "{rule:?} vs {req}");
        }
    }
}
