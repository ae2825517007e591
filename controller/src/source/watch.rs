//! File-system watches for the file source: which directories to watch, and which events
//! matter. Kept apart from loading so that both stay small.

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// After the last relevant event, wait this long while a file is being written (modified and
/// not yet closed): writers that do not replace files atomically must not be read half-done…
const WRITING_QUIET: Duration = Duration::from_millis(100);
/// …and only this long once every write is complete (closed, renamed into place, removed),
/// to take a burst of such events in one load.
const SETTLED_QUIET: Duration = Duration::from_millis(15);

/// What notify hands its callback.
pub(crate) type Event = notify::Result<notify::Event>;

/// What to watch in one directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Want {
    /// The directory itself is a configured path: watch all of it, recursively.
    whole: bool,
    /// Configured file paths in this directory (watched through it, so that replacing the
    /// file by a rename is seen too).
    files: Vec<PathBuf>,
}

/// The notify watcher and the set of directories it watches.
pub(crate) struct Watches {
    /// Configured paths, made absolute so they compare with the paths in events.
    paths: Vec<PathBuf>,
    /// `None` when the OS refused a watcher; the periodic reload still works then.
    watcher: Option<RecommendedWatcher>,
    /// What we want per directory, as of the last refresh.
    wanted: BTreeMap<PathBuf, Want>,
    /// Directories actually watched, with their mode (`true` = recursive).
    active: BTreeMap<PathBuf, bool>,
    /// Files modified since the last load and not closed since.
    writing: HashSet<PathBuf>,
}

impl Watches {
    /// Starts a watcher sending events to `events` and watches what exists of `paths`.
    pub(crate) fn new(paths: &[PathBuf], events: UnboundedSender<Event>) -> Watches {
        let watcher = notify::recommended_watcher(move |event: Event| {
            // The receiver is gone only when the source stopped; nothing left to tell.
            let _ = events.send(event);
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(%error, "cannot watch manifest files; reloading every 2 s only");
                None
            }
        };
        let paths = paths
            .iter()
            .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.clone()))
            .collect();
        let mut watches = Watches {
            paths,
            watcher,
            wanted: BTreeMap::new(),
            active: BTreeMap::new(),
            writing: HashSet::new(),
        };
        watches.refresh();
        watches
    }

    /// Brings the watched set in line with the file system: watches directories that appeared,
    /// re-watches those that were replaced, and drops those no longer wanted.
    pub(crate) fn refresh(&mut self) {
        let mut wanted: BTreeMap<PathBuf, Want> = BTreeMap::new();
        for path in &self.paths {
            if path.is_dir() {
                wanted.entry(path.clone()).or_default().whole = true;
            } else if let Some(parent) = path.parent() {
                let want = wanted.entry(parent.to_path_buf()).or_default();
                want.files.push(path.clone());
            }
        }
        let Some(watcher) = self.watcher.as_mut() else {
            self.wanted = wanted;
            return;
        };
        self.active.retain(|dir, _| {
            if wanted.contains_key(dir) && dir.is_dir() {
                return true;
            }
            // Errors here mean the watch already died with its directory.
            let _ = watcher.unwatch(dir);
            false
        });
        for (dir, want) in &wanted {
            if self.active.get(dir) == Some(&want.whole) {
                continue;
            }
            if self.active.remove(dir).is_some() {
                let _ = watcher.unwatch(dir);
            }
            if !dir.is_dir() {
                // Picked up by a later refresh once it exists.
                continue;
            }
            let mode = if want.whole {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match watcher.watch(dir, mode) {
                Ok(()) => {
                    self.active.insert(dir.clone(), want.whole);
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot watch manifest directory");
                }
            }
        }
        self.wanted = wanted;
    }

    /// How long to wait after the last relevant event before loading: longer while some
    /// file is still being written.
    pub(crate) fn quiet_period(&self) -> Duration {
        if self.writing.is_empty() {
            SETTLED_QUIET
        } else {
            WRITING_QUIET
        }
    }

    /// A load starts: it reads whatever the files hold now, so earlier writes are settled.
    pub(crate) fn loading(&mut self) {
        self.writing.clear();
    }

    /// Records an event and tells whether it may change what the files hold.
    pub(crate) fn note(&mut self, event: Event) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // Possibly lost events (e.g. a queue overflow): reload to be sure.
                tracing::warn!(%error, "error watching manifest files");
                return true;
            }
        };
        if event.paths.is_empty() {
            // Rescan requests and the like carry no path.
            return true;
        }
        let writes = match event.kind {
            // Reading changes nothing, and loading reads every file: counting opens and
            // reads would make each load trigger the next.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(false),
            EventKind::Access(_) => return false,
            EventKind::Create(CreateKind::Folder) => None,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                Some(true)
            }
            // Renamed into place or away, or removed: complete as far as we can tell.
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => Some(false),
            _ => None,
        };
        let mut relevant = false;
        for path in &event.paths {
            // A watched directory removed or renamed away takes its watch with it; forget the
            // watch so the next refresh sets it up again if the directory comes back.
            if matches!(
                event.kind,
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
            ) && self.active.remove(path).is_some()
            {
                if let Some(watcher) = self.watcher.as_mut() {
                    let _ = watcher.unwatch(path);
                }
            }
            if !self.concerns(path) {
                continue;
            }
            relevant = true;
            match writes {
                Some(true) => drop(self.writing.insert(path.clone())),
                Some(false) => drop(self.writing.remove(path)),
                None => {}
            }
        }
        relevant
    }

    fn concerns(&self, path: &Path) -> bool {
        self.wanted.iter().any(|(dir, want)| {
            if path == dir
                || (want.whole && path.starts_with(dir))
                || want.files.iter().any(|f| f == path)
            {
                return true;
            }
            // Kubernetes updates a mounted ConfigMap by swapping a hidden `..data` symlink next
            // to the files; the files themselves see no event.
            !want.files.is_empty()
                && path.parent() == Some(dir.as_path())
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(".."))
        })
    }
}
