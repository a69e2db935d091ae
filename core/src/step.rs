//! The reducer: `step(&State, &Event) -> Result<(State, Vec<Effect>), Refusal>`.
//!
//! One function per spec action, named after it. Each checks the action's guards in the order
//! the spec lists them and returns the first that fails as a [`Guard`]; otherwise it builds the
//! successor state and the effects. Mode differences (fixed / reference / buggy) and mutants are
//! branches inside the action, so every mode runs this one definition.
//!
//! Effects come in a fixed order within one transition: status changes, fencing, step-downs,
//! queued migrations, new primaries, then view changes in node-id order; an actor move is its
//! deactivation then its activation.

use crate::actor::{
    ActorId, Candidate, LeastLoaded, MigrationEntry, MigrationReason, Placement, PlacementStrategy,
    MIGRATION_BATCH_MAX, REBALANCE_BATCH_MAX,
};
use crate::config::{Mode, Mutant};
use crate::effect::{Effect, StepDownReason};
use crate::event::Event;
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::{Counter, Guard, Refusal};
use crate::state::{NodeRecord, State};

/// The outcome of one enabled action.
type Outcome = Result<(State, Vec<Effect>), Guard>;

/// Applies `event` to `state` with the default placement strategy ([`LeastLoaded`]). Pure and
/// total: for every event in every state it returns either the successor state with the effects
/// the outside world must execute, or the [`Refusal`] naming the guard that failed (the state is
/// then unchanged, since it is borrowed).
pub fn step(state: &State, event: &Event) -> Result<(State, Vec<Effect>), Refusal> {
    step_with(state, event, &LeastLoaded)
}

/// [`step`] with an explicit placement strategy (used by PlaceActor and MigrateActor).
pub fn step_with(
    state: &State,
    event: &Event,
    strategy: &dyn PlacementStrategy,
) -> Result<(State, Vec<Effect>), Refusal> {
    let action = event.name();
    let outcome = match *event {
        Event::NodeJoin { node } => node_join(state, node),
        Event::NodeJoinComplete { node } => node_join_complete(state, node),
        Event::NodeLeave { node } => node_leave(state, node),
        Event::NodeLeaveComplete { node } => node_leave_complete(state, node),
        Event::SendHeartbeat { node } => send_heartbeat(state, node),
        Event::DetectFailure { detector, target } => detect_failure(state, detector, target),
        Event::MarkNodeFailed { node } => mark_node_failed(state, node),
        Event::NodeRecover { node } => node_recover(state, node),
        Event::ElectPrimary { node } => elect_primary(state, node),
        Event::PrimaryStepDown { node } => primary_step_down(state, node),
        Event::CreatePartition { a, b } => create_partition(state, a, b),
        Event::HealPartition { a, b } => heal_partition(state, a, b),
        Event::ResetHeartbeats => Ok(reset_heartbeats(state)),
        Event::SyncViews { a, b } => sync_views(state, a, b),
        Event::PlaceActor { actor } => place_actor(state, actor, strategy),
        Event::MigrateActor { actor, term } => migrate_actor(state, actor, term, strategy),
        Event::RebalanceActors { term } => rebalance_actors(state, term),
        Event::RemoveActor { actor } => remove_actor(state, actor),
    };
    let (next, effects) = outcome.map_err(|guard| Refusal { action, guard })?;
    debug_assert_eq!(
        next.config(),
        state.config(),
        "{event}: the configuration never changes"
    );
    debug_assert_eq!(
        next.nodes().len(),
        state.nodes().len(),
        "{event}: the node table keeps its size"
    );
    debug_assert!(
        next.term_counter() >= state.term_counter(),
        "{event}: term counter decreased"
    );
    debug_assert!(
        next.view_counter() >= state.view_counter(),
        "{event}: view counter decreased"
    );
    Ok((next, effects))
}

// ---------------------------------------------------------------------------------------------
// Guards shared by several actions.

fn record(state: &State, node: NodeId) -> Result<&NodeRecord, Guard> {
    state.node(node).ok_or(Guard::UnknownNode { node })
}

fn require_status(state: &State, node: NodeId, expected: NodeStatus) -> Result<&NodeRecord, Guard> {
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

fn distinct(a: NodeId, b: NodeId) -> Result<(), Guard> {
    if a == b {
        Err(Guard::SameNode { node: a })
    } else {
        Ok(())
    }
}

/// `value <= MaxView` when the configuration has a bound.
fn within_bound(state: &State, counter: Counter, value: u64) -> Result<u64, Guard> {
    match state.config().max_view() {
        Some(bound) if value > bound => Err(Guard::BoundReached {
            counter,
            value,
            bound,
        }),
        _ => Ok(value),
    }
}

/// `value + 1`, within the bound and without overflow.
fn successor(state: &State, counter: Counter, value: u64) -> Result<u64, Guard> {
    let next = value
        .checked_add(1)
        .ok_or(Guard::CounterOverflow { counter })?;
    within_bound(state, counter, next)
}

/// Fixed protocol: the next view number from the registry-wide view counter.
fn issue_view_number(state: &State) -> Result<u64, Guard> {
    successor(state, Counter::ViewNumber, state.view_counter())
}

/// Fixed protocol: the next term from the registry-wide term counter.
fn issue_term(state: &State) -> Result<u64, Guard> {
    successor(state, Counter::Term, state.term_counter())
}

/// The next actor epoch from the registry-wide epoch counter, within the checking bound
/// `max_epoch` when there is one.
fn issue_epoch(state: &State) -> Result<u64, Guard> {
    let next = state
        .epoch_counter()
        .checked_add(1)
        .ok_or(Guard::CounterOverflow {
            counter: Counter::Epoch,
        })?;
    match state.config().max_epoch() {
        Some(bound) if next > bound => Err(Guard::BoundReached {
            counter: Counter::Epoch,
            value: next,
            bound,
        }),
        _ => Ok(next),
    }
}

/// Actor actions exist only in the fixed protocol (the reference model has no actors).
fn require_fixed(state: &State) -> Result<(), Guard> {
    match state.config().mode() {
        Mode::Fixed => Ok(()),
        mode => Err(Guard::Disabled { mode }),
    }
}

/// Fencing: `term` must be the registry's current term, held by a valid primary.
fn require_primary_term(state: &State, term: u64) -> Result<NodeId, Guard> {
    let current = state.term_counter();
    if term != current {
        return Err(Guard::StaleTerm { term, current });
    }
    state
        .primary_in_office()
        .ok_or(Guard::NoValidPrimary { term })
}

/// The Active nodes other than `except`, with their loads, in node-id order.
fn candidates(state: &State, except: Option<NodeId>) -> Vec<Candidate> {
    state
        .active()
        .iter()
        .filter(|&n| Some(n) != except)
        .map(|node| Candidate {
            node,
            load: state.load(node),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Updates shared by several actions. They work on the successor state `next`.

/// Queues every actor placed on `node` with `reason` (fixed protocol; O(its actors x log)).
/// An actor already queued because its node failed keeps that reason.
fn queue_hosted(
    next: &mut State,
    effects: &mut Vec<Effect>,
    node: NodeId,
    reason: MigrationReason,
) {
    let actors: Vec<ActorId> = next
        .hosted(node)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let mut queued = 0u64;
    for actor in actors {
        let current = next.queue().get(&actor).copied();
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
        .is_none_or(|s| s.iter().all(|a| next.queue().contains_key(a))));
}

fn set(next: &mut State, node: NodeId, update: impl FnOnce(&mut NodeRecord)) {
    let found = next.node_mut(node).map(update).is_some();
    debug_assert!(found, "{node} was checked to exist before any update");
}

fn change_status(next: &mut State, effects: &mut Vec<Effect>, node: NodeId, to: NodeStatus) {
    let from = next.node(node).map_or(to, |r| r.status);
    debug_assert_ne!(from, to, "{node}: a status change changes the status");
    set(next, node, |r| r.status = to);
    effects.push(Effect::StatusChanged { node, from, to });
}

fn adopt_view(
    next: &mut State,
    effects: &mut Vec<Effect>,
    node: NodeId,
    view: NodeSet,
    view_number: u64,
) {
    debug_assert!(!view.is_empty(), "{node}: an adopted view is never empty");
    set(next, node, |r| {
        r.view = view;
        r.view_number = view_number;
        // A node listed again is no longer suspected by this node.
        r.detected = r.detected.difference(view);
    });
    effects.push(Effect::ViewChanged {
        node,
        view,
        view_number,
    });
}

/// `node` stops believing it is primary. The fixed protocol also clears the term it held (a
/// term is held only while primary); the reference model keeps it.
fn step_down(next: &mut State, effects: &mut Vec<Effect>, node: NodeId, reason: StepDownReason) {
    let fixed = next.config().mode() == Mode::Fixed;
    let Some(r) = next.node(node).copied() else {
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
    debug_assert!(!next.node(node).is_some_and(|r| r.believes_primary));
}

/// Erases `n` from every node's detection record (it failed or left: an old record must not
/// count as a detection of it later).
fn forget_detections(next: &mut State, n: NodeId) {
    let nodes: Vec<NodeId> = next.node_ids().collect();
    for m in nodes {
        set(next, m, |r| r.detected = r.detected.without(n));
    }
    debug_assert!(next.nodes().iter().all(|r| !r.detected.contains(n)));
}

fn become_primary(next: &mut State, effects: &mut Vec<Effect>, node: NodeId, term: u64) {
    set(next, node, |r| {
        r.believes_primary = true;
        r.term = term;
    });
    if next.config().mode() == Mode::Fixed {
        let counter = next.term_counter().max(term);
        next.set_term_counter(counter);
    }
    effects.push(Effect::BecamePrimary { node, term });
    debug_assert!(next.believers().contains(node));
}

fn record_view_number(next: &mut State, view_number: u64) {
    if next.config().mode() == Mode::Fixed {
        next.set_view_counter(view_number);
    }
}

// ---------------------------------------------------------------------------------------------
// The fourteen actions.

/// NodeJoin(n): `n` is Left. With no Active node it bootstraps (Active, view {n}, primary);
/// otherwise it becomes Joining. Fixed: the bootstrap's view number and term come from the
/// registry counters instead of the constant 1.
fn node_join(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Left)?;
    let mut next = state.clone();
    let mut effects = Vec::new();
    if state.active().is_empty() {
        let (view_number, term) = match state.config().mode() {
            Mode::Fixed => (issue_view_number(state)?, issue_term(state)?),
            Mode::Reference | Mode::Buggy => (
                within_bound(state, Counter::ViewNumber, 1)?,
                within_bound(state, Counter::Term, 1)?,
            ),
        };
        change_status(&mut next, &mut effects, n, NodeStatus::Active);
        become_primary(&mut next, &mut effects, n, term);
        adopt_view(&mut next, &mut effects, n, NodeSet::single(n), view_number);
        record_view_number(&mut next, view_number);
        debug_assert_eq!(next.active(), NodeSet::single(n));
    } else {
        change_status(&mut next, &mut effects, n, NodeStatus::Joining);
    }
    debug_assert!(!effects.is_empty());
    Ok((next, effects))
}

/// NodeJoinComplete(n): `n` is Joining and reaches an Active node. `n` and every Active node
/// that can communicate with it adopt `active \cup {n}` with a new number.
fn node_join_complete(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Joining)?;
    let active = state.active();
    if state.reachable_active(n).is_empty() {
        return Err(Guard::NoReachableActivePeer { node: n });
    }
    let view_number = match state.config().mode() {
        Mode::Fixed => issue_view_number(state)?,
        Mode::Reference | Mode::Buggy => {
            successor(state, Counter::ViewNumber, state.max_view_number(active))?
        }
    };
    let view = active.with(n);
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Active);
    for m in view.iter() {
        if m == n || state.can_communicate(n, m) {
            adopt_view(&mut next, &mut effects, m, view, view_number);
        }
    }
    record_view_number(&mut next, view_number);
    debug_assert!(next.node(n).is_some_and(|r| r.view == view));
    debug_assert!(next.active() == view);
    Ok((next, effects))
}

/// NodeLeave(n): `n` is Active. It becomes Leaving and gives up any primary belief. Fixed: its
/// actors are queued with reason NodeLeaving (one kept NodeFailed from an earlier failure
/// keeps that reason).
fn node_leave(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Active)?;
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Leaving);
    step_down(&mut next, &mut effects, n, StepDownReason::Leaving);
    if state.config().mode() == Mode::Fixed {
        queue_hosted(&mut next, &mut effects, n, MigrationReason::NodeLeaving);
    }
    debug_assert!(!next.believers().contains(n));
    debug_assert!(!next.active().contains(n));
    Ok((next, effects))
}

/// NodeLeaveComplete(n): `n` is Leaving. `n` becomes Left with an empty view; every Active node
/// adopts `active` (which no longer holds `n`). Reference: each increments its own number (all
/// must be below MaxView). Fixed: the node must hold no actors; all adopt one new number from
/// the registry counter; the leaving node's number is reset to 0 and its detection record
/// cleared, and `n` is erased from every detection record.
fn node_leave_complete(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Leaving)?;
    let config = state.config();
    if config.mode() == Mode::Fixed && !config.is_mutant(Mutant::LeaveCompleteWithActors) {
        let actors = state.load(n);
        if actors > 0 {
            return Err(Guard::HoldsActors { node: n, actors });
        }
    }
    let active = state.active();
    let mut next = state.clone();
    let mut effects = Vec::new();
    match state.config().mode() {
        Mode::Fixed => {
            let view_number = if active.is_empty() {
                None
            } else {
                Some(issue_view_number(state)?)
            };
            change_status(&mut next, &mut effects, n, NodeStatus::Left);
            set(&mut next, n, |r| {
                r.view = NodeSet::EMPTY;
                r.view_number = 0;
                r.detected = NodeSet::EMPTY;
            });
            // A detection of `n` must not outlive its leaving: if it rejoins, a peer's old
            // record would otherwise count as a detection of the new member.
            forget_detections(&mut next, n);
            if let Some(view_number) = view_number {
                for m in active.iter() {
                    adopt_view(&mut next, &mut effects, m, active, view_number);
                }
                record_view_number(&mut next, view_number);
            }
        }
        Mode::Reference | Mode::Buggy => {
            let mut numbers = Vec::new();
            for m in active.iter() {
                let current = state.node(m).map_or(0, |r| r.view_number);
                numbers.push((m, successor(state, Counter::ViewNumber, current)?));
            }
            change_status(&mut next, &mut effects, n, NodeStatus::Left);
            set(&mut next, n, |r| r.view = NodeSet::EMPTY);
            for (m, view_number) in numbers {
                adopt_view(&mut next, &mut effects, m, active, view_number);
            }
        }
    }
    debug_assert!(next.node(n).is_some_and(|r| r.view.is_empty()));
    debug_assert!(active
        .iter()
        .all(|m| next.node(m).is_some_and(|r| r.view == active)));
    Ok((next, effects))
}

/// SendHeartbeat(n): `n` is Active. `n` and every Active or Leaving node that can communicate
/// with it receive a heartbeat.
fn send_heartbeat(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Active)?;
    let mut next = state.clone();
    let receivers: Vec<NodeId> = state
        .node_ids()
        .filter(|&m| {
            m == n
                || (state.can_communicate(n, m)
                    && state.node(m).is_some_and(|r| {
                        matches!(r.status, NodeStatus::Active | NodeStatus::Leaving)
                    }))
        })
        .collect();
    for &m in &receivers {
        set(&mut next, m, |r| r.heartbeat_received = true);
    }
    debug_assert!(receivers.contains(&n));
    debug_assert!(next.node(n).is_some_and(|r| r.heartbeat_received));
    Ok((next, Vec::new()))
}

/// DetectFailure(d, t): both Active, `t` in `d`'s view, they cannot communicate, and `t`'s
/// heartbeat was not received. `d` drops `t` from its view with a new number. Fixed: the
/// detection is also recorded (`t` joins `detected[d]`), which MarkNodeFailed requires.
fn detect_failure(state: &State, d: NodeId, t: NodeId) -> Outcome {
    record(state, d)?;
    record(state, t)?;
    distinct(d, t)?;
    let detector = require_status(state, d, NodeStatus::Active)?;
    let target = require_status(state, t, NodeStatus::Active)?;
    if !detector.view.contains(t) {
        return Err(Guard::NotInView {
            detector: d,
            target: t,
        });
    }
    if state.can_communicate(d, t) {
        return Err(Guard::CanCommunicate { a: d, b: t });
    }
    if target.heartbeat_received {
        return Err(Guard::HeartbeatReceived { node: t });
    }
    let view_number = match state.config().mode() {
        Mode::Fixed => issue_view_number(state)?,
        Mode::Reference | Mode::Buggy => {
            successor(state, Counter::ViewNumber, detector.view_number)?
        }
    };
    let view = detector.view.without(t).with(d);
    let mut next = state.clone();
    let mut effects = Vec::new();
    adopt_view(&mut next, &mut effects, d, view, view_number);
    record_view_number(&mut next, view_number);
    if state.config().mode() == Mode::Fixed {
        // Fixed: the detection is recorded in the registry; MarkNodeFailed requires it.
        set(&mut next, d, |r| r.detected = r.detected.with(t));
    }
    debug_assert!(!view.contains(t) && view.contains(d));
    debug_assert_eq!(effects.len(), 1);
    Ok((next, effects))
}

/// The fixed protocol's detection guard for MarkNodeFailed(n): some Active `d != n` has
/// recorded a detection of `n` (DetectFailure(d, n), not undone by a later view listing `n`),
/// still cannot communicate with it, and `n`'s heartbeat was not received. A node that merely
/// never heard of `n` has recorded nothing, so it cannot get `n` declared failed.
fn detected_by(state: &State, n: NodeId) -> Result<NodeId, Guard> {
    if state.node(n).is_some_and(|r| r.heartbeat_received) {
        return Err(Guard::HeartbeatReceived { node: n });
    }
    let detectors: Vec<NodeId> = state
        .active()
        .without(n)
        .iter()
        .filter(|&d| state.node(d).is_some_and(|r| r.detected.contains(n)))
        .collect();
    match detectors.iter().find(|&&d| !state.can_communicate(d, n)) {
        Some(&d) => Ok(d),
        None => match detectors.first() {
            Some(&d) => Err(Guard::CanCommunicate { a: d, b: n }),
            None => Err(Guard::Undetected { node: n }),
        },
    }
}

/// MarkNodeFailed(n): `n` is Active and was detected. It becomes Failed (empty view, number 0,
/// no primary belief, term 0).
///
/// Reference: detected means merely "some Active `d != n` lacks `n` in its view" (which also
/// holds when `d` never heard of `n`: the LeaveDetectionWeak defect). Fixed: the detection
/// guard of [`detected_by`], and in the same transition `n` is removed from every Active view
/// that still lists it (those nodes adopt `active \ {n}` with one new number) and from every
/// detection record, is fenced, and all its actors are queued with reason NodeFailed.
fn mark_node_failed(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Active)?;
    let config = *state.config();
    let fixed = config.mode() == Mode::Fixed;
    // The reference guard, also used by the mutant that reintroduces the reference defect.
    let reference_guard = !fixed || config.is_mutant(Mutant::FailKeepsViews);
    if fixed && config.is_mutant(Mutant::FailWithoutDetection) {
        // Mutant: no detection guard at all.
    } else if !reference_guard {
        detected_by(state, n)?;
    } else {
        let others = state.active().without(n);
        if !others
            .iter()
            .any(|d| state.node(d).is_some_and(|r| !r.view.contains(n)))
        {
            return Err(Guard::Undetected { node: n });
        }
    }
    let remaining = state.active().without(n);
    let listers: Vec<NodeId> = remaining
        .iter()
        .filter(|&m| state.node(m).is_some_and(|r| r.view.contains(n)))
        .collect();
    let cleanup = fixed && !config.is_mutant(Mutant::FailKeepsViews) && !listers.is_empty();
    let view_number = if cleanup {
        Some(issue_view_number(state)?)
    } else {
        None
    };
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Failed);
    if fixed {
        effects.push(Effect::Fenced { node: n });
    }
    step_down(&mut next, &mut effects, n, StepDownReason::Failed);
    if fixed && !config.is_mutant(Mutant::FailForgetsActors) {
        queue_hosted(&mut next, &mut effects, n, MigrationReason::NodeFailed);
    }
    set(&mut next, n, |r| {
        r.view = NodeSet::EMPTY;
        r.view_number = 0;
        r.term = 0;
        r.detected = NodeSet::EMPTY;
    });
    forget_detections(&mut next, n);
    if let Some(view_number) = view_number {
        for &m in &listers {
            adopt_view(&mut next, &mut effects, m, remaining, view_number);
        }
        record_view_number(&mut next, view_number);
    }
    debug_assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Failed && !r.believes_primary));
    debug_assert!(
        !cleanup
            || next
                .active()
                .iter()
                .all(|m| next.node(m).is_some_and(|r| !r.view.contains(n)))
    );
    Ok((next, effects))
}

/// NodeRecover(n): `n` is Failed. It becomes Left (empty view, number 0, term 0, empty detection
/// record). Fixed: only once no Active view lists it (always true after a fixed MarkNodeFailed;
/// checked anyway). Its actors, queued with reason NodeFailed, stay queued.
fn node_recover(state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Failed)?;
    let config = state.config();
    if config.mode() == Mode::Fixed && !config.is_mutant(Mutant::FailKeepsViews) {
        if let Some(viewer) = state
            .active()
            .iter()
            .find(|&m| state.node(m).is_some_and(|r| r.view.contains(n)))
        {
            return Err(Guard::StillInView { node: n, viewer });
        }
    }
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Left);
    set(&mut next, n, |r| {
        r.view = NodeSet::EMPTY;
        r.view_number = 0;
        r.term = 0;
        r.detected = NodeSet::EMPTY;
    });
    debug_assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Left && r.view.is_empty()));
    debug_assert_eq!(effects.len(), 1);
    Ok((next, effects))
}

/// ElectPrimary(n): `n` is Active, does not believe it is primary, has a majority, and no node
/// has a valid primary claim; it becomes primary with a term above every term so far.
///
/// Reference: term `1 + max term over all nodes`. Buggy: only the first two guards, and the term
/// `max term over all nodes` (not incremented). Fixed: the term comes from the registry-wide
/// counter (never reused), and every other node that still believes it is primary is demoted in
/// the same transition (it is superseded).
fn elect_primary(state: &State, n: NodeId) -> Outcome {
    let r = record(state, n)?;
    if r.believes_primary {
        return Err(Guard::AlreadyPrimary { node: n });
    }
    require_status(state, n, NodeStatus::Active)?;
    let config = *state.config();
    let guarded = config.mode() != Mode::Buggy;
    if guarded && !state.has_majority(n) && !config.is_mutant(Mutant::ElectWithoutMajority) {
        return Err(Guard::NoMajority {
            node: n,
            reachable: state.reachable_active(n).len(),
            nodes: config.node_count(),
        });
    }
    if guarded {
        if let Some(primary) = state.valid_primaries().iter().next() {
            return Err(Guard::ValidPrimaryExists { primary });
        }
    }
    let term = match config.mode() {
        Mode::Fixed if config.is_mutant(Mutant::ElectWithoutTermIncrement) => state.term_counter(),
        Mode::Fixed => issue_term(state)?,
        Mode::Reference => successor(state, Counter::Term, state.max_term())?,
        Mode::Buggy => r.term,
    };
    let mut next = state.clone();
    let mut effects = Vec::new();
    if config.mode() == Mode::Fixed {
        for m in state.believers().iter() {
            step_down(&mut next, &mut effects, m, StepDownReason::Superseded);
        }
    }
    become_primary(&mut next, &mut effects, n, term);
    debug_assert!(config.mode() != Mode::Fixed || next.believers() == NodeSet::single(n));
    debug_assert!(next
        .node(n)
        .is_some_and(|r| r.believes_primary && r.term == term));
    Ok((next, effects))
}

/// PrimaryStepDown(n): `n` believes it is primary, is Active, and has no majority; it stops
/// believing. Disabled in buggy mode.
fn primary_step_down(state: &State, n: NodeId) -> Outcome {
    let r = record(state, n)?;
    let config = state.config();
    if config.mode() == Mode::Buggy || config.is_mutant(Mutant::NoStepDown) {
        return Err(Guard::Disabled {
            mode: config.mode(),
        });
    }
    if !r.believes_primary {
        return Err(Guard::NotPrimary { node: n });
    }
    require_status(state, n, NodeStatus::Active)?;
    if state.has_majority(n) {
        return Err(Guard::HasMajority { node: n });
    }
    let mut next = state.clone();
    let mut effects = Vec::new();
    step_down(&mut next, &mut effects, n, StepDownReason::MajorityLost);
    debug_assert!(!next.believers().contains(n));
    debug_assert_eq!(effects.len(), 1);
    Ok((next, effects))
}

/// CreatePartition(a, b): `a != b`, not yet partitioned; both orderings are added.
fn create_partition(state: &State, a: NodeId, b: NodeId) -> Outcome {
    record(state, a)?;
    record(state, b)?;
    distinct(a, b)?;
    if !state.can_communicate(a, b) {
        return Err(Guard::AlreadyPartitioned { a, b });
    }
    let mut next = state.clone();
    set(&mut next, a, |r| {
        r.partitioned_from = r.partitioned_from.with(b)
    });
    set(&mut next, b, |r| {
        r.partitioned_from = r.partitioned_from.with(a)
    });
    debug_assert!(!next.can_communicate(a, b) && !next.can_communicate(b, a));
    debug_assert!(next.can_communicate(a, a));
    Ok((next, Vec::new()))
}

/// HealPartition(a, b): `<<a, b>>` is partitioned; both orderings are removed. Outside buggy
/// mode, if both now-communicating nodes believe they are primary, one steps down: reference,
/// the one that comes first in node-id order; fixed, the one with the lower term (ties, which the
/// fixed protocol never produces, by node id).
fn heal_partition(state: &State, a: NodeId, b: NodeId) -> Outcome {
    record(state, a)?;
    record(state, b)?;
    if state.can_communicate(a, b) {
        return Err(Guard::NotPartitioned { a, b });
    }
    let mut next = state.clone();
    let mut effects = Vec::new();
    set(&mut next, a, |r| {
        r.partitioned_from = r.partitioned_from.without(b)
    });
    set(&mut next, b, |r| {
        r.partitioned_from = r.partitioned_from.without(a)
    });
    let believers = state.believers();
    if state.config().mode() != Mode::Buggy && believers.contains(a) && believers.contains(b) {
        let loser = match state.config().mode() {
            Mode::Fixed => {
                let term = |n: NodeId| state.node(n).map_or(0, |r| r.term);
                if (term(a), a) < (term(b), b) {
                    a
                } else {
                    b
                }
            }
            Mode::Reference | Mode::Buggy => a.min(b),
        };
        step_down(
            &mut next,
            &mut effects,
            loser,
            StepDownReason::PartitionHealed,
        );
    }
    debug_assert!(next.can_communicate(a, b));
    debug_assert!(
        state.config().mode() == Mode::Buggy
            || !(next.believers().contains(a) && next.believers().contains(b))
    );
    Ok((next, effects))
}

/// ResetHeartbeats: every `heartbeat_received` becomes false (a heartbeat interval passes).
fn reset_heartbeats(state: &State) -> (State, Vec<Effect>) {
    let mut next = state.clone();
    for n in state.node_ids() {
        set(&mut next, n, |r| r.heartbeat_received = false);
    }
    debug_assert!(next.nodes().iter().all(|r| !r.heartbeat_received));
    debug_assert_eq!(next.active(), state.active());
    (next, Vec::new())
}

/// SyncViews(a, b): `a != b`, both Active, can communicate, view numbers differ. Both adopt the
/// view of the node with the larger number, united with `{a, b}`, with a new number: reference
/// `h + 1` (below MaxView), fixed the next number of the registry counter.
fn sync_views(state: &State, a: NodeId, b: NodeId) -> Outcome {
    record(state, a)?;
    record(state, b)?;
    distinct(a, b)?;
    let config = state.config();
    if config.is_mutant(Mutant::NoSyncViews) {
        return Err(Guard::Disabled {
            mode: config.mode(),
        });
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
    let view_number = match config.mode() {
        Mode::Fixed => issue_view_number(state)?,
        Mode::Reference | Mode::Buggy => successor(state, Counter::ViewNumber, newer.view_number)?,
    };
    let view = newer.view.with(a).with(b);
    let mut next = state.clone();
    let mut effects = Vec::new();
    adopt_view(&mut next, &mut effects, a.min(b), view, view_number);
    adopt_view(&mut next, &mut effects, a.max(b), view, view_number);
    record_view_number(&mut next, view_number);
    debug_assert!(view_number > ra.view_number.max(rb.view_number));
    debug_assert_eq!(effects.len(), 2);
    Ok((next, effects))
}

// ---------------------------------------------------------------------------------------------
// The actor actions (fixed protocol only).

/// PlaceActor(a): `a` is not placed and the registry has room; it is placed on the Active node
/// the strategy chooses, with a fresh epoch.
fn place_actor(state: &State, actor: ActorId, strategy: &dyn PlacementStrategy) -> Outcome {
    require_fixed(state)?;
    if let Some(p) = state.placement(actor) {
        return Err(Guard::AlreadyPlaced {
            actor,
            node: p.node,
        });
    }
    let actors_max = state.config().actors_max();
    if u64::try_from(state.placements().len()).unwrap_or(u64::MAX) >= actors_max {
        return Err(Guard::RegistryFull { actors_max });
    }
    let cs = candidates(state, None);
    let node = choose(strategy, actor, &cs).ok_or(Guard::NoTarget { actor })?;
    let epoch = issue_epoch(state)?;
    let mut next = state.clone();
    next.put_actor(actor, Placement { node, epoch });
    next.set_epoch_counter(epoch);
    let effects = vec![Effect::ActorActivated { actor, node, epoch }];
    debug_assert!(next.active().contains(node));
    debug_assert_eq!(next.placements().len(), state.placements().len() + 1);
    Ok((next, effects))
}

/// The strategy's choice, checked: a strategy that answers a non-candidate is ignored (the
/// reducer never places on a node that is not Active, whatever the strategy does).
fn choose(strategy: &dyn PlacementStrategy, actor: ActorId, cs: &[Candidate]) -> Option<NodeId> {
    strategy
        .choose(actor, cs)
        .filter(|n| cs.iter().any(|c| c.node == *n))
}

/// MigrateActor(a, t): `a` is queued, `t` is the current term held by a valid primary (fencing),
/// and some Active node other than the one it leaves can take it; it moves there with a fresh
/// epoch and leaves the queue.
fn migrate_actor(
    state: &State,
    actor: ActorId,
    term: u64,
    strategy: &dyn PlacementStrategy,
) -> Outcome {
    require_fixed(state)?;
    let entry = *state
        .queue()
        .get(&actor)
        .ok_or(Guard::NotQueued { actor })?;
    let config = state.config();
    if !config.is_mutant(Mutant::MigrateWithoutTermCheck) {
        require_primary_term(state, term)?;
    }
    let old = state.placement(actor).ok_or(Guard::NotPlaced { actor })?;
    let cs = candidates(state, Some(entry.from));
    let node = choose(strategy, actor, &cs).ok_or(Guard::NoTarget { actor })?;
    let epoch = if config.is_mutant(Mutant::MigrateWithoutEpochIncrease) {
        old.epoch
    } else {
        issue_epoch(state)?
    };
    let mut next = state.clone();
    next.put_actor(actor, Placement { node, epoch });
    next.set_epoch_counter(state.epoch_counter().max(epoch));
    let effects = vec![
        Effect::ActorDeactivated {
            actor,
            node: old.node,
            epoch: old.epoch,
        },
        Effect::ActorActivated { actor, node, epoch },
    ];
    debug_assert!(!next.queue().contains_key(&actor));
    debug_assert_ne!(node, entry.from);
    Ok((next, effects))
}

/// RebalanceActors(t): `t` is the current term held by a valid primary; every Active node whose
/// load, less what is already queued to leave it, exceeds the balanced share (total load on
/// Active nodes over their number, rounded up) gets its excess queued with reason LoadBalancing,
/// lowest actor ids first, at most [`REBALANCE_BATCH_MAX`] actors in all. Refused when nothing
/// is over the share.
fn rebalance_actors(state: &State, term: u64) -> Outcome {
    require_fixed(state)?;
    require_primary_term(state, term)?;
    let active = state.active();
    let total: u64 = active.iter().map(|n| state.load(n)).sum();
    let share = total.div_ceil(u64::from(active.len().max(1)));
    let mut next = state.clone();
    let mut effects = Vec::new();
    let mut budget = REBALANCE_BATCH_MAX;
    for node in active.iter() {
        let Some(hosted) = state.hosted(node) else {
            continue;
        };
        let leaving = hosted
            .iter()
            .filter(|&a| state.queue().contains_key(a))
            .count();
        let staying = hosted.len() - leaving;
        let excess = staying.saturating_sub(usize::try_from(share).unwrap_or(usize::MAX));
        let take = excess.min(budget);
        let mut queued = 0u64;
        for &actor in hosted
            .iter()
            .filter(|&a| !state.queue().contains_key(a))
            .take(take)
        {
            next.enqueue(actor, node, MigrationReason::LoadBalancing);
            queued += 1;
        }
        budget -= take;
        if queued > 0 {
            effects.push(Effect::MigrationsQueued {
                from: node,
                reason: MigrationReason::LoadBalancing,
                actors: queued,
            });
        }
    }
    if effects.is_empty() {
        return Err(Guard::Balanced { share });
    }
    debug_assert!(next.queue().len() > state.queue().len());
    debug_assert!(next.queue().len() - state.queue().len() <= REBALANCE_BATCH_MAX);
    Ok((next, effects))
}

/// RemoveActor(a): `a` is placed; it is deactivated and forgotten (with its queue entry).
fn remove_actor(state: &State, actor: ActorId) -> Outcome {
    require_fixed(state)?;
    let old = state.placement(actor).ok_or(Guard::NotPlaced { actor })?;
    let mut next = state.clone();
    next.drop_actor(actor);
    let effects = vec![Effect::ActorDeactivated {
        actor,
        node: old.node,
        epoch: old.epoch,
    }];
    debug_assert!(next.placement(actor).is_none());
    debug_assert_eq!(next.placements().len() + 1, state.placements().len());
    Ok((next, effects))
}

/// Migrates up to `max` (at most [`MIGRATION_BATCH_MAX`]) queued actors, lowest actor ids first,
/// as consecutive MigrateActor steps under `term`: the work of one batch transaction. Stops early
/// at the first refusal after at least one move (for example when no target remains). Returns
/// the new state, the effects, and the events applied (for the transaction's log).
pub fn migrate_batch(
    state: &State,
    term: u64,
    max: usize,
    strategy: &dyn PlacementStrategy,
) -> Result<(State, Vec<Effect>, Vec<Event>), Refusal> {
    let limit = max.min(MIGRATION_BATCH_MAX);
    let actors: Vec<ActorId> = state.queue().keys().take(limit).copied().collect();
    let mut current = state.clone();
    let mut effects = Vec::new();
    let mut applied = Vec::new();
    for actor in actors {
        let event = Event::MigrateActor { actor, term };
        match step_with(&current, &event, strategy) {
            Ok((next, mut more)) => {
                current = next;
                effects.append(&mut more);
                applied.push(event);
            }
            Err(refusal) if applied.is_empty() => return Err(refusal),
            Err(_) => break,
        }
    }
    debug_assert!(applied.len() <= limit);
    debug_assert_eq!(effects.len(), 2 * applied.len());
    Ok((current, effects, applied))
}
