//! Global rebalance (DESIGN §8): a [`RebalanceActor`] per generation `g<N>` on every target, with
//! a [`jogger::JoggerActor`] per mountpath that walks objects and sends the misplaced ones to
//! their new owner.

mod progress;

pub use progress::{RebalanceStatus, Stage, TargetRebStatus};
