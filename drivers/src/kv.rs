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
use votes::{counted, node_records, NodeVotes, Records};

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

#[cfg(any(test, feature = "testing"))]
impl Entry {
    /// The entries of a key-value image (each key's bytes and version), in key order: what a
    /// whole-registry read of it returns.
    pub(crate) fn listed(image: &BTreeMap<String, (Vec<u8>, i64)>) -> Vec<Entry> {
        let entries: Vec<Entry> = image
            .iter()
            .map(|(key, (value, version))| Entry {
                key: key.clone(),
                value: value.clone(),
                version: *version,
            })
            .collect();
        debug_assert_eq!(entries.len(), image.len());
        entries
    }
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
    pub(crate) votes: votes::Ledger,
}

impl Loaded {
    /// The version read for `key` (0: absent).
    pub(crate) fn version(&self, key: &str) -> i64 {
        self.versions.get(key).copied().unwrap_or(0)
    }
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
    let votes = node_records(
        &loaded.state,
        &loaded.votes,
        round_before,
        &mut delta,
        records,
        meta.round,
    );
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
    // ResetHeartbeats reads every record only to find the votes it clears; stored, they expire
    // by the round alone (`votes::opens_round`). So it compares the round (read-modify-write)
    // and its proposal's record, not the records: a commit changing a record meanwhile is
    // serialised before it, and the round it opens expires that commit's votes and flags too.
    // Comparing every record (the whole node family on etcd) let a stream of partition reports
    // and votes refuse every new round at 100 nodes, and with no new round no heartbeat commits.
    let opens_round = votes::opens_round(commit);
    let mut reads = BTreeMap::new();
    for key in &commit.reads {
        if opens_round && matches!(key, Key::Node(_)) {
            continue;
        }
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
    let records = Records::of(view, commit, &keys);
    if !opens_round {
        for name in records.compares(view, commit, &keys) {
            let version = loaded.version(&name);
            reads.insert(name, version);
        }
    }
    debug_assert!(!opens_round || !reads.keys().any(|k| k.starts_with("node/")));
    let mut writes: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut chunks = BTreeSet::new();
    for key in keys {
        let name = registry_key_name(&key);
        let value = match key {
            Key::Node(n) => match records.value(view, &loaded.votes, commit, n) {
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
    // Opening a round writes no record (the argument above rests on it).
    debug_assert!(!opens_round || !writes.keys().any(|k| k.starts_with("node/")));
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
mod tests;
