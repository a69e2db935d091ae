//! The membership actions: NodeJoin, NodeJoinComplete, NodeLeave, NodeLeaveComplete and
//! SendHeartbeat.

use super::common::{
    adopt_view, become_primary, change_status, forget_detections, issue_term, issue_view_number,
    next_view_number, queue_hosted, record_view_number, require_status, set, step_down, successor,
    within_bound, Stepped,
};
use crate::actor::MigrationReason;
use crate::effect::{Effects, StepDownReason};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::{Counter, Guard};
use crate::rules::{Numbering, Rules};
use crate::state::State;

/// NodeJoin(n): `n` is Left. With no Active node it bootstraps (Active, view {n}, primary);
/// otherwise it becomes Joining. Fixed: the bootstrap's view number and term come from the
/// registry counters instead of the constant 1.
pub(super) fn node_join(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    require_status(state, n, NodeStatus::Left)?;
    if state.active().is_empty() {
        return bootstrap(rules, state, n);
    }
    let mut next = state.clone();
    let mut effects = Effects::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Joining);
    assert!(!effects.is_empty());
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Joining));
    Ok((next, effects))
}

/// The spec's `Bootstrap(n)`: with no node Active, `n` becomes Active with view `{n}` and is the
/// primary (NodeJoin's bootstrap, and, fixed, NodeJoinComplete's in an empty cluster). Fixed:
/// the view number and term are the registry counters' next values, and the transaction is the
/// node's heartbeat this round (registry v2).
fn bootstrap(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    assert!(state.active().is_empty());
    let (view_number, term) = match rules.numbering {
        Numbering::Registry => (issue_view_number(rules, state)?, issue_term(rules, state)?),
        Numbering::PerNode => (
            within_bound(rules, Counter::ViewNumber, 1)?,
            within_bound(rules, Counter::Term, 1)?,
        ),
    };
    let mut next = state.clone();
    let mut effects = Effects::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Active);
    become_primary(rules, &mut next, &mut effects, n, term);
    adopt_view(&mut next, &mut effects, n, &NodeSet::single(n), view_number);
    record_view_number(rules, &mut next, view_number);
    if rules.join_heartbeats {
        // Registry v2: the node's own committed transaction is its heartbeat this round.
        next.set_heartbeat(n, true);
    }
    assert_eq!(next.active(), NodeSet::single(n));
    assert!(next.node(n).is_some_and(|r| r.believes_primary));
    Ok((next, effects))
}

/// NodeJoinComplete(n): `n` is Joining and reaches an Active node. `n` and every Active node
/// that can communicate with it adopt `active \cup {n}` with a new number. Fixed (registry v2,
/// one configuration): `n` alone adopts it, the new configuration with the next number; the
/// other members adopt it later, each by its own SyncViews(m, m). Fixed (registry v2):
/// the transaction is also `n`'s heartbeat in the current round, so a node that completes its
/// join in a round already old is not declared failed before its first heartbeat; and when no
/// node is Active, `n` bootstraps (the spec's `Bootstrap`), since it can reach no member.
pub(super) fn node_join_complete(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    require_status(state, n, NodeStatus::Joining)?;
    let active = state.active();
    if rules.join_bootstraps_empty && active.is_empty() {
        // Registry v2: no member is left (the last was declared failed while this node was
        // joining): this node bootstraps the cluster again.
        return bootstrap(rules, state, n);
    }
    if state.reachable_active(n).is_empty() {
        return Err(Guard::NoReachableActivePeer { node: n });
    }
    let view_number = next_view_number(rules, state, state.max_view_number(&active))?;
    let view = active.with(n);
    let mut next = state.clone();
    let mut effects = Effects::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Active);
    if rules.one_configuration {
        adopt_view(&mut next, &mut effects, n, &view, view_number);
    } else {
        for m in view.iter() {
            if m == n || state.can_communicate(n, m) {
                adopt_view(&mut next, &mut effects, m, &view, view_number);
            }
        }
    }
    record_view_number(rules, &mut next, view_number);
    if rules.join_heartbeats {
        next.set_heartbeat(n, true);
    }
    assert!(next
        .node(n)
        .is_some_and(|r| r.view == view && r.view_number == view_number));
    debug_assert!(next.active() == view);
    Ok((next, effects))
}

/// NodeLeave(n): `n` is Active. It becomes Leaving and gives up any primary belief. Fixed: its
/// actors are queued with reason NodeLeaving (one kept NodeFailed from an earlier failure
/// keeps that reason). Fixed (registry v2, one configuration): `n` is no longer a member, so the
/// next configuration number is issued (no member adopts it here: SyncViews), and `n`'s view is
/// emptied (number 0), as for every node outside the configuration.
pub(super) fn node_leave(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    require_status(state, n, NodeStatus::Active)?;
    let configuration = if rules.one_configuration {
        Some(issue_view_number(rules, state)?)
    } else {
        None
    };
    let mut next = state.clone();
    let mut effects = Effects::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Leaving);
    if let Some(number) = configuration {
        record_view_number(rules, &mut next, number);
        set(&mut next, n, |r| {
            r.view = NodeSet::EMPTY;
            r.view_number = 0;
            r.detected = NodeSet::EMPTY;
        });
        forget_detections(&mut next, n);
    }
    step_down(rules, &mut next, &mut effects, n, StepDownReason::Leaving);
    if rules.actors {
        queue_hosted(&mut next, &mut effects, n, MigrationReason::NodeLeaving);
    }
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Leaving && !r.believes_primary));
    assert!(!effects.is_empty());
    Ok((next, effects))
}

/// NodeLeaveComplete(n): `n` is Leaving. `n` becomes Left with an empty view; reference: every
/// Active node adopts `active` (which no longer holds `n`), each incrementing its own number
/// (all must be below MaxView). Fixed: the node must hold no actors; no member's view changes
/// (registry v2, one configuration: `n` left the configuration at NodeLeave); the leaving
/// node's number is reset to 0 and its detection record cleared, and `n` is erased from every
/// detection record.
pub(super) fn node_leave_complete(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    require_status(state, n, NodeStatus::Leaving)?;
    if rules.actors && rules.leave_needs_no_actors {
        let actors = state.load(n);
        if actors > 0 {
            return Err(Guard::HoldsActors { node: n, actors });
        }
    }
    let active = state.active();
    let mut next = state.clone();
    let mut effects = Effects::new();
    match rules.numbering {
        Numbering::Registry => {
            debug_assert!(rules.one_configuration);
            change_status(&mut next, &mut effects, n, NodeStatus::Left);
            set(&mut next, n, |r| {
                r.view = NodeSet::EMPTY;
                r.view_number = 0;
                r.detected = NodeSet::EMPTY;
            });
            // A detection of `n` must not outlive its leaving: if it rejoins, a peer's old
            // record would otherwise count as a detection of the new member.
            forget_detections(&mut next, n);
            debug_assert_eq!(next.view_counter(), state.view_counter());
        }
        Numbering::PerNode => {
            let mut numbers = Vec::new();
            for m in active.iter() {
                let current = state.node(m).map_or(0, |r| r.view_number);
                numbers.push((m, successor(rules, Counter::ViewNumber, current)?));
            }
            change_status(&mut next, &mut effects, n, NodeStatus::Left);
            set(&mut next, n, |r| r.view = NodeSet::EMPTY);
            for (m, view_number) in numbers {
                adopt_view(&mut next, &mut effects, m, &active, view_number);
            }
        }
    }
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Left && r.view.is_empty()));
    debug_assert!(
        rules.one_configuration
            || active
                .iter()
                .all(|m| next.node(m).is_some_and(|r| r.view == active))
    );
    Ok((next, effects))
}

/// SendHeartbeat(n): `n` is Active. Fixed (registry v2): only `n`'s own flag is set: the
/// evidence that `n` is live is its own committed heartbeat, never a peer's. Reference: `n` and
/// every Active or Leaving node that can communicate with it receive a heartbeat.
pub(super) fn send_heartbeat(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    require_status(state, n, NodeStatus::Active)?;
    let mut next = state.clone();
    let receivers: Vec<NodeId> = if rules.own_heartbeat {
        vec![n]
    } else {
        state
            .node_ids()
            .filter(|&m| {
                m == n
                    || (state.can_communicate(n, m)
                        && state.node(m).is_some_and(|r| {
                            matches!(r.status, NodeStatus::Active | NodeStatus::Leaving)
                        }))
            })
            .collect()
    };
    for &m in &receivers {
        next.set_heartbeat(m, true);
    }
    assert!(receivers.contains(&n));
    assert!(next.heartbeat_received(n));
    debug_assert!(!rules.own_heartbeat || next.nodes() == state.nodes());
    Ok((next, Effects::new()))
}
