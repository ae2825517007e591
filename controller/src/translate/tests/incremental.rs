//! A [`Translator`] that lives across changes must give exactly what a fresh translation of
//! the same Store gives: random sequences of changes to every kind, each followed by both.

use super::generate::{change, Rng};
use super::*;
use crate::translate::Translator;

/// Applies `steps` random changes; after each, the long-lived translator must agree with a
/// fresh translation.
fn agree_after_random_changes(seed: u64, steps: usize, settings: &Settings) {
    let (crt, key) = super::tls::generated(&["a.com", "*.c.com"]);
    let (other, _) = super::tls::generated(&["b.com"]);
    let certs = [(crt, key.clone()), (other, key)];
    let mut rng = Rng(seed);
    let mut store = Store::default();
    let mut translator = Translator::default();
    let mut seen = Coverage::default();
    for step in 0..steps {
        change(&mut rng, &mut store, &certs);
        let (table, diagnostics) = translator.translate(&store, settings);
        let (fresh, fresh_diagnostics) = translate(&store, settings);
        assert!(
            table == fresh,
            "seed {seed}, step {step}: tables differ\nincremental: {table:#?}\nfresh: {fresh:#?}"
        );
        assert_eq!(
            diagnostics, fresh_diagnostics,
            "seed {seed}, step {step}: diagnostics differ"
        );
        seen.note(&table);
    }
    seen.check(seed);
}

/// What the generated tables contained at some step: a generator that never produces some
/// feature would test nothing about it.
#[derive(Default, Debug)]
struct Coverage {
    routes: usize,
    canaries: usize,
    endpoints: usize,
    tls: usize,
    protocols: usize,
    defaults: usize,
}

impl Coverage {
    fn note(&mut self, table: &RoutingTable) {
        let routes = || table.virtual_hosts.iter().flat_map(|v| &v.routes);
        self.routes += routes().count();
        self.canaries += routes().filter(|r| r.backend.canary.is_some()).count();
        self.endpoints += routes()
            .flat_map(|r| &r.backend.services)
            .map(|s| s.endpoints.len())
            .sum::<usize>();
        self.tls += table.tls.len();
        self.protocols += table.backend_protocols.len();
        self.defaults += usize::from(table.default_backend.is_some());
    }

    fn check(&self, seed: u64) {
        let all = [
            self.routes,
            self.canaries,
            self.endpoints,
            self.tls,
            self.protocols,
            self.defaults,
        ];
        assert!(
            all.iter().all(|n| *n > 0),
            "seed {seed} covered too little: {self:?}"
        );
    }
}

#[test]
fn incremental_translation_equals_a_fresh_one() {
    for seed in 0..6 {
        agree_after_random_changes(seed, 250, &Settings::default());
    }
}

#[test]
fn incremental_translation_equals_a_fresh_one_with_controller_defaults() {
    let settings = Settings {
        default_backend: Some("a/s0:80".into()),
        default_certificate: Some("a/tls0".into()),
        ..Settings::default()
    };
    for seed in 100..103 {
        agree_after_random_changes(seed, 250, &settings);
    }
    let namespaced = Settings {
        watch_namespace: Some("b".into()),
        ..Settings::default()
    };
    agree_after_random_changes(200, 250, &namespaced);
}
