//! The test kit's view of the key-value layout of the stores on a real engine
//! ([`crate::kv`]): a registry exported as key-value pairs (an import), a stored key's name and
//! bytes in a snapshot (a corruption and its repair), a committed-log record read back.

use crate::codec::{decode, encode, DecodeError};
use crate::keys::queue;
use crate::keys::{meta_key_name, registry_key_name, StoreKey, CONFIG_KEY};
use crate::kv::{number, LogRecord, StoredConfig};
use crate::store::{Logged, Snapshot, StoreError};
use membership_core::{Counter, Key, Meta, MetaKey, NodeId, ProposalId, State};
use std::collections::BTreeMap;

/// The stored value of `record` in open round `round`, as a registry without bulk erasures of
/// votes holds it (every generation 0: [`crate::kv::votes`]).
fn node_value(record: &membership_core::NodeRecord, round: u64) -> Vec<u8> {
    encode(&crate::kv::votes::stored(record, round, 0, |_| 0))
}

/// Every key-value pair of `state` (the registry part), for an import into an empty prefix
/// whose open heartbeat round is `round` (a flag set is stored as a heartbeat naming it).
pub(crate) fn export(state: &State, round: u64) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        CONFIG_KEY.to_string(),
        encode(&StoredConfig::of(state.config())),
    )];
    for (n, record) in state.node_ids().zip(state.nodes()) {
        out.push((registry_key_name(&Key::Node(n)), node_value(record, round)));
        if state.heartbeat_received(n) {
            out.push((registry_key_name(&Key::Heartbeat(n)), encode(&round)));
        }
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
    for (chunk, list) in queue::chunks(state.queue().iter()) {
        if let Some(bytes) = queue::encode_chunk(&list) {
            out.push((chunk.name(), bytes));
        }
    }
    // The version markers last: an engine that imports in several transactions changes a
    // node's markers only after its placements, so a transaction that compares a marker sees
    // every placement the import wrote (etcd's cache may lag the import's batches).
    for n in state.node_ids() {
        out.push((registry_key_name(&Key::Load(n)), encode(&state.load(n))));
    }
    out.push((
        registry_key_name(&Key::Members),
        encode(&u64::from(state.active().len())),
    ));
    out
}

/// Every key-value pair an engine stores for the registry and the metadata a snapshot carries
/// (the node slots, the heartbeat round and each node's latest heartbeat; not the applied
/// proposals' records, which no snapshot holds), by key name: the image a simulated engine's
/// change feed is computed from (`testing::FeedSource`).
pub(crate) fn image(snapshot: &Snapshot) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = export(&snapshot.state, snapshot.round)
        .into_iter()
        .collect();
    for (n, round) in &snapshot.heartbeat_rounds {
        out.insert(registry_key_name(&Key::Heartbeat(*n)), encode(round));
    }
    for (n, slot) in &snapshot.slots {
        out.insert(meta_key_name(&MetaKey::Slot(*n)), encode(slot));
    }
    out.insert(meta_key_name(&MetaKey::Round), encode(&snapshot.round));
    debug_assert!(out.contains_key(CONFIG_KEY));
    out
}

/// A committed-log record read back: the key's name, its value, and the engine's order of the
/// commit that wrote it (etcd: the key's `create_revision`).
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

/// The name under which an engine keeps `key`: a queue entry's chunk (its node's in `state`,
/// which only a queue entry needs), a hosted marker's load marker, any other key's own name.
pub(crate) fn stored_name(key: &StoreKey, state: Option<&State>) -> String {
    match key {
        StoreKey::Registry(Key::Queue(a)) => state
            .and_then(|s| queue::chunk_of(s, *a))
            .map_or_else(|| key.name(), |c| c.name()),
        StoreKey::Registry(k) => registry_key_name(k),
        StoreKey::Meta(_) => key.name(),
    }
}

/// Whether naming `key` as an engine stores it needs the registry ([`stored_name`]).
pub(crate) fn named_by_registry(key: &StoreKey) -> bool {
    matches!(key, StoreKey::Registry(Key::Queue(_)))
}

/// The stored bytes of `key` in a snapshot's registry and metadata (None: absent).
pub(crate) fn value_of(key: &StoreKey, state: &State, meta: &Meta) -> Option<Vec<u8>> {
    match key {
        StoreKey::Registry(Key::Queue(a)) => {
            queue::chunk_of(state, *a).and_then(|c| queue::encode_chunk(&c.entries(state)))
        }
        StoreKey::Registry(Key::Node(n)) => state.node(*n).map(|r| node_value(r, meta.round)),
        StoreKey::Registry(Key::Heartbeat(n)) => meta.heartbeat_round(*n).map(|r| encode(&r)),
        StoreKey::Registry(Key::Actor(a)) => state.placement(*a).map(|p| encode(&p)),
        StoreKey::Registry(Key::Counter(Counter::Term)) => Some(encode(&state.term_counter())),
        StoreKey::Registry(Key::Counter(Counter::ViewNumber)) => {
            Some(encode(&state.view_counter()))
        }
        StoreKey::Registry(Key::Counter(Counter::Epoch)) => Some(encode(&state.epoch_counter())),
        StoreKey::Registry(Key::ActorCount) => Some(encode(&(state.placements().len() as u64))),
        StoreKey::Registry(Key::Load(n) | Key::Hosted(n)) => Some(encode(&state.load(*n))),
        StoreKey::Registry(Key::Members) => Some(encode(&u64::from(state.active().len()))),
        StoreKey::Meta(MetaKey::Slot(n)) => meta.slots.get(n).map(encode),
        StoreKey::Meta(MetaKey::Round) => Some(encode(&meta.round)),
        StoreKey::Meta(MetaKey::Applied(id)) => meta.applied.get(id).map(encode),
    }
}
