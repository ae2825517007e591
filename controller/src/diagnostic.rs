//! Diagnostics: problems found in user objects, reported without stopping anything else.

use serde::Serialize;

/// A problem with one object: the object is (partly) left out of the routing table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Kind of the object, e.g. `Ingress`, or `File` for a manifest that does not parse.
    pub kind: String,
    /// `namespace/name` of the object (or the file path).
    pub object: String,
    /// What is wrong and what pier did about it.
    pub reason: String,
}

impl Diagnostic {
    /// Builds a diagnostic.
    pub fn new(kind: &str, object: impl Into<String>, reason: impl Into<String>) -> Diagnostic {
        Diagnostic {
            kind: kind.to_string(),
            object: object.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.reason)
    }
}
