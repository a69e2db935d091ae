//! The reducer: `step(&State, &Event) -> Result<(State, Effects), Refusal>`.
//!
//! One function per spec action, named after it. Each checks the action's guards in the order
//! the spec lists them and returns the first that fails as a [`Guard`]; otherwise it builds the
//! successor state and the effects. Where the reference model, the buggy model or a mutant
//! differ (feature `checking`), the action consults one named switch of [`Rules`], computed once
//! per step by `Rules::of`; a production build always runs `Rules::FIXED`, so every action reads
//! like the fixed spec.
//!
//! **The bound is the last guard.** Every action checks the checking bounds (`MaxView` on view
//! numbers and terms, `MaxEpoch` on epochs: [`Guard::BoundReached`]) after all its other guards.
//! So a refusal by the bound means "enabled in the unbounded protocol": the model checker's
//! liveness pass relies on it, and a property test (`core/tests/bounds.rs`) pins it by lifting
//! the bound from every bound-refused step and checking that the step is then accepted.
//!
//! **Assertions.** Each action asserts its postconditions. Those that cost O(1) (a constant
//! number of records or counters) are `assert!` and run in release builds too, where they catch
//! a corrupted store; those that walk every node or actor are `debug_assert!`. No state that
//! decodes (see [`crate::RegistryError`]) makes any of them fail.
//!
//! Effects come in a fixed order within one transition: status changes, fencing, step-downs,
//! queued migrations, new primaries, then view changes in node-id order; an actor move is its
//! deactivation then its activation.

mod actors;
mod common;
mod failure;
mod leadership;
mod membership;
mod network;

use crate::actor::{LeastLoaded, PlacementStrategy};
use crate::effect::Effects;
use crate::event::Event;
use crate::refusal::Refusal;
use crate::rules::Rules;
use crate::state::State;
use actors::{migrate_actor, place_actor, rebalance_actors, remove_actor};
use failure::{detect_failure, mark_node_failed, mark_node_failed_guards, node_recover};
use leadership::{elect_primary, primary_step_down};
use membership::{node_join, node_join_complete, node_leave, node_leave_complete, send_heartbeat};
use network::{create_partition, heal_partition, reset_heartbeats, sync_views};

/// Applies `event` to `state` with the default placement strategy ([`LeastLoaded`]). Pure and
/// total: for every event in every state it returns either the successor state with the effects
/// the outside world must execute, or the [`Refusal`] naming the guard that failed (the state is
/// then unchanged, since it is borrowed).
pub fn step(state: &State, event: &Event) -> Result<(State, Effects), Refusal> {
    step_with(state, event, &LeastLoaded)
}

/// Whether [`step`] accepts `event` in `state`: `Ok` exactly when it does, else the same
/// refusal. Cheaper where the transition costs more than its guards: MarkNodeFailed's guards
/// are checked without queueing the node's actors (O(actors on the node)), which an Agent that
/// asks on every snapshot whether a silent member may be declared would otherwise pay each time.
/// Every other event runs [`step`].
pub fn enabled(state: &State, event: &Event) -> Result<(), Refusal> {
    let outcome = match *event {
        Event::MarkNodeFailed { node } => {
            let rules = Rules::of(state.config());
            mark_node_failed_guards(&rules, state, node)
                .map(|_| ())
                .map_err(|guard| Refusal {
                    action: event.name(),
                    guard,
                })
        }
        _ => step(state, event).map(|_| ()),
    };
    // The postcondition (debug builds: it runs the whole step): the same answer as `step`.
    debug_assert!(
        !matches!(event, Event::MarkNodeFailed { .. })
            || outcome.as_ref().err() == step(state, event).err().as_ref()
    );
    outcome
}

/// [`step`] with an explicit placement strategy (used by PlaceActor and MigrateActor).
pub fn step_with(
    state: &State,
    event: &Event,
    strategy: &dyn PlacementStrategy,
) -> Result<(State, Effects), Refusal> {
    let action = event.name();
    let rules = Rules::of(state.config());
    let r = &rules;
    let outcome = match *event {
        Event::NodeJoin { node } => node_join(r, state, node),
        Event::NodeJoinComplete { node } => node_join_complete(r, state, node),
        Event::NodeLeave { node } => node_leave(r, state, node),
        Event::NodeLeaveComplete { node } => node_leave_complete(r, state, node),
        Event::SendHeartbeat { node } => send_heartbeat(r, state, node),
        Event::DetectFailure { detector, target } => detect_failure(r, state, detector, target),
        Event::MarkNodeFailed { node } => mark_node_failed(r, state, node),
        Event::NodeRecover { node } => node_recover(r, state, node),
        Event::ElectPrimary { node } => elect_primary(r, state, node),
        Event::PrimaryStepDown { node } => primary_step_down(r, state, node),
        Event::CreatePartition { a, b } => create_partition(state, a, b),
        Event::HealPartition { a, b } => heal_partition(r, state, a, b),
        Event::ResetHeartbeats => Ok(reset_heartbeats(r, state)),
        Event::SyncViews { a, b } => sync_views(r, state, a, b),
        Event::PlaceActor { actor } => place_actor(r, state, actor, strategy),
        Event::MigrateActor { actor, term } => migrate_actor(r, state, actor, term, strategy),
        Event::RebalanceActors { term } => rebalance_actors(r, state, term),
        Event::RemoveActor { actor } => remove_actor(r, state, actor),
    };
    let (next, effects) = outcome.map_err(|guard| Refusal { action, guard })?;
    assert_eq!(
        next.config(),
        state.config(),
        "{event}: the configuration never changes"
    );
    assert_eq!(
        next.nodes().len(),
        state.nodes().len(),
        "{event}: the node table keeps its size"
    );
    assert!(
        next.term_counter() >= state.term_counter(),
        "{event}: term counter decreased"
    );
    assert!(
        next.view_counter() >= state.view_counter(),
        "{event}: view counter decreased"
    );
    assert!(
        next.epoch_counter() >= state.epoch_counter(),
        "{event}: epoch counter decreased"
    );
    Ok((next, effects))
}
