//! The state invariants: predicates on one state.

use super::violation::{violation, StateInvariant, Violation};
use crate::actor::{ActorId, MigrationEntry, MigrationReason, Placement};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::rules::Rules;
use crate::state::{NodeRecord, State};

/// TypeOK: node sets within `Nodes`, the partition relation symmetric and irreflexive, counters
/// within the bound `MaxView` when there is one, and (fixed protocol) every node's term and view
/// number at most the registry counter that issued it; every actor placed on a node of `Nodes`
/// with an epoch in `1..=epoch_counter` (and within `MaxEpoch` when bounded).
pub fn type_ok(state: &State) -> Result<(), Violation> {
    type_ok_nodes(state)?;
    let bounds = ActorBounds::of(state);
    for (&actor, p) in state.placements() {
        type_ok_actor(state, &bounds, actor, p)?;
    }
    Ok(())
}

/// TypeOK's part on the node records and the counters.
pub(super) fn type_ok_nodes(state: &State) -> Result<(), Violation> {
    let config = state.config();
    let all = NodeSet::first(config.node_count());
    if state.nodes().len() != usize::from(config.node_count()) {
        return violation(
            StateInvariant::TypeOK,
            &[],
            format!(
                "{} node records for {} nodes",
                state.nodes().len(),
                config.node_count()
            ),
        );
    }
    let rules = Rules::of(config);
    let fixed = rules.registry_counters();
    for (n, r) in state.node_ids().zip(state.nodes()) {
        if !r.view.is_subset(&all) || !r.partitioned_from.is_subset(&all) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!("{n} names a node outside Nodes"),
            );
        }
        // A node never suspects itself. (Registry v2: a member may suspect a member of its own
        // view: a view is a configuration, a vote is about reachability in this round.)
        if r.detected.contains(n) || !r.detected.is_subset(&all) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!("{n} has detected {}", r.detected),
            );
        }
        if r.partitioned_from.contains(n) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!("{n} is partitioned from itself"),
            );
        }
        if let Some(m) = r.partitioned_from.iter().find(|&m| {
            !state
                .node(m)
                .is_some_and(|o| o.partitioned_from.contains(n))
        }) {
            return violation(
                StateInvariant::TypeOK,
                &[n, m],
                format!("partition {n}-{m} is not symmetric"),
            );
        }
        if let Some(bound) = rules.max_view {
            if r.view_number > bound || r.term > bound {
                return violation(
                    StateInvariant::TypeOK,
                    &[n],
                    format!(
                        "{n} has view number {} / term {} above MaxView {bound}",
                        r.view_number, r.term
                    ),
                );
            }
        }
        if fixed && (r.term > state.term_counter() || r.view_number > state.view_counter()) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!(
                    "{n} holds term {} / view number {} above the registry counters",
                    r.term, r.view_number
                ),
            );
        }
    }
    Ok(())
}

/// What TypeOK bounds a placement by: the nodes of `Nodes` and `MaxEpoch` (computed once per
/// state).
pub(super) struct ActorBounds {
    all: NodeSet,
    max_epoch: Option<u64>,
}

impl ActorBounds {
    /// The bounds of `state`'s configuration.
    pub(super) fn of(state: &State) -> ActorBounds {
        let config = state.config();
        ActorBounds {
            all: NodeSet::first(config.node_count()),
            max_epoch: Rules::of(config).max_epoch,
        }
    }
}

/// TypeOK's part on one placed actor: on a node of `Nodes`, with an epoch in
/// `1..=epoch_counter` (and within `MaxEpoch` when bounded).
pub(super) fn type_ok_actor(
    state: &State,
    bounds: &ActorBounds,
    actor: ActorId,
    p: &Placement,
) -> Result<(), Violation> {
    let bad_epoch = p.epoch == 0
        || p.epoch > state.epoch_counter()
        || bounds.max_epoch.is_some_and(|bound| p.epoch > bound);
    if !bounds.all.contains(p.node) || bad_epoch {
        return violation(
            StateInvariant::TypeOK,
            &[p.node],
            format!(
                "{actor} is placed on {} with epoch {} (epoch counter {})",
                p.node,
                p.epoch,
                state.epoch_counter()
            ),
        );
    }
    Ok(())
}

/// MembershipConsistency: two Active nodes that each have the other in their view and have
/// equal view numbers have equal views. Registry v2 (fixed, one configuration): also, an Active
/// node that has adopted the current configuration number holds exactly the current members.
pub fn membership_consistency(state: &State) -> Result<(), Violation> {
    membership_consistency_members(state)?;
    let active: Vec<(NodeId, _)> = state
        .active()
        .iter()
        .filter_map(|n| state.node(n).map(|r| (n, r)))
        .collect();
    for (i, &(a, ra)) in active.iter().enumerate() {
        for &(b, rb) in &active[i + 1..] {
            if inconsistent_pair(a, ra, b, rb) {
                return violation(
                    StateInvariant::MembershipConsistency,
                    &[a, b],
                    format!(
                        "{a} has {}#{} but {b} has {}#{}",
                        ra.view, ra.view_number, rb.view, rb.view_number
                    ),
                );
            }
        }
    }
    Ok(())
}

/// MembershipConsistency's registry v2 rule (fixed, one configuration): an Active node that has
/// adopted the current configuration number holds exactly the current members.
fn membership_consistency_members(state: &State) -> Result<(), Violation> {
    if Rules::one_configuration(state.config()) {
        let members = state.active();
        let current = state.view_counter();
        for n in members.iter() {
            if let Some(r) = state.node(n) {
                if r.view_number == current && r.view != members {
                    return violation(
                        StateInvariant::MembershipConsistency,
                        &[n],
                        format!(
                            "{n} has adopted configuration {current} with view {} but its \
                             members are {members}",
                            r.view
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

/// MembershipConsistency's pairs: whether Active nodes `a` and `b` each have the other in their
/// view, equal view numbers, and different views (symmetric).
fn inconsistent_pair(a: NodeId, ra: &NodeRecord, b: NodeId, rb: &NodeRecord) -> bool {
    ra.view.contains(b)
        && rb.view.contains(a)
        && ra.view_number == rb.view_number
        && ra.view != rb.view
}

/// MembershipConsistency on a state whose records differ from a consistent one's only at the
/// nodes of `changed` (and whose view counter may differ): only a pair with a changed node can
/// be inconsistent, so only those pairs are looked at (O(changed x members) instead of
/// O(members²)); when one is, the whole check reports the first violation as it would.
pub(super) fn membership_consistency_changed(
    state: &State,
    changed: &NodeSet,
) -> Result<(), Violation> {
    let active: Vec<(NodeId, &NodeRecord)> = state
        .active()
        .iter()
        .filter_map(|n| state.node(n).map(|r| (n, r)))
        .collect();
    let broken = active
        .iter()
        .filter(|(c, _)| changed.contains(*c))
        .any(|&(c, rc)| {
            active
                .iter()
                .any(|&(x, rx)| x != c && inconsistent_pair(c, rc, x, rx))
        });
    if broken || Rules::one_configuration(state.config()) {
        // (Registry v2's rule reads every member's record: O(members).)
        return if broken {
            membership_consistency(state)
        } else {
            membership_consistency_members(state)
        };
    }
    Ok(())
}

/// JoinAtomicity: an Active node has a non-empty view; a Joining, Left or Failed node has an
/// empty view; a Leaving node may have any view.
pub fn join_atomicity(state: &State) -> Result<(), Violation> {
    for (n, r) in state.node_ids().zip(state.nodes()) {
        let ok = match r.status {
            NodeStatus::Active => !r.view.is_empty(),
            NodeStatus::Joining | NodeStatus::Left | NodeStatus::Failed => r.view.is_empty(),
            NodeStatus::Leaving => true,
        };
        if !ok {
            return violation(
                StateInvariant::JoinAtomicity,
                &[n],
                format!("{n} is {} with view {}", r.status, r.view),
            );
        }
    }
    Ok(())
}

/// LeaveDetectionWeak: a Left node is in no Active node's view. Registry v2 (fixed, one
/// configuration): except in the view of a member that has not adopted the current configuration
/// yet (which never lists a Left node).
pub fn leave_detection_weak(state: &State) -> Result<(), Violation> {
    let left = state.with_status(NodeStatus::Left);
    let one_configuration = Rules::one_configuration(state.config());
    let current = state.view_counter();
    for m in state.active().iter() {
        if let Some(r) = state.node(m) {
            if one_configuration && r.view_number < current {
                continue;
            }
            if let Some(n) = r.view.intersection(&left).iter().next() {
                return violation(
                    StateInvariant::LeaveDetectionWeak,
                    &[n, m],
                    format!("{n} is Left but still in {m}'s view {}", r.view),
                );
            }
        }
    }
    Ok(())
}

/// NoSplitBrain: at most one node has a valid primary claim.
pub fn no_split_brain(state: &State) -> Result<(), Violation> {
    let valid = state.valid_primaries();
    if valid.len() > 1 {
        let nodes: Vec<NodeId> = valid.iter().collect();
        return violation(
            StateInvariant::NoSplitBrain,
            &nodes,
            format!("{valid} all have valid primary claims"),
        );
    }
    Ok(())
}

/// AtMostOnePrimary: at most one node believes it is primary.
pub fn at_most_one_primary(state: &State) -> Result<(), Violation> {
    let believers = state.believers();
    if believers.len() > 1 {
        let nodes: Vec<NodeId> = believers.iter().collect();
        return violation(
            StateInvariant::AtMostOnePrimary,
            &nodes,
            format!("{believers} all believe they are primary"),
        );
    }
    Ok(())
}

/// SingleActivation: every placed actor is in the per-node index under its node and nowhere
/// else, and its node is Active, or the actor is queued to leave that node: a Leaving node's
/// actors for any reason, a Failed, Left or Joining node's actors only with reason NodeFailed
/// (a node that left gracefully handed all its actors over first).
pub fn single_activation(state: &State) -> Result<(), Violation> {
    single_activation_count(state)?;
    for (&actor, p) in state.placements() {
        single_activation_actor(state, actor, p)?;
    }
    Ok(())
}

/// SingleActivation's count: as many index entries as placements (an actor indexed twice shows).
pub(super) fn single_activation_count(state: &State) -> Result<(), Violation> {
    let indexed = state.indexed_count();
    if indexed != state.placements().len() {
        return violation(
            StateInvariant::SingleActivation,
            &[],
            format!(
                "{} placements but {indexed} index entries: an actor is on two nodes",
                state.placements().len()
            ),
        );
    }
    Ok(())
}

/// SingleActivation on one placed actor: indexed under its node, and its node Active or the
/// actor queued to leave it (see [`single_activation`]).
pub(super) fn single_activation_actor(
    state: &State,
    actor: ActorId,
    p: &Placement,
) -> Result<(), Violation> {
    let n = p.node;
    if !state.hosted(n).is_some_and(|set| set.contains(&actor)) {
        return violation(
            StateInvariant::SingleActivation,
            &[n],
            format!("{actor} is placed on {n} but not indexed there"),
        );
    }
    let entry = state.queue().get(actor).filter(|e| e.from == n);
    let status = state.node(n).map(|r| r.status);
    let ok = match status {
        Some(NodeStatus::Active) => true,
        Some(NodeStatus::Leaving) => entry.is_some(),
        Some(NodeStatus::Failed | NodeStatus::Left | NodeStatus::Joining) => {
            entry.is_some_and(|e| e.reason == MigrationReason::NodeFailed)
        }
        None => false,
    };
    if !ok {
        return violation(
            StateInvariant::SingleActivation,
            &[n],
            format!(
                "{actor} is placed on {n} ({}) with queue entry {:?}",
                status.map_or("unknown".to_string(), |s| s.to_string()),
                state.queue().get(actor)
            ),
        );
    }
    Ok(())
}

/// MigrationQueueBounded: every queue entry names the node its actor is placed on (so at most
/// one entry per placed actor), and there are at most `actors_max` placed actors.
pub fn migration_queue_bounded(state: &State) -> Result<(), Violation> {
    migration_queue_count(state)?;
    for (&actor, entry) in state.queue().iter() {
        migration_queue_entry(state, actor, entry)?;
    }
    Ok(())
}

/// MigrationQueueBounded's count: at most `actors_max` placed actors.
pub(super) fn migration_queue_count(state: &State) -> Result<(), Violation> {
    let actors_max = state.config().actors_max();
    if u64::try_from(state.placements().len()).unwrap_or(u64::MAX) > actors_max {
        return violation(
            StateInvariant::MigrationQueueBounded,
            &[],
            format!(
                "{} actors placed, above actors_max {actors_max}",
                state.placements().len()
            ),
        );
    }
    Ok(())
}

/// MigrationQueueBounded on one queue entry: it names the node its actor is placed on.
pub(super) fn migration_queue_entry(
    state: &State,
    actor: ActorId,
    entry: &MigrationEntry,
) -> Result<(), Violation> {
    if state.placement(actor).map(|p| p.node) != Some(entry.from) {
        return violation(
            StateInvariant::MigrationQueueBounded,
            &[entry.from],
            format!(
                "{actor} is queued to leave {} but is not placed there",
                entry.from
            ),
        );
    }
    Ok(())
}
