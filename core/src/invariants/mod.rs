//! The spec's invariants as pure predicates, one definition each, shared by the unit tests, the
//! model checker and the simulation.
//!
//! State invariants take one [`State`]; transition invariants (the spec's action properties,
//! `[][P]_vars`) take the state before and after one step. Each returns `Ok(())` or the
//! [`Violation`] naming the invariant and the nodes involved. The liveness properties are
//! defined here as the set of states a fair behaviour must not stay in forever, plus the
//! fairness assumption; the model checker decides them on the reachable graph.

mod liveness;
mod state_predicates;
mod transition_predicates;
mod violation;

pub use liveness::{fair_events, Liveness};
pub use state_predicates::{
    at_most_one_primary, join_atomicity, leave_detection_weak, membership_consistency,
    migration_queue_bounded, no_split_brain, single_activation, type_ok,
};
pub use transition_predicates::{
    epoch_monotonic, failure_needs_quorum, failure_requires_detection, fencing_term_monotonic,
    migration_by_primary, minority_cannot_elect, own_heartbeat, votes_expire_with_round,
};
pub use violation::{Invariant, StateInvariant, TransitionInvariant, Violation};

use crate::state::State;

impl StateInvariant {
    /// Checks this invariant on `state`.
    pub fn check(self, state: &State) -> Result<(), Violation> {
        match self {
            StateInvariant::TypeOK => type_ok(state),
            StateInvariant::MembershipConsistency => membership_consistency(state),
            StateInvariant::JoinAtomicity => join_atomicity(state),
            StateInvariant::LeaveDetectionWeak => leave_detection_weak(state),
            StateInvariant::NoSplitBrain => no_split_brain(state),
            StateInvariant::AtMostOnePrimary => at_most_one_primary(state),
            StateInvariant::SingleActivation => single_activation(state),
            StateInvariant::MigrationQueueBounded => migration_queue_bounded(state),
        }
    }
}

impl TransitionInvariant {
    /// Checks this invariant on one step from `before` to `after`.
    pub fn check(self, before: &State, after: &State) -> Result<(), Violation> {
        match self {
            TransitionInvariant::FencingTermMonotonic => fencing_term_monotonic(before, after),
            TransitionInvariant::MinorityCannotElect => minority_cannot_elect(before, after),
            TransitionInvariant::FailureRequiresDetection => {
                failure_requires_detection(before, after)
            }
            TransitionInvariant::FailureNeedsQuorum => failure_needs_quorum(before, after),
            TransitionInvariant::EpochMonotonic => epoch_monotonic(before, after),
            TransitionInvariant::MigrationByPrimary => migration_by_primary(before, after),
            TransitionInvariant::OwnHeartbeat => own_heartbeat(before, after),
            TransitionInvariant::VotesExpireWithRound => votes_expire_with_round(before, after),
        }
    }
}

/// Every state invariant, in order; the first violation found.
pub fn check_state(state: &State) -> Result<(), Violation> {
    StateInvariant::ALL
        .iter()
        .try_for_each(|inv| inv.check(state))
}

/// Every transition invariant on one step; the first violation found.
pub fn check_transition(before: &State, after: &State) -> Result<(), Violation> {
    TransitionInvariant::ALL
        .iter()
        .try_for_each(|inv| inv.check(before, after))
}
