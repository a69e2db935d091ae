//! `cargo run -p model-check -- --help`.

#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};
use membership_core::checking::{Mode, Mutant};
use membership_core::Config;
use model_check::model::MembershipModel;
use model_check::{
    default_suite, default_threads, print_summary, run, Options, Search, SuiteSummary,
};
use stateright::Model;
use std::io::IsTerminal;
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
/// Exit status: 0 when no property is violated (the result line says whether every property
/// was checked), 1 when one is violated (its counterexample is printed), 2 for a usage error.
#[derive(Debug, Parser)]
#[command(name = "model-check", version)]
struct Cli {
    /// Number of nodes (|Nodes|; default 3). Giving any of --nodes, --actors, --spec,
    /// --max-view, --max-epoch checks that one configuration instead of the default run.
    #[arg(long)]
    nodes: Option<u16>,
    /// Bound on view numbers and terms (the spec's MaxView). Without it (and without
    /// --max-epoch) the fixed protocol is checked unbounded: states are renumbered by rank. The
    /// reference and buggy modes need a bound (default 3).
    #[arg(long = "max-view")]
    max_view: Option<u64>,
    /// Number of actors (a1, a2, ...; default 0; fixed protocol only: the reference model has
    /// none).
    #[arg(long)]
    actors: Option<u16>,
    /// Bound on actor activation epochs (the spec's MaxEpoch). Giving either bound checks the
    /// bounded model (the other bound then defaults to 3).
    #[arg(long = "max-epoch")]
    max_epoch: Option<u64>,
    /// Which protocol: the fixed one, the reference model, or the reference model's buggy mode.
    #[arg(long, value_enum)]
    spec: Option<Spec>,
    /// Symmetry reduction over node ids, for safety (through stateright). Sound for the fixed
    /// protocol and buggy mode without actors; refused with actors (placement breaks ties by a
    /// hash of node ids); the reference model breaks ties by node id.
    #[arg(long, value_enum, default_value = "off")]
    symmetry: OnOff,
    /// Threads (default: every core). The explicit graph's numbering, and so its
    /// counterexamples, do not depend on it; with stateright (--symmetry on, --dfs) and more than
    /// 1, BFS counterexamples may be a step or two longer than the shortest.
    #[arg(long)]
    threads: Option<usize>,
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
    /// Also print an example of each kind of behaviour liveness did not judge (bounded models).
    #[arg(long)]
    verbose: bool,
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
    let threads = cli.threads.unwrap_or_else(default_threads);
    let progress = !cli.json && std::io::stderr().is_terminal();
    let single = cli.nodes.is_some()
        || cli.actors.is_some()
        || cli.spec.is_some()
        || cli.max_view.is_some()
        || cli.max_epoch.is_some()
        || cli.explore.is_some()
        || cli.dump.is_some();
    if !single {
        // The default run: the configurations of `default_suite`, one after the other.
        let jobs = match default_suite(mutant) {
            Ok(jobs) => jobs,
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(2);
            }
        };
        let mut summaries = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let options = Options {
                symmetry: matches!(cli.symmetry, OnOff::On),
                threads,
                search: if cli.dfs { Search::Dfs } else { Search::Bfs },
                depth: cli.depth,
                liveness: matches!(cli.liveness, OnOff::On),
                progress,
                ..job.options.clone()
            };
            if progress {
                eprintln!("model-check: [{}/{}] {}", i + 1, jobs.len(), job.name);
            }
            let summary = run(&options);
            if !cli.json {
                println!("== [{}/{}] {}", i + 1, jobs.len(), job.name);
                println!("{}", print_summary(&summary, cli.verbose));
            }
            summaries.push(summary);
        }
        let suite = SuiteSummary::of(&jobs, summaries);
        if cli.json {
            match serde_json::to_string_pretty(&suite) {
                Ok(json) => println!("{json}"),
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(2);
                }
            }
        } else {
            println!("{}", suite.result_line());
        }
        return if suite.violated {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    let mode = match cli.spec.unwrap_or(Spec::Fixed) {
        Spec::Fixed => Mode::Fixed,
        Spec::Reference => Mode::Reference,
        Spec::Buggy => Mode::Buggy,
    };
    let nodes = cli.nodes.unwrap_or(3);
    // Bounds: none for the fixed protocol unless one is given (then the other defaults to 3);
    // the reference modes always have MaxView (default 3).
    let bounded = mode != Mode::Fixed || cli.max_view.is_some() || cli.max_epoch.is_some();
    let (max_view, max_epoch) = if bounded {
        (
            Some(cli.max_view.unwrap_or(3)),
            Some(cli.max_epoch.unwrap_or(3)),
        )
    } else {
        (None, None)
    };
    let config = match Config::new(mode, nodes, max_view, mutant)
        .and_then(|c| c.with_max_epoch(max_epoch))
    {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let symmetry = matches!(cli.symmetry, OnOff::On);
    // The reference model has no actors.
    let actors = if mode == Mode::Fixed {
        cli.actors.unwrap_or(0)
    } else {
        0
    };
    if let Some(addr) = cli.explore {
        if !addr.ip().is_loopback() {
            eprintln!("error: --explore serves only on a loopback address (127.0.0.1 or [::1]), not {addr}");
            return ExitCode::from(2);
        }
        println!(
            "serving the state space of {mode} ({nodes} nodes, MaxView {}) on http://{addr}",
            max_view.map_or("none (renumbered)".to_string(), |b| b.to_string())
        );
        MembershipModel::new(config, symmetry && actors == 0, actors)
            .checker()
            .threads(cli.threads.unwrap_or(1).max(1))
            .serve(addr);
        return ExitCode::SUCCESS;
    }
    let options = Options {
        config,
        symmetry,
        threads,
        search: if cli.dfs { Search::Dfs } else { Search::Bfs },
        depth: cli.depth,
        liveness: matches!(cli.liveness, OnOff::On),
        actors,
        progress,
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
        print!("{}", print_summary(&summary, cli.verbose));
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
    if summary.violated {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
