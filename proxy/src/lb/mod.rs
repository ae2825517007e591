//! Load balancing over the routable endpoints of one Service: smooth weighted round-robin,
//! least-request (P2C), Maglev consistent hashing with optional bounded load, weighted random,
//! cookie and client-IP affinity, and slow start. State that must outlive a table swap lives
//! in [`EndpointRegistry`].

mod affinity;
mod carry;
mod context;
mod endpoint;
mod least_request;
pub mod maglev;
mod outcome;

use outcome::Mode;
mod random;
mod round_robin;

pub use context::{PickContext, RequestHeaders};
pub use endpoint::{
    EndpointRegistry, EndpointState, InFlightGuard, RegistryBuilder, ServiceStatesBuilder,
};
pub use outcome::EndpointView;

use crate::table::{Affinity, Algorithm, Endpoint, LbPolicy, ServiceBackend};
use affinity::ClientIpTable;
use maglev::Maglev;
use round_robin::SmoothRoundRobin;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The endpoint chosen for one attempt.
#[derive(Debug)]
pub struct Pick {
    /// Where to connect.
    pub address: SocketAddr,
    /// Counts the request as in flight on that endpoint until dropped.
    pub guard: InFlightGuard,
    /// A `Set-Cookie` value to send (cookie affinity established a new binding).
    pub set_cookie: Option<String>,
}

#[derive(Debug)]
struct LbEndpoint {
    address: SocketAddr,
    weight: u32,
    state: Arc<EndpointState>,
}

/// Picks endpoints of one Service port according to its policy.
#[derive(Debug)]
pub struct ServiceBalancer {
    /// `namespace/name:port`.
    pub id: Arc<str>,
    /// Why the Service cannot serve at all (missing Service or port); answered with 503.
    pub unavailable: Option<String>,
    policy: LbPolicy,
    /// The endpoints (with conditions) this balancer was built from.
    source: Arc<[Endpoint]>,
    /// No two of `endpoints` share an address (they are in strictly increasing order).
    distinct: bool,
    /// The routable endpoints, then the draining ones (terminating but still serving; only
    /// requests bound to them by affinity may go there).
    endpoints: Vec<LbEndpoint>,
    /// How many of `endpoints` are routable (the rest are draining).
    routable: usize,
    /// All static weights equal (round-robin may take its lock-free path).
    uniform: bool,
    /// Until when some endpoint is still slow-starting.
    ramp_until: Option<Instant>,
    rr: SmoothRoundRobin,
    maglev: Option<Arc<Maglev>>,
    cookie_tokens: HashMap<String, usize>,
    client_ip: Option<Arc<ClientIpTable>>,
}

impl ServiceBalancer {
    /// Builds the balancer over the backend's routable endpoints, taking their live state from
    /// `registry`.
    pub fn new(backend: &ServiceBackend, registry: &mut RegistryBuilder<'_>) -> ServiceBalancer {
        let now = Instant::now();
        let mut states = registry.service(&backend.id);
        let mut endpoints: Vec<LbEndpoint> = Vec::with_capacity(backend.endpoints.len());
        endpoints.extend(backend.routable().map(|e| LbEndpoint {
            address: e.address,
            weight: e.weight,
            state: states.state(e, now),
        }));
        let routable = endpoints.len();
        let policy = backend.policy.clone();
        outcome::add_draining(backend, &mut endpoints, &mut states, now);
        outcome::register_checks(&backend.id, &policy, &endpoints[..routable], registry);
        let ramp_until = endpoints
            .iter()
            .filter_map(|e| e.state.ramp_end(policy.slow_start))
            .max()
            .filter(|end| *end > now);
        let uniform = endpoints.windows(2).all(|w| w[0].weight == w[1].weight);
        let distinct = endpoints.windows(2).all(|w| w[0].address < w[1].address);
        let maglev = match policy.algorithm {
            Algorithm::ConsistentHash { .. } if routable > 0 => {
                registry.maglev(&backend.id, carry::maglev_inputs(&endpoints[..routable]))
            }
            _ => None,
        };
        let cookie_tokens = match policy.affinity {
            Some(Affinity::Cookie { .. }) => endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| (affinity::cookie_token(&e.address), i))
                .collect(),
            _ => HashMap::new(),
        };
        let client_ip = match policy.affinity {
            Some(Affinity::ClientIp { timeout }) => Some(registry.client_ip(&backend.id, timeout)),
            _ => None,
        };
        ServiceBalancer {
            id: backend.id.clone(),
            unavailable: backend.unavailable.clone(),
            policy,
            source: backend.endpoints.clone(),
            distinct,
            endpoints,
            routable,
            uniform,
            ramp_until,
            rr: SmoothRoundRobin::default(),
            maglev,
            cookie_tokens,
            client_ip,
        }
    }

    /// Whether there is at least one endpoint to send to.
    pub fn has_endpoints(&self) -> bool {
        self.routable > 0
    }

    /// Whether an endpoint not in `tried` is left.
    pub fn has_untried(&self, tried: &[SocketAddr]) -> bool {
        self.endpoints[..self.routable]
            .iter()
            .any(|e| !tried.contains(&e.address))
    }

    /// Endpoint addresses with their in-flight counts (for the debug view).
    pub fn in_flight(&self) -> Vec<(SocketAddr, u64)> {
        self.endpoints
            .iter()
            .map(|e| (e.address, e.state.in_flight()))
            .collect()
    }

    /// Chooses the endpoint for one attempt, never one in `exclude` (already failed for this
    /// request), and only a healthy one unless none is left (panic mode: fail open rather
    /// than answer 503). `None` when nothing is left.
    pub fn pick(
        &self,
        req: &PickContext<'_>,
        exclude: &[SocketAddr],
        rng: &mut fastrand::Rng,
    ) -> Option<Pick> {
        let now = tokio::time::Instant::now();
        let (chosen, set_cookie) = match self.select(req, exclude, Mode::Healthy, now, rng) {
            Some(found) => found,
            None => {
                let found = self.select(req, exclude, Mode::Panic, now, rng)?;
                crate::health::metrics().panic_pick();
                found
            }
        };
        let e = &self.endpoints[chosen];
        Some(Pick {
            address: e.address,
            guard: e.state.track(),
            set_cookie,
        })
    }

    /// One selection in `mode`: the endpoint index and the affinity cookie to set.
    fn select(
        &self,
        req: &PickContext<'_>,
        exclude: &[SocketAddr],
        mode: Mode,
        now: tokio::time::Instant,
        rng: &mut fastrand::Rng,
    ) -> Option<(usize, Option<String>)> {
        let checked = self.policy.health.active.is_some();
        // Bound by affinity: draining endpoints still count (they finish their sessions).
        let bound_ok = |i: usize| {
            let e = &self.endpoints[i];
            e.weight > 0
                && !exclude.contains(&e.address)
                && (mode == Mode::Panic || e.state.health.routable(checked, now))
        };
        let usable = |i: usize| i < self.routable && bound_ok(i);
        let mut set_cookie = None;
        let chosen = match &self.policy.affinity {
            Some(Affinity::Cookie { name, max_age }) => {
                let bound = req
                    .cookie(name)
                    .and_then(|t| self.cookie_tokens.get(t).copied())
                    .filter(|&i| bound_ok(i));
                match bound {
                    Some(i) => Some(i),
                    None => {
                        let i = self.pick_by_algorithm(req, &usable, rng)?;
                        let token = affinity::cookie_token(&self.endpoints[i].address);
                        set_cookie = Some(affinity::set_cookie(name, &token, *max_age));
                        Some(i)
                    }
                }
            }
            Some(Affinity::ClientIp { .. }) => match (&self.client_ip, req.client_ip) {
                (Some(table), Some(ip)) => {
                    let now = Instant::now();
                    let index_of =
                        |a: &SocketAddr| self.endpoints.iter().position(|e| e.address == *a);
                    let usable_address = |a: &SocketAddr| index_of(a).is_some_and(bound_ok);
                    let bound = table
                        .lookup(ip, now, usable_address)
                        .and_then(|a| index_of(&a));
                    match bound {
                        Some(i) => Some(i),
                        None => {
                            let i = self.pick_by_algorithm(req, &usable, rng)?;
                            let bound =
                                table.bind(ip, self.endpoints[i].address, now, usable_address);
                            Some(index_of(&bound).unwrap_or(i))
                        }
                    }
                }
                _ => self.pick_by_algorithm(req, &usable, rng),
            },
            None if mode == Mode::Panic && self.policy.algorithm == Algorithm::RoundRobin => {
                // The failed healthy attempt already advanced the lock-free counter; a second
                // advance per request would pin even-sized Services to one endpoint.
                let candidates: Vec<usize> =
                    (0..self.endpoints.len()).filter(|&i| usable(i)).collect();
                random::pick(&candidates, |i| f64::from(self.endpoints[i].weight), rng)
            }
            None => self.pick_by_algorithm(req, &usable, rng),
        }?;
        Some((chosen, set_cookie))
    }

    fn pick_by_algorithm(
        &self,
        req: &PickContext<'_>,
        usable: &impl Fn(usize) -> bool,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        match &self.policy.algorithm {
            Algorithm::RoundRobin => self.round_robin(usable),
            Algorithm::LeastRequest => {
                let weights = self.effective_weights(self.ramping_at());
                let equal = weights.windows(2).all(|w| w[0] == w[1]);
                if equal {
                    let candidates: Vec<usize> =
                        (0..self.endpoints.len()).filter(|&i| usable(i)).collect();
                    least_request::pick(
                        &candidates,
                        |i| weights[i],
                        |i| self.endpoints[i].state.in_flight(),
                        rng,
                    )
                } else {
                    // Unequal weights: P2C would always prefer the heavier endpoint when idle, so
                    // take weighted turns over weights shrunk by each endpoint's load instead.
                    let dynamic: Vec<f64> = weights
                        .iter()
                        .zip(&self.endpoints)
                        .map(|(w, e)| w / (e.state.in_flight() as f64 + 1.0))
                        .collect();
                    self.rr.pick(&dynamic, |i| !usable(i))
                }
            }
            Algorithm::Random => {
                let candidates: Vec<usize> =
                    (0..self.endpoints.len()).filter(|&i| usable(i)).collect();
                random::pick(&candidates, |i| f64::from(self.endpoints[i].weight), rng)
            }
            Algorithm::ConsistentHash {
                key,
                balance_factor,
            } => match req.hash_key(key) {
                Some(hash) => self.consistent_hash(hash, *balance_factor, usable),
                None => self.round_robin(usable),
            },
        }
    }

    fn round_robin(&self, usable: &impl Fn(usize) -> bool) -> Option<usize> {
        let ramping_at = self.ramping_at();
        if self.uniform && ramping_at.is_none() {
            // Equal weights and no slow start: plain turns, with no weights to work out.
            let n = self.endpoints.len();
            return self
                .rr
                .pick_in_turn(n, |i| !usable(i) || self.endpoints[i].weight == 0);
        }
        let weights = self.effective_weights(ramping_at);
        self.rr.pick(&weights, |i| !usable(i))
    }

    /// Now, while an endpoint is still slow-starting; the clock is read only if one may be.
    fn ramping_at(&self) -> Option<Instant> {
        let end = self.ramp_until?;
        let now = Instant::now();
        (now < end).then_some(now)
    }

    /// Static weight × slow-start factor (at `ramping_at`, while ramping) of every endpoint.
    fn effective_weights(&self, ramping_at: Option<Instant>) -> Vec<f64> {
        self.endpoints
            .iter()
            .map(|e| {
                let w = f64::from(e.weight);
                match ramping_at {
                    Some(now) => w * e.state.ramp(self.policy.slow_start, now),
                    None => w,
                }
            })
            .collect()
    }

    /// The Maglev owner of `hash`; with bounded load, the first endpoint along the table whose
    /// in-flight count stays within `factor`% of the mean.
    fn consistent_hash(
        &self,
        hash: u64,
        factor: Option<u32>,
        usable: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let table = self.maglev.as_ref()?;
        let n = self.routable;
        let cap = factor.map(|f| {
            let total: u64 = self.endpoints[..n]
                .iter()
                .map(|e| e.state.in_flight())
                .sum();
            // Counting this request too; ceil so that a lone request always fits.
            ((total + 1) as f64 * f64::from(f) / 100.0 / n as f64).ceil() as u64
        });
        let start = table.slot(hash);
        let mut seen = vec![false; n];
        let mut distinct = 0;
        for step in 0..table.len() {
            let i = table.owner(start + step);
            if seen[i] {
                continue;
            }
            seen[i] = true;
            distinct += 1;
            let fits = cap.is_none_or(|c| self.endpoints[i].state.in_flight() < c);
            if usable(i) && fits {
                return Some(i);
            }
            if distinct == n {
                break;
            }
        }
        // Everything is over the cap: fall back to the key's own endpoint if usable.
        let own = table.owner(start);
        usable(own).then_some(own)
    }
}

#[cfg(test)]
mod tests;
