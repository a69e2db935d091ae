//! How the engines' stores keep a node's failure votes (its `detected` record) so that the
//! steps that clear votes in bulk write no voter's record: etcd allows 128 operations per
//! transaction, and at a few hundred members a declaration by a quorum of votes, or the round
//! that expires them, would otherwise write one record per voter.
//!
//! A stored node record (`node/n3`) is the record with its `detected` set empty, and beside it
//! the node's votes, each naming its target's *generation* when cast, with the heartbeat round
//! they were cast in. A vote counts (is in `detected`) while
//! - its round is the open round: ResetHeartbeats, which clears every vote, opens the next round
//!   and writes no record; and
//! - its target's generation is unchanged: a step that erases every vote against `t`
//!   (MarkNodeFailed, NodeLeave, NodeLeaveComplete of `t`) writes `t`'s own record anyway, and
//!   raises its generation there instead of writing each voter's.
//!
//! Both are exact: the registry a store reads back is the registry the reducer computed. A
//! transaction that reads a record holding votes also compares the round and each target's
//! record (`plan`), so a concurrent expiry or erasure of those votes is a conflict, as a write
//! of the voter's record would have been.
//!
//! A record stored before this layout (a bare record, its votes inside) is read with its votes
//! expired: dropping a vote can delay a declaration by one round, never cause one.

use crate::codec::encode;
use crate::keys::{meta_key_name, registry_key_name};
use membership_core::{Commit, Delta, Event, Key, MetaKey, NodeId, NodeRecord, NodeSet, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every node's stored votes and generation, where not the default (a persistent map: cloning
/// a cache's view is constant time).
pub(crate) type Ledger = imbl::OrdMap<NodeId, NodeVotes>;

/// A node's stored votes and generation (the default: none, generation 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeVotes {
    /// The heartbeat round the votes were written in: they count while it is the open round.
    pub(crate) round: u64,
    /// Each target voted against, with the target's generation when the vote was written, in
    /// target order.
    pub(crate) votes: Vec<(NodeId, u64)>,
    /// Raised by every commit that erases all votes against this node in bulk.
    pub(crate) generation: u64,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A node record as an engine stores it: the record without its votes, and the votes (the
/// fields of [`NodeVotes`], each left out when empty or zero).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredNode {
    /// The record, its `detected` empty.
    record: NodeRecord,
    /// [`NodeVotes::round`].
    #[serde(default, skip_serializing_if = "is_zero")]
    round: u64,
    /// [`NodeVotes::votes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    votes: Vec<(NodeId, u64)>,
    /// [`NodeVotes::generation`].
    #[serde(default, skip_serializing_if = "is_zero")]
    generation: u64,
}

/// A stored node value of either layout: this one, or a bare record (before it).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum AnyNode {
    /// This layout.
    Split(StoredNode),
    /// A bare record: its votes are read as expired.
    Bare(NodeRecord),
}

impl AnyNode {
    /// The record (its `detected` empty) and the votes.
    pub(crate) fn split(self) -> (NodeRecord, NodeVotes) {
        let (mut record, votes) = match self {
            AnyNode::Split(stored) => (
                stored.record,
                NodeVotes {
                    round: stored.round,
                    votes: stored.votes,
                    generation: stored.generation,
                },
            ),
            AnyNode::Bare(record) => (record, NodeVotes::default()),
        };
        record.detected = NodeSet::EMPTY;
        debug_assert!(record.detected.is_empty());
        (record, votes)
    }
}

impl StoredNode {
    /// Whether this stored form reads back as `record` at `round` with the targets'
    /// generations `generation`.
    pub(crate) fn reads_back(
        &self,
        record: &NodeRecord,
        round: u64,
        generation: impl Fn(NodeId) -> u64,
    ) -> bool {
        let votes = NodeVotes {
            round: self.round,
            votes: self.votes.clone(),
            generation: self.generation,
        };
        NodeRecord {
            detected: votes.counted(round, generation),
            ..self.record.clone()
        } == *record
    }
}

impl NodeVotes {
    /// Whether this is the default (nothing to keep).
    pub(crate) fn is_empty(&self) -> bool {
        *self == NodeVotes::default()
    }

    /// The targets whose votes count at `round` with the targets' generations `generation`.
    pub(crate) fn counted(&self, round: u64, generation: impl Fn(NodeId) -> u64) -> NodeSet {
        let mut counted = NodeSet::EMPTY;
        if self.round == round {
            for &(target, cast) in &self.votes {
                if generation(target) == cast {
                    counted.insert(target);
                }
            }
        }
        debug_assert!(counted.len() as usize <= self.votes.len());
        debug_assert!(self.round == round || counted.is_empty());
        counted
    }
}

/// The stored form of `record` written at `round`, its votes naming their targets' generations
/// (`generation`), its own generation `own`.
pub(crate) fn stored(
    record: &NodeRecord,
    round: u64,
    own: u64,
    generation: impl Fn(NodeId) -> u64,
) -> StoredNode {
    let votes: Vec<(NodeId, u64)> = record.detected.iter().map(|t| (t, generation(t))).collect();
    let stored = StoredNode {
        record: NodeRecord {
            detected: NodeSet::EMPTY,
            ..record.clone()
        },
        round: if votes.is_empty() { 0 } else { round },
        votes,
        generation: own,
    };
    debug_assert!(stored.record.detected.is_empty());
    debug_assert_eq!(stored.votes.len(), record.detected.len() as usize);
    stored
}

/// `node`'s stored generation among `votes` (0: none stored).
pub(crate) fn generation(votes: &Ledger, node: NodeId) -> u64 {
    votes.get(&node).map_or(0, |v| v.generation)
}

/// The votes of `node` that count at `round` among the stored `votes`.
pub(crate) fn counted(votes: &Ledger, node: NodeId, round: u64) -> NodeSet {
    votes.get(&node).map_or(NodeSet::EMPTY, |v| {
        v.counted(round, |t| generation(votes, t))
    })
}

/// Puts the node records a commit wrote (`records`: each record, its `detected` empty, and its
/// stored votes) in `delta`, with the votes that count at `round`; and every other record whose
/// votes stopped counting: all of them when the round moved from `round_before`, those against a
/// node whose generation moved. `before` and `votes` are the registry and the stored votes
/// before the commit. Returns the stored votes after it. Costs O(records written), and O(nodes)
/// more when the round or a generation moves.
pub(crate) fn node_records(
    before: &State,
    votes: &Ledger,
    round_before: u64,
    delta: &mut Delta,
    records: BTreeMap<NodeId, (NodeRecord, NodeVotes)>,
    round: u64,
) -> Ledger {
    let mut stored = votes.clone();
    let mut moved = NodeSet::EMPTY;
    for (&node, (_, written)) in &records {
        if written.generation != generation(votes, node) {
            moved.insert(node);
        }
        if written.is_empty() {
            stored.remove(&node);
        } else {
            stored.insert(node, written.clone());
        }
    }
    let mut others = Vec::new();
    if round != round_before || !moved.is_empty() {
        for node in before.node_ids() {
            let held = before
                .node(node)
                .map_or(NodeSet::EMPTY, |r| r.detected.clone());
            let expired = round != round_before && !held.is_empty();
            if (expired || !held.intersection(&moved).is_empty()) && !records.contains_key(&node) {
                others.push(node);
            }
        }
    }
    for (node, (mut record, _)) in records {
        record.detected = counted(&stored, node, round);
        delta.nodes.insert(node, record);
    }
    for node in others {
        if let Some(was) = before.node(node) {
            let detected = counted(&stored, node, round);
            debug_assert!(detected.is_subset(&was.detected));
            if detected != was.detected {
                delta.nodes.insert(
                    node,
                    NodeRecord {
                        detected,
                        ..was.clone()
                    },
                );
            }
        }
    }
    debug_assert!(stored.values().all(|v| !v.is_empty()));
    stored
}

/// Whether `commit` opens a heartbeat round (ResetHeartbeats, the one step that moves the
/// round). Stored, a vote names the round it was cast in and a flag is a heartbeat naming the
/// open round, so opening the next round expires both by the round alone: such a commit writes
/// no record, and compares none (`kv::plan`), whatever the records hold at commit.
pub(crate) fn opens_round(commit: &Commit) -> bool {
    let opens = commit.meta_writes.contains(&MetaKey::Round);
    debug_assert_eq!(opens, commit.events.contains(&Event::ResetHeartbeats));
    debug_assert!(!opens || commit.meta_reads.contains(&MetaKey::Round));
    opens
}

/// What a commit writes of the node records: the generation each node has after it.
pub(crate) struct Records {
    /// The nodes every vote against which the commit erases in bulk: their own records are
    /// written, with their generation raised, and their voters' records are not.
    erased: NodeSet,
}

impl Records {
    /// The bulk erasures of `commit`, run on the registry `before`, whose delta writes `keys`: a
    /// node whose record is written, that some node voted against before the commit and none
    /// after.
    pub(crate) fn of(before: &State, commit: &Commit, keys: &[Key]) -> Records {
        if opens_round(commit) {
            // No erasure, no generation raised: it writes no record (`kv::plan` compares none
            // for it either). A voter that was also voted against was written here before, its
            // generation raised for nothing.
            return Records {
                erased: NodeSet::EMPTY,
            };
        }
        let written: Vec<NodeId> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Node(n) => Some(*n),
                _ => None,
            })
            .collect();
        let mut erased = NodeSet::EMPTY;
        if !written.is_empty() {
            let voted = |state: &State| {
                state
                    .nodes()
                    .iter()
                    .fold(NodeSet::EMPTY, |all, r| all.union(&r.detected))
            };
            let (was, after) = (voted(before), voted(&commit.next));
            for n in written {
                if was.contains(n) && !after.contains(n) {
                    erased.insert(n);
                }
            }
            debug_assert!(erased.is_subset(&was) && erased.intersection(&after).is_empty());
        }
        debug_assert!(erased.iter().all(|n| keys.contains(&Key::Node(n))));
        Records { erased }
    }

    /// `node`'s generation after the commit, `votes` the stored votes before it.
    fn generation(&self, votes: &Ledger, node: NodeId) -> u64 {
        generation(votes, node) + u64::from(self.erased.contains(node))
    }

    /// The stored value of `node`'s record after the commit (`None` inside: absent), or `None`
    /// when the stored value already reads back as it: only its votes changed, by the round's
    /// move or a bulk erasure. `before` and `votes` are the registry and the stored votes the
    /// commit ran on.
    pub(crate) fn value(
        &self,
        before: &State,
        votes: &Ledger,
        commit: &Commit,
        node: NodeId,
    ) -> Option<Option<Vec<u8>>> {
        debug_assert!(commit.delta.nodes.contains_key(&node));
        let Some(record) = commit.next.node(node) else {
            return Some(None);
        };
        let round = commit.meta.round;
        let own = self.generation(votes, node);
        let unchanged = before.node(node).is_some_and(|was| {
            NodeRecord {
                detected: NodeSet::EMPTY,
                ..was.clone()
            } == NodeRecord {
                detected: NodeSet::EMPTY,
                ..record.clone()
            }
        }) && own == generation(votes, node)
            && votes.get(&node).map_or(NodeSet::EMPTY, |v| {
                v.counted(round, |t| self.generation(votes, t))
            }) == record.detected;
        if unchanged {
            return None;
        }
        let stored = stored(record, round, own, |t| self.generation(votes, t));
        debug_assert!(stored.reads_back(record, round, |t| self.generation(votes, t)));
        Some(Some(encode(&stored)))
    }

    /// The keys a commit that reads or writes a record holding votes (before or after it),
    /// run on the registry `before` and writing `keys`, depends on beyond the record, to be
    /// compared: the round, and each target's record (its generation), so that a concurrent
    /// expiry or bulk erasure of those votes is a conflict. Empty when no such record is read
    /// or written.
    pub(crate) fn compares(&self, before: &State, commit: &Commit, keys: &[Key]) -> Vec<String> {
        let mut targets = NodeSet::EMPTY;
        for key in commit.reads.iter().chain(keys) {
            if let Key::Node(n) = key {
                for state in [before, &commit.next] {
                    if let Some(r) = state.node(*n) {
                        targets = targets.union(&r.detected);
                    }
                }
            }
        }
        debug_assert!(!self.erased.iter().any(|n| commit
            .next
            .nodes()
            .iter()
            .any(|r| r.detected.contains(n))));
        if targets.is_empty() {
            return Vec::new();
        }
        let mut names = vec![meta_key_name(&MetaKey::Round)];
        names.extend(targets.iter().map(|t| registry_key_name(&Key::Node(t))));
        debug_assert_eq!(names.len(), 1 + targets.len() as usize);
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::NodeStatus;
    use proptest::prelude::*;

    fn record(detected: NodeSet) -> NodeRecord {
        NodeRecord {
            status: NodeStatus::Active,
            detected,
            ..NodeRecord::INITIAL
        }
    }

    #[test]
    fn a_bare_record_reads_with_its_votes_expired() {
        let bare = serde_json::to_string(&record(NodeSet::single(NodeId(2)))).unwrap();
        let any: AnyNode = serde_json::from_str(&bare).unwrap();
        let (read, votes) = any.split();
        assert_eq!(read, record(NodeSet::EMPTY));
        assert!(votes.is_empty());
    }

    #[test]
    fn a_record_without_votes_stores_only_the_record() {
        let json = serde_json::to_string(&stored(&record(NodeSet::EMPTY), 7, 0, |_| 3)).unwrap();
        let bare = serde_json::to_string(&record(NodeSet::EMPTY)).unwrap();
        assert_eq!(json, format!("{{\"record\":{bare}}}"));
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let mut json = serde_json::to_value(stored(&record(NodeSet::EMPTY), 7, 1, |_| 0)).unwrap();
        json["rounds"] = serde_json::json!(3);
        assert!(serde_json::from_value::<AnyNode>(json).is_err());
    }

    fn set() -> impl Strategy<Value = NodeSet> {
        proptest::collection::btree_set(1u16..=12, 0..6).prop_map(|ids| {
            ids.into_iter()
                .fold(NodeSet::EMPTY, |s, n| s.with(NodeId(n)))
        })
    }

    proptest! {
        /// A stored record reads back as itself while its round is open and no target's
        /// generation moved; with nothing counted once the round moves on, and without exactly
        /// the targets whose generation moved.
        #[test]
        fn votes_count_while_their_round_and_generations_hold(
            detected in set(),
            round in 0u64..5,
            moved in set(),
            own in 0u64..3,
        ) {
            let base = |t: NodeId| u64::from(t.0) % 3;
            let written = stored(&record(detected.clone()), round, own, base);
            let json = serde_json::to_vec(&written).unwrap();
            let (read, votes) = serde_json::from_slice::<AnyNode>(&json).unwrap().split();
            prop_assert_eq!(&read, &record(NodeSet::EMPTY));
            prop_assert_eq!(votes.generation, own);
            prop_assert_eq!(votes.counted(round, base), detected.clone());
            prop_assert_eq!(votes.counted(round + 1, base), NodeSet::EMPTY);
            let after = |t: NodeId| base(t) + u64::from(moved.contains(t));
            prop_assert_eq!(votes.counted(round, after), detected.difference(&moved));
        }
    }
}
