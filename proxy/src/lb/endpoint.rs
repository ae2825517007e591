//! Per-endpoint state that outlives routing-table swaps: in-flight counts, slow-start clocks
//! and health.

use super::affinity::ClientIpTable;
use super::maglev::Maglev;
use crate::health::{CheckTarget, EndpointHealth};
use crate::table::Endpoint;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a Maglev table is built from: endpoint names and weights, in order.
type MaglevInputs = Vec<(String, u32)>;

/// Live state of one endpoint of one Service, shared by every table that contains it.
#[derive(Debug)]
pub struct EndpointState {
    in_flight: AtomicU64,
    /// When the endpoint joined a Service that already existed; `None` for endpoints present
    /// when the Service first appeared (they do not slow-start).
    added_at: Option<Instant>,
    /// Active-check verdict and passive ejection.
    pub health: EndpointHealth,
}

impl EndpointState {
    /// Requests currently sent to this endpoint and not finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request until the returned guard is dropped (on every path: success, error,
    /// client abort, retry).
    pub fn track(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    /// Weight factor of slow start at `now`: from 0.1 right after the endpoint was added to
    /// 1.0 once `window` has passed.
    pub fn ramp(&self, window: Option<Duration>, now: Instant) -> f64 {
        match (window, self.added_at) {
            (Some(window), Some(added)) if !window.is_zero() => {
                let age = now.saturating_duration_since(added).as_secs_f64();
                let progress = (age / window.as_secs_f64()).min(1.0);
                0.1 + 0.9 * progress
            }
            _ => 1.0,
        }
    }

    /// When this endpoint's slow start ends, if it has one.
    pub fn ramp_end(&self, window: Option<Duration>) -> Option<Instant> {
        Some(self.added_at? + window?)
    }
}

/// Holds one in-flight request on an endpoint; releases it on drop.
#[derive(Debug)]
pub struct InFlightGuard(Arc<EndpointState>);

impl InFlightGuard {
    /// The endpoint the request is counted on (to report the outcome to its health).
    pub fn state(&self) -> &Arc<EndpointState> {
        &self.0
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoint states of one Service, by address.
type ServiceStates = HashMap<SocketAddr, Arc<EndpointState>>;

/// The endpoint states of every Service, by service id and then address. Rebuilt on every
/// publish from the previous one, so state survives swaps and removed endpoints are forgotten.
#[derive(Debug, Default)]
pub struct EndpointRegistry {
    /// Every Service of the table (also those without endpoints) with its endpoints' states.
    /// Shared between generations while a Service's endpoints do not change.
    services: HashMap<Arc<str>, Arc<ServiceStates>>,
    /// Maglev tables by service id, reused while the endpoints and weights are unchanged.
    maglev: HashMap<Arc<str>, (MaglevInputs, Arc<Maglev>)>,
    /// Client-IP affinity bindings by service id.
    client_ip: HashMap<Arc<str>, Arc<ClientIpTable>>,
    /// Endpoints with active checks, for the scheduler.
    check_targets: Vec<CheckTarget>,
}

impl EndpointRegistry {
    /// Starts the registry of a new table, carrying over what `previous` knew.
    pub fn next_generation(previous: &EndpointRegistry) -> RegistryBuilder<'_> {
        RegistryBuilder {
            previous,
            next: EndpointRegistry {
                services: HashMap::with_capacity(previous.services.len()),
                ..EndpointRegistry::default()
            },
            checked: HashSet::new(),
        }
    }

    /// The endpoints whose Services have active checks (the first policy seen wins when two
    /// routes give one Service different checks).
    pub fn check_targets(&self) -> Vec<CheckTarget> {
        self.check_targets.clone()
    }

    /// Every endpoint's state, by Service and address (for the debug view).
    pub fn states(&self) -> impl Iterator<Item = (&Arc<str>, SocketAddr, &Arc<EndpointState>)> {
        self.services
            .iter()
            .flat_map(|(svc, states)| states.iter().map(move |(addr, s)| (svc, *addr, s)))
    }
}

/// Collects the endpoint states of the table being compiled.
#[derive(Debug)]
pub struct RegistryBuilder<'a> {
    previous: &'a EndpointRegistry,
    next: EndpointRegistry,
    /// Endpoints already given to the scheduler by this generation.
    checked: HashSet<(Arc<str>, SocketAddr)>,
}

/// The endpoint states of one Service while a table is compiled: looks the Service up once,
/// then each endpoint by address only.
#[derive(Debug)]
pub struct ServiceStatesBuilder<'r> {
    previous: Option<&'r ServiceStates>,
    next: &'r mut ServiceStates,
}

impl ServiceStatesBuilder<'_> {
    /// The state of an endpoint: the previous one when it existed, else a new one (slow-starting
    /// when its Service already existed).
    pub fn state(&mut self, endpoint: &Endpoint, now: Instant) -> Arc<EndpointState> {
        let previous = self.previous;
        self.next
            .entry(endpoint.address)
            .or_insert_with(|| match previous {
                Some(states) => states.get(&endpoint.address).cloned().unwrap_or_else(|| {
                    // The Service already existed: a new endpoint slow-starts.
                    new_state(Some(now))
                }),
                None => new_state(None),
            })
            .clone()
    }
}

impl ServiceStatesBuilder<'_> {
    /// Records the state an unchanged endpoint already has.
    pub fn keep(&mut self, address: SocketAddr, state: &Arc<EndpointState>) {
        self.next.entry(address).or_insert_with(|| state.clone());
    }
}

fn new_state(added_at: Option<Instant>) -> Arc<EndpointState> {
    Arc::new(EndpointState {
        in_flight: AtomicU64::new(0),
        added_at,
        health: EndpointHealth::new(tokio::time::Instant::now()),
    })
}

impl RegistryBuilder<'_> {
    /// The endpoint states of Service `service`; marks it present even when it has no
    /// endpoint (so its first endpoint later slow-starts).
    pub fn service(&mut self, service: &Arc<str>) -> ServiceStatesBuilder<'_> {
        let previous = self.previous.services.get(service).map(|s| &**s);
        let next = self
            .next
            .services
            .entry(service.clone())
            .or_insert_with(|| Arc::new(HashMap::with_capacity(previous.map_or(0, HashMap::len))));
        ServiceStatesBuilder {
            previous,
            next: Arc::make_mut(next),
        }
    }

    /// Takes the previous states of Service `service` over as they are, when nothing of the
    /// new table recorded states for it yet and the previous generation knew exactly
    /// `endpoints` distinct endpoints of it (the caller holds all of them). `false`: record
    /// them one by one.
    pub fn share(&mut self, service: &Arc<str>, endpoints: usize) -> bool {
        let Some(previous) = self.previous.services.get(service) else {
            return false;
        };
        if previous.len() != endpoints {
            return false;
        }
        match self.next.services.entry(service.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(previous.clone());
                true
            }
        }
    }

    /// The state of one endpoint of `service`; see [`ServiceStatesBuilder::state`].
    pub fn state(
        &mut self,
        service: &Arc<str>,
        endpoint: &Endpoint,
        now: Instant,
    ) -> Arc<EndpointState> {
        self.service(service).state(endpoint, now)
    }

    /// The Maglev table of a Service: the previous one when its endpoints are unchanged.
    pub fn maglev(
        &mut self,
        service: &Arc<str>,
        endpoints: Vec<(String, u32)>,
    ) -> Option<Arc<Maglev>> {
        if let Some((e, m)) = self.next.maglev.get(service) {
            if *e == endpoints {
                return Some(m.clone());
            }
        }
        let table = match self.previous.maglev.get(service) {
            Some((e, m)) if *e == endpoints => m.clone(),
            _ => {
                let (names, weights): (Vec<String>, Vec<u32>) = endpoints.iter().cloned().unzip();
                Arc::new(Maglev::new(
                    &names,
                    &weights,
                    Maglev::size_for(names.len()),
                )?)
            }
        };
        self.next
            .maglev
            .insert(service.clone(), (endpoints, table.clone()));
        Some(table)
    }

    /// The client-IP binding table of a Service, kept across swaps.
    pub fn client_ip(&mut self, service: &Arc<str>, timeout: Duration) -> Arc<ClientIpTable> {
        if let Some(t) = self.next.client_ip.get(service) {
            return t.clone();
        }
        let table = match self.previous.client_ip.get(service) {
            Some(t) if t.timeout() == timeout => t.clone(),
            _ => Arc::new(ClientIpTable::new(timeout)),
        };
        self.next.client_ip.insert(service.clone(), table.clone());
        table
    }

    /// Asks the scheduler to check `state` (once per Service and address).
    pub fn check(&mut self, target: CheckTarget) {
        if self
            .checked
            .insert((target.service.clone(), target.address))
        {
            self.next.check_targets.push(target);
        }
    }

    /// The registry of the new table.
    pub fn finish(self) -> EndpointRegistry {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            weight: 1,
            ready: true,
            serving: true,
            terminating: false,
        }
    }

    #[test]
    fn state_survives_generations_and_new_endpoints_ramp() {
        let svc: Arc<str> = Arc::from("ns/a:80");
        let t0 = Instant::now();
        let empty = EndpointRegistry::default();
        let mut b = EndpointRegistry::next_generation(&empty);
        let first = b.state(&svc, &ep(1), t0);
        let gen1 = b.finish();
        assert_eq!(
            first.ramp(Some(Duration::from_secs(10)), t0),
            1.0,
            "initial endpoints do not ramp"
        );
        let _guard = first.track();

        let mut b = EndpointRegistry::next_generation(&gen1);
        let again = b.state(&svc, &ep(1), t0);
        let added = b.state(&svc, &ep(2), t0);
        let gen2 = b.finish();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(again.in_flight(), 1);
        let w = Some(Duration::from_secs(10));
        assert!((added.ramp(w, t0) - 0.1).abs() < 1e-9);
        assert!((added.ramp(w, t0 + Duration::from_secs(5)) - 0.55).abs() < 1e-9);
        assert_eq!(added.ramp(w, t0 + Duration::from_secs(20)), 1.0);

        let mut b = EndpointRegistry::next_generation(&gen2);
        b.state(&svc, &ep(2), t0);
        let gen3 = b.finish();
        assert_eq!(gen3.states().count(), 1, "removed endpoints are forgotten");
    }

    #[test]
    fn guard_releases_on_drop() {
        let empty = EndpointRegistry::default();
        let mut b = EndpointRegistry::next_generation(&empty);
        let s = b.state(&Arc::from("x"), &ep(1), Instant::now());
        {
            let _a = s.track();
            let _b = s.track();
            assert_eq!(s.in_flight(), 2);
        }
        assert_eq!(s.in_flight(), 0);
    }
}
