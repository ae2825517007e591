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
use proxy::table::{Endpoint, HostMatch, ServiceBackend, VirtualHost};
use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// What it was last built into; `None` until built.
    built: Option<Built>,
    /// A member joined or left since it was built.
    stale: bool,
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
                        entry.stale = true;
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
                        entry.stale = true;
                    }
                }
            }
        }
    }

    /// Rebuilds the hosts that need it: new or changed members, or a Service in `changed`.
    pub(crate) fn rebuild(&mut self, changed: &HashSet<ObjectKey>, resolver: &mut Resolver) {
        for (host, entry) in &mut self.by_host {
            let stale = entry.stale
                || match &entry.built {
                    None => true,
                    Some(built) => {
                        !changed.is_empty() && built.services.iter().any(|s| changed.contains(s))
                    }
                };
            if stale {
                let previous = entry.built.take().and_then(|b| b.vhost);
                entry.built = Some(build(host, &entry.members, previous, resolver));
                entry.stale = false;
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
    let vhost = builder.finish().map(|mut built| match previous {
        Some(previous) => {
            share_endpoints(&mut built, &previous);
            if *previous == built {
                previous
            } else {
                Arc::new(built)
            }
        }
        None => Arc::new(built),
    });
    Built {
        vhost,
        diagnostics,
        services: resolver.take_recorded(),
        policy: tls::HostPolicy::decide(host, members),
    }
}

/// Every backend of `host` whose endpoints equal those of the same backend in `previous`
/// takes the previous list (same `Arc`), so that the proxy sees it unchanged by pointer.
fn share_endpoints(host: &mut VirtualHost, previous: &VirtualHost) {
    let mut known: HashMap<&str, &Arc<[Endpoint]>> = HashMap::new();
    for backend in backends(previous) {
        known.insert(&backend.id, &backend.endpoints);
    }
    for backend in backends_mut(host) {
        if let Some(old) = known.get(&*backend.id) {
            if !Arc::ptr_eq(old, &backend.endpoints) && **old == backend.endpoints {
                backend.endpoints = Arc::clone(old);
            }
        }
    }
}

/// Every Service backend of a host: of its routes, their canaries and its default.
fn backends(host: &VirtualHost) -> impl Iterator<Item = &ServiceBackend> {
    let groups = host.routes.iter().map(|r| &r.backend);
    groups.chain(&host.default_backend).flat_map(|g| {
        let canary = g.canary.as_ref().map(|c| &c.backend);
        g.services.iter().chain(canary)
    })
}

fn backends_mut(host: &mut VirtualHost) -> impl Iterator<Item = &mut ServiceBackend> {
    let groups = host.routes.iter_mut().map(|r| &mut r.backend);
    groups.chain(&mut host.default_backend).flat_map(|g| {
        let canary = g.canary.as_mut().map(|c| &mut c.backend);
        g.services.iter_mut().chain(canary)
    })
}
