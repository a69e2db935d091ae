//! Store load of a running cluster: `cargo run --release --example load -- --nodes 100 --seconds 30`.
//!
//! Starts the nodes on the in-memory store, or with `--store etcd://...` (cargo feature `etcd`)
//! on an etcd cluster (real time, TCP probes on 127.0.0.1), lets them run,
//! and prints the store's transactions, conflicts and retries by spec action, the heartbeats
//! and store operations per node per heartbeat interval, the fences and the failure
//! declarations.
//!
//! With `--processes P` (etcd only) the nodes run in P operating-system processes, children of
//! this one, each running an equal share of the node ids on its own store handle and tokio
//! runtime: `--nodes 250 --processes 5` is 5 processes of 50 nodes. The parent writes the
//! registry, starts the children, waits until every node is Active, then tells every child to
//! observe for the same `--seconds` and adds up what they counted.
//!
//! It exits 1 if a node was declared failed or is not Active at the end (nobody is stopped, so
//! any declaration is false).

#![allow(clippy::print_stdout)]

use clap::Parser;
use membership::protocol::{Config, NodeId, Notification, Timing};
use membership::{MemoryStore, NodeHandle, NodeOptions, Store, StoreStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most nodes one process joins at a time (each join is a few transactions; more at once
/// only makes them conflict on the members key).
const JOINS_IN_FLIGHT_MAX: usize = 16;

/// The most child processes `--processes` starts.
const PROCESSES_MAX: u16 = 64;

/// How often the parent looks whether a child exited while it waits for a line, in ms.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
const CHILD_POLL_MS: u64 = 200;

#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
/// How long the parent waits for a child's next line (its nodes joined, its tally), in ms.
const CHILD_WAIT_MS: u64 = 600_000;

#[derive(Parser, Debug)]
#[command(about = "Run a cluster on a store (in-memory by default) and report its load by action")]
struct Cli {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 100)]
    nodes: u16,
    /// How long to observe once every node is Active, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// How often each node probes (up to 8 of) its peers, in ms. All nodes share this process
    /// and its cores: 100 nodes probing every 50 ms open 16,000 TCP connections a second.
    #[arg(long, default_value_t = 200)]
    probe_interval_ms: u64,
    /// The store: `memory` or `etcd://host:port[,host:port...][/prefix]` (needs
    /// `--features etcd`; the run uses a fresh prefix below the given one, deleted afterwards).
    #[arg(long, default_value = "memory")]
    store: String,
    /// Run the nodes in this many operating-system processes (etcd only): each runs an equal
    /// share of the node ids.
    #[arg(long, default_value_t = 1)]
    processes: u16,
    /// Set by the parent for a child process: the first and last node id it runs (`3-5`). The
    /// child's `--store` is the parent's, prefix included.
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// What the nodes of one process counted while observed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Tally {
    /// Nodes run.
    nodes: u64,
    /// Committed transactions by action.
    commits: BTreeMap<String, u64>,
    /// Conflicts by action.
    conflicts: BTreeMap<String, u64>,
    /// Retries by action.
    retries: BTreeMap<String, u64>,
    /// Refusals by action.
    refusals: BTreeMap<String, u64>,
    /// Reads that confirmed the store's cache current.
    confirm_reads: u64,
    /// Whole-registry loads of the store's cache.
    cache_loads: u64,
    /// Commit requests of unknown outcome resolved by proposal id.
    uncertain_resolved: u64,
    /// Outcomes reported unknown to the nodes.
    unknown_outcomes: u64,
    /// The largest transaction written so far, in bytes (since the process started).
    largest_write_bytes: u64,
    /// The most operations of one transaction so far (since the process started).
    largest_write_ops: u64,
    /// The most keys one transaction read, by action (since the process started).
    keys_read_max: BTreeMap<String, u64>,
    /// Fences of the nodes.
    fences: u64,
    /// Nodes fenced at the end.
    fenced_at_end: u64,
    /// Nodes this process saw declared failed (NodeFailed notifications, counted once a node).
    declared_failed: u64,
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn add(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn max_into(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

impl Tally {
    fn between(before: &StoreStats, after: &StoreStats) -> Tally {
        Tally {
            commits: delta(&after.commits, &before.commits),
            conflicts: delta(&after.conflicts, &before.conflicts),
            retries: delta(&after.retries, &before.retries),
            refusals: delta(&after.refusals, &before.refusals),
            confirm_reads: after.confirm_reads - before.confirm_reads,
            cache_loads: after.cache_loads - before.cache_loads,
            uncertain_resolved: after.uncertain_resolved - before.uncertain_resolved,
            unknown_outcomes: after.unknown_outcomes - before.unknown_outcomes,
            largest_write_bytes: after.largest_write_bytes,
            largest_write_ops: after.largest_write_ops,
            keys_read_max: after.keys_read_max.clone(),
            ..Tally::default()
        }
    }

    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    fn add(&mut self, other: &Tally) {
        self.nodes += other.nodes;
        add(&mut self.commits, &other.commits);
        add(&mut self.conflicts, &other.conflicts);
        add(&mut self.retries, &other.retries);
        add(&mut self.refusals, &other.refusals);
        self.confirm_reads += other.confirm_reads;
        self.cache_loads += other.cache_loads;
        self.uncertain_resolved += other.uncertain_resolved;
        self.unknown_outcomes += other.unknown_outcomes;
        self.largest_write_bytes = self.largest_write_bytes.max(other.largest_write_bytes);
        self.largest_write_ops = self.largest_write_ops.max(other.largest_write_ops);
        max_into(&mut self.keys_read_max, &other.keys_read_max);
        self.fences += other.fences;
        self.fenced_at_end += other.fenced_at_end;
        self.declared_failed = self.declared_failed.max(other.declared_failed);
    }

    fn print(&self, seconds: u64, timing: &Timing) {
        println!(
            "{:<18} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "action", "commits", "conflicts", "retries", "refusals", "keys read"
        );
        let names: std::collections::BTreeSet<&String> = self
            .commits
            .keys()
            .chain(self.conflicts.keys())
            .chain(self.refusals.keys())
            .collect();
        let get = |m: &BTreeMap<String, u64>, k: &String| m.get(k).copied().unwrap_or(0);
        for name in names {
            println!(
                "{:<18} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                get(&self.commits, name),
                get(&self.conflicts, name),
                get(&self.retries, name),
                get(&self.refusals, name),
                get(&self.keys_read_max, name)
            );
        }
        println!(
            "commit requests whose outcome was unknown and that the store resolved by proposal \
             id: {}; outcomes reported unknown: {}",
            self.uncertain_resolved, self.unknown_outcomes
        );
        let total: u64 = self.commits.values().sum();
        let attempts =
            total + self.conflicts.values().sum::<u64>() + self.refusals.values().sum::<u64>();
        let nodes = self.nodes.max(1) as f64;
        let intervals =
            (seconds * 1_000) as f64 / timing.settings().heartbeat_interval_ms.max(1) as f64;
        let heartbeats = self.commits.get("SendHeartbeat").copied().unwrap_or(0);
        println!(
            "total {total} commits in {seconds} s: {:.0} per second, {:.2} per node per \
             heartbeat interval",
            total as f64 / seconds.max(1) as f64,
            total as f64 / nodes / intervals
        );
        println!(
            "heartbeats committed: {heartbeats}, {:.2} per node per heartbeat interval",
            heartbeats as f64 / nodes / intervals
        );
        println!(
            "store operations: {attempts} transactions (commits, conflicts, refusals) and {} \
             reads confirming a cache current: {:.2} per node per heartbeat interval; {} \
             whole-registry cache loads",
            self.confirm_reads,
            (attempts + self.confirm_reads) as f64 / nodes / intervals,
            self.cache_loads
        );
        println!(
            "largest transaction: {} bytes, {} operations (since each process started)",
            self.largest_write_bytes, self.largest_write_ops
        );
        println!(
            "fences while observing: {}; nodes fenced at the end: {} of {} (a node fences when \
             no heartbeat of it commits within its lease, and unfences after one does)",
            self.fences, self.fenced_at_end, self.nodes
        );
        println!(
            "failure declarations: {} MarkNodeFailed commits while observing; nodes declared \
             failed since the start: {} (nobody was stopped: every one is false)",
            self.commits.get("MarkNodeFailed").copied().unwrap_or(0),
            self.declared_failed
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("error: cannot start the tokio runtime");
        return ExitCode::from(2);
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<(), String> {
    let timing = Timing::new(membership::protocol::TimingSettings {
        probe_interval_ms: cli.probe_interval_ms,
        probe_timeout_ms: cli.probe_interval_ms,
        suspect_after_ms: cli.probe_interval_ms * 3,
        ..Timing::DEFAULT_SETTINGS
    })
    .map_err(|e| e.to_string())?;
    if cli.processes == 0 || cli.processes > PROCESSES_MAX || cli.processes > cli.nodes {
        return Err(format!(
            "--processes {} is outside 1..={} (and at most --nodes)",
            cli.processes, PROCESSES_MAX
        ));
    }
    if cli.store == "memory" {
        if cli.processes > 1 || cli.child.is_some() {
            return Err("--processes needs a store the processes share: --store etcd://...".into());
        }
        let store = Arc::new(MemoryStore::new());
        init(store.as_ref(), cli.nodes).await?;
        return run_single(cli, timing, store).await;
    }
    #[cfg(feature = "etcd")]
    if cli.store.starts_with("etcd://") {
        let mut options =
            membership::EtcdOptions::from_url(&cli.store).map_err(|e| e.to_string())?;
        if let Some(range) = &cli.child {
            let (first, last) = node_range(range)?;
            let store = Arc::new(
                membership::EtcdStore::connect(options)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            return child::run(cli, timing, store, first, last).await;
        }
        options.prefix = format!("{}load-example-{}/", options.prefix, std::process::id());
        let prefix = options.prefix.clone();
        let store = Arc::new(
            membership::EtcdStore::connect(options.clone())
                .await
                .map_err(|e| e.to_string())?,
        );
        store.clear().await.map_err(|e| e.to_string())?;
        init(store.as_ref(), cli.nodes).await?;
        let result = if cli.processes > 1 {
            let hosts: Vec<&str> = options
                .endpoints
                .iter()
                .map(|e| e.trim_start_matches("http://"))
                .collect();
            let url = format!("etcd://{}{prefix}", hosts.join(","));
            parent::run(cli, timing, store.clone(), &url).await
        } else {
            run_single(cli, timing, store.clone()).await
        };
        store.clear().await.map_err(|e| e.to_string())?;
        return result;
    }
    Err(format!(
        "unknown store {:?}: memory, or etcd://host:port,... (built with --features etcd)",
        cli.store
    ))
}

async fn init<S: Store>(store: &S, nodes: u16) -> Result<(), String> {
    store
        .init(Config::fixed(nodes).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())
}

/// `"a-b"` as the node ids a..=b.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn node_range(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("--child {text:?} is not FIRST-LAST"))?;
    let first: u16 = a.parse().map_err(|_| format!("--child {text:?}: {a:?}"))?;
    let last: u16 = b.parse().map_err(|_| format!("--child {text:?}: {b:?}"))?;
    if first == 0 || first > last {
        return Err(format!("--child {text:?} is an empty range"));
    }
    Ok((first, last))
}

/// The nodes of one process, with what their notifications counted.
struct Nodes {
    handles: Vec<Arc<NodeHandle>>,
    fences: Arc<AtomicU64>,
    fenced: Arc<Mutex<BTreeMap<NodeId, bool>>>,
    declared_failed: Arc<Mutex<std::collections::BTreeSet<NodeId>>>,
    counters: Vec<tokio::task::JoinHandle<()>>,
}

impl Nodes {
    /// Starts nodes `first..=last` on `store` and joins them, at most [`JOINS_IN_FLIGHT_MAX`]
    /// at a time.
    async fn start<S: Store>(
        store: Arc<S>,
        timing: Timing,
        first: u16,
        last: u16,
    ) -> Result<Nodes, String> {
        let mut nodes = Nodes {
            handles: Vec::new(),
            fences: Arc::new(AtomicU64::new(0)),
            fenced: Arc::new(Mutex::new(BTreeMap::new())),
            declared_failed: Arc::new(Mutex::new(std::collections::BTreeSet::new())),
            counters: Vec::new(),
        };
        for i in first..=last {
            let mut options = NodeOptions::new(NodeId(i));
            options.timing = timing;
            options.wait_timeout_ms = 120_000;
            let node = NodeHandle::start(store.clone(), options)
                .await
                .map_err(|e| e.to_string())?;
            nodes.count(&node);
            nodes.handles.push(Arc::new(node));
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(JOINS_IN_FLIGHT_MAX));
        let mut joins = tokio::task::JoinSet::new();
        for node in &nodes.handles {
            let node = node.clone();
            let gate = gate.clone();
            joins.spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                node.join()
                    .await
                    .map_err(|e| format!("{}: {e}", node.node()))
            });
        }
        while let Some(joined) = joins.join_next().await {
            joined.map_err(|e| e.to_string())??;
        }
        Ok(nodes)
    }

    /// Counts `node`'s fences and the failure declarations it sees.
    fn count(&mut self, node: &NodeHandle) {
        let mut rx = node.notifications();
        let fences = self.fences.clone();
        let fenced = self.fenced.clone();
        let declared = self.declared_failed.clone();
        self.counters.push(tokio::spawn(async move {
            loop {
                let n = match rx.recv().await {
                    Ok(n) => n,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let now_fenced = match n.notification {
                    Notification::Fenced { .. } => {
                        fences.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Notification::Unfenced => false,
                    Notification::NodeFailed { node } => {
                        if let Ok(mut d) = declared.lock() {
                            d.insert(node);
                        }
                        continue;
                    }
                    _ => continue,
                };
                if let Ok(mut f) = fenced.lock() {
                    f.insert(n.node, now_fenced);
                }
            }
        }));
    }

    /// Observes for `seconds`: what the store handle and the notifications counted meanwhile.
    async fn observe<S: Store>(&self, store: &S, seconds: u64) -> Tally {
        let fences_before = self.fences.load(Ordering::Relaxed);
        let before = store.stats();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let after = store.stats();
        let mut tally = Tally::between(&before, &after);
        tally.nodes = self.handles.len() as u64;
        tally.fences = self.fences.load(Ordering::Relaxed) - fences_before;
        tally.fenced_at_end = self
            .fenced
            .lock()
            .map(|f| f.values().filter(|&&x| x).count() as u64)
            .unwrap_or(0);
        tally.declared_failed = self
            .declared_failed
            .lock()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
        tally
    }

    fn kill(&self) {
        for c in &self.counters {
            c.abort();
        }
        for n in &self.handles {
            n.kill();
        }
    }
}

async fn run_single<S: Store>(cli: &Cli, timing: Timing, store: Arc<S>) -> Result<(), String> {
    let started = Instant::now();
    let nodes = Nodes::start(store.clone(), timing, 1, cli.nodes).await?;
    println!(
        "{} nodes Active after {:.1} s; observing for {} s",
        cli.nodes,
        started.elapsed().as_secs_f64(),
        cli.seconds
    );
    let tally = nodes.observe(store.as_ref(), cli.seconds).await;
    let active = print_state(store.as_ref(), cli.seconds).await?;
    tally.print(cli.seconds, &timing);
    conflict_pairs(&store.stats());
    nodes.kill();
    verdict(cli.nodes, active, &tally)
}

/// Prints the registry's members, primary and views; the number of Active members.
async fn print_state<S: Store>(store: &S, seconds: u64) -> Result<u16, String> {
    let state = store.snapshot().await.map_err(|e| e.to_string())?.state;
    println!(
        "after {seconds} s: {} Active, primary {:?}, converged {}",
        state.active().len(),
        state.primary_in_office(),
        state.is_converged()
    );
    Ok(state.active().len())
}

/// The run's verdict: nobody was stopped, so every node must still be Active and none may have
/// been declared failed.
fn verdict(nodes: u16, active: u16, tally: &Tally) -> Result<(), String> {
    if tally.declared_failed > 0 || active != nodes {
        return Err(format!(
            "{} nodes declared failed, {active} of {nodes} Active at the end: every node ran \
             throughout, so every declaration was false",
            tally.declared_failed
        ));
    }
    Ok(())
}

fn conflict_pairs(stats: &StoreStats) {
    println!("conflicts by (conflicting action <- action whose commit it met), since the start:");
    for ((victim, winner), count) in &stats.conflict_pairs {
        println!("  {victim} <- {winner}: {count}");
    }
}

/// A child process: runs its share of the nodes and answers the parent on stdout.
///
/// Lines out: `READY <ms>` once its nodes are Active, `TALLY <json>` after observing. Lines in:
/// `GO` (observe now), then `STOP` (or the end of stdin): kill the nodes and exit.
#[cfg(feature = "etcd")]
mod child {
    use super::*;

    /// The next line of stdin (None at its end).
    async fn next_line() -> Option<String> {
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(line.trim().to_string()),
            }
        })
        .await
        .ok()
        .flatten()
    }

    pub(super) async fn run<S: Store>(
        cli: &Cli,
        timing: Timing,
        store: Arc<S>,
        first: u16,
        last: u16,
    ) -> Result<(), String> {
        let started = Instant::now();
        let nodes = Nodes::start(store.clone(), timing, first, last).await?;
        println!("READY {}", started.elapsed().as_millis());
        if next_line().await.as_deref() == Some("GO") {
            let tally = nodes.observe(store.as_ref(), cli.seconds).await;
            let json = serde_json::to_string(&tally).map_err(|e| e.to_string())?;
            println!("TALLY {json}");
            // Every process keeps its nodes running until every process has observed.
            let _stop = next_line().await;
        }
        nodes.kill();
        Ok(())
    }
}

/// The parent of `--processes`: starts the children, synchronises their observation, adds up.
#[cfg(feature = "etcd")]
mod parent {
    use super::*;
    use std::io::{BufRead, Write};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;

    /// The children and the lines they printed.
    struct Children {
        children: Vec<Child>,
        lines: mpsc::Receiver<(usize, String)>,
        sender: mpsc::Sender<(usize, String)>,
    }

    impl Children {
        fn spawn(&mut self, cli: &Cli, url: &str, first: u16, last: u16) -> Result<(), String> {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut child = Command::new(exe)
                .arg("--nodes")
                .arg(cli.nodes.to_string())
                .arg("--seconds")
                .arg(cli.seconds.to_string())
                .arg("--probe-interval-ms")
                .arg(cli.probe_interval_ms.to_string())
                .arg("--store")
                .arg(url)
                .arg("--child")
                .arg(format!("{first}-{last}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start a child process: {e}"))?;
            let out = child.stdout.take().ok_or("no stdout of the child")?;
            let index = self.children.len();
            let sender = self.sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if sender.send((index, line)).is_err() {
                        break;
                    }
                }
            });
            self.children.push(child);
            Ok(())
        }

        /// The next line starting with `tag` from any child (blocking at most
        /// [`CHILD_WAIT_MS`]); an error as soon as a child has exited without printing it.
        async fn next(&mut self, tag: &str) -> Result<(usize, String), String> {
            let deadline = Instant::now() + Duration::from_millis(CHILD_WAIT_MS);
            while Instant::now() < deadline {
                let wait = Duration::from_millis(CHILD_POLL_MS);
                match tokio::task::block_in_place(|| self.lines.recv_timeout(wait)) {
                    Ok((i, line)) => {
                        if let Some(rest) = line.strip_prefix(tag) {
                            return Ok((i, rest.trim().to_string()));
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        for (i, c) in self.children.iter_mut().enumerate() {
                            if let Ok(Some(status)) = c.try_wait() {
                                return Err(format!(
                                    "child process {} exited ({status}) before its {tag} line",
                                    i + 1
                                ));
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(format!("no {tag} line from a child process in time"))
        }

        fn say(&mut self, line: &str) {
            for c in &mut self.children {
                if let Some(stdin) = c.stdin.as_mut() {
                    let _ = writeln!(stdin, "{line}");
                }
            }
        }

        fn stop(&mut self) {
            self.say("STOP");
            for c in &mut self.children {
                drop(c.stdin.take());
                let _ = c.wait();
            }
        }
    }

    impl Drop for Children {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub(super) async fn run<S: Store>(
        cli: &Cli,
        timing: Timing,
        store: Arc<S>,
        url: &str,
    ) -> Result<(), String> {
        let (sender, lines) = mpsc::channel();
        let mut children = Children {
            children: Vec::new(),
            lines,
            sender,
        };
        let per = cli.nodes.div_ceil(cli.processes);
        let ranges: Vec<(u16, u16)> = (0..cli.processes)
            .map(|p| (p * per + 1, ((p + 1) * per).min(cli.nodes)))
            .filter(|(a, b)| a <= b)
            .collect();
        let started = Instant::now();
        // The first process bootstraps the cluster; the others join it once it is up.
        for (k, &(first, last)) in ranges.iter().enumerate() {
            children.spawn(cli, url, first, last)?;
            if k == 0 {
                children.next("READY").await?;
            }
        }
        for _ in 1..ranges.len() {
            children.next("READY").await?;
        }
        println!(
            "{} nodes in {} processes Active after {:.1} s; observing for {} s",
            cli.nodes,
            ranges.len(),
            started.elapsed().as_secs_f64(),
            cli.seconds
        );
        children.say("GO");
        let mut total = Tally::default();
        for _ in 0..ranges.len() {
            let (i, json) = children.next("TALLY").await?;
            let tally: Tally = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            println!(
                "process {} (nodes {}-{}): {} heartbeats, {} fences",
                i + 1,
                ranges[i].0,
                ranges[i].1,
                tally.commits.get("SendHeartbeat").copied().unwrap_or(0),
                tally.fences
            );
            total.add(&tally);
        }
        let active = print_state(store.as_ref(), cli.seconds).await?;
        children.stop();
        total.print(cli.seconds, &timing);
        verdict(cli.nodes, active, &total)
    }
}
