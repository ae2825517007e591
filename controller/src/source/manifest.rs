//! Parsing of manifest files: multi-document YAML (or JSON) holding the same kinds of objects
//! a cluster would, turned into typed [`Object`]s for the Store.

use crate::store::{EndpointSlice, Object};
use k8s_openapi::api::discovery::v1::EndpointSlice as FullSlice;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::sync::Arc;

/// Why a manifest could not be used. Every variant carries the 1-based line in the file where
/// the problem is (for problems found only after decoding, the line where the document starts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid YAML.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// What the YAML parser found.
        message: String,
    },
    /// A document is not a mapping, so it cannot be a Kubernetes object.
    #[error("line {line}: document is not a Kubernetes object (expected a mapping)")]
    NotAnObject {
        /// 1-based line where the document starts.
        line: usize,
    },
    /// A document lacks `kind` or `apiVersion`.
    #[error("line {line}: document has no `{field}`")]
    MissingType {
        /// 1-based line where the document starts.
        line: usize,
        /// `kind` or `apiVersion`.
        field: &'static str,
    },
    /// A document of a kind we read does not decode into that kind, or lacks `metadata.name`.
    #[error("line {line}: {kind}: {message}")]
    Invalid {
        /// 1-based line of the error.
        line: usize,
        /// The document's `kind`.
        kind: String,
        /// What is wrong, with the field path when known.
        message: String,
    },
}

impl ManifestError {
    /// The 1-based line in the file the error points at.
    pub fn line(&self) -> usize {
        match self {
            ManifestError::Syntax { line, .. }
            | ManifestError::NotAnObject { line }
            | ManifestError::MissingType { line, .. }
            | ManifestError::Invalid { line, .. } => *line,
        }
    }
}

/// The one object a test manifest (YAML or JSON text) holds.
#[cfg(test)]
pub(crate) fn parse_one(text: &str) -> Object {
    let mut objects = parse_manifest(text).expect("a valid manifest");
    assert_eq!(objects.len(), 1, "one object in {text}");
    objects.remove(0)
}

/// Parses a manifest: every document of the kinds the Store holds becomes an [`Object`];
/// documents of other kinds (Deployment, Namespace, …) are skipped; empty documents are
/// skipped; `kind: List` documents contribute their `items`. The first bad document fails the
/// whole text, so a half-edited file never yields half of its objects.
pub fn parse_manifest(text: &str) -> Result<Vec<Object>, ManifestError> {
    // libyaml only accepts a byte-order mark at the very start of its input, and we pad the
    // input below, so drop it here (it does not shift lines).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut objects = Vec::new();
    for document in split_documents(text) {
        if is_blank(document.text) {
            continue;
        }
        // Padding with the preceding line count makes every position libyaml reports, inside
        // messages too, a line of the file rather than of the document.
        let padded = format!("{}{}", "\n".repeat(document.line - 1), document.text);
        let value: Value = serde_yaml::from_str(&padded).map_err(|e| syntax(&e, document.line))?;
        read_document(&value, Input::Text(&padded), document.line, &mut objects)?;
    }
    Ok(objects)
}

/// One document's text and the 1-based line it starts on.
struct Document<'a> {
    line: usize,
    text: &'a str,
}

/// Cuts the text at document markers. A `---` or `...` at column 0 always ends a document in
/// YAML (even inside a block scalar), so cutting at line level is faithful.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let (mut start, mut start_line) = (0, 1);
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let content = line.trim_end_matches(['\n', '\r']);
        if is_marker(content, "---") {
            // The `---` line stays with its document: it may carry content (`--- {a: 1}`).
            documents.push(Document {
                line: start_line,
                text: &text[start..offset],
            });
            (start, start_line) = (offset, number);
        } else if is_marker(content, "...") {
            documents.push(Document {
                line: start_line,
                text: &text[start..offset],
            });
            (start, start_line) = (offset + line.len(), number + 1);
        }
        offset += line.len();
    }
    documents.push(Document {
        line: start_line,
        text: &text[start..],
    });
    documents
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whether a document holds nothing but markers, comments and whitespace.
fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim_start_matches("---").trim();
        line.is_empty() || line.starts_with('#')
    })
}

/// Where a typed value is decoded from: the document text (positions known) or a value
/// already parsed (items of a `List`, whose positions are lost).
#[derive(Clone, Copy)]
enum Input<'a> {
    Text(&'a str),
    Value(&'a Value),
}

fn read_document(
    value: &Value,
    input: Input<'_>,
    line: usize,
    out: &mut Vec<Object>,
) -> Result<(), ManifestError> {
    if value.is_null() {
        return Ok(());
    }
    if !value.is_mapping() {
        return Err(ManifestError::NotAnObject { line });
    }
    let kind = required_str(value, "kind", line)?;
    let api_version = required_str(value, "apiVersion", line)?;
    let object = match (api_version, kind) {
        ("networking.k8s.io/v1", "Ingress") => {
            decode(input, kind, line, |o| Object::Ingress(Arc::new(o)))?
        }
        ("networking.k8s.io/v1", "IngressClass") => {
            decode(input, kind, line, |o| Object::IngressClass(Arc::new(o)))?
        }
        ("v1", "Service") => decode(input, kind, line, |o| Object::Service(Arc::new(o)))?,
        ("v1", "Secret") => decode(input, kind, line, |o| Object::Secret(Arc::new(o)))?,
        ("discovery.k8s.io/v1", "EndpointSlice") => decode(input, kind, line, |o: FullSlice| {
            Object::EndpointSlice(Arc::new(EndpointSlice::from(o)))
        })?,
        ("pier.dev/v1alpha1", "BackendPolicy") => {
            decode(input, kind, line, |o| Object::BackendPolicy(Arc::new(o)))?
        }
        (_, "List") => {
            let Some(items) = value.get("items").and_then(Value::as_sequence) else {
                return Err(invalid(kind, line, "`items` must be a list"));
            };
            for item in items {
                read_document(item, Input::Value(item), line, out)?;
            }
            return Ok(());
        }
        _ => {
            if is_retired_version(api_version, kind) {
                // A removed API version of a kind we serve is almost surely a mistake the
                // user wants to hear about, unlike a Deployment next to the Ingress.
                tracing::warn!(
                    line,
                    kind,
                    api_version,
                    "skipping object of a retired API version"
                );
            } else {
                tracing::debug!(
                    line,
                    kind,
                    api_version,
                    "skipping object of a kind pier does not read"
                );
            }
            return Ok(());
        }
    };
    out.push(object);
    Ok(())
}

fn is_retired_version(api_version: &str, kind: &str) -> bool {
    matches!(
        kind,
        "Ingress" | "IngressClass" | "EndpointSlice" | "Service" | "Secret"
    ) && (api_version.starts_with("extensions/") || api_version.ends_with("k8s.io/v1beta1"))
}

fn required_str<'v>(
    value: &'v Value,
    field: &'static str,
    line: usize,
) -> Result<&'v str, ManifestError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(ManifestError::MissingType { line, field })
}

fn decode<T>(
    input: Input<'_>,
    kind: &str,
    line: usize,
    wrap: fn(T) -> Object,
) -> Result<Object, ManifestError>
where
    T: DeserializeOwned + kube::Resource,
{
    let decoded: Result<T, serde_yaml::Error> = match input {
        Input::Text(text) => serde_yaml::from_str(text),
        Input::Value(value) => T::deserialize(value),
    };
    let object = decoded.map_err(|e| {
        let at = e.location().map_or(line, |l| l.line());
        invalid(kind, at, &message_without_location(&e))
    })?;
    if object.meta().name.as_deref().unwrap_or("").is_empty() {
        return Err(invalid(kind, line, "missing field `metadata.name`"));
    }
    Ok(wrap(object).with_namespace())
}

fn invalid(kind: &str, line: usize, message: &str) -> ManifestError {
    ManifestError::Invalid {
        line,
        kind: kind.to_string(),
        message: message.to_string(),
    }
}

fn syntax(error: &serde_yaml::Error, line: usize) -> ManifestError {
    ManifestError::Syntax {
        line: error.location().map_or(line, |l| l.line()),
        message: message_without_location(error),
    }
}

/// serde_yaml appends ` at line L column C` to its messages; our Display already leads with
/// the line, so drop that one mention (other positions, e.g. of a context, stay).
fn message_without_location(error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    match error.location() {
        Some(l) => message.replacen(
            &format!(" at line {} column {}", l.line(), l.column()),
            "",
            1,
        ),
        None => message,
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
