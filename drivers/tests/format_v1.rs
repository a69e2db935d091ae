//! The stored fixture of a format-version-1 registry in the first layout (heartbeat flags;
//! `tests/fixtures/format-v1/`, written at 7f400ca by `scripts/format-v1-fixture/`): what
//! changed since (`heartbeat/` and `log/` values; the queue's keys, regrouped by node), and the
//! one-shot migration (`membership::upgrade::migrate_v1`) that brings it to the current layout,
//! every value then decoding as the current types. The read through a store's own reader is in
//! `src/upgrade.rs` (it needs an engine feature).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::protocol::{Applied, Event, MigrationReason, NodeRecord, Placement, Slot};
use membership::upgrade::{heartbeat_layout, migrate_v1, Layout};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v1");

/// The stored keys and bytes, and the log records' keys in commit order.
fn fixture() -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let listing = std::fs::read_to_string(format!("{FIXTURE}/revisions")).unwrap();
    let mut entries = BTreeMap::new();
    let mut logs = Vec::new();
    for line in listing.lines() {
        let (revision, key) = line.split_once(' ').unwrap();
        let bytes = std::fs::read(format!("{FIXTURE}/store/{key}")).unwrap();
        if key.starts_with("log/") {
            logs.push((revision.parse::<u64>().unwrap(), key.to_string()));
        }
        entries.insert(key.to_string(), bytes);
    }
    logs.sort();
    (entries, logs.into_iter().map(|(_, k)| k).collect())
}

/// The value as the current build decodes it: the format byte 1, then JSON of `T`.
fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((1, json)) => serde_json::from_slice(json).map_err(|e| format!("{key}: {e}")),
        _ => Err(format!("{key}: not format version 1")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRecord {
    round: u64,
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredConfig {
    node_count: u16,
    actors_max: u64,
}

/// Decodes every value as the round layout reads it; the keys that do not decode.
fn undecodable(entries: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut failed = Vec::new();
    for (key, bytes) in entries {
        let family = key.split('/').next().unwrap();
        let result = match family {
            "config" => decode::<StoredConfig>(key, bytes).map(|c| {
                assert_eq!((c.node_count, c.actors_max), (3, 10_000_000));
            }),
            "node" => decode::<NodeRecord>(key, bytes).map(drop),
            "heartbeat" | "counter" | "load" | "hosted" | "round" => {
                decode::<u64>(key, bytes).map(drop)
            }
            "actor" => decode::<Placement>(key, bytes).map(drop),
            // Grouped by node (`queue/n3/c0`); a chunk by actor id (`queue/c0`) is not read.
            "queue" if key.split('/').count() == 3 => {
                decode::<Vec<(MigrationReason, Vec<u64>)>>(key, bytes).map(drop)
            }
            "queue" => Err(format!("{key}: a queue chunk by actor id")),
            "slot" => decode::<Slot>(key, bytes).map(drop),
            "proposal" => decode::<Applied>(key, bytes).map(drop),
            "log" => decode::<LogRecord>(key, bytes).map(drop),
            other => panic!("a key of no known family: {other}"),
        };
        if result.is_err() {
            failed.push(key.clone());
        }
    }
    failed
}

#[test]
fn only_heartbeats_log_records_and_the_queue_changed_shape_since_the_first_layout() {
    let (entries, logs) = fixture();
    assert_eq!(entries.len(), 66);
    assert_eq!(logs.len(), 19);
    let mut expected: Vec<String> = ["heartbeat/n1", "heartbeat/n2", "heartbeat/n3", "queue/c0"]
        .map(String::from)
        .to_vec();
    expected.extend(logs.iter().cloned());
    expected.sort();
    assert_eq!(undecodable(&entries), expected);
    assert_eq!(
        heartbeat_layout("heartbeat/n3", &entries["heartbeat/n3"]),
        Ok(Layout::Flags)
    );
}

#[test]
fn the_migration_brings_every_value_to_the_round_layout_once() {
    let (entries, logs) = fixture();
    let migration = migrate_v1(&entries, &logs).unwrap();
    let after = migration.apply(&entries);
    assert_eq!(undecodable(&after), Vec::<String>::new());
    // round 1: n1 and n2 heartbeated in it (flags true), n3 not (false: its latest heartbeat
    // was before round 1, so round 0).
    let rounds: Vec<u64> = ["heartbeat/n1", "heartbeat/n2", "heartbeat/n3"]
        .iter()
        .map(|k| decode::<u64>(k, &after[*k]).unwrap())
        .collect();
    assert_eq!(rounds, [1, 1, 0]);
    assert_eq!(
        heartbeat_layout("heartbeat/n3", &after["heartbeat/n3"]),
        Ok(Layout::Rounds)
    );
    // Log records in commit order: round 0 until the ResetHeartbeats, 1 from it on.
    let records: Vec<LogRecord> = logs
        .iter()
        .map(|k| decode::<LogRecord>(k, &after[k]).unwrap())
        .collect();
    let reset = records
        .iter()
        .position(|r| r.events == [Event::ResetHeartbeats])
        .unwrap();
    assert!(records[..reset].iter().all(|r| r.round == 0));
    assert!(records[reset..].iter().all(|r| r.round == 1));
    // The queue's chunk by actor id is regrouped under the node its entry leaves (a6 leaving
    // n3); nothing else is written, and a second run writes nothing.
    assert_eq!(migration.deletes.iter().collect::<Vec<_>>(), ["queue/c0"]);
    assert_eq!(
        decode::<Vec<(MigrationReason, Vec<u64>)>>("queue/n3/c0", &after["queue/n3/c0"]).unwrap(),
        [(MigrationReason::NodeLeaving, vec![6])]
    );
    assert!(migration
        .puts
        .keys()
        .all(|k| k.starts_with("heartbeat/") || k.starts_with("log/") || k == "queue/n3/c0"));
    assert!(migrate_v1(&after, &logs).unwrap().is_empty());
}

/// The fixture stored on the real etcd of `ETCD_ENDPOINTS` under a prefix of its own, migrated
/// by the operator's command (`membership migrate`), then read by a store of this build.
#[cfg(feature = "etcd")]
mod on_etcd {
    use super::fixture;
    use membership::protocol::{ActorId, MigrationEntry, MigrationReason, NodeId, NodeStatus};
    use membership::{EtcdStore, Store};
    use std::process::Command;

    fn membership(args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_membership"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    #[tokio::test]
    async fn the_migrate_command_brings_a_stored_first_layout_registry_to_this_builds() {
        let Ok(endpoints) = std::env::var("ETCD_ENDPOINTS") else {
            println!("SKIPPED: ETCD_ENDPOINTS not set");
            return;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let url = format!(
            "etcd://{endpoints}/format-v1/{}-{nanos}/",
            std::process::id()
        );
        let writer = EtcdStore::connect_url(&url).await.unwrap();
        writer.clear().await.unwrap();
        // Stored in the fixture's revision order: the log records' creation order is their
        // commit order.
        let (entries, logs) = fixture();
        let mut ordered: Vec<&String> = entries.keys().filter(|k| !logs.contains(k)).collect();
        ordered.extend(logs.iter());
        for key in ordered {
            writer
                .write_raw(key, Some(entries[key].clone()))
                .await
                .unwrap();
        }
        drop(writer);

        let (ok, out, err) = membership(&["migrate", "--store", &url, "--dry-run"]);
        assert!(ok, "{err}");
        // 3 heartbeats, 19 log records and the regrouped queue chunk; the old chunk removed.
        assert_eq!(
            out,
            "dry run: would migrate (23 keys written, 1 removed, in 1 transactions); nothing written"
        );
        let (ok, out, err) = membership(&["migrate", "--store", &url]);
        assert!(ok, "{err}");
        assert_eq!(
            out,
            "migrated: 23 keys written, 1 removed, in 1 transactions"
        );
        let (ok, out, _) = membership(&["migrate", "--store", &url]);
        assert!(ok);
        assert_eq!(
            out,
            "the registry is in this build's layout: nothing to migrate"
        );

        let store = EtcdStore::connect_url(&url).await.unwrap();
        let snapshot = store.snapshot().await.unwrap();
        let state = &snapshot.state;
        assert_eq!(snapshot.round, 1);
        assert_eq!(
            state.heartbeats().iter().map(|n| n.0).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            state.node(NodeId(3)).map(|r| r.status),
            Some(NodeStatus::Leaving)
        );
        assert_eq!(
            state
                .queue()
                .iter()
                .map(|(&a, &e)| (a, e))
                .collect::<Vec<_>>(),
            [(
                ActorId(6),
                MigrationEntry {
                    from: NodeId(3),
                    reason: MigrationReason::NodeLeaving
                }
            )]
        );
        assert_eq!(state.placements().len(), 6);
        let (ok, status, err) = membership(&["status", "--store", &url]);
        assert!(ok, "{err}");
        assert!(status.contains("n3"), "{status}");
        store.clear().await.unwrap();
    }
}
