//! The key-value layout shared by the stores on a real engine (etcd, FoundationDB): which key
//! holds what, how the registry and the metadata are rebuilt from the stored values, and what a
//! commit writes. The engine adapters only read, compare and write what this module names.
//!
//! The key names are [`crate::keys`]'s (relative to the store's prefix or subspace), each value
//! versioned ([`crate::codec`]: a version byte, then JSON). A key that is absent holds its
//! initial value (a node record of a Left node, a clear flag, a zero counter), so `init` writes
//! `config` only.
//!
//! **Queue entries are grouped** by actor id, [`QUEUE_CHUNK_ACTORS`] per key: MarkNodeFailed and
//! NodeLeave queue every actor of a node in one step (one atomic transition), which with one key
//! per entry would need one write per actor in one transaction; etcd allows 128. A chunk written
//! is always compared too (read-modify-write), so no concurrent change to another entry of the
//! chunk is lost.

use crate::codec::{decode, encode, DecodeError};
#[cfg(feature = "testing")]
use crate::keys::StoreKey;
use crate::keys::{
    log_key_name, meta_key_name, queue_chunk_name, registry_key_name, CONFIG_KEY,
    QUEUE_CHUNK_ACTORS,
};
#[cfg(feature = "testing")]
use crate::store::Logged;
use crate::store::StoreError;
use membership_core::{
    ActorId, Applied, Commit, Config, Counter, Key, Meta, MetaKey, MigrationEntry, NodeId,
    NodeRecord, NodeSet, Placement, ProposalId, RegistryFields, Slot, State,
    REGISTRY_FORMAT_VERSION,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    pub(crate) versions: BTreeMap<String, i64>,
}

impl Loaded {
    /// The version read for `key` (0: absent).
    pub(crate) fn version(&self, key: &str) -> i64 {
        self.versions.get(key).copied().unwrap_or(0)
    }
}

fn number<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, DecodeError> {
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
pub(crate) fn load(entries: Vec<Entry>) -> Result<Loaded, StoreError> {
    let config_entry = entries
        .iter()
        .find(|e| e.key == CONFIG_KEY)
        .ok_or(StoreError::Uninitialised)?;
    let config: StoredConfig = decode(CONFIG_KEY, &config_entry.value)?;
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
    let mut versions = BTreeMap::new();
    for entry in entries {
        let key = entry.key.as_str();
        let bytes = &entry.value;
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            ["config"] => {}
            ["node", n] => {
                let node = node_of(key, n, count)?;
                let record: NodeRecord = decode(key, bytes)?;
                if let Some(slot) = node.index().and_then(|i| fields.nodes.get_mut(i)) {
                    *slot = record;
                }
            }
            ["heartbeat", n] => {
                // The round the node's latest heartbeat names; its flag is set when that is the
                // open round (set below, once the round is read).
                let node = node_of(key, n, count)?;
                meta.heartbeat_rounds
                    .insert(node, decode::<u64>(key, bytes)?);
            }
            ["counter", "Term"] => fields.term_counter = decode(key, bytes)?,
            ["counter", "ViewNumber"] => fields.view_counter = decode(key, bytes)?,
            ["counter", "Epoch"] => fields.epoch_counter = decode(key, bytes)?,
            ["counter", "actors"]
            | ["load", _]
            | ["hosted", _]
            | ["log", ..]
            | ["logorder", ..] => {
                // Version markers and the log: never read back into the registry.
            }
            ["actor", a] => {
                let actor = actor_of(key, a)?;
                let placement: Placement = decode(key, bytes)?;
                fields.placements.insert(actor, placement);
            }
            ["queue", c] => {
                let chunk: u64 = number(key, c.strip_prefix('c').unwrap_or("x"))?;
                let chunk_entries: Vec<(ActorId, MigrationEntry)> = decode(key, bytes)?;
                for (actor, queued) in chunk_entries {
                    if actor.0 / QUEUE_CHUNK_ACTORS != chunk {
                        return Err(DecodeError {
                            key: key.to_string(),
                            reason: format!("{actor} does not belong to this chunk"),
                        }
                        .into());
                    }
                    fields.queue.insert(actor, queued);
                }
            }
            ["slot", n] => {
                let node = node_of(key, n, count)?;
                let slot: Slot = decode(key, bytes)?;
                meta.slots.insert(node, slot);
            }
            ["round"] => meta.round = decode(key, bytes)?,
            ["proposal", n, incarnation, seq] => {
                let id = ProposalId {
                    node: node_of(key, n, count)?,
                    incarnation: number(key, incarnation)?,
                    seq: number(key, seq)?,
                };
                let applied: Applied = decode(key, bytes)?;
                meta.applied.insert(id, applied);
            }
            _ => {
                return Err(DecodeError {
                    key: key.to_string(),
                    reason: "not a key of this layout".to_string(),
                }
                .into())
            }
        }
        versions.insert(entry.key, entry.version);
    }
    fields.heartbeats = meta.heartbeat_flags();
    let state = State::try_from(fields).map_err(|e| DecodeError {
        key: "registry".to_string(),
        reason: e.to_string(),
    })?;
    Ok(Loaded {
        state,
        meta,
        versions,
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
    let mut reads = BTreeMap::new();
    for key in &commit.reads {
        let name = registry_key_name(key);
        let version = loaded.version(&name);
        reads.insert(name, version);
    }
    for key in &commit.meta_reads {
        let name = meta_key_name(key);
        let version = loaded.version(&name);
        reads.insert(name, version);
    }
    let mut writes: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut chunks = BTreeSet::new();
    for key in commit.delta.keys(view) {
        let name = registry_key_name(&key);
        let value = match key {
            Key::Node(n) => next.node(n).map(encode),
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
            Key::Queue(a) => {
                chunks.insert(a.0 / QUEUE_CHUNK_ACTORS);
                continue;
            }
        };
        writes.insert(name, value);
    }
    if !chunks.is_empty() {
        let mut contents: BTreeMap<u64, Vec<(ActorId, MigrationEntry)>> =
            chunks.iter().map(|&c| (c, Vec::new())).collect();
        for (&actor, &entry) in next.queue().iter() {
            if let Some(list) = contents.get_mut(&(actor.0 / QUEUE_CHUNK_ACTORS)) {
                list.push((actor, entry));
            }
        }
        for (chunk, list) in contents {
            let name = queue_chunk_name(chunk);
            // Read-modify-write: the chunk holds other actors' entries too.
            let version = loaded.version(&name);
            reads.insert(name.clone(), version);
            writes.insert(name, (!list.is_empty()).then(|| encode(&list)));
        }
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
    round: u64,
    events: Vec<membership_core::Event>,
}

/// Every key-value pair of `state` (the registry part), for an import into an empty prefix
/// whose open heartbeat round is `round` (a flag set is stored as a heartbeat naming it).
#[cfg(feature = "testing")]
pub(crate) fn export(state: &State, round: u64) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        CONFIG_KEY.to_string(),
        encode(&StoredConfig::of(state.config())),
    )];
    for (n, record) in state.node_ids().zip(state.nodes()) {
        out.push((registry_key_name(&Key::Node(n)), encode(record)));
        if state.heartbeat_received(n) {
            out.push((registry_key_name(&Key::Heartbeat(n)), encode(&round)));
        }
        out.push((registry_key_name(&Key::Load(n)), encode(&state.load(n))));
        out.push((registry_key_name(&Key::Hosted(n)), encode(&state.load(n))));
    }
    out.push((
        registry_key_name(&Key::Counter(Counter::Term)),
        encode(&state.term_counter()),
    ));
    out.push((
        registry_key_name(&Key::Counter(Counter::ViewNumber)),
        encode(&state.view_counter()),
    ));
    out.push((
        registry_key_name(&Key::Counter(Counter::Epoch)),
        encode(&state.epoch_counter()),
    ));
    out.push((
        registry_key_name(&Key::ActorCount),
        encode(&(state.placements().len() as u64)),
    ));
    for (a, p) in state.placements().iter() {
        out.push((registry_key_name(&Key::Actor(*a)), encode(p)));
    }
    let mut chunks: BTreeMap<u64, Vec<(ActorId, MigrationEntry)>> = BTreeMap::new();
    for (&actor, &entry) in state.queue().iter() {
        chunks
            .entry(actor.0 / QUEUE_CHUNK_ACTORS)
            .or_default()
            .push((actor, entry));
    }
    for (chunk, list) in chunks {
        out.push((queue_chunk_name(chunk), encode(&list)));
    }
    out
}

/// A committed-log record read back: the key's name, its value, and the engine's order of the
/// commit that wrote it (etcd: the key's `create_revision`).
#[cfg(feature = "testing")]
pub(crate) fn logged(key: &str, bytes: &[u8], order: u64) -> Result<Logged, StoreError> {
    let parts: Vec<&str> = key.split('/').collect();
    let ["log", n, incarnation, seq] = parts.as_slice() else {
        return Err(DecodeError {
            key: key.to_string(),
            reason: "not a log key".to_string(),
        }
        .into());
    };
    let node: u16 = number(key, n.strip_prefix('n').unwrap_or("x"))?;
    let LogRecord { round, events } = decode(key, bytes)?;
    Ok(Logged {
        revision: order,
        round,
        id: ProposalId {
            node: NodeId(node),
            incarnation: number(key, incarnation)?,
            seq: number(key, seq)?,
        },
        events,
    })
}

/// The stored bytes of `key` in a snapshot's registry and metadata (None: absent).
#[cfg(feature = "testing")]
pub(crate) fn value_of(key: &StoreKey, state: &State, meta: &Meta) -> Option<Vec<u8>> {
    match key {
        StoreKey::Registry(Key::Queue(a)) => {
            let chunk = a.0 / QUEUE_CHUNK_ACTORS;
            let list: Vec<(ActorId, MigrationEntry)> = state
                .queue()
                .iter()
                .filter(|(x, _)| x.0 / QUEUE_CHUNK_ACTORS == chunk)
                .map(|(&x, &e)| (x, e))
                .collect();
            (!list.is_empty()).then(|| encode(&list))
        }
        StoreKey::Registry(Key::Node(n)) => state.node(*n).map(encode),
        StoreKey::Registry(Key::Heartbeat(n)) => meta.heartbeat_round(*n).map(|r| encode(&r)),
        StoreKey::Registry(Key::Actor(a)) => state.placement(*a).map(|p| encode(&p)),
        StoreKey::Registry(Key::Counter(Counter::Term)) => Some(encode(&state.term_counter())),
        StoreKey::Registry(Key::Counter(Counter::ViewNumber)) => {
            Some(encode(&state.view_counter()))
        }
        StoreKey::Registry(Key::Counter(Counter::Epoch)) => Some(encode(&state.epoch_counter())),
        StoreKey::Registry(Key::ActorCount) => Some(encode(&(state.placements().len() as u64))),
        StoreKey::Registry(Key::Load(n) | Key::Hosted(n)) => Some(encode(&state.load(*n))),
        StoreKey::Meta(MetaKey::Slot(n)) => meta.slots.get(n).map(encode),
        StoreKey::Meta(MetaKey::Round) => Some(encode(&meta.round)),
        StoreKey::Meta(MetaKey::Applied(id)) => meta.applied.get(id).map(encode),
    }
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
/// (the next batch moves the rest).
pub(crate) fn plan_fitting(
    loaded: &Loaded,
    proposal: &membership_core::Proposal,
    log: bool,
    fits: impl Fn(&Plan) -> Result<(), (u64, u64)>,
) -> Result<Planned, StoreError> {
    let mut proposal = *proposal;
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
