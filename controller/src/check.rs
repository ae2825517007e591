//! `pier check`: validate manifests offline.

use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::source::file::FileSource;
use crate::translate::translate;
use std::path::PathBuf;

/// What `pier check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// Every problem, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// Objects read.
    pub objects: usize,
    /// Routes in the resulting table.
    pub routes: usize,
}

/// Loads and translates the manifests once, collecting every diagnostic.
pub fn check(paths: Vec<PathBuf>, settings: &Settings) -> CheckReport {
    let loaded = FileSource::new(paths).load();
    let (table, mut diagnostics) = translate(&loaded.store, settings);
    diagnostics.extend(loaded.diagnostics);
    diagnostics.sort();
    diagnostics.dedup();
    CheckReport {
        diagnostics,
        objects: loaded.store.len(),
        routes: table.virtual_hosts.iter().map(|v| v.routes.len()).sum(),
    }
}
