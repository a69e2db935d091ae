//! The in-memory store under load. Run with `cargo bench -p membership --bench store`.
//!
//! - `proposals_100_nodes`: 100 concurrent node tasks each commit heartbeats as fast as they
//!   can; criterion's throughput is committed proposals per second (goal: at least 50,000).
//! - `migrate_100k`: 100,000 actors queued off a failed node are migrated by MigrateBatch
//!   proposals of 4,096 moves; it prints the number of transactions and the largest one in
//!   encoded bytes (goal: under 2 s, every transaction under 1 MB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use membership::protocol::testing::{all_active, fixed, run};
use membership::protocol::{
    Action, ActorId, Config, Event, NodeId, Proposal, ProposalId, ProposalOutcome, State,
    MIGRATION_BATCH_MAX,
};
use membership::{MemoryStore, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: u16 = 100;
const PROPOSALS_PER_NODE: u64 = 200;

/// A store whose registry has `count` Active nodes and claimed slots (incarnation 1 each).
async fn cluster(count: u16) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    store.init(fixed(count)).await.unwrap();
    for i in 1..=count {
        store.claim(NodeId(i), "127.0.0.1:1").await.unwrap();
    }
    let mut seq = 0;
    for event in all_active(count) {
        seq += 1;
        let node = event.nodes().first().copied().unwrap_or(NodeId(1));
        let outcome = store
            .propose(Proposal {
                id: ProposalId {
                    node,
                    incarnation: 1,
                    seq: 1_000_000 + seq,
                },
                action: Action::Step(event),
                round: None,
            })
            .await;
        assert!(
            matches!(outcome, Ok(ProposalOutcome::Committed { .. })),
            "{event}: {outcome:?}"
        );
    }
    store
}

fn proposals(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(cluster(NODES));
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(u64::from(NODES) * PROPOSALS_PER_NODE));
    group.sample_size(10);
    let mut round = 0u64;
    group.bench_function("proposals_100_nodes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let store = store.clone();
                let base = round * 10_000_000;
                total += runtime.block_on(async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (1..=NODES)
                        .map(|i| {
                            let store = store.clone();
                            tokio::spawn(async move {
                                for k in 0..PROPOSALS_PER_NODE {
                                    let p = Proposal {
                                        id: ProposalId {
                                            node: NodeId(i),
                                            incarnation: 1,
                                            seq: base + k,
                                        },
                                        action: Action::Step(Event::SendHeartbeat {
                                            node: NodeId(i),
                                        }),
                                        round: None,
                                    };
                                    let outcome = store.propose(p).await;
                                    assert!(matches!(
                                        outcome,
                                        Ok(ProposalOutcome::Committed { .. })
                                    ));
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                });
            }
            total
        });
    });
    group.finish();
    let stats = store.stats();
    println!(
        "heartbeats of 100 nodes: {} commits, {} conflicts, {} retries",
        stats.commits.get("SendHeartbeat").copied().unwrap_or(0),
        stats.total_conflicts(),
        stats.retries.values().sum::<u64>()
    );
}

/// 5 nodes, `actors` actors on n5, n5 declared failed: every actor queued with NodeFailed.
fn failed_with_actors(actors: u64) -> State {
    use membership::protocol::testing::{detect, partition, place_on, RESET};
    let s = run(fixed(5), &all_active(5));
    let s = place_on(&s, 5, 1..=actors);
    let mut events = vec![];
    for i in 1..=4 {
        events.push(partition(i, 5));
    }
    events.push(RESET);
    for i in 1..=4 {
        events.push(detect(i, 5));
    }
    events.push(Event::MarkNodeFailed { node: NodeId(5) });
    membership::protocol::testing::apply(&s, &events)
}

fn migrate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = failed_with_actors(100_000);
    assert_eq!(failed.queue().len(), 100_000);
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    let mut report = None;
    group.bench_function("migrate_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (elapsed, txns, bytes) = runtime.block_on(async {
                    let store = Arc::new(MemoryStore::new());
                    store.init(Config::fixed(5).unwrap()).await.unwrap();
                    store.replace_state(failed.clone());
                    let slot = store.claim(NodeId(1), "127.0.0.1:1").await.unwrap();
                    store.account_sizes(true);
                    let term = failed.node(NodeId(1)).unwrap().term;
                    let start = Instant::now();
                    let mut seq = 0;
                    while !store.state().unwrap().queue().is_empty() {
                        seq += 1;
                        let outcome = store
                            .propose(Proposal {
                                id: ProposalId {
                                    node: NodeId(1),
                                    incarnation: slot.incarnation,
                                    seq,
                                },
                                action: Action::MigrateBatch {
                                    term,
                                    max: MIGRATION_BATCH_MAX,
                                },
                                round: None,
                            })
                            .await;
                        assert!(
                            matches!(outcome, Ok(ProposalOutcome::Committed { .. })),
                            "{outcome:?}"
                        );
                    }
                    let stats = store.stats();
                    (start.elapsed(), seq, stats.largest_write_bytes)
                });
                total += elapsed;
                report = Some((elapsed, txns, bytes));
            }
            total
        });
    });
    group.finish();
    if let Some((elapsed, txns, bytes)) = report {
        println!(
            "100,000 actors migrated: {:.3} s, {txns} transactions, largest {bytes} bytes",
            elapsed.as_secs_f64()
        );
        assert!(bytes < 1_000_000);
    }
    let _ = ActorId(0);
}

criterion_group!(benches, proposals, migrate);
criterion_main!(benches);
