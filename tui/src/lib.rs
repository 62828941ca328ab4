//! Shoal operator console (DESIGN §11): a ratatui TUI over the cluster's typed client.
//!
//! Elm-style: [`Model`] holds the latest cluster snapshot and the UI state, [`update`] applies
//! an [`Action`] and may return a [`Command`] for the cluster, [`view`] draws the model, and
//! [`keys::map_key`] turns key presses into actions. [`run`] wires them to a real terminal, a
//! background poller and the client. Everything but [`run`] is synchronous and pure, so it is
//! tested on ratatui's `TestBackend` without a cluster or a terminal.

pub mod events;
/// The shared formatter (sizes, durations, counts), the same as `nodectl`'s.
pub use shoal_actors::logic::format;
pub mod keys;
pub mod model;
mod runner;
pub mod update;
pub mod view;

pub use model::Model;
pub use runner::{ConsoleOptions, run};
pub use update::{Action, Command, update};
pub use view::view;
