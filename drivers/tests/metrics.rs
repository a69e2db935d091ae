//! The metrics endpoint (`NodeOptions::metrics_address`), scraped over TCP as Prometheus would:
//! three nodes on the in-memory store with the fast timing, actors placed, the metrics' values
//! checked against the handles' own view; `/readyz` before the join, while Active and after a
//! kill; `/livez` after the kill; the responder's refusals (404, 405, 400, 431).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::protocol::{ActorId, Config, NodeId, Timing};
use membership::{MemoryStore, NodeHandle, NodeOptions, Store, METRICS_REQUEST_HEAD_BYTES_MAX};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(i: u16) -> NodeOptions {
    let mut o = NodeOptions::new(NodeId(i));
    o.timing = Timing::fast();
    o.wait_timeout_ms = 10_000;
    o.metrics_address = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    o
}

/// An HTTP answer: the status code, the head and the body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads the whole answer (the endpoint closes the connection).
async fn raw(address: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("the endpoint answers within 5 s")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.parse().ok())
        .expect("a content length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

async fn get(address: SocketAddr, path: &str) -> Answer {
    raw(
        address,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await
}

fn address(node: &NodeHandle) -> SocketAddr {
    node.metrics_address().expect("metrics are on")
}

/// The value of the sample named exactly `sample` (name and labels), if the scrape has it.
fn value(scrape: &str, sample: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().unwrap())
    })
}

fn must(scrape: &str, sample: &str) -> f64 {
    value(scrape, sample).unwrap_or_else(|| panic!("no sample {sample} in\n{scrape}"))
}

/// Scrapes every node until `done` holds for the scrapes (at most 10 s); returns them.
async fn scrape_until(
    nodes: &[&NodeHandle],
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut scrapes = Vec::new();
    for _ in 0..200 {
        scrapes.clear();
        for node in nodes {
            let answer = get(address(node), "/metrics").await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            scrapes.push(answer.body);
        }
        if done(&scrapes) {
            return scrapes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}; the last scrapes:\n{scrapes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_metrics_and_health_follow_the_cluster() {
    const ACTORS: u64 = 12;
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(3).unwrap()).await.unwrap();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(NodeHandle::start(store.clone(), options(i)).await.unwrap());
    }
    // Before its join the node runs but is not ready.
    let before = get(address(&nodes[0]), "/readyz").await;
    assert_eq!(before.status, 503, "{}", before.body);
    assert!(
        before.body.contains("not Active") || before.body.contains("no snapshot"),
        "{}",
        before.body
    );
    assert_eq!(get(address(&nodes[0]), "/livez").await.status, 200);
    for node in &nodes {
        node.join().await.unwrap();
    }
    for a in 1..=ACTORS {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    let all: Vec<&NodeHandle> = nodes.iter().collect();
    let scrapes = scrape_until(&all, "every actor served, every node ready", |scrapes| {
        let served: f64 = scrapes
            .iter()
            .map(|s| value(s, "membership_actors_served").unwrap_or(0.0))
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let placed = ACTORS as f64;
        served == placed
            && scrapes
                .iter()
                .all(|s| value(s, "membership_ready") == Some(1.0))
    })
    .await;
    let (primary, term) = nodes[0].primary().expect("a primary");
    for (i, (node, s)) in nodes.iter().zip(&scrapes).enumerate() {
        assert_eq!(must(s, "membership_node"), f64::from(node.node().0));
        assert_eq!(
            must(s, r#"membership_members{status="Active"}"#),
            3.0,
            "{s}"
        );
        assert_eq!(
            must(s, r#"membership_members{status="Failed"}"#),
            0.0,
            "{s}"
        );
        assert_eq!(must(s, "membership_primary_term"), term as f64, "{s}");
        assert_eq!(
            must(s, "membership_primary_node"),
            f64::from(primary.0),
            "{s}"
        );
        assert_eq!(
            must(s, "membership_is_primary"),
            if node.node() == primary { 1.0 } else { 0.0 },
            "{s}"
        );
        assert_eq!(must(s, "membership_actors_placed"), 12.0, "{s}");
        assert_eq!(must(s, "membership_migration_queue_length"), 0.0, "{s}");
        assert_eq!(must(s, "membership_fenced"), 0.0, "{s}");
        assert_eq!(must(s, "membership_handoff_waiting_actors"), 0.0, "{s}");
        // Every actor it serves was activated after a hand-off wait.
        assert!(
            must(s, "membership_handoff_waits_total") >= must(s, "membership_actors_served"),
            "{s}"
        );
        let heartbeats = must(
            s,
            r#"membership_proposals_total{action="SendHeartbeat",outcome="committed"}"#,
        );
        assert!(heartbeats >= 1.0, "node {i}: {s}");
        assert!(
            must(s, "membership_commit_latency_seconds_count") >= heartbeats,
            "{s}"
        );
        assert!(must(s, "membership_heartbeat_lag_seconds") < 1.0, "{s}");
        assert!(must(s, "membership_snapshot_age_seconds") < 1.0, "{s}");
        // The store's own counters (one store shared by the three nodes): its commits.
        assert!(
            must(
                s,
                r#"membership_store_commits_total{action="SendHeartbeat"}"#
            ) >= heartbeats,
            "{s}"
        );
        let ready = get(address(node), "/readyz").await;
        assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    }
    // Each node serves what the registry places on it, as its scrape says.
    let snapshot = nodes[0].snapshot().unwrap();
    for (node, s) in nodes.iter().zip(&scrapes) {
        let hosted = snapshot.state.hosted(node.node()).map_or(0, |h| h.len());
        assert_eq!(must(s, "membership_actors_served"), hosted as f64, "{s}");
    }
    let head = get(address(&nodes[0]), "/metrics").await.head;
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );

    // Kill a node that is not the primary: it is neither live nor ready, and the others
    // declare it failed and count the declaration.
    let victim = nodes
        .iter()
        .position(|n| n.node() != primary)
        .expect("a non-primary");
    nodes[victim].kill();
    let dead = address(&nodes[victim]);
    let mut livez = get(dead, "/livez").await;
    for _ in 0..100 {
        if livez.status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        livez = get(dead, "/livez").await;
    }
    assert_eq!(livez.status, 503, "{}", livez.body);
    assert!(livez.body.contains("killed"), "{}", livez.body);
    let ready = get(dead, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("stopped"), "{}", ready.body);
    let survivors: Vec<&NodeHandle> = nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != victim)
        .map(|(_, n)| n)
        .collect();
    let scrapes = scrape_until(&survivors, "the killed node declared failed", |scrapes| {
        scrapes.iter().all(|s| {
            value(s, r#"membership_members{status="Failed"}"#) == Some(1.0)
                && value(s, "membership_failure_declarations_total") == Some(1.0)
        })
    })
    .await;
    for s in &scrapes {
        assert_eq!(
            must(s, r#"membership_members{status="Active"}"#),
            2.0,
            "{s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_refuses_what_it_does_not_serve() {
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(1).unwrap()).await.unwrap();
    let off = NodeHandle::start(store.clone(), NodeOptions::new(NodeId(1)))
        .await
        .unwrap();
    assert_eq!(off.metrics_address(), None, "off by default");
    drop(off);
    let node = NodeHandle::start(store, options(1)).await.unwrap();
    let at = address(&node);
    let other = get(at, "/other").await;
    assert_eq!(other.status, 404, "{}", other.body);
    let post = raw(at, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(post.status, 405, "{}", post.body);
    assert!(post.head.contains("Allow: GET"), "{}", post.head);
    let garbage = raw(at, b"hello\r\n\r\n").await;
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    // Exactly the bound, without the blank line: the endpoint reads it all, then refuses it.
    huge.resize(METRICS_REQUEST_HEAD_BYTES_MAX, b'a');
    let too_large = raw(at, &huge).await;
    assert_eq!(too_large.status, 431, "{}", too_large.body);
    // Still serving after all that.
    assert_eq!(get(at, "/livez").await.status, 200);
    // A metrics address already taken is a typed error naming it.
    let mut taken = options(1);
    taken.metrics_address = Some(at);
    match NodeHandle::start(Arc::new(MemoryStore::new()), taken).await {
        Err(membership::Error::Io(message)) => {
            assert!(
                message.contains(&format!("metrics address {at}")),
                "{message}"
            );
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a metrics address in use was accepted"),
    }
}

/// GETs `path` until `done` holds for the answer (at most 10 s); returns it.
async fn get_until(
    at: SocketAddr,
    path: &str,
    what: &str,
    done: impl Fn(&Answer) -> bool,
) -> Answer {
    let mut answer = get(at, path).await;
    for _ in 0..200 {
        if done(&answer) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = get(at, path).await;
    }
    panic!(
        "timed out waiting for {what}: {} {}",
        answer.status, answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_store_is_live_but_not_ready_until_it_is_back() {
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(1).unwrap()).await.unwrap();
    let node = NodeHandle::start(store.clone(), options(1)).await.unwrap();
    node.join().await.unwrap();
    let at = address(&node);
    get_until(at, "/readyz", "ready", |a| a.status == 200).await;
    store.set_unreachable(true);
    // It fences itself within its lease: not ready, naming why; still live.
    let not_ready = get_until(at, "/readyz", "not ready", |a| a.status == 503).await;
    assert!(
        not_ready.body.starts_with("the node is fenced: ")
            || not_ready.body.starts_with("the node's snapshot is "),
        "{}",
        not_ready.body
    );
    let fenced = get_until(at, "/metrics", "fenced", |a| {
        value(&a.body, "membership_fenced") == Some(1.0)
    })
    .await;
    let fences: f64 = fenced
        .body
        .lines()
        .filter(|l| l.starts_with("membership_fences_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert!(fences >= 1.0, "{}", fenced.body);
    assert_eq!(must(&fenced.body, "membership_ready"), 0.0);
    assert_eq!(get(at, "/livez").await.status, 200);
    // The store back: ready again.
    store.set_unreachable(false);
    get_until(at, "/readyz", "ready again", |a| a.status == 200).await;
}
