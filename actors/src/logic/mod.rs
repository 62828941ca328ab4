//! Pure functions over `types`: placement, admission, generation and finalisation decisions,
//! election choice, progress and ETA math, the `show cluster` view, dry-run plans, name rules,
//! auth checks, metadata update rules and the shared formatter. No tokio, no sockets: each is
//! unit- or property-tested alone.

pub mod admission;
pub mod auth;
pub mod authn;
pub mod checks;
pub mod election;
pub mod format;
pub mod generation;
pub mod meta;
pub mod names;
pub mod oidc;
pub mod perm;
pub mod placement;
pub mod plan;
pub mod progress;
pub mod view;
