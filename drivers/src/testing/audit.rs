//! What the store conformance suite (`drivers/tests/conformance/`) needs from a store beyond
//! [`Store`]: its committed log, fault injection, corruption and repair of one stored value, an
//! import, and the engine's limits. Every store implements it; nothing in the runtime uses it.
//!
//! **The committed log** is kept by the store itself, so that it is the same for every store
//! and does not depend on what the proposers heard: the in-memory store logs every commit
//! ([`MemoryStore::log`]); the etcd store writes each committed proposal's spec actions under
//! `log/<node>/<incarnation>/<seq>` in the same transaction (when
//! `EtcdOptions::record_log` is on) and orders them by the revision that created the key.
//! Replaying it through `step` from the initial registry must give the stored registry.

use crate::fault::Fault;
use crate::keys::StoreKey;
use crate::memory::MemoryStore;
use crate::store::{Logged, Snapshot, Store, StoreError};
use membership_core::{State, MIGRATION_BATCH_MAX};
use std::future::Future;

/// An engine's limits on one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most operations (compares, writes) per transaction (`None`: no limit).
    pub ops_max: Option<u64>,
    /// The most bytes written per transaction.
    pub write_bytes_max: u64,
    /// The most MigrateActor moves one transaction makes.
    pub moves_max: u64,
}

/// The in-memory store's limits: FoundationDB's recommended 1 MB per transaction and
/// [`MIGRATION_BATCH_MAX`] moves (it enforces neither: it measures, and the suite checks).
pub const MEMORY_LIMITS: Limits = Limits {
    ops_max: None,
    write_bytes_max: 1_000_000,
    moves_max: MIGRATION_BATCH_MAX as u64,
};

/// A store the conformance suite can audit.
pub trait Audit: Store {
    /// The committed transactions, in commit order.
    fn committed_log(&self) -> impl Future<Output = Result<Vec<Logged>, StoreError>> + Send;

    /// Queues a fault for the next proposal.
    fn inject(&self, fault: Fault);

    /// Stores `bytes` under `key` as they are: a corrupted value.
    fn corrupt(
        &self,
        key: StoreKey,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `key`'s value from `before` again (repairs a corruption).
    fn repair(
        &self,
        key: StoreKey,
        before: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces the registry with `state` (tests build large registries this way; not one
    /// transaction on a real engine: only for a store no node uses meanwhile).
    fn import(&self, state: State) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The engine's limits.
    fn limits(&self) -> Limits;
}

impl Audit for MemoryStore {
    async fn committed_log(&self) -> Result<Vec<Logged>, StoreError> {
        Ok(self.log())
    }

    fn inject(&self, fault: Fault) {
        MemoryStore::inject(self, fault);
    }

    async fn corrupt(&self, key: StoreKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        MemoryStore::corrupt(self, key, bytes);
        Ok(())
    }

    async fn repair(&self, key: StoreKey, before: &Snapshot) -> Result<(), StoreError> {
        // The in-memory store keeps decoded values: a corruption is an overlay on one key, and
        // a restore of the registry drops it.
        let _ = key;
        self.replace_state(before.state.clone());
        Ok(())
    }

    async fn import(&self, state: State) -> Result<(), StoreError> {
        self.account_sizes(true);
        self.replace_state(state);
        Ok(())
    }

    fn limits(&self) -> Limits {
        MEMORY_LIMITS
    }
}

#[cfg(any(feature = "etcd", feature = "fdb"))]
impl Snapshot {
    /// The metadata a snapshot carries (slots and round; no proposal records).
    pub(crate) fn slots_meta(&self) -> membership_core::Meta {
        membership_core::Meta {
            slots: self.slots.clone(),
            round: self.round,
            applied: imbl::OrdMap::new(),
            heartbeat_rounds: self.heartbeat_rounds.clone(),
        }
    }
}
