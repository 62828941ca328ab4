//! The Shoal cluster library (DESIGN §1), in layers whose dependencies point one way, bottom to
//! top:
//!
//! - `types`: pure data that crosses a boundary (IDs, flags, the map and its companions,
//!   objects, lifecycle requests and plans, status views);
//! - `logic`: pure functions over it (placement, admission, generations, election choice,
//!   progress math, the `show cluster` view, plans, name rules, auth checks, formatting);
//! - `proto`: the wire (frames, messages with typed replies, the connection pool);
//! - `store`: files on disk (metadata files, object files, a target's local store);
//! - `client`: the typed client;
//! - `node`: the actors, and only they.
//!
//! `error` and `fault` (test-only hooks) sit below all of them.

pub mod client;
pub mod error;
pub mod fault;
pub mod logic;
pub mod node;
pub mod proto;
pub mod store;
pub mod types;

pub use error::{Error, Result};
