//! The network's actions (CreatePartition, HealPartition, ResetHeartbeats) and SyncViews.

use super::common::{
    adopt_view, distinct, record, require_status, set, step_down, successor, take_view, Stepped,
};
use crate::effect::{Effects, StepDownReason};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::Counter;
use crate::refusal::Guard;
use crate::rules::{HealRule, Rules};
use crate::state::State;

/// CreatePartition(a, b): `a != b`, not yet partitioned; both orderings are added.
pub(super) fn create_partition(state: &State, a: NodeId, b: NodeId) -> Stepped {
    record(state, a)?;
    record(state, b)?;
    distinct(a, b)?;
    if !state.can_communicate(a, b) {
        return Err(Guard::AlreadyPartitioned { a, b });
    }
    let mut next = state.clone();
    set(&mut next, a, |r| r.partitioned_from.insert(b));
    set(&mut next, b, |r| r.partitioned_from.insert(a));
    assert!(!next.can_communicate(a, b) && !next.can_communicate(b, a));
    assert!(next.can_communicate(a, a));
    Ok((next, Effects::new()))
}

/// HealPartition(a, b): `<<a, b>>` is partitioned; both orderings are removed. Outside buggy
/// mode, if both now-communicating nodes believe they are primary, one steps down: reference,
/// the one that comes first in node-id order; fixed, the one with the lower term (ties, which the
/// fixed protocol never produces, by node id).
pub(super) fn heal_partition(rules: &Rules, state: &State, a: NodeId, b: NodeId) -> Stepped {
    record(state, a)?;
    record(state, b)?;
    if state.can_communicate(a, b) {
        return Err(Guard::NotPartitioned { a, b });
    }
    let mut next = state.clone();
    let mut effects = Effects::new();
    set(&mut next, a, |r| r.partitioned_from.remove(b));
    set(&mut next, b, |r| r.partitioned_from.remove(a));
    let believes = |n: NodeId| state.node(n).is_some_and(|r| r.believes_primary);
    if believes(a) && believes(b) {
        let term = |n: NodeId| state.node(n).map_or(0, |r| r.term);
        let loser = match rules.heal {
            HealRule::LowerTerm if (term(a), a) < (term(b), b) => Some(a),
            HealRule::LowerTerm => Some(b),
            HealRule::LowerId => Some(a.min(b)),
            HealRule::Neither => None,
        };
        if let Some(loser) = loser {
            step_down(
                rules,
                &mut next,
                &mut effects,
                loser,
                StepDownReason::PartitionHealed,
            );
        }
    }
    assert!(next.can_communicate(a, b));
    assert!(
        rules.heal == HealRule::Neither
            || !(next.node(a).is_some_and(|r| r.believes_primary)
                && next.node(b).is_some_and(|r| r.believes_primary))
    );
    Ok((next, effects))
}

/// ResetHeartbeats: a heartbeat interval passes (a new round opens): every flag is cleared.
/// Always enabled. Fixed (registry v2), and written for every mode (a no-op in the reference
/// modes, which record no vote): every vote is cleared too, since votes belong to the round they
/// were cast in.
pub(super) fn reset_heartbeats(rules: &Rules, state: &State) -> (State, Effects) {
    let mut next = state.clone();
    for n in state.node_ids() {
        next.set_heartbeat(n, false);
    }
    if rules.votes_expire {
        let voters: Vec<NodeId> = state
            .node_ids()
            .filter(|&n| state.node(n).is_some_and(|r| !r.detected.is_empty()))
            .collect();
        for n in voters {
            set(&mut next, n, |r| r.detected = NodeSet::EMPTY);
        }
        debug_assert!(next
            .node_ids()
            .all(|n| next.node(n).is_some_and(|r| r.detected.is_empty())));
    }
    assert!(next.heartbeats().is_empty());
    assert_eq!(next.active(), state.active());
    (next, Effects::new())
}

/// SyncViews(a, b). Fixed (registry v2, one configuration): a node synchronises with the
/// registry, not with a peer, so `a == b` (else [`Guard::PeerSync`]): `a` is Active and has not
/// adopted the current configuration; it adopts it (the Active nodes, with the current number).
/// No number is issued and no detection record changes.
///
/// Reference: `a != b`, both Active, can communicate, view numbers differ. Both adopt the view
/// of the node with the larger number, united with `{a, b}`, with the number `h + 1` (below
/// MaxView).
pub(super) fn sync_views(rules: &Rules, state: &State, a: NodeId, b: NodeId) -> Stepped {
    record(state, a)?;
    record(state, b)?;
    if rules.one_configuration {
        return adopt_configuration(rules, state, a, b);
    }
    distinct(a, b)?;
    if !rules.sync_views {
        return Err(Guard::Disabled);
    }
    let ra = require_status(state, a, NodeStatus::Active)?;
    let rb = require_status(state, b, NodeStatus::Active)?;
    if !state.can_communicate(a, b) {
        return Err(Guard::CannotCommunicate { a, b });
    }
    if ra.view_number == rb.view_number {
        return Err(Guard::SameViewNumber {
            a,
            b,
            view_number: ra.view_number,
        });
    }
    let newer = if ra.view_number > rb.view_number {
        ra
    } else {
        rb
    };
    let view_number = successor(rules, Counter::ViewNumber, newer.view_number)?;
    let view = newer.view.clone().with(a).with(b);
    let newer_id = if ra.view_number > rb.view_number {
        a
    } else {
        b
    };
    // Mutant: the newer node keeps its own view under the new number.
    let view_of = |m: NodeId| -> &NodeSet {
        if rules.sync_merges_both || m != newer_id {
            &view
        } else {
            &newer.view
        }
    };
    let mut next = state.clone();
    let mut effects = Effects::new();
    adopt_view(
        &mut next,
        &mut effects,
        a.min(b),
        view_of(a.min(b)),
        view_number,
    );
    adopt_view(
        &mut next,
        &mut effects,
        a.max(b),
        view_of(a.max(b)),
        view_number,
    );
    assert!(view_number > ra.view_number.max(rb.view_number));
    assert_eq!(effects.len(), 2);
    Ok((next, effects))
}

/// The fixed SyncViews(a, a): `a` adopts the current configuration.
fn adopt_configuration(rules: &Rules, state: &State, a: NodeId, b: NodeId) -> Stepped {
    if a != b {
        return Err(Guard::PeerSync { a, b });
    }
    if !rules.sync_views {
        return Err(Guard::Disabled);
    }
    let own = require_status(state, a, NodeStatus::Active)?;
    let current = state.view_counter();
    if own.view_number >= current {
        return Err(Guard::Synced {
            node: a,
            view_number: current,
        });
    }
    let members = state.active();
    // Mutant `sync-views-keeps-view`: the number is taken, the node's own view kept.
    let view = if rules.sync_merges_both {
        members
    } else {
        own.view.clone()
    };
    let mut next = state.clone();
    let mut effects = Effects::new();
    take_view(&mut next, &mut effects, a, &view, current);
    assert!(next.node(a).is_some_and(|r| r.view_number == current));
    assert_eq!(next.view_counter(), current);
    assert!(!rules.sync_merges_both || next.node(a).is_some_and(|r| r.view == next.active()));
    Ok((next, effects))
}
