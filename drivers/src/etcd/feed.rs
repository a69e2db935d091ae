//! The etcd store's change feed: the whole-registry load and the watch that keeps the
//! registry cache ([`crate::cache`]) current, reloading once per gap.

use crate::cache::Cache;
use crate::keys::{cached, HOSTED_FAMILY, NODE_FAMILY};
use crate::kv::{load_lenient, Change, Entry};
use crate::store::StoreError;
use etcd_client::{Client, EventType, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The first retry's backoff; each further retry waits twice as long.
pub const ETCD_RETRY_BACKOFF_MS: u64 = 25;

/// The largest response the client accepts (a whole-registry read), in bytes.
pub const ETCD_RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The watcher's longest backoff before it watches again after an error.
pub const ETCD_WATCH_BACKOFF_MAX_MS: u64 = 1_000;

/// The store error of a failed etcd request: [`StoreError::Denied`] for a refused credential
/// or permission, [`StoreError::Unavailable`] for anything else.
pub(super) fn unavailable(e: etcd_client::Error) -> StoreError {
    if denied(&e) {
        StoreError::Denied(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// Whether etcd refused the request for its credentials or permissions (retrying cannot help).
pub(super) fn denied(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
        ),
        _ => false,
    }
}
/// The end of the range of every key starting with `prefix`.
pub(super) fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Reads the whole registry and metadata under `prefix` at one revision, for the cache's load:
/// one read-only etcd transaction of three ranges, every key but the load and hosted markers
/// and the log (never read back).
pub(super) async fn read_all(
    client: &Client,
    prefix: &str,
) -> Result<(Vec<Entry>, i64), StoreError> {
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

/// Feeds the cache: loads the registry, then watches the prefix from the next revision and
/// applies each commit's changes in revision order, bumping `changes` to each revision applied
/// (the nodes' wake-up). A watch that breaks is watched again from the cache's revision; one
/// cancelled because etcd compacted that revision, or a change that does not fit the registry,
/// loads the registry again (once per gap). Runs until the store is dropped.
pub(super) async fn feed_cache(
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
