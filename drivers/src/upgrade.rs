//! Upgrading a registry stored by the first layout of format version 1 (issue 21, point 6).
//!
//! Every stored value is a format byte, then JSON (`codec`), and the format byte has been 1
//! since the first store. Registry v2 (commit 1d04913) changed the shape of two key families
//! without changing it:
//!
//! | key | first layout (up to 7f400ca) | round layout (1d04913 on) |
//! | --- | --- | --- |
//! | `heartbeat/n3` | `true` / `false`: the flag "n3 heartbeated in the open round" (ResetHeartbeats wrote `false` to every set flag) | the round n3's latest heartbeat ran at (absent: none); its flag is "this is the open round" (ResetHeartbeats writes none of them) |
//! | `log/n3/2/17` (with `record_log`) | the spec actions applied, a JSON array | `{"round": r, "events": [...]}`: the round the commit ran at (after it, for ResetHeartbeats) |
//!
//! | `queue/c0` | the queue entries of actors `a0..a255`, `[[actor, {"from", "reason"}], ...]` (up to 159d90e) | `queue/n3/c0`: the entries of the actors queued to leave `n3` with ids `a0..a16383`, `[[reason, [actor, ...]], ...]` (`crate::keys::queue`) |
//!
//! Every other value (`config`, `node/`, `counter/`, `actor/`, `load/`, `hosted/`, `slot/`,
//! `round`, `proposal/`) has the same shape in all of them. Later, a node record came to be
//! stored with its votes beside it (`crate::kv::votes`); a bare record, of any layout before,
//! is still read, its votes expired (a vote lives one round), so it needs no migration. The queue's keys were regrouped by
//! node after registry v2 (a declaration of a node whose actors' ids are spread over the
//! registry wrote one key per 256 ids, past etcd's 128 operations); [`migrate_v1`] regroups
//! them too, and the reader refuses a key of the previous spelling, naming the migration. Both shapes of the two families
//! are told apart by their JSON (a boolean or a number; an array or an object), so a value says
//! which layout wrote it.
//!
//! **Why a one-shot migration, not an upgrade on read.** A flag-layout `heartbeat/n` means
//! something only together with the `round` it was read with: `true` read at round 4 means
//! "n heartbeated in round 4". The round layout's ResetHeartbeats writes `round` and no
//! heartbeat key, so a `true` left in the store would be read after the next round opened as a
//! heartbeat in that round: a silent node would look alive. So the stored values are rewritten
//! once, by [`migrate_v1`], against the `round` they were read with (the engine's transaction
//! compares `round` and every key it rewrites), before nodes of the round layout start; and
//! the round layout's reader refuses a flag-layout value ([`heartbeat_layout`]) instead of
//! guessing.
//!
//! **The mapping.** With `round` = r (absent: 0): a flag `true` becomes r (the node heartbeated
//! in the open round: its flag stays set); a flag `false` becomes r - 1 when r > 0 (all the flag
//! says is that the node's latest heartbeat, if any, was before round r; r - 1 is the latest
//! round that can be, so no declaration that the first layout refused is accepted after the
//! migration: MarkNodeFailed carrying round r is accepted, one carrying an earlier round is
//! refused, as the first layout's guard "no heartbeat in the open round" would have it) and is
//! removed when r = 0 (no round before the first: no heartbeat named). A log record's round is
//! counted in commit order: the log's ResetHeartbeats records are counted back from the stored
//! round, so a log that starts after the registry was created (its first rounds lost) still
//! gets the rounds it ran at; a log with more ResetHeartbeats than the stored round is refused.

use crate::codec::{decode, encode, DecodeError};
use crate::keys::queue;
use membership_core::{ActorId, Event, MigrationEntry, REGISTRY_FORMAT_VERSION};
use std::collections::{BTreeMap, BTreeSet};

/// Which layout of format version 1 wrote a value of a family that changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The first layout (up to 7f400ca): a heartbeat flag, a log record without its round.
    Flags,
    /// The round layout (registry v2, 1d04913 on): a heartbeat round, a log record with it.
    Rounds,
}

/// What [`migrate_v1`] writes: the values to put and the keys to remove (apply them in one
/// transaction that also checks that `round` and every key written are unchanged since read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// Keys and their new values (heartbeat rounds, log records with their rounds).
    pub puts: BTreeMap<String, Vec<u8>>,
    /// Keys to remove (a `false` flag before the first round).
    pub deletes: BTreeSet<String>,
}

impl Migration {
    /// Whether there is nothing to write (the registry is in the round layout already).
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// `entries` with the migration applied (what the store holds after it).
    pub fn apply(&self, entries: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = entries
            .iter()
            .filter(|(k, _)| !self.deletes.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.extend(self.puts.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// What a store's migration did (or, not applied, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Keys written.
    pub puts: usize,
    /// Keys removed.
    pub deletes: usize,
    /// The engine's transactions it takes.
    pub transactions: usize,
    /// Whether it was written (false: a dry run, or nothing to write).
    pub applied: bool,
}

fn error(key: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The JSON of a stored value of format version [`REGISTRY_FORMAT_VERSION`].
fn json(key: &str, bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(error(key, "empty value"));
    };
    if u32::from(version) != REGISTRY_FORMAT_VERSION {
        return Err(error(
            key,
            format!("format version {version}, this build reads version {REGISTRY_FORMAT_VERSION}"),
        ));
    }
    serde_json::from_slice(rest).map_err(|e| error(key, e.to_string()))
}

/// The open heartbeat round stored under `round` (`None`: absent, round 0).
pub fn stored_round(bytes: Option<&[u8]>) -> Result<u64, DecodeError> {
    let Some(bytes) = bytes else {
        return Ok(0);
    };
    json("round", bytes)?
        .as_u64()
        .ok_or_else(|| error("round", "not a round number"))
}

/// Which layout wrote the value of `heartbeat/n` under `key`: a flag (the first layout, to be
/// migrated: the round layout's reader refuses it, naming the key and the migration) or a round.
pub fn heartbeat_layout(key: &str, bytes: &[u8]) -> Result<Layout, DecodeError> {
    match json(key, bytes)? {
        serde_json::Value::Bool(_) => Ok(Layout::Flags),
        serde_json::Value::Number(n) if n.is_u64() => Ok(Layout::Rounds),
        other => Err(error(
            key,
            format!("neither a heartbeat flag (first layout) nor a round: {other}"),
        )),
    }
}

/// The round-layout value of `heartbeat/n` (`None`: the key is removed) for the value under
/// `key`, read together with the open round `round` (see the module documentation). A value
/// in the round layout is returned as it is.
pub fn upgrade_heartbeat(
    key: &str,
    bytes: &[u8],
    round: u64,
) -> Result<Option<Vec<u8>>, DecodeError> {
    match json(key, bytes)? {
        serde_json::Value::Bool(true) => Ok(Some(encode(&round))),
        serde_json::Value::Bool(false) => Ok(round.checked_sub(1).map(|r| encode(&r))),
        serde_json::Value::Number(n) if n.is_u64() => Ok(Some(bytes.to_vec())),
        other => Err(error(
            key,
            format!("neither a heartbeat flag (first layout) nor a round: {other}"),
        )),
    }
}

/// The round-layout values of a committed log's records, given in commit order (etcd: the
/// order of the records' creation revisions; FoundationDB: of their `logorder/` versionstamps),
/// when the stored open round is `round`. Records already in the round layout are returned as
/// they are and their rounds taken as given.
pub fn upgrade_log(
    records: &[(String, Vec<u8>)],
    round: u64,
) -> Result<Vec<(String, Vec<u8>)>, DecodeError> {
    let mut parsed = Vec::with_capacity(records.len());
    let mut resets: u64 = 0;
    for (key, bytes) in records {
        let value = json(key, bytes)?;
        let events: Vec<Event> = match &value {
            serde_json::Value::Array(_) => {
                serde_json::from_value(value.clone()).map_err(|e| error(key, e.to_string()))?
            }
            serde_json::Value::Object(fields) => {
                let events = fields
                    .get("events")
                    .cloned()
                    .ok_or_else(|| error(key, "a log record without events"))?;
                serde_json::from_value(events).map_err(|e| error(key, e.to_string()))?
            }
            other => return Err(error(key, format!("not a log record: {other}"))),
        };
        let opened = events
            .iter()
            .filter(|e| **e == Event::ResetHeartbeats)
            .count();
        resets += u64::try_from(opened).unwrap_or(u64::MAX);
        parsed.push((key, bytes, value, events, resets));
    }
    let Some(first) = round.checked_sub(resets) else {
        return Err(error(
            "log/",
            format!("the log opens {resets} heartbeat rounds, more than the stored round {round}"),
        ));
    };
    let mut out = Vec::with_capacity(parsed.len());
    for (key, bytes, value, events, opened_so_far) in parsed {
        if value.is_object() {
            out.push((key.clone(), bytes.clone()));
            continue;
        }
        let record = serde_json::json!({
            "round": first + opened_so_far,
            "events": events,
        });
        out.push((key.clone(), encode(&record)));
    }
    Ok(out)
}

/// The one-shot migration of a whole stored registry (`entries`: every key under the store's
/// prefix or subspace, relative to it, with its bytes) to the round layout. `log_order` lists
/// the log records' keys in commit order (every `log/` key of `entries` must be in it). Empty
/// when the registry is in the round layout already, so running it twice changes nothing.
pub fn migrate_v1(
    entries: &BTreeMap<String, Vec<u8>>,
    log_order: &[String],
) -> Result<Migration, DecodeError> {
    let round = stored_round(entries.get("round").map(Vec::as_slice))?;
    let mut migration = Migration::default();
    for (key, bytes) in entries.range("heartbeat/".to_string().."heartbeat0".to_string()) {
        match upgrade_heartbeat(key, bytes, round)? {
            Some(new) if new == *bytes => {}
            Some(new) => {
                migration.puts.insert(key.clone(), new);
            }
            None => {
                migration.deletes.insert(key.clone());
            }
        }
    }
    let logged: BTreeSet<&String> = entries.keys().filter(|k| k.starts_with("log/")).collect();
    let ordered: BTreeSet<&String> = log_order.iter().collect();
    if let Some(missing) = logged.difference(&ordered).next() {
        return Err(error(missing, "a log record missing from the commit order"));
    }
    let records: Vec<(String, Vec<u8>)> = log_order
        .iter()
        .map(|k| {
            entries
                .get(k)
                .map(|v| (k.clone(), v.clone()))
                .ok_or_else(|| error(k, "in the commit order but not stored"))
        })
        .collect::<Result<_, _>>()?;
    for (key, new) in upgrade_log(&records, round)? {
        if entries.get(&key) != Some(&new) {
            migration.puts.insert(key, new);
        }
    }
    upgrade_queue(entries, &mut migration)?;
    Ok(migration)
}

/// The queue's chunks by actor id (`queue/c<i>`) regrouped by the node each entry leaves
/// (`queue/n3/c<j>`), into `migration`: the old keys removed, the new ones written, merged
/// with a new-layout chunk already stored (a migration applied in several transactions and
/// interrupted runs again to the same end). An actor queued twice with different entries is
/// refused, naming the key.
fn upgrade_queue(
    entries: &BTreeMap<String, Vec<u8>>,
    migration: &mut Migration,
) -> Result<(), DecodeError> {
    let mut queued: BTreeMap<ActorId, MigrationEntry> = BTreeMap::new();
    for (key, bytes) in entries.range("queue/".to_string().."queue0".to_string()) {
        if queue::previous_layout(key).is_none() {
            continue;
        }
        let list: Vec<(ActorId, MigrationEntry)> = decode(key, bytes)?;
        for (actor, entry) in list {
            if queued.insert(actor, entry).is_some() {
                return Err(error(key, format!("{actor} is queued twice")));
            }
        }
        migration.deletes.insert(key.clone());
    }
    for (chunk, list) in queue::chunks(queued.iter()) {
        let name = chunk.name();
        let mut merged: BTreeMap<ActorId, MigrationEntry> = match entries.get(&name) {
            Some(bytes) => queue::decode_chunk(&name, chunk, bytes)?
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        };
        for (actor, entry) in list {
            if merged.insert(actor, entry).is_some_and(|e| e != entry) {
                return Err(error(&name, format!("{actor} is queued twice")));
            }
        }
        let merged: Vec<(ActorId, MigrationEntry)> = merged.into_iter().collect();
        if let Some(bytes) = queue::encode_chunk(&merged) {
            if entries.get(&name) != Some(&bytes) {
                migration.puts.insert(name, bytes);
            }
        }
    }
    debug_assert!(migration
        .deletes
        .iter()
        .all(|k| !migration.puts.contains_key(k)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> Vec<u8> {
        let mut bytes = vec![1];
        bytes.extend_from_slice(json.as_bytes());
        bytes
    }

    #[test]
    fn flags_map_to_rounds_against_the_open_round() {
        assert_eq!(
            upgrade_heartbeat("heartbeat/n1", &v("true"), 4),
            Ok(Some(v("4")))
        );
        assert_eq!(
            upgrade_heartbeat("heartbeat/n1", &v("false"), 4),
            Ok(Some(v("3")))
        );
        assert_eq!(upgrade_heartbeat("heartbeat/n1", &v("false"), 0), Ok(None));
        assert_eq!(
            upgrade_heartbeat("heartbeat/n1", &v("true"), 0),
            Ok(Some(v("0")))
        );
        // The round layout is left as it is.
        assert_eq!(
            upgrade_heartbeat("heartbeat/n1", &v("7"), 4),
            Ok(Some(v("7")))
        );
        assert_eq!(
            heartbeat_layout("heartbeat/n1", &v("true")),
            Ok(Layout::Flags)
        );
        assert_eq!(
            heartbeat_layout("heartbeat/n1", &v("7")),
            Ok(Layout::Rounds)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = upgrade_heartbeat("heartbeat/n2", &v("\"x\""), 1).unwrap_err();
        assert_eq!(e.key, "heartbeat/n2");
        assert!(e.reason.contains("neither a heartbeat flag"), "{e}");
        let e = heartbeat_layout("heartbeat/n2", &[2, b'1']).unwrap_err();
        assert_eq!(e.reason, "format version 2, this build reads version 1");
        assert_eq!(
            heartbeat_layout("heartbeat/n2", &[]).unwrap_err().reason,
            "empty value"
        );
        assert_eq!(stored_round(Some(&v("true"))).unwrap_err().key, "round");
        assert_eq!(stored_round(None), Ok(0));
    }

    #[test]
    fn log_rounds_are_counted_back_from_the_stored_round() {
        let records = vec![
            (
                "log/n1/1/1".to_string(),
                v(r#"[{"SendHeartbeat":{"node":1}}]"#),
            ),
            ("log/n1/1/2".to_string(), v(r#"["ResetHeartbeats"]"#)),
            (
                "log/n2/1/1".to_string(),
                v(r#"[{"SendHeartbeat":{"node":2}}]"#),
            ),
        ];
        // The stored round is 3 and the log opened one round: it started at round 2.
        let out = upgrade_log(&records, 3).unwrap();
        let rounds: Vec<serde_json::Value> = out
            .iter()
            .map(|(k, b)| json(k, b).unwrap()["round"].clone())
            .collect();
        assert_eq!(rounds, [2, 3, 3].map(serde_json::Value::from));
        assert_eq!(
            json("log/n1/1/2", &out[1].1).unwrap()["events"],
            serde_json::json!(["ResetHeartbeats"])
        );
        let e = upgrade_log(&records, 0).unwrap_err();
        assert_eq!(e.key, "log/");
        // A record in the round layout keeps its round.
        let new = vec![(
            "log/n1/1/3".to_string(),
            v(r#"{"round":9,"events":["ResetHeartbeats"]}"#),
        )];
        assert_eq!(upgrade_log(&new, 9).unwrap(), new);
    }

    #[test]
    fn a_migration_rewrites_only_what_changed_and_is_idempotent() {
        let mut entries = BTreeMap::new();
        entries.insert("round".to_string(), v("2"));
        entries.insert("heartbeat/n1".to_string(), v("true"));
        entries.insert("heartbeat/n2".to_string(), v("false"));
        entries.insert("node/n1".to_string(), v("{}"));
        entries.insert("log/n1/1/1".to_string(), v(r#"["ResetHeartbeats"]"#));
        let order = vec!["log/n1/1/1".to_string()];
        let m = migrate_v1(&entries, &order).unwrap();
        assert_eq!(
            m.puts.keys().collect::<Vec<_>>(),
            ["heartbeat/n1", "heartbeat/n2", "log/n1/1/1"]
        );
        assert_eq!(m.puts["heartbeat/n1"], v("2"));
        assert_eq!(m.puts["heartbeat/n2"], v("1"));
        let after = m.apply(&entries);
        assert_eq!(after["node/n1"], v("{}"));
        assert_eq!(migrate_v1(&after, &order), Ok(Migration::default()));
        // Queue chunks by actor id are regrouped by node, once.
        let old = |list: &str| v(list);
        entries.insert(
            "queue/c0".to_string(),
            old(r#"[[3,{"from":2,"reason":"NodeFailed"}],[7,{"from":1,"reason":"NodeLeaving"}]]"#),
        );
        entries.insert(
            "queue/c64".to_string(),
            old(r#"[[16390,{"from":2,"reason":"NodeFailed"}]]"#),
        );
        let m = migrate_v1(&entries, &order).unwrap();
        assert_eq!(
            m.deletes.iter().collect::<Vec<_>>(),
            ["queue/c0", "queue/c64"]
        );
        assert_eq!(m.puts["queue/n1/c0"], v(r#"[["NodeLeaving",[7]]]"#));
        assert_eq!(m.puts["queue/n2/c0"], v(r#"[["NodeFailed",[3]]]"#));
        assert_eq!(m.puts["queue/n2/c1"], v(r#"[["NodeFailed",[16390]]]"#));
        let after = m.apply(&entries);
        assert_eq!(migrate_v1(&after, &order), Ok(Migration::default()));
        // An actor in two chunks by actor id is refused, naming the second.
        entries.insert(
            "queue/c1".to_string(),
            old(r#"[[3,{"from":2,"reason":"NodeFailed"}]]"#),
        );
        let e = migrate_v1(&entries, &order).unwrap_err();
        assert_eq!(e.key, "queue/c1");
        assert!(e.reason.contains("queued twice"), "{e}");
        entries.remove("queue/c1");
        // Interrupted after the new chunks were written, before the old ones were removed:
        // the next run merges (nothing new to write) and removes the old ones.
        let mut halfway = entries.clone();
        halfway.extend(
            m.puts
                .iter()
                .filter(|(k, _)| k.starts_with("queue/"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let rest = migrate_v1(&halfway, &order).unwrap();
        assert!(
            rest.puts.keys().all(|k| !k.starts_with("queue/")),
            "{rest:?}"
        );
        assert_eq!(rest.deletes, m.deletes);
        // Every log record must be in the commit order.
        assert_eq!(migrate_v1(&entries, &[]).unwrap_err().key, "log/n1/1/1");
    }
}

/// The stored fixture of a format-version-1 registry in the first layout
/// (`tests/fixtures/format-v1/`, written at 7f400ca by `scripts/format-v1-fixture/`), read
/// through the round layout's own reader (`kv::load`, built with an engine feature).
#[cfg(all(test, any(feature = "etcd", feature = "fdb")))]
#[allow(clippy::unwrap_used)] // a test module (clippy does not see `all(test, ...)` as one)
mod fixture {
    use super::*;
    use crate::kv::{load, Entry, Loaded};
    use crate::store::StoreError;
    use membership_core::{ActorId, NodeId, NodeStatus, Placement};

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v1");

    /// The stored keys and bytes, and each key's revision (a log record's is its commit order).
    fn fixture() -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, i64>) {
        let listing = std::fs::read_to_string(format!("{FIXTURE}/revisions")).unwrap();
        let mut entries = BTreeMap::new();
        let mut revisions = BTreeMap::new();
        for line in listing.lines() {
            let (revision, key) = line.split_once(' ').unwrap();
            let bytes = std::fs::read(format!("{FIXTURE}/store/{key}")).unwrap();
            entries.insert(key.to_string(), bytes);
            revisions.insert(key.to_string(), revision.parse().unwrap());
        }
        (entries, revisions)
    }

    fn log_order(revisions: &BTreeMap<String, i64>) -> Vec<String> {
        let mut logs: Vec<(i64, String)> = revisions
            .iter()
            .filter(|(k, _)| k.starts_with("log/"))
            .map(|(k, &r)| (r, k.clone()))
            .collect();
        logs.sort();
        logs.into_iter().map(|(_, k)| k).collect()
    }

    fn read(
        entries: &BTreeMap<String, Vec<u8>>,
        revisions: &BTreeMap<String, i64>,
    ) -> Result<Loaded, StoreError> {
        load(
            entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.clone(),
                    value: v.clone(),
                    version: revisions.get(k).copied().unwrap_or(0),
                })
                .collect(),
        )
    }

    #[test]
    fn the_migrated_fixture_is_the_registry_the_first_layout_stored() {
        let (entries, revisions) = fixture();
        assert_eq!(entries.len(), 66, "the fixture's keys");
        let migration = migrate_v1(&entries, &log_order(&revisions)).unwrap();
        // The queue's one chunk by actor id (a6, leaving n3) is regrouped under n3.
        assert_eq!(migration.deletes, BTreeSet::from(["queue/c0".to_string()]));
        assert!(migration.puts.contains_key("queue/n3/c0"));
        let heartbeats: Vec<&str> = migration
            .puts
            .keys()
            .filter(|k| k.starts_with("heartbeat/"))
            .map(String::as_str)
            .collect();
        assert_eq!(heartbeats, ["heartbeat/n1", "heartbeat/n2", "heartbeat/n3"]);
        let loaded = read(&migration.apply(&entries), &revisions).unwrap();
        let (state, meta) = (&loaded.state, &loaded.meta);
        // What the generator printed at 7f400ca: round 1, flags {n1, n2}, n3 leaving with a6
        // queued (a3 migrated), n1 primary with term 1.
        assert_eq!(meta.round, 1);
        assert_eq!(
            meta.heartbeat_rounds
                .iter()
                .map(|(n, r)| (n.0, *r))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 1), (3, 0)]
        );
        assert_eq!(
            state.heartbeats().iter().map(|n| n.0).collect::<Vec<_>>(),
            [1, 2]
        );
        let statuses: Vec<NodeStatus> = state.nodes().iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [NodeStatus::Active, NodeStatus::Active, NodeStatus::Leaving]
        );
        assert_eq!(state.primary_in_office(), Some(NodeId(1)));
        assert_eq!(state.node(NodeId(1)).map(|r| r.term), Some(1));
        assert_eq!(state.queue().actors().collect::<Vec<_>>(), [ActorId(6)]);
        let placements: Vec<(u64, u16, u64)> = state
            .placements()
            .iter()
            .map(|(a, Placement { node, epoch })| (a.0, node.0, *epoch))
            .collect();
        assert_eq!(
            placements,
            [
                (1, 2, 1),
                (2, 1, 2),
                (3, 1, 7),
                (4, 2, 4),
                (5, 1, 5),
                (6, 3, 6)
            ]
        );
        for n in 1..=3u16 {
            let slot = meta.slots.get(&NodeId(n)).unwrap();
            assert_eq!(
                (slot.incarnation, slot.address.as_str()),
                (1, format!("127.0.0.1:{}", 40_000 + n).as_str())
            );
        }
        // Every log record now carries the round it ran at: 0 before the one ResetHeartbeats,
        // 1 from it on; each decodes as the round layout's committed log reads it.
        let order = log_order(&revisions);
        let after = migration.apply(&entries);
        let mut rounds = Vec::new();
        for (i, key) in order.iter().enumerate() {
            let logged = crate::kv_testing::logged(key, &after[key], i as u64).unwrap();
            rounds.push((
                logged.round,
                logged.events.contains(&Event::ResetHeartbeats),
            ));
        }
        let reset = rounds.iter().position(|&(_, reset)| reset).unwrap();
        assert!(rounds[..reset].iter().all(|&(r, _)| r == 0), "{rounds:?}");
        assert!(rounds[reset..].iter().all(|&(r, _)| r == 1), "{rounds:?}");
    }

    #[test]
    fn the_round_layout_reader_refuses_an_unmigrated_flag_naming_the_migration() {
        let (mut entries, revisions) = fixture();
        // The queue alone migrated: the heartbeat flags are what is refused.
        let mut queue_only = Migration::default();
        upgrade_queue(&entries, &mut queue_only).unwrap();
        entries = queue_only.apply(&entries);
        match read(&entries, &revisions) {
            Err(StoreError::Decode(e)) => {
                assert_eq!(e.key, "heartbeat/n1");
                assert!(e.reason.contains("migrate"), "{e}");
            }
            other => panic!(
                "an unmigrated first-layout registry was read: {:?}",
                other.map(|l| l.meta.round)
            ),
        }
    }

    #[test]
    fn the_reader_refuses_a_queue_chunk_by_actor_id_naming_the_migration() {
        let (entries, revisions) = fixture();
        let migration = migrate_v1(&entries, &log_order(&revisions)).unwrap();
        let mut after = migration.apply(&entries);
        // The chunk by actor id put back: its entries would be lost if it were skipped.
        after.remove("queue/n3/c0");
        after.insert("queue/c0".to_string(), entries["queue/c0"].clone());
        match read(&after, &revisions) {
            Err(StoreError::Decode(e)) => {
                assert_eq!(e.key, "queue/c0");
                assert!(e.reason.contains("migrate_v1"), "{e}");
            }
            other => panic!(
                "a registry with a queue chunk by actor id was read: {:?}",
                other.map(|l| l.state.queue().len())
            ),
        }
    }
}
