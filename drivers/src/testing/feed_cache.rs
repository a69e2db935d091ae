//! The registry cache of the etcd and FoundationDB stores (`src/cache.rs`), for the
//! simulation: a [`RegistryCache`] is that cache, with its confirmation rule, fed by a change
//! feed the simulation delivers ([`FeedSource`] computes each commit's changes from a
//! snapshot of the in-memory store, as an engine's watch would report them). The simulation
//! decides when each change arrives, when a feed breaks and when a cache loads again; the
//! cache's own code decides what it holds, when a confirmation completes and how its snapshots
//! are labelled, exactly as under a real engine.
//!
//! It carries what a snapshot carries: the registry, the node slots, the heartbeat round and
//! each node's latest heartbeat (not the records of applied proposals, which only transactions
//! read).

use crate::cache::Cache;
use crate::kv::{load_lenient, Change, Entry};
use crate::kv_testing::image;
use crate::store::{Snapshot, StoreError};
use crate::CACHE_CHANGES_PER_COMMIT_MAX;
use std::collections::BTreeMap;

/// A simulated engine's key-value image and change feed: each [`FeedSource::commit`] compares
/// the registry at a new revision with the image at the previous one and yields the keys that
/// changed.
#[derive(Clone, Debug)]
pub struct FeedSource {
    /// Every stored key: its bytes and the revision that last wrote it.
    image: BTreeMap<String, (Vec<u8>, i64)>,
    /// The revision of the image.
    revision: i64,
}

/// One commit as the change feed delivers it: its revision and every key it changed.
#[derive(Clone, Debug)]
pub struct FeedCommit {
    revision: i64,
    changes: Vec<Change>,
}

impl FeedCommit {
    /// The commit's revision.
    pub fn revision(&self) -> u64 {
        u64::try_from(self.revision).unwrap_or(0)
    }

    /// How many keys it changed.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether it changed no key.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl FeedSource {
    /// The image of the registry in `snapshot` (the engine's state at its revision).
    pub fn new(snapshot: &Snapshot) -> FeedSource {
        let revision = revision_of(snapshot.revision);
        let image: BTreeMap<String, (Vec<u8>, i64)> = image(snapshot)
            .into_iter()
            .map(|(k, v)| (k, (v, revision)))
            .collect();
        debug_assert!(!image.is_empty());
        FeedSource { image, revision }
    }

    /// The revision of the image.
    pub fn revision(&self) -> u64 {
        u64::try_from(self.revision).unwrap_or(0)
    }

    /// The changes from the image to the registry in `snapshot`, as one commit at its revision
    /// (the commits in between, if any, merged: a watch may deliver them so), or `None` when the
    /// snapshot is not newer than the image.
    pub fn commit(&mut self, snapshot: &Snapshot) -> Option<FeedCommit> {
        let revision = revision_of(snapshot.revision);
        if revision <= self.revision {
            return None;
        }
        let next = image(snapshot);
        let mut changes = Vec::new();
        for (key, value) in &next {
            if self.image.get(key).is_none_or(|(old, _)| old != value) {
                changes.push(Change {
                    key: key.clone(),
                    value: Some(value.clone()),
                    version: revision,
                });
                self.image.insert(key.clone(), (value.clone(), revision));
            }
        }
        let deleted: Vec<String> = self
            .image
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect();
        for key in deleted {
            self.image.remove(&key);
            changes.push(Change {
                key,
                value: None,
                version: revision,
            });
        }
        self.revision = revision;
        debug_assert_eq!(self.image.len(), next.len());
        Some(FeedCommit { revision, changes })
    }

    /// Every stored key, as a whole-registry read at the image's revision returns it.
    fn entries(&self) -> Vec<Entry> {
        Entry::listed(&self.image)
    }
}

/// A registry cache: the etcd and FoundationDB stores' cache (`src/cache.rs`) with its
/// confirmation rule.
pub struct RegistryCache {
    cache: Cache,
}

impl Default for RegistryCache {
    fn default() -> Self {
        RegistryCache::new()
    }
}

impl RegistryCache {
    /// An empty cache (not loaded: it answers nothing until [`RegistryCache::load`]).
    pub fn new() -> RegistryCache {
        RegistryCache {
            cache: Cache::new(),
        }
    }

    /// Loads the whole registry from the engine (one consistent read at `source`'s revision),
    /// replacing whatever the cache held; counted in [`RegistryCache::loads`].
    pub fn load(&self, source: &FeedSource) {
        let before = self.cache.reloads();
        self.cache
            .replace(load_lenient(source.entries()), source.revision);
        debug_assert_eq!(self.cache.reloads(), before + 1);
        debug_assert!(self.cache.revision() >= source.revision);
    }

    /// Applies one commit of the feed. A commit at or below the cache's revision is already
    /// held (nothing to do). `Err`: the commit does not fit the registry, or the cache is not
    /// loaded or is broken; it must load again.
    pub fn apply(&self, commit: &FeedCommit) -> Result<(), StoreError> {
        if commit.revision <= self.cache.revision() && !self.cache.is_broken() {
            return Ok(());
        }
        if commit.changes.len() > CACHE_CHANGES_PER_COMMIT_MAX {
            return Err(StoreError::Unavailable(format!(
                "a commit of {} changes, more than the cache applies at once ({})",
                commit.changes.len(),
                CACHE_CHANGES_PER_COMMIT_MAX
            )));
        }
        self.cache.apply(commit.revision, &commit.changes)?;
        debug_assert_eq!(self.cache.revision(), commit.revision);
        Ok(())
    }

    /// The revision the cache is complete up to.
    pub fn revision(&self) -> u64 {
        u64::try_from(self.cache.revision()).unwrap_or(0)
    }

    /// Whether the cache is unusable until it loads again (never loaded, or a change did not
    /// fit).
    pub fn is_broken(&self) -> bool {
        self.cache.is_broken()
    }

    /// Whole-registry loads so far.
    pub fn loads(&self) -> u64 {
        self.cache.reloads()
    }

    /// The instant (on the process's clock) of the latest confirmation if it may still serve a
    /// snapshot at `now_ms` (`CACHE_CONFIRM_REUSE_MS`): the engines' reuse rule.
    pub fn fresh_confirmation(&self, now_ms: u64) -> Option<u64> {
        self.cache.fresh_confirmation(now_ms)
    }

    /// Completes the confirmation whose read was sent at `sent_ms` and found `commit` the latest
    /// commit at `read_at`, if the cache has applied `commit`; false while it has not (the
    /// engines wait for the feed, then call it again).
    pub fn complete_confirmation(&self, sent_ms: u64, commit: u64, read_at: u64) -> bool {
        self.cache
            .complete_confirmation(sent_ms, revision_of(commit), revision_of(read_at))
    }

    /// The cache's snapshot, labelled as confirmed current at `confirmed_at`, as the engines'
    /// stores hand it to a node; an error when the cache cannot be used or holds a key that
    /// cannot be decoded.
    pub fn snapshot(&self, confirmed_at: u64) -> Result<Snapshot, StoreError> {
        self.cache.view()?.snapshot(confirmed_at)
    }
}

fn revision_of(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::MemoryStore;
    use crate::CACHE_CONFIRM_REUSE_MS;
    use membership_core::Config;

    fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(f)
    }

    fn store() -> MemoryStore {
        let store = MemoryStore::new();
        ready(store.init(Config::fixed(3).unwrap())).unwrap();
        store
    }

    #[test]
    fn a_cache_fed_every_commit_serves_the_store_s_snapshot_once_confirmed() {
        let store = store();
        let first = ready(store.snapshot()).unwrap();
        let mut source = FeedSource::new(&first);
        let cache = RegistryCache::new();
        assert!(cache.is_broken());
        cache.load(&source);
        assert_eq!((cache.loads(), cache.revision()), (1, first.revision));
        let slot = ready(store.claim(membership_core::NodeId(1), "a:1")).unwrap();
        let now = ready(store.snapshot()).unwrap();
        let commit = source.commit(&now).unwrap();
        assert_eq!(commit.revision(), now.revision);
        assert!(!commit.is_empty());
        // Not confirmable before the cache holds the latest commit.
        assert!(!cache.complete_confirmation(10, now.revision, now.revision));
        assert_eq!(cache.fresh_confirmation(10), None);
        cache.apply(&commit).unwrap();
        assert!(cache.complete_confirmation(10, now.revision, now.revision));
        let served = cache.snapshot(10).unwrap();
        assert_eq!(served.state, now.state);
        assert_eq!(served.slots.get(&membership_core::NodeId(1)), Some(&slot));
        assert_eq!(
            (served.revision, served.confirmed_at),
            (now.revision, Some(10))
        );
        // Reused within CACHE_CONFIRM_REUSE_MS of its send, not after.
        assert_eq!(cache.fresh_confirmation(30), Some(10));
        assert_eq!(cache.fresh_confirmation(31), None);
        // Nothing newer: no commit.
        assert!(source.commit(&now).is_none());
    }

    use proptest::prelude::*;

    /// One step of the property: a commit to the store, a delivery of the feed so far, or a
    /// broken watch (the cache loads the whole registry).
    #[derive(Clone, Debug)]
    enum Op {
        Claim(u16),
        Replace(u16, Vec<u64>),
        Deliver,
        Break,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u16..=3).prop_map(Op::Claim),
            ((1u16..=3), proptest::collection::btree_set(1u64..40, 0..6))
                .prop_map(|(n, a)| Op::Replace(n, a.into_iter().collect())),
            Just(Op::Deliver),
            Just(Op::Break),
        ]
    }

    proptest! {
        /// Whatever the store commits and however late the feed arrives or breaks, the cache
        /// always holds the store exactly as it was at the cache's revision (the registry, the
        /// slots, the round and the heartbeats), never a mix of two revisions.
        #[test]
        fn a_cache_holds_the_store_as_it_was_at_its_revision(ops in proptest::collection::vec(op(), 1..40)) {
            let store = store();
            let base = membership_core::testing::run(
                Config::fixed(3).unwrap(),
                &membership_core::testing::THREE_ACTIVE,
            );
            let first = ready(store.snapshot()).unwrap();
            let mut source = FeedSource::new(&first);
            let cache = RegistryCache::new();
            cache.load(&source);
            let mut at: BTreeMap<u64, Snapshot> = BTreeMap::from([(first.revision, first)]);
            let mut pending: Vec<FeedCommit> = Vec::new();
            let mut loads = 1;
            for op in ops {
                match op {
                    Op::Claim(n) => {
                        ready(store.claim(membership_core::NodeId(n), "a:1")).unwrap();
                    }
                    Op::Replace(n, actors) => {
                        store.replace_state(membership_core::testing::place_on(&base, n, actors));
                    }
                    Op::Deliver => {
                        for commit in pending.drain(..) {
                            cache.apply(&commit).unwrap();
                        }
                    }
                    Op::Break => {
                        pending.clear();
                        cache.load(&source);
                        loads += 1;
                    }
                }
                let now = ready(store.snapshot()).unwrap();
                if let Some(commit) = source.commit(&now) {
                    prop_assert_eq!(commit.revision(), now.revision);
                    pending.push(commit);
                    at.insert(now.revision, now);
                }
                let held = cache.snapshot(0).unwrap();
                let expected = &at[&cache.revision()];
                prop_assert_eq!(held.revision, expected.revision);
                prop_assert_eq!(&held.state, &expected.state);
                prop_assert_eq!(&held.slots, &expected.slots);
                prop_assert_eq!(held.round, expected.round);
                // Each node's latest heartbeat round as stored; a registry installed whole
                // (`replace_state`) sets flags the in-memory store keeps no round for, which an
                // engine stores as a heartbeat naming the open round.
                for (n, round) in &held.heartbeat_rounds {
                    match expected.heartbeat_rounds.get(n) {
                        Some(stored) => prop_assert_eq!(round, stored),
                        None => prop_assert!(
                            *round == expected.round && expected.state.heartbeat_received(*n)
                        ),
                    }
                }
                prop_assert!(expected
                    .heartbeat_rounds
                    .keys()
                    .all(|n| held.heartbeat_rounds.contains_key(n)));
            }
            prop_assert_eq!(cache.loads(), loads);
        }

        /// The engines' confirmation rule for a snapshot asked at `asked` and served at `now`:
        /// the latest confirmation serves it if its read was sent at or after the ask, or if it
        /// is at most `CACHE_CONFIRM_REUSE_MS` old; never while the cache lacks the commit it
        /// required. The simulation's one reader per cache asks and is served at one instant,
        /// where the rule is `fresh_confirmation`'s.
        #[test]
        fn a_confirmation_serves_a_snapshot_asked_before_its_send_or_while_young(
            sent in 0u64..200,
            asked in 0u64..200,
            later in 0u64..100,
        ) {
            let store = store();
            let first = ready(store.snapshot()).unwrap();
            let mut source = FeedSource::new(&first);
            let cache = RegistryCache::new();
            cache.load(&source);
            ready(store.claim(membership_core::NodeId(1), "a:1")).unwrap();
            let now_snapshot = ready(store.snapshot()).unwrap();
            let commit = source.commit(&now_snapshot).unwrap();
            let now = sent.max(asked) + later;
            // Behind the commit it requires: nothing serves.
            prop_assert!(!cache.complete_confirmation(sent, commit.revision(), commit.revision()));
            prop_assert_eq!(cache.cache.confirmation_for(asked, now), None);
            cache.apply(&commit).unwrap();
            prop_assert!(cache.complete_confirmation(sent, commit.revision(), commit.revision()));
            let serves = sent >= asked || now - sent <= CACHE_CONFIRM_REUSE_MS;
            prop_assert_eq!(
                cache.cache.confirmation_for(asked, now),
                serves.then_some(sent),
                "asked {} ms, sent {} ms, now {} ms", asked, sent, now
            );
            prop_assert_eq!(
                cache.fresh_confirmation(now),
                cache.cache.confirmation_for(now, now)
            );
        }
    }
}
