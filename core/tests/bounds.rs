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

/// A random walk of `steps` steps from the initial state of `config` (each step one of the
/// accepted candidate events, chosen by `seed`), calling `check` on every candidate event of
/// every state it visits with `step`'s answer.
fn walk(
    config: Config,
    seed: u64,
    steps: usize,
    mut check: impl FnMut(
        &State,
        &Event,
        &Result<(State, membership_core::Effects), membership_core::Refusal>,
    ) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let actors = [ActorId(1), ActorId(2)];
    let mut rng = Rng::new(seed);
    let mut state = State::initial(config);
    for _ in 0..steps {
        let mut next: Vec<State> = Vec::new();
        for event in candidate_events(&state, &actors) {
            let stepped = step(&state, &event);
            check(&state, &event, &stepped)?;
            if let Ok((n, _)) = stepped {
                next.push(n);
            }
        }
        if next.is_empty() {
            break;
        }
        state = next[rng.below(next.len())].clone();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn lifting_the_bound_accepts_every_bound_refusal(
        config in bounded_config(),
        seed in any::<u64>(),
        steps in 0usize..80,
    ) {
        walk(config, seed, steps, |state, event, stepped| {
            if let Err(refusal) = stepped {
                if matches!(refusal.guard, Guard::BoundReached { .. }) {
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
            Ok(())
        })?;
    }

    /// `enabled` answers exactly as `step` does (MarkNodeFailed's guards are checked without its
    /// transition): on random walks of every mode, for every candidate event.
    #[test]
    fn enabled_refuses_exactly_what_step_refuses(
        config in bounded_config(),
        seed in any::<u64>(),
        steps in 0usize..80,
    ) {
        walk(config, seed, steps, |state, event, stepped| {
            prop_assert_eq!(
                enabled(state, event).err(),
                stepped.as_ref().err().cloned(),
                "{}",
                event
            );
            Ok(())
        })?;
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
