//! The test kit (cargo feature `testing`, off by default): what the crate's tests, the store
//! conformance suite, the examples that measure a store and the simulation (`membership-sim`)
//! need beyond the public runtime. A production build has none of it, so a store built
//! without the feature has no way to break itself on purpose.
//!
//! - **Fault injection** ([`Fault`]): a store answers its next proposals with an injected
//!   fault, or (the in-memory store's broken modes) applies a commit twice or validates too
//!   little, to show that the checks catch it.
//! - **The store audit** ([`Audit`]): a store's committed log ([`Logged`]), corruption and repair
//!   of one stored value ([`StoreKey`]), an import of a whole registry, the engine's
//!   [`Limits`].
//! - **The in-memory store's step-wise transactions** ([`MemoryStore::begin`] gives a
//!   [`Transaction`], [`MemoryStore::try_commit`] an [`Attempt`]), its log
//!   ([`MemoryStore::log`], at most [`COMMIT_LOG_MAX`] commits), [`MemoryStore::corrupt`] and
//!   [`MemoryStore::set_unreachable`].
//! - **The single-activation audit** of a cluster's notifications
//!   ([`check_single_activation`]).
//! - **A cuttable link to a store** ([`CutLink`]): one node loses the store while its process
//!   and probe listener run on.
//! - **The engines' registry cache, fed by the simulation** ([`RegistryCache`] on a
//!   [`FeedSource`]): the simulation puts the cache and its confirmation rule in the loop.

mod activation;
mod audit;
mod feed_cache;
mod link;

#[cfg(doc)]
use crate::MemoryStore;

pub use crate::clock::ClockSkew;
pub use crate::fault::{Fault, FAULTS_MAX};
pub use crate::keys::StoreKey;
pub use crate::memory::{Attempt, Transaction, COMMIT_LOG_MAX};
pub use crate::store::Logged;
pub use activation::{check_single_activation, DoubleActivation};
pub use audit::{Audit, Limits, MEMORY_LIMITS};
pub use feed_cache::{FeedCommit, FeedSource, RegistryCache};
pub use link::CutLink;

/// Encodes a value as every store stores it: the format version byte, then JSON (to corrupt
/// or rewrite a stored value in a test).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    crate::codec::encode(value)
}
