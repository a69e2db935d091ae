//! The registry: the spec's variables for the whole cluster and the spec's derived notions
//! (`active`, `can_communicate`, `has_majority`, `valid_primary`) as pure functions. Its
//! persisted, validated form is in the module `registry`.

use crate::actor::{ActorId, MigrationEntry, MigrationQueue, MigrationReason, Placement};
use crate::config::Config;
use crate::node::{NodeId, NodeSet, NodeStatus, NODES_MAX};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[cfg(feature = "checking")]
mod renaming;

/// One node's membership record: the spec's `state[n]`, `view[n]`, `view_number[n]`,
/// `believes_primary[n]`, `term[n]`, its row of `partitioned`, and (fixed protocol) its
/// detection record. The spec's `heartbeat_received[n]` is kept apart, in
/// [`State::heartbeat_received`], so that a heartbeat never writes a membership record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The nodes `m` with `<<n, m>> \in partitioned` (kept symmetric).
    pub partitioned_from: NodeSet,
    /// `detected[n]` (fixed protocol): the nodes `n` has detected as failed with DetectFailure
    /// and not seen again in a view since. Always empty in the reference modes, which keep no
    /// such record.
    pub detected: NodeSet,
}

impl NodeRecord {
    /// The initial record: Left, empty view, view number 0, no primary belief, term 0, not
    /// partitioned, nothing detected.
    pub const INITIAL: NodeRecord = NodeRecord {
        status: NodeStatus::Left,
        view: NodeSet::EMPTY,
        view_number: 0,
        believes_primary: false,
        term: 0,
        partitioned_from: NodeSet::EMPTY,
        detected: NodeSet::EMPTY,
    };
}

/// The whole cluster's registry: the spec's variables plus, in the fixed protocol, the
/// registry-wide counters that make terms, view numbers and epochs unique, and the actors.
///
/// The node table is shared until a step writes a record, and the actor tables are persistent
/// ordered maps (structural sharing): cloning a state is constant time whatever the numbers of
/// nodes and actors, a step that writes a node record copies the table once (O(nodes)), and one
/// actor's update costs O(log actors).
///
/// Serialized, a state is its [`crate::RegistryFields`] with the format version: the fixed
/// protocol's registry and nothing else. Decoding validates it (see [`crate::RegistryError`]);
/// serializing a state
/// of a checking configuration (another mode, a bound, a mutant) fails, because a store holds the
/// fixed protocol only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct State {
    config: Config,
    /// Shared until written: a step that writes no node record (a heartbeat, a round, an actor
    /// event) clones the state without copying a record.
    nodes: Arc<[NodeRecord]>,
    heartbeats: NodeSet,
    term_counter: u64,
    view_counter: u64,
    epoch_counter: u64,
    placements: OrdMap<ActorId, Placement>,
    /// Index of `placements` by node (derived; rebuilt when decoding).
    hosted: OrdMap<NodeId, OrdSet<ActorId>>,
    queue: MigrationQueue,
    /// The Active nodes (derived from `nodes`, kept by every write of a record; last, so that
    /// the derived order is the order of the fields before it).
    active: NodeSet,
}

/// The registry-wide counters of a state assembled from stored tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    /// The highest term ever granted.
    pub(crate) term: u64,
    /// The highest view number ever issued.
    pub(crate) view: u64,
    /// The highest actor epoch ever issued.
    pub(crate) epoch: u64,
}

impl State {
    /// The spec's `Init`: every node Left, nothing partitioned, counters at 0.
    pub fn initial(config: Config) -> State {
        let state = State {
            config,
            nodes: Arc::from(vec![NodeRecord::INITIAL; usize::from(config.node_count())]),
            heartbeats: NodeSet::EMPTY,
            term_counter: 0,
            view_counter: 0,
            epoch_counter: 0,
            placements: OrdMap::new(),
            hosted: OrdMap::new(),
            queue: MigrationQueue::default(),
            active: NodeSet::EMPTY,
        };
        assert_eq!(state.nodes.len(), usize::from(config.node_count()));
        debug_assert!(state.active().is_empty());
        state
    }

    /// A state from its tables, building the index of placements by node. The tables' structure
    /// (table sizes, node ids, symmetric partitions, placements and queue entries that agree) is
    /// the caller's to check first: the persisted form's decoder (module `registry`) does.
    pub(crate) fn from_tables(
        config: Config,
        nodes: Vec<NodeRecord>,
        heartbeats: NodeSet,
        counters: Counters,
        placements: BTreeMap<ActorId, Placement>,
        queue: BTreeMap<ActorId, MigrationEntry>,
    ) -> State {
        let mut hosted: OrdMap<NodeId, OrdSet<ActorId>> = OrdMap::new();
        for (&actor, p) in &placements {
            hosted.entry(p.node).or_default().insert(actor);
        }
        let active = nodes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status == NodeStatus::Active)
            .map(|(i, _)| NodeId::from_index(i))
            .collect();
        let state = State {
            active,
            config,
            nodes: Arc::from(nodes),
            heartbeats,
            term_counter: counters.term,
            view_counter: counters.view,
            epoch_counter: counters.epoch,
            placements: placements.into_iter().collect(),
            hosted,
            queue: MigrationQueue::from_entries(queue),
        };
        assert_eq!(state.nodes.len(), usize::from(config.node_count()));
        assert!(state.queue.len() <= state.placements.len());
        debug_assert_eq!(state.indexed_count(), state.placements.len());
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

    /// `heartbeat_received[n]`: whether a heartbeat reached `node` in the current round.
    pub fn heartbeat_received(&self, node: NodeId) -> bool {
        self.heartbeats.contains(node)
    }

    /// The nodes with `heartbeat_received` set.
    pub fn heartbeats(&self) -> &NodeSet {
        &self.heartbeats
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

    /// The migration queue.
    pub fn queue(&self) -> &MigrationQueue {
        &self.queue
    }

    /// The actors placed on `node`, in actor-id order.
    pub fn hosted(&self, node: NodeId) -> Option<&OrdSet<ActorId>> {
        self.hosted.get(&node)
    }

    /// The index of placements by node (derived from the placements): what a step's invariant
    /// check diffs to find the actors whose index entry changed.
    pub(crate) fn hosted_index(&self) -> &OrdMap<NodeId, OrdSet<ActorId>> {
        &self.hosted
    }

    /// The number of actors placed on `node` (its load).
    pub fn load(&self, node: NodeId) -> u64 {
        self.hosted
            .get(&node)
            .map_or(0, |set| u64::try_from(set.len()).unwrap_or(u64::MAX))
    }

    /// Every node that hosts actors, with its load, in node-id order (one pass over the index).
    pub(crate) fn loads(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.hosted
            .iter()
            .map(|(&n, set)| (n, u64::try_from(set.len()).unwrap_or(u64::MAX)))
    }

    /// The number of index entries over all nodes (equal to the number of placements in a
    /// consistent state).
    pub(crate) fn indexed_count(&self) -> usize {
        self.hosted.values().map(|set| set.len()).sum()
    }

    pub(crate) fn set_epoch_counter(&mut self, value: u64) {
        assert!(
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
        self.queue.remove(actor);
        debug_assert!(self
            .hosted
            .get(&placement.node)
            .is_some_and(|s| s.contains(&actor)));
    }

    /// Removes `actor` entirely (placement, index, queue entry). O(log actors).
    pub(crate) fn drop_actor(&mut self, actor: ActorId) -> Option<Placement> {
        let old = self.placements.remove(&actor)?;
        self.unhost(old.node, actor);
        self.queue.remove(actor);
        debug_assert!(!self.queue.contains(actor));
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

    /// Sets a counter to `value`, up or down (applying a delta or a projection).
    pub(crate) fn overwrite_counter(&mut self, counter: crate::refusal::Counter, value: u64) {
        use crate::refusal::Counter;
        match counter {
            Counter::Term => self.term_counter = value,
            Counter::ViewNumber => self.view_counter = value,
            Counter::Epoch => self.epoch_counter = value,
        }
    }

    /// Places `actor` at `placement`, keeping the index in step but not touching the queue
    /// (applying a delta, whose queue entries come separately).
    pub(crate) fn place_keeping_queue(&mut self, actor: ActorId, placement: Placement) {
        if let Some(old) = self.placements.insert(actor, placement) {
            self.unhost(old.node, actor);
        }
        self.hosted.entry(placement.node).or_default().insert(actor);
        debug_assert_eq!(self.placement(actor), Some(placement));
    }

    /// Writes `actor`'s queue entry as given (applying a delta; checked by the caller).
    pub(crate) fn enqueue_unchecked(&mut self, actor: ActorId, entry: MigrationEntry) {
        self.queue.insert(actor, entry);
    }

    /// Removes `actor`'s queue entry, if any.
    pub(crate) fn dequeue(&mut self, actor: ActorId) {
        self.queue.remove(actor);
    }

    /// Sets or clears `heartbeat_received[node]`.
    pub(crate) fn set_heartbeat(&mut self, node: NodeId, received: bool) {
        if received {
            self.heartbeats.insert(node);
        } else {
            self.heartbeats.remove(node);
        }
    }

    /// The registry with `heartbeats` as the set of heartbeat flags, the rest unchanged: for a
    /// store that keeps the flags in their stored form (each node's latest heartbeat round
    /// against the open round, [`crate::Meta::heartbeat_current`]) and rebuilds them from it.
    /// Nodes outside the configuration are ignored.
    pub fn with_heartbeats(&self, heartbeats: &NodeSet) -> State {
        let mut next = self.clone();
        next.heartbeats = NodeSet::EMPTY;
        for n in heartbeats.iter().filter(|&n| self.node(n).is_some()) {
            next.heartbeats.insert(n);
        }
        debug_assert!(next.heartbeats.is_subset(heartbeats));
        debug_assert!(next.nodes() == self.nodes());
        next
    }

    /// All node ids of the configuration, in order (the spec's `Nodes`).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len()).map(NodeId::from_index)
    }

    /// The record of `node`, or `None` when the configuration has no such node.
    pub fn node(&self, node: NodeId) -> Option<&NodeRecord> {
        node.index().and_then(|i| self.nodes.get(i))
    }

    /// Applies `update` to the record of `node` and keeps the set of Active nodes. Returns
    /// whether the node exists (nothing is written when it does not).
    pub(crate) fn update_node(
        &mut self,
        node: NodeId,
        update: impl FnOnce(&mut NodeRecord),
    ) -> bool {
        let Some(record) = node
            .index()
            .and_then(|i| Arc::make_mut(&mut self.nodes).get_mut(i))
        else {
            return false;
        };
        let was_active = record.status == NodeStatus::Active;
        update(record);
        let is_active = record.status == NodeStatus::Active;
        if is_active && !was_active {
            self.active.insert(node);
        } else if was_active && !is_active {
            self.active.remove(node);
        }
        debug_assert_eq!(
            self.active.contains(node),
            self.node(node)
                .is_some_and(|r| r.status == NodeStatus::Active)
        );
        true
    }

    pub(crate) fn set_term_counter(&mut self, value: u64) {
        assert!(
            value >= self.term_counter,
            "the term counter never decreases"
        );
        self.term_counter = value;
    }

    pub(crate) fn set_view_counter(&mut self, value: u64) {
        assert!(
            value >= self.view_counter,
            "the view counter never decreases"
        );
        self.view_counter = value;
    }

    /// This state under another configuration of the same node count (feature `checking`): the
    /// checker uses it to lift a bound, tests to run a state reached under one variant through
    /// another.
    #[cfg(feature = "checking")]
    pub fn with_config(&self, config: Config) -> State {
        assert_eq!(config.node_count(), self.config.node_count());
        State {
            config,
            ..self.clone()
        }
    }

    /// `active`: the nodes whose state is Active.
    pub fn active(&self) -> NodeSet {
        self.active.clone()
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
            Some(r) => self.active().difference(&r.partitioned_from),
            None => NodeSet::EMPTY,
        }
    }

    /// `QuorumSize`: the number of nodes a majority is counted over. Fixed protocol (registry
    /// v2): the current members, the Active nodes, as the registry holds them now; reference
    /// modes: every node of the configuration (`Cardinality(Nodes)`).
    pub fn quorum_size(&self) -> u16 {
        let size = if crate::rules::Rules::quorum_over_members(&self.config) {
            self.active().len()
        } else {
            self.config.node_count()
        };
        debug_assert!(size <= self.config.node_count());
        size
    }

    /// `has_majority(n)`: `2 * |reachable_active(n)| > QuorumSize`.
    pub fn has_majority(&self, node: NodeId) -> bool {
        2 * u32::from(self.reachable_active(node).len()) > u32::from(self.quorum_size())
    }

    /// `Majority`: the fewest nodes that form a strict majority of the quorum,
    /// `QuorumSize / 2 + 1` (the count `has_majority` needs).
    pub fn majority(&self) -> u16 {
        self.quorum_size() / 2 + 1
    }

    /// `Votes(n)`: the votes for declaring `n` failed, i.e. the Active nodes `d != n` that have
    /// recorded a detection of `n` (`n \in detected[d]`) and still cannot communicate with it.
    pub fn failure_votes(&self, node: NodeId) -> NodeSet {
        self.active()
            .iter()
            .filter(|&d| self.votes_against(d, node))
            .collect()
    }

    /// Whether `d`'s record holds a vote for declaring `n` failed that counts (if `d` is
    /// Active): `d != n`, `n \in detected[d]`, and `d` still cannot communicate with `n`. The
    /// one definition of a vote, for [`State::failure_votes`] and [`State::failure_quorate`].
    fn votes_against(&self, d: NodeId, n: NodeId) -> bool {
        d != n
            && self.node(d).is_some_and(|r| r.detected.contains(n))
            && !self.can_communicate(d, n)
    }

    /// The nodes of `targets` whose votes ([`State::failure_votes`]) are a strict majority of
    /// the members ([`State::majority`]): one pass over the members' detections for all the
    /// targets at once, where `failure_votes` per target walks every member. Failure detection
    /// asks it of every peer that holds votes, on each of a node's evaluations.
    pub fn failure_quorate(&self, targets: &NodeSet) -> NodeSet {
        let mut votes = [0_u16; NODES_MAX as usize + 1]; // by node id
        for d in self.active().iter() {
            let Some(r) = self.node(d) else { continue };
            // Only the targets `d` detected can hold its vote: a walk of its detections.
            for t in r.detected.intersection(targets).iter() {
                if self.votes_against(d, t) {
                    votes[usize::from(t.0)] += 1;
                }
            }
        }
        let needed = self.majority();
        let quorate: NodeSet = targets
            .iter()
            .filter(|t| votes[usize::from(t.0)] >= needed)
            .collect();
        debug_assert!(quorate.is_subset(targets));
        debug_assert!(targets
            .iter()
            .all(|t| quorate.contains(t) == (self.failure_votes(t).len() >= needed)));
        quorate
    }

    /// `FailureQuorum(n)`: the evidence MarkNodeFailed(n) needs: `n` committed no heartbeat in
    /// this round (the registry's own evidence), or its votes ([`State::failure_votes`]) are a
    /// strict majority of the members.
    pub fn has_failure_quorum(&self, node: NodeId) -> bool {
        !self.heartbeat_received(node) || self.failure_votes(node).len() >= self.majority()
    }

    /// `Leaderless` (the premise of EventualElection): the cluster is stable, has a member, and
    /// no node holds a valid primary claim.
    pub fn is_leaderless(&self) -> bool {
        self.is_stable()
            && !self.active().is_empty()
            && self.node_ids().all(|p| !self.valid_primary(p))
    }

    /// `MajorityLeaderless(n)` (the premise of EventualPrimary): `n` is Active and reaches a
    /// majority of the members (`has_majority`), and no node has a valid primary claim.
    pub fn is_majority_leaderless(&self, node: NodeId) -> bool {
        self.node(node)
            .is_some_and(|r| r.status == NodeStatus::Active)
            && self.has_majority(node)
            && self.node_ids().all(|p| !self.valid_primary(p))
    }

    /// `RejoinPending(n)` (the premise of EventualRejoin): `n` is Failed, Left or Joining (not
    /// a member, and not on its way out) and can communicate with every other node.
    pub fn is_rejoin_pending(&self, node: NodeId) -> bool {
        self.node(node).is_some_and(|r| {
            matches!(
                r.status,
                NodeStatus::Failed | NodeStatus::Left | NodeStatus::Joining
            ) && r.partitioned_from.is_empty()
        })
    }

    /// `Stranded(a)` (the premise of EventualFailover): `a` is placed on a node that no longer
    /// serves it, a Failed node or one that recovered from Failed to Left.
    pub fn is_stranded(&self, actor: ActorId) -> bool {
        self.placement(actor).is_some_and(|p| {
            self.node(p.node)
                .is_some_and(|r| matches!(r.status, NodeStatus::Failed | NodeStatus::Left))
        })
    }

    /// `LooksCrashed(n)` (the premise of EventualFailureDeclaration): `n` is Active, silent (its
    /// heartbeat was not received) and cut off from every other Active node, while the other
    /// Active nodes are a strict majority of the members and can all communicate with one another,
    /// and no node is Joining or Leaving.
    pub fn looks_crashed(&self, node: NodeId) -> bool {
        let silent = self
            .node(node)
            .is_some_and(|r| r.status == NodeStatus::Active)
            && !self.heartbeat_received(node);
        let others = self.active().without(node);
        silent
            && others.len() >= self.majority()
            && others.iter().all(|m| {
                self.node(m).is_some_and(|r| {
                    r.partitioned_from.contains(node)
                        && r.partitioned_from.intersection(&others).is_empty()
                })
            })
            && self
                .nodes
                .iter()
                .all(|r| !matches!(r.status, NodeStatus::Joining | NodeStatus::Leaving))
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
    pub fn max_view_number(&self, set: &NodeSet) -> u64 {
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

    /// The primary in office with its term (what an operator's view shows of it).
    pub fn primary_and_term(&self) -> Option<(NodeId, u64)> {
        let primary = self.primary_in_office()?;
        let term = self.node(primary).map_or(0, |r| r.term);
        debug_assert_eq!(term, self.term_counter);
        Some((primary, term))
    }

    /// Whether nothing is partitioned.
    pub fn is_unpartitioned(&self) -> bool {
        self.nodes.iter().all(|r| r.partitioned_from.is_empty())
    }

    /// The registry's term: the highest term granted so far as far as the state records it
    /// (the term counter in the fixed protocol; the largest node term in the reference modes,
    /// which keep no counter and leave it at 0).
    pub fn registry_term(&self) -> u64 {
        self.term_counter.max(self.max_term())
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
        if crate::rules::Rules::one_configuration(self.config()) {
            // Registry v2: every member has adopted the current configuration.
            let current = self.view_counter;
            return self
                .nodes
                .iter()
                .filter(|r| r.status == NodeStatus::Active)
                .all(|r| r.view_number == current);
        }
        let mut views = self
            .nodes
            .iter()
            .filter(|r| r.status == NodeStatus::Active)
            .map(|r| &r.view);
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
