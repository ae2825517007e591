//! Load-balancing policy of a backend: each setting comes from the first of the target
//! Service's BackendPolicy, the Ingress annotation, the Service annotation, or the default.
//!
//! Precedence is per setting (a BackendPolicy that only sets `slowStart` leaves the algorithm
//! to the annotations). An invalid value is a Diagnostic naming the object and the key, and the
//! default applies for that setting; it does not fall through to a less specific layer.

mod index;
mod upstream;
pub(crate) mod values;

pub(crate) use index::PolicyIndex;

use crate::diagnostic::Diagnostic;
use crate::translate::annotations;
use crds::{AffinityType, BackendPolicySpec, LoadBalancePolicy};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::{Affinity, Algorithm, LbPolicy};
use std::time::Duration;
use values::{AffinityName, AlgorithmName};

/// Name of the affinity cookie when none is configured.
pub(crate) const DEFAULT_AFFINITY_COOKIE: &str = "pier-affinity";
/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub(crate) const DEFAULT_CLIENT_IP_TIMEOUT_SECS: u64 = 10_800;

/// The objects a backend's policy is read from, most specific first. Each is named
/// `namespace/name` for Diagnostics.
#[derive(Default, Clone, Copy)]
pub(crate) struct Layers<'a> {
    /// The Service's BackendPolicy.
    pub(crate) policy: Option<(&'a str, &'a BackendPolicySpec)>,
    /// The Ingress that routes to the backend (none for the controller's default backend).
    pub(crate) ingress: Option<(&'a str, &'a ObjectMeta)>,
    /// The backend Service.
    pub(crate) service: Option<(&'a str, &'a Service)>,
}

/// Which layer a value came from, to blame it in a Diagnostic.
#[derive(Clone, Copy)]
struct Origin<'a> {
    kind: &'static str,
    object: &'a str,
    /// `spec.loadBalancer.policy` or `annotation pier.dev/load-balance`.
    field: &'a str,
}

/// Resolves the policy of one backend; problems are pushed to `diagnostics`.
pub(crate) fn resolve_policy(layers: Layers<'_>, diagnostics: &mut Vec<Diagnostic>) -> LbPolicy {
    let mut r = Resolution {
        layers,
        diagnostics,
    };
    LbPolicy {
        algorithm: r.algorithm(),
        affinity: r.affinity(),
        slow_start: r.slow_start(),
        health: r.health(),
        upstream: r.upstream(),
    }
}

struct Resolution<'a, 'd> {
    layers: Layers<'a>,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl<'a> Resolution<'a, '_> {
    /// One setting: the BackendPolicy's typed value (`from_policy`, already parsed or failed)
    /// else the first annotation `key` on the Ingress, then the Service, parsed by `parse`.
    /// `None` when unset or invalid (a Diagnostic is pushed); the caller applies the default.
    fn pick<T>(
        &mut self,
        from_policy: Option<(&'a str, Result<T, String>)>,
        key: &'a str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<(T, Origin<'a>)> {
        if let (Some((object, _)), Some((field, value))) = (self.layers.policy, from_policy) {
            let origin = Origin {
                kind: "BackendPolicy",
                object,
                field,
            };
            // Field problems were reported once by PolicyIndex; no duplicate here.
            return value.ok().map(|v| (v, origin));
        }
        let annotated = [
            self.layers.ingress.map(|(o, meta)| ("Ingress", o, meta)),
            self.layers
                .service
                .map(|(o, svc)| ("Service", o, &svc.metadata)),
        ];
        for (kind, object, meta) in annotated.into_iter().flatten() {
            let Some(raw) = annotations::get(meta, key) else {
                continue;
            };
            let origin = Origin {
                kind,
                object,
                field: key,
            };
            match parse(raw) {
                Ok(v) => return Some((v, origin)),
                Err(why) => {
                    self.diagnostics.push(Diagnostic::new(
                        kind,
                        object,
                        format!(
                            "annotation {}{key} {raw:?}: {why}; the default applies",
                            annotations::PREFIX
                        ),
                    ));
                    return None;
                }
            }
        }
        None
    }

    fn spec(&self) -> Option<&'a BackendPolicySpec> {
        self.layers.policy.map(|(_, spec)| spec)
    }

    fn algorithm(&mut self) -> Algorithm {
        let lb = self.spec().and_then(|s| s.load_balancer.as_ref());
        let typed = lb.and_then(|l| l.policy).map(|p| {
            let name = match p {
                LoadBalancePolicy::RoundRobin => AlgorithmName::RoundRobin,
                LoadBalancePolicy::LeastRequest => AlgorithmName::LeastRequest,
                LoadBalancePolicy::ConsistentHash => AlgorithmName::ConsistentHash,
                LoadBalancePolicy::Random => AlgorithmName::Random,
            };
            ("spec.loadBalancer.policy", Ok(name))
        });
        let Some((name, origin)) = self.pick(typed, "load-balance", values::algorithm) else {
            return Algorithm::RoundRobin;
        };
        match name {
            AlgorithmName::RoundRobin => Algorithm::RoundRobin,
            AlgorithmName::LeastRequest => Algorithm::LeastRequest,
            AlgorithmName::Random => Algorithm::Random,
            AlgorithmName::ConsistentHash => self.consistent_hash(origin),
        }
    }

    /// `consistent-hash` needs a key; without a valid one the backend uses round-robin.
    fn consistent_hash(&mut self, chosen_by: Origin<'_>) -> Algorithm {
        let lb = self.spec().and_then(|s| s.load_balancer.as_ref());
        let typed = lb
            .and_then(|l| l.hash_by.as_deref())
            .map(|h| ("spec.loadBalancer.hashBy", values::hash_key(h)));
        let key = self.pick(typed, "hash-by", values::hash_key);
        let typed = lb.and_then(|l| l.hash_balance_factor).map(|f| {
            (
                "spec.loadBalancer.hashBalanceFactor",
                values::check_balance_factor(f),
            )
        });
        let balance_factor = self
            .pick(typed, "hash-balance-factor", values::balance_factor)
            .map(|(f, _)| f);
        match key {
            Some((key, _)) => Algorithm::ConsistentHash {
                key,
                balance_factor,
            },
            None => {
                let hint = match chosen_by.kind {
                    "BackendPolicy" => "spec.loadBalancer.hashBy",
                    _ => "annotation pier.dev/hash-by",
                };
                let field = match chosen_by.kind {
                    "BackendPolicy" => chosen_by.field.to_string(),
                    _ => format!("annotation {}{}", annotations::PREFIX, chosen_by.field),
                };
                self.diagnostics.push(Diagnostic::new(
                    chosen_by.kind,
                    chosen_by.object,
                    format!(
                        "{field} is consistent-hash but no valid hash key is set ({hint}: \
                         header:NAME, cookie:NAME, source-ip, path or query:NAME); round-robin \
                         is used"
                    ),
                ));
                Algorithm::RoundRobin
            }
        }
    }

    fn affinity(&mut self) -> Option<Affinity> {
        let typed = self.spec().and_then(|s| s.affinity.as_ref());
        let kind = typed.map(|a| {
            let name = match a.type_ {
                AffinityType::Cookie => AffinityName::Cookie,
                AffinityType::ClientIp => AffinityName::ClientIp,
                AffinityType::None => AffinityName::None,
            };
            ("spec.affinity.type", Ok(name))
        });
        let chosen = self
            .pick(kind, "affinity", values::affinity)
            .map(|(k, _)| k);
        match chosen {
            Some(AffinityName::None) => None,
            Some(AffinityName::Cookie) => {
                let name = typed.and_then(|a| a.cookie_name.as_deref()).map(|n| {
                    (
                        "spec.affinity.cookieName",
                        values::token(n).map(String::from),
                    )
                });
                let name = self
                    .pick(name, "affinity-cookie-name", |v| {
                        values::token(v).map(String::from)
                    })
                    .map_or_else(|| DEFAULT_AFFINITY_COOKIE.to_string(), |(n, _)| n);
                let max_age = typed
                    .and_then(|a| a.cookie_max_age_seconds)
                    .map(|s| ("spec.affinity.cookieMaxAgeSeconds", Ok(s)));
                let max_age = self
                    .pick(max_age, "affinity-cookie-max-age", values::seconds)
                    .map(|(s, _)| s);
                Some(Affinity::Cookie { name, max_age })
            }
            Some(AffinityName::ClientIp) => {
                let configured = typed
                    .and_then(|a| a.client_ip_timeout_seconds)
                    .filter(|t| (1..=86_400).contains(t));
                let secs = configured.or_else(|| self.service_client_ip_timeout());
                Some(client_ip(secs))
            }
            None => self
                .service_client_ip()
                .then(|| client_ip(self.service_client_ip_timeout())),
        }
    }

    /// Whether the Service has `spec.sessionAffinity: ClientIP`.
    fn service_client_ip(&self) -> bool {
        let spec = self.layers.service.and_then(|(_, s)| s.spec.as_ref());
        spec.and_then(|s| s.session_affinity.as_deref()) == Some("ClientIP")
    }

    /// `spec.sessionAffinityConfig.clientIP.timeoutSeconds` of the Service, when positive.
    fn service_client_ip_timeout(&self) -> Option<u64> {
        let spec = self.layers.service.and_then(|(_, s)| s.spec.as_ref())?;
        let config = spec.session_affinity_config.as_ref()?.client_ip.as_ref()?;
        config
            .timeout_seconds
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
    }

    fn slow_start(&mut self) -> Option<Duration> {
        let typed = self
            .spec()
            .and_then(|s| s.slow_start.as_deref())
            .map(|d| ("spec.slowStart", values::duration(d)));
        self.pick(typed, "slow-start", values::duration)
            .map(|(d, _)| d)
            .filter(|d| !d.is_zero())
    }
}

fn client_ip(timeout_secs: Option<u64>) -> Affinity {
    Affinity::ClientIp {
        timeout: Duration::from_secs(timeout_secs.unwrap_or(DEFAULT_CLIENT_IP_TIMEOUT_SECS)),
    }
}
