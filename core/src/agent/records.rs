//! The Agent's internal records: the latest snapshot ([`Observed`]), the proposals in flight
//! ([`InFlight`], by [`Kind`]), the application's requests ([`Request`]) and what the node knows
//! about its probes of each peer ([`Peer`]). Plain data and their pure helpers; the behaviour
//! that updates them lives in the `impl Agent` modules.

use crate::event::Event;
use crate::node::{NodeId, NodeSet};
use crate::proposal::{Action, Proposal};
use crate::state::State;
use std::collections::VecDeque;

/// The heartbeat rounds a snapshot was read with (a store's metadata beside the registry):
/// the open round and the round each node's latest heartbeat names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rounds {
    /// The open round.
    pub round: u64,
    /// The round each node's latest heartbeat names (absent: none). A node whose heartbeat flag
    /// is set in the registry heartbeated in the open round, whatever this map says.
    pub heartbeat_rounds: imbl::OrdMap<NodeId, u64>,
}

impl From<u64> for Rounds {
    /// The open round alone: a node's latest heartbeat is known only from its flag.
    fn from(round: u64) -> Rounds {
        Rounds {
            round,
            heartbeat_rounds: imbl::OrdMap::new(),
        }
    }
}

/// The latest snapshot and when it was asked for.
#[derive(Clone, Debug)]
pub(super) struct Observed {
    pub(super) state: State,
    pub(super) round: u64,
    pub(super) heartbeat_rounds: imbl::OrdMap<NodeId, u64>,
    pub(super) read_at_ms: u64,
    /// The last silent set computed on this snapshot: (candidates, evidence round, the members
    /// among the candidates silent since it). Every input runs the policy, most of them on the
    /// same snapshot and evidence; the set is a function of those alone, so it is computed once
    /// per snapshot and evidence instead of once per input (a lookup per member: O(members)).
    pub(super) silent: Option<(NodeSet, Option<u64>, NodeSet)>,
}

impl Observed {
    /// The round `node`'s latest heartbeat names, as far as this snapshot says (`None`: none).
    pub(super) fn last_heartbeat(&self, node: NodeId) -> Option<u64> {
        if self.state.heartbeat_received(node) {
            return Some(self.round);
        }
        let last = self.heartbeat_rounds.get(&node).copied();
        debug_assert!(last.is_none_or(|r| r <= self.round));
        last
    }
}

/// The heartbeat rounds a node has seen open, oldest first, each with the local time it first
/// saw it: at most [`crate::agent::ROUNDS_SEEN_MAX`], increasing.
#[derive(Clone, Debug, Default)]
pub(super) struct RoundsSeen {
    seen: VecDeque<(u64, u64)>,
}

impl RoundsSeen {
    /// Notes that `round` is open at local time `now_ms` (first sight only). A round below the
    /// newest seen (a store that went back) forgets everything seen before.
    pub(super) fn note(&mut self, round: u64, now_ms: u64) {
        match self.seen.back() {
            Some(&(r, _)) if r == round => return,
            Some(&(r, _)) if r > round => self.seen.clear(),
            _ => {}
        }
        self.seen.push_back((round, now_ms));
        while self.seen.len() > crate::agent::ROUNDS_SEEN_MAX {
            self.seen.pop_front();
        }
        debug_assert!(self.seen.back() == Some(&(round, now_ms)));
        debug_assert!(self.seen.len() <= crate::agent::ROUNDS_SEEN_MAX);
    }

    /// Forgets the rounds older than the newest one seen open `ripe_ms` ago (they prove no more
    /// than it does).
    pub(super) fn prune(&mut self, now_ms: u64, ripe_ms: u64) {
        while self
            .seen
            .get(1)
            .is_some_and(|&(_, seen)| now_ms.saturating_sub(seen) >= ripe_ms)
        {
            self.seen.pop_front();
        }
        debug_assert!(self.seen.len() <= crate::agent::ROUNDS_SEEN_MAX);
    }

    /// When this node first saw `round` open (`None`: it has not, or forgot).
    pub(super) fn seen_ms(&self, round: u64) -> Option<u64> {
        self.seen
            .iter()
            .rev()
            .find(|&&(r, _)| r == round)
            .map(|&(_, seen)| seen)
    }

    /// The newest round this node saw open at least `ripe_ms` ago.
    pub(super) fn ripe(&self, now_ms: u64, ripe_ms: u64) -> Option<u64> {
        self.seen
            .iter()
            .rev()
            .find(|&&(_, seen)| now_ms.saturating_sub(seen) >= ripe_ms)
            .map(|&(r, _)| r)
    }

    /// The local times the rounds were first seen.
    pub(super) fn times(&self) -> impl Iterator<Item = u64> + '_ {
        self.seen.iter().map(|&(_, seen)| seen)
    }

    /// Whether any round was seen.
    pub(super) fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
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
            Action::PlaceBatch { .. } => Kind::Place,
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

/// What the serving rules' last pass ran on: whether the node was fenced, its status, the
/// snapshot's placements, and the actors (with their epochs) it wanted served.
#[derive(Clone, Debug)]
pub(super) struct Reconciled {
    pub(super) fenced: bool,
    pub(super) status: Option<crate::node::NodeStatus>,
    pub(super) placements: imbl::OrdMap<crate::actor::ActorId, crate::actor::Placement>,
    pub(super) desired: std::collections::BTreeMap<crate::actor::ActorId, u64>,
}
