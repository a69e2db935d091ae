//! Store load of a running cluster: `cargo run --release --example load -- --nodes 100 --seconds 30`.
//!
//! Starts the nodes on the in-memory store, or with `--store etcd://...` (cargo feature `etcd`)
//! on an etcd cluster (real time, TCP probes on 127.0.0.1), lets them run,
//! and prints the store's transactions, conflicts and retries by spec action, and the
//! transactions per node per heartbeat interval.

#![allow(clippy::print_stdout)]

use clap::Parser;
use membership::protocol::{Config, NodeId, Notification, Timing};
use membership::{MemoryStore, NodeHandle, NodeOptions, Store};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    if cli.store == "memory" {
        return run_on(cli, timing, Arc::new(MemoryStore::new())).await;
    }
    #[cfg(feature = "etcd")]
    if cli.store.starts_with("etcd://") {
        let mut options =
            membership::EtcdOptions::from_url(&cli.store).map_err(|e| e.to_string())?;
        options.prefix = format!("{}load-example-{}/", options.prefix, std::process::id());
        let store = Arc::new(
            membership::EtcdStore::connect(options)
                .await
                .map_err(|e| e.to_string())?,
        );
        store.clear().await.map_err(|e| e.to_string())?;
        let result = run_on(cli, timing, store.clone()).await;
        store.clear().await.map_err(|e| e.to_string())?;
        return result;
    }
    Err(format!(
        "unknown store {:?}: memory, or etcd://host:port,... (built with --features etcd)",
        cli.store
    ))
}

async fn run_on<S: Store>(cli: &Cli, timing: Timing, store: Arc<S>) -> Result<(), String> {
    store
        .init(Config::fixed(cli.nodes).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let mut nodes = Vec::new();
    for i in 1..=cli.nodes {
        let mut options = NodeOptions::new(NodeId(i));
        options.timing = timing;
        options.wait_timeout_ms = 120_000;
        let node = NodeHandle::start(store.clone(), options)
            .await
            .map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    // Count the nodes' fences, and whether each is fenced now.
    let fences = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let fenced = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut counters = Vec::new();
    for node in &nodes {
        let mut rx = node.notifications();
        let fences = fences.clone();
        let fenced = fenced.clone();
        counters.push(tokio::spawn(async move {
            loop {
                let n = match rx.recv().await {
                    Ok(n) => n,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let now_fenced = match n.notification {
                    Notification::Fenced { .. } => {
                        fences.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        true
                    }
                    Notification::Unfenced => false,
                    _ => continue,
                };
                if let Ok(mut f) = fenced.lock() {
                    f.insert(n.node, now_fenced);
                }
            }
        }));
    }
    let started = Instant::now();
    for node in &nodes {
        node.join().await.map_err(|e| e.to_string())?;
    }
    println!(
        "{} nodes Active after {:.1} s; observing for {} s",
        cli.nodes,
        started.elapsed().as_secs_f64(),
        cli.seconds
    );
    let fences_before = fences.load(std::sync::atomic::Ordering::Relaxed);
    let before = store.stats();
    tokio::time::sleep(Duration::from_secs(cli.seconds)).await;
    let after = store.stats();
    let fenced_now = fenced
        .lock()
        .map(|f| f.values().filter(|&&x| x).count())
        .unwrap_or(0);
    println!(
        "fences while observing: {}; nodes fenced at the end: {fenced_now} of {} (a node fences \
         when no heartbeat of it commits within its lease, and unfences after one does)",
        fences.load(std::sync::atomic::Ordering::Relaxed) - fences_before,
        cli.nodes
    );
    for c in &counters {
        c.abort();
    }
    let state = store.snapshot().await.map_err(|e| e.to_string())?.state;
    println!(
        "after {} s: {} Active, primary {:?}, converged {}",
        cli.seconds,
        state.active().len(),
        state.primary_in_office(),
        state.is_converged()
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>10}",
        "action", "commits", "conflicts", "retries", "refusals"
    );
    let names: std::collections::BTreeSet<&String> = after
        .commits
        .keys()
        .chain(after.conflicts.keys())
        .chain(after.refusals.keys())
        .collect();
    let delta =
        |m: &std::collections::BTreeMap<String, u64>,
         b: &std::collections::BTreeMap<String, u64>,
         k: &String| { m.get(k).copied().unwrap_or(0) - b.get(k).copied().unwrap_or(0) };
    let mut total = 0;
    for name in names {
        let commits = delta(&after.commits, &before.commits, name);
        total += commits;
        println!(
            "{:<18} {:>10} {:>10} {:>10} {:>10}",
            name,
            commits,
            delta(&after.conflicts, &before.conflicts, name),
            delta(&after.retries, &before.retries, name),
            delta(&after.refusals, &before.refusals, name)
        );
    }
    println!("conflicts by (conflicting action <- action whose commit it met):");
    for ((victim, winner), count) in &after.conflict_pairs {
        let before_count = before
            .conflict_pairs
            .get(&(victim.clone(), winner.clone()))
            .copied()
            .unwrap_or(0);
        if count > &before_count {
            println!("  {victim} <- {winner}: {}", count - before_count);
        }
    }
    println!(
        "commit requests whose outcome was unknown and that the store resolved by proposal id: {}; outcomes reported unknown: {}",
        after.uncertain_resolved - before.uncertain_resolved,
        after.unknown_outcomes - before.unknown_outcomes
    );
    let intervals = (cli.seconds * 1_000) as f64 / timing.settings().heartbeat_interval_ms as f64;
    println!(
        "total {} commits in {} s: {:.0} per second, {:.2} per node per heartbeat interval",
        total,
        cli.seconds,
        total as f64 / cli.seconds as f64,
        total as f64 / f64::from(cli.nodes) / intervals
    );
    for n in &nodes {
        n.kill();
    }
    Ok(())
}
