//! The tokio runtime on the in-memory store, in real time with the fast timing and TCP probes on
//! loopback: node identity (a superseded process cannot act), self-fencing when the store is
//! unreachable, and bad input that gets a clear, typed error and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::protocol::{
    ActorId, Config, Event, Guard, Key, NodeId, NodeStatus, Notification, ProposalError, Refusal,
    Timing,
};
use membership::testing::{encode, StoreKey};
use membership::{
    Error, MemoryStore, NodeHandle, NodeNotification, NodeOptions, Store, StoreError,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

fn options(i: u16) -> NodeOptions {
    let mut o = NodeOptions::new(NodeId(i));
    o.timing = Timing::fast();
    o.wait_timeout_ms = 10_000;
    o
}

async fn cluster(count: u16) -> (Arc<MemoryStore>, Vec<NodeHandle>) {
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(count).unwrap()).await.unwrap();
    let mut nodes = Vec::new();
    for i in 1..=count {
        let node = NodeHandle::start(store.clone(), options(i)).await.unwrap();
        node.join().await.unwrap();
        nodes.push(node);
    }
    (store, nodes)
}

/// Waits (at most 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The next notification matching `pred` (at most 10 s).
async fn notified(
    rx: &mut broadcast::Receiver<NodeNotification>,
    pred: impl Fn(&Notification) -> bool,
) -> NodeNotification {
    let wait = async {
        loop {
            if let Ok(n) = rx.recv().await {
                if pred(&n.notification) {
                    return n;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("notification")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_process_cannot_heartbeat_vote_migrate_or_serve() {
    let (store, nodes) = cluster(3).await;
    for a in 1..=9 {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    let old = &nodes[1];
    eventually("n2 serves its actors", || {
        !old.activated_ignoring_lease().is_empty()
    })
    .await;
    let mut rx = old.notifications();
    // A new process takes n2's slot (the old one was, say, paused and is still running).
    let new = NodeHandle::start(store.clone(), options(2)).await.unwrap();
    assert_eq!(new.incarnation(), old.incarnation() + 1);
    notified(&mut rx, |n| {
        matches!(
            n,
            Notification::Fenced {
                reason: membership::protocol::FenceReason::Superseded
            }
        )
    })
    .await;
    eventually("the old process serves nothing", || {
        old.activated_ignoring_lease().is_empty()
    })
    .await;
    let stale = ProposalError::StaleIncarnation {
        node: NodeId(2),
        incarnation: old.incarnation(),
        current: new.incarnation(),
    };
    for event in [
        Event::SendHeartbeat { node: NodeId(2) },
        Event::ElectPrimary { node: NodeId(2) },
        Event::MigrateActor {
            actor: ActorId(1),
            term: 1,
        },
        Event::DetectFailure {
            detector: NodeId(2),
            target: NodeId(3),
        },
    ] {
        assert_eq!(
            old.propose(event).await,
            Err(Error::Refused(stale.clone())),
            "{event}"
        );
    }
    // It stays fenced and serves nothing while the new process takes over.
    new.join().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(old.activated_ignoring_lease().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_makes_every_node_fence_itself_within_its_lease() {
    let (store, nodes) = cluster(3).await;
    for a in 1..=6 {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    eventually("every actor served", || {
        nodes
            .iter()
            .map(|n| n.activated_ignoring_lease().len())
            .sum::<usize>()
            == 6
    })
    .await;
    let mut rx = nodes[2].notifications();
    let cut = std::time::Instant::now();
    store.set_unreachable(true);
    let fenced = notified(&mut rx, |n| matches!(n, Notification::Fenced { .. })).await;
    let lease = Duration::from_millis(Timing::fast().settings().lease_ms);
    assert!(
        fenced.at.duration_since(cut) <= lease * 2,
        "fenced after {:?}",
        fenced.at - cut
    );
    eventually("nobody serves anything", || {
        nodes
            .iter()
            .all(|n| n.activated_ignoring_lease().is_empty())
    })
    .await;
    // The store comes back: nobody could declare anybody failed meanwhile; the nodes commit
    // again, learn their standing, and serve again.
    store.set_unreachable(false);
    notified(&mut rx, |n| matches!(n, Notification::Unfenced)).await;
    eventually("every actor served again", || {
        nodes
            .iter()
            .map(|n| n.activated_ignoring_lease().len())
            .sum::<usize>()
            == 6
    })
    .await;
    let s = store.state().unwrap();
    assert_eq!(s.active().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_typed_error_and_loses_nothing() {
    let (store, nodes) = cluster(3).await;
    let placement = nodes[0].place_actor(ActorId(7)).await.unwrap();
    // An unknown node cannot take a slot.
    let err = NodeHandle::start(store.clone(), options(9))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err,
        Error::Store(StoreError::UnknownNode { node: NodeId(9) })
    );
    assert_eq!(err.to_string(), "n9 is not a node of this cluster");
    // A stale term is refused with the reducer's reason.
    let stale = nodes[0]
        .propose(Event::RebalanceActors { term: 0 })
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            Error::Refused(ProposalError::Refused(Refusal {
                guard: Guard::StaleTerm { term: 0, .. },
                ..
            }))
        ),
        "{stale}"
    );
    assert!(stale
        .to_string()
        .starts_with("refused: RebalanceActors: term 0 is stale"));
    // An event naming an unknown node is refused, naming it.
    let unknown = nodes[0]
        .propose(Event::NodeRecover { node: NodeId(9) })
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "refused: NodeRecover: n9 is not a node of this cluster"
    );
    // A refused event (n1 is already Active) says which guard failed.
    let refused = nodes[0]
        .propose(Event::NodeJoin { node: NodeId(1) })
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "refused: NodeJoin: n1 is Active, not Left"
    );
    // An undecodable stored value is named; nothing else is lost and nothing panics.
    let key = StoreKey::Registry(Key::Node(NodeId(3)));
    store.corrupt(key, b"\x01{\"status\":".to_vec());
    let snapshot = store.snapshot().await.unwrap_err();
    assert!(
        matches!(&snapshot, StoreError::Decode(e) if e.key == "node/n3"),
        "{snapshot}"
    );
    let err = nodes[0]
        .propose(Event::CreatePartition {
            a: NodeId(1),
            b: NodeId(3),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("node/n3"), "{err}");
    // A proposal that does not read the key still commits.
    nodes[0]
        .propose(Event::CreatePartition {
            a: NodeId(1),
            b: NodeId(2),
        })
        .await
        .unwrap();
    // Writing the key again repairs it (here: a valid record, as an operator's restore would).
    let good = store.state().unwrap();
    store.corrupt(key, encode(good.node(NodeId(3)).unwrap()));
    store.replace_state(good);
    let s = store.snapshot().await.unwrap();
    assert_eq!(s.state.placement(ActorId(7)), Some(placement));
    assert_eq!(s.state.node(NodeId(3)).unwrap().status, NodeStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_migrates_the_actors_before_it_completes() {
    let (store, nodes) = cluster(3).await;
    for a in 1..=12 {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    eventually("n3 serves actors", || {
        !nodes[2].activated_ignoring_lease().is_empty()
    })
    .await;
    nodes[2].leave().await.unwrap();
    let s = store.state().unwrap();
    assert_eq!(s.node(NodeId(3)).unwrap().status, NodeStatus::Left);
    assert_eq!(s.load(NodeId(3)), 0);
    assert!(nodes[2].activated_ignoring_lease().is_empty());
    eventually("the others serve all 12", || {
        nodes[..2]
            .iter()
            .map(|n| n.activated_ignoring_lease().len())
            .sum::<usize>()
            == 12
    })
    .await;
}

/// Whether a TCP connection to `address` is refused (nothing listens there any more).
async fn refused(address: &str) -> bool {
    matches!(
        tokio::net::TcpStream::connect(address).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_node_dies_whole_and_its_handle_says_why() {
    let (_store, nodes) = cluster(2).await;
    let dead = &nodes[1];
    let address = dead.probe_address().to_string();
    let timeout = Duration::from_millis(500);
    assert!(membership::probe::probe(dead.node(), &address, timeout).await);
    assert_eq!(dead.stop_reason(), None);
    dead.panic_for_test().await.unwrap();
    // Its probe listener closes within a bounded time: peers see it dead, not silent.
    let panicked_at = std::time::Instant::now();
    while !refused(&address).await {
        assert!(
            panicked_at.elapsed() < Duration::from_secs(2),
            "the probe listener still accepts 2 s after the panic"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!membership::probe::probe(dead.node(), &address, timeout).await);
    // The handle reports why, on every call.
    let reason = dead
        .stop_reason()
        .expect("a reason once the listener is closed");
    assert!(
        reason.contains("panicked") && reason.contains("panic_for_test"),
        "{reason}"
    );
    assert!(dead.is_stopped());
    assert_eq!(dead.join().await, Err(Error::Stopped(reason.clone())));
    assert_eq!(
        dead.place_actor(ActorId(1)).await,
        Err(Error::Stopped(reason.clone()))
    );
    assert_eq!(
        dead.propose(Event::SendHeartbeat { node: NodeId(2) }).await,
        Err(Error::Stopped(reason.clone()))
    );
    assert_eq!(dead.permits().await, Err(Error::Stopped(reason)));
}

fn registry_full(result: &Result<membership::protocol::Placement, Error>) -> bool {
    matches!(
        result,
        Err(Error::Refused(ProposalError::Refused(Refusal {
            guard: Guard::RegistryFull { actors_max: 1 },
            ..
        })))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_placement_is_final_at_once_and_holds_up_nothing() {
    let store = Arc::new(MemoryStore::new());
    let config = Config::fixed(1).unwrap().with_actors_max(1).unwrap();
    store.init(config).await.unwrap();
    let node = NodeHandle::start(store.clone(), options(1)).await.unwrap();
    node.join().await.unwrap();
    let a1 = node.place_actor(ActorId(1)).await.unwrap();
    assert_eq!(
        store.snapshot().await.unwrap().state.placement(ActorId(1)),
        Some(a1)
    );
    // The registry is full: a2 is refused at once (the wait is 10 s), typed.
    let asked = std::time::Instant::now();
    let a2 = node.place_actor(ActorId(2)).await;
    assert!(registry_full(&a2), "{a2:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // Two more at once: each refused at once, neither waits behind the other.
    let (a4, a5) = tokio::join!(node.place_actor(ActorId(4)), node.place_actor(ActorId(5)));
    assert!(registry_full(&a4) && registry_full(&a5), "{a4:?} {a5:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    // Room frees: the refused requests stay refused (never placed later)...
    node.propose(Event::RemoveActor { actor: ActorId(1) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = store.snapshot().await.unwrap();
    for a in [2, 4, 5] {
        assert_eq!(s.state.placement(ActorId(a)), None, "a{a}");
    }
    assert!(s.state.placements().is_empty());
    // ...and a new request is placed.
    let a3 = node.place_actor(ActorId(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = store.snapshot().await.unwrap();
    assert_eq!(s.state.placement(ActorId(3)), Some(a3));
    assert_eq!(s.state.placements().len(), 1);
    // Placing it again is idempotent: answered with the placement it has, nothing written.
    let again = node.place_actor(ActorId(3)).await;
    assert_eq!(again, Ok(a3));
    let s = store.snapshot().await.unwrap();
    assert_eq!(s.state.placement(ActorId(3)), Some(a3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_that_timed_out_in_the_queue_is_withdrawn() {
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(2).unwrap()).await.unwrap();
    let mut o = options(1);
    o.wait_timeout_ms = 300;
    let node = NodeHandle::start(store.clone(), o).await.unwrap();
    // Not joined: the request waits in the queue, then is withdrawn.
    assert_eq!(
        node.place_actor(ActorId(7)).await,
        Err(Error::Timeout("the actor to be placed"))
    );
    // Joining later does not place it.
    let mut o = options(2);
    o.wait_timeout_ms = 10_000;
    let other = NodeHandle::start(store.clone(), o).await.unwrap();
    other.join().await.unwrap();
    assert!(matches!(node.join().await, Ok(()) | Err(Error::Pending(_))));
    eventually("n1 is Active", || {
        node.snapshot()
            .and_then(|s| s.state.node(NodeId(1)).map(|r| r.status))
            == Some(NodeStatus::Active)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.snapshot().await.unwrap().state.placement(ActorId(7)),
        None
    );
}

/// The serving permit (issue 18): only the actor's host gets one, it carries the placement's
/// epoch and a deadline at most a lease ahead, and once the store is unreachable no permit is
/// given past the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_permit_carries_the_epoch_and_a_deadline_within_the_lease() {
    let (store, nodes) = cluster(3).await;
    let placement = nodes[0].place_actor(ActorId(7)).await.unwrap();
    let host = &nodes[usize::from(placement.node.0) - 1];
    let lease = Duration::from_millis(Timing::fast().settings().lease_ms);
    let mut permit = None;
    for _ in 0..2_000 {
        permit = host.permit(ActorId(7)).await.unwrap();
        if permit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked = std::time::Instant::now();
    let permit = permit.expect("the host is granted a permit after its hand-off wait");
    assert_eq!((permit.actor, permit.epoch), (ActorId(7), placement.epoch));
    assert!(
        permit.valid_until <= asked + lease,
        "{:?}",
        permit.valid_until - asked
    );
    assert!(permit.remaining() <= lease);
    for other in nodes.iter().filter(|n| n.node() != placement.node) {
        assert_eq!(other.permit(ActorId(7)).await.unwrap(), None);
    }
    assert_eq!(
        host.permits()
            .await
            .unwrap()
            .get(&ActorId(7))
            .map(|p| p.epoch),
        Some(placement.epoch)
    );
    // The store is cut: after one lease (plus the task's scheduling slack) no permit is given,
    // and every permit given before the cut has expired.
    let cut = std::time::Instant::now();
    store.set_unreachable(true);
    tokio::time::sleep(lease * 2).await;
    assert_eq!(host.permit(ActorId(7)).await.unwrap(), None);
    assert!(!permit.is_valid() && permit.valid_until <= cut + lease);
}

/// The runtime feeds its clocks to the Agent's watchdog on every wake-up: a jump of the primary
/// clock (injected through the test kit's `ClockSkew`, no sleeping) fences the node, which
/// tells why; it serves again once a later heartbeat committed and a later read showed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_of_the_primary_clock_fences_the_node_until_a_later_heartbeat() {
    use membership::protocol::{ClockFault, FenceReason};
    use membership::testing::ClockSkew;
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(1).unwrap()).await.unwrap();
    let skew = ClockSkew::new();
    let mut o = options(1);
    o.clock_skew = Some(skew.clone());
    let node = NodeHandle::start(store.clone(), o).await.unwrap();
    node.join().await.unwrap();
    node.place_actor(ActorId(1)).await.unwrap();
    eventually("actor 1 served", || {
        node.activated_ignoring_lease().contains_key(&ActorId(1))
    })
    .await;
    let mut rx = node.notifications();
    // A 50 ms jump: within the gap bound, far beyond the rate bound.
    skew.jump_primary(50);
    skew.step_wall(50);
    let fenced = notified(&mut rx, |n| matches!(n, Notification::Fenced { .. })).await;
    assert!(
        matches!(
            fenced.notification,
            Notification::Fenced {
                reason: FenceReason::ClockSuspect(ClockFault::Rate { .. })
            }
        ),
        "{fenced:?}"
    );
    assert_eq!(node.permit(ActorId(1)).await.unwrap(), None);
    notified(&mut rx, |n| matches!(n, Notification::Unfenced)).await;
    eventually("actor 1 served again", || {
        node.activated_ignoring_lease().contains_key(&ActorId(1))
    })
    .await;
}
