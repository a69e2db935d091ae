//! The defects of the reference model (core/spec/REFERENCE.md section 2) as regression tests: each is
//! reproduced step by step in the mode that has it, and the fixed protocol is shown not to
//! have it.

use membership_core::checking::Mutant;
use membership_core::invariants::{self, Liveness, StateInvariant, TransitionInvariant};
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
    // Registry v2 (one configuration): only n3 adopted the configuration its join numbered,
    // {n1, n2, n3}#3; n2 keeps {n1, n2}#2 until its own SyncViews, which adopts it.
    assert_eq!(last.view_counter(), 3);
    assert_eq!(last.node(n(3)).unwrap().view, nodes(&[1, 2, 3]));
    assert_eq!(last.node(n(2)).unwrap().view, nodes(&[1, 2]));
    let synced = run_checked(fixed(3), &then(&COUNTEREXAMPLE[..6], &[sync(2, 2)]));
    let n2 = synced[7].node(n(2)).unwrap();
    assert_eq!((n2.view.clone(), n2.view_number), (nodes(&[1, 2, 3]), 3));
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

/// In the counterexample's state, the fixed protocol's detection route. n1 never listed n3, but
/// it does observe n3 unreachable: DetectFailure(n1, n3) records its vote without a view change.
/// DetectFailure(n2, n3) is refused while n2 can reach n3, and one vote is no majority of three:
/// MarkNodeFailed(n3) is refused. Once n2 is cut off from n3 too, it records its vote (registry
/// v2: no view changes), n3 is declared failed and recovers, and no Active view lists it at any
/// point after (neither n1 {n1}#1 nor n2 {n1, n2}#2 ever adopted a configuration with n3).
/// Registry v2 (one configuration): when members did adopt a configuration listing the failed
/// node, the declaration changes none of their views; it numbers the configuration without the
/// node, and each member adopts that by its own SyncViews, every invariant holding all along.
#[test]
fn fixed_protocol_fails_n3_through_detect_failure_and_members_adopt_the_configuration_without_it() {
    let prefix = run(fixed(3), &N3_UNKNOWN_TO_N1);
    let (voted, effects) = step(&prefix, &detect(1, 3)).unwrap();
    assert!(effects.is_empty());
    assert_eq!(
        voted.node(n(1)).unwrap().view,
        prefix.node(n(1)).unwrap().view
    );
    assert_eq!(
        step(&voted, &fail(3)).unwrap_err().to_string(),
        "MarkNodeFailed: n3 still heartbeats and has 1 recorded detection by peers that cannot \
         reach it (n1); a majority of 3 members needs 2"
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
        &[
            partition(2, 3),
            detect(2, 3),
            detect(1, 3),
            fail(3),
            recover(3),
        ],
    );
    let states = run_checked(fixed(3), &path);
    // states[8]: after DetectFailure(n2, n3); states[10]: n3 Failed; states[11]: n3 Left.
    assert_eq!(states[8].node(n(2)).unwrap().view, nodes(&[1, 2]));
    assert_eq!(states[9].failure_votes(n(3)), nodes(&[1, 2]));
    assert_eq!(states[10].node(n(3)).unwrap().status, NodeStatus::Failed);
    for state in &states[8..] {
        for m in state.active().iter().filter(|&m| m != n(3)) {
            assert!(!state.node(m).unwrap().view.contains(n(3)), "{m} lists n3");
        }
    }

    // Five nodes that all adopted {n1, .., n5}#5: the declaration changes no view (the members
    // still list n5, under a number below the current one), n5 recovers, and each member then
    // adopts {n1, .., n4}#6 by its own SyncViews.
    let path = then(
        &all_active(5),
        &[
            sync(1, 1),
            sync(2, 2),
            sync(3, 3),
            sync(4, 4),
            partition(1, 5),
            partition(2, 5),
            partition(3, 5),
            detect(1, 5),
            detect(2, 5),
            detect(3, 5),
            fail(5),
            recover(5),
            sync(1, 1),
            sync(2, 2),
            sync(3, 3),
            sync(4, 4),
        ],
    );
    let states = run_checked(fixed(5), &path);
    let failed = &states[20];
    assert_eq!(failed.node(n(5)).unwrap().status, NodeStatus::Failed);
    assert_eq!(failed.active(), nodes(&[1, 2, 3, 4]));
    assert_eq!(failed.view_counter(), 6);
    for m in failed.active().iter() {
        let r = failed.node(m).unwrap();
        assert_eq!(
            (r.view.clone(), r.view_number),
            (nodes(&[1, 2, 3, 4, 5]), 5)
        );
    }
    assert_eq!(states[21].node(n(5)).unwrap().status, NodeStatus::Left);
    let last = states.last().unwrap();
    for m in last.active().iter() {
        let r = last.node(m).unwrap();
        assert_eq!((r.view.clone(), r.view_number), (nodes(&[1, 2, 3, 4]), 6));
    }
    assert!(last.is_converged());
}

/// Issue 12, the degraded observer: in a 3-node cluster split {n1} | {n2, n3}, n1 (cut off from
/// every peer but still reaching the registry) detects n2 and n3, but cannot get either declared
/// failed while they heartbeat: its detection is one vote, and a majority of the 3 members needs
/// 2. n2 and n3 can declare n1 failed although n1 heartbeats too (their two votes), and the
/// cluster stays available (n2 is elected). Under the single-detection rule (the mutant
/// `fail-on-single-detection`) the same path declares n2 failed, after which no node reaches a
/// majority of the two members left and no primary can be elected.
#[test]
fn a_degraded_observer_cannot_get_healthy_nodes_declared_failed() {
    let split = then(
        &THREE_ACTIVE,
        &[
            partition(1, 2),
            partition(1, 3),
            RESET,
            heartbeat(1),
            heartbeat(2),
            heartbeat(3),
        ],
    );
    let path = then(&split, &[detect(1, 2), detect(1, 3)]);
    let states = run_checked(fixed(3), &path);
    let observed = states.last().unwrap();
    for (target, votes) in [(2, nodes(&[1])), (3, nodes(&[1]))] {
        assert_eq!(
            step(observed, &fail(target)).unwrap_err(),
            Refusal {
                action: ActionName::MarkNodeFailed,
                guard: Guard::NoFailureQuorum {
                    node: n(target),
                    votes,
                    needed: 2,
                    member_count: 3,
                }
            }
        );
    }
    assert_eq!(
        step(observed, &fail(2)).unwrap_err().to_string(),
        "MarkNodeFailed: n2 still heartbeats and has 1 recorded detection by peers that cannot \
         reach it (n1); a majority of 3 members needs 2"
    );
    // n2 and n3 cannot vote against each other (they communicate).
    for (d, t) in [(2, 3), (3, 2)] {
        assert_eq!(
            step(observed, &detect(d, t)).unwrap_err().guard,
            Guard::CanCommunicate { a: n(d), b: n(t) }
        );
    }

    // n2 and n3 declare n1 failed; n2 is elected.
    let path = then(&path, &[detect(2, 1), detect(3, 1), fail(1), elect(2)]);
    let states = run_checked(fixed(3), &path);
    let last = states.last().unwrap();
    assert_eq!(last.node(n(1)).unwrap().status, NodeStatus::Failed);
    assert_eq!(last.active(), nodes(&[2, 3]));
    assert_eq!(last.valid_primaries(), nodes(&[2]));

    // The single-detection rule: MarkNodeFailed(n2) on n1's vote alone, flagged by
    // FailureNeedsQuorum; afterwards nobody can be elected.
    let single = mutant(3, Mutant::FailOnSingleDetection);
    let before = run(single, &then(&split, &[detect(1, 2)]));
    let (after, _) = step(&before, &fail(2)).unwrap();
    let violation = invariants::check_transition(&before, &after).unwrap_err();
    assert_eq!(violation.invariant, TransitionInvariant::FailureNeedsQuorum);
    assert_eq!(violation.nodes, vec![n(1), n(2)]);
    assert_eq!(
        violation.detail,
        "n2 was declared failed with the votes of {n1} (heartbeat received: true); \
         a majority of 3 members needs 2"
    );
    let after = run(
        single,
        &then(&split, &[detect(1, 2), fail(2), step_down(1)]),
    );
    for i in [1, 3] {
        assert!(!after.has_majority(n(i)));
        assert_eq!(
            step(&after, &elect(i)).unwrap_err().guard,
            Guard::NoMajority {
                node: n(i),
                reachable: 1,
                member_count: 2,
            }
        );
    }
}

/// The degraded observer, exhaustively: with the network fixed as {n1} | {n2, n3}, in every state
/// reachable by every other action (joins, leaves, heartbeats, rounds, detections,
/// declarations, elections, view synchronisation; view numbers and terms up to 7), n2 and n3 are
/// declared failed only on the registry's own evidence (they committed no heartbeat in the
/// round), never while they heartbeat, whatever n1 votes; n1 is declared failed in some states
/// while it heartbeats (the votes of n2 and n3).
#[test]
fn with_n1_cut_off_no_behaviour_declares_n2_or_n3_failed() {
    let start = run(
        bounded(3, 7),
        &then(&THREE_ACTIVE, &[partition(1, 2), partition(1, 3)]),
    );
    let events: Vec<Event> = Event::all(3)
        .into_iter()
        .filter(|e| {
            !matches!(
                e,
                Event::CreatePartition { .. } | Event::HealPartition { .. }
            )
        })
        .collect();
    let mut seen = std::collections::HashSet::from([start.clone()]);
    let mut frontier = vec![start];
    let mut n1_failed = 0;
    while let Some(state) = frontier.pop() {
        for event in &events {
            let Ok((next, _)) = step(&state, event) else {
                continue;
            };
            if let Err(v) = invariants::check_transition(&state, &next) {
                panic!("{event}: {v}");
            }
            if let Err(v) = invariants::check_state(&next) {
                panic!("after {event}: {v}");
            }
            for i in [2, 3] {
                let declared = state.node(n(i)).unwrap().status == NodeStatus::Active
                    && next.node(n(i)).unwrap().status == NodeStatus::Failed;
                assert!(
                    !declared || !state.heartbeat_received(n(i)),
                    "{event} declared n{i} failed while it heartbeats"
                );
            }
            let n1_declared = state.node(n(1)).unwrap().status == NodeStatus::Active
                && next.node(n(1)).unwrap().status == NodeStatus::Failed;
            if n1_declared && state.heartbeat_received(n(1)) {
                n1_failed += 1;
            }
            if seen.insert(next.clone()) {
                frontier.push(next);
            }
        }
    }
    assert!(n1_failed > 0);
    eprintln!("{} states, n1 Failed in {n1_failed}", seen.len());
}

/// EventualFailureDeclaration(n3)'s premise LooksCrashed(n3), and the fair steps that end it:
/// n3 silent and cut off from n1 and n2, which reach each other. n1 detects n3, then adopts the
/// current configuration (registry v2: SyncViews(n1, n1), whose view lists n3), and its vote
/// survives the synchronisation; n2 detects n3 too, and the declaration is enabled. The model
/// checker decides the property itself under weak fairness of DetectFailure and MarkNodeFailed
/// (`fair_events`).
#[test]
fn a_node_that_looks_crashed_to_a_connected_majority_is_declared_failed() {
    let trapped = |s: &State, i| Liveness::EventualFailureDeclaration(n(i)).trapped(s);
    let cut_off = then(&THREE_ACTIVE, &[partition(1, 3), partition(2, 3), RESET]);
    let states = run_checked(fixed(3), &then(&cut_off, &[sync(1, 1), fail(3)]));
    let synced = &states[THREE_ACTIVE.len() + 4];
    let n1 = synced.node(n(1)).unwrap();
    assert_eq!(n1.view, nodes(&[1, 2, 3]));
    let s = &states[THREE_ACTIVE.len() + 3];
    assert!(s.looks_crashed(n(3)) && trapped(s, 3));
    assert!(
        !trapped(s, 1) && !trapped(s, 2),
        "n1 and n2 reach each other"
    );
    // Registry v2: n3 is silent, so it is declared on the registry's evidence; no vote against
    // it is cast.
    assert_eq!(
        refuse(s, detect(1, 3)),
        refusal(ActionName::DetectFailure, Guard::Silent { node: n(3) })
    );
    // Still trapped while a member synchronises; no longer once n3 is Failed.
    for state in &states[THREE_ACTIVE.len() + 3..states.len() - 1] {
        assert!(trapped(state, 3));
    }
    assert!(!trapped(states.last().unwrap(), 3));
    // Not trapped: n3 sent a heartbeat (it is alive), or the majority is split, or n3 reaches a
    // peer.
    assert!(!trapped(&accept(s, heartbeat(3)).0, 3));
    assert!(!trapped(&accept(s, partition(1, 2)).0, 3));
    assert!(!trapped(&accept(s, heal(1, 3)).0, 3));
    // A minority cut off is not the premise either: n1 and n2 cut off from each other and n3.
    let s = run(fixed(3), &then(&cut_off, &[partition(1, 2)]));
    assert!((1..=3).all(|i| !trapped(&s, i)));
    // One instance per node, and the fairness it needs.
    let all = Liveness::all(3, &[]);
    for i in 1..=3 {
        assert!(all.contains(&Liveness::EventualFailureDeclaration(n(i))));
    }
    let fair = Liveness::EventualFailureDeclaration(n(3)).fairness(3, &[], 3);
    assert!(fair.contains(&detect(1, 3)) && fair.contains(&detect(2, 3)));
    assert!(fair.contains(&fail(3)));
    assert!(!fair.contains(&detect(3, 3)) && !fair.contains(&detect(3, 1)));
    // The other properties keep the spec's Fairness, which has neither action.
    let spec = invariants::fair_events(3, &[], 3);
    assert_eq!(Liveness::EventualStepDown(n(3)).fairness(3, &[], 3), spec);
    assert!(!spec.contains(&detect(2, 3)) && !spec.contains(&fail(3)));
}

/// Five nodes: no minority gets anyone declared failed. {n1, n2} | {n3, n4, n5}: n1 and n2 both
/// detect n3 (two votes of the three needed); n3, n4 and n5 declare n1 failed.
#[test]
fn a_minority_cannot_declare_anyone_failed_but_a_majority_can() {
    let mut split = all_active(5);
    for a in [1, 2] {
        for b in [3, 4, 5] {
            split.push(partition(a, b));
        }
    }
    let path = then(&split, &[detect(1, 3), detect(2, 3)]);
    let states = run_checked(fixed(5), &path);
    let s = states.last().unwrap();
    assert_eq!(
        step(s, &fail(3)).unwrap_err().to_string(),
        "MarkNodeFailed: n3 still heartbeats and has 2 recorded detections by peers that cannot \
         reach it (n1, n2); a majority of 5 members needs 3"
    );
    let path = then(&path, &[detect(3, 1), detect(4, 1), detect(5, 1), fail(1)]);
    let states = run_checked(fixed(5), &path);
    assert_eq!(
        states.last().unwrap().node(n(1)).unwrap().status,
        NodeStatus::Failed
    );
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
