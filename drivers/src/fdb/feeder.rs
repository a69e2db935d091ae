//! The FoundationDB store's feed task: one per store handle, it loads the registry into the
//! handle's cache, then follows the change feed (`crate::feed`) and trims it.

use super::layout::{limit, store_error, unavailable, Keys, FDB_RETRY_BACKOFF_MS, RANGE_PAGES_MAX};
use crate::cache::{Cache, CACHE_CHANGES_PER_COMMIT_MAX};
use crate::codec::DecodeError;
use crate::feed::{self, FeedPart, Stamp, FDB_FEED_READ_PARTS_MAX};
use crate::keys::{cached, FEED_KEY, FEED_TRIM_KEY, LOAD_PREFIXES, VERSION_KEY};
use crate::kv::{load_lenient, Change, Entry};
use crate::store::StoreError;
use foundationdb::options::{MutationType, StreamingMode};
use foundationdb::tuple::Versionstamp;
use foundationdb::{Database, FdbError, RangeOption};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long feed entries are kept, in commit versions (FoundationDB makes about 1,000,000 a
/// second: about 5 s, its own window of history).
pub const FDB_FEED_RETENTION_VERSIONS: i64 = 5_000_000;

/// How often a feed task trims the feed, in commit versions (about 1 s).
pub const FDB_FEED_TRIM_EVERY_VERSIONS: i64 = 1_000_000;

/// The longest a feed task waits for its watch before it reads the feed anyway, in ms.
pub const FDB_FEED_POLL_MS: u64 = 1_000;

/// The feed task's longest backoff after an error, in ms.
pub const FDB_FEED_BACKOFF_MAX_MS: u64 = 1_000;

/// Reads the whole registry and metadata (every key a cache holds) at one read version.
async fn read_all(db: &Database, keys: &Keys) -> Result<(Vec<Entry>, i64), StoreError> {
    let trx = db.create_trx().map_err(unavailable)?;
    limit(&trx).map_err(unavailable)?;
    let read_at = trx.get_read_version().await.map_err(unavailable)?;
    let mut entries = Vec::new();
    for prefix in LOAD_PREFIXES {
        keys.read_range(&trx, prefix, read_at, &mut entries)
            .await
            .map_err(store_error)?;
    }
    debug_assert!(entries.iter().all(|e| cached(&e.key)));
    Ok((entries, read_at))
}

/// One read of the feed: the parts from a stamp on, at one read version, with the trim point
/// and a watch on the commit marker set at that version.
struct FeedRead {
    read_at: i64,
    trim: i64,
    parts: Vec<FeedPart>,
    /// Whether the parts are every part up to `read_at` (false: the read stopped at
    /// [`FDB_FEED_READ_PARTS_MAX`]).
    complete: bool,
}

/// Reads the feed from `from` (at most [`FDB_FEED_READ_PARTS_MAX`] parts), and returns it with a
/// watch on the commit marker, which fires after the next commit.
async fn read_feed(
    db: &Database,
    keys: &Keys,
    from: &Stamp,
) -> Result<(FeedRead, impl Future<Output = Result<(), FdbError>> + use<>), StoreError> {
    let trx = db.create_trx().map_err(unavailable)?;
    limit(&trx).map_err(unavailable)?;
    let read_at = trx.get_read_version().await.map_err(unavailable)?;
    let trim = trx
        .get(&keys.key(FEED_TRIM_KEY), true)
        .await
        .map_err(unavailable)?;
    let trim = match trim.as_deref() {
        None => 0,
        Some(bytes) => {
            let le = <[u8; 8]>::try_from(bytes).map_err(|_| DecodeError {
                key: FEED_TRIM_KEY.to_string(),
                reason: format!("{} bytes, not a little-endian u64", bytes.len()),
            })?;
            i64::try_from(u64::from_le_bytes(le)).unwrap_or(i64::MAX)
        }
    };
    let mut opt = RangeOption::from((keys.feed_from(from), keys.feed.range().1));
    opt.mode = StreamingMode::WantAll;
    opt.limit = Some(FDB_FEED_READ_PARTS_MAX);
    let mut parts = Vec::new();
    let mut complete = false;
    for iteration in 1..=RANGE_PAGES_MAX {
        let values = trx
            .get_range(&opt, iteration, true)
            .await
            .map_err(unavailable)?;
        for kv in values.iter() {
            let stamp: Versionstamp = keys.feed.unpack(kv.key()).map_err(|e| DecodeError {
                key: FEED_KEY.to_string(),
                reason: format!("a feed key that is not a versionstamp: {e:?}"),
            })?;
            let mut commit = [0u8; 10];
            commit.copy_from_slice(stamp.transaction_version());
            parts.push(FeedPart {
                stamp: commit,
                index: stamp.user_version(),
                bytes: kv.value().to_vec(),
            });
        }
        match opt.next_range(&values) {
            Some(next) => opt = next,
            None => {
                complete = !values.more();
                break;
            }
        }
    }
    let watch = trx.watch(&keys.key(VERSION_KEY));
    trx.commit()
        .await
        .map_err(|e| unavailable(FdbError::from(e)))?;
    debug_assert!(parts.len() <= FDB_FEED_READ_PARTS_MAX);
    debug_assert!(parts
        .windows(2)
        .all(|w| (w[0].stamp, w[0].index) < (w[1].stamp, w[1].index)));
    Ok((
        FeedRead {
            read_at,
            trim,
            parts,
            complete,
        },
        watch,
    ))
}

/// Applies one read of the feed to the cache, read from `from`; returns where the next read
/// starts, or why the whole registry must be loaded again (a gap, a broken entry, a change that
/// does not fit, a broken cache that a commit may have repaired).
fn apply_read(cache: &Cache, from: &Stamp, read: FeedRead) -> Result<Stamp, String> {
    debug_assert!(feed::stamp_version(from) <= read.read_at + 1);
    if feed::has_gap(read.trim, from) {
        return Err(format!(
            "the feed was trimmed below version {}, past this cache's {}",
            read.trim,
            feed::stamp_version(from)
        ));
    }
    let assembled = feed::assemble(read.parts, read.complete).map_err(|e| e.to_string())?;
    if !assembled.complete && assembled.commits.is_empty() {
        // Cannot happen with well-formed parts (a whole commit fits one read): no progress.
        return Err("a feed entry with more parts than one read takes".to_string());
    }
    if !assembled.commits.is_empty() && cache.is_broken() {
        return Err("the cache is broken, and a commit may have repaired it".to_string());
    }
    let versions: Vec<i64> = assembled
        .commits
        .iter()
        .map(|c| feed::stamp_version(&c.stamp))
        .collect();
    let revisions = feed::revisions(&versions, assembled.complete);
    let mut next = *from;
    for (commit, revision) in assembled.commits.iter().zip(revisions) {
        if commit.changes.len() > CACHE_CHANGES_PER_COMMIT_MAX {
            return Err(format!(
                "a commit of {} keys: more than a cache applies at once",
                commit.changes.len()
            ));
        }
        let version = feed::stamp_version(&commit.stamp);
        let changes: Vec<Change> = commit
            .changes
            .iter()
            .map(|c| Change {
                key: c.key.clone(),
                value: c.value.clone(),
                version,
            })
            .collect();
        cache.apply(revision, &changes).map_err(|e| e.to_string())?;
        next = feed::stamp_after(&commit.stamp);
    }
    if assembled.complete {
        cache.advance(read.read_at);
        debug_assert!(cache.is_broken() || cache.revision() >= read.read_at);
        next = feed::stamp_at(read.read_at + 1);
    }
    debug_assert!(next >= *from);
    Ok(next)
}

/// Deletes the feed entries of versions below `below` and records the trim point (an atomic
/// max: trims by several handles never move it back).
async fn trim_feed(db: &Database, keys: &Keys, below: i64) -> Result<(), StoreError> {
    debug_assert!(below > 0);
    let trx = db.create_trx().map_err(unavailable)?;
    limit(&trx).map_err(unavailable)?;
    let (begin, _) = keys.feed.range();
    trx.clear_range(&begin, &keys.feed_from(&feed::stamp_at(below)));
    let point = u64::try_from(below).unwrap_or(0).to_le_bytes();
    trx.atomic_op(&keys.key(FEED_TRIM_KEY), &point, MutationType::Max);
    trx.commit()
        .await
        .map_err(|e| unavailable(FdbError::from(e)))?;
    Ok(())
}

/// Feeds the cache: loads the registry at one read version, then reads the feed after each
/// commit (its watch on the commit marker fires) or every [`FDB_FEED_POLL_MS`], applies it, and
/// trims it; bumps `changes` to the cache's revision after each load or commit applied (the
/// nodes' wake-up). A gap or a broken entry loads the registry again (once per gap). Runs until
/// the store is dropped.
pub(super) async fn feed_cache(
    db: Arc<Database>,
    keys: Keys,
    cache: Arc<Cache>,
    changes: watch::Sender<u64>,
) {
    let mut backoff_ms = FDB_RETRY_BACKOFF_MS;
    let mut next: Option<Stamp> = None;
    let mut trimmed_at = 0i64;
    loop {
        let from = match next {
            Some(stamp) => stamp,
            None => match read_all(&db, &keys).await {
                Ok((entries, read_at)) => {
                    cache.replace(load_lenient(entries), read_at);
                    changes.send_replace(u64::try_from(cache.revision()).unwrap_or(0));
                    feed::stamp_at(read_at + 1)
                }
                Err(error) => {
                    tracing::debug!(%error, "FoundationDB registry load failed: loading again");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(FDB_FEED_BACKOFF_MAX_MS);
                    continue;
                }
            },
        };
        next = Some(from);
        let (read, watch) = match read_feed(&db, &keys, &from).await {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "FoundationDB feed read failed: reading again");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(FDB_FEED_BACKOFF_MAX_MS);
                continue;
            }
        };
        backoff_ms = FDB_RETRY_BACKOFF_MS;
        let (read_at, complete, applied) = (read.read_at, read.complete, !read.parts.is_empty());
        match apply_read(&cache, &from, read) {
            Ok(stamp) => next = Some(stamp),
            Err(why) => {
                tracing::info!(%why, "FoundationDB change feed: loading the registry again");
                next = None;
                continue;
            }
        }
        if applied {
            changes.send_replace(u64::try_from(cache.revision()).unwrap_or(0));
        }
        if !complete {
            continue; // more to read at once
        }
        if read_at - trimmed_at >= FDB_FEED_TRIM_EVERY_VERSIONS
            && read_at > FDB_FEED_RETENTION_VERSIONS
        {
            trimmed_at = read_at;
            let below = read_at - FDB_FEED_RETENTION_VERSIONS;
            if let Err(error) = trim_feed(&db, &keys, below).await {
                tracing::debug!(%error, "FoundationDB feed trim failed");
            }
        }
        let poll = Duration::from_millis(FDB_FEED_POLL_MS);
        if let Ok(Err(error)) = tokio::time::timeout(poll, watch).await {
            tracing::debug!(%error, "FoundationDB watch failed: reading the feed again");
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        }
    }
}
