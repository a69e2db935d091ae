//! How the FoundationDB store's keys, commits and errors look: the subspace's keys (a name is
//! one tuple-layer string; the feed's parts are versionstamps), what every commit writes (its
//! keys, its feed entry, the commit marker), what it costs, and what a commit's error means.

use crate::cached::Committed;
use crate::codec::DecodeError;
use crate::feed::{self, Stamp, FDB_FEED_PARTS_PER_COMMIT_MAX};
use crate::keys::{cached, order_key_name, FEED_KEY, LOG_FAMILY, VERSION_KEY};
use crate::kv::{Entry, Write};
use crate::store::StoreError;
use foundationdb::options::{ConflictRangeType, MutationType, StreamingMode, TransactionOption};
use foundationdb::tuple::{Subspace, Versionstamp};
use foundationdb::{FdbBindingError, FdbError, RangeOption, Transaction};

/// One transaction attempt's timeout, in ms (FoundationDB's own limit is 5 s).
pub const FDB_TRANSACTION_TIMEOUT_MS: i32 = 2_000;

/// How many times a plain write (init, the test kit's writes) is retried by `db.run`.
pub const FDB_RETRY_LIMIT: i32 = 64;

/// The first retry's backoff after a failure, in ms; each further retry waits twice as long
/// (the feed task's, up to [`super::FDB_FEED_BACKOFF_MAX_MS`]).
pub const FDB_RETRY_BACKOFF_MS: u64 = 25;

/// The most pages of one range read.
pub(super) const RANGE_PAGES_MAX: usize = 100_000;

/// FoundationDB's error code for a commit that conflicted (`not_committed`).
pub(super) const FDB_NOT_COMMITTED: i32 = 1020;

/// FoundationDB's error code for a read version older than its history (`transaction_too_old`).
pub(super) const FDB_TRANSACTION_TOO_OLD: i32 = 1007;

/// FoundationDB's error code for a transaction over its size limit (`transaction_too_large`).
pub(super) const FDB_TRANSACTION_TOO_LARGE: i32 = 2101;

/// A tuple-layer string's framing around a name: its type code and terminator.
pub(super) const NAME_FRAMING_BYTES: usize = 2;

/// The keys of one store's subspace.
#[derive(Clone)]
pub(super) struct Keys {
    /// The store's subspace.
    pub(super) subspace: Subspace,
    /// The feed's: `(subspace, "feed")`.
    pub(super) feed: Subspace,
}

impl Keys {
    pub(super) fn new(subspace: &str) -> Keys {
        let subspace = Subspace::from(subspace);
        let feed = subspace.subspace(&FEED_KEY);
        Keys { subspace, feed }
    }

    pub(super) fn key(&self, name: &str) -> Vec<u8> {
        self.subspace.pack(&name)
    }

    /// The bytes of key `name`, without building it.
    pub(super) fn key_len(&self, name: &str) -> usize {
        self.subspace.bytes().len() + NAME_FRAMING_BYTES + name.len()
    }

    /// The key range of every name starting with `prefix` (a tuple-layer string is its bytes
    /// after a type code, so a name prefix is a byte prefix).
    pub(super) fn prefix_range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let mut begin = self.subspace.bytes().to_vec();
        begin.push(0x02);
        begin.extend_from_slice(prefix.as_bytes());
        let mut end = begin.clone();
        end.push(0xff);
        (begin, end)
    }

    /// The key of part `index` of this transaction's feed entry (its versionstamp filled in at
    /// commit).
    pub(super) fn feed_part(&self, index: u16) -> Vec<u8> {
        self.feed
            .pack_with_versionstamp(&Versionstamp::incomplete(index))
    }

    /// The first feed key of the commit stamped `stamp`.
    pub(super) fn feed_from(&self, stamp: &Stamp) -> Vec<u8> {
        self.feed.pack(&Versionstamp::complete(*stamp, 0))
    }

    /// Reads every pair of the prefix range, as entries named relative to the subspace, with
    /// `version` as each entry's version.
    pub(super) async fn read_range(
        &self,
        trx: &Transaction,
        prefix: &str,
        version: i64,
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
                    version,
                });
            }
            match opt.next_range(&values) {
                Some(next) => opt = next,
                None => return Ok(()),
            }
        }
        Ok(())
    }
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn custom(e: StoreError) -> FdbBindingError {
    FdbBindingError::CustomError(Box::new(e))
}

/// The store error inside a binding error, or the binding error as unavailability.
pub(super) fn store_error(e: FdbBindingError) -> StoreError {
    match e {
        FdbBindingError::CustomError(inner) => match inner.downcast::<StoreError>() {
            Ok(error) => *error,
            Err(other) => unavailable(other),
        },
        other => unavailable(other),
    }
}

/// Bounds a transaction: its timeout, and (in `db.run`) its retries.
pub(super) fn limit(trx: &Transaction) -> Result<(), FdbError> {
    trx.set_option(TransactionOption::Timeout(FDB_TRANSACTION_TIMEOUT_MS))?;
    trx.set_option(TransactionOption::RetryLimit(FDB_RETRY_LIMIT))
}

/// The versionstamp parameter of an atomic op writing the commit's versionstamp at offset 0.
pub(super) fn stamp_param() -> Vec<u8> {
    let mut param = vec![0u8; 10];
    param.extend_from_slice(&0u32.to_le_bytes());
    param
}

/// The commit version the marker `version` names (its value: the latest commit's
/// versionstamp); 0 when absent.
pub(super) fn marker_version(value: Option<&[u8]>) -> Result<i64, StoreError> {
    let Some(bytes) = value else { return Ok(0) };
    let stamp = Stamp::try_from(bytes).map_err(|_| DecodeError {
        key: VERSION_KEY.to_string(),
        reason: format!(
            "{} bytes, not a 10-byte versionstamp (a counter written before the change feed: \
             no node may run while the marker is rewritten)",
            bytes.len()
        ),
    })?;
    Ok(feed::stamp_version(&stamp))
}

/// The keys a cache holds among `writes`, as the feed carries them.
pub(super) fn fed(writes: &[Write]) -> impl Iterator<Item = (&str, Option<&[u8]>)> + Clone {
    writes.iter().filter_map(|w| match w {
        Write::Put(k, v) if cached(k) => Some((k.as_str(), Some(v.as_slice()))),
        Write::Delete(k) if cached(k) => Some((k.as_str(), None)),
        _ => None,
    })
}

/// The operations and bytes a commit of `writes` takes: each write, its feed entry's parts, the
/// commit marker, and a log record's versionstamp.
pub(super) fn commit_cost(keys: &Keys, writes: &[Write]) -> (usize, usize) {
    debug_assert!(writes
        .iter()
        .all(|w| !matches!(w, Write::Put(k, _) | Write::Delete(k) if k == VERSION_KEY)));
    let payload = feed::encoded_len(fed(writes));
    let parts = feed::part_count(payload);
    let logs = writes
        .iter()
        .filter(|w| matches!(w, Write::Put(k, _) if k.starts_with(LOG_FAMILY)))
        .count();
    let ops = writes.len() + parts + 1 + logs;
    let feed_key_bytes = keys.feed.bytes().len() + 1 + 12;
    let bytes = writes
        .iter()
        .map(|w| w.bytes() + keys.key_len(""))
        .sum::<usize>()
        + payload
        + parts * (feed_key_bytes + 3)
        + keys.key_len(VERSION_KEY)
        + 10
        + logs * (keys.key_len(LOG_FAMILY) + 10 + 8);
    (ops, bytes)
}

/// Writes `writes` in `trx` as one commit of the registry: each key, a log record's commit
/// versionstamp beside it, the commit's feed entry, and the commit marker.
pub(super) fn write_commit(
    trx: &Transaction,
    keys: &Keys,
    writes: &[Write],
    action: &str,
) -> Result<(), StoreError> {
    let payload = feed::encode(fed(writes));
    let parts = feed::parts(&payload).ok_or_else(|| StoreError::TooLarge {
        action: action.to_string(),
        ops: feed::part_count(payload.len()) as u64,
        bytes: payload.len() as u64,
    })?;
    debug_assert!(!parts.is_empty() && parts.len() <= FDB_FEED_PARTS_PER_COMMIT_MAX);
    debug_assert!(writes
        .iter()
        .all(|w| !matches!(w, Write::Put(k, _) | Write::Delete(k) if k == VERSION_KEY)));
    for write in writes {
        match write {
            Write::Put(k, v) => {
                trx.set(&keys.key(k), v);
                if k.starts_with(LOG_FAMILY) {
                    // The commit's versionstamp beside the log record: the log's commit order.
                    trx.atomic_op(
                        &keys.key(&order_key_name(k)),
                        &stamp_param(),
                        MutationType::SetVersionstampedValue,
                    );
                }
            }
            Write::Delete(k) => trx.clear(&keys.key(k)),
        }
    }
    for (index, part) in parts.iter().enumerate() {
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        trx.atomic_op(
            &keys.feed_part(index),
            part,
            MutationType::SetVersionstampedKey,
        );
    }
    trx.atomic_op(
        &keys.key(VERSION_KEY),
        &stamp_param(),
        MutationType::SetVersionstampedValue,
    );
    Ok(())
}

/// Adds a read conflict range for exactly the key `name`.
pub(super) fn conflict_on(trx: &Transaction, keys: &Keys, name: &str) -> Result<(), FdbError> {
    let key = keys.key(name);
    let mut end = key.clone();
    end.push(0);
    trx.add_conflict_range(&key, &end, ConflictRangeType::Read)
}

/// What a commit's error says: a conflict, a view too old, too large, or a failure that may
/// have committed (`uncertain`).
pub(super) fn commit_failed(
    error: FdbError,
    action: &str,
    cost: (usize, usize),
    uncertain: &mut bool,
) -> Result<Committed, StoreError> {
    match error.code() {
        FDB_NOT_COMMITTED => Ok(Committed::Conflict(None)),
        FDB_TRANSACTION_TOO_OLD => Ok(Committed::Stale),
        FDB_TRANSACTION_TOO_LARGE => Err(StoreError::TooLarge {
            action: action.to_string(),
            ops: cost.0 as u64,
            bytes: cost.1 as u64,
        }),
        _ => {
            // Only an error known not to have committed leaves the outcome certain.
            *uncertain |= !error.is_retryable_not_committed();
            Err(unavailable(error))
        }
    }
}
