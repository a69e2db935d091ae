//! The actor actions (fixed protocol only): PlaceActor, MigrateActor, RebalanceActors and
//! RemoveActor.

use super::common::{candidates, issue_epoch, require_actors, require_primary_term, Stepped};
use crate::actor::{
    ActorId, Candidate, MigrationReason, Placement, PlacementStrategy, REBALANCE_BATCH_MAX,
};
use crate::effect::{Effect, Effects};
use crate::node::{NodeId, NodeStatus};
use crate::refusal::Guard;
use crate::rules::Rules;
use crate::state::State;
use smallvec::smallvec;

/// PlaceActor(a): `a` is not placed and the registry has room; it is placed on the Active node
/// the strategy chooses, with a fresh epoch.
pub(super) fn place_actor(
    rules: &Rules,
    state: &State,
    actor: ActorId,
    strategy: &dyn PlacementStrategy,
) -> Stepped {
    require_actors(rules)?;
    if let Some(p) = state.placement(actor) {
        return Err(Guard::AlreadyPlaced {
            actor,
            node: p.node,
        });
    }
    let actors_max = state.config().actors_max();
    if u64::try_from(state.placements().len()).unwrap_or(u64::MAX) >= actors_max {
        return Err(Guard::RegistryFull { actors_max });
    }
    let cs = candidates(state, None);
    let node = choose(strategy, actor, &cs).ok_or(Guard::NoTarget { actor })?;
    let epoch = issue_epoch(rules, state)?;
    let mut next = state.clone();
    next.put_actor(actor, Placement { node, epoch });
    next.set_epoch_counter(epoch);
    let effects = smallvec![Effect::ActorActivated { actor, node, epoch }];
    assert!(next
        .node(node)
        .is_some_and(|r| r.status == NodeStatus::Active));
    assert_eq!(next.placements().len(), state.placements().len() + 1);
    Ok((next, effects))
}

/// The strategy's choice, checked: a strategy that answers a non-candidate is ignored (the
/// reducer never places on a node that is not Active, whatever the strategy does).
fn choose(strategy: &dyn PlacementStrategy, actor: ActorId, cs: &[Candidate]) -> Option<NodeId> {
    strategy
        .choose(actor, cs)
        .filter(|n| cs.iter().any(|c| c.node == *n))
}

/// MigrateActor(a, t): `a` is queued, `t` is the current term held by a valid primary (fencing),
/// and some Active node other than the one it leaves can take it; it moves there with a fresh
/// epoch and leaves the queue. Registry v2: when no other Active node is left, the node it
/// leaves takes it again, if Active, with a fresh epoch (a cluster scaled down to one member
/// holds no actor queued forever: a rebalance entry when the other nodes left, or a failed node's
/// actors once it recovered and rejoined, its old activation fenced when it was declared).
pub(super) fn migrate_actor(
    rules: &Rules,
    state: &State,
    actor: ActorId,
    term: u64,
    strategy: &dyn PlacementStrategy,
) -> Stepped {
    require_actors(rules)?;
    let entry = state.queue().get(actor).ok_or(Guard::NotQueued { actor })?;
    if rules.migrate_checks_term {
        require_primary_term(state, term)?;
    }
    let old = state.placement(actor).ok_or(Guard::NotPlaced { actor })?;
    let others = candidates(state, Some(entry.from));
    let cs = if others.is_empty() {
        candidates(state, None)
    } else {
        others
    };
    let node = choose(strategy, actor, &cs).ok_or(Guard::NoTarget { actor })?;
    let epoch = if rules.migrate_fresh_epoch {
        issue_epoch(rules, state)?
    } else {
        old.epoch
    };
    let mut next = state.clone();
    next.put_actor(actor, Placement { node, epoch });
    next.set_epoch_counter(state.epoch_counter().max(epoch));
    // The effects say exactly what changed: nothing, when the mutant that keeps the epoch moves
    // the actor back to the node it was on (the last member taking its actor back).
    let mut effects: Effects = if (Placement { node, epoch }) == old {
        Effects::new()
    } else {
        smallvec![
            Effect::ActorDeactivated {
                actor,
                node: old.node,
                epoch: old.epoch,
            },
            Effect::ActorActivated { actor, node, epoch },
        ]
    };
    if !rules.migrate_dequeues {
        // Mutant: queued again at its new node (back at the same node, the entry is unchanged:
        // no effect).
        next.enqueue(actor, node, entry.reason);
        if node != entry.from {
            effects.insert(
                0,
                Effect::MigrationsQueued {
                    from: node,
                    reason: entry.reason,
                    actors: 1,
                },
            );
        }
    }
    assert!(!rules.migrate_dequeues || !next.queue().contains(actor));
    assert!(node != entry.from || state.active() == crate::node::NodeSet::single(node));
    assert!(epoch > old.epoch || !rules.migrate_fresh_epoch);
    Ok((next, effects))
}

/// RebalanceActors(t): `t` is the current term held by a valid primary; every Active node whose
/// load, less what is already queued to leave it, exceeds the balanced share (total load on
/// Active nodes over their number, rounded up) gets its excess queued with reason LoadBalancing,
/// lowest actor ids first, at most [`REBALANCE_BATCH_MAX`] actors in all. Refused when nothing
/// is over the share.
pub(super) fn rebalance_actors(rules: &Rules, state: &State, term: u64) -> Stepped {
    require_actors(rules)?;
    require_primary_term(state, term)?;
    let active = state.active();
    let total: u64 = active.iter().map(|n| state.load(n)).sum();
    let members = u64::from(active.len().max(1));
    let share = if rules.share_rounds_up {
        total.div_ceil(members)
    } else {
        total / members
    };
    let mut next = state.clone();
    let mut effects = Effects::new();
    let mut budget = REBALANCE_BATCH_MAX;
    for node in active.iter() {
        let Some(hosted) = state.hosted(node) else {
            continue;
        };
        let leaving = hosted
            .iter()
            .filter(|&&a| state.queue().contains(a))
            .count();
        let staying = hosted.len() - leaving;
        let excess = staying.saturating_sub(usize::try_from(share).unwrap_or(usize::MAX));
        let take = excess.min(budget);
        let mut queued = 0u64;
        for &actor in hosted
            .iter()
            .filter(|&&a| !state.queue().contains(a))
            .take(take)
        {
            next.enqueue(actor, node, MigrationReason::LoadBalancing);
            queued += 1;
        }
        budget -= take;
        if queued > 0 {
            effects.push(Effect::MigrationsQueued {
                from: node,
                reason: MigrationReason::LoadBalancing,
                actors: queued,
            });
        }
    }
    if effects.is_empty() {
        return Err(Guard::Balanced { share });
    }
    assert!(next.queue().len() > state.queue().len());
    assert!(next.queue().len() - state.queue().len() <= REBALANCE_BATCH_MAX);
    Ok((next, effects))
}

/// RemoveActor(a): `a` is placed; it is deactivated and forgotten (with its queue entry).
pub(super) fn remove_actor(rules: &Rules, state: &State, actor: ActorId) -> Stepped {
    require_actors(rules)?;
    let old = state.placement(actor).ok_or(Guard::NotPlaced { actor })?;
    let mut next = state.clone();
    next.drop_actor(actor);
    let effects = smallvec![Effect::ActorDeactivated {
        actor,
        node: old.node,
        epoch: old.epoch,
    }];
    assert!(next.placement(actor).is_none() && !next.queue().contains(actor));
    assert_eq!(next.placements().len() + 1, state.placements().len());
    Ok((next, effects))
}
