use super::*;
use crate::store::ObjectKey;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "pier-source-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` to `relative`, creating parent directories.
    pub(super) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A manifest of one Service with the given name and port.
pub(super) fn service(name: &str, port: i32) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: {port}\n")
}

pub(super) fn service_port(store: &Store, name: &str) -> Option<i32> {
    let service = store.services.get(&ObjectKey::new("default", name))?;
    Some(service.spec.as_ref()?.ports.as_ref()?[0].port)
}

pub(super) fn names(store: &Store) -> Vec<String> {
    store.services.keys().map(|key| key.name.clone()).collect()
}

#[test]
fn walks_directories_recursively_in_sorted_order() {
    let dir = TempDir::new("walk");
    dir.write("b.yaml", "");
    dir.write("a/z.yml", "");
    dir.write("a/m/x.json", "");
    dir.write("C.YAML", "");
    dir.write(".b.yaml.swp", "");
    dir.write(".hidden/h.yaml", "");
    dir.write("c.yaml~", "");
    dir.write("notes.txt", "");
    dir.write("README", "");
    let single = dir.write("other/single.txt", "");
    let mut diagnostics = Vec::new();
    let walked = walk(
        &[dir.0.clone(), single.clone(), dir.0.join("b.yaml")],
        &mut diagnostics,
    );
    let relative: Vec<_> = walked
        .files
        .iter()
        .map(|path| {
            path.strip_prefix(&dir.0)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // An explicit file is read whatever its name; a file reached twice is read once.
    assert_eq!(
        relative,
        [
            "C.YAML",
            "a/m/x.json",
            "a/z.yml",
            "b.yaml",
            "other/single.txt"
        ]
    );
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

#[test]
fn loads_everything_and_reports_missing_paths() {
    let dir = TempDir::new("load");
    dir.write("a.yaml", &service("a", 80));
    dir.write(
        "sub/b.yaml",
        &format!("{}---\n{}", service("b", 81), service("c", 82)),
    );
    dir.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: [\n",
    );
    let missing = dir.0.join("nope.yaml");
    let mut source = FileSource::new(vec![dir.0.clone(), missing.clone()]);
    let loaded = source.load();
    assert!(loaded.changed);
    assert_eq!(names(&loaded.store), ["a", "b", "c"]);
    assert_eq!(loaded.diagnostics.len(), 2, "{:?}", loaded.diagnostics);
    let broken = &loaded.diagnostics[0];
    assert_eq!(broken.kind, "File");
    assert_eq!(
        broken.object,
        dir.0.join("broken.yaml").display().to_string()
    );
    assert!(broken.reason.starts_with("line 4: "), "{broken}");
    assert_eq!(
        loaded.diagnostics[1],
        Diagnostic::new("File", missing.display().to_string(), "does not exist")
    );
}

#[test]
fn unchanged_files_give_unchanged_loads() {
    let dir = TempDir::new("unchanged");
    let a = dir.write("a.yaml", &service("a", 80));
    dir.write("broken.yaml", "kind: [\n");
    let mut source = FileSource::new(vec![dir.0.clone()]);
    let first = source.load();
    assert!(first.changed);
    let again = source.load();
    assert!(!again.changed);
    // Nothing was re-read into a new store: the same one is handed out again.
    assert!(std::sync::Arc::ptr_eq(&first.store, &again.store));
    // Diagnostics describe the current state, so an unchanged broken file is still reported.
    assert_eq!(again.diagnostics.len(), 1);
    std::fs::write(&a, service("a", 8080)).unwrap();
    let modified = source.load();
    assert!(modified.changed);
    assert!(!std::sync::Arc::ptr_eq(&first.store, &modified.store));
    assert_eq!(service_port(&modified.store, "a"), Some(8080));
    // Rewriting the same objects differently (a comment) is not a change of the store.
    std::fs::write(&a, format!("# comment\n{}", service("a", 8080))).unwrap();
    assert!(!source.load().changed);
}

#[test]
fn broken_file_keeps_its_objects_while_others_change() {
    let dir = TempDir::new("broken");
    let a = dir.write("a.yaml", &service("a", 80));
    let b = dir.write("b.yaml", &service("b", 80));
    let mut source = FileSource::new(vec![dir.0.clone()]);
    source.load();

    std::fs::write(
        &a,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n   oops: 1\n",
    )
    .unwrap();
    std::fs::write(&b, service("b", 9090)).unwrap();
    let loaded = source.load();
    assert!(loaded.changed);
    assert_eq!(
        service_port(&loaded.store, "a"),
        Some(80),
        "a's last good version stays"
    );
    assert_eq!(
        service_port(&loaded.store, "b"),
        Some(9090),
        "b's change applies"
    );
    assert_eq!(loaded.diagnostics.len(), 1);
    let diagnostic = &loaded.diagnostics[0];
    assert_eq!(diagnostic.object, a.display().to_string());
    assert!(diagnostic.reason.starts_with("line 5: "), "{diagnostic}");
    assert!(
        diagnostic
            .reason
            .contains("1 object of its last good version"),
        "{diagnostic}"
    );

    // A type error in a later edit still keeps the last good version, not the broken one.
    std::fs::write(
        &a,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: 3}\n",
    )
    .unwrap();
    let loaded = source.load();
    assert!(!loaded.changed);
    assert_eq!(service_port(&loaded.store, "a"), Some(80));
    assert!(
        loaded.diagnostics[0]
            .reason
            .starts_with("line 4: Service: spec.ports"),
        "{:?}",
        loaded.diagnostics
    );

    std::fs::write(&a, service("a", 81)).unwrap();
    let fixed = source.load();
    assert_eq!(service_port(&fixed.store, "a"), Some(81));
    assert!(fixed.diagnostics.is_empty());
}

#[test]
fn broken_file_at_first_load_contributes_nothing() {
    let dir = TempDir::new("first-broken");
    let a = dir.write("a.yaml", "kind: Service\n");
    dir.write("b.yaml", &service("b", 80));
    let mut source = FileSource::new(vec![a, dir.0.join("b.yaml")]);
    let loaded = source.load();
    assert_eq!(names(&loaded.store), ["b"]);
    assert_eq!(loaded.diagnostics.len(), 1);
}

#[test]
fn deleted_file_removes_its_objects() {
    let dir = TempDir::new("deleted");
    let a = dir.write("a.yaml", &service("a", 80));
    dir.write("b.yaml", &service("b", 80));
    let single = dir.write("single/s.yaml", &service("s", 80));
    let mut source = FileSource::new(vec![dir.0.clone(), single.clone()]);
    assert_eq!(names(&source.load().store), ["a", "b", "s"]);
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&single).unwrap();
    let loaded = source.load();
    assert!(loaded.changed);
    assert_eq!(names(&loaded.store), ["b"]);
    // The configured file is now missing; that is worth a diagnostic, the directory entry not.
    assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
    assert_eq!(loaded.diagnostics[0].object, single.display().to_string());
}

#[test]
fn duplicate_objects_first_path_wins() {
    let dir = TempDir::new("dup");
    dir.write("b.yaml", &service("web", 2));
    dir.write("a.yaml", &service("web", 1));
    dir.write(
        "c.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: web}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\n",
    );
    let mut source = FileSource::new(vec![dir.0.clone()]);
    let loaded = source.load();
    assert_eq!(service_port(&loaded.store, "web"), Some(1));
    // Same name, other kind or namespace: not duplicates.
    assert_eq!(loaded.store.secrets.len(), 1);
    assert_eq!(loaded.store.services.len(), 2);
    let expected = [
        Diagnostic::new(
            "Service",
            "default/web",
            format!(
                "also defined in {}; using the one in {}",
                dir.0.join("b.yaml").display(),
                dir.0.join("a.yaml").display()
            ),
        ),
        Diagnostic::new(
            "Service",
            "other/web",
            format!(
                "defined twice in {}; using the first",
                dir.0.join("c.yaml").display()
            ),
        ),
    ];
    assert_eq!(loaded.diagnostics, expected);
    // An unchanged reload reuses the store and still reports the duplicates.
    let again = source.load();
    assert!(std::sync::Arc::ptr_eq(&loaded.store, &again.store));
    assert_eq!(again.diagnostics, expected);
    // Removing the winner lets the other definition in.
    std::fs::remove_file(dir.0.join("a.yaml")).unwrap();
    assert_eq!(service_port(&source.load().store, "web"), Some(2));
}

/// Each load after a change must give what loading the files afresh gives, whether the
/// store was updated in place (nothing defined twice) or built again (duplicates). (Broken
/// files differ on purpose: a fresh source has no last good version of them.)
#[test]
fn every_reload_equals_a_fresh_load() {
    let dir = TempDir::new("reload-equals-fresh");
    let mut source = FileSource::new(vec![dir.0.clone()]);
    let both = |a: &str, b: &str| format!("{a}---\n{b}");
    // `(file, new content)`; `None` deletes the file.
    let steps = [
        ("a.yaml", Some(both(&service("x", 80), &service("y", 80)))),
        ("b.yaml", Some(service("z", 80))),
        ("b.yaml", Some(service("z", 81))),
        // b also defines x, which a already defines: a keeps it.
        ("b.yaml", Some(both(&service("z", 81), &service("x", 99)))),
        ("b.yaml", Some(service("w", 80))),
        ("a.yaml", None),
        // Defined twice in one file.
        ("c.yaml", Some(both(&service("v", 1), &service("v", 2)))),
        ("c.yaml", Some(service("v", 3))),
        ("c.yaml", Some(both(&service("v", 4), &service("u", 1)))),
        ("a.yaml", Some(service("w", 7))),
        ("b.yaml", None),
    ];
    for (i, (file, content)) in steps.iter().enumerate() {
        match content {
            Some(text) => drop(dir.write(file, text)),
            None => std::fs::remove_file(dir.0.join(file)).unwrap(),
        }
        let loaded = source.load();
        let fresh = FileSource::new(vec![dir.0.clone()]).load();
        assert_eq!(*loaded.store, *fresh.store, "step {i}");
        assert_eq!(loaded.diagnostics, fresh.diagnostics, "step {i}");
    }
}

#[test]
fn invalid_utf8_reports_its_line() {
    let dir = TempDir::new("utf8");
    let path = dir.0.join("a.yaml");
    std::fs::write(
        &path,
        b"apiVersion: v1\nkind: Service\nmetadata: {name: \xff}\n",
    )
    .unwrap();
    let loaded = FileSource::new(vec![path]).load();
    assert_eq!(loaded.diagnostics.len(), 1);
    assert_eq!(loaded.diagnostics[0].reason, "line 3: not valid UTF-8");
}

#[path = "watch_tests.rs"]
mod watching;
