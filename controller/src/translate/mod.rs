//! `translate()`: the pure function from the Store to the routing table (design.md §1, §3).
//!
//! It implements the Ingress networking.k8s.io/v1 semantics. Nothing here does I/O or fails:
//! every problem becomes a [`Diagnostic`] and only the affected object (or part of it) is left
//! out, so one bad manifest never takes the rest of the routing down.
//!
//! The work is split so that each part depends on few objects: an Ingress on its own
//! ([`admit`]), one virtual host from the Ingresses with rules for it ([`hosts`]), the default
//! backend ([`defaults`]), TLS and backend protocols ([`tls`]). A [`Translator`] keeps each
//! part's result and redoes only the parts whose objects changed ([`changes`]).

mod admit;
pub mod annotations;
mod backend;
mod canary;
mod changes;
mod class;
mod defaults;
mod hosts;
mod policy;
mod table;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

pub use class::is_served;

use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::store::Store;
use proxy::table::RoutingTable;
use std::sync::Arc;

/// Builds the routing table from every Ingress pier serves, plus Diagnostics for everything
/// that was (partly) left out. Deterministic: the same Store gives an `==` table and the same
/// Diagnostics, in sorted order, whatever order the objects arrived in.
pub fn translate(store: &Store, settings: &Settings) -> (RoutingTable, Vec<Diagnostic>) {
    Translator::default().translate(store, settings)
}

/// [`translate`] for a caller that translates again and again (the controller): it keeps
/// what the previous translation worked out and redoes only what depends on objects that
/// changed (compared by pointer: the Store shares objects and never changes one in place).
/// The result is always `==` to [`translate`] of the same Store, with the same Diagnostics;
/// unchanged virtual hosts and endpoint lists also keep their pointers, so the proxy compares
/// and compiles them by pointer.
#[derive(Debug, Default)]
pub struct Translator {
    /// The settings everything below was worked out with.
    settings: Option<Settings>,
    seen: changes::Seen,
    ingresses: admit::Admissions,
    hosts: hosts::Hosts,
    defaults: defaults::Defaults,
    tls: tls::TlsMemo,
    protocols: tls::Answers,
}

impl Translator {
    /// Translates `store`; see [`translate`].
    pub fn translate(
        &mut self,
        store: &Store,
        settings: &Settings,
    ) -> (RoutingTable, Vec<Diagnostic>) {
        // Taken out while working: if anything panics, the next translation starts afresh.
        let mut this = std::mem::take(self);
        if this.settings.as_ref() != Some(settings) {
            this = Translator {
                settings: Some(settings.clone()),
                ..Translator::default()
            };
        }
        let result = this.run(store, settings);
        *self = this;
        result
    }

    fn run(&mut self, store: &Store, settings: &Settings) -> (RoutingTable, Vec<Diagnostic>) {
        let Translator {
            seen,
            ingresses,
            hosts,
            defaults,
            tls: tls_memo,
            protocols,
            ..
        } = self;
        let changes = seen.update(store);
        let moved = ingresses.update(store, settings, changes.ingresses, changes.classes);
        let joined = admit::Membership::joined(&moved);
        hosts.update(moved);
        protocols.forget(&changes.services, !changes.secrets.is_empty());

        let mut diagnostics = Vec::new();
        ingresses.report(&mut diagnostics);
        let mut resolver = backend::Resolver::new(store, &seen.slice_index);
        hosts.rebuild(&changes.services, &mut resolver);
        let views = hosts.collect(&mut diagnostics);
        let with_default = ingresses.members(|a| {
            !a.canary
                && a.ingress
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.default_backend.is_some())
        });
        let default_backend = defaults.resolve(
            with_default,
            &changes.services,
            settings,
            &mut resolver,
            &mut diagnostics,
        );
        let mut table = RoutingTable {
            virtual_hosts: views.iter().map(|v| v.vhost.clone()).collect(),
            default_backend,
            ..RoutingTable::default()
        };
        let with_tls =
            ingresses.members(|a| a.ingress.spec.as_ref().is_some_and(|s| s.tls.is_some()));
        tls::apply(
            store,
            settings,
            tls_memo,
            (&with_tls, &views),
            &changes.secrets,
            &mut table,
            &mut diagnostics,
        );
        let members: Vec<&Arc<admit::Admitted>> = ingresses.members_unordered().collect();
        table.backend_protocols = tls::protocols(
            store,
            &seen.slice_index,
            settings,
            (&members, &joined),
            &changes.services,
            protocols,
            &mut diagnostics,
        );
        diagnostics.extend(resolver.finish());
        diagnostics.sort();
        diagnostics.dedup();
        (table, diagnostics)
    }
}
