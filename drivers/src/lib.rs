//! A verified cluster-membership registry for virtual-actor runtimes.
//!
//! Nodes join and leave, failed nodes are detected and declared, one primary is elected with a
//! fencing term, and every actor lives on exactly one live node. The protocol is one pure
//! reducer (`membership_core::step`), checked exhaustively by a model checker; this crate runs it:
//! a [`Store`] executes every proposal as one serializable transaction, and a tokio task per node
//! runs the node's `Agent` (the per-node policy, also pure, in `membership_core`).
//!
//! Embedding it: start nodes on a store, join them, place actors, and listen to the
//! notifications.
//!
//! ```
//! use membership::{MemoryStore, NodeHandle, NodeOptions, Store};
//! use membership::protocol::{ActorId, Config, NodeId, Notification};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), membership::Error> {
//! let store = Arc::new(MemoryStore::new());
//! store.init(Config::fixed(3).expect("3 nodes")).await?;
//! let mut nodes = Vec::new();
//! for i in 1..=3 {
//!     let node = NodeHandle::start(store.clone(), NodeOptions::new(NodeId(i))).await?;
//!     node.join().await?;
//!     nodes.push(node);
//! }
//! let mut events = nodes[0].notifications();
//! let placement = nodes[0].place_actor(ActorId(42)).await?;
//! assert!(placement.node.0 >= 1 && placement.node.0 <= 3);
//! assert_eq!(nodes[0].lookup_actor(ActorId(42)), Some(placement));
//! let (primary, term) = nodes[0].primary().expect("a primary is elected");
//! assert!(term >= 1 && primary.0 >= 1);
//! // A request for a42 is served by its host under a permit, asked for per request (None until
//! // the host's hand-off wait has passed, and again once its lease is in doubt). Every write the
//! // request makes downstream carries `permit.epoch`, the fencing token: a resource refuses an
//! // epoch older than the newest it has seen for the actor.
//! let host = &nodes[usize::from(placement.node.0) - 1];
//! if let Some(permit) = host.permit(ActorId(42)).await? {
//!     assert_eq!(permit.epoch, placement.epoch);
//!     assert!(permit.remaining() <= std::time::Duration::from_millis(300)); // at most a lease
//! }
//! // Notifications say what happened on the node: became primary, views, activations...
//! while let Ok(n) = events.try_recv() {
//!     if let Notification::ActorActivated { actor, epoch } = n.notification {
//!         assert_eq!((actor, epoch), (ActorId(42), placement.epoch));
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The embedded [`MemoryStore`] needs no setup; production clusters use a replicated store
//! implementing [`Store`] (etcd, FoundationDB).
//!
//! Cargo features, all off by default: `etcd` (the etcd store), `fdb` (the FoundationDB store),
//! and `testing`, the test kit (the module `membership::testing`, only in builds that enable
//! it): fault injection, the store audit, the in-memory store's step-wise transactions. A
//! production build has no way to break its store on purpose.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
#[cfg_attr(
    not(any(feature = "etcd", feature = "fdb")),
    allow(
        dead_code,
        reason = "the engines' cache; without an engine, only the simulation's registry cache uses it"
    )
)]
mod cache;
#[cfg(any(feature = "etcd", feature = "fdb"))]
mod cached;
mod clock;
mod codec;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "testing")]
mod fault;
#[cfg(feature = "fdb")]
mod fdb;
// The change feed's bytes and rules: pure, so its unit tests run without the `fdb` feature.
#[cfg(any(feature = "fdb", test))]
#[cfg_attr(
    not(feature = "fdb"),
    allow(
        dead_code,
        unreachable_pub,
        reason = "used by the fdb store; tested without it"
    )
)]
mod feed;
pub mod identity;
mod keys;
#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
#[cfg_attr(
    not(any(feature = "etcd", feature = "fdb")),
    allow(
        dead_code,
        reason = "the engines' cache; without an engine, only the simulation's registry cache uses it"
    )
)]
mod kv;
#[cfg(feature = "testing")]
#[cfg_attr(
    not(any(feature = "etcd", feature = "fdb")),
    allow(
        dead_code,
        reason = "the engines' cache; without an engine, only the simulation's registry cache uses it"
    )
)]
mod kv_testing;
mod memory;
mod node;
pub mod probe;
pub mod snapshot_file;
pub mod status;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upgrade;
pub mod watch;

/// The protocol core (`membership_core`), re-exported: events, effects, the registry, the
/// Agent.
pub use membership_core as protocol;

#[cfg(any(feature = "etcd", feature = "fdb", feature = "testing"))]
pub use cache::{CACHE_CHANGES_PER_COMMIT_MAX, CACHE_CONFIRM_REUSE_MS};
pub use codec::DecodeError;
#[cfg(feature = "etcd")]
pub use etcd::{
    EtcdOptions, EtcdStore, EtcdTls, ETCD_BATCH_MOVES_MAX, ETCD_CONFLICT_RETRIES_MAX,
    ETCD_FAMILY_KEYS_MAX, ETCD_LOG_READ_MAX, ETCD_MIGRATION_BYTES_MAX, ETCD_MIGRATION_PAGE_KEYS,
    ETCD_MIGRATION_WRITES_MAX, ETCD_REQUEST_BYTES_MAX, ETCD_REQUEST_MARGIN_BYTES,
    ETCD_REQUEST_TIMEOUT_MS, ETCD_RESPONSE_BYTES_MAX, ETCD_RETRY_BACKOFF_MS, ETCD_TXN_OPS_MAX,
    ETCD_UNAVAILABLE_RETRIES_MAX, ETCD_WATCH_BACKOFF_MAX_MS,
};
#[cfg(feature = "fdb")]
pub use fdb::{
    FdbStore, FdbTls, FDB_BATCH_BYTES_MAX, FDB_BATCH_MOVES_MAX, FDB_CACHE_WAIT_MS,
    FDB_CONFLICT_RETRIES_MAX, FDB_FEED_BACKOFF_MAX_MS, FDB_FEED_POLL_MS,
    FDB_FEED_RETENTION_VERSIONS, FDB_FEED_TRIM_EVERY_VERSIONS, FDB_RETRY_BACKOFF_MS,
    FDB_RETRY_LIMIT, FDB_TRANSACTION_TIMEOUT_MS, FDB_UNAVAILABLE_RETRIES_MAX,
};
#[cfg(feature = "fdb")]
pub use feed::{FDB_FEED_PARTS_PER_COMMIT_MAX, FDB_FEED_PART_BYTES_MAX, FDB_FEED_READ_PARTS_MAX};
#[cfg(any(feature = "etcd", feature = "fdb"))]
pub use keys::QUEUE_CHUNK_ACTORS;
pub use memory::{MemoryStore, CONFLICT_RETRIES_MAX};
pub use node::{
    Error, NodeHandle, NodeNotification, NodeOptions, Permit, CHANGE_READ_GAP_MS, COMMANDS_MAX,
    INBOX_MAX, METRICS_CONNECTIONS_MAX, METRICS_LATENCY_BUCKETS_COUNT,
    METRICS_LATENCY_BUCKET_FACTOR, METRICS_LATENCY_FIRST_BUCKET_SECONDS, METRICS_PREFIX,
    METRICS_REQUEST_HEAD_BYTES_MAX, METRICS_REQUEST_TIMEOUT_MS, METRICS_TASK_ANSWER_TIMEOUT_MS,
    NOTIFICATION_BUFFER, STOP_REASON_WAIT_MS,
};
pub use store::{Snapshot, Store, StoreError, StoreStats};
