//! `cargo run -p model-check`: exhaustive model checking of `membership_core::step`.
//!
//! Safety (state and transition invariants) is checked by stateright on the model of
//! [`model::MembershipModel`]; liveness by [`liveness`] on the explicit reachable graph. The
//! protocol itself lives only in `membership-core`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dump;
pub mod liveness;
pub mod model;

use liveness::{Graph, GraphTooLarge, Lasso, LivenessReport, GRAPH_STATES_MAX};
use membership_core::checking::{Mode, Mutant};
use membership_core::{
    step, ActorId, Config, Counter, Event, NodeRecord, State, StateInvariant, TransitionInvariant,
};
use model::MembershipModel;
use serde::Serialize;
use stateright::{Checker, Model, Path};
use std::fmt::Write as _;
use std::time::Instant;

/// Breadth-first (shortest counterexamples first) or depth-first search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Search {
    /// Breadth-first.
    Bfs,
    /// Depth-first.
    Dfs,
}

/// What to check and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// The protocol configuration (mode, nodes, bound, mutant).
    pub config: Config,
    /// Symmetry reduction over node ids.
    pub symmetry: bool,
    /// Checker threads.
    pub threads: usize,
    /// Search order.
    pub search: Search,
    /// Explore only paths of at most this many steps, if set.
    pub depth: Option<usize>,
    /// Whether to decide the liveness properties.
    pub liveness: bool,
    /// Actors in the model (`a1..`).
    pub actors: u16,
}

/// One property's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    /// The spec's name (liveness instances carry their node: `EventualStepDown(n1)`).
    pub name: String,
    /// `state`, `transition` or `liveness`.
    pub kind: &'static str,
    /// `holds`, `violated`, or `not checked`.
    pub verdict: &'static str,
    /// The counterexample's steps (a lasso's prefix and one pass of its cycle).
    pub counterexample_length: Option<usize>,
    /// The counterexample as text, one numbered spec action per step with its changes.
    #[serde(skip)]
    pub counterexample: Option<String>,
    /// The counterexample's actions in order (for scripts).
    pub counterexample_actions: Option<Vec<String>>,
    /// For a liveness counterexample: the step number where the repeated cycle starts.
    pub cycle_starts_at: Option<usize>,
    /// Liveness only: lassos not reported because the bound alone disabled a fair action.
    pub bound_limited: Option<usize>,
}

/// The whole run's summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `fixed`, `reference` or `buggy`.
    pub spec: String,
    /// The mutant's name, if any.
    pub mutant: Option<&'static str>,
    /// `|Nodes|`.
    pub nodes: u16,
    /// The view/term bound `MaxView`.
    pub max_view: Option<u64>,
    /// The actor epoch bound.
    pub max_epoch: Option<u64>,
    /// Actors in the model.
    pub actors: u16,
    /// Symmetry reduction on.
    pub symmetry: bool,
    /// Checker threads.
    pub threads: usize,
    /// Search order.
    pub search: Search,
    /// Depth limit.
    pub depth_limit: Option<usize>,
    /// Distinct states found by the safety check (symmetry classes when reduced).
    pub distinct_states: usize,
    /// States generated (with duplicates).
    pub generated_states: usize,
    /// Distinct states per second of the safety check.
    pub states_per_second: f64,
    /// Maximum depth reached.
    pub max_depth: usize,
    /// States of the liveness graph (no symmetry reduction), if built.
    pub liveness_graph_states: Option<usize>,
    /// Edges of the liveness graph.
    pub liveness_graph_edges: Option<usize>,
    /// Seconds for the safety check.
    pub safety_seconds: f64,
    /// Seconds for the liveness check.
    pub liveness_seconds: f64,
    /// Of which: seconds to build the liveness graph.
    pub liveness_graph_seconds: f64,
    /// Wall time of the whole run.
    pub wall_seconds: f64,
    /// Peak resident memory of the process (Linux `VmHWM`), in MiB.
    pub peak_memory_mib: Option<f64>,
    /// One entry per property.
    pub properties: Vec<PropertyReport>,
    /// Whether every checked property holds.
    pub all_hold: bool,
    /// Notes for people (unsound reductions, skipped checks).
    pub notes: Vec<String>,
}

/// Runs the checker.
pub fn run(options: &Options) -> Summary {
    let started = Instant::now();
    let config = options.config;
    let model = MembershipModel::new(config, options.symmetry, options.actors);
    let mut notes = Vec::new();
    if options.symmetry && config.mode() == Mode::Reference {
        notes.push(
            "the reference model is not symmetric (HealPartition breaks ties by node id): \
             symmetry reduction may miss states; use --symmetry off for its exact state space"
                .to_string(),
        );
    }
    let mut builder = model.clone().checker().threads(options.threads.max(1));
    if let Some(steps) = options.depth {
        // stateright counts the initial state as depth 1 and skips states at the target depth,
        // so "at most `steps` steps" is a target of `steps + 2`.
        builder = builder.target_max_depth(steps.saturating_add(2));
    }
    let outcome = match options.search {
        Search::Bfs => Outcome::of(builder.spawn_bfs().join()),
        Search::Dfs => Outcome::of(builder.spawn_dfs().join()),
    };
    let safety_seconds = started.elapsed().as_secs_f64();
    let distinct_states = outcome.unique;
    let mut properties = Vec::new();
    for property in model.properties() {
        let kind = if TransitionInvariant::ALL
            .iter()
            .any(|i| i.name() == property.name)
        {
            "transition"
        } else {
            "state"
        };
        let discovery = outcome.discoveries.get(property.name).cloned();
        let (verdict, length, text, actions) = match discovery {
            None => ("holds", None, None, None),
            Some(path) => {
                let events = counterexample_events(&model, path, property.name);
                let (text, concrete) = render(&config, &events, None);
                (
                    "violated",
                    Some(concrete.len()),
                    Some(text),
                    Some(concrete.iter().map(Event::to_string).collect()),
                )
            }
        };
        properties.push(PropertyReport {
            name: property.name.to_string(),
            kind,
            verdict,
            counterexample_length: length,
            counterexample: text,
            counterexample_actions: actions,
            cycle_starts_at: None,
            bound_limited: None,
        });
    }

    let liveness_started = Instant::now();
    let mut graph_states = None;
    let mut graph_edges = None;
    let mut graph_seconds = 0.0;
    if options.liveness && options.depth.is_none() {
        match Graph::explore(&model, GRAPH_STATES_MAX) {
            Ok(graph) => {
                graph_seconds = liveness_started.elapsed().as_secs_f64();
                graph_states = Some(graph.state_count());
                graph_edges = Some(graph.edge_count());
                for report in liveness::check_all(&graph, &model) {
                    properties.push(liveness_property(&config, report));
                }
            }
            Err(GraphTooLarge { states_max }) => {
                notes.push(format!(
                    "liveness not checked: the reachable graph has more than {states_max} states"
                ));
            }
        }
    } else if options.liveness {
        notes.push("liveness not checked: it needs the whole graph (no --depth limit)".to_string());
    }
    let liveness_seconds = liveness_started.elapsed().as_secs_f64();
    let all_hold = properties.iter().all(|p| p.verdict == "holds");
    Summary {
        spec: config.mode().to_string(),
        mutant: config.mutant().map(Mutant::name),
        nodes: config.node_count(),
        max_view: config.max_view(),
        max_epoch: config.max_epoch(),
        actors: options.actors,
        symmetry: options.symmetry,
        threads: options.threads.max(1),
        search: options.search,
        depth_limit: options.depth,
        distinct_states,
        generated_states: outcome.generated,
        states_per_second: distinct_states as f64 / safety_seconds.max(1e-9),
        max_depth: outcome.max_depth,
        liveness_graph_states: graph_states,
        liveness_graph_edges: graph_edges,
        safety_seconds,
        liveness_seconds,
        liveness_graph_seconds: graph_seconds,
        wall_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        properties,
        all_hold,
        notes,
    }
}

/// What a finished stateright checker found.
struct Outcome {
    unique: usize,
    generated: usize,
    max_depth: usize,
    discoveries: std::collections::HashMap<&'static str, Path<State, Event>>,
}

impl Outcome {
    fn of(checker: impl Checker<MembershipModel>) -> Outcome {
        Outcome {
            unique: checker.unique_state_count(),
            generated: checker.state_count(),
            max_depth: checker.max_depth(),
            discoveries: checker.discoveries(),
        }
    }
}

fn liveness_property(config: &Config, report: LivenessReport) -> PropertyReport {
    let (verdict, length, text, actions, cycle_at) = match &report.counterexample {
        None => ("holds", None, None, None, None),
        Some(lasso) => {
            let Lasso { prefix, cycle } = lasso;
            let mut events = prefix.clone();
            events.extend(cycle.iter().copied());
            let (text, concrete) = render(config, &events, Some(prefix.len()));
            (
                "violated",
                Some(lasso.len()),
                Some(text),
                Some(concrete.iter().map(Event::to_string).collect()),
                Some(prefix.len() + 1),
            )
        }
    };
    PropertyReport {
        name: report.property,
        kind: "liveness",
        verdict,
        counterexample_length: length,
        counterexample: text,
        counterexample_actions: actions,
        cycle_starts_at: cycle_at,
        bound_limited: Some(report.bound_limited),
    }
}

/// The concrete events of a stateright discovery: the path's actions, renamed from symmetry
/// representatives to one consistent naming, plus (for a transition property) the violating
/// step from the path's last state.
fn counterexample_events(
    model: &MembershipModel,
    path: Path<State, Event>,
    property: &str,
) -> Vec<Event> {
    let steps = path.into_vec();
    let representatives: Vec<State> = steps.iter().map(|(s, _)| s.clone()).collect();
    let mut events = Vec::new();
    let mut concrete = State::initial(*model.config());
    for window in representatives.windows(2) {
        let target = &window[1];
        let found = model.events().iter().copied().find_map(|e| {
            let (next, _) = step(&concrete, &e).ok()?;
            (model.representative(&next) == *target).then_some((e, next))
        });
        match found {
            Some((e, next)) => {
                events.push(e);
                concrete = next;
            }
            None => break, // cannot happen for a symmetric protocol; keep what was found
        }
    }
    if let Some(invariant) = TransitionInvariant::ALL
        .iter()
        .find(|i| i.name() == property)
    {
        if let Some(e) = model.violating_step(&concrete, *invariant) {
            events.push(e);
        }
    }
    events
}

/// Renders events from the initial state as numbered spec actions with what each changed.
/// Returns the text and the events actually replayed.
fn render(config: &Config, events: &[Event], cycle_start: Option<usize>) -> (String, Vec<Event>) {
    let mut out = String::new();
    let mut state = State::initial(*config);
    let mut replayed = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if cycle_start == Some(i) {
            let _ = writeln!(out, "   -- the cycle below repeats forever --");
        }
        match step(&state, event) {
            Ok((next, effects)) => {
                let _ = writeln!(out, "{:>3}. {event}", i + 1);
                for change in changes(&state, &next) {
                    let _ = writeln!(out, "       {change}");
                }
                let effects: Vec<String> = effects.iter().map(|e| e.to_string()).collect();
                if !effects.is_empty() {
                    let _ = writeln!(out, "       effects: {}", effects.join("; "));
                }
                if let Some(v) = TransitionInvariant::ALL
                    .iter()
                    .find_map(|inv| inv.check(&state, &next).err())
                    .or_else(|| {
                        StateInvariant::ALL
                            .iter()
                            .find_map(|inv| inv.check(&next).err())
                    })
                {
                    let _ = writeln!(out, "       !! {v}");
                }
                state = next;
                replayed.push(*event);
            }
            Err(refusal) => {
                let _ = writeln!(out, "{:>3}. {event} REFUSED: {refusal}", i + 1);
                break;
            }
        }
    }
    if cycle_start == Some(events.len()) {
        let _ = writeln!(
            out,
            "   -- and then nothing fair is enabled: the behaviour stutters here forever --"
        );
    }
    (out, replayed)
}

/// What one step changed, for people: the entries of `membership_core`'s [`State::delta`], with
/// each node record's changed fields shown old -> new.
pub fn changes(before: &State, after: &State) -> Vec<String> {
    let delta = before.delta(after);
    let mut out = Vec::new();
    for (&n, b) in &delta.nodes {
        let a = before.node(n).copied().unwrap_or(NodeRecord::INITIAL);
        let mut parts = Vec::new();
        if a.status != b.status {
            parts.push(format!("state {} -> {}", a.status, b.status));
        }
        if a.view != b.view || a.view_number != b.view_number {
            parts.push(format!(
                "view {}#{} -> {}#{}",
                a.view, a.view_number, b.view, b.view_number
            ));
        }
        if a.believes_primary != b.believes_primary {
            parts.push(format!(
                "believes_primary {} -> {}",
                a.believes_primary, b.believes_primary
            ));
        }
        if a.term != b.term {
            parts.push(format!("term {} -> {}", a.term, b.term));
        }
        if a.partitioned_from != b.partitioned_from {
            parts.push(format!(
                "partitioned_from {} -> {}",
                a.partitioned_from, b.partitioned_from
            ));
        }
        if a.detected != b.detected {
            parts.push(format!("detected {} -> {}", a.detected, b.detected));
        }
        out.push(format!("{n}: {}", parts.join(", ")));
    }
    for (&n, &flag) in &delta.heartbeats {
        out.push(format!("{n}: heartbeat_received {} -> {flag}", !flag));
    }
    for (&counter, &value) in &delta.counters {
        let was = match counter {
            Counter::Term => before.term_counter(),
            Counter::ViewNumber => before.view_counter(),
            Counter::Epoch => before.epoch_counter(),
        };
        out.push(format!("{counter} counter {was} -> {value}"));
    }
    let actors: std::collections::BTreeSet<ActorId> = delta
        .placements
        .keys()
        .chain(delta.queue.keys())
        .copied()
        .collect();
    for actor in actors {
        let show = |s: &State| {
            let placed = s.placement(actor).map_or("unplaced".to_string(), |p| {
                format!("on {} epoch {}", p.node, p.epoch)
            });
            match s.queue().get(actor) {
                Some(e) => format!("{placed}, queued to leave {} ({})", e.from, e.reason),
                None => placed,
            }
        };
        out.push(format!("{actor}: {} -> {}", show(before), show(after)));
    }
    out
}

/// The process's peak resident memory in MiB, where the OS reports it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints the summary for people.
pub fn print_summary(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model-check: membership protocol");
    let _ = writeln!(
        out,
        "  spec {}{} | nodes {} | MaxView {} | symmetry {} | {} | threads {}{}",
        summary.spec,
        summary
            .mutant
            .map(|m| format!(" (mutant {m})"))
            .unwrap_or_default(),
        summary.nodes,
        summary
            .max_view
            .map_or("none".to_string(), |b| b.to_string()),
        if summary.symmetry { "on" } else { "off" },
        match summary.search {
            Search::Bfs => "bfs",
            Search::Dfs => "dfs",
        },
        summary.threads,
        summary
            .depth_limit
            .map(|d| format!(" | depth limit {d}"))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "  bounds: view numbers and terms <= {}, actor epochs <= {} (checking bounds only: the implementation's counters are unbounded u64)",
        summary.max_view.map_or("none".to_string(), |b| b.to_string()),
        summary.max_epoch.map_or("none".to_string(), |b| b.to_string())
    );
    let _ = writeln!(out, "safety (stateright):");
    let _ = writeln!(out, "  distinct states    {}", summary.distinct_states);
    let _ = writeln!(out, "  generated states   {}", summary.generated_states);
    let _ = writeln!(out, "  states per second  {:.0}", summary.states_per_second);
    let _ = writeln!(out, "  maximum depth      {}", summary.max_depth);
    let _ = writeln!(out, "  time               {:.2} s", summary.safety_seconds);
    if let (Some(states), Some(edges)) =
        (summary.liveness_graph_states, summary.liveness_graph_edges)
    {
        let _ = writeln!(out, "liveness (explicit graph, no symmetry reduction):");
        let _ = writeln!(out, "  graph              {states} states, {edges} edges");
        let _ = writeln!(
            out,
            "  time               {:.2} s ({:.2} s building the graph)",
            summary.liveness_seconds, summary.liveness_graph_seconds
        );
    }
    let _ = writeln!(out, "wall time            {:.2} s", summary.wall_seconds);
    if let Some(mib) = summary.peak_memory_mib {
        let _ = writeln!(out, "peak memory          {mib:.0} MiB");
    }
    for note in &summary.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "properties:");
    for p in &summary.properties {
        let extra = match (p.counterexample_length, p.bound_limited) {
            (Some(len), _) => format!(" (counterexample: {len} steps)"),
            (None, Some(b)) if b > 0 => format!(" ({b} lassos beyond the bound not judged)"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {:<34} {:<11} {}{extra}", p.name, p.kind, p.verdict);
    }
    for p in summary
        .properties
        .iter()
        .filter(|p| p.counterexample.is_some())
    {
        let _ = writeln!(
            out,
            "\ncounterexample to {} ({} steps):",
            p.name,
            p.counterexample_length.unwrap_or(0)
        );
        let _ = write!(out, "{}", p.counterexample.as_deref().unwrap_or(""));
    }
    let _ = writeln!(
        out,
        "\nresult: {}",
        if summary.all_hold {
            "every property holds"
        } else {
            "VIOLATED"
        }
    );
    out
}
