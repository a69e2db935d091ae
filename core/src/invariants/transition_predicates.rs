//! The transition invariants (the spec's action properties, `[][P]_vars`): predicates on the
//! state before and after one step.

use super::violation::{violation, TransitionInvariant, Violation};
use crate::actor::{ActorId, Placement};
use crate::node::{NodeId, NodeStatus};
use crate::state::State;
use imbl::ordmap::DiffItem;

/// FencingTermMonotonic (transition): the registry's term (see [`State::registry_term`]) never
/// decreases, and a node that newly holds a primary term holds one above every term granted
/// before the step (a term is never granted twice).
pub fn fencing_term_monotonic(before: &State, after: &State) -> Result<(), Violation> {
    let (was, is) = (before.registry_term(), after.registry_term());
    if is < was {
        return violation(
            TransitionInvariant::FencingTermMonotonic,
            &[],
            format!("registry term went from {was} down to {is}"),
        );
    }
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        let granted = ra.believes_primary && (!rb.believes_primary || rb.term != ra.term);
        if granted && ra.term <= was {
            return violation(
                TransitionInvariant::FencingTermMonotonic,
                &[n],
                format!(
                    "{n} was granted term {} but term {was} had already been granted",
                    ra.term
                ),
            );
        }
    }
    Ok(())
}

/// MinorityCannotElect (transition): a node that newly believes it is primary has a majority,
/// unless no node was Active before the step (the bootstrap of an empty cluster).
pub fn minority_cannot_elect(before: &State, after: &State) -> Result<(), Violation> {
    if before.active().is_empty() {
        return Ok(());
    }
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        if ra.believes_primary && !rb.believes_primary && !after.has_majority(n) {
            return violation(
                TransitionInvariant::MinorityCannotElect,
                &[n],
                format!(
                    "{n} became primary reaching only {}",
                    after.reachable_active(n)
                ),
            );
        }
    }
    Ok(())
}

/// FailureRequiresDetection (transition): a node that goes from Active to Failed had, before the
/// step, committed no heartbeat in the round (the registry's own evidence), or an Active detector
/// `d` that had recorded a detection of it (`n \in detected[d]`) and could not communicate with
/// it.
pub fn failure_requires_detection(before: &State, after: &State) -> Result<(), Violation> {
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        if rb.status == NodeStatus::Active && ra.status == NodeStatus::Failed {
            let detected = !before.heartbeat_received(n)
                || before.active().without(n).iter().any(|d| {
                    before.node(d).is_some_and(|rd| rd.detected.contains(n))
                        && !before.can_communicate(d, n)
                });
            if !detected {
                return violation(
                    TransitionInvariant::FailureRequiresDetection,
                    &[n],
                    format!("{n} was declared failed without an Active peer having detected it"),
                );
            }
        }
    }
    Ok(())
}

/// FailureNeedsQuorum (transition): a node that goes from Active to Failed had, before the step,
/// committed no heartbeat in the round, or the votes of a strict majority of the members: Active
/// peers `d` that had recorded a detection of it (`n \in detected[d]`) this round and could not
/// communicate with it ([`State::failure_votes`], the same majority as `has_majority`). Stronger
/// than FailureRequiresDetection, which asks for one such peer. Since every vote comes from a
/// node that cannot reach `n`, a node that reaches no majority, or the nodes of any minority, can
/// never get a heartbeating node declared failed on their own; in particular one observer cut
/// off from every peer (a degraded observer) contributes one vote, never a majority.
pub fn failure_needs_quorum(before: &State, after: &State) -> Result<(), Violation> {
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        if rb.status == NodeStatus::Active
            && ra.status == NodeStatus::Failed
            && !before.has_failure_quorum(n)
        {
            let votes = before.failure_votes(n);
            let mut nodes: Vec<NodeId> = votes.iter().collect();
            nodes.push(n);
            return violation(
                TransitionInvariant::FailureNeedsQuorum,
                &nodes,
                format!(
                    "{n} was declared failed with the votes of {votes} (heartbeat received: {}); \
                     a majority of {} members needs {}",
                    before.heartbeat_received(n),
                    before.quorum_size(),
                    before.majority()
                ),
            );
        }
    }
    Ok(())
}

/// EpochMonotonic (transition): the epoch counter never decreases; an actor placed before and
/// after keeps or raises its epoch, and raises it whenever it moves; a newly placed actor gets an
/// epoch above every epoch issued before.
pub fn epoch_monotonic(before: &State, after: &State) -> Result<(), Violation> {
    if after.epoch_counter() < before.epoch_counter() {
        return violation(
            TransitionInvariant::EpochMonotonic,
            &[],
            format!(
                "epoch counter went from {} down to {}",
                before.epoch_counter(),
                after.epoch_counter()
            ),
        );
    }
    // Only the actors whose placement changed can break it (an unchanged one keeps its epoch):
    // the diff skips what the two states share.
    for (actor, pa) in changed_placements(before, after) {
        match before.placement(actor) {
            Some(pb) if pa.epoch < pb.epoch || (pa.node != pb.node && pa.epoch <= pb.epoch) => {
                return violation(
                    TransitionInvariant::EpochMonotonic,
                    &[pb.node, pa.node],
                    format!(
                        "{actor} went from {}@{} to {}@{}",
                        pb.node, pb.epoch, pa.node, pa.epoch
                    ),
                );
            }
            None if pa.epoch <= before.epoch_counter() => {
                return violation(
                    TransitionInvariant::EpochMonotonic,
                    &[pa.node],
                    format!(
                        "{actor} was placed with epoch {} but {} had been issued",
                        pa.epoch,
                        before.epoch_counter()
                    ),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// MigrationByPrimary (transition): an actor that moves from one node to another does so while a
/// valid primary holds the registry's current term.
pub fn migration_by_primary(before: &State, after: &State) -> Result<(), Violation> {
    if before.primary_in_office().is_some() {
        return Ok(());
    }
    for (actor, pa) in changed_placements(before, after) {
        if let Some(pb) = before.placement(actor) {
            if pb.node != pa.node {
                return violation(
                    TransitionInvariant::MigrationByPrimary,
                    &[pb.node, pa.node],
                    format!(
                        "{actor} moved from {} to {} with no valid primary holding term {}",
                        pb.node,
                        pa.node,
                        before.term_counter()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// OwnHeartbeat (transition, registry v2): no step sets the heartbeat flags of two nodes: each
/// node's heartbeat is its own committed transaction, never a peer's.
pub fn own_heartbeat(before: &State, after: &State) -> Result<(), Violation> {
    let set: Vec<NodeId> = after
        .node_ids()
        .filter(|&n| !before.heartbeat_received(n) && after.heartbeat_received(n))
        .collect();
    if let [first, second, ..] = set[..] {
        return violation(
            TransitionInvariant::OwnHeartbeat,
            &[first, second],
            format!("one step set the heartbeat flags of {first} and {second}"),
        );
    }
    debug_assert!(set.len() <= 1);
    Ok(())
}

/// VotesExpireWithRound (transition, registry v2): a step that opens a new round (clears a
/// heartbeat flag) leaves no recorded vote: votes belong to the round they were cast in.
pub fn votes_expire_with_round(before: &State, after: &State) -> Result<(), Violation> {
    let opens_round = after
        .node_ids()
        .any(|n| before.heartbeat_received(n) && !after.heartbeat_received(n));
    if !opens_round {
        return Ok(());
    }
    if let Some(voter) = after
        .node_ids()
        .find(|&n| after.node(n).is_some_and(|r| !r.detected.is_empty()))
    {
        let votes = after
            .node(voter)
            .map(|r| r.detected.clone())
            .unwrap_or_default();
        return violation(
            TransitionInvariant::VotesExpireWithRound,
            &[voter],
            format!("a new round opened and {voter}'s votes against {votes} survived it"),
        );
    }
    Ok(())
}

/// The actors placed in `after` whose placement differs from `before`'s (new ones included),
/// with their placement in `after`, in actor order: the only ones a per-actor transition
/// property can fail on (imbl's diff skips the subtrees the two maps share).
fn changed_placements<'a>(
    before: &'a State,
    after: &'a State,
) -> impl Iterator<Item = (ActorId, Placement)> + 'a {
    before
        .placements()
        .diff(after.placements())
        .filter_map(|item| match item {
            DiffItem::Add(&actor, &p) => Some((actor, p)),
            DiffItem::Update {
                new: (&actor, &p), ..
            } => Some((actor, p)),
            DiffItem::Remove(..) => None,
        })
}
