//! The command line against a snapshot file (`--store file:PATH`), without an etcd: three nodes
//! of an embedded cluster on the in-memory store, their registry written with
//! `membership::snapshot_file::write`; `membership status` (table and JSON) and `membership
//! actors` print exactly what the library renders for that snapshot; `membership watch` prints
//! a node's leave once the file is replaced, and exits 0 on SIGTERM; a bad file is an error
//! naming it (exit 1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use membership::protocol::{ActorId, Config, NodeId, NodeStatus, Timing};
use membership::status::{NodeActors, Status};
use membership::{snapshot_file, MemoryStore, NodeHandle, NodeOptions, Store};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn membership(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_membership"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_actors_and_watch_read_a_snapshot_file_of_an_embedded_cluster() {
    let store = Arc::new(MemoryStore::new());
    store.init(Config::fixed(3).unwrap()).await.unwrap();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let mut options = NodeOptions::new(NodeId(i));
        options.timing = Timing::fast();
        options.wait_timeout_ms = 10_000;
        let node = NodeHandle::start(store.clone(), options).await.unwrap();
        node.join().await.unwrap();
        nodes.push(node);
    }
    for a in 1..=6 {
        nodes[0].place_actor(ActorId(a)).await.unwrap();
    }
    let dir = std::env::temp_dir().join(format!("membership-cli-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("registry.json");
    let url = format!("file:{}", path.display());
    let snapshot = store.snapshot().await.unwrap();
    snapshot_file::write(&path, &snapshot).unwrap();

    let status = Status::of(&snapshot);
    let out = membership(&["status", "--store", &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), status.table());
    let out = membership(&["status", "--store", &url, "--json"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", status.json())
    );
    let actors = NodeActors::of(&snapshot, NodeId(2)).unwrap();
    let out = membership(&["actors", "--store", &url, "--node", "n2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), actors.table());

    // watch: the first line, then n3's leave once the file is replaced.
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_membership"))
        .args(["watch", "--store", &url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        first.ends_with("watching (SIGINT or SIGTERM stops)"),
        "{first}"
    );
    nodes[2].leave().await.unwrap();
    let after = store.snapshot().await.unwrap();
    assert_eq!(
        after.state.node(NodeId(3)).map(|r| r.status),
        Some(NodeStatus::Left)
    );
    snapshot_file::write(&path, &after).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("n3: Active -> Left (NodeLeave, NodeLeaveComplete)"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("watch did not print n3's leave within 10 s; it printed {seen:?}"),
        }
    }
    let term = Command::new("kill")
        .args(["-TERM", &watcher.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        watcher.wait().unwrap().success(),
        "watch exits 0 on SIGTERM"
    );

    // A file that is not a snapshot: an error naming it, exit 1.
    std::fs::write(&path, b"not json").unwrap();
    let out = membership(&["status", "--store", &url]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8(out.stderr).unwrap();
    assert!(
        error.starts_with(&format!("membership: stored value of {}", path.display())),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
