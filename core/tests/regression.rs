//! The defects of the reference model (core/spec/REFERENCE.md section 2) as regression tests: each is
//! reproduced step by step in the mode that has it, and the fixed protocol is shown not to
//! have it.

use membership_core::invariants::{self, StateInvariant, TransitionInvariant};
#[cfg(test)]
use membership_core::testing::*;
use membership_core::{
    step, ActionName, Effect, Event, Guard, NodeStatus, Refusal, State, StepDownReason,
};

/// core/spec/REFERENCE.md section 2, the shortest LeaveDetectionWeak counterexample (8 steps).
const COUNTEREXAMPLE: [Event; 8] = [
    N3_UNKNOWN_TO_N1[0], // NodeJoin(n1)
    N3_UNKNOWN_TO_N1[1], // NodeJoin(n2)
    N3_UNKNOWN_TO_N1[2], // NodeJoinComplete(n2)
    N3_UNKNOWN_TO_N1[3], // NodeJoin(n3)
    N3_UNKNOWN_TO_N1[4], // CreatePartition(n1, n3)
    N3_UNKNOWN_TO_N1[5], // NodeJoinComplete(n3)
    Event::MarkNodeFailed {
        node: membership_core::NodeId(3),
    },
    Event::NodeRecover {
        node: membership_core::NodeId(3),
    },
];

/// Steps through `events` from the initial state, checking every state and transition
/// invariant on every prefix; the states visited, initial state first.
fn run_checked(config: membership_core::Config, events: &[Event]) -> Vec<State> {
    let mut states = vec![State::initial(config)];
    if let Err(v) = invariants::check_state(&states[0]) {
        panic!("initial state: {v}");
    }
    for (i, event) in events.iter().enumerate() {
        let before = &states[i];
        let after = match step(before, event) {
            Ok((next, _)) => next,
            Err(refusal) => panic!("step {} ({event}) refused: {refusal}", i + 1),
        };
        if let Err(v) = invariants::check_state(&after) {
            panic!("after step {} ({event}): {v}", i + 1);
        }
        if let Err(v) = invariants::check_transition(before, &after) {
            panic!("step {} ({event}): {v}", i + 1);
        }
        states.push(after);
    }
    states
}

#[test]
fn the_path_spells_the_protocol_md_counterexample() {
    let spelled: Vec<String> = COUNTEREXAMPLE.iter().map(ToString::to_string).collect();
    assert_eq!(
        spelled,
        [
            "NodeJoin(n1)",
            "NodeJoin(n2)",
            "NodeJoinComplete(n2)",
            "NodeJoin(n3)",
            "CreatePartition(n1, n3)",
            "NodeJoinComplete(n3)",
            "MarkNodeFailed(n3)",
            "NodeRecover(n3)",
        ]
    );
}

#[test]
fn reference_model_violates_leave_detection_weak_in_eight_steps() {
    let mut state = State::initial(reference(3, 3));
    for (i, event) in COUNTEREXAMPLE.iter().enumerate() {
        // Every earlier state satisfies the invariant: the violation appears at step 8.
        invariants::leave_detection_weak(&state).unwrap();
        state = match step(&state, event) {
            Ok((next, _)) => next,
            Err(refusal) => panic!("step {} ({event}) refused: {refusal}", i + 1),
        };
    }
    let violation = invariants::leave_detection_weak(&state).unwrap_err();
    assert_eq!(violation.invariant, StateInvariant::LeaveDetectionWeak);
    assert_eq!(violation.nodes, vec![n(2), n(3)]);
    assert_eq!(
        violation.detail,
        "n3 is Left but still in n2's view {n1, n2, n3}"
    );
    assert_eq!(state.node(n(3)).unwrap().status, NodeStatus::Left);
    // check_state reports the same violation (the earlier invariants hold).
    assert_eq!(invariants::check_state(&state).unwrap_err(), violation);
}

/// The fixed protocol accepts the path's first six steps with every invariant intact on every
/// prefix, then refuses step 7 (see the next test): the path never reaches its bad state.
#[test]
fn fixed_protocol_keeps_every_invariant_on_the_accepted_prefix() {
    let states = run_checked(fixed(3), &COUNTEREXAMPLE[..6]);
    let last = &states[6];
    // n1 never heard of n3 (its view predates n3's admission) and has recorded no detection.
    assert!(!last.node(n(1)).unwrap().view.contains(n(3)));
    assert!(last.node(n(1)).unwrap().detected.is_empty());
    assert!(last.node(n(2)).unwrap().view.contains(n(3)));
}

/// core/spec/REFERENCE.md section 2: "the guard of MarkNodeFailed confuses 'never heard of' with 'detected
/// as failed'". The fixed protocol refuses step 7: n1 lacks n3 in its view only because its view
/// {n1, n2}#2 predates n3's admission, so it has recorded no detection of n3 (`detected[n1]`
/// is empty), and nobody else has either.
#[test]
fn fixed_protocol_refuses_failing_a_node_its_peer_never_heard_of() {
    let state = run(fixed(3), &COUNTEREXAMPLE[..6]);
    assert_eq!(
        step(&state, &COUNTEREXAMPLE[6]).unwrap_err(),
        Refusal {
            action: ActionName::MarkNodeFailed,
            guard: Guard::Undetected { node: n(3) }
        }
    );
}

/// In the counterexample's state, the fixed protocol's detection route: DetectFailure(n1, n3)
/// is refused (n1 never listed n3) and DetectFailure(n2, n3) too while n2 can reach n3; once n2
/// is cut off from n3 it detects and drops n3, n3 is declared failed and recovers, and no
/// Active view lists it at any point after.
#[test]
fn fixed_protocol_fails_n3_through_detect_failure_and_removes_it_from_every_view() {
    let prefix = run(fixed(3), &N3_UNKNOWN_TO_N1);
    assert_eq!(
        step(&prefix, &detect(1, 3)).unwrap_err().to_string(),
        "DetectFailure: n3 is not in n1's view"
    );
    assert_eq!(
        step(&prefix, &detect(2, 3)).unwrap_err(),
        Refusal {
            action: ActionName::DetectFailure,
            guard: Guard::CanCommunicate { a: n(2), b: n(3) }
        }
    );
    let path = then(
        &N3_UNKNOWN_TO_N1,
        &[partition(2, 3), detect(2, 3), fail(3), recover(3)],
    );
    let states = run_checked(fixed(3), &path);
    // states[8]: after DetectFailure(n2, n3); states[9]: n3 Failed; states[10]: n3 Left.
    assert_eq!(states[8].node(n(2)).unwrap().view, nodes(&[1, 2]));
    assert_eq!(states[9].node(n(3)).unwrap().status, NodeStatus::Failed);
    for state in &states[8..] {
        for m in state.active().iter().filter(|&m| m != n(3)) {
            assert!(!state.node(m).unwrap().view.contains(n(3)), "{m} lists n3");
        }
    }

    // With n3 in every view to begin with, the failing transition itself removes it from the
    // views of the peers that had not detected anything.
    let path = then(
        &THREE_ACTIVE,
        &[partition(1, 3), detect(1, 3), fail(3), recover(3)],
    );
    let states = run_checked(fixed(3), &path);
    let failed = &states[8];
    assert_eq!(failed.active(), nodes(&[1, 2]));
    for m in failed.active().iter() {
        assert_eq!(failed.node(m).unwrap().view, nodes(&[1, 2]));
    }
    assert_eq!(states[9].node(n(3)).unwrap().status, NodeStatus::Left);
}

/// core/spec/REFERENCE.md section 2, "terms are not monotonic": n1 bootstraps with term 1 and leaves; n2
/// bootstraps and is granted term 1 again.
#[test]
fn reference_model_regrants_term_one_on_a_second_bootstrap() {
    let path = [join(1), leave(1), join(2)];
    let before = run(reference(3, 3), &path[..2]);
    let (after, effects) = step(&before, &path[2]).unwrap();
    assert!(effects.contains(&Effect::BecamePrimary {
        node: n(2),
        term: 1
    }));
    let violation = invariants::check_transition(&before, &after).unwrap_err();
    assert_eq!(
        violation.invariant,
        TransitionInvariant::FencingTermMonotonic
    );
    assert_eq!(violation.nodes, vec![n(2)]);
    assert_eq!(
        violation.detail,
        "n2 was granted term 1 but term 1 had already been granted"
    );

    // Fixed: the registry counter grants term 2.
    let states = run_checked(fixed(3), &path);
    let (_, effects) = step(&states[2], &path[2]).unwrap();
    assert!(effects.contains(&Effect::BecamePrimary {
        node: n(2),
        term: 2
    }));
    assert_eq!(states[3].term_counter(), 2);
    // The step-down on leaving named the term n1 gave up.
    let (_, effects) = step(&states[1], &path[1]).unwrap();
    assert!(effects.contains(&Effect::SteppedDown {
        node: n(1),
        term: 1,
        reason: StepDownReason::Leaving
    }));
}

/// BUGGY mode: n1 elects itself while n2 is a valid primary, keeping the term 1 it held from its
/// own bootstrap, which n2's bootstrap granted again: split brain (the checker's shortest path).
#[test]
fn buggy_mode_violates_no_split_brain() {
    let path = [
        join(1),
        leave(1),
        leave_complete(1),
        join(2),
        join(1),
        join_complete(1),
        elect(1),
    ];
    let state = run(buggy(3, 3), &path);
    let violation = invariants::check_state(&state).unwrap_err();
    assert_eq!(violation.invariant, StateInvariant::NoSplitBrain);
    assert_eq!(violation.nodes, vec![n(1), n(2)]);
    assert_eq!(state.valid_primaries(), nodes(&[1, 2]));
}

#[test]
fn fixed_protocol_refuses_the_split_brain_election() {
    let states = run_checked(fixed(3), &[join(1), join(2), join_complete(2)]);
    let refusal = step(&states[3], &elect(2)).unwrap_err();
    assert_eq!(
        refusal,
        Refusal {
            action: ActionName::ElectPrimary,
            guard: Guard::ValidPrimaryExists { primary: n(1) }
        }
    );
    assert_eq!(
        refusal.to_string(),
        "ElectPrimary: n1 has a valid primary claim"
    );
    // The reference model refuses it as well; only BUGGY drops the guard.
    let state = run(reference(3, 3), &[join(1), join(2), join_complete(2)]);
    assert_eq!(step(&state, &elect(2)).unwrap_err(), refusal);
}
