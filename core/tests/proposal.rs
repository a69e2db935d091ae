//! `execute`, the transaction every store shares: the heartbeat round is mandatory where the
//! protocol's safety rests on it (DetectFailure, ResetHeartbeats), and checked when carried.

use membership_core::testing::{all_active, detect, fixed, heartbeat, partition, run, RESET};
use membership_core::{
    execute, Action, ActionName, Event, Key, Meta, MetaKey, NodeId, Proposal, ProposalError,
    ProposalId, State,
};

/// Three Active nodes with n1 and n3 partitioned, n3 heartbeating in the new round:
/// DetectFailure(n1, n3) and ResetHeartbeats are enabled in the reducer; the metadata's round is
/// 4.
fn world() -> (State, Meta) {
    let mut events = all_active(3);
    events.push(partition(1, 3));
    events.push(RESET);
    events.push(heartbeat(3));
    let state = run(fixed(3), &events);
    let meta = Meta {
        round: 4,
        ..Meta::default()
    };
    (state, meta)
}

fn proposal(event: Event, round: Option<u64>) -> Proposal {
    Proposal {
        id: ProposalId {
            node: membership_core::NodeId(1),
            incarnation: 0,
            seq: 1,
        },
        action: Action::Step(event),
        round,
    }
}

#[test]
fn detect_failure_and_reset_heartbeats_without_a_round_are_refused_and_write_nothing() {
    let (state, meta) = world();
    for (event, action) in [
        (detect(1, 3), ActionName::DetectFailure),
        (RESET, ActionName::ResetHeartbeats),
    ] {
        assert_eq!(
            execute(&state, &meta, &proposal(event, None)).map(|c| c.events),
            Err(ProposalError::RoundRequired { action }),
            "{event} without a round"
        );
        assert_eq!(
            ProposalError::RoundRequired { action }.to_string(),
            format!("{action} must carry the heartbeat round its proposer waited on")
        );
    }
}

#[test]
fn a_round_that_is_no_longer_open_is_refused() {
    let (state, meta) = world();
    for event in [detect(1, 3), RESET] {
        assert_eq!(
            execute(&state, &meta, &proposal(event, Some(3))).map(|c| c.events),
            Err(ProposalError::StaleRound {
                round: 3,
                current: 4
            }),
            "{event} with round 3"
        );
    }
}

#[test]
fn the_open_round_is_accepted_read_and_a_reset_opens_the_next() {
    let (state, meta) = world();
    let detected = execute(&state, &meta, &proposal(detect(1, 3), Some(4))).unwrap();
    assert_eq!(detected.events, vec![detect(1, 3)]);
    assert!(detected.meta_reads.contains(&MetaKey::Round));
    assert!(!detected.meta_writes.contains(&MetaKey::Round));
    assert_eq!(detected.meta.round, 4);

    let reset = execute(&state, &meta, &proposal(RESET, Some(4))).unwrap();
    assert_eq!(reset.events, vec![RESET]);
    assert!(reset.meta_writes.contains(&MetaKey::Round));
    assert_eq!(reset.meta.round, 5);
}

#[test]
fn other_actions_need_no_round() {
    let (state, meta) = world();
    let beat = execute(&state, &meta, &proposal(heartbeat(1), None)).unwrap();
    assert_eq!(beat.events, vec![heartbeat(1)]);
    assert!(!beat.meta_reads.contains(&MetaKey::Round));
    assert_eq!(
        Action::MigrateBatch { term: 1, max: 1 }.round_required(),
        None
    );
    assert_eq!(Action::Step(heartbeat(2)).round_required(), None);
    assert_eq!(
        Action::Step(detect(1, 3)).round_required(),
        Some(ActionName::DetectFailure)
    );
}

fn proposal_by(node: u16, event: Event, round: Option<u64>) -> Proposal {
    Proposal {
        id: ProposalId {
            node: NodeId(node),
            incarnation: 0,
            seq: 1,
        },
        ..proposal(event, round)
    }
}

/// Registry v2: a node's own heartbeat writes its own key, naming the round it ran at: it
/// compares only that key and its slot (no record, no round), writes no proposal record, and
/// sets the flag exactly when its key names the open round.
#[test]
fn an_own_heartbeat_compares_only_its_slot_and_names_the_open_round() {
    let (state, meta) = world();
    let beat = execute(&state, &meta, &proposal_by(2, heartbeat(2), None)).unwrap();
    assert!(beat.own_heartbeat);
    assert_eq!(
        beat.meta_reads.iter().copied().collect::<Vec<_>>(),
        vec![MetaKey::Slot(NodeId(2))]
    );
    assert_eq!(
        beat.reads.iter().copied().collect::<Vec<_>>(),
        vec![Key::Heartbeat(NodeId(2))]
    );
    assert!(beat.meta_writes.is_empty(), "{:?}", beat.meta_writes);
    assert_eq!(beat.delta.keys(&state), vec![Key::Heartbeat(NodeId(2))]);
    assert_eq!(beat.meta.heartbeat_round(NodeId(2)), Some(4));
    assert!(beat.meta.heartbeat_current(NodeId(2)));
    assert!(beat.next.heartbeat_received(NodeId(2)));
    // Not remembered: a retry of the same proposal runs again (idempotent), it is not answered
    // from a record; in the same round it finds its key already naming the round: it writes
    // nothing, and still compares its key and its slot.
    let again = execute(&beat.next, &beat.meta, &proposal_by(2, heartbeat(2), None)).unwrap();
    assert!(!again.duplicate);
    assert!(again.delta.keys(&beat.next).is_empty());
    assert_eq!(again.meta.heartbeat_round(NodeId(2)), Some(4));
    assert!(again.reads.contains(&Key::Heartbeat(NodeId(2))));
    assert_eq!(again.meta.heartbeat_round(NodeId(2)), Some(4));
}

#[test]
fn a_heartbeat_for_another_node_is_refused() {
    let (state, meta) = world();
    let error = execute(&state, &meta, &proposal_by(1, heartbeat(2), None)).unwrap_err();
    assert_eq!(
        error,
        ProposalError::ForeignHeartbeat {
            proposer: NodeId(1),
            node: NodeId(2)
        }
    );
    assert_eq!(
        error.to_string(),
        "n1 cannot heartbeat for n2: a node's heartbeat is its own"
    );
}

/// MarkNodeFailed on the evidence of an earlier round: accepted while the node's latest
/// heartbeat names a round before it, refused once it names that round or a later one, and a
/// round not yet open is refused.
#[test]
fn a_declaration_may_rest_on_an_earlier_round_the_node_was_silent_through() {
    let (state, mut meta) = world();
    // n2 never heartbeated in round 4 (its flag is clear); its latest heartbeat named round 2.
    meta.heartbeat_rounds.insert(NodeId(2), 2);
    meta.heartbeat_rounds.insert(NodeId(3), 4);
    let declare = |meta: &Meta, round: u64| {
        execute(
            &state,
            meta,
            &proposal(Event::MarkNodeFailed { node: NodeId(2) }, Some(round)),
        )
    };
    let declared = declare(&meta, 3).unwrap();
    assert_eq!(
        declared.events,
        vec![Event::MarkNodeFailed { node: NodeId(2) }]
    );
    // The declared node's slot is rewritten: its heartbeats in flight conflict. It is
    // read too: a claim of the slot committed meanwhile conflicts, never overwritten.
    assert!(declared.meta_writes.contains(&MetaKey::Slot(NodeId(2))));
    assert!(declared.meta_reads.contains(&MetaKey::Slot(NodeId(2))));
    assert!(declared.reads.contains(&Key::Heartbeat(NodeId(2))));
    assert_eq!(
        declare(&meta, 2).map(|c| c.events),
        Err(ProposalError::HeartbeatSince {
            node: NodeId(2),
            heartbeat_round: 2,
            round: 2
        })
    );
    assert_eq!(
        declare(&meta, 5).map(|c| c.events),
        Err(ProposalError::StaleRound {
            round: 5,
            current: 4
        })
    );
    // Only a declaration may rest on an earlier round.
    assert_eq!(
        execute(&state, &meta, &proposal(detect(1, 3), Some(3))).map(|c| c.events),
        Err(ProposalError::StaleRound {
            round: 3,
            current: 4
        })
    );
}

/// The stored form's two helpers: the whole set of flags is exactly the nodes whose latest
/// heartbeat names the open round, and only a heartbeat that ran at a closed round is a stutter.
#[test]
fn the_stored_flags_and_the_closed_round_heartbeat() {
    let mut meta = Meta {
        round: 4,
        ..Meta::default()
    };
    meta.heartbeat_rounds.insert(NodeId(1), 4);
    meta.heartbeat_rounds.insert(NodeId(2), 3);
    meta.heartbeat_rounds.insert(NodeId(3), 4);
    assert_eq!(
        meta.heartbeat_flags().iter().collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(3)]
    );
    assert!(!meta.heartbeat_current(NodeId(2)) && !meta.heartbeat_current(NodeId(4)));
    let beat = [heartbeat(2)];
    assert!(membership_core::heartbeat_landed_closed(&beat, 3, 4));
    assert!(!membership_core::heartbeat_landed_closed(&beat, 4, 4));
    assert!(!membership_core::heartbeat_landed_closed(&[RESET], 3, 4));
    assert!(!membership_core::heartbeat_landed_closed(
        &[heartbeat(2), RESET],
        3,
        4
    ));
}

/// Placement batches (issue 19): one transaction places each actor of the batch in order,
/// skipping the ones the reducer refuses, and reads what decided each.
#[allow(clippy::unwrap_used, reason = "test helpers")]
mod place_batch {
    use super::*;
    use membership_core::testing::{accept, place, THREE_ACTIVE};
    use membership_core::{step, ActorBatch, ActorId, Config, Effect, Guard, PLACE_BATCH_MAX};
    use proptest::prelude::*;

    fn three(actors_max: u64) -> State {
        run(
            Config::fixed(3)
                .unwrap()
                .with_actors_max(actors_max)
                .unwrap(),
            &THREE_ACTIVE,
        )
    }

    fn batch(ids: &[u64]) -> Proposal {
        let actors: Vec<ActorId> = ids.iter().copied().map(ActorId).collect();
        Proposal {
            id: ProposalId {
                node: NodeId(1),
                incarnation: 0,
                seq: 7,
            },
            action: Action::PlaceBatch {
                actors: ActorBatch::new(&actors).unwrap(),
            },
            round: None,
        }
    }

    #[test]
    fn a_batch_places_each_actor_on_a_least_loaded_member_with_fresh_epochs() {
        let s = three(10);
        let commit = execute(&s, &Meta::default(), &batch(&[1, 2, 3])).unwrap();
        // Each on a member of least load on the state the earlier ones left (ties broken by
        // the strategy's hash of the actor): one per member.
        assert_eq!(
            commit.effects,
            vec![
                Effect::ActorActivated {
                    actor: ActorId(1),
                    node: NodeId(2),
                    epoch: 1
                },
                Effect::ActorActivated {
                    actor: ActorId(2),
                    node: NodeId(1),
                    epoch: 2
                },
                Effect::ActorActivated {
                    actor: ActorId(3),
                    node: NodeId(3),
                    epoch: 3
                },
            ]
        );
        assert_eq!(commit.events, vec![place(1), place(2), place(3)]);
        // The members, their loads, the three placements, the count and the epoch counter:
        // no node record.
        assert!(commit.reads.contains(&Key::Members));
        assert!(!commit.reads.iter().any(|k| matches!(k, Key::Node(_))));
        assert_eq!(commit.next.placements().len(), 3);
        assert!(commit
            .meta_writes
            .contains(&MetaKey::Applied(batch(&[1]).id)));
    }

    #[test]
    fn an_actor_already_placed_is_skipped_and_its_placement_read() {
        let s = accept(&three(10), place(2)).0;
        let commit = execute(&s, &Meta::default(), &batch(&[1, 2, 3])).unwrap();
        assert_eq!(commit.events, vec![place(1), place(3)]);
        assert_eq!(
            commit.effects,
            vec![
                Effect::ActorActivated {
                    actor: ActorId(1),
                    node: NodeId(1),
                    epoch: 2
                },
                Effect::ActorActivated {
                    actor: ActorId(3),
                    node: NodeId(3),
                    epoch: 3
                },
            ]
        );
        assert!(commit.reads.contains(&Key::Actor(ActorId(2))));
        assert_eq!(commit.next.placement(ActorId(2)), s.placement(ActorId(2)));
    }

    #[test]
    fn a_batch_that_places_nothing_is_refused_with_its_first_refusal() {
        let s = accept(&three(1), place(9)).0;
        let first = batch(&[9, 1]);
        match execute(&s, &Meta::default(), &first) {
            Err(ProposalError::Refused(r)) => {
                assert!(matches!(r.guard, Guard::AlreadyPlaced { .. }), "{r}")
            }
            other => panic!("{other:?}"),
        }
        // The registry fills up within a batch: the rest is skipped, not refused.
        let commit = execute(&three(2), &Meta::default(), &batch(&[1, 2, 3])).unwrap();
        assert_eq!(commit.events, vec![place(1), place(2)]);
    }

    #[test]
    fn a_batch_is_one_to_the_maximum_distinct_actors() {
        assert!(ActorBatch::new(&[]).is_err());
        assert!(ActorBatch::new(&[ActorId(1), ActorId(1)])
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let too_many: Vec<ActorId> = (0..=PLACE_BATCH_MAX as u64).map(ActorId).collect();
        assert!(ActorBatch::new(&too_many).is_err());
        let full = ActorBatch::new(&too_many[..PLACE_BATCH_MAX]).unwrap();
        assert_eq!(full.actors(), &too_many[..PLACE_BATCH_MAX]);
        assert_eq!(full.truncated(3).actors(), &too_many[..3]);
        assert_eq!(full.truncated(0).actors(), &too_many[..1]);
        // Serialized as a list, and a list that is no batch does not decode.
        let text = serde_json::to_string(&full.truncated(2)).unwrap();
        assert_eq!(text, "[0,1]");
        assert!(serde_json::from_str::<ActorBatch>("[]").is_err());
        assert!(serde_json::from_str::<ActorBatch>("[4,4]").is_err());
    }

    proptest! {
        /// A batch commits exactly what its accepted PlaceActor steps give one after another,
        /// and is refused only when each of them is.
        #[test]
        fn a_batch_is_the_sequence_of_its_accepted_placements(
            actors_max in 1u64..6,
            placed in proptest::collection::btree_set(1u64..12, 0..4),
            ids in proptest::collection::btree_set(1u64..12, 1..8),
        ) {
            // Room for at least what is placed already, often for little more.
            let mut s = three(actors_max.max(placed.len() as u64));
            for &a in &placed {
                s = accept(&s, place(a)).0;
            }
            let list: Vec<u64> = ids.into_iter().collect();
            let mut expected = s.clone();
            let mut events = Vec::new();
            for &a in &list {
                if let Ok((next, _)) = step(&expected, &place(a)) {
                    expected = next;
                    events.push(place(a));
                }
            }
            match execute(&s, &Meta::default(), &batch(&list)) {
                Ok(commit) => {
                    prop_assert_eq!(&commit.next, &expected);
                    prop_assert_eq!(&commit.events, &events);
                    prop_assert_eq!(commit.effects.len(), events.len());
                    prop_assert_eq!(s.apply(&commit.delta).unwrap(), expected);
                }
                Err(ProposalError::Refused(_)) => prop_assert!(events.is_empty()),
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
