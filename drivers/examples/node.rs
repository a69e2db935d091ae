//! One node per OS process, as users deploy it: `cargo run --example node --features etcd --
//! --store etcd://127.0.0.1:2379,... --node 3 --nodes 5`.
//!
//! Runs one node against the store (initialising the registry if the store holds none), joins,
//! optionally places its share of actors, and logs as JSON lines on stdout, each with the wall
//! clock in microseconds (`t_us`, comparable between processes of one machine):
//!
//! - `{"event":"started", "node":3, "pid":..., "incarnation":..., "probe":"127.0.0.1:..."}`
//! - `{"event":"notification", "notification":{...}}` for every notification of the node;
//! - `{"event":"serve_start", "actor":7, "epoch":4}` / `{"event":"serve_stop", ...}` when an
//!   actor becomes servable or stops being so, and `{"event":"poll", "serving":n}` after every
//!   check: every `--poll-ms` the program asks the node which actors it may serve at that
//!   instant (`NodeHandle::servable`: not fenced, lease and snapshot fresh), as a server asks
//!   before serving requests.
//!
//! It runs until killed.

#![allow(clippy::print_stdout)]

use clap::Parser;
use membership::protocol::{ActorId, Config, NodeId, Timing};
use membership::{NodeHandle, NodeOptions, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(about = "Run one node of a cluster in this process, logging JSON lines")]
struct Cli {
    /// The store: `etcd://host:port[,host:port...][/prefix]` (needs `--features etcd`).
    #[arg(long)]
    store: String,
    /// This node's id (1..=nodes).
    #[arg(long)]
    node: u16,
    /// The cluster's node count (used to initialise a store that holds no registry).
    #[arg(long, default_value_t = 5)]
    nodes: u16,
    /// Where to answer probes.
    #[arg(long, default_value = "127.0.0.1:0")]
    probe: SocketAddr,
    /// Place the actors 1..=N whose id modulo --nodes is this node's share.
    #[arg(long, default_value_t = 0)]
    place_actors: u64,
    /// How often to ask the node which actors it may serve, in ms.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// Timing preset: `default` (heartbeat 100 ms, lease 300 ms, failure timeout 500 ms) or `fast`.
    #[arg(long, default_value = "default")]
    timing: String,
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn emit(node: u16, mut line: serde_json::Value) {
    if let Some(object) = line.as_object_mut() {
        object.insert("t_us".into(), json!(now_us()));
        object.insert("node".into(), json!(node));
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run<S: Store>(cli: &Cli, store: Arc<S>) -> Result<(), String> {
    let config = Config::fixed(cli.nodes).map_err(|e| e.to_string())?;
    store.init(config).await.map_err(|e| e.to_string())?;
    let mut options = NodeOptions::new(NodeId(cli.node));
    options.probe_address = cli.probe;
    let settings = Timing::preset(&cli.timing)
        .ok_or_else(|| format!("unknown timing {:?} (default or fast)", cli.timing))?;
    options.timing = Timing::new(settings).map_err(|e| e.to_string())?;
    options.wait_timeout_ms = 120_000;
    let node = Arc::new(
        NodeHandle::start(store, options)
            .await
            .map_err(|e| e.to_string())?,
    );
    emit(
        cli.node,
        json!({"event": "started", "pid": std::process::id(), "incarnation": node.incarnation(),
               "probe": node.probe_address().to_string()}),
    );
    let mut rx = node.notifications();
    let id = cli.node;
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(n) => emit(
                    id,
                    json!({"event": "notification", "notification": n.notification}),
                ),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    emit(id, json!({"event": "lagged", "missed": k}));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    node.join().await.map_err(|e| e.to_string())?;
    let nodes = u64::from(cli.nodes);
    let share: Vec<u64> = (1..=cli.place_actors)
        .filter(|a| a % nodes == u64::from(cli.node) % nodes)
        .collect();
    {
        let node = node.clone();
        tokio::spawn(async move {
            for a in share {
                if let Err(e) = node.place_actor(ActorId(a)).await {
                    emit(
                        id,
                        json!({"event": "place_failed", "actor": a, "error": e.to_string()}),
                    );
                }
            }
        });
    }
    let mut serving: BTreeMap<ActorId, u64> = BTreeMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(cli.poll_ms.max(1)));
    loop {
        ticker.tick().await;
        let now: BTreeMap<ActorId, u64> = node
            .permits()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(actor, permit)| (actor, permit.epoch))
            .collect();
        for (actor, epoch) in &serving {
            if now.get(actor) != Some(epoch) {
                emit(
                    id,
                    json!({"event": "serve_stop", "actor": actor.0, "epoch": epoch}),
                );
            }
        }
        for (actor, epoch) in &now {
            if serving.get(actor) != Some(epoch) {
                emit(
                    id,
                    json!({"event": "serve_start", "actor": actor.0, "epoch": epoch}),
                );
            }
        }
        serving = now;
        emit(id, json!({"event": "poll", "serving": serving.len()}));
    }
}

async fn main_async(cli: Cli) -> Result<(), String> {
    #[cfg(feature = "etcd")]
    if cli.store.starts_with("etcd://") {
        let store = membership::EtcdStore::connect_url(&cli.store)
            .await
            .map_err(|e| e.to_string())?;
        return run(&cli, Arc::new(store)).await;
    }
    if cli.store == "memory" {
        return Err("a node process needs a shared store: etcd://...".into());
    }
    let _ = run::<membership::MemoryStore>;
    Err(format!(
        "unknown store {:?}: etcd://host:port,... (built with --features etcd)",
        cli.store
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main_async(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
