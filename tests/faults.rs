//! Broker, cache and database faults under load (issue 6, item 2). Each
//! test stops and starts a private instance of the service it breaks
//! (its own RabbitMQ node, Redis server or PostgreSQL cluster on free
//! ports), so the shared services the other tests use are never touched.

mod broker;
mod cache;
mod database;
mod load;
pub(crate) mod services;
