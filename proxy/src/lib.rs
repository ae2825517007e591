//! pier's data plane: the routing table model, the matcher, load balancing and the Pingora
//! proxy service. Nothing here knows about Kubernetes.

pub mod accepted;
pub mod access;
pub mod answer;
pub mod fast;
pub mod health;
mod ip_text;
pub mod lb;
pub mod listen;
pub mod metrics;
pub mod router;
pub mod server;
pub mod service;
mod shutdown;
pub mod state;
pub mod table;
pub mod tls;

pub use state::ProxyState;

/// A hash map for per-request lookups (hosts, paths, pooled connections): foldhash instead of
/// SipHash. Lookups take keys from requests, but the maps are built from the routing table (or
/// by pier itself), so a client cannot fill them with colliding keys.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
