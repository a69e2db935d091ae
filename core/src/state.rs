//! The registry: the spec's variables for the whole cluster, the spec's derived notions
//! (`active`, `can_communicate`, `has_majority`, `valid_primary`) as pure functions, and the
//! persisted, validated registry format.

use crate::actor::{ActorId, MigrationEntry, MigrationQueue, MigrationReason, Placement};
use crate::config::{Config, ConfigError};
use crate::invariants::{self, Violation};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::rules::Rules;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use thiserror::Error;

/// The version of the persisted registry format ([`RegistryFields`] and the per-key values of
/// [`crate::Delta`]). A stored value of another version is refused with
/// [`RegistryError::Version`].
pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// One node's membership record: the spec's `state[n]`, `view[n]`, `view_number[n]`,
/// `believes_primary[n]`, `term[n]`, its row of `partitioned`, and (fixed protocol) its
/// detection record. The spec's `heartbeat_received[n]` is kept apart, in
/// [`State::heartbeat_received`], so that a heartbeat never writes a membership record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
/// The actor tables are persistent ordered maps (structural sharing): cloning a state is O(nodes)
/// whatever the number of actors, and one actor's update costs O(log actors).
///
/// Serialized, a state is its [`RegistryFields`] with the format version: the fixed protocol's
/// registry and nothing else. Decoding validates it (see [`RegistryError`]); serializing a state
/// of a checking configuration (another mode, a bound, a mutant) fails, because a store holds the
/// fixed protocol only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct State {
    config: Config,
    nodes: Vec<NodeRecord>,
    heartbeats: NodeSet,
    term_counter: u64,
    view_counter: u64,
    epoch_counter: u64,
    placements: OrdMap<ActorId, Placement>,
    /// Index of `placements` by node (derived; rebuilt when decoding).
    hosted: OrdMap<NodeId, OrdSet<ActorId>>,
    queue: MigrationQueue,
}

/// The persisted registry, field by field, unvalidated: what [`State`] serializes to. Convert
/// with `State::try_from(fields)`, which validates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFields {
    /// [`REGISTRY_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// `|Nodes|`.
    pub node_count: u16,
    /// The most actors that may be placed at once.
    pub actors_max: u64,
    /// The node records, `n1` first.
    pub nodes: Vec<NodeRecord>,
    /// The nodes with `heartbeat_received` set.
    pub heartbeats: NodeSet,
    /// The highest term ever granted.
    pub term_counter: u64,
    /// The highest view number ever issued.
    pub view_counter: u64,
    /// The highest actor epoch ever issued.
    pub epoch_counter: u64,
    /// Every placed actor.
    pub placements: BTreeMap<ActorId, Placement>,
    /// The migration queue.
    pub queue: BTreeMap<ActorId, MigrationEntry>,
}

/// A stored registry that cannot be a state of the fixed protocol, naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The value was written in another format version.
    #[error(
        "registry format version {found} is not supported (this build reads version {expected})"
    )]
    Version {
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The node count or actor limit is invalid.
    #[error("registry configuration: {0}")]
    Config(#[from] ConfigError),
    /// The node table's length differs from the node count.
    #[error("registry has {records} node records but node_count is {node_count}")]
    NodeTable {
        /// Records found.
        records: usize,
        /// The node count.
        node_count: u16,
    },
    /// A node set names a node outside the cluster.
    #[error("{node}'s {field} names a node outside n1..=n{node_count}")]
    UnknownMember {
        /// The record holding the set.
        node: NodeId,
        /// Which set (`view`, `partitioned_from` or `detected`).
        field: &'static str,
        /// The node count.
        node_count: u16,
    },
    /// A key or a set names a node that is not in the cluster.
    #[error("{field} names {node}, which is not a node of this cluster")]
    UnknownNode {
        /// The node named.
        node: NodeId,
        /// Where it was named.
        field: &'static str,
    },
    /// A node holds a term or view number above the registry counter that issues them.
    #[error("{node}'s {field} {value} is above the registry's {field} counter {counter}")]
    AboveCounter {
        /// The node.
        node: NodeId,
        /// `term` or `view_number`.
        field: &'static str,
        /// The value held.
        value: u64,
        /// The counter.
        counter: u64,
    },
    /// A node's primary belief and its term disagree (a term is held exactly while primary).
    #[error("{node} has believes_primary {believes_primary} with term {term}: a term is held exactly while primary")]
    PrimaryTerm {
        /// The node.
        node: NodeId,
        /// Its belief.
        believes_primary: bool,
        /// Its term.
        term: u64,
    },
    /// An actor's epoch is 0 or above the epoch counter.
    #[error("actor {actor}'s epoch {epoch} is outside 1..={epoch_counter} (the epoch counter)")]
    Epoch {
        /// The actor.
        actor: ActorId,
        /// Its epoch.
        epoch: u64,
        /// The epoch counter.
        epoch_counter: u64,
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
    /// A state invariant of the fixed protocol does not hold.
    #[error("registry violates an invariant: {0}")]
    Invariant(Violation),
}

impl TryFrom<RegistryFields> for State {
    type Error = RegistryError;
    fn try_from(f: RegistryFields) -> Result<Self, RegistryError> {
        if f.format_version != REGISTRY_FORMAT_VERSION {
            return Err(RegistryError::Version {
                found: f.format_version,
                expected: REGISTRY_FORMAT_VERSION,
            });
        }
        let config = Config::fixed(f.node_count)?.with_actors_max(f.actors_max)?;
        let state = State::assemble(config, f)?;
        state.validate()?;
        Ok(state)
    }
}

impl From<&State> for RegistryFields {
    fn from(s: &State) -> Self {
        RegistryFields {
            format_version: REGISTRY_FORMAT_VERSION,
            node_count: s.config.node_count(),
            actors_max: s.config.actors_max(),
            nodes: s.nodes.clone(),
            heartbeats: s.heartbeats,
            term_counter: s.term_counter,
            view_counter: s.view_counter,
            epoch_counter: s.epoch_counter,
            placements: s.placements.iter().map(|(&a, &p)| (a, p)).collect(),
            queue: s.queue.iter().map(|(&a, &e)| (a, e)).collect(),
        }
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.config.is_production() {
            return Err(serde::ser::Error::custom(
                "only a state of the production protocol (fixed, unbounded, no mutant) can be \
                 persisted",
            ));
        }
        RegistryFields::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = RegistryFields::deserialize(deserializer)?;
        State::try_from(fields).map_err(serde::de::Error::custom)
    }
}

impl State {
    /// The spec's `Init`: every node Left, nothing partitioned, counters at 0.
    pub fn initial(config: Config) -> State {
        let state = State {
            config,
            nodes: vec![NodeRecord::INITIAL; usize::from(config.node_count())],
            heartbeats: NodeSet::EMPTY,
            term_counter: 0,
            view_counter: 0,
            epoch_counter: 0,
            placements: OrdMap::new(),
            hosted: OrdMap::new(),
            queue: MigrationQueue::default(),
        };
        assert_eq!(state.nodes.len(), usize::from(config.node_count()));
        debug_assert!(state.active().is_empty());
        state
    }

    /// Builds a state from fields under `config`, checking the structure (table sizes, node ids,
    /// symmetric partitions, placements and queue entries that agree) but not the protocol's
    /// invariants: see [`State::validate`].
    fn assemble(config: Config, f: RegistryFields) -> Result<State, RegistryError> {
        let node_count = config.node_count();
        if f.nodes.len() != usize::from(node_count) {
            return Err(RegistryError::NodeTable {
                records: f.nodes.len(),
                node_count,
            });
        }
        let all = NodeSet::first(node_count);
        if let Some(node) = f.heartbeats.difference(all).iter().next() {
            return Err(RegistryError::UnknownNode {
                node,
                field: "heartbeats",
            });
        }
        for (i, record) in f.nodes.iter().enumerate() {
            let node = NodeId::from_index(i);
            for (field, set) in [
                ("view", record.view),
                ("partitioned_from", record.partitioned_from),
                ("detected", record.detected),
            ] {
                if !set.is_subset(all) {
                    return Err(RegistryError::UnknownMember {
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
                    return Err(RegistryError::Partition { a: node, b: other });
                }
            }
        }
        if u64::try_from(f.placements.len()).unwrap_or(u64::MAX) > config.actors_max() {
            return Err(RegistryError::TooManyActors {
                actors: f.placements.len(),
                actors_max: config.actors_max(),
            });
        }
        let mut hosted: OrdMap<NodeId, OrdSet<ActorId>> = OrdMap::new();
        for (&actor, p) in &f.placements {
            if !all.contains(p.node) {
                return Err(RegistryError::PlacementNode {
                    actor,
                    node: p.node,
                });
            }
            hosted.entry(p.node).or_default().insert(actor);
        }
        for (&actor, entry) in &f.queue {
            if f.placements.get(&actor).map(|p| p.node) != Some(entry.from) {
                return Err(RegistryError::QueueEntry {
                    actor,
                    from: entry.from,
                });
            }
        }
        let state = State {
            config,
            nodes: f.nodes,
            heartbeats: f.heartbeats,
            term_counter: f.term_counter,
            view_counter: f.view_counter,
            epoch_counter: f.epoch_counter,
            placements: f.placements.into_iter().collect(),
            hosted,
            queue: MigrationQueue::from_entries(f.queue),
        };
        assert_eq!(state.nodes.len(), usize::from(node_count));
        assert!(state.queue.len() <= state.placements.len());
        Ok(state)
    }

    /// Checks that this state can be a state of its protocol: every state invariant of
    /// [`crate::invariants`] holds, and (registry counters) every term and view number is at
    /// most the counter that issued it, a term is held exactly while primary, and every epoch is
    /// in `1..=epoch_counter`. Decoding runs it; a store runs it on what it assembled.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let rules = Rules::of(&self.config);
        for (node, r) in self.node_ids().zip(&self.nodes) {
            if rules.registry_counters() {
                for (field, value, counter) in [
                    ("term", r.term, self.term_counter),
                    ("view_number", r.view_number, self.view_counter),
                ] {
                    if value > counter {
                        return Err(RegistryError::AboveCounter {
                            node,
                            field,
                            value,
                            counter,
                        });
                    }
                }
                if r.believes_primary != (r.term > 0) {
                    return Err(RegistryError::PrimaryTerm {
                        node,
                        believes_primary: r.believes_primary,
                        term: r.term,
                    });
                }
            }
        }
        for (&actor, p) in &self.placements {
            if p.epoch == 0 || p.epoch > self.epoch_counter {
                return Err(RegistryError::Epoch {
                    actor,
                    epoch: p.epoch,
                    epoch_counter: self.epoch_counter,
                });
            }
        }
        invariants::check_state(self).map_err(RegistryError::Invariant)?;
        Ok(())
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
    pub fn heartbeats(&self) -> NodeSet {
        self.heartbeats
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

    /// The number of actors placed on `node` (its load).
    pub fn load(&self, node: NodeId) -> u64 {
        self.hosted
            .get(&node)
            .map_or(0, |set| u64::try_from(set.len()).unwrap_or(u64::MAX))
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
        self.heartbeats = if received {
            self.heartbeats.with(node)
        } else {
            self.heartbeats.without(node)
        };
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

    /// The node table, the heartbeat set and the actor tables renamed by `perm` (node at index
    /// `i` becomes index `perm[i]`): symmetry reduction.
    #[cfg(feature = "checking")]
    pub(crate) fn permuted_nodes(&self, perm: &[usize]) -> (Vec<NodeRecord>, NodeSet) {
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
        (nodes, self.heartbeats.permuted(perm))
    }

    /// The actor tables under a node permutation, as (actor, node, epoch, queue entry) in actor
    /// order: what symmetry reduction compares when two node tables tie.
    #[cfg(feature = "checking")]
    pub(crate) fn permuted_actors(
        &self,
        perm: &[usize],
    ) -> Vec<(ActorId, NodeId, u64, Option<MigrationEntry>)> {
        let map = |n: NodeId| n.permuted(perm);
        self.placements
            .iter()
            .map(|(&a, p)| {
                let entry = self.queue.get(a).map(|e| MigrationEntry {
                    from: map(e.from),
                    ..e
                });
                (a, map(p.node), p.epoch, entry)
            })
            .collect()
    }

    /// A copy of this state with its nodes renamed by `perm`.
    #[cfg(feature = "checking")]
    pub(crate) fn permuted(&self, perm: &[usize]) -> State {
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
        let queue = self.queue.renamed(map_node);
        let (nodes, heartbeats) = self.permuted_nodes(perm);
        let result = State {
            nodes,
            heartbeats,
            placements,
            hosted,
            queue,
            ..self.clone()
        };
        debug_assert_eq!(result.active().len(), self.active().len());
        debug_assert_eq!(result.placements.len(), self.placements.len());
        result
    }

    /// This state with its view numbers, terms and epochs renumbered by rank (feature
    /// `checking`): within each of the three kinds, the values the state holds (every node's
    /// view number, every node's term, every placement's epoch) together with 0 (and the term
    /// counter) are replaced by their rank among those values, so 0 stays 0 and order and
    /// equality are kept; the term counter keeps its rank (the largest), and the view and epoch
    /// counters become the largest rank held. The fixed protocol only compares
    /// these values for order and equality and draws new ones above the counter, so a state and
    /// its renumbering have the same future up to renumbering (the checker's finite graph of
    /// the unbounded protocol; `core/tests/renumber.rs` tests it). Idempotent.
    #[cfg(feature = "checking")]
    pub(crate) fn renumbered(&self) -> State {
        fn table(values: impl Iterator<Item = u64>) -> Vec<u64> {
            let mut table: Vec<u64> = std::iter::once(0).chain(values).collect();
            table.sort_unstable();
            table.dedup();
            table
        }
        fn identity(table: &[u64]) -> bool {
            table
                .iter()
                .enumerate()
                .all(|(i, &v)| u64::try_from(i).is_ok_and(|i| i == v))
        }
        fn rank(table: &[u64], value: u64) -> u64 {
            let i = table.binary_search(&value).unwrap_or(0);
            u64::try_from(i).unwrap_or(u64::MAX)
        }
        // The view and epoch counters are only ever used to draw a value above every value
        // held (and TypeOK bounds values by them), so they become the largest rank held: a
        // counter above every held value and one equal to the largest behave alike. The term
        // counter is also compared for equality with held terms (the primary in office holds
        // it), so it keeps its own rank.
        let views = table(self.nodes.iter().map(|r| r.view_number));
        let terms = table(self.nodes.iter().map(|r| r.term).chain([self.term_counter]));
        let epochs = table(self.placements.values().map(|p| p.epoch));
        let top = |table: &[u64]| u64::try_from(table.len() - 1).unwrap_or(u64::MAX);
        let mut next = self.clone();
        if !identity(&views) || !identity(&terms) {
            for r in &mut next.nodes {
                r.view_number = rank(&views, r.view_number);
                r.term = rank(&terms, r.term);
            }
            next.term_counter = rank(&terms, self.term_counter);
        }
        next.view_counter = top(&views);
        next.epoch_counter = top(&epochs);
        if !identity(&epochs) {
            next.placements = self
                .placements
                .iter()
                .map(|(&a, p)| {
                    (
                        a,
                        Placement {
                            epoch: rank(&epochs, p.epoch),
                            ..*p
                        },
                    )
                })
                .collect();
        }
        debug_assert_eq!(next.nodes.len(), self.nodes.len());
        debug_assert!(next.view_counter <= self.view_counter);
        next
    }

    /// Builds a state of any configuration from its fields, checking their structure (table
    /// sizes, node ids, symmetric partitions, placements and queue entries that agree) but not
    /// the protocol's invariants (feature `checking`): the checker stores states compactly and
    /// rebuilds them with it. The format version is not checked.
    #[cfg(feature = "checking")]
    pub fn from_fields_unvalidated(
        config: Config,
        fields: RegistryFields,
    ) -> Result<State, RegistryError> {
        if fields.node_count != config.node_count() {
            return Err(RegistryError::NodeTable {
                records: fields.nodes.len(),
                node_count: config.node_count(),
            });
        }
        State::assemble(config, fields)
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

    /// `Majority`: the fewest nodes that form a strict majority of all nodes, `|Nodes| / 2 + 1`
    /// (the count `has_majority` needs).
    pub fn majority(&self) -> u16 {
        self.config.node_count() / 2 + 1
    }

    /// `Votes(n)`: the votes for declaring `n` failed, i.e. the Active nodes `d != n` that have
    /// recorded a detection of `n` (`n \in detected[d]`) and still cannot communicate with it.
    pub fn failure_votes(&self, node: NodeId) -> NodeSet {
        self.active()
            .without(node)
            .iter()
            .filter(|&d| {
                self.node(d).is_some_and(|r| r.detected.contains(node))
                    && !self.can_communicate(d, node)
            })
            .collect()
    }

    /// `FailureQuorum(n)`: `n`'s heartbeat was not received and its votes
    /// ([`State::failure_votes`]) are a strict majority of all nodes.
    pub fn has_failure_quorum(&self, node: NodeId) -> bool {
        !self.heartbeat_received(node) && self.failure_votes(node).len() >= self.majority()
    }

    /// `LooksCrashed(n)` (the premise of EventualFailureDeclaration): `n` is Active, silent (its
    /// heartbeat was not received) and cut off from every other Active node, while the other
    /// Active nodes are a strict majority of all nodes and can all communicate with one another,
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
                        && r.partitioned_from.intersection(others).is_empty()
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
        let mut fields = RegistryFields::from(&three());
        fields.nodes.pop();
        assert_eq!(
            State::try_from(fields).unwrap_err(),
            RegistryError::NodeTable {
                records: 2,
                node_count: 3
            }
        );
        let mut fields = RegistryFields::from(&three());
        fields.nodes[0].view = NodeSet::single(NodeId(4));
        assert_eq!(
            State::try_from(fields).unwrap_err().to_string(),
            "n1's view names a node outside n1..=n3"
        );
        let mut fields = RegistryFields::from(&three());
        fields.nodes[0].partitioned_from = NodeSet::single(NodeId(2));
        assert_eq!(
            State::try_from(fields).unwrap_err(),
            RegistryError::Partition {
                a: NodeId(1),
                b: NodeId(2)
            }
        );
        let mut fields = RegistryFields::from(&three());
        fields.format_version = 7;
        assert_eq!(
            State::try_from(fields).unwrap_err().to_string(),
            "registry format version 7 is not supported (this build reads version 1)"
        );
    }

    #[cfg(feature = "checking")]
    #[test]
    fn permutation_moves_records_and_renames_members() {
        let mut s = three();
        s.nodes[0].status = NodeStatus::Active;
        s.nodes[0].view = NodeSet::first(2);
        s.nodes[0].partitioned_from = NodeSet::single(NodeId(3));
        s.nodes[2].partitioned_from = NodeSet::single(NodeId(1));
        s.heartbeats = NodeSet::single(NodeId(1));
        // n1 -> n3, n2 -> n1, n3 -> n2
        let p = s.permuted(&[2, 0, 1]);
        assert_eq!(p.nodes[2].status, NodeStatus::Active);
        assert_eq!(
            p.nodes[2].view,
            [NodeId(3), NodeId(1)].into_iter().collect()
        );
        assert_eq!(p.nodes[2].partitioned_from, NodeSet::single(NodeId(2)));
        assert_eq!(p.nodes[1].partitioned_from, NodeSet::single(NodeId(3)));
        assert_eq!(p.heartbeats, NodeSet::single(NodeId(3)));
        assert_eq!(p.permuted(&[1, 2, 0]), s);
    }
}
