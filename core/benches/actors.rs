#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Benchmarks of the actor half of the reducer at scale (release mode):
//!
//! - `fail_node/100000`: one MarkNodeFailed step on a node holding 100,000 actors, which queues
//!   all of them with reason NodeFailed in the same transition;
//! - `migrate_batch/4096`: one `migrate_batch` of `MIGRATION_BATCH_MAX` moves out of that queue
//!   (the work of one batch transaction);
//! - `drain/100000`: draining the whole queue batch by batch.
//!
//! Before measuring it prints the encoded size of one batch's writes (serde_json of the moved
//! placements), which must stay under FoundationDB's recommended 1 MB per transaction.
//!
//! Run: `cargo bench -p membership-core --bench actors`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use membership_core::{
    migrate_batch, step, step_with, ActorId, Candidate, Config, Event, LeastLoaded, NodeId,
    Placement, PlacementStrategy, State, MIGRATION_BATCH_MAX,
};
use std::hint::black_box;

const ACTORS: u64 = 100_000;
const NODES: u16 = 5;

/// Places every actor on the first candidate, to load one node.
struct FirstCandidate;

impl PlacementStrategy for FirstCandidate {
    fn choose(&self, _actor: ActorId, candidates: &[Candidate]) -> Option<NodeId> {
        candidates.first().map(|c| c.node)
    }
}

fn apply(state: State, event: Event) -> State {
    match step(&state, &event) {
        Ok((next, _)) => next,
        Err(refusal) => panic!("{event} refused: {refusal}"),
    }
}

/// A 5-node fixed cluster, all Active, n1 primary, with `ACTORS` actors on n1, and n2, n3 and n4
/// (a majority) having detected n1 behind a partition: the next event, MarkNodeFailed(n1),
/// queues them all.
fn loaded_cluster() -> (State, u64) {
    let mut s = State::initial(Config::fixed(NODES).unwrap());
    s = apply(s, Event::NodeJoin { node: NodeId(1) });
    for n in 2..=NODES {
        s = apply(s, Event::NodeJoin { node: NodeId(n) });
        s = apply(s, Event::NodeJoinComplete { node: NodeId(n) });
    }
    for a in 0..ACTORS {
        let event = Event::PlaceActor { actor: ActorId(a) };
        s = step_with(&s, &event, &FirstCandidate).unwrap().0;
    }
    assert_eq!(s.load(NodeId(1)), ACTORS);
    // A majority of the five nodes (n2, n3, n4) cannot reach n1 and vote; n5 still lists it.
    for d in 2..=4 {
        s = apply(
            s,
            Event::CreatePartition {
                a: NodeId(1),
                b: NodeId(d),
            },
        );
        s = apply(
            s,
            Event::DetectFailure {
                detector: NodeId(d),
                target: NodeId(1),
            },
        );
    }
    // n1 was primary (term 1); after it fails, n2 is elected with term 2.
    (s, 2)
}

fn fail_and_elect(s: &State) -> State {
    let s = apply(s.clone(), Event::MarkNodeFailed { node: NodeId(1) });
    apply(s, Event::ElectPrimary { node: NodeId(2) })
}

fn bench(c: &mut Criterion) {
    let (loaded, term) = loaded_cluster();
    let failed = fail_and_elect(&loaded);
    assert_eq!(failed.queue().len() as u64, ACTORS);

    let (after_batch, _, moved) =
        migrate_batch(&failed, term, MIGRATION_BATCH_MAX, &LeastLoaded).unwrap();
    let writes: Vec<(ActorId, Placement)> = moved
        .iter()
        .filter_map(|e| match e {
            Event::MigrateActor { actor, .. } => after_batch.placement(*actor).map(|p| (*actor, p)),
            _ => None,
        })
        .collect();
    // What the batch transaction writes: each moved actor's new placement, and the removal of
    // its queue entry (keys only), as JSON. A FoundationDB tuple-layer layout adds a subspace
    // prefix per key; the margin to 1 MB covers it several times over.
    let cleared: Vec<ActorId> = writes.iter().map(|(a, _)| *a).collect();
    let encoded = serde_json::to_vec(&(&writes, &cleared)).unwrap().len();
    println!(
        "one batch of {} moves writes {} placements and clears {} queue entries: {} bytes as JSON ({:.0} bytes per move; recommended limit 1,000,000)",
        moved.len(),
        writes.len(),
        cleared.len(),
        encoded,
        encoded as f64 / writes.len() as f64
    );
    assert!(encoded < 1_000_000);

    let mut group = c.benchmark_group("actors");
    group.sample_size(10);
    group.bench_function("fail_node/100000", |b| {
        b.iter_batched(
            || loaded.clone(),
            |s| black_box(step(&s, &Event::MarkNodeFailed { node: NodeId(1) }).unwrap()),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("migrate_batch/4096", |b| {
        b.iter(|| {
            black_box(migrate_batch(&failed, term, MIGRATION_BATCH_MAX, &LeastLoaded).unwrap())
        })
    });
    group.bench_function("drain/100000", |b| {
        b.iter(|| {
            let mut s = failed.clone();
            let mut batches = 0u32;
            while !s.queue().is_empty() {
                s = migrate_batch(&s, term, MIGRATION_BATCH_MAX, &LeastLoaded)
                    .unwrap()
                    .0;
                batches += 1;
            }
            black_box((s, batches))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
