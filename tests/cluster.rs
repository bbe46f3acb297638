//! The host as separate processes (issue 6, items 1 and 3): killed with
//! SIGKILL under load and started again, and two replicas side by side on
//! one set of services and one plugin registry.

mod crash;
pub(crate) mod host;
mod replicas;
