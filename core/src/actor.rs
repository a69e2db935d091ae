//! Actors: identities, placements, the migration queue's entries, and the placement strategy.

use crate::node::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The default limit on placed actors ([`crate::Config::actors_max`]). The migration queue holds
/// at most one entry per placed actor, so this also bounds the queue.
pub const ACTORS_MAX: u64 = 10_000_000;

/// The most actors one MigrateActor batch (one transaction) moves: see [`crate::migrate_batch`].
/// 4,096 moves encode to well under FoundationDB's recommended 1 MB per transaction (the
/// benchmark `actors` prints the encoded size).
pub const MIGRATION_BATCH_MAX: usize = 4_096;

/// The most actors one RebalanceActors event queues.
pub const REBALANCE_BATCH_MAX: usize = 1_024;

/// An actor's identity (the application's virtual-actor key, hashed or assigned to a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorId(pub u64);

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// Where an actor lives: its node and its activation epoch. Epochs come from one registry-wide
/// counter, so they only grow, and every activation (placement or move) has a fresh one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Placement {
    /// The node serving the actor.
    pub node: NodeId,
    /// The activation epoch (fencing token of this activation).
    pub epoch: u64,
}

/// Why an actor is queued for migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MigrationReason {
    /// Its node was declared failed.
    NodeFailed,
    /// Its node is leaving gracefully.
    NodeLeaving,
    /// The primary is spreading load.
    LoadBalancing,
}

impl fmt::Display for MigrationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One entry of the [`MigrationQueue`] (the queue is keyed by actor: at most one entry each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MigrationEntry {
    /// The node the actor must leave.
    pub from: NodeId,
    /// Why.
    pub reason: MigrationReason,
}

/// The bound on the migration queue: one entry per placed actor, so at most the registry's
/// `actors_max` (whose default is [`ACTORS_MAX`]). MarkNodeFailed, NodeLeave and
/// RebalanceActors never queue an actor twice, and an entry leaves the queue when its actor is
/// moved or removed.
pub const MIGRATION_QUEUE_MAX: u64 = ACTORS_MAX;

/// The migration queue: the actors that must move, each with the node it must leave and why
/// (NodeFailed, NodeLeaving or LoadBalancing). At most one entry per actor and so at most
/// [`MIGRATION_QUEUE_MAX`] entries (the configured `actors_max`); drained by the primary in
/// batches of at most [`MIGRATION_BATCH_MAX`], lowest actor ids first.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MigrationQueue {
    entries: imbl::OrdMap<ActorId, MigrationEntry>,
}

impl MigrationQueue {
    pub(crate) fn from_entries(
        entries: impl IntoIterator<Item = (ActorId, MigrationEntry)>,
    ) -> Self {
        MigrationQueue {
            entries: entries.into_iter().collect(),
        }
    }

    /// The entry of `actor`, if it is queued.
    pub fn get(&self, actor: ActorId) -> Option<MigrationEntry> {
        self.entries.get(&actor).copied()
    }

    /// Whether `actor` is queued.
    pub fn contains(&self, actor: ActorId) -> bool {
        self.entries.contains_key(&actor)
    }

    /// The number of queued actors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in actor-id order (the order in which the primary drains them).
    pub fn iter(&self) -> impl Iterator<Item = (&ActorId, &MigrationEntry)> {
        self.entries.iter()
    }

    /// The entries of the actors in `range`, in actor-id order (a store's queue chunk).
    pub fn range(
        &self,
        range: std::ops::Range<ActorId>,
    ) -> impl Iterator<Item = (&ActorId, &MigrationEntry)> {
        self.entries.range(range)
    }

    /// The entries that differ from `other`'s, in actor-id order (skipping the parts the two
    /// queues share).
    pub fn diff<'a>(
        &'a self,
        other: &'a MigrationQueue,
    ) -> impl Iterator<Item = imbl::ordmap::DiffItem<'a, 'a, ActorId, MigrationEntry>> + 'a {
        self.entries.diff(&other.entries)
    }

    /// The queued actors in actor-id order.
    pub fn actors(&self) -> impl Iterator<Item = ActorId> + '_ {
        self.entries.keys().copied()
    }

    pub(crate) fn insert(&mut self, actor: ActorId, entry: MigrationEntry) {
        self.entries.insert(actor, entry);
    }

    pub(crate) fn remove(&mut self, actor: ActorId) -> Option<MigrationEntry> {
        self.entries.remove(&actor)
    }

    /// The queue with every source node renamed (symmetry reduction).
    #[cfg(feature = "checking")]
    pub(crate) fn renamed(&self, map: impl Fn(NodeId) -> NodeId) -> MigrationQueue {
        MigrationQueue {
            entries: self
                .entries
                .iter()
                .map(|(&a, e)| {
                    (
                        a,
                        MigrationEntry {
                            from: map(e.from),
                            ..*e
                        },
                    )
                })
                .collect(),
        }
    }
}

/// A node the strategy may choose, with its current load (actors placed on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Candidate {
    /// The node (always Active).
    pub node: NodeId,
    /// Actors currently placed on it.
    pub load: u64,
}

/// Chooses the node for an actor. Implementations must be pure and deterministic: the same
/// actor and candidates give the same answer, and the answer is one of the candidates (`None`
/// only when there are none). The reducer passes only Active nodes, so a strategy can never
/// place an actor on a node that is not Active.
pub trait PlacementStrategy {
    /// The chosen node among `candidates` (in node-id order), or `None` if it is empty.
    fn choose(&self, actor: ActorId, candidates: &[Candidate]) -> Option<NodeId>;
}

/// The default strategy: the least-loaded candidate; among equally loaded ones, the one with the
/// highest rendezvous hash of (actor, node), so ties spread actors evenly and stably.
///
/// Bound: placing actors one at a time with this strategy onto a fixed set of Active nodes keeps
/// every node's load within 1 of every other's (so within 1 of the mean).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeastLoaded;

impl PlacementStrategy for LeastLoaded {
    fn choose(&self, actor: ActorId, candidates: &[Candidate]) -> Option<NodeId> {
        let chosen = candidates
            .iter()
            .max_by_key(|c| (std::cmp::Reverse(c.load), rendezvous(actor, c.node)))
            .map(|c| c.node);
        debug_assert_eq!(chosen.is_none(), candidates.is_empty());
        debug_assert!(chosen.is_none_or(|n| candidates.iter().any(|c| c.node == n)));
        chosen
    }
}

/// A fixed 64-bit mix of (actor, node) (SplitMix64's finaliser): the same on every machine and
/// run, unlike the standard library's randomly seeded hasher.
pub fn rendezvous(actor: ActorId, node: NodeId) -> u64 {
    let mut z = actor
        .0
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(node.0));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        proptest::collection::btree_map(1u16..=128, 0u64..50, 0..20).prop_map(|m| {
            m.into_iter()
                .map(|(n, load)| Candidate {
                    node: NodeId(n),
                    load,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn chooses_a_least_loaded_candidate_deterministically(actor in any::<u64>(), cs in candidates()) {
            let chosen = LeastLoaded.choose(ActorId(actor), &cs);
            prop_assert_eq!(chosen.is_none(), cs.is_empty());
            if let Some(node) = chosen {
                let c = cs.iter().find(|c| c.node == node);
                prop_assert!(c.is_some(), "chose a node that is not a candidate");
                let min = cs.iter().map(|c| c.load).min().unwrap_or(0);
                prop_assert_eq!(c.map(|c| c.load), Some(min));
            }
            prop_assert_eq!(LeastLoaded.choose(ActorId(actor), &cs), chosen);
        }

        #[test]
        fn sequential_placement_stays_within_one_of_the_mean(nodes in 1usize..20, actors in 0u64..500) {
            let mut cs: Vec<Candidate> = (1..=nodes)
                .map(|n| Candidate { node: NodeId(u16::try_from(n).unwrap()), load: 0 })
                .collect();
            for a in 0..actors {
                let node = LeastLoaded.choose(ActorId(a), &cs).unwrap();
                cs.iter_mut().find(|c| c.node == node).unwrap().load += 1;
            }
            let max = cs.iter().map(|c| c.load).max().unwrap();
            let min = cs.iter().map(|c| c.load).min().unwrap();
            prop_assert!(max - min <= 1, "loads {:?}", cs);
            // Hence every load is within 1 of the mean.
            let mean = actors as f64 / nodes as f64;
            prop_assert!(cs.iter().all(|c| (c.load as f64 - mean).abs() <= 1.0));
        }
    }

    #[test]
    fn ties_are_broken_by_the_rendezvous_hash_not_by_id() {
        let cs: Vec<Candidate> = (1..=4)
            .map(|n| Candidate {
                node: NodeId(n),
                load: 0,
            })
            .collect();
        let chosen: std::collections::BTreeSet<NodeId> = (0..64)
            .filter_map(|a| LeastLoaded.choose(ActorId(a), &cs))
            .collect();
        assert_eq!(
            chosen.len(),
            4,
            "ties should spread over all nodes: {chosen:?}"
        );
        assert_eq!(
            rendezvous(ActorId(7), NodeId(3)),
            rendezvous(ActorId(7), NodeId(3))
        );
        assert_ne!(
            rendezvous(ActorId(7), NodeId(3)),
            rendezvous(ActorId(7), NodeId(4))
        );
    }
}
