//! Finding the manifest files under the configured paths, in load order.

use crate::diagnostic::Diagnostic;
use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The manifest files found under the configured paths, in load order.
#[derive(Debug, Default)]
pub(super) struct Walk {
    /// The files, in load order.
    pub(super) files: Vec<PathBuf>,
    /// Directories that exist but could not be listed.
    pub(super) unlisted: Vec<PathBuf>,
}

/// Lists the manifest files: the paths in the order given; inside a directory, recursively
/// in sorted name order, skipping hidden entries and editor backups (`foo.yaml~`).
pub(super) fn walk(paths: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Walk {
    let mut walk = Walk::default();
    let mut seen = HashSet::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk_dir(path, &mut walk, &mut seen, diagnostics),
            Ok(_) => add_file(path, &mut walk, &mut seen),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                diagnostics.push(Diagnostic::new(
                    "File",
                    path.display().to_string(),
                    "does not exist",
                ));
            }
            Err(error) => {
                diagnostics.push(Diagnostic::new(
                    "File",
                    path.display().to_string(),
                    format!("cannot read: {error}"),
                ));
                walk.unlisted.push(path.clone());
            }
        }
    }
    walk
}

/// Adds a file once, however many paths lead to it.
fn add_file(path: &Path, walk: &mut Walk, seen: &mut HashSet<PathBuf>) {
    let identity = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if seen.insert(identity) {
        walk.files.push(path.to_path_buf());
    }
}

fn walk_dir(
    dir: &Path,
    walk: &mut Walk,
    seen: &mut HashSet<PathBuf>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    // Symlinked directories can form loops; visit each real directory once.
    let identity = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !seen.insert(identity) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            if error.kind() != ErrorKind::NotFound {
                diagnostics.push(Diagnostic::new(
                    "File",
                    dir.display().to_string(),
                    format!("cannot list directory: {error}"),
                ));
                walk.unlisted.push(dir.to_path_buf());
            }
            return;
        }
    };
    let mut names: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name()))
        .collect();
    names.sort();
    for name in names {
        let Some(text) = name.to_str() else {
            continue;
        };
        // Hidden entries are editor swap files, and Kubernetes' `..data` directories whose
        // files are also visible through symlinks next to them.
        if text.starts_with('.') || text.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk_dir(&path, walk, seen, diagnostics),
            Ok(_) if is_manifest_name(text) => add_file(&path, walk, seen),
            Ok(_) => {}
            Err(error) if is_manifest_name(text) && error.kind() != ErrorKind::NotFound => {
                diagnostics.push(Diagnostic::new(
                    "File",
                    path.display().to_string(),
                    format!("cannot read: {error}"),
                ));
            }
            // Vanished meanwhile, or a dangling symlink: nothing to load.
            Err(_) => {}
        }
    }
}

fn is_manifest_name(name: &str) -> bool {
    let Some((_, extension)) = name.rsplit_once('.') else {
        return false;
    };
    ["yaml", "yml", "json"]
        .iter()
        .any(|known| extension.eq_ignore_ascii_case(known))
}
