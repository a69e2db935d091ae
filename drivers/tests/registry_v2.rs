//! Registry v2 (issue 17) on the tokio runtime and the in-memory store, in real time with the
//! fast timing and TCP probes on loopback: a cluster that scaled down and then lost a node fails
//! over; a node that loses only its link to the store (its probes still answered) is declared
//! failed on the registry's evidence and its actors move.
//!
//! The times printed are measurements of this run (the machine's), never asserted: the goals and
//! the repeated measurements are in the README's performance section.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::protocol::{ActorId, Config, NodeId, NodeStatus, State, Timing};
use membership::testing::CutLink;
use membership::{MemoryStore, NodeHandle, NodeOptions, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn options(i: u16) -> NodeOptions {
    let mut o = NodeOptions::new(NodeId(i));
    o.timing = Timing::fast();
    o.wait_timeout_ms = 10_000;
    o
}

/// `count` nodes, each through its own cuttable link to one in-memory store, all joined.
type Link = CutLink<MemoryStore>;

async fn cluster(count: u16) -> (Arc<MemoryStore>, Vec<Arc<Link>>, Vec<NodeHandle>) {
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(count).unwrap()).await.unwrap();
    let mut links = Vec::new();
    let mut nodes = Vec::new();
    for i in 1..=count {
        let link = Arc::new(CutLink::new(store.clone()));
        let node = NodeHandle::start(link.clone(), options(i)).await.unwrap();
        node.join().await.unwrap();
        links.push(link);
        nodes.push(node);
    }
    (store, links, nodes)
}

/// Waits (at most 20 s) until `done` holds; the time it took.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    for _ in 0..4_000 {
        if done() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

fn status(store: &MemoryStore, i: u16) -> NodeStatus {
    store.state().unwrap().node(NodeId(i)).unwrap().status
}

/// How many of `actors` the `live` nodes serve, each actor by exactly one of them.
fn served_once(live: &[&NodeHandle], actors: u64) -> bool {
    let mut count = 0;
    for a in 1..=actors {
        let holders = live
            .iter()
            .filter(|n| n.activated_ignoring_lease().contains_key(&ActorId(a)))
            .count();
        if holders > 1 {
            return false;
        }
        count += holders;
    }
    count == usize::try_from(actors).unwrap()
}

/// Five nodes; n4 and n5 leave gracefully; n3 (hosting actors) is killed. n1 and n2 are a
/// majority of the three members left: n3 is declared failed and its actors are served again by
/// n1 and n2. Before registry v2 this cluster was stuck for good ("a majority of 5 nodes needs
/// 3"): n3's actors were never served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_then_crash_fails_over() {
    let (store, _links, nodes) = cluster(5).await;
    for a in 1..=20 {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    nodes[3].leave().await.unwrap();
    nodes[4].leave().await.unwrap();
    eventually("n3 serves actors", || {
        !nodes[2].activated_ignoring_lease().is_empty()
    })
    .await;
    let hosted = store.state().unwrap().load(NodeId(3));
    assert!(hosted > 0);
    let killed = Instant::now();
    nodes[2].kill();
    let declared = eventually("n3 declared failed", || {
        status(&store, 3) == NodeStatus::Failed
    })
    .await;
    eventually("n1 and n2 serve all 20 actors, each once", || {
        served_once(&[&nodes[0], &nodes[1]], 20)
    })
    .await;
    let failover = killed.elapsed();
    let s: State = store.state().unwrap();
    assert_eq!(s.active().len(), 2);
    assert!(s.primary_in_office().is_some(), "n1 or n2 is the primary");
    assert_eq!(s.load(NodeId(3)), 0, "no actor left on n3");
    eprintln!(
        "scale-down then crash ({hosted} actors on n3, fast timing): declared after {declared:?}, \
         every actor served again after {failover:?}"
    );
}

/// n3 loses only its link to the store: its process runs and its probe listener answers, so
/// no peer reports it unreachable and nobody votes. It commits no heartbeat, so it is declared
/// failed on the registry's own evidence, fences itself, and its actors move to n1 and n2.
/// Before registry v2 its peers' heartbeats kept its flag set: it was never declared, and its
/// actors were served by nobody for as long as the link was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_store_only_is_declared_failed_and_its_actors_move() {
    let (store, links, nodes) = cluster(3).await;
    for a in 1..=12 {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    eventually("n3 serves actors", || {
        !nodes[2].activated_ignoring_lease().is_empty()
    })
    .await;
    let cut = Instant::now();
    links[2].set_cut(true);
    let declared = eventually("n3 declared failed", || {
        status(&store, 3) == NodeStatus::Failed
    })
    .await;
    // Nobody reported a partition: the probes of n3 were answered all along.
    let s = store.state().unwrap();
    assert!(s.can_communicate(NodeId(1), NodeId(3)));
    assert!(s.can_communicate(NodeId(2), NodeId(3)));
    eventually("n3 serves nothing", || {
        nodes[2].activated_ignoring_lease().is_empty()
    })
    .await;
    eventually("n1 and n2 serve all 12 actors, each once", || {
        served_once(&[&nodes[0], &nodes[1]], 12)
    })
    .await;
    let failover = cut.elapsed();
    assert!(!nodes[2].is_stopped(), "n3's process runs on");
    eprintln!(
        "store-only cut of n3 (fast timing): declared after {declared:?}, every actor served \
         again after {failover:?}"
    );
}
