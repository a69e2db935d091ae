//! The spec's actions as data: one [`Event`] variant per TLA+ action, with the spec's names.

use crate::actor::ActorId;
use crate::node::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One spec action with its parameters. The variant names are the TLA+ action names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// `NodeJoin(n)`.
    NodeJoin {
        /// `n`.
        node: NodeId,
    },
    /// `NodeJoinComplete(n)`.
    NodeJoinComplete {
        /// `n`.
        node: NodeId,
    },
    /// `NodeLeave(n)`.
    NodeLeave {
        /// `n`.
        node: NodeId,
    },
    /// `NodeLeaveComplete(n)`.
    NodeLeaveComplete {
        /// `n`.
        node: NodeId,
    },
    /// `SendHeartbeat(n)`.
    SendHeartbeat {
        /// `n`.
        node: NodeId,
    },
    /// `DetectFailure(d, t)`.
    DetectFailure {
        /// `d`, the detector.
        detector: NodeId,
        /// `t`, the suspected target.
        target: NodeId,
    },
    /// `MarkNodeFailed(n)`.
    MarkNodeFailed {
        /// `n`.
        node: NodeId,
    },
    /// `NodeRecover(n)`.
    NodeRecover {
        /// `n`.
        node: NodeId,
    },
    /// `ElectPrimary(n)`.
    ElectPrimary {
        /// `n`.
        node: NodeId,
    },
    /// `PrimaryStepDown(n)`.
    PrimaryStepDown {
        /// `n`.
        node: NodeId,
    },
    /// `CreatePartition(a, b)`.
    CreatePartition {
        /// `a`.
        a: NodeId,
        /// `b`.
        b: NodeId,
    },
    /// `HealPartition(a, b)`.
    HealPartition {
        /// `a`.
        a: NodeId,
        /// `b`.
        b: NodeId,
    },
    /// `ResetHeartbeats`.
    ResetHeartbeats,
    /// `SyncViews(a, b)`.
    SyncViews {
        /// `a`.
        a: NodeId,
        /// `b`.
        b: NodeId,
    },
    /// `PlaceActor(a)`: place a new actor on an Active node chosen by the placement strategy.
    PlaceActor {
        /// The actor.
        actor: ActorId,
    },
    /// `MigrateActor(a, t)`: the primary holding term `t` moves a queued actor.
    MigrateActor {
        /// The actor.
        actor: ActorId,
        /// The proposer's term (fencing token).
        term: u64,
    },
    /// `RebalanceActors(t)`: the primary holding term `t` queues actors of overloaded nodes.
    RebalanceActors {
        /// The proposer's term (fencing token).
        term: u64,
    },
    /// `RemoveActor(a)`: the application is done with the actor.
    RemoveActor {
        /// The actor.
        actor: ActorId,
    },
}

/// The name of a spec action, without parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // each variant is the spec action of the same name
pub enum ActionName {
    NodeJoin,
    NodeJoinComplete,
    NodeLeave,
    NodeLeaveComplete,
    SendHeartbeat,
    DetectFailure,
    MarkNodeFailed,
    NodeRecover,
    ElectPrimary,
    PrimaryStepDown,
    CreatePartition,
    HealPartition,
    ResetHeartbeats,
    SyncViews,
    PlaceActor,
    MigrateActor,
    RebalanceActors,
    RemoveActor,
}

impl ActionName {
    /// Every action, in the spec's order.
    pub const ALL: [ActionName; 18] = [
        ActionName::NodeJoin,
        ActionName::NodeJoinComplete,
        ActionName::NodeLeave,
        ActionName::NodeLeaveComplete,
        ActionName::SendHeartbeat,
        ActionName::DetectFailure,
        ActionName::MarkNodeFailed,
        ActionName::NodeRecover,
        ActionName::ElectPrimary,
        ActionName::PrimaryStepDown,
        ActionName::CreatePartition,
        ActionName::HealPartition,
        ActionName::ResetHeartbeats,
        ActionName::SyncViews,
        ActionName::PlaceActor,
        ActionName::MigrateActor,
        ActionName::RebalanceActors,
        ActionName::RemoveActor,
    ];
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Event {
    /// The spec action this event is an instance of.
    pub fn name(&self) -> ActionName {
        match self {
            Event::NodeJoin { .. } => ActionName::NodeJoin,
            Event::NodeJoinComplete { .. } => ActionName::NodeJoinComplete,
            Event::NodeLeave { .. } => ActionName::NodeLeave,
            Event::NodeLeaveComplete { .. } => ActionName::NodeLeaveComplete,
            Event::SendHeartbeat { .. } => ActionName::SendHeartbeat,
            Event::DetectFailure { .. } => ActionName::DetectFailure,
            Event::MarkNodeFailed { .. } => ActionName::MarkNodeFailed,
            Event::NodeRecover { .. } => ActionName::NodeRecover,
            Event::ElectPrimary { .. } => ActionName::ElectPrimary,
            Event::PrimaryStepDown { .. } => ActionName::PrimaryStepDown,
            Event::CreatePartition { .. } => ActionName::CreatePartition,
            Event::HealPartition { .. } => ActionName::HealPartition,
            Event::ResetHeartbeats => ActionName::ResetHeartbeats,
            Event::SyncViews { .. } => ActionName::SyncViews,
            Event::PlaceActor { .. } => ActionName::PlaceActor,
            Event::MigrateActor { .. } => ActionName::MigrateActor,
            Event::RebalanceActors { .. } => ActionName::RebalanceActors,
            Event::RemoveActor { .. } => ActionName::RemoveActor,
        }
    }

    /// The nodes the event names, in parameter order (none for ResetHeartbeats and the actor
    /// actions).
    pub fn nodes(&self) -> Vec<NodeId> {
        match *self {
            Event::NodeJoin { node }
            | Event::NodeJoinComplete { node }
            | Event::NodeLeave { node }
            | Event::NodeLeaveComplete { node }
            | Event::SendHeartbeat { node }
            | Event::MarkNodeFailed { node }
            | Event::NodeRecover { node }
            | Event::ElectPrimary { node }
            | Event::PrimaryStepDown { node } => vec![node],
            Event::DetectFailure { detector, target } => vec![detector, target],
            Event::CreatePartition { a, b }
            | Event::HealPartition { a, b }
            | Event::SyncViews { a, b } => vec![a, b],
            Event::ResetHeartbeats
            | Event::PlaceActor { .. }
            | Event::MigrateActor { .. }
            | Event::RebalanceActors { .. }
            | Event::RemoveActor { .. } => Vec::new(),
        }
    }

    /// Every instance of the actor actions over `actors` and the terms `1..=max_term` (the
    /// membership actions are [`Event::all`]).
    pub fn actor_events(actors: &[ActorId], max_term: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for &actor in actors {
            events.push(Event::PlaceActor { actor });
            events.push(Event::RemoveActor { actor });
        }
        for term in 1..=max_term {
            for &actor in actors {
                events.push(Event::MigrateActor { actor, term });
            }
            events.push(Event::RebalanceActors { term });
        }
        events
    }

    /// Every instance of every action over nodes `n1..=n{node_count}` (pairs ordered `a < b`
    /// for the symmetric actions CreatePartition and HealPartition, `a <= b` for SyncViews, whose
    /// two orderings have the same effect). This is the spec's `Next` as a list.
    pub fn all(node_count: u16) -> Vec<Event> {
        let nodes: Vec<NodeId> = (1..=node_count).map(NodeId).collect();
        let mut events = Vec::new();
        for &node in &nodes {
            events.extend([
                Event::NodeJoin { node },
                Event::NodeJoinComplete { node },
                Event::NodeLeave { node },
                Event::NodeLeaveComplete { node },
                Event::SendHeartbeat { node },
            ]);
        }
        for &detector in &nodes {
            for &target in &nodes {
                if detector != target {
                    events.push(Event::DetectFailure { detector, target });
                }
            }
        }
        for &node in &nodes {
            events.extend([
                Event::MarkNodeFailed { node },
                Event::NodeRecover { node },
                Event::ElectPrimary { node },
                Event::PrimaryStepDown { node },
            ]);
        }
        for (i, &a) in nodes.iter().enumerate() {
            for &b in &nodes[i + 1..] {
                events.push(Event::CreatePartition { a, b });
                events.push(Event::HealPartition { a, b });
            }
        }
        events.push(Event::ResetHeartbeats);
        // SyncViews: `a <= b`. The reference modes' instances are `a < b`; the fixed protocol's
        // (registry v2: a node synchronises with the registry) are `SyncViews(n, n)`.
        for (i, &a) in nodes.iter().enumerate() {
            for &b in &nodes[i..] {
                events.push(Event::SyncViews { a, b });
            }
        }
        events
    }
}

/// Prints as the spec writes the action: `NodeJoinComplete(n3)`, `DetectFailure(n1, n3)`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match *self {
            Event::NodeJoin { node }
            | Event::NodeJoinComplete { node }
            | Event::NodeLeave { node }
            | Event::NodeLeaveComplete { node }
            | Event::SendHeartbeat { node }
            | Event::MarkNodeFailed { node }
            | Event::NodeRecover { node }
            | Event::ElectPrimary { node }
            | Event::PrimaryStepDown { node } => write!(f, "{name}({node})"),
            Event::DetectFailure { detector, target } => write!(f, "{name}({detector}, {target})"),
            Event::CreatePartition { a, b }
            | Event::HealPartition { a, b }
            | Event::SyncViews { a, b } => write!(f, "{name}({a}, {b})"),
            Event::ResetHeartbeats => write!(f, "{name}"),
            Event::PlaceActor { actor } | Event::RemoveActor { actor } => {
                write!(f, "{name}({actor})")
            }
            Event::MigrateActor { actor, term } => write!(f, "{name}({actor}, term {term})"),
            Event::RebalanceActors { term } => write!(f, "{name}(term {term})"),
        }
    }
}
