//! Footprints: the registry keys each event reads and writes.
//!
//! A store runs an event as one serializable transaction that reads exactly the event's read
//! footprint, runs [`crate::step`], and writes the event's write footprint; two transactions
//! conflict only when one writes a key the other reads ([`Footprint::conflicts_with`]). The
//! property tests (`core/tests/footprints.rs`) show that nothing outside the read footprint
//! changes `step`'s outcome and that nothing outside the write footprint changes.
//!
//! Footprints are those of the fixed protocol (the only one a store runs). They are computed from
//! the state, but only from keys in the read footprint (for example MarkNodeFailed(n) reads the
//! actors hosted on `n`, then their queue entries).

use crate::actor::{ActorId, MigrationEntry, Placement};
use crate::event::Event;
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::Counter;
use crate::state::{NodeRecord, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// One key of the registry, as a store lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// A node's membership record ([`NodeRecord`]).
    Node(NodeId),
    /// A node's `heartbeat_received` flag (apart from its record, so that a heartbeat writes no
    /// membership record).
    Heartbeat(NodeId),
    /// One of the registry-wide counters (term, view number, epoch).
    Counter(Counter),
    /// The number of placed actors (derived from the placements; a store keeps it as a key).
    ActorCount,
    /// An actor's placement.
    Actor(ActorId),
    /// An actor's migration queue entry.
    Queue(ActorId),
    /// The number of actors placed on a node (derived; a store keeps it as a key).
    Load(NodeId),
    /// The set of actors placed on a node (derived; a store keeps it as an index range).
    Hosted(NodeId),
    /// The current members: the set of Active nodes (derived from the node records' statuses;
    /// a store keeps it as one key, written by every step that changes the set). A step that
    /// needs only the set (SyncViews, a join, a placement) reads this key instead of every
    /// node record, so that members writing their own records do not conflict with it.
    Members,
}

impl Key {
    /// Whether the key's value is derived from the placements (a store maintains it from the
    /// placement changes of a [`crate::Delta`]).
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            Key::ActorCount | Key::Load(_) | Key::Hosted(_) | Key::Members
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Node(n) => write!(f, "node/{n}"),
            Key::Heartbeat(n) => write!(f, "heartbeat/{n}"),
            Key::Counter(c) => write!(f, "counter/{c:?}"),
            Key::ActorCount => write!(f, "counter/actors"),
            Key::Actor(a) => write!(f, "actor/{a}"),
            Key::Queue(a) => write!(f, "queue/{a}"),
            Key::Load(n) => write!(f, "load/{n}"),
            Key::Hosted(n) => write!(f, "hosted/{n}"),
            Key::Members => write!(f, "members"),
        }
    }
}

/// The value of one [`Key`] in a state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// A node record (`None` for an id outside the cluster).
    Node(Option<NodeRecord>),
    /// A heartbeat flag.
    Heartbeat(bool),
    /// A counter, or the actor count, or a load.
    Count(u64),
    /// A placement.
    Actor(Option<Placement>),
    /// A queue entry.
    Queue(Option<MigrationEntry>),
    /// The actors placed on a node, in id order.
    Hosted(Vec<ActorId>),
    /// The Active nodes.
    Members(NodeSet),
}

impl State {
    /// The value of `key` in this state.
    pub fn get(&self, key: &Key) -> Value {
        match *key {
            Key::Node(n) => Value::Node(self.node(n).cloned()),
            Key::Heartbeat(n) => Value::Heartbeat(self.heartbeat_received(n)),
            Key::Counter(Counter::Term) => Value::Count(self.term_counter()),
            Key::Counter(Counter::ViewNumber) => Value::Count(self.view_counter()),
            Key::Counter(Counter::Epoch) => Value::Count(self.epoch_counter()),
            Key::ActorCount => {
                Value::Count(u64::try_from(self.placements().len()).unwrap_or(u64::MAX))
            }
            Key::Actor(a) => Value::Actor(self.placement(a)),
            Key::Queue(a) => Value::Queue(self.queue().get(a)),
            Key::Load(n) => Value::Count(self.load(n)),
            Key::Hosted(n) => Value::Hosted(
                self.hosted(n)
                    .map(|set| set.iter().copied().collect())
                    .unwrap_or_default(),
            ),
            Key::Members => Value::Members(self.active()),
        }
    }
}

/// What one event reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    /// The keys the event's transaction reads (and conflicts on).
    pub reads: BTreeSet<Key>,
    /// The keys it may write.
    pub writes: BTreeSet<Key>,
}

impl Footprint {
    /// Whether two transactions with these footprints conflict: one writes a key the other
    /// reads. (Two blind writes of the same key do not conflict: the later commit wins, which is
    /// the serial order.)
    pub fn conflicts_with(&self, other: &Footprint) -> bool {
        !self.reads.is_disjoint(&other.writes) || !other.reads.is_disjoint(&self.writes)
    }

    /// Whether the footprint reads every node record of `state`'s cluster.
    pub fn reads_every_node(&self, state: &State) -> bool {
        state.node_ids().all(|n| self.reads.contains(&Key::Node(n)))
    }
}

/// Collects a footprint's keys in vectors, then builds the sets in bulk (sorted input makes
/// `BTreeSet` construction linear).
#[derive(Default)]
struct Builder {
    reads: Vec<Key>,
    writes: Vec<Key>,
}

impl Builder {
    fn read(&mut self, keys: impl IntoIterator<Item = Key>) {
        self.reads.extend(keys);
    }

    fn write(&mut self, keys: impl IntoIterator<Item = Key>) {
        self.writes.extend(keys);
    }

    fn read_write(&mut self, keys: impl IntoIterator<Item = Key>) {
        let start = self.writes.len();
        self.writes.extend(keys);
        self.reads.extend_from_slice(&self.writes[start..]);
    }

    fn finish(mut self) -> Footprint {
        for keys in [&mut self.reads, &mut self.writes] {
            keys.sort_unstable();
            keys.dedup();
        }
        Footprint {
            reads: self.reads.into_iter().collect(),
            writes: self.writes.into_iter().collect(),
        }
    }
}

fn every_node(state: &State) -> impl Iterator<Item = Key> + '_ {
    state.node_ids().map(Key::Node)
}

fn status(state: &State, n: NodeId) -> Option<NodeStatus> {
    state.node(n).map(|r| r.status)
}

/// The actors hosted on `n`, in id order.
fn hosted(state: &State, n: NodeId) -> Vec<ActorId> {
    state
        .hosted(n)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default()
}

/// The nodes whose detection record names `n`.
fn detectors_of(state: &State, n: NodeId) -> Vec<NodeId> {
    state
        .node_ids()
        .filter(|&m| state.node(m).is_some_and(|r| r.detected.contains(n)))
        .collect()
}

/// The registry keys a step's outcome depends on without reading them: the proposer's own
/// heartbeat (fixed rules) depends on its node record (is it Active?), and every way out of
/// Active rewrites the node's slot, which the proposal compares ([`crate::execute`]). Empty for
/// every other step: their footprints read what they depend on.
pub fn fenced(state: &State, event: &Event) -> BTreeSet<Key> {
    let fenced: BTreeSet<Key> = match *event {
        Event::SendHeartbeat { node } if crate::rules::Rules::of(state.config()).own_heartbeat => {
            BTreeSet::from([Key::Node(node)])
        }
        _ => BTreeSet::new(),
    };
    debug_assert!(fenced.is_disjoint(&footprint(state, event).reads));
    debug_assert!(fenced.len() <= 1);
    fenced
}

/// The footprint of `event` from `state` in the fixed protocol. Reads name the keys whose values
/// the step's outcome depends on; writes every key the step may change (derived keys included).
pub fn footprint(state: &State, event: &Event) -> Footprint {
    let mut f = Builder::default();
    let view = Key::Counter(Counter::ViewNumber);
    let term = Key::Counter(Counter::Term);
    let epoch = Key::Counter(Counter::Epoch);
    let active = state.active();
    match *event {
        Event::NodeJoin { node } => {
            // Whether the node bootstraps depends on whether any node is Active: the members.
            f.read([Key::Node(node), Key::Members]);
            f.read([view, term]);
            f.write([Key::Node(node)]);
            if active.is_empty() && status(state, node) == Some(NodeStatus::Left) {
                // The bootstrap is also the node's heartbeat this round (registry v2); the flag
                // is read too (see SendHeartbeat).
                f.write([view, term, Key::Members]);
                f.read_write([Key::Heartbeat(node)]);
            }
        }
        Event::NodeJoinComplete { node } => {
            // The members (the new configuration, and which of them the node reaches: its own
            // record holds its partitions, kept symmetric), never another member's record.
            f.read_write([Key::Node(node), view, Key::Members]);
            // The completed join is also the node's heartbeat this round (registry v2); the flag
            // is read too (see SendHeartbeat).
            f.read_write([Key::Heartbeat(node)]);
            if active.is_empty() {
                // Registry v2: it bootstraps an empty cluster, with a fresh term.
                f.read_write([term]);
            }
            // Registry v2 (one configuration): no other member's record is written.
        }
        Event::NodeLeave { node } => {
            let actors = hosted(state, node);
            // Registry v2 (one configuration): the leaver's record and the configuration number;
            // the votes against it are dropped, so the records holding them are written (which
            // records those are is read from every record).
            f.read(every_node(state));
            f.read_write([Key::Node(node), view]);
            if status(state, node) == Some(NodeStatus::Active) {
                f.write(detectors_of(state, node).into_iter().map(Key::Node));
                f.write([Key::Members]);
            }
            f.read([Key::Hosted(node)]);
            f.read_write(actors.iter().map(|&a| Key::Queue(a)));
        }
        Event::NodeLeaveComplete { node } => {
            f.read(every_node(state));
            f.read([Key::Load(node)]);
            // Registry v2 (one configuration): no member's view, no configuration number.
            f.read_write([Key::Node(node)]);
            f.write(detectors_of(state, node).into_iter().map(Key::Node));
        }
        Event::SendHeartbeat { node } => {
            if crate::rules::Rules::of(state.config()).own_heartbeat {
                // Registry v2: a write of the node's own key, which names the round it ran at; it
                // reads that key alone (so one node's heartbeats land in order, even a late
                // retry), no record. Its guard (the node is Active) is fenced by the node's slot,
                // which the proposal compares and every way out of Active rewrites (`execute`);
                // a heartbeat that lands after a new round opened names a closed round and
                // changes no flag.
                if status(state, node) == Some(NodeStatus::Active) {
                    f.read_write([Key::Heartbeat(node)]);
                }
            } else {
                // The reference rule (a checking mutant, `heartbeat-by-peer`): the flags of
                // every Active or Leaving peer it can reach too, read from every record, so
                // that a store running the mutant commits what it does.
                f.read([Key::Node(node)]);
                f.read(every_node(state));
                if status(state, node) == Some(NodeStatus::Active) {
                    f.read_write([Key::Heartbeat(node)]);
                    f.write(
                        state
                            .node_ids()
                            .filter(|&m| {
                                state.can_communicate(node, m)
                                    && matches!(
                                        status(state, m),
                                        Some(NodeStatus::Active | NodeStatus::Leaving)
                                    )
                            })
                            .map(Key::Heartbeat),
                    );
                }
            }
        }
        Event::DetectFailure { detector, target } => {
            f.read([Key::Node(target)]);
            // Registry v2 (one configuration): the vote alone, in the detector's record; cast only
            // against a node whose heartbeat of the round was received (its flag is read).
            f.read_write([Key::Node(detector)]);
            f.read([Key::Heartbeat(target)]);
        }
        Event::MarkNodeFailed { node } => {
            let actors = hosted(state, node);
            f.read(every_node(state));
            f.read([Key::Heartbeat(node), Key::Hosted(node)]);
            // Registry v2 (one configuration): the configuration number, no member's view.
            f.read_write([Key::Node(node), view]);
            f.read_write(actors.iter().map(|&a| Key::Queue(a)));
            f.write(detectors_of(state, node).into_iter().map(Key::Node));
            f.write([Key::Members]);
        }
        Event::NodeRecover { node } => {
            // Registry v2: the node's own record only (no view guard).
            f.read_write([Key::Node(node)]);
        }
        Event::ElectPrimary { node } => {
            f.read(every_node(state));
            f.read_write([Key::Node(node), term]);
            f.write(state.believers().iter().map(Key::Node));
        }
        Event::PrimaryStepDown { node } => {
            f.read(every_node(state));
            f.write([Key::Node(node)]);
        }
        Event::CreatePartition { a, b } | Event::HealPartition { a, b } => {
            f.read_write([Key::Node(a), Key::Node(b)]);
        }
        Event::ResetHeartbeats => {
            // Every flag is cleared, and every vote (registry v2): which records hold votes is
            // read from every record. No flag is read: in the stored form a flag is "the node's
            // key names the open round", so opening the next round clears them all without
            // writing any node's key, and a heartbeat landing meanwhile names the closed round
            // (serialised before this step, whose clearing it does not survive).
            f.read(every_node(state));
            f.write(state.node_ids().map(Key::Heartbeat));
            f.write(
                state
                    .node_ids()
                    .filter(|&n| state.node(n).is_some_and(|r| !r.detected.is_empty()))
                    .map(Key::Node),
            );
        }
        Event::SyncViews { a, b } => {
            // Registry v2 (one configuration): the node's own record is written; the current
            // configuration (the members and the number) is read, not the members' records.
            f.read([Key::Members, Key::Node(b), view]);
            f.read_write([Key::Node(a)]);
        }
        Event::PlaceActor { actor } => {
            // The least-loaded member: the members and their loads, never their records.
            f.read([Key::Members]);
            f.read_write([Key::Actor(actor), Key::ActorCount, epoch]);
            f.read_write(active.iter().map(Key::Load));
            f.write(active.iter().map(Key::Hosted));
        }
        Event::MigrateActor { actor, .. } => {
            f.read_write([Key::Queue(actor)]);
            if let Some(entry) = state.queue().get(actor) {
                f.read(every_node(state));
                f.read([term]);
                f.read_write([Key::Actor(actor), epoch]);
                f.read_write(active.clone().with(entry.from).iter().map(Key::Load));
                f.write(active.with(entry.from).iter().map(Key::Hosted));
            }
        }
        Event::RebalanceActors { .. } => {
            f.read(every_node(state));
            f.read([term]);
            f.read(active.iter().map(Key::Load));
            f.read(active.iter().map(Key::Hosted));
            f.read_write(active.iter().flat_map(|n| hosted(state, n)).map(Key::Queue));
        }
        Event::RemoveActor { actor } => {
            f.read_write([Key::Actor(actor), Key::Queue(actor)]);
            if let Some(p) = state.placement(actor) {
                f.read_write([Key::ActorCount, Key::Load(p.node)]);
                f.write([Key::Hosted(p.node)]);
            }
        }
    }
    let f = f.finish();
    debug_assert!(
        f.reads.iter().all(|k| !matches!(k, Key::Heartbeat(_))) || {
            matches!(
                event,
                Event::MarkNodeFailed { .. }
                    | Event::ResetHeartbeats
                    | Event::SendHeartbeat { .. }
                    | Event::NodeJoin { .. }
                    | Event::NodeJoinComplete { .. }
                    | Event::DetectFailure { .. }
            )
        }
    );
    debug_assert!(!f.writes.contains(&Key::Counter(Counter::Term)) || f.reads.contains(&term));
    f
}
