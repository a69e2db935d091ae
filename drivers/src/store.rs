//! The one `Store` trait: run a proposal as one serializable transaction, read a snapshot,
//! claim a node slot, and wake waiting nodes after a commit.

use crate::codec::DecodeError;
#[cfg(feature = "testing")]
use membership_core::ProposalId;
use membership_core::{Config, Event, Meta, NodeId, Proposal, ProposalOutcome, Slot, State};
use std::collections::BTreeMap;
use std::future::Future;
use thiserror::Error;
use tokio::sync::watch;

/// A consistent read of the whole registry and the drivers' metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The registry.
    pub state: State,
    /// The heartbeat round.
    pub round: u64,
    /// The round each node's latest heartbeat names (absent: none).
    pub heartbeat_rounds: imbl::OrdMap<NodeId, u64>,
    /// The node slots (incarnations and probe addresses).
    pub slots: imbl::OrdMap<NodeId, Slot>,
    /// The store's revision when read (grows with every commit).
    pub revision: u64,
    /// When the store last confirmed that this was the latest registry, in ms of the host's
    /// `CLOCK_BOOTTIME` (which counts suspend), if that may be before the snapshot was asked for
    /// (a cache fed by a change feed, confirmed by a small read that other snapshots share: the
    /// etcd and FoundationDB stores). `None`: it was read after it was asked for. A node measures the snapshot's
    /// age from the earlier of the two.
    pub confirmed_at: Option<u64>,
}

impl Snapshot {
    /// The snapshot of a registry and its metadata at `revision`.
    pub fn of(state: State, meta: &Meta, revision: u64) -> Snapshot {
        Snapshot {
            state,
            round: meta.round,
            heartbeat_rounds: meta.heartbeat_rounds.clone(),
            slots: meta.slots.clone(),
            revision,
            confirmed_at: None,
        }
    }
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The store could not be reached (nothing was written).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused this client's credentials or permissions (no certificate it trusts,
    /// or a user whose role does not cover the registry's keys): nothing was written.
    #[error("the store refused access: {0}")]
    Denied(String),
    /// A stored value could not be decoded; it names the key. Nothing was written.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The store holds a registry of another shape than asked for.
    #[error("the store holds a registry for {found} nodes, not {expected}")]
    Shape {
        /// The node count stored.
        found: u16,
        /// The node count asked for.
        expected: u16,
    },
    /// The node is not a node of the stored registry.
    #[error("{node} is not a node of this cluster")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },
    /// The store was not initialised with a registry.
    #[error("the store holds no registry: initialise it first")]
    Uninitialised,
    /// The transaction does not fit the engine's limits (nothing was written).
    #[error("{action} needs {ops} operations and {bytes} bytes in one transaction: more than the engine allows")]
    TooLarge {
        /// The action.
        action: String,
        /// The operations (compares or writes, whichever is more).
        ops: u64,
        /// The bytes written.
        bytes: u64,
    },
    /// The registry changed while a one-shot migration rewrote it (a node ran meanwhile): the
    /// transaction that would have rewritten `key` wrote nothing.
    #[error("the registry changed during the migration (at {key}, read at revision {revision}): stop every node and run the migration again")]
    Changed {
        /// The first key of the transaction refused.
        key: String,
        /// The revision the migration read the registry at.
        revision: i64,
    },
    /// A store URL that cannot be used.
    #[error("store URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// One committed transaction, as a store's committed log records it (the test kit's audit).
#[cfg(feature = "testing")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The store revision it created (etcd: the revision that created the log record;
    /// FoundationDB: its place in commit order).
    pub revision: u64,
    /// The proposal.
    pub id: ProposalId,
    /// The heartbeat round the commit ran at (after it, for ResetHeartbeats). A heartbeat
    /// whose round is below the one open when it landed names a closed round:
    /// it changed no flag, and a replay skips it.
    pub round: u64,
    /// The spec actions applied, in order.
    pub events: Vec<Event>,
}

/// Transaction counts by spec action, for the performance figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Committed transactions by action (a migration batch counts under MigrateActor).
    pub commits: BTreeMap<String, u64>,
    /// Transactions that conflicted with a concurrent commit, by action.
    pub conflicts: BTreeMap<String, u64>,
    /// Conflicts by (the action that conflicted, the action whose commit it conflicted with).
    pub conflict_pairs: BTreeMap<(String, String), u64>,
    /// Attempts run again after a conflict, by action.
    pub retries: BTreeMap<String, u64>,
    /// Proposals refused, by action.
    pub refusals: BTreeMap<String, u64>,
    /// The largest transaction written, in encoded bytes.
    pub largest_write_bytes: u64,
    /// The most operations (compares or writes) of one transaction (0 when the store does not
    /// count them, as the in-memory store).
    pub largest_write_ops: u64,
    /// Commit requests whose outcome the store could not learn (a timeout, a lost connection, a
    /// leader change) and that it resolved itself by running the proposal again: it found the
    /// proposal applied (recognised by its id) or applied it once.
    pub uncertain_resolved: u64,
    /// Proposals the store answered `Unknown` (injected faults included).
    pub unknown_outcomes: u64,
    /// The most keys one committed transaction read (and compared at commit), by action: its
    /// read footprint with the metadata `execute` reads (the proposer's slot, the round, the
    /// proposal's record), queue chunks written included.
    pub keys_read_max: BTreeMap<String, u64>,
    /// Reads a store made to learn that its registry cache is current (etcd: the linearizable
    /// read of the commit marker; FoundationDB: a fresh read version and the marker at it).
    pub confirm_reads: u64,
    /// Whole-registry loads of the store's cache (the first, then one per gap: etcd's watch
    /// compacted away, FoundationDB's feed trimmed past the cache).
    pub cache_loads: u64,
}

impl StoreStats {
    /// Total committed transactions.
    pub fn total_commits(&self) -> u64 {
        self.commits.values().sum()
    }

    /// Total conflicts.
    pub fn total_conflicts(&self) -> u64 {
        self.conflicts.values().sum()
    }
}

/// The name under which a proposal's action is counted.
pub(crate) fn action_name(proposal: &Proposal) -> String {
    match proposal.action {
        membership_core::Action::Step(e) => e.name().to_string(),
        membership_core::Action::PlaceBatch { .. } => Event::PlaceActor {
            actor: membership_core::ActorId(0),
        }
        .name()
        .to_string(),
        membership_core::Action::MigrateBatch { .. } => Event::MigrateActor {
            actor: membership_core::ActorId(0),
            term: 0,
        }
        .name()
        .to_string(),
    }
}

/// A serializable store of the registry. Every implementation runs [`membership_core::execute`]
/// inside its engine's transaction: it reads the proposal's footprint (and the metadata keys
/// `execute` reads), runs it, writes the returned delta and metadata, and commits; a conflict with
/// a concurrent commit runs it again. The effects reach the proposer only after the commit.
pub trait Store: Send + Sync + 'static {
    /// Writes the initial registry for `config` if the store holds none; accepts an existing
    /// registry of the same node count (a restart), and refuses another shape.
    fn init(&self, config: Config) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims `node`'s slot for a new process answering probes at `address`: the next
    /// incarnation. Every earlier incarnation's proposals are refused from now on.
    fn claim(
        &self,
        node: NodeId,
        address: &str,
    ) -> impl Future<Output = Result<Slot, StoreError>> + Send;

    /// Runs `proposal` as one serializable transaction. `Ok(Committed)` and `Ok(Refused)` are
    /// final; `Ok(Unknown)` means it may have been written (a retry with the same proposal id is
    /// recognised and not applied twice); `Err` means it could not run and nothing was written
    /// (the store is unreachable, or a key it reads holds an undecodable value, named).
    fn propose(
        &self,
        proposal: Proposal,
    ) -> impl Future<Output = Result<ProposalOutcome, StoreError>> + Send;

    /// A consistent snapshot of the registry and the metadata.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// A receiver whose value changes after every commit (the Agent's wake-up).
    fn watch(&self) -> watch::Receiver<u64>;

    /// The transaction statistics of this store handle so far (commits, conflicts, retries,
    /// sizes).
    fn stats(&self) -> StoreStats;
}
