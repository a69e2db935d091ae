//! The protocol state: the spec's variables for the whole cluster, and the spec's derived
//! notions (`active`, `can_communicate`, `has_majority`, `valid_primary`) as pure functions.

use crate::config::{Config, Mode};
use crate::node::{NodeId, NodeSet, NodeStatus};
use serde::{Deserialize, Serialize};
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
/// registry-wide counters that make terms and view numbers unique.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "StateFields", into = "StateFields")]
pub struct State {
    config: Config,
    nodes: Vec<NodeRecord>,
    term_counter: u64,
    view_counter: u64,
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
        Ok(State {
            config: f.config,
            nodes: f.nodes,
            term_counter: f.term_counter,
            view_counter: f.view_counter,
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

    /// A copy of this state with its node table permuted: node `n` of `self` becomes
    /// `perm[n.index()]` in the result (symmetry reduction; the caller passes a permutation of
    /// `0..node_count`).
    pub fn permuted(&self, perm: &[usize]) -> State {
        debug_assert_eq!(perm.len(), self.nodes.len());
        let map_set = |set: NodeSet| -> NodeSet {
            set.iter()
                .filter_map(|n| n.index())
                .filter_map(|i| perm.get(i))
                .map(|&j| NodeId::from_index(j))
                .collect()
        };
        let mut nodes = self.nodes.clone();
        for (i, record) in self.nodes.iter().enumerate() {
            if let Some(slot) = perm.get(i).and_then(|&j| nodes.get_mut(j)) {
                *slot = NodeRecord {
                    view: map_set(record.view),
                    partitioned_from: map_set(record.partitioned_from),
                    detected: map_set(record.detected),
                    ..*record
                };
            }
        }
        let result = State {
            nodes,
            ..self.clone()
        };
        debug_assert_eq!(result.active().len(), self.active().len());
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
        self.nodes.iter().all(|r| {
            matches!(r.status, NodeStatus::Active | NodeStatus::Left)
                && r.partitioned_from.is_empty()
        })
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
