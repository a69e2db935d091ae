//! A registry cache fed by a store's change feed (etcd's watch, FoundationDB's versionstamped
//! feed, `crate::feed`): one consistent read of the whole
//! registry, then every committed change applied in commit order ([`crate::kv::apply_changes`]).
//! A store's transactions run on the cache and compare what they read at commit; its snapshots
//! are the cache once it has been confirmed current.
//!
//! **How current a cache is.** The cache knows the revision it is complete up to (the read's,
//! then each applied commit's). It does not know by itself whether the store holds newer
//! commits. Every commit on the store also writes one marker key (`version`), so a linearizable
//! read of that key, sent at instant `t`, returns the revision `V` of the latest commit before
//! `t`. Once the cache has applied `V`, it holds every commit made before `t`: the cache is
//! *confirmed at `t`*. A snapshot handed to a node is labelled with the instant of its latest
//! confirmation ([`crate::Snapshot::confirmed_at`]), and the node measures the snapshot's age
//! from there, never from when it asked. A confirmation is reused for at most
//! [`CACHE_CONFIRM_REUSE_MS`], so that many nodes in one process share one small read instead
//! of each reading the registry after every commit. One confirmation read is in flight at a
//! time per cache; a snapshot asked for while it is in flight waits for it and is served on it
//! if it is still young enough, or else on the next read, which is sent after the ask and so
//! serves it however long it takes (`crate::cached::confirm`). Before, the readers took the
//! read in turn, each finding the previous one too old once it had waited its turn: at 100
//! nodes on etcd, a read took about 15 ms and a snapshot waited 130 to 250 ms.
//!
//! **Gaps.** The change feed can break (etcd compacted the revisions the watch needed, or
//! FoundationDB's feed was trimmed past the reader's position; the connection was lost for
//! longer than the history kept; a change that does not fit the registry). Then the feed's owner loads the whole registry again, exactly once per gap, and
//! counts it ([`Cache::reloads`]).

use crate::codec::DecodeError;
use crate::kv::{apply_changes, Change, Loaded, Poisoned};
use crate::store::{Snapshot, StoreError};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How long one confirmation that the cache is current serves further snapshots, in ms. Small
/// beside any lease (the default lease is 300 ms): a snapshot's age counts from its
/// confirmation, so reuse costs a node at most this much of its serving time.
pub const CACHE_CONFIRM_REUSE_MS: u64 = 20;

/// The most changes of one commit the cache applies at once (etcd's transaction limit is 128
/// writes, plus the commit marker: any change feed batch beyond this is split by the caller).
pub const CACHE_CHANGES_PER_COMMIT_MAX: usize = 4_096;

/// What a cache holds.
#[derive(Default)]
struct Inner {
    /// The registry and metadata with each key's version (None: not loaded yet).
    loaded: Option<Loaded>,
    /// The revision the cache is complete up to.
    revision: i64,
    /// Keys whose latest value cannot be decoded.
    poisoned: Poisoned,
    /// Why the cache cannot be used (a load failed, or a change did not fit): reads fail with
    /// it until the next load succeeds.
    broken: Option<StoreError>,
    /// The latest confirmation: when its read was sent (`clock::boottime_ms`), and the revision
    /// it required.
    confirmed: Option<(u64, i64)>,
    /// Whole-registry loads so far (the first included).
    reloads: u64,
}

/// A consistent view of the cache: the registry at one revision, and the keys that could not
/// be decoded.
#[derive(Clone, Debug)]
pub(crate) struct View {
    /// The registry, metadata and versions.
    pub(crate) loaded: Loaded,
    /// The revision it is complete up to.
    pub(crate) revision: i64,
    /// Keys whose stored value cannot be decoded (they hold their previous value here).
    pub(crate) poisoned: Poisoned,
}

impl View {
    /// The error of the first undecodable key among `keys`, if any.
    pub(crate) fn poisoned_among<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k String>,
    ) -> Option<DecodeError> {
        if self.poisoned.is_empty() {
            return None;
        }
        keys.into_iter().find_map(|k| self.poisoned.get(k)).cloned()
    }

    /// The snapshot of this view, confirmed current at `confirmed_at` (the instant its
    /// confirming read was sent); an error when a key of the view cannot be decoded.
    pub(crate) fn snapshot(self, confirmed_at: u64) -> Result<Snapshot, StoreError> {
        if let Some(error) = self.poisoned_among(self.poisoned.keys()) {
            return Err(error.into());
        }
        let revision = u64::try_from(self.revision).unwrap_or(0);
        let mut snapshot = Snapshot::of(self.loaded.state, &self.loaded.meta, revision);
        snapshot.confirmed_at = Some(confirmed_at);
        debug_assert_eq!(snapshot.revision, revision);
        Ok(snapshot)
    }
}

/// A registry cache shared by every node of a process on one store handle.
pub(crate) struct Cache {
    inner: Mutex<Inner>,
    /// The revision the cache is complete up to, for waiters.
    complete: watch::Sender<i64>,
}

impl Cache {
    /// An empty cache (not loaded).
    pub(crate) fn new() -> Cache {
        let (complete, _) = watch::channel(0);
        Cache {
            inner: Mutex::new(Inner::default()),
            complete,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the cache with a whole-registry load read at `revision` (or its failure).
    pub(crate) fn replace(&self, load: Result<(Loaded, Poisoned), StoreError>, revision: i64) {
        let mut inner = self.lock();
        inner.reloads += 1;
        inner.revision = inner.revision.max(revision);
        match load {
            Ok((loaded, poisoned)) => {
                inner.loaded = Some(loaded);
                inner.poisoned = poisoned;
                inner.broken = None;
            }
            Err(error) => inner.broken = Some(error),
        }
        let complete = inner.revision;
        drop(inner);
        self.complete.send_replace(complete);
        debug_assert!(*self.complete.borrow() >= revision);
    }

    /// Applies one commit's changes at `revision` (above the cache's). `Err` means the cache
    /// must be loaded again (it is marked broken until then).
    pub(crate) fn apply(&self, revision: i64, changes: &[Change]) -> Result<(), StoreError> {
        debug_assert!(changes.len() <= CACHE_CHANGES_PER_COMMIT_MAX);
        let mut guard = self.lock();
        let inner = &mut *guard;
        if revision < inner.revision {
            return Ok(()); // already loaded (a watch that restarted before the load's revision)
        }
        let result = match (&inner.broken, &inner.loaded) {
            (Some(error), _) => Err(error.clone()),
            (None, None) => Err(StoreError::Unavailable("the cache is not loaded".into())),
            (None, Some(loaded)) => apply_changes(loaded, &mut inner.poisoned, changes),
        };
        match result {
            Ok(next) => {
                inner.loaded = Some(next);
                inner.revision = revision;
                drop(guard);
                self.complete.send_replace(revision);
                Ok(())
            }
            Err(error) => {
                inner.broken = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Records that the store holds no commit after the cache's revision up to `revision` (a
    /// read at `revision` found the latest commit at or below the cache's): the cache is complete
    /// up to `revision`. A cache already further is left as it is.
    pub(crate) fn advance(&self, revision: i64) {
        let mut inner = self.lock();
        if revision <= inner.revision || inner.loaded.is_none() || inner.broken.is_some() {
            return;
        }
        inner.revision = revision;
        drop(inner);
        self.complete.send_replace(revision);
        debug_assert!(*self.complete.borrow() >= revision);
    }

    /// Whether the cache is loaded and usable.
    pub(crate) fn is_broken(&self) -> bool {
        let inner = self.lock();
        inner.broken.is_some() || inner.loaded.is_none()
    }

    /// The revision the cache is complete up to.
    pub(crate) fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// Whole-registry loads so far.
    pub(crate) fn reloads(&self) -> u64 {
        self.lock().reloads
    }

    /// The cache's current view, or why it cannot be used.
    pub(crate) fn view(&self) -> Result<View, StoreError> {
        let inner = self.lock();
        if let Some(error) = &inner.broken {
            return Err(error.clone());
        }
        let loaded = inner
            .loaded
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the registry cache is not loaded".into()))?;
        Ok(View {
            loaded,
            revision: inner.revision,
            poisoned: inner.poisoned.clone(),
        })
    }

    /// Waits until the cache is complete up to `revision`; false when `timeout` passed first.
    pub(crate) async fn wait_for(&self, revision: i64, timeout: Duration) -> bool {
        let mut complete = self.complete.subscribe();
        let reached = tokio::time::timeout(timeout, complete.wait_for(|&r| r >= revision)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// The latest confirmation if, at `now_ms` (`clock::boottime_ms` in production, the
    /// process's clock in the simulation), it is at most [`CACHE_CONFIRM_REUSE_MS`] old and the
    /// cache has applied what it required: the instant its read was sent.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn fresh_confirmation(&self, now_ms: u64) -> Option<u64> {
        let answer = self.confirmation_for(now_ms, now_ms);
        debug_assert!(
            answer.is_none_or(|sent| now_ms.saturating_sub(sent) <= CACHE_CONFIRM_REUSE_MS)
        );
        answer
    }

    /// The latest confirmation that may serve a snapshot asked for at `asked_ms`, now `now_ms`
    /// (same clock), if the cache has applied what it required: the instant its read was sent.
    /// Either its read was sent at or after `asked_ms` (it is as good as a read of the asker's
    /// own, however long it took), or it is at most [`CACHE_CONFIRM_REUSE_MS`] old now. A
    /// snapshot served on it is labelled with that send either way (its age counts from there).
    pub(crate) fn confirmation_for(&self, asked_ms: u64, now_ms: u64) -> Option<u64> {
        debug_assert!(asked_ms <= now_ms);
        let inner = self.lock();
        let (sent_ms, required) = inner.confirmed?;
        let fresh = now_ms.saturating_sub(sent_ms) <= CACHE_CONFIRM_REUSE_MS;
        let usable = (sent_ms >= asked_ms || fresh) && inner.revision >= required;
        let answer = (usable && inner.broken.is_none()).then_some(sent_ms);
        debug_assert!(answer.is_none_or(
            |sent| sent >= asked_ms || now_ms.saturating_sub(sent) <= CACHE_CONFIRM_REUSE_MS
        ));
        answer
    }

    /// Completes a confirmation whose read, sent at `sent_ms`, found `commit` the latest commit
    /// as of `read_at` (no commit lies between them), once the cache has applied `commit`: the
    /// cache then holds every commit made before `sent_ms` and is complete up to `read_at`.
    /// False (and nothing recorded) while the cache is behind `commit`: wait for the feed.
    pub(crate) fn complete_confirmation(&self, sent_ms: u64, commit: i64, read_at: i64) -> bool {
        debug_assert!(read_at >= commit);
        if self.revision() < commit {
            return false;
        }
        self.confirmed(sent_ms, commit);
        self.advance(read_at);
        debug_assert!(self.revision() >= commit);
        true
    }

    /// Records a confirmation: a read sent at `sent` found `required` the latest commit, and
    /// the cache has applied it.
    pub(crate) fn confirmed(&self, sent_ms: u64, required: i64) {
        let mut inner = self.lock();
        debug_assert!(inner.revision >= required);
        if inner.confirmed.is_none_or(|(s, _)| s <= sent_ms) {
            inner.confirmed = Some((sent_ms, required));
        }
    }
}
