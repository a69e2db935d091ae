//! Every one of the fourteen actions of the spec, one section each: enabled cases asserting the
//! exact successor fields and the exact effect vector, and one refused case per guard the action
//! can return, asserting the exact `Refusal`. Fixed mode throughout; reference and buggy modes
//! where their semantics differ; the fixed protocol's mutants where they change a guard or an
//! effect. Every state is built by replaying events from `State::initial` through `step`.

use membership_core::checking::{Mode, Mutant};
use membership_core::invariants::{self, StateInvariant, TransitionInvariant};
#[cfg(test)]
use membership_core::testing::*;
use membership_core::{
    ActionName, Config, Counter, Effect, Event, Guard, NodeId, NodeRecord, NodeSet, NodeStatus,
    State, StepDownReason,
};
use NodeStatus::{Active, Failed, Joining, Leaving, Left};

/// Every node other than `changed` has the same record in `before` and `after`.
fn others_unchanged(before: &State, after: &State, changed: &[u16]) {
    for id in before.node_ids() {
        if !changed.contains(&id.0) {
            assert_eq!(before.node(id), after.node(id), "{id} changed");
        }
    }
}

fn status(i: u16, expected: NodeStatus, actual: NodeStatus) -> Guard {
    Guard::Status {
        node: n(i),
        expected,
        actual,
    }
}

fn unknown(i: u16) -> Guard {
    Guard::UnknownNode { node: n(i) }
}

fn view_bound(value: u64, bound: u64) -> Guard {
    Guard::BoundReached {
        counter: Counter::ViewNumber,
        value,
        bound,
    }
}

fn term_bound(value: u64, bound: u64) -> Guard {
    Guard::BoundReached {
        counter: Counter::Term,
        value,
        bound,
    }
}

fn became_primary(i: u16, term: u64) -> Effect {
    Effect::BecamePrimary { node: n(i), term }
}

fn stepped_down(i: u16, term: u64, reason: StepDownReason) -> Effect {
    Effect::SteppedDown {
        node: n(i),
        term,
        reason,
    }
}

/// A record with the given status, view and number, otherwise initial.
fn member(status: NodeStatus, view: &[u16], view_number: u64) -> NodeRecord {
    NodeRecord {
        status,
        view: nodes(view),
        view_number,
        ..NodeRecord::INITIAL
    }
}

/// Fixed protocol (registry v2): THREE_ACTIVE gives n1 {n1}#1 and n2 {n1, n2}#2 (only a joiner
/// adopts the configuration its join creates); then n1 and n2 adopt the current configuration:
/// all three hold {n1, n2, n3}#3.
fn three_synced() -> Vec<Event> {
    then(&THREE_ACTIVE, &[sync(1, 1), sync(2, 2)])
}

/// THREE_ACTIVE, then n1 (the primary) isolated from n2 and n3.
fn n1_isolated() -> Vec<Event> {
    then(&THREE_ACTIVE, &[partition(1, 2), partition(1, 3)])
}

/// THREE_ACTIVE, then n1 isolated, steps down, and is healed: nobody is primary, all reachable.
fn nobody_primary() -> Vec<Event> {
    then(&n1_isolated(), &[step_down(1), heal(1, 2), heal(1, 3)])
}

// ---------------------------------------------------------------------------------------------
// 1. NodeJoin

#[test]
fn node_join_bootstraps_an_empty_cluster() {
    for config in [fixed(3), reference(3, 3), buggy(3, 3)] {
        let before = State::initial(config);
        let (after, effects) = accept(&before, join(1));
        assert_eq!(
            record(&after, 1),
            NodeRecord {
                believes_primary: true,
                term: 1,
                ..member(Active, &[1], 1)
            },
            "{config:?}"
        );
        assert_eq!(
            effects,
            vec![
                status_changed(1, Left, Active),
                became_primary(1, 1),
                view_changed(1, &[1], 1),
            ]
        );
        others_unchanged(&before, &after, &[1]);
        let counters = if config.mode() == Mode::Fixed { 1 } else { 0 };
        assert_eq!(
            (after.term_counter(), after.view_counter()),
            (counters, counters)
        );
    }
}

#[test]
fn node_join_with_an_active_node_becomes_joining() {
    for config in [fixed(3), reference(3, 3), buggy(3, 3)] {
        let before = run(config, &[join(1)]);
        let (after, effects) = accept(&before, join(2));
        assert_eq!(record(&after, 2), member(Joining, &[], 0));
        assert_eq!(effects, vec![status_changed(2, Left, Joining)]);
        others_unchanged(&before, &after, &[2]);
        assert_eq!(after.term_counter(), before.term_counter());
        assert_eq!(after.view_counter(), before.view_counter());
    }
}

#[test]
fn node_join_rebootstrap_fixed_takes_fresh_numbers() {
    let before = run(fixed(3), &[join(1), leave(1), leave_complete(1)]);
    // The fixed protocol reset n1 entirely when it left; the counters remember term 1 and view
    // number 2 (registry v2: NodeLeave numbered the configuration without n1).
    assert_eq!(record(&before, 1), NodeRecord::INITIAL);
    assert_eq!((before.term_counter(), before.view_counter()), (1, 2));
    let (after, effects) = accept(&before, join(1));
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            believes_primary: true,
            term: 2,
            ..member(Active, &[1], 3)
        }
    );
    assert_eq!(
        effects,
        vec![
            status_changed(1, Left, Active),
            became_primary(1, 2),
            view_changed(1, &[1], 3),
        ]
    );
    assert_eq!((after.term_counter(), after.view_counter()), (2, 3));
}

#[test]
fn node_join_rebootstrap_reference_reuses_view_number_and_term_one() {
    for config in [reference(3, 3), buggy(3, 3)] {
        let before = run(config, &[join(1), leave(1), leave_complete(1)]);
        // The reference model keeps the old number and term of a node that left.
        assert_eq!(
            record(&before, 1),
            NodeRecord {
                term: 1,
                ..member(Left, &[], 1)
            }
        );
        let (after, effects) = accept(&before, join(1));
        assert_eq!(
            record(&after, 1),
            NodeRecord {
                believes_primary: true,
                term: 1,
                ..member(Active, &[1], 1)
            }
        );
        assert_eq!(
            effects,
            vec![
                status_changed(1, Left, Active),
                became_primary(1, 1),
                view_changed(1, &[1], 1),
            ]
        );
    }
}

#[test]
fn node_join_refusals() {
    let a = ActionName::NodeJoin;
    let s = State::initial(fixed(3));
    assert_eq!(refuse(&s, join(0)), refusal(a, unknown(0)));
    assert_eq!(refuse(&s, join(4)), refusal(a, unknown(4)));
    let s = run(fixed(3), &[join(1), join(2)]);
    assert_eq!(refuse(&s, join(1)), refusal(a, status(1, Left, Active)));
    assert_eq!(refuse(&s, join(2)), refusal(a, status(2, Left, Joining)));
    assert_eq!(
        refuse(&s, join(1)).to_string(),
        "NodeJoin: n1 is Active, not Left"
    );
}

#[test]
fn node_join_bootstrap_is_refused_at_the_view_number_bound() {
    // Registry v2: the bootstrap takes 1 and NodeLeave 2, so the second bootstrap would take 3.
    let s = run(bounded(3, 2), &[join(1), leave(1), leave_complete(1)]);
    assert_eq!(s.view_counter(), 2);
    assert_eq!(
        refuse(&s, join(1)),
        refusal(ActionName::NodeJoin, view_bound(3, 2))
    );
}

#[test]
fn node_join_bootstrap_is_refused_at_the_term_bound() {
    // Four elections bring the term counter to the bound 5 while the view counter reaches only
    // 4 (the bootstrap 1, n2's join 2, and, registry v2, the two leaves 3 and 4); then n3 would
    // bootstrap with view number 5 (fine) and term 6.
    let cycle = [partition(1, 2), step_down(1), heal(1, 2), elect(1)];
    let mut events = vec![join(1), join(2), join_complete(2)];
    for _ in 0..4 {
        events.extend(cycle);
    }
    events.extend([leave(1), leave(2)]);
    let s = run(bounded(3, 5), &events);
    assert_eq!((s.term_counter(), s.view_counter()), (5, 4));
    assert_eq!(
        refuse(&s, join(3)),
        refusal(ActionName::NodeJoin, term_bound(6, 5))
    );
}

// ---------------------------------------------------------------------------------------------
// 2. NodeJoinComplete

/// Registry v2: in the fixed protocol NodeJoinComplete(n) creates the configuration `active +
/// {n}` with the next number and only `n` adopts it; every other member keeps the view it had
/// and adopts the new configuration by its own SyncViews(m, m). The reference model admits the
/// node into every reachable view.
#[test]
fn node_join_complete_only_the_joiner_adopts_the_new_configuration() {
    let before = run(fixed(3), &[join(1), join(2)]);
    let (after, effects) = accept(&before, join_complete(2));
    assert_eq!(record(&after, 2), member(Active, &[1, 2], 2));
    assert_eq!(record(&after, 1), record(&before, 1));
    assert_eq!(record(&after, 1).view, nodes(&[1]));
    assert_eq!(
        effects,
        vec![
            status_changed(2, Joining, Active),
            view_changed(2, &[1, 2], 2),
        ]
    );
    others_unchanged(&before, &after, &[2]);
    assert_eq!(after.view_counter(), 2);
    // n1 adopts the configuration by its own transaction.
    let (synced, effects) = accept(&after, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2], 2)]);
    assert_eq!(
        record(&synced, 1),
        NodeRecord {
            view: nodes(&[1, 2]),
            view_number: 2,
            ..record(&after, 1)
        }
    );
    assert_eq!(synced.view_counter(), 2);

    let before = run(reference(3, 3), &[join(1), join(2)]);
    let (after, effects) = accept(&before, join_complete(2));
    assert_eq!(record(&after, 2), member(Active, &[1, 2], 2));
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            view: nodes(&[1, 2]),
            view_number: 2,
            ..record(&before, 1)
        }
    );
    assert_eq!(
        effects,
        vec![
            status_changed(2, Joining, Active),
            view_changed(1, &[1, 2], 2),
            view_changed(2, &[1, 2], 2),
        ]
    );
    others_unchanged(&before, &after, &[1, 2]);
}

/// n3 completes its join through n2 while n1 is partitioned from it. Fixed (registry v2): no
/// member's view changes, reachable (n2) or not (n1); each adopts {n1, n2, n3}#3 by its own
/// SyncViews, n1 across the partition too (it synchronises with the registry, not with n3).
/// Reference: n2 adopts the new view, the unreachable n1 keeps its old one.
#[test]
fn node_join_complete_fixed_changes_no_members_view_reference_only_the_reachable_ones() {
    let before = run(fixed(3), &N3_UNKNOWN_TO_N1[..5]);
    let (after, effects) = accept(&before, join_complete(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Joining, Active),
            view_changed(3, &[1, 2, 3], 3),
        ]
    );
    assert_eq!(
        record(&after, 3),
        NodeRecord {
            partitioned_from: nodes(&[1]),
            ..member(Active, &[1, 2, 3], 3)
        }
    );
    others_unchanged(&before, &after, &[3]);
    assert_eq!(record(&after, 1).view, nodes(&[1]));
    assert_eq!(record(&after, 2).view, nodes(&[1, 2]));
    let (after, effects) = accept(&after, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2, 3], 3)]);
    let (after, effects) = accept(&after, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[1, 2, 3], 3)]);
    assert!(after.is_converged());
    assert_eq!(after.view_counter(), 3);

    let before = run(reference(3, 3), &N3_UNKNOWN_TO_N1[..5]);
    let (after, effects) = accept(&before, join_complete(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Joining, Active),
            view_changed(2, &[1, 2, 3], 3),
            view_changed(3, &[1, 2, 3], 3),
        ]
    );
    assert_eq!(
        record(&after, 3),
        NodeRecord {
            partitioned_from: nodes(&[1]),
            ..member(Active, &[1, 2, 3], 3)
        }
    );
    // n1 cannot communicate with n3: it keeps {n1, n2}#2.
    assert_eq!(record(&after, 1), record(&before, 1));
    assert_eq!(record(&after, 1).view, nodes(&[1, 2]));
}

#[test]
fn node_join_complete_number_fixed_counter_versus_reference_max_over_active() {
    // Fixed: n3 is declared failed, which numbers the configuration {n1, n2} 4 (registry v2)
    // though no member holds 4 yet (n1 {n1}#1, n2 {n1, n2}#2): n4's join takes 5 from the
    // counter, not 1 + the largest number held (3), and only n4 adopts it.
    let events = then(
        &THREE_ACTIVE,
        &[
            partition(1, 3),
            partition(2, 3),
            detect(1, 3),
            detect(2, 3),
            fail(3),
            join(4),
        ],
    );
    let before = run(fixed(4), &events);
    assert_eq!(
        (
            before.view_counter(),
            before.max_view_number(&before.active())
        ),
        (4, 2)
    );
    let (after, effects) = accept(&before, join_complete(4));
    assert_eq!(
        effects,
        vec![
            status_changed(4, Joining, Active),
            view_changed(4, &[1, 2, 4], 5),
        ]
    );
    assert_eq!(record(&after, 4), member(Active, &[1, 2, 4], 5));
    assert_eq!(after.view_counter(), 5);

    // Reference: n1 and n3 each drop the other, each incrementing its own number (4 and 4):
    // n4's join takes 1 + the largest number over the Active nodes, and every Active node
    // that can communicate with n4 adopts it.
    let events = then(
        &THREE_ACTIVE,
        &[partition(1, 3), detect(1, 3), detect(3, 1), join(4)],
    );
    let before = run(reference(4, 6), &events);
    let (after, effects) = accept(&before, join_complete(4));
    assert_eq!(
        effects,
        vec![
            status_changed(4, Joining, Active),
            view_changed(1, &[1, 2, 3, 4], 5),
            view_changed(2, &[1, 2, 3, 4], 5),
            view_changed(3, &[1, 2, 3, 4], 5),
            view_changed(4, &[1, 2, 3, 4], 5),
        ]
    );
    assert_eq!(record(&after, 4), member(Active, &[1, 2, 3, 4], 5));
}

#[test]
fn node_join_complete_refusals() {
    let a = ActionName::NodeJoinComplete;
    let s = State::initial(fixed(3));
    assert_eq!(refuse(&s, join_complete(0)), refusal(a, unknown(0)));
    assert_eq!(
        refuse(&s, join_complete(1)),
        refusal(a, status(1, Joining, Left))
    );
    let s = run(fixed(3), &[join(1)]);
    assert_eq!(
        refuse(&s, join_complete(1)),
        refusal(a, status(1, Joining, Active))
    );
    // The only Active node is partitioned from the joining one.
    let s = run(fixed(3), &[join(1), join(2), partition(1, 2)]);
    let no_peer = refusal(a, Guard::NoReachableActivePeer { node: n(2) });
    assert_eq!(refuse(&s, join_complete(2)), no_peer);
    assert_eq!(
        no_peer.to_string(),
        "NodeJoinComplete: n2 can communicate with no Active node"
    );
    // No Active node at all any more: refused in the reference model; registry v2 bootstraps
    // (core/tests/registry_v2.rs).
    let s = run(reference(3, 5), &[join(1), join(2), leave(1)]);
    assert_eq!(refuse(&s, join_complete(2)), no_peer);
}

#[test]
fn node_join_complete_is_refused_at_the_bound() {
    let events = [join(1), join(2), join_complete(2), join(3)];
    for config in [reference(3, 2), bounded(3, 2)] {
        let s = run(config, &events);
        assert_eq!(
            refuse(&s, join_complete(3)),
            refusal(ActionName::NodeJoinComplete, view_bound(3, 2)),
            "{config:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. NodeLeave

#[test]
fn node_leave_of_the_primary_steps_it_down() {
    let events = [join(1), join(2), join_complete(2)];
    // Fixed: the term is held only while primary, so it is cleared; reference keeps it.
    // Registry v2: the fixed protocol also empties the leaver's view (number 0), as for every
    // node outside the configuration; the reference model keeps it.
    for (config, kept_term, view, view_number) in [
        (fixed(3), 0, &[][..], 0),
        (reference(3, 3), 1, &[1, 2][..], 2),
        (buggy(3, 3), 1, &[1, 2][..], 2),
    ] {
        let before = run(config, &events);
        let (after, effects) = accept(&before, leave(1));
        assert_eq!(
            record(&after, 1),
            NodeRecord {
                term: kept_term,
                ..member(Leaving, view, view_number)
            },
            "{config:?}"
        );
        assert_eq!(
            effects,
            vec![
                status_changed(1, Active, Leaving),
                stepped_down(1, 1, StepDownReason::Leaving),
            ]
        );
        others_unchanged(&before, &after, &[1]);
        assert_eq!(after.term_counter(), before.term_counter());
    }
}

/// Registry v2: the leaver is outside the configuration from NodeLeave on: its view is emptied
/// (number 0), with no ViewChanged effect.
#[test]
fn node_leave_of_a_member() {
    let before = run(fixed(3), &[join(1), join(2), join_complete(2)]);
    assert_eq!(record(&before, 2), member(Active, &[1, 2], 2));
    let (after, effects) = accept(&before, leave(2));
    assert_eq!(record(&after, 2), member(Leaving, &[], 0));
    assert_eq!(effects, vec![status_changed(2, Active, Leaving)]);
    others_unchanged(&before, &after, &[2]);
}

/// Registry v2: the leaving node is no longer a member, so in the fixed protocol NodeLeave
/// numbers the configuration without it: the view counter advances, and no node adopts the new
/// number here (no view changes, no effect for it); each member adopts it by its own SyncViews.
/// The reference model issues no number.
#[test]
fn node_leave_fixed_issues_the_next_configuration_number() {
    let before = run(fixed(3), &three_synced());
    assert_eq!(before.view_counter(), 3);
    let (after, effects) = accept(&before, leave(3));
    assert_eq!(effects, vec![status_changed(3, Active, Leaving)]);
    assert_eq!(after.view_counter(), 4);
    assert_eq!(record(&after, 3), member(Leaving, &[], 0));
    others_unchanged(&before, &after, &[3]);
    invariants::check_state(&after).unwrap();
    invariants::check_transition(&before, &after).unwrap();
    assert!(!after.is_converged());
    let (after, effects) = accept(&after, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2], 4)]);
    let (after, effects) = accept(&after, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[1, 2], 4)]);
    assert!(after.is_converged());
    assert_eq!(after.view_counter(), 4);
    // The leaver is not Active: it adopts nothing.
    assert_eq!(
        refuse(&after, sync(3, 3)),
        refusal(ActionName::SyncViews, status(3, Active, Leaving))
    );

    let before = run(reference(3, 3), &THREE_ACTIVE);
    let (after, _) = accept(&before, leave(3));
    assert_eq!(after.view_counter(), before.view_counter());
}

/// Registry v2: the fixed NodeLeave takes the next view number, so it is refused at the bound
/// MaxView, checked right after the status guard (a node that is not Active is refused for its
/// status first). The reference NodeLeave has no bound.
#[test]
fn node_leave_is_refused_at_the_view_number_bound() {
    let a = ActionName::NodeLeave;
    let s = run(bounded(4, 3), &then(&THREE_ACTIVE, &[join(4)]));
    assert_eq!(s.view_counter(), 3);
    let refused = refuse(&s, leave(2));
    assert_eq!(refused, refusal(a, view_bound(4, 3)));
    assert_eq!(
        refused.to_string(),
        "NodeLeave: view number 4 would exceed MaxView 3"
    );
    assert_eq!(refuse(&s, leave(9)), refusal(a, unknown(9)));
    assert_eq!(refuse(&s, leave(4)), refusal(a, status(4, Active, Joining)));
    // One below the bound: accepted, and the counter reaches it.
    let (after, _) = accept(&run(bounded(3, 4), &THREE_ACTIVE), leave(2));
    assert_eq!(after.view_counter(), 4);
    let (after, _) = accept(&run(reference(3, 3), &THREE_ACTIVE), leave(2));
    assert_eq!(after.view_counter(), 0);
}

#[test]
fn node_leave_refusals() {
    let a = ActionName::NodeLeave;
    let s = run(fixed(3), &[join(1), join(2), join(3), leave(1)]);
    assert_eq!(refuse(&s, leave(9)), refusal(a, unknown(9)));
    assert_eq!(refuse(&s, leave(1)), refusal(a, status(1, Active, Leaving)));
    assert_eq!(refuse(&s, leave(2)), refusal(a, status(2, Active, Joining)));
    let s = State::initial(fixed(3));
    assert_eq!(refuse(&s, leave(3)), refusal(a, status(3, Active, Left)));
}

// ---------------------------------------------------------------------------------------------
// 4. NodeLeaveComplete

/// Registry v2: the fixed NodeLeaveComplete changes no member's view and issues no number (the
/// leaver left the configuration at NodeLeave, which numbered it); the leaver is reset. The
/// members adopt the configuration without it by their own SyncViews, n1 across its partition
/// from the leaver too.
#[test]
fn node_leave_complete_fixed_changes_no_members_view_and_issues_no_number() {
    let events = then(&three_synced(), &[partition(1, 3), leave(3)]);
    let before = run(fixed(3), &events);
    assert_eq!(before.view_counter(), 4);
    let (after, effects) = accept(&before, leave_complete(3));
    assert_eq!(effects, vec![status_changed(3, Leaving, Left)]);
    assert_eq!(
        record(&after, 3),
        NodeRecord {
            partitioned_from: nodes(&[1]),
            ..member(Left, &[], 0)
        }
    );
    others_unchanged(&before, &after, &[3]);
    assert_eq!(record(&after, 1).view, nodes(&[1, 2, 3]));
    assert_eq!(after.view_counter(), 4);
    // n1 and n2 still list the Left n3, but they have not adopted the current configuration:
    // LeaveDetectionWeak (registry v2) allows it.
    invariants::check_state(&after).unwrap();
    let (after, effects) = accept(&after, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2], 4)]);
    let (after, effects) = accept(&after, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[1, 2], 4)]);
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            view: nodes(&[1, 2]),
            view_number: 4,
            ..record(&before, 1)
        }
    );
    assert_eq!(after.view_counter(), 4);
}

#[test]
fn node_leave_complete_fixed_issues_no_number_reference_each_increments_its_own() {
    // Fixed: n1 records its vote against n3 (no view change, registry v2), then n2 leaves
    // (which numbers the configuration {n1, n3} 4); n2's leave completes with no view change
    // and no number.
    let events = then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3), leave(2)]);
    let before = run(fixed(3), &events);
    assert_eq!(before.view_counter(), 4);
    let (after, effects) = accept(&before, leave_complete(2));
    assert_eq!(effects, vec![status_changed(2, Leaving, Left)]);
    assert_eq!(record(&after, 2), member(Left, &[], 0));
    others_unchanged(&before, &after, &[2]);
    assert_eq!(after.view_counter(), 4);

    // Reference: n1 dropped n3 (n1 {n1, n2}#4, n3 {n1, n2, n3}#3), then n2 leaves.
    let before = run(reference(3, 5), &events);
    let (after, effects) = accept(&before, leave_complete(2));
    assert_eq!(
        effects,
        vec![
            status_changed(2, Leaving, Left),
            view_changed(1, &[1, 3], 5),
            view_changed(3, &[1, 3], 4),
        ]
    );
    // The reference model empties the view but keeps the number.
    assert_eq!(record(&after, 2), member(Left, &[], 3));
}

#[test]
fn node_leave_complete_of_the_last_member() {
    let before = run(fixed(3), &[join(1), leave(1)]);
    // Registry v2: NodeLeave numbered the empty configuration 2.
    assert_eq!(before.view_counter(), 2);
    let (after, effects) = accept(&before, leave_complete(1));
    assert_eq!(effects, vec![status_changed(1, Leaving, Left)]);
    assert_eq!(record(&after, 1), NodeRecord::INITIAL);
    assert_eq!(after.view_counter(), 2);
}

#[test]
fn node_leave_complete_refusals() {
    let a = ActionName::NodeLeaveComplete;
    let s = run(fixed(3), &[join(1)]);
    assert_eq!(refuse(&s, leave_complete(0)), refusal(a, unknown(0)));
    assert_eq!(
        refuse(&s, leave_complete(1)),
        refusal(a, status(1, Leaving, Active))
    );
    assert_eq!(
        refuse(&s, leave_complete(2)),
        refusal(a, status(2, Leaving, Left))
    );
    // Reference: every Active node takes its own next number, within the bound.
    let events = then(&THREE_ACTIVE, &[leave(3)]);
    let s = run(reference(3, 3), &events);
    let refused = refuse(&s, leave_complete(3));
    assert_eq!(refused, refusal(a, view_bound(4, 3)));
    assert_eq!(
        refused.to_string(),
        "NodeLeaveComplete: view number 4 would exceed MaxView 3"
    );
    // Fixed (registry v2): the number was issued by NodeLeave; with the counter at the bound the
    // leave still completes.
    let s = run(bounded(3, 4), &events);
    assert_eq!(s.view_counter(), 4);
    let (after, effects) = accept(&s, leave_complete(3));
    assert_eq!(effects, vec![status_changed(3, Leaving, Left)]);
    assert_eq!(after.view_counter(), 4);
}

// ---------------------------------------------------------------------------------------------
// 5. SendHeartbeat

/// Registry v2: in the fixed protocol a heartbeat sets the sender's own flag only; the
/// reference model also sets the flags of every Active or Leaving node that can communicate with
/// the sender.
#[test]
fn send_heartbeat_sets_the_senders_flag_only_in_the_fixed_protocol() {
    // n1, n3 Active; n2 Leaving; n4 Joining; n1 and n3 partitioned; a new round opened.
    let events = then(&THREE_ACTIVE, &[join(4), leave(2), partition(1, 3), RESET]);
    for (config, from_1, from_3) in [
        (
            fixed(4),
            [true, false, false, false],
            [false, false, true, false],
        ),
        (
            reference(4, 3),
            [true, true, false, false],
            [false, true, true, false],
        ),
        (
            buggy(4, 3),
            [true, true, false, false],
            [false, true, true, false],
        ),
    ] {
        let before = run(config, &events);
        assert!(before.heartbeats().is_empty());
        let (after, effects) = accept(&before, heartbeat(1));
        assert_eq!(effects, vec![]);
        let received: Vec<bool> = after
            .node_ids()
            .map(|n| after.heartbeat_received(n))
            .collect();
        assert_eq!(received, from_1, "{config:?}");
        assert_eq!(
            after.nodes(),
            before.nodes(),
            "a heartbeat writes no node record"
        );
        let (after, _) = accept(&before, heartbeat(3));
        let received: Vec<bool> = after
            .node_ids()
            .map(|n| after.heartbeat_received(n))
            .collect();
        assert_eq!(received, from_3, "{config:?}");
    }
}

#[test]
fn send_heartbeat_refusals() {
    let a = ActionName::SendHeartbeat;
    let s = run(fixed(3), &[join(1), join(2), join(3)]);
    let s = accept(&accept(&s, join_complete(3)).0, leave(3)).0;
    assert_eq!(refuse(&s, heartbeat(0)), refusal(a, unknown(0)));
    assert_eq!(
        refuse(&s, heartbeat(2)),
        refusal(a, status(2, Active, Joining))
    );
    assert_eq!(
        refuse(&s, heartbeat(3)),
        refusal(a, status(3, Active, Leaving))
    );
}

// ---------------------------------------------------------------------------------------------
// 6. DetectFailure

/// Registry v2: the fixed DetectFailure only records the vote (`detected[d] += {t}`): the
/// detector's view, which still lists the target, does not change, no number is issued, no
/// effect. A member may thus suspect a member of its own view (TypeOK allows it). The reference
/// detector drops the target from its view (see the next test).
#[test]
fn detect_failure_fixed_records_the_vote_and_changes_no_view() {
    let before = run(fixed(3), &then(&three_synced(), &[partition(1, 3)]));
    assert_eq!(record(&before, 1).view, nodes(&[1, 2, 3]));
    let (after, effects) = accept(&before, detect(1, 3));
    assert_eq!(effects, vec![]);
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            // The detection is recorded; MarkNodeFailed(n3) will require it.
            detected: nodes(&[3]),
            ..record(&before, 1)
        }
    );
    assert_eq!(record(&after, 1).view, nodes(&[1, 2, 3]));
    others_unchanged(&before, &after, &[1]);
    assert_eq!(after.view_counter(), 3);
    invariants::check_state(&after).unwrap();
}

#[test]
fn detect_failure_fixed_issues_no_number_reference_increments_its_own() {
    let events = then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3)]);
    // Fixed (registry v2): the second vote takes no number either.
    let before = run(fixed(3), &events);
    let (after, effects) = accept(&before, detect(3, 1));
    assert_eq!(effects, vec![]);
    assert_eq!(
        record(&after, 3),
        NodeRecord {
            detected: nodes(&[1]),
            ..record(&before, 3)
        }
    );
    assert_eq!((after.view_counter(), before.view_counter()), (3, 3));
    for (config, k) in [(reference(3, 5), 4), (buggy(3, 5), 4)] {
        let before = run(config, &events);
        let (after, effects) = accept(&before, detect(3, 1));
        assert_eq!(effects, vec![view_changed(3, &[2, 3], k)], "{config:?}");
        assert_eq!(record(&after, 3).view_number, k);
    }
}

#[test]
fn detect_failure_refusals() {
    let a = ActionName::DetectFailure;
    let s = run(fixed(3), &THREE_ACTIVE);
    assert_eq!(refuse(&s, detect(0, 1)), refusal(a, unknown(0)));
    assert_eq!(refuse(&s, detect(1, 4)), refusal(a, unknown(4)));
    assert_eq!(
        refuse(&s, detect(1, 1)),
        refusal(a, Guard::SameNode { node: n(1) })
    );
    // Detector not Active, then target not Active.
    let s2 = run(
        fixed(3),
        &[join(1), join(2), join_complete(2), leave(2), join(3)],
    );
    assert_eq!(
        refuse(&s2, detect(3, 1)),
        refusal(a, status(3, Active, Joining))
    );
    assert_eq!(
        refuse(&s2, detect(1, 2)),
        refusal(a, status(2, Active, Leaving))
    );
    // Both Active and able to communicate.
    let can = refuse(&s, detect(1, 3));
    assert_eq!(can, refusal(a, Guard::CanCommunicate { a: n(1), b: n(3) }));
    assert_eq!(can.to_string(), "DetectFailure: n1 can communicate with n3");
    // n1 never learned of n3: the reference model needs n3 in n1's view.
    let s3 = run(reference(3, 3), &N3_UNKNOWN_TO_N1);
    let not_in_view = refuse(&s3, detect(1, 3));
    assert_eq!(
        not_in_view,
        refusal(
            a,
            Guard::NotInView {
                detector: n(1),
                target: n(3)
            }
        )
    );
    assert_eq!(
        not_in_view.to_string(),
        "DetectFailure: n3 is not in n1's view"
    );
    // Fixed: one vote per detector. n1 has recorded its detection of n3 already.
    let s4 = run(
        fixed(3),
        &then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3)]),
    );
    let again = refuse(&s4, detect(1, 3));
    assert_eq!(
        again,
        refusal(
            a,
            Guard::AlreadyDetected {
                detector: n(1),
                target: n(3)
            }
        )
    );
    assert_eq!(
        again.to_string(),
        "DetectFailure: n1 has already recorded a detection of n3"
    );
}

/// Fixed: a detector votes whether or not its view lists the target (registry v2: a view is the
/// configuration a node adopted, which may predate the target's admission). Here n1 holds
/// {n1}#1, which predates both joins, and n2 adopted {n1, n2, n3}#3: both vote with no view
/// change, and their two votes are the majority of three members that a heartbeating n3 needs.
#[test]
fn detect_failure_fixed_votes_whether_or_not_the_detectors_view_lists_the_target() {
    let before = run(
        fixed(3),
        &then(
            &THREE_ACTIVE,
            &[partition(1, 3), partition(2, 3), sync(2, 2)],
        ),
    );
    assert_eq!(record(&before, 1).view, nodes(&[1]));
    assert_eq!(record(&before, 2).view, nodes(&[1, 2, 3]));
    let (voted, effects) = accept(&before, detect(1, 3));
    assert_eq!(effects, vec![]);
    let (after, effects) = accept(&voted, detect(2, 3));
    assert_eq!(effects, vec![]);
    for i in [1, 2] {
        assert_eq!(
            record(&after, i),
            NodeRecord {
                detected: nodes(&[3]),
                ..record(&before, i)
            }
        );
    }
    others_unchanged(&before, &after, &[1, 2]);
    assert_eq!(after.view_counter(), before.view_counter());
    assert_eq!(after.failure_votes(n(3)), nodes(&[1, 2]));
    assert!(after.heartbeat_received(n(3)));
    assert!(after.has_failure_quorum(n(3)));
    // The same for a peer that never listed n3 (its view predates n3's admission): it observes
    // n3 unreachable like any other peer. Its vote alone is no quorum (n2 still reaches n3).
    let s = run(fixed(3), &N3_UNKNOWN_TO_N1);
    let (voted, effects) = accept(&s, detect(1, 3));
    assert_eq!(effects, vec![]);
    assert_eq!(record(&voted, 1).detected, nodes(&[3]));
    assert_eq!(
        refuse(&voted, fail(3)),
        refusal(
            ActionName::MarkNodeFailed,
            Guard::NoFailureQuorum {
                node: n(3),
                votes: nodes(&[1]),
                needed: 2,
                member_count: 3,
            }
        )
    );
}

/// Registry v2: a vote is about reachability only, so the fixed protocol accepts a vote on a
/// node whose heartbeat counts (the degraded-observer rule then needs a majority of votes); the
/// reference model refuses it until the interval passes.
#[test]
fn detect_failure_votes_on_a_heartbeating_node_in_the_fixed_protocol_only() {
    let events = then(&THREE_ACTIVE, &[heartbeat(3), partition(1, 3)]);
    let before = run(fixed(3), &events);
    assert!(before.heartbeat_received(n(3)));
    let (after, effects) = accept(&before, detect(1, 3));
    assert_eq!(effects, vec![]);
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            detected: nodes(&[3]),
            ..record(&before, 1)
        }
    );
    let before = run(reference(3, 5), &events);
    assert_eq!(
        refuse(&before, detect(1, 3)),
        refusal(
            ActionName::DetectFailure,
            Guard::HeartbeatReceived { node: n(3) }
        )
    );
    // Once the interval passes, the same detection is enabled there.
    let (reset, effects) = accept(&before, RESET);
    assert_eq!(effects, vec![]);
    let (_, effects) = accept(&reset, detect(1, 3));
    assert_eq!(effects, vec![view_changed(1, &[1, 2], 4)]);
}

/// The reference detector takes its next view number, within the bound. Registry v2: the fixed
/// vote takes no number, so it is accepted with the counter at the bound.
#[test]
fn detect_failure_is_refused_at_the_bound_in_the_reference_model_only() {
    let events = then(&THREE_ACTIVE, &[partition(1, 3)]);
    let s = run(reference(3, 3), &events);
    assert_eq!(
        refuse(&s, detect(1, 3)),
        refusal(ActionName::DetectFailure, view_bound(4, 3))
    );
    let s = run(bounded(3, 3), &events);
    assert_eq!(s.view_counter(), 3);
    let (after, effects) = accept(&s, detect(1, 3));
    assert_eq!(effects, vec![]);
    assert_eq!(record(&after, 1).detected, nodes(&[3]));
    assert_eq!(after.view_counter(), 3);
}

// ---------------------------------------------------------------------------------------------
// 7. MarkNodeFailed

/// Registry v2: the declared node leaves the configuration, which takes the next number; no
/// member's view changes in the declaration (no "listers" cleanup): each member adopts the
/// configuration without the node by its own SyncViews. Five nodes: n1, n2 and n3 (a majority)
/// cannot reach n5 and vote; n4 still reaches it. The failed node is reset and fenced, and the
/// voters' records are consumed.
#[test]
fn mark_node_failed_fixed_fences_and_numbers_the_configuration_without_the_node() {
    let before = run(fixed(5), &then(&all_active(5), &voted_out(5, &[1, 2, 3])));
    assert_eq!(before.failure_votes(n(5)), nodes(&[1, 2, 3]));
    assert_eq!(before.view_counter(), 5);
    let (after, effects) = accept(&before, fail(5));
    assert_eq!(
        effects,
        vec![
            status_changed(5, Active, Failed),
            Effect::Fenced { node: n(5) },
        ]
    );
    assert_eq!(
        record(&after, 5),
        NodeRecord {
            partitioned_from: nodes(&[1, 2, 3]),
            ..member(Failed, &[], 0)
        }
    );
    for i in 1..=3 {
        assert_eq!(record(&before, i).detected, nodes(&[5]));
        assert_eq!(
            record(&after, i),
            NodeRecord {
                detected: NodeSet::EMPTY,
                ..record(&before, i)
            }
        );
    }
    // n4 keeps the configuration it adopted at its join, which lists n5.
    assert_eq!(record(&after, 4), record(&before, 4));
    assert_eq!(record(&after, 4), member(Active, &[1, 2, 3, 4], 4));
    assert_eq!(after.view_counter(), 6);
    invariants::check_state(&after).unwrap();
    invariants::check_transition(&before, &after).unwrap();
    let mut synced = after;
    for i in 1..=4 {
        let (next, effects) = accept(&synced, sync(i, i));
        assert_eq!(effects, vec![view_changed(i, &[1, 2, 3, 4], 6)]);
        synced = next;
    }
    assert!(synced.is_converged());
    assert_eq!(synced.view_counter(), 6);

    // Three members that had all adopted {n1, n2, n3}#3: both peers voted; the declaration
    // changes neither view (they still list the Failed n3 until they synchronise).
    let before = run(
        fixed(3),
        &then(
            &three_synced(),
            &[partition(1, 3), partition(2, 3), detect(1, 3), detect(2, 3)],
        ),
    );
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) },
        ]
    );
    for i in 1..=2 {
        assert_eq!(
            record(&after, i),
            NodeRecord {
                detected: NodeSet::EMPTY,
                ..record(&before, i)
            }
        );
        assert_eq!(
            (record(&after, i).view, record(&after, i).view_number),
            (nodes(&[1, 2, 3]), 3)
        );
    }
    assert_eq!(after.view_counter(), 4);
    invariants::check_state(&after).unwrap();
}

#[test]
fn mark_node_failed_of_the_primary() {
    let events = then(
        &THREE_ACTIVE,
        &[partition(1, 2), partition(1, 3), detect(2, 1), detect(3, 1)],
    );
    let before = run(fixed(3), &events);
    let (after, effects) = accept(&before, fail(1));
    assert_eq!(
        effects,
        vec![
            status_changed(1, Active, Failed),
            Effect::Fenced { node: n(1) },
            stepped_down(1, 1, StepDownReason::Failed),
        ]
    );
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            partitioned_from: nodes(&[2, 3]),
            ..member(Failed, &[], 0)
        }
    );
    assert_eq!(after.term_counter(), 1);

    // Reference: no fencing, no cleanup of n3's view.
    let before = run(reference(3, 5), &events);
    let (after, effects) = accept(&before, fail(1));
    assert_eq!(
        effects,
        vec![
            status_changed(1, Active, Failed),
            stepped_down(1, 1, StepDownReason::Failed),
        ]
    );
    assert_eq!(record(&after, 3), record(&before, 3));
    assert_eq!(record(&after, 1).term, 0);
}

#[test]
fn mark_node_failed_reference_accepts_a_node_its_peer_never_heard_of() {
    let before = run(reference(3, 3), &N3_UNKNOWN_TO_N1);
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(effects, vec![status_changed(3, Active, Failed)]);
    // n2 still lists n3.
    assert_eq!(record(&after, 2), member(Active, &[1, 2, 3], 3));
}

#[test]
fn mark_node_failed_fixed_refusals() {
    let a = ActionName::MarkNodeFailed;
    let s = run(fixed(3), &THREE_ACTIVE);
    assert_eq!(refuse(&s, fail(4)), refusal(a, unknown(4)));
    let undetected = refuse(&s, fail(3));
    assert_eq!(undetected, refusal(a, Guard::Undetected { node: n(3) }));
    assert_eq!(
        undetected.to_string(),
        "MarkNodeFailed: no Active node has detected n3 as failed"
    );
    let s = run(fixed(3), &[join(1), join(2)]);
    assert_eq!(refuse(&s, fail(2)), refusal(a, status(2, Active, Joining)));
    // n1 dropped n3 and cannot reach it, and n3 still heartbeats (its join was its heartbeat
    // this round): only a majority of the members' votes can declare it.
    let dropped = then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3)]);
    let s = run(fixed(3), &then(&dropped, &[heartbeat(3)]));
    assert!(s.heartbeat_received(n(3)));
    assert_eq!(
        refuse(&s, fail(3)).guard,
        Guard::NoFailureQuorum {
            node: n(3),
            votes: nodes(&[1]),
            needed: 2,
            member_count: 3,
        }
    );
    // n1 dropped n3 but the partition healed: it can communicate again.
    let s = run(fixed(3), &then(&dropped, &[heal(1, 3)]));
    assert_eq!(
        refuse(&s, fail(3)),
        refusal(a, Guard::CanCommunicate { a: n(1), b: n(3) })
    );
    // n1's vote alone: a majority of three nodes needs two.
    let s = run(fixed(3), &dropped);
    let single = refuse(&s, fail(3));
    assert_eq!(
        single,
        refusal(
            a,
            Guard::NoFailureQuorum {
                node: n(3),
                votes: nodes(&[1]),
                needed: 2,
                member_count: 3,
            }
        )
    );
    assert_eq!(
        single.to_string(),
        "MarkNodeFailed: n3 still heartbeats and has 1 recorded detection by peers that cannot \
         reach it (n1); a majority of 3 members needs 2"
    );
    // n2 recorded a detection too, but reaches n3 again: its record is no vote.
    let s = run(
        fixed(3),
        &then(&dropped, &[partition(2, 3), detect(2, 3), heal(2, 3)]),
    );
    assert_eq!(record(&s, 2).detected, nodes(&[3]));
    assert_eq!(
        refuse(&s, fail(3)),
        refusal(
            a,
            Guard::NoFailureQuorum {
                node: n(3),
                votes: nodes(&[1]),
                needed: 2,
                member_count: 3,
            }
        )
    );
    // Five nodes need three votes.
    let s = run(
        fixed(5),
        &then(
            &all_active(5),
            &[partition(1, 5), partition(2, 5), detect(1, 5), detect(2, 5)],
        ),
    );
    assert_eq!(
        refuse(&s, fail(5)).to_string(),
        "MarkNodeFailed: n5 still heartbeats and has 2 recorded detections by peers that cannot \
         reach it (n1, n2); a majority of 5 members needs 3"
    );
}

#[test]
fn mark_node_failed_reference_has_only_the_weak_guard() {
    let a = ActionName::MarkNodeFailed;
    let s = run(reference(3, 5), &THREE_ACTIVE);
    assert_eq!(
        refuse(&s, fail(3)),
        refusal(a, Guard::Undetected { node: n(3) })
    );
    assert_eq!(refuse(&s, fail(0)), refusal(a, unknown(0)));
    let s = run(reference(3, 5), &[join(1), join(2)]);
    assert_eq!(refuse(&s, fail(2)), refusal(a, status(2, Active, Joining)));
    // The states the fixed guards refuse (heartbeat received; able to communicate) are accepted.
    let dropped = then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3)]);
    for extra in [heartbeat(3), heal(1, 3)] {
        let s = run(reference(3, 5), &then(&dropped, &[extra]));
        let (_, effects) = accept(&s, fail(3));
        assert_eq!(effects, vec![status_changed(3, Active, Failed)]);
    }
}

/// Registry v2: the fixed MarkNodeFailed always takes the next view number, so it is refused at
/// the bound MaxView, checked after the evidence guards (a declaration without the evidence is
/// refused for the evidence first).
#[test]
fn mark_node_failed_is_refused_at_the_view_number_bound_after_the_evidence_guards() {
    let a = ActionName::MarkNodeFailed;
    let s = run(
        bounded(5, 5),
        &then(&all_active(5), &voted_out(5, &[1, 2, 3])),
    );
    assert_eq!(s.view_counter(), 5);
    let refused = refuse(&s, fail(5));
    assert_eq!(refused, refusal(a, view_bound(6, 5)));
    assert_eq!(
        refused.to_string(),
        "MarkNodeFailed: view number 6 would exceed MaxView 5"
    );
    // n4 heartbeats (its join) and nobody detected it.
    assert_eq!(
        refuse(&s, fail(4)),
        refusal(a, Guard::Undetected { node: n(4) })
    );
    // Three nodes, both peers voted: refused at the bound 3 as well.
    let voted = then(
        &THREE_ACTIVE,
        &[partition(1, 3), partition(2, 3), detect(1, 3), detect(2, 3)],
    );
    assert_eq!(
        refuse(&run(bounded(3, 3), &voted), fail(3)),
        refusal(a, view_bound(4, 3))
    );
    // One vote only: the quorum guard answers first.
    let s = run(
        bounded(3, 3),
        &then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3)]),
    );
    assert_eq!(
        refuse(&s, fail(3)),
        refusal(
            a,
            Guard::NoFailureQuorum {
                node: n(3),
                votes: nodes(&[1]),
                needed: 2,
                member_count: 3,
            }
        )
    );
    // One below the bound: accepted, and the counter reaches it.
    let (after, _) = accept(&run(bounded(3, 4), &voted), fail(3));
    assert_eq!(after.view_counter(), 4);
}

/// FailOnSingleDetection: one recorded detection suffices again (the fixed protocol before the
/// quorum rule). The new configuration number, fencing and records stay as in the fixed
/// protocol; FailureNeedsQuorum catches the step, FailureRequiresDetection does not.
#[test]
fn mutant_fail_on_single_detection_accepts_one_vote() {
    let events = then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3)]);
    let fixed_before = run(fixed(3), &events);
    assert_eq!(
        refuse(&fixed_before, fail(3)).guard,
        Guard::NoFailureQuorum {
            node: n(3),
            votes: nodes(&[1]),
            needed: 2,
            member_count: 3,
        }
    );
    let before = run(mutant(3, Mutant::FailOnSingleDetection), &events);
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) },
        ]
    );
    assert_eq!(after.view_counter(), 4);
    invariants::failure_requires_detection(&before, &after).unwrap();
    let violation = invariants::failure_needs_quorum(&before, &after).unwrap_err();
    assert_eq!(violation.invariant, TransitionInvariant::FailureNeedsQuorum);
    assert_eq!(violation.nodes, vec![n(1), n(3)]);
    // The other guards stay: without any record, or with the detector reaching n3 again,
    // refused (n3's heartbeat of its join counts, so only the vote path is open).
    let s = run(mutant(3, Mutant::FailOnSingleDetection), &THREE_ACTIVE);
    assert_eq!(refuse(&s, fail(3)).guard, Guard::Undetected { node: n(3) });
    let s = run(
        mutant(3, Mutant::FailOnSingleDetection),
        &then(&events, &[heal(1, 3)]),
    );
    assert_eq!(
        refuse(&s, fail(3)).guard,
        Guard::CanCommunicate { a: n(1), b: n(3) }
    );
}

#[test]
fn mutant_fail_without_detection_drops_the_detection_guard_only() {
    let before = run(mutant(3, Mutant::FailWithoutDetection), &THREE_ACTIVE);
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) },
        ]
    );
    // The new configuration number stays (registry v2).
    assert_eq!(after.view_counter(), 4);
    assert_eq!(
        invariants::failure_requires_detection(&before, &after)
            .unwrap_err()
            .invariant,
        TransitionInvariant::FailureRequiresDetection
    );
    // The status guard stays.
    assert_eq!(
        refuse(&after, fail(3)),
        refusal(ActionName::MarkNodeFailed, status(3, Active, Failed))
    );
}

/// FailKeepsViews (registry v2): MarkNodeFailed issues no new configuration number, so the
/// current number names two sets of members. Members that had adopted it before the failure
/// still hold the old members under the current number: MembershipConsistency flags the state,
/// and their SyncViews is refused (Synced), so they never learn of the failure; once the node
/// recovers, LeaveDetectionWeak flags it as well. The evidence guard stays.
#[test]
fn mutant_fail_keeps_views_issues_no_configuration_number() {
    let config = mutant(3, Mutant::FailKeepsViews);
    // The evidence guard stays.
    let s = run(config, &THREE_ACTIVE);
    assert_eq!(
        refuse(&s, fail(3)),
        refusal(ActionName::MarkNodeFailed, Guard::Undetected { node: n(3) })
    );
    let events = then(
        &three_synced(),
        &[partition(1, 3), partition(2, 3), detect(1, 3), detect(2, 3)],
    );
    let before = run(config, &events);
    invariants::membership_consistency(&before).unwrap();
    let (failed, effects) = accept(&before, fail(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) }
        ]
    );
    assert_eq!(failed.view_counter(), 3);
    assert_eq!(record(&failed, 1).view, nodes(&[1, 2, 3]));
    let violation = invariants::membership_consistency(&failed).unwrap_err();
    assert_eq!(violation.invariant, StateInvariant::MembershipConsistency);
    assert_eq!(violation.nodes, vec![n(1)]);
    assert_eq!(
        violation.detail,
        "n1 has adopted configuration 3 with view {n1, n2, n3} but its members are {n1, n2}"
    );
    assert_eq!(invariants::check_state(&failed).unwrap_err(), violation);
    assert_eq!(
        refuse(&failed, sync(1, 1)),
        refusal(
            ActionName::SyncViews,
            Guard::Synced {
                node: n(1),
                view_number: 3
            }
        )
    );
    let (recovered, effects) = accept(&failed, recover(3));
    assert_eq!(effects, vec![status_changed(3, Failed, Left)]);
    let violation = invariants::leave_detection_weak(&recovered).unwrap_err();
    assert_eq!(violation.nodes, vec![n(1), n(3)]);

    // The fixed protocol on the same path: the number 4 names {n1, n2}, the members adopt it.
    let before = run(fixed(3), &events);
    let (failed, _) = accept(&before, fail(3));
    assert_eq!(failed.view_counter(), 4);
    invariants::check_state(&failed).unwrap();
    let (synced, effects) = accept(&failed, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2], 4)]);
    let (recovered, _) = accept(&synced, recover(3));
    invariants::check_state(&recovered).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 8. NodeRecover

#[test]
fn node_recover_makes_a_failed_node_left() {
    let events = then(
        &THREE_ACTIVE,
        &[
            partition(1, 3),
            partition(2, 3),
            detect(1, 3),
            detect(2, 3),
            fail(3),
        ],
    );
    let before = run(fixed(3), &events);
    let (after, effects) = accept(&before, recover(3));
    assert_eq!(effects, vec![status_changed(3, Failed, Left)]);
    assert_eq!(
        record(&after, 3),
        NodeRecord {
            partitioned_from: nodes(&[1, 2]),
            ..member(Left, &[], 0)
        }
    );
    others_unchanged(&before, &after, &[3]);
    // And it may join again.
    let (_, effects) = accept(&after, join(3));
    assert_eq!(effects, vec![status_changed(3, Left, Joining)]);
}

#[test]
fn node_recover_refusals() {
    let a = ActionName::NodeRecover;
    let s = run(fixed(3), &THREE_ACTIVE);
    assert_eq!(refuse(&s, recover(0)), refusal(a, unknown(0)));
    assert_eq!(
        refuse(&s, recover(1)),
        refusal(a, status(1, Failed, Active))
    );
    let s = State::initial(fixed(3));
    assert_eq!(refuse(&s, recover(1)), refusal(a, status(1, Failed, Left)));
}

/// Registry v2: NodeRecover has no view guard any more (v1's StillInView is gone). n4 adopted
/// {n1, .., n5}#5 before n5 was declared and has not synchronised since, so it still lists n5;
/// n5 recovers anyway: LeaveDetectionWeak allows a Left node in the view of a member that has
/// not adopted the current configuration (#6), and n4's next SyncViews drops n5.
#[test]
fn node_recover_fixed_needs_no_member_to_have_synchronised() {
    let events = then(
        &all_active(5),
        &then(&[sync(4, 4)], &voted_out(5, &[1, 2, 3])),
    );
    let failed = run(fixed(5), &then(&events, &[fail(5)]));
    assert_eq!(record(&failed, 4), member(Active, &[1, 2, 3, 4, 5], 5));
    assert_eq!(failed.view_counter(), 6);
    let (after, effects) = accept(&failed, recover(5));
    assert_eq!(effects, vec![status_changed(5, Failed, Left)]);
    assert_eq!(
        record(&after, 5),
        NodeRecord {
            partitioned_from: nodes(&[1, 2, 3]),
            ..member(Left, &[], 0)
        }
    );
    others_unchanged(&failed, &after, &[5]);
    invariants::check_state(&after).unwrap();
    // Once n4 adopts the current configuration, it no longer lists n5.
    let (synced, effects) = accept(&after, sync(4, 4));
    assert_eq!(effects, vec![view_changed(4, &[1, 2, 3, 4], 6)]);
    invariants::check_state(&synced).unwrap();
}

#[test]
fn node_recover_reference_does_not_check_the_views() {
    let s = run(reference(3, 3), &then(&N3_UNKNOWN_TO_N1, &[fail(3)]));
    let (after, effects) = accept(&s, recover(3));
    assert_eq!(effects, vec![status_changed(3, Failed, Left)]);
    assert!(record(&after, 2).view.contains(n(3)));
}

// ---------------------------------------------------------------------------------------------
// 9. ElectPrimary

#[test]
fn elect_primary_after_a_step_down() {
    for config in [fixed(3), reference(3, 3)] {
        let before = run(config, &nobody_primary());
        assert!(before.believers().is_empty());
        let (after, effects) = accept(&before, elect(2));
        assert_eq!(effects, vec![became_primary(2, 2)], "{config:?}");
        assert_eq!(
            record(&after, 2),
            NodeRecord {
                believes_primary: true,
                term: 2,
                ..record(&before, 2)
            }
        );
        others_unchanged(&before, &after, &[2]);
    }
    let after = run(fixed(3), &then(&nobody_primary(), &[elect(2)]));
    assert_eq!(after.term_counter(), 2);
}

#[test]
fn elect_primary_fixed_supersedes_a_stale_primary() {
    let before = run(fixed(3), &n1_isolated());
    let (after, effects) = accept(&before, elect(2));
    assert_eq!(
        effects,
        vec![
            stepped_down(1, 1, StepDownReason::Superseded),
            became_primary(2, 2),
        ]
    );
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            believes_primary: false,
            term: 0,
            ..record(&before, 1)
        }
    );
    assert_eq!(after.believers(), nodes(&[2]));

    // Reference: the stale primary keeps believing.
    let before = run(reference(3, 3), &n1_isolated());
    let (after, effects) = accept(&before, elect(2));
    assert_eq!(effects, vec![became_primary(2, 2)]);
    assert_eq!(after.believers(), nodes(&[1, 2]));
    assert_eq!(record(&after, 1), record(&before, 1));
}

#[test]
fn elect_primary_term_fixed_counter_versus_reference_max_over_nodes() {
    // The primary n1 fails (its term is reset to 0); the reference model's next term is
    // 1 + max term over all nodes = 1 again, the fixed protocol's is the counter's 2.
    let events = then(
        &THREE_ACTIVE,
        &[
            partition(1, 2),
            partition(1, 3),
            detect(2, 1),
            detect(3, 1),
            fail(1),
        ],
    );
    for (config, term) in [(fixed(3), 2), (reference(3, 5), 1)] {
        let before = run(config, &events);
        let (_, effects) = accept(&before, elect(2));
        assert_eq!(effects, vec![became_primary(2, term)], "{config:?}");
    }
}

#[test]
fn elect_primary_buggy_drops_the_majority_and_valid_primary_guards_and_grants_no_term() {
    // core/spec/REFERENCE.md section 1, action 9: no term is granted; n keeps the term it has (here 0),
    // with no bound check.
    let before = run(buggy(3, 3), &[join(1), join(2), join_complete(2)]);
    let (after, effects) = accept(&before, elect(2));
    assert_eq!(effects, vec![became_primary(2, 0)]);
    assert_eq!(after.believers(), nodes(&[1, 2]));
    assert_eq!(record(&after, 2).term, 0);
    // A minority of one elects itself too.
    let before = run(
        buggy(3, 3),
        &then(&THREE_ACTIVE, &[partition(2, 1), partition(2, 3)]),
    );
    assert!(!before.has_majority(n(2)));
    let (_, effects) = accept(&before, elect(2));
    assert_eq!(effects, vec![became_primary(2, 0)]);
    // A node that kept a term from an earlier primacy (the reference modes keep it on leaving)
    // is elected with that same term.
    let before = run(
        buggy(3, 3),
        &[
            join(1),
            leave(1),
            leave_complete(1),
            join(2),
            join(1),
            join_complete(1),
        ],
    );
    assert_eq!(record(&before, 1).term, 1);
    let (after, effects) = accept(&before, elect(1));
    assert_eq!(effects, vec![became_primary(1, 1)]);
    assert_eq!(after.valid_primaries(), nodes(&[1, 2]));
}

#[test]
fn elect_primary_refusals() {
    let a = ActionName::ElectPrimary;
    for config in [fixed(3), reference(3, 3)] {
        let s = run(config, &[join(1), join(2)]);
        assert_eq!(refuse(&s, elect(0)), refusal(a, unknown(0)));
        assert_eq!(
            refuse(&s, elect(1)),
            refusal(a, Guard::AlreadyPrimary { node: n(1) })
        );
        assert_eq!(refuse(&s, elect(2)), refusal(a, status(2, Active, Joining)));
        let s = run(config, &[join(1), join(2), join_complete(2)]);
        let exists = refuse(&s, elect(2));
        assert_eq!(
            exists,
            refusal(a, Guard::ValidPrimaryExists { primary: n(1) })
        );
        assert_eq!(
            exists.to_string(),
            "ElectPrimary: n1 has a valid primary claim"
        );
        let s = run(config, &then(&n1_isolated(), &[step_down(1)]));
        let minority = refuse(&s, elect(1));
        assert_eq!(
            minority,
            refusal(
                a,
                Guard::NoMajority {
                    node: n(1),
                    reachable: 1,
                    member_count: 3,
                }
            )
        );
        assert_eq!(
            minority.to_string(),
            "ElectPrimary: n1 reaches 1 of 3 members, not a majority"
        );
    }
    // Buggy mode keeps only the first two guards.
    let s = run(buggy(3, 3), &[join(1), join(2)]);
    assert_eq!(
        refuse(&s, elect(1)),
        refusal(a, Guard::AlreadyPrimary { node: n(1) })
    );
    assert_eq!(refuse(&s, elect(2)), refusal(a, status(2, Active, Joining)));
}

#[test]
fn elect_primary_is_refused_at_the_term_bound() {
    // Two nodes: n1 steps down and is re-elected with term 2, then again would need term 3.
    let cycle = [partition(1, 2), step_down(1), heal(1, 2)];
    let mut events = vec![join(1), join(2), join_complete(2)];
    events.extend(cycle);
    events.push(elect(1));
    events.extend(cycle);
    for config in [bounded(2, 2), reference(2, 2)] {
        let s = run(config, &events);
        let refused = refuse(&s, elect(1));
        assert_eq!(
            refused,
            refusal(ActionName::ElectPrimary, term_bound(3, 2)),
            "{config:?}"
        );
        assert_eq!(
            refused.to_string(),
            "ElectPrimary: term 3 would exceed MaxView 2"
        );
    }
}

#[test]
fn mutant_elect_without_majority() {
    let config = mutant(3, Mutant::ElectWithoutMajority);
    let before = run(config, &then(&n1_isolated(), &[step_down(1)]));
    let (after, effects) = accept(&before, elect(1));
    assert_eq!(effects, vec![became_primary(1, 2)]);
    assert_eq!(
        invariants::minority_cannot_elect(&before, &after)
            .unwrap_err()
            .nodes,
        vec![n(1)]
    );
    // The valid-primary guard stays.
    let s = run(config, &[join(1), join(2), join_complete(2)]);
    assert_eq!(
        refuse(&s, elect(2)),
        refusal(
            ActionName::ElectPrimary,
            Guard::ValidPrimaryExists { primary: n(1) }
        )
    );
}

#[test]
fn mutant_elect_without_term_increment_regrants_the_current_term() {
    let before = run(
        mutant(3, Mutant::ElectWithoutTermIncrement),
        &nobody_primary(),
    );
    let (after, effects) = accept(&before, elect(2));
    assert_eq!(effects, vec![became_primary(2, 1)]);
    assert_eq!(after.term_counter(), 1);
    let violation = invariants::fencing_term_monotonic(&before, &after).unwrap_err();
    assert_eq!(
        violation.invariant,
        TransitionInvariant::FencingTermMonotonic
    );
    assert_eq!(violation.nodes, vec![n(2)]);
}

// ---------------------------------------------------------------------------------------------
// 10. PrimaryStepDown

#[test]
fn primary_step_down_on_majority_loss() {
    for (config, kept_term) in [(fixed(3), 0), (reference(3, 3), 1)] {
        let before = run(config, &n1_isolated());
        let (after, effects) = accept(&before, step_down(1));
        assert_eq!(
            effects,
            vec![stepped_down(1, 1, StepDownReason::MajorityLost)]
        );
        assert_eq!(
            record(&after, 1),
            NodeRecord {
                believes_primary: false,
                term: kept_term,
                ..record(&before, 1)
            },
            "{config:?}"
        );
        others_unchanged(&before, &after, &[1]);
    }
}

#[test]
fn primary_step_down_refusals() {
    let a = ActionName::PrimaryStepDown;
    for config in [fixed(3), reference(3, 3)] {
        let s = run(config, &THREE_ACTIVE);
        assert_eq!(refuse(&s, step_down(4)), refusal(a, unknown(4)));
        assert_eq!(
            refuse(&s, step_down(2)),
            refusal(a, Guard::NotPrimary { node: n(2) })
        );
        let has = refuse(&s, step_down(1));
        assert_eq!(has, refusal(a, Guard::HasMajority { node: n(1) }));
        assert_eq!(
            has.to_string(),
            "PrimaryStepDown: n1 still reaches a majority"
        );
    }
    // Status is not reachable: a node that believes it is primary is always Active (NodeLeave
    // and MarkNodeFailed step it down); properties.rs checks that on random runs.
}

#[test]
fn primary_step_down_is_disabled_in_buggy_mode_and_by_the_no_step_down_mutant() {
    let a = ActionName::PrimaryStepDown;
    let s = run(buggy(3, 3), &n1_isolated());
    let disabled = refuse(&s, step_down(1));
    assert_eq!(disabled, refusal(a, Guard::Disabled));
    assert_eq!(
        disabled.to_string(),
        "PrimaryStepDown: disabled in this checking configuration (mode or mutant)"
    );
    // The node must still exist.
    assert_eq!(refuse(&s, step_down(0)), refusal(a, unknown(0)));
    let s = run(mutant(3, Mutant::NoStepDown), &n1_isolated());
    assert_eq!(refuse(&s, step_down(1)), refusal(a, Guard::Disabled));
}

// ---------------------------------------------------------------------------------------------
// 11. CreatePartition

#[test]
fn create_partition_adds_both_orderings() {
    for config in [fixed(3), reference(3, 3), buggy(3, 3)] {
        let before = run(config, &THREE_ACTIVE);
        let (after, effects) = accept(&before, partition(3, 1));
        assert_eq!(effects, vec![]);
        assert_eq!(
            record(&after, 1),
            NodeRecord {
                partitioned_from: nodes(&[3]),
                ..record(&before, 1)
            }
        );
        assert_eq!(
            record(&after, 3),
            NodeRecord {
                partitioned_from: nodes(&[1]),
                ..record(&before, 3)
            }
        );
        assert!(!after.can_communicate(n(1), n(3)) && !after.can_communicate(n(3), n(1)));
        others_unchanged(&before, &after, &[1, 3]);
    }
    // Any nodes, whatever their status.
    let (after, _) = accept(&State::initial(fixed(2)), partition(1, 2));
    assert_eq!(record(&after, 2).partitioned_from, nodes(&[1]));
}

#[test]
fn create_partition_refusals() {
    let a = ActionName::CreatePartition;
    let s = run(fixed(3), &[partition(1, 3)]);
    assert_eq!(refuse(&s, partition(0, 1)), refusal(a, unknown(0)));
    assert_eq!(refuse(&s, partition(1, 4)), refusal(a, unknown(4)));
    assert_eq!(
        refuse(&s, partition(2, 2)),
        refusal(a, Guard::SameNode { node: n(2) })
    );
    let already = refuse(&s, partition(3, 1));
    assert_eq!(
        already,
        refusal(a, Guard::AlreadyPartitioned { a: n(3), b: n(1) })
    );
    assert_eq!(
        already.to_string(),
        "CreatePartition: n3 and n1 are already partitioned"
    );
}

// ---------------------------------------------------------------------------------------------
// 12. HealPartition

#[test]
fn heal_partition_removes_both_orderings() {
    let before = run(
        fixed(3),
        &then(&THREE_ACTIVE, &[partition(1, 3), partition(2, 3)]),
    );
    let (after, effects) = accept(&before, heal(3, 1));
    assert_eq!(effects, vec![]);
    assert_eq!(record(&after, 1).partitioned_from, NodeSet::EMPTY);
    assert_eq!(record(&after, 3).partitioned_from, nodes(&[2]));
    assert!(after.can_communicate(n(1), n(3)));
    assert_eq!(record(&after, 2), record(&before, 2));
}

#[test]
fn heal_partition_fixed_has_no_second_primary_to_demote() {
    // The stale primary was already superseded when n2 was elected.
    let before = run(fixed(3), &then(&n1_isolated(), &[elect(2)]));
    assert_eq!(before.believers(), nodes(&[2]));
    let (after, effects) = accept(&before, heal(1, 2));
    assert_eq!(effects, vec![]);
    assert_eq!(after.believers(), nodes(&[2]));
}

#[test]
fn heal_partition_reference_demotes_the_first_node_id() {
    // n1 (term 1) isolated, n2 elected with term 2: healing demotes n1.
    let events = then(&n1_isolated(), &[elect(2)]);
    let before = run(reference(3, 3), &events);
    let (after, effects) = accept(&before, heal(2, 1));
    assert_eq!(
        effects,
        vec![stepped_down(1, 1, StepDownReason::PartitionHealed)]
    );
    assert_eq!(after.believers(), nodes(&[2]));
    // Reverse the terms: n2 (term 2) is isolated and n1 elected with term 3. The reference
    // model's rule is the node-id order, so n1, holding the newer term, is the one demoted.
    let more = [
        step_down(1),
        heal(1, 2),
        heal(1, 3),
        partition(2, 1),
        partition(2, 3),
        elect(1),
    ];
    let before = run(reference(3, 3), &then(&events, &more));
    assert_eq!((record(&before, 1).term, record(&before, 2).term), (3, 2));
    let (after, effects) = accept(&before, heal(1, 2));
    assert_eq!(
        effects,
        vec![stepped_down(1, 3, StepDownReason::PartitionHealed)]
    );
    assert_eq!(after.believers(), nodes(&[2]));
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            believes_primary: false,
            partitioned_from: NodeSet::EMPTY,
            ..record(&before, 1)
        }
    );
}

#[test]
fn heal_partition_buggy_demotes_nobody() {
    let before = run(
        buggy(3, 3),
        &[
            join(1),
            join(2),
            join_complete(2),
            partition(1, 2),
            elect(2),
        ],
    );
    assert_eq!(before.believers(), nodes(&[1, 2]));
    let (after, effects) = accept(&before, heal(1, 2));
    assert_eq!(effects, vec![]);
    assert_eq!(after.believers(), nodes(&[1, 2]));
}

#[test]
fn heal_partition_refusals() {
    let a = ActionName::HealPartition;
    let s = run(fixed(3), &[partition(1, 2)]);
    assert_eq!(refuse(&s, heal(1, 0)), refusal(a, unknown(0)));
    assert_eq!(refuse(&s, heal(4, 1)), refusal(a, unknown(4)));
    let not = refuse(&s, heal(1, 3));
    assert_eq!(not, refusal(a, Guard::NotPartitioned { a: n(1), b: n(3) }));
    assert_eq!(
        not.to_string(),
        "HealPartition: n1 and n3 are not partitioned"
    );
    // The spec has no a != b guard here: a node is never partitioned from itself.
    assert_eq!(
        refuse(&s, heal(2, 2)),
        refusal(a, Guard::NotPartitioned { a: n(2), b: n(2) })
    );
}

// ---------------------------------------------------------------------------------------------
// 13. ResetHeartbeats (no guard: never refused)

#[test]
fn reset_heartbeats_clears_every_heartbeat() {
    for config in [fixed(3), reference(3, 3), buggy(3, 3)] {
        let before = run(config, &then(&THREE_ACTIVE, &[heartbeat(1)]));
        assert!(before.node_ids().all(|n| before.heartbeat_received(n)));
        let (after, effects) = accept(&before, RESET);
        assert_eq!(effects, vec![]);
        assert!(after.heartbeats().is_empty());
        assert_eq!(after.nodes(), before.nodes());
        // Enabled even with nothing to reset.
        let initial = State::initial(config);
        assert_eq!(accept(&initial, RESET), (initial.clone(), vec![]));
    }
}

// ---------------------------------------------------------------------------------------------
// 14. SyncViews

/// Registry v2: in the fixed protocol a node synchronises with the registry, SyncViews(n, n): an
/// Active node that has not adopted the current configuration adopts it, the Active nodes with
/// the current number (one ViewChanged, for `n` only). No number is issued, and the detection
/// records are left alone (n1's vote against n3 survives its adopting a view that lists n3). A
/// partition does not matter: the node reads the registry, not a peer.
#[test]
fn sync_views_fixed_adopts_the_current_configuration() {
    let before = run(fixed(3), &then(&N3_UNKNOWN_TO_N1, &[detect(1, 3)]));
    assert_eq!(record(&before, 1).view, nodes(&[1]));
    assert_eq!(before.view_counter(), 3);
    assert!(!before.is_converged());
    let (after, effects) = accept(&before, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2, 3], 3)]);
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            view: nodes(&[1, 2, 3]),
            view_number: 3,
            ..record(&before, 1)
        }
    );
    assert_eq!(record(&after, 1).detected, nodes(&[3]));
    others_unchanged(&before, &after, &[1]);
    assert_eq!(after.view_counter(), 3);
    assert_eq!(after.heartbeats(), before.heartbeats());
    invariants::check_state(&after).unwrap();
    invariants::check_transition(&before, &after).unwrap();
    let (after, effects) = accept(&after, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[1, 2, 3], 3)]);
    assert!(after.is_converged());
}

#[test]
fn sync_views_reference_adopts_the_newer_view() {
    // n1 {n1, n2}#2 (it missed n3's join), n3 {n1, n2, n3}#3.
    let events = then(&N3_UNKNOWN_TO_N1, &[heal(1, 3)]);
    let config = reference(3, 4);
    let before = run(config, &events);
    for event in [sync(1, 3), sync(3, 1)] {
        let (after, effects) = accept(&before, event);
        assert_eq!(
            effects,
            vec![
                view_changed(1, &[1, 2, 3], 4),
                view_changed(3, &[1, 2, 3], 4),
            ],
            "{config:?} {event}"
        );
        assert_eq!(
            record(&after, 1),
            NodeRecord {
                view: nodes(&[1, 2, 3]),
                view_number: 4,
                ..record(&before, 1)
            }
        );
        others_unchanged(&before, &after, &[1, 3]);
    }
    // The fixed protocol refuses a synchronisation between peers.
    assert_eq!(
        refuse(&run(fixed(3), &events), sync(1, 3)),
        refusal(ActionName::SyncViews, Guard::PeerSync { a: n(1), b: n(3) })
    );
}

#[test]
fn sync_views_reference_unites_the_newer_view_with_both_nodes() {
    // n1 dropped n3 ({n1, n2}#4, the newer); after the heal both adopt {n1, n2} + {n1, n3}.
    let events = then(&THREE_ACTIVE, &[partition(1, 3), detect(1, 3), heal(1, 3)]);
    let before = run(reference(3, 5), &events);
    let (_, effects) = accept(&before, sync(3, 1));
    assert_eq!(
        effects,
        vec![
            view_changed(1, &[1, 2, 3], 5),
            view_changed(3, &[1, 2, 3], 5),
        ]
    );
}

#[test]
fn sync_views_number_fixed_current_versus_reference_newer_plus_one() {
    let events = then(
        &THREE_ACTIVE,
        &[partition(1, 3), detect(1, 3), detect(3, 1)],
    );
    // Fixed (registry v2): the votes took no number; each member adopts the current number 3,
    // and none is issued.
    let before = run(fixed(3), &events);
    let (after, effects) = accept(&before, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2, 3], 3)]);
    let (after, effects) = accept(&after, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[1, 2, 3], 3)]);
    assert_eq!(
        refuse(&after, sync(3, 3)).guard,
        Guard::Synced {
            node: n(3),
            view_number: 3
        }
    );
    assert_eq!(after.view_counter(), 3);
    // Reference: n1 {n1, n2}#4, n2 {n1, n2, n3}#3, n3 {n2, n3}#4; n1 and n2 take 4 + 1.
    let before = run(reference(3, 5), &events);
    let (_, effects) = accept(&before, sync(1, 2));
    assert_eq!(
        effects,
        vec![view_changed(1, &[1, 2], 5), view_changed(2, &[1, 2], 5)]
    );
    // After a heal, n1 and n3 hold different views with the same number 4, so the reference
    // model refuses to synchronise them.
    let healed = then(&events, &[heal(1, 3)]);
    assert_eq!(
        refuse(&run(reference(3, 5), &healed), sync(1, 3)),
        refusal(
            ActionName::SyncViews,
            Guard::SameViewNumber {
                a: n(1),
                b: n(3),
                view_number: 4
            }
        )
    );
}

#[test]
fn sync_views_refusals() {
    let a = ActionName::SyncViews;
    // Fixed (registry v2): both records must exist, then a == b, then the NoSyncViews mutant's
    // Disabled, then a Active, then a behind the current configuration.
    let s = run(fixed(3), &THREE_ACTIVE);
    assert_eq!(refuse(&s, sync(0, 1)), refusal(a, unknown(0)));
    assert_eq!(refuse(&s, sync(1, 4)), refusal(a, unknown(4)));
    assert_eq!(refuse(&s, sync(4, 4)), refusal(a, unknown(4)));
    let peer = refuse(&s, sync(1, 2));
    assert_eq!(peer, refusal(a, Guard::PeerSync { a: n(1), b: n(2) }));
    assert_eq!(
        peer.to_string(),
        "SyncViews: n1 synchronises with the registry, not with n2: SyncViews(n1, n1)"
    );
    assert_eq!(
        refuse(&s, sync(2, 1)),
        refusal(a, Guard::PeerSync { a: n(2), b: n(1) })
    );
    let synced = refuse(&s, sync(3, 3));
    assert_eq!(
        synced,
        refusal(
            a,
            Guard::Synced {
                node: n(3),
                view_number: 3
            }
        )
    );
    assert_eq!(
        synced.to_string(),
        "SyncViews: n3 has adopted the current configuration 3 already"
    );
    let s = run(fixed(3), &[join(1), join(2), join_complete(2), join(3)]);
    assert_eq!(
        refuse(&s, sync(3, 3)),
        refusal(a, status(3, Active, Joining))
    );
    // The peer check comes before the status check.
    assert_eq!(
        refuse(&s, sync(3, 1)),
        refusal(a, Guard::PeerSync { a: n(3), b: n(1) })
    );
    let s = State::initial(fixed(3));
    assert_eq!(refuse(&s, sync(1, 1)), refusal(a, status(1, Active, Left)));
    // A Leaving node adopts nothing, even behind the current configuration.
    let s = run(fixed(3), &then(&THREE_ACTIVE, &[leave(1)]));
    assert_eq!(
        refuse(&s, sync(1, 1)),
        refusal(a, status(1, Active, Leaving))
    );

    // Reference: a != b, both Active, able to communicate, with different numbers.
    let s = run(reference(3, 3), &THREE_ACTIVE);
    assert_eq!(refuse(&s, sync(0, 1)), refusal(a, unknown(0)));
    assert_eq!(refuse(&s, sync(1, 4)), refusal(a, unknown(4)));
    assert_eq!(
        refuse(&s, sync(2, 2)),
        refusal(a, Guard::SameNode { node: n(2) })
    );
    let same = refuse(&s, sync(1, 2));
    assert_eq!(
        same,
        refusal(
            a,
            Guard::SameViewNumber {
                a: n(1),
                b: n(2),
                view_number: 3
            }
        )
    );
    assert_eq!(
        same.to_string(),
        "SyncViews: n1 and n2 both have view number 3"
    );
    let s = run(
        reference(3, 3),
        &[join(1), join(2), join_complete(2), join(3)],
    );
    assert_eq!(
        refuse(&s, sync(3, 1)),
        refusal(a, status(3, Active, Joining))
    );
    assert_eq!(
        refuse(&s, sync(1, 3)),
        refusal(a, status(3, Active, Joining))
    );
    let s = run(reference(3, 3), &N3_UNKNOWN_TO_N1);
    assert_eq!(
        refuse(&s, sync(1, 3)),
        refusal(a, Guard::CannotCommunicate { a: n(1), b: n(3) })
    );
}

/// The reference synchronisation takes a new number, within the bound. Registry v2: the fixed
/// SyncViews(n, n) issues none, so it is never refused by the bound.
#[test]
fn sync_views_is_refused_at_the_bound_in_the_reference_model_only() {
    let events = then(&N3_UNKNOWN_TO_N1, &[heal(1, 3)]);
    let s = run(reference(3, 3), &events);
    assert_eq!(
        refuse(&s, sync(1, 3)),
        refusal(ActionName::SyncViews, view_bound(4, 3))
    );
    let s = run(bounded(3, 3), &events);
    assert_eq!(s.view_counter(), 3);
    let (after, effects) = accept(&s, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2, 3], 3)]);
    assert_eq!(after.view_counter(), 3);
}

/// NoSyncViews: SyncViews(n, n) is refused with Disabled, after the record and peer checks
/// (registry v2: SyncViews(a, b) with a != b is refused as PeerSync first), before any status
/// check.
#[test]
fn mutant_no_sync_views_disables_the_action_before_any_status_check() {
    let a = ActionName::SyncViews;
    let config = mutant(3, Mutant::NoSyncViews);
    let s = run(config, &then(&N3_UNKNOWN_TO_N1, &[heal(1, 3)]));
    // n1 has not adopted the current configuration: the fixed protocol would accept this.
    assert_eq!(record(&s, 1).view_number, 1);
    assert_eq!(refuse(&s, sync(1, 1)), refusal(a, Guard::Disabled));
    assert_eq!(
        refuse(&s, sync(1, 3)),
        refusal(a, Guard::PeerSync { a: n(1), b: n(3) })
    );
    let s = State::initial(config);
    assert_eq!(refuse(&s, sync(1, 1)), refusal(a, Guard::Disabled));
    assert_eq!(
        refuse(&s, sync(1, 2)),
        refusal(a, Guard::PeerSync { a: n(1), b: n(2) })
    );
    assert_eq!(refuse(&s, sync(0, 0)), refusal(a, unknown(0)));
}

/// SyncViewsKeepsView (registry v2): the node takes the current configuration's number but keeps
/// its own view, so it holds the current number with other members than the configuration's:
/// MembershipConsistency flags it, and the node never adopts the right view (its next SyncViews
/// is refused as Synced).
#[test]
fn mutant_sync_views_keeps_view_takes_the_number_but_keeps_the_view() {
    let config = mutant(3, Mutant::SyncViewsKeepsView);
    let before = run(config, &THREE_ACTIVE);
    let (after, effects) = accept(&before, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1], 3)]);
    assert_eq!(
        record(&after, 1),
        NodeRecord {
            view_number: 3,
            ..record(&before, 1)
        }
    );
    assert_eq!(after.view_counter(), 3);
    let violation = invariants::membership_consistency(&after).unwrap_err();
    assert_eq!(violation.invariant, StateInvariant::MembershipConsistency);
    assert_eq!(violation.nodes, vec![n(1)]);
    assert_eq!(
        violation.detail,
        "n1 has adopted configuration 3 with view {n1} but its members are {n1, n2, n3}"
    );
    assert_eq!(
        refuse(&after, sync(1, 1)).guard,
        Guard::Synced {
            node: n(1),
            view_number: 3
        }
    );
    // The fixed protocol from the same state.
    let (after, effects) = accept(&run(fixed(3), &THREE_ACTIVE), sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2, 3], 3)]);
    invariants::membership_consistency(&after).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Across actions

/// For every action with a node parameter, an unknown node is refused first, before any other
/// guard (the status, the mode's Disabled, SameNode), and the refusal names the action.
#[test]
fn every_parameterised_action_refuses_an_unknown_node_first() {
    let configs: [Config; 4] = [
        fixed(3),
        reference(3, 3),
        buggy(3, 3),
        mutant(3, Mutant::NoSyncViews),
    ];
    let ghost = NodeId(4);
    for config in configs {
        let s = run(config, &THREE_ACTIVE);
        let mut seen = Vec::new();
        for event in Event::all(4) {
            let names_ghost = event.nodes().contains(&ghost);
            if names_ghost {
                assert_eq!(
                    refuse(&s, event),
                    refusal(event.name(), Guard::UnknownNode { node: ghost }),
                    "{config:?} {event}"
                );
                seen.push(event.name());
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 13, "every action but ResetHeartbeats");
    }
}
