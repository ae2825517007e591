//! The virtual hosts of the table, each with the Ingresses that have rules for it (its
//! members, oldest first). A host is rebuilt only when a member joined or left, or a Service
//! it read changed; otherwise its virtual host (same `Arc`) and Diagnostics are reused.

use super::admit::{Admitted, Membership};
use super::backend::Resolver;
use super::canary;
use super::table::HostBuilder;
use super::tls;
use crate::diagnostic::Diagnostic;
use crate::store::ObjectKey;
use proxy::table::{HostMatch, VirtualHost};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// What one host was built into.
#[derive(Debug, Default)]
struct Built {
    /// `None` when no route and no default backend came out of it.
    vhost: Option<Arc<VirtualHost>>,
    /// Problems found while building it.
    diagnostics: Vec<Diagnostic>,
    /// The Services it read (a change to one of them rebuilds it).
    services: Vec<ObjectKey>,
    /// Its HTTPS policy as its members ask for it.
    policy: tls::HostPolicy,
}

/// One host and its members.
#[derive(Debug, Default)]
struct Entry {
    /// Served, valid Ingresses with a rule for the host, oldest first.
    members: Vec<Arc<Admitted>>,
    /// What it was last built into; `None` until built and after a member changed.
    built: Option<Built>,
}

/// Every host of the served, valid Ingresses, in host order.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    by_host: BTreeMap<HostMatch, Entry>,
}

/// One virtual host of the table with its HTTPS policy.
pub(crate) struct HostView<'a> {
    /// The virtual host.
    pub(crate) vhost: &'a Arc<VirtualHost>,
    /// What its members ask for.
    pub(crate) policy: &'a tls::HostPolicy,
}

impl Hosts {
    /// Moves Ingresses that joined or left the table in or out of their hosts.
    pub(crate) fn update(&mut self, changes: Vec<Membership>) {
        for change in changes {
            match change {
                Membership::Left(gone) => {
                    for host in &gone.hosts {
                        let Some(entry) = self.by_host.get_mut(host) else {
                            continue;
                        };
                        entry.members.retain(|m| !Arc::ptr_eq(m, &gone));
                        entry.built = None;
                        if entry.members.is_empty() {
                            self.by_host.remove(host);
                        }
                    }
                }
                Membership::Joined(new) => {
                    for host in &new.hosts {
                        let entry = self.by_host.entry(host.clone()).or_default();
                        let at = entry
                            .members
                            .partition_point(|m| m.precedence() < new.precedence());
                        entry.members.insert(at, new.clone());
                        entry.built = None;
                    }
                }
            }
        }
    }

    /// Rebuilds the hosts that need it: new or changed members, or a Service in `changed`.
    pub(crate) fn rebuild(&mut self, changed: &HashSet<ObjectKey>, resolver: &mut Resolver) {
        for (host, entry) in &mut self.by_host {
            let stale = match &entry.built {
                None => true,
                Some(built) => {
                    !changed.is_empty() && built.services.iter().any(|s| changed.contains(s))
                }
            };
            if stale {
                let previous = entry.built.take().and_then(|b| b.vhost);
                entry.built = Some(build(host, &entry.members, previous, resolver));
            }
        }
    }

    /// The virtual hosts, in host order, with their policies; the Diagnostics of every host
    /// go to `out`. Call after [`Hosts::rebuild`].
    pub(crate) fn collect(&self, out: &mut Vec<Diagnostic>) -> Vec<HostView<'_>> {
        let mut views = Vec::with_capacity(self.by_host.len());
        for built in self.by_host.values().filter_map(|e| e.built.as_ref()) {
            out.extend(built.diagnostics.iter().cloned());
            if let Some(vhost) = &built.vhost {
                views.push(HostView {
                    vhost,
                    policy: &built.policy,
                });
            }
        }
        views
    }
}

/// Builds one host from its members; a virtual host equal to `previous` keeps its `Arc`.
fn build(
    host: &HostMatch,
    members: &[Arc<Admitted>],
    previous: Option<Arc<VirtualHost>>,
    resolver: &mut Resolver,
) -> Built {
    let mut diagnostics = Vec::new();
    resolver.start_recording();
    let mut builder = HostBuilder::new(host);
    for member in members.iter().filter(|m| !m.canary) {
        builder.add(member, resolver, &mut diagnostics);
    }
    let canaries: Vec<&Arc<Admitted>> = members.iter().filter(|m| m.canary).collect();
    canary::attach(host, &mut builder, &canaries, resolver, &mut diagnostics);
    let vhost = builder.finish().map(|built| match previous {
        Some(previous) if *previous == built => previous,
        _ => Arc::new(built),
    });
    Built {
        vhost,
        diagnostics,
        services: resolver.take_recorded(),
        policy: tls::HostPolicy::decide(host, members),
    }
}
