//! The migration batch: up to [`MIGRATION_BATCH_MAX`] queued actors moved as consecutive
//! MigrateActor steps, the work of one transaction. The one loop that does it, used by
//! [`migrate_batch`] and by the shared transaction ([`crate::execute`], which also collects each
//! step's footprint).

use crate::actor::{ActorId, PlacementStrategy, MIGRATION_BATCH_MAX};
use crate::effect::Effect;
use crate::event::Event;
use crate::refusal::Refusal;
use crate::state::State;
use crate::step::step_with;

/// Migrates up to `max` (at most [`MIGRATION_BATCH_MAX`]) queued actors, lowest actor ids first,
/// as consecutive MigrateActor steps under `term`: the work of one batch transaction. Stops early
/// at the first refusal after at least one move (for example when no target remains). Returns
/// the new state, the effects, and the events applied (for the transaction's log).
pub fn migrate_batch(
    state: &State,
    term: u64,
    max: usize,
    strategy: &dyn PlacementStrategy,
) -> Result<(State, Vec<Effect>, Vec<Event>), Refusal> {
    migrate_batch_observed(state, term, max, strategy, |_, _| {})
}

/// [`migrate_batch`], calling `observe` with the state before and the event of each step it
/// applies (not of the refused step that ends it), in order.
pub(crate) fn migrate_batch_observed(
    state: &State,
    term: u64,
    max: usize,
    strategy: &dyn PlacementStrategy,
    mut observe: impl FnMut(&State, &Event),
) -> Result<(State, Vec<Effect>, Vec<Event>), Refusal> {
    let limit = max.min(MIGRATION_BATCH_MAX);
    let actors: Vec<ActorId> = state.queue().actors().take(limit).collect();
    let mut current = state.clone();
    let mut effects = Vec::new();
    let mut applied = Vec::new();
    for actor in actors {
        let event = Event::MigrateActor { actor, term };
        match step_with(&current, &event, strategy) {
            Ok((next, more)) => {
                observe(&current, &event);
                current = next;
                effects.extend(more);
                applied.push(event);
            }
            Err(refusal) if applied.is_empty() => return Err(refusal),
            Err(_) => break,
        }
    }
    assert!(applied.len() <= limit);
    assert!(effects.len() >= 2 * applied.len());
    Ok((current, effects, applied))
}
