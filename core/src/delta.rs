//! What a step changed: one definition, used by the checker's counterexamples, the stores and
//! the simulation's traces.

use crate::actor::{ActorId, MigrationEntry, MigrationQueue, Placement};
use crate::footprint::{Footprint, Key, Value};
use crate::node::NodeId;
use crate::refusal::Counter;
use crate::state::{NodeRecord, State};
use imbl::ordmap::DiffItem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// The changed part of a registry: node records, heartbeat flags, counters, placements and queue
/// entries that changed (`None`: removed), plus the derived loads and actor count that follow
/// from the placements (so that a store can write its load keys without recomputing them).
/// `state.apply(&state.delta(&next)) == next`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Node records written.
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    /// Heartbeat flags written.
    pub heartbeats: BTreeMap<NodeId, bool>,
    /// Counters written.
    pub counters: BTreeMap<Counter, u64>,
    /// Placements written (`None`: the actor was removed).
    pub placements: BTreeMap<ActorId, Option<Placement>>,
    /// Queue entries written (`None`: the entry was removed).
    pub queue: BTreeMap<ActorId, Option<MigrationEntry>>,
    /// Derived: the load of every node whose load changed.
    pub loads: BTreeMap<NodeId, u64>,
    /// Derived: the number of placed actors, when it changed.
    pub actor_count: Option<u64>,
}

/// A delta that cannot be applied to a state, naming why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DeltaError {
    /// The delta names a node outside the cluster.
    #[error("delta writes {key}, but {node} is not a node of this cluster")]
    UnknownNode {
        /// The key.
        key: Key,
        /// The node.
        node: NodeId,
    },
    /// After applying, a queue entry does not match its actor's placement.
    #[error("after the delta, {actor}'s queue entry names {from}, where it is not placed")]
    QueueEntry {
        /// The actor.
        actor: ActorId,
        /// The entry's node.
        from: NodeId,
    },
    /// A derived value in the delta disagrees with the placements.
    #[error("delta says {key} is {claimed}, but the placements give {actual}")]
    Derived {
        /// The derived key.
        key: Key,
        /// The delta's value.
        claimed: u64,
        /// The value the placements give.
        actual: u64,
    },
}

impl Delta {
    /// Whether the delta writes nothing.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.heartbeats.is_empty()
            && self.counters.is_empty()
            && self.placements.is_empty()
            && self.queue.is_empty()
            && self.loads.is_empty()
            && self.actor_count.is_none()
    }

    /// The keys the delta writes, derived keys included (the hosted index of every node a
    /// placement leaves or enters).
    pub fn keys(&self, before: &State) -> Vec<Key> {
        let mut keys: Vec<Key> = Vec::new();
        keys.extend(self.nodes.keys().map(|&n| Key::Node(n)));
        keys.extend(self.heartbeats.keys().map(|&n| Key::Heartbeat(n)));
        keys.extend(self.counters.keys().map(|&c| Key::Counter(c)));
        keys.extend(self.placements.keys().map(|&a| Key::Actor(a)));
        keys.extend(self.queue.keys().map(|&a| Key::Queue(a)));
        keys.extend(self.loads.keys().map(|&n| Key::Load(n)));
        if self.actor_count.is_some() {
            keys.push(Key::ActorCount);
        }
        let active = |status: Option<crate::node::NodeStatus>| {
            status == Some(crate::node::NodeStatus::Active)
        };
        if self
            .nodes
            .iter()
            .any(|(&n, r)| active(before.node(n).map(|b| b.status)) != active(Some(r.status)))
        {
            keys.push(Key::Members);
        }
        for (&actor, new) in &self.placements {
            let old = before.placement(actor).map(|p| p.node);
            let new = new.map(|p| p.node);
            if old != new {
                keys.extend(old.into_iter().chain(new).map(Key::Hosted));
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

impl State {
    /// What changed from `self` to `next` (two states of the same cluster).
    pub fn delta(&self, next: &State) -> Delta {
        let mut delta = Delta::default();
        for (n, (a, b)) in self.node_ids().zip(self.nodes().iter().zip(next.nodes())) {
            if a != b {
                delta.nodes.insert(n, b.clone());
            }
        }
        let flipped = self.heartbeats().symmetric_difference(next.heartbeats());
        for n in flipped.iter() {
            delta.heartbeats.insert(n, next.heartbeat_received(n));
        }
        for (counter, a, b) in [
            (Counter::Term, self.term_counter(), next.term_counter()),
            (
                Counter::ViewNumber,
                self.view_counter(),
                next.view_counter(),
            ),
            (Counter::Epoch, self.epoch_counter(), next.epoch_counter()),
        ] {
            if a != b {
                delta.counters.insert(counter, b);
            }
        }
        for (actor, old, new) in diff(self.placements(), next.placements()) {
            delta.placements.insert(actor, new);
            for node in old.iter().chain(new.iter()).map(|p| p.node) {
                if self.load(node) != next.load(node) {
                    delta.loads.insert(node, next.load(node));
                }
            }
        }
        for (actor, old, new) in diff_queue(self.queue(), next.queue()) {
            debug_assert_ne!(old, new);
            delta.queue.insert(actor, new);
        }
        if self.placements().len() != next.placements().len() {
            delta.actor_count = Some(u64::try_from(next.placements().len()).unwrap_or(u64::MAX));
        }
        debug_assert_eq!(delta.is_empty(), self == next);
        delta
    }

    /// What a transaction with `footprint` writes when it moves the registry from `self` to
    /// `next`: the [`State::delta`], plus every written key the transaction did not read (a
    /// blind write: its old value in `self` is not known to the transaction, so it is written
    /// whether or not it changed; SendHeartbeat's and ResetHeartbeats' flags are the case).
    pub fn delta_within(&self, next: &State, footprint: &Footprint) -> Delta {
        let mut delta = self.delta(next);
        for key in &footprint.writes {
            match *key {
                Key::Heartbeat(n) if !footprint.reads.contains(key) => {
                    delta.heartbeats.insert(n, next.heartbeat_received(n));
                }
                Key::Node(n) if !footprint.reads.contains(key) => {
                    if let Some(record) = next.node(n) {
                        delta.nodes.insert(n, record.clone());
                    }
                }
                _ => {}
            }
        }
        debug_assert!(delta.heartbeats.keys().all(|&n| next.node(n).is_some()));
        delta
    }

    /// The values of the non-derived `keys` in this state, as a delta (placing an actor that is
    /// absent here removes it). Derived keys are skipped.
    pub fn project<'k>(&self, keys: impl IntoIterator<Item = &'k Key>) -> Delta {
        let mut delta = Delta::default();
        for key in keys {
            match (*key, self.get(key)) {
                (Key::Node(n), Value::Node(Some(record))) => {
                    delta.nodes.insert(n, record);
                }
                (Key::Heartbeat(n), Value::Heartbeat(flag)) => {
                    delta.heartbeats.insert(n, flag);
                }
                (Key::Counter(c), Value::Count(v)) => {
                    delta.counters.insert(c, v);
                }
                (Key::Actor(a), Value::Actor(p)) => {
                    delta.placements.insert(a, p);
                }
                (Key::Queue(a), Value::Queue(e)) => {
                    delta.queue.insert(a, e);
                }
                _ => {}
            }
        }
        delta
    }

    /// This state with `delta` written. Derived values are recomputed from the placements and
    /// checked against the delta's.
    pub fn apply(&self, delta: &Delta) -> Result<State, DeltaError> {
        let mut next = self.clone();
        for (&n, record) in &delta.nodes {
            if !next.update_node(n, |slot| slot.clone_from(record)) {
                return Err(DeltaError::UnknownNode {
                    key: Key::Node(n),
                    node: n,
                });
            }
        }
        for (&n, &flag) in &delta.heartbeats {
            if self.node(n).is_none() {
                return Err(DeltaError::UnknownNode {
                    key: Key::Heartbeat(n),
                    node: n,
                });
            }
            next.set_heartbeat(n, flag);
        }
        for (&counter, &value) in &delta.counters {
            next.overwrite_counter(counter, value);
        }
        for (&actor, placement) in &delta.placements {
            match placement {
                Some(p) => {
                    if self.node(p.node).is_none() {
                        return Err(DeltaError::UnknownNode {
                            key: Key::Actor(actor),
                            node: p.node,
                        });
                    }
                    next.place_keeping_queue(actor, *p);
                }
                None => {
                    next.drop_actor(actor);
                }
            }
        }
        for (&actor, entry) in &delta.queue {
            match entry {
                Some(e) => {
                    next.enqueue_unchecked(actor, *e);
                }
                None => next.dequeue(actor),
            }
        }
        // Only an actor whose placement or queue entry the delta wrote can disagree now (the
        // others agreed before): O(delta), not O(queue).
        for &actor in delta.placements.keys().chain(delta.queue.keys()) {
            if let Some(entry) = next.queue().get(actor) {
                if next.placement(actor).map(|p| p.node) != Some(entry.from) {
                    return Err(DeltaError::QueueEntry {
                        actor,
                        from: entry.from,
                    });
                }
            }
        }
        for (&node, &claimed) in &delta.loads {
            let actual = next.load(node);
            if claimed != actual {
                return Err(DeltaError::Derived {
                    key: Key::Load(node),
                    claimed,
                    actual,
                });
            }
        }
        if let Some(claimed) = delta.actor_count {
            let actual = u64::try_from(next.placements().len()).unwrap_or(u64::MAX);
            if claimed != actual {
                return Err(DeltaError::Derived {
                    key: Key::ActorCount,
                    claimed,
                    actual,
                });
            }
        }
        debug_assert_eq!(next.nodes().len(), self.nodes().len());
        Ok(next)
    }
}

/// The actors whose placement differs, with old and new.
fn diff(
    a: &imbl::OrdMap<ActorId, Placement>,
    b: &imbl::OrdMap<ActorId, Placement>,
) -> Vec<(ActorId, Option<Placement>, Option<Placement>)> {
    // imbl's diff skips the subtrees the two maps share: a step's successor shares all but
    // the paths it wrote, so this is O(changes x log actors), not O(actors).
    changes(a.diff(b))
}

/// The actors whose queue entry differs, with old and new.
fn diff_queue(
    a: &MigrationQueue,
    b: &MigrationQueue,
) -> Vec<(ActorId, Option<MigrationEntry>, Option<MigrationEntry>)> {
    changes(a.diff(b))
}

/// An imbl diff of two per-actor maps as (actor, old value, new value), in actor order.
fn changes<'a, V: Copy + PartialEq + 'a>(
    items: impl Iterator<Item = DiffItem<'a, 'a, ActorId, V>>,
) -> Vec<(ActorId, Option<V>, Option<V>)> {
    let out: Vec<(ActorId, Option<V>, Option<V>)> = items
        .map(|item| match item {
            DiffItem::Add(&actor, &new) => (actor, None, Some(new)),
            DiffItem::Update {
                old: (&actor, &old),
                new: (_, &new),
            } => (actor, Some(old), Some(new)),
            DiffItem::Remove(&actor, &old) => (actor, Some(old), None),
        })
        .collect();
    debug_assert!(out.iter().all(|(_, old, new)| old != new));
    debug_assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
    out
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for (n, r) in &self.nodes {
            parts.push(format!(
                "{n} := {} view {}#{}{}{}{}{}",
                r.status,
                r.view,
                r.view_number,
                if r.believes_primary {
                    format!(" primary term {}", r.term)
                } else if r.term > 0 {
                    format!(" term {}", r.term)
                } else {
                    String::new()
                },
                if r.partitioned_from.is_empty() {
                    String::new()
                } else {
                    format!(" partitioned from {}", r.partitioned_from)
                },
                if r.detected.is_empty() {
                    String::new()
                } else {
                    format!(" detected {}", r.detected)
                },
                ""
            ));
        }
        for (n, flag) in &self.heartbeats {
            parts.push(format!("heartbeat_received[{n}] := {flag}"));
        }
        for (c, v) in &self.counters {
            parts.push(format!("{c} counter := {v}"));
        }
        for (a, p) in &self.placements {
            match p {
                Some(p) => parts.push(format!("{a} := {}@{}", p.node, p.epoch)),
                None => parts.push(format!("{a} removed")),
            }
        }
        for (a, e) in &self.queue {
            match e {
                Some(e) => parts.push(format!("queue[{a}] := leave {} ({})", e.from, e.reason)),
                None => parts.push(format!("queue[{a}] cleared")),
            }
        }
        f.write_str(&parts.join("; "))
    }
}
