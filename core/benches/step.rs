//! Time of one reducer `step` in the fixed protocol, on a realistic cluster of 5, 100 and 1,000
//! nodes: every node joined and Active, an elected primary, two partitions (one of which made n1
//! miss the last join, so its view is older than the others'), actors placed.
//!
//! Run with `cargo bench -p membership-core --bench step`. The goals: at most 1 us per event at
//! 5 nodes and at most 20 us at 1,000 nodes. Each benchmark steps one event from the same state:
//! the five frequent events (SyncViews, ElectPrimary, SendHeartbeat, DetectFailure, a refusal)
//! and the membership changes and round events whose cost grows with the cluster (NodeJoinComplete,
//! NodeLeave, NodeLeaveComplete, MarkNodeFailed, ResetHeartbeats, PlaceActor). `mix_of_5` steps the five
//! frequent events in one iteration (divide by 5 for the time per event; criterion also prints
//! it as a throughput in events per second). Medians are in
//! `target/criterion/step_<n>_nodes/<bench>/new/estimates.json` (`median.point_estimate`, ns).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use membership_core::{step, ActorId, Config, Event, Guard, NodeId, Refusal, State};
use std::hint::black_box;
use std::time::Duration;

fn node(i: u16) -> NodeId {
    NodeId(i)
}

/// Steps `event`, which must be accepted (setup only).
fn apply(state: State, event: Event) -> State {
    match step(&state, &event) {
        Ok((next, _)) => next,
        Err(refusal) => panic!("setup: {event} refused: {refusal}"),
    }
}

/// Cuts n1 off from enough nodes that it loses its majority, makes it step down, and heals those
/// partitions again (the partition n1-n{count} made earlier stays).
fn step_down_n1(mut state: State, count: u16) -> State {
    let mut cut = Vec::new();
    for i in 2..count {
        if !state.has_majority(node(1)) {
            break;
        }
        state = apply(
            state,
            Event::CreatePartition {
                a: node(1),
                b: node(i),
            },
        );
        cut.push(i);
    }
    state = apply(state, Event::PrimaryStepDown { node: node(1) });
    for i in cut {
        state = apply(
            state,
            Event::HealPartition {
                a: node(1),
                b: node(i),
            },
        );
    }
    state
}

/// The benchmark cluster of `count` (at least 5) nodes.
fn cluster(count: u16) -> State {
    let config = match Config::fixed(count) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    let mut state = apply(State::initial(config), Event::NodeJoin { node: node(1) });
    for i in 2..count {
        state = apply(state, Event::NodeJoin { node: node(i) });
        state = apply(state, Event::NodeJoinComplete { node: node(i) });
    }
    // The last node joins while partitioned from n1: n1 keeps the previous view.
    state = apply(state, Event::NodeJoin { node: node(count) });
    state = apply(
        state,
        Event::CreatePartition {
            a: node(1),
            b: node(count),
        },
    );
    state = apply(state, Event::NodeJoinComplete { node: node(count) });
    // The bootstrap primary loses and regains its majority, and is elected again (term 2).
    state = step_down_n1(state, count);
    state = apply(state, Event::ElectPrimary { node: node(1) });
    // n2 and n3 cannot communicate.
    apply(
        state,
        Event::CreatePartition {
            a: node(2),
            b: node(3),
        },
    )
}

/// The representative events, each with the state it is stepped from and the expected outcome
/// (checked once before measuring).
fn cases(count: u16) -> Vec<(&'static str, State, Event, Option<Guard>)> {
    let base = cluster(count);
    let stepped_down = step_down_n1(base.clone(), count);
    // The last node left, and asks to join again.
    let last = node(count);
    let left = apply(
        apply(
            apply(
                base.clone(),
                Event::HealPartition {
                    a: node(1),
                    b: last,
                },
            ),
            Event::NodeLeave { node: last },
        ),
        Event::NodeLeaveComplete { node: last },
    );
    let rejoining = apply(left, Event::NodeJoin { node: last });
    let leaving = apply(base.clone(), Event::NodeLeave { node: last });
    let round_over = apply(base.clone(), Event::ResetHeartbeats);
    let mut placed = base.clone();
    for a in 1..=u64::from(count) * ACTORS_PER_NODE {
        placed = apply(placed, Event::PlaceActor { actor: ActorId(a) });
    }
    let silent = apply(placed.clone(), Event::ResetHeartbeats);
    let next_actor = ActorId(u64::from(count) * ACTORS_PER_NODE + 1);
    vec![
        (
            "sync_views_enabled",
            base.clone(),
            // Registry v2: n1, behind, adopts the current configuration.
            Event::SyncViews {
                a: node(1),
                b: node(1),
            },
            None,
        ),
        (
            "elect_primary_after_step_down",
            stepped_down,
            Event::ElectPrimary { node: node(2) },
            None,
        ),
        (
            "send_heartbeat",
            base.clone(),
            Event::SendHeartbeat { node: node(4) },
            None,
        ),
        (
            "detect_failure",
            base.clone(),
            Event::DetectFailure {
                detector: node(2),
                target: node(3),
            },
            None,
        ),
        (
            "elect_primary_refused",
            base.clone(),
            Event::ElectPrimary { node: node(2) },
            Some(Guard::ValidPrimaryExists { primary: node(1) }),
        ),
        (
            "node_join_complete",
            rejoining,
            Event::NodeJoinComplete { node: last },
            None,
        ),
        (
            "node_leave",
            base.clone(),
            Event::NodeLeave { node: node(4) },
            None,
        ),
        (
            "node_leave_complete",
            leaving,
            Event::NodeLeaveComplete { node: last },
            None,
        ),
        ("reset_heartbeats", round_over, Event::ResetHeartbeats, None),
        (
            "mark_node_failed_hosting_actors",
            silent,
            Event::MarkNodeFailed { node: node(4) },
            None,
        ),
        (
            "place_actor",
            placed,
            Event::PlaceActor { actor: next_actor },
            None,
        ),
    ]
}

/// Actors placed per node before the actor events are measured.
const ACTORS_PER_NODE: u64 = 10;

/// The five frequent events, measured together as `mix_of_5`.
const MIX: usize = 5;

fn bench_step(c: &mut Criterion) {
    for count in [5u16, 100, 1_000] {
        let cases = cases(count);
        for (name, state, event, refused) in &cases {
            let outcome = step(state, event).map(|_| ()).map_err(|r: Refusal| r.guard);
            assert_eq!(outcome.err(), *refused, "{count} nodes, {name}: {event}");
        }
        let mut group = c.benchmark_group(format!("step_{count}_nodes"));
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for (name, state, event, _) in &cases {
            group.bench_function(*name, |b| {
                b.iter(|| step(black_box(state), black_box(event)))
            });
        }
        group.throughput(Throughput::Elements(MIX as u64));
        group.bench_function("mix_of_5", |b| {
            b.iter(|| {
                for (_, state, event, _) in cases.iter().take(MIX) {
                    let _ = black_box(step(black_box(state), black_box(event)));
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
