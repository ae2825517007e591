//! Load balancing over the routable endpoints of one Service.

mod round_robin;

pub use round_robin::ServiceBalancer;
