//! The one-shot migration of a registry stored on etcd by an earlier layout of format version 1
//! ([`crate::upgrade::migrate_v1`]): read every key under the prefix at one revision, compute
//! the rewrite, and apply it in transactions that each compare the open round and every key
//! they rewrite against that revision (so a node that ran meanwhile makes it fail, naming the
//! key, and nothing it read is overwritten blindly). Each transaction also writes the commit
//! marker, so a registry cache still running reloads what it missed.

use super::feed::{range_end, unavailable, ETCD_RESPONSE_BYTES_MAX};
use crate::keys::{LOG_FAMILY, ROUND_KEY, VERSION_KEY};
use crate::store::StoreError;
use crate::upgrade::{migrate_v1, Migrated, Migration};
use etcd_client::{Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use std::collections::BTreeMap;

/// The most keys one page of the migration's read returns.
pub const ETCD_MIGRATION_PAGE_KEYS: i64 = 10_000;

/// The most writes (puts and deletes) of one migration transaction: each is compared too, with
/// the round and the marker, within etcd's 128 operations.
pub const ETCD_MIGRATION_WRITES_MAX: usize = 120;

/// The most bytes of keys and values one migration transaction writes (etcd's request limit,
/// 1.5 MiB, less a margin for framing and compares).
pub const ETCD_MIGRATION_BYTES_MAX: usize = 1_200_000;

/// The most pages read: a registry of more keys than this many pages is refused.
const MIGRATION_PAGES_MAX: usize = 100_000;

/// What the migration reads under a prefix, at one revision.
struct Stored {
    /// Every key (relative to the prefix) with its bytes.
    entries: BTreeMap<String, Vec<u8>>,
    /// Every key's `mod_revision`.
    versions: BTreeMap<String, i64>,
    /// The log records' keys in commit order (their creation revisions).
    log_order: Vec<String>,
    /// The revision read at.
    revision: i64,
}

/// Reads every key under `prefix` at one revision, page by page.
async fn read_everything(client: &Client, prefix: &str) -> Result<Stored, StoreError> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(ETCD_RESPONSE_BYTES_MAX);
    let end = range_end(prefix);
    let mut start = prefix.as_bytes().to_vec();
    let mut revision = 0;
    let mut entries = BTreeMap::new();
    let mut versions = BTreeMap::new();
    let mut logs: Vec<(i64, String)> = Vec::new();
    for _ in 0..MIGRATION_PAGES_MAX {
        let mut options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(ETCD_MIGRATION_PAGE_KEYS)
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let response = kv
            .get(start.clone(), Some(options))
            .await
            .map_err(unavailable)?;
        if revision == 0 {
            revision = response.header().map_or(0, |h| h.revision());
        }
        let Some(last) = response.kvs().last().map(|kv| kv.key().to_vec()) else {
            break;
        };
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(name) = key.strip_prefix(prefix) else {
                continue;
            };
            if name.starts_with(LOG_FAMILY) {
                logs.push((kv.create_revision(), name.to_string()));
            }
            entries.insert(name.to_string(), kv.value().to_vec());
            versions.insert(name.to_string(), kv.mod_revision());
        }
        if !response.more() {
            break;
        }
        start = last;
        start.push(0);
    }
    logs.sort();
    debug_assert!(revision > 0 || entries.is_empty());
    debug_assert_eq!(entries.len(), versions.len());
    Ok(Stored {
        entries,
        versions,
        log_order: logs.into_iter().map(|(_, k)| k).collect(),
        revision,
    })
}

/// The migration's writes cut into transactions within [`ETCD_MIGRATION_WRITES_MAX`] and
/// [`ETCD_MIGRATION_BYTES_MAX`]: each write is the key and its new value (`None`: removed).
fn batches(migration: Migration) -> Vec<Vec<(String, Option<Vec<u8>>)>> {
    let mut writes: Vec<(String, Option<Vec<u8>>)> = migration
        .puts
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    writes.extend(migration.deletes.into_iter().map(|k| (k, None)));
    // The queue's chunks last, new ones before the old ones are removed: an interrupted run
    // leaves every entry stored at least once (the next run merges them).
    let order = |(k, v): &(String, Option<Vec<u8>>)| (k.starts_with("queue/"), v.is_none());
    writes.sort_by(|a, b| order(a).cmp(&order(b)).then_with(|| a.0.cmp(&b.0)));
    let mut out: Vec<Vec<(String, Option<Vec<u8>>)>> = Vec::new();
    let mut bytes = 0;
    for write in writes {
        let size = write.0.len() + write.1.as_ref().map_or(0, Vec::len);
        let full = out.last().is_none_or(|b| {
            b.len() >= ETCD_MIGRATION_WRITES_MAX || bytes + size > ETCD_MIGRATION_BYTES_MAX
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(batch) = out.last_mut() {
            batch.push(write);
        }
    }
    debug_assert!(out.iter().all(|b| b.len() <= ETCD_MIGRATION_WRITES_MAX));
    out
}

/// Migrates the registry under `prefix` (with `apply`; without, only computes what would be
/// written). See the module documentation. Also returns the revision of its last transaction
/// (`None`: nothing written).
pub(super) async fn migrate(
    client: &Client,
    prefix: &str,
    apply: bool,
) -> Result<(Migrated, Option<i64>), StoreError> {
    let Stored {
        entries,
        versions,
        log_order,
        revision,
    } = read_everything(client, prefix).await?;
    if entries.is_empty() {
        return Err(StoreError::Uninitialised);
    }
    let migration = migrate_v1(&entries, &log_order)?;
    let mut migrated = Migrated {
        puts: migration.puts.len(),
        deletes: migration.deletes.len(),
        transactions: 0,
        applied: false,
    };
    let nothing = migration.is_empty();
    let batches = batches(migration);
    migrated.transactions = batches.len();
    if !apply || nothing {
        return Ok((migrated, None));
    }
    let key = |name: &str| format!("{prefix}{name}");
    let version_read = |name: &str| versions.get(name).copied().unwrap_or(0);
    let mut kv = client.kv_client();
    let mut last = None;
    for batch in batches {
        let mut compares = vec![Compare::mod_revision(
            key(ROUND_KEY),
            CompareOp::Equal,
            version_read(ROUND_KEY),
        )];
        let mut ops = Vec::with_capacity(batch.len() + 1);
        for (name, value) in &batch {
            compares.push(Compare::mod_revision(
                key(name),
                CompareOp::Equal,
                version_read(name),
            ));
            ops.push(match value {
                Some(bytes) => TxnOp::put(key(name), bytes.clone(), None),
                None => TxnOp::delete(key(name), None),
            });
        }
        ops.push(TxnOp::put(key(VERSION_KEY), Vec::new(), None));
        let response = kv
            .txn(Txn::new().when(compares).and_then(ops))
            .await
            .map_err(unavailable)?;
        last = response.header().map(|h| h.revision());
        if !response.succeeded() {
            let first = batch.first().map_or(ROUND_KEY, |(k, _)| k.as_str());
            return Err(StoreError::Changed {
                key: first.to_string(),
                revision,
            });
        }
    }
    migrated.applied = true;
    debug_assert!(migrated.transactions > 0);
    Ok((migrated, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn batches_keep_within_the_limits_and_write_new_queue_chunks_before_removing_old_ones() {
        let mut migration = Migration::default();
        for i in 0..300 {
            migration
                .puts
                .insert(format!("heartbeat/n{i}"), vec![1, b'7']);
        }
        migration
            .puts
            .insert("queue/n3/c0".to_string(), vec![7; 700_000]);
        migration
            .puts
            .insert("queue/n4/c0".to_string(), vec![7; 700_000]);
        migration.deletes = BTreeSet::from(["queue/c0".to_string(), "queue/c1".to_string()]);
        let out = batches(migration);
        assert!(out.iter().all(|b| b.len() <= ETCD_MIGRATION_WRITES_MAX));
        for b in &out {
            let bytes: usize = b
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum();
            assert!(bytes <= ETCD_MIGRATION_BYTES_MAX, "{bytes} bytes");
        }
        let flat: Vec<&String> = out.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(flat.len(), 304);
        let position = |name: &str| flat.iter().position(|k| *k == name).unwrap();
        assert!(position("queue/n4/c0") < position("queue/c0"));
        assert!(position("heartbeat/n299") < position("queue/n3/c0"));
    }
}
