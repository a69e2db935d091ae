//! The key-value layout shared by the stores on a real engine (etcd, FoundationDB): which key
//! holds what, how the registry and the metadata are rebuilt from the stored values, and what a
//! commit writes. The engine adapters only read, compare and write what this module names.
//!
//! The key names are [`crate::keys`]'s (relative to the store's prefix or subspace), each value
//! versioned ([`crate::codec`]: a version byte, then JSON). A key that is absent holds its
//! initial value (a node record of a Left node, a clear flag, a zero counter), so `init` writes
//! `config` only.
//!
//! **Queue entries are grouped** by the node they leave, then by actor id ([`crate::keys::queue`]): MarkNodeFailed
//! and NodeLeave queue every actor of a node in one step (one atomic transition), which with one
//! key per entry would need one write per actor in one transaction; etcd allows 128. A chunk
//! written is always compared too (read-modify-write), so no concurrent change to another entry
//! of the chunk is lost.

use crate::codec::{decode, encode, DecodeError};
use crate::keys::{log_key_name, meta_key_name, registry_key_name, CONFIG_KEY};
use crate::store::StoreError;
use membership_core::{
    ActorId, Applied, Commit, Config, Counter, Key, Meta, MetaKey, MigrationEntry, NodeId,
    NodeRecord, NodeSet, Placement, ProposalId, RegistryFields, Slot, State,
    REGISTRY_FORMAT_VERSION,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::keys::queue::{self, Chunk};

pub(crate) mod votes;
use votes::NodeVotes;

/// The stored configuration (`config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredConfig {
    /// `|Nodes|`.
    pub(crate) node_count: u16,
    /// The most actors that may be placed at once.
    pub(crate) actors_max: u64,
}

impl StoredConfig {
    pub(crate) fn of(config: &Config) -> StoredConfig {
        StoredConfig {
            node_count: config.node_count(),
            actors_max: config.actors_max(),
        }
    }
}

/// One stored key-value pair, as read: the key relative to the prefix, the bytes, and the
/// engine's version of the key (etcd: its `mod_revision`).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    pub(crate) version: i64,
}

/// The registry and metadata rebuilt from stored entries, with each key's version.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    pub(crate) state: State,
    pub(crate) meta: Meta,
    /// Every key read, with its version (a persistent map: cloning a cache's view is constant
    /// time whatever the registry's size).
    pub(crate) versions: imbl::OrdMap<String, i64>,
    /// Each node's stored votes and generation, where not the default ([`votes`]: the
    /// registry's `detected` sets are the votes that count).
    pub(crate) votes: imbl::OrdMap<NodeId, NodeVotes>,
}

impl Loaded {
    /// The version read for `key` (0: absent).
    pub(crate) fn version(&self, key: &str) -> i64 {
        self.versions.get(key).copied().unwrap_or(0)
    }
}

/// `node`'s stored generation among `votes` (0: none stored).
fn generation(votes: &imbl::OrdMap<NodeId, NodeVotes>, node: NodeId) -> u64 {
    votes.get(&node).map_or(0, |v| v.generation)
}

/// The votes of `node` that count at `round` among the stored `votes`.
fn counted(votes: &imbl::OrdMap<NodeId, NodeVotes>, node: NodeId, round: u64) -> NodeSet {
    votes.get(&node).map_or(NodeSet::EMPTY, |v| {
        v.counted(round, |t| generation(votes, t))
    })
}

pub(crate) fn number<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, DecodeError> {
    text.parse().map_err(|_| DecodeError {
        key: key.to_string(),
        reason: "not a key of this layout".to_string(),
    })
}

fn node_of(key: &str, text: &str, count: u16) -> Result<NodeId, DecodeError> {
    let id: u16 = number(key, text.strip_prefix('n').unwrap_or("x"))?;
    if id == 0 || id > count {
        return Err(DecodeError {
            key: key.to_string(),
            reason: format!("n{id} is not a node of this cluster ({count} nodes)"),
        });
    }
    Ok(NodeId(id))
}

fn actor_of(key: &str, text: &str) -> Result<ActorId, DecodeError> {
    Ok(ActorId(number(key, text.strip_prefix('a').unwrap_or("x"))?))
}

/// Rebuilds the registry and metadata from `entries` (any order). The `config` key must be
/// among them. Every value is decoded; the first undecodable one is the error, naming its key.
#[cfg(test)]
pub(crate) fn load(entries: Vec<Entry>) -> Result<Loaded, StoreError> {
    let (loaded, poisoned) = load_lenient(entries)?;
    match poisoned.into_values().next() {
        Some(error) => Err(error.into()),
        None => Ok(loaded),
    }
}

/// Keys whose stored value cannot be decoded, with the error naming each (a cache keeps them
/// apart: the proposals that read one fail with its error until the value is repaired).
pub(crate) type Poisoned = BTreeMap<String, DecodeError>;

/// What one stored key holds, decoded.
enum Decoded {
    /// A node record, its `detected` empty, and its stored votes (absent: the initial record,
    /// no votes).
    Node(NodeId, NodeRecord, NodeVotes),
    /// The round a node's latest heartbeat names (absent: none).
    Heartbeat(NodeId, Option<u64>),
    /// A registry counter.
    Counter(Counter, u64),
    /// A placement (absent: not placed).
    Actor(ActorId, Option<Placement>),
    /// A queue chunk's entries (absent: none).
    Queue(Chunk, Vec<(ActorId, MigrationEntry)>),
    /// A node slot (absent: never claimed).
    Slot(NodeId, Option<Slot>),
    /// The heartbeat round.
    Round(u64),
    /// An applied proposal's record (absent: forgotten).
    Applied(ProposalId, Option<Applied>),
    /// A key read back into nothing (the configuration, version markers, the log).
    Nothing,
}

/// Decodes one stored key (`None`: the key is absent or was deleted).
fn decode_key(key: &str, bytes: Option<&[u8]>, count: u16) -> Result<Decoded, DecodeError> {
    let parts: Vec<&str> = key.split('/').collect();
    let decoded = match parts.as_slice() {
        ["config"]
        | ["version"]
        | ["members"]
        | ["counter", "actors"]
        | ["load", _]
        | ["hosted", _]
        | ["log", ..]
        | ["logorder", ..] => Decoded::Nothing,
        ["node", n] => {
            let node = node_of(key, n, count)?;
            let (record, votes) = match bytes {
                Some(b) => decode::<votes::AnyNode>(key, b)?.split(),
                None => (NodeRecord::INITIAL, NodeVotes::default()),
            };
            Decoded::Node(node, record, votes)
        }
        ["heartbeat", n] => Decoded::Heartbeat(
            node_of(key, n, count)?,
            bytes
                .map(|b| decode::<u64>(key, b).map_err(|e| first_layout(key, b).unwrap_or(e)))
                .transpose()?,
        ),
        ["counter", name] => {
            let counter = match *name {
                "Term" => Counter::Term,
                "ViewNumber" => Counter::ViewNumber,
                "Epoch" => Counter::Epoch,
                _ => {
                    return Err(DecodeError {
                        key: key.to_string(),
                        reason: "not a key of this layout".to_string(),
                    })
                }
            };
            let value = bytes.map(|b| decode(key, b)).transpose()?;
            Decoded::Counter(counter, value.unwrap_or(0))
        }
        ["actor", a] => Decoded::Actor(
            actor_of(key, a)?,
            bytes.map(|b| decode(key, b)).transpose()?,
        ),
        ["queue", n, c] => {
            let chunk = Chunk {
                node: node_of(key, n, count)?,
                index: number(key, c.strip_prefix('c').unwrap_or("x"))?,
            };
            let entries = match bytes {
                Some(b) => queue::decode_chunk(key, chunk, b)?,
                None => Vec::new(),
            };
            Decoded::Queue(chunk, entries)
        }
        ["slot", n] => Decoded::Slot(
            node_of(key, n, count)?,
            bytes.map(|b| decode(key, b)).transpose()?,
        ),
        ["round"] => Decoded::Round(bytes.map(|b| decode(key, b)).transpose()?.unwrap_or(0)),
        ["proposal", n, incarnation, seq] => Decoded::Applied(
            ProposalId {
                node: node_of(key, n, count)?,
                incarnation: number(key, incarnation)?,
                seq: number(key, seq)?,
            },
            bytes.map(|b| decode(key, b)).transpose()?,
        ),
        _ => {
            return Err(DecodeError {
                key: key.to_string(),
                reason: "not a key of this layout".to_string(),
            })
        }
    };
    Ok(decoded)
}

/// The error for a heartbeat value of format version 1's first layout (a flag, before registry
/// v2 stored the round): named as such, pointing to the migration (`crate::upgrade`), rather than
/// as a value of the wrong type (`crate::upgrade::heartbeat_layout` tells the layouts apart the
/// same way). `None` for any other undecodable value.
fn first_layout(key: &str, bytes: &[u8]) -> Option<DecodeError> {
    decode::<bool>(key, bytes).is_ok().then(|| DecodeError {
        key: key.to_string(),
        reason: "a heartbeat flag of the first layout (before registry v2): migrate the registry \
                 first (membership::upgrade::migrate_v1, with no node running)"
            .to_string(),
    })
}

/// The stored configuration among `entries`.
fn config_of(entries: &[Entry]) -> Result<StoredConfig, StoreError> {
    let config_entry = entries
        .iter()
        .find(|e| e.key == CONFIG_KEY)
        .ok_or(StoreError::Uninitialised)?;
    Ok(decode(CONFIG_KEY, &config_entry.value)?)
}

/// Rebuilds the registry and metadata from `entries` (any order), keeping every key whose value
/// cannot be decoded apart ([`Poisoned`]: the key holds its initial value meanwhile). The
/// `config` key must be among them and decode; the registry must be well formed.
pub(crate) fn load_lenient(entries: Vec<Entry>) -> Result<(Loaded, Poisoned), StoreError> {
    let config = config_of(&entries)?;
    let count = config.node_count;
    let mut fields = RegistryFields {
        format_version: REGISTRY_FORMAT_VERSION,
        node_count: count,
        actors_max: config.actors_max,
        nodes: vec![NodeRecord::INITIAL; usize::from(count)],
        heartbeats: NodeSet::default(),
        term_counter: 0,
        view_counter: 0,
        epoch_counter: 0,
        placements: BTreeMap::new(),
        queue: BTreeMap::new(),
    };
    let mut meta = Meta::default();
    let mut versions = imbl::OrdMap::new();
    let mut poisoned = Poisoned::new();
    let mut stored_votes = imbl::OrdMap::new();
    for entry in entries {
        if let Some(error) = queue::previous_layout(&entry.key) {
            return Err(error.into());
        }
        let decoded = match decode_key(&entry.key, Some(&entry.value), count) {
            Ok(decoded) => decoded,
            Err(error) => {
                poisoned.insert(entry.key.clone(), error);
                versions.insert(entry.key, entry.version);
                continue;
            }
        };
        match decoded {
            Decoded::Node(node, record, votes) => {
                if let Some(slot) = node.index().and_then(|i| fields.nodes.get_mut(i)) {
                    *slot = record;
                    if !votes.is_empty() {
                        stored_votes.insert(node, votes);
                    }
                }
            }
            Decoded::Heartbeat(node, round) => {
                // The round the node's latest heartbeat names; its flag is set when that is the
                // open round (set below, once the round is read).
                if let Some(round) = round {
                    meta.heartbeat_rounds.insert(node, round);
                }
            }
            Decoded::Counter(Counter::Term, v) => fields.term_counter = v,
            Decoded::Counter(Counter::ViewNumber, v) => fields.view_counter = v,
            Decoded::Counter(Counter::Epoch, v) => fields.epoch_counter = v,
            Decoded::Actor(actor, placement) => {
                if let Some(p) = placement {
                    fields.placements.insert(actor, p);
                }
            }
            Decoded::Queue(chunk, list) => {
                debug_assert!(list.iter().all(|(a, e)| Chunk::of(e.from, *a) == chunk));
                fields.queue.extend(list);
            }
            Decoded::Slot(node, slot) => {
                if let Some(slot) = slot {
                    meta.slots.insert(node, slot);
                }
            }
            Decoded::Round(round) => meta.round = round,
            Decoded::Applied(id, applied) => {
                if let Some(applied) = applied {
                    meta.applied.insert(id, applied);
                }
            }
            Decoded::Nothing => {}
        }
        versions.insert(entry.key, entry.version);
    }
    fields.heartbeats = meta.heartbeat_flags();
    // The votes that count, once the round is read.
    for (&node, _) in stored_votes.iter() {
        if let Some(record) = node.index().and_then(|i| fields.nodes.get_mut(i)) {
            record.detected = counted(&stored_votes, node, meta.round);
        }
    }
    let state = match State::try_from(fields) {
        Ok(state) => state,
        // An undecodable key explains an ill-formed registry better than the registry does.
        Err(e) => {
            return Err(match poisoned.into_values().next() {
                Some(error) => error.into(),
                None => DecodeError {
                    key: "registry".to_string(),
                    reason: e.to_string(),
                }
                .into(),
            })
        }
    };
    Ok((
        Loaded {
            state,
            meta,
            versions,
            votes: stored_votes,
        },
        poisoned,
    ))
}

/// One key's change as an engine's change feed delivers it: the key relative to the prefix, its
/// new value (`None`: deleted) and the version that wrote it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) key: String,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) version: i64,
}

/// Applies one commit's `changes` (every key it wrote, as the change feed delivers them) to a
/// loaded registry. A value that cannot be decoded puts its key in `poisoned` (the key keeps
/// its value until a decodable one arrives); a decodable value takes a key out of it. Costs
/// O(keys changed x log registry), and O(nodes) more when the heartbeat round moves. An error
/// means the changes do not fit the registry (a registry edited by hand): the cache must load
/// the registry again.
pub(crate) fn apply_changes(
    loaded: &Loaded,
    poisoned: &mut Poisoned,
    changes: &[Change],
) -> Result<Loaded, StoreError> {
    let count = loaded.state.config().node_count();
    let mut delta = membership_core::Delta::default();
    let mut meta = loaded.meta.clone();
    let mut versions = loaded.versions.clone();
    let mut beats = BTreeSet::new();
    let mut records: BTreeMap<NodeId, (NodeRecord, NodeVotes)> = BTreeMap::new();
    let round_before = meta.round;
    for change in changes {
        if let Some(error) = queue::previous_layout(&change.key) {
            return Err(error.into());
        }
        match change.value {
            Some(_) => versions.insert(change.key.clone(), change.version),
            None => versions.remove(&change.key),
        };
        let decoded = match decode_key(&change.key, change.value.as_deref(), count) {
            Ok(decoded) => {
                poisoned.remove(&change.key);
                decoded
            }
            Err(error) => {
                poisoned.insert(change.key.clone(), error);
                continue;
            }
        };
        match decoded {
            Decoded::Node(node, record, votes) => {
                records.insert(node, (record, votes));
            }
            Decoded::Heartbeat(node, round) => {
                match round {
                    Some(round) => meta.heartbeat_rounds.insert(node, round),
                    None => meta.heartbeat_rounds.remove(&node),
                };
                beats.insert(node);
            }
            Decoded::Counter(counter, value) => {
                delta.counters.insert(counter, value);
            }
            Decoded::Actor(actor, placement) => {
                delta.placements.insert(actor, placement);
            }
            Decoded::Queue(chunk, list) => {
                // The chunk's entries before, dropped unless another chunk of the same commit
                // queues the actor again (an actor's entry is in one chunk at a time: an
                // entry that moved to another node's chunk is kept, in whichever order the
                // commit's keys arrive).
                for (actor, _) in chunk.entries(&loaded.state) {
                    delta.queue.entry(actor).or_insert(None);
                }
                for (actor, entry) in list {
                    delta.queue.insert(actor, Some(entry));
                }
            }
            Decoded::Slot(node, slot) => {
                match slot {
                    Some(slot) => meta.slots.insert(node, slot),
                    None => meta.slots.remove(&node),
                };
            }
            Decoded::Round(round) => meta.round = round,
            Decoded::Applied(id, applied) => {
                match applied {
                    Some(applied) => meta.applied.insert(id, applied),
                    None => meta.applied.remove(&id),
                };
            }
            Decoded::Nothing => {}
        }
    }
    let votes = node_records(loaded, &mut delta, records, meta.round);
    // A flag is "the node's key names the open round": a new round changes every flag, a
    // heartbeat its node's.
    let flagged: Vec<NodeId> = if meta.round == round_before {
        beats.into_iter().collect()
    } else {
        loaded.state.node_ids().collect()
    };
    for node in flagged {
        let flag = meta.heartbeat_current(node);
        if flag != loaded.state.heartbeat_received(node) {
            delta.heartbeats.insert(node, flag);
        }
    }
    let state = loaded.state.apply(&delta).map_err(|e| DecodeError {
        key: "registry".to_string(),
        reason: e.to_string(),
    })?;
    debug_assert!(state
        .node_ids()
        .all(|n| state.heartbeat_received(n) == meta.heartbeat_current(n)));
    Ok(Loaded {
        state,
        meta,
        versions,
        votes,
    })
}

/// Puts the node records a commit wrote (`records`: each record, its `detected` empty, and its
/// stored votes) in `delta`, with the votes that count at `round`; and every other record whose
/// votes stopped counting: all of them when the round moved, those against a node whose
/// generation moved. Returns the stored votes after the commit. Costs O(records written), and
/// O(nodes) more when the round or a generation moves.
fn node_records(
    loaded: &Loaded,
    delta: &mut membership_core::Delta,
    records: BTreeMap<NodeId, (NodeRecord, NodeVotes)>,
    round: u64,
) -> imbl::OrdMap<NodeId, NodeVotes> {
    let mut stored = loaded.votes.clone();
    let mut moved = NodeSet::EMPTY;
    for (&node, (_, votes)) in &records {
        if votes.generation != generation(&loaded.votes, node) {
            moved.insert(node);
        }
        if votes.is_empty() {
            stored.remove(&node);
        } else {
            stored.insert(node, votes.clone());
        }
    }
    let mut others = Vec::new();
    if round != loaded.meta.round || !moved.is_empty() {
        for node in loaded.state.node_ids() {
            let held = loaded
                .state
                .node(node)
                .map_or(NodeSet::EMPTY, |r| r.detected.clone());
            let expired = round != loaded.meta.round && !held.is_empty();
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
        if let Some(before) = loaded.state.node(node) {
            let detected = counted(&stored, node, round);
            debug_assert!(detected.is_subset(&before.detected));
            if detected != before.detected {
                delta.nodes.insert(
                    node,
                    NodeRecord {
                        detected,
                        ..before.clone()
                    },
                );
            }
        }
    }
    debug_assert!(stored.values().all(|v| !v.is_empty()));
    stored
}

/// One write of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// Store the bytes under the key.
    Put(String, Vec<u8>),
    /// Remove the key.
    Delete(String),
}

impl Write {
    /// The key and value bytes this write sends.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Write::Put(k, v) => k.len() + v.len(),
            Write::Delete(k) => k.len(),
        }
    }
}

/// What one commit compares and writes, in key names.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    /// Every key read (and every chunk written), with the version read (0: absent).
    pub(crate) reads: BTreeMap<String, i64>,
    /// The writes, in key order.
    pub(crate) writes: Vec<Write>,
}

impl Plan {
    /// The bytes of keys and values the writes send.
    pub(crate) fn write_bytes(&self) -> usize {
        self.writes.iter().map(Write::bytes).sum()
    }
}

/// The keys a commit must compare and the writes it makes, from the registry `view` it ran on.
/// With `log`, the commit also records its spec actions under `log/...`.
pub(crate) fn plan(loaded: &Loaded, commit: &Commit, id: ProposalId, log: bool) -> Plan {
    let view = &loaded.state;
    let next = &commit.next;
    let mut reads = BTreeMap::new();
    for key in &commit.reads {
        let name = match key {
            // The chunk holding the entry (or that would hold it); an actor neither queued nor
            // placed has none (its placement's key, which the footprint reads too, is compared).
            Key::Queue(a) => match queue::chunk_of(view, *a) {
                Some(chunk) => chunk.name(),
                None => {
                    debug_assert!(commit.reads.contains(&Key::Actor(*a)));
                    continue;
                }
            },
            _ => registry_key_name(key),
        };
        let version = loaded.version(&name);
        reads.insert(name, version);
    }
    for key in &commit.meta_reads {
        let name = meta_key_name(key);
        let version = loaded.version(&name);
        reads.insert(name, version);
    }
    let keys = commit.delta.keys(view);
    let records = Records::of(loaded, commit, &keys);
    records.compares(loaded, commit, &keys, &mut reads);
    let mut writes: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut chunks = BTreeSet::new();
    for key in keys {
        let name = registry_key_name(&key);
        let value = match key {
            Key::Node(n) => match records.value(loaded, commit, n) {
                Some(value) => value,
                // Only votes changed, and they read back as the commit leaves them.
                None => continue,
            },
            Key::Heartbeat(n) => match commit.meta.heartbeat_round(n) {
                // A flag set: the node's key names the open round.
                Some(round) if next.heartbeat_received(n) => Some(encode(&round)),
                // A flag cleared: the round moved on (ResetHeartbeats), nothing to write.
                _ => {
                    debug_assert!(commit.meta_writes.contains(&MetaKey::Round));
                    continue;
                }
            },
            Key::Counter(Counter::Term) => Some(encode(&next.term_counter())),
            Key::Counter(Counter::ViewNumber) => Some(encode(&next.view_counter())),
            Key::Counter(Counter::Epoch) => Some(encode(&next.epoch_counter())),
            Key::ActorCount => Some(encode(&(next.placements().len() as u64))),
            Key::Actor(a) => next.placement(a).map(|p| encode(&p)),
            Key::Load(n) | Key::Hosted(n) => Some(encode(&next.load(n))),
            Key::Members => Some(encode(&u64::from(next.active().len()))),
            Key::Queue(a) => {
                // The chunk the entry leaves and the one it joins (one of them when it stays
                // under its node).
                chunks.extend(queue::queued_chunk(view, a));
                chunks.extend(queue::queued_chunk(next, a));
                continue;
            }
        };
        writes.insert(name, value);
    }
    for chunk in chunks {
        let name = chunk.name();
        // Read-modify-write: the chunk holds other actors' entries too.
        let version = loaded.version(&name);
        reads.insert(name.clone(), version);
        writes.insert(name, queue::encode_chunk(&chunk.entries(next)));
    }
    for key in &commit.meta_writes {
        let name = meta_key_name(key);
        let value = match key {
            MetaKey::Slot(n) => commit.meta.slots.get(n).map(encode),
            MetaKey::Round => Some(encode(&commit.meta.round)),
            MetaKey::Applied(pid) => commit.meta.applied.get(pid).map(encode),
        };
        writes.insert(name, value);
    }
    if log {
        let record = LogRecord {
            round: commit.meta.round,
            events: commit.events.clone(),
        };
        writes.insert(log_key_name(&id), Some(encode(&record)));
    }
    let writes = writes
        .into_iter()
        .map(|(k, v)| match v {
            Some(bytes) => Write::Put(k, bytes),
            None => Write::Delete(k),
        })
        .collect();
    Plan { reads, writes }
}

/// What a commit writes of the node records ([`votes`]): the generation each node has after it.
struct Records {
    /// The nodes every vote against which the commit erases in bulk: their own records are
    /// written, with their generation raised, and their voters' records are not.
    erased: NodeSet,
}

impl Records {
    /// The bulk erasures of `commit`, whose delta writes `keys`: a node whose record is
    /// written, that some node voted against before the commit and none after.
    fn of(loaded: &Loaded, commit: &Commit, keys: &[Key]) -> Records {
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
            let (before, after) = (voted(&loaded.state), voted(&commit.next));
            for n in written {
                if before.contains(n) && !after.contains(n) {
                    erased.insert(n);
                }
            }
            debug_assert!(erased.is_subset(&before) && erased.intersection(&after).is_empty());
        }
        debug_assert!(erased.iter().all(|n| keys.contains(&Key::Node(n))));
        Records { erased }
    }

    /// `node`'s generation after the commit.
    fn generation(&self, loaded: &Loaded, node: NodeId) -> u64 {
        generation(&loaded.votes, node) + u64::from(self.erased.contains(node))
    }

    /// The stored value of `node`'s record after the commit (`None` inside: absent), or `None`
    /// when the stored value already reads back as it: only its votes changed, by the round's
    /// move or a bulk erasure.
    fn value(&self, loaded: &Loaded, commit: &Commit, node: NodeId) -> Option<Option<Vec<u8>>> {
        debug_assert!(commit.delta.nodes.contains_key(&node));
        let Some(record) = commit.next.node(node) else {
            return Some(None);
        };
        let round = commit.meta.round;
        let own = self.generation(loaded, node);
        let unchanged = loaded.state.node(node).is_some_and(|before| {
            NodeRecord {
                detected: NodeSet::EMPTY,
                ..before.clone()
            } == NodeRecord {
                detected: NodeSet::EMPTY,
                ..record.clone()
            }
        }) && own == generation(&loaded.votes, node)
            && loaded.votes.get(&node).map_or(NodeSet::EMPTY, |v| {
                v.counted(round, |t| self.generation(loaded, t))
            }) == record.detected;
        if unchanged {
            return None;
        }
        let stored = votes::stored(record, round, own, |t| self.generation(loaded, t));
        debug_assert!(stored.reads_back(record, round, |t| self.generation(loaded, t)));
        Some(Some(encode(&stored)))
    }

    /// Adds to `reads` what a commit that reads or writes a record holding votes (before or
    /// after it) depends on beyond the record: the round, and each target's record (its
    /// generation), so that a concurrent expiry or bulk erasure of those votes is a conflict.
    fn compares(
        &self,
        loaded: &Loaded,
        commit: &Commit,
        keys: &[Key],
        reads: &mut BTreeMap<String, i64>,
    ) {
        let mut targets = NodeSet::EMPTY;
        for key in commit.reads.iter().chain(keys) {
            if let Key::Node(n) = key {
                for state in [&loaded.state, &commit.next] {
                    if let Some(r) = state.node(*n) {
                        targets = targets.union(&r.detected);
                    }
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        let round = meta_key_name(&MetaKey::Round);
        let version = loaded.version(&round);
        reads.insert(round, version);
        for t in targets.iter() {
            let name = registry_key_name(&Key::Node(t));
            let version = loaded.version(&name);
            reads.insert(name, version);
        }
        debug_assert!(reads.contains_key(&meta_key_name(&MetaKey::Round)));
        debug_assert!(!self.erased.iter().any(|n| commit
            .next
            .nodes()
            .iter()
            .any(|r| r.detected.contains(n))));
    }
}

/// A committed-log record's value: the round the commit ran at (for a node's own heartbeat, the
/// round its stored key names) and the spec actions it applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogRecord {
    pub(crate) round: u64,
    pub(crate) events: Vec<membership_core::Event>,
}

/// What a proposal comes to on a loaded registry, before the engine commits it.
pub(crate) enum Planned {
    /// Refused by `execute` (nothing to write).
    Refused(membership_core::ProposalError),
    /// Already applied (recognised by its id): its recorded effects.
    Duplicate(Vec<membership_core::Effect>),
    /// To commit: the commit and what it compares and writes.
    Commit(Box<Commit>, Plan),
}

/// Runs `proposal` on `loaded` and plans its commit. A plan that does not fit the engine
/// (`fits` gives the operations and bytes it needs when it does not) is refused with
/// [`StoreError::TooLarge`], except a migration batch, which runs again with half as many moves
/// (the next batch moves the rest), and a placement batch, which runs again with its first half.
pub(crate) fn plan_fitting(
    loaded: &Loaded,
    proposal: &membership_core::Proposal,
    log: bool,
    moves_max: usize,
    fits: impl Fn(&Plan) -> Result<(), (u64, u64)>,
) -> Result<Planned, StoreError> {
    let mut proposal = *proposal;
    // A batch is capped at the engine's most moves (or placements) before it runs: each one
    // writes at least its actor's key, so a larger batch cannot fit, and running it only to
    // halve it costs its whole execution each time.
    proposal.action = match proposal.action {
        membership_core::Action::MigrateBatch { term, max } => {
            membership_core::Action::MigrateBatch {
                term,
                max: max.min(moves_max).max(1),
            }
        }
        membership_core::Action::PlaceBatch { actors } => membership_core::Action::PlaceBatch {
            actors: actors.truncated(moves_max),
        },
        other => other,
    };
    // Halving from any batch size reaches one move within 64 rounds.
    for _ in 0..64 {
        let commit = match membership_core::execute(&loaded.state, &loaded.meta, &proposal) {
            Err(error) => return Ok(Planned::Refused(error)),
            Ok(commit) if commit.duplicate => return Ok(Planned::Duplicate(commit.effects)),
            Ok(commit) => commit,
        };
        let plan = plan(loaded, &commit, proposal.id, log);
        match fits(&plan) {
            Ok(()) => return Ok(Planned::Commit(Box::new(commit), plan)),
            Err((ops, bytes)) => match proposal.action {
                membership_core::Action::MigrateBatch { term, max } if max > 1 => {
                    proposal.action = membership_core::Action::MigrateBatch { term, max: max / 2 };
                }
                membership_core::Action::PlaceBatch { actors } if actors.actors().len() > 1 => {
                    // The first half (the proposer answers the rest from its next snapshot:
                    // they were not placed, and go back to its queue).
                    let half = actors.actors().len() / 2;
                    proposal.action = membership_core::Action::PlaceBatch {
                        actors: actors.truncated(half),
                    };
                }
                _ => {
                    return Err(StoreError::TooLarge {
                        action: crate::store::action_name(&proposal),
                        ops,
                        bytes,
                    })
                }
            },
        }
    }
    Err(StoreError::TooLarge {
        action: crate::store::action_name(&proposal),
        ops: 0,
        bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::testing::{
        detect, fail, heartbeat, join, join_complete, partition, RESET,
    };
    use membership_core::{execute, Action, Event, NodeStatus, Proposal};
    use proptest::strategy::Strategy;

    /// etcd's `--max-txn-ops` (the default): writes per transaction.
    const ETCD_WRITES_MAX: usize = 128;

    /// A registry stored as an engine stores it (each key's value and version), and a cache fed
    /// every commit's changes.
    struct Engine {
        entries: BTreeMap<String, (Vec<u8>, i64)>,
        revision: i64,
        cache: Loaded,
        poisoned: Poisoned,
        seq: u64,
    }

    impl Engine {
        /// An initialised registry of `count` nodes, every slot claimed by incarnation 1.
        fn new(count: u16) -> Engine {
            let mut entries = BTreeMap::new();
            let config = StoredConfig::of(&Config::fixed(count).unwrap());
            entries.insert(CONFIG_KEY.to_string(), (encode(&config), 1));
            for i in 1..=count {
                let slot = Slot {
                    incarnation: 1,
                    address: "a:1".to_string(),
                };
                entries.insert(meta_key_name(&MetaKey::Slot(NodeId(i))), (encode(&slot), 1));
            }
            let cache = load(Self::listed(&entries)).unwrap();
            Engine {
                entries,
                revision: 1,
                cache,
                poisoned: Poisoned::new(),
                seq: 0,
            }
        }

        fn listed(entries: &BTreeMap<String, (Vec<u8>, i64)>) -> Vec<Entry> {
            entries
                .iter()
                .map(|(key, (value, version))| Entry {
                    key: key.clone(),
                    value: value.clone(),
                    version: *version,
                })
                .collect()
        }

        /// Commits `event`, proposed by `by`, as an engine would: planned on the registry read
        /// whole, its writes applied. The registry read back whole, and the cache fed the
        /// commit's changes, must both be the reducer's next state. Returns the plan.
        fn commit(&mut self, by: u16, event: Event) -> Plan {
            match self.try_commit(by, event) {
                Some(plan) => plan,
                None => panic!("{event} was refused"),
            }
        }

        /// [`Engine::commit`], or `None` (nothing written) when the step is refused.
        fn try_commit(&mut self, by: u16, event: Event) -> Option<Plan> {
            let loaded = load(Self::listed(&self.entries)).unwrap();
            assert!(
                loaded.state == self.cache.state,
                "before {event}: the cache is not the store"
            );
            let proposal = self.proposal(by, event, loaded.meta.round);
            let commit = execute(&loaded.state, &loaded.meta, &proposal).ok()?;
            if commit.next == loaded.state && commit.meta.round == loaded.meta.round {
                return None;
            }
            let plan = plan(&loaded, &commit, proposal.id, false);
            self.revision += 1;
            let mut changes = Vec::new();
            for write in &plan.writes {
                let (key, value) = match write {
                    Write::Put(key, value) => (key, Some(value.clone())),
                    Write::Delete(key) => (key, None),
                };
                match &value {
                    Some(v) => self.entries.insert(key.clone(), (v.clone(), self.revision)),
                    None => self.entries.remove(key),
                };
                changes.push(Change {
                    key: key.clone(),
                    value,
                    version: self.revision,
                });
            }
            let read_back = load(Self::listed(&self.entries)).unwrap();
            assert!(
                read_back.state == commit.next,
                "{event}: the store does not read back the step"
            );
            self.cache = apply_changes(&self.cache, &mut self.poisoned, &changes).unwrap();
            assert!(
                self.cache.state == commit.next,
                "{event}: the cache does not hold the step"
            );
            assert!(self.poisoned.is_empty());
            Some(plan)
        }

        /// The next proposal of `by` (incarnation 1): `event` in round `round`.
        fn proposal(&mut self, by: u16, event: Event, round: u64) -> Proposal {
            self.seq += 1;
            Proposal {
                id: ProposalId {
                    node: NodeId(by),
                    incarnation: 1,
                    seq: self.seq,
                },
                action: Action::Step(event),
                round: Some(round),
            }
        }

        /// Plans `event`, proposed by `by`, on the registry as stored now, without committing it.
        fn planned(&mut self, by: u16, event: Event) -> Plan {
            let loaded = load(Self::listed(&self.entries)).unwrap();
            let proposal = self.proposal(by, event, loaded.meta.round);
            let commit = execute(&loaded.state, &loaded.meta, &proposal).unwrap();
            plan(&loaded, &commit, proposal.id, false)
        }

        /// Whether a key `plan` compares has changed since it was planned.
        fn conflicts(&self, plan: &Plan) -> bool {
            plan.reads
                .iter()
                .any(|(key, &version)| self.entries.get(key).map_or(0, |&(_, v)| v) != version)
        }

        /// The node records a plan writes.
        fn records_written(plan: &Plan) -> Vec<&str> {
            plan.writes
                .iter()
                .filter_map(|w| match w {
                    Write::Put(k, _) | Write::Delete(k) if k.starts_with("node/") => {
                        Some(k.as_str())
                    }
                    _ => None,
                })
                .collect()
        }

        /// `count` Active nodes; n1 heartbeats; every other node is cut off from `targets`
        /// and votes against each of them.
        fn voting(count: u16, targets: &[u16]) -> Engine {
            let mut engine = Engine::new(count);
            engine.commit(1, join(1));
            for i in 2..=count {
                engine.commit(i, join(i));
                engine.commit(i, join_complete(i));
            }
            // Every join was its node's heartbeat of the round (registry v2).
            assert!(targets
                .iter()
                .all(|&t| engine.cache.state.heartbeat_received(NodeId(t))));
            for d in 1..=count {
                for &t in targets.iter().filter(|&&t| t != d) {
                    if engine.cache.state.can_communicate(NodeId(d), NodeId(t)) {
                        engine.commit(d, partition(d, t));
                    }
                    let vote = engine.commit(d, detect(d, t));
                    // The vote: its voter's record (and the proposal's record).
                    assert_eq!(Engine::records_written(&vote), [format!("node/n{d}")]);
                }
            }
            engine
        }
    }

    /// Registry v2 at scale: a quorum of 139 votes declares n1 failed in one transaction that
    /// writes n1's record and none of its voters' (one write per voter would be past etcd's
    /// 128); the votes against n2 stay counted.
    #[test]
    fn a_declaration_by_a_quorum_writes_no_voter_s_record() {
        const NODES: u16 = 140;
        let mut engine = Engine::voting(NODES, &[1, 2]);
        let votes = engine.cache.state.failure_votes(NodeId(1));
        assert_eq!(votes.len(), NODES - 1, "every peer voted");
        let declared = engine.commit(3, fail(1));
        assert_eq!(
            Engine::records_written(&declared),
            ["node/n1"],
            "a declaration by votes writes the declared node's record and no voter's"
        );
        assert!(
            declared.writes.len() <= ETCD_WRITES_MAX,
            "{}",
            declared.writes.len()
        );
        let state = &engine.cache.state;
        assert_eq!(state.node(NodeId(1)).unwrap().status, NodeStatus::Failed);
        assert!(state
            .nodes()
            .iter()
            .all(|r| !r.detected.contains(NodeId(1))));
        assert_eq!(
            state.failure_votes(NodeId(2)).len(),
            NODES - 2,
            "all but n1's"
        );
    }

    /// One step of [`any_history_reads_back_as_the_reducer_left_it`]: an event on nodes of 1..=6.
    fn any_event() -> impl Strategy<Value = (u16, Event)> {
        use membership_core::testing::{heal, leave, leave_complete, recover, sync};
        (0u8..12, 1u16..=6, 1u16..=6).prop_map(|(kind, a, b)| {
            let event = match kind {
                0 => join(a),
                1 => join_complete(a),
                2 | 3 => partition(a, b),
                4 => heal(a, b),
                5 | 6 => detect(a, b),
                7 => fail(b),
                8 => leave(b),
                9 => leave_complete(b),
                10 => RESET,
                _ => match a % 3 {
                    0 => heartbeat(b),
                    1 => sync(b, b),
                    _ => recover(b),
                },
            };
            (a, event)
        })
    }

    proptest::proptest! {
        /// Whatever the steps (votes cast, expired by new rounds, erased by declarations and
        /// leaves, nodes rejoining), the registry read back whole after each commit, and a
        /// cache fed each commit's changes, are the reducer's next state (`Engine::commit`
        /// checks both).
        #[test]
        fn any_history_reads_back_as_the_reducer_left_it(
            steps in proptest::collection::vec(any_event(), 1..80)
        ) {
            let mut engine = Engine::voting(6, &[2]);
            for (by, event) in steps {
                engine.try_commit(by, event);
            }
        }
    }

    /// A step that reads a voter's record conflicts with a concurrent erasure of its votes,
    /// which writes neither the record nor anything else of the voter's: it compares the
    /// round and the record of each target the voter voted against.
    #[test]
    fn a_step_reading_a_voter_s_record_conflicts_with_the_erasure_of_its_votes() {
        for erasure in [fail(1), RESET] {
            let mut engine = Engine::voting(8, &[1]);
            // A partition report reads both records, n5's holding its vote against n1.
            let report = engine.planned(5, partition(5, 6));
            assert!(report.reads.contains_key("round") && report.reads.contains_key("node/n1"));
            assert!(!engine.conflicts(&report));
            engine.commit(3, erasure);
            assert!(
                engine.conflicts(&report),
                "{erasure} erased n5's vote and the report planned before it still commits"
            );
        }
        // Without votes, no other node's record.
        let mut engine = Engine::voting(8, &[]);
        let report = engine.planned(5, partition(5, 6));
        let records: Vec<&str> = report
            .reads
            .keys()
            .filter(|k| k.starts_with("node/"))
            .map(String::as_str)
            .collect();
        assert_eq!(records, ["node/n5", "node/n6"]);
    }

    /// ResetHeartbeats clears every vote (they expire with their round) without writing any
    /// voter's record.
    #[test]
    fn a_new_round_clears_every_vote_writing_no_record() {
        const NODES: u16 = 140;
        let mut engine = Engine::voting(NODES, &[1]);
        assert_eq!(engine.cache.state.failure_votes(NodeId(1)).len(), NODES - 1);
        let reset = engine.commit(2, RESET);
        assert_eq!(
            Engine::records_written(&reset),
            Vec::<&str>::new(),
            "a new round writes no voter's record"
        );
        assert!(
            reset.writes.len() <= ETCD_WRITES_MAX,
            "{}",
            reset.writes.len()
        );
        assert!(engine
            .cache
            .state
            .nodes()
            .iter()
            .all(|r| r.detected.is_empty()));
        // A vote of the new round counts; the expired ones do not come back.
        engine.commit(1, heartbeat(1));
        engine.commit(5, detect(5, 1));
        let voters: Vec<NodeId> = engine
            .cache
            .state
            .node_ids()
            .filter(|&d| {
                engine
                    .cache
                    .state
                    .node(d)
                    .unwrap()
                    .detected
                    .contains(NodeId(1))
            })
            .collect();
        assert_eq!(voters, [NodeId(5)]);
    }
}
