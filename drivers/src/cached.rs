//! A store on a registry cache ([`crate::cache`]): what the etcd and FoundationDB stores share
//! beyond the key layout. A proposal runs `membership_core::execute` on the cache's view (no read
//! of the store) and the engine commits its plan only if no key the execution read changed since
//! the view's revision ([`Engine::commit`]: etcd compares, FoundationDB checks read conflicts);
//! a conflict waits for the cache to hold the commit it met and runs again. A refusal commits
//! nothing, so it is answered only from a cache confirmed current. Snapshots are the cache once
//! confirmed ([`confirm`]), labelled with the instant the confirming read was sent.
//!
//! Everything here is engine-independent; an engine supplies its cost model, the read that
//! finds its latest commit, and its two commits (a plan, a slot claim).

use crate::cache::{Cache, View};
#[cfg(feature = "testing")]
use crate::fault::Fault;
use crate::keys::meta_key_name;
use crate::kv::{plan_fitting, Plan, Planned};
use crate::store::{action_name, Snapshot, StoreError, StoreStats};
use membership_core::{MetaKey, NodeId, Proposal, ProposalOutcome, Slot, NODES_MAX};
#[cfg(feature = "testing")]
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An engine's bounds on one proposal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// How many times an attempt that conflicted runs again.
    pub(crate) conflict_retries_max: u32,
    /// How many times an attempt that failed (unavailable) runs again.
    pub(crate) unavailable_retries_max: u32,
    /// The first retry's backoff after a failure, in ms (doubling).
    pub(crate) backoff_ms: u64,
    /// The most moves (or placements) of one batch.
    pub(crate) moves_max: usize,
    /// How long a proposal or snapshot waits for the cache to catch up, in ms.
    pub(crate) catch_up_ms: u64,
}

/// The latest commit, as a linearizable read found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Latest {
    /// The revision of the latest commit on the store (0: none).
    pub(crate) commit: i64,
    /// The revision the read was served at (at least `commit`; no commit lies between them).
    pub(crate) read_at: i64,
}

/// What an engine's commit came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    /// Committed at this revision.
    At(i64),
    /// A key the commit read changed after the view's revision: the revision of the latest
    /// commit, when the engine's answer says it (etcd), else `None` (FoundationDB).
    Conflict(Option<i64>),
    /// The view is too old for the engine to check (FoundationDB keeps 5 s of history): the
    /// cache is confirmed again, and the attempt runs again.
    #[cfg_attr(
        not(feature = "fdb"),
        allow(dead_code, reason = "etcd checks any revision it has not compacted")
    )]
    Stale,
}

/// What every store handle on a cache keeps.
pub(crate) struct Shared {
    /// The registry, fed by the engine's change feed.
    pub(crate) cache: Arc<Cache>,
    /// The engine's bounds.
    bounds: Bounds,
    /// Whether commits record the committed log.
    record_log: bool,
    /// The handle's statistics.
    pub(crate) stats: Mutex<StoreStats>,
    /// Faults queued for the next proposals.
    #[cfg(feature = "testing")]
    pub(crate) faults: Mutex<VecDeque<Fault>>,
    /// Whether a confirmation read is in flight (one at a time; concurrent snapshots share it).
    confirm_in_flight: AtomicBool,
    /// Bumped whenever a confirmation read ends (answered, failed or dropped): what the
    /// snapshots that wait for it watch.
    confirm_ended: tokio::sync::watch::Sender<u64>,
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
}

impl Shared {
    /// The state of a new handle on `cache`, within the engine's `bounds`, recording the
    /// committed log or not.
    pub(crate) fn new(cache: Arc<Cache>, bounds: Bounds, record_log: bool) -> Shared {
        Shared {
            cache,
            bounds,
            record_log,
            stats: Mutex::new(StoreStats::default()),
            #[cfg(feature = "testing")]
            faults: Mutex::new(VecDeque::new()),
            confirm_in_flight: AtomicBool::new(false),
            confirm_ended: tokio::sync::watch::channel(0).0,
            written: AtomicI64::new(0),
            written_by: (0..=NODES_MAX).map(|_| AtomicI64::new(0)).collect(),
            written_raw: AtomicI64::new(0),
        }
    }

    /// The statistics, locked.
    pub(crate) fn stats(&self) -> MutexGuard<'_, StoreStats> {
        lock(&self.stats)
    }

    /// Notes a write of this handle that is no node's, committed at `revision` (see
    /// `written_raw`).
    pub(crate) fn wrote(&self, revision: i64) {
        self.written.fetch_max(revision, Ordering::AcqRel);
        self.written_raw.fetch_max(revision, Ordering::AcqRel);
        debug_assert!(self.written.load(Ordering::Acquire) >= revision);
    }

    /// Notes a write of `node`'s (a commit of its proposal, its claim) at `revision` (see
    /// `written_by`).
    pub(crate) fn wrote_for(&self, node: NodeId, revision: i64) {
        self.written.fetch_max(revision, Ordering::AcqRel);
        match self.written_by.get(usize::from(node.0)) {
            Some(by) => {
                by.fetch_max(revision, Ordering::AcqRel);
            }
            // Not a node id a registry can hold (claims refuse it): every write counts.
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

    /// The statistics with the cache's load count.
    pub(crate) fn snapshot_stats(&self) -> StoreStats {
        let mut stats = self.stats().clone();
        stats.cache_loads = self.cache.reloads();
        stats
    }

    /// Queues a fault for the next proposals.
    #[cfg(feature = "testing")]
    pub(crate) fn inject(&self, fault: Fault) {
        Fault::enqueue(&mut lock(&self.faults), fault);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An engine under a cached store.
pub(crate) trait Engine: Sync {
    /// The handle's shared state.
    fn shared(&self) -> &Shared;

    /// The operations and bytes `plan`'s commit takes on a view at `revision`.
    fn cost(&self, plan: &Plan, revision: i64) -> (usize, usize);

    /// Whether a commit of `ops` operations and `bytes` bytes fits the engine.
    fn fits(&self, ops: usize, bytes: usize) -> bool;

    /// The latest commit, by a linearizable read (counted in `confirm_reads`).
    fn latest_commit(&self) -> impl Future<Output = Result<Latest, StoreError>> + Send;

    /// Commits `plan`, computed on the view at `revision`, if no key of `plan.reads` changed
    /// since. `Err(Unavailable)` after a request that may have applied sets `uncertain`.
    fn commit(
        &self,
        plan: &Plan,
        revision: i64,
        action: &str,
        uncertain: &mut bool,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Writes `slot` for `node` and forgets the node's proposal records, if the slot did not
    /// change since `view`'s revision.
    fn commit_claim(
        &self,
        view: &View,
        node: NodeId,
        slot: &Slot,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;
}

/// What one commit attempt came to.
enum Attempt {
    Done(ProposalOutcome),
    Conflict,
    /// Run again on a cache confirmed current (a refusal found on one not confirmed yet).
    Again,
}

/// Waits (at most the engine's catch-up time) until the cache has applied `revision`.
pub(crate) async fn caught_up<E: Engine>(engine: &E, revision: i64) -> Result<(), StoreError> {
    let cache = &engine.shared().cache;
    let timeout = Duration::from_millis(engine.shared().bounds.catch_up_ms);
    if cache.wait_for(revision, timeout).await {
        debug_assert!(cache.revision() >= revision);
        return Ok(());
    }
    Err(match cache.view() {
        Err(error) => error,
        Ok(view) => StoreError::Unavailable(format!(
            "the registry cache is at revision {}, behind the store's {revision}",
            view.revision
        )),
    })
}

/// One linearizable read of the latest commit, sent now; then a wait for the cache to hold it.
/// Returns when the read was sent (`clock::boottime_ms`).
async fn catch_up_latest<E: Engine>(engine: &E) -> Result<u64, StoreError> {
    let cache = &engine.shared().cache;
    let sent = crate::clock::boottime_ms();
    let latest = engine.latest_commit().await?;
    debug_assert!(latest.read_at >= latest.commit);
    caught_up(engine, latest.commit).await?;
    // No commit lies between the latest and the read: the cache holds the store as it was then.
    let completed = cache.complete_confirmation(sent, latest.commit, latest.read_at);
    debug_assert!(completed, "the cache caught up with the latest commit");
    Ok(sent)
}

/// How many confirmation reads of other snapshots one snapshot waits for before it sends its
/// own. The first it waits for may have been sent before it asked; the next is sent after and
/// serves it, unless it failed.
pub(crate) const CONFIRM_WAITS_MAX: u32 = 4;

/// The confirmation read in flight, for as long as it lives: ending it (answered, failed, or
/// dropped with its future) lets the next one start and wakes the snapshots that wait.
struct InFlight<'s>(&'s Shared);

impl<'s> InFlight<'s> {
    /// Starts the confirmation read, unless one is in flight.
    fn start(shared: &'s Shared) -> Option<InFlight<'s>> {
        let started = shared
            .confirm_in_flight
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        // Only the flight's owner clears the flag: set for as long as this one owns it.
        debug_assert!(!started || shared.confirm_in_flight.load(Ordering::Acquire));
        // `then`, not `then_some`: an `InFlight` built and dropped here would end the read in
        // flight (its drop clears the flag).
        started.then(|| InFlight(shared))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        debug_assert!(self.0.confirm_in_flight.load(Ordering::Acquire));
        self.0.confirm_in_flight.store(false, Ordering::Release);
        self.0
            .confirm_ended
            .send_modify(|ended| *ended = ended.wrapping_add(1));
    }
}

/// Makes sure the cache holds every commit made before a recent instant, and returns that
/// instant (the module `cache` argues it). Served on the latest confirmation if its read was
/// sent after this call began, or if it is at most [`crate::CACHE_CONFIRM_REUSE_MS`] old
/// (`Cache::confirmation_for`); otherwise one small linearizable read of the latest commit,
/// then a wait (at most the engine's catch-up time) for the feed to deliver it. One such read
/// is in flight at a time: a snapshot that finds one waits for it to end instead (at most
/// [`CONFIRM_WAITS_MAX`] times), so the snapshots asked meanwhile share the next.
pub(crate) async fn confirm<E: Engine>(engine: &E) -> Result<u64, StoreError> {
    let shared = engine.shared();
    let asked = crate::clock::boottime_ms();
    caught_up(engine, shared.written.load(Ordering::Acquire)).await?;
    for _ in 0..CONFIRM_WAITS_MAX {
        // Subscribed before looking: a read that ends after the look wakes this wait.
        let mut ended = shared.confirm_ended.subscribe();
        let now = crate::clock::boottime_ms();
        if let Some(sent) = shared.cache.confirmation_for(asked, now) {
            debug_assert!(sent >= asked || now - sent <= crate::CACHE_CONFIRM_REUSE_MS);
            return Ok(sent);
        }
        if let Some(flight) = InFlight::start(shared) {
            let sent = catch_up_latest(engine).await;
            drop(flight);
            return sent;
        }
        // The sender lives as long as `shared`: `changed` cannot fail while this runs.
        let _ = ended.changed().await;
    }
    // Every read waited for failed or began before the ask: a read of its own.
    let sent = catch_up_latest(engine).await?;
    debug_assert!(sent >= asked);
    Ok(sent)
}

/// The snapshot of the confirmed cache.
pub(crate) async fn snapshot<E: Engine>(engine: &E) -> Result<Snapshot, StoreError> {
    let confirmed_at = confirm(engine).await?;
    let snapshot = engine.shared().cache.view()?.snapshot(confirmed_at)?;
    debug_assert!(confirmed_at <= crate::clock::boottime_ms());
    Ok(snapshot)
}

/// After a conflict: waits for the cache to hold the commit the engine met (or the latest one,
/// when the engine does not say which).
async fn after_conflict<E: Engine>(engine: &E, latest: Option<i64>) -> Result<(), StoreError> {
    match latest {
        Some(revision) => caught_up(engine, revision).await,
        None => catch_up_latest(engine).await.map(|_| ()),
    }
}

/// Claims `node`'s slot: the next incarnation, committed if the slot did not change since the
/// cache's view (else the cache catches up and the claim runs again).
pub(crate) async fn claim<E: Engine>(
    engine: &E,
    node: NodeId,
    address: &str,
) -> Result<Slot, StoreError> {
    let slot_name = meta_key_name(&MetaKey::Slot(node));
    confirm(engine).await?;
    let retries_max = engine.shared().bounds.conflict_retries_max;
    for _ in 0..retries_max {
        let view = engine.shared().cache.view()?;
        if view.loaded.state.node(node).is_none() {
            return Err(StoreError::UnknownNode { node });
        }
        if let Some(error) = view.poisoned_among([&slot_name]) {
            return Err(error.into());
        }
        let slot = view.loaded.meta.claim(node, address);
        debug_assert!(view
            .loaded
            .meta
            .slots
            .get(&node)
            .is_none_or(|s| s.incarnation < slot.incarnation));
        match engine.commit_claim(&view, node, &slot).await? {
            Committed::At(at) => {
                engine.shared().wrote_for(node, at);
                let _ = caught_up(engine, at).await;
                return Ok(slot);
            }
            Committed::Conflict(latest) => after_conflict(engine, latest).await?,
            Committed::Stale => after_conflict(engine, None).await?,
        }
    }
    Err(StoreError::Unavailable(format!(
        "claiming {node} conflicted {retries_max} times"
    )))
}

/// One attempt on the cache: execute, commit if nothing the execution read changed. `Err` when
/// it could not run.
async fn attempt<E: Engine>(
    engine: &E,
    proposal: &Proposal,
    uncertain: &mut bool,
    confirmed: &mut bool,
) -> Result<Attempt, StoreError> {
    let shared = engine.shared();
    // Read-your-writes of the proposer through this handle (its claim, its latest commit; an
    // import): a cache without them would only make this attempt conflict.
    caught_up(engine, shared.written_for(proposal.id.node)).await?;
    let view = shared.cache.view()?;
    let revision = view.revision;
    let name = action_name(proposal);
    let fits = |plan: &Plan| {
        let (ops, bytes) = engine.cost(plan, revision);
        if engine.fits(ops, bytes) {
            Ok(())
        } else {
            Err((ops as u64, bytes as u64))
        }
    };
    let planned = plan_fitting(
        &view.loaded,
        proposal,
        engine.shared().record_log,
        engine.shared().bounds.moves_max,
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
                confirm(engine).await?;
                *confirmed = true;
                return Ok(Attempt::Again);
            }
            *shared.stats().refusals.entry(name).or_default() += 1;
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
    let (ops, bytes) = engine.cost(&plan, revision);
    debug_assert!(engine.fits(ops, bytes));
    match engine.commit(&plan, revision, &name, uncertain).await? {
        Committed::At(committed_at) => {
            debug_assert!(committed_at > revision);
            {
                let mut stats = shared.stats();
                *stats.commits.entry(name.clone()).or_default() += 1;
                stats.largest_write_bytes = stats.largest_write_bytes.max(bytes as u64);
                stats.largest_write_ops = stats.largest_write_ops.max(ops as u64);
                let read = stats.keys_read_max.entry(name).or_default();
                *read = (*read).max(plan.reads.len() as u64);
            }
            // The proposer's next proposal waits for a cache that holds this commit (its own
            // keys then compare equal); its answer does not wait for the feed.
            shared.wrote_for(proposal.id.node, committed_at);
            Ok(Attempt::Done(ProposalOutcome::Committed {
                effects: commit.effects,
            }))
        }
        Committed::Conflict(latest) => {
            // Another commit changed a key this one read: wait for the cache to hold it, then
            // run again.
            *shared.stats().conflicts.entry(name).or_default() += 1;
            after_conflict(engine, latest).await?;
            Ok(Attempt::Conflict)
        }
        Committed::Stale => {
            after_conflict(engine, None).await?;
            Ok(Attempt::Conflict)
        }
    }
}

/// Runs `proposal` on the engine: attempts until one commits or is refused, conflicts at most
/// [`Bounds::conflict_retries_max`] times, failures at most
/// [`Bounds::unavailable_retries_max`] times (with backoff). A failed commit request may have
/// applied: the next attempt runs on a cache confirmed current, which holds it if it did, and
/// `execute` recognises it by its id; when the failures run out after such a request, the
/// outcome is `Unknown`.
pub(crate) async fn propose<E: Engine>(
    engine: &E,
    proposal: Proposal,
) -> Result<ProposalOutcome, StoreError> {
    let shared = engine.shared();
    #[cfg(feature = "testing")]
    let fault = lock(&shared.faults).pop_front();
    #[cfg(feature = "testing")]
    if let Some(answer) = Fault::answer_before_running(fault) {
        shared.stats().unknown_outcomes += u64::from(answer == Ok(ProposalOutcome::Unknown));
        return answer;
    }
    let bounds = engine.shared().bounds;
    let name = action_name(&proposal);
    let mut uncertain = false;
    let mut confirmed = false;
    let mut failures = 0;
    let mut backoff_ms = bounds.backoff_ms;
    let mut again = false;
    for attempt_number in 0..bounds.conflict_retries_max {
        if attempt_number > 0 && !std::mem::take(&mut again) {
            *shared.stats().retries.entry(name.clone()).or_default() += 1;
        }
        match attempt(engine, &proposal, &mut uncertain, &mut confirmed).await {
            Ok(Attempt::Done(outcome)) => {
                #[cfg(feature = "testing")]
                let outcome = match (fault, outcome) {
                    (Some(Fault::UnknownAfterCommit), ProposalOutcome::Committed { .. }) => {
                        ProposalOutcome::Unknown
                    }
                    (_, outcome) => outcome,
                };
                let mut stats = shared.stats();
                stats.uncertain_resolved += u64::from(uncertain);
                stats.unknown_outcomes += u64::from(outcome == ProposalOutcome::Unknown);
                return Ok(outcome);
            }
            Ok(Attempt::Conflict) => continue,
            Ok(Attempt::Again) => again = true,
            Err(StoreError::Unavailable(why)) if failures < bounds.unavailable_retries_max => {
                // A failed commit may have applied: the next attempt runs on a cache confirmed
                // current, which holds it if it did, and recognises it by its id (one that
                // applies later still fails the next commit's check of its proposal record).
                tracing::debug!(%why, "store attempt failed: retrying");
                failures += 1;
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms *= 2;
                if let Err(error) = confirm(engine).await {
                    tracing::debug!(%error, "store confirmation failed");
                }
            }
            Err(StoreError::Unavailable(_)) if uncertain => {
                shared.stats().unknown_outcomes += 1;
                return Ok(ProposalOutcome::Unknown);
            }
            Err(error) => return Err(error),
        }
    }
    Err(StoreError::Unavailable(format!(
        "{} conflicted {} times",
        proposal.action, bounds.conflict_retries_max
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CACHE_CONFIRM_REUSE_MS;
    use std::sync::atomic::AtomicU64;

    /// An engine whose only request is the confirmation read: it takes `read_ms` and finds the
    /// cache's own revision the latest commit. The first read fails when `fail_first`.
    struct SlowReads {
        shared: Shared,
        read_ms: u64,
        reads: AtomicU64,
        fail_first: bool,
    }

    impl SlowReads {
        fn new(read_ms: u64, fail_first: bool) -> Arc<SlowReads> {
            let bounds = Bounds {
                conflict_retries_max: 1,
                unavailable_retries_max: 0,
                backoff_ms: 1,
                moves_max: 1,
                catch_up_ms: 1_000,
            };
            Arc::new(SlowReads {
                shared: Shared::new(Arc::new(Cache::new()), bounds, false),
                read_ms,
                reads: AtomicU64::new(0),
                fail_first,
            })
        }
    }

    impl Engine for SlowReads {
        fn shared(&self) -> &Shared {
            &self.shared
        }

        fn cost(&self, _: &Plan, _: i64) -> (usize, usize) {
            (0, 0)
        }

        fn fits(&self, _: usize, _: usize) -> bool {
            true
        }

        async fn latest_commit(&self) -> Result<Latest, StoreError> {
            let read = self.reads.fetch_add(1, Ordering::AcqRel);
            tokio::time::sleep(Duration::from_millis(self.read_ms)).await;
            if self.fail_first && read == 0 {
                return Err(StoreError::Unavailable("the first read fails".into()));
            }
            let revision = self.shared.cache.revision();
            Ok(Latest {
                commit: revision,
                read_at: revision,
            })
        }

        async fn commit(
            &self,
            _: &Plan,
            _: i64,
            _: &str,
            _: &mut bool,
        ) -> Result<Committed, StoreError> {
            Err(StoreError::Unavailable("no commit in this test".into()))
        }

        async fn commit_claim(
            &self,
            _: &View,
            _: NodeId,
            _: &Slot,
        ) -> Result<Committed, StoreError> {
            Err(StoreError::Unavailable("no commit in this test".into()))
        }
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// `waves` groups of `per_wave` snapshots, the groups `gap_ms` apart, each asking for a
    /// confirmation (`abort_first`: the first snapshot's task is aborted during its read). Returns
    /// each snapshot's (instant it asked, what `confirm` answered), and the reads sent.
    async fn confirmations(
        engine: Arc<SlowReads>,
        waves: u32,
        per_wave: u32,
        gap_ms: u64,
        abort_first: bool,
    ) -> (Vec<(u64, Result<u64, StoreError>)>, u64) {
        let mut tasks = Vec::new();
        for wave in 0..waves {
            if wave > 0 {
                tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            }
            for _ in 0..per_wave {
                let engine = engine.clone();
                let asked = crate::clock::boottime_ms();
                tasks.push((
                    asked,
                    tokio::spawn(async move { confirm(engine.as_ref()).await }),
                ));
            }
            tokio::task::yield_now().await;
        }
        if abort_first {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tasks[0].1.abort();
        }
        let mut answers = Vec::new();
        for (asked, task) in tasks {
            match task.await {
                Ok(answer) => answers.push((asked, answer)),
                Err(e) => assert!(e.is_cancelled(), "a confirmation panicked: {e}"),
            }
        }
        (answers, engine.reads.load(Ordering::Acquire))
    }

    /// Every answer is a confirmation sent at or after its snapshot asked (the reads here take
    /// longer than the reuse window, so none is served young): the age rule holds.
    fn sent_after_asking(answers: &[(u64, Result<u64, StoreError>)]) {
        for (asked, answer) in answers {
            if let Ok(sent) = answer {
                assert!(
                    sent >= asked,
                    "a snapshot asked at {asked} ms was served a confirmation sent at {sent} ms"
                );
            }
        }
    }

    #[test]
    fn snapshots_share_one_read_even_when_it_outlasts_the_reuse_window() {
        // A read of 3 reuse windows: before, each waiting snapshot found the previous read too
        // old once it had its turn, and sent its own (32 snapshots, 32 reads, one at a time).
        let engine = SlowReads::new(3 * CACHE_CONFIRM_REUSE_MS, false);
        let (answers, reads) = run(confirmations(engine, 1, 32, 0, false));
        assert_eq!(answers.len(), 32);
        assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
        sent_after_asking(&answers);
        // One read, or two if the clock's millisecond turned between the first ask and the
        // read's send (the snapshots that asked after it wait for the next).
        assert!(
            reads <= 2,
            "32 snapshots asked at once sent {reads} confirmation reads, not 1 or 2"
        );
    }

    #[test]
    fn snapshots_asked_during_a_read_share_the_next_one() {
        let engine = SlowReads::new(3 * CACHE_CONFIRM_REUSE_MS, false);
        let (answers, reads) = run(confirmations(engine, 3, 16, CACHE_CONFIRM_REUSE_MS, false));
        assert_eq!(answers.len(), 48);
        assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
        sent_after_asking(&answers);
        // Wave 1 shares the first read; waves 2 and 3 ask while it is in flight and share the
        // second (a turn of the millisecond may add one).
        assert!(
            (2..=3).contains(&reads),
            "3 waves of 16 snapshots, the later two during the first read, sent {reads} reads"
        );
    }

    #[test]
    fn a_failed_read_answers_its_sender_and_the_waiting_snapshots_share_the_next() {
        let engine = SlowReads::new(3 * CACHE_CONFIRM_REUSE_MS, true);
        let (answers, reads) = run(confirmations(engine, 1, 16, 0, false));
        let failed = answers.iter().filter(|(_, a)| a.is_err()).count();
        assert_eq!(
            failed, 1,
            "only the failed read's sender fails: {answers:?}"
        );
        sent_after_asking(&answers);
        assert!(
            (2..=3).contains(&reads),
            "16 snapshots, the first read failed: {reads} reads"
        );
    }

    #[test]
    fn a_read_dropped_with_its_snapshot_lets_the_waiting_ones_read_again() {
        // The first snapshot's task is aborted during its read: its flight ends with it (else
        // every later snapshot would wait for a read that never ends).
        let engine = SlowReads::new(3 * CACHE_CONFIRM_REUSE_MS, false);
        let (answers, reads) = run(confirmations(engine.clone(), 1, 16, 0, true));
        assert_eq!(answers.len(), 15, "the other 15 are answered");
        assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
        sent_after_asking(&answers);
        assert!((2..=3).contains(&reads), "{reads} reads");
        assert!(!engine.shared.confirm_in_flight.load(Ordering::Acquire));
    }
}
