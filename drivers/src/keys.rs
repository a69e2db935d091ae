//! The names of the stored keys: the one place every store (in-memory, etcd, FoundationDB)
//! takes them from. The stores on a real engine keep each key under its name relative to the
//! store's prefix or subspace; the in-memory store keeps decoded values and uses the names only
//! to name a key in an error.
//!
//! | key | value |
//! | --- | --- |
//! | `config` | the node count and the actor limit (written once by `init`) |
//! | `node/n3` | the node record of `n3`, its votes beside it: `{"record": ..., "round": r, "votes": [[t, g], ...], "generation": g}` (each vote counts while `r` is the open round and its target's generation is `g`: `crate::kv::votes`; a bare record, stored before, is read with its votes expired) |
//! | `heartbeat/n3` | the round `n3`'s latest heartbeat ran at (its flag: that is the open round) |
//! | `counter/Term`, `counter/ViewNumber`, `counter/Epoch` | the registry counters |
//! | `actor/a7` | the placement of `a7` (absent: not placed) |
//! | `queue/n3/c0` | the queue entries of the actors queued to leave `n3` with ids `a0..a16383` (absent: none queued), [`QUEUE_CHUNK_ACTORS`] ids per key (`crate::kv::queue`) |
//! | `load/n3`, `counter/actors` | derived: version markers written whenever the placements on `n3` (the actor count) change; never read back. `load/n3` is both `Key::Load(n3)` and `Key::Hosted(n3)` (`hosted/n3`, written up to a9ebeab, is left unread) |
//! | `slot/n3`, `round`, `proposal/n3/2/17` | metadata: `n3`'s slot, the heartbeat round, an applied proposal's record |
//! | `log/n3/2/17` | the committed log (optional, for audits and the conformance suite): the spec actions a proposal applied |
//! | `logorder/n3/2/17` | FoundationDB only: a log record's commit versionstamp |
//! | `version` | the commit marker: etcd, an empty value whose `mod_revision` is the latest commit's; FoundationDB, the latest commit's versionstamp |
//! | `(subspace, "feed", versionstamp)`, `feedtrim` | FoundationDB only: the change feed (each commit's changed keys and values, in parts) and its trim point |
//!
//! A registry key's name is the registry key's own (`membership_core::Key`'s display), except a
//! queue entry's on etcd and FoundationDB, which is its chunk's:
//! `queue/<node>/c<actor / QUEUE_CHUNK_ACTORS>`, the node being the one the actor is queued to
//! leave (or placed on), so it is named against a registry (`crate::kv::queue`). The in-memory
//! store keeps one entry per key and names it as the registry key does (`queue/a7`).

// The queue's layout is used by the engines' stores and by the migration (`crate::upgrade`),
// which is built without them.
#[cfg_attr(
    not(any(feature = "etcd", feature = "fdb")),
    allow(
        dead_code,
        reason = "used by the etcd and fdb stores; tested without them"
    )
)]
pub(crate) mod queue;

#[cfg(any(feature = "etcd", feature = "fdb"))]
use membership_core::NodeId;
#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
use membership_core::ProposalId;
use membership_core::{Key, MetaKey};
#[cfg(feature = "testing")]
use {
    crate::codec::{decode, DecodeError},
    membership_core::{Applied, MigrationEntry, NodeRecord, Placement, Slot},
};

/// How many actor ids one queue key covers, under one node (`queue/n3/c<i>`: the ids
/// `i * QUEUE_CHUNK_ACTORS ..`; etcd and FoundationDB stores). A declaration writes one key per
/// this many ids of the declared node's actors (7 for ids up to 100,000), and a key holds at
/// most this many entries (about 8 bytes each).
#[cfg_attr(
    not(any(feature = "etcd", feature = "fdb")),
    allow(
        unreachable_pub,
        reason = "public at the crate root with the etcd or fdb feature"
    )
)]
pub const QUEUE_CHUNK_ACTORS: u64 = 16_384;

/// The configuration key.
#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
pub(crate) const CONFIG_KEY: &str = "config";

/// The heartbeat round key.
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
pub(crate) const ROUND_KEY: &str = "round";

/// The members' version marker (`Key::Members`: written whenever the set of Active nodes
/// changes; never deleted, never read back).
#[cfg(feature = "etcd")]
pub(crate) const MEMBERS_KEY: &str = "members";

/// The commit marker: written by every commit (etcd: its `mod_revision` is the latest commit's
/// revision; FoundationDB: the latest commit's versionstamp, watched by the change feed's task).
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) const VERSION_KEY: &str = "version";

/// The node records' family.
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) const NODE_FAMILY: &str = "node/";
/// The heartbeats' family (each node's latest heartbeat round).
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) const HEARTBEAT_FAMILY: &str = "heartbeat/";
/// The counters' family.
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) const COUNTER_FAMILY: &str = "counter/";
/// The placements' family.
#[cfg(any(feature = "fdb", all(feature = "testing", feature = "etcd")))]
pub(crate) const ACTOR_FAMILY: &str = "actor/";
/// The queue chunks' family.
pub(crate) const QUEUE_FAMILY: &str = "queue/";
/// The load markers' family.
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) const LOAD_FAMILY: &str = "load/";
/// The hosted markers' family.
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) const HOSTED_FAMILY: &str = "hosted/";
/// The node slots' family.
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
pub(crate) const SLOT_FAMILY: &str = "slot/";
/// The proposal records' family.
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
pub(crate) const PROPOSAL_FAMILY: &str = "proposal/";
/// The committed log's family.
#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
pub(crate) const LOG_FAMILY: &str = "log/";
/// The family of the log records' commit versionstamps (FoundationDB).
#[cfg(feature = "fdb")]
pub(crate) const LOG_ORDER_FAMILY: &str = "logorder/";
/// The FoundationDB change feed: its entries are `(subspace, "feed", versionstamp)` (the
/// commit's, with the part's index as user version), not named keys (`crate::feed`).
#[cfg(feature = "fdb")]
pub(crate) const FEED_KEY: &str = "feed";
/// The FoundationDB change feed's trim point: entries of commit versions below it are deleted
/// (a little-endian u64, raised by an atomic max).
#[cfg(feature = "fdb")]
pub(crate) const FEED_TRIM_KEY: &str = "feedtrim";

/// The key families of the registry itself (not the metadata: slots, round, config), as
/// prefixes: what `import` replaces when a test installs another registry.
#[cfg(all(feature = "testing", any(feature = "etcd", feature = "fdb")))]
pub(crate) const REGISTRY_PREFIXES: [&str; 8] = [
    ACTOR_FAMILY,
    QUEUE_FAMILY,
    NODE_FAMILY,
    HEARTBEAT_FAMILY,
    COUNTER_FAMILY,
    LOAD_FAMILY,
    HOSTED_FAMILY,
    LOG_FAMILY,
];

/// What a registry cache's load reads (every key a cache holds: all but the load and hosted
/// markers, the log and the FoundationDB feed), as prefixes in key order (FoundationDB).
#[cfg(feature = "fdb")]
pub(crate) const LOAD_PREFIXES: [&str; 9] = [
    ACTOR_FAMILY,
    CONFIG_KEY,
    COUNTER_FAMILY,
    HEARTBEAT_FAMILY,
    NODE_FAMILY,
    PROPOSAL_FAMILY,
    QUEUE_FAMILY,
    ROUND_KEY,
    SLOT_FAMILY,
];

/// The families that are never deleted and hold one key per node (a footprint can read many
/// of them: etcd compares such a family as one range).
#[cfg(feature = "etcd")]
pub(crate) const PER_NODE_FAMILIES: [&str; 4] =
    [NODE_FAMILY, HEARTBEAT_FAMILY, LOAD_FAMILY, HOSTED_FAMILY];

/// Whether keys named so are never deleted (node records, flags, markers, counters, slots, the
/// round, the configuration). Placements, queue chunks and proposal records can be deleted.
#[cfg(feature = "etcd")]
pub(crate) fn never_deleted(name: &str) -> bool {
    PER_NODE_FAMILIES
        .iter()
        .chain([COUNTER_FAMILY, SLOT_FAMILY].iter())
        .any(|family| name.starts_with(family))
        || name == ROUND_KEY
        || name == CONFIG_KEY
        || name == MEMBERS_KEY
}

/// Whether a key named so is fed to a registry cache ([`crate::cache`]): every key but the load
/// and hosted markers and the committed log, which are never read back.
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) fn cached(name: &str) -> bool {
    !(name.starts_with(LOAD_FAMILY)
        || name.starts_with(HOSTED_FAMILY)
        || name.starts_with(LOG_FAMILY))
}

/// A key of the store: a registry key or a metadata key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    not(feature = "testing"),
    allow(unreachable_pub, reason = "public in `membership::testing`")
)]
pub enum StoreKey {
    /// A registry key.
    Registry(Key),
    /// A metadata key.
    Meta(MetaKey),
}

#[cfg(feature = "testing")]
impl StoreKey {
    /// The key's name (`node/n1`, `slot/n2`, ...). A queue entry's is the in-memory store's
    /// (`queue/a7`); on etcd and FoundationDB it lives in its node's chunk, whose name depends
    /// on the registry (`StoreKey::stored_name`).
    pub fn name(&self) -> String {
        match self {
            StoreKey::Registry(k) => registry_key_name(k),
            StoreKey::Meta(k) => meta_key_name(k),
        }
    }
}

/// The name of registry key `key`: its display, but for a node's hosted marker, which shares
/// its load marker's key (`load/n3`: both are version markers written whenever the placements
/// on the node change, never read back, so one key serves both reads, a little coarser, never
/// weaker, and a migration batch writes one marker per node it touches, not two). On etcd and
/// FoundationDB a queue entry is kept in its node's chunk instead, named against a registry
/// (`crate::kv::queue::chunk_of`).
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
pub(crate) fn registry_key_name(key: &Key) -> String {
    match key {
        Key::Hosted(n) => Key::Load(*n).to_string(),
        other => other.to_string(),
    }
}

/// The name of a metadata key.
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
pub(crate) fn meta_key_name(key: &MetaKey) -> String {
    match key {
        MetaKey::Slot(n) => format!("{SLOT_FAMILY}{n}"),
        MetaKey::Round => ROUND_KEY.to_string(),
        MetaKey::Applied(id) => {
            format!("{PROPOSAL_FAMILY}{}/{}/{}", id.node, id.incarnation, id.seq)
        }
    }
}

/// The name of the committed-log key of proposal `id`.
#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
pub(crate) fn log_key_name(id: &ProposalId) -> String {
    format!("{LOG_FAMILY}{}/{}/{}", id.node, id.incarnation, id.seq)
}

/// The name of the key holding the commit versionstamp of log record `log_key` (FoundationDB).
#[cfg(feature = "fdb")]
pub(crate) fn order_key_name(log_key: &str) -> String {
    format!(
        "{LOG_ORDER_FAMILY}{}",
        log_key.trim_start_matches(LOG_FAMILY)
    )
}

/// The key prefix holding the records of `node`'s proposals (all incarnations).
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub(crate) fn proposals_of_node(node: NodeId) -> String {
    format!("{PROPOSAL_FAMILY}{node}/")
}

/// Checks that `bytes` decode as the value of registry key `key` (the in-memory store's check
/// of a corrupted value; a queue entry is one entry there, `queue/a7`).
#[cfg(feature = "testing")]
pub(crate) fn check_registry(key: &Key, bytes: &[u8]) -> Result<(), DecodeError> {
    let name = registry_key_name(key);
    match key {
        Key::Node(_) => decode::<NodeRecord>(&name, bytes).map(|_| ()),
        Key::Heartbeat(_) => decode::<bool>(&name, bytes).map(|_| ()),
        Key::Counter(_) | Key::ActorCount | Key::Load(_) | Key::Hosted(_) | Key::Members => {
            decode::<u64>(&name, bytes).map(|_| ())
        }
        Key::Actor(_) => decode::<Placement>(&name, bytes).map(|_| ()),
        Key::Queue(_) => decode::<MigrationEntry>(&name, bytes).map(|_| ()),
    }
}

/// Checks that `bytes` decode as the value of metadata key `key`.
#[cfg(feature = "testing")]
pub(crate) fn check_meta(key: &MetaKey, bytes: &[u8]) -> Result<(), DecodeError> {
    let name = meta_key_name(key);
    match key {
        MetaKey::Slot(_) => decode::<Slot>(&name, bytes).map(|_| ()),
        MetaKey::Round => decode::<u64>(&name, bytes).map(|_| ()),
        MetaKey::Applied(_) => decode::<Applied>(&name, bytes).map(|_| ()),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::codec::encode;
    use membership_core::{ActorId, NodeId, ProposalId};

    #[test]
    fn names_follow_the_layout() {
        let queued = StoreKey::Registry(Key::Queue(ActorId(300)));
        assert_eq!(queued.name(), "queue/a300");
        assert_eq!(StoreKey::Registry(Key::Node(NodeId(3))).name(), "node/n3");
        assert_eq!(StoreKey::Meta(MetaKey::Slot(NodeId(2))).name(), "slot/n2");
        assert_eq!(StoreKey::Meta(MetaKey::Round).name(), "round");
        let id = ProposalId {
            node: NodeId(3),
            incarnation: 2,
            seq: 17,
        };
        assert_eq!(
            StoreKey::Meta(MetaKey::Applied(id)).name(),
            "proposal/n3/2/17"
        );
    }

    #[test]
    fn values_round_trip_and_bad_bytes_name_the_key() {
        let record = NodeRecord::INITIAL;
        let key = Key::Node(NodeId(2));
        let bytes = encode(&record);
        assert_eq!(check_registry(&key, &bytes), Ok(()));
        let truncated = &bytes[..bytes.len() / 2];
        let err = check_registry(&key, truncated).unwrap_err();
        assert_eq!(err.key, "node/n2");
        assert!(err
            .to_string()
            .starts_with("stored value of node/n2 cannot be decoded"));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert_eq!(
            check_registry(&key, &wrong_version).unwrap_err().reason,
            "format version 9, this build reads version 1"
        );
        assert!(check_registry(&key, b"\x01garbage").is_err());
        assert_eq!(check_registry(&key, b"").unwrap_err().reason, "empty value");
    }
}
