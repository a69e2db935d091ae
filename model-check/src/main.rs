//! `cargo run -p model-check -- --help`.

#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};
use membership_core::checking::{Mode, Mutant};
use membership_core::Config;
use model_check::model::MembershipModel;
use model_check::{print_summary, run, Options, Search};
use stateright::Model;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Spec {
    /// The project's fixed protocol (the default).
    Fixed,
    /// The reference model of core/spec/REFERENCE.md section 1, exactly.
    Reference,
    /// The reference model with BUGGY = TRUE.
    Buggy,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// Exhaustive model checking of the membership reducer (membership-core's `step`) with
/// stateright: every safety invariant on every reachable state and transition, and the liveness
/// properties on the explicit reachable graph under the spec's weak fairness.
///
/// Exit status: 0 when every property holds, 1 when one is violated (its counterexample is
/// printed), 2 for a usage error.
#[derive(Debug, Parser)]
#[command(name = "model-check", version)]
struct Cli {
    /// Number of nodes (|Nodes|).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Bound on view numbers and terms (the spec's MaxView; a checking bound only).
    #[arg(long = "max-view", default_value_t = 3)]
    max_view: u64,
    /// Number of actors (a1, a2, ...; fixed protocol only: the reference model has none).
    #[arg(long, default_value_t = 2)]
    actors: u16,
    /// Bound on actor activation epochs (the spec's MaxEpoch; a checking bound only).
    #[arg(long = "max-epoch", default_value_t = 3)]
    max_epoch: u64,
    /// Which protocol: the fixed one, the reference model, or the reference model's buggy mode.
    #[arg(long, value_enum, default_value = "fixed")]
    spec: Spec,
    /// Symmetry reduction over node ids (sound for fixed and buggy; the reference model breaks
    /// ties by node id, so use `off` for its exact state space).
    #[arg(long, value_enum, default_value = "on")]
    symmetry: OnOff,
    /// Checker threads. With more than 1, BFS counterexamples may be a step or two longer than
    /// the shortest.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Breadth-first search: shortest counterexamples first (the default).
    #[arg(long, conflicts_with = "dfs")]
    bfs: bool,
    /// Depth-first search.
    #[arg(long)]
    dfs: bool,
    /// Explore only paths of at most this many steps (liveness is then not checked).
    #[arg(long)]
    depth: Option<usize>,
    /// Print the summary as JSON (for scripts).
    #[arg(long)]
    json: bool,
    /// Serve stateright's web explorer on this loopback address (e.g. 127.0.0.1:3000) instead
    /// of checking; click through the state space in a browser.
    #[arg(long, value_name = "ADDR")]
    explore: Option<SocketAddr>,
    /// Check a deliberately broken variant of the fixed protocol; `list` prints the catalogue.
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Decide the liveness properties (on the explicit graph, without symmetry reduction).
    #[arg(long, value_enum, default_value = "on")]
    liveness: OnOff,
    /// Also write every reachable state to FILE, one canonical JSON line each, and every
    /// transition to FILE.edges (for the TLC cross-check, core/spec/tlc/run.sh; use with
    /// --symmetry off).
    #[arg(long, value_name = "FILE", conflicts_with = "depth")]
    dump: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.mutant.as_deref() == Some("list") {
        for m in Mutant::ALL {
            println!("{}", m.name());
        }
        return ExitCode::SUCCESS;
    }
    let mutant = match cli
        .mutant
        .as_deref()
        .map(|name| (name, Mutant::from_name(name)))
    {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((name, None)) => {
            eprintln!("error: unknown mutant {name:?}; `--mutant list` prints the catalogue");
            return ExitCode::from(2);
        }
    };
    let mode = match cli.spec {
        Spec::Fixed => Mode::Fixed,
        Spec::Reference => Mode::Reference,
        Spec::Buggy => Mode::Buggy,
    };
    let config = match Config::new(mode, cli.nodes, Some(cli.max_view), mutant)
        .and_then(|c| c.with_max_epoch(Some(cli.max_epoch)))
    {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let symmetry = matches!(cli.symmetry, OnOff::On);
    // The reference model has no actors.
    let actors = if mode == Mode::Fixed { cli.actors } else { 0 };
    if let Some(addr) = cli.explore {
        if !addr.ip().is_loopback() {
            eprintln!("error: --explore serves only on a loopback address (127.0.0.1 or [::1]), not {addr}");
            return ExitCode::from(2);
        }
        println!(
            "serving the state space of {mode} ({} nodes, MaxView {}) on http://{addr}",
            cli.nodes, cli.max_view
        );
        MembershipModel::new(config, symmetry, actors)
            .checker()
            .threads(cli.threads.max(1))
            .serve(addr);
        return ExitCode::SUCCESS;
    }
    let options = Options {
        config,
        symmetry,
        threads: cli.threads,
        search: if cli.dfs { Search::Dfs } else { Search::Bfs },
        depth: cli.depth,
        liveness: matches!(cli.liveness, OnOff::On),
        actors,
    };
    let summary = run(&options);
    if cli.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", print_summary(&summary));
    }
    if let Some(path) = &cli.dump {
        let model = MembershipModel::new(config, symmetry, actors);
        match model_check::dump::write_states(&model, path) {
            Ok(n) if n == summary.distinct_states => {
                eprintln!("dump: {n} states written to {}", path.display());
            }
            Ok(n) => {
                eprintln!(
                    "error: dumped {n} states but the checker counted {}",
                    summary.distinct_states
                );
                return ExitCode::from(1);
            }
            Err(err) => {
                eprintln!("error: writing {}: {err}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if summary.all_hold {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
