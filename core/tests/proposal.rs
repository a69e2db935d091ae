//! `execute`, the transaction every store shares: the heartbeat round is mandatory where the
//! protocol's safety rests on it (DetectFailure, ResetHeartbeats), and checked when carried.

use membership_core::testing::{all_active, detect, fixed, heartbeat, partition, run, RESET};
use membership_core::{
    execute, Action, ActionName, Event, Meta, MetaKey, Proposal, ProposalError, ProposalId, State,
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
    let beat = execute(&state, &meta, &proposal(heartbeat(2), None)).unwrap();
    assert_eq!(beat.events, vec![heartbeat(2)]);
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
