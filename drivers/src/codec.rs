//! The stored form of every registry and metadata key: a version byte, then JSON. Decoding
//! refuses a value of another version, a truncated one or garbage with a [`DecodeError`] naming
//! the key. Shared by every store.

#[cfg(feature = "testing")]
use crate::keys::{meta_key_name, registry_key_name};
use membership_core::REGISTRY_FORMAT_VERSION;
#[cfg(feature = "testing")]
use membership_core::{Applied, Key, MetaKey, MigrationEntry, NodeRecord, Placement, Slot};
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
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

/// Encodes a value: the format version byte, then JSON.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let version = u8::try_from(REGISTRY_FORMAT_VERSION).unwrap_or(u8::MAX);
    let mut bytes = vec![version];
    // Serializing these plain data types to JSON cannot fail.
    if let Ok(json) = serde_json::to_vec(value) {
        bytes.extend(json);
    }
    bytes
}

/// Decodes the value stored under `key`.
#[cfg(any(feature = "testing", feature = "etcd", feature = "fdb"))]
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, DecodeError> {
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

/// Checks that `bytes` decode as the value of registry key `key` (the in-memory store's check
/// of a corrupted value; a queue entry is one entry, named by its chunk's key).
#[cfg(feature = "testing")]
pub(crate) fn check_registry(key: &Key, bytes: &[u8]) -> Result<(), DecodeError> {
    let name = registry_key_name(key);
    match key {
        Key::Node(_) => decode::<NodeRecord>(&name, bytes).map(|_| ()),
        Key::Heartbeat(_) => decode::<bool>(&name, bytes).map(|_| ()),
        Key::Counter(_) | Key::ActorCount | Key::Load(_) | Key::Hosted(_) | Key::Members => {
            decode::<u64>(&name, bytes).map(|_| ())
        }
        Key::Actor(_) => decode::<Placement>(&name, bytes).map(|_| ()),
        Key::Queue(_) => decode::<MigrationEntry>(&name, bytes).map(|_| ()),
    }
}

/// Checks that `bytes` decode as the value of metadata key `key`.
#[cfg(feature = "testing")]
pub(crate) fn check_meta(key: &MetaKey, bytes: &[u8]) -> Result<(), DecodeError> {
    let name = meta_key_name(key);
    match key {
        MetaKey::Slot(_) => decode::<Slot>(&name, bytes).map(|_| ()),
        MetaKey::Round => decode::<u64>(&name, bytes).map(|_| ()),
        MetaKey::Applied(_) => decode::<Applied>(&name, bytes).map(|_| ()),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use membership_core::NodeId;

    #[test]
    fn values_round_trip_and_bad_bytes_name_the_key() {
        let record = NodeRecord::INITIAL;
        let key = Key::Node(NodeId(2));
        let bytes = encode(&record);
        assert_eq!(check_registry(&key, &bytes), Ok(()));
        let truncated = &bytes[..bytes.len() / 2];
        let err = check_registry(&key, truncated).unwrap_err();
        assert_eq!(err.key, "node/n2");
        assert!(err
            .to_string()
            .starts_with("stored value of node/n2 cannot be decoded"));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert_eq!(
            check_registry(&key, &wrong_version).unwrap_err().reason,
            "format version 9, this build reads version 1"
        );
        assert!(check_registry(&key, b"\x01garbage").is_err());
        assert_eq!(check_registry(&key, b"").unwrap_err().reason, "empty value");
    }
}
