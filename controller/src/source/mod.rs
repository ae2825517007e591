//! Sources fill the [`crate::store::Store`]. This module holds the file source: manifests on
//! disk, parsed by [`manifest`] and loaded and watched by [`file`].

pub mod file;
pub mod manifest;
mod merge;
mod walk;
mod watch;

pub use file::{FileSource, Loaded};
#[cfg(test)]
pub(crate) use manifest::parse_one;
pub use manifest::{parse_manifest, ManifestError};
