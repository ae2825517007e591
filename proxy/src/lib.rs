//! pier's data plane: the routing table model, the matcher, load balancing and the Pingora
//! proxy service. Nothing here knows about Kubernetes.

pub mod answer;
pub mod h1;
pub mod health;
pub mod lb;
pub mod metrics;
pub mod router;
pub mod server;
pub mod service;
mod shutdown;
pub mod state;
pub mod table;
pub mod tls;

pub use state::ProxyState;
