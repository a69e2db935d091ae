//! What the invariants are called and what a violation of one names.

use crate::node::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A state invariant of the spec: a predicate on one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StateInvariant {
    /// Every variable stays in its domain (as far as the types do not already ensure it).
    TypeOK,
    /// Two Active nodes that list each other with equal view numbers have equal views.
    MembershipConsistency,
    /// Active nodes have non-empty views; Joining, Left and Failed nodes have empty views.
    JoinAtomicity,
    /// A Left node is in no Active node's view.
    LeaveDetectionWeak,
    /// At most one node has a valid primary claim.
    NoSplitBrain,
    /// At most one node believes it is primary (project invariant; the fixed protocol demotes a
    /// superseded primary in the electing transition).
    AtMostOnePrimary,
    /// Every actor is placed on exactly one node, and that node is Active, or the actor is queued
    /// to leave it (from a Leaving node for any reason; from a Failed, Left or Joining node only
    /// because the node failed).
    SingleActivation,
    /// The migration queue holds at most one entry per placed actor, each naming the node the
    /// actor is placed on, and at most `actors_max` in all.
    MigrationQueueBounded,
}

/// A transition invariant of the spec (an action property `[][P]_vars`): a predicate on the
/// state before and the state after one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TransitionInvariant {
    /// The registry's term never decreases and every granted term is fresh.
    FencingTermMonotonic,
    /// A node becomes primary only with a majority (bootstrap of an empty cluster excepted).
    MinorityCannotElect,
    /// A node is declared Failed only when it committed no heartbeat in the round, or while an
    /// Active peer that recorded a detection of it cannot communicate with it.
    FailureRequiresDetection,
    /// A node is declared Failed only with evidence: it committed no heartbeat in the round, or
    /// a strict majority of the members are Active peers that recorded a detection of it this
    /// round and cannot communicate with it (so no minority, and no single degraded observer, can
    /// get a heartbeating node declared failed).
    FailureNeedsQuorum,
    /// The epoch counter never decreases, an actor's epoch never decreases, a move always gives
    /// a new (larger) epoch, and a new placement an epoch never issued before.
    EpochMonotonic,
    /// An actor moves from one node to another only while a valid primary holds the registry's
    /// current term.
    MigrationByPrimary,
    /// No step sets the heartbeat flags of two nodes: a heartbeat is the node's own (registry v2).
    OwnHeartbeat,
    /// A step that opens a new round leaves no recorded vote (registry v2).
    VotesExpireWithRound,
}

/// Either kind of invariant: what a [`Violation`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Invariant {
    /// A state invariant.
    State(StateInvariant),
    /// A transition invariant.
    Transition(TransitionInvariant),
}

impl StateInvariant {
    /// The state invariants, in the order they are checked.
    pub const ALL: [StateInvariant; 8] = [
        StateInvariant::TypeOK,
        StateInvariant::MembershipConsistency,
        StateInvariant::JoinAtomicity,
        StateInvariant::LeaveDetectionWeak,
        StateInvariant::NoSplitBrain,
        StateInvariant::AtMostOnePrimary,
        StateInvariant::SingleActivation,
        StateInvariant::MigrationQueueBounded,
    ];

    /// The spec's name for the property.
    pub fn name(self) -> &'static str {
        match self {
            StateInvariant::TypeOK => "TypeOK",
            StateInvariant::MembershipConsistency => "MembershipConsistency",
            StateInvariant::JoinAtomicity => "JoinAtomicity",
            StateInvariant::LeaveDetectionWeak => "LeaveDetectionWeak",
            StateInvariant::NoSplitBrain => "NoSplitBrain",
            StateInvariant::AtMostOnePrimary => "AtMostOnePrimary",
            StateInvariant::SingleActivation => "SingleActivation",
            StateInvariant::MigrationQueueBounded => "MigrationQueueBounded",
        }
    }
}

impl TransitionInvariant {
    /// The transition invariants, in the order they are checked.
    pub const ALL: [TransitionInvariant; 8] = [
        TransitionInvariant::FencingTermMonotonic,
        TransitionInvariant::MinorityCannotElect,
        TransitionInvariant::FailureRequiresDetection,
        TransitionInvariant::FailureNeedsQuorum,
        TransitionInvariant::EpochMonotonic,
        TransitionInvariant::MigrationByPrimary,
        TransitionInvariant::OwnHeartbeat,
        TransitionInvariant::VotesExpireWithRound,
    ];

    /// The spec's name for the property.
    pub fn name(self) -> &'static str {
        match self {
            TransitionInvariant::FencingTermMonotonic => "FencingTermMonotonic",
            TransitionInvariant::MinorityCannotElect => "MinorityCannotElect",
            TransitionInvariant::FailureRequiresDetection => "FailureRequiresDetection",
            TransitionInvariant::FailureNeedsQuorum => "FailureNeedsQuorum",
            TransitionInvariant::EpochMonotonic => "EpochMonotonic",
            TransitionInvariant::MigrationByPrimary => "MigrationByPrimary",
            TransitionInvariant::OwnHeartbeat => "OwnHeartbeat",
            TransitionInvariant::VotesExpireWithRound => "VotesExpireWithRound",
        }
    }
}

impl Invariant {
    /// The spec's name for the property.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::State(i) => i.name(),
            Invariant::Transition(i) => i.name(),
        }
    }
}

impl From<StateInvariant> for Invariant {
    fn from(i: StateInvariant) -> Self {
        Invariant::State(i)
    }
}

impl From<TransitionInvariant> for Invariant {
    fn from(i: TransitionInvariant) -> Self {
        Invariant::Transition(i)
    }
}

impl PartialEq<StateInvariant> for Invariant {
    fn eq(&self, other: &StateInvariant) -> bool {
        *self == Invariant::State(*other)
    }
}

impl PartialEq<TransitionInvariant> for Invariant {
    fn eq(&self, other: &TransitionInvariant) -> bool {
        *self == Invariant::Transition(*other)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for StateInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for TransitionInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A violated invariant: which one, for which nodes, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// The violated invariant.
    pub invariant: Invariant,
    /// The nodes involved, in id order.
    pub nodes: Vec<NodeId>,
    /// What was seen, for people.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

/// The [`Violation`] of `invariant` by `nodes` (sorted, without repeats), as an error.
pub(super) fn violation(
    invariant: impl Into<Invariant>,
    nodes: &[NodeId],
    detail: String,
) -> Result<(), Violation> {
    let mut nodes = nodes.to_vec();
    nodes.sort();
    nodes.dedup();
    Err(Violation {
        invariant: invariant.into(),
        nodes,
        detail,
    })
}
