//! The FoundationDB store (cargo feature `fdb`, `foundationdb` 0.11, API 7.1): the registry
//! laid out as in [`crate::kv`], each key the store's subspace followed by the key's name as
//! one tuple-layer string (`(subspace, "node/n3")`), values versioned. A thin adapter: the
//! transaction logic is [`crate::kv`]'s and `membership_core::execute`'s, shared with the etcd
//! store and tested by the conformance suite.
//!
//! - **One `db.run` per proposal**: the closure reads the registry with snapshot reads, runs
//!   `execute`, adds a read conflict range for exactly the keys of the read footprint (so two
//!   heartbeats never conflict), writes the delta, and bumps the version key with an atomic add
//!   (no conflict). When the closure runs again with `MaybeCommitted`, the previous attempt may
//!   have committed: `execute` recognises the proposal id and returns its recorded effects.
//! - **Unreachable cluster**: every attempt has a timeout ([`FDB_TRANSACTION_TIMEOUT_MS`]) and
//!   the retry loop a limit ([`FDB_RETRY_LIMIT`]); when they run out the proposal is
//!   unavailable, or unknown if an attempt may have committed.
//! - **Batches under 1 MB**: a plan writing more than [`FDB_BATCH_BYTES_MAX`] is refused, except
//!   a migration batch, which runs with half as many moves.
//! - **Watch**: a task watches the version key and feeds the store's `watch::Receiver<u64>`.
//!
//! The FoundationDB client network must be running in the process before [`FdbStore::open`]:
//! the application boots it once (`foundationdb::boot()`, an `unsafe` call this crate does not
//! make: its code forbids `unsafe`) and drops the guard before it exits.

use crate::codec::{decode, encode};
#[cfg(feature = "testing")]
use crate::fault::Fault;
use crate::keys::{
    log_key_name, meta_key_name, order_key_name, proposals_of, proposals_of_node, CONFIG_KEY,
    LOAD_PREFIXES, VERSION_KEY,
};
#[cfg(feature = "testing")]
use crate::keys::{StoreKey, LOG_FAMILY, LOG_ORDER_FAMILY, REGISTRY_PREFIXES};
#[cfg(feature = "testing")]
use crate::kv::{export, logged, value_of};
use crate::kv::{load, plan_fitting, Entry, Loaded, Planned, StoredConfig, Write};
#[cfg(feature = "testing")]
use crate::store::Logged;
use crate::store::{action_name, Snapshot, Store, StoreError, StoreStats};
#[cfg(feature = "testing")]
use crate::testing::{Audit, Limits};
use foundationdb::options::{ConflictRangeType, MutationType, StreamingMode, TransactionOption};
use foundationdb::tuple::Subspace;
use foundationdb::{Database, FdbBindingError, RangeOption, Transaction};
use membership_core::{Config, MetaKey, NodeId, Proposal, ProposalOutcome, Slot};
#[cfg(feature = "testing")]
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// The most bytes one transaction writes (FoundationDB recommends at most 1 MB; its hard limit
/// is 10 MB).
pub const FDB_BATCH_BYTES_MAX: usize = 900_000;

/// One transaction attempt's timeout, in ms (FoundationDB's own limit is 5 s).
pub const FDB_TRANSACTION_TIMEOUT_MS: i32 = 2_000;

/// How many times one proposal's transaction is retried (conflicts and retryable errors).
pub const FDB_RETRY_LIMIT: i32 = 64;

/// The most pages of one range read.
const RANGE_PAGES_MAX: usize = 100_000;

/// The watcher's backoff after an error, in ms.
const WATCH_BACKOFF_MS: u64 = 100;

/// The registry in a FoundationDB cluster.
pub struct FdbStore {
    db: Arc<Database>,
    subspace: Subspace,
    record_log: bool,
    changes: watch::Sender<u64>,
    watcher: tokio::task::JoinHandle<()>,
    stats: Arc<Mutex<StoreStats>>,
    /// Faults queued for the next proposals.
    #[cfg(feature = "testing")]
    faults: Mutex<VecDeque<Fault>>,
}

impl std::fmt::Debug for FdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdbStore")
            .field("subspace", &self.subspace.bytes())
            .finish()
    }
}

impl Drop for FdbStore {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn custom(e: StoreError) -> FdbBindingError {
    FdbBindingError::CustomError(Box::new(e))
}

/// The store error inside a binding error, or the binding error as unavailability.
fn store_error(e: FdbBindingError) -> StoreError {
    match e {
        FdbBindingError::CustomError(inner) => match inner.downcast::<StoreError>() {
            Ok(error) => *error,
            Err(other) => unavailable(other),
        },
        other => unavailable(other),
    }
}

/// FoundationDB's error code for a commit that conflicted (`not_committed`).
const FDB_NOT_COMMITTED: i32 = 1020;

/// Counts a proposal's failed commits: conflicts (`not_committed`) and every retry.
struct Counting<'a> {
    stats: &'a Mutex<StoreStats>,
    name: &'a str,
}

impl foundationdb::RunnerHooks for Counting<'_> {
    fn on_commit_error(
        &self,
        err: &foundationdb::TransactionCommitError,
    ) -> impl std::future::Future<Output = foundationdb::FdbResult<()>> + Send {
        let mut stats = lock(self.stats);
        if err.code() == FDB_NOT_COMMITTED {
            *stats.conflicts.entry(self.name.to_string()).or_default() += 1;
        }
        *stats.retries.entry(self.name.to_string()).or_default() += 1;
        async { Ok(()) }
    }
}

/// What the transaction closure decided.
enum Decided {
    Refused(membership_core::ProposalError),
    Committed(Vec<membership_core::Effect>, u64, bool),
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

    /// A store on an open database, under the subspace `(subspace,)`. Its watch task runs on
    /// the calling tokio runtime.
    pub async fn new(db: Database, subspace: &str, record_log: bool) -> FdbStore {
        let db = Arc::new(db);
        let subspace = Subspace::from(subspace);
        let (changes, _) = watch::channel(0);
        let watcher = tokio::spawn(watch_version(
            db.clone(),
            subspace.pack(&VERSION_KEY),
            changes.clone(),
        ));
        FdbStore {
            db,
            subspace,
            record_log,
            changes,
            watcher,
            stats: Arc::new(Mutex::new(StoreStats::default())),
            #[cfg(feature = "testing")]
            faults: Mutex::new(VecDeque::new()),
        }
    }

    fn key(&self, name: &str) -> Vec<u8> {
        self.subspace.pack(&name)
    }

    /// The key range of every name starting with `prefix` (a tuple-layer string is its bytes
    /// after a type code, so a name prefix is a byte prefix).
    fn prefix_range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let mut begin = self.subspace.bytes().to_vec();
        begin.push(0x02);
        begin.extend_from_slice(prefix.as_bytes());
        let mut end = begin.clone();
        end.push(0xff);
        (begin, end)
    }

    /// Reads every pair of the prefix range, as entries named relative to the subspace.
    async fn read_range(
        &self,
        trx: &Transaction,
        prefix: &str,
        out: &mut Vec<Entry>,
    ) -> Result<(), FdbBindingError> {
        let (begin, end) = self.prefix_range(prefix);
        let mut opt = RangeOption::from((begin, end));
        opt.mode = StreamingMode::WantAll;
        for iteration in 1..=RANGE_PAGES_MAX {
            let values = trx.get_range(&opt, iteration, true).await?;
            for kv in values.iter() {
                let name: String = self
                    .subspace
                    .unpack(kv.key())
                    .map_err(FdbBindingError::PackError)?;
                out.push(Entry {
                    key: name,
                    value: kv.value().to_vec(),
                    version: 0,
                });
            }
            match opt.next_range(&values) {
                Some(next) => opt = next,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// The registry and metadata (and, with `proposals`, that incarnation's records), read in
    /// `trx` with snapshot reads.
    async fn load_in(
        &self,
        trx: &Transaction,
        proposals: Option<(NodeId, u64)>,
    ) -> Result<Loaded, FdbBindingError> {
        let mut entries = Vec::new();
        for prefix in LOAD_PREFIXES {
            self.read_range(trx, prefix, &mut entries).await?;
        }
        if let Some((node, incarnation)) = proposals {
            self.read_range(trx, &proposals_of(node, incarnation), &mut entries)
                .await?;
        }
        load(entries).map_err(custom)
    }

    fn limit(&self, trx: &Transaction) -> Result<(), FdbBindingError> {
        trx.set_option(TransactionOption::Timeout(FDB_TRANSACTION_TIMEOUT_MS))?;
        trx.set_option(TransactionOption::RetryLimit(FDB_RETRY_LIMIT))?;
        Ok(())
    }

    /// Writes `value` under `name` as it is, or deletes the key (a corruption or a repair).
    #[cfg(feature = "testing")]
    async fn put_raw(&self, name: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let key = self.key(name);
        let version = self.key(VERSION_KEY);
        self.db
            .run(|trx, _| {
                let key = key.clone();
                let value = value.clone();
                let version = version.clone();
                async move {
                    match value {
                        Some(v) => trx.set(&key, &v),
                        None => trx.clear(&key),
                    }
                    trx.atomic_op(&version, &1i64.to_le_bytes(), MutationType::Add);
                    Ok(())
                }
            })
            .await
            .map_err(store_error)
    }
}

/// Watches the version key and bumps `changes` after every commit, until the store is dropped.
async fn watch_version(db: Arc<Database>, key: Vec<u8>, changes: watch::Sender<u64>) {
    let mut seen = 0u64;
    loop {
        let watched = async {
            let trx = db.create_trx()?;
            let value = trx.get(&key, false).await?;
            let version = value.map_or(0, |v| {
                let mut bytes = [0u8; 8];
                for (b, v) in bytes.iter_mut().zip(v.iter()) {
                    *b = *v;
                }
                u64::from_le_bytes(bytes)
            });
            let watch = trx.watch(&key);
            trx.commit().await.map_err(foundationdb::FdbError::from)?;
            Ok::<_, foundationdb::FdbError>((version, watch))
        }
        .await;
        match watched {
            Ok((version, watch)) => {
                if version != seen {
                    seen = version;
                    changes.send_replace(version);
                }
                if watch.await.is_err() {
                    tokio::time::sleep(Duration::from_millis(WATCH_BACKOFF_MS)).await;
                }
            }
            Err(error) => {
                tracing::debug!(%error, "FoundationDB watch failed: watching again");
                tokio::time::sleep(Duration::from_millis(WATCH_BACKOFF_MS)).await;
            }
        }
    }
}

impl Store for FdbStore {
    async fn init(&self, config: Config) -> Result<(), StoreError> {
        let key = self.key(CONFIG_KEY);
        let value = encode(&StoredConfig::of(&config));
        let stored = self
            .db
            .run(|trx, _| {
                let key = key.clone();
                let value = value.clone();
                async move {
                    let stored = trx.get(&key, false).await?;
                    if stored.is_none() {
                        trx.set(&key, &value);
                    }
                    Ok(stored.map(|v| v.to_vec()))
                }
            })
            .await
            .map_err(store_error)?;
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
        let slot_name = meta_key_name(&MetaKey::Slot(node));
        self.db
            .run(|trx, _| {
                let slot_name = slot_name.clone();
                async move {
                    self.limit(&trx)?;
                    let loaded = self.load_in(&trx, None).await?;
                    if loaded.state.node(node).is_none() {
                        return Err(custom(StoreError::UnknownNode { node }));
                    }
                    let slot = loaded.meta.claim(node, address);
                    let key = self.key(&slot_name);
                    let mut end = key.clone();
                    end.push(0);
                    trx.add_conflict_range(&key, &end, ConflictRangeType::Read)?;
                    trx.set(&key, &encode(&slot));
                    let (begin, end) = self.prefix_range(&proposals_of_node(node));
                    trx.clear_range(&begin, &end);
                    trx.atomic_op(
                        &self.key(VERSION_KEY),
                        &1i64.to_le_bytes(),
                        MutationType::Add,
                    );
                    Ok(slot)
                }
            })
            .await
            .map_err(store_error)
    }

    async fn propose(&self, proposal: Proposal) -> Result<ProposalOutcome, StoreError> {
        #[cfg(feature = "testing")]
        let fault = lock(&self.faults).pop_front();
        #[cfg(feature = "testing")]
        if let Some(answer) = Fault::answer_before_running(fault) {
            return answer;
        }
        let name = action_name(&proposal);
        let id = proposal.id;
        let uncertain = Arc::new(Mutex::new(false));
        let hooks = Counting {
            stats: &self.stats,
            name: &name,
        };
        let result = self
            .db
            .run_with_hooks(&hooks, |trx, maybe_committed| {
                let uncertain = uncertain.clone();
                async move {
                    if bool::from(maybe_committed) {
                        *lock(&uncertain) = true;
                    }
                    self.limit(&trx)?;
                    let loaded = self.load_in(&trx, Some((id.node, id.incarnation))).await?;
                    let fits = |plan: &crate::kv::Plan| {
                        let bytes = plan.write_bytes();
                        if bytes > FDB_BATCH_BYTES_MAX {
                            Err((plan.writes.len() as u64, bytes as u64))
                        } else {
                            Ok(())
                        }
                    };
                    let (commit, plan) =
                        match plan_fitting(&loaded, &proposal, self.record_log, usize::MAX, fits)
                            .map_err(custom)?
                        {
                            Planned::Refused(error) => return Ok(Decided::Refused(error)),
                            Planned::Duplicate(effects) => {
                                return Ok(Decided::Committed(effects, 0, true))
                            }
                            Planned::Commit(commit, plan) => (commit, plan),
                        };
                    for read in plan.reads.keys() {
                        let key = self.key(read);
                        let mut end = key.clone();
                        end.push(0);
                        trx.add_conflict_range(&key, &end, ConflictRangeType::Read)?;
                    }
                    for write in &plan.writes {
                        match write {
                            Write::Put(k, v) => trx.set(&self.key(k), v),
                            Write::Delete(k) => trx.clear(&self.key(k)),
                        }
                    }
                    trx.atomic_op(
                        &self.key(VERSION_KEY),
                        &1i64.to_le_bytes(),
                        MutationType::Add,
                    );
                    if self.record_log {
                        // The commit's versionstamp (10 bytes, in commit order) beside the log
                        // record: the commit order of the log.
                        let mut param = vec![0u8; 10];
                        param.extend_from_slice(&0u32.to_le_bytes());
                        trx.atomic_op(
                            &self.key(&order_key_name(&log_key_name(&id))),
                            &param,
                            MutationType::SetVersionstampedValue,
                        );
                    }
                    Ok(Decided::Committed(
                        commit.effects.clone(),
                        plan.write_bytes() as u64,
                        false,
                    ))
                }
            })
            .await;
        let uncertain = *lock(&uncertain);
        let mut stats = lock(&self.stats);
        match result {
            Ok(Decided::Refused(error)) => {
                *stats.refusals.entry(name).or_default() += 1;
                Ok(ProposalOutcome::Refused(error))
            }
            Ok(Decided::Committed(effects, bytes, duplicate)) => {
                if !duplicate {
                    *stats.commits.entry(name).or_default() += 1;
                    stats.largest_write_bytes = stats.largest_write_bytes.max(bytes);
                }
                stats.uncertain_resolved += u64::from(uncertain);
                #[cfg(feature = "testing")]
                if fault == Some(Fault::UnknownAfterCommit) {
                    stats.unknown_outcomes += 1;
                    return Ok(ProposalOutcome::Unknown);
                }
                Ok(ProposalOutcome::Committed { effects })
            }
            Err(FdbBindingError::CustomError(e)) => {
                Err(store_error(FdbBindingError::CustomError(e)))
            }
            Err(_) if uncertain => {
                stats.unknown_outcomes += 1;
                Ok(ProposalOutcome::Unknown)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let trx = self.db.create_trx().map_err(unavailable)?;
        self.limit(&trx).map_err(store_error)?;
        let loaded = self.load_in(&trx, None).await.map_err(store_error)?;
        let version = trx.get_read_version().await.map_err(unavailable)?;
        Ok(Snapshot::of(
            loaded.state,
            &loaded.meta,
            u64::try_from(version).unwrap_or(0),
        ))
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn stats(&self) -> StoreStats {
        lock(&self.stats).clone()
    }
}

#[cfg(feature = "testing")]
impl Audit for FdbStore {
    async fn committed_log(&self) -> Result<Vec<Logged>, StoreError> {
        // Each record's commit order is the versionstamp written beside it.
        let trx = self.db.create_trx().map_err(unavailable)?;
        let mut records = Vec::new();
        self.read_range(&trx, LOG_FAMILY, &mut records)
            .await
            .map_err(store_error)?;
        let mut orders = Vec::new();
        self.read_range(&trx, LOG_ORDER_FAMILY, &mut orders)
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
        for prefix in REGISTRY_PREFIXES {
            let (begin, end) = self.prefix_range(prefix);
            self.db
                .run(|trx, _| {
                    let (begin, end) = (begin.clone(), end.clone());
                    async move {
                        trx.clear_range(&begin, &end);
                        Ok(())
                    }
                })
                .await
                .map_err(store_error)?;
        }
        let mut batch: Vec<&(String, Vec<u8>)> = Vec::new();
        let mut bytes = 0;
        for pair in pairs
            .iter()
            .chain(std::iter::once(&(String::new(), Vec::new())))
        {
            let last = pair.0.is_empty();
            if !last {
                bytes += pair.0.len() + pair.1.len();
                batch.push(pair);
            }
            if last || bytes > FDB_BATCH_BYTES_MAX / 2 {
                let writes: Vec<(Vec<u8>, Vec<u8>)> = batch
                    .iter()
                    .map(|(k, v)| (self.key(k), v.clone()))
                    .collect();
                self.db
                    .run(|trx, _| {
                        let writes = writes.clone();
                        async move {
                            for (k, v) in &writes {
                                trx.set(k, v);
                            }
                            Ok(())
                        }
                    })
                    .await
                    .map_err(store_error)?;
                batch.clear();
                bytes = 0;
            }
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            ops_max: None,
            write_bytes_max: FDB_BATCH_BYTES_MAX as u64,
            moves_max: membership_core::MIGRATION_BATCH_MAX as u64,
        }
    }
}
