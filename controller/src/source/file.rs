//! The file source (`pier run --manifests PATH`): manifest files and directories, read into a
//! [`Store`] and watched for changes.
//!
//! A file that stops parsing keeps serving the objects of its last good version, so a
//! half-saved edit never takes routes down; only deleting a file removes its objects.

use super::manifest::parse_manifest;
use super::merge;
use super::walk::walk;
use super::watch::Watches;
use crate::diagnostic::Diagnostic;
use crate::store::{Object, Store};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// Never delay a reload longer than this after the first event (the quiet period after the
/// last one depends on whether files are still being written: see `Watches`).
const MAX_DELAY: Duration = Duration::from_millis(500);
/// Safety net for events the OS does not deliver (symlink targets, watches on directories
/// that did not exist yet, network file systems): reload this often anyway.
const PERIODIC: Duration = Duration::from_secs(2);

/// The result of one [`FileSource::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Every object from every manifest file (for broken files: from their last good version).
    /// Shared with the source, which hands out the same store again while no file changes.
    pub store: Arc<Store>,
    /// Problems with paths, files and duplicated objects; the complete set for this load.
    pub diagnostics: Vec<Diagnostic>,
    /// Whether `store` differs from the previous load's (always true for the first load).
    pub changed: bool,
}

/// Reads manifests from files and directories and remembers what each file held, so that
/// reloads are cheap and a broken file keeps its previous objects.
#[derive(Debug)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    files: HashMap<PathBuf, FileState>,
    last: Option<Built>,
}

/// The store built from the files, with the files (in order) and duplicate-object diagnostics
/// it came from: when no file changed, the next load reuses it instead of copying every object.
#[derive(Debug)]
struct Built {
    store: Arc<Store>,
    order: Vec<PathBuf>,
    duplicates: Vec<Diagnostic>,
}

/// What we know about one manifest file.
#[derive(Debug)]
struct FileState {
    /// Fingerprint of the bytes last read, to skip parsing when nothing changed (the bytes
    /// themselves are not kept: at thousands of objects they would double the memory held).
    content: Fingerprint,
    /// Objects of the last version that parsed.
    objects: Vec<Object>,
    /// Why the current content does not parse, if it does not.
    error: Option<String>,
}

impl FileSource {
    /// A source reading the given paths, each a manifest file or a directory of them.
    /// Nothing is read until [`FileSource::load`] or [`FileSource::watch`].
    pub fn new(paths: Vec<PathBuf>) -> FileSource {
        FileSource {
            paths,
            files: HashMap::new(),
            last: None,
        }
    }

    /// Reads all paths now and returns the resulting store. Never fails: every problem
    /// (missing path, unreadable or broken file, duplicate object) becomes a diagnostic and
    /// the rest is still loaded.
    pub fn load(&mut self) -> Loaded {
        let mut diagnostics = Vec::new();
        let walked = walk(&self.paths, &mut diagnostics);
        let mut previous = std::mem::take(&mut self.files);
        let mut order = Vec::new();
        // The objects of files that changed, went away or appeared.
        let (mut gone, mut new) = (Vec::new(), Vec::new());
        for path in walked.files {
            let old = previous.remove(&path);
            let (state, replaced) = match read_file(&path, old, &mut diagnostics) {
                Read::Gone(old) => {
                    // Deleted between listing and reading.
                    gone.extend(old.map(|old| old.objects).unwrap_or_default());
                    continue;
                }
                Read::Kept(state) => (state, None),
                Read::Parsed { state, replaced } => (state, Some(replaced)),
            };
            if let Some(replaced) = replaced {
                gone.extend(replaced);
                new.extend(state.objects.iter().cloned());
            }
            self.files.insert(path.clone(), state);
            order.push(path);
        }
        for (path, state) in previous {
            // A directory we could not list says nothing about its files; keep what they held.
            if walked.unlisted.iter().any(|dir| path.starts_with(dir)) {
                order.push(path.clone());
                self.files.insert(path, state);
            } else {
                gone.extend(state.objects);
            }
        }
        let (store, changed) = self.merge(order, gone, new, &mut diagnostics);
        // A stable order lets callers compare diagnostics between loads.
        diagnostics.sort();
        Loaded {
            store,
            diagnostics,
            changed,
        }
    }

    /// Loads, calls `on_load` with the result, then watches the paths and calls `on_load`
    /// again after every change, until the returned future is dropped (abort the task that
    /// runs it to stop). Changes are applied within about 15–500 ms (15 ms after the last of
    /// a burst of complete writes, 100 ms while a file written in place is not yet closed);
    /// a periodic reload every 2 s catches what file-system events miss (e.g. directories
    /// created after start).
    ///
    /// `on_load` is called when the store changed or when the set of diagnostics changed
    /// (a file broke or was fixed); check [`Loaded::changed`] to skip re-translation.
    /// It runs on the watching task, so it should hand work off rather than block.
    pub async fn watch(self, mut on_load: impl FnMut(Loaded) + Send + 'static) {
        // Watch before the first load, so that no change after it can go unseen.
        let (events, mut rx) = mpsc::unbounded_channel();
        let mut watches = Watches::new(&self.paths, events);
        let Some((mut source, loaded)) = self.load_blocking().await else {
            return;
        };
        let mut reported = loaded.diagnostics.clone();
        on_load(loaded);

        let mut periodic = tokio::time::interval_at(Instant::now() + PERIODIC, PERIODIC);
        periodic.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(event) = rx.recv() => {
                    if !watches.note(event) {
                        continue;
                    }
                    debounce(&mut rx, &mut watches).await;
                }
                _ = periodic.tick() => {}
            }
            // Also re-arms watches lost with a deleted directory, and adds new ones.
            watches.refresh();
            watches.loading();
            let Some((next, loaded)) = source.load_blocking().await else {
                return;
            };
            source = next;
            if loaded.changed || loaded.diagnostics != reported {
                reported.clone_from(&loaded.diagnostics);
                on_load(loaded);
            }
        }
    }

    /// Runs [`FileSource::load`] off the async workers: it does blocking file I/O.
    async fn load_blocking(mut self) -> Option<(FileSource, Loaded)> {
        let joined = tokio::task::spawn_blocking(move || {
            let loaded = self.load();
            (self, loaded)
        })
        .await;
        match joined {
            Ok(result) => Some(result),
            Err(error) => {
                tracing::error!(%error, "manifest loading failed; no longer watching files");
                None
            }
        }
    }

    /// The store for the files in `order`: the last one as it is when no object changed,
    /// updated with the objects that changed when nothing is defined twice, else built anew.
    fn merge(
        &mut self,
        order: Vec<PathBuf>,
        gone: Vec<Object>,
        new: Vec<Object>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> (Arc<Store>, bool) {
        let unchanged = gone.is_empty() && new.is_empty();
        if let Some(last) = self.last.as_mut() {
            if unchanged && last.order == order {
                diagnostics.extend(last.duplicates.iter().cloned());
                return (last.store.clone(), false);
            }
            if last.duplicates.is_empty() {
                // The Store handed out by the previous load is normally dropped by now, so
                // this updates it in place rather than copying it.
                let mut store = std::mem::take(&mut last.store);
                let updated = merge::update(Arc::make_mut(&mut store), gone, new);
                last.store = store;
                if let Some(changed) = updated {
                    last.order = order;
                    return (last.store.clone(), changed);
                }
            }
        }
        let mut duplicates = Vec::new();
        let files = order
            .iter()
            .filter_map(|p| Some((p.as_path(), self.files.get(p)?.objects.as_slice())));
        let store = merge::build(files, &mut duplicates);
        diagnostics.extend(duplicates.iter().cloned());
        let (store, changed) = match self.last.take() {
            Some(last) if last.store.same_as(&store) => (last.store, false),
            _ => (Arc::new(store), true),
        };
        self.last = Some(Built {
            store: store.clone(),
            order,
            duplicates,
        });
        (store, changed)
    }
}

/// Length and 64-bit hash of a file's bytes: equal fingerprints mean unchanged content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: usize,
    hash: u64,
}

impl Fingerprint {
    fn of(content: &[u8]) -> Fingerprint {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        content.hash(&mut hasher);
        Fingerprint {
            len: content.len(),
            hash: hasher.finish(),
        }
    }
}

/// What reading a file gave.
enum Read {
    /// The file was deleted between listing and reading; its last state, if it had one.
    Gone(Option<FileState>),
    /// Its objects are those it held (content unchanged, unreadable, or no longer parsing).
    Kept(FileState),
    /// New content parsed; `replaced` are the objects it held before.
    Parsed {
        state: FileState,
        replaced: Vec<Object>,
    },
}

/// Reads `path` whose last state was `old`, parsing only when its content changed; a file
/// that cannot be read or no longer parses keeps its last objects (and gets a diagnostic).
fn read_file(path: &Path, old: Option<FileState>, diagnostics: &mut Vec<Diagnostic>) -> Read {
    let content = match std::fs::read(path) {
        Ok(content) => content,
        Err(error) if error.kind() == ErrorKind::NotFound => return Read::Gone(old),
        Err(error) => {
            let reason = format!("cannot read: {error}");
            tracing::warn!(path = %path.display(), %error, "cannot read manifest file");
            let kept = old.as_ref().map_or(0, |old| old.objects.len());
            diagnostics.push(file_diagnostic(path, &reason, kept));
            return match old {
                Some(old) => Read::Kept(old),
                None => Read::Gone(None),
            };
        }
    };
    let fingerprint = Fingerprint::of(&content);
    let read = match old {
        Some(old) if old.content == fingerprint => Read::Kept(old),
        old => match parse_bytes(&content) {
            Ok(objects) => Read::Parsed {
                state: FileState {
                    content: fingerprint,
                    objects,
                    error: None,
                },
                replaced: old.map(|old| old.objects).unwrap_or_default(),
            },
            Err(error) => {
                let objects = old.map(|old| old.objects).unwrap_or_default();
                tracing::warn!(
                    path = %path.display(),
                    %error,
                    kept_objects = objects.len(),
                    "manifest file does not parse; keeping its previous objects"
                );
                Read::Kept(FileState {
                    content: fingerprint,
                    objects,
                    error: Some(error),
                })
            }
        },
    };
    let state = match &read {
        Read::Kept(state) | Read::Parsed { state, .. } => state,
        Read::Gone(_) => return read,
    };
    if let Some(error) = &state.error {
        diagnostics.push(file_diagnostic(path, error, state.objects.len()));
    }
    read
}

fn parse_bytes(content: &[u8]) -> Result<Vec<Object>, String> {
    let text = std::str::from_utf8(content).map_err(|error| {
        let valid = &content[..error.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        format!("line {line}: not valid UTF-8")
    })?;
    parse_manifest(text).map_err(|error| error.to_string())
}

fn file_diagnostic(path: &Path, problem: &str, kept: usize) -> Diagnostic {
    let reason = if kept == 0 {
        problem.to_string()
    } else {
        let objects = if kept == 1 { "object" } else { "objects" };
        format!("{problem} (still serving the {kept} {objects} of its last good version)")
    };
    Diagnostic::new("File", path.display().to_string(), reason)
}

/// Waits for a burst of events to end: the quiet period of [`Watches::quiet_period`] without
/// a relevant event, at most [`MAX_DELAY`] in total.
async fn debounce(rx: &mut mpsc::UnboundedReceiver<super::watch::Event>, watches: &mut Watches) {
    let deadline = Instant::now() + MAX_DELAY;
    let mut last = Instant::now();
    loop {
        let until = (last + watches.quiet_period()).min(deadline);
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(event)) => {
                if watches.note(event) {
                    last = Instant::now();
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
