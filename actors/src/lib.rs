//! The Shoal cluster library: one module per concept of DESIGN.md.
//!
//! `smap` (cluster map, RMD, BMD), `placement` (HRW), `wire` (frames and messages), `node/` (the
//! node actor tree: listener, request handling, primary), `mountpath`, `rebalance/`, `lifecycle`,
//! `keepalive`, `election`, `auth`, `store` (persistence and object files), `client`, `config`,
//! `stats`.

pub mod auth;
pub mod client;
pub mod config;
pub mod election;
pub mod error;
pub mod fault;
pub mod keepalive;
pub mod lifecycle;
pub mod mountpath;
pub mod node;
pub mod placement;
pub mod rebalance;
pub mod smap;
pub mod stats;
pub mod store;
pub mod wire;

pub use error::{Error, Result};
