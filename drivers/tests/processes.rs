//! One node per OS process on the real etcd cluster (`ETCD_ENDPOINTS`; `scripts/etcd-tests.sh`
//! sets it and builds the node program first): 5 processes of `examples/node.rs` with 100
//! actors; `kill -9` of the primary's process, then `SIGSTOP` of another process for longer than
//! its lease and the failure timeout, then `SIGCONT`. From the processes' own JSON logs only:
//! no actor was servable in two processes at once (the serve intervals of an actor never
//! overlap between processes, and its epochs only grow over time), the resumed process logged
//! `Fenced` and served nothing of its old actors after it resumed, and the cluster converged
//! (every actor servable in exactly one live process, the live Active processes agree on the
//! view, one primary).

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use membership::{EtcdStore, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NODES: u16 = 5;
const ACTORS: u64 = 100;
/// How long SIGSTOP freezes a process: longer than the lease (300 ms) and the failure timeout
/// (500 ms) of the default timing, so that it is declared failed and its actors move.
const FREEZE_MS: u64 = 2_000;
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

type Lines = Arc<Mutex<Vec<Value>>>;

struct Proc {
    node: u16,
    child: Child,
    lines: Lines,
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

fn node_program() -> PathBuf {
    if let Ok(p) = std::env::var("NODE_PROGRAM") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/processes-... -> target/<profile>/examples/node
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("node")
}

fn spawn(url: &str, node: u16) -> Proc {
    let mut child = Command::new(node_program())
        .args(["--store", url, "--node", &node.to_string()])
        .args([
            "--nodes",
            &NODES.to_string(),
            "--place-actors",
            &ACTORS.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the node program (cargo build --features etcd --example node)");
    let lines: Lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    Proc { node, child, lines }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PHASE_TIMEOUT,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One process's serve intervals: (actor, epoch) -> [(first poll servable, last poll servable)],
/// from its serve_start / serve_stop / poll lines.
fn intervals(lines: &[Value]) -> BTreeMap<(u64, u64), Vec<(u128, u128)>> {
    let mut open: BTreeMap<(u64, u64), (u128, u128)> = BTreeMap::new();
    let mut out: BTreeMap<(u64, u64), Vec<(u128, u128)>> = BTreeMap::new();
    for l in lines {
        let t = l["t_us"].as_u64().unwrap_or(0) as u128;
        match l["event"].as_str() {
            Some("serve_start") => {
                let key = (l["actor"].as_u64().unwrap(), l["epoch"].as_u64().unwrap());
                open.insert(key, (t, t));
            }
            Some("serve_stop") => {
                let key = (l["actor"].as_u64().unwrap(), l["epoch"].as_u64().unwrap());
                if let Some(iv) = open.remove(&key) {
                    out.entry(key).or_default().push(iv);
                }
            }
            Some("poll") => {
                // Every open interval was servable at this poll.
                for iv in open.values_mut() {
                    iv.1 = t;
                }
            }
            _ => {}
        }
    }
    for (key, iv) in open {
        out.entry(key).or_default().push(iv);
    }
    out
}

/// The actors a process may serve at its last poll.
fn final_serving(lines: &[Value]) -> BTreeSet<u64> {
    let mut set = BTreeSet::new();
    for l in lines {
        match l["event"].as_str() {
            Some("serve_start") => {
                set.insert(l["actor"].as_u64().unwrap());
            }
            Some("serve_stop") => {
                set.remove(&l["actor"].as_u64().unwrap());
            }
            _ => {}
        }
    }
    set
}

fn notifications<'a>(lines: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines.iter().filter(move |l| {
        l["event"] == "notification"
            && (l["notification"].get(kind).is_some() || l["notification"] == kind)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_processes_survive_kill_and_freeze() {
    let Ok(endpoints) = std::env::var("ETCD_ENDPOINTS") else {
        println!("SKIPPED: ETCD_ENDPOINTS not set (one node per process)");
        return;
    };
    let url = format!("etcd://{endpoints}/processes-{}", now_us());
    let observer = EtcdStore::connect_url(&url).await.unwrap();
    observer.clear().await.unwrap();
    let mut procs: Vec<Proc> = (1..=NODES).map(|i| spawn(&url, i)).collect();
    let snapshot = || async { observer.snapshot().await.ok() };
    // All Active, all actors placed and servable.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < PHASE_TIMEOUT, "the cluster never formed");
        if let Some(s) = snapshot().await {
            let served: usize = procs
                .iter()
                .map(|p| final_serving(&p.lines.lock().unwrap()).len())
                .sum();
            if s.state.active().len() == NODES
                && s.state.placements().len() as u64 == ACTORS
                && s.state.primary_in_office().is_some()
                && served as u64 == ACTORS
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("formed in {} ms", start.elapsed().as_millis());
    // kill -9 the primary's process.
    let primary = snapshot()
        .await
        .unwrap()
        .state
        .primary_in_office()
        .unwrap()
        .0;
    let victim = procs.iter_mut().find(|p| p.node == primary).unwrap();
    signal(victim.child.id(), "-9");
    let _ = victim.child.wait();
    let killed_at_us = now_us();
    println!("killed n{primary}'s process");
    let recovered = |s: &membership::Snapshot| {
        s.state.primary_in_office().is_some_and(|p| p.0 != primary)
            && !s
                .state
                .active()
                .contains(membership::protocol::NodeId(primary))
            && s.state.queue().is_empty()
            && s.state
                .placements()
                .values()
                .all(|p| s.state.active().contains(p.node))
    };
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < PHASE_TIMEOUT,
            "no failover after the kill"
        );
        if snapshot().await.is_some_and(|s| recovered(&s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = snapshot().await.unwrap();
    println!(
        "failover after the kill: {} ms (n{primary} {:?}, primary {:?})",
        (now_us() - killed_at_us) / 1_000,
        s.state
            .node(membership::protocol::NodeId(primary))
            .map(|r| r.status),
        s.state.primary_in_office()
    );
    // SIGSTOP another process (one serving actors, not the new primary) past its lease.
    let s = snapshot().await.unwrap();
    let new_primary = s.state.primary_in_office().unwrap().0;
    let frozen = procs
        .iter()
        .find(|p| p.node != primary && p.node != new_primary)
        .unwrap();
    let frozen_node = frozen.node;
    let frozen_pid = frozen.child.id();
    let held_before = final_serving(&frozen.lines.lock().unwrap());
    signal(frozen_pid, "-STOP");
    let stopped_at_us = now_us();
    tokio::time::sleep(Duration::from_millis(FREEZE_MS)).await;
    let resumed_at_us = now_us();
    signal(frozen_pid, "-CONT");
    println!(
        "froze n{frozen_node} ({} actors) for {FREEZE_MS} ms",
        held_before.len()
    );
    // Convergence: every actor servable in exactly one live process, one primary, and the
    // live Active processes agree on the view (from their logs).
    eventually("convergence after the freeze", || {
        let mut seen: BTreeMap<u64, u16> = BTreeMap::new();
        for p in procs.iter().filter(|p| p.node != primary) {
            for a in final_serving(&p.lines.lock().unwrap()) {
                if seen.insert(a, p.node).is_some() {
                    return false;
                }
            }
        }
        seen.len() as u64 == ACTORS
    })
    .await;
    let s = snapshot().await.unwrap();
    assert!(recovered(&s));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in &mut procs {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    // The frozen process noticed it was fenced, and served none of its old actors after it
    // resumed (until they were placed on it again with a new epoch).
    let frozen_lines = procs
        .iter()
        .find(|p| p.node == frozen_node)
        .unwrap()
        .lines
        .lock()
        .unwrap()
        .clone();
    let after: Vec<&Value> = frozen_lines
        .iter()
        .filter(|l| l["t_us"].as_u64().unwrap_or(0) as u128 >= resumed_at_us)
        .collect();
    let fenced = notifications(&frozen_lines, "Fenced")
        .any(|l| l["t_us"].as_u64().unwrap_or(0) as u128 >= resumed_at_us);
    assert!(fenced, "n{frozen_node} did not log Fenced after it resumed");
    let first_poll = after.iter().find(|l| l["event"] == "poll").unwrap();
    let stale_after: Vec<&&Value> = after
        .iter()
        .filter(|l| l["event"] == "serve_start")
        .filter(|l| l["t_us"] == first_poll["t_us"])
        .collect();
    assert!(
        stale_after.is_empty(),
        "served after resuming: {stale_after:?}"
    );
    // Single activation, from every process's log: per actor, no two processes' serve
    // intervals overlap, and epochs only grow over time.
    let mut by_actor: BTreeMap<u64, Vec<(u128, u128, u64, u16)>> = BTreeMap::new();
    for p in &procs {
        for ((actor, epoch), ivs) in intervals(&p.lines.lock().unwrap()) {
            for (a, b) in ivs {
                by_actor
                    .entry(actor)
                    .or_default()
                    .push((a, b, epoch, p.node));
            }
        }
    }
    let mut checked = 0;
    for (actor, mut ivs) in by_actor {
        ivs.sort();
        for (i, &(a0, b0, e0, n0)) in ivs.iter().enumerate() {
            for &(a1, b1, e1, n1) in &ivs[i + 1..] {
                checked += 1;
                if n0 != n1 {
                    assert!(
                        b0 < a1 || b1 < a0,
                        "a{actor}: servable on n{n0} (epoch {e0}) over [{a0}, {b0}] and on n{n1} (epoch {e1}) over [{a1}, {b1}]"
                    );
                }
                assert!(e1 >= e0, "a{actor}: epoch {e1} served after epoch {e0}");
            }
        }
    }
    let declared = procs.iter().any(|p| {
        notifications(&p.lines.lock().unwrap(), "NodeFailed")
            .any(|l| l["notification"]["NodeFailed"]["node"] == frozen_node)
    });
    assert!(
        declared,
        "the freeze did not get n{frozen_node} declared failed"
    );
    println!(
        "single activation held ({checked} pairs of serve intervals compared); frozen at {stopped_at_us}, resumed at {resumed_at_us}"
    );
}
