//! The two patch formats kube-rs and kubectl send: JSON merge patch (RFC 7386; also used for
//! strategic-merge and apply patches, which are merge patches for the objects pier touches)
//! and JSON patch (RFC 6902).

use serde_json::Value;

/// RFC 7386: objects merge recursively, `null` removes a key, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// RFC 6902 operations `add`, `remove`, `replace`, `move`, `copy` and `test`, applied in order;
/// on any failure the target is left unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch.as_array().ok_or("a JSON patch is an array")?;
    let mut work = target.clone();
    for op in ops {
        let name = op["op"].as_str().ok_or("op without \"op\"")?;
        let path = op["path"].as_str().ok_or("op without \"path\"")?;
        match name {
            "add" => add(
                &mut work,
                path,
                op.get("value").ok_or("add without value")?.clone(),
            )?,
            "remove" => drop(remove(&mut work, path)?),
            "replace" => {
                remove(&mut work, path)?;
                add(
                    &mut work,
                    path,
                    op.get("value").ok_or("replace without value")?.clone(),
                )?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let value = remove(&mut work, from)?;
                add(&mut work, path, value)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let value = work.pointer(from).ok_or(format!("no {from}"))?.clone();
                add(&mut work, path, value)?;
            }
            "test" => {
                if work.pointer(path) != op.get("value") {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unknown op {other:?}")),
        }
    }
    *target = work;
    Ok(())
}

/// Splits `/a/b~1c` into the parent pointer and the unescaped last token.
fn split(path: &str) -> Result<(&str, String), String> {
    let index = path.rfind('/').ok_or(format!("bad path {path:?}"))?;
    let token = path[index + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..index], token))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, token) = split(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(token, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let index = if token == "-" {
                list.len()
            } else {
                token
                    .parse::<usize>()
                    .map_err(|_| format!("bad index {token:?}"))?
            };
            if index > list.len() {
                return Err(format!("index {index} out of range"));
            }
            list.insert(index, value);
            Ok(())
        }
        _ => Err(format!("no parent for {path}")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, token) = split(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&token).ok_or(format!("no {path}")),
        Some(Value::Array(list)) => {
            let index: usize = token.parse().map_err(|_| format!("bad index {token:?}"))?;
            if index >= list.len() {
                return Err(format!("index {index} out of range"));
            }
            Ok(list.remove(index))
        }
        _ => Err(format!("no {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut doc = json!({"spec": {"rules": [{"host": "a"}]}, "x": 1});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/spec/rules/-", "value": {"host": "b"}},
                {"op": "replace", "path": "/spec/rules/0/host", "value": "c"},
                {"op": "remove", "path": "/x"},
                {"op": "add", "path": "/metadata", "value": {"labels": {"a/b": "1"}}},
                {"op": "test", "path": "/metadata/labels/a~1b", "value": "1"},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"rules": [{"host": "c"}, {"host": "b"}]}, "metadata": {"labels": {"a/b": "1"}}})
        );
        let before = doc.clone();
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert_eq!(doc, before, "a failed patch changes nothing");
    }
}
