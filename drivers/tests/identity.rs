//! Authenticated node identity in the running system (in-memory store, real TLS probes on
//! loopback): nodes that prove their identities probe each other and serve; a node whose
//! certificate comes from another CA is reported partitioned by every peer and reports them
//! (its probes are answered by nobody, and nobody's by it); a process cannot start as a node its
//! certificate does not name, and claims nothing when it tries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::identity::{Authority, NodeIdentity};
use membership::protocol::{ActorId, Config, NodeId, Timing};
use membership::{Error, MemoryStore, NodeHandle, NodeOptions, Store};
use std::sync::Arc;
use std::time::Duration;

fn identity(ca: &Authority, node: u16) -> NodeIdentity {
    let credentials = ca.credentials(&NodeId(node).to_string(), &[]).unwrap();
    NodeIdentity::new(NodeId(node), &credentials).unwrap()
}

fn options(node: u16, identity: NodeIdentity) -> NodeOptions {
    let mut o = NodeOptions::new(NodeId(node));
    o.timing = Timing::fast();
    o.wait_timeout_ms = 10_000;
    o.identity = Some(identity);
    o
}

/// Polls `node`'s snapshot (every 5 ms, at most 10 s) until `done` holds for it.
async fn eventually(
    node: &NodeHandle,
    what: &str,
    done: impl Fn(&membership::protocol::State) -> bool,
) {
    for _ in 0..2_000 {
        if node.snapshot().is_some_and(|s| done(&s.state)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_nodes_probe_each_other_and_a_node_of_another_ca_is_cut_off() {
    let ca = Authority::generate("cluster CA").unwrap();
    let other = Authority::generate("another CA").unwrap();
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(3).unwrap()).await.unwrap();
    let n1 = NodeHandle::start(store.clone(), options(1, identity(&ca, 1)))
        .await
        .unwrap();
    let n2 = NodeHandle::start(store.clone(), options(2, identity(&ca, 2)))
        .await
        .unwrap();
    n1.join().await.unwrap();
    n2.join().await.unwrap();
    let placement = n1.place_actor(ActorId(7)).await.unwrap();
    assert!(placement.node == NodeId(1) || placement.node == NodeId(2));
    // n3's certificate is valid for its own CA, which the cluster does not trust.
    let n3 = NodeHandle::start(store.clone(), options(3, identity(&other, 3)))
        .await
        .unwrap();
    n3.join().await.unwrap();
    eventually(&n1, "n1 and n2 to report n3 partitioned", |s| {
        let reported = |n: u16| {
            s.node(NodeId(n))
                .is_some_and(|r| r.partitioned_from.contains(NodeId(3)))
        };
        reported(1) && reported(2)
    })
    .await;
    let state = n1.snapshot().unwrap().state.clone();
    assert!(
        state.can_communicate(NodeId(1), NodeId(2)),
        "the two nodes that prove their identities still reach each other: {:?}",
        state.node(NodeId(1))
    );
    // n3 cannot verify the cluster's certificates either: its own reports say so.
    eventually(&n1, "n3 to report n1 and n2 partitioned", |s| {
        s.node(NodeId(3)).is_some_and(|r| {
            r.partitioned_from.contains(NodeId(1)) && r.partitioned_from.contains(NodeId(2))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_cannot_start_as_a_node_its_certificate_does_not_name() {
    let ca = Authority::generate("cluster CA").unwrap();
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(3).unwrap()).await.unwrap();
    let before = store.snapshot().await.unwrap();
    // n1's certificate, presented by a process starting as n2.
    let refused = NodeHandle::start(store.clone(), options(2, identity(&ca, 1)))
        .await
        .err()
        .expect("refused");
    assert_eq!(
        refused,
        Error::Identity {
            node: NodeId(2),
            identity: NodeId(1)
        }
    );
    assert_eq!(
        refused.to_string(),
        "node n2 cannot start with the identity of node n1"
    );
    let after = store.snapshot().await.unwrap();
    assert_eq!(after.slots, before.slots, "no slot was claimed");
    assert_eq!(after.revision, before.revision, "nothing was written");
    // And n2 with its own certificate starts.
    let n2 = NodeHandle::start(store.clone(), options(2, identity(&ca, 2)))
        .await
        .unwrap();
    assert_eq!(n2.node(), NodeId(2));
}
