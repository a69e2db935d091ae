//! The checking bound is the last guard of every action (stated in `core/src/step.rs`; the model
//! checker's liveness pass relies on it): on random walks of bounded configurations in every
//! mode, every step refused by the bound is accepted once the bound is lifted.

// Test code (helpers of the property tests included): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use membership_core::checking::Mode;
use membership_core::testing::{candidate_events, config, Rng};
use membership_core::{enabled, step, ActorId, Config, Event, Guard, State};
use proptest::prelude::*;

fn bounded_config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(Mode::Fixed), Just(Mode::Reference), Just(Mode::Buggy)],
        1u16..=4,
        1u64..=4,
        prop::option::of(1u64..=3),
    )
        .prop_map(|(mode, count, max_view, max_epoch)| {
            config(mode, count, Some(max_view), None)
                .with_max_epoch(if mode == Mode::Fixed { max_epoch } else { None })
                .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn lifting_the_bound_accepts_every_bound_refusal(
        config in bounded_config(),
        seed in any::<u64>(),
        steps in 0usize..80,
    ) {
        let actors = [ActorId(1), ActorId(2)];
        let mut rng = Rng::new(seed);
        let mut state = State::initial(config);
        let mut refused_by_bound = 0;
        for _ in 0..steps {
            let candidates: Vec<Event> = candidate_events(&state, &actors);
            for event in &candidates {
                if let Err(refusal) = step(&state, event) {
                    if matches!(refusal.guard, Guard::BoundReached { .. }) {
                        refused_by_bound += 1;
                        let unbounded = state.with_config(config.lifted());
                        prop_assert!(
                            step(&unbounded, event).is_ok(),
                            "{} refused by the bound ({}) but refused otherwise without it: {:?}",
                            event,
                            refusal,
                            step(&unbounded, event).err()
                        );
                    }
                }
            }
            let enabled: Vec<(Event, State)> = candidates
                .iter()
                .filter_map(|e| step(&state, e).ok().map(|(n, _)| (*e, n)))
                .collect();
            if enabled.is_empty() {
                break;
            }
            state = enabled[rng.below(enabled.len())].1.clone();
        }
        let _ = refused_by_bound;
    }
}

/// The test is not vacuous: random walks of small bounds hit the bound often.
#[test]
fn bounded_walks_hit_the_bound() {
    let mut hits = 0;
    for seed in 0..50u64 {
        let c = config(Mode::Fixed, 3, Some(3), None)
            .with_max_epoch(Some(2))
            .unwrap();
        let mut rng = Rng::new(seed);
        let mut state = State::initial(c);
        for _ in 0..40 {
            let candidates = candidate_events(&state, &[ActorId(1)]);
            hits += candidates
                .iter()
                .filter(|e| {
                    matches!(step(&state, e), Err(r) if matches!(r.guard, Guard::BoundReached { .. }))
                })
                .count();
            let enabled: Vec<State> = candidates
                .iter()
                .filter_map(|e| step(&state, e).ok().map(|(n, _)| n))
                .collect();
            state = enabled[rng.below(enabled.len())].clone();
        }
    }
    assert!(hits > 100, "only {hits} bound refusals");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `enabled` answers exactly as `step` does (MarkNodeFailed's guards are checked without its
    /// transition): on random walks of every mode, for every candidate event.
    #[test]
    fn enabled_refuses_exactly_what_step_refuses(
        config in bounded_config(),
        seed in any::<u64>(),
        steps in 0usize..80,
    ) {
        let actors = [ActorId(1), ActorId(2)];
        let mut rng = Rng::new(seed);
        let mut state = State::initial(config);
        for _ in 0..steps {
            let candidates: Vec<Event> = candidate_events(&state, &actors);
            for event in &candidates {
                let stepped = step(&state, event);
                prop_assert_eq!(
                    enabled(&state, event).err(),
                    stepped.as_ref().err().cloned(),
                    "{}", event
                );
            }
            let next: Vec<State> = candidates
                .iter()
                .filter_map(|e| step(&state, e).ok().map(|(n, _)| n))
                .collect();
            if next.is_empty() {
                break;
            }
            state = next[rng.below(next.len())].clone();
        }
    }
}
