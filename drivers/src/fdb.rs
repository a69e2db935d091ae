//! The FoundationDB store (cargo feature `fdb`, `foundationdb` 0.11, API 7.1): the registry
//! laid out as in [`crate::kv`], each key the store's subspace followed by the key's name as
//! one tuple-layer string (`(subspace, "node/n3")`), values versioned. A thin adapter: the
//! transactions are [`crate::cached`]'s (shared with the etcd store), the key layout
//! [`crate::kv`]'s, the change feed's bytes and rules [`crate::feed`]'s; here are the store
//! (this file), what a commit writes and what its errors mean (`fdb/layout.rs`), and the task
//! that follows the feed (`fdb/feeder.rs`).
//!
//! **Never run against a cluster.** This store builds and passes clippy on machines without
//! `libfdb_c`; its conformance run (`tests/store_conformance.rs`, `fdb_suite`) needs
//! `FDB_CLUSTER_FILE` and has not been run (`drivers/README.md`, "FoundationDB on a real
//! cluster").
//!
//! - **A registry cache per handle, fed by a change feed.** FoundationDB has no change feed of
//!   its own, so every commit of this store appends one: its changed keys with their new values
//!   (or deletions) under `(subspace, "feed", versionstamp)`, cut into parts of at most
//!   [`FDB_FEED_PART_BYTES_MAX`] (FoundationDB's value limit is 100 kB), and sets the commit
//!   marker `version` to its versionstamp (a versionstamped value: no read, no conflict). A task
//!   per handle loads the whole registry at one read version, then, each time its watch on
//!   `version` fires (or after [`FDB_FEED_POLL_MS`]), reads the feed from where it is up to a
//!   fresh read version and applies each commit with `kv::apply_changes` into the cache
//!   ([`crate::cache`], the etcd store's). It trims the feed below [`FDB_FEED_RETENTION_VERSIONS`]
//!   (about 5 s) every [`FDB_FEED_TRIM_EVERY_VERSIONS`], recording the trim point in `feedtrim`
//!   (an atomic max); a reader whose position is below the trim point has a gap and loads the
//!   whole registry again, once per gap (`StoreStats::cache_loads`).
//! - **Transactions read their footprint only, at the cache's version.** An attempt runs
//!   `execute` on the cache (complete up to commit version `R`), then one FoundationDB
//!   transaction with its read version set to `R` adds a read conflict range for exactly the keys
//!   the execution read (its footprint, the proposer's slot, its proposal's record, the queue
//!   chunks it writes: the etcd store's compare set), writes the delta and the feed entry, and
//!   commits. FoundationDB's resolver refuses the commit if any of those keys was written after
//!   `R` (`not_committed`): a conflict; the cache catches up with the latest commit and the
//!   attempt runs again, at most [`FDB_CONFLICT_RETRIES_MAX`] times. No key is read from the store: the
//!   values it would read at `R` are the cache's, and comparing values could not see a change of
//!   a marker whose value is a count standing for a set (`hosted/n3`, `members`). A cache older
//!   than FoundationDB's 5 s of history (`transaction_too_old`) is confirmed again first.
//! - **Snapshots from the cache**, confirmed as etcd's: a fresh read version (linearizable)
//!   and, at it, the commit marker (the latest commit's versionstamp); once the cache holds that
//!   commit it is current as of the read, stamped with the boot-time instant the read was sent.
//! - **Unreachable cluster**: every transaction has a timeout ([`FDB_TRANSACTION_TIMEOUT_MS`]);
//!   a commit whose outcome is unknown is retried ([`FDB_UNAVAILABLE_RETRIES_MAX`] times) on a
//!   cache confirmed current, where `execute` recognises the proposal id; when the retries run
//!   out the outcome is `Unknown`.
//! - **Batches under 1 MB**: a commit writing more than [`FDB_BATCH_BYTES_MAX`] (its keys and its
//!   feed entry, which repeats the cached keys' values) or more keys than a cache applies at
//!   once is refused with `StoreError::TooLarge`, except a migration or placement batch, which
//!   runs with half as many moves (at most [`FDB_BATCH_MOVES_MAX`]).
//!
//! The FoundationDB client network must be running in the process before [`FdbStore::open`]:
//! the application boots it once (`foundationdb::boot()`, an `unsafe` call this crate does not
//! make: its code forbids `unsafe`) and drops the guard before it exits. TLS to the cluster is
//! set there too: [`FdbTls::network_options`] lists the options for the network builder.

mod feeder;
mod layout;
mod tls;

pub use tls::FdbTls;

pub use feeder::{
    FDB_FEED_BACKOFF_MAX_MS, FDB_FEED_POLL_MS, FDB_FEED_RETENTION_VERSIONS,
    FDB_FEED_TRIM_EVERY_VERSIONS,
};
pub use layout::{FDB_RETRY_BACKOFF_MS, FDB_RETRY_LIMIT, FDB_TRANSACTION_TIMEOUT_MS};

use crate::cache::{Cache, View, CACHE_CHANGES_PER_COMMIT_MAX};
use crate::cached::{self, Bounds, Committed, Engine, Latest, Shared};
use crate::codec::{decode, encode};
#[cfg(feature = "testing")]
use crate::fault::Fault;
use crate::feed::{self, Stamp};
#[cfg(feature = "testing")]
use crate::keys::{
    cached, order_key_name, StoreKey, LOG_FAMILY, LOG_ORDER_FAMILY, REGISTRY_PREFIXES,
};
use crate::keys::{meta_key_name, proposals_of_node, CONFIG_KEY, VERSION_KEY};
use crate::kv::{Plan, StoredConfig, Write};
#[cfg(feature = "testing")]
use crate::kv_testing::{export, logged, named_by_registry, stored_name, value_of};
#[cfg(feature = "testing")]
use crate::store::Logged;
use crate::store::{Snapshot, Store, StoreError, StoreStats};
#[cfg(feature = "testing")]
use crate::testing::{Audit, Limits};
use feeder::feed_cache;
use foundationdb::options::ConflictRangeType;
use foundationdb::{Database, FdbBindingError, RetryableTransaction};
use layout::{
    commit_cost, commit_failed, conflict_on, custom, limit, marker_version, store_error,
    unavailable, write_commit, Keys,
};
use membership_core::{Config, MetaKey, NodeId, Proposal, ProposalOutcome, Slot};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// The most bytes one transaction writes, its feed entry included (FoundationDB recommends at
/// most 1 MB; its hard limit is 10 MB).
pub const FDB_BATCH_BYTES_MAX: usize = 900_000;

/// How many times one proposal (or claim) runs again after a conflict (or a cache older than
/// FoundationDB's history).
pub const FDB_CONFLICT_RETRIES_MAX: u32 = 64;

/// How many times an attempt that failed (unreachable cluster, unknown commit) runs again.
pub const FDB_UNAVAILABLE_RETRIES_MAX: u32 = 4;

/// The most moves of a migration batch, or placements of a placement batch, one transaction
/// runs (each writes its actor's key, and the cache applies at most
/// [`CACHE_CHANGES_PER_COMMIT_MAX`] keys of one commit).
pub const FDB_BATCH_MOVES_MAX: usize = 1_024;

/// How long a proposal or a snapshot waits for the cache to hold a commit, in ms.
pub const FDB_CACHE_WAIT_MS: u64 = 500;

/// The FoundationDB store's bounds on one proposal.
const FDB_BOUNDS: Bounds = Bounds {
    conflict_retries_max: FDB_CONFLICT_RETRIES_MAX,
    unavailable_retries_max: FDB_UNAVAILABLE_RETRIES_MAX,
    backoff_ms: FDB_RETRY_BACKOFF_MS,
    moves_max: FDB_BATCH_MOVES_MAX,
    catch_up_ms: FDB_CACHE_WAIT_MS,
};

/// The registry in a FoundationDB cluster.
pub struct FdbStore {
    db: Arc<Database>,
    keys: Keys,
    changes: watch::Sender<u64>,
    feeder: tokio::task::JoinHandle<()>,
    /// The registry cache fed by the change feed, the statistics, the injected faults, the
    /// handle's latest write.
    shared: Shared,
}

impl std::fmt::Debug for FdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdbStore")
            .field("subspace", &self.keys.subspace.bytes())
            .finish()
    }
}

impl Drop for FdbStore {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

impl FdbStore {
    /// Opens the database of `cluster_file` (the network must be running, see the module
    /// documentation) and keeps the registry under the subspace `(subspace,)`.
    pub async fn open(
        cluster_file: &str,
        subspace: &str,
        record_log: bool,
    ) -> Result<FdbStore, StoreError> {
        let db = Database::from_path(cluster_file).map_err(unavailable)?;
        Ok(FdbStore::new(db, subspace, record_log).await)
    }

    /// A store on an open database, under the subspace `(subspace,)`. Its feed task runs on the
    /// calling tokio runtime.
    pub async fn new(db: Database, subspace: &str, record_log: bool) -> FdbStore {
        let db = Arc::new(db);
        let keys = Keys::new(subspace);
        let (changes, _) = watch::channel(0);
        let cache = Arc::new(Cache::new());
        let feeder = tokio::spawn(feed_cache(
            db.clone(),
            keys.clone(),
            cache.clone(),
            changes.clone(),
        ));
        FdbStore {
            db,
            keys,
            changes,
            feeder,
            shared: Shared::new(cache, FDB_BOUNDS, record_log),
        }
    }

    /// Runs `work` in `db.run` (bounded by the transaction's timeout and retry limit; `work`
    /// must be idempotent) and notes its commit as this handle's latest write, so that the
    /// handle's snapshots and proposals see it.
    async fn run_writing<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: Fn(RetryableTransaction) -> Fut,
        Fut: Future<Output = Result<T, FdbBindingError>>,
    {
        let (value, stamp) = self
            .db
            .run(|trx, _maybe_committed| {
                let run = work(trx.clone());
                async move {
                    limit(&trx)?;
                    let value = run.await?;
                    Ok((value, trx.get_versionstamp()))
                }
            })
            .await
            .map_err(store_error)?;
        // A transaction that wrote nothing has no versionstamp, and nothing to wait for.
        if let Ok(stamp) = stamp.await {
            if let Ok(stamp) = Stamp::try_from(&*stamp) {
                self.shared.wrote(feed::stamp_version(&stamp));
            }
        }
        Ok(value)
    }

    /// Writes `value` under `name` as it is, or deletes the key (a corruption or a repair).
    #[cfg(feature = "testing")]
    async fn put_raw(&self, name: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let write = match value {
            Some(v) => Write::Put(name.to_string(), v),
            None => Write::Delete(name.to_string()),
        };
        let writes = [write];
        self.run_writing(|trx| {
            let writes = &writes;
            async move { write_commit(&trx, &self.keys, writes, "write").map_err(custom) }
        })
        .await
    }
}

impl Engine for FdbStore {
    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn cost(&self, plan: &Plan, _revision: i64) -> (usize, usize) {
        let (ops, bytes) = commit_cost(&self.keys, &plan.writes);
        debug_assert!(bytes >= plan.write_bytes());
        (ops, bytes)
    }

    fn fits(&self, ops: usize, bytes: usize) -> bool {
        ops <= CACHE_CHANGES_PER_COMMIT_MAX && bytes <= FDB_BATCH_BYTES_MAX
    }

    /// A fresh read version (linearizable: it follows every commit acknowledged before it was
    /// asked for) and, at it, the commit marker: the latest commit's versionstamp.
    async fn latest_commit(&self) -> Result<Latest, StoreError> {
        let trx = self.db.create_trx().map_err(unavailable)?;
        limit(&trx).map_err(unavailable)?;
        let read_at = trx.get_read_version().await.map_err(unavailable)?;
        let marker = trx
            .get(&self.keys.key(VERSION_KEY), true)
            .await
            .map_err(unavailable)?;
        let commit = marker_version(marker.as_deref())?;
        self.shared.stats().confirm_reads += 1;
        debug_assert!(commit <= read_at);
        debug_assert!(read_at > 0, "a cluster's read versions are positive");
        Ok(Latest { commit, read_at })
    }

    /// One transaction at read version `revision` (the cache's) with a read conflict range on
    /// each key the plan read: FoundationDB commits it only if none was written since.
    async fn commit(
        &self,
        plan: &Plan,
        revision: i64,
        action: &str,
        uncertain: &mut bool,
    ) -> Result<Committed, StoreError> {
        debug_assert!(revision > 0, "a cache is loaded at a read version");
        let trx = self.db.create_trx().map_err(unavailable)?;
        limit(&trx).map_err(unavailable)?;
        trx.set_read_version(revision);
        for name in plan.reads.keys() {
            conflict_on(&trx, &self.keys, name).map_err(unavailable)?;
        }
        write_commit(&trx, &self.keys, &plan.writes, action)?;
        let cost = commit_cost(&self.keys, &plan.writes);
        match trx.commit().await {
            Ok(committed) => match committed.committed_version() {
                Ok(at) => {
                    debug_assert!(at > revision, "a commit lands after its read version");
                    Ok(Committed::At(at))
                }
                Err(error) => {
                    // It committed; its version is not known: the retry finds it by its id.
                    *uncertain = true;
                    Err(unavailable(error))
                }
            },
            Err(error) => commit_failed(*error, action, cost, uncertain),
        }
    }

    /// The slot and the deletion of the node's proposal records (the cache's list of them is
    /// exact: the transaction conflicts on the whole range), at the view's read version.
    async fn commit_claim(
        &self,
        view: &View,
        node: NodeId,
        slot: &Slot,
    ) -> Result<Committed, StoreError> {
        debug_assert!(view.revision > 0, "a cache is loaded at a read version");
        debug_assert!(slot.incarnation > 0);
        let slot_name = meta_key_name(&MetaKey::Slot(node));
        let records = proposals_of_node(node);
        let mut writes = vec![Write::Put(slot_name.clone(), encode(slot))];
        writes.extend(
            view.loaded
                .versions
                .range(records.clone()..)
                .take_while(|(k, _)| k.starts_with(&records))
                .map(|(k, _)| Write::Delete(k.clone())),
        );
        let trx = self.db.create_trx().map_err(unavailable)?;
        limit(&trx).map_err(unavailable)?;
        trx.set_read_version(view.revision);
        conflict_on(&trx, &self.keys, &slot_name).map_err(unavailable)?;
        let (begin, end) = self.keys.prefix_range(&records);
        trx.add_conflict_range(&begin, &end, ConflictRangeType::Read)
            .map_err(unavailable)?;
        trx.clear_range(&begin, &end);
        write_commit(&trx, &self.keys, &writes, "claim")?;
        let cost = commit_cost(&self.keys, &writes);
        let mut uncertain = false;
        match trx.commit().await {
            Ok(committed) => Ok(committed
                .committed_version()
                .map_or(Committed::Conflict(None), Committed::At)),
            // A claim whose outcome is unknown is claimed again: at worst the slot skips an
            // incarnation nobody used.
            Err(error) => match commit_failed(*error, "claim", cost, &mut uncertain) {
                Err(StoreError::Unavailable(_)) if uncertain => Ok(Committed::Conflict(None)),
                other => other,
            },
        }
    }
}

impl Store for FdbStore {
    async fn init(&self, config: Config) -> Result<(), StoreError> {
        let value = encode(&StoredConfig::of(&config));
        let writes = [Write::Put(CONFIG_KEY.to_string(), value)];
        let stored = self
            .run_writing(|trx| {
                let writes = &writes;
                async move {
                    let stored = trx.get(&self.keys.key(CONFIG_KEY), false).await?;
                    if stored.is_none() {
                        write_commit(&trx, &self.keys, writes, "init").map_err(custom)?;
                    }
                    Ok(stored.map(|v| v.to_vec()))
                }
            })
            .await?;
        if let Some(bytes) = stored {
            let stored: StoredConfig = decode(CONFIG_KEY, &bytes)?;
            if stored.node_count != config.node_count() {
                return Err(StoreError::Shape {
                    found: stored.node_count,
                    expected: config.node_count(),
                });
            }
        }
        Ok(())
    }

    async fn claim(&self, node: NodeId, address: &str) -> Result<Slot, StoreError> {
        cached::claim(self, node, address).await
    }

    async fn propose(&self, proposal: Proposal) -> Result<ProposalOutcome, StoreError> {
        cached::propose(self, proposal).await
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        cached::snapshot(self).await
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn stats(&self) -> StoreStats {
        self.shared.snapshot_stats()
    }
}

/// The most keys one transaction of the test kit's import writes (each a change the cache
/// applies).
#[cfg(feature = "testing")]
const IMPORT_KEYS_PER_COMMIT_MAX: usize = 1_000;

#[cfg(feature = "testing")]
impl Audit for FdbStore {
    async fn committed_log(&self) -> Result<Vec<Logged>, StoreError> {
        // Each record's commit order is the versionstamp written beside it.
        let trx = self.db.create_trx().map_err(unavailable)?;
        let mut records = Vec::new();
        self.keys
            .read_range(&trx, LOG_FAMILY, 0, &mut records)
            .await
            .map_err(store_error)?;
        let mut orders = Vec::new();
        self.keys
            .read_range(&trx, LOG_ORDER_FAMILY, 0, &mut orders)
            .await
            .map_err(store_error)?;
        let orders: std::collections::BTreeMap<String, Vec<u8>> =
            orders.into_iter().map(|e| (e.key, e.value)).collect();
        let mut ordered = Vec::new();
        for record in &records {
            let stamp = orders
                .get(&order_key_name(&record.key))
                .cloned()
                .unwrap_or_default();
            ordered.push((stamp, record));
        }
        ordered.sort_by(|a, b| a.0.cmp(&b.0));
        ordered
            .into_iter()
            .enumerate()
            .map(|(i, (_, e))| logged(&e.key, &e.value, i as u64 + 1))
            .collect()
    }

    fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    async fn corrupt(&self, key: StoreKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        // Only a queue entry's key depends on the registry (a paused feed serves none).
        let state = match named_by_registry(&key) {
            true => Some(self.snapshot().await?.state),
            false => None,
        };
        self.put_raw(&stored_name(&key, state.as_ref()), Some(bytes))
            .await
    }

    async fn repair(&self, key: StoreKey, before: &Snapshot) -> Result<(), StoreError> {
        let value = value_of(&key, &before.state, &before.slots_meta());
        self.put_raw(&stored_name(&key, Some(&before.state)), value)
            .await
    }

    async fn import(&self, state: membership_core::State) -> Result<(), StoreError> {
        // The flags are stored as heartbeats naming the open round, which the import keeps.
        let round = self.snapshot().await.map_or(0, |s| s.round);
        // Keep the metadata (slots, round); replace the registry's keys: the cached ones are
        // deleted one by one (the feed names each), the others (markers, log) by range.
        let trx = self.db.create_trx().map_err(unavailable)?;
        let mut old = Vec::new();
        for prefix in REGISTRY_PREFIXES.iter().filter(|p| cached(p)) {
            self.keys
                .read_range(&trx, prefix, 0, &mut old)
                .await
                .map_err(store_error)?;
        }
        let mut writes: Vec<Write> = old.into_iter().map(|e| Write::Delete(e.key)).collect();
        writes.extend(
            export(&state, round)
                .into_iter()
                .map(|(k, v)| Write::Put(k, v)),
        );
        for prefix in REGISTRY_PREFIXES.iter().filter(|p| !cached(p)) {
            let (begin, end) = self.keys.prefix_range(prefix);
            self.run_writing(|trx| {
                let (begin, end) = (&begin, &end);
                async move {
                    trx.clear_range(begin, end);
                    Ok(())
                }
            })
            .await?;
        }
        let mut batch: Vec<Write> = Vec::new();
        let mut bytes = 0;
        let last = writes.len();
        for (i, write) in writes.into_iter().enumerate() {
            bytes += write.bytes();
            batch.push(write);
            let full = batch.len() >= IMPORT_KEYS_PER_COMMIT_MAX || bytes > FDB_BATCH_BYTES_MAX / 4;
            if full || i + 1 == last {
                let writes = std::mem::take(&mut batch);
                self.run_writing(|trx| {
                    let writes = &writes;
                    async move { write_commit(&trx, &self.keys, writes, "import").map_err(custom) }
                })
                .await?;
                bytes = 0;
            }
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            ops_max: Some(CACHE_CHANGES_PER_COMMIT_MAX as u64),
            write_bytes_max: FDB_BATCH_BYTES_MAX as u64,
            moves_max: FDB_BATCH_MOVES_MAX as u64,
        }
    }
}
