//! The committed log's record, as every store's audit returns it.

use membership_core::{Event, ProposalId};

/// One committed transaction, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The store revision it created (etcd: the revision that created the log record;
    /// FoundationDB: its place in commit order).
    pub revision: u64,
    /// The proposal.
    pub id: ProposalId,
    /// The spec actions applied, in order.
    pub events: Vec<Event>,
}
