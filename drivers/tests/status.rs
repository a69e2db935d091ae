//! `membership status`'s rendering (`membership::status::Status`), on a snapshot built here: a
//! registry of 6 slots, n1 primary with term 1, five actors, n4 leaving (its actors queued to
//! move), n2 partitioned from n3 and voting to declare it, n3 silent in the open round, a
//! claimed but Left n5, and n6 never claimed and Left (not shown).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::protocol::testing::all_active;
use membership::protocol::{step, ActorId, Config, Event, NodeId, NodeSet, Slot, State};
use membership::status::{NodeActors, Primary, Status};
use membership::Snapshot;

fn apply(state: State, events: impl IntoIterator<Item = Event>) -> State {
    events.into_iter().fold(state, |s, e| match step(&s, &e) {
        Ok((next, _)) => next,
        Err(refusal) => panic!("{e} refused: {refusal}"),
    })
}

fn snapshot() -> Snapshot {
    let state = apply(State::initial(Config::fixed(6).unwrap()), all_active(4));
    let state = apply(
        state,
        (1..=5).map(|a| Event::PlaceActor { actor: ActorId(a) }),
    );
    let state = apply(
        state,
        [
            Event::NodeLeave { node: NodeId(4) },
            Event::CreatePartition {
                a: NodeId(2),
                b: NodeId(3),
            },
            Event::DetectFailure {
                detector: NodeId(2),
                target: NodeId(3),
            },
        ],
    );
    // Round 5 is open; n1, n2 and n4 heartbeated in it, n3's latest heartbeat ran at round 4.
    let beat = [NodeId(1), NodeId(2), NodeId(4)];
    let state = state.with_heartbeats(&beat.into_iter().collect::<NodeSet>());
    let slot = |n: u16| Slot {
        incarnation: u64::from(n) + 1,
        address: format!("10.0.0.{n}:7000"),
    };
    Snapshot {
        state,
        round: 5,
        heartbeat_rounds: [
            (NodeId(1), 5u64),
            (NodeId(2), 5),
            (NodeId(3), 4),
            (NodeId(4), 5),
        ]
        .into_iter()
        .collect(),
        slots: [1, 2, 3, 4, 5]
            .into_iter()
            .map(|n| (NodeId(n), slot(n)))
            .collect(),
        revision: 42,
        confirmed_at: None,
    }
}

const TABLE: &str = "\
registry: 6 node slots, at most 10000000 actors, configuration 5, revision 42
primary: n1, term 1
heartbeat round: 5
actors: 5 placed, 1 queued to move

node  status   incarnation  address        actors  queued  view  term  heartbeat  votes  partitioned
n1    Active   2            10.0.0.1:7000  2       0       #1    1     5 (open)   -      -
n2    Active   3            10.0.0.2:7000  1       0       #2    0     5 (open)   -      n3
n3    Active   4            10.0.0.3:7000  1       0       #3    0     4          n2     n2
n4    Leaving  5            10.0.0.4:7000  1       1       #0    0     5 (open)   -      -
n5    Left     6            10.0.0.5:7000  0       0       #0    0     -          -      -
";

#[test]
fn the_table_shows_every_column_of_the_registry() {
    let status = Status::of(&snapshot());
    assert_eq!(status.table(), TABLE, "\n{}", status.table());
}

#[test]
fn the_json_has_the_same_facts_as_numbers() {
    let snapshot = snapshot();
    let status = Status::of(&snapshot);
    assert_eq!(status.primary, Some(Primary { node: 1, term: 1 }));
    assert_eq!(
        (status.configuration, status.round, status.queue_length),
        (5, 5, 1)
    );
    // What the registry says, column by column: loads add up to the placements, the queue entry
    // is n4's, the vote against n3 is n2's.
    let loads: u64 = status.nodes.iter().map(|r| r.actors).sum();
    assert_eq!(loads, status.actors_placed);
    assert_eq!(status.actors_placed, 5);
    let json = status.json();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| n["node"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(nodes[2]["votes"], serde_json::json!([2]));
    assert_eq!(nodes[2]["heartbeat_round"], serde_json::json!(4));
    assert_eq!(
        nodes[2]["heartbeat_in_open_round"],
        serde_json::json!(false)
    );
    assert_eq!(nodes[3]["status"], "Leaving");
    assert_eq!(nodes[3]["queued_from"], 1);
    assert_eq!(nodes[4]["heartbeat_round"], serde_json::Value::Null);
    assert_eq!(json["primary"], serde_json::json!({"node": 1, "term": 1}));
    // The rows match the snapshot's own records.
    for row in &status.nodes {
        let n = NodeId(row.node);
        assert_eq!(row.actors, snapshot.state.load(n));
        assert_eq!(row.incarnation, snapshot.slots[&n].incarnation);
    }
}

#[test]
fn a_nodes_actors_are_listed_with_their_epochs_and_queue_reasons() {
    let snapshot = snapshot();
    // n1 hosts two actors, n4 (leaving) one, queued to move with reason NodeLeaving.
    let n1 = NodeActors::of(&snapshot, NodeId(1)).unwrap();
    assert_eq!(n1.actors.len(), 2);
    assert!(n1.actors.iter().all(|a| a.queued.is_none()));
    for row in &n1.actors {
        let placement = snapshot.state.placement(ActorId(row.actor)).unwrap();
        assert_eq!((placement.node, placement.epoch), (NodeId(1), row.epoch));
    }
    let n4 = NodeActors::of(&snapshot, NodeId(4)).unwrap();
    let [row] = n4.actors.as_slice() else {
        panic!("n4 hosts one actor: {:?}", n4.actors)
    };
    assert_eq!(row.queued.as_deref(), Some("NodeLeaving"));
    let epoch = snapshot.state.placement(ActorId(row.actor)).unwrap().epoch;
    assert_eq!(
        n4.table(),
        format!(
            "n4: Leaving, 1 actors, 1 queued to move, revision 42\n\nactor  epoch  queued\na{}     {epoch}      NodeLeaving\n",
            row.actor
        )
    );
    assert_eq!(n4.json()["actors"][0]["queued"], "NodeLeaving");
    // A node with none, and a node the registry does not have.
    assert!(NodeActors::of(&snapshot, NodeId(5))
        .unwrap()
        .actors
        .is_empty());
    assert_eq!(
        NodeActors::of(&snapshot, NodeId(7)).unwrap_err(),
        "n7 is not a node of this registry (n1 to n6)"
    );
}

#[test]
fn watch_names_each_change_between_two_snapshots_with_its_spec_actions() {
    let before = snapshot();
    // n3 (silent in the open round) declared failed: its actor queued; two actors placed;
    // n2's partition report against n3 healed; the next round opened.
    let state = apply(
        before.state.clone(),
        [
            Event::MarkNodeFailed { node: NodeId(3) },
            Event::PlaceActor { actor: ActorId(6) },
            Event::PlaceActor { actor: ActorId(7) },
            Event::HealPartition {
                a: NodeId(2),
                b: NodeId(3),
            },
        ],
    );
    let after = Snapshot {
        state,
        round: 6,
        revision: 43,
        ..before.clone()
    };
    let lines = membership::watch::changes(&before, &after, false);
    assert_eq!(
        lines,
        [
            "n2: reports n3 reachable again (HealPartition)",
            "n3: Active -> Failed (MarkNodeFailed)",
            "n3: reports n2 reachable again (HealPartition)",
            "configuration: #5 -> #6 (the members changed)",
            "actors: 2 placed (PlaceActor); 7 placed in all",
            "queue: 1 actors queued to leave n3, NodeFailed (MarkNodeFailed); 2 queued in all",
        ],
        "{lines:#?}"
    );
    let with_rounds = membership::watch::changes(&before, &after, true);
    assert_eq!(
        with_rounds.last().map(String::as_str),
        Some("heartbeat round: 5 -> 6 (ResetHeartbeats)")
    );
    assert!(membership::watch::changes(&after, &after, true).is_empty());
}
