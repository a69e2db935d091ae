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

use crate::actor::ActorId;
use crate::node::NodeSet;
use crate::state::State;
use imbl::ordmap::DiffItem;
use imbl::ordset::DiffItem as SetDiffItem;
use std::collections::BTreeSet;

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

/// Every state invariant on `after`, a successor of `before` on which they all held: the
/// verdict (and the violation) of [`check_state`]`(after)` then, at the cost of what changed
/// instead of every actor. The node-level parts run on every step (MembershipConsistency on the
/// pairs of members with a changed record only, when a record or the view counter changed);
/// the per-actor parts
/// on the actors whose placement, queue entry or index entry changed and on every actor of a
/// node whose status changed (on every actor when the epoch counter went down or the
/// configuration changed). It shares each invariant's definition with [`check_state`]. With
/// `before` already violating an invariant it may miss what `check_state(after)` would report:
/// a checker that uses it checks the whole state now and then.
pub fn check_state_step(before: &State, after: &State) -> Result<(), Violation> {
    if after.epoch_counter() < before.epoch_counter() || before.config() != after.config() {
        return check_state(after);
    }
    let records_changed = !std::ptr::eq(before.nodes(), after.nodes());
    let mut actors: BTreeSet<ActorId> = BTreeSet::new();
    actors.extend(
        before
            .placements()
            .diff(after.placements())
            .map(|item| match item {
                DiffItem::Add(&a, _) | DiffItem::Remove(&a, _) => a,
                DiffItem::Update { new: (&a, _), .. } => a,
            }),
    );
    actors.extend(before.queue().diff(after.queue()).map(|item| match item {
        DiffItem::Add(&a, _) | DiffItem::Remove(&a, _) => a,
        DiffItem::Update { new: (&a, _), .. } => a,
    }));
    for item in before.hosted_index().diff(after.hosted_index()) {
        match item {
            DiffItem::Add(_, set) | DiffItem::Remove(_, set) => actors.extend(set.iter()),
            DiffItem::Update {
                old: (_, old),
                new: (_, new),
            } => actors.extend(old.diff(new).map(|d| match d {
                SetDiffItem::Add(&a) | SetDiffItem::Remove(&a) => a,
            })),
        }
    }
    let mut changed = NodeSet::EMPTY;
    if records_changed {
        for (n, (b, a)) in after
            .node_ids()
            .zip(before.nodes().iter().zip(after.nodes()))
        {
            if b != a {
                changed.insert(n);
            }
            if b.status != a.status {
                actors.extend(after.hosted(n).into_iter().flat_map(|set| set.iter()));
            }
        }
    }
    state_predicates::type_ok_nodes(after)?;
    let bounds = state_predicates::ActorBounds::of(after);
    for &actor in &actors {
        if let Some(p) = after.placement(actor) {
            state_predicates::type_ok_actor(after, &bounds, actor, &p)?;
        }
    }
    if !changed.is_empty() || before.view_counter() != after.view_counter() {
        state_predicates::membership_consistency_changed(after, &changed)?;
    }
    join_atomicity(after)?;
    leave_detection_weak(after)?;
    no_split_brain(after)?;
    at_most_one_primary(after)?;
    state_predicates::single_activation_count(after)?;
    for &actor in &actors {
        if let Some(p) = after.placement(actor) {
            state_predicates::single_activation_actor(after, actor, &p)?;
        }
    }
    state_predicates::migration_queue_count(after)?;
    for &actor in &actors {
        if let Some(entry) = after.queue().get(actor) {
            state_predicates::migration_queue_entry(after, actor, &entry)?;
        }
    }
    Ok(())
}

/// Every transition invariant on one step; the first violation found.
pub fn check_transition(before: &State, after: &State) -> Result<(), Violation> {
    TransitionInvariant::ALL
        .iter()
        .try_for_each(|inv| inv.check(before, after))
}
