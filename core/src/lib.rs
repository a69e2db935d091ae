//! The membership protocol as one pure reducer.
//!
//! [`step()`] takes the whole cluster's registry ([`State`]) and one [`Event`] (one action of the
//! project's TLA+ spec, `core/spec/Membership.tla`) and returns the successor state with the
//! [`Effect`]s the outside world must execute once the transition is durable, or a [`Refusal`]
//! naming the guard that failed. The invariants are pure predicates in [`invariants`]. The same
//! code runs in the model checker, the drivers and the simulation.
//!
//! For the stores: every event declares its [`Footprint`] (the registry keys it reads and
//! writes), [`State::delta`] says what a step changed, and [`State::apply`] writes a [`Delta`]
//! back. A [`State`] serializes to the persisted registry format ([`RegistryFields`]) and decoding
//! validates it ([`RegistryError`]).
//!
//! No I/O, no async, no clock, no randomness: everything that varies arrives as an [`Event`] or in
//! the [`Config`].
//!
//! Features: `checking` adds the checker's switches (the reference and buggy modes, the mutant
//! catalogue, checking bounds, symmetry reduction) in the module `checking`; `testing` adds the scenario
//! kit in `testing`. Neither is part of a production build.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod actor;
mod agent;
mod batch;
#[cfg(feature = "checking")]
pub mod checking;
mod config;
mod delta;
mod effect;
mod event;
mod footprint;
pub mod invariants;
mod node;
mod proposal;
mod refusal;
mod registry;
mod rules;
mod state;
mod step;
#[cfg(feature = "checking")]
mod switches;
#[cfg(feature = "checking")]
mod symmetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use actor::{
    rendezvous, ActorId, Candidate, LeastLoaded, MigrationEntry, MigrationQueue, MigrationReason,
    Placement, PlacementStrategy, ACTORS_MAX, MIGRATION_BATCH_MAX, MIGRATION_QUEUE_MAX,
    REBALANCE_BATCH_MAX,
};
pub use agent::Rounds;
pub use agent::{
    drain, served_by, Agent, ClockFault, ClockReading, Decision, FenceReason, InputError, Io,
    Notification, Outgoing, Output, PlaceQueueFull, RequestError, ServingPermit, Timing,
    TimingError, TimingSettings, TooManyRequests, CLOCK_GAP_SLACK_MS, CLOCK_READING_SLACK_MS,
    DRAIN_OUTPUTS_MAX, IN_FLIGHT_MAX, LOCAL_TIME_MS_MAX, NOTIFICATIONS_MAX, PLACE_QUEUE_MAX,
    PROBES_PER_ROUND_MAX, PROBE_STREAK_MIN, REQUESTS_MAX, REQUEST_RETRIES_MAX, RETRIES_MAX,
    ROUNDS_SEEN_MAX, TIME_HEADROOM_MS, TIMING_MS_MAX,
};
pub use batch::migrate_batch;
pub use config::{Config, ConfigError};
pub use delta::{Delta, DeltaError};
pub use effect::{Effect, Effects, StepDownReason, EFFECTS_INLINE};
pub use event::{ActionName, Event};
pub use footprint::{fenced, footprint, Footprint, Key, Value};
pub use invariants::{Invariant, Liveness, StateInvariant, TransitionInvariant, Violation};
pub use node::{NodeId, NodeSet, NodeSetIter, NodeStatus, NODES_MAX, NODE_SET_INLINE_NODES};
pub use proposal::{
    execute, heartbeat_landed_closed, Action, ActorBatch, Applied, BatchError, Commit, Meta,
    MetaKey, Proposal, ProposalError, ProposalId, ProposalOutcome, Slot, ADDRESS_MAX_BYTES,
    PLACE_BATCH_MAX, PROPOSALS_REMEMBERED,
};
pub use refusal::{Counter, Guard, Refusal};
pub use registry::{RegistryError, RegistryFields, REGISTRY_FORMAT_VERSION};
pub use state::{NodeRecord, State};
pub use step::{enabled, step, step_with};
