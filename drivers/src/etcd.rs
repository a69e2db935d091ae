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

use crate::cache::{Cache, View};
use crate::codec::{decode, encode};
#[cfg(feature = "testing")]
use crate::fault::Fault;
use crate::keys::{
    meta_key_name, never_deleted, proposals_of_node, CONFIG_KEY, HOSTED_FAMILY, NODE_FAMILY,
    PER_NODE_FAMILIES, VERSION_KEY,
};
#[cfg(feature = "testing")]
use crate::keys::{StoreKey, LOG_FAMILY, REGISTRY_PREFIXES};
#[cfg(feature = "testing")]
use crate::kv::{export, logged, value_of};
use crate::kv::{load_lenient, plan_fitting, Change, Entry, Planned, StoredConfig, Write};
#[cfg(feature = "testing")]
use crate::store::Logged;
use crate::store::{action_name, Snapshot, Store, StoreError, StoreStats};
#[cfg(feature = "testing")]
use crate::testing::{Audit, Limits};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use membership_core::{Config, MetaKey, NodeId, Proposal, ProposalOutcome, Slot, NODES_MAX};
#[cfg(feature = "testing")]
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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

/// The first retry's backoff; each further retry waits twice as long.
pub const ETCD_RETRY_BACKOFF_MS: u64 = 25;

/// The most moves of a migration batch, or placements of a placement batch, one etcd
/// transaction runs (each writes its actor's key; etcd allows [`ETCD_TXN_OPS_MAX`] writes): a
/// larger batch is cut to this before it runs, and halved if it still does not fit.
pub const ETCD_BATCH_MOVES_MAX: usize = 64;

/// The default timeout of one request, after which a commit's outcome is unknown.
pub const ETCD_REQUEST_TIMEOUT_MS: u64 = 400;

/// The largest response the client accepts (a whole-registry read), in bytes.
pub const ETCD_RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The most committed-log records read back at once.
pub const ETCD_LOG_READ_MAX: i64 = 4_000_000;

/// The watcher's longest backoff before it watches again after an error.
pub const ETCD_WATCH_BACKOFF_MAX_MS: u64 = 1_000;

/// How to reach an etcd cluster and where the registry lives in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client endpoints (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The key prefix of every key of this registry (`/membership/`).
    pub prefix: String,
    /// One request's timeout, in ms.
    pub request_timeout_ms: u64,
    /// Whether every commit also writes its spec actions under `log/...` (the committed log for
    /// audits and the conformance suite; it grows with every commit).
    pub record_log: bool,
}

impl EtcdOptions {
    /// Parses a store URL: `etcd://host:port[,host:port...][/prefix]`. The prefix defaults to
    /// `/membership/`.
    pub fn from_url(url: &str) -> Result<EtcdOptions, StoreError> {
        let bad = |why: &str| StoreError::Url {
            url: url.to_string(),
            reason: why.to_string(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("an etcd store URL starts with etcd://"))?;
        let (hosts, path) = match rest.split_once('/') {
            Some((hosts, path)) => (hosts, path),
            None => (rest, ""),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no endpoint (etcd://127.0.0.1:2379)"));
        }
        let prefix = if path.is_empty() {
            "/membership/".to_string()
        } else {
            format!("/{}/", path.trim_matches('/'))
        };
        Ok(EtcdOptions {
            endpoints,
            prefix,
            request_timeout_ms: ETCD_REQUEST_TIMEOUT_MS,
            record_log: false,
        })
    }
}

/// The registry on an etcd cluster.
pub struct EtcdStore {
    client: Client,
    prefix: String,
    options: EtcdOptions,
    changes: watch::Sender<u64>,
    watcher: tokio::task::JoinHandle<()>,
    /// The registry, fed by the watch: transactions run on it, snapshots are read from it.
    cache: Arc<Cache>,
    /// True while the test kit holds the cache's feed (a lagging watcher, on purpose).
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "set by the test kit")
    )]
    feed_paused: watch::Sender<bool>,
    /// One confirmation read at a time; concurrent snapshots share its result.
    confirming: tokio::sync::Mutex<()>,
    /// The revision of this handle's latest write: its snapshots wait for the cache to hold it
    /// (read-your-writes through the handle).
    written: AtomicI64,
    /// The revision of the latest write of each node's proposals and claims through this
    /// handle (index: the node id, up to `NODES_MAX`): a node's transactions wait for the cache
    /// to hold its own latest write, never the other nodes' (a burst of one node's commits
    /// does not hold up another node's heartbeat; a cache behind on a key a transaction reads
    /// only costs that transaction a conflict).
    written_by: Box<[AtomicI64]>,
    /// The revision of this handle's latest write that is no node's (an import, a raw write of
    /// the test kit): every transaction waits for it.
    written_raw: AtomicI64,
    stats: Arc<Mutex<StoreStats>>,
    /// Faults queued for the next proposals.
    #[cfg(feature = "testing")]
    faults: Mutex<VecDeque<Fault>>,
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

fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
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

/// The end of the range of every key starting with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one commit attempt came to.
enum Attempt {
    Done(ProposalOutcome),
    Conflict,
    /// Run again on a cache confirmed current (a refusal found on one not confirmed yet).
    Again,
}

impl EtcdStore {
    /// Connects to the cluster and starts watching the prefix.
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        let connect = ConnectOptions::new()
            .with_timeout(Duration::from_millis(options.request_timeout_ms))
            .with_connect_timeout(Duration::from_millis(options.request_timeout_ms))
            .with_keep_alive(Duration::from_millis(500), Duration::from_millis(500));
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
        let store = EtcdStore {
            client,
            prefix: options.prefix.clone(),
            options,
            changes,
            watcher,
            cache,
            feed_paused,
            confirming: tokio::sync::Mutex::new(()),
            written: AtomicI64::new(0),
            written_by: (0..=NODES_MAX).map(|_| AtomicI64::new(0)).collect(),
            written_raw: AtomicI64::new(0),
            stats: Arc::new(Mutex::new(StoreStats::default())),
            #[cfg(feature = "testing")]
            faults: Mutex::new(VecDeque::new()),
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
                Err(e) if too_large(&e) || attempt >= ETCD_UNAVAILABLE_RETRIES_MAX => {
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

    /// The linearizable read of the commit marker (`version`): the revision of the latest
    /// commit on the prefix when the read was served.
    async fn latest_commit(&self) -> Result<i64, StoreError> {
        let key = self.key(VERSION_KEY);
        let response = self
            .retrying(|| {
                let mut kv = self.kv();
                let key = key.clone();
                async move { kv.get(key, Some(GetOptions::new().with_keys_only())).await }
            })
            .await
            .map_err(unavailable)?;
        lock(&self.stats).confirm_reads += 1;
        Ok(response.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// Makes sure the cache holds every commit made before a recent instant, and returns that
    /// instant (the module `cache` argues it): a confirmation at most
    /// [`crate::CACHE_CONFIRM_REUSE_MS`] old is shared; otherwise one small linearizable read
    /// of the commit marker, then a wait (at most the request timeout) for the watch to
    /// deliver that commit.
    async fn confirm(&self) -> Result<u64, StoreError> {
        self.caught_up(self.written.load(Ordering::Acquire)).await?;
        let _one_at_a_time = self.confirming.lock().await;
        if let Some(sent) = self.cache.fresh_confirmation() {
            return Ok(sent);
        }
        let sent = crate::clock::boottime_ms();
        let latest = self.latest_commit().await?;
        self.caught_up(latest).await?;
        self.cache.confirmed(sent, latest);
        Ok(sent)
    }

    /// Waits (at most the request timeout) until the cache has applied `revision`.
    async fn caught_up(&self, revision: i64) -> Result<(), StoreError> {
        let timeout = Duration::from_millis(self.options.request_timeout_ms);
        if self.cache.wait_for(revision, timeout).await {
            return Ok(());
        }
        Err(match self.cache.view() {
            Err(error) => error,
            Ok(view) => StoreError::Unavailable(format!(
                "the registry cache is at revision {}, behind the store's {revision}",
                view.revision
            )),
        })
    }

    /// The cache's view, or why it cannot be used.
    fn view(&self) -> Result<View, StoreError> {
        self.cache.view()
    }

    /// Notes a write of this handle that is no node's, committed at `revision` (see
    /// `written_raw`).
    fn wrote(&self, revision: i64) {
        self.written.fetch_max(revision, Ordering::AcqRel);
        self.written_raw.fetch_max(revision, Ordering::AcqRel);
    }

    /// Notes a write of `node`'s (a commit of its proposal, its claim) at `revision` (see
    /// `written_by`).
    fn wrote_for(&self, node: NodeId, revision: i64) {
        self.written.fetch_max(revision, Ordering::AcqRel);
        match self.written_by.get(usize::from(node.0)) {
            Some(by) => {
                by.fetch_max(revision, Ordering::AcqRel);
            }
            // Not a node id this store can hold (claims refuse it): every write counts.
            None => {
                self.written_raw.fetch_max(revision, Ordering::AcqRel);
            }
        }
        debug_assert!(self.written.load(Ordering::Acquire) >= revision);
    }

    /// The revision a transaction of `node` waits for the cache to hold: its own latest write
    /// through this handle, and the latest write that is no node's.
    fn written_for(&self, node: NodeId) -> i64 {
        let own = self
            .written_by
            .get(usize::from(node.0))
            .map_or(0, |by| by.load(Ordering::Acquire));
        let revision = own.max(self.written_raw.load(Ordering::Acquire));
        debug_assert!(revision <= self.written.load(Ordering::Acquire));
        revision
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

    /// One attempt on the cache: execute, commit comparing exactly what the execution read.
    /// `Err` when it could not run. No key is read from etcd: the cache holds the registry at
    /// one revision, and the commit compares every key of the read footprint with that
    /// revision.
    async fn attempt(
        &self,
        proposal: &Proposal,
        uncertain: &mut bool,
        confirmed: &mut bool,
    ) -> Result<Attempt, StoreError> {
        // Read-your-writes of the proposer through this handle (its claim, its latest commit;
        // an import): a cache without them would only make this attempt conflict.
        self.caught_up(self.written_for(proposal.id.node)).await?;
        let view = self.view()?;
        let revision = view.revision;
        let name = action_name(proposal);
        let fits = |plan: &crate::kv::Plan| {
            let (ops, bytes) = self.cost(plan, revision);
            if ops > ETCD_TXN_OPS_MAX || bytes > ETCD_REQUEST_BYTES_MAX - ETCD_REQUEST_MARGIN_BYTES
            {
                Err((ops as u64, bytes as u64))
            } else {
                Ok(())
            }
        };
        let planned = plan_fitting(
            &view.loaded,
            proposal,
            self.options.record_log,
            ETCD_BATCH_MOVES_MAX,
            fits,
        )?;
        let (commit, plan) = match planned {
            Planned::Refused(error) => {
                if let Some(error) = view.poisoned_among(view.poisoned.keys()) {
                    // A refusal computed on a key that cannot be decoded is no answer.
                    return Err(error.into());
                }
                if !*confirmed {
                    // A refusal is final, and compares nothing: it must come from a cache that
                    // holds every commit made before it is answered. Confirm, then run again.
                    self.confirm().await?;
                    *confirmed = true;
                    return Ok(Attempt::Again);
                }
                *lock(&self.stats).refusals.entry(name).or_default() += 1;
                return Ok(Attempt::Done(ProposalOutcome::Refused(error)));
            }
            Planned::Duplicate(effects) => {
                return Ok(Attempt::Done(ProposalOutcome::Committed { effects }))
            }
            Planned::Commit(commit, plan) => (commit, plan),
        };
        if let Some(error) = view.poisoned_among(plan.reads.keys()) {
            return Err(error.into());
        }
        let (ops, bytes) = self.cost(&plan, revision);
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
                    action: name,
                    ops: ops as u64,
                    bytes: bytes as u64,
                })
            }
            Err(e) => {
                // The commit may or may not have been applied (or may be applied later).
                *uncertain = true;
                return Err(unavailable(e));
            }
        };
        if !response.succeeded() {
            // Another commit changed a key this one read: wait for the cache to hold the
            // latest commit, then run again.
            let latest = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
                    _ => None,
                })
                .unwrap_or(0);
            *lock(&self.stats).conflicts.entry(name).or_default() += 1;
            self.caught_up(latest).await?;
            return Ok(Attempt::Conflict);
        }
        {
            let mut stats = lock(&self.stats);
            *stats.commits.entry(name.clone()).or_default() += 1;
            stats.largest_write_bytes = stats.largest_write_bytes.max(bytes as u64);
            stats.largest_write_ops = stats.largest_write_ops.max(ops as u64);
            let read = stats.keys_read_max.entry(name).or_default();
            *read = (*read).max(plan.reads.len() as u64);
        }
        // The proposer's next proposal waits for a cache that holds this commit (its own keys
        // then compare equal); its answer does not wait for the feed.
        let committed_at = response.header().map_or(0, |h| h.revision());
        self.wrote_for(proposal.id.node, committed_at);
        Ok(Attempt::Done(ProposalOutcome::Committed {
            effects: commit.effects,
        }))
    }

    /// The operations (compares or writes, whichever is more) and request bytes of a plan.
    fn cost(&self, plan: &crate::kv::Plan, revision: i64) -> (usize, usize) {
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
        .map(|revision| self.wrote(revision))
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

/// Reads the whole registry and metadata under `prefix` at one revision, for the cache's load:
/// one read-only etcd transaction of three ranges, every key but the load and hosted markers
/// and the log (never read back).
async fn read_all(client: &Client, prefix: &str) -> Result<(Vec<Entry>, i64), StoreError> {
    let key = |name: &str| format!("{prefix}{name}");
    // [p, p/hosted/), [p/node/, p/node0), [p/proposal/, end of p): every key but the load and
    // hosted markers and the log, which are never read back.
    let ops = vec![
        TxnOp::get(
            prefix.as_bytes().to_vec(),
            Some(GetOptions::new().with_range(key(HOSTED_FAMILY))),
        ),
        TxnOp::get(
            key(NODE_FAMILY),
            Some(GetOptions::new().with_range(range_end(&key(NODE_FAMILY)))),
        ),
        TxnOp::get(
            key(crate::keys::PROPOSAL_FAMILY),
            Some(GetOptions::new().with_range(range_end(prefix))),
        ),
    ];
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(ETCD_RESPONSE_BYTES_MAX);
    let response = kv
        .txn(Txn::new().and_then(ops))
        .await
        .map_err(unavailable)?;
    let revision = response.header().map_or(0, |h| h.revision());
    let mut entries = Vec::new();
    for op in response.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            for kv in get.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                let Some(name) = key.strip_prefix(prefix) else {
                    continue;
                };
                entries.push(Entry {
                    key: name.to_string(),
                    value: kv.value().to_vec(),
                    version: kv.mod_revision(),
                });
            }
        }
    }
    Ok((entries, revision))
}

/// Whether a key of the prefix is fed to the cache (the markers and the log are not).
fn cached(name: &str) -> bool {
    !(name.starts_with(crate::keys::LOAD_FAMILY)
        || name.starts_with(HOSTED_FAMILY)
        || name.starts_with(crate::keys::LOG_FAMILY))
}

/// Feeds the cache: loads the registry, then watches the prefix from the next revision and
/// applies each commit's changes in revision order, bumping `changes` to each revision applied
/// (the nodes' wake-up). A watch that breaks is watched again from the cache's revision; one
/// cancelled because etcd compacted that revision, or a change that does not fit the registry,
/// loads the registry again (once per gap). Runs until the store is dropped.
async fn feed_cache(
    client: Client,
    prefix: String,
    cache: Arc<Cache>,
    changes: watch::Sender<u64>,
    mut paused: watch::Receiver<bool>,
) {
    let mut backoff_ms = ETCD_RETRY_BACKOFF_MS;
    let mut load = true;
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return; // the store was dropped
        }
        if load {
            match read_all(&client, &prefix).await {
                Ok((entries, revision)) => {
                    cache.replace(load_lenient(entries), revision);
                    changes.send_replace(u64::try_from(revision).unwrap_or(0));
                    load = false;
                }
                Err(error) => {
                    tracing::debug!(%error, "etcd registry load failed: loading again");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(ETCD_WATCH_BACKOFF_MAX_MS);
                    continue;
                }
            }
        }
        let from = cache.revision() + 1;
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        match client
            .watch_client()
            .watch(prefix.clone(), Some(options))
            .await
        {
            Ok(mut stream) => {
                loop {
                    let response = tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(response)) => response,
                            _ => break,
                        },
                        _ = paused.wait_for(|p| *p) => break,
                    };
                    backoff_ms = ETCD_RETRY_BACKOFF_MS;
                    if response.compact_revision() > 0 || response.canceled() {
                        // The revisions the cache needs are gone: load again (once).
                        tracing::info!(
                            compacted = response.compact_revision(),
                            "etcd watch cancelled: loading the registry again"
                        );
                        load = true;
                        break;
                    }
                    if response.events().is_empty() {
                        continue;
                    }
                    if cache.is_broken() {
                        load = true; // a change may have repaired what the load could not read
                        break;
                    }
                    let mut commit: Vec<Change> = Vec::new();
                    let mut at = 0;
                    let mut failed = false;
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let revision = kv.mod_revision();
                        if revision != at && !commit.is_empty() {
                            failed |= cache.apply(at, &std::mem::take(&mut commit)).is_err();
                        }
                        at = revision;
                        let key = String::from_utf8_lossy(kv.key());
                        let Some(name) = key.strip_prefix(prefix.as_str()) else {
                            continue;
                        };
                        if !cached(name) {
                            continue;
                        }
                        commit.push(Change {
                            key: name.to_string(),
                            value: match event.event_type() {
                                EventType::Put => Some(kv.value().to_vec()),
                                EventType::Delete => None,
                            },
                            version: revision,
                        });
                    }
                    if at > 0 {
                        failed |= cache.apply(at, &commit).is_err();
                    }
                    if failed {
                        tracing::warn!("a change did not fit the cached registry: loading again");
                        load = true;
                        break;
                    }
                    changes.send_replace(u64::try_from(cache.revision()).unwrap_or(0));
                }
            }
            Err(error) => tracing::debug!(%error, "etcd watch failed: watching again"),
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(ETCD_WATCH_BACKOFF_MAX_MS);
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
        let slot_name = meta_key_name(&MetaKey::Slot(node));
        self.confirm().await?;
        for _ in 0..ETCD_CONFLICT_RETRIES_MAX {
            let view = self.view()?;
            if view.loaded.state.node(node).is_none() {
                return Err(StoreError::UnknownNode { node });
            }
            if let Some(error) = view.poisoned_among([&slot_name]) {
                return Err(error.into());
            }
            let slot = view.loaded.meta.claim(node, address);
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    self.key(&slot_name),
                    CompareOp::Equal,
                    view.loaded.version(&slot_name),
                )])
                .and_then(vec![
                    TxnOp::put(self.key(&slot_name), encode(&slot), None),
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
            if response.succeeded() {
                self.wrote_for(node, at);
                let _ = self.caught_up(at).await;
                return Ok(slot);
            }
            self.caught_up(at).await?;
        }
        Err(StoreError::Unavailable(format!(
            "claiming {node} conflicted {ETCD_CONFLICT_RETRIES_MAX} times"
        )))
    }

    async fn propose(&self, proposal: Proposal) -> Result<ProposalOutcome, StoreError> {
        #[cfg(feature = "testing")]
        let fault = lock(&self.faults).pop_front();
        #[cfg(feature = "testing")]
        if let Some(answer) = Fault::answer_before_running(fault) {
            lock(&self.stats).unknown_outcomes += u64::from(answer == Ok(ProposalOutcome::Unknown));
            return answer;
        }
        let name = action_name(&proposal);
        let mut uncertain = false;
        let mut confirmed = false;
        let mut failures = 0;
        let mut backoff_ms = ETCD_RETRY_BACKOFF_MS;
        let mut again = false;
        for attempt in 0..ETCD_CONFLICT_RETRIES_MAX {
            if attempt > 0 && !std::mem::take(&mut again) {
                *lock(&self.stats).retries.entry(name.clone()).or_default() += 1;
            }
            match self
                .attempt(&proposal, &mut uncertain, &mut confirmed)
                .await
            {
                Ok(Attempt::Done(outcome)) => {
                    #[cfg(feature = "testing")]
                    let outcome = match (fault, outcome) {
                        (Some(Fault::UnknownAfterCommit), ProposalOutcome::Committed { .. }) => {
                            ProposalOutcome::Unknown
                        }
                        (_, outcome) => outcome,
                    };
                    let mut stats = lock(&self.stats);
                    stats.uncertain_resolved += u64::from(uncertain);
                    stats.unknown_outcomes += u64::from(outcome == ProposalOutcome::Unknown);
                    return Ok(outcome);
                }
                Ok(Attempt::Conflict) => continue,
                Ok(Attempt::Again) => again = true,
                Err(StoreError::Unavailable(why)) if failures < ETCD_UNAVAILABLE_RETRIES_MAX => {
                    // A failed commit may have applied: the next attempt runs on a cache
                    // confirmed current, which holds it if it did, and recognises it by its id
                    // (one that applies later still fails the next commit's compare of its
                    // proposal record).
                    tracing::debug!(%why, "etcd attempt failed: retrying");
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms *= 2;
                    if let Err(error) = self.confirm().await {
                        tracing::debug!(%error, "etcd confirmation failed");
                    }
                }
                Err(StoreError::Unavailable(_)) if uncertain => {
                    lock(&self.stats).unknown_outcomes += 1;
                    return Ok(ProposalOutcome::Unknown);
                }
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} conflicted {ETCD_CONFLICT_RETRIES_MAX} times",
            proposal.action
        )))
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let confirmed_at = self.confirm().await?;
        let view = self.view()?;
        if let Some(error) = view.poisoned_among(view.poisoned.keys()) {
            return Err(error.into());
        }
        let mut snapshot = Snapshot::of(
            view.loaded.state,
            &view.loaded.meta,
            u64::try_from(view.revision).unwrap_or(0),
        );
        snapshot.confirmed_at = Some(confirmed_at);
        Ok(snapshot)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn stats(&self) -> StoreStats {
        let mut stats = lock(&self.stats).clone();
        stats.cache_loads = self.cache.reloads();
        stats
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
        Fault::enqueue(&mut lock(&self.faults), fault);
    }

    async fn corrupt(&self, key: StoreKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put_raw(&key.name(), Some(bytes)).await
    }

    async fn repair(&self, key: StoreKey, before: &Snapshot) -> Result<(), StoreError> {
        let value = value_of(&key, &before.state, &before.slots_meta());
        self.put_raw(&key.name(), value).await
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
            .map(|r| self.wrote(r.header().map_or(0, |h| h.revision())))
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
