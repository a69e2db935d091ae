//! Why the reducer refused an event: the guard that failed, as data.

use crate::actor::ActorId;
use crate::event::ActionName;
use crate::node::{NodeId, NodeSet, NodeStatus};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// Which counter a bound or overflow refusal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Counter {
    /// A view number.
    ViewNumber,
    /// A primary term.
    Term,
    /// An actor activation epoch.
    Epoch,
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Counter::ViewNumber => "view number",
            Counter::Term => "term",
            Counter::Epoch => "epoch",
        })
    }
}

/// A failed guard.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Error)]
pub enum Guard {
    /// The event names a node the configuration does not have.
    #[error("{node} is not a node of this cluster")]
    UnknownNode {
        /// The unknown id.
        node: NodeId,
    },
    /// The event needs two different nodes.
    #[error("{node} and {node} are the same node")]
    SameNode {
        /// The node named twice.
        node: NodeId,
    },
    /// A node is in the wrong lifecycle state.
    #[error("{node} is {actual}, not {expected}")]
    Status {
        /// The node.
        node: NodeId,
        /// The state the guard needs.
        expected: NodeStatus,
        /// The state it is in.
        actual: NodeStatus,
    },
    /// A joining node can reach no Active node.
    #[error("{node} can communicate with no Active node")]
    NoReachableActivePeer {
        /// The joining node.
        node: NodeId,
    },
    /// The detector does not have the target in its view.
    #[error("{target} is not in {detector}'s view")]
    NotInView {
        /// The detector.
        detector: NodeId,
        /// The target.
        target: NodeId,
    },
    /// The two nodes can communicate, so no failure can be detected.
    #[error("{a} can communicate with {b}")]
    CanCommunicate {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
    },
    /// The two nodes cannot communicate.
    #[error("{a} cannot communicate with {b}")]
    CannotCommunicate {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
    },
    /// The target's heartbeat was received in this interval.
    #[error("{node}'s heartbeat was received")]
    HeartbeatReceived {
        /// The target.
        node: NodeId,
    },
    /// No Active node has detected the node as failed.
    #[error("no Active node has detected {node} as failed")]
    Undetected {
        /// The node.
        node: NodeId,
    },
    /// The detector has already recorded a detection of the target (fixed protocol: one vote
    /// per detector).
    #[error("{detector} has already recorded a detection of {target}")]
    AlreadyDetected {
        /// The detector.
        detector: NodeId,
        /// The target.
        target: NodeId,
    },
    /// Fixed protocol: the node still heartbeats, and the recorded detections of the node by
    /// Active peers that cannot reach it (its votes, this round) are not a majority of the
    /// members.
    #[error(
        "{node} still heartbeats and has {} by peers that cannot reach it ({}); a majority of {count} members needs {needed}",
        detections(.votes.len()),
        members(.votes),
        count = .member_count
    )]
    NoFailureQuorum {
        /// The node to be declared failed.
        node: NodeId,
        /// The Active peers that recorded a detection of it and cannot reach it.
        votes: NodeSet,
        /// The votes a declaration needs: a strict majority of `members`.
        needed: u16,
        /// The number of members a majority is counted over (`QuorumSize`: the Active nodes).
        member_count: u16,
    },
    /// The node already believes it is primary.
    #[error("{node} already believes it is primary")]
    AlreadyPrimary {
        /// The node.
        node: NodeId,
    },
    /// The node does not believe it is primary.
    #[error("{node} does not believe it is primary")]
    NotPrimary {
        /// The node.
        node: NodeId,
    },
    /// The node cannot reach a majority of the members.
    #[error("{node} reaches {reachable} of {member_count} members, not a majority")]
    NoMajority {
        /// The node.
        node: NodeId,
        /// Active nodes it can reach (itself included).
        reachable: u16,
        /// The number of members a majority is counted over (`QuorumSize`).
        member_count: u16,
    },
    /// The node still reaches a majority.
    #[error("{node} still reaches a majority")]
    HasMajority {
        /// The node.
        node: NodeId,
    },
    /// Some node already has a valid primary claim.
    #[error("{primary} has a valid primary claim")]
    ValidPrimaryExists {
        /// The valid primary.
        primary: NodeId,
    },
    /// The pair is already partitioned.
    #[error("{a} and {b} are already partitioned")]
    AlreadyPartitioned {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
    },
    /// The pair is not partitioned.
    #[error("{a} and {b} are not partitioned")]
    NotPartitioned {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
    },
    /// The node committed no heartbeat in this round: it is declared failed on the registry's
    /// own evidence, so no vote against it is cast (registry v2).
    #[error("{node} committed no heartbeat this round: it is declared on the registry's evidence, without votes")]
    Silent {
        /// The silent node.
        node: NodeId,
    },
    /// In the fixed protocol a node synchronises with the registry's configuration, not with a
    /// peer: SyncViews names one node twice (`SyncViews(n, n)`).
    #[error("{a} synchronises with the registry, not with {b}: SyncViews({a}, {a})")]
    PeerSync {
        /// The node that would synchronise.
        a: NodeId,
        /// The peer named instead of itself.
        b: NodeId,
    },
    /// The node has adopted the current configuration already: nothing to synchronise.
    #[error("{node} has adopted the current configuration {view_number} already")]
    Synced {
        /// The node.
        node: NodeId,
        /// The current configuration number.
        view_number: u64,
    },
    /// Both nodes have the same view number: nothing to synchronise.
    #[error("{a} and {b} both have view number {view_number}")]
    SameViewNumber {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
        /// Their common number.
        view_number: u64,
    },
    /// The actor is already placed.
    #[error("{actor} is already placed on {node}")]
    AlreadyPlaced {
        /// The actor.
        actor: ActorId,
        /// Its node.
        node: NodeId,
    },
    /// The actor is not placed.
    #[error("{actor} is not placed")]
    NotPlaced {
        /// The actor.
        actor: ActorId,
    },
    /// The actor is not queued for migration.
    #[error("{actor} is not queued for migration")]
    NotQueued {
        /// The actor.
        actor: ActorId,
    },
    /// The registry holds `actors_max` actors already.
    #[error("the registry holds its limit of {actors_max} actors")]
    RegistryFull {
        /// The limit.
        actors_max: u64,
    },
    /// No node can take the actor (no Active node, or only the one it must leave).
    #[error("no Active node can take {actor}")]
    NoTarget {
        /// The actor.
        actor: ActorId,
    },
    /// The presented term is not the registry's current term.
    #[error("term {term} is stale: the current term is {current}")]
    StaleTerm {
        /// The presented term.
        term: u64,
        /// The registry's term.
        current: u64,
    },
    /// Nobody holds the presented (current) term as a valid primary.
    #[error("no valid primary holds term {term}")]
    NoValidPrimary {
        /// The term.
        term: u64,
    },
    /// The node still holds actors.
    #[error("{node} still holds {actors} actors")]
    HoldsActors {
        /// The node.
        node: NodeId,
        /// How many.
        actors: u64,
    },
    /// No node is loaded above the balanced share.
    #[error("the load is balanced: no node holds more than {share} actors")]
    Balanced {
        /// The balanced share (the mean, rounded up).
        share: u64,
    },
    /// A counter would exceed the checking bound `MaxView`.
    #[error("{counter} {value} would exceed MaxView {bound}")]
    BoundReached {
        /// Which counter.
        counter: Counter,
        /// The value it would take.
        value: u64,
        /// The bound.
        bound: u64,
    },
    /// A counter would overflow u64 (never in practice; refused rather than wrapped).
    #[error("{counter} counter would overflow")]
    CounterOverflow {
        /// Which counter.
        counter: Counter,
    },
    /// The action is disabled by the checking configuration: PrimaryStepDown in buggy mode, the
    /// actor actions in the reference modes, or a mutant that removes the action. Never in the
    /// production protocol.
    #[error("disabled in this checking configuration (mode or mutant)")]
    Disabled,
}

/// "1 recorded detection", "2 recorded detections".
fn detections(count: u16) -> String {
    if count == 1 {
        "1 recorded detection".to_string()
    } else {
        format!("{count} recorded detections")
    }
}

/// The members of `set` separated by commas, without braces ("n1, n3").
fn members(set: &NodeSet) -> String {
    set.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reducer's refusal of an event: which action and which of its guards failed. Refusals are
/// values, never panics; a refused event leaves the state unchanged.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Error)]
#[error("{action}: {guard}")]
pub struct Refusal {
    /// The refused action.
    pub action: ActionName,
    /// The guard that failed.
    pub guard: Guard,
}
