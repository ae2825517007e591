//! Merging the objects of manifest files into one Store: the first definition of an object
//! (in path order) wins, and each later one is a Diagnostic. When nothing is defined twice,
//! a load that changed a few files updates the previous Store rather than building it again.

use crate::diagnostic::Diagnostic;
use crate::store::{Inserted, Object, ObjectKey, Store};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Builds the Store from each file's objects, `files` in path order.
pub(super) fn build<'a>(
    files: impl Iterator<Item = (&'a Path, &'a [Object])>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Store {
    let mut store = Store::default();
    let mut owners: HashMap<(&'static str, ObjectKey), &Path> = HashMap::new();
    for (path, objects) in files {
        for object in objects {
            let id = (object.kind(), object.key());
            if let Some(first) = owners.get(&id) {
                let reason = if *first == path {
                    format!("defined twice in {}; using the first", path.display())
                } else {
                    format!(
                        "also defined in {}; using the one in {}",
                        path.display(),
                        first.display()
                    )
                };
                diagnostics.push(Diagnostic::new(id.0, id.1.to_string(), reason));
                continue;
            }
            store.insert(object.clone());
            owners.insert(id, path);
        }
    }
    store
}

/// Applies to a Store built without duplicates what changed in the files: the objects of
/// files that changed or went away (`gone`) and of files that changed or appeared (`new`).
/// Gives what [`build`] would, or `None` (the Store untouched) when an object of `new` is
/// defined twice, where order decides. `Some(changed)`: whether any object differs in value.
pub(super) fn update(store: &mut Store, gone: Vec<Object>, new: Vec<Object>) -> Option<bool> {
    let mut leaving: HashMap<(&'static str, ObjectKey), Object> = gone
        .into_iter()
        .map(|object| ((object.kind(), object.key()), object))
        .collect();
    let mut arriving = HashSet::with_capacity(new.len());
    for object in &new {
        let id = (object.kind(), object.key());
        let elsewhere = store.contains(id.0, &id.1) && !leaving.contains_key(&id);
        if elsewhere || !arriving.insert(id) {
            return None;
        }
    }
    for object in &new {
        leaving.remove(&(object.kind(), object.key()));
    }
    // What still leaves is gone for good; an arriving object equal to the one it replaces
    // keeps that one (see `Store::insert`).
    let mut changed = !leaving.is_empty();
    for object in leaving.into_values() {
        store.remove(&object);
    }
    for object in new {
        changed |= store.insert(object) != Inserted::Unchanged;
    }
    Some(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn service(name: &str, port: i32) -> Object {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        );
        crate::source::parse_one(&yaml)
    }

    #[test]
    fn an_update_gives_what_a_build_gives_or_declines() {
        let (a, b) = (PathBuf::from("a.yaml"), PathBuf::from("b.yaml"));
        let mut files = vec![
            (a.clone(), vec![service("x", 80), service("y", 80)]),
            (b.clone(), vec![service("z", 80)]),
        ];
        let build_all = |files: &[(PathBuf, Vec<Object>)]| {
            let mut diagnostics = Vec::new();
            let it = files.iter().map(|(p, o)| (p.as_path(), o.as_slice()));
            (build(it, &mut diagnostics), diagnostics)
        };
        let (mut store, diagnostics) = build_all(&files);
        assert!(diagnostics.is_empty());

        // b changes z's port and adds w: the update equals a fresh build.
        let gone = files[1].1.clone();
        files[1].1 = vec![service("z", 81), service("w", 80)];
        let changed = update(&mut store, gone, files[1].1.clone());
        assert_eq!(changed, Some(true));
        assert_eq!(store, build_all(&files).0);

        // Rewritten with equal objects: nothing changed in value.
        let gone = files[1].1.clone();
        files[1].1 = vec![service("z", 81), service("w", 80)];
        assert_eq!(update(&mut store, gone, files[1].1.clone()), Some(false));

        // b now also defines x, which a defines: order decides, so no update.
        let before = store.clone();
        let gone = files[1].1.clone();
        assert_eq!(update(&mut store, gone, vec![service("x", 90)]), None);
        assert_eq!(store, before);

        // a goes away: its objects leave.
        let gone = files.remove(0).1;
        assert_eq!(update(&mut store, gone, Vec::new()), Some(true));
        assert_eq!(store, build_all(&files).0);
    }
}
