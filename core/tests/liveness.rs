//! Issue 20: the progress promises stated as liveness properties (EventualPrimary,
//! EventualRejoin, EventualFailover, BalanceSettles), their premises (`Trapped`), the steps they
//! judge, the fairness they assume, and the three planted liveness bugs each of them catches in
//! the model checker's default run (`model-check/tests/checker.rs` pins the counterexamples).

use membership_core::checking::Mutant;
use membership_core::invariants::Liveness;
use membership_core::testing::*;
use membership_core::{
    ActionName, Effect, Event, Guard, MigrationReason, NodeId, NodeStatus, State,
    REBALANCE_BATCH_MAX,
};
use proptest::prelude::*;

/// After THREE_ACTIVE: a new round in which n1 and n2 heartbeat and n3 is silent and cut off
/// from both: the registry's own evidence against n3 (append `fail(3)` to declare it).
const N3_SILENT_AND_CUT_OFF: [Event; 5] = [
    Event::ResetHeartbeats,
    Event::SendHeartbeat { node: NodeId(1) },
    Event::SendHeartbeat { node: NodeId(2) },
    Event::CreatePartition {
        a: NodeId(1),
        b: NodeId(3),
    },
    Event::CreatePartition {
        a: NodeId(2),
        b: NodeId(3),
    },
];

fn loads(state: &State, count: u16) -> Vec<u64> {
    (1..=count).map(|i| state.load(n(i))).collect()
}

// ---------------------------------------------------------------------------------------------
// EventualPrimary(n)

/// MajorityLeaderless(n): n Active, reaching a majority of the members, no valid primary. It
/// holds while members churn (a node Leaving or Joining), where EventualElection's Leaderless
/// (which needs a stable cluster) does not.
#[test]
fn eventual_primary_traps_a_member_with_a_majority_and_no_primary_even_under_churn() {
    let trapped = |s: &State, i| Liveness::EventualPrimary(n(i)).trapped(s);
    let s = run(fixed(3), &THREE_ACTIVE);
    assert_eq!(s.valid_primaries(), nodes(&[1]));
    assert!((1..=3).all(|i| !trapped(&s, i)), "n1 is a valid primary");
    // n1, the primary, leaves: n2 and n3 are a majority of the two members, and no one is
    // primary. The cluster is not stable (n1 Leaving), so Leaderless does not hold.
    let (s, _) = accept(&s, leave(1));
    assert!(s.valid_primaries().is_empty());
    assert!(trapped(&s, 2) && trapped(&s, 3));
    assert!(!trapped(&s, 1), "n1 is Leaving");
    assert!(!Liveness::EventualElection.trapped(&s));
    // Cut off from its peer, each of the two still reaches one of two: no majority.
    let (cut, _) = accept(&s, partition(2, 3));
    assert!(!trapped(&cut, 2) && !trapped(&cut, 3));
    // An election ends it.
    let (elected, _) = accept(&s, elect(2));
    assert!(!trapped(&elected, 2) && !trapped(&elected, 3));
    // Its fairness: the spec's, plus every ElectPrimary.
    let fair = Liveness::EventualPrimary(n(2)).fairness(3, &[], 3);
    assert!((1..=3).all(|i| fair.contains(&elect(i))));
    assert!(!Liveness::EventualStepDown(n(2))
        .fairness(3, &[], 3)
        .contains(&elect(2)));
}

/// The planted bug `elect-needs-newest-view`: a member that has not adopted the current
/// configuration cannot be elected; once it syncs it can, until the next change of the members.
/// Churn can keep the election disabled at some point of every cycle (the checker's lasso).
#[test]
fn elect_needs_newest_view_refuses_a_lagging_member_and_the_fixed_protocol_does_not() {
    let events = then(&THREE_ACTIVE, &[leave(1)]);
    let lagging = mutant(3, Mutant::ElectNeedsNewestView);
    let s = run(lagging, &events);
    // n2 holds {n1, n2}#2; the configuration is #4 (n3's join, then n1's leave).
    assert_eq!(record(&s, 2).view_number, 2);
    assert_eq!(s.view_counter(), 4);
    assert_eq!(
        refuse(&s, elect(2)),
        refusal(ActionName::ElectPrimary, Guard::Disabled)
    );
    let (synced, _) = accept(&s, sync(2, 2));
    assert!(accept(&synced, elect(2)).0.valid_primary(n(2)));
    // The fixed protocol elects n2 at once.
    let s = run(fixed(3), &events);
    let (s, effects) = accept(&s, elect(2));
    assert!(s.valid_primary(n(2)));
    assert!(!effects.is_empty());
}

// ---------------------------------------------------------------------------------------------
// EventualRejoin(n)

/// RejoinPending(n): n is Failed, Left or Joining and can communicate with every node. The
/// recovery the protocol promises: Failed, NodeRecover to Left, NodeJoin, NodeJoinComplete.
#[test]
fn eventual_rejoin_follows_a_declared_node_back_to_active() {
    let trapped = |s: &State| Liveness::EventualRejoin(n(3)).trapped(s);
    let initial = State::initial(fixed(3));
    assert!(trapped(&initial), "a node that never joined is Left");
    // n3 silent and cut off from both peers: declared on the registry's evidence.
    let declared = run(fixed(3), &then(&THREE_ACTIVE, &N3_SILENT_AND_CUT_OFF));
    assert_eq!(record(&declared, 3).status, NodeStatus::Active);
    assert!(!trapped(&declared), "Active");
    let (failed, _) = accept(&declared, fail(3));
    assert_eq!(record(&failed, 3).status, NodeStatus::Failed);
    assert!(!trapped(&failed), "still partitioned");
    let healed = apply(&failed, &[heal(1, 3), heal(2, 3)]);
    assert!(trapped(&healed));
    let (left, effects) = accept(&healed, recover(3));
    assert_eq!(
        effects,
        vec![status_changed(3, NodeStatus::Failed, NodeStatus::Left)]
    );
    assert!(trapped(&left));
    let (joining, _) = accept(&left, join(3));
    assert!(trapped(&joining));
    let (active, _) = accept(&joining, join_complete(3));
    assert_eq!(record(&active, 3).status, NodeStatus::Active);
    assert!(!trapped(&active));
    // Leaving is on the way out, not back: not the premise.
    let (leaving, _) = accept(&run(fixed(3), &THREE_ACTIVE), leave(3));
    assert!(!trapped(&leaving));
    // Its fairness: the node's own recovery and join, nothing of the others'.
    let fair = Liveness::EventualRejoin(n(3)).fairness(3, &[], 3);
    assert!(fair.contains(&recover(3)) && fair.contains(&join(3)));
    assert!(fair.contains(&join_complete(3)));
    assert!(!fair.contains(&recover(2)) && !fair.contains(&join(2)));
}

/// The planted bug `recover-needs-actors`: NodeRecover refused once nothing is placed on the
/// Failed node any more; the fixed protocol recovers it whatever it hosts.
#[test]
fn recover_needs_actors_strands_a_declared_node_whose_actors_moved_away() {
    let events = then(&then(&THREE_ACTIVE, &N3_SILENT_AND_CUT_OFF), &[fail(3)]);
    let s = run(mutant(3, Mutant::RecoverNeedsActors), &events);
    assert_eq!(s.load(n(3)), 0);
    assert_eq!(
        refuse(&s, recover(3)),
        refusal(ActionName::NodeRecover, Guard::Disabled)
    );
    let s = run(fixed(3), &events);
    let (s, effects) = accept(&s, recover(3));
    assert_eq!(
        effects,
        vec![status_changed(3, NodeStatus::Failed, NodeStatus::Left)]
    );
    assert_eq!(record(&s, 3).status, NodeStatus::Left);
}

// ---------------------------------------------------------------------------------------------
// EventualFailover(a)

/// Stranded(a): a is placed on a Failed node (or one recovered to Left); with nothing
/// partitioned and a primary in office, EventualFailover(a) forbids staying there.
#[test]
fn eventual_failover_traps_an_actor_left_on_a_declared_node() {
    let trapped = |s: &State, a| Liveness::EventualFailover(actor(a)).trapped(s);
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1]);
    assert!(!trapped(&s, 1), "on an Active node");
    let s = apply(&s, &then(&N3_SILENT_AND_CUT_OFF, &[fail(3)]));
    assert!(s.is_stranded(actor(1)));
    assert!(!trapped(&s, 1), "partitioned");
    let healed = apply(&s, &[heal(1, 3), heal(2, 3)]);
    assert!(trapped(&healed, 1));
    // Recovered to Left, the actor still waits to move: still stranded.
    let (left, _) = accept(&healed, recover(3));
    assert!(trapped(&left, 1));
    let term = healed.term_counter();
    let (moved, _) = accept(&healed, migrate(1, term));
    assert!(!moved.is_stranded(actor(1)) && !trapped(&moved, 1));
}

// ---------------------------------------------------------------------------------------------
// BalanceSettles

/// BalanceSettles judges stable behaviours that change no load, and is violated only by
/// repeating RebalanceActors.
#[test]
fn balance_settles_judges_steps_that_change_no_load_and_forbids_repeating_rebalance() {
    let p = Liveness::BalanceSettles;
    for changes in [
        place(1),
        remove(1),
        join(1),
        join_complete(1),
        leave(1),
        leave_complete(1),
        fail(1),
        recover(1),
    ] {
        assert!(!p.keeps(&changes), "{changes} changes a load");
    }
    for keeps in [
        migrate(1, 1),
        rebalance(1),
        heartbeat(1),
        RESET,
        elect(1),
        step_down(1),
        sync(1, 1),
        partition(1, 2),
        heal(1, 2),
        detect(1, 2),
    ] {
        assert!(p.keeps(&keeps), "{keeps}");
    }
    let repeating = p.violated_by_repeating().unwrap();
    assert!(repeating(&rebalance(1)) && !repeating(&migrate(1, 1)));
    assert!(Liveness::EventualPlacement(actor(1))
        .violated_by_repeating()
        .is_none());
    assert!(Liveness::EventualPlacement(actor(1)).keeps(&place(1)));
    // Its premise: a stable cluster.
    let s = run(fixed(3), &THREE_ACTIVE);
    assert!(p.trapped(&s));
    assert!(!p.trapped(&accept(&s, partition(1, 2)).0));
    assert!(!p.trapped(&accept(&s, leave(3)).0));
}

/// The planted bug `rebalance-share-rounds-down`: one actor on two members, share 0 instead of
/// 1, so the actor is queued, moved, queued again, moved back: the checker's 9-step lasso.
#[test]
fn rebalance_share_rounds_down_moves_one_actor_back_and_forth() {
    let two = [join(1), join(2), join_complete(2), sync(1, 1)];
    let s = place_on(
        &run(mutant(2, Mutant::RebalanceShareRoundsDown), &two),
        1,
        [1],
    );
    assert_eq!(loads(&s, 2), vec![1, 0]);
    // Queued off `from` for balance, then moved: the only effect of the rebalance is that.
    let ping = |s: &State, from: u16| {
        let (queued, effects) = accept(s, rebalance(1));
        assert_eq!(
            effects,
            vec![Effect::MigrationsQueued {
                from: n(from),
                reason: MigrationReason::LoadBalancing,
                actors: 1,
            }]
        );
        accept(&queued, migrate(1, 1)).0
    };
    let moved = ping(&s, 1);
    assert_eq!(loads(&moved, 2), vec![0, 1]);
    let back = ping(&moved, 2);
    assert_eq!(loads(&back, 2), vec![1, 0]);
    assert_eq!(back.placement(actor(1)).map(|p| p.node), Some(n(1)));
    // The fixed protocol: share ceil(1 / 2) = 1, balanced.
    let s = place_on(&run(fixed(2), &two), 1, [1]);
    assert_eq!(
        refuse(&s, rebalance(1)),
        refusal(ActionName::RebalanceActors, Guard::Balanced { share: 1 })
    );
}

proptest! {
    /// The fixed protocol's RebalanceActors never queues an actor whose move would leave its
    /// target above the share (the argument for BalanceSettles): after a rebalance and the
    /// migrations it queued, no Active node holds more than the share, so a second rebalance
    /// is refused as Balanced. Random loads on three members.
    #[test]
    fn a_rebalance_and_its_migrations_leave_the_cluster_balanced(
        on in prop::collection::vec(0u64..7, 3),
    ) {
        let s = run(fixed(3), &THREE_ACTIVE);
        let mut next_id = 1u64;
        let mut s = s;
        for (i, &count) in on.iter().enumerate() {
            let node = u16::try_from(i + 1).unwrap();
            s = place_on(&s, node, next_id..next_id + count);
            next_id += count;
        }
        let total: u64 = on.iter().sum();
        prop_assume!(total as usize <= REBALANCE_BATCH_MAX);
        let share = total.div_ceil(3);
        let term = s.term_counter();
        let mut s = match membership_core::step(&s, &rebalance(term)) {
            Ok((after, _)) => after,
            Err(refusal) => {
                prop_assert_eq!(refusal.guard, Guard::Balanced { share });
                prop_assert!(loads(&s, 3).iter().all(|&l| l <= share));
                return Ok(());
            }
        };
        let queued: Vec<u64> = s.queue().iter().map(|(a, _)| a.0).collect();
        for a in queued {
            s = accept(&s, migrate(a, term)).0;
        }
        prop_assert!(loads(&s, 3).iter().all(|&l| l <= share), "{:?}", loads(&s, 3));
        prop_assert_eq!(
            membership_core::step(&s, &rebalance(term)).unwrap_err().guard,
            Guard::Balanced { share }
        );
    }
}

/// Every new property has an instance per node or actor, and the four of them are listed after
/// the older ones (the checker's output order).
#[test]
fn the_new_properties_are_instantiated_per_node_and_actor() {
    let all = Liveness::all(2, &[actor(1), actor(2)]);
    let names: Vec<String> = all.iter().map(ToString::to_string).collect();
    let tail = &names[names.len() - 7..];
    assert_eq!(
        tail,
        [
            "EventualPrimary(n1)",
            "EventualPrimary(n2)",
            "EventualRejoin(n1)",
            "EventualRejoin(n2)",
            "EventualFailover(a1)",
            "EventualFailover(a2)",
            "BalanceSettles",
        ]
    );
    let _: Event = RESET;
}
