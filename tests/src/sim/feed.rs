//! The registry caches in the loop (option `Options::cache`, issue 19's point 2): every process
//! reads its snapshots from its own registry cache, the etcd and FoundationDB stores'
//! [`RegistryCache`] with their confirmation rule, fed by a change feed that arrives late, out
//! of step between processes, cut with the store link, deferred while the process is frozen,
//! and broken (a compacted history, a watch that drops): each break loads the whole registry
//! again. This module keeps the feed and the caches; the simulation's event loop (`sim`)
//! carries the reads, the confirmations and the deliveries as events.
//!
//! A snapshot read goes as the engines' `confirm` does: a confirmation younger than
//! `CACHE_CONFIRM_REUSE_MS` on the process's clock serves it at once; otherwise one small read
//! of the store's latest commit, sent now, and the snapshot once the cache has applied that
//! commit (or a failed read after the engines' catch-up time). A snapshot is labelled with
//! the send of its confirmation's read, and the process counts its age from one millisecond
//! before that label, as the node runtime does. The snapshot-age oracle then checks the
//! snapshot against the store as it was when that read was sent (true time), and the lease
//! oracle counts from that instant. One difference from the engines makes the simulation
//! stricter: a reused confirmation does not first wait for the cache to hold the process's own
//! latest commit (the engines' read-your-writes through a store handle). A process here has one
//! node and so one snapshot read at a time: the engines' rule for many readers of one cache (a
//! snapshot asked while another's read is in flight is served on the next read sent after it
//! asked) never applies.

use crate::rng::Rng;
use membership::testing::{FeedCommit, FeedSource, RegistryCache};
use membership::Snapshot;
use std::collections::{BTreeMap, VecDeque};

/// The most commits of the feed's history (each run draws its own, down to
/// [`FEED_HISTORY_MIN`]): a cache that falls further behind finds a gap and loads again.
pub const FEED_HISTORY_MAX: usize = 256;
/// The fewest commits of the feed's history a run draws.
pub const FEED_HISTORY_MIN: usize = 4;
/// The longest a change reaches a process's cache after its commit, at most (microseconds;
/// each process draws its own bound, most of them far below it).
pub const FEED_LAG_MAX_US: u64 = 40_000;
/// Per mille of deliveries on which the watch breaks (the cache loads the whole registry).
pub const FEED_BREAK_PER_MILLE: u64 = 2;
/// How long a snapshot read waits for the cache to hold the latest commit before it fails
/// (the engines' catch-up time, in microseconds).
pub const CACHE_CATCH_UP_US: u64 = 2_000_000;
/// How many completed confirmations the oracle remembers per process (a label older than the
/// reuse window is never served).
const CONFIRMATIONS_KEPT: usize = 16;

/// The change feed and every process's cache.
pub(super) struct Feeds {
    /// The feed's own randomness (forked from the seed: the world's draws are those of a run
    /// without caches).
    rng: Rng,
    /// The store's image and the feed computed from it.
    source: FeedSource,
    /// The latest commits: (the revision before it, the commit).
    log: VecDeque<(u64, FeedCommit)>,
    /// How many commits the history keeps in this run.
    history: usize,
    /// Per process.
    caches: BTreeMap<u64, ProcCache>,
}

/// One process's cache and what the oracle knows of it.
struct ProcCache {
    cache: RegistryCache,
    /// The bound of this process's feed lag (microseconds).
    lag_max_us: u64,
    /// The latest delivery scheduled (deliveries arrive in commit order).
    last_delivery_us: u64,
    /// Completed confirmations: (label on the process's clock, true instant of the read's send,
    /// the store's latest commit then), the latest `CONFIRMATIONS_KEPT`.
    confirmed: VecDeque<(u64, u64, u64)>,
    /// The confirmation read in flight (its label), if any: a reply to another is stale.
    in_flight: Option<u64>,
    /// A confirmation whose reply (the store's latest commit) came before the cache held that
    /// commit.
    waiting: Option<(Confirming, u64)>,
}

/// What the oracle knows of a confirmation read in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Confirming {
    pub(super) pid: u64,
    pub(super) sent_ms: u64,
    pub(super) sent_us: u64,
    pub(super) revision_at_send: u64,
    pub(super) read_at_ms: u64,
}

/// What a snapshot read finds at its process's cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// A confirmation young enough serves it at once: its label.
    Reused(u64),
    /// A confirmation read goes to the store.
    Confirm,
}

/// What a confirmation's reply comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Replied {
    /// Completed: answer the read (sent at this local ms) with the snapshot labelled so.
    Answer { read_at_ms: u64, label: u64 },
    /// The cache is behind the latest commit: wait for the feed (at most the catch-up time).
    Wait,
    /// Not the confirmation in flight (its read already failed): nothing.
    Stale,
}

impl Feeds {
    /// The feed of a store whose registry is `first`.
    pub(super) fn new(seed: u64, first: &Snapshot) -> Feeds {
        let mut rng = Rng::new(seed ^ 0x00FE_EDCA_C4E0);
        let history =
            usize::try_from(rng.range(FEED_HISTORY_MIN as u64, FEED_HISTORY_MAX as u64 + 1))
                .unwrap_or(FEED_HISTORY_MAX);
        let feeds = Feeds {
            rng,
            source: FeedSource::new(first),
            log: VecDeque::new(),
            history,
            caches: BTreeMap::new(),
        };
        debug_assert!((FEED_HISTORY_MIN..=FEED_HISTORY_MAX).contains(&feeds.history));
        debug_assert_eq!(feeds.source.revision(), first.revision);
        feeds
    }

    /// The store's latest commit, as a confirmation read finds it.
    pub(super) fn latest(&self) -> u64 {
        self.source.revision()
    }

    /// A new process's cache: one whole-registry load now (at true time `now_us`).
    pub(super) fn start(&mut self, pid: u64, now_us: u64) {
        let cache = RegistryCache::new();
        cache.load(&self.source);
        // Most processes' feeds keep up within a millisecond; some lag by tens.
        let lag_max_us = if self.rng.chance(250) {
            self.rng.range(1_000, FEED_LAG_MAX_US)
        } else {
            self.rng.range(50, 1_000)
        };
        debug_assert_eq!(cache.revision(), self.source.revision());
        self.caches.insert(
            pid,
            ProcCache {
                cache,
                lag_max_us,
                last_delivery_us: now_us,
                confirmed: VecDeque::new(),
                in_flight: None,
                waiting: None,
            },
        );
        debug_assert!(self.caches.contains_key(&pid));
    }

    /// The store's registry is now `now`: the feed's next commit (if it changed), and when it
    /// reaches each of the `live` processes' caches (true time, in commit order per process).
    pub(super) fn commit(&mut self, now: &Snapshot, live: &[u64], now_us: u64) -> Vec<(u64, u64)> {
        self.caches.retain(|pid, _| live.contains(pid));
        let before = self.source.revision();
        let Some(commit) = self.source.commit(now) else {
            return Vec::new();
        };
        debug_assert!(commit.revision() > before);
        self.log.push_back((before, commit));
        while self.log.len() > self.history {
            self.log.pop_front();
        }
        let mut deliveries = Vec::with_capacity(self.caches.len());
        for (&pid, c) in self.caches.iter_mut() {
            let lag = self.rng.range(0, c.lag_max_us.max(1));
            let at = c.last_delivery_us.max(now_us + lag);
            c.last_delivery_us = at;
            deliveries.push((at, pid));
        }
        debug_assert!(self.log.len() <= self.history);
        deliveries
    }

    /// The feed up to `upto` reaches `pid`'s cache; a gap in the history, a broken watch or a
    /// change that does not fit loads the whole registry again. Returns whether it loaded.
    pub(super) fn deliver(&mut self, pid: u64, upto: u64) -> bool {
        let Some(c) = self.caches.get_mut(&pid) else {
            return false;
        };
        let broken = self.rng.chance(FEED_BREAK_PER_MILLE);
        let held = c.cache.revision();
        let gap = self
            .log
            .iter()
            .find(|(_, commit)| commit.revision() > held)
            .is_some_and(|(before, _)| *before > held);
        let mut reload = broken || gap || c.cache.is_broken();
        if !reload {
            for (_, commit) in self.log.iter().filter(|(_, k)| k.revision() <= upto) {
                if c.cache.apply(commit).is_err() {
                    reload = true;
                    break;
                }
            }
        }
        if reload {
            c.cache.load(&self.source);
        }
        debug_assert!(!c.cache.is_broken());
        debug_assert!(reload || c.cache.revision() >= held);
        reload
    }

    /// A snapshot read of `pid` at `now_ms` of its clock: served on a young confirmation, or a
    /// confirmation read sent now (then in flight).
    pub(super) fn read(&mut self, pid: u64, now_ms: u64) -> Read {
        let Some(c) = self.caches.get_mut(&pid) else {
            return Read::Confirm;
        };
        if let Some(label) = c.cache.fresh_confirmation(now_ms) {
            debug_assert!(label <= now_ms);
            return Read::Reused(label);
        }
        c.in_flight = Some(now_ms);
        debug_assert!(c.in_flight.is_some());
        Read::Confirm
    }

    /// The confirmation read in flight of `pid` is lost (its link was cut).
    pub(super) fn lost(&mut self, pid: u64) {
        if let Some(c) = self.caches.get_mut(&pid) {
            c.in_flight = None;
        }
    }

    /// The reply to a confirmation read: the store's latest commit was `commit`. `unconfirmed`:
    /// the planted `cache-unconfirmed`, which answers without waiting for the feed.
    pub(super) fn reply(
        &mut self,
        confirming: Confirming,
        commit: u64,
        unconfirmed: bool,
    ) -> Replied {
        let Some(c) = self.caches.get_mut(&confirming.pid) else {
            return Replied::Stale;
        };
        if c.in_flight != Some(confirming.sent_ms) {
            return Replied::Stale;
        }
        c.in_flight = None;
        c.waiting = Some((confirming, commit));
        match self.complete(confirming.pid, unconfirmed) {
            Some((read_at_ms, label)) => Replied::Answer { read_at_ms, label },
            None => Replied::Wait,
        }
    }

    /// Completes `pid`'s waiting confirmation if its cache now holds the commit it requires:
    /// (the read's local ms, the label) to answer it with.
    pub(super) fn complete(&mut self, pid: u64, unconfirmed: bool) -> Option<(u64, u64)> {
        let c = self.caches.get_mut(&pid)?;
        let (w, commit) = c.waiting?;
        // The planted cache serves its view without waiting for the commit it was told.
        let done = unconfirmed || c.cache.complete_confirmation(w.sent_ms, commit, commit);
        if !done {
            return None;
        }
        c.waiting = None;
        if c.confirmed.len() >= CONFIRMATIONS_KEPT {
            c.confirmed.pop_front();
        }
        c.confirmed
            .push_back((w.sent_ms, w.sent_us, w.revision_at_send));
        debug_assert!(c.confirmed.len() <= CONFIRMATIONS_KEPT);
        Some((w.read_at_ms, w.sent_ms))
    }

    /// The confirmation of `pid` sent at `sent_ms` waited as long as the engines wait: if it
    /// still waits, it is dropped, and its read (sent at the returned local ms) fails.
    pub(super) fn timeout(&mut self, pid: u64, sent_ms: u64) -> Option<u64> {
        let c = self.caches.get_mut(&pid)?;
        let (w, _) = c.waiting.filter(|(w, _)| w.sent_ms == sent_ms)?;
        c.waiting = None;
        Some(w.read_at_ms)
    }

    /// `pid`'s cache's snapshot, labelled `label`.
    pub(super) fn snapshot(&self, pid: u64, label: u64) -> Option<Snapshot> {
        self.caches.get(&pid)?.cache.snapshot(label).ok()
    }

    /// The completed confirmation of `pid` labelled `label` (the latest, if several share the
    /// label): the true instant its read was sent, and the store's latest commit then.
    pub(super) fn confirmation(&self, pid: u64, label: u64) -> Option<(u64, u64)> {
        let c = self.caches.get(&pid)?;
        let found = c.confirmed.iter().rev().find(|r| r.0 == label)?;
        Some((found.1, found.2))
    }
}
