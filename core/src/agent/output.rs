//! What the Agent asks its driver to do: the outputs, their queue (drained in one documented
//! order by [`Agent::poll_output`](crate::Agent::poll_output)), and the [`Io`] a driver
//! executes them with in the one [`drain`](crate::drain) loop the runtime, the simulation and
//! the tests share (the loop itself is in `machine`, with the Agent).

use super::limits::{
    IN_FLIGHT_MAX, NOTIFICATIONS_MAX, PLACE_QUEUE_MAX, REQUESTS_MAX, REQUEST_RETRIES_MAX,
};
use crate::actor::{ActorId, Placement};
use crate::effect::Effect;
use crate::node::{NodeId, NodeSet};
use crate::proposal::{Proposal, ProposalError, ProposalId};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use thiserror::Error;

/// A proposal to run, with the token its outcome must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Identifies the outcome ([`Agent::handle_outcome`](crate::Agent::handle_outcome)).
    pub token: u64,
    /// The proposal.
    pub proposal: Proposal,
}

/// A local decision, to execute at once and in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Stop serving everything and stop acting as primary.
    Fence,
    /// Serving may resume.
    Unfence,
    /// Start serving `actor` under `epoch`.
    Activate {
        /// The actor.
        actor: ActorId,
        /// The registry epoch of this activation.
        epoch: u64,
    },
    /// Stop serving `actor` (activation `epoch`).
    Deactivate {
        /// The actor.
        actor: ActorId,
        /// The epoch of the ended activation.
        epoch: u64,
    },
}

/// Why a node fenced itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FenceReason {
    /// No heartbeat committed for `lease_ms`.
    LeaseExpired,
    /// No snapshot could be read for `lease_ms`.
    RegistryUnreachable,
    /// The registry declared this node failed.
    DeclaredFailed,
    /// Another incarnation holds this node's slot.
    Superseded,
    /// The clock watchdog saw the node's clocks disagree or jump
    /// ([`Agent::handle_clock`](crate::Agent::handle_clock)).
    ClockSuspect(ClockFault),
}

/// What the clock watchdog saw ([`Agent::handle_clock`](crate::Agent::handle_clock)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClockFault {
    /// Over one measurement window the primary clock and the reference advanced by amounts that
    /// differ beyond the rate bound plus the reading slack.
    Rate {
        /// How far the primary clock advanced (ms).
        primary_ms: u64,
        /// How far the reference clock advanced (ms).
        reference_ms: u64,
    },
    /// The wall clock was stepped: it advanced (or went back: negative) by an amount the
    /// primary clock does not match.
    WallStep {
        /// How far the primary clock advanced (ms).
        primary_ms: u64,
        /// How far the wall clock moved (ms).
        wall_ms: i64,
    },
    /// Two consecutive readings are further apart than the Agent's timers allow.
    Gap {
        /// The gap, by the monotonic clock that shows the larger one (ms).
        gap_ms: u64,
    },
    /// A monotonic clock went back.
    Backwards,
}

/// What the application is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notification {
    /// This node became Active.
    Joined {
        /// Its view.
        view: NodeSet,
    },
    /// This node completed its leave (it is Left).
    Left,
    /// This node became the primary.
    BecamePrimary {
        /// Its fencing term.
        term: u64,
    },
    /// This node is no longer primary.
    SteppedDown {
        /// The term it held.
        term: u64,
    },
    /// This node's view changed.
    ViewChanged {
        /// The members.
        view: NodeSet,
        /// The view's number.
        view_number: u64,
    },
    /// A node was declared failed (possibly this one).
    NodeFailed {
        /// The node.
        node: NodeId,
    },
    /// This node stopped serving everything.
    Fenced {
        /// Why.
        reason: FenceReason,
    },
    /// This node may serve again.
    Unfenced,
    /// This node started serving an actor.
    ActorActivated {
        /// The actor.
        actor: ActorId,
        /// Its epoch.
        epoch: u64,
    },
    /// This node stopped serving an actor.
    ActorDeactivated {
        /// The actor.
        actor: ActorId,
        /// The ended activation's epoch.
        epoch: u64,
    },
    /// A proposal of this node was refused or given up (for people and logs).
    ProposalFailed {
        /// The action.
        action: String,
        /// Why.
        reason: String,
    },
}

/// Why a proposal the application submitted ([`Agent::submit`](crate::Agent::submit)) did not
/// commit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The store refused it (nothing was written).
    #[error("refused: {0}")]
    Refused(ProposalError),
    /// The store did not answer (nothing was written).
    #[error("the store is unavailable")]
    Unavailable,
    /// The store did not say whether it committed, after every retry.
    #[error("the outcome is unknown after {REQUEST_RETRIES_MAX} retries")]
    Unknown,
}

/// A proposal the application submitted was refused before it was sent: [`REQUESTS_MAX`]
/// requests are already waiting for their outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{REQUESTS_MAX} requests are already waiting")]
pub struct TooManyRequests;

/// A place request ([`Agent::place`](crate::Agent::place)) was refused before it was queued:
/// [`PLACE_QUEUE_MAX`] requests are already waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{PLACE_QUEUE_MAX} place requests are already waiting")]
pub struct PlaceQueueFull;

/// One thing the Agent asks its driver to do, from
/// [`Agent::poll_output`](crate::Agent::poll_output).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[allow(
    clippy::large_enum_variant,
    reason = "a proposal (with an inline placement batch) is Copy; outputs are drained at once"
)]
pub enum Output {
    /// Run this proposal as one store transaction; its outcome goes to
    /// [`Agent::handle_outcome`](crate::Agent::handle_outcome) with the token.
    Propose(Outgoing),
    /// Probe this peer; the result goes to [`Agent::handle_probe`](crate::Agent::handle_probe).
    Probe(NodeId),
    /// Read a fresh snapshot (answered with
    /// [`Agent::handle_snapshot`](crate::Agent::handle_snapshot)).
    Read,
    /// Execute this local decision at once.
    Decide(Decision),
    /// Tell the application.
    Notify(Notification),
    /// The final result of the request [`Agent::submit`](crate::Agent::submit) answered with `id`.
    Reply {
        /// The request (its proposal's id).
        id: ProposalId,
        /// The effects once committed, or why not.
        result: Result<Vec<Effect>, RequestError>,
    },
    /// The final result of the oldest unanswered place request
    /// ([`Agent::place`](crate::Agent::place)) for `actor`: where the registry placed it, or
    /// why not. A refused request is dropped: it is never placed later.
    Placed {
        /// The actor.
        actor: ActorId,
        /// Its placement once committed, or why it was not placed.
        result: Result<Placement, RequestError>,
    },
}

/// What a driver does with each [`Output`] ([`drain`](crate::drain) calls it in the documented
/// order).
pub trait Io {
    /// Runs `out.proposal` as one store transaction; its outcome goes to
    /// [`Agent::handle_outcome`](crate::Agent::handle_outcome) with `out.token`.
    fn propose(&mut self, out: Outgoing);
    /// Probes `peer`; the result goes to [`Agent::handle_probe`](crate::Agent::handle_probe).
    fn probe(&mut self, peer: NodeId);
    /// Reads a fresh snapshot; it goes to
    /// [`Agent::handle_snapshot`](crate::Agent::handle_snapshot).
    fn read(&mut self);
    /// Executes a local decision at once.
    fn decide(&mut self, decision: Decision);
    /// Tells the application.
    fn notify(&mut self, notification: Notification);
    /// Hands the application the final result of its request `id`.
    fn reply(&mut self, id: ProposalId, result: Result<Vec<Effect>, RequestError>);
    /// Hands the application the final result of its place request for `actor`.
    fn placed(&mut self, actor: ActorId, result: Result<Placement, RequestError>);
}

/// Records the outputs in order, for a driver that executes them afterwards (the simulation,
/// whose world also holds the Agent) and for tests.
impl Io for Vec<Output> {
    fn propose(&mut self, out: Outgoing) {
        self.push(Output::Propose(out));
    }
    fn probe(&mut self, peer: NodeId) {
        self.push(Output::Probe(peer));
    }
    fn read(&mut self) {
        self.push(Output::Read);
    }
    fn decide(&mut self, decision: Decision) {
        self.push(Output::Decide(decision));
    }
    fn notify(&mut self, notification: Notification) {
        self.push(Output::Notify(notification));
    }
    fn reply(&mut self, id: ProposalId, result: Result<Vec<Effect>, RequestError>) {
        self.push(Output::Reply { id, result });
    }
    fn placed(&mut self, actor: ActorId, result: Result<Placement, RequestError>) {
        self.push(Output::Placed { actor, result });
    }
}

/// The Agent's output queues. [`Outputs::pop`] empties them in the documented order: every
/// proposal, then every probe, the read, every decision, every notification, every reply, every
/// place result.
#[derive(Clone, Debug, Default)]
pub(super) struct Outputs {
    proposals: VecDeque<Outgoing>,
    probes: VecDeque<NodeId>,
    read: bool,
    decisions: VecDeque<Decision>,
    pub(super) notifications: VecDeque<Notification>,
    replies: VecDeque<(ProposalId, Result<Vec<Effect>, RequestError>)>,
    placed: VecDeque<(ActorId, Result<Placement, RequestError>)>,
}

impl Outputs {
    /// Queues a proposal to run.
    pub(super) fn propose(&mut self, out: Outgoing) {
        self.proposals.push_back(out);
        debug_assert!(self.proposals.len() <= IN_FLIGHT_MAX + REQUESTS_MAX);
    }

    /// Queues a probe of `peer`.
    pub(super) fn probe(&mut self, peer: NodeId) {
        self.probes.push_back(peer);
    }

    /// Asks for a snapshot read (once, however often asked before it is polled).
    pub(super) fn read(&mut self) {
        self.read = true;
    }

    /// Queues a local decision (never dropped: bounded by the actors placed on the node).
    pub(super) fn decide(&mut self, decision: Decision) {
        self.decisions.push_back(decision);
    }

    /// Queues a notification; the oldest is dropped beyond [`NOTIFICATIONS_MAX`].
    pub(super) fn notify(&mut self, n: Notification) {
        if self.notifications.len() >= NOTIFICATIONS_MAX {
            self.notifications.pop_front();
        }
        self.notifications.push_back(n);
        debug_assert!(self.notifications.len() <= NOTIFICATIONS_MAX);
    }

    /// Queues the final result of request `id`.
    pub(super) fn reply(&mut self, id: ProposalId, result: Result<Vec<Effect>, RequestError>) {
        self.replies.push_back((id, result));
        debug_assert!(self.replies.len() <= REQUESTS_MAX);
    }

    /// Queues the final result of a place request for `actor`.
    pub(super) fn placed(&mut self, actor: ActorId, result: Result<Placement, RequestError>) {
        self.placed.push_back((actor, result));
        debug_assert!(self.placed.len() <= PLACE_QUEUE_MAX);
    }

    /// Whether nothing is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.proposals.is_empty()
            && self.probes.is_empty()
            && !self.read
            && self.decisions.is_empty()
            && self.notifications.is_empty()
            && self.replies.is_empty()
            && self.placed.is_empty()
    }

    /// The next output in the documented order.
    pub(super) fn pop(&mut self) -> Option<Output> {
        if let Some(out) = self.proposals.pop_front() {
            return Some(Output::Propose(out));
        }
        if let Some(peer) = self.probes.pop_front() {
            return Some(Output::Probe(peer));
        }
        if std::mem::take(&mut self.read) {
            return Some(Output::Read);
        }
        if let Some(decision) = self.decisions.pop_front() {
            return Some(Output::Decide(decision));
        }
        if let Some(n) = self.notifications.pop_front() {
            return Some(Output::Notify(n));
        }
        if let Some((id, result)) = self.replies.pop_front() {
            debug_assert!(self.proposals.is_empty() && self.decisions.is_empty());
            return Some(Output::Reply { id, result });
        }
        let Some((actor, result)) = self.placed.pop_front() else {
            debug_assert!(self.is_empty());
            return None;
        };
        debug_assert!(self.proposals.is_empty() && self.replies.is_empty());
        Some(Output::Placed { actor, result })
    }
}
