//! Fault injection (the test kit's, cargo feature `testing`): the faults a store can be told to
//! inject into its next proposals, and the one queue of them every store shares.

use crate::store::StoreError;
use membership_core::ProposalOutcome;
use std::collections::VecDeque;

/// The most faults that can be queued for injection.
pub const FAULTS_MAX: usize = 1_024;

/// A fault to inject into the next proposal (tests and the conformance suite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The commit applies, but the proposer is told `Unknown`.
    UnknownAfterCommit,
    /// Nothing is applied, and the proposer is told `Unknown`.
    UnknownBeforeCommit,
    /// Nothing is applied, and the proposer is told the store is unavailable.
    Unavailable,
    /// A commit applies a second time on retry: a broken store, to show that the replay check
    /// catches double application (never used but by that test).
    ApplyTwice,
    /// A broken store that validates only the keys a commit writes, not the rest of what the
    /// transaction read (it reads less than the event's footprint): concurrent commits are lost
    /// updates. Only the simulation's mutant test uses it, to show that its replay check
    /// catches it.
    ValidatesOnlyWrites,
}

impl Fault {
    /// Queues `fault` for the next proposals of a store, at most [`FAULTS_MAX`] (the rest are
    /// dropped): the one injection queue every store shares.
    pub(crate) fn enqueue(queue: &mut VecDeque<Fault>, fault: Fault) {
        if queue.len() < FAULTS_MAX {
            queue.push_back(fault);
        }
        debug_assert!(queue.len() <= FAULTS_MAX);
    }

    /// What a proposal is answered without running when `fault` is its injected fault
    /// (`None`: it runs, and the fault, if any, acts during or after its commit).
    pub(crate) fn answer_before_running(
        fault: Option<Fault>,
    ) -> Option<Result<ProposalOutcome, StoreError>> {
        match fault {
            Some(Fault::Unavailable) => Some(Err(StoreError::Unavailable("injected fault".into()))),
            Some(Fault::UnknownBeforeCommit) => Some(Ok(ProposalOutcome::Unknown)),
            _ => None,
        }
    }
}
