//! What several actions share: the guards (returning the failed [`Guard`]) and the updates of
//! the successor state.

use crate::actor::{ActorId, Candidate, MigrationEntry, MigrationReason};
use crate::effect::{Effect, Effects, StepDownReason};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::{Counter, Guard};
use crate::rules::{Numbering, Rules};
use crate::state::{NodeRecord, State};

/// What one action comes to: the successor state and its effects, or the guard that failed.
pub(super) type Stepped = Result<(State, Effects), Guard>;

// ---------------------------------------------------------------------------------------------
// Guards shared by several actions.

pub(super) fn record(state: &State, node: NodeId) -> Result<&NodeRecord, Guard> {
    state.node(node).ok_or(Guard::UnknownNode { node })
}

pub(super) fn require_status(
    state: &State,
    node: NodeId,
    expected: NodeStatus,
) -> Result<&NodeRecord, Guard> {
    let r = record(state, node)?;
    if r.status == expected {
        Ok(r)
    } else {
        Err(Guard::Status {
            node,
            expected,
            actual: r.status,
        })
    }
}

pub(super) fn distinct(a: NodeId, b: NodeId) -> Result<(), Guard> {
    if a == b {
        Err(Guard::SameNode { node: a })
    } else {
        Ok(())
    }
}

/// `value <= MaxView` when the configuration has a bound.
pub(super) fn within_bound(rules: &Rules, counter: Counter, value: u64) -> Result<u64, Guard> {
    match rules.max_view {
        Some(bound) if value > bound => Err(Guard::BoundReached {
            counter,
            value,
            bound,
        }),
        _ => Ok(value),
    }
}

/// `value + 1`, within the bound and without overflow.
pub(super) fn successor(rules: &Rules, counter: Counter, value: u64) -> Result<u64, Guard> {
    let next = value
        .checked_add(1)
        .ok_or(Guard::CounterOverflow { counter })?;
    within_bound(rules, counter, next)
}

/// Fixed protocol: the next view number from the registry-wide view counter.
pub(super) fn issue_view_number(rules: &Rules, state: &State) -> Result<u64, Guard> {
    successor(rules, Counter::ViewNumber, state.view_counter())
}

/// The view number a node moving on from view number `own` adopts: fixed, the next value of
/// the registry counter; reference, `own + 1`.
pub(super) fn next_view_number(rules: &Rules, state: &State, own: u64) -> Result<u64, Guard> {
    match rules.numbering {
        Numbering::Registry => issue_view_number(rules, state),
        Numbering::PerNode => successor(rules, Counter::ViewNumber, own),
    }
}

/// Fixed protocol: the next term from the registry-wide term counter.
pub(super) fn issue_term(rules: &Rules, state: &State) -> Result<u64, Guard> {
    successor(rules, Counter::Term, state.term_counter())
}

/// The next actor epoch from the registry-wide epoch counter, within the checking bound
/// `max_epoch` when there is one.
pub(super) fn issue_epoch(rules: &Rules, state: &State) -> Result<u64, Guard> {
    let next = state
        .epoch_counter()
        .checked_add(1)
        .ok_or(Guard::CounterOverflow {
            counter: Counter::Epoch,
        })?;
    match rules.max_epoch {
        Some(bound) if next > bound => Err(Guard::BoundReached {
            counter: Counter::Epoch,
            value: next,
            bound,
        }),
        _ => Ok(next),
    }
}

/// Actor actions exist only in the fixed protocol (the reference model has no actors).
pub(super) fn require_actors(rules: &Rules) -> Result<(), Guard> {
    if rules.actors {
        Ok(())
    } else {
        Err(Guard::Disabled)
    }
}

/// Fencing: `term` must be the registry's current term, held by a valid primary.
pub(super) fn require_primary_term(state: &State, term: u64) -> Result<NodeId, Guard> {
    let current = state.term_counter();
    if term != current {
        return Err(Guard::StaleTerm { term, current });
    }
    state
        .primary_in_office()
        .ok_or(Guard::NoValidPrimary { term })
}

/// The Active nodes other than `except`, with their loads, in node-id order. One merge of the
/// Active set with the per-node index (both in node-id order), not one index lookup per node.
pub(super) fn candidates(state: &State, except: Option<NodeId>) -> Vec<Candidate> {
    let active = state.active();
    let mut loads = state.loads().peekable();
    let mut out = Vec::with_capacity(usize::from(active.len()));
    for node in active.iter().filter(|&n| Some(n) != except) {
        while loads.next_if(|&(n, _)| n < node).is_some() {}
        let load = match loads.peek() {
            Some(&(n, load)) if n == node => load,
            _ => 0,
        };
        out.push(Candidate { node, load });
    }
    debug_assert!(out.len() <= usize::from(active.len()));
    debug_assert!(out.first().is_none_or(|c| c.load == state.load(c.node)));
    out
}

// ---------------------------------------------------------------------------------------------
// Updates shared by several actions. They work on the successor state `next`.

/// Queues every actor placed on `node` with `reason` (fixed protocol; O(its actors x log)).
/// An actor already queued because its node failed keeps that reason.
pub(super) fn queue_hosted(
    next: &mut State,
    effects: &mut Effects,
    node: NodeId,
    reason: MigrationReason,
) {
    let actors: Vec<ActorId> = next
        .hosted(node)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let mut queued = 0u64;
    for actor in actors {
        let current = next.queue().get(actor);
        let keep = current.is_some_and(|e| {
            e.reason == MigrationReason::NodeFailed && reason != MigrationReason::NodeFailed
        });
        let wanted = MigrationEntry { from: node, reason };
        // Count only the entries this transition adds or changes: a rejoined node's actors may
        // still be queued from its previous failure.
        if !keep && current != Some(wanted) {
            next.enqueue(actor, node, reason);
            queued += 1;
        }
    }
    if queued > 0 {
        effects.push(Effect::MigrationsQueued {
            from: node,
            reason,
            actors: queued,
        });
    }
    debug_assert!(next
        .hosted(node)
        .is_none_or(|s| s.iter().all(|&a| next.queue().contains(a))));
}

pub(super) fn set(next: &mut State, node: NodeId, update: impl FnOnce(&mut NodeRecord)) {
    let found = next.update_node(node, update);
    debug_assert!(found, "{node} was checked to exist before any update");
}

pub(super) fn change_status(next: &mut State, effects: &mut Effects, node: NodeId, to: NodeStatus) {
    let from = next.node(node).map_or(to, |r| r.status);
    assert_ne!(from, to, "{node}: a status change changes the status");
    set(next, node, |r| r.status = to);
    effects.push(Effect::StatusChanged { node, from, to });
    assert!(next.node(node).is_some_and(|r| r.status == to));
}

pub(super) fn adopt_view(
    next: &mut State,
    effects: &mut Effects,
    node: NodeId,
    view: &NodeSet,
    view_number: u64,
) {
    // A node listed again is no longer suspected by this node.
    set(next, node, |r| r.detected = r.detected.difference(view));
    take_view(next, effects, node, view, view_number);
}

/// `node` holds `view` with `view_number` (and says so: `ViewChanged`). Shared by [`adopt_view`]
/// and the fixed SyncViews(n, n), which adopts the current configuration without touching the
/// node's votes.
pub(super) fn take_view(
    next: &mut State,
    effects: &mut Effects,
    node: NodeId,
    view: &NodeSet,
    view_number: u64,
) {
    assert!(!view.is_empty(), "{node}: an adopted view is never empty");
    assert!(view.contains(node), "{node}: a node always lists itself");
    set(next, node, |r| {
        r.view.clone_from(view);
        r.view_number = view_number;
    });
    effects.push(Effect::ViewChanged {
        node,
        view: view.clone(),
        view_number,
    });
}

/// `node` stops believing it is primary. The fixed protocol also clears the term it held (a
/// term is held only while primary); the reference model keeps it.
pub(super) fn step_down(
    rules: &Rules,
    next: &mut State,
    effects: &mut Effects,
    node: NodeId,
    reason: StepDownReason,
) {
    let fixed = rules.registry_counters();
    let Some(r) = next.node(node).cloned() else {
        debug_assert!(false, "{node} was checked to exist");
        return;
    };
    if !r.believes_primary {
        return;
    }
    set(next, node, |r| {
        r.believes_primary = false;
        if fixed {
            r.term = 0;
        }
    });
    effects.push(Effect::SteppedDown {
        node,
        term: r.term,
        reason,
    });
    assert!(!next.node(node).is_some_and(|r| r.believes_primary));
    assert!(!fixed || next.node(node).is_some_and(|r| r.term == 0));
}

/// Erases `n` from every node's detection record (it failed or left: an old record must not
/// count as a detection of it later).
pub(super) fn forget_detections(next: &mut State, n: NodeId) {
    // Only the records that hold a detection of `n` are written (a copy-on-write of the node
    // table per record otherwise).
    let voters: Vec<NodeId> = next
        .node_ids()
        .filter(|&m| next.node(m).is_some_and(|r| r.detected.contains(n)))
        .collect();
    for m in voters {
        set(next, m, |r| r.detected.remove(n));
    }
    debug_assert!(next.nodes().iter().all(|r| !r.detected.contains(n)));
}

pub(super) fn become_primary(
    rules: &Rules,
    next: &mut State,
    effects: &mut Effects,
    node: NodeId,
    term: u64,
) {
    set(next, node, |r| {
        r.believes_primary = true;
        r.term = term;
    });
    if rules.registry_counters() {
        let counter = next.term_counter().max(term);
        next.set_term_counter(counter);
    }
    effects.push(Effect::BecamePrimary { node, term });
    assert!(next
        .node(node)
        .is_some_and(|r| r.believes_primary && r.term == term));
    assert!(!rules.registry_counters() || next.term_counter() >= term);
}

pub(super) fn record_view_number(rules: &Rules, next: &mut State, view_number: u64) {
    if rules.registry_counters() {
        next.set_view_counter(view_number);
    }
}
