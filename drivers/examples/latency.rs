//! Transaction latency of a store: `cargo run --release --example latency --features etcd --
//! --store etcd://127.0.0.1:2379,127.0.0.1:12379,127.0.0.1:22379`.
//!
//! On a registry of 5 Active nodes, measures one proposal's latency (the store's `propose`,
//! from call to committed outcome, retries included) for (1) heartbeats, proposed one after the
//! other by the nodes in turn, and (2) the failure handling of a node holding 1,000 actors
//! (MarkNodeFailed after a failure quorum: one transition queueing all of them), each run on a
//! freshly imported registry. Prints p50 / p99 / max of each.

#![allow(clippy::print_stdout)]

use clap::Parser;
use membership::protocol::testing::{all_active, apply, place_on, voted_out};
use membership::protocol::{
    Action, Config, Event, NodeId, Proposal, ProposalId, ProposalOutcome, State,
};
use membership::testing::Audit;
use membership::{MemoryStore, Store};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Measure a store's transaction latency: heartbeats and a 1,000-actor failure")]
struct Cli {
    /// `memory` or `etcd://host:port[,host:port...][/prefix]` (needs `--features etcd`).
    #[arg(long, default_value = "memory")]
    store: String,
    /// Heartbeats to time.
    #[arg(long, default_value_t = 2_000)]
    heartbeats: u64,
    /// Failure handlings to time.
    #[arg(long, default_value_t = 30)]
    failures: u64,
    /// Actors on the failed node.
    #[arg(long, default_value_t = 1_000)]
    actors: u64,
}

const NODES: u16 = 5;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what}: {} transactions, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
}

async fn timed<S: Store>(store: &S, proposal: Proposal) -> Result<f64, String> {
    let start = Instant::now();
    match store.propose(proposal).await.map_err(|e| e.to_string())? {
        ProposalOutcome::Committed { .. } => Ok(start.elapsed().as_secs_f64() * 1_000.0),
        other => Err(format!("{}: {other:?}", proposal.action)),
    }
}

async fn run_on<S: Audit>(cli: &Cli, store: Arc<S>) -> Result<(), String> {
    let config = Config::fixed(NODES).map_err(|e| e.to_string())?;
    store.init(config).await.map_err(|e| e.to_string())?;
    let mut incarnations = Vec::new();
    for i in 1..=NODES {
        let slot = store
            .claim(NodeId(i), "127.0.0.1:1")
            .await
            .map_err(|e| e.to_string())?;
        incarnations.push(slot.incarnation);
    }
    let mut seq = 0u64;
    let mut proposal = |node: u16, event: Event| {
        seq += 1;
        Proposal {
            id: ProposalId {
                node: NodeId(node),
                incarnation: incarnations[usize::from(node - 1)],
                seq,
            },
            action: Action::Step(event),
            round: None,
        }
    };
    let active = apply(&State::initial(config), &all_active(NODES));
    store
        .import(active.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut heartbeats = Vec::new();
    for k in 0..cli.heartbeats {
        let node = u16::try_from(k % u64::from(NODES)).unwrap_or(0) + 1;
        heartbeats.push(
            timed(
                &*store,
                proposal(node, Event::SendHeartbeat { node: NodeId(node) }),
            )
            .await?,
        );
    }
    report("SendHeartbeat", heartbeats);
    let loaded = place_on(&active, NODES, 1..=cli.actors);
    let quorum = apply(&loaded, &voted_out(NODES, &[1, 2, 3]));
    let mut failures = Vec::new();
    for _ in 0..cli.failures {
        store
            .import(quorum.clone())
            .await
            .map_err(|e| e.to_string())?;
        failures.push(
            timed(
                &*store,
                proposal(
                    1,
                    Event::MarkNodeFailed {
                        node: NodeId(NODES),
                    },
                ),
            )
            .await?,
        );
    }
    let queued = store
        .snapshot()
        .await
        .map_err(|e| e.to_string())?
        .state
        .queue()
        .len();
    report(
        &format!(
            "MarkNodeFailed of a node with {} actors ({queued} queued)",
            cli.actors
        ),
        failures,
    );
    let stats = store.stats();
    println!(
        "largest transaction: {} bytes written, {} operations (0: not counted by this store); conflicts {}",
        stats.largest_write_bytes,
        stats.largest_write_ops,
        stats.total_conflicts()
    );
    Ok(())
}

async fn run(cli: &Cli) -> Result<(), String> {
    if cli.store == "memory" {
        return run_on(cli, Arc::new(MemoryStore::new())).await;
    }
    #[cfg(feature = "etcd")]
    if cli.store.starts_with("etcd://") {
        let mut options =
            membership::EtcdOptions::from_url(&cli.store).map_err(|e| e.to_string())?;
        options.prefix = format!("{}latency-example-{}/", options.prefix, std::process::id());
        let store = Arc::new(
            membership::EtcdStore::connect(options)
                .await
                .map_err(|e| e.to_string())?,
        );
        store.clear().await.map_err(|e| e.to_string())?;
        let result = run_on(cli, store.clone()).await;
        store.clear().await.map_err(|e| e.to_string())?;
        return result;
    }
    Err(format!(
        "unknown store {:?}: memory, or etcd://host:port,... (built with --features etcd)",
        cli.store
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
