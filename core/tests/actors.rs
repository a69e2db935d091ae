//! The four actor actions of the fixed protocol (PlaceActor, MigrateActor, RebalanceActors,
//! RemoveActor), one section each: enabled cases asserting the exact effect vector and the exact
//! resulting placements, queue and epoch counter, and one refused case per guard with the exact
//! `Refusal`. Then the membership hooks (NodeLeave and MarkNodeFailed queue a node's actors,
//! NodeLeaveComplete waits for them), placement strategies through `step_with`, the four actor
//! mutants against the invariants that catch them, `migrate_batch`, and serde. Every state is
//! built by replaying events from `State::initial` through `step` (or `step_with`), except where
//! a test says it decodes one.

use membership_core::checking::Mutant;
use membership_core::invariants::{self, Liveness, StateInvariant, TransitionInvariant};
#[cfg(test)]
use membership_core::testing::*;
use membership_core::RegistryFields;
use membership_core::{
    migrate_batch, step, step_with, ActionName, ActorId, Candidate, Counter, Effect, Event, Guard,
    LeastLoaded, MigrationEntry, MigrationReason, NodeId, NodeStatus, PlacementStrategy,
    RegistryError, State, StepDownReason, REBALANCE_BATCH_MAX,
};
use MigrationReason::{LoadBalancing, NodeFailed, NodeLeaving};
use NodeStatus::{Active, Failed, Leaving, Left};

fn activated(a: u64, i: u16, epoch: u64) -> Effect {
    Effect::ActorActivated {
        actor: actor(a),
        node: n(i),
        epoch,
    }
}

fn deactivated(a: u64, i: u16, epoch: u64) -> Effect {
    Effect::ActorDeactivated {
        actor: actor(a),
        node: n(i),
        epoch,
    }
}

fn queued(i: u16, reason: MigrationReason, actors: u64) -> Effect {
    Effect::MigrationsQueued {
        from: n(i),
        reason,
        actors,
    }
}

fn epoch_bound(value: u64, bound: u64) -> Guard {
    Guard::BoundReached {
        counter: Counter::Epoch,
        value,
        bound,
    }
}

/// The placements as `(actor, node, epoch)`, in actor order.
fn placements(state: &State) -> Vec<(u64, u16, u64)> {
    state
        .placements()
        .iter()
        .map(|(a, p)| (a.0, p.node.0, p.epoch))
        .collect()
}

/// The migration queue as `(actor, from, reason)`, in actor order.
fn queue(state: &State) -> Vec<(u64, u16, MigrationReason)> {
    state
        .queue()
        .iter()
        .map(|(a, e)| (a.0, e.from.0, e.reason))
        .collect()
}

/// The loads of `n1..=n{count}`.
fn loads(state: &State, count: u16) -> Vec<u64> {
    (1..=count).map(|i| state.load(n(i))).collect()
}

/// The transition keeps every state and transition invariant.
fn assert_invariants(before: &State, after: &State) {
    if let Err(v) = invariants::check_state(after) {
        panic!("{v}");
    }
    if let Err(v) = invariants::check_transition(before, after) {
        panic!("{v}");
    }
}

/// The two states are equal but for their configurations (a mutant against the fixed protocol).
fn same_but_config(a: &State, b: &State) -> bool {
    RegistryFields::from(a) == RegistryFields::from(b)
}

/// THREE_ACTIVE (n1 primary, term 1), then a1 and a2 placed on n3 (epochs 1 and 2) and n3
/// leaving: both queued with NodeLeaving.
fn n3_leaving_with_two_actors(config: membership_core::Config) -> State {
    let s = place_on(&run(config, &THREE_ACTIVE), 3, [1, 2]);
    accept(&s, leave(3)).0
}

/// THREE_ACTIVE, then a1 and a2 placed on n3 and RebalanceActors(1): the share is 1, so a1 (the
/// lowest id) is queued with LoadBalancing while n3 stays Active.
fn a1_queued_for_balance(config: membership_core::Config) -> State {
    let s = place_on(&run(config, &THREE_ACTIVE), 3, [1, 2]);
    accept(&s, rebalance(1)).0
}

// ---------------------------------------------------------------------------------------------
// 15. PlaceActor

#[test]
fn place_actor_activates_on_the_least_loaded_node_with_a_fresh_epoch() {
    let s0 = run(fixed(3), &THREE_ACTIVE);
    let (s1, effects) = accept(&s0, place(1));
    // All three have load 0: the rendezvous hash of (a1, node) breaks the tie, for n2.
    assert_eq!(effects, vec![activated(1, 2, 1)]);
    assert_eq!(placements(&s1), vec![(1, 2, 1)]);
    assert!(queue(&s1).is_empty());
    assert_eq!(s1.epoch_counter(), 1);
    assert_eq!(s1.nodes(), s0.nodes());
    assert_eq!(
        (s1.term_counter(), s1.view_counter()),
        (s0.term_counter(), s0.view_counter())
    );
    assert_invariants(&s0, &s1);
    // The next two go to the nodes still at load 0, each with the next epoch.
    let (s2, effects) = accept(&s1, place(2));
    assert_eq!(effects, vec![activated(2, 1, 2)]);
    let (s3, effects) = accept(&s2, place(3));
    assert_eq!(effects, vec![activated(3, 3, 3)]);
    assert_eq!(placements(&s3), vec![(1, 2, 1), (2, 1, 2), (3, 3, 3)]);
    assert_eq!(loads(&s3, 3), vec![1, 1, 1]);
    assert_eq!(s3.epoch_counter(), 3);
    assert_eq!(
        s3.hosted(n(2)).unwrap().iter().copied().collect::<Vec<_>>(),
        [actor(1)]
    );
    // `step` is `step_with` the default LeastLoaded strategy.
    assert_eq!(
        step_with(&s0, &place(1), &LeastLoaded),
        step(&s0, &place(1))
    );
}

#[test]
fn place_actor_refusals() {
    let place_refusal = |guard| refusal(ActionName::PlaceActor, guard);
    // No Active node at all.
    let empty = State::initial(fixed(3));
    assert_eq!(
        refuse(&empty, place(1)),
        place_refusal(Guard::NoTarget { actor: actor(1) })
    );
    // The only node is Leaving (not Active): no target either.
    let leaving = run(fixed(3), &[join(1), leave(1)]);
    assert_eq!(
        refuse(&leaving, place(1)),
        place_refusal(Guard::NoTarget { actor: actor(1) })
    );
    // Already placed: names its node.
    let s = run(fixed(3), &then(&THREE_ACTIVE, &[place(1)]));
    let refused = refuse(&s, place(1));
    assert_eq!(
        refused,
        place_refusal(Guard::AlreadyPlaced {
            actor: actor(1),
            node: n(2)
        })
    );
    assert_eq!(
        refused.to_string(),
        "PlaceActor: a1 is already placed on n2"
    );
}

#[test]
fn place_actor_is_refused_when_the_registry_is_full() {
    let config = fixed(3).with_actors_max(1).unwrap();
    let s = run(config, &then(&THREE_ACTIVE, &[place(1)]));
    let refused = refuse(&s, place(2));
    assert_eq!(
        refused,
        refusal(
            ActionName::PlaceActor,
            Guard::RegistryFull { actors_max: 1 }
        )
    );
    assert_eq!(
        refused.to_string(),
        "PlaceActor: the registry holds its limit of 1 actors"
    );
    // AlreadyPlaced is checked first.
    assert!(matches!(
        refuse(&s, place(1)).guard,
        Guard::AlreadyPlaced { .. }
    ));
    // Removing an actor makes room again; the new one gets a fresh epoch.
    let (s, _) = accept(&s, remove(1));
    let (s, effects) = accept(&s, place(2));
    assert!(matches!(
        effects[..],
        [Effect::ActorActivated { epoch: 2, .. }]
    ));
    assert_eq!(s.placements().len(), 1);
}

#[test]
fn place_actor_is_refused_at_the_epoch_bound() {
    let config = fixed(3).with_max_epoch(Some(2)).unwrap();
    let s = run(config, &then(&THREE_ACTIVE, &[place(1), place(2)]));
    assert_eq!(s.epoch_counter(), 2);
    let refused = refuse(&s, place(3));
    assert_eq!(refused, refusal(ActionName::PlaceActor, epoch_bound(3, 2)));
    assert_eq!(
        refused.to_string(),
        "PlaceActor: epoch 3 would exceed MaxView 2"
    );
}

/// The epoch counter cannot reach u64::MAX by steps; the reducer refuses rather than wraps, for
/// states decoded from a store.
#[test]
fn place_actor_is_refused_rather_than_overflow_the_epoch_counter() {
    let s = run(fixed(3), &THREE_ACTIVE);
    let mut fields = RegistryFields::from(&s);
    fields.epoch_counter = u64::MAX;
    let decoded = State::try_from(fields).unwrap();
    assert_eq!(
        refuse(&decoded, place(1)),
        refusal(
            ActionName::PlaceActor,
            Guard::CounterOverflow {
                counter: Counter::Epoch
            }
        )
    );
}

// ---------------------------------------------------------------------------------------------
// 16. MigrateActor

#[test]
fn migrate_actor_moves_a_queued_actor_under_the_current_term() {
    let before = n3_leaving_with_two_actors(fixed(3));
    assert_eq!(
        queue(&before),
        vec![(1, 3, NodeLeaving), (2, 3, NodeLeaving)]
    );
    let (after, effects) = accept(&before, migrate(1, 1));
    assert_eq!(
        effects.to_vec(),
        vec![deactivated(1, 3, 1), activated(1, 2, 3)]
    );
    assert_eq!(placements(&after), vec![(1, 2, 3), (2, 3, 2)]);
    assert_eq!(queue(&after), vec![(2, 3, NodeLeaving)]);
    assert_eq!(after.epoch_counter(), 3);
    assert_eq!(after.nodes(), before.nodes());
    assert_eq!(after.term_counter(), before.term_counter());
    assert_invariants(&before, &after);
    // The second goes to the other candidate (n1 now has load 0, n2 load 1).
    let (last, effects) = accept(&after, migrate(2, 1));
    assert_eq!(effects, vec![deactivated(2, 3, 2), activated(2, 1, 4)]);
    assert_eq!(placements(&last), vec![(1, 2, 3), (2, 1, 4)]);
    assert!(last.queue().is_empty());
    assert_eq!(last.hosted(n(3)), None);
    assert_eq!(loads(&last, 3), vec![1, 1, 0]);
}

#[test]
fn migrate_actor_refuses_an_actor_that_is_not_queued() {
    let s = n3_leaving_with_two_actors(fixed(3));
    let s = accept(&s, place(3)).0;
    // Placed but not queued, and never placed: both NotQueued (the queue is checked first, so
    // even a stale term does not matter).
    for (a, term) in [(3, 1), (9, 1), (9, 99)] {
        assert_eq!(
            refuse(&s, migrate(a, term)),
            refusal(
                ActionName::MigrateActor,
                Guard::NotQueued { actor: actor(a) }
            )
        );
    }
}

/// After n2 is elected with term 2 (n1, isolated, is superseded), term 1 is stale, and so is a
/// term not granted yet.
#[test]
fn migrate_actor_is_refused_with_a_stale_term_after_a_re_election() {
    let s = a1_queued_for_balance(fixed(3));
    let s = apply(&s, &[partition(1, 2), partition(1, 3), elect(2)]);
    assert_eq!(s.term_counter(), 2);
    assert_eq!(s.valid_primaries(), nodes(&[2]));
    for term in [1, 3, 0] {
        let refused = refuse(&s, migrate(1, term));
        assert_eq!(
            refused,
            refusal(
                ActionName::MigrateActor,
                Guard::StaleTerm { term, current: 2 }
            )
        );
    }
    assert_eq!(
        refuse(&s, migrate(1, 1)).to_string(),
        "MigrateActor: term 1 is stale: the current term is 2"
    );
    // The new primary's term moves it; the isolated n1 is Active, so it is a candidate.
    let (after, effects) = accept(&s, migrate(1, 2));
    assert_eq!(effects.len(), 2);
    assert_eq!(effects[0], deactivated(1, 3, 1));
    assert_invariants(&s, &after);
}

/// n1 still believes it is primary with the current term 1, but cut off from n2 and n3 it has
/// no majority: no valid primary holds term 1. Stepping down does not change that.
#[test]
fn migrate_actor_is_refused_without_a_valid_primary() {
    let s = a1_queued_for_balance(fixed(3));
    let s = apply(&s, &[partition(1, 2), partition(1, 3)]);
    assert!(record(&s, 1).believes_primary);
    assert_eq!((record(&s, 1).term, s.term_counter()), (1, 1));
    let expected = refusal(ActionName::MigrateActor, Guard::NoValidPrimary { term: 1 });
    assert_eq!(refuse(&s, migrate(1, 1)), expected);
    assert_eq!(
        expected.to_string(),
        "MigrateActor: no valid primary holds term 1"
    );
    let s = accept(&s, step_down(1)).0;
    assert_eq!(refuse(&s, migrate(1, 1)), expected);
}

/// MigrateActor when the only Active node is the one the actor must leave. Registry v2:
/// majorities are of the members, so after n2 and n3 leave, n1 alone is a majority of the one
/// member and keeps its valid primary claim, and the actor queued to leave n1 (a rebalance entry)
/// goes back to n1 with a fresh epoch: the last member takes it back (it would otherwise stay
/// queued forever, EventualPlacement). (Before registry v2 the fencing guard refused: the
/// scaled-down cluster could never migrate again.) NoTarget remains when no node is Active at all
/// (reachable only without the fencing guard: the MigrateWithoutTermCheck mutant).
#[test]
fn migrate_actor_when_the_only_active_node_is_the_one_being_left() {
    let only_n1 = |config| {
        let s = place_on(&run(config, &THREE_ACTIVE), 1, [1, 2]);
        apply(
            &s,
            &[
                rebalance(1),
                leave(2),
                leave_complete(2),
                leave(3),
                leave_complete(3),
            ],
        )
    };
    let s = only_n1(fixed(3));
    assert_eq!(s.active(), nodes(&[1]));
    assert_eq!(queue(&s), vec![(1, 1, LoadBalancing)]);
    assert!(s.valid_primary(n(1)), "n1 is a majority of the one member");
    let (after, effects) = accept(&s, migrate(1, 1));
    assert_eq!(
        effects,
        vec![
            Effect::ActorDeactivated {
                actor: actor(1),
                node: n(1),
                epoch: 1
            },
            Effect::ActorActivated {
                actor: actor(1),
                node: n(1),
                epoch: 3
            },
        ]
    );
    assert!(after.queue().is_empty());

    let s = only_n1(mutant(3, Mutant::MigrateWithoutTermCheck));
    // n1, the last member, misses a round and is declared failed: no node is Active.
    let s = apply(&s, &[RESET, fail(1)]);
    assert!(s.active().is_empty());
    let no_target = refusal(
        ActionName::MigrateActor,
        Guard::NoTarget { actor: actor(1) },
    );
    assert_eq!(refuse(&s, migrate(1, 1)), no_target);
    assert_eq!(
        no_target.to_string(),
        "MigrateActor: no Active node can take a1"
    );
}

#[test]
fn migrate_actor_is_refused_at_the_epoch_bound() {
    let s = n3_leaving_with_two_actors(fixed(3).with_max_epoch(Some(2)).unwrap());
    assert_eq!(
        refuse(&s, migrate(1, 1)),
        refusal(ActionName::MigrateActor, epoch_bound(3, 2))
    );
}

// ---------------------------------------------------------------------------------------------
// 17. RebalanceActors

/// THREE_ACTIVE, a1..a6 on n1 and a7 on n2: the share is ceil(7 / 3) = 3, so n1's excess of 3
/// is queued, lowest ids first; migrating them balances the load.
#[test]
fn rebalance_queues_exactly_the_excess_lowest_ids_first_and_migrating_balances() {
    let s = run(fixed(3), &THREE_ACTIVE);
    let before = place_on(&place_on(&s, 1, 1..=6), 2, [7]);
    assert_eq!(loads(&before, 3), vec![6, 1, 0]);
    let (after, effects) = accept(&before, rebalance(1));
    assert_eq!(effects, vec![queued(1, LoadBalancing, 3)]);
    assert_eq!(
        queue(&after),
        vec![
            (1, 1, LoadBalancing),
            (2, 1, LoadBalancing),
            (3, 1, LoadBalancing)
        ]
    );
    // Nothing moves yet.
    assert_eq!(placements(&after), placements(&before));
    assert_eq!(after.epoch_counter(), before.epoch_counter());
    assert_eq!(after.nodes(), before.nodes());
    assert_invariants(&before, &after);
    // Queued actors count as leaving: a second rebalance finds nothing more to do.
    assert_eq!(
        refuse(&after, rebalance(1)),
        refusal(ActionName::RebalanceActors, Guard::Balanced { share: 3 })
    );
    let (done, effects, applied) = migrate_batch(&after, 1, 10, &LeastLoaded).unwrap();
    assert_eq!(applied, vec![migrate(1, 1), migrate(2, 1), migrate(3, 1)]);
    assert_eq!(
        effects,
        vec![
            deactivated(1, 1, 1),
            activated(1, 3, 8),
            deactivated(2, 1, 2),
            activated(2, 2, 9),
            deactivated(3, 1, 3),
            activated(3, 3, 10),
        ]
    );
    assert_eq!(loads(&done, 3), vec![3, 2, 2]);
    assert!(done.queue().is_empty());
    assert_eq!(
        refuse(&done, rebalance(1)),
        refusal(ActionName::RebalanceActors, Guard::Balanced { share: 3 })
    );
}

/// Five nodes, a1..a5 on n1 and a6..a9 on n2: share ceil(9 / 5) = 2, so n1 gives up a1..a3 and
/// n2 a6 and a7, one MigrationsQueued per node in node order.
#[test]
fn rebalance_queues_the_excess_of_every_overloaded_node() {
    let s = run(fixed(5), &all_active(5));
    let before = place_on(&place_on(&s, 1, 1..=5), 2, 6..=9);
    let (after, effects) = accept(&before, rebalance(1));
    assert_eq!(
        effects,
        vec![queued(1, LoadBalancing, 3), queued(2, LoadBalancing, 2)]
    );
    let ids: Vec<u64> = queue(&after).iter().map(|&(a, _, _)| a).collect();
    assert_eq!(ids, vec![1, 2, 3, 6, 7]);
    assert_invariants(&before, &after);
    let (done, _, applied) = migrate_batch(&after, 1, 10, &LeastLoaded).unwrap();
    assert_eq!(applied.len(), 5);
    let l = loads(&done, 5);
    assert!(
        l.iter().max().unwrap() - l.iter().min().unwrap() <= 1,
        "{l:?}"
    );
    assert_eq!(l.iter().sum::<u64>(), 9);
    assert_eq!(
        refuse(&done, rebalance(1)),
        refusal(ActionName::RebalanceActors, Guard::Balanced { share: 2 })
    );
}

/// One RebalanceActors queues at most REBALANCE_BATCH_MAX actors; the next one continues.
#[test]
fn rebalance_queues_at_most_rebalance_batch_max_actors() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 1, 1..=3000);
    // Share 1000: the excess is 2000.
    let (s, effects) = accept(&s, rebalance(1));
    assert_eq!(REBALANCE_BATCH_MAX, 1024);
    assert_eq!(effects, vec![queued(1, LoadBalancing, 1024)]);
    assert_eq!(s.queue().actors().last(), Some(actor(1024)));
    let (s, effects) = accept(&s, rebalance(1));
    assert_eq!(effects, vec![queued(1, LoadBalancing, 976)]);
    assert_eq!(s.queue().len(), 2000);
    assert_eq!(s.queue().actors().last(), Some(actor(2000)));
    assert_eq!(
        refuse(&s, rebalance(1)),
        refusal(ActionName::RebalanceActors, Guard::Balanced { share: 1000 })
    );
}

#[test]
fn rebalance_refusals() {
    let rebalance_refusal = |guard| refusal(ActionName::RebalanceActors, guard);
    let s = run(fixed(3), &THREE_ACTIVE);
    // No actors: the share is 0 and nobody is above it.
    let refused = refuse(&s, rebalance(1));
    assert_eq!(refused, rebalance_refusal(Guard::Balanced { share: 0 }));
    assert_eq!(
        refused.to_string(),
        "RebalanceActors: the load is balanced: no node holds more than 0 actors"
    );
    // One actor each.
    let even = apply(&s, &[place(1), place(2), place(3)]);
    assert_eq!(
        refuse(&even, rebalance(1)),
        rebalance_refusal(Guard::Balanced { share: 1 })
    );
    // Only Active nodes count: a Leaving node's actors are neither in the total nor over it.
    let leaving = n3_leaving_with_two_actors(fixed(3));
    assert_eq!(
        refuse(&leaving, rebalance(1)),
        rebalance_refusal(Guard::Balanced { share: 0 })
    );
    // Fencing, before the balance is even looked at.
    let unbalanced = place_on(&s, 1, 1..=3);
    for term in [0, 2] {
        assert_eq!(
            refuse(&unbalanced, rebalance(term)),
            rebalance_refusal(Guard::StaleTerm { term, current: 1 })
        );
    }
    let isolated = apply(&unbalanced, &[partition(1, 2), partition(1, 3)]);
    assert_eq!(
        refuse(&isolated, rebalance(1)),
        rebalance_refusal(Guard::NoValidPrimary { term: 1 })
    );
    let reelected = accept(&isolated, elect(2)).0;
    assert_eq!(
        refuse(&reelected, rebalance(1)),
        rebalance_refusal(Guard::StaleTerm {
            term: 1,
            current: 2
        })
    );
    assert_eq!(
        accept(&reelected, rebalance(2)).1,
        vec![queued(1, LoadBalancing, 2)]
    );
}

// ---------------------------------------------------------------------------------------------
// 18. RemoveActor

#[test]
fn remove_actor_deactivates_and_forgets_the_actor() {
    let before = run(fixed(3), &then(&THREE_ACTIVE, &[place(1), place(2)]));
    let (after, effects) = accept(&before, remove(1));
    assert_eq!(effects, vec![deactivated(1, 2, 1)]);
    assert_eq!(placements(&after), vec![(2, 1, 2)]);
    assert_eq!(after.epoch_counter(), 2);
    assert_eq!(after.hosted(n(2)), None);
    assert_invariants(&before, &after);
    // Placed again, it gets an epoch never issued before.
    let (_, effects) = accept(&after, place(1));
    assert_eq!(effects, vec![activated(1, 2, 3)]);
}

#[test]
fn remove_actor_of_a_queued_actor_clears_its_entry() {
    let before = n3_leaving_with_two_actors(fixed(3));
    let (after, effects) = accept(&before, remove(1));
    assert_eq!(effects, vec![deactivated(1, 3, 1)]);
    assert_eq!(queue(&after), vec![(2, 3, NodeLeaving)]);
    assert_eq!(placements(&after), vec![(2, 3, 2)]);
    assert_invariants(&before, &after);
    let (after, _) = accept(&after, remove(2));
    assert!(after.queue().is_empty() && after.placements().is_empty());
    // Nothing left on n3: its leave completes.
    accept(&after, leave_complete(3));
}

/// RemoveActor is the application's decision and carries no term: it is accepted without a
/// valid primary, also for an actor of a Failed node.
#[test]
fn remove_actor_needs_no_primary() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1]);
    let s = apply(
        &s,
        &[
            partition(1, 3),
            partition(2, 3),
            detect(1, 3),
            detect(2, 3),
            fail(3),
            partition(1, 2),
        ],
    );
    assert!(s.valid_primaries().is_empty());
    assert_eq!(accept(&s, remove(1)).1, vec![deactivated(1, 3, 1)]);
}

#[test]
fn remove_actor_refuses_an_actor_that_is_not_placed() {
    let s = run(fixed(3), &then(&THREE_ACTIVE, &[place(1), remove(1)]));
    for a in [1, 2] {
        let refused = refuse(&s, remove(a));
        assert_eq!(
            refused,
            refusal(
                ActionName::RemoveActor,
                Guard::NotPlaced { actor: actor(a) }
            )
        );
    }
    assert_eq!(
        refuse(&s, remove(2)).to_string(),
        "RemoveActor: a2 is not placed"
    );
}

// ---------------------------------------------------------------------------------------------
// Across the actor actions

/// The reference model has no actors: in the reference and buggy modes every actor action is
/// Disabled, whatever the state.
#[test]
fn actor_actions_are_disabled_in_the_reference_modes() {
    for config in [reference(3, 3), buggy(3, 3)] {
        for s in [State::initial(config), run(config, &THREE_ACTIVE)] {
            for event in Event::actor_events(&[actor(1)], 2) {
                assert_eq!(
                    refuse(&s, event),
                    refusal(event.name(), Guard::Disabled),
                    "{event}"
                );
            }
        }
    }
    assert_eq!(
        refuse(&run(reference(3, 3), &THREE_ACTIVE), place(1)).to_string(),
        "PlaceActor: disabled in this checking configuration (mode or mutant)"
    );
}

#[test]
fn actor_events_list_every_instance_and_print_as_the_spec_does() {
    let events = Event::actor_events(&[actor(1), actor(2)], 2);
    assert_eq!(
        events,
        vec![
            place(1),
            remove(1),
            place(2),
            remove(2),
            migrate(1, 1),
            migrate(2, 1),
            rebalance(1),
            migrate(1, 2),
            migrate(2, 2),
            rebalance(2),
        ]
    );
    let spelled: Vec<String> = events[..5]
        .iter()
        .chain(&events[6..7])
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        spelled,
        [
            "PlaceActor(a1)",
            "RemoveActor(a1)",
            "PlaceActor(a2)",
            "RemoveActor(a2)",
            "MigrateActor(a1, term 1)",
            "RebalanceActors(term 1)",
        ]
    );
    // Event::all still lists only the fourteen membership actions.
    assert!(Event::all(3).iter().all(|e| !matches!(
        e.name(),
        ActionName::PlaceActor
            | ActionName::MigrateActor
            | ActionName::RebalanceActors
            | ActionName::RemoveActor
    )));
}

// ---------------------------------------------------------------------------------------------
// Membership hooks

/// NodeLeave queues the node's actors with NodeLeaving; NodeLeaveComplete is refused with
/// HoldsActors until they have all been migrated, then accepted.
#[test]
fn node_leave_queues_its_actors_and_leave_complete_waits_for_them() {
    let before = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1, 2]);
    let (s, effects) = accept(&before, leave(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Leaving),
            queued(3, NodeLeaving, 2)
        ]
    );
    assert_eq!(queue(&s), vec![(1, 3, NodeLeaving), (2, 3, NodeLeaving)]);
    assert_eq!(placements(&s), placements(&before));
    assert_invariants(&before, &s);

    let holds = |actors| {
        refusal(
            ActionName::NodeLeaveComplete,
            Guard::HoldsActors { node: n(3), actors },
        )
    };
    assert_eq!(refuse(&s, leave_complete(3)), holds(2));
    assert_eq!(
        holds(2).to_string(),
        "NodeLeaveComplete: n3 still holds 2 actors"
    );
    let s = accept(&s, migrate(1, 1)).0;
    assert_eq!(refuse(&s, leave_complete(3)), holds(1));
    let s = accept(&s, migrate(2, 1)).0;
    let (after, effects) = accept(&s, leave_complete(3));
    // Registry v2: no member's view changes (NodeLeave numbered the configuration without n3).
    assert_eq!(effects, vec![status_changed(3, Leaving, Left)]);
    assert_eq!(after.load(n(3)), 0);
    assert_eq!(loads(&after, 3), vec![1, 1, 0]);
    assert_invariants(&s, &after);
}

/// The primary leaving with actors: the step-down comes before the MigrationsQueued; nobody can
/// migrate until a new primary is elected, which then migrates under its own term.
#[test]
fn node_leave_of_the_primary_queues_its_actors_after_stepping_down() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 1, [1, 2, 3]);
    let (s, effects) = accept(&s, leave(1));
    assert_eq!(
        effects,
        vec![
            status_changed(1, Active, Leaving),
            Effect::SteppedDown {
                node: n(1),
                term: 1,
                reason: StepDownReason::Leaving
            },
            queued(1, NodeLeaving, 3),
        ]
    );
    assert_eq!(
        refuse(&s, migrate(1, 1)),
        refusal(ActionName::MigrateActor, Guard::NoValidPrimary { term: 1 })
    );
    let s = accept(&s, elect(2)).0;
    let (s, _, applied) = migrate_batch(&s, 2, 10, &LeastLoaded).unwrap();
    assert_eq!(applied.len(), 3);
    let (_, effects) = accept(&s, leave_complete(1));
    assert_eq!(effects[0], status_changed(1, Leaving, Left));
}

/// MarkNodeFailed queues every actor of the failed node with NodeFailed in that one transition,
/// reported by a single MigrationsQueued after the fencing (registry v2: no member's view
/// changes in the declaration). (Five nodes: n1, n2 and n3 vote, n4 still reaches n5.)
#[test]
fn mark_node_failed_queues_all_its_actors_in_one_transition() {
    let s = place_on(&run(fixed(5), &all_active(5)), 5, [1, 2, 3]);
    let before = apply(&s, &voted_out(5, &[1, 2, 3]));
    assert!(before.queue().is_empty());
    let (after, effects) = accept(&before, fail(5));
    assert_eq!(
        effects,
        vec![
            status_changed(5, Active, Failed),
            Effect::Fenced { node: n(5) },
            queued(5, NodeFailed, 3),
        ]
    );
    assert_eq!(
        queue(&after),
        vec![(1, 5, NodeFailed), (2, 5, NodeFailed), (3, 5, NodeFailed)]
    );
    // Still placed on n5 (with their old epochs) until migrated.
    assert_eq!(placements(&after), placements(&before));
    assert_invariants(&before, &after);
    // The failed node may recover meanwhile; the queue entries stay.
    let recovered = accept(&after, recover(5)).0;
    assert_eq!(record(&recovered, 5).status, Left);
    assert_eq!(queue(&recovered), queue(&after));
    invariants::check_state(&recovered).unwrap();
    let (done, _, applied) = migrate_batch(&recovered, 1, 10, &LeastLoaded).unwrap();
    assert_eq!(applied.len(), 3);
    assert_eq!(done.load(n(5)), 0);
    assert_invariants(&recovered, &done);
}

#[test]
fn mark_node_failed_of_the_primary_with_actors() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 1, [1, 2]);
    let s = apply(
        &s,
        &[partition(1, 2), partition(1, 3), detect(2, 1), detect(3, 1)],
    );
    let (after, effects) = accept(&s, fail(1));
    assert_eq!(
        effects,
        vec![
            status_changed(1, Active, Failed),
            Effect::Fenced { node: n(1) },
            Effect::SteppedDown {
                node: n(1),
                term: 1,
                reason: StepDownReason::Failed
            },
            queued(1, NodeFailed, 2),
        ]
    );
    assert_eq!(queue(&after), vec![(1, 1, NodeFailed), (2, 1, NodeFailed)]);
    assert_invariants(&s, &after);
}

/// A LoadBalancing entry becomes NodeFailed when its node fails (and is counted again).
#[test]
fn a_load_balancing_entry_becomes_node_failed_when_its_node_fails() {
    let s = a1_queued_for_balance(fixed(3));
    assert_eq!(queue(&s), vec![(1, 3, LoadBalancing)]);
    let before = apply(
        &s,
        &[partition(1, 3), partition(2, 3), detect(1, 3), detect(2, 3)],
    );
    let (after, effects) = accept(&before, fail(3));
    assert!(effects.contains(&queued(3, NodeFailed, 2)), "{effects:?}");
    assert_eq!(queue(&after), vec![(1, 3, NodeFailed), (2, 3, NodeFailed)]);
    assert_invariants(&before, &after);
}

/// NodeLeave turns a LoadBalancing entry into NodeLeaving, but an actor queued because its node
/// failed keeps NodeFailed (here: n3 failed, recovered and rejoined before leaving).
#[test]
fn node_leave_overrides_load_balancing_but_keeps_node_failed() {
    let s = a1_queued_for_balance(fixed(3));
    let (after, effects) = accept(&s, leave(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Leaving),
            queued(3, NodeLeaving, 2)
        ]
    );
    assert_eq!(
        queue(&after),
        vec![(1, 3, NodeLeaving), (2, 3, NodeLeaving)]
    );

    let rejoined = n3_failed_and_rejoined_with_a1();
    let s = place_on(&rejoined, 3, [2]);
    let (after, effects) = accept(&s, leave(3));
    assert_eq!(
        effects,
        vec![
            status_changed(3, Active, Leaving),
            queued(3, NodeLeaving, 1)
        ]
    );
    assert_eq!(queue(&after), vec![(1, 3, NodeFailed), (2, 3, NodeLeaving)]);
    assert_invariants(&s, &after);
}

/// THREE_ACTIVE, a1 on n3, n3 fails (a1 queued NodeFailed), recovers, and rejoins.
fn n3_failed_and_rejoined_with_a1() -> State {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1]);
    let events = [
        partition(1, 3),
        partition(2, 3),
        detect(1, 3),
        detect(2, 3),
        fail(3),
        recover(3),
        heal(1, 3),
        heal(2, 3),
        join(3),
        join_complete(3),
    ];
    let mut state = s;
    for event in events {
        let (next, _) = accept(&state, event);
        assert_invariants(&state, &next);
        state = next;
    }
    state
}

/// A node that failed, recovered and rejoined is Active again while the registry still places
/// its old actors on it, queued with NodeFailed, with their old epochs, until they migrate.
#[test]
fn a_rejoined_node_keeps_its_queued_actors_until_they_migrate() {
    let s = n3_failed_and_rejoined_with_a1();
    assert_eq!(record(&s, 3).status, Active);
    assert_eq!(placements(&s), vec![(1, 3, 1)]);
    assert_eq!(queue(&s), vec![(1, 3, NodeFailed)]);
    let (after, effects) = accept(&s, migrate(1, 1));
    assert_eq!(effects[0], deactivated(1, 3, 1));
    assert!(after.queue().is_empty());
}

/// MigrationsQueued says how many actors were queued, and the property tests require it to
/// match the queue entries added or changed. When a rejoined node fails again, a1's NodeFailed
/// entry (queued by the first failure) is unchanged and must not be counted: only a2 is queued.
#[test]
fn mark_node_failed_reports_only_the_actors_it_queues() {
    let s = place_on(&n3_failed_and_rejoined_with_a1(), 3, [2]);
    let before = apply(
        &s,
        &[partition(1, 3), partition(2, 3), detect(1, 3), detect(2, 3)],
    );
    let (after, effects) = accept(&before, fail(3));
    assert_eq!(queue(&after), vec![(1, 3, NodeFailed), (2, 3, NodeFailed)]);
    assert_eq!(before.queue().get(actor(1)), after.queue().get(actor(1)));
    assert!(
        effects.contains(&queued(3, NodeFailed, 1)),
        "only a2 was queued: {effects:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Placement strategies

/// A strategy that never answers.
struct Nobody;

impl PlacementStrategy for Nobody {
    fn choose(&self, _actor: ActorId, _candidates: &[Candidate]) -> Option<NodeId> {
        None
    }
}

/// A strategy that records the candidates it was offered.
#[derive(Default)]
struct Spy(std::cell::RefCell<Vec<Vec<Candidate>>>);

impl PlacementStrategy for Spy {
    fn choose(&self, _actor: ActorId, candidates: &[Candidate]) -> Option<NodeId> {
        self.0.borrow_mut().push(candidates.to_vec());
        candidates.first().map(|c| c.node)
    }
}

#[test]
fn step_with_a_custom_strategy_places_and_migrates_where_it_answers() {
    let s = run(fixed(3), &THREE_ACTIVE);
    let (s, effects) = step_with(&s, &place(1), &HighestId).unwrap();
    assert_eq!(effects.to_vec(), vec![activated(1, 3, 1)]);
    // It ignores the load: a2 goes to n3 as well.
    let (s, effects) = step_with(&s, &place(2), &HighestId).unwrap();
    assert_eq!(effects.to_vec(), vec![activated(2, 3, 2)]);
    let s = accept(&s, leave(3)).0;
    // n3 is not a candidate any more: the highest is n2.
    let (after, effects) = step_with(&s, &migrate(1, 1), &HighestId).unwrap();
    assert_eq!(
        effects.to_vec(),
        vec![deactivated(1, 3, 1), activated(1, 2, 3)]
    );
    assert_invariants(&s, &after);
    let (done, effects, _) = migrate_batch(&s, 1, 10, &HighestId).unwrap();
    assert_eq!(
        effects,
        vec![
            deactivated(1, 3, 1),
            activated(1, 2, 3),
            deactivated(2, 3, 2),
            activated(2, 2, 4),
        ]
    );
    assert_eq!(loads(&done, 3), vec![0, 2, 0]);
}

/// The reducer offers only Active nodes (for a migration, other than the one being left), in
/// node-id order, with their loads.
#[test]
fn the_strategy_is_offered_the_active_nodes_with_their_loads() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1, 2]);
    let s = place_on(&s, 2, [3]);
    let spy = Spy::default();
    step_with(&s, &place(4), &spy).unwrap();
    let s = accept(&s, leave(3)).0;
    step_with(&s, &migrate(1, 1), &spy).unwrap();
    let offered = spy.0.into_inner();
    let c = |i: u16, load: u64| Candidate { node: n(i), load };
    assert_eq!(
        offered,
        vec![vec![c(1, 0), c(2, 1), c(3, 2)], vec![c(1, 0), c(2, 1)]]
    );
}

/// A strategy answering a node that is not a candidate (Leaving, Failed, the node being left,
/// or not in the cluster), or nothing: the reducer refuses with NoTarget and never places the
/// actor there. A candidate it answers is honoured even when more loaded.
#[test]
fn a_strategy_answering_a_non_candidate_is_refused_with_no_target() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1]);
    let s = accept(&s, leave(3)).0;
    let no_target = |action, a| refusal(action, Guard::NoTarget { actor: actor(a) });
    for strategy in [Always(n(3)), Always(NodeId(9)), Always(NodeId(0))] {
        assert_eq!(
            step_with(&s, &place(2), &strategy).unwrap_err(),
            no_target(ActionName::PlaceActor, 2)
        );
        assert_eq!(
            step_with(&s, &migrate(1, 1), &strategy).unwrap_err(),
            no_target(ActionName::MigrateActor, 1)
        );
    }
    assert_eq!(
        step_with(&s, &place(2), &Nobody).unwrap_err(),
        no_target(ActionName::PlaceActor, 2)
    );
    assert_eq!(
        step_with(&s, &migrate(1, 1), &Nobody).unwrap_err(),
        no_target(ActionName::MigrateActor, 1)
    );
    // The same through migrate_batch: the first move refused, the batch refused.
    assert_eq!(
        migrate_batch(&s, 1, 10, &Always(n(3))).unwrap_err(),
        no_target(ActionName::MigrateActor, 1)
    );
    // A Failed node is no candidate either.
    let failed = apply(
        &place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1]),
        &[
            partition(1, 3),
            partition(2, 3),
            detect(1, 3),
            detect(2, 3),
            fail(3),
        ],
    );
    assert_eq!(
        step_with(&failed, &migrate(1, 1), &Always(n(3))).unwrap_err(),
        no_target(ActionName::MigrateActor, 1)
    );
    assert_eq!(
        step_with(&failed, &place(2), &Always(n(3))).unwrap_err(),
        no_target(ActionName::PlaceActor, 2)
    );
    // An Active candidate is honoured, loaded or not.
    let loaded = place_on(&s, 1, [5, 6]);
    let (_, effects) = step_with(&loaded, &migrate(1, 1), &Always(n(1))).unwrap();
    assert_eq!(effects[1], activated(1, 1, 4));
}

// ---------------------------------------------------------------------------------------------
// The actor mutants: each changes exactly its guard or effect, and an invariant catches it.

/// MigrateWithoutTermCheck: MigrateActor without the fencing guard. With no valid primary it
/// moves the actor anyway, and MigrationByPrimary flags the transition. Everything else is as in
/// the fixed protocol.
#[test]
fn mutant_migrate_without_term_check() {
    let m = mutant(3, Mutant::MigrateWithoutTermCheck);
    let isolate = [partition(1, 2), partition(1, 3)];
    let fixed_state = apply(&a1_queued_for_balance(fixed(3)), &isolate);
    let before = apply(&a1_queued_for_balance(m), &isolate);
    assert!(same_but_config(&fixed_state, &before));
    assert_eq!(
        refuse(&fixed_state, migrate(1, 1)).guard,
        Guard::NoValidPrimary { term: 1 }
    );
    for term in [1, 0, 99] {
        let (after, effects) = accept(&before, migrate(1, term));
        assert_eq!(
            effects.to_vec(),
            vec![deactivated(1, 3, 1), activated(1, 2, 3)]
        );
        let violation = invariants::migration_by_primary(&before, &after).unwrap_err();
        assert_eq!(violation.invariant, TransitionInvariant::MigrationByPrimary);
        assert_eq!(violation.nodes, vec![n(2), n(3)]);
        assert_eq!(
            violation.detail,
            "a1 moved from n3 to n2 with no valid primary holding term 1"
        );
        assert_eq!(
            invariants::check_transition(&before, &after).unwrap_err(),
            violation
        );
        // The other invariants hold: only the fencing is missing.
        invariants::check_state(&after).unwrap();
        invariants::epoch_monotonic(&before, &after).unwrap();
    }
    // The other guards are intact.
    assert_eq!(
        refuse(&before, migrate(2, 1)).guard,
        Guard::NotQueued { actor: actor(2) }
    );
    // With a valid primary and the current term, the mutant is the fixed protocol.
    let fixed_ok = a1_queued_for_balance(fixed(3));
    let mutant_ok = a1_queued_for_balance(m);
    let (fa, fe) = accept(&fixed_ok, migrate(1, 1));
    let (ma, me) = accept(&mutant_ok, migrate(1, 1));
    assert_eq!(fe, me);
    assert!(same_but_config(&fa, &ma));
    assert_invariants(&fixed_ok, &fa);
    // A stale term with a valid primary in office is accepted too; MigrationByPrimary, a
    // predicate over the two states, cannot see the event's term and does not flag it.
    let reelected = apply(&mutant_ok, &then(&isolate, &[elect(2)]));
    let (after, _) = accept(&reelected, migrate(1, 1));
    invariants::migration_by_primary(&reelected, &after).unwrap();
}

/// MigrateWithoutEpochIncrease: the moved actor keeps its epoch (and the counter stays);
/// EpochMonotonic flags the transition. PlaceActor still issues fresh epochs.
#[test]
fn mutant_migrate_without_epoch_increase() {
    let m = mutant(3, Mutant::MigrateWithoutEpochIncrease);
    let fixed_before = n3_leaving_with_two_actors(fixed(3));
    let before = n3_leaving_with_two_actors(m);
    assert!(same_but_config(&fixed_before, &before));
    assert_eq!(placements(&before), vec![(1, 3, 1), (2, 3, 2)]);
    let (fixed_after, fixed_effects) = accept(&fixed_before, migrate(1, 1));
    assert_eq!(
        fixed_effects,
        vec![deactivated(1, 3, 1), activated(1, 2, 3)]
    );
    assert_invariants(&fixed_before, &fixed_after);
    let (after, effects) = accept(&before, migrate(1, 1));
    assert_eq!(effects, vec![deactivated(1, 3, 1), activated(1, 2, 1)]);
    assert_eq!(placements(&after), vec![(1, 2, 1), (2, 3, 2)]);
    assert_eq!(after.epoch_counter(), 2);
    let violation = invariants::epoch_monotonic(&before, &after).unwrap_err();
    assert_eq!(violation.invariant, TransitionInvariant::EpochMonotonic);
    assert_eq!(violation.nodes, vec![n(2), n(3)]);
    assert_eq!(violation.detail, "a1 went from n3@1 to n2@1");
    assert_eq!(
        invariants::check_transition(&before, &after).unwrap_err(),
        violation
    );
    invariants::check_state(&after).unwrap();
    // Only the move is affected.
    let (_, effects) = accept(&after, place(3));
    assert_eq!(effects, vec![activated(3, 1, 3)]);
}

/// LeaveCompleteWithActors: NodeLeaveComplete without the HoldsActors guard; the actors stay
/// placed on a Left node, which SingleActivation forbids. Without actors it is the fixed
/// protocol.
#[test]
fn mutant_leave_complete_with_actors() {
    let m = mutant(3, Mutant::LeaveCompleteWithActors);
    let before = n3_leaving_with_two_actors(m);
    assert_eq!(
        refuse(&n3_leaving_with_two_actors(fixed(3)), leave_complete(3)).guard,
        Guard::HoldsActors {
            node: n(3),
            actors: 2
        }
    );
    let (after, effects) = accept(&before, leave_complete(3));
    assert_eq!(effects, vec![status_changed(3, Leaving, Left)]);
    assert_eq!(placements(&after), vec![(1, 3, 1), (2, 3, 2)]);
    assert_eq!(
        queue(&after),
        vec![(1, 3, NodeLeaving), (2, 3, NodeLeaving)]
    );
    let violation = invariants::single_activation(&after).unwrap_err();
    assert_eq!(violation.invariant, StateInvariant::SingleActivation);
    assert_eq!(violation.nodes, vec![n(3)]);
    assert_eq!(
        violation.detail,
        "a1 is placed on n3 (Left) with queue entry Some(MigrationEntry { from: NodeId(3), \
         reason: NodeLeaving })"
    );
    assert_eq!(invariants::check_state(&after).unwrap_err(), violation);
    // Without actors, the same leave under the mutant and the fixed protocol agree.
    let plain = |config| run(config, &then(&THREE_ACTIVE, &[leave(3)]));
    let (fa, fe) = accept(&plain(fixed(3)), leave_complete(3));
    let (ma, me) = accept(&plain(m), leave_complete(3));
    assert_eq!(fe, me);
    assert!(same_but_config(&fa, &ma));
}

/// FailForgetsActors: MarkNodeFailed without queueing the failed node's actors. The effects
/// are the fixed ones without the MigrationsQueued, the state the fixed one without the queue
/// entries, and SingleActivation flags the actors left on a Failed node with no entry.
#[test]
fn mutant_fail_forgets_actors() {
    let events = [partition(1, 3), partition(2, 3), detect(1, 3), detect(2, 3)];
    let build = |config| apply(&place_on(&run(config, &THREE_ACTIVE), 3, [1, 2]), &events);
    let fixed_before = build(fixed(3));
    let before = build(mutant(3, Mutant::FailForgetsActors));
    let (fixed_after, fixed_effects) = accept(&fixed_before, fail(3));
    assert_invariants(&fixed_before, &fixed_after);
    let (after, effects) = accept(&before, fail(3));
    let expected: Vec<Effect> = fixed_effects
        .iter()
        .filter(|e| !matches!(e, Effect::MigrationsQueued { .. }))
        .cloned()
        .collect();
    assert_eq!(fixed_effects.len(), expected.len() + 1);
    assert_eq!(effects, expected);
    assert!(after.queue().is_empty());
    let mut fields = RegistryFields::from(&fixed_after);
    fields.queue.clear();
    assert_eq!(RegistryFields::from(&after), fields);
    // Such a registry is refused when decoded: it violates SingleActivation.
    assert!(matches!(
        State::try_from(fields),
        Err(RegistryError::Invariant(v)) if v.invariant == StateInvariant::SingleActivation
    ));
    let violation = invariants::single_activation(&after).unwrap_err();
    assert_eq!(violation.invariant, StateInvariant::SingleActivation);
    assert_eq!(violation.nodes, vec![n(3)]);
    assert_eq!(
        violation.detail,
        "a1 is placed on n3 (Failed) with queue entry None"
    );
    // Nothing can move them now.
    assert_eq!(
        refuse(&after, migrate(1, 1)).guard,
        Guard::NotQueued { actor: actor(1) }
    );
}

#[test]
fn the_actor_mutants_are_named_and_need_the_fixed_protocol() {
    for (m, name) in [
        (
            Mutant::MigrateWithoutTermCheck,
            "migrate-without-term-check",
        ),
        (
            Mutant::MigrateWithoutEpochIncrease,
            "migrate-without-epoch-increase",
        ),
        (
            Mutant::LeaveCompleteWithActors,
            "leave-complete-with-actors",
        ),
        (Mutant::FailForgetsActors, "fail-forgets-actors"),
    ] {
        assert_eq!(m.name(), name);
        assert_eq!(Mutant::from_name(name), Some(m));
        assert!(Mutant::ALL.contains(&m));
        assert!(reference(3, 3).with_mutant(Some(m)).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// migrate_batch

#[test]
fn migrate_batch_moves_the_lowest_ids_first_up_to_max() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, 1..=4);
    let s = accept(&s, leave(3)).0;
    let (after, effects, applied) = migrate_batch(&s, 1, 2, &LeastLoaded).unwrap();
    assert_eq!(applied, vec![migrate(1, 1), migrate(2, 1)]);
    assert_eq!(effects.len(), 4);
    assert_eq!(
        queue(&after),
        vec![(3, 3, NodeLeaving), (4, 3, NodeLeaving)]
    );
    assert_invariants(&s, &after);
    // max 0 and an empty queue are no-ops, accepted whatever the term (nothing is checked).
    for (state, max, term) in [
        (&s, 0, 1),
        (&s, 0, 99),
        (&run(fixed(3), &THREE_ACTIVE), 5, 99),
    ] {
        let (same, effects, applied) = migrate_batch(state, term, max, &LeastLoaded).unwrap();
        assert_eq!(&same, state);
        assert!(effects.is_empty() && applied.is_empty());
    }
}

/// The first move refused: the batch is refused with the single step's refusal. A later move
/// refused (here at the epoch bound): the batch stops there and returns the moves so far.
#[test]
fn migrate_batch_refuses_like_a_step_and_stops_early_at_a_refusal() {
    let s = n3_leaving_with_two_actors(fixed(3));
    for term in [0, 2] {
        assert_eq!(
            migrate_batch(&s, term, 10, &LeastLoaded).unwrap_err(),
            step(&s, &migrate(1, term)).unwrap_err()
        );
    }
    let bounded = n3_leaving_with_two_actors(fixed(3).with_max_epoch(Some(3)).unwrap());
    let (after, effects, applied) = migrate_batch(&bounded, 1, 10, &LeastLoaded).unwrap();
    assert_eq!(applied, vec![migrate(1, 1)]);
    assert_eq!(
        effects.to_vec(),
        vec![deactivated(1, 3, 1), activated(1, 2, 3)]
    );
    assert_eq!(
        refuse(&after, migrate(2, 1)),
        refusal(ActionName::MigrateActor, epoch_bound(4, 3))
    );
    assert_eq!(
        migrate_batch(&after, 1, 10, &LeastLoaded).unwrap_err(),
        refusal(ActionName::MigrateActor, epoch_bound(4, 3))
    );
}

// ---------------------------------------------------------------------------------------------
// Serde

/// Five nodes: a1 and a2 queued for balance from n3, a4 leaving with n4, a5 failed with n5. The
/// JSON round trip gives the same state (the per-node index is rebuilt, not stored), and the
/// decoded state steps exactly like the original.
#[test]
fn a_state_with_actors_and_every_queue_reason_round_trips() {
    let s = run(fixed(5), &all_active(5));
    let s = place_on(&s, 3, [1, 2, 3]);
    let s = accept(&s, rebalance(1)).0;
    let s = place_on(&s, 4, [4]);
    let s = accept(&s, leave(4)).0;
    let s = place_on(&s, 5, [5]);
    let s = apply(
        &s,
        &[
            partition(1, 5),
            partition(2, 5),
            partition(3, 5),
            detect(1, 5),
            detect(2, 5),
            detect(3, 5),
            fail(5),
        ],
    );
    assert_eq!(
        queue(&s),
        vec![
            (1, 3, LoadBalancing),
            (2, 3, LoadBalancing),
            (4, 4, NodeLeaving),
            (5, 5, NodeFailed)
        ]
    );
    invariants::check_state(&s).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("hosted"), "{json}");
    let decoded: State = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded, s);
    for node in s.node_ids() {
        assert_eq!(decoded.hosted(node), s.hosted(node));
    }
    for event in Event::actor_events(&[actor(1), actor(4), actor(6)], 2) {
        assert_eq!(step(&decoded, &event), step(&s, &event), "{event}");
    }
}

#[test]
fn decoding_refuses_inconsistent_actor_tables() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1, 2]);
    let fields = RegistryFields::from(&s);
    let mut bad = fields.clone();
    bad.queue.insert(
        actor(1),
        MigrationEntry {
            from: n(2),
            reason: NodeFailed,
        },
    );
    assert_eq!(
        State::try_from(bad).unwrap_err(),
        RegistryError::QueueEntry {
            actor: actor(1),
            from: n(2)
        }
    );
    let mut bad = fields.clone();
    bad.placements.get_mut(&actor(2)).unwrap().node = n(4);
    assert_eq!(
        State::try_from(bad).unwrap_err(),
        RegistryError::PlacementNode {
            actor: actor(2),
            node: n(4)
        }
    );
    let mut bad = fields;
    bad.actors_max = 1;
    assert_eq!(
        State::try_from(bad).unwrap_err(),
        RegistryError::TooManyActors {
            actors: 2,
            actors_max: 1
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Liveness predicate

/// EventualPlacement(a) forbids staying forever where `a` is queued while nothing is
/// partitioned and a valid primary holds the current term; migrating `a` leaves that set.
#[test]
fn eventual_placement_traps_a_queued_actor_under_a_primary_in_office() {
    let trapped = |s: &State, a| Liveness::EventualPlacement(actor(a)).trapped(s);
    let s = n3_leaving_with_two_actors(fixed(3));
    assert!(trapped(&s, 1) && trapped(&s, 2));
    assert!(!trapped(&s, 3), "not queued");
    // A partition, or no valid primary, takes the state out of the set.
    assert!(!trapped(&accept(&s, partition(1, 2)).0, 1));
    let no_primary = place_on(&run(fixed(3), &THREE_ACTIVE), 1, [1]);
    let no_primary = accept(&no_primary, leave(1)).0;
    assert!(!trapped(&no_primary, 1));
    assert!(trapped(&accept(&no_primary, elect(2)).0, 1));
    let migrated = accept(&s, migrate(1, 1)).0;
    assert!(!trapped(&migrated, 1) && trapped(&migrated, 2));
    let all = Liveness::all(3, &[actor(1)]);
    assert!(all.contains(&Liveness::EventualPlacement(actor(1))));
    assert!(all.contains(&Liveness::EventualFailover(actor(1))));
    assert_eq!(all.last(), Some(&Liveness::BalanceSettles));
    assert!(!Liveness::all(3, &[]).contains(&Liveness::BalanceSettles));
}
