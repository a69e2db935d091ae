//! The protocol state: the spec's variables for the whole cluster, and the spec's derived
//! notions (`active`, `can_communicate`, `has_majority`, `valid_primary`) as pure functions.

use crate::actor::{ActorId, MigrationEntry, MigrationReason, Placement};
use crate::config::{Config, Mode};
use crate::node::{NodeId, NodeSet, NodeStatus};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// One node's variables (the spec's `state[n]`, `view[n]`, `view_number[n]`,
/// `believes_primary[n]`, `term[n]`, `heartbeat_received[n]`) and its row of `partitioned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `state[n]`.
    pub status: NodeStatus,
    /// `view[n]`: the members `n` believes are active.
    pub view: NodeSet,
    /// `view_number[n]`.
    pub view_number: u64,
    /// `believes_primary[n]`.
    pub believes_primary: bool,
    /// `term[n]`: the primary term `n` holds (fixed protocol: 0 whenever it is not primary).
    pub term: u64,
    /// `heartbeat_received[n]`.
    pub heartbeat_received: bool,
    /// The nodes `m` with `<<n, m>> \in partitioned` (kept symmetric).
    pub partitioned_from: NodeSet,
    /// `detected[n]` (fixed protocol): the nodes `n` has detected as failed with DetectFailure
    /// and not seen again in a view since. Always empty in the reference modes, which keep no
    /// such record.
    pub detected: NodeSet,
}

impl NodeRecord {
    /// The initial record: Left, empty view, view number 0, no primary belief, term 0, no
    /// heartbeat, not partitioned.
    pub const INITIAL: NodeRecord = NodeRecord {
        status: NodeStatus::Left,
        view: NodeSet::EMPTY,
        view_number: 0,
        believes_primary: false,
        term: 0,
        heartbeat_received: false,
        partitioned_from: NodeSet::EMPTY,
        detected: NodeSet::EMPTY,
    };
}

/// The whole cluster's protocol state: the spec's variables plus, in the fixed protocol, the
/// registry-wide counters that make terms and view numbers unique, and the actors.
///
/// The actor tables are persistent ordered maps (structural sharing): cloning a state is O(nodes)
/// whatever the number of actors, and one actor's update costs O(log actors).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "StateFields", into = "StateFields")]
pub struct State {
    config: Config,
    nodes: Vec<NodeRecord>,
    term_counter: u64,
    view_counter: u64,
    epoch_counter: u64,
    placements: OrdMap<ActorId, Placement>,
    /// Index of `placements` by node (derived; rebuilt when decoding).
    hosted: OrdMap<NodeId, OrdSet<ActorId>>,
    queue: OrdMap<ActorId, MigrationEntry>,
}

/// The unvalidated fields of a [`State`], as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFields {
    /// See [`State::config`].
    pub config: Config,
    /// See [`State::nodes`].
    pub nodes: Vec<NodeRecord>,
    /// See [`State::term_counter`].
    pub term_counter: u64,
    /// See [`State::view_counter`].
    pub view_counter: u64,
    /// See [`State::epoch_counter`].
    #[serde(default)]
    pub epoch_counter: u64,
    /// See [`State::placements`].
    #[serde(default)]
    pub placements: BTreeMap<ActorId, Placement>,
    /// See [`State::queue`].
    #[serde(default)]
    pub queue: BTreeMap<ActorId, MigrationEntry>,
}

/// A stored state that cannot be a state of the protocol, naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StateError {
    /// The node table's length differs from the configured node count.
    #[error("state has {records} node records but the configuration has {node_count} nodes")]
    NodeTable {
        /// Records found.
        records: usize,
        /// Configured count.
        node_count: u16,
    },
    /// A node set names a node outside the configuration.
    #[error("{node}'s {field} names a node outside n1..=n{node_count}")]
    UnknownMember {
        /// The record holding the set.
        node: NodeId,
        /// Which set (`view` or `partitioned_from`).
        field: &'static str,
        /// Configured count.
        node_count: u16,
    },
    /// An actor is placed on a node outside the configuration.
    #[error("actor {actor} is placed on {node}, which is not a node of this cluster")]
    PlacementNode {
        /// The actor.
        actor: ActorId,
        /// The unknown node.
        node: NodeId,
    },
    /// A queue entry does not match the actor's placement.
    #[error("migration entry of {actor} says it leaves {from}, but it is not placed there")]
    QueueEntry {
        /// The actor.
        actor: ActorId,
        /// The entry's source node.
        from: NodeId,
    },
    /// More actors than the configuration allows.
    #[error("{actors} actors are placed but actors_max is {actors_max}")]
    TooManyActors {
        /// Actors found.
        actors: usize,
        /// The limit.
        actors_max: u64,
    },
    /// The partition relation is not symmetric or not irreflexive.
    #[error("partition between {a} and {b} is not recorded on both sides (or {a} = {b})")]
    Partition {
        /// One side.
        a: NodeId,
        /// The other side.
        b: NodeId,
    },
}

impl TryFrom<StateFields> for State {
    type Error = StateError;
    fn try_from(f: StateFields) -> Result<Self, StateError> {
        let node_count = f.config.node_count();
        if f.nodes.len() != usize::from(node_count) {
            return Err(StateError::NodeTable {
                records: f.nodes.len(),
                node_count,
            });
        }
        let all = NodeSet::first(node_count);
        for (i, record) in f.nodes.iter().enumerate() {
            let node = NodeId::from_index(i);
            for (field, set) in [
                ("view", record.view),
                ("partitioned_from", record.partitioned_from),
                ("detected", record.detected),
            ] {
                if !set.is_subset(all) {
                    return Err(StateError::UnknownMember {
                        node,
                        field,
                        node_count,
                    });
                }
            }
            for other in record.partitioned_from.iter() {
                let symmetric = other
                    .index()
                    .and_then(|j| f.nodes.get(j))
                    .is_some_and(|r| r.partitioned_from.contains(node));
                if other == node || !symmetric {
                    return Err(StateError::Partition { a: node, b: other });
                }
            }
        }
        if u64::try_from(f.placements.len()).unwrap_or(u64::MAX) > f.config.actors_max() {
            return Err(StateError::TooManyActors {
                actors: f.placements.len(),
                actors_max: f.config.actors_max(),
            });
        }
        let mut hosted: OrdMap<NodeId, OrdSet<ActorId>> = OrdMap::new();
        for (&actor, p) in &f.placements {
            if !all.contains(p.node) {
                return Err(StateError::PlacementNode {
                    actor,
                    node: p.node,
                });
            }
            hosted.entry(p.node).or_default().insert(actor);
        }
        for (&actor, entry) in &f.queue {
            if f.placements.get(&actor).map(|p| p.node) != Some(entry.from) {
                return Err(StateError::QueueEntry {
                    actor,
                    from: entry.from,
                });
            }
        }
        Ok(State {
            config: f.config,
            nodes: f.nodes,
            term_counter: f.term_counter,
            view_counter: f.view_counter,
            epoch_counter: f.epoch_counter,
            placements: f.placements.into_iter().collect(),
            hosted,
            queue: f.queue.into_iter().collect(),
        })
    }
}

impl From<State> for StateFields {
    fn from(s: State) -> Self {
        StateFields {
            config: s.config,
            nodes: s.nodes,
            term_counter: s.term_counter,
            view_counter: s.view_counter,
            epoch_counter: s.epoch_counter,
            placements: s.placements.into_iter().collect(),
            queue: s.queue.into_iter().collect(),
        }
    }
}

impl State {
    /// The spec's `Init`: every node Left, nothing partitioned, counters at 0.
    pub fn initial(config: Config) -> State {
        let state = State {
            config,
            nodes: vec![NodeRecord::INITIAL; usize::from(config.node_count())],
            term_counter: 0,
            view_counter: 0,
            epoch_counter: 0,
            placements: OrdMap::new(),
            hosted: OrdMap::new(),
            queue: OrdMap::new(),
        };
        debug_assert_eq!(state.nodes.len(), usize::from(config.node_count()));
        debug_assert!(state.active().is_empty());
        state
    }

    /// The configuration this state runs under.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The per-node records, in id order (`nodes()[0]` is `n1`).
    pub fn nodes(&self) -> &[NodeRecord] {
        &self.nodes
    }

    /// The highest term ever granted (fixed protocol; always 0 in the reference modes, which
    /// have no such variable).
    pub fn term_counter(&self) -> u64 {
        self.term_counter
    }

    /// The highest view number ever issued (fixed protocol; always 0 in the reference modes).
    pub fn view_counter(&self) -> u64 {
        self.view_counter
    }

    /// The highest actor epoch ever issued (fixed protocol).
    pub fn epoch_counter(&self) -> u64 {
        self.epoch_counter
    }

    /// Every placed actor with its placement, in actor-id order.
    pub fn placements(&self) -> &OrdMap<ActorId, Placement> {
        &self.placements
    }

    /// The placement of `actor`, if it is placed.
    pub fn placement(&self, actor: ActorId) -> Option<Placement> {
        self.placements.get(&actor).copied()
    }

    /// The migration queue, in actor-id order (at most one entry per actor).
    pub fn queue(&self) -> &OrdMap<ActorId, MigrationEntry> {
        &self.queue
    }

    /// The actors placed on `node`, in actor-id order.
    pub fn hosted(&self, node: NodeId) -> Option<&OrdSet<ActorId>> {
        self.hosted.get(&node)
    }

    /// The number of actors placed on `node` (its load).
    pub fn load(&self, node: NodeId) -> u64 {
        self.hosted
            .get(&node)
            .map_or(0, |set| u64::try_from(set.len()).unwrap_or(u64::MAX))
    }

    /// The per-node index, for invariants: node -> actors placed there.
    pub fn hosted_index(&self) -> &OrdMap<NodeId, OrdSet<ActorId>> {
        &self.hosted
    }

    pub(crate) fn set_epoch_counter(&mut self, value: u64) {
        debug_assert!(
            value >= self.epoch_counter,
            "the epoch counter never decreases"
        );
        self.epoch_counter = value;
    }

    /// Places `actor` (newly, or moving it) at `placement`, keeping the index in step; clears
    /// any queue entry. O(log actors).
    pub(crate) fn put_actor(&mut self, actor: ActorId, placement: Placement) {
        if let Some(old) = self.placements.insert(actor, placement) {
            self.unhost(old.node, actor);
        }
        self.hosted.entry(placement.node).or_default().insert(actor);
        self.queue.remove(&actor);
        debug_assert!(self
            .hosted
            .get(&placement.node)
            .is_some_and(|s| s.contains(&actor)));
    }

    /// Removes `actor` entirely (placement, index, queue entry). O(log actors).
    pub(crate) fn drop_actor(&mut self, actor: ActorId) -> Option<Placement> {
        let old = self.placements.remove(&actor)?;
        self.unhost(old.node, actor);
        self.queue.remove(&actor);
        debug_assert!(!self.queue.contains_key(&actor));
        Some(old)
    }

    fn unhost(&mut self, node: NodeId, actor: ActorId) {
        let now_empty = match self.hosted.get_mut(&node) {
            Some(set) => {
                set.remove(&actor);
                set.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.hosted.remove(&node);
        }
    }

    /// Queues `actor` (placed on `from`) for migration. O(log actors).
    pub(crate) fn enqueue(&mut self, actor: ActorId, from: NodeId, reason: MigrationReason) {
        debug_assert_eq!(self.placement(actor).map(|p| p.node), Some(from));
        self.queue.insert(actor, MigrationEntry { from, reason });
    }

    /// All node ids of the configuration, in order (the spec's `Nodes`).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len()).map(NodeId::from_index)
    }

    /// The record of `node`, or `None` when the configuration has no such node.
    pub fn node(&self, node: NodeId) -> Option<&NodeRecord> {
        node.index().and_then(|i| self.nodes.get(i))
    }

    pub(crate) fn node_mut(&mut self, node: NodeId) -> Option<&mut NodeRecord> {
        node.index().and_then(|i| self.nodes.get_mut(i))
    }

    pub(crate) fn set_term_counter(&mut self, value: u64) {
        debug_assert!(
            value >= self.term_counter,
            "the term counter never decreases"
        );
        self.term_counter = value;
    }

    pub(crate) fn set_view_counter(&mut self, value: u64) {
        debug_assert!(
            value >= self.view_counter,
            "the view counter never decreases"
        );
        self.view_counter = value;
    }

    /// The node table permuted: node `n` of `self` becomes `perm[n.index()]` (symmetry
    /// reduction; the caller passes a permutation of `0..node_count`). Cheap: no actor tables.
    pub fn permuted_nodes(&self, perm: &[usize]) -> Vec<NodeRecord> {
        debug_assert_eq!(perm.len(), self.nodes.len());
        let mut nodes = self.nodes.clone();
        for (i, record) in self.nodes.iter().enumerate() {
            if let Some(slot) = perm.get(i).and_then(|&j| nodes.get_mut(j)) {
                *slot = NodeRecord {
                    view: record.view.permuted(perm),
                    partitioned_from: record.partitioned_from.permuted(perm),
                    detected: record.detected.permuted(perm),
                    ..*record
                };
            }
        }
        debug_assert_eq!(nodes.len(), self.nodes.len());
        nodes
    }

    /// The actor tables under a node permutation, as (actor, node, epoch, queue entry) in actor
    /// order: what symmetry reduction compares when two node tables tie.
    pub fn permuted_actors(
        &self,
        perm: &[usize],
    ) -> Vec<(ActorId, NodeId, u64, Option<MigrationEntry>)> {
        let map = |n: NodeId| n.permuted(perm);
        self.placements
            .iter()
            .map(|(&a, p)| {
                let entry = self.queue.get(&a).map(|e| MigrationEntry {
                    from: map(e.from),
                    ..*e
                });
                (a, map(p.node), p.epoch, entry)
            })
            .collect()
    }

    /// A copy of this state with its nodes renamed by `perm` (see [`State::permuted_nodes`]).
    pub fn permuted(&self, perm: &[usize]) -> State {
        let map_node = |n: NodeId| n.permuted(perm);
        let placements: OrdMap<ActorId, Placement> = self
            .placements
            .iter()
            .map(|(&a, p)| {
                (
                    a,
                    Placement {
                        node: map_node(p.node),
                        ..*p
                    },
                )
            })
            .collect();
        let hosted = self
            .hosted
            .iter()
            .map(|(&n, set)| (map_node(n), set.clone()))
            .collect();
        let queue = self
            .queue
            .iter()
            .map(|(&a, e)| {
                (
                    a,
                    MigrationEntry {
                        from: map_node(e.from),
                        ..*e
                    },
                )
            })
            .collect();
        let result = State {
            nodes: self.permuted_nodes(perm),
            placements,
            hosted,
            queue,
            ..self.clone()
        };
        debug_assert_eq!(result.active().len(), self.active().len());
        debug_assert_eq!(result.placements.len(), self.placements.len());
        result
    }

    /// `active`: the nodes whose state is Active.
    pub fn active(&self) -> NodeSet {
        self.with_status(NodeStatus::Active)
    }

    /// The nodes whose state is `status`.
    pub fn with_status(&self, status: NodeStatus) -> NodeSet {
        self.node_ids()
            .zip(self.nodes.iter())
            .filter(|(_, r)| r.status == status)
            .map(|(n, _)| n)
            .collect()
    }

    /// The nodes that believe they are primary.
    pub fn believers(&self) -> NodeSet {
        self.node_ids()
            .zip(self.nodes.iter())
            .filter(|(_, r)| r.believes_primary)
            .map(|(n, _)| n)
            .collect()
    }

    /// `can_communicate(a, b)`: neither `<<a, b>>` nor `<<b, a>>` is partitioned.
    pub fn can_communicate(&self, a: NodeId, b: NodeId) -> bool {
        self.node(a).is_none_or(|r| !r.partitioned_from.contains(b))
            && self.node(b).is_none_or(|r| !r.partitioned_from.contains(a))
    }

    /// `reachable_active(n)`: the Active nodes `m` with `m = n` or `can_communicate(n, m)`.
    pub fn reachable_active(&self, node: NodeId) -> NodeSet {
        match self.node(node) {
            Some(r) => self.active().difference(r.partitioned_from),
            None => NodeSet::EMPTY,
        }
    }

    /// `has_majority(n)`: `2 * |reachable_active(n)| > |Nodes|`.
    pub fn has_majority(&self, node: NodeId) -> bool {
        2 * u32::from(self.reachable_active(node).len()) > u32::from(self.config.node_count())
    }

    /// The largest term held by any node that believes it is primary (0 when none does).
    pub fn max_believer_term(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|r| r.believes_primary)
            .map(|r| r.term)
            .max()
            .unwrap_or(0)
    }

    /// The largest term held by any node (`max term over all nodes`).
    pub fn max_term(&self) -> u64 {
        self.nodes.iter().map(|r| r.term).max().unwrap_or(0)
    }

    /// The largest view number held by a node in `set`.
    pub fn max_view_number(&self, set: NodeSet) -> u64 {
        set.iter()
            .filter_map(|n| self.node(n))
            .map(|r| r.view_number)
            .max()
            .unwrap_or(0)
    }

    /// `valid_primary(p)`: `p` believes it is primary, is Active, has a majority, and its term
    /// is at least the term of every node that believes it is primary.
    pub fn valid_primary(&self, node: NodeId) -> bool {
        self.node(node).is_some_and(|r| {
            r.believes_primary
                && r.status == NodeStatus::Active
                && self.has_majority(node)
                && r.term >= self.max_believer_term()
        })
    }

    /// The nodes with a valid primary claim.
    pub fn valid_primaries(&self) -> NodeSet {
        self.believers()
            .iter()
            .filter(|&n| self.valid_primary(n))
            .collect()
    }

    /// The primary in office: the node with a valid primary claim on the registry's current term
    /// (`term_counter`). Primary-only actions are fenced by this term.
    pub fn primary_in_office(&self) -> Option<NodeId> {
        self.valid_primaries()
            .iter()
            .find(|&p| self.node(p).is_some_and(|r| r.term == self.term_counter))
    }

    /// Whether nothing is partitioned.
    pub fn is_unpartitioned(&self) -> bool {
        self.nodes.iter().all(|r| r.partitioned_from.is_empty())
    }

    /// The registry's term: the highest term granted so far as far as the state records it
    /// (the term counter in the fixed protocol; the largest node term in the reference modes,
    /// which keep no counter).
    pub fn registry_term(&self) -> u64 {
        match self.config.mode() {
            Mode::Fixed => self.term_counter.max(self.max_term()),
            Mode::Reference | Mode::Buggy => self.max_term(),
        }
    }

    /// `Stable` (the premise of EventualMembershipConvergence): every node is Active or Left
    /// and nothing is partitioned.
    pub fn is_stable(&self) -> bool {
        self.is_unpartitioned()
            && self
                .nodes
                .iter()
                .all(|r| matches!(r.status, NodeStatus::Active | NodeStatus::Left))
    }

    /// `Converged`: all Active nodes have the same view.
    pub fn is_converged(&self) -> bool {
        let mut views = self
            .nodes
            .iter()
            .filter(|r| r.status == NodeStatus::Active)
            .map(|r| r.view);
        match views.next() {
            Some(first) => views.all(|v| v == first),
            None => true,
        }
    }

    /// `StalePrimary(n)`: `n` is Active and believes it is primary but cannot reach a majority
    /// (the premise of EventualStepDown).
    pub fn is_stale_primary(&self, node: NodeId) -> bool {
        self.node(node).is_some_and(|r| {
            r.believes_primary && r.status == NodeStatus::Active && !self.has_majority(node)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> State {
        State::initial(Config::fixed(3).unwrap())
    }

    #[test]
    fn decoding_refuses_inconsistent_states() {
        let mut fields: StateFields = three().into();
        fields.nodes.pop();
        assert_eq!(
            State::try_from(fields.clone()).unwrap_err(),
            StateError::NodeTable {
                records: 2,
                node_count: 3
            }
        );
        let mut fields: StateFields = three().into();
        fields.nodes[0].view = NodeSet::single(NodeId(4));
        assert_eq!(
            State::try_from(fields).unwrap_err().to_string(),
            "n1's view names a node outside n1..=n3"
        );
        let mut fields: StateFields = three().into();
        fields.nodes[0].partitioned_from = NodeSet::single(NodeId(2));
        assert_eq!(
            State::try_from(fields).unwrap_err(),
            StateError::Partition {
                a: NodeId(1),
                b: NodeId(2)
            }
        );
    }

    #[test]
    fn permutation_moves_records_and_renames_members() {
        let mut s = three();
        s.nodes[0].status = NodeStatus::Active;
        s.nodes[0].view = NodeSet::first(2);
        s.nodes[0].partitioned_from = NodeSet::single(NodeId(3));
        s.nodes[2].partitioned_from = NodeSet::single(NodeId(1));
        // n1 -> n3, n2 -> n1, n3 -> n2
        let p = s.permuted(&[2, 0, 1]);
        assert_eq!(p.nodes[2].status, NodeStatus::Active);
        assert_eq!(
            p.nodes[2].view,
            [NodeId(3), NodeId(1)].into_iter().collect()
        );
        assert_eq!(p.nodes[2].partitioned_from, NodeSet::single(NodeId(2)));
        assert_eq!(p.nodes[1].partitioned_from, NodeSet::single(NodeId(3)));
        assert_eq!(p.permuted(&[1, 2, 0]), s);
    }
}
