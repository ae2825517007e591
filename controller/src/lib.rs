//! pier's control plane: sources fill a [`store::Store`], [`translate::translate`] turns it into
//! a routing table, [`apply::Controller`] publishes it to the proxy, and the binary wires it all.

/// The unit tests run with the allocator the `pier` binary ships with, so that the timings
/// the scale tests print are the ones a running controller sees.
#[cfg(all(test, not(target_env = "msvc")))]
#[global_allocator]
static TEST_ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod admin;
pub mod apply;
pub mod check;
pub mod cli;
pub mod demo;
pub mod diagnostic;
pub mod echo;
pub mod kube;
pub mod metrics;
pub mod run;
pub mod settings;
pub mod source;
pub mod store;
pub mod translate;
