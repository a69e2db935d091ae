//! Renumbering by rank (`membership_core::checking::renumbered`) is a bisimulation of the fixed
//! protocol without bounds, which is what lets the model checker explore a finite graph of the
//! unbounded protocol (README, "Model checking").
//!
//! The argument: the fixed protocol draws every view number, term and epoch from a registry
//! counter (`counter + 1`), and otherwise only copies these values and compares them with one
//! another for order (`>`, `max`) and equality (`=`, the term fence `t = term_counter`), and
//! 0 with "no term"/"no view". Renumbering each kind by rank (0 stays 0, the counter the largest
//! rank) keeps every such comparison, and a fresh value (`counter + 1`) is above everything in
//! both the state and its renumbering. So stepping a state and its renumbering with the same
//! event (its term parameter renumbered the same way) gives successors with the same
//! renumbering, refused steps are refused by the same guard, and every invariant, every
//! liveness property's `Trapped` and every fair action's enabledness agree. This test checks
//! exactly that on random reachable states of the fixed protocol and every mutant, for every
//! event instance, including events whose term is not the current one.

// Test code (helpers of the property tests included): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use membership_core::checking::{fenced_by_term, renumbered, Mode, Mutant};
use membership_core::invariants::{fair_events, Liveness};
use membership_core::testing::{all_active, config, run, Rng};
use membership_core::{step, ActorId, Event, State, StateInvariant, TransitionInvariant};
use proptest::prelude::*;
use std::mem::discriminant;

const ACTORS: [ActorId; 2] = [ActorId(1), ActorId(2)];

/// The ranks of the terms `state` holds (0, every node's term, the term counter).
fn term_table(state: &State) -> Vec<u64> {
    let mut table: Vec<u64> = std::iter::once(0)
        .chain(state.nodes().iter().map(|r| r.term))
        .chain([state.term_counter()])
        .collect();
    table.sort_unstable();
    table.dedup();
    table
}

/// `event` with its term parameter renumbered as `state`'s terms are; a term the state does not
/// hold becomes a value the renumbered state does not hold either, on the same side of the
/// counter.
fn renumber_event(state: &State, event: Event) -> Event {
    let table = term_table(state);
    let map = |t: u64| match table.binary_search(&t) {
        Ok(i) => i as u64,
        Err(i) if i >= table.len() => 1_000 + t, // above the counter: still above
        Err(i) => i as u64 + 500,                // between held values: not held
    };
    match event {
        Event::MigrateActor { actor, term } => Event::MigrateActor {
            actor,
            term: map(term),
        },
        Event::RebalanceActors { term } => Event::RebalanceActors { term: map(term) },
        other => other,
    }
}

/// Every event instance, with terms around the state's: each held term, the counter's
/// neighbours, and one far above.
fn events(state: &State) -> Vec<Event> {
    let mut events = Event::all(state.config().node_count());
    let mut terms = term_table(state);
    terms.extend([state.term_counter() + 1, state.term_counter() + 7]);
    for &actor in &ACTORS {
        events.push(Event::PlaceActor { actor });
        events.push(Event::RemoveActor { actor });
        for &term in &terms {
            events.push(Event::MigrateActor { actor, term });
        }
    }
    for &term in &terms {
        events.push(Event::RebalanceActors { term });
    }
    events
}

/// Checks the bisimulation conditions at `state`.
fn check_state(state: &State) -> Result<(), TestCaseError> {
    let r = renumbered(state);
    prop_assert_eq!(renumbered(&r), r.clone(), "renumbering is idempotent");
    prop_assert_eq!(
        renumbered(&r.with_config(*state.config())),
        r.clone(),
        "renumbering depends on values only"
    );
    for inv in StateInvariant::ALL {
        prop_assert_eq!(inv.check(state).is_ok(), inv.check(&r).is_ok(), "{}", inv);
    }
    let count = state.config().node_count();
    for property in Liveness::all(count, &ACTORS) {
        prop_assert_eq!(
            property.trapped(state),
            property.trapped(&r),
            "{}",
            property
        );
    }
    let fenced = fenced_by_term(state.config());
    for event in events(state) {
        let mapped = renumber_event(state, event);
        match (step(state, &event), step(&r, &mapped)) {
            (Ok((next, _)), Ok((next_r, _))) => {
                prop_assert_eq!(
                    renumbered(&next),
                    renumbered(&next_r),
                    "{} from {:?}",
                    event,
                    state
                );
                for inv in TransitionInvariant::ALL {
                    prop_assert_eq!(
                        inv.check(state, &next).is_ok(),
                        inv.check(&r, &next_r).is_ok(),
                        "{} on {}",
                        inv,
                        event
                    );
                }
                // Whether the step grants a term (changes the term counter) is kept too: the
                // checker's fairness for MigrateActor(a, t) relies on it.
                prop_assert_eq!(
                    next.term_counter() != state.term_counter(),
                    next_r.term_counter() != r.term_counter()
                );
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(discriminant(&a.guard), discriminant(&b.guard), "{}", event);
            }
            (a, b) => prop_assert!(
                false,
                "{} enabled differently: {:?} vs {:?}",
                event,
                a.map(|_| ()),
                b.map(|_| ())
            ),
        }
        // The term fence: a MigrateActor or RebalanceActors with another term than the
        // current one is never enabled (the checker's per-instance fairness relies on it).
        if fenced {
            if let Event::MigrateActor { term, .. } | Event::RebalanceActors { term } = event {
                if term != state.term_counter() {
                    prop_assert!(step(state, &event).is_err(), "{} enabled", event);
                }
            }
        }
    }
    for event in fair_events(count, &ACTORS, state.term_counter().max(1)) {
        let mapped = renumber_event(state, event);
        prop_assert_eq!(step(state, &event).is_ok(), step(&r, &mapped).is_ok());
    }
    Ok(())
}

fn unbounded() -> impl Strategy<Value = membership_core::Config> {
    (
        2u16..=4,
        prop::option::of(prop::sample::select(Mutant::ALL.to_vec())),
    )
        .prop_map(|(count, mutant)| config(Mode::Fixed, count, None, mutant))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn renumbering_by_rank_is_a_bisimulation(
        config in unbounded(),
        seed in any::<u64>(),
        steps in 0usize..60,
        up in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let mut state = if up {
            run(config, &all_active(config.node_count()))
        } else {
            State::initial(config)
        };
        for _ in 0..steps {
            check_state(&state)?;
            let enabled: Vec<State> = events(&state)
                .iter()
                .filter_map(|e| step(&state, e).ok().map(|(n, _)| n))
                .collect();
            if enabled.is_empty() {
                break;
            }
            state = enabled[rng.below(enabled.len())].clone();
        }
        check_state(&state)?;
    }
}

/// The test is not vacuous: walks reach states whose renumbering differs from them (values
/// skipped by leaves, failures and step-downs), with actors placed and terms granted.
#[test]
fn walks_reach_states_that_renumbering_changes() {
    let mut changed = 0;
    for seed in 0..40u64 {
        let c = config(Mode::Fixed, 3, None, None);
        let mut rng = Rng::new(seed);
        let mut state = run(c, &all_active(3));
        for _ in 0..60 {
            if renumbered(&state) != state && !state.placements().is_empty() {
                changed += 1;
            }
            let enabled: Vec<State> = events(&state)
                .iter()
                .filter_map(|e| step(&state, e).ok().map(|(n, _)| n))
                .collect();
            state = enabled[rng.below(enabled.len())].clone();
        }
    }
    assert!(
        changed > 200,
        "only {changed} states changed by renumbering"
    );
}
