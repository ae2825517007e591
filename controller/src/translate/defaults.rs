//! The default backend for requests that no virtual host takes: the `defaultBackend` of the
//! oldest Ingress that has one, else the controller's `--default-backend`.

use super::admit::Admitted;
use super::backend::{self, Resolver};
use super::table::{backend_group, lost, BackendField};
use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::store::ObjectKey;
use proxy::table::BackendGroup;
use std::collections::HashSet;
use std::sync::Arc;

/// The last decision, kept while the Ingresses with a `defaultBackend` and the Services they
/// name are unchanged.
#[derive(Debug, Default)]
pub(crate) struct Defaults {
    /// Served, valid primary Ingresses with a `defaultBackend`, oldest first.
    members: Vec<Arc<Admitted>>,
    built: Option<Built>,
}

#[derive(Debug)]
struct Built {
    group: Option<BackendGroup>,
    diagnostics: Vec<Diagnostic>,
    services: Vec<ObjectKey>,
}

impl Defaults {
    /// The default backend, with its Diagnostics added to `out`. `members` are the served,
    /// valid primary Ingresses with a `defaultBackend`, oldest first; `changed` the Services
    /// that changed since the last call.
    pub(crate) fn resolve(
        &mut self,
        members: Vec<&Arc<Admitted>>,
        changed: &HashSet<ObjectKey>,
        settings: &Settings,
        resolver: &mut Resolver,
        out: &mut Vec<Diagnostic>,
    ) -> Option<BackendGroup> {
        let same = members.len() == self.members.len()
            && members
                .iter()
                .zip(&self.members)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        let fresh = self
            .built
            .as_ref()
            .is_some_and(|b| !b.services.iter().any(|s| changed.contains(s)));
        if !same || !fresh {
            self.members = members.into_iter().cloned().collect();
            self.built = Some(build(&self.members, settings, resolver));
        }
        let built = self.built.as_ref()?;
        out.extend(built.diagnostics.iter().cloned());
        built.group.clone()
    }
}

fn build(members: &[Arc<Admitted>], settings: &Settings, resolver: &mut Resolver) -> Built {
    let mut diagnostics = Vec::new();
    resolver.start_recording();
    let mut winner: Option<(&str, BackendGroup)> = None;
    for member in members {
        let spec = member.ingress.spec.as_ref();
        let Some(backend) = spec.and_then(|s| s.default_backend.as_ref()) else {
            continue;
        };
        let at = (&*member.source, &member.ingress.metadata);
        let namespace = &member.key.namespace;
        let field = BackendField::Default;
        let group = backend_group(at, field, backend, namespace, resolver, &mut diagnostics);
        let Some(group) = group else { continue };
        match &winner {
            None => winner = Some((&member.source, group)),
            Some((first, _)) => diagnostics.push(lost(
                &member.source,
                first,
                "spec.defaultBackend as the default for unmatched hosts",
                "it only applies to this Ingress's hosts",
            )),
        }
    }
    let group = match winner {
        Some((_, group)) => Some(group),
        None => settings_default_backend(settings, resolver, &mut diagnostics),
    };
    Built {
        group,
        diagnostics,
        services: resolver.take_recorded(),
    }
}

/// The controller-wide `--default-backend`, used only when no Ingress sets a global one.
fn settings_default_backend(
    settings: &Settings,
    resolver: &mut Resolver,
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
    let backend = resolver.resolve_for(None, (namespace, name, &port), diagnostics);
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
