//! The Agent's internal records: the latest snapshot ([`Observed`]), the proposals in flight
//! ([`InFlight`], by [`Kind`]), the application's requests ([`Request`]) and what the node knows
//! about its probes of each peer ([`Peer`]). Plain data and their pure helpers; the behaviour
//! that updates them lives in the `impl Agent` modules.

use crate::event::Event;
use crate::node::NodeId;
use crate::proposal::{Action, Proposal};
use crate::state::State;

/// The latest snapshot and when it was asked for.
#[derive(Clone, Debug)]
pub(super) struct Observed {
    pub(super) state: State,
    pub(super) round: u64,
    pub(super) read_at_ms: u64,
}

/// What kind of proposal: at most one of each kind is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kind {
    Membership,
    Heartbeat,
    Reset,
    Partition(NodeId),
    Detect(NodeId),
    Fail(NodeId),
    Elect,
    StepDown,
    Sync,
    Migrate,
    Place,
}

impl Kind {
    pub(super) fn of(action: &Action) -> Kind {
        match *action {
            Action::MigrateBatch { .. } => Kind::Migrate,
            Action::Step(event) => match event {
                Event::NodeJoin { .. }
                | Event::NodeJoinComplete { .. }
                | Event::NodeLeave { .. }
                | Event::NodeLeaveComplete { .. }
                | Event::NodeRecover { .. } => Kind::Membership,
                Event::SendHeartbeat { .. } => Kind::Heartbeat,
                Event::ResetHeartbeats => Kind::Reset,
                Event::CreatePartition { b, .. } | Event::HealPartition { b, .. } => {
                    Kind::Partition(b)
                }
                Event::DetectFailure { target, .. } => Kind::Detect(target),
                Event::MarkNodeFailed { node } => Kind::Fail(node),
                Event::ElectPrimary { .. } => Kind::Elect,
                Event::PrimaryStepDown { .. } => Kind::StepDown,
                Event::SyncViews { .. } => Kind::Sync,
                Event::PlaceActor { .. } | Event::RemoveActor { .. } => Kind::Place,
                Event::MigrateActor { .. } | Event::RebalanceActors { .. } => Kind::Migrate,
            },
        }
    }
}

/// A proposal of the policy waiting for its outcome.
#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) proposal: Proposal,
    pub(super) kind: Kind,
    pub(super) sent_ms: u64,
    /// When the latest attempt was sent (the first, or a retry): the abandon deadline counts
    /// from it.
    pub(super) attempt_sent_ms: u64,
    pub(super) attempts: u32,
    /// Retry due at (set while waiting to send again).
    pub(super) retry_at_ms: Option<u64>,
}

/// A proposal the application submitted, waiting for its final outcome.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub(super) proposal: Proposal,
    /// How many times it was sent again after an unknown outcome.
    pub(super) attempts: u32,
}

/// What this node knows about its probes of one peer.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Peer {
    pub(super) probing: bool,
    pub(super) failing_since_ms: Option<u64>,
    pub(super) ok_since_ms: Option<u64>,
    /// Consecutive probes with the same result (failed while `failing_since_ms` is set,
    /// answered while `ok_since_ms` is).
    pub(super) streak: u32,
}

impl Peer {
    /// Since when (local ms) the probes have agreed, failing or answering, if any result came.
    pub(super) fn agreeing_since_ms(&self) -> Option<u64> {
        self.failing_since_ms.or(self.ok_since_ms)
    }
}
