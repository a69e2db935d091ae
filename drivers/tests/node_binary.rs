//! The operator's binary, `membership node`, on the real etcd cluster (`ETCD_ENDPOINTS`;
//! `scripts/etcd-tests.sh` sets it): three processes configured by the environment alone
//! (`MEMBERSHIP_*`), one of them by a configuration file; each joins and answers `/readyz` on its
//! metrics address; SIGTERM makes one leave (it is Left in the registry, the others stay Active)
//! and exit 0, logging JSON lines, while `membership watch` prints the leave; a bad
//! configuration exits 2 naming the key, before anything starts.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use membership::protocol::{NodeId, NodeStatus};
use membership::{EtcdStore, Store};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NODES: u16 = 3;
const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

fn spawn(url: &str, node: u16, metrics: SocketAddr, config: Option<&std::path::Path>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_membership"));
    command.arg("node");
    if let Some(path) = config {
        command.arg("--config").arg(path);
    } else {
        command
            .env("MEMBERSHIP_STORE", url)
            .env("MEMBERSHIP_NODE", node.to_string())
            .env("MEMBERSHIP_NODES", NODES.to_string())
            .env("MEMBERSHIP_METRICS_ADDRESS", metrics.to_string())
            .env("MEMBERSHIP_LOG_FORMAT", "json");
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn status(store: &EtcdStore, node: u16) -> Option<NodeStatus> {
    let snapshot = store.snapshot().await.ok()?;
    snapshot.state.node(NodeId(node)).map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_run_from_their_configuration_and_leave_on_sigterm() {
    let Ok(endpoints) = std::env::var("ETCD_ENDPOINTS") else {
        println!("SKIPPED: ETCD_ENDPOINTS not set");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!(
        "etcd://{endpoints}/node-binary/{}-{nanos}/",
        std::process::id()
    );
    let store = EtcdStore::connect_url(&url).await.unwrap();
    store.clear().await.unwrap();

    let dir = std::env::temp_dir().join(format!("membership-node-binary-{nanos}"));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics: Vec<SocketAddr> = (0..NODES)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    // n3 from a file, n1 and n2 from the environment alone.
    let file = dir.join("n3.toml");
    std::fs::write(
        &file,
        format!(
            "store = \"{url}\"\nnode = 3\nnodes = {NODES}\nmetrics_address = \"{}\"\nlog_format = \"json\"\n",
            metrics[2]
        ),
    )
    .unwrap();
    let mut children: Vec<Child> = (1..=NODES)
        .map(|n| {
            let config = (n == 3).then_some(file.as_path());
            spawn(&url, n, metrics[usize::from(n - 1)], config)
        })
        .collect();

    // Every node ready (Active, unfenced, a fresh snapshot), as its own endpoint says.
    let start = Instant::now();
    for (i, address) in metrics.iter().enumerate() {
        while http_status(*address, "/readyz") != Some(200) {
            if let Ok(Some(exit)) = children[i].try_wait() {
                panic!("n{} exited before it was ready: {exit}", i + 1);
            }
            assert!(start.elapsed() < WAIT, "n{} not ready in {WAIT:?}", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for n in 1..=NODES {
        assert_eq!(status(&store, n).await, Some(NodeStatus::Active), "n{n}");
    }

    // An operator watches the registry meanwhile.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_membership"))
        .args(["watch", "--store", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch_out = watch.stdout.take().unwrap();
    let mut first = [0u8; 1];
    // Its first line ("watching ...") says it has read the registry.
    watch_out.read_exact(&mut first).unwrap();

    // SIGTERM n2: it leaves, then exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &children[1].id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = loop {
        if let Some(exit) = children[1].try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < WAIT * 2, "n2 did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut out = String::new();
    children[1]
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(exit.success(), "n2 exited with {exit}; its log:\n{out}");
    let messages: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
            v["message"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    for wanted in [
        "started",
        "joined: Active",
        "leaving: handing the actors off",
        "left",
    ] {
        assert!(
            messages.iter().any(|m| m == wanted),
            "n2 never logged {wanted:?}: {messages:?}"
        );
    }
    // The registry says so: n2 Left, n1 and n3 still Active and ready.
    let deadline = Instant::now() + WAIT;
    while status(&store, 2).await != Some(NodeStatus::Left) {
        assert!(Instant::now() < deadline, "n2 is not Left in the registry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in [1, 3] {
        assert_eq!(status(&store, n).await, Some(NodeStatus::Active), "n{n}");
    }
    assert_eq!(http_status(metrics[0], "/readyz"), Some(200));
    // The watcher printed n2's leave, named by its spec actions, and stops on SIGTERM.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    let exit = watch.wait().unwrap();
    let mut seen = String::new();
    watch_out.read_to_string(&mut seen).unwrap();
    assert!(exit.success(), "watch exited with {exit}: {seen}");
    assert!(
        seen.lines().any(|l| l.contains("n2: Active -> ")
            && l.contains("(NodeLeave")
            && (l.contains("-> Leaving") || l.contains("-> Left"))),
        "the watch did not print n2's leave:\n{seen}"
    );
    assert!(
        seen.lines()
            .any(|l| l.contains("n2: ") && l.contains("-> Left (")),
        "the watch did not print n2 Left:\n{seen}"
    );
    println!("membership watch printed:\n{seen}");

    for child in [0, 2] {
        Command::new("kill")
            .args(["-TERM", &children[child].id().to_string()])
            .status()
            .unwrap();
    }
    for child in [0, 2] {
        let exit = children[child].wait().unwrap();
        assert!(exit.success(), "n{} exited with {exit}", child + 1);
    }
    store.clear().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_configuration_exits_2_naming_the_key_before_anything_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_membership"))
        .arg("node")
        .env("MEMBERSHIP_STORE", "etcd://127.0.0.1:1/x")
        .env("MEMBERSHIP_NODE", "9")
        .env("MEMBERSHIP_NODES", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node = 9: not a node of a 5-node cluster"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_membership"))
        .args(["node", "--config", "/nonexistent/n1.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/n1.toml"));
}
