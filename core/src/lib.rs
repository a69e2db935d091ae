//! The membership protocol as one pure reducer.
//!
//! [`step()`] takes the whole cluster's [`State`] and one [`Event`] (one action of the project's
//! TLA+ spec, `core/spec/Membership.tla`) and returns the successor state with the [`Effect`]s the
//! outside world must execute once the transition is durable, or a [`Refusal`] naming the guard
//! that failed. The invariants are pure predicates in [`invariants`]. The same code runs in the
//! model checker, the drivers and the simulation.
//!
//! No I/O, no async, no clock, no randomness: everything that varies arrives as an [`Event`] or in
//! the [`Config`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod actor;
pub mod config;
pub mod effect;
pub mod event;
pub mod invariants;
pub mod node;
pub mod refusal;
pub mod state;
pub mod step;
pub mod symmetry;

pub use actor::{
    ActorId, Candidate, LeastLoaded, MigrationEntry, MigrationReason, Placement, PlacementStrategy,
    ACTORS_MAX, MIGRATION_BATCH_MAX, REBALANCE_BATCH_MAX,
};
pub use config::{Config, ConfigError, Mode, Mutant};
pub use effect::{Effect, StepDownReason};
pub use event::{ActionName, Event};
pub use invariants::{Invariant, Liveness, Violation};
pub use node::{NodeId, NodeSet, NodeStatus, NODES_MAX};
pub use refusal::{Counter, Guard, Refusal};
pub use state::{NodeRecord, State, StateError};
pub use step::{migrate_batch, step, step_with};
