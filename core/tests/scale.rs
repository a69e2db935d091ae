//! Scale: 100,000 actors on one node of a five-node cluster, failed over in one MarkNodeFailed
//! step and drained with `migrate_batch` in batches of MIGRATION_BATCH_MAX. No timing
//! assertions; `cargo test --test scale -- --nocapture` prints how long each phase took.

use membership_core::invariants;
#[cfg(test)]
use membership_core::testing::*;
use membership_core::{
    migrate_batch, Effect, LeastLoaded, MigrationReason, NodeStatus, State, MIGRATION_BATCH_MAX,
};
use std::collections::BTreeSet;
use std::time::Instant;

const ACTORS: u64 = 100_000;

#[test]
fn one_hundred_thousand_actors_fail_over_in_one_step_and_drain_in_batches() {
    let clock = Instant::now();
    let cluster = run(fixed(5), &all_active(5));
    // Every actor placed on n5 by PlaceActor steps (through step_with and a strategy that
    // answers n5), with epochs 1..=ACTORS.
    let placed = place_on(&cluster, 5, 1..=ACTORS);
    assert_eq!(placed.load(n(5)), ACTORS);
    assert_eq!(placed.epoch_counter(), ACTORS);
    eprintln!("placed {ACTORS} actors in {:?}", clock.elapsed());

    let clock = Instant::now();
    // n1, n2 and n3 (a majority of five) cannot reach n5 and vote; n4 still reaches it.
    let before = apply(&placed, &voted_out(5, &[1, 2, 3]));
    assert!(before.queue().is_empty());
    let (failed, effects) = accept(&before, fail(5));
    eprintln!("MarkNodeFailed(n5) in {:?}", clock.elapsed());
    assert_eq!(
        effects,
        vec![
            Effect::StatusChanged {
                node: n(5),
                from: NodeStatus::Active,
                to: NodeStatus::Failed
            },
            Effect::Fenced { node: n(5) },
            Effect::MigrationsQueued {
                from: n(5),
                reason: MigrationReason::NodeFailed,
                actors: ACTORS
            },
        ]
    );
    // Registry v2 (one configuration): no member's view changes; the configuration without n5
    // takes the next number.
    assert_eq!(failed.view_counter(), before.view_counter() + 1);
    for i in 1..=4 {
        let (was, is) = (before.node(n(i)).unwrap(), failed.node(n(i)).unwrap());
        assert_eq!((&is.view, is.view_number), (&was.view, was.view_number));
    }
    assert_eq!(failed.queue().len(), 100_000);
    assert!(failed
        .queue()
        .iter()
        .all(|(_, e)| e.from == n(5) && e.reason == MigrationReason::NodeFailed));
    invariants::check_state(&failed).unwrap();
    invariants::check_transition(&before, &failed).unwrap();

    let clock = Instant::now();
    let mut state: State = failed.clone();
    let mut batches = 0;
    // Bounded: 25 batches are needed; a batch that moved nothing would be an error.
    while !state.queue().is_empty() && batches < 100 {
        let queued = state.queue().len();
        // The first batch asks for everything: one batch moves at most MIGRATION_BATCH_MAX.
        let max = if batches == 0 {
            usize::MAX
        } else {
            MIGRATION_BATCH_MAX
        };
        let (next, effects, applied) = migrate_batch(&state, 1, max, &LeastLoaded).unwrap();
        assert_eq!(applied.len(), queued.min(MIGRATION_BATCH_MAX));
        assert_eq!(effects.len(), 2 * applied.len());
        assert_eq!(next.queue().len(), queued - applied.len());
        state = next;
        batches += 1;
    }
    eprintln!("drained in {batches} batches in {:?}", clock.elapsed());
    assert_eq!(batches, 25);
    assert!(state.queue().is_empty());

    let loads: Vec<u64> = (1..=4).map(|i| state.load(n(i))).collect();
    assert_eq!(loads.iter().sum::<u64>(), ACTORS);
    let (max, min) = (loads.iter().max().unwrap(), loads.iter().min().unwrap());
    assert!(max - min <= 1, "loads {loads:?}");
    assert_eq!(state.load(n(5)), 0);
    // Every actor has a fresh epoch: above every epoch issued before the failure, and all
    // distinct (one per activation).
    let epochs: BTreeSet<u64> = state.placements().values().map(|p| p.epoch).collect();
    assert_eq!(epochs.len(), 100_000);
    assert!(epochs.iter().all(|&e| e > ACTORS));
    assert_eq!(state.epoch_counter(), 2 * ACTORS);
    assert!(state
        .placements()
        .values()
        .all(|p| state.node(p.node).unwrap().status == NodeStatus::Active));
    invariants::check_state(&state).unwrap();
    invariants::check_transition(&failed, &state).unwrap();
}

/// `NODES_MAX` nodes (1,024: past the 128 members a node set keeps inline) join one by one
/// (registry v2: each adopts the configuration its own join numbers, `{n1, .., ni}#i`); a round
/// later the one node that did not heartbeat is declared failed on the registry's own evidence,
/// which numbers the configuration without it, and a node that did heartbeat cannot be
/// declared. Every member then adopts the configuration without the failed node by its own
/// SyncViews. The invariants are checked every 128 joins, around the declaration and after the
/// synchronisations.
#[test]
fn a_cluster_of_nodes_max_nodes_joins_and_declares_its_silent_node() {
    use membership_core::{invariants::check_state, invariants::check_transition, NodeSet};
    use membership_core::{ActionName, Guard, NODES_MAX, NODE_SET_INLINE_NODES};
    let count = NODES_MAX;
    assert!(count > NODE_SET_INLINE_NODES);
    let mut state = accept(&State::initial(fixed(count)), join(1)).0;
    for i in 2..=count {
        let before = state.clone();
        state = apply(&state, &[join(i), join_complete(i)]);
        if i % 128 == 0 || i == count {
            // Every 128 joins: the walks over every node are O(nodes).
            if let Err(v) = check_state(&state).and_then(|()| check_transition(&before, &state)) {
                panic!("after n{i} joined: {v}");
            }
        }
    }
    let everyone = NodeSet::first(count);
    assert_eq!(state.active(), everyone);
    assert_eq!(state.view_counter(), u64::from(count));
    for (i, r) in (1..=count).zip(state.nodes().iter()) {
        assert_eq!(r.view, NodeSet::first(i), "n{i}'s view");
        assert_eq!(r.view_number, u64::from(i), "n{i}'s view number");
    }

    let silent = count - 24; // n1000: above the inline members
    let mut round = accept(&state, RESET).0;
    for i in (1..=count).filter(|&i| i != silent) {
        round = accept(&round, heartbeat(i)).0;
    }
    assert_eq!(round.heartbeats(), &everyone.clone().without(n(silent)));
    let refused = refuse(&round, fail(silent - 1));
    assert_eq!(refused.action, ActionName::MarkNodeFailed);
    // It heartbeated in this round and nobody detected it: no evidence at all.
    assert_eq!(
        refused.guard,
        Guard::Undetected {
            node: n(silent - 1)
        }
    );
    let (declared, effects) = accept(&round, fail(silent));
    if let Err(v) = check_state(&declared).and_then(|()| check_transition(&round, &declared)) {
        panic!("after MarkNodeFailed(n{silent}): {v}");
    }
    assert_eq!(
        effects.first(),
        Some(&Effect::StatusChanged {
            node: n(silent),
            from: NodeStatus::Active,
            to: NodeStatus::Failed,
        })
    );
    let members = everyone.without(n(silent));
    assert_eq!(declared.active(), members);
    assert_eq!(declared.quorum_size(), count - 1);
    assert_eq!(declared.view_counter(), u64::from(count) + 1);
    // No member's view changed in the declaration.
    for m in members.iter() {
        assert_eq!(declared.node(m), round.node(m), "{m}'s record");
    }
    let mut declared = declared;
    for m in members.iter() {
        declared = apply(&declared, &[sync(m.0, m.0)]);
    }
    if let Err(v) = check_state(&declared) {
        panic!("after every member synchronised: {v}");
    }
    assert!(declared.is_converged());
    for m in members.iter() {
        let record = declared.node(m).unwrap();
        assert_eq!(record.view, members, "{m}'s view after its SyncViews");
        assert_eq!(record.view_number, u64::from(count) + 1);
    }
    // The persisted form keeps every member above n128 and decodes to the same registry.
    let json = serde_json::to_string(&declared).unwrap();
    let decoded: State = serde_json::from_str(&json).unwrap();
    assert_eq!(
        decoded, declared,
        "the 1,024-node registry after a round trip"
    );
    assert_eq!(decoded.active(), members);
}
