//! The stored form of every registry and metadata key: a version byte, then JSON. Decoding
//! refuses a value of another version, a truncated one or garbage with a [`DecodeError`] naming
//! the key. Shared by every store.

use membership_core::{
    Applied, Key, MetaKey, MigrationEntry, NodeRecord, Placement, Slot, REGISTRY_FORMAT_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// A stored value that could not be decoded, naming its key.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("stored value of {key} cannot be decoded: {reason}")]
pub struct DecodeError {
    /// The key, as the store names it (`node/n2`, `actor/a7`, `slot/n1`, ...).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// The name of a metadata key.
pub fn meta_key_name(key: &MetaKey) -> String {
    match key {
        MetaKey::Slot(n) => format!("slot/{n}"),
        MetaKey::Round => "round".to_string(),
        MetaKey::Applied(id) => format!("proposal/{}/{}/{}", id.node, id.incarnation, id.seq),
    }
}

/// Encodes a value: the format version byte, then JSON.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let version = u8::try_from(REGISTRY_FORMAT_VERSION).unwrap_or(u8::MAX);
    let mut bytes = vec![version];
    // Serializing these plain data types to JSON cannot fail.
    if let Ok(json) = serde_json::to_vec(value) {
        bytes.extend(json);
    }
    bytes
}

/// Decodes the value stored under `key`.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, DecodeError> {
    let error = |reason: String| DecodeError {
        key: key.to_string(),
        reason,
    };
    let Some((&version, json)) = bytes.split_first() else {
        return Err(error("empty value".to_string()));
    };
    if u32::from(version) != REGISTRY_FORMAT_VERSION {
        return Err(error(format!(
            "format version {version}, this build reads version {REGISTRY_FORMAT_VERSION}"
        )));
    }
    serde_json::from_slice(json).map_err(|e| error(e.to_string()))
}

/// A registry value of a known kind, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// `node/n`.
    Node(NodeRecord),
    /// `heartbeat/n`.
    Heartbeat(bool),
    /// A counter or a load.
    Count(u64),
    /// `actor/a`.
    Actor(Placement),
    /// `queue/a`.
    Queue(MigrationEntry),
    /// `slot/n`.
    Slot(Slot),
    /// `proposal/...`.
    Applied(Applied),
}

/// Decodes the bytes stored under the registry key `key`.
pub fn decode_registry(key: &Key, bytes: &[u8]) -> Result<Stored, DecodeError> {
    let name = key.to_string();
    Ok(match key {
        Key::Node(_) => Stored::Node(decode(&name, bytes)?),
        Key::Heartbeat(_) => Stored::Heartbeat(decode(&name, bytes)?),
        Key::Counter(_) | Key::ActorCount | Key::Load(_) => Stored::Count(decode(&name, bytes)?),
        Key::Actor(_) => Stored::Actor(decode(&name, bytes)?),
        Key::Queue(_) => Stored::Queue(decode(&name, bytes)?),
        Key::Hosted(_) => Stored::Count(decode(&name, bytes)?),
    })
}

/// Decodes the bytes stored under the metadata key `key`.
pub fn decode_meta(key: &MetaKey, bytes: &[u8]) -> Result<Stored, DecodeError> {
    let name = meta_key_name(key);
    Ok(match key {
        MetaKey::Slot(_) => Stored::Slot(decode(&name, bytes)?),
        MetaKey::Round => Stored::Count(decode(&name, bytes)?),
        MetaKey::Applied(_) => Stored::Applied(decode(&name, bytes)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::NodeId;

    #[test]
    fn values_round_trip_and_bad_bytes_name_the_key() {
        let record = NodeRecord::INITIAL;
        let key = Key::Node(NodeId(2));
        let bytes = encode(&record);
        assert_eq!(decode_registry(&key, &bytes), Ok(Stored::Node(record)));
        let truncated = &bytes[..bytes.len() / 2];
        let err = decode_registry(&key, truncated).unwrap_err();
        assert_eq!(err.key, "node/n2");
        assert!(err
            .to_string()
            .starts_with("stored value of node/n2 cannot be decoded"));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert_eq!(
            decode_registry(&key, &wrong_version).unwrap_err().reason,
            "format version 9, this build reads version 1"
        );
        assert!(decode_registry(&key, b"\x01garbage").is_err());
        assert_eq!(
            decode_registry(&key, b"").unwrap_err().reason,
            "empty value"
        );
    }
}
