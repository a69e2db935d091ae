//! The persisted registry: what a serialized registry holds (and does not), decoding that
//! refuses every value that cannot be a state of the fixed protocol with an error naming what is
//! wrong, no decodable value that makes `step` panic (this test also runs in release builds in
//! CI: `cargo test --release -p membership-core --test registry`), and the delta of every step.

// Test code (helpers of the property tests included): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use membership_core::testing::{
    accept, all_active, detect, fixed, heartbeat, partition, place_on, reachable, run, Rng, RESET,
    THREE_ACTIVE,
};
use membership_core::{
    step, ActorId, Counter, Delta, Event, Key, MigrationEntry, MigrationReason, NodeId, NodeRecord,
    NodeSet, NodeStatus, Placement, RegistryError, RegistryFields, State, StateInvariant,
    REGISTRY_FORMAT_VERSION,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The example: three Active nodes, n1 at view number 1000 while the view counter is 3.
/// Decoding used to accept it, and `SyncViews(n1, n2)` then panicked in a debug build and moved
/// a view number backwards in a release build.
#[test]
fn a_view_number_above_the_counter_is_refused_naming_the_node_and_field() {
    let s = run(fixed(3), &THREE_ACTIVE);
    let mut fields = RegistryFields::from(&s);
    fields.nodes[0].view_number = 1000;
    let err = State::try_from(fields).unwrap_err();
    assert_eq!(
        err,
        RegistryError::AboveCounter {
            node: NodeId(1),
            field: "view_number",
            value: 1000,
            counter: 3,
        }
    );
    assert_eq!(
        err.to_string(),
        "n1's view_number 1000 is above the registry's view_number counter 3"
    );
}

#[test]
fn decoding_names_what_is_wrong() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 2, [7]);
    let good = RegistryFields::from(&s);
    assert_eq!(State::try_from(good.clone()).unwrap(), s);

    let mut f = good.clone();
    f.nodes[1].term = 5;
    assert_eq!(
        State::try_from(f).unwrap_err().to_string(),
        "n2's term 5 is above the registry's term counter 1"
    );
    let mut f = good.clone();
    f.nodes[1].believes_primary = true;
    assert_eq!(
        State::try_from(f).unwrap_err(),
        RegistryError::PrimaryTerm {
            node: NodeId(2),
            believes_primary: true,
            term: 0
        }
    );
    let mut f = good.clone();
    f.term_counter = 2;
    f.nodes[1].believes_primary = true;
    f.nodes[1].term = 2;
    let err = State::try_from(f).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invariant(v) if v.invariant == StateInvariant::AtMostOnePrimary),
        "{err}"
    );
    let mut f = good.clone();
    f.placements.insert(
        ActorId(7),
        Placement {
            node: NodeId(2),
            epoch: 9,
        },
    );
    assert_eq!(
        State::try_from(f).unwrap_err().to_string(),
        "actor a7's epoch 9 is outside 1..=1 (the epoch counter)"
    );
    let mut f = good.clone();
    f.nodes[2].status = NodeStatus::Left;
    let err = State::try_from(f).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invariant(v) if v.invariant == StateInvariant::JoinAtomicity),
        "{err}"
    );
    let mut f = good.clone();
    f.heartbeats = NodeSet::single(NodeId(9));
    assert_eq!(
        State::try_from(f).unwrap_err().to_string(),
        "heartbeats names n9, which is not a node of this cluster"
    );
    let mut f = good;
    f.format_version = REGISTRY_FORMAT_VERSION + 1;
    assert!(matches!(
        State::try_from(f),
        Err(RegistryError::Version { .. })
    ));
}

/// A serialized fixed-mode registry holds the registry and its format version, and no mode,
/// mutant or bound; a stored value carrying such a field is refused, naming the field.
#[test]
fn a_serialized_registry_has_no_checker_switch() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 2, [7]);
    let json = serde_json::to_value(&s).unwrap();
    let fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        vec![
            "actors_max",
            "epoch_counter",
            "format_version",
            "heartbeats",
            "node_count",
            "nodes",
            "placements",
            "queue",
            "term_counter",
            "view_counter"
        ]
    );
    let text = json.to_string();
    for word in ["mode", "mutant", "max_view", "max_epoch", "Fixed", "bound"] {
        assert!(!text.contains(word), "{word} in {text}");
    }
    let mut with_mode = json.clone();
    with_mode
        .as_object_mut()
        .unwrap()
        .insert("mode".into(), "Buggy".into());
    let err = serde_json::from_value::<State>(with_mode).unwrap_err();
    assert!(err.to_string().contains("unknown field `mode`"), "{err}");
    let truncated = &text[..text.len() / 2];
    assert!(serde_json::from_str::<State>(truncated).is_err());
}

// ---------------------------------------------------------------------------------------------
// No decodable value makes step panic.

/// Random registry fields for up to 4 nodes and 3 actors, with small numbers so that some of
/// them decode.
fn random_fields(rng: &mut Rng) -> RegistryFields {
    let count = 1 + u16::try_from(rng.below(4)).unwrap();
    let small = |rng: &mut Rng| u64::try_from(rng.below(5)).unwrap();
    let set = |rng: &mut Rng| NodeSet::from_low_bits(u128::from(rng.next_u64() as u8 & 0x1f));
    let statuses = [
        NodeStatus::Left,
        NodeStatus::Joining,
        NodeStatus::Active,
        NodeStatus::Leaving,
        NodeStatus::Failed,
    ];
    let nodes = (0..count)
        .map(|_| NodeRecord {
            status: statuses[rng.below(5)],
            view: set(rng),
            view_number: small(rng),
            believes_primary: rng.chance(30),
            term: small(rng),
            partitioned_from: NodeSet::EMPTY,
            detected: if rng.chance(20) {
                set(rng)
            } else {
                NodeSet::EMPTY
            },
        })
        .collect();
    let mut placements = BTreeMap::new();
    let mut queue = BTreeMap::new();
    for a in 0..3u64 {
        if rng.chance(50) {
            let node = NodeId(1 + u16::try_from(rng.below(usize::from(count) + 1)).unwrap());
            placements.insert(
                ActorId(a),
                Placement {
                    node,
                    epoch: small(rng),
                },
            );
            if rng.chance(40) {
                let reason = [
                    MigrationReason::NodeFailed,
                    MigrationReason::NodeLeaving,
                    MigrationReason::LoadBalancing,
                ][rng.below(3)];
                queue.insert(ActorId(a), MigrationEntry { from: node, reason });
            }
        }
    }
    let counter = |rng: &mut Rng| {
        if rng.chance(5) {
            u64::MAX
        } else {
            small(rng)
        }
    };
    RegistryFields {
        format_version: REGISTRY_FORMAT_VERSION,
        node_count: count,
        actors_max: 1 + u64::try_from(rng.below(4)).unwrap(),
        nodes,
        heartbeats: set(rng),
        term_counter: counter(rng),
        view_counter: counter(rng),
        epoch_counter: counter(rng),
        placements,
        queue,
    }
}

/// The fields of a reachable state with one to three fields changed at random.
fn mutated_fields(rng: &mut Rng) -> RegistryFields {
    let count = 2 + u16::try_from(rng.below(3)).unwrap();
    let s = reachable(count, 3, rng.next_u64(), rng.below(60));
    let mut f = RegistryFields::from(&s);
    let random = random_fields(rng);
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(f.nodes.len());
        let j = rng.below(random.nodes.len());
        let donor = random.nodes[j].clone();
        let node = &mut f.nodes[i];
        match rng.below(12) {
            0 => node.status = donor.status,
            1 => node.view = donor.view,
            2 => node.view_number = donor.view_number,
            3 => node.believes_primary = !node.believes_primary,
            4 => node.term = donor.term,
            5 => node.detected = donor.detected,
            6 => f.term_counter = random.term_counter,
            7 => f.view_counter = random.view_counter,
            8 => f.epoch_counter = random.epoch_counter,
            9 => f.heartbeats = random.heartbeats.clone(),
            10 => f.placements.clone_from(&random.placements),
            _ => f.queue.clone_from(&random.queue),
        }
    }
    f
}

/// Every event worth trying on a decoded state: every membership instance, and the actor
/// actions over a0..a3 with terms 0..=5 and u64::MAX.
fn probes(state: &State) -> Vec<Event> {
    let mut events = Event::all(state.config().node_count());
    let actors: Vec<ActorId> = (0..4).map(ActorId).collect();
    events.extend(Event::actor_events(&actors, 5));
    for &actor in &actors {
        events.push(Event::MigrateActor {
            actor,
            term: u64::MAX,
        });
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Decode random and mutated registries; whatever decodes, every event steps without a
    /// panic (a panic fails the test), and an accepted step keeps every counter monotonic.
    #[test]
    fn no_decodable_registry_makes_step_panic(seed in any::<u64>(), mutated in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let fields = if mutated { mutated_fields(&mut rng) } else { random_fields(&mut rng) };
        if let Ok(state) = State::try_from(fields) {
            for event in probes(&state) {
                if let Ok((next, _)) = step(&state, &event) {
                    prop_assert!(next.term_counter() >= state.term_counter());
                    prop_assert!(next.view_counter() >= state.view_counter());
                    prop_assert!(next.epoch_counter() >= state.epoch_counter());
                }
            }
        }
    }
}

/// The decoding test is not vacuous: a fair share of its inputs decode, and a fair share do not.
#[test]
fn the_decoding_test_decodes_a_fair_share() {
    let mut rng = Rng::new(7);
    let (mut decoded, mut refused) = (0, 0);
    for i in 0..2000 {
        let fields = if i % 2 == 0 {
            mutated_fields(&mut rng)
        } else {
            random_fields(&mut rng)
        };
        match State::try_from(fields) {
            Ok(_) => decoded += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        decoded > 200 && refused > 200,
        "{decoded} decoded, {refused} refused"
    );
}

// ---------------------------------------------------------------------------------------------
// One definition of "what changed".

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Along random walks: `state.apply(&state.delta(&next)) == next`, the delta names exactly
    /// the changed keys, and it round-trips through serde.
    #[test]
    fn apply_of_delta_is_the_successor(count in 1u16..=5, seed in any::<u64>(), steps in 1usize..60) {
        let ids: Vec<ActorId> = (1..=3).map(ActorId).collect();
        let start = if seed % 2 == 0 { run(fixed(count), &all_active(count)) } else { State::initial(fixed(count)) };
        let mut state = start;
        let mut rng = Rng::new(seed);
        for _ in 0..steps {
            let candidates = membership_core::testing::candidate_events(&state, &ids);
            let event = candidates[rng.below(candidates.len())];
            if let Ok((next, _)) = step(&state, &event) {
                let delta = state.delta(&next);
                prop_assert_eq!(&state.apply(&delta).unwrap(), &next, "{}", event);
                let json = serde_json::to_string(&delta).unwrap();
                prop_assert_eq!(&serde_json::from_str::<Delta>(&json).unwrap(), &delta);
                for key in delta.keys(&state) {
                    if !matches!(key, Key::Hosted(_)) {
                        prop_assert_ne!(state.get(&key), next.get(&key), "{} {}", event, key);
                    }
                }
                state = next;
            }
        }
    }
}

#[test]
fn a_delta_names_exactly_what_a_failure_changed() {
    let s = place_on(&run(fixed(3), &THREE_ACTIVE), 3, [1]);
    let s = run_from(
        &s,
        &[
            partition(1, 3),
            partition(2, 3),
            RESET,
            heartbeat(3),
            detect(1, 3),
            detect(2, 3),
        ],
    );
    // n3 still heartbeats: it is declared on the votes of n1 and n2.
    let (after, _) = accept(&s, Event::MarkNodeFailed { node: NodeId(3) });
    let delta = s.delta(&after);
    // n1 and n2 voted (their records are consumed); no member's view changes (registry v2, one
    // configuration), and the configuration without n3 takes the next view number.
    assert_eq!(
        delta.nodes.keys().copied().collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(2), NodeId(3)]
    );
    assert_eq!(delta.counters, BTreeMap::from([(Counter::ViewNumber, 4)]));
    assert_eq!(
        delta.queue,
        BTreeMap::from([(
            ActorId(1),
            Some(MigrationEntry {
                from: NodeId(3),
                reason: MigrationReason::NodeFailed
            })
        )])
    );
    assert!(delta.placements.is_empty() && delta.heartbeats.is_empty());
    assert_eq!(
        delta.to_string(),
        "n1 := Active view {n1}#1 primary term 1 partitioned from {n3}; \
         n2 := Active view {n1, n2}#2 partitioned from {n3}; \
         n3 := Failed view {}#0 partitioned from {n1, n2}; \
         view number counter := 4; \
         queue[a1] := leave n3 (NodeFailed)"
    );
}

fn run_from(state: &State, events: &[Event]) -> State {
    events.iter().fold(state.clone(), |s, &e| accept(&s, e).0)
}
