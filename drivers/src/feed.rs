//! The FoundationDB store's change feed, in bytes and rules (engine-independent and pure, so it
//! is tested without a cluster; the store that reads and writes it is `fdb.rs`).
//!
//! **What a commit appends.** Every commit of the FoundationDB store writes, besides its keys,
//! one feed entry: the keys it changed that a registry cache holds ([`crate::keys::cached`]),
//! each with its new value or as deleted, in the commit's write order. The entry is encoded
//! ([`encode`]) and cut into parts of at most [`FDB_FEED_PART_BYTES_MAX`] bytes (FoundationDB
//! refuses a value over 100,000 bytes); part `i` of `n` is stored under the key
//! `(subspace, "feed", versionstamp(commit, i))`, so the parts of one commit sit together, in
//! order, in commit order with every other commit's. Each part's value starts with a header: the
//! feed format ([`FEED_FORMAT_VERSION`]) and the part count `n`.
//!
//! **How a reader follows it.** A reader knows the stamp from which it has not applied the
//! feed yet (its *next* stamp). It reads the parts from there up to a read version `R`,
//! reassembles them into commits ([`assemble`]), applies each commit in order and then knows the
//! registry at `R` (or, when its read stopped at [`FDB_FEED_READ_PARTS_MAX`] parts, at the last
//! commit it applied). Commits of one batch share a commit version: a cache that says it holds
//! version `V` must hold all of them, so a commit followed by another of the same version is
//! applied as version `V - 1` ([`revisions`]).
//!
//! **Trimming.** Entries older than a retention are deleted, and the version they were deleted
//! below (the trim point) is recorded; a reader whose next stamp is below the trim point has a
//! gap ([`has_gap`]) and loads the whole registry again.

use crate::codec::DecodeError;

/// The format byte that starts every part of a feed entry.
pub(crate) const FEED_FORMAT_VERSION: u8 = 1;

/// The most bytes of one part of a feed entry, header included (FoundationDB's value limit is
/// 100,000 bytes).
pub const FDB_FEED_PART_BYTES_MAX: usize = 90_000;

/// The most parts of one commit's feed entry (its versionstamp's user version is the part's
/// index). A commit within the FoundationDB store's byte limit needs far fewer; one that would
/// need more is refused as too large.
pub const FDB_FEED_PARTS_PER_COMMIT_MAX: usize = 64;

/// The most feed parts one read of the feed takes; a reader that lags further reads again at
/// once. At least one whole commit always fits.
pub const FDB_FEED_READ_PARTS_MAX: usize = 1_024;

const _: () = assert!(FDB_FEED_READ_PARTS_MAX >= FDB_FEED_PARTS_PER_COMMIT_MAX);

/// A part's header: the format byte and the part count (u16, big-endian).
const PART_HEADER_BYTES: usize = 3;

/// The payload bytes of one part.
const PART_PAYLOAD_BYTES_MAX: usize = FDB_FEED_PART_BYTES_MAX - PART_HEADER_BYTES;

/// A commit's versionstamp: its commit version (8 bytes, big-endian) and its order within the
/// commit's batch (2 bytes, big-endian).
pub(crate) type Stamp = [u8; 10];

/// One key a commit changed: its name and new value (`None`: deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FeedChange {
    /// The key's name.
    pub(crate) key: String,
    /// The new value (`None`: the key was deleted).
    pub(crate) value: Option<Vec<u8>>,
}

/// One stored part of a feed entry, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FeedPart {
    /// The commit's versionstamp.
    pub(crate) stamp: Stamp,
    /// The part's index (the versionstamp's user version).
    pub(crate) index: u16,
    /// The stored value.
    pub(crate) bytes: Vec<u8>,
}

/// One commit read back from the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FeedCommit {
    /// Its versionstamp.
    pub(crate) stamp: Stamp,
    /// The keys it changed, in its write order.
    pub(crate) changes: Vec<FeedChange>,
}

/// The commits of one read of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// Whole commits, in commit order.
    pub(crate) commits: Vec<FeedCommit>,
    /// Whether they are every commit up to the read's version (false: the read stopped at its
    /// bound, and more may follow).
    pub(crate) complete: bool,
}

/// The commit version of a stamp.
pub(crate) fn stamp_version(stamp: &Stamp) -> i64 {
    let mut version = [0u8; 8];
    version.copy_from_slice(&stamp[..8]);
    i64::from_be_bytes(version)
}

/// The first stamp of commit version `version`.
pub(crate) fn stamp_at(version: i64) -> Stamp {
    let mut stamp = [0u8; 10];
    stamp[..8].copy_from_slice(&version.max(0).to_be_bytes());
    stamp
}

/// The stamp right after `stamp` (the next possible commit).
pub(crate) fn stamp_after(stamp: &Stamp) -> Stamp {
    let mut next = *stamp;
    for byte in next.iter_mut().rev() {
        let (value, carried) = byte.overflowing_add(1);
        *byte = value;
        if !carried {
            break;
        }
    }
    debug_assert!(next > *stamp || *stamp == [0xff; 10]);
    next
}

/// The stamp as hex (to name a feed entry in an error).
fn hex(stamp: &Stamp) -> String {
    stamp.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes [`encode`] makes of `changes`.
pub(crate) fn encoded_len<'a>(
    changes: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> usize {
    changes
        .into_iter()
        .map(|(key, value)| 4 + key.len() + 1 + value.map_or(0, |v| 4 + v.len()))
        .sum::<usize>()
        + 4
}

/// Encodes one commit's changes: the change count (u32, big-endian), then each change: the key's
/// length (u32, big-endian) and bytes, a tag (0: deleted, 1: put), and for a put the value's
/// length (u32, big-endian) and bytes.
pub(crate) fn encode<'a>(
    changes: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Vec<u8> {
    let changes: Vec<(&str, Option<&[u8]>)> = changes.into_iter().collect();
    let mut out = Vec::with_capacity(encoded_len(changes.iter().copied()));
    out.extend_from_slice(&length(changes.len()));
    for (key, value) in &changes {
        out.extend_from_slice(&length(key.len()));
        out.extend_from_slice(key.as_bytes());
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&length(v.len()));
                out.extend_from_slice(v);
            }
        }
    }
    debug_assert_eq!(out.len(), encoded_len(changes.iter().copied()));
    out
}

/// A length as 4 big-endian bytes (a length beyond u32 cannot occur within FoundationDB's
/// 10 MB transaction limit; it is saturated).
fn length(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// A reader of [`encode`]'s bytes.
struct Cursor<'b> {
    rest: &'b [u8],
}

impl<'b> Cursor<'b> {
    /// The next `n` bytes (`None`: fewer are left).
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// The next length (u32, big-endian).
    fn length(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    }
}

/// Reads [`encode`]'s bytes back. `name` names the entry in an error.
pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<Vec<FeedChange>, DecodeError> {
    let error = |reason: &str| DecodeError {
        key: name.to_string(),
        reason: reason.to_string(),
    };
    let truncated = || error("truncated feed entry");
    let mut cursor = Cursor { rest: bytes };
    let count = cursor.length().ok_or_else(truncated)?;
    // Each change takes at least 5 bytes: a count beyond that is garbage, not an allocation.
    if count > bytes.len() / 5 {
        return Err(error("change count beyond the entry's size"));
    }
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = cursor.length().ok_or_else(truncated)?;
        let key = cursor.take(key_len).ok_or_else(truncated)?;
        let key =
            String::from_utf8(key.to_vec()).map_err(|_| error("a key name that is not UTF-8"))?;
        let value = match cursor.take(1).ok_or_else(truncated)? {
            [0] => None,
            [1] => {
                let value_len = cursor.length().ok_or_else(truncated)?;
                Some(cursor.take(value_len).ok_or_else(truncated)?.to_vec())
            }
            _ => return Err(error("a change tag that is neither put nor delete")),
        };
        changes.push(FeedChange { key, value });
    }
    if !cursor.rest.is_empty() {
        return Err(error("bytes after the last change"));
    }
    debug_assert_eq!(changes.len(), count);
    Ok(changes)
}

/// Cuts an encoded entry into part values (header, then at most the part's payload), or `None`
/// when it needs more than [`FDB_FEED_PARTS_PER_COMMIT_MAX`] parts.
pub(crate) fn parts(payload: &[u8]) -> Option<Vec<Vec<u8>>> {
    let count = payload.len().div_ceil(PART_PAYLOAD_BYTES_MAX).max(1);
    if count > FDB_FEED_PARTS_PER_COMMIT_MAX {
        return None;
    }
    let count_bytes = u16::try_from(count).ok()?.to_be_bytes();
    let mut out: Vec<Vec<u8>> = payload
        .chunks(PART_PAYLOAD_BYTES_MAX)
        .map(|chunk| {
            let mut part = Vec::with_capacity(PART_HEADER_BYTES + chunk.len());
            part.push(FEED_FORMAT_VERSION);
            part.extend_from_slice(&count_bytes);
            part.extend_from_slice(chunk);
            part
        })
        .collect();
    if out.is_empty() {
        out.push(vec![FEED_FORMAT_VERSION, count_bytes[0], count_bytes[1]]);
    }
    debug_assert_eq!(out.len(), count);
    debug_assert!(out.iter().all(|p| p.len() <= FDB_FEED_PART_BYTES_MAX));
    Some(out)
}

/// The parts a payload of `bytes` bytes is cut into.
pub(crate) fn part_count(bytes: usize) -> usize {
    bytes.div_ceil(PART_PAYLOAD_BYTES_MAX).max(1)
}

/// Reassembles the parts of one read (in key order: by stamp, then index) into commits. When
/// the read stopped at its bound (`read_complete` false) the last commit may lack parts: it is
/// left for the next read. Any other missing, repeated or foreign part is an error naming the
/// entry (the reader loads the registry again).
pub(crate) fn assemble(
    parts: Vec<FeedPart>,
    read_complete: bool,
) -> Result<Assembled, DecodeError> {
    debug_assert!(parts
        .windows(2)
        .all(|w| (w[0].stamp, w[0].index) < (w[1].stamp, w[1].index)));
    let mut groups: Vec<(Stamp, Vec<FeedPart>)> = Vec::new();
    for part in parts {
        match groups.last_mut() {
            Some((stamp, group)) if *stamp == part.stamp => group.push(part),
            _ => groups.push((part.stamp, vec![part])),
        }
    }
    let mut commits = Vec::with_capacity(groups.len());
    let mut complete = read_complete;
    let last = groups.len().saturating_sub(1);
    for (i, (stamp, group)) in groups.into_iter().enumerate() {
        let name = format!("feed/{}", hex(&stamp));
        let error = |reason: String| DecodeError {
            key: name.clone(),
            reason,
        };
        let mut payload = Vec::new();
        let mut count = None;
        for (expected, part) in group.iter().enumerate() {
            let [format, hi, lo, body @ ..] = part.bytes.as_slice() else {
                return Err(error("a part shorter than its header".to_string()));
            };
            if *format != FEED_FORMAT_VERSION {
                return Err(error(format!(
                    "feed format {format}, this build reads format {FEED_FORMAT_VERSION}"
                )));
            }
            let n = usize::from(u16::from_be_bytes([*hi, *lo]));
            if *count.get_or_insert(n) != n || usize::from(part.index) != expected {
                return Err(error(format!(
                    "part {} of {n} does not follow the commit's other parts",
                    part.index
                )));
            }
            payload.extend_from_slice(body);
        }
        let count = count.unwrap_or(0);
        if group.len() != count {
            if i == last && !read_complete && group.len() < count {
                complete = false; // the rest of this commit comes with the next read
                break;
            }
            return Err(error(format!("{} of its {count} parts", group.len())));
        }
        commits.push(FeedCommit {
            stamp,
            changes: decode(&name, &payload)?,
        });
    }
    debug_assert!(commits.windows(2).all(|w| w[0].stamp < w[1].stamp));
    Ok(Assembled { commits, complete })
}

/// The revision a cache is complete up to after applying each commit of one read, given the
/// commits' versions (in commit order): its own version when the next commit of the read has a
/// later one (or it is the read's last and the read was complete), otherwise one less (another
/// commit of its batch may follow).
pub(crate) fn revisions(versions: &[i64], complete: bool) -> Vec<i64> {
    debug_assert!(versions.windows(2).all(|w| w[0] <= w[1]));
    let out: Vec<i64> = versions
        .iter()
        .enumerate()
        .map(|(i, &v)| match versions.get(i + 1) {
            Some(&next) if next > v => v,
            None if complete => v,
            _ => v - 1,
        })
        .collect();
    debug_assert!(out.windows(2).all(|w| w[0] <= w[1]));
    debug_assert!(out.iter().zip(versions).all(|(r, v)| r == v || *r == v - 1));
    out
}

/// Whether a reader whose next stamp is `next` has lost entries: the feed was trimmed below
/// version `trim` (entries of earlier versions are gone), beyond the reader's position.
pub(crate) fn has_gap(trim: i64, next: &Stamp) -> bool {
    trim > stamp_version(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> Vec<(String, Option<Vec<u8>>)> {
        vec![
            ("node/n1".to_string(), Some(b"\x01{}".to_vec())),
            ("actor/a7".to_string(), None),
            ("slot/n2".to_string(), Some(Vec::new())),
        ]
    }

    fn borrowed(c: &[(String, Option<Vec<u8>>)]) -> Vec<(&str, Option<&[u8]>)> {
        c.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect()
    }

    fn commit(stamp: Stamp, payload: &[u8]) -> Vec<FeedPart> {
        parts(payload)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| FeedPart {
                stamp,
                index: i as u16,
                bytes,
            })
            .collect()
    }

    #[test]
    fn changes_round_trip() {
        let c = changes();
        let bytes = encode(borrowed(&c));
        assert_eq!(bytes.len(), encoded_len(borrowed(&c)));
        let back = decode("feed/x", &bytes).unwrap();
        let back: Vec<(String, Option<Vec<u8>>)> =
            back.into_iter().map(|c| (c.key, c.value)).collect();
        assert_eq!(back, c);
        assert_eq!(decode("feed/x", &encode([])).unwrap(), vec![]);
    }

    #[test]
    fn garbage_is_a_named_error() {
        let bytes = encode(borrowed(&changes()));
        for cut in [0, 3, 7, bytes.len() - 1] {
            let e = decode("feed/x", &bytes[..cut]).unwrap_err();
            assert_eq!(e.key, "feed/x");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode("feed/x", &longer)
            .unwrap_err()
            .reason
            .contains("after"));
        assert!(decode("feed/x", &[0xff; 8]).is_err());
    }

    #[test]
    fn a_large_entry_is_cut_into_parts_and_put_together() {
        let big = vec![7u8; 3 * FDB_FEED_PART_BYTES_MAX];
        let c = vec![("queue/c0".to_string(), Some(big))];
        let payload = encode(borrowed(&c));
        let cut = parts(&payload).unwrap();
        assert_eq!(cut.len(), part_count(payload.len()));
        assert_eq!(cut.len(), 4);
        assert!(cut.iter().all(|p| p.len() <= FDB_FEED_PART_BYTES_MAX));
        let mut read = commit(stamp_at(5), &payload);
        read.extend(commit(stamp_at(6), &encode(borrowed(&changes()))));
        let assembled = assemble(read, true).unwrap();
        assert!(assembled.complete);
        assert_eq!(assembled.commits.len(), 2);
        assert_eq!(
            assembled.commits[0].changes[0]
                .value
                .as_ref()
                .unwrap()
                .len(),
            3 * FDB_FEED_PART_BYTES_MAX
        );
        let too_big = vec![0u8; FDB_FEED_PARTS_PER_COMMIT_MAX * FDB_FEED_PART_BYTES_MAX];
        assert!(parts(&too_big).is_none());
        assert_eq!(parts(&[]).unwrap().len(), 1);
    }

    #[test]
    fn a_read_cut_inside_a_commit_leaves_it_for_the_next_read() {
        let payload = encode([("queue/c0", Some(&[1u8; 2 * FDB_FEED_PART_BYTES_MAX][..]))]);
        let mut read = commit(stamp_at(5), &encode(borrowed(&changes())));
        read.extend(commit(stamp_at(6), &payload).into_iter().take(1));
        let assembled = assemble(read.clone(), false).unwrap();
        assert!(!assembled.complete);
        assert_eq!(assembled.commits.len(), 1);
        // The same hole in a complete read (or before another commit) is a broken feed.
        assert!(assemble(read.clone(), true).is_err());
        read.extend(commit(stamp_at(7), &encode([])));
        assert!(assemble(read, false).is_err());
    }

    #[test]
    fn foreign_parts_are_refused() {
        let mut read = commit(stamp_at(5), &encode(borrowed(&changes())));
        read[0].bytes[0] = 9;
        assert!(assemble(read, true)
            .unwrap_err()
            .reason
            .contains("format 9"));
        let mut read = commit(stamp_at(5), &encode(borrowed(&changes())));
        read[0].index = 1;
        assert!(assemble(read, true).is_err());
    }

    #[test]
    fn a_batch_counts_as_held_only_once_its_last_commit_is_applied() {
        assert_eq!(revisions(&[5, 5, 6], true), vec![4, 5, 6]);
        assert_eq!(revisions(&[5, 5, 6], false), vec![4, 5, 5]);
        assert_eq!(revisions(&[], true), Vec::<i64>::new());
    }

    #[test]
    fn stamps_order_and_gaps() {
        let s = stamp_at(0x0102);
        assert_eq!(stamp_version(&s), 0x0102);
        let mut last = s;
        last[8..].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(stamp_after(&last), stamp_at(0x0103));
        assert!(stamp_after(&s) > s);
        assert!(!has_gap(10, &stamp_at(10)));
        assert!(has_gap(11, &stamp_at(10)));
        assert!(!has_gap(0, &stamp_at(0)));
    }
}
