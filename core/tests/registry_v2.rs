//! Registry v2 (issue 17): quorums over the current members, liveness evidence that is the node's
//! own heartbeat, votes that expire with their round. Each "Why" of the issue is a test here with
//! exact outcomes, with its mirror image (what a minority still cannot do), and each new mutant is
//! shown to break the rule it targets and to be flagged by the property that guards it.

use membership_core::checking::Mutant;
use membership_core::invariants::{self, Liveness, TransitionInvariant};
use membership_core::testing::*;
use membership_core::{ActionName, Effect, Event, Guard, NodeStatus, State};
use NodeStatus::{Active, Failed, Joining};

/// `count` nodes Active, then `leavers` leave gracefully (NodeLeave, NodeLeaveComplete).
fn scaled_down(count: u16, leavers: &[u16]) -> Vec<Event> {
    let mut events = all_active(count);
    for &i in leavers {
        events.push(leave(i));
        events.push(leave_complete(i));
    }
    events
}

/// Runs `events` checking every invariant on every step (the test kit's `run_checked`); the last
/// state.
fn checked(config: membership_core::Config, events: &[Event]) -> State {
    // `run_checked` returns the initial state first, so the vector is never empty.
    let mut states = run_checked(config, events);
    states.remove(states.len() - 1)
}

/// Why 1: five nodes, n4 and n5 leave gracefully, n3 crashes (commits no heartbeat in the new
/// round). n1 and n2 are a majority of the three members left: n3 is declared failed on the
/// registry's own evidence, and n1 stays a valid primary (before registry v2: refused for good,
/// "a majority of 5 nodes needs 3", and no primary could ever be valid again). One
/// configuration: the two leaves and the declaration each number a configuration (6, 7, 8), and
/// n1 and n2 adopt {n1, n2}#8 by their own SyncViews.
#[test]
fn scale_down_then_crash_declares_the_crashed_node_and_keeps_a_primary() {
    let events = then(
        &scaled_down(5, &[4, 5]),
        &[RESET, heartbeat(1), heartbeat(2)],
    );
    let before = checked(fixed(5), &events);
    assert_eq!(before.active(), nodes(&[1, 2, 3]));
    assert_eq!(before.quorum_size(), 3);
    assert_eq!(before.majority(), 2);
    assert_eq!(before.valid_primaries(), nodes(&[1]));
    assert_eq!(before.view_counter(), 7);
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) },
        ]
    );
    assert_eq!(after.active(), nodes(&[1, 2]));
    assert_eq!(after.valid_primaries(), nodes(&[1]));
    assert_eq!(after.view_counter(), 8);
    invariants::check_transition(&before, &after).unwrap();
    invariants::check_state(&after).unwrap();
    let (synced, effects) = accept(&after, sync(1, 1));
    assert_eq!(effects, vec![view_changed(1, &[1, 2], 8)]);
    let (synced, effects) = accept(&synced, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[1, 2], 8)]);
    assert!(synced.is_converged());
    assert_eq!(synced.valid_primaries(), nodes(&[1]));
    // The same crash seen as a partition, with n3 still heartbeating (a degraded n3): the votes
    // of n1 and n2 are a majority of the three members.
    let cut = then(
        &scaled_down(5, &[4, 5]),
        &[
            partition(1, 3),
            partition(2, 3),
            detect(1, 3),
            detect(2, 3),
            heartbeat(3),
        ],
    );
    let before = checked(fixed(5), &cut);
    assert!(before.heartbeat_received(n(3)));
    assert_eq!(before.failure_votes(n(3)), nodes(&[1, 2]));
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) }
        ]
    );
    assert_eq!(after.valid_primaries(), nodes(&[1]));
}

/// Why 1, second case: a registry with room for nine nodes of which three run. A crash is
/// declared (on the evidence, or with two votes of the three members), and a primary is elected
/// after the old one is lost. One configuration: the declaration numbers {n2, n3} 4, which n2
/// and n3 adopt by their own SyncViews.
#[test]
fn three_running_of_nine_slots_declare_a_crash_and_elect() {
    let running = all_active(3);
    let s = checked(
        fixed(9),
        &then(
            &running,
            &[
                partition(1, 2),
                partition(1, 3),
                RESET,
                heartbeat(2),
                heartbeat(3),
            ],
        ),
    );
    assert_eq!(s.quorum_size(), 3);
    // n1, the primary, is cut off and silent: declared; n2 is elected by a majority of two.
    let (s, effects) = accept(&s, fail(1));
    assert_eq!(
        effects,
        vec![
            status_changed(1, Active, Failed),
            Effect::Fenced { node: n(1) },
            Effect::SteppedDown {
                node: n(1),
                term: 1,
                reason: membership_core::StepDownReason::Failed
            },
        ]
    );
    assert_eq!(s.view_counter(), 4);
    let (s, effects) = accept(&s, sync(2, 2));
    assert_eq!(effects, vec![view_changed(2, &[2, 3], 4)]);
    let (s, effects) = accept(&s, sync(3, 3));
    assert_eq!(effects, vec![view_changed(3, &[2, 3], 4)]);
    let (s, effects) = accept(&s, elect(2));
    assert_eq!(
        effects,
        vec![Effect::BecamePrimary {
            node: n(2),
            term: 2
        }]
    );
    assert_eq!(s.valid_primaries(), nodes(&[2]));
}

/// The mirror images of Why 1: a minority of the members can neither declare a heartbeating
/// member failed nor elect. Five members split {n1, n2} | {n3, n4, n5}; after n4 and n5 leave,
/// {n1, n2} | {n3} the other way round: n3 alone is the minority.
#[test]
fn a_minority_of_the_members_cannot_declare_nor_elect() {
    let mut split = all_active(5);
    for a in [1, 2] {
        for b in [3, 4, 5] {
            split.push(partition(a, b));
        }
    }
    let split = then(
        &split,
        &[
            RESET,
            heartbeat(1),
            heartbeat(2),
            heartbeat(3),
            heartbeat(4),
            heartbeat(5),
            detect(1, 3),
            detect(2, 3),
            step_down(1),
        ],
    );
    let s = checked(fixed(5), &split);
    assert_eq!(
        refuse(&s, fail(3)),
        refusal(
            ActionName::MarkNodeFailed,
            Guard::NoFailureQuorum {
                node: n(3),
                votes: nodes(&[1, 2]),
                needed: 3,
                member_count: 5,
            }
        )
    );
    assert_eq!(
        refuse(&s, elect(2)),
        refusal(
            ActionName::ElectPrimary,
            Guard::NoMajority {
                node: n(2),
                reachable: 2,
                member_count: 5,
            }
        )
    );
    let (_, effects) = accept(&s, elect(3));
    assert_eq!(
        effects,
        vec![Effect::BecamePrimary {
            node: n(3),
            term: 2
        }]
    );

    // Three members {n1, n2} | {n3}, all heartbeating: n3 cannot vote n1 out, nor elect.
    let small = then(
        &scaled_down(5, &[4, 5]),
        &[
            partition(1, 3),
            partition(2, 3),
            RESET,
            heartbeat(1),
            heartbeat(2),
            heartbeat(3),
            detect(3, 1),
        ],
    );
    let s = checked(fixed(5), &small);
    assert_eq!(
        refuse(&s, fail(1)).guard,
        Guard::NoFailureQuorum {
            node: n(1),
            votes: nodes(&[3]),
            needed: 2,
            member_count: 3,
        }
    );
    assert_eq!(
        refuse(&s, elect(3)).guard,
        Guard::NoMajority {
            node: n(3),
            reachable: 1,
            member_count: 3,
        }
    );
}

/// Why 2: n3 loses only its link to the store. Its probes still answer (nothing is partitioned),
/// so nobody votes; but it commits no heartbeat in the new round, and the peers' heartbeats do
/// not set its flag: it is declared on the registry's evidence. A second node (n2) that crashes
/// meanwhile is declared the same way, and n1 carries on as the primary of the one member left.
/// Under the mutant `heartbeat-by-peer` (the v1 rule) n1's heartbeat sets n3's flag and n3 can
/// never be declared; OwnHeartbeat flags that step.
#[test]
fn a_node_cut_off_from_the_store_only_is_declared_and_so_is_a_second_crash() {
    let events = then(&all_active(3), &[RESET, heartbeat(1)]);
    let s = checked(fixed(3), &events);
    assert!(s.can_communicate(n(1), n(3)) && s.can_communicate(n(2), n(3)));
    assert!(!s.heartbeat_received(n(3)) && !s.heartbeat_received(n(2)));
    let (s, effects) = accept(&s, fail(3));
    assert_eq!(
        effects[..2],
        [
            status_changed(3, Active, Failed),
            Effect::Fenced { node: n(3) }
        ]
    );
    let (s, effects) = accept(&s, fail(2));
    assert_eq!(
        effects[..2],
        [
            status_changed(2, Active, Failed),
            Effect::Fenced { node: n(2) }
        ]
    );
    assert_eq!(s.active(), nodes(&[1]));
    assert_eq!(s.valid_primaries(), nodes(&[1]));

    let peer = mutant(3, Mutant::HeartbeatByPeer);
    let before = run(peer, &then(&all_active(3), &[RESET]));
    let (after, _) = accept(&before, heartbeat(1));
    assert!(
        after.heartbeat_received(n(3)),
        "the v1 rule: a peer's heartbeat sets n3's flag"
    );
    assert_eq!(
        refuse(&after, fail(3)).guard,
        Guard::Undetected { node: n(3) }
    );
    let violation = invariants::own_heartbeat(&before, &after).unwrap_err();
    assert_eq!(violation.invariant, TransitionInvariant::OwnHeartbeat);
    assert_eq!(
        violation.detail,
        "one step set the heartbeat flags of n1 and n2"
    );
}

/// Why 3: stale votes. Five members; in one round n1 and n2 vote against n5 (cut off from them).
/// A new round opens and every node heartbeats, n5 included; n3 is cut off from n5 and votes.
/// Only n3's vote is of this round: n5 is not declared. Under the mutant `vote-survives-round`
/// the votes of the old round still count, n5 is declared while it heartbeats, and
/// VotesExpireWithRound flags the round that kept them.
#[test]
fn votes_expire_with_their_round() {
    let round_one = then(
        &all_active(5),
        &[partition(1, 5), partition(2, 5), detect(1, 5), detect(2, 5)],
    );
    let round_two = [
        RESET,
        heartbeat(1),
        heartbeat(2),
        heartbeat(3),
        heartbeat(4),
        heartbeat(5),
        partition(3, 5),
        detect(3, 5),
    ];
    let s = checked(fixed(5), &then(&round_one, &round_two));
    assert_eq!(s.failure_votes(n(5)), nodes(&[3]));
    assert_eq!(
        refuse(&s, fail(5)).guard,
        Guard::NoFailureQuorum {
            node: n(5),
            votes: nodes(&[3]),
            needed: 3,
            member_count: 5,
        }
    );

    let stale = mutant(5, Mutant::VoteSurvivesRound);
    let before_reset = run(stale, &then(&round_one, &[heartbeat(5)]));
    let (after_reset, _) = accept(&before_reset, RESET);
    let violation = invariants::votes_expire_with_round(&before_reset, &after_reset).unwrap_err();
    assert_eq!(
        violation.invariant,
        TransitionInvariant::VotesExpireWithRound
    );
    let s = run(stale, &then(&round_one, &round_two));
    assert!(s.heartbeat_received(n(5)));
    assert_eq!(s.failure_votes(n(5)), nodes(&[1, 2, 3]));
    let (after, _) = accept(&s, fail(5));
    assert_eq!(after.node(n(5)).map(|r| r.status), Some(Failed));
}

/// A node's own completed join is its heartbeat in the current round: a node that joins in a
/// round already old is not declared failed before its first heartbeat.
#[test]
fn a_completed_join_is_the_joiners_heartbeat() {
    let s = run(fixed(3), &[join(1), join(2), RESET]);
    assert!(!s.heartbeat_received(n(2)));
    let (s, _) = accept(&s, join_complete(2));
    assert!(s.heartbeat_received(n(2)));
    assert_eq!(refuse(&s, fail(2)).guard, Guard::Undetected { node: n(2) });
}

/// The mutant `quorum-over-slots`: majorities of the three configured slots. After n2 and n3
/// leave, n1 is one member of one (fixed: a valid primary), but one slot of three under the
/// mutant: it steps down and can never be elected again, which EventualElection's premise
/// (Leaderless) shows.
#[test]
fn quorum_over_slots_leaves_a_scaled_down_cluster_leaderless() {
    let events = scaled_down(3, &[2, 3]);
    let s = run(fixed(3), &events);
    assert_eq!(s.valid_primaries(), nodes(&[1]));
    assert!(!Liveness::EventualElection.trapped(&s));

    let slots = mutant(3, Mutant::QuorumOverSlots);
    let s = run(slots, &then(&events, &[step_down(1)]));
    assert!(s.valid_primaries().is_empty());
    assert!(Liveness::EventualElection.trapped(&s));
    assert_eq!(
        refuse(&s, elect(1)).guard,
        Guard::NoMajority {
            node: n(1),
            reachable: 1,
            member_count: 3,
        }
    );
}

/// A joiner bootstraps a cluster with no member left (registry v2): n1, the only member, leaves
/// while n2 is still joining. Fixed: n2's NodeJoinComplete bootstraps (Active, primary with the
/// next term, view {n2} with the next view number, 3: n1's NodeLeave numbered the empty
/// configuration 2; its heartbeat this round). Reference: refused, no Active node to reach.
#[test]
fn a_joiner_bootstraps_a_cluster_with_no_member_left() {
    let events = [join(1), join(2), leave(1), leave_complete(1)];
    let s = checked(fixed(3), &events);
    assert!(s.active().is_empty());
    let (after, effects) = accept(&s, join_complete(2));
    assert_eq!(
        effects,
        vec![
            status_changed(2, Joining, Active),
            Effect::BecamePrimary {
                node: n(2),
                term: 2
            },
            view_changed(2, &[2], 3),
        ]
    );
    assert_eq!(after.view_counter(), 3);
    assert!(after.heartbeat_received(n(2)));
    assert_eq!(after.valid_primaries(), nodes(&[2]));
    invariants::check_transition(&s, &after).unwrap();
    let s = run(reference(3, 5), &events);
    assert_eq!(
        refuse(&s, join_complete(2)).guard,
        Guard::NoReachableActivePeer { node: n(2) }
    );
}
