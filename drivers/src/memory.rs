//! The embedded in-memory store: zero setup, shared safely between tasks, and with a real
//! engine's semantics. A transaction reads a consistent view at one revision, runs
//! [`membership_core::execute`] without holding any lock, then commits only if no key it read was
//! written since (optimistic concurrency, as FoundationDB and etcd do); otherwise it conflicts
//! and runs again. So concurrent proposals with overlapping footprints really conflict, and two
//! nodes' heartbeats never do.

use crate::codec::encode;
#[cfg(feature = "testing")]
use crate::codec::DecodeError;
#[cfg(feature = "testing")]
use crate::fault::Fault;
use crate::keys::StoreKey;
#[cfg(feature = "testing")]
use crate::keys::{check_meta, check_registry};
#[cfg(feature = "testing")]
use crate::store::Logged;
use crate::store::{action_name, Snapshot, Store, StoreError, StoreStats};
use membership_core::{
    execute, Commit, Config, Key, Meta, MetaKey, NodeId, Proposal, ProposalOutcome, Slot, State,
};
#[cfg(feature = "testing")]
use std::collections::VecDeque;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

/// How many times a conflicting transaction is run again before the store reports the proposal
/// as unavailable (nothing written).
pub const CONFLICT_RETRIES_MAX: u32 = 256;

/// How many committed transactions the store keeps in its log (for replay checks).
#[cfg(feature = "testing")]
pub const COMMIT_LOG_MAX: usize = 4_000_000;

/// How many recent commits' actions the store remembers for its conflict statistics.
pub(crate) const WRITERS_KEPT: usize = 4_096;

/// The fault one transaction attempt runs with: one of the test kit's faults, or none (a
/// production build has no faults: its attempts always run with `None`).
#[cfg(feature = "testing")]
pub(crate) type Injected = Option<Fault>;
/// The fault one transaction attempt runs with: one of the test kit's faults, or none (a
/// production build has no faults: its attempts always run with `None`).
#[cfg(not(feature = "testing"))]
pub(crate) type Injected = Option<std::convert::Infallible>;

/// A transaction begun by `MemoryStore::begin`: the read view at one revision.
#[derive(Clone, Debug)]
#[cfg_attr(
    not(feature = "testing"),
    allow(unreachable_pub, reason = "public in `membership::testing`")
)]
pub struct Transaction {
    state: State,
    meta: Meta,
    read_revision: u64,
}

#[cfg(feature = "testing")]
impl Transaction {
    /// The store revision the view was read at.
    pub fn read_revision(&self) -> u64 {
        self.read_revision
    }
}

/// What one attempt of a transaction did (`MemoryStore::try_commit`).
#[derive(Clone, Debug)]
#[cfg_attr(
    not(feature = "testing"),
    allow(unreachable_pub, reason = "public in `membership::testing`")
)]
pub enum Attempt {
    /// Committed at this revision (or recognised as a retry of an applied proposal:
    /// `commit.duplicate`, nothing written).
    Committed(Box<Commit>, u64),
    /// A key it read was written since its read revision: nothing written; begin again.
    Conflict,
    /// Final without a commit: refused (`Ok`), or it could not run (`Err`, nothing written).
    Done(Result<ProposalOutcome, StoreError>),
}

#[derive(Debug)]
struct Inner {
    state: Option<State>,
    meta: Meta,
    revision: u64,
    /// The revision that last wrote each key (looked up, never iterated; a fixed-seed hasher).
    versions: HashMap<StoreKey, u64, ahash::RandomState>,
    /// The action of the commit at each recent revision (for the conflict statistics).
    writers: BTreeMap<u64, String>,
    /// Deleted keys, with the revision that deleted them, kept while a transaction that started
    /// before that revision may still commit.
    tombstones: BTreeMap<StoreKey, u64>,
    /// The read revisions of the transactions running now.
    active: BTreeMap<u64, usize>,
    stats: StoreStats,
    account_sizes: bool,
    /// Faults queued for the next proposals.
    #[cfg(feature = "testing")]
    faults: VecDeque<Fault>,
    /// Whether every operation fails as unavailable.
    #[cfg(feature = "testing")]
    unreachable: bool,
    /// Corrupted values, overlaid on the registry.
    #[cfg(feature = "testing")]
    corrupt: BTreeMap<StoreKey, Vec<u8>>,
    /// The committed transactions.
    #[cfg(feature = "testing")]
    log: Vec<Logged>,
    /// The version of every key never written since the registry was replaced.
    floor: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            state: None,
            meta: Meta::default(),
            revision: 0,
            versions: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            writers: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            active: BTreeMap::new(),
            stats: StoreStats::default(),
            account_sizes: false,
            #[cfg(feature = "testing")]
            faults: VecDeque::new(),
            #[cfg(feature = "testing")]
            unreachable: false,
            #[cfg(feature = "testing")]
            corrupt: BTreeMap::new(),
            #[cfg(feature = "testing")]
            log: Vec::new(),
            floor: 0,
        }
    }
}

impl Inner {
    fn version(&self, key: &StoreKey) -> u64 {
        self.versions
            .get(key)
            .or_else(|| self.tombstones.get(key))
            .copied()
            .unwrap_or(self.floor)
    }

    fn finish(&mut self, read_revision: u64) {
        if let Some(count) = self.active.get_mut(&read_revision) {
            *count -= 1;
            if *count == 0 {
                self.active.remove(&read_revision);
            }
        }
        let oldest = self.active.keys().next().copied().unwrap_or(self.revision);
        self.tombstones.retain(|_, &mut deleted| deleted > oldest);
    }

    /// Fails as unavailable when the store was made unreachable (`MemoryStore::set_unreachable`,
    /// the test kit's; a production build is always reachable).
    fn reachable(&self) -> Result<(), StoreError> {
        #[cfg(feature = "testing")]
        if self.unreachable {
            return Err(StoreError::Unavailable("the store is unreachable".into()));
        }
        Ok(())
    }

    /// The first corrupt key among `keys`, decoded to name what is wrong (the test kit's
    /// corruptions; a production build holds decoded values only and finds none).
    #[cfg(feature = "testing")]
    fn undecodable<'k>(&self, keys: impl IntoIterator<Item = &'k StoreKey>) -> Option<StoreError> {
        keys.into_iter().find_map(|k| {
            let bytes = self.corrupt.get(k)?;
            let result = match k {
                StoreKey::Registry(key) => check_registry(key, bytes),
                StoreKey::Meta(key) => check_meta(key, bytes),
            };
            let error = result.err().unwrap_or_else(|| DecodeError {
                key: k.name(),
                reason: "value of the wrong kind".to_string(),
            });
            Some(StoreError::Decode(error))
        })
    }

    /// The first corrupt key among `keys` (a production build holds decoded values only).
    #[cfg(not(feature = "testing"))]
    fn undecodable<'k>(&self, _keys: impl IntoIterator<Item = &'k StoreKey>) -> Option<StoreError> {
        None
    }

    /// The first corrupt key of the store (a snapshot reads every key).
    #[cfg(feature = "testing")]
    fn corruption(&self) -> Option<StoreError> {
        self.undecodable(self.corrupt.keys())
    }

    /// The first corrupt key of the store (a production build holds decoded values only).
    #[cfg(not(feature = "testing"))]
    fn corruption(&self) -> Option<StoreError> {
        None
    }
}

/// The embedded in-memory store (the default: `cargo run` and the tests use it).
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store (initialise it with [`Store::init`]).
    pub fn new() -> MemoryStore {
        let (changes, _) = watch::channel(0);
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns on measuring the encoded size of every transaction's writes
    /// ([`StoreStats::largest_write_bytes`]).
    pub fn account_sizes(&self, on: bool) {
        self.lock().account_sizes = on;
    }

    /// Replaces the registry with `state` (an import or a restore from a backup; tests build
    /// large registries this way). Every key counts as written now.
    pub fn replace_state(&self, state: State) {
        let mut inner = self.lock();
        let revision = inner.revision + 1;
        inner.revision = revision;
        inner.versions.clear();
        inner.tombstones.clear();
        #[cfg(feature = "testing")]
        inner.corrupt.clear();
        inner.state = Some(state);
        // Every transaction that read before now conflicts.
        inner
            .versions
            .insert(StoreKey::Meta(MetaKey::Round), revision);
        inner.floor = revision;
        drop(inner);
        self.changes.send_replace(revision);
    }

    /// The registry now (None before `init`).
    pub fn state(&self) -> Option<State> {
        self.lock().state.clone()
    }

    /// Begins a transaction: a consistent read view of the registry and the metadata at the
    /// current revision. Finish it with [`MemoryStore::commit_attempt`] (which every proposal
    /// goes through); other transactions may commit in between, exactly as with an engine's
    /// optimistic transactions.
    pub(crate) fn begin_transaction(&self) -> Result<Transaction, StoreError> {
        let mut inner = self.lock();
        inner.reachable()?;
        let Some(state) = inner.state.clone() else {
            return Err(StoreError::Uninitialised);
        };
        let revision = inner.revision;
        *inner.active.entry(revision).or_default() += 1;
        Ok(Transaction {
            state,
            meta: inner.meta.clone(),
            read_revision: revision,
        })
    }

    /// Finishes `transaction` for `proposal`: runs [`membership_core::execute`] on its view
    /// (outside the lock), then commits if no key it read was written since its read revision,
    /// else reports [`Attempt::Conflict`] (run it again from
    /// [`MemoryStore::begin_transaction`]). `fault` is a broken store's defect for this one
    /// attempt (test builds only: `ApplyTwice` and `ValidatesOnlyWrites` act here; the other
    /// faults are the caller's).
    pub(crate) fn commit_attempt(
        &self,
        transaction: Transaction,
        proposal: &Proposal,
        fault: Injected,
    ) -> Attempt {
        let Transaction {
            state,
            meta,
            read_revision,
        } = transaction;
        // The transaction logic runs outside the lock: other transactions commit meanwhile.
        let result = execute(&state, &meta, proposal);
        let mut inner = self.lock();
        let name = action_name(proposal);
        let outcome = match result {
            Err(error) => {
                *inner.stats.refusals.entry(name).or_default() += 1;
                Attempt::Done(Ok(ProposalOutcome::Refused(error)))
            }
            Ok(commit) => {
                let reads = validated(&commit, &state, fault);
                if let Some(error) = inner.undecodable(reads.iter()) {
                    inner.finish(read_revision);
                    return Attempt::Done(Err(error));
                }
                if let Some(key) = reads.iter().find(|k| inner.version(k) > read_revision) {
                    let writer = inner
                        .writers
                        .get(&inner.version(key))
                        .cloned()
                        .unwrap_or_else(|| "claim".to_string());
                    *inner
                        .stats
                        .conflict_pairs
                        .entry((name.clone(), writer))
                        .or_default() += 1;
                    *inner.stats.conflicts.entry(name).or_default() += 1;
                    Attempt::Conflict
                } else if commit.duplicate {
                    let revision = inner.revision;
                    Attempt::Committed(Box::new(commit), revision)
                } else {
                    match self.write(&mut inner, &state, &commit, &name) {
                        Ok(revision) => {
                            #[cfg(feature = "testing")]
                            if fault == Some(Fault::ApplyTwice) {
                                // The broken store: forget that the proposal was applied, so
                                // that its retry applies it again.
                                inner.meta.applied.remove(&proposal.id);
                            }
                            Attempt::Committed(Box::new(commit), revision)
                        }
                        Err(done) => Attempt::Done(done),
                    }
                }
            }
        };
        inner.finish(read_revision);
        outcome
    }

    /// Writes a commit onto the current registry (not onto the transaction's view: only the
    /// keys it wrote change). Called with the lock held, after the conflict check.
    fn write(
        &self,
        inner: &mut Inner,
        view: &State,
        commit: &Commit,
        name: &str,
    ) -> Result<u64, Result<ProposalOutcome, StoreError>> {
        let Some(current) = inner.state.as_ref() else {
            return Err(Err(StoreError::Uninitialised));
        };
        let next = match current.apply(&commit.delta) {
            Ok(next) => next,
            Err(e) => {
                // Cannot happen after a clean conflict check; refuse rather than write half.
                tracing::error!(error = %e, "delta does not apply: nothing written");
                return Err(Err(StoreError::Unavailable(e.to_string())));
            }
        };
        // The flags' stored form: each written heartbeat names a round, and a flag is set when
        // that is the open round (a heartbeat that ran at a round closed since changes no
        // flag); opening a round clears every flag.
        let round = if commit.meta_writes.contains(&MetaKey::Round) {
            commit.meta.round
        } else {
            inner.meta.round
        };
        let mut flags = if round == inner.meta.round {
            next.heartbeats().clone()
        } else {
            membership_core::NodeSet::EMPTY
        };
        for key in commit.delta.keys(view) {
            if let Key::Heartbeat(n) = key {
                match commit.meta.heartbeat_round(n) {
                    Some(r) if commit.next.heartbeat_received(n) => {
                        inner.meta.heartbeat_rounds.insert(n, r);
                        if r == round {
                            flags.insert(n);
                        } else {
                            flags.remove(n);
                        }
                    }
                    _ => flags.remove(n),
                }
            }
        }
        let next = if flags == *next.heartbeats() {
            next
        } else {
            next.with_heartbeats(&flags)
        };
        debug_assert!(next
            .heartbeats()
            .iter()
            .all(|n| inner.meta.heartbeat_rounds.get(&n) == Some(&round)));
        let revision = inner.revision + 1;
        // A flag cleared by a new round is not a write of the node's key (the round key clears
        // it), as on a store on a real engine.
        let mut written: Vec<StoreKey> = commit
            .delta
            .keys(view)
            .into_iter()
            .filter(|k| !matches!(k, Key::Heartbeat(n) if !commit.next.heartbeat_received(*n)))
            .map(StoreKey::Registry)
            .collect();
        written.extend(commit.meta_writes.iter().map(|k| StoreKey::Meta(*k)));
        for key in &commit.meta_writes {
            match *key {
                MetaKey::Slot(n) => match commit.meta.slots.get(&n) {
                    Some(slot) => {
                        inner.meta.slots.insert(n, slot.clone());
                    }
                    None => {
                        inner.meta.slots.remove(&n);
                    }
                },
                MetaKey::Round => inner.meta.round = commit.meta.round,
                MetaKey::Applied(id) => match commit.meta.applied.get(&id) {
                    Some(applied) => {
                        inner.meta.applied.insert(id, applied.clone());
                    }
                    None => {
                        inner.meta.applied.remove(&id);
                    }
                },
            }
        }
        for key in written {
            #[cfg(feature = "testing")]
            inner.corrupt.remove(&key);
            let deleted = match key {
                StoreKey::Meta(MetaKey::Applied(id)) => !inner.meta.applied.contains_key(&id),
                StoreKey::Registry(Key::Actor(a)) => next.placement(a).is_none(),
                StoreKey::Registry(Key::Queue(a)) => !next.queue().contains(a),
                _ => false,
            };
            if deleted {
                inner.versions.remove(&key);
                inner.tombstones.insert(key, revision);
            } else {
                inner.tombstones.remove(&key);
                inner.versions.insert(key, revision);
            }
        }
        if inner.account_sizes {
            let bytes = encoded_size(&commit.delta);
            inner.stats.largest_write_bytes = inner.stats.largest_write_bytes.max(bytes);
        }
        inner.state = Some(next);
        inner.revision = revision;
        *inner.stats.commits.entry(name.to_string()).or_default() += 1;
        let read = keys_read(view, &commit.reads) + commit.meta_reads.len() as u64;
        let most = inner
            .stats
            .keys_read_max
            .entry(name.to_string())
            .or_default();
        *most = (*most).max(read);
        inner.writers.insert(revision, name.to_string());
        while inner.writers.len() > WRITERS_KEPT {
            inner.writers.pop_first();
        }
        #[cfg(feature = "testing")]
        if inner.log.len() < COMMIT_LOG_MAX {
            inner.log.push(Logged {
                revision,
                id: commit.id,
                round: commit.meta.round,
                events: commit.events.clone(),
            });
        }
        self.changes.send_replace(revision);
        debug_assert_eq!(inner.revision, revision);
        Ok(revision)
    }
}

/// The registry keys a commit read, counted as the stores on an engine keep them (a queue entry
/// under its node's chunk, `crate::keys::queue`), so the figure `StoreStats::keys_read_max`
/// compares across stores.
fn keys_read(view: &State, reads: &BTreeSet<Key>) -> u64 {
    let mut chunks = BTreeSet::new();
    let mut others = 0u64;
    for key in reads {
        match key {
            Key::Queue(a) => {
                // Neither queued nor placed: no chunk (its placement's key is read).
                chunks.extend(crate::keys::queue::chunk_of(view, *a));
            }
            _ => others += 1,
        }
    }
    let count = others + chunks.len() as u64;
    debug_assert!(count <= reads.len() as u64);
    count
}

/// The encoded size of a delta's writes: one key-value pair per entry, each key named as the
/// registry key displays (`queue/a7`: one key per queue entry, as the in-memory store keeps
/// them; the stores on a real engine measure their own chunked writes).
pub(crate) fn encoded_size(delta: &membership_core::Delta) -> u64 {
    let mut bytes = 0usize;
    for (n, r) in &delta.nodes {
        bytes += Key::Node(*n).to_string().len() + encode(r).len();
    }
    for (n, f) in &delta.heartbeats {
        bytes += Key::Heartbeat(*n).to_string().len() + encode(f).len();
    }
    for v in delta.counters.values() {
        bytes += 16 + encode(v).len();
    }
    for (a, p) in &delta.placements {
        bytes += Key::Actor(*a).to_string().len() + encode(p).len();
    }
    for (a, e) in &delta.queue {
        bytes += Key::Queue(*a).to_string().len() + encode(e).len();
    }
    for (n, l) in &delta.loads {
        bytes += Key::Load(*n).to_string().len() + encode(l).len();
    }
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// The test kit's access to the in-memory store (cargo feature `testing`).
#[cfg(feature = "testing")]
impl MemoryStore {
    /// Queues a fault for the next proposals (at most [`crate::testing::FAULTS_MAX`]).
    pub fn inject(&self, fault: Fault) {
        Fault::enqueue(&mut self.lock().faults, fault);
    }

    /// Makes the store unreachable (every operation fails as unavailable) or reachable again.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// Stores `bytes` under `key` as they are, undecoded: a corrupted value. Reads and proposals
    /// that touch the key fail with a [`DecodeError`] naming it; a commit that writes the key
    /// replaces it.
    pub fn corrupt(&self, key: StoreKey, bytes: Vec<u8>) {
        self.lock().corrupt.insert(key, bytes);
    }

    /// The committed transactions, in commit order (at most [`COMMIT_LOG_MAX`]).
    pub fn log(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// The committed transactions from the `start`-th on (a replay checker reads the log
    /// incrementally with it).
    pub fn log_from(&self, start: usize) -> Vec<Logged> {
        let inner = self.lock();
        inner
            .log
            .get(start..)
            .map(<[Logged]>::to_vec)
            .unwrap_or_default()
    }

    /// Begins a transaction: a consistent read view of the registry and the metadata at the
    /// current revision. Finish it with [`MemoryStore::try_commit`] (as every proposal does,
    /// [`MemoryStore::propose_checked`] included); other transactions may commit in between,
    /// exactly as with an engine's optimistic transactions.
    pub fn begin(&self) -> Result<Transaction, StoreError> {
        self.begin_transaction()
    }

    /// Finishes `transaction` for `proposal`: runs [`membership_core::execute`] on its view
    /// (outside the lock), then commits if no key it read was written since its read revision,
    /// else reports [`Attempt::Conflict`] (run it again from [`MemoryStore::begin`]). `fault`
    /// is a broken store's defect for this one attempt (only [`Fault::ApplyTwice`] and
    /// [`Fault::ValidatesOnlyWrites`] act here; the others are the caller's).
    pub fn try_commit(
        &self,
        transaction: Transaction,
        proposal: &Proposal,
        fault: Option<Fault>,
    ) -> Attempt {
        self.commit_attempt(transaction, proposal, fault)
    }
}

impl Store for MemoryStore {
    async fn init(&self, config: Config) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.reachable()?;
        match &inner.state {
            Some(s) if s.config().node_count() == config.node_count() => Ok(()),
            Some(s) => Err(StoreError::Shape {
                found: s.config().node_count(),
                expected: config.node_count(),
            }),
            None => {
                inner.state = Some(State::initial(config));
                Ok(())
            }
        }
    }

    async fn claim(&self, node: NodeId, address: &str) -> Result<Slot, StoreError> {
        let mut inner = self.lock();
        inner.reachable()?;
        let Some(state) = &inner.state else {
            return Err(StoreError::Uninitialised);
        };
        if state.node(node).is_none() {
            return Err(StoreError::UnknownNode { node });
        }
        let slot = inner.meta.claim(node, address);
        inner.meta = inner.meta.with_claim(node, slot.clone());
        let revision = inner.revision + 1;
        inner.revision = revision;
        inner
            .versions
            .insert(StoreKey::Meta(MetaKey::Slot(node)), revision);
        self.changes.send_replace(revision);
        Ok(slot)
    }

    async fn propose(&self, proposal: Proposal) -> Result<ProposalOutcome, StoreError> {
        self.propose_checked(proposal)
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let inner = self.lock();
        inner.reachable()?;
        if let Some(error) = inner.corruption() {
            return Err(error);
        }
        let state = inner.state.clone().ok_or(StoreError::Uninitialised)?;
        Ok(Snapshot::of(state, &inner.meta, inner.revision))
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn stats(&self) -> StoreStats {
        self.lock().stats.clone()
    }
}

impl MemoryStore {
    /// [`Store::propose`], synchronously: `Err` when the proposal could not run at all
    /// (unreachable, an undecodable value among the keys it reads, conflicts beyond
    /// [`CONFLICT_RETRIES_MAX`]); nothing was written then.
    pub fn propose_checked(&self, proposal: Proposal) -> Result<ProposalOutcome, StoreError> {
        #[cfg(feature = "testing")]
        let fault = self.lock().faults.pop_front();
        #[cfg(not(feature = "testing"))]
        let fault: Injected = None;
        #[cfg(feature = "testing")]
        if let Some(answer) = Fault::answer_before_running(fault) {
            return answer;
        }
        let name = action_name(&proposal);
        for attempt in 0..CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                *self.lock().stats.retries.entry(name.clone()).or_default() += 1;
            }
            let transaction = self.begin_transaction()?;
            match self.commit_attempt(transaction, &proposal, fault) {
                Attempt::Committed(commit, _revision) => return Ok(answer(*commit, fault)),
                Attempt::Conflict => continue,
                Attempt::Done(Ok(outcome)) => return Ok(outcome),
                Attempt::Done(Err(error)) => return Err(error),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} conflicted {CONFLICT_RETRIES_MAX} times",
            proposal.action
        )))
    }
}

/// The keys a commit's transaction validates at commit: every key it read.
#[cfg(not(feature = "testing"))]
fn validated(commit: &Commit, _view: &State, _fault: Injected) -> Vec<StoreKey> {
    commit
        .reads
        .iter()
        .map(|k| StoreKey::Registry(*k))
        .chain(commit.meta_reads.iter().map(|k| StoreKey::Meta(*k)))
        .collect()
}

/// The keys a commit's transaction validates at commit: every key it read, or, for the broken
/// store of [`Fault::ValidatesOnlyWrites`], only the registry keys it also writes.
#[cfg(feature = "testing")]
fn validated(commit: &Commit, view: &State, fault: Injected) -> Vec<StoreKey> {
    let reads_less = fault == Some(Fault::ValidatesOnlyWrites);
    let written: BTreeSet<Key> = if reads_less {
        commit.delta.keys(view).into_iter().collect()
    } else {
        BTreeSet::new()
    };
    commit
        .reads
        .iter()
        .filter(|k| !reads_less || written.contains(k))
        .map(|k| StoreKey::Registry(*k))
        .chain(commit.meta_reads.iter().map(|k| StoreKey::Meta(*k)))
        .collect()
}

/// What the proposer of a committed transaction is told: its effects.
#[cfg(not(feature = "testing"))]
fn answer(commit: Commit, _fault: Injected) -> ProposalOutcome {
    ProposalOutcome::Committed {
        effects: commit.effects,
    }
}

/// What the proposer of a committed transaction is told: its effects, or `Unknown` when the
/// injected fault hides the outcome (`UnknownAfterCommit`; `ApplyTwice` on a first commit, so
/// that the proposer retries).
#[cfg(feature = "testing")]
fn answer(commit: Commit, fault: Injected) -> ProposalOutcome {
    if fault == Some(Fault::ApplyTwice) && !commit.duplicate {
        return ProposalOutcome::Unknown;
    }
    match fault {
        Some(Fault::UnknownAfterCommit) => ProposalOutcome::Unknown,
        _ => ProposalOutcome::Committed {
            effects: commit.effects,
        },
    }
}
