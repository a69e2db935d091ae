//! The migration queue's stored layout on a real engine (etcd, FoundationDB): entries grouped
//! **by the node they leave**, then by actor id, [`QUEUE_CHUNK_ACTORS`] ids per key:
//! `queue/n3/c0` holds the entries of the actors queued to leave `n3` whose ids are below
//! 16,384, `queue/n3/c1` the next 16,384 ids, and so on.
//!
//! Why by node: MarkNodeFailed and NodeLeave queue every actor of one node in one transition,
//! and a migration batch drains the queue of one node. Grouped by actor id alone (the layout
//! before this one, `queue/c<i>` with 256 ids per key), a node's actors, whose ids are spread
//! over the whole registry, touched one key per 256 ids: 40,000 actors on 5 nodes made a
//! declaration write 157 keys, more than etcd's 128 operations, and the node was never
//! declared. Grouped by node, a declaration writes one key per 16,384 ids of the node's
//! actors (7 keys for actor ids up to 100,000, 62 up to 1,000,000).
//!
//! An entry's key follows from the registry: the queue names the node an actor leaves, and
//! that is the node it is placed on (MigrationQueueBounded), so an actor's entry, present or
//! absent, lives in its placement's node's chunk ([`chunk_of`]). A transaction that reads an
//! actor's queue entry reads that chunk; a concurrent move of the actor to another node changes
//! its placement or its node's hosted marker, which every footprint that reads a queue entry
//! also reads (`core/src/footprint.rs`), so the chunk's compare together with those is never
//! weaker than a key per entry.
//!
//! A stored chunk is a list of `[reason, [actor ids]]` pairs, one per reason present, ids
//! ascending (about 8 bytes an entry: a chunk holds at most 16,384 entries, about 130 KiB).

use crate::codec::{decode, encode, DecodeError};
use crate::keys::{QUEUE_CHUNK_ACTORS, QUEUE_FAMILY};
use membership_core::{ActorId, MigrationEntry, MigrationReason, NodeId, State};
use std::collections::BTreeMap;
use std::ops::Range;

/// One stored queue key: the entries of the actors queued to leave `node` whose ids fall in
/// the `index`th range of [`QUEUE_CHUNK_ACTORS`] ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Chunk {
    /// The node the chunk's actors are queued to leave.
    pub(crate) node: NodeId,
    /// Which range of actor ids.
    pub(crate) index: u64,
}

impl Chunk {
    /// The chunk that holds `actor`'s entry when it is queued to leave `node`.
    pub(crate) fn of(node: NodeId, actor: ActorId) -> Chunk {
        let chunk = Chunk {
            node,
            index: actor.0 / QUEUE_CHUNK_ACTORS,
        };
        debug_assert!(chunk.range().contains(&actor));
        chunk
    }

    /// The key's name, relative to the store's prefix: `queue/n3/c0`.
    pub(crate) fn name(&self) -> String {
        format!("{QUEUE_FAMILY}{}/c{}", self.node, self.index)
    }

    /// The actor ids the chunk covers.
    pub(crate) fn range(&self) -> Range<ActorId> {
        let start = self.index.saturating_mul(QUEUE_CHUNK_ACTORS);
        ActorId(start)..ActorId(start.saturating_add(QUEUE_CHUNK_ACTORS))
    }

    /// The chunk's entries in `state`, in id order: O(entries queued in its id range).
    pub(crate) fn entries(&self, state: &State) -> Vec<(ActorId, MigrationEntry)> {
        let entries: Vec<(ActorId, MigrationEntry)> = state
            .queue()
            .range(self.range())
            .filter(|(_, e)| e.from == self.node)
            .map(|(&a, &e)| (a, e))
            .collect();
        debug_assert!(entries.len() as u64 <= QUEUE_CHUNK_ACTORS);
        entries
    }
}

/// The chunk that holds `actor`'s queue entry in `state`, or would hold it (the node it is
/// placed on: an entry names its actor's node); `None` for an actor neither queued nor placed,
/// which has no entry and can get one only by a placement (whose key a transaction reading the
/// entry compares too).
pub(crate) fn chunk_of(state: &State, actor: ActorId) -> Option<Chunk> {
    let node = match state.queue().get(actor) {
        Some(entry) => Some(entry.from),
        None => state.placement(actor).map(|p| p.node),
    };
    let chunk = node.map(|n| Chunk::of(n, actor));
    debug_assert!(chunk.is_none_or(|c| c.range().contains(&actor)));
    chunk
}

/// The chunk that holds `actor`'s entry in `state` (`None`: not queued).
pub(crate) fn queued_chunk(state: &State, actor: ActorId) -> Option<Chunk> {
    state.queue().get(actor).map(|e| Chunk::of(e.from, actor))
}

/// A chunk's value: `entries` (all of one chunk, in id order) as `[reason, [ids]]` pairs;
/// `None` for none (the key is removed: absent means nothing queued).
pub(crate) fn encode_chunk(entries: &[(ActorId, MigrationEntry)]) -> Option<Vec<u8>> {
    if entries.is_empty() {
        return None;
    }
    let mut grouped: BTreeMap<MigrationReason, Vec<u64>> = BTreeMap::new();
    for (actor, entry) in entries {
        grouped.entry(entry.reason).or_default().push(actor.0);
    }
    debug_assert!(grouped.values().all(|ids| ids.is_sorted()));
    let stored: Vec<(MigrationReason, Vec<u64>)> = grouped.into_iter().collect();
    Some(encode(&stored))
}

/// Decodes the value of `chunk`'s key `name`: every id in the chunk's range, no id twice, no
/// reason twice.
pub(crate) fn decode_chunk(
    name: &str,
    chunk: Chunk,
    bytes: &[u8],
) -> Result<Vec<(ActorId, MigrationEntry)>, DecodeError> {
    let stored: Vec<(MigrationReason, Vec<u64>)> = decode(name, bytes)?;
    let fail = |reason: String| DecodeError {
        key: name.to_string(),
        reason,
    };
    let mut entries: BTreeMap<ActorId, MigrationEntry> = BTreeMap::new();
    let mut reasons = Vec::new();
    for (reason, ids) in stored {
        if reasons.contains(&reason) {
            return Err(fail(format!("the reason {reason} is listed twice")));
        }
        reasons.push(reason);
        for id in ids {
            let actor = ActorId(id);
            if !chunk.range().contains(&actor) {
                return Err(fail(format!("{actor} does not belong to this chunk")));
            }
            let entry = MigrationEntry {
                from: chunk.node,
                reason,
            };
            if entries.insert(actor, entry).is_some() {
                return Err(fail(format!("{actor} is queued twice")));
            }
        }
    }
    if entries.is_empty() {
        return Err(fail("an empty chunk (an empty one is removed)".to_string()));
    }
    Ok(entries.into_iter().collect())
}

/// Every chunk of `entries` (any order) with its entries in id order: what a registry's queue
/// is stored as.
pub(crate) fn chunks<'a>(
    entries: impl IntoIterator<Item = (&'a ActorId, &'a MigrationEntry)>,
) -> BTreeMap<Chunk, Vec<(ActorId, MigrationEntry)>> {
    let mut chunks: BTreeMap<Chunk, Vec<(ActorId, MigrationEntry)>> = BTreeMap::new();
    for (&actor, &entry) in entries {
        chunks
            .entry(Chunk::of(entry.from, actor))
            .or_default()
            .push((actor, entry));
    }
    for list in chunks.values_mut() {
        list.sort_by_key(|(a, _)| *a);
    }
    chunks
}

/// The error for a key of the previous queue layout (`queue/c<i>`: entries grouped by actor id
/// alone), pointing to the migration; `None` for any other key. Such a key is never read by
/// this layout, so a registry holding one would silently lose its entries: the whole load
/// fails instead.
pub(crate) fn previous_layout(name: &str) -> Option<DecodeError> {
    let rest = name.strip_prefix(QUEUE_FAMILY)?;
    let index = rest.strip_prefix('c')?;
    index.parse::<u64>().is_ok().then(|| DecodeError {
        key: name.to_string(),
        reason: "a queue chunk of the layout by actor id (before the queue was grouped by \
                 node): migrate the registry first (membership::upgrade::migrate_v1, with no \
                 node running)"
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::Placement;
    use proptest::prelude::*;

    const REASONS: [MigrationReason; 3] = [
        MigrationReason::NodeFailed,
        MigrationReason::NodeLeaving,
        MigrationReason::LoadBalancing,
    ];

    fn entry(node: u16, reason: usize) -> MigrationEntry {
        MigrationEntry {
            from: NodeId(node),
            reason: REASONS[reason % REASONS.len()],
        }
    }

    #[test]
    fn a_chunk_is_named_by_its_node_and_id_range() {
        let chunk = Chunk::of(NodeId(3), ActorId(16_384 * 2 + 5));
        assert_eq!(chunk.name(), "queue/n3/c2");
        assert_eq!(chunk.range(), ActorId(32_768)..ActorId(49_152));
        assert_eq!(Chunk::of(NodeId(1), ActorId(0)).name(), "queue/n1/c0");
    }

    #[test]
    fn only_the_previous_layout_is_refused_by_name() {
        let error = previous_layout("queue/c0").unwrap();
        assert!(error.reason.contains("migrate_v1"), "{error}");
        assert_eq!(previous_layout("queue/n3/c0"), None);
        assert_eq!(previous_layout("node/n3"), None);
    }

    #[test]
    fn a_bad_chunk_value_names_what_is_wrong() {
        let chunk = Chunk::of(NodeId(2), ActorId(0));
        let outside = encode(&vec![(
            MigrationReason::NodeFailed,
            vec![QUEUE_CHUNK_ACTORS],
        )]);
        let error = decode_chunk("queue/n2/c0", chunk, &outside).unwrap_err();
        assert!(error.reason.contains("does not belong"), "{error}");
        let twice = encode(&vec![
            (MigrationReason::NodeFailed, vec![1]),
            (MigrationReason::NodeLeaving, vec![1]),
        ]);
        let error = decode_chunk("queue/n2/c0", chunk, &twice).unwrap_err();
        assert!(error.reason.contains("queued twice"), "{error}");
        let reason_twice = encode(&vec![
            (MigrationReason::NodeFailed, vec![1]),
            (MigrationReason::NodeFailed, vec![2]),
        ]);
        let error = decode_chunk("queue/n2/c0", chunk, &reason_twice).unwrap_err();
        assert!(error.reason.contains("listed twice"), "{error}");
        let empty = encode(&Vec::<(MigrationReason, Vec<u64>)>::new());
        assert!(decode_chunk("queue/n2/c0", chunk, &empty).is_err());
        assert_eq!(
            decode_chunk("queue/n2/c0", chunk, b"\x01[")
                .unwrap_err()
                .key,
            "queue/n2/c0"
        );
    }

    #[test]
    fn an_entry_lives_in_its_placement_nodes_chunk_queued_or_not() {
        use membership_core::testing::{all_active, fixed, place_on, run};
        let state = place_on(&run(fixed(3), &all_active(3)), 2, [7]);
        assert_eq!(
            state.placement(ActorId(7)).map(|p: Placement| p.node),
            Some(NodeId(2))
        );
        assert_eq!(
            chunk_of(&state, ActorId(7)),
            Some(Chunk::of(NodeId(2), ActorId(7)))
        );
        assert_eq!(queued_chunk(&state, ActorId(7)), None);
        assert_eq!(chunk_of(&state, ActorId(8)), None);
    }

    proptest! {
        /// Encoding a registry's queue by chunk and decoding every chunk gives the queue back,
        /// each chunk within its bound and under its own node.
        #[test]
        fn chunks_round_trip(
            raw in proptest::collection::btree_map(0u64..200_000, (1u16..6, 0usize..3), 0..300)
        ) {
            let queue: BTreeMap<ActorId, MigrationEntry> = raw
                .iter()
                .map(|(&a, &(n, r))| (ActorId(a), entry(n, r)))
                .collect();
            let stored = chunks(queue.iter());
            let mut back = BTreeMap::new();
            for (chunk, list) in &stored {
                prop_assert!(list.len() as u64 <= QUEUE_CHUNK_ACTORS);
                let bytes = encode_chunk(list).unwrap();
                let decoded = decode_chunk(&chunk.name(), *chunk, &bytes).unwrap();
                prop_assert_eq!(&decoded, list);
                for (a, e) in decoded {
                    prop_assert_eq!(e.from, chunk.node);
                    prop_assert!(back.insert(a, e).is_none());
                }
            }
            prop_assert_eq!(back, queue);
            prop_assert!(encode_chunk(&[]).is_none());
        }
    }
}
