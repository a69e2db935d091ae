//! The store conformance suite: one set of cases, generic over [`Audit`] (a [`Store`] the suite
//! can inspect), run on every store by `drivers/tests/store_conformance.rs`. Each case takes a
//! fresh, empty store.
//!
//! The committed log each case replays is the store's own ([`Audit::committed_log`]): every
//! committed proposal with the spec actions it applied, in commit order. Replaying it through
//! `step` from the initial registry must accept every action and give the stored registry, and
//! no proposal id may appear twice (exactly-once).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use membership::protocol::testing::all_active;
use membership::protocol::{
    footprint, step, Action, ActorId, Config, Event, Key, NodeId, NodeStatus, Proposal, ProposalId,
    ProposalOutcome, State, MIGRATION_BATCH_MAX,
};
use membership::testing::{encode, Audit, Fault, StoreKey};
use membership::{Snapshot, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One node's proposer: its claimed incarnation and its next sequence number.
pub struct Proposer {
    pub node: NodeId,
    pub incarnation: u64,
    seq: AtomicU64,
}

impl Proposer {
    pub async fn claim<S: Store>(store: &S, node: u16) -> Proposer {
        let slot = store
            .claim(NodeId(node), &format!("127.0.0.1:{}", 40_000 + node))
            .await
            .unwrap();
        Proposer {
            node: NodeId(node),
            incarnation: slot.incarnation,
            seq: AtomicU64::new(1),
        }
    }

    pub fn proposal(&self, action: Action) -> Proposal {
        Proposal {
            id: ProposalId {
                node: self.node,
                incarnation: self.incarnation,
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
            },
            action,
            round: None,
        }
    }

    pub fn step(&self, event: Event) -> Proposal {
        self.proposal(Action::Step(event))
    }
}

/// Proposes until the outcome is final: `Unknown` is retried with the same proposal.
pub async fn settle<S: Store>(
    store: &S,
    proposal: Proposal,
) -> Result<ProposalOutcome, StoreError> {
    for _ in 0..20 {
        match store.propose(proposal).await? {
            ProposalOutcome::Unknown => tokio::time::sleep(Duration::from_millis(20)).await,
            outcome => return Ok(outcome),
        }
    }
    panic!("{} stayed unknown", proposal.id);
}

pub fn committed(outcome: &ProposalOutcome) -> bool {
    matches!(outcome, ProposalOutcome::Committed { .. })
}

/// Initialises `count` nodes, claims every slot, and makes them all Active (n1 primary, term 1).
pub async fn active<S: Store>(store: &S, count: u16) -> Vec<Arc<Proposer>> {
    store.init(Config::fixed(count).unwrap()).await.unwrap();
    let mut proposers = Vec::new();
    for i in 1..=count {
        proposers.push(Arc::new(Proposer::claim(store, i).await));
    }
    for event in all_active(count) {
        let node = match event {
            Event::NodeJoin { node } | Event::NodeJoinComplete { node } => node,
            _ => NodeId(1),
        };
        let p = &proposers[usize::from(node.0 - 1)];
        let outcome = settle(store, p.step(event)).await.unwrap();
        assert!(committed(&outcome), "{event}: {outcome:?}");
    }
    proposers
}

/// A log and a snapshot are read at one moment only if no commit landed between them: every
/// commit adds a log record, so the log is read before and after the snapshot, at most this
/// many times, until the two reads agree (a cluster may still be running while it is audited).
const CONSISTENT_READ_ATTEMPTS_MAX: usize = 50;

/// The first part in which two registries differ, named (`None`: they are equal).
pub fn first_difference(stored: &State, replayed: &State) -> Option<String> {
    if stored.config() != replayed.config() {
        return Some(format!(
            "config: stored {:?}, replayed {:?}",
            stored.config(),
            replayed.config()
        ));
    }
    for n in stored.node_ids() {
        if stored.node(n) != replayed.node(n) {
            return Some(format!(
                "{n}'s record: stored {:?}, replayed {:?}",
                stored.node(n),
                replayed.node(n)
            ));
        }
        if stored.heartbeat_received(n) != replayed.heartbeat_received(n) {
            return Some(format!(
                "{n}'s heartbeat flag: stored {}, replayed {}",
                stored.heartbeat_received(n),
                replayed.heartbeat_received(n)
            ));
        }
    }
    let counters = |s: &State| (s.term_counter(), s.view_counter(), s.epoch_counter());
    if counters(stored) != counters(replayed) {
        return Some(format!(
            "counters (term, view, epoch): stored {:?}, replayed {:?}",
            counters(stored),
            counters(replayed)
        ));
    }
    for (a, p) in stored.placements() {
        if replayed.placement(*a) != Some(*p) {
            return Some(format!(
                "{a}: stored {p:?}, replayed {:?}",
                replayed.placement(*a)
            ));
        }
    }
    for (a, p) in replayed.placements() {
        if stored.placement(*a).is_none() {
            return Some(format!("{a}: stored none, replayed {p:?}"));
        }
    }
    if stored.queue() != replayed.queue() {
        return Some(format!(
            "migration queue: stored {:?}, replayed {:?}",
            stored.queue(),
            replayed.queue()
        ));
    }
    (stored != replayed).then(|| "a derived index (hosted sets or loads)".to_string())
}

/// Replays the store's committed log from the initial registry of `count` nodes: every action
/// must be a legal step, no proposal may appear twice, and the result must be the stored
/// registry. Returns the number of commits replayed. The log and the registry are read at one
/// moment (see [`CONSISTENT_READ_ATTEMPTS_MAX`]), so nodes may still be committing.
pub async fn replay_matches<S: Audit>(store: &S, count: u16) -> usize {
    let mut consistent = None;
    for _ in 0..CONSISTENT_READ_ATTEMPTS_MAX {
        let before = store.committed_log().await.unwrap();
        let stored = store.snapshot().await.unwrap();
        let after = store.committed_log().await.unwrap();
        let ids =
            |log: &[membership::testing::Logged]| log.iter().map(|l| l.id).collect::<Vec<_>>();
        if ids(&before) == ids(&after) {
            consistent = Some((before, stored));
            break;
        }
    }
    let Some((log, stored)) = consistent else {
        panic!("the log changed during every one of {CONSISTENT_READ_ATTEMPTS_MAX} reads of the registry");
    };
    let mut state = State::initial(Config::fixed(count).unwrap());
    let mut ids = BTreeSet::new();
    let mut round = 0;
    for logged in &log {
        assert!(!logged.events.is_empty(), "{} committed nothing", logged.id);
        let heartbeat = matches!(logged.events.as_slice(), [Event::SendHeartbeat { .. }]);
        if membership::protocol::heartbeat_landed_closed(&logged.events, logged.round, round) {
            // A heartbeat that ran at a round closed before it landed: its stored key
            // names that round, so no flag changed (a stutter of the spec).
            continue;
        }
        // A heartbeat is idempotent and not remembered: a retry may land twice.
        assert!(
            heartbeat || ids.insert(logged.id),
            "{} was applied twice",
            logged.id
        );
        for event in &logged.events {
            state = match step(&state, event) {
                Ok((next, _)) => next,
                Err(refusal) => panic!("committed {event} of {} is illegal: {refusal}", logged.id),
            };
            if *event == Event::ResetHeartbeats {
                round += 1;
                assert_eq!(
                    logged.round, round,
                    "{} opened round {}",
                    logged.id, logged.round
                );
            }
        }
    }
    if let Some(difference) = first_difference(&stored.state, &state) {
        panic!(
            "the stored registry differs from the replay of the {} commits of the log, first in {difference}",
            log.len()
        );
    }
    log.len()
}

/// Serializability under contention: every node's task proposes heartbeats (never conflicting),
/// placements and removals (conflicting on loads and the epoch counter), and partition reports
/// (conflicting with every heartbeat) at once. Afterwards the replay of the committed log is
/// the stored registry and every committed step was legal.
pub async fn serializability<S: Audit>(store: Arc<S>) {
    const NODES: u16 = 5;
    const ROUNDS: u64 = 24;
    let proposers = active(&*store, NODES).await;
    let mut tasks = Vec::new();
    for p in proposers.iter().cloned() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = p.node;
            let peer = NodeId(me.0 % NODES + 1);
            let mut committed_count = 0u64;
            for r in 0..ROUNDS {
                let actor = ActorId(u64::from(me.0) * 1_000 + r);
                let event = match r % 6 {
                    0 | 3 => Event::SendHeartbeat { node: me },
                    1 | 4 => Event::PlaceActor { actor },
                    2 => Event::CreatePartition { a: me, b: peer },
                    _ => Event::HealPartition { a: me, b: peer },
                };
                let outcome = settle(&*store, p.step(event)).await.unwrap();
                committed_count += u64::from(committed(&outcome));
                if r % 6 == 4 {
                    let outcome = settle(&*store, p.step(Event::RemoveActor { actor }))
                        .await
                        .unwrap();
                    committed_count += u64::from(committed(&outcome));
                }
            }
            committed_count
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert!(
        total > u64::from(NODES) * ROUNDS / 2,
        "only {total} commits"
    );
    let replayed = replay_matches(&*store, NODES).await;
    // The setup's commits and every committed proposal of the tasks.
    assert_eq!(replayed as u64, total + all_active(NODES).len() as u64);
}

/// Commit-unknown both ways: a commit that applied but was reported unknown, and one that did
/// not apply; retrying each with the same proposal applies it exactly once, and a further retry
/// returns the recorded effects without applying anything.
pub async fn commit_unknown<S: Audit>(store: Arc<S>) {
    let proposers = active(&*store, 3).await;
    let p = &proposers[0];
    for (fault, actor) in [
        (Fault::UnknownAfterCommit, ActorId(1)),
        (Fault::UnknownBeforeCommit, ActorId(2)),
    ] {
        let proposal = p.step(Event::PlaceActor { actor });
        store.inject(fault);
        assert_eq!(
            store.propose(proposal).await.unwrap(),
            ProposalOutcome::Unknown
        );
        let applied = store
            .snapshot()
            .await
            .unwrap()
            .state
            .placement(actor)
            .is_some();
        assert_eq!(applied, fault == Fault::UnknownAfterCommit, "{fault:?}");
        let first = store.propose(proposal).await.unwrap();
        let ProposalOutcome::Committed { effects } = &first else {
            panic!("retry after {fault:?}: {first:?}");
        };
        assert!(!effects.is_empty());
        assert_eq!(
            store.propose(proposal).await.unwrap(),
            first,
            "a further retry"
        );
        let log = store.committed_log().await.unwrap();
        assert_eq!(
            log.iter().filter(|l| l.id == proposal.id).count(),
            1,
            "{fault:?}: applied exactly once"
        );
    }
    assert_eq!(store.snapshot().await.unwrap().state.placements().len(), 2);
    replay_matches(&*store, 3).await;
}

/// Footprints: heartbeats of different nodes never conflict (each node's task heartbeats at
/// once); placements of different actors do (they read the loads and the epoch counter that
/// the other writes), and the store sees those conflicts.
pub async fn footprints<S: Audit>(store: Arc<S>) {
    const NODES: u16 = 5;
    let proposers = active(&*store, NODES).await;
    let state = store.snapshot().await.unwrap().state;
    let a = footprint(&state, &Event::SendHeartbeat { node: NodeId(1) });
    let b = footprint(&state, &Event::SendHeartbeat { node: NodeId(2) });
    assert!(!a.conflicts_with(&b));
    let before = store.stats();
    let mut tasks = Vec::new();
    for p in proposers.iter().cloned() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let outcome = settle(&*store, p.step(Event::SendHeartbeat { node: p.node }))
                    .await
                    .unwrap();
                assert!(committed(&outcome), "{outcome:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.stats();
    assert_eq!(
        after.total_conflicts(),
        before.total_conflicts(),
        "heartbeats conflicted: {:?}",
        after.conflict_pairs
    );
    assert_eq!(
        after.commits.get("SendHeartbeat").copied().unwrap_or(0)
            - before.commits.get("SendHeartbeat").copied().unwrap_or(0),
        20 * u64::from(NODES)
    );
    let x = footprint(&state, &Event::PlaceActor { actor: ActorId(1) });
    let y = footprint(&state, &Event::PlaceActor { actor: ActorId(2) });
    assert!(x.conflicts_with(&y));
    // Overlapping footprints: a migration batch reads every node record, which partition
    // reports of n1 and n2 write. While one task reports and heals that partition, the primary
    // runs migration batches (long transactions: as many moves as the engine allows): the store
    // must see the batches conflict and run them again.
    let rounds = 4;
    let queued = queue_actors(&*store, &proposers, rounds * store.limits().moves_max).await;
    assert!(queued > 0);
    let state = store.snapshot().await.unwrap().state;
    let actor = state.queue().actors().next().unwrap();
    let flip = footprint(
        &state,
        &Event::CreatePartition {
            a: NodeId(1),
            b: NodeId(2),
        },
    );
    let migrate = footprint(&state, &Event::MigrateActor { actor, term: 1 });
    assert!(migrate.conflicts_with(&flip));
    for round in 0..rounds {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flipper = {
            let store = store.clone();
            let p = proposers[1].clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                for i in 0..400u32 {
                    // Stop once a batch has conflicted: it must then commit (an optimistic
                    // engine can starve a long transaction under endless conflicting writes).
                    let conflicted = store
                        .stats()
                        .conflicts
                        .get("MigrateActor")
                        .copied()
                        .unwrap_or(0)
                        > 0;
                    if stop.load(Ordering::Relaxed) || conflicted {
                        break;
                    }
                    let (a, b) = (NodeId(1), NodeId(2));
                    let event = if i % 2 == 0 {
                        Event::CreatePartition { a, b }
                    } else {
                        Event::HealPartition { a, b }
                    };
                    settle(&*store, p.step(event)).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let batch = proposers[0].proposal(Action::MigrateBatch {
            term: 1,
            max: MIGRATION_BATCH_MAX,
        });
        let outcome = settle(&*store, batch).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        flipper.await.unwrap();
        // A batch refused because the partition took n1's majority is fine; it runs again.
        let _ = outcome;
        let stats = store.stats();
        if stats.conflicts.get("MigrateActor").copied().unwrap_or(0) > 0 {
            assert!(stats.retries.get("MigrateActor").copied().unwrap_or(0) > 0);
            return;
        }
        assert!(
            round + 1 < rounds,
            "no migration batch ever conflicted: {stats:?}"
        );
    }
}

/// Places `per_node` actors on each of n1..n3 (an import), then n3 leaves: its actors are
/// queued. Returns how many.
pub async fn queue_actors<S: Audit>(store: &S, proposers: &[Arc<Proposer>], per_node: u64) -> u64 {
    let mut state = store.snapshot().await.unwrap().state;
    for (i, node) in [(0u64, 1u16), (1, 2), (2, 3)] {
        state = membership::protocol::testing::place_on(
            &state,
            node,
            (0..per_node).map(|k| i * per_node + k + 1),
        );
    }
    store.import(state).await.unwrap();
    let leave = settle(
        store,
        proposers[2].step(Event::NodeLeave { node: NodeId(3) }),
    )
    .await
    .unwrap();
    assert!(committed(&leave), "{leave:?}");
    store.snapshot().await.unwrap().state.queue().len() as u64
}

/// A watcher waiting for a change wakes after a relevant commit, and a snapshot read then shows
/// the change.
pub async fn watches<S: Audit>(store: Arc<S>) {
    let proposers = active(&*store, 3).await;
    let mut rx = store.watch();
    // Let the watch deliver the setup's commits (a real engine delivers them late): wait until
    // it has been quiet for 300 ms.
    let mut quiet = false;
    for _ in 0..100 {
        rx.borrow_and_update();
        if tokio::time::timeout(Duration::from_millis(300), rx.changed())
            .await
            .is_err()
        {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "the watch never went quiet");
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(10), rx.changed())
                .await
                .expect("the watch woke")
                .unwrap();
            store.snapshot().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "woke without a commit");
    let outcome = settle(
        &*store,
        proposers[1].step(Event::PlaceActor { actor: ActorId(7) }),
    )
    .await
    .unwrap();
    assert!(committed(&outcome));
    let seen = waiter.await.unwrap();
    assert!(seen.state.placement(ActorId(7)).is_some());
}

/// A large migration: a node leaves holding more actors than one transaction may move; the
/// primary's migration batches drain the queue in several transactions, each within the
/// engine's limits.
pub async fn large_migration<S: Audit>(store: Arc<S>) {
    let proposers = active(&*store, 3).await;
    let limits = store.limits();
    let per_node = 2 * limits.moves_max + 10;
    let before = store.stats();
    let queued = queue_actors(&*store, &proposers, per_node).await;
    assert_eq!(queued, per_node);
    let primary = &proposers[0];
    for _ in 0..(queued + 1) {
        if store.snapshot().await.unwrap().state.queue().is_empty() {
            break;
        }
        let outcome = settle(
            &*store,
            primary.proposal(Action::MigrateBatch {
                term: 1,
                max: MIGRATION_BATCH_MAX,
            }),
        )
        .await
        .unwrap();
        assert!(committed(&outcome), "{outcome:?}");
    }
    let after = store.snapshot().await.unwrap().state;
    assert!(after.queue().is_empty());
    assert_eq!(after.load(NodeId(3)), 0);
    assert_eq!(after.placements().len() as u64, 3 * per_node);
    let stats = store.stats();
    let batches = stats.commits.get("MigrateActor").copied().unwrap_or(0)
        - before.commits.get("MigrateActor").copied().unwrap_or(0);
    assert!(batches >= 2, "{queued} moves in {batches} transaction(s)");
    assert!(stats.largest_write_bytes <= limits.write_bytes_max);
    if let Some(ops) = limits.ops_max {
        assert!(
            stats.largest_write_ops <= ops,
            "{} ops",
            stats.largest_write_ops
        );
    }
    let log = store.committed_log().await.unwrap();
    let moves: Vec<usize> = log
        .iter()
        .filter(|l| matches!(l.events.first(), Some(Event::MigrateActor { .. })))
        .map(|l| l.events.len())
        .collect();
    println!(
        "{queued} moves in {} transactions of {moves:?} moves; largest {} bytes, {} operations",
        moves.len(),
        stats.largest_write_bytes,
        stats.largest_write_ops
    );
    assert_eq!(moves.iter().sum::<usize>() as u64, queued);
    assert!(
        moves.iter().all(|&m| m as u64 <= limits.moves_max),
        "{moves:?}"
    );
}

/// Members of the cluster in [`many_members`]: beyond etcd's 128 operations per transaction.
const MANY_MEMBERS: u16 = 200;

/// The most operations one membership change may write (its records, the counter, the log
/// record, the proposal id): a constant, whatever the number of members.
const MEMBERSHIP_CHANGE_OPS_MAX: u64 = 16;

/// Registry v2, one configuration: a change of the members writes the changed node's record and
/// the configuration number, never every member's record, so a cluster grows past etcd's 128
/// operations per transaction (before, a join into a cluster of about 120 members was refused as
/// too large). 200 nodes join one by one, the last leaves and joins again; every change commits,
/// the members are all there with one configuration number per change, and (where the store
/// counts them) no transaction wrote more than [`MEMBERSHIP_CHANGE_OPS_MAX`] operations.
///
/// Then the votes of 199 members (each cut off from the last node, which still heartbeats):
/// a new round expires them all, and once cast again they declare the node failed, each in
/// one transaction within the same bound (the engines keep a vote beside its voter's record,
/// so neither writes the 199 voters' records: `kv::votes`).
pub async fn many_members<S: Audit>(store: Arc<S>) {
    let proposers = active(&*store, MANY_MEMBERS).await;
    let last = &proposers[usize::from(MANY_MEMBERS - 1)];
    let node = NodeId(MANY_MEMBERS);
    for event in [
        Event::NodeLeave { node },
        Event::NodeLeaveComplete { node },
        Event::NodeJoin { node },
        Event::NodeJoinComplete { node },
    ] {
        let outcome = settle(&*store, last.step(event)).await.unwrap();
        assert!(committed(&outcome), "{event}: {outcome:?}");
    }
    let s = store.snapshot().await.unwrap().state;
    assert_eq!(s.active().len(), MANY_MEMBERS);
    // One number per change of the members: 200 joins (the bootstrap included), the leave, the
    // rejoin.
    assert_eq!(s.view_counter(), u64::from(MANY_MEMBERS) + 2);
    // The rejoined node holds the current configuration; n1, which joined first and never
    // synchronised, holds the first one.
    let rejoined = s.node(node).unwrap();
    assert_eq!(rejoined.view_number, s.view_counter());
    assert_eq!(rejoined.view, s.active());
    assert_eq!(s.node(NodeId(1)).unwrap().view_number, 1);
    let stats = store.stats();
    if store.limits().ops_max.is_some() {
        assert!(
            stats.largest_write_ops <= MEMBERSHIP_CHANGE_OPS_MAX,
            "{} operations in one transaction",
            stats.largest_write_ops
        );
    }
    println!(
        "{MANY_MEMBERS} members, configuration {}; largest transaction {} operations, {} bytes",
        s.view_counter(),
        stats.largest_write_ops,
        stats.largest_write_bytes
    );
    many_votes(&*store, &proposers).await;
}

/// [`many_members`]' votes: every other member votes against the last node, a new round
/// expires the votes, they are cast again and declare it failed.
async fn many_votes<S: Audit>(store: &S, proposers: &[Arc<Proposer>]) {
    let target = NodeId(MANY_MEMBERS);
    let in_round = |p: &Proposer, event: Event, round: u64| {
        let mut proposal = p.step(event);
        proposal.round = Some(round);
        proposal
    };
    let voters = &proposers[..usize::from(MANY_MEMBERS - 1)];
    for p in voters {
        let event = Event::CreatePartition {
            a: p.node,
            b: target,
        };
        let outcome = settle(store, p.step(event)).await.unwrap();
        assert!(committed(&outcome), "{event}: {outcome:?}");
    }
    for pass in 0..2 {
        let round = store.snapshot().await.unwrap().round;
        if pass == 1 {
            // The target's heartbeat of the new round (a vote needs one).
            let beat = Event::SendHeartbeat { node: target };
            let outcome = settle(store, proposers[usize::from(MANY_MEMBERS - 1)].step(beat))
                .await
                .unwrap();
            assert!(committed(&outcome), "{beat}: {outcome:?}");
        }
        for p in voters {
            let event = Event::DetectFailure {
                detector: p.node,
                target,
            };
            let outcome = settle(store, in_round(p, event, round)).await.unwrap();
            assert!(committed(&outcome), "{event}: {outcome:?}");
        }
        let s = store.snapshot().await.unwrap().state;
        assert_eq!(s.failure_votes(target).len(), MANY_MEMBERS - 1);
        let last = if pass == 0 {
            Event::ResetHeartbeats
        } else {
            Event::MarkNodeFailed { node: target }
        };
        let outcome = settle(store, in_round(&proposers[0], last, round))
            .await
            .unwrap();
        assert!(committed(&outcome), "{last}: {outcome:?}");
        let s = store.snapshot().await.unwrap().state;
        assert!(
            s.nodes().iter().all(|r| !r.detected.contains(target)),
            "{last} left a vote against {target}"
        );
        let stats = store.stats();
        if store.limits().ops_max.is_some() {
            assert!(
                stats.largest_write_ops <= MEMBERSHIP_CHANGE_OPS_MAX,
                "{last}: {} operations in one transaction",
                stats.largest_write_ops
            );
        }
        println!(
            "{} votes against {target}, then {last}: largest transaction {} operations, {} bytes",
            MANY_MEMBERS - 1,
            stats.largest_write_ops,
            stats.largest_write_bytes
        );
    }
    let s = store.snapshot().await.unwrap().state;
    assert_eq!(s.node(target).unwrap().status, NodeStatus::Failed);
}

/// The keys a node's own heartbeat transaction reads on any store: its heartbeat key and its
/// slot (the incarnation check). No record, no other node's key, no proposal record (a
/// heartbeat is idempotent and not remembered).
pub const HEARTBEAT_KEYS_READ_MAX: u64 = 2;

/// The keys each transaction of [`footprint_bounds`] reads in a 5-node cluster, whatever the
/// number of actors (`core/src/footprint.rs` gives each footprint; `execute` adds the
/// proposer's slot and, but for a heartbeat, its proposal's record). None reads another
/// member's record but a partition report (the two records it writes); the joins, SyncViews and
/// PlaceActor read the members as one key.
pub const FOOTPRINT_KEYS_READ_5_NODES: [(&str, u64); 9] = [
    ("CreatePartition", 4), // both records
    ("HealPartition", 4),
    ("NodeJoin", 8), // its record, the members, two counters, its flag (the bootstrap)
    ("NodeJoinComplete", 7), // its record, the members, the view counter, its flag
    // every record (who voted against it), the view counter, its hosted marker, its actors'
    // queue entries: one key of its node's whatever their number (ids within 16,384)
    ("NodeLeave", 10),
    ("PlaceActor", 11), // the members, their 5 loads, the placement, the count, the epoch
    ("RemoveActor", 6), // the placement, the queue entry, the count, the host's load
    ("SendHeartbeat", HEARTBEAT_KEYS_READ_MAX),
    ("SyncViews", 5), // its record, the members, the view counter
];

/// Actors placed per node in the small and the large registry of [`footprint_bounds`].
pub const FOOTPRINT_ACTORS_SMALL: u64 = 20;
/// See [`FOOTPRINT_ACTORS_SMALL`]: 50 times as many.
pub const FOOTPRINT_ACTORS_LARGE: u64 = 1_000;

/// A transaction reads its footprint and nothing else: the keys each committed transaction read
/// (`StoreStats::keys_read_max`, counted by the store at commit) are the same on a registry of
/// 5 x 20 actors and on one of 5 x 1,000 (a placement reads per-node loads, never the
/// placements; a node leaving queues its actors, whose ids are interleaved with the other
/// nodes', in one key of its own), and are the pinned [`FOOTPRINT_KEYS_READ_5_NODES`] on every
/// store.
pub async fn footprint_bounds<S: Audit>(store: Arc<S>) {
    const NODES: u16 = 5;
    let proposers = active(&*store, NODES).await;
    let mut figures = Vec::new();
    for (phase, per_node) in [FOOTPRINT_ACTORS_SMALL, FOOTPRINT_ACTORS_LARGE]
        .into_iter()
        .enumerate()
    {
        // The node that leaves at the end of the phase: n5, then n4.
        let leaver = NODES - phase as u16;
        let mut state = store.snapshot().await.unwrap().state;
        // Interleaved ids: actor `base + i * NODES + n` on node `n`, on the nodes still Active.
        // (All below 16,384, so each node's entries fit one queue key of the engines' layout.)
        let base = phase as u64 * 1_000;
        for n in 1..=leaver {
            let ids = (0..per_node).map(|i| base + i * u64::from(NODES) + u64::from(n));
            state = membership::protocol::testing::place_on(&state, n, ids);
        }
        store.import(state).await.unwrap();
        let placed = base + (per_node - 1) * u64::from(NODES) + 1;
        let fresh = ActorId(10_000 + phase as u64);
        for (who, event) in [
            (0, Event::SendHeartbeat { node: NodeId(1) }),
            (1, Event::SendHeartbeat { node: NodeId(2) }),
            (0, Event::PlaceActor { actor: fresh }),
            (
                0,
                Event::RemoveActor {
                    actor: ActorId(placed),
                },
            ),
            (
                1,
                Event::CreatePartition {
                    a: NodeId(2),
                    b: NodeId(3),
                },
            ),
            (
                1,
                Event::HealPartition {
                    a: NodeId(2),
                    b: NodeId(3),
                },
            ),
            (
                2,
                Event::SyncViews {
                    a: NodeId(3),
                    b: NodeId(3),
                },
            ),
            (
                usize::from(leaver - 1),
                Event::NodeLeave {
                    node: NodeId(leaver),
                },
            ),
        ] {
            let proposal: &Proposer = &proposers[who];
            let outcome = settle(&*store, proposal.step(event)).await.unwrap();
            assert!(
                matches!(
                    outcome,
                    ProposalOutcome::Committed { .. } | ProposalOutcome::Refused(_)
                ),
                "{event}: {outcome:?}"
            );
        }
        // The leave committed, queueing every actor of the leaver.
        let after = store.snapshot().await.unwrap().state;
        let leaving = NodeId(leaver);
        assert_eq!(
            after.node(leaving).map(|r| r.status),
            Some(NodeStatus::Leaving)
        );
        let hosted: Vec<ActorId> = after
            .hosted(leaving)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        assert!(hosted.len() as u64 >= per_node, "{} hosted", hosted.len());
        assert!(hosted
            .iter()
            .all(|&a| after.queue().get(a).is_some_and(|e| e.from == leaving)));
        figures.push((per_node, store.stats().keys_read_max));
    }
    let (small, large) = (&figures[0], &figures[1]);
    println!(
        "keys read per transaction at {} actors: {:?}; at {} actors: {:?}",
        u64::from(NODES) * small.0,
        small.1,
        u64::from(NODES) * large.0,
        large.1
    );
    assert_eq!(
        small.1, large.1,
        "the keys a transaction reads grew with the number of actors"
    );
    let pinned: BTreeMap<String, u64> = FOOTPRINT_KEYS_READ_5_NODES
        .iter()
        .map(|&(action, keys)| (action.to_string(), keys))
        .collect();
    assert_eq!(large.1, pinned, "the keys read per transaction, by action");
}

/// A corrupted stored value (truncated, of another format version, garbage) gives a typed error
/// naming the key, for a snapshot and for a proposal that reads it; nothing is written, and once
/// the value is repaired everything else is as it was.
pub async fn corruption<S: Audit>(store: Arc<S>) {
    let proposers = active(&*store, 3).await;
    let before: Snapshot = store.snapshot().await.unwrap();
    let record = before.state.node(NodeId(2)).unwrap();
    assert_eq!(record.status, NodeStatus::Active);
    let good = encode(&record);
    let mut wrong_version = good.clone();
    wrong_version[0] = 9;
    let key = StoreKey::Registry(Key::Node(NodeId(2)));
    for bytes in [
        good[..good.len() / 2].to_vec(),
        wrong_version,
        b"\x01garbage".to_vec(),
    ] {
        store.corrupt(key, bytes).await.unwrap();
        match store.snapshot().await {
            Err(StoreError::Decode(e)) => assert_eq!(e.key, "node/n2", "{e}"),
            other => panic!("snapshot of a corrupt store: {other:?}"),
        }
        // A partition report reads both records (registry v2: a heartbeat reads no record).
        let report = proposers[1].step(Event::CreatePartition {
            a: NodeId(2),
            b: NodeId(3),
        });
        match store.propose(report).await {
            Err(StoreError::Decode(e)) => {
                assert_eq!(e.key, "node/n2");
                assert!(e
                    .to_string()
                    .starts_with("stored value of node/n2 cannot be decoded"));
            }
            other => panic!("proposal reading a corrupt value: {other:?}"),
        }
        store.repair(key, &before).await.unwrap();
        let now = store.snapshot().await.unwrap();
        assert_eq!(now.state, before.state, "nothing else lost");
        assert_eq!((now.round, &now.slots), (before.round, &before.slots));
    }
    let outcome = settle(
        &*store,
        proposers[0].step(Event::SendHeartbeat { node: NodeId(1) }),
    )
    .await
    .unwrap();
    assert!(committed(&outcome), "{outcome:?}");
}

/// Bad input: an unknown node, a stale incarnation, a store that refuses another shape.
pub async fn bad_input<S: Audit>(store: Arc<S>) {
    let proposers = active(&*store, 3).await;
    assert!(matches!(
        store.claim(NodeId(9), "127.0.0.1:1").await,
        Err(StoreError::UnknownNode { .. })
    ));
    assert!(matches!(
        store.init(Config::fixed(4).unwrap()).await,
        Err(StoreError::Shape {
            found: 3,
            expected: 4
        })
    ));
    store.init(Config::fixed(3).unwrap()).await.unwrap();
    let again = Proposer::claim(&*store, 2).await;
    assert_eq!(again.incarnation, proposers[1].incarnation + 1);
    let stale = proposers[1].step(Event::SendHeartbeat { node: NodeId(2) });
    match store.propose(stale).await.unwrap() {
        ProposalOutcome::Refused(e) => assert!(e.to_string().contains("is stale"), "{e}"),
        other => panic!("{other:?}"),
    }
}
