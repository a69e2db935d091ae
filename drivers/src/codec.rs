//! The stored form of every registry and metadata key: a version byte, then JSON. Decoding
//! refuses a value of another version, a truncated one or garbage with a [`DecodeError`] naming
//! the key. Shared by every store.

use membership_core::REGISTRY_FORMAT_VERSION;
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
