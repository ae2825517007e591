//! Field and label selectors: the equality forms (`a=b`, `a==b`, `a!=b`) and, for labels,
//! existence (`key`). Enough for pier's `type=kubernetes.io/tls`.

use serde_json::Value;

/// A parsed selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Term>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
}

impl Selector {
    /// Parses a comma-separated selector.
    pub fn parse(text: &str) -> Selector {
        let terms = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if let Some((k, v)) = t.split_once("!=") {
                    Term::NotEquals(k.trim().into(), v.trim().into())
                } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                    Term::Equals(k.trim().into(), v.trim().into())
                } else {
                    Term::Exists(t.into())
                }
            })
            .collect();
        Selector(terms)
    }

    /// Whether a field selector matches: keys are dotted paths into the object.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches(|path| {
            let mut v = object;
            for part in path.split('.') {
                v = v.get(part)?;
            }
            v.as_str()
                .map(str::to_string)
                .or_else(|| Some(v.to_string()))
        })
    }

    /// Whether a label selector matches `metadata.labels`.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches(|key| labels.get(key).and_then(Value::as_str).map(str::to_string))
    }

    fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|term| match term {
            Term::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Term::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Term::Exists(k) => lookup(k).is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let tls =
            json!({"type": "kubernetes.io/tls", "metadata": {"name": "a", "labels": {"x": "1"}}});
        let opaque = json!({"type": "Opaque", "metadata": {"name": "b"}});
        let s = Selector::parse("type=kubernetes.io/tls");
        assert!(s.matches_fields(&tls) && !s.matches_fields(&opaque));
        assert!(Selector::parse("metadata.name!=a").matches_fields(&opaque));
        assert!(Selector::parse("").matches_fields(&opaque));
        assert!(Selector::parse("x==1").matches_labels(&tls));
        assert!(Selector::parse("x").matches_labels(&tls));
        assert!(!Selector::parse("x").matches_labels(&opaque));
    }
}
