//! What the outside world must do after a transition is durable.

use crate::actor::{ActorId, MigrationReason};
use crate::node::{NodeId, NodeSet, NodeStatus};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// The effects of one step, in order. Inline up to 4 (no allocation): most steps emit 0 to 3 (a
/// heartbeat none, a migration 2, a join or a view synchronisation one per node whose view
/// changes); a failure that queues many actors or a join into a large cluster spills to the heap.
pub type Effects = SmallVec<[Effect; EFFECTS_INLINE]>;

/// How many effects [`Effects`] holds without allocating.
pub const EFFECTS_INLINE: usize = 4;

/// Why a node stopped believing it is primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StepDownReason {
    /// It can no longer reach a majority (PrimaryStepDown).
    MajorityLost,
    /// It started leaving (NodeLeave).
    Leaving,
    /// It was declared failed (MarkNodeFailed).
    Failed,
    /// A newer term was granted to another node (fixed ElectPrimary).
    Superseded,
    /// A healed partition showed two primaries; this one yielded (HealPartition).
    PartitionHealed,
}

/// One instruction to the outside world, produced by a committed transition. Drivers execute
/// effects only after the transition is durable ("adopt after commit").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Effect {
    /// `node` moved from one lifecycle state to another.
    StatusChanged {
        /// The node.
        node: NodeId,
        /// Its previous state.
        from: NodeStatus,
        /// Its new state.
        to: NodeStatus,
    },
    /// `node` now holds view `view` with number `view_number`.
    ViewChanged {
        /// The node.
        node: NodeId,
        /// The members it now believes active.
        view: NodeSet,
        /// The view's number.
        view_number: u64,
    },
    /// `node` became primary with fencing term `term`.
    BecamePrimary {
        /// The node.
        node: NodeId,
        /// Its fencing term.
        term: u64,
    },
    /// `node` must stop acting as primary for `term`.
    SteppedDown {
        /// The node.
        node: NodeId,
        /// The term it held.
        term: u64,
        /// Why.
        reason: StepDownReason,
    },
    /// `node` was declared failed: it must stop serving everything at once.
    Fenced {
        /// The node.
        node: NodeId,
    },
    /// `node` must activate `actor` under `epoch`.
    ActorActivated {
        /// The actor.
        actor: ActorId,
        /// Where it now lives.
        node: NodeId,
        /// Its new activation epoch.
        epoch: u64,
    },
    /// `node` must deactivate `actor` (activation `epoch`), if it still serves it.
    ActorDeactivated {
        /// The actor.
        actor: ActorId,
        /// Where it lived.
        node: NodeId,
        /// The epoch of the ended activation.
        epoch: u64,
    },
    /// `actors` actors of `from` were queued for migration (one effect per node, not per actor:
    /// a node may hold very many).
    MigrationsQueued {
        /// The node they must leave.
        from: NodeId,
        /// Why.
        reason: MigrationReason,
        /// How many were queued.
        actors: u64,
    },
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::StatusChanged { node, from, to } => write!(f, "{node}: {from} -> {to}"),
            Effect::ViewChanged {
                node,
                view,
                view_number,
            } => write!(f, "{node}: view {view}#{view_number}"),
            Effect::BecamePrimary { node, term } => write!(f, "{node}: primary, term {term}"),
            Effect::SteppedDown { node, term, reason } => {
                write!(f, "{node}: steps down from term {term} ({reason:?})")
            }
            Effect::Fenced { node } => write!(f, "{node}: fenced"),
            Effect::ActorActivated { actor, node, epoch } => {
                write!(f, "{node}: activate {actor} (epoch {epoch})")
            }
            Effect::ActorDeactivated { actor, node, epoch } => {
                write!(f, "{node}: deactivate {actor} (epoch {epoch})")
            }
            Effect::MigrationsQueued {
                from,
                reason,
                actors,
            } => write!(f, "{from}: {actors} actors queued ({reason})"),
        }
    }
}
