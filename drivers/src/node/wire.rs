//! What a node's handle and its task send each other.

use super::api::{Error, Permit};
use super::metrics::Health;
use crate::store::{Snapshot, StoreError};
use membership_core::{ActorId, Effect, Event, NodeId, Placement, ProposalId, ProposalOutcome};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

/// Where a place request's final result goes.
pub(super) type PlaceReply = oneshot::Sender<Result<Placement, Error>>;

pub(super) enum Command {
    Join,
    Leave,
    Place(ActorId, u64, PlaceReply),
    /// Withdraws the place request with this ticket, if still queued (answers whether it was).
    CancelPlace(ActorId, u64, oneshot::Sender<bool>),
    /// Makes the node's task panic (tests of a node dying whole).
    #[cfg(feature = "testing")]
    Panic,
    Propose(Event, oneshot::Sender<Result<Vec<Effect>, Error>>),
    /// The permits of the given actors (every activated actor when `None`).
    Permits(Option<ActorId>, oneshot::Sender<BTreeMap<ActorId, Permit>>),
    /// What the node reports about itself now (the metrics endpoint's `/readyz` and scrapes).
    Health(oneshot::Sender<Health>),
}

pub(super) enum Message {
    /// A proposal's token, its id, and what the store said (or why it could not run).
    ProposalDone(u64, ProposalId, Result<ProposalOutcome, StoreError>),
    Probe(NodeId, u64, bool),
    /// A snapshot read asked for at the given local time (boxed: a snapshot is the largest
    /// message by far).
    Snapshot(u64, Result<Box<Snapshot>, StoreError>),
}

/// An application's proposal waiting for its result: where to send it, and the store error of
/// its latest attempt (reported as such rather than as unavailable).
pub(super) struct Pending {
    pub(super) reply: oneshot::Sender<Result<Vec<Effect>, Error>>,
    pub(super) store_error: Option<StoreError>,
}

pub(super) struct Shared {
    pub(super) snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    pub(super) serving: Mutex<BTreeMap<ActorId, u64>>,
    /// Why the node's task ended, once it has (published after its probe listener closed).
    pub(super) stopped: watch::Sender<Option<String>>,
}
