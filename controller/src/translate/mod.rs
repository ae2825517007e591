//! `translate()`: the pure function from the Store to the routing table (design.md §1, §3).
//!
//! It implements the Ingress networking.k8s.io/v1 semantics. Nothing here does I/O or fails:
//! every problem becomes a [`Diagnostic`] and only the affected object (or part of it) is left
//! out, so one bad manifest never takes the rest of the routing down.

pub mod annotations;
mod backend;
mod canary;
mod class;
mod memo;
mod policy;
mod table;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

pub use class::is_served;

use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::store::{ObjectKey, Store};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proxy::table::{BackendGroup, RoutingTable, VirtualHost};
use std::sync::Arc;

/// Builds the routing table from every Ingress pier serves, plus Diagnostics for everything
/// that was (partly) left out. Deterministic: the same Store gives an `==` table and the same
/// Diagnostics, in sorted order, whatever order the objects arrived in.
pub fn translate(store: &Store, settings: &Settings) -> (RoutingTable, Vec<Diagnostic>) {
    Translator::default().translate(store, settings)
}

/// [`translate`] for a caller that translates again and again (the controller): it keeps
/// what the previous translation resolved and reuses it where the objects it came from are
/// unchanged. The result is always `==` to [`translate`] of the same Store, with the same
/// Diagnostics; unchanged virtual hosts and endpoint lists also keep their pointers, so the
/// proxy compares and compiles them by pointer.
#[derive(Debug, Default)]
pub struct Translator {
    backends: memo::BackendMemo,
    hosts: Vec<Arc<VirtualHost>>,
}

impl Translator {
    /// Translates `store`; see [`translate`].
    pub fn translate(
        &mut self,
        store: &Store,
        settings: &Settings,
    ) -> (RoutingTable, Vec<Diagnostic>) {
        let memo = std::mem::take(&mut self.backends);
        let (table, diagnostics, memo) = build(store, settings, memo, &self.hosts);
        self.backends = memo;
        self.hosts.clone_from(&table.virtual_hosts);
        (table, diagnostics)
    }
}

/// One translation with the memo of the previous ones; returns the memo for the next.
fn build(
    store: &Store,
    settings: &Settings,
    memo: memo::BackendMemo,
    previous_hosts: &[Arc<VirtualHost>],
) -> (RoutingTable, Vec<Diagnostic>, memo::BackendMemo) {
    let mut diagnostics = Vec::new();
    let mut served: Vec<(&ObjectKey, &Ingress)> = Vec::with_capacity(store.ingresses.len());
    for (key, ingress) in &store.ingresses {
        let ingress: &Ingress = ingress;
        if !is_served(store, settings, key, ingress) {
            continue;
        }
        let problems = validate::validate(ingress);
        if problems.is_empty() {
            served.push((key, ingress));
        }
        for problem in problems {
            let reason = format!("{problem}; the Ingress is ignored");
            diagnostics.push(Diagnostic::new("Ingress", key.to_string(), reason));
        }
    }
    served.sort_by(|a, b| precedence(a.0, a.1).cmp(&precedence(b.0, b.1)));

    let mut resolver = backend::Resolver::new(store, memo);
    let mut builder = table::TableBuilder::default();
    let mut canaries = Vec::new();
    for &(key, ingress) in &served {
        if canary::is_canary(key, ingress, &mut diagnostics) {
            canaries.push((key, ingress));
            continue;
        }
        builder.add(key, ingress, &mut resolver);
    }
    canary::attach(&mut builder, &canaries, &mut resolver, &mut diagnostics);
    let fallback = if builder.has_global_default() {
        None
    } else {
        settings_default_backend(settings, &mut resolver, &mut diagnostics)
    };
    let (mut table, more) = builder.finish(fallback, previous_hosts);
    diagnostics.extend(more);
    tls::apply(
        store,
        &mut resolver,
        settings,
        &served,
        &mut table,
        &mut diagnostics,
    );
    let (more, memo) = resolver.finish();
    diagnostics.extend(more);
    diagnostics.sort();
    diagnostics.dedup();
    (table, diagnostics, memo)
}

/// Conflict order: oldest first (objects without a timestamp last), then namespace/name.
fn precedence<'a>(
    key: &'a ObjectKey,
    ingress: &'a Ingress,
) -> (bool, Option<&'a Time>, &'a ObjectKey) {
    let created = ingress.metadata.creation_timestamp.as_ref();
    (created.is_none(), created, key)
}

/// The controller-wide `--default-backend`, used only when no Ingress sets a global one.
fn settings_default_backend<'a>(
    settings: &'a Settings,
    resolver: &mut backend::Resolver<'a>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<BackendGroup> {
    let value = settings.default_backend.as_deref()?;
    let Some((namespace, name, port)) = backend::parse_backend_ref(value) else {
        diagnostics.push(Diagnostic::new(
            "Settings",
            "default-backend",
            format!("{value:?} is not namespace/name:port; no default backend"),
        ));
        return None;
    };
    let backend = resolver.resolve_for(None, namespace, name, &port);
    if let Some(why) = &backend.unavailable {
        diagnostics.push(Diagnostic::new(
            "Settings",
            "default-backend",
            format!("{value}: {why}; unmatched requests get 503"),
        ));
    }
    Some(BackendGroup {
        services: vec![backend],
        canary: None,
    })
}
