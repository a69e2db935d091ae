//! Footprints are exact enough for a store: on many reachable states of the fixed protocol and
//! every action, changing any key outside an event's read footprint changes neither the outcome
//! (the refusal, or the effects and the successor on the write footprint) nor the footprint
//! itself; nothing outside the write footprint changes; and the delta a transaction computes on
//! its own (possibly stale) view of the unread keys, applied to the true registry, gives the true
//! successor. Also: the conflict relation the README promises (heartbeats of two nodes never
//! conflict; placements share only what load-based placement reads).

// Test code (helpers of the property tests included): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use membership_core::testing::{
    accept, all_active, candidate_events, fixed, heartbeat, place_on, reachable, run, Rng,
};
use membership_core::{
    fenced, footprint, step, ActorId, Counter, Event, Footprint, Key, NodeId, State,
};
use proptest::prelude::*;
use std::collections::BTreeSet;

const ACTORS: u64 = 4;

/// Every non-derived key of a cluster of `count` nodes and [`ACTORS`] actors.
fn primary_keys(count: u16) -> Vec<Key> {
    let mut keys = Vec::new();
    for i in 1..=count {
        keys.push(Key::Node(NodeId(i)));
        keys.push(Key::Heartbeat(NodeId(i)));
    }
    for c in [Counter::Term, Counter::ViewNumber, Counter::Epoch] {
        keys.push(Key::Counter(c));
    }
    for a in 1..=ACTORS {
        keys.push(Key::Actor(ActorId(a)));
        keys.push(Key::Queue(ActorId(a)));
    }
    keys
}

/// Every key, derived ones included.
fn all_keys(count: u16) -> Vec<Key> {
    let mut keys = primary_keys(count);
    keys.push(Key::ActorCount);
    for i in 1..=count {
        keys.push(Key::Load(NodeId(i)));
        keys.push(Key::Hosted(NodeId(i)));
    }
    keys
}

/// The events tried from `state`: the enabled ones and the refused ones alike, with stale and
/// future terms too.
fn events(state: &State) -> Vec<Event> {
    let actors: Vec<ActorId> = (1..=ACTORS).map(ActorId).collect();
    let mut events = candidate_events(state, &actors);
    for &actor in &actors {
        events.push(Event::MigrateActor {
            actor,
            term: state.term_counter().saturating_sub(1),
        });
    }
    events.push(Event::RebalanceActors {
        term: state.term_counter() + 1,
    });
    events
}

/// `s` with the keys outside `reads` taken, each with probability one half, from `other`; `None`
/// when the mix is not a registry (a queue entry names a node its actor is not placed on) or
/// when a derived key in `reads` changed with it.
fn perturbed(s: &State, other: &State, reads: &BTreeSet<Key>, rng: &mut Rng) -> Option<State> {
    let count = s.config().node_count();
    let mut chosen: Vec<Key> = primary_keys(count)
        .into_iter()
        .filter(|k| !reads.contains(k) && rng.chance(50))
        .collect();
    // An actor's placement and queue entry travel together, or the mix is rarely a registry.
    let actors: Vec<ActorId> = chosen
        .iter()
        .filter_map(|k| match k {
            Key::Actor(a) | Key::Queue(a) => Some(*a),
            _ => None,
        })
        .collect();
    for a in actors {
        for k in [Key::Actor(a), Key::Queue(a)] {
            if !reads.contains(&k) && !chosen.contains(&k) {
                chosen.push(k);
            }
        }
    }
    let mixed = s.apply(&other.project(chosen.iter())).ok()?;
    reads
        .iter()
        .all(|k| mixed.get(k) == s.get(k))
        .then_some(mixed)
}

fn check_event(
    s: &State,
    other: &State,
    event: &Event,
    rng: &mut Rng,
) -> Result<(), TestCaseError> {
    let fp = footprint(s, event);
    let count = s.config().node_count();
    let outcome = step(s, event);
    // Nothing outside the write footprint changes.
    if let Ok((next, _)) = &outcome {
        for key in all_keys(count) {
            if !fp.writes.contains(&key) {
                prop_assert_eq!(next.get(&key), s.get(&key), "{} changed {}", event, key);
            }
        }
        prop_assert!(s.delta(next).keys(s).iter().all(|k| fp.writes.contains(k)));
        prop_assert_eq!(&s.apply(&s.delta_within(next, &fp)).unwrap(), next);
    }
    // A step's fenced keys are compared through the proposer's slot: held fixed too.
    let held: BTreeSet<Key> = fp.reads.union(&fenced(s, event)).copied().collect();
    let Some(s2) = perturbed(s, other, &held, rng) else {
        return Ok(());
    };
    // The footprint depends only on what it reads.
    prop_assert_eq!(&footprint(&s2, event), &fp, "{}", event);
    let outcome2 = step(&s2, event);
    match (&outcome, &outcome2) {
        (Err(a), Err(b)) => prop_assert_eq!(a, b, "{}", event),
        (Ok((next, effects)), Ok((next2, effects2))) => {
            prop_assert_eq!(effects, effects2, "{}", event);
            // A hosted index is a range: a step writes entries of it (those of the actors it
            // moves), not the whole set, which also holds actors the step did not read.
            for key in fp.writes.iter().filter(|k| !matches!(k, Key::Hosted(_))) {
                prop_assert_eq!(next.get(key), next2.get(key), "{} wrote {}", event, key);
            }
            for key in all_keys(count) {
                if !fp.writes.contains(&key) {
                    prop_assert_eq!(next2.get(&key), s2.get(&key), "{} changed {}", event, key);
                }
            }
            // A transaction that read only the footprint (its view of the other keys being `s`,
            // stale) writes a delta that takes the true registry `s2` to its true successor.
            let written = s.delta_within(next, &fp);
            prop_assert_eq!(&s2.apply(&written).unwrap(), next2, "{}", event);
        }
        _ => prop_assert!(
            false,
            "{}: {:?} on the state, {:?} with keys outside the read footprint changed",
            event,
            outcome.as_ref().map(|(_, e)| e),
            outcome2.as_ref().map(|(_, e)| e)
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The footprint property, over every candidate event of two random reachable states.
    #[test]
    fn footprints_cover_what_step_reads_and_writes(
        count in 2u16..=5,
        seed in any::<u64>(),
        other_seed in any::<u64>(),
        steps in 0usize..80,
        other_steps in 0usize..80,
    ) {
        let s = reachable(count, ACTORS, seed, steps);
        let other = reachable(count, ACTORS, other_seed, other_steps);
        let mut rng = Rng::new(seed ^ other_seed);
        for event in events(&s) {
            check_event(&s, &other, &event, &mut rng)?;
        }
    }
}

/// The perturbation is not vacuous: over a fixed set of seeds, most events get a perturbed
/// state that differs from the original outside the read footprint.
#[test]
fn the_footprint_test_perturbs_often() {
    let (mut tried, mut perturbed_count) = (0usize, 0usize);
    for seed in 0..40u64 {
        let s = reachable(4, ACTORS, seed, 40);
        let other = reachable(4, ACTORS, seed + 1000, 40);
        let mut rng = Rng::new(seed);
        for event in events(&s) {
            let fp = footprint(&s, &event);
            tried += 1;
            if let Some(p) = perturbed(&s, &other, &fp.reads, &mut rng) {
                if p != s {
                    perturbed_count += 1;
                }
            }
        }
    }
    assert!(
        perturbed_count * 2 > tried,
        "only {perturbed_count} of {tried} events got a different state"
    );
}

/// The README's conflict table.
#[test]
fn heartbeats_of_two_nodes_never_conflict_and_placements_share_only_loads_and_epochs() {
    for seed in 0..30u64 {
        let s = reachable(5, ACTORS, seed, 30);
        let hb: Vec<Footprint> = (1..=5).map(|i| footprint(&s, &heartbeat(i))).collect();
        for (i, a) in hb.iter().enumerate() {
            for b in &hb[i + 1..] {
                assert!(!a.conflicts_with(b), "heartbeats conflict in {s:?}");
            }
        }
    }
    let s = run(fixed(3), &all_active(3));
    let hb1 = footprint(&s, &heartbeat(1));
    assert_eq!(
        hb1.writes
            .iter()
            .filter(|k| matches!(k, Key::Node(_)))
            .count(),
        0
    );
    // Registry v2: a heartbeat reads only its own key (its guard, "the sender is Active", is
    // fenced by the sender's slot, which the proposal compares) and writes only that key.
    assert_eq!(
        hb1.reads.iter().copied().collect::<Vec<_>>(),
        vec![Key::Heartbeat(NodeId(1))]
    );
    assert_eq!(
        fenced(&s, &heartbeat(1)).into_iter().collect::<Vec<_>>(),
        vec![Key::Node(NodeId(1))]
    );
    assert_eq!(
        hb1.writes.iter().copied().collect::<Vec<_>>(),
        vec![Key::Heartbeat(NodeId(1))]
    );
    // A heartbeat conflicts with what reads its flag: MarkNodeFailed of its sender and a vote
    // against its sender (cast only against a node whose heartbeat of the round was received),
    // never a vote by another node against another node. A new round clears every flag in the
    // spec's footprint; the stored form writes no flag for it (the round key clears them), so
    // in a store a heartbeat never conflicts with it (the conformance suite's footprint case).
    assert!(hb1.conflicts_with(&footprint(&s, &Event::ResetHeartbeats)));
    let vote = |detector: u16, target: u16| {
        footprint(
            &s,
            &Event::DetectFailure {
                detector: NodeId(detector),
                target: NodeId(target),
            },
        )
    };
    assert!(hb1.conflicts_with(&vote(2, 1)));
    assert!(!hb1.conflicts_with(&vote(3, 2)));
    let declare = footprint(&s, &Event::MarkNodeFailed { node: NodeId(1) });
    assert!(hb1.conflicts_with(&declare));
    // Two placements of different actors share the loads of the Active nodes, the actor count
    // and the epoch counter: what load-based placement and fresh epochs really read.
    let p1 = footprint(&s, &Event::PlaceActor { actor: ActorId(1) });
    let p2 = footprint(&s, &Event::PlaceActor { actor: ActorId(2) });
    let shared: BTreeSet<Key> = p1.writes.intersection(&p2.reads).copied().collect();
    let mut expected: BTreeSet<Key> = (1..=3).map(|i| Key::Load(NodeId(i))).collect();
    expected.insert(Key::ActorCount);
    expected.insert(Key::Counter(Counter::Epoch));
    assert_eq!(shared, expected);
    // Two migrations of different actors likewise.
    let s = place_on(&s, 3, [1, 2]);
    let s = accept(&s, Event::NodeLeave { node: NodeId(3) }).0;
    let m1 = footprint(
        &s,
        &Event::MigrateActor {
            actor: ActorId(1),
            term: 1,
        },
    );
    let m2 = footprint(
        &s,
        &Event::MigrateActor {
            actor: ActorId(2),
            term: 1,
        },
    );
    let shared: BTreeSet<Key> = m1.writes.intersection(&m2.reads).copied().collect();
    let mut expected: BTreeSet<Key> = (1..=3).map(|i| Key::Load(NodeId(i))).collect();
    expected.insert(Key::Counter(Counter::Epoch));
    assert_eq!(shared, expected);
}

/// Which events read every node record (the README lists them, with the reason). Registry v2:
/// SendHeartbeat no longer does (it reads its sender's record only); ResetHeartbeats does (it
/// clears every vote, and which records hold one is read from them). One configuration:
/// NodeRecover no longer does (it has no view guard: it reads and writes its own record only).
/// The members key (issue 19): SyncViews, NodeJoin, NodeJoinComplete and PlaceActor need only
/// the set of Active nodes, which they read as one key (`Key::Members`), so a member writing
/// its own record (its SyncViews, its vote) never conflicts with them.
#[test]
fn the_events_that_read_every_node_are_the_global_guards() {
    let s = place_on(&run(fixed(3), &all_active(3)), 2, [1]);
    let mut every = BTreeSet::new();
    for event in events(&s) {
        if footprint(&s, &event).reads_every_node(&s) {
            every.insert(event.name().to_string());
        }
    }
    let expected: BTreeSet<String> = [
        "NodeLeave",
        "NodeLeaveComplete",
        "ResetHeartbeats",
        "MarkNodeFailed",
        "ElectPrimary",
        "PrimaryStepDown",
        "RebalanceActors",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // MigrateActor reads every node only when its actor is queued (none is here).
    assert_eq!(every, expected);
    for event in [
        Event::NodeJoin { node: NodeId(3) },
        Event::SyncViews {
            a: NodeId(1),
            b: NodeId(1),
        },
        Event::PlaceActor { actor: ActorId(9) },
    ] {
        let f = footprint(&s, &event);
        assert!(f.reads.contains(&Key::Members), "{event} reads the members");
        assert!(
            f.reads.iter().filter(|k| matches!(k, Key::Node(_))).count() <= 1,
            "{event} reads at most its own record: {:?}",
            f.reads
        );
    }
}

/// Registry v2: a vote (DetectFailure) never changes a view nor takes a view number, whether or
/// not the detector's view lists the target: its transaction reads the two records and writes
/// the detector's alone, never the view counter. SyncViews(n, n) reads the configuration (the
/// members key and the view counter) and writes `n`'s record only, never the counter.
#[test]
fn a_vote_reads_and_writes_the_detectors_record_never_the_view_counter() {
    use membership_core::testing::{detect, partition, sync, then, THREE_ACTIVE};
    let view = Key::Counter(Counter::ViewNumber);
    let cut_off = then(&THREE_ACTIVE, &[partition(1, 3), partition(2, 3)]);
    // n1 {n1}#1 does not list n3; n2, after its SyncViews, {n1, n2, n3}#3 does.
    let s = run(fixed(3), &then(&cut_off, &[sync(2, 2)]));
    assert!(!s.node(NodeId(1)).unwrap().view.contains(NodeId(3)));
    assert!(s.node(NodeId(2)).unwrap().view.contains(NodeId(3)));
    for d in [1, 2] {
        let vote = footprint(&s, &detect(d, 3));
        assert!(!vote.reads.contains(&view) && !vote.writes.contains(&view));
        assert_eq!(
            vote.reads,
            BTreeSet::from([
                Key::Node(NodeId(d)),
                Key::Node(NodeId(3)),
                Key::Heartbeat(NodeId(3))
            ])
        );
        assert_eq!(vote.writes, BTreeSet::from([Key::Node(NodeId(d))]));
        let (next, effects) = step(&s, &detect(d, 3)).unwrap();
        assert!(effects.is_empty());
        assert_eq!(next.view_counter(), s.view_counter());
        assert_eq!(
            next.node(NodeId(d)).unwrap().view,
            s.node(NodeId(d)).unwrap().view
        );
    }
    let adopt = footprint(&s, &sync(1, 1));
    assert!(adopt.reads.contains(&view) && !adopt.writes.contains(&view));
    assert!(adopt.reads.contains(&Key::Members) && !adopt.reads_every_node(&s));
    assert_eq!(adopt.writes, BTreeSet::from([Key::Node(NodeId(1))]));
    let (next, _) = step(&s, &sync(1, 1)).unwrap();
    assert_eq!(next.view_counter(), s.view_counter());
}
