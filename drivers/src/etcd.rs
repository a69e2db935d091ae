//! The etcd store (cargo feature `etcd`): the registry on a replicated etcd cluster (v3 API,
//! etcd 3.4 or later), laid out as in [`crate::kv`] under a configurable prefix.
//!
//! **One optimistic transaction per attempt.** An attempt reads the registry and metadata at one
//! revision (one read-only etcd transaction; only the proposer's own proposal records are read,
//! not every node's), runs [`membership_core::execute`], and commits with one etcd transaction
//! that compares the `mod_revision` of every key in the read footprint and writes the delta, the
//! metadata and (optionally) the log record. A key that can be deleted (a placement, a queue
//! chunk, a proposal record) must still have the `mod_revision` read (0 for an absent key, so a
//! key created meanwhile is caught too); a key that is never deleted (node records, flags,
//! counters, slots, the round, the version markers) must have a `mod_revision` at most the read
//! revision, which needs no read of the key (the markers are not read). When the compares fail, another commit changed what it read:
//! a conflict, and the attempt runs again (at most [`ETCD_CONFLICT_RETRIES_MAX`] times).
//!
//! **Within etcd's default limits**: at most [`ETCD_TXN_OPS_MAX`] compares and as many writes
//! per transaction, at most [`ETCD_REQUEST_BYTES_MAX`] per request (less
//! [`ETCD_REQUEST_MARGIN_BYTES`] for framing). A footprint that reads more keys of one family
//! that is never deleted (node records, heartbeat flags, loads, hosted markers) than
//! [`ETCD_FAMILY_KEYS_MAX`] is compared as one range (`mod_revision < read revision + 1` over
//! the family): a little coarser, never weaker. A migration batch that does not fit is run with
//! half as many moves until it does (the next batch moves the rest); any other action that does
//! not fit is refused with [`StoreError::TooLarge`] and nothing is written.
//!
//! **Faults**: a read that fails is retried ([`ETCD_UNAVAILABLE_RETRIES_MAX`] times, backoff
//! from [`ETCD_RETRY_BACKOFF_MS`], doubling); so is a commit whose outcome is not known (a timeout,
//! a lost connection, a leader change): the retry reads again, and if the first commit did apply,
//! `execute` recognises the proposal id and returns its recorded effects (exactly once). If the
//! retries run out after a commit was sent, the outcome is `Unknown`; etcd can apply a timed-out
//! write later, and the proposer's retry with the same id is still recognised.

mod feed;
mod migrate;
mod options;

use feed::{denied, range_end, unavailable};
pub use feed::{ETCD_RESPONSE_BYTES_MAX, ETCD_RETRY_BACKOFF_MS, ETCD_WATCH_BACKOFF_MAX_MS};
pub use migrate::{ETCD_MIGRATION_BYTES_MAX, ETCD_MIGRATION_PAGE_KEYS, ETCD_MIGRATION_WRITES_MAX};
use options::tls_options;
pub use options::{EtcdOptions, EtcdTls, ETCD_REQUEST_TIMEOUT_MS};

use crate::cache::{Cache, View};
use crate::cached::{self, Bounds, Committed, Engine, Latest, Shared};
use crate::codec::{decode, encode};
#[cfg(feature = "testing")]
use crate::fault::Fault;
use crate::keys::{
    meta_key_name, never_deleted, proposals_of_node, CONFIG_KEY, PER_NODE_FAMILIES, VERSION_KEY,
};
#[cfg(feature = "testing")]
use crate::keys::{StoreKey, LOG_FAMILY, REGISTRY_PREFIXES};
use crate::kv::{Plan, StoredConfig, Write};
#[cfg(feature = "testing")]
use crate::kv_testing::{export, logged, named_by_registry, stored_name, value_of};
#[cfg(feature = "testing")]
use crate::store::Logged;
use crate::store::{Snapshot, Store, StoreError, StoreStats};
#[cfg(feature = "testing")]
use crate::testing::{Audit, Limits};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Txn, TxnOp,
    TxnOpResponse,
};
use feed::feed_cache;
use membership_core::{Config, MetaKey, NodeId, Proposal, ProposalOutcome, Slot};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// etcd's default `--max-txn-ops`: compares, and writes, per transaction.
pub const ETCD_TXN_OPS_MAX: usize = 128;

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const ETCD_REQUEST_BYTES_MAX: usize = 1_572_864;

/// Bytes of a request kept free for framing and compares' keys.
pub const ETCD_REQUEST_MARGIN_BYTES: usize = 131_072;

/// More keys than this of one never-deleted family read by one transaction are compared as a
/// range.
pub const ETCD_FAMILY_KEYS_MAX: usize = 16;

/// How many times an attempt that conflicted runs again.
pub const ETCD_CONFLICT_RETRIES_MAX: u32 = 64;

/// How many times a failed request (unavailable, leader change, timeout) is retried.
pub const ETCD_UNAVAILABLE_RETRIES_MAX: u32 = 4;

/// The most moves of a migration batch, or placements of a placement batch, one etcd
/// transaction runs (each writes its actor's key; etcd allows [`ETCD_TXN_OPS_MAX`] writes): a
/// larger batch is cut to this before it runs, and halved if it still does not fit.
pub const ETCD_BATCH_MOVES_MAX: usize = 100;

/// The most committed-log records read back at once.
pub const ETCD_LOG_READ_MAX: i64 = 4_000_000;

/// The registry on an etcd cluster.
pub struct EtcdStore {
    client: Client,
    prefix: String,
    options: EtcdOptions,
    changes: watch::Sender<u64>,
    watcher: tokio::task::JoinHandle<()>,
    /// The registry cache, fed by the watch (transactions run on it, snapshots are read from
    /// it), the statistics, the injected faults, the handle's latest write.
    shared: Shared,
    /// True while the test kit holds the cache's feed (a lagging watcher, on purpose).
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "set by the test kit")
    )]
    feed_paused: watch::Sender<bool>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("options", &self.options)
            .finish()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Whether etcd refused a request for its size or operation count (nothing was applied).
fn too_large(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let m = s.message();
            m.contains("too many operations") || m.contains("too large")
        }
        _ => false,
    }
}

impl EtcdStore {
    /// Connects to the cluster and starts watching the prefix.
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        let mut connect = ConnectOptions::new()
            .with_timeout(Duration::from_millis(options.request_timeout_ms))
            .with_connect_timeout(Duration::from_millis(options.request_timeout_ms))
            .with_keep_alive(Duration::from_millis(500), Duration::from_millis(500));
        if let Some(tls) = &options.tls {
            let url = options.endpoints.join(",");
            connect = connect.with_tls(tls_options(&url, tls)?);
        }
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(unavailable)?;
        let (changes, _) = watch::channel(0);
        let cache = Arc::new(Cache::new());
        let (feed_paused, paused) = watch::channel(false);
        let watcher = tokio::spawn(feed_cache(
            client.clone(),
            options.prefix.clone(),
            cache.clone(),
            changes.clone(),
            paused,
        ));
        let bounds = Bounds {
            conflict_retries_max: ETCD_CONFLICT_RETRIES_MAX,
            unavailable_retries_max: ETCD_UNAVAILABLE_RETRIES_MAX,
            backoff_ms: ETCD_RETRY_BACKOFF_MS,
            moves_max: ETCD_BATCH_MOVES_MAX,
            catch_up_ms: options.request_timeout_ms,
        };
        let store = EtcdStore {
            client,
            prefix: options.prefix.clone(),
            shared: Shared::new(cache, bounds, options.record_log),
            options,
            changes,
            watcher,
            feed_paused,
        };
        Ok(store)
    }

    /// Connects with a store URL (`etcd://127.0.0.1:2379,127.0.0.1:22379/membership`).
    pub async fn connect_url(url: &str) -> Result<EtcdStore, StoreError> {
        EtcdStore::connect(EtcdOptions::from_url(url)?).await
    }

    /// The options it was connected with.
    pub fn options(&self) -> &EtcdOptions {
        &self.options
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(ETCD_RESPONSE_BYTES_MAX)
    }

    /// Runs a request, retrying failures with backoff.
    async fn retrying<T, F, Fut>(&self, mut request: F) -> Result<T, etcd_client::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut backoff_ms = ETCD_RETRY_BACKOFF_MS;
        let mut attempt = 0;
        loop {
            match request().await {
                Ok(v) => return Ok(v),
                Err(e)
                    if too_large(&e) || denied(&e) || attempt >= ETCD_UNAVAILABLE_RETRIES_MAX =>
                {
                    return Err(e)
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "etcd request failed: retrying");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// The compares of a plan: one per key, or one per family range where a family read has
    /// more than [`ETCD_FAMILY_KEYS_MAX`] keys.
    fn compares(
        &self,
        reads: &std::collections::BTreeMap<String, i64>,
        revision: i64,
    ) -> Vec<Compare> {
        let mut compares = Vec::new();
        let mut collapsed = Vec::new();
        for family in PER_NODE_FAMILIES {
            let count = reads.keys().filter(|k| k.starts_with(family)).count();
            if count > ETCD_FAMILY_KEYS_MAX {
                collapsed.push(family);
                let start = self.key(family);
                let end = range_end(&start);
                compares.push(
                    Compare::mod_revision(start, CompareOp::Less, revision + 1).with_range(end),
                );
            }
        }
        for (name, &version) in reads {
            if collapsed.iter().any(|f| name.starts_with(f)) {
                continue;
            }
            let compare = if never_deleted(name) {
                // Unchanged since the read (or still absent) iff not modified after it.
                Compare::mod_revision(self.key(name), CompareOp::Less, revision + 1)
            } else {
                Compare::mod_revision(self.key(name), CompareOp::Equal, version)
            };
            compares.push(compare);
        }
        compares
    }

    /// The operations (compares or writes, whichever is more) and request bytes of a plan.
    fn plan_cost(&self, plan: &Plan, revision: i64) -> (usize, usize) {
        let compares = self.compares(&plan.reads, revision);
        let bytes = plan.write_bytes()
            + plan.writes.len() * self.prefix.len()
            + plan
                .reads
                .keys()
                .map(|k| k.len() + self.prefix.len() + 16)
                .sum::<usize>();
        (plan.writes.len().max(compares.len()), bytes)
    }

    /// Writes `value` under `name` as it is, or deletes the key (a corruption or a repair).
    #[cfg(feature = "testing")]
    async fn put_raw(&self, name: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let key = self.key(name);
        let version = self.key(VERSION_KEY);
        self.retrying(|| {
            let marker_key = version.clone();
            let mut kv = self.kv();
            let key = key.clone();
            let value = value.clone();
            async move {
                let write = match value {
                    Some(v) => TxnOp::put(key, v, None),
                    None => TxnOp::delete(key, None),
                };
                let marker = TxnOp::put(marker_key.clone(), Vec::new(), None);
                kv.txn(Txn::new().and_then(vec![write, marker]))
                    .await
                    .map(|r| r.header().map_or(0, |h| h.revision()))
            }
        })
        .await
        .map(|revision| self.shared.wrote(revision))
        .map_err(unavailable)
    }

    /// Stops feeding the cache (the test kit's lagging watcher): the watch is dropped, and the
    /// cache stays at its revision until [`EtcdStore::resume_feed`].
    #[cfg(feature = "testing")]
    pub fn pause_feed(&self) {
        self.feed_paused.send_replace(true);
    }

    /// Feeds the cache again: it watches from the revision after its own, and loads the whole
    /// registry again if etcd compacted that revision meanwhile.
    #[cfg(feature = "testing")]
    pub fn resume_feed(&self) {
        self.feed_paused.send_replace(false);
    }

    /// Compacts etcd's history up to its current revision (every key's older versions; the
    /// whole cluster's, not only this prefix's). Returns the revision compacted.
    #[cfg(feature = "testing")]
    pub async fn compact(&self) -> Result<i64, StoreError> {
        let mut kv = self.kv();
        let current = kv
            .get(self.key(VERSION_KEY), None)
            .await
            .map_err(unavailable)?
            .header()
            .map_or(0, |h| h.revision());
        kv.compact(current, None).await.map_err(unavailable)?;
        Ok(current)
    }

    /// Migrates a registry stored by an earlier layout of format version 1 to this build's
    /// ([`crate::upgrade::migrate_v1`]: heartbeat flags to rounds, log records with their
    /// rounds, the queue's chunks regrouped by node), with no node running. With `apply` false
    /// it only reports what it would write. Refused with [`StoreError::Changed`] when a node
    /// wrote meanwhile (what was written so far is consistent: run it again once every node
    /// is stopped).
    pub async fn migrate_v1(&self, apply: bool) -> Result<crate::upgrade::Migrated, StoreError> {
        let (migrated, last) = migrate::migrate(&self.client, &self.prefix, apply).await?;
        if let Some(revision) = last {
            // This handle's next reads wait for its cache to hold the rewrite.
            self.shared.wrote(revision);
        }
        Ok(migrated)
    }

    /// Writes `value` under `name` (relative to the prefix) as it is, or removes the key: a
    /// test's way to store another layout's registry.
    #[cfg(feature = "testing")]
    pub async fn write_raw(&self, name: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        self.put_raw(name, value).await
    }

    /// Deletes every key under the prefix (tests; a cluster no node uses).
    pub async fn clear(&self) -> Result<(), StoreError> {
        self.delete_prefix(self.prefix.clone()).await
    }

    /// Deletes every key that starts with `start` (a full key name).
    async fn delete_prefix(&self, start: String) -> Result<(), StoreError> {
        self.retrying(|| {
            let mut kv = self.kv();
            let start = start.clone();
            async move {
                kv.delete(start, Some(DeleteOptions::new().with_prefix()))
                    .await
                    .map(|_| ())
            }
        })
        .await
        .map_err(unavailable)
    }
}

impl Engine for EtcdStore {
    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn cost(&self, plan: &Plan, revision: i64) -> (usize, usize) {
        self.plan_cost(plan, revision)
    }

    fn fits(&self, ops: usize, bytes: usize) -> bool {
        ops <= ETCD_TXN_OPS_MAX && bytes <= ETCD_REQUEST_BYTES_MAX - ETCD_REQUEST_MARGIN_BYTES
    }

    /// The linearizable read of the commit marker (`version`): the revision of the latest
    /// commit on the prefix when the read was served.
    async fn latest_commit(&self) -> Result<Latest, StoreError> {
        let key = self.key(VERSION_KEY);
        let response = self
            .retrying(|| {
                let mut kv = self.kv();
                let key = key.clone();
                async move { kv.get(key, Some(GetOptions::new().with_keys_only())).await }
            })
            .await
            .map_err(unavailable)?;
        self.shared.stats().confirm_reads += 1;
        let commit = response.kvs().first().map_or(0, |kv| kv.mod_revision());
        Ok(Latest {
            commit,
            read_at: commit,
        })
    }

    /// One etcd transaction that compares exactly what the execution read (no key is read
    /// from etcd: the cache holds the registry at `revision`, and the compares check every key
    /// of the read footprint against it) and writes the plan and the commit marker.
    async fn commit(
        &self,
        plan: &Plan,
        revision: i64,
        action: &str,
        uncertain: &mut bool,
    ) -> Result<Committed, StoreError> {
        let (ops, bytes) = self.plan_cost(plan, revision);
        let compares = self.compares(&plan.reads, revision);
        let mut writes: Vec<TxnOp> = plan
            .writes
            .iter()
            .map(|w| match w {
                Write::Put(k, v) => TxnOp::put(self.key(k), v.clone(), None),
                Write::Delete(k) => TxnOp::delete(self.key(k), None),
            })
            .collect();
        writes.push(TxnOp::put(self.key(VERSION_KEY), Vec::new(), None));
        let otherwise = vec![TxnOp::get(
            self.key(VERSION_KEY),
            Some(GetOptions::new().with_keys_only()),
        )];
        let txn = Txn::new()
            .when(compares)
            .and_then(writes)
            .or_else(otherwise);
        let response = match self.kv().txn(txn).await {
            Ok(r) => r,
            Err(e) if too_large(&e) => {
                return Err(StoreError::TooLarge {
                    action: action.to_string(),
                    ops: ops as u64,
                    bytes: bytes as u64,
                })
            }
            // Refused for its credentials or permissions: nothing was applied.
            Err(e) if denied(&e) => return Err(unavailable(e)),
            Err(e) => {
                // The commit may or may not have been applied (or may be applied later).
                *uncertain = true;
                return Err(unavailable(e));
            }
        };
        if !response.succeeded() {
            // Another commit changed a key this one read: the else branch read the marker.
            let latest = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
                    _ => None,
                })
                .unwrap_or(0);
            return Ok(Committed::Conflict(Some(latest)));
        }
        Ok(Committed::At(response.header().map_or(0, |h| h.revision())))
    }

    async fn commit_claim(
        &self,
        view: &View,
        node: NodeId,
        slot: &Slot,
    ) -> Result<Committed, StoreError> {
        let slot_name = meta_key_name(&MetaKey::Slot(node));
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(
                self.key(&slot_name),
                CompareOp::Equal,
                view.loaded.version(&slot_name),
            )])
            .and_then(vec![
                TxnOp::put(self.key(&slot_name), encode(slot), None),
                TxnOp::delete(
                    self.key(&proposals_of_node(node)),
                    Some(DeleteOptions::new().with_prefix()),
                ),
                TxnOp::put(self.key(VERSION_KEY), Vec::new(), None),
            ])
            .or_else(vec![TxnOp::get(
                self.key(VERSION_KEY),
                Some(GetOptions::new().with_keys_only()),
            )]);
        // A claim whose outcome is unknown is claimed again: at worst the slot skips an
        // incarnation nobody used.
        let response = self
            .retrying(|| {
                let mut kv = self.kv();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(unavailable)?;
        let at = response.header().map_or(0, |h| h.revision());
        Ok(if response.succeeded() {
            Committed::At(at)
        } else {
            Committed::Conflict(Some(at))
        })
    }
}

impl Store for EtcdStore {
    async fn init(&self, config: Config) -> Result<(), StoreError> {
        let key = self.key(CONFIG_KEY);
        let value = encode(&StoredConfig::of(&config));
        let response = self
            .retrying(|| {
                let mut kv = self.kv();
                let txn = Txn::new()
                    .when(vec![Compare::create_revision(
                        key.clone(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then(vec![
                        TxnOp::put(key.clone(), value.clone(), None),
                        TxnOp::put(self.key(VERSION_KEY), Vec::new(), None),
                    ])
                    .or_else(vec![TxnOp::get(key.clone(), None)]);
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(unavailable)?;
        if response.succeeded() {
            return Ok(());
        }
        let stored = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        let stored: StoredConfig = decode(CONFIG_KEY, &stored.unwrap_or_default())?;
        if stored.node_count != config.node_count() {
            return Err(StoreError::Shape {
                found: stored.node_count,
                expected: config.node_count(),
            });
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

#[cfg(feature = "testing")]
impl Audit for EtcdStore {
    async fn committed_log(&self) -> Result<Vec<Logged>, StoreError> {
        let start = self.key(LOG_FAMILY);
        let response = self
            .retrying(|| {
                let mut kv = self.kv();
                let start = start.clone();
                async move {
                    kv.get(
                        start,
                        Some(
                            GetOptions::new()
                                .with_prefix()
                                .with_limit(ETCD_LOG_READ_MAX),
                        ),
                    )
                    .await
                }
            })
            .await
            .map_err(unavailable)?;
        let mut log = Vec::new();
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let name = key.strip_prefix(self.prefix.as_str()).unwrap_or(&key);
            let order = u64::try_from(kv.create_revision()).unwrap_or(0);
            log.push(logged(name, kv.value(), order)?);
        }
        log.sort_by_key(|l| l.revision);
        Ok(log)
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
        let pairs = export(&state, round);
        // Keep the metadata (slots, round); replace the registry's keys.
        for prefix in REGISTRY_PREFIXES {
            self.delete_prefix(self.key(prefix)).await?;
        }
        for batch in pairs.chunks(ETCD_TXN_OPS_MAX - 1) {
            let ops: Vec<TxnOp> = batch
                .iter()
                .map(|(k, v)| TxnOp::put(self.key(k), v.clone(), None))
                .chain([TxnOp::put(self.key(VERSION_KEY), Vec::new(), None)])
                .collect();
            self.retrying(|| {
                let mut kv = self.kv();
                let txn = Txn::new().and_then(ops.clone());
                async move { kv.txn(txn).await }
            })
            .await
            .map(|r| self.shared.wrote(r.header().map_or(0, |h| h.revision())))
            .map_err(unavailable)?;
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            ops_max: Some(ETCD_TXN_OPS_MAX as u64),
            write_bytes_max: (ETCD_REQUEST_BYTES_MAX - ETCD_REQUEST_MARGIN_BYTES) as u64,
            moves_max: ETCD_TXN_OPS_MAX as u64,
        }
    }
}
