//! The reducer: `step(&State, &Event) -> Result<(State, Vec<Effect>), Refusal>`.
//!
//! One function per spec action, named after it. Each checks the action's guards in the order
//! the spec lists them and returns the first that fails as a [`Guard`]; otherwise it builds the
//! successor state and the effects. Where the reference model, the buggy model or a mutant
//! differ (feature `checking`), the action consults one named switch of [`Rules`], computed once
//! per step by `Rules::of`; a production build always runs `Rules::FIXED`, so every action reads
//! like the fixed spec.
//!
//! **The bound is the last guard.** Every action checks the checking bounds (`MaxView` on view
//! numbers and terms, `MaxEpoch` on epochs: [`Guard::BoundReached`]) after all its other guards.
//! So a refusal by the bound means "enabled in the unbounded protocol": the model checker's
//! liveness pass relies on it, and a property test (`core/tests/bounds.rs`) pins it by lifting
//! the bound from every bound-refused step and checking that the step is then accepted.
//!
//! **Assertions.** Each action asserts its postconditions. Those that cost O(1) (a constant
//! number of records or counters) are `assert!` and run in release builds too, where they catch
//! a corrupted store; those that walk every node or actor are `debug_assert!`. No state that
//! decodes (see [`crate::RegistryError`]) makes any of them fail.
//!
//! Effects come in a fixed order within one transition: status changes, fencing, step-downs,
//! queued migrations, new primaries, then view changes in node-id order; an actor move is its
//! deactivation then its activation.

use crate::actor::{
    ActorId, Candidate, LeastLoaded, MigrationEntry, MigrationReason, Placement, PlacementStrategy,
    REBALANCE_BATCH_MAX,
};
use crate::effect::{Effect, StepDownReason};
use crate::event::Event;
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::{Counter, Guard, Refusal};
use crate::rules::{ElectTerm, FailureEvidence, HealRule, Numbering, Rules};
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
    let rules = Rules::of(state.config());
    let r = &rules;
    let outcome = match *event {
        Event::NodeJoin { node } => node_join(r, state, node),
        Event::NodeJoinComplete { node } => node_join_complete(r, state, node),
        Event::NodeLeave { node } => node_leave(r, state, node),
        Event::NodeLeaveComplete { node } => node_leave_complete(r, state, node),
        Event::SendHeartbeat { node } => send_heartbeat(state, node),
        Event::DetectFailure { detector, target } => detect_failure(r, state, detector, target),
        Event::MarkNodeFailed { node } => mark_node_failed(r, state, node),
        Event::NodeRecover { node } => node_recover(r, state, node),
        Event::ElectPrimary { node } => elect_primary(r, state, node),
        Event::PrimaryStepDown { node } => primary_step_down(r, state, node),
        Event::CreatePartition { a, b } => create_partition(state, a, b),
        Event::HealPartition { a, b } => heal_partition(r, state, a, b),
        Event::ResetHeartbeats => Ok(reset_heartbeats(state)),
        Event::SyncViews { a, b } => sync_views(r, state, a, b),
        Event::PlaceActor { actor } => place_actor(r, state, actor, strategy),
        Event::MigrateActor { actor, term } => migrate_actor(r, state, actor, term, strategy),
        Event::RebalanceActors { term } => rebalance_actors(r, state, term),
        Event::RemoveActor { actor } => remove_actor(r, state, actor),
    };
    let (next, effects) = outcome.map_err(|guard| Refusal { action, guard })?;
    assert_eq!(
        next.config(),
        state.config(),
        "{event}: the configuration never changes"
    );
    assert_eq!(
        next.nodes().len(),
        state.nodes().len(),
        "{event}: the node table keeps its size"
    );
    assert!(
        next.term_counter() >= state.term_counter(),
        "{event}: term counter decreased"
    );
    assert!(
        next.view_counter() >= state.view_counter(),
        "{event}: view counter decreased"
    );
    assert!(
        next.epoch_counter() >= state.epoch_counter(),
        "{event}: epoch counter decreased"
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
fn within_bound(rules: &Rules, counter: Counter, value: u64) -> Result<u64, Guard> {
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
fn successor(rules: &Rules, counter: Counter, value: u64) -> Result<u64, Guard> {
    let next = value
        .checked_add(1)
        .ok_or(Guard::CounterOverflow { counter })?;
    within_bound(rules, counter, next)
}

/// Fixed protocol: the next view number from the registry-wide view counter.
fn issue_view_number(rules: &Rules, state: &State) -> Result<u64, Guard> {
    successor(rules, Counter::ViewNumber, state.view_counter())
}

/// The view number a node moving on from view number `own` adopts: fixed, the next value of
/// the registry counter; reference, `own + 1`.
fn next_view_number(rules: &Rules, state: &State, own: u64) -> Result<u64, Guard> {
    match rules.numbering {
        Numbering::Registry => issue_view_number(rules, state),
        Numbering::PerNode => successor(rules, Counter::ViewNumber, own),
    }
}

/// Fixed protocol: the next term from the registry-wide term counter.
fn issue_term(rules: &Rules, state: &State) -> Result<u64, Guard> {
    successor(rules, Counter::Term, state.term_counter())
}

/// The next actor epoch from the registry-wide epoch counter, within the checking bound
/// `max_epoch` when there is one.
fn issue_epoch(rules: &Rules, state: &State) -> Result<u64, Guard> {
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
fn require_actors(rules: &Rules) -> Result<(), Guard> {
    if rules.actors {
        Ok(())
    } else {
        Err(Guard::Disabled)
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

fn set(next: &mut State, node: NodeId, update: impl FnOnce(&mut NodeRecord)) {
    let found = next.node_mut(node).map(update).is_some();
    debug_assert!(found, "{node} was checked to exist before any update");
}

fn change_status(next: &mut State, effects: &mut Vec<Effect>, node: NodeId, to: NodeStatus) {
    let from = next.node(node).map_or(to, |r| r.status);
    assert_ne!(from, to, "{node}: a status change changes the status");
    set(next, node, |r| r.status = to);
    effects.push(Effect::StatusChanged { node, from, to });
    assert!(next.node(node).is_some_and(|r| r.status == to));
}

fn adopt_view(
    next: &mut State,
    effects: &mut Vec<Effect>,
    node: NodeId,
    view: NodeSet,
    view_number: u64,
) {
    assert!(!view.is_empty(), "{node}: an adopted view is never empty");
    assert!(view.contains(node), "{node}: a node always lists itself");
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
fn step_down(
    rules: &Rules,
    next: &mut State,
    effects: &mut Vec<Effect>,
    node: NodeId,
    reason: StepDownReason,
) {
    let fixed = rules.registry_counters();
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
    assert!(!next.node(node).is_some_and(|r| r.believes_primary));
    assert!(!fixed || next.node(node).is_some_and(|r| r.term == 0));
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

fn become_primary(
    rules: &Rules,
    next: &mut State,
    effects: &mut Vec<Effect>,
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

fn record_view_number(rules: &Rules, next: &mut State, view_number: u64) {
    if rules.registry_counters() {
        next.set_view_counter(view_number);
    }
}

// ---------------------------------------------------------------------------------------------
// The fourteen actions.

/// NodeJoin(n): `n` is Left. With no Active node it bootstraps (Active, view {n}, primary);
/// otherwise it becomes Joining. Fixed: the bootstrap's view number and term come from the
/// registry counters instead of the constant 1.
fn node_join(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Left)?;
    let mut next = state.clone();
    let mut effects = Vec::new();
    if state.active().is_empty() {
        let (view_number, term) = match rules.numbering {
            Numbering::Registry => (issue_view_number(rules, state)?, issue_term(rules, state)?),
            Numbering::PerNode => (
                within_bound(rules, Counter::ViewNumber, 1)?,
                within_bound(rules, Counter::Term, 1)?,
            ),
        };
        change_status(&mut next, &mut effects, n, NodeStatus::Active);
        become_primary(rules, &mut next, &mut effects, n, term);
        adopt_view(&mut next, &mut effects, n, NodeSet::single(n), view_number);
        record_view_number(rules, &mut next, view_number);
        debug_assert_eq!(next.active(), NodeSet::single(n));
    } else {
        change_status(&mut next, &mut effects, n, NodeStatus::Joining);
    }
    assert!(!effects.is_empty());
    assert!(next
        .node(n)
        .is_some_and(|r| matches!(r.status, NodeStatus::Active | NodeStatus::Joining)));
    Ok((next, effects))
}

/// NodeJoinComplete(n): `n` is Joining and reaches an Active node. `n` and every Active node
/// that can communicate with it adopt `active \cup {n}` with a new number.
fn node_join_complete(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Joining)?;
    let active = state.active();
    if state.reachable_active(n).is_empty() {
        return Err(Guard::NoReachableActivePeer { node: n });
    }
    let view_number = next_view_number(rules, state, state.max_view_number(active))?;
    let view = active.with(n);
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Active);
    for m in view.iter() {
        if m == n || state.can_communicate(n, m) {
            adopt_view(&mut next, &mut effects, m, view, view_number);
        }
    }
    record_view_number(rules, &mut next, view_number);
    assert!(next
        .node(n)
        .is_some_and(|r| r.view == view && r.view_number == view_number));
    debug_assert!(next.active() == view);
    Ok((next, effects))
}

/// NodeLeave(n): `n` is Active. It becomes Leaving and gives up any primary belief. Fixed: its
/// actors are queued with reason NodeLeaving (one kept NodeFailed from an earlier failure
/// keeps that reason).
fn node_leave(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Active)?;
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Leaving);
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

/// NodeLeaveComplete(n): `n` is Leaving. `n` becomes Left with an empty view; every Active node
/// adopts `active` (which no longer holds `n`). Reference: each increments its own number (all
/// must be below MaxView). Fixed: the node must hold no actors; all adopt one new number from
/// the registry counter; the leaving node's number is reset to 0 and its detection record
/// cleared, and `n` is erased from every detection record.
fn node_leave_complete(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Leaving)?;
    if rules.actors && rules.leave_needs_no_actors {
        let actors = state.load(n);
        if actors > 0 {
            return Err(Guard::HoldsActors { node: n, actors });
        }
    }
    let active = state.active();
    let mut next = state.clone();
    let mut effects = Vec::new();
    match rules.numbering {
        Numbering::Registry => {
            let view_number = if active.is_empty() {
                None
            } else {
                Some(issue_view_number(rules, state)?)
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
                record_view_number(rules, &mut next, view_number);
            }
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
                adopt_view(&mut next, &mut effects, m, active, view_number);
            }
        }
    }
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Left && r.view.is_empty()));
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
        next.set_heartbeat(m, true);
    }
    assert!(receivers.contains(&n));
    assert!(next.heartbeat_received(n));
    Ok((next, Vec::new()))
}

/// DetectFailure(d, t): both Active, `t` in `d`'s view, they cannot communicate, and `t`'s
/// heartbeat was not received. `d` drops `t` from its view with a new number.
///
/// Fixed: the detection is also recorded (`t` joins `detected[d]`): it is `d`'s vote for
/// MarkNodeFailed(t). Instead of "`t` in `d`'s view" the guard is "`d` has not recorded a
/// detection of `t` yet" (one vote per detector; implied by `t` in `d`'s view, since a node never
/// suspects a member of its own view). A detector whose view no longer lists `t` (it adopted a
/// view from a peer that had dropped `t`, or its view predates `t`'s admission) records its vote
/// without a view change: otherwise a peer that synchronised its view with the first detector
/// could never vote, and no majority of votes could form.
fn detect_failure(rules: &Rules, state: &State, d: NodeId, t: NodeId) -> Outcome {
    record(state, d)?;
    record(state, t)?;
    distinct(d, t)?;
    let detector = require_status(state, d, NodeStatus::Active)?;
    require_status(state, t, NodeStatus::Active)?;
    let listed = detector.view.contains(t);
    if rules.record_detections {
        if detector.detected.contains(t) {
            return Err(Guard::AlreadyDetected {
                detector: d,
                target: t,
            });
        }
    } else if !listed {
        return Err(Guard::NotInView {
            detector: d,
            target: t,
        });
    }
    if state.can_communicate(d, t) {
        return Err(Guard::CanCommunicate { a: d, b: t });
    }
    if state.heartbeat_received(t) {
        return Err(Guard::HeartbeatReceived { node: t });
    }
    let mut next = state.clone();
    let mut effects = Vec::new();
    if listed {
        let view_number = next_view_number(rules, state, detector.view_number)?;
        let view = detector.view.without(t).with(d);
        adopt_view(&mut next, &mut effects, d, view, view_number);
        record_view_number(rules, &mut next, view_number);
        assert!(!view.contains(t) && view.contains(d));
    }
    if rules.record_detections {
        // Fixed: the detection is recorded in the registry: d's vote for MarkNodeFailed(t).
        set(&mut next, d, |r| r.detected = r.detected.with(t));
    }
    assert!(next.node(d).is_some_and(|r| !r.view.contains(t)));
    assert_eq!(effects.len(), usize::from(listed));
    Ok((next, effects))
}

/// The fixed protocol's detection guard for MarkNodeFailed(n): some Active `d != n` has
/// recorded a detection of `n` (DetectFailure(d, n), not undone by a later view listing `n`),
/// still cannot communicate with it, and `n`'s heartbeat was not received. A node that merely
/// never heard of `n` has recorded nothing, so it cannot get `n` declared failed.
fn detected_by(state: &State, n: NodeId) -> Result<NodeId, Guard> {
    if state.heartbeat_received(n) {
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

/// The fixed protocol's quorum guard for MarkNodeFailed(n): the guard of [`detected_by`], and
/// the votes ([`State::failure_votes`]: recorded detections by Active peers that still cannot
/// reach `n`) are a strict majority of all nodes, the majority of `has_majority`. A detector cut
/// off from the cluster (a degraded observer) is one vote, so it alone can never get a node
/// declared failed, and neither can the nodes of any minority.
fn failure_quorum(state: &State, n: NodeId) -> Result<NodeSet, Guard> {
    detected_by(state, n)?;
    let votes = state.failure_votes(n);
    let needed = state.majority();
    if votes.len() < needed {
        return Err(Guard::NoFailureQuorum {
            node: n,
            votes,
            needed,
            nodes: state.config().node_count(),
        });
    }
    debug_assert!(state.has_failure_quorum(n));
    Ok(votes)
}

/// MarkNodeFailed(n): `n` is Active and was detected. It becomes Failed (empty view, number 0,
/// no primary belief, term 0).
///
/// Reference: detected means merely "some Active `d != n` lacks `n` in its view" (which also
/// holds when `d` never heard of `n`: the LeaveDetectionWeak defect). Fixed: the quorum guard
/// of [`failure_quorum`] (a majority of all nodes voted), and in the same transition `n` is
/// removed from every Active view that still lists it (those nodes adopt `active \ {n}` with
/// one new number) and from every detection record, is fenced, and all its actors are queued
/// with reason NodeFailed.
fn mark_node_failed(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Active)?;
    match rules.failure_evidence {
        FailureEvidence::Quorum => {
            failure_quorum(state, n)?;
        }
        FailureEvidence::Recorded => {
            detected_by(state, n)?;
        }
        FailureEvidence::ViewLacks => {
            let others = state.active().without(n);
            if !others
                .iter()
                .any(|d| state.node(d).is_some_and(|r| !r.view.contains(n)))
            {
                return Err(Guard::Undetected { node: n });
            }
        }
        FailureEvidence::Nothing => {}
    }
    let remaining = state.active().without(n);
    let listers: Vec<NodeId> = remaining
        .iter()
        .filter(|&m| state.node(m).is_some_and(|r| r.view.contains(n)))
        .collect();
    let cleanup = rules.failure_cleans_views && !listers.is_empty();
    let view_number = if cleanup {
        Some(issue_view_number(rules, state)?)
    } else {
        None
    };
    let mut next = state.clone();
    let mut effects = Vec::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Failed);
    if rules.failure_fences {
        effects.push(Effect::Fenced { node: n });
    }
    step_down(rules, &mut next, &mut effects, n, StepDownReason::Failed);
    if rules.actors && rules.failure_queues_actors {
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
        record_view_number(rules, &mut next, view_number);
    }
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Failed && !r.believes_primary));
    assert!(next
        .node(n)
        .is_some_and(|r| r.view.is_empty() && r.term == 0));
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
fn node_recover(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    require_status(state, n, NodeStatus::Failed)?;
    if rules.failure_cleans_views {
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
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Left && r.view.is_empty()));
    assert_eq!(effects.len(), 1);
    Ok((next, effects))
}

/// ElectPrimary(n): `n` is Active, does not believe it is primary, has a majority, and no node
/// has a valid primary claim; it becomes primary with a term above every term so far.
///
/// Reference: term `1 + max term over all nodes`. Buggy: only the first two guards, and no term
/// is granted: the node keeps its own term, with no bound check. Fixed: the term comes from the registry-wide
/// counter (never reused), and every other node that still believes it is primary is demoted in
/// the same transition (it is superseded).
fn elect_primary(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    let r = record(state, n)?;
    if r.believes_primary {
        return Err(Guard::AlreadyPrimary { node: n });
    }
    require_status(state, n, NodeStatus::Active)?;
    if rules.elect_needs_majority && !state.has_majority(n) {
        return Err(Guard::NoMajority {
            node: n,
            reachable: state.reachable_active(n).len(),
            nodes: state.config().node_count(),
        });
    }
    if rules.elect_needs_no_valid_primary {
        if let Some(primary) = state.valid_primaries().iter().next() {
            return Err(Guard::ValidPrimaryExists { primary });
        }
    }
    let term = match rules.elect_term {
        ElectTerm::Fresh => issue_term(rules, state)?,
        ElectTerm::Reuse => state.term_counter(),
        ElectTerm::MaxPlusOne => successor(rules, Counter::Term, state.max_term())?,
        ElectTerm::Own => r.term,
    };
    let mut next = state.clone();
    let mut effects = Vec::new();
    if rules.elect_demotes_others {
        for m in state.believers().iter() {
            step_down(
                rules,
                &mut next,
                &mut effects,
                m,
                StepDownReason::Superseded,
            );
        }
    }
    become_primary(rules, &mut next, &mut effects, n, term);
    debug_assert!(!rules.elect_demotes_others || next.believers() == NodeSet::single(n));
    assert!(next
        .node(n)
        .is_some_and(|r| r.believes_primary && r.term == term));
    Ok((next, effects))
}

/// PrimaryStepDown(n): `n` believes it is primary, is Active, and has no majority; it stops
/// believing. Disabled in buggy mode.
fn primary_step_down(rules: &Rules, state: &State, n: NodeId) -> Outcome {
    let r = record(state, n)?;
    if !rules.step_down {
        return Err(Guard::Disabled);
    }
    if !r.believes_primary {
        return Err(Guard::NotPrimary { node: n });
    }
    require_status(state, n, NodeStatus::Active)?;
    if state.has_majority(n) {
        return Err(Guard::HasMajority { node: n });
    }
    if !rules.step_down_labels_truthfully {
        // Mutant: a real refusal disguised as the checking bound.
        return Err(Guard::BoundReached {
            counter: Counter::Term,
            value: state.term_counter().saturating_add(1),
            bound: rules.max_view.unwrap_or_else(|| state.term_counter()),
        });
    }
    let mut next = state.clone();
    let mut effects = Vec::new();
    step_down(
        rules,
        &mut next,
        &mut effects,
        n,
        StepDownReason::MajorityLost,
    );
    assert!(!next.node(n).is_some_and(|r| r.believes_primary));
    assert_eq!(effects.len(), 1);
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
    assert!(!next.can_communicate(a, b) && !next.can_communicate(b, a));
    assert!(next.can_communicate(a, a));
    Ok((next, Vec::new()))
}

/// HealPartition(a, b): `<<a, b>>` is partitioned; both orderings are removed. Outside buggy
/// mode, if both now-communicating nodes believe they are primary, one steps down: reference,
/// the one that comes first in node-id order; fixed, the one with the lower term (ties, which the
/// fixed protocol never produces, by node id).
fn heal_partition(rules: &Rules, state: &State, a: NodeId, b: NodeId) -> Outcome {
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

/// ResetHeartbeats: every `heartbeat_received` becomes false (a heartbeat interval passes).
fn reset_heartbeats(state: &State) -> (State, Vec<Effect>) {
    let mut next = state.clone();
    for n in state.node_ids() {
        next.set_heartbeat(n, false);
    }
    assert!(next.heartbeats().is_empty());
    assert_eq!(next.nodes(), state.nodes());
    (next, Vec::new())
}

/// SyncViews(a, b): `a != b`, both Active, can communicate, view numbers differ. Both adopt the
/// view of the node with the larger number, united with `{a, b}`, with a new number: reference
/// `h + 1` (below MaxView), fixed the next number of the registry counter.
fn sync_views(rules: &Rules, state: &State, a: NodeId, b: NodeId) -> Outcome {
    record(state, a)?;
    record(state, b)?;
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
    let view_number = next_view_number(rules, state, newer.view_number)?;
    let view = newer.view.with(a).with(b);
    let newer_id = if ra.view_number > rb.view_number {
        a
    } else {
        b
    };
    // Mutant: the newer node keeps its own view under the new number.
    let view_of = |m: NodeId| {
        if rules.sync_merges_both || m != newer_id {
            view
        } else {
            newer.view
        }
    };
    let mut next = state.clone();
    let mut effects = Vec::new();
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
    record_view_number(rules, &mut next, view_number);
    assert!(view_number > ra.view_number.max(rb.view_number));
    assert_eq!(effects.len(), 2);
    Ok((next, effects))
}

// ---------------------------------------------------------------------------------------------
// The actor actions (fixed protocol only).

/// PlaceActor(a): `a` is not placed and the registry has room; it is placed on the Active node
/// the strategy chooses, with a fresh epoch.
fn place_actor(
    rules: &Rules,
    state: &State,
    actor: ActorId,
    strategy: &dyn PlacementStrategy,
) -> Outcome {
    require_actors(rules)?;
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
    let epoch = issue_epoch(rules, state)?;
    let mut next = state.clone();
    next.put_actor(actor, Placement { node, epoch });
    next.set_epoch_counter(epoch);
    let effects = vec![Effect::ActorActivated { actor, node, epoch }];
    assert!(next
        .node(node)
        .is_some_and(|r| r.status == NodeStatus::Active));
    assert_eq!(next.placements().len(), state.placements().len() + 1);
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
    rules: &Rules,
    state: &State,
    actor: ActorId,
    term: u64,
    strategy: &dyn PlacementStrategy,
) -> Outcome {
    require_actors(rules)?;
    let entry = state.queue().get(actor).ok_or(Guard::NotQueued { actor })?;
    if rules.migrate_checks_term {
        require_primary_term(state, term)?;
    }
    let old = state.placement(actor).ok_or(Guard::NotPlaced { actor })?;
    let cs = candidates(state, Some(entry.from));
    let node = choose(strategy, actor, &cs).ok_or(Guard::NoTarget { actor })?;
    let epoch = if rules.migrate_fresh_epoch {
        issue_epoch(rules, state)?
    } else {
        old.epoch
    };
    let mut next = state.clone();
    next.put_actor(actor, Placement { node, epoch });
    next.set_epoch_counter(state.epoch_counter().max(epoch));
    let mut effects = vec![
        Effect::ActorDeactivated {
            actor,
            node: old.node,
            epoch: old.epoch,
        },
        Effect::ActorActivated { actor, node, epoch },
    ];
    if !rules.migrate_dequeues {
        // Mutant: queued again at its new node.
        next.enqueue(actor, node, entry.reason);
        effects.insert(
            0,
            Effect::MigrationsQueued {
                from: node,
                reason: entry.reason,
                actors: 1,
            },
        );
    }
    assert!(!rules.migrate_dequeues || !next.queue().contains(actor));
    assert_ne!(node, entry.from);
    Ok((next, effects))
}

/// RebalanceActors(t): `t` is the current term held by a valid primary; every Active node whose
/// load, less what is already queued to leave it, exceeds the balanced share (total load on
/// Active nodes over their number, rounded up) gets its excess queued with reason LoadBalancing,
/// lowest actor ids first, at most [`REBALANCE_BATCH_MAX`] actors in all. Refused when nothing
/// is over the share.
fn rebalance_actors(rules: &Rules, state: &State, term: u64) -> Outcome {
    require_actors(rules)?;
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
            .filter(|&&a| state.queue().contains(a))
            .count();
        let staying = hosted.len() - leaving;
        let excess = staying.saturating_sub(usize::try_from(share).unwrap_or(usize::MAX));
        let take = excess.min(budget);
        let mut queued = 0u64;
        for &actor in hosted
            .iter()
            .filter(|&&a| !state.queue().contains(a))
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
    assert!(next.queue().len() > state.queue().len());
    assert!(next.queue().len() - state.queue().len() <= REBALANCE_BATCH_MAX);
    Ok((next, effects))
}

/// RemoveActor(a): `a` is placed; it is deactivated and forgotten (with its queue entry).
fn remove_actor(rules: &Rules, state: &State, actor: ActorId) -> Outcome {
    require_actors(rules)?;
    let old = state.placement(actor).ok_or(Guard::NotPlaced { actor })?;
    let mut next = state.clone();
    next.drop_actor(actor);
    let effects = vec![Effect::ActorDeactivated {
        actor,
        node: old.node,
        epoch: old.epoch,
    }];
    assert!(next.placement(actor).is_none() && !next.queue().contains(actor));
    assert_eq!(next.placements().len() + 1, state.placements().len());
    Ok((next, effects))
}
