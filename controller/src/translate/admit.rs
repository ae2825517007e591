//! What translate() needs to know about one Ingress on its own — whether it is valid, whether
//! it is a canary, its hosts, the backends it names, the problems of its annotations — worked
//! out once per version of the Ingress and kept while the Store holds that version.

use super::canary::{self, Rules};
use super::{class, tls, validate};
use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::store::{ObjectKey, Store};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proxy::table::HostMatch;
use std::collections::HashMap;
use std::sync::Arc;

/// One version of one Ingress, as translate() sees it.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// Namespace and name.
    pub(crate) key: ObjectKey,
    /// The Ingress.
    pub(crate) ingress: Arc<Ingress>,
    /// `namespace/name`, naming its routes and Diagnostics.
    pub(crate) source: Arc<str>,
    /// Why the API server would refuse it (then it is left out), as Diagnostics.
    pub(crate) problems: Vec<Diagnostic>,
    /// Whether it is a canary Ingress (`pier.dev/canary: "true"`).
    pub(crate) canary: bool,
    /// The canary annotations, for a canary.
    pub(crate) canary_rules: Option<Box<Rules>>,
    /// Problems of its own annotations, reported while it is served and valid.
    pub(crate) notes: Vec<Diagnostic>,
    /// The distinct hosts of its rules, sorted.
    pub(crate) hosts: Box<[HostMatch]>,
    /// `pier.dev/ssl-redirect`, when set and valid.
    pub(crate) ssl_redirect: Option<bool>,
    /// `pier.dev/hsts`, when set and valid.
    pub(crate) hsts: Option<Arc<str>>,
    /// Whether it sets the backend protocol or CA itself.
    pub(crate) own_protocol: bool,
}

impl Admitted {
    fn new(key: &ObjectKey, ingress: &Arc<Ingress>) -> Admitted {
        let source = key.to_string();
        let problems = validate::validate(ingress)
            .into_iter()
            .map(|p| Diagnostic::new("Ingress", &source, format!("{p}; the Ingress is ignored")))
            .collect();
        let mut notes = Vec::new();
        let canary = canary::is_canary(key, ingress, &mut notes);
        let canary_rules = canary.then(|| Box::new(canary::rules(&source, ingress, &mut notes)));
        let (ssl_redirect, hsts) = tls::policy_annotations(key, &ingress.metadata, &mut notes);
        let spec = ingress.spec.as_ref();
        let rules = spec.and_then(|s| s.rules.as_ref()).into_iter().flatten();
        let mut hosts: Vec<HostMatch> = rules
            .map(|r| HostMatch::from_rule_host(r.host.as_deref().unwrap_or_default()))
            .collect();
        hosts.sort();
        hosts.dedup();
        let hosts = hosts.into_boxed_slice();
        Admitted {
            key: key.clone(),
            ingress: ingress.clone(),
            source: Arc::from(source),
            problems,
            canary,
            canary_rules,
            notes,
            hosts,
            ssl_redirect,
            hsts,
            own_protocol: tls::has_protocol_annotations(&ingress.metadata),
        }
    }

    /// Conflict order: oldest first (objects without a timestamp last), then namespace/name.
    pub(crate) fn precedence(&self) -> (bool, Option<&Time>, &ObjectKey) {
        let created = self.ingress.metadata.creation_timestamp.as_ref();
        (created.is_none(), created, &self.key)
    }

    /// Whether it takes part in the table: served and valid.
    fn member(&self, served: bool) -> bool {
        served && self.problems.is_empty()
    }
}

/// An Ingress that joined or left the table.
pub(crate) enum Membership {
    /// It is served and valid now (a new version, or newly served).
    Joined(Arc<Admitted>),
    /// It is no longer part of the table (gone, replaced, invalid or not served).
    Left(Arc<Admitted>),
}

impl Membership {
    /// The Ingresses that joined.
    pub(crate) fn joined(moved: &[Membership]) -> Vec<Arc<Admitted>> {
        let joined = moved.iter().filter_map(|m| match m {
            Membership::Joined(a) => Some(a.clone()),
            Membership::Left(_) => None,
        });
        joined.collect()
    }
}

/// Every Ingress of the Store, admitted, with whether it is served.
#[derive(Debug, Default)]
pub(crate) struct Admissions {
    by_key: HashMap<ObjectKey, (Arc<Admitted>, bool)>,
}

impl Admissions {
    /// Takes in the Ingresses that changed (`(key, new version)`) and, when the classes
    /// changed, which Ingresses are served. Returns who left and joined the table, leavers
    /// first.
    pub(crate) fn update(
        &mut self,
        store: &Store,
        settings: &Settings,
        changed: Vec<(ObjectKey, Option<Arc<Ingress>>)>,
        classes_changed: bool,
    ) -> Vec<Membership> {
        let mut left = Vec::new();
        let mut joined = Vec::new();
        for (key, new) in changed {
            if let Some((old, served)) = self.by_key.remove(&key) {
                if old.member(served) {
                    left.push(Membership::Left(old));
                }
            }
            let Some(ingress) = new else { continue };
            let admitted = Arc::new(Admitted::new(&key, &ingress));
            let served = class::is_served(store, settings, &key, &ingress);
            if admitted.member(served) {
                joined.push(Membership::Joined(admitted.clone()));
            }
            self.by_key.insert(key, (admitted, served));
        }
        if classes_changed {
            for (key, (admitted, served)) in &mut self.by_key {
                let now = class::is_served(store, settings, key, &admitted.ingress);
                if now == *served {
                    continue;
                }
                let before = admitted.member(*served);
                *served = now;
                match (before, admitted.member(now)) {
                    (true, false) => left.push(Membership::Left(admitted.clone())),
                    (false, true) => joined.push(Membership::Joined(admitted.clone())),
                    _ => {}
                }
            }
        }
        left.extend(joined);
        left
    }

    /// Every served Ingress, valid or not, in no particular order.
    fn served(&self) -> impl Iterator<Item = &Arc<Admitted>> {
        self.by_key.values().filter(|(_, s)| *s).map(|(a, _)| a)
    }

    /// What is wrong with each served Ingress on its own: why it is invalid, else the
    /// problems of its annotations.
    pub(crate) fn report(&self, out: &mut Vec<Diagnostic>) {
        for admitted in self.served() {
            out.extend(admitted.problems.iter().cloned());
            if admitted.problems.is_empty() {
                out.extend(admitted.notes.iter().cloned());
            }
        }
    }

    /// Every served and valid Ingress, in no particular order.
    pub(crate) fn members_unordered(&self) -> impl Iterator<Item = &Arc<Admitted>> {
        self.served().filter(|a| a.problems.is_empty())
    }

    /// Every served and valid Ingress that matches `filter`, oldest first.
    pub(crate) fn members(&self, filter: impl Fn(&Admitted) -> bool) -> Vec<&Arc<Admitted>> {
        let mut found: Vec<&Arc<Admitted>> =
            self.members_unordered().filter(|a| filter(a)).collect();
        found.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
        found
    }
}
