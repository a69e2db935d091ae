//! Time of one Agent input at 5, 100 and 250 nodes: the work a node runtime does on every probe
//! answer and every snapshot (the policy runs after every input). A node of a 250-node
//! cluster handles about 40 probe answers and 20 snapshots a second at the default timing, so
//! this cost times the inputs is one node's CPU; 250 node runtimes on one machine multiply it
//! again.
//!
//! The setup: every node joined and Active, n1 the primary, every node's heartbeat in the
//! open round; the measured node (the middle one by id) has joined, seen a snapshot and had a
//! probe answered by every peer. Each measurement runs one input on a fresh copy of that Agent
//! (the copy is not timed) and drains its outputs.
//!
//! Run with `cargo bench -p membership-core --bench agent`. Medians are in
//! `target/criterion/agent_<n>_nodes/<bench>/new/estimates.json`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use membership_core::{step, Agent, Config, Event, NodeId, Rounds, State, Timing};
use std::hint::black_box;
use std::time::Duration;

/// Steps `event`, which must be accepted (setup only).
fn apply(state: State, event: Event) -> State {
    match step(&state, &event) {
        Ok((next, _)) => next,
        Err(refusal) => panic!("setup: {event} refused: {refusal}"),
    }
}

/// `count` Active nodes, n1 the primary, every heartbeat of the open round received.
fn cluster(count: u16) -> State {
    let config = match Config::fixed(count) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    let mut state = State::initial(config);
    for i in 1..=count {
        state = apply(state, Event::NodeJoin { node: NodeId(i) });
        if state.active().len() < i {
            state = apply(state, Event::NodeJoinComplete { node: NodeId(i) });
        }
    }
    if !state.node(NodeId(1)).is_some_and(|r| r.believes_primary) {
        state = apply(state, Event::ElectPrimary { node: NodeId(1) });
    }
    for i in 1..=count {
        state = apply(state, Event::SendHeartbeat { node: NodeId(i) });
    }
    assert_eq!(state.active().len(), count);
    state
}

/// The rounds a snapshot of `state` is read with: round 1, every node's heartbeat in it.
fn rounds(state: &State) -> Rounds {
    Rounds {
        round: 1,
        heartbeat_rounds: state.node_ids().map(|n| (n, 1_u64)).collect(),
    }
}

/// Drains the Agent's outputs (the bench measures the input, not a driver).
fn drain(agent: &mut Agent) -> usize {
    let mut count = 0;
    while let Some(output) = agent.poll_output() {
        let _ = black_box(output);
        count += 1;
    }
    count
}

/// The measured node's Agent at local time 10 ms: joined, one snapshot seen, every peer's
/// probe answered.
fn agent(state: &State, me: NodeId) -> Agent {
    let timing = Timing::default_timing();
    let mut agent = Agent::new(me, 1, timing, 0);
    agent.join(0);
    if let Err(err) = agent.handle_snapshot(1, 0, state.clone(), rounds(state), Some(1)) {
        panic!("setup: {err}");
    }
    drain(&mut agent);
    for peer in state.node_ids().filter(|&n| n != me) {
        if let Err(err) = agent.handle_probe(2, peer, 1, true) {
            panic!("setup: {err}");
        }
    }
    drain(&mut agent);
    agent
}

fn bench_agent(c: &mut Criterion) {
    for count in [5_u16, 100, 250] {
        let state = cluster(count);
        let me = NodeId(count / 2 + 1);
        let prepared = agent(&state, me);
        let peer = NodeId(if me.0 == 1 { 2 } else { 1 });
        let mut group = c.benchmark_group(format!("agent_{count}_nodes"));
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        group.bench_function("probe_answer", |b| {
            b.iter_batched(
                || prepared.clone(),
                |mut a| {
                    let handled = a.handle_probe(10, peer, 9, true);
                    assert!(handled.is_ok());
                    drain(&mut a);
                    a
                },
                BatchSize::SmallInput,
            );
        });
        group.bench_function("snapshot", |b| {
            b.iter_batched(
                || (prepared.clone(), state.clone()),
                |(mut a, s)| {
                    let rounds = rounds(&s);
                    let handled = a.handle_snapshot(10, 9, s, rounds, Some(1));
                    assert!(handled.is_ok());
                    drain(&mut a);
                    a
                },
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

criterion_group!(benches, bench_agent);
criterion_main!(benches);
