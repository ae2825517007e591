//! Tests of [`FileSource::watch`] against the real file system: each change must arrive
//! within one second of the write.

use super::*;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

/// A running watch whose loads arrive on a channel; stops the watch on drop.
struct Watched {
    loads: UnboundedReceiver<Loaded>,
    task: JoinHandle<()>,
}

impl Watched {
    fn start(paths: Vec<PathBuf>) -> Watched {
        let (tx, loads) = mpsc::unbounded_channel();
        let task = tokio::spawn(FileSource::new(paths).watch(move |loaded| {
            let _ = tx.send(loaded);
        }));
        Watched { loads, task }
    }

    /// Waits for a load satisfying `check`, failing after `within`.
    async fn until(
        &mut self,
        what: &str,
        within: Duration,
        check: impl Fn(&Loaded) -> bool,
    ) -> Loaded {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.loads.recv()).await {
                Ok(Some(loaded)) if check(&loaded) => return loaded,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{what}: the watch stopped"),
                Err(_) => panic!("{what}: not seen within {within:?}"),
            }
        }
    }

    async fn within_1s(&mut self, what: &str, check: impl Fn(&Loaded) -> bool) -> Loaded {
        self.until(what, Duration::from_secs(1), check).await
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Replaces `path` the way editors and `kubectl`-style tools do: write a temporary file next
/// to it, then rename it over the original.
fn replace_atomically(path: &Path, text: &str) {
    let temporary = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[tokio::test]
async fn directory_changes_arrive_within_a_second() {
    let dir = TempDir::new("watch-dir");
    let a = dir.write("a.yaml", &service("a", 80));
    let mut watched = Watched::start(vec![dir.0.clone()]);
    let first = watched
        .within_1s("initial load", |l| names(&l.store) == ["a"])
        .await;
    assert!(first.changed);

    dir.write("b.yaml", &service("b", 80));
    watched
        .within_1s("created file", |l| names(&l.store) == ["a", "b"])
        .await;

    std::fs::write(&a, service("a", 81)).unwrap();
    watched
        .within_1s("modified file", |l| service_port(&l.store, "a") == Some(81))
        .await;

    replace_atomically(&a, &service("a", 82));
    watched
        .within_1s("renamed over", |l| service_port(&l.store, "a") == Some(82))
        .await;

    std::fs::write(dir.0.join("b.yaml"), "apiVersion: v1\nkind: [\n").unwrap();
    let broken = watched
        .within_1s("broken file reported", |l| !l.diagnostics.is_empty())
        .await;
    assert!(!broken.changed);
    assert_eq!(names(&broken.store), ["a", "b"]);

    std::fs::remove_file(dir.0.join("b.yaml")).unwrap();
    let deleted = watched
        .within_1s("deleted file", |l| names(&l.store) == ["a"])
        .await;
    assert!(deleted.diagnostics.is_empty());

    dir.write("sub/deeper/c.yaml", &service("c", 80));
    watched
        .within_1s("file in a new subdirectory", |l| {
            names(&l.store) == ["a", "c"]
        })
        .await;
    std::fs::remove_dir_all(dir.0.join("sub")).unwrap();
    watched
        .within_1s("removed subdirectory", |l| names(&l.store) == ["a"])
        .await;

    // The same objects written differently change nothing: no callback.
    std::fs::write(&a, format!("# reformatted\n{}", service("a", 82))).unwrap();
    dir.write(".scratch.swp", "not yaml: [");
    let quiet = tokio::time::timeout(Duration::from_millis(700), watched.loads.recv()).await;
    assert!(quiet.is_err(), "unexpected load: {quiet:?}");
}

#[tokio::test]
async fn file_paths_see_replacement_creation_and_deletion() {
    let dir = TempDir::new("watch-file");
    let x = dir.write("x.yaml", &service("x", 80));
    let later = dir.0.join("later.yaml");
    let mut watched = Watched::start(vec![x.clone(), later.clone()]);
    let first = watched
        .within_1s("initial load", |l| names(&l.store) == ["x"])
        .await;
    assert_eq!(first.diagnostics.len(), 1, "later.yaml is missing");

    replace_atomically(&x, &service("x", 81));
    watched
        .within_1s("editor save", |l| service_port(&l.store, "x") == Some(81))
        .await;

    dir.write("later.yaml", &service("later", 80));
    let created = watched
        .within_1s("created", |l| names(&l.store) == ["later", "x"])
        .await;
    assert!(created.diagnostics.is_empty());

    std::fs::remove_file(&x).unwrap();
    watched
        .within_1s("deleted", |l| names(&l.store) == ["later"])
        .await;

    replace_atomically(&x, &service("x", 82));
    watched
        .within_1s("moved into place", |l| {
            service_port(&l.store, "x") == Some(82)
        })
        .await;

    // A sibling that is not configured does not matter.
    dir.write("unrelated.yaml", &service("unrelated", 80));
    let quiet = tokio::time::timeout(Duration::from_millis(700), watched.loads.recv()).await;
    assert!(quiet.is_err(), "unexpected load: {quiet:?}");
}

#[tokio::test]
async fn directory_created_after_start_is_picked_up() {
    let parent = TempDir::new("watch-late");
    let dir = parent.0.join("not/yet");
    let mut watched = Watched::start(vec![dir.clone()]);
    let first = watched.within_1s("initial load", |_| true).await;
    assert!(first.store.is_empty());
    assert_eq!(first.diagnostics.len(), 1);

    // Nothing watches a directory that does not exist; the periodic reload finds it.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), service("a", 80)).unwrap();
    let within = PERIODIC + Duration::from_secs(1);
    watched
        .until("late directory", within, |l| names(&l.store) == ["a"])
        .await;

    // From then on it is watched like any other.
    std::fs::write(dir.join("a.yaml"), service("a", 81)).unwrap();
    watched
        .within_1s("change in late directory", |l| {
            service_port(&l.store, "a") == Some(81)
        })
        .await;
}

mod events {
    use super::TempDir;
    use crate::source::watch::{Event as Noted, Watches};
    use notify::event::{AccessKind, AccessMode, DataChange, ModifyKind, RenameMode};
    use notify::{Event, EventKind};
    use std::time::Duration;

    fn event(kind: EventKind, path: &std::path::Path) -> Noted {
        Ok(Event::new(kind).add_path(path.to_path_buf()))
    }

    #[tokio::test]
    async fn reads_are_ignored_and_unfinished_writes_wait_longer() {
        let dir = TempDir::new("watch-events");
        let file = dir.write("a.yaml", "");
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut watches = Watches::new(std::slice::from_ref(&dir.0), tx);
        let settled = watches.quiet_period();

        // What loading does to every file must not count, or each load would cause the next.
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert!(!watches.note(event(open, &file)));
        assert!(!watches.note(event(read, &file)));

        // Written in place: wait longer until the writer closes the file.
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert!(watches.note(event(data, &file)));
        assert!(watches.quiet_period() > settled);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(watches.note(event(closed, &file)));
        assert_eq!(watches.quiet_period(), settled);

        // Renamed into place: complete at once. A load settles any write seen before it.
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(watches.note(event(renamed, &file)));
        assert_eq!(watches.quiet_period(), settled);
        assert!(watches.note(event(data, &file)));
        watches.loading();
        assert_eq!(watches.quiet_period(), settled);
        assert!(settled < Duration::from_millis(100));

        // Files elsewhere do not concern us.
        let other = std::env::temp_dir().join("pier-not-watched.yaml");
        assert!(!watches.note(event(data, &other)));
        assert_eq!(watches.quiet_period(), settled);
    }
}
