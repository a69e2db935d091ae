//! A cluster you can run: `cargo run --release --example cluster`.
//!
//! Starts N nodes in one process on the embedded in-memory store, or with `--store etcd://...`
//! (cargo feature `etcd`) on an etcd cluster (real time, TCP probes on 127.0.0.1), places actors, kills the primary's task, and prints a timeline: when the failure
//! was detected, the new primary and its term, how many actors moved and how long it took. It
//! ends with a check computed from the nodes' own activate/deactivate notifications (not from the
//! registry): no actor was ever served by two nodes at once. It exits 0 only if that holds.
//! With `--runs N` it repeats the whole run and prints the failover distribution.

#![allow(clippy::print_stdout)]

use clap::Parser;
use membership::protocol::{ActorId, Config, NodeId, Notification, Timing, TimingSettings};
use membership::testing::{check_single_activation, CutLink};
use membership::{MemoryStore, NodeHandle, NodeNotification, NodeOptions, Store};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How long any phase of a run may take before the run counts as failed.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most place requests the example has waiting at once (across its nodes).
const PLACEMENTS_IN_FLIGHT_MAX: usize = 4_096;

/// How often a long placement prints its progress (the first run only).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    about = "Run a cluster in one process: place actors, kill the primary, watch the failover",
    long_about = "Starts --nodes nodes on the embedded in-memory store or on --store (real time, \
                  TCP probes on 127.0.0.1), places --actors actors, kills the primary's task, and prints a \
                  timeline of the failover. It ends with a single-activation check computed from \
                  the nodes' own activate/deactivate notifications and exits 0 only if no actor \
                  was ever served by two nodes at once."
)]
struct Cli {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5)]
    nodes: u16,
    /// Actors to place before killing the primary.
    #[arg(long, default_value_t = 1_000)]
    actors: u64,
    /// Timing preset: `default` (heartbeat 100 ms, lease 300 ms, failure timeout 500 ms) or
    /// `fast` (25 / 75 / 125 ms). The flags below override single settings.
    #[arg(long, default_value = "default")]
    timing: String,
    /// How often a node heartbeats, in ms.
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// How long a heartbeat round must be open before a silent node may be detected, in ms.
    #[arg(long)]
    failure_timeout_ms: Option<u64>,
    /// How long a committed heartbeat lets a node serve, in ms.
    #[arg(long)]
    lease_ms: Option<u64>,
    /// The bound on clock rate error, in parts per million.
    #[arg(long)]
    max_clock_rate_error_ppm: Option<u64>,
    /// How many times to run the whole scenario (the failover figures are over all runs).
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Scale down first: this many nodes (the highest ids other than the primary) leave
    /// gracefully once the actors are placed, before the primary is killed. With `--nodes 5
    /// --leave 2` the two survivors are a majority of the three members left (registry v2).
    #[arg(long, default_value_t = 0)]
    leave: u16,
    /// Instead of killing the primary, cut its link to the store: its process and its probe
    /// listener run on (nobody sees it unreachable), it only cannot commit. It is declared failed
    /// on the registry's evidence (registry v2).
    #[arg(long)]
    cut_store: bool,
    /// At the same moment, also kill another node (the highest id still a member): its
    /// declaration time is measured too.
    #[arg(long)]
    second_crash: bool,
    /// How many nodes ask for the placements (the first ones; default: every node). The
    /// requests of one node go out in batches; placements asked of many nodes at once conflict
    /// on the load counters they all read.
    #[arg(long)]
    placers: Option<u16>,
    /// How many failovers each run measures: once the actors are placed, the primary is killed,
    /// and once the others serve every actor again, the next primary is killed, and so on (the
    /// cluster shrinks by one member each time; the figures are over every failover of every
    /// run).
    #[arg(long, default_value_t = 1)]
    failovers: u32,
    /// Print every notification as it happens.
    #[arg(long)]
    verbose: bool,
    /// The store: `memory` (the embedded in-memory store) or an etcd cluster,
    /// `etcd://host:port[,host:port...][/prefix]` (needs `--features etcd`). Each run uses a
    /// fresh prefix below the given one, deleted afterwards.
    #[arg(long, default_value = "memory")]
    store: String,
}

fn timing(cli: &Cli) -> Result<Timing, String> {
    let mut settings: TimingSettings = Timing::preset(&cli.timing)
        .ok_or_else(|| format!("unknown timing preset {:?} (default or fast)", cli.timing))?;
    if let Some(v) = cli.heartbeat_interval_ms {
        settings.heartbeat_interval_ms = v;
    }
    if let Some(v) = cli.failure_timeout_ms {
        settings.failure_timeout_ms = v;
    }
    if let Some(v) = cli.lease_ms {
        settings.lease_ms = v;
    }
    if let Some(v) = cli.max_clock_rate_error_ppm {
        settings.max_clock_rate_error_ppm = v;
    }
    Timing::new(settings).map_err(|e| e.to_string())
}

/// What one run measured.
struct RunReport {
    to_detected_ms: f64,
    to_second_detected_ms: Option<f64>,
    to_primary_ms: f64,
    to_actors_ms: f64,
    moved: usize,
    single_activation: bool,
}

/// Every node's notifications as its subscriber received them, and how many a subscriber missed
/// because it lagged more than `NOTIFICATION_BUFFER` behind (the figures count on the first,
/// so a run that lost some during a failover fails instead of reporting a figure).
#[derive(Default)]
struct Recorded {
    notifications: Vec<NodeNotification>,
    lost: u64,
}

type Log = Arc<Mutex<Recorded>>;

/// How many notifications lagging subscribers have lost so far.
fn lost(log: &Log) -> u64 {
    log.lock().unwrap_or_else(|p| p.into_inner()).lost
}

/// The recorded notifications and the count of those lost so far.
fn recorded(log: &Log) -> (Vec<NodeNotification>, u64) {
    let recorded = log.lock().unwrap_or_else(|p| p.into_inner());
    (recorded.notifications.clone(), recorded.lost)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > PHASE_TIMEOUT {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn run_once(cli: &Cli, timing: Timing, run: u32) -> Result<Vec<RunReport>, String> {
    if cli.store == "memory" {
        return run_on(cli, timing, run, Arc::new(MemoryStore::new())).await;
    }
    #[cfg(feature = "etcd")]
    if cli.store.starts_with("etcd://") {
        let mut options =
            membership::EtcdOptions::from_url(&cli.store).map_err(|e| e.to_string())?;
        options.prefix = format!(
            "{}cluster-example-{}-{run}/",
            options.prefix,
            std::process::id()
        );
        let store = Arc::new(
            membership::EtcdStore::connect(options)
                .await
                .map_err(|e| e.to_string())?,
        );
        store.clear().await.map_err(|e| e.to_string())?;
        let report = run_on(cli, timing, run, store.clone()).await;
        if report.is_err() || cli.verbose {
            print_conflicts(&store.stats());
        }
        let cleared = store.clear().await;
        return match (report, cleared) {
            (Ok(report), Ok(())) => Ok(report),
            (Ok(_), Err(e)) => Err(format!("clearing the run's prefix failed: {e}")),
            // The run's own error is the one to report; a failed clear is mentioned beside it.
            (Err(run), Err(e)) => Err(format!("{run} (and clearing the run's prefix failed: {e})")),
            (Err(run), Ok(())) => Err(run),
        };
    }
    Err(format!(
        "unknown store {:?}: memory, or etcd://host:port,... (built with --features etcd)",
        cli.store
    ))
}

async fn run_on<S: Store>(
    cli: &Cli,
    timing: Timing,
    run: u32,
    store: Arc<S>,
) -> Result<Vec<RunReport>, String> {
    let config = Config::fixed(cli.nodes).map_err(|e| e.to_string())?;
    store.init(config).await.map_err(|e| e.to_string())?;
    let log: Log = Arc::new(Mutex::new(Recorded::default()));
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for i in 1..=cli.nodes {
        let mut options = NodeOptions::new(NodeId(i));
        options.timing = timing;
        // Each node reaches the store through its own link, which --cut-store cuts.
        let link = Arc::new(CutLink::new(store.clone()));
        links.push(link.clone());
        let node = NodeHandle::start(link, options)
            .await
            .map_err(|e| e.to_string())?;
        let mut rx = node.notifications();
        let log = log.clone();
        let verbose = cli.verbose;
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(n) => {
                        if verbose {
                            println!("  [{}] {:?}", n.node, n.notification);
                        }
                        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                        log.notifications.push(n);
                    }
                    // A subscriber that lagged misses some and goes on (before, it stopped
                    // here, and every later failover of its node "left no trace").
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        log.lock().unwrap_or_else(|p| p.into_inner()).lost += missed;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        nodes.push(node);
    }
    let started = Instant::now();
    for node in &nodes {
        node.join().await.map_err(|e| e.to_string())?;
    }
    wait_until("every node Active with one primary and one view", || {
        nodes.iter().all(|n| {
            n.snapshot().is_some_and(|s| {
                s.state.active().len() == cli.nodes
                    && s.state.is_converged()
                    && s.state.primary_in_office().is_some()
            })
        })
    })
    .await?;
    if run == 1 {
        println!(
            "{:>8.0} ms  {} nodes Active, primary {:?}",
            ms(started.elapsed()),
            cli.nodes,
            nodes[0].primary()
        );
    }
    // Place the actors from every node at once (each node proposes its share, its queued
    // requests in batches), at most PLACEMENTS_IN_FLIGHT_MAX waiting at a time, as a client
    // placing many actors would: a request waits at most `wait_timeout_ms` in its node's queue.
    let mut placing = Vec::new();
    let placers = cli.placers.unwrap_or(cli.nodes).clamp(1, cli.nodes);
    let handles: Vec<Arc<NodeHandle>> = nodes.into_iter().map(Arc::new).collect();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(PLACEMENTS_IN_FLIGHT_MAX));
    let placed = Arc::new(AtomicU64::new(0));
    let progress = (run == 1).then(|| {
        tokio::spawn(print_progress(
            store.clone(),
            placed.clone(),
            cli.actors,
            started,
        ))
    });
    for a in 1..=cli.actors {
        let node = handles[usize::try_from(a % u64::from(placers)).unwrap_or(0)].clone();
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let count = placed.clone();
        placing.push(tokio::spawn(async move {
            let placement = node.place_actor(ActorId(a)).await;
            drop(permit);
            count.fetch_add(1, Ordering::Relaxed);
            placement
        }));
    }
    for p in placing {
        p.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    wait_until("every actor served", || {
        handles
            .iter()
            .map(|n| n.activated_ignoring_lease().len())
            .sum::<usize>()
            == usize::try_from(cli.actors).unwrap_or(0)
    })
    .await?;
    let primary = handles[0].primary().ok_or("no primary")?;
    let leavers: Vec<NodeId> = handles
        .iter()
        .map(|n| n.node())
        .filter(|&n| n != primary.0)
        .rev()
        .take(usize::from(cli.leave))
        .collect();
    for node in &leavers {
        let handle = handles
            .iter()
            .find(|n| n.node() == *node)
            .ok_or("leaver not found")?;
        handle.leave().await.map_err(|e| e.to_string())?;
    }
    if !leavers.is_empty() {
        wait_until("every actor served by the nodes that stayed", || {
            handles
                .iter()
                .filter(|n| !leavers.contains(&n.node()))
                .map(|n| n.activated_ignoring_lease().len())
                .sum::<usize>()
                == usize::try_from(cli.actors).unwrap_or(0)
        })
        .await?;
        if run == 1 {
            println!(
                "{:>8.0} ms  {} left gracefully: {} members",
                ms(started.elapsed()),
                leavers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                cli.nodes - cli.leave
            );
        }
    }
    if run == 1 {
        let served: Vec<usize> = handles
            .iter()
            .map(|n| n.activated_ignoring_lease().len())
            .collect();
        println!(
            "{:>8.0} ms  {} actors placed and served (per node: {} to {})",
            ms(started.elapsed()),
            cli.actors,
            served.iter().min().copied().unwrap_or(0),
            served.iter().max().copied().unwrap_or(0)
        );
    }
    let mut live: Vec<Arc<NodeHandle>> = handles
        .iter()
        .filter(|n| !leavers.contains(&n.node()))
        .cloned()
        .collect();
    let mut killed: Vec<(NodeId, Instant)> = Vec::new();
    let mut reports = Vec::new();
    for failover in 1..=cli.failovers.max(1) {
        let report = fail_over(
            cli,
            (run, failover, started),
            &log,
            &links,
            &mut live,
            &mut killed,
        )
        .await?;
        reports.push(report);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (log, lost) = recorded(&log);
    if lost > 0 {
        println!("notifications lost by lagging subscribers: {lost}");
    }
    // A killed process serves nothing after its kill; a cut one runs on and reports its own
    // deactivations (it fences itself), so it is checked like any live node.
    let single = check_single_activation(&log, &killed);
    if run == 1 {
        match &single {
            Ok(checked) => {
                let fences = log
                    .iter()
                    .filter(|n| matches!(n.notification, Notification::Fenced { .. }))
                    .count();
                println!(
                    "single activation: held ({checked} activations checked from the nodes' \
                     notifications; {fences} fences)"
                );
            }
            Err(e) => println!("single activation: VIOLATED: {e}"),
        }
    }
    for r in &mut reports {
        r.single_activation = single.is_ok();
    }
    if run == 1 {
        let stats = store.stats();
        println!(
            "store: {} commits, {} conflicts; the largest transaction wrote {} bytes in {} \
             operations (etcd's limits: 1.5 MiB, 128); the most keys one read: {} ({})",
            stats.total_commits(),
            stats.total_conflicts(),
            stats.largest_write_bytes,
            stats.largest_write_ops,
            stats.keys_read_max.values().max().copied().unwrap_or(0),
            stats
                .keys_read_max
                .iter()
                .max_by_key(|(_, v)| **v)
                .map_or("none", |(k, _)| k.as_str())
        );
    }
    for n in &handles {
        n.kill();
    }
    Ok(reports)
}

/// Prints, every [`PROGRESS_INTERVAL`], how many of the `actors` place requests were answered
/// and the store's placement commits and conflicts since the last line (runs until aborted).
async fn print_progress<S: Store>(
    store: Arc<S>,
    placed: Arc<AtomicU64>,
    actors: u64,
    started: Instant,
) {
    let mut last = (0_u64, 0_u64, 0_u64, store.stats().cache_loads);
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let stats = store.stats();
        let now = (
            placed.load(Ordering::Relaxed),
            stats.commits.get("PlaceActor").copied().unwrap_or(0),
            stats.conflicts.get("PlaceActor").copied().unwrap_or(0),
            stats.cache_loads,
        );
        println!(
            "{:>8.0} ms  placing: {} of {actors} answered ({:.0} a second over the last {} s); \
             {} placement commits, {} conflicts, {} cache loads in that time",
            ms(started.elapsed()),
            now.0,
            (now.0 - last.0) as f64 / PROGRESS_INTERVAL.as_secs_f64(),
            PROGRESS_INTERVAL.as_secs(),
            now.1 - last.1,
            now.2 - last.2,
            now.3 - last.3,
        );
        last = now;
    }
}

/// Kills (or cuts off) the primary of the `live` nodes, waits until the others serve every
/// actor and agree on a new primary, and measures it from the notifications. The victim (and
/// the second crash, if any) leave `live`; the killed ones join `killed`.
async fn fail_over<S: Store>(
    cli: &Cli,
    (run, failover, started): (u32, u32, Instant),
    log: &Log,
    links: &[Arc<CutLink<S>>],
    live: &mut Vec<Arc<NodeHandle>>,
    killed: &mut Vec<(NodeId, Instant)>,
) -> Result<RunReport, String> {
    let first = live.first().ok_or("no live node")?;
    let primary = first.primary().ok_or("no primary")?;
    let victim = live
        .iter()
        .find(|n| n.node() == primary.0)
        .ok_or("primary not found")?
        .clone();
    let held: BTreeSet<ActorId> = victim.activated_ignoring_lease().keys().copied().collect();
    let verbose = run == 1;
    if verbose {
        println!(
            "{:>8.0} ms  failover {failover}: primary {} (term {}) serves {} actors, {} members",
            ms(started.elapsed()),
            primary.0,
            primary.1,
            held.len(),
            live.len()
        );
    }
    let second: Option<NodeId> = if cli.second_crash {
        live.iter()
            .map(|n| n.node())
            .filter(|&n| n != primary.0)
            .max()
    } else {
        None
    };
    let lost_before = lost(log);
    let killed_at = Instant::now();
    if cli.cut_store {
        let index = usize::from(primary.0 .0) - 1;
        links.get(index).ok_or("no link")?.set_cut(true);
    } else {
        victim.kill();
        killed.push((primary.0, killed_at));
    }
    if let Some(second) = second {
        if let Some(n) = live.iter().find(|n| n.node() == second) {
            n.kill();
            killed.push((second, killed_at));
        }
    }
    if verbose {
        println!(
            "{:>8.0} ms  {} {}{}",
            ms(started.elapsed()),
            if cli.cut_store {
                "cut the store link of"
            } else {
                "killed the task of"
            },
            primary.0,
            second.map_or(String::new(), |n| format!(", killed the task of {n}"))
        );
    }
    live.retain(|n| n.node() != primary.0 && Some(n.node()) != second);
    let survivors: &[Arc<NodeHandle>] = live;
    wait_until("the failover", || {
        let served: usize = survivors
            .iter()
            .map(|n| n.activated_ignoring_lease().len())
            .sum();
        survivors.iter().all(|n| {
            n.snapshot().is_some_and(|s| {
                s.state.primary_in_office().is_some_and(|p| p != primary.0)
                    && s.state.queue().is_empty()
            })
        }) && served == usize::try_from(cli.actors).unwrap_or(0)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (log, lost) = recorded(log);
    if lost > lost_before {
        return Err(format!(
            "{} notifications were lost by lagging subscribers during the failover: its figures \
             would be wrong",
            lost - lost_before
        ));
    }
    let after =
        |n: &&NodeNotification| n.at >= killed_at && survivors.iter().any(|s| s.node() == n.node);
    let second_detected = second.and_then(|second| {
        log.iter()
            .filter(after)
            .find(|n| matches!(n.notification, Notification::NodeFailed { node } if node == second))
            .map(|n| n.at)
    });
    let detected = log
        .iter()
        .filter(after)
        .find(|n| matches!(n.notification, Notification::NodeFailed { node } if node == primary.0))
        .map(|n| n.at);
    let new_primary = log.iter().filter(after).find_map(|n| match n.notification {
        Notification::BecamePrimary { term } => Some((n.at, n.node, term)),
        _ => None,
    });
    let last_moved = log
        .iter()
        .filter(after)
        .filter(|n| {
            matches!(n.notification, Notification::ActorActivated { actor, .. } if held.contains(&actor))
        })
        .map(|n| n.at)
        .max();
    // A victim that held no actor has none to move: no figure (NaN, left out of the summary).
    let last_moved = if held.is_empty() {
        Some(None)
    } else {
        last_moved.map(Some)
    };
    let (Some(detected), Some((primary_at, new, term)), Some(last_moved)) =
        (detected, new_primary, last_moved)
    else {
        return Err(format!(
            "the failover left no trace in the notifications: {} declared failed by a survivor: \
             {}; a new primary: {}; an activation of the {} actors it held: {}",
            primary.0,
            detected.is_some(),
            new_primary.is_some(),
            held.len(),
            last_moved.is_some()
        ));
    };
    let report = RunReport {
        to_detected_ms: ms(detected - killed_at),
        to_second_detected_ms: second_detected.map(|at| ms(at - killed_at)),
        to_primary_ms: ms(primary_at - killed_at),
        to_actors_ms: last_moved.map_or(f64::NAN, |at| ms(at - killed_at)),
        moved: held.len(),
        single_activation: true,
    };
    if verbose {
        println!(
            "{:>8.0} ms  after the kill: {} declared failed (the first survivor saw it)",
            report.to_detected_ms, primary.0
        );
        if let (Some(second), Some(at)) = (second, report.to_second_detected_ms) {
            println!("{at:>8.0} ms  after the kill: {second} declared failed");
        }
        println!(
            "{:>8.0} ms  after the kill: {new} became primary with term {term}",
            report.to_primary_ms
        );
        if report.moved == 0 {
            println!("           {} held no actor: none to move", primary.0);
        } else {
            println!(
                "{:>8.0} ms  after the kill: all {} actors of {} active again elsewhere",
                report.to_actors_ms, report.moved, primary.0
            );
        }
    }
    Ok(report)
}

/// The store's commits and conflicts by action, and which commits the conflicts met.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn print_conflicts(stats: &membership::StoreStats) {
    println!("store commits (conflicts) by action:");
    for (action, commits) in &stats.commits {
        let conflicts = stats.conflicts.get(action).copied().unwrap_or(0);
        println!("  {action}: {commits} ({conflicts})");
    }
    for ((victim, winner), count) in &stats.conflict_pairs {
        println!("  conflict {victim} <- {winner}: {count}");
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * (sorted.len() as f64 - 1.0)).round();
    sorted[usize::try_from(rank as i64)
        .unwrap_or(0)
        .min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.leave.saturating_add(2) > cli.nodes {
        eprintln!(
            "error: --leave {} leaves fewer than two members of {} nodes: the primary is killed, \
             and someone must take its actors",
            cli.leave, cli.nodes
        );
        return ExitCode::from(2);
    }
    let killed_per_failover = if cli.second_crash { 2 } else { 1 };
    let members = u32::from(cli.nodes - cli.leave);
    if cli.failovers == 0 || (cli.failovers * killed_per_failover) * 2 >= members {
        eprintln!(
            "error: --failovers {} must be at least 1 and leave a majority of the {members} members \
             running",
            cli.failovers
        );
        return ExitCode::from(2);
    }
    if cli.failovers > 1 && cli.cut_store {
        eprintln!("error: --failovers above 1 kills each primary; --cut-store cuts only one");
        return ExitCode::from(2);
    }
    let timing = match timing(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let s = timing.settings();
    println!(
        "cluster: {} nodes, {} actors, heartbeat {} ms, lease {} ms, failure timeout {} ms, {} run(s), store {}",
        cli.nodes, cli.actors, s.heartbeat_interval_ms, s.lease_ms, s.failure_timeout_ms, cli.runs, cli.store
    );
    let mut reports = Vec::new();
    for run in 1..=cli.runs.max(1) {
        match runtime.block_on(run_once(&cli, timing, run)) {
            Ok(r) => reports.extend(r),
            Err(e) => {
                eprintln!("run {run} failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let ok = reports.iter().all(|r| r.single_activation);
    if reports.len() > 1 {
        let moved: Vec<usize> = reports.iter().map(|r| r.moved).collect();
        println!(
            "actors moved per failover: {} to {}",
            moved.iter().min().copied().unwrap_or(0),
            moved.iter().max().copied().unwrap_or(0)
        );
        for (name, pick) in [
            (
                "to detection",
                (|r: &RunReport| r.to_detected_ms) as fn(&RunReport) -> f64,
            ),
            ("to new primary", |r: &RunReport| r.to_primary_ms),
            ("to the second crash's detection", |r: &RunReport| {
                r.to_second_detected_ms.unwrap_or(f64::NAN)
            }),
            ("to every actor active again", |r: &RunReport| {
                r.to_actors_ms
            }),
        ] {
            let mut v: Vec<f64> = reports.iter().map(pick).filter(|x| !x.is_nan()).collect();
            if v.is_empty() {
                continue;
            }
            v.sort_by(f64::total_cmp);
            println!(
                "failover {name} over {} failovers: median {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                v.len(),
                percentile(&v, 0.5),
                percentile(&v, 0.99),
                v.last().copied().unwrap_or(0.0)
            );
        }
        let violated = reports.iter().filter(|r| !r.single_activation).count();
        println!(
            "single activation: held in {} of {} failovers",
            reports.len() - violated,
            reports.len()
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
