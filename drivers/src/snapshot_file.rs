//! A registry snapshot kept in a file: what an embedded cluster on the in-memory store writes for
//! the command line to read (`membership status --store file:PATH`, `actors`, `watch`), and what
//! tests point the command line at without an etcd.
//!
//! The file is JSON: `{"format": 1, "revision": ..., "round": ..., "state": ...,
//! "slots": ..., "heartbeat_rounds": ...}`, the state in its persisted form
//! ([`membership_core::RegistryFields`]), validated when read like any stored registry: a file
//! that does not decode, or holds a registry that breaks an invariant, is a
//! [`StoreError::Decode`] naming the file and what is wrong. [`write()`] replaces the file
//! atomically (a new file renamed over the old), so a reader never sees half of one.

use crate::codec::DecodeError;
use crate::store::{Snapshot, StoreError};
use membership_core::{Meta, NodeId, Slot, State};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The version of the file's layout.
pub const SNAPSHOT_FILE_FORMAT: u32 = 1;

/// The largest snapshot file read, in bytes (a million placed actors take about 60 MB).
pub const SNAPSHOT_FILE_BYTES_MAX: u64 = 1 << 30;

/// The file as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    format: u32,
    revision: u64,
    round: u64,
    state: State,
    slots: imbl::OrdMap<NodeId, Slot>,
    heartbeat_rounds: imbl::OrdMap<NodeId, u64>,
}

/// The file as written: the same fields, borrowed from the snapshot (no copy of the registry).
#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    format: u32,
    revision: u64,
    round: u64,
    state: &'a State,
    slots: &'a imbl::OrdMap<NodeId, Slot>,
    heartbeat_rounds: &'a imbl::OrdMap<NodeId, u64>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// Writes `snapshot` to `path`, replacing the file atomically.
pub fn write(path: &Path, snapshot: &Snapshot) -> Result<(), StoreError> {
    let file = SnapshotFileRef {
        format: SNAPSHOT_FILE_FORMAT,
        revision: snapshot.revision,
        round: snapshot.round,
        state: &snapshot.state,
        slots: &snapshot.slots,
        heartbeat_rounds: &snapshot.heartbeat_rounds,
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| io_error(path, e))?;
    debug_assert!(!bytes.is_empty());
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    let staged = std::path::PathBuf::from(staged);
    std::fs::write(&staged, &bytes).map_err(|e| io_error(&staged, e))?;
    std::fs::rename(&staged, path).map_err(|e| io_error(path, e))
}

/// Reads the snapshot in `path` (at most [`SNAPSHOT_FILE_BYTES_MAX`] bytes).
pub fn read(path: &Path) -> Result<Snapshot, StoreError> {
    let length = std::fs::metadata(path)
        .map_err(|e| io_error(path, e))?
        .len();
    let undecodable = |reason: String| {
        StoreError::Decode(DecodeError {
            key: path.display().to_string(),
            reason,
        })
    };
    if length > SNAPSHOT_FILE_BYTES_MAX {
        return Err(undecodable(format!(
            "{length} bytes, more than {SNAPSHOT_FILE_BYTES_MAX}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let file: SnapshotFile =
        serde_json::from_slice(&bytes).map_err(|e| undecodable(e.to_string()))?;
    if file.format != SNAPSHOT_FILE_FORMAT {
        return Err(undecodable(format!(
            "snapshot file format {}, not {SNAPSHOT_FILE_FORMAT}",
            file.format
        )));
    }
    let meta = Meta {
        slots: file.slots,
        round: file.round,
        heartbeat_rounds: file.heartbeat_rounds,
        ..Meta::default()
    };
    let snapshot = Snapshot::of(file.state, &meta, file.revision);
    debug_assert_eq!(snapshot.round, file.round);
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::testing::all_active;
    use membership_core::{step, ActorId, Config, Event};

    fn snapshot() -> Snapshot {
        let mut state = State::initial(Config::fixed(3).unwrap());
        for e in all_active(3)
            .into_iter()
            .chain([Event::PlaceActor { actor: ActorId(7) }])
        {
            state = step(&state, &e).unwrap().0;
        }
        let mut meta = Meta {
            round: 4,
            ..Meta::default()
        };
        meta.slots.insert(
            NodeId(1),
            Slot {
                incarnation: 2,
                address: "127.0.0.1:7001".to_string(),
            },
        );
        meta.heartbeat_rounds.insert(NodeId(1), 4);
        Snapshot::of(state, &meta, 17)
    }

    #[test]
    fn a_snapshot_reads_back_as_written_and_a_bad_file_is_named() {
        let dir = std::env::temp_dir().join(format!("membership-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.json");
        let written = snapshot();
        write(&path, &written).unwrap();
        assert_eq!(read(&path).unwrap(), written);
        std::fs::write(&path, b"{\"format\": 1}").unwrap();
        match read(&path) {
            Err(StoreError::Decode(e)) => {
                assert_eq!(e.key, path.display().to_string());
                assert!(e.reason.contains("missing field"), "{}", e.reason);
            }
            other => panic!("{other:?}"),
        }
        let missing = dir.join("none.json");
        assert!(matches!(read(&missing), Err(StoreError::Unavailable(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
