//! Load-balancing policy of a backend Service and traffic split rules, as plain data.

use serde::Serialize;
use std::time::Duration;

/// How a Service's endpoints are chosen, and what sticks a client to one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct LbPolicy {
    /// The balancing algorithm.
    pub algorithm: Algorithm,
    /// Stickiness of a client to an endpoint, applied before the algorithm.
    pub affinity: Option<Affinity>,
    /// A newly added endpoint's weight ramps from 10 % to 100 % over this window
    /// (round-robin and least-request).
    #[serde(with = "opt_secs")]
    pub slow_start: Option<Duration>,
    /// Active checks and passive outlier ejection of the Service's endpoints.
    pub health: HealthPolicy,
    /// Timeouts and retry budget of requests sent to the Service.
    pub upstream: UpstreamPolicy,
}

/// Which endpoints of a Service are considered healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct HealthPolicy {
    /// Active checks; `None` (the default) trusts EndpointSlice readiness alone.
    pub active: Option<ActiveCheck>,
    /// Passive ejection on consecutive failures of real requests.
    pub outlier: OutlierPolicy,
}

/// An active health check run against every endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ActiveCheck {
    /// HTTP path to GET (2xx/3xx is healthy); a TCP connect check when `None`.
    pub path: Option<String>,
    /// Time between two checks of one endpoint.
    #[serde(with = "secs")]
    pub interval: Duration,
    /// Time after which a check counts as failed.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

impl ActiveCheck {
    /// Default time between checks.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
    /// Default check timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default healthy threshold.
    pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 1;
    /// Default unhealthy threshold.
    pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 2;
}

/// Passive outlier ejection: endpoints that keep failing real requests are taken out for a
/// while.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct OutlierPolicy {
    /// Consecutive connect errors or 5xx answers that eject an endpoint; 0 disables ejection.
    pub consecutive_failures: u32,
    /// Most endpoints of the Service, in percent, that may be ejected at once.
    pub max_ejection_percent: u32,
    /// Length of the first ejection; each further ejection of the same endpoint lasts one
    /// base time longer, up to ten times the base.
    #[serde(with = "secs")]
    pub base_ejection_time: Duration,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        OutlierPolicy {
            consecutive_failures: 5,
            max_ejection_percent: 50,
            base_ejection_time: Duration::from_secs(30),
        }
    }
}

/// Timeouts and retries of the requests sent to a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamPolicy {
    /// Time to establish a connection (TCP and TLS) to an endpoint.
    #[serde(with = "secs")]
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of the endpoint's answer.
    #[serde(with = "secs")]
    pub read_timeout: Duration,
    /// Extra attempts after the first: connect failures always, other failures only for
    /// idempotent requests whose body was not streamed.
    pub retries: u32,
}

impl Default for UpstreamPolicy {
    fn default() -> Self {
        UpstreamPolicy {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            retries: 2,
        }
    }
}

/// The balancing algorithm of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Algorithm {
    /// Smooth weighted round-robin (interleaving, not blocks).
    #[default]
    RoundRobin,
    /// Power of two choices over in-flight requests, weight-aware.
    LeastRequest,
    /// Maglev consistent hashing on a request key; requests without the key use round-robin.
    ConsistentHash {
        /// What the key is taken from.
        key: HashKey,
        /// Bounded load in percent of the mean in-flight count (e.g. 125); `None` = unbounded.
        balance_factor: Option<u32>,
    },
    /// Uniformly random, weight-aware.
    Random,
}

/// Where a consistent-hash key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "name")]
pub enum HashKey {
    /// A request header (name lower-case).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// The client's IP address.
    SourceIp,
    /// The request path (without query).
    Path,
    /// A query-string parameter.
    Query(String),
}

/// Stickiness of clients to endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Affinity {
    /// pier sets a cookie naming the endpoint and honours it while that endpoint is routable.
    Cookie {
        /// Cookie name (default `pier-affinity`).
        name: String,
        /// `Max-Age` of the cookie in seconds; a session cookie when `None`.
        max_age: Option<u64>,
    },
    /// The same client IP goes to the same endpoint for `timeout` after its last request
    /// (Service `sessionAffinity: ClientIP`).
    ClientIp {
        /// Idle time after which the binding is forgotten.
        #[serde(with = "secs")]
        timeout: Duration,
    },
}

/// A second backend that takes a share of a route's traffic, or the requests that ask for it
/// (the `canary` annotations). Precedence: header, then cookie, then weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Canary {
    /// The canary Service.
    pub backend: super::ServiceBackend,
    /// Share of traffic, out of `weight_total`, that goes to the canary when no header or
    /// cookie rule decides. 0 sends nothing.
    pub weight: u32,
    /// Denominator of `weight` (default 100).
    pub weight_total: u32,
    /// Header rule: a request with this header goes to the canary when the value matches.
    pub by_header: Option<HeaderRule>,
    /// Cookie rule: cookie value `always` → canary, `never` → primary.
    pub by_cookie: Option<String>,
}

/// How a canary header is matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderRule {
    /// Header name, lower-case.
    pub name: String,
    /// The exact value that selects the canary; when `None`, `always` selects it and `never`
    /// excludes it.
    pub value: Option<String>,
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}
