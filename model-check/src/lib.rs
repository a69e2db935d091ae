//! `cargo run -p model-check`: exhaustive model checking of `membership_core::step`.
//!
//! Safety (state and transition invariants) is checked by stateright on the model of
//! [`model::MembershipModel`]; liveness by [`liveness`] on the explicit reachable graph. The
//! protocol itself lives only in `membership-core`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dump;
pub mod graph;
pub mod liveness;
pub mod memory;
pub mod model;

use graph::{Explore, Fairness, Graph, Progress, GRAPH_STATES_MAX};
use liveness::{Lasso, LivenessReport, NotJudged};
use membership_core::checking::{Mode, Mutant};
use membership_core::{
    step, ActorId, Config, ConfigError, Counter, Event, NodeRecord, State, StateInvariant,
    TransitionInvariant,
};
pub use memory::{current_memory_mib, peak_memory_mib};
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
    /// The protocol configuration (mode, nodes, bounds, mutant). Without bounds (the fixed
    /// protocol), states are renumbered by rank: the unbounded protocol's finite graph.
    pub config: Config,
    /// Symmetry reduction over node ids (safety only, through stateright; refused with actors,
    /// where it is not sound).
    pub symmetry: bool,
    /// Threads (the explicit graph is expanded on all of them).
    pub threads: usize,
    /// Search order (depth-first goes through stateright).
    pub search: Search,
    /// Explore only paths of at most this many steps, if set.
    pub depth: Option<usize>,
    /// Whether to decide the liveness properties.
    pub liveness: bool,
    /// Actors in the model (`a1..`).
    pub actors: u16,
    /// Progress lines on stderr every few seconds.
    pub progress: bool,
}

impl Options {
    /// The default options for `config`: no symmetry, breadth-first, liveness on, both cores,
    /// no depth limit, no actors, no progress lines.
    pub fn new(config: Config) -> Options {
        Options {
            config,
            symmetry: false,
            threads: default_threads(),
            search: Search::Bfs,
            depth: None,
            liveness: true,
            actors: 0,
            progress: false,
        }
    }
}

/// One configuration of the default run.
#[derive(Clone, Debug)]
pub struct Job {
    /// What it checks, for people.
    pub name: &'static str,
    /// How.
    pub options: Options,
}

/// The default run (`cargo run -p model-check` without configuration flags), with `mutant` if
/// given:
/// 1. membership: the fixed protocol with 3 nodes and no actors, unbounded (renumbered);
/// 2. actors: 2 nodes and 2 actors, unbounded (renumbered);
/// 3. actors with 3 nodes: 3 nodes and 1 actor, bounded by MaxView 3 and MaxEpoch 3 (2,373,712
///    states; the unbounded graph of 3 nodes with an actor, which `--nodes 3 --actors 1` checks,
///    has 2,856,952 states since registry v2's one configuration, about 15 million before);
/// 4. membership with 4 nodes: 4 nodes and no actors, bounded by MaxView 2 (234,496 states): a
///    majority of 4 is 3, so a node that reaches one peer is no majority, which 3 nodes cannot
///    show (issue 20).
pub fn default_suite(mutant: Option<Mutant>) -> Result<Vec<Job>, ConfigError> {
    let unbounded = |nodes| Config::new(Mode::Fixed, nodes, None, mutant);
    let bounded = Config::new(Mode::Fixed, 3, Some(3), mutant)?.with_max_epoch(Some(3))?;
    let four = Config::new(Mode::Fixed, 4, Some(2), mutant)?;
    Ok(vec![
        Job {
            name: "membership: 3 nodes, no actors, unbounded (--nodes 3)",
            options: Options::new(unbounded(3)?),
        },
        Job {
            name: "actors: 2 nodes, 2 actors, unbounded (--nodes 2 --actors 2)",
            options: Options {
                actors: 2,
                ..Options::new(unbounded(2)?)
            },
        },
        Job {
            name: "actors with 3 nodes: 3 nodes, 1 actor, MaxView 3, MaxEpoch 3 \
                   (--nodes 3 --actors 1 --max-view 3 --max-epoch 3)",
            options: Options {
                actors: 1,
                ..Options::new(bounded)
            },
        },
        Job {
            name: "membership with 4 nodes: 4 nodes, no actors, MaxView 2 \
                   (--nodes 4 --max-view 2)",
            options: Options::new(four),
        },
    ])
}

/// The default run's summary: one [`Summary`] per configuration.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteSummary {
    /// Each configuration's name and summary.
    pub runs: Vec<(String, Summary)>,
    /// Whether every property of every configuration was checked and holds.
    pub all_hold: bool,
    /// Whether some property is violated.
    pub violated: bool,
    /// What was not checked, per configuration.
    pub not_checked: Vec<String>,
    /// Wall time of all configurations.
    pub wall_seconds: f64,
    /// Peak resident memory of the process, in MiB.
    pub peak_memory_mib: Option<f64>,
}

impl SuiteSummary {
    /// The suite's summary from its jobs' summaries.
    pub fn of(jobs: &[Job], summaries: Vec<Summary>) -> SuiteSummary {
        let not_checked = jobs
            .iter()
            .zip(&summaries)
            .flat_map(|(j, s)| {
                s.not_checked
                    .iter()
                    .map(move |n| format!("{}: {n}", j.name))
            })
            .collect();
        SuiteSummary {
            all_hold: summaries.iter().all(|s| s.all_hold),
            violated: summaries.iter().any(|s| s.violated),
            not_checked,
            wall_seconds: summaries.iter().map(|s| s.wall_seconds).sum(),
            peak_memory_mib: peak_memory_mib(),
            runs: jobs
                .iter()
                .map(|j| j.name.to_string())
                .zip(summaries)
                .collect(),
        }
    }

    /// The one-line verdict over every configuration.
    pub fn result_line(&self) -> String {
        let mut violated = Vec::new();
        for (name, s) in &self.runs {
            for p in s.properties.iter().filter(|p| p.verdict == "violated") {
                violated.push(format!("{} ({name})", p.name));
            }
        }
        let mut line = format!(
            "result of the default run ({} configurations, {:.1} s{}): ",
            self.runs.len(),
            self.wall_seconds,
            self.peak_memory_mib
                .map_or(String::new(), |m| format!(", peak {m:.0} MiB"))
        );
        if !violated.is_empty() {
            let _ = write!(line, "VIOLATED: {}", violated.join(", "));
        } else if self.not_checked.is_empty() {
            line.push_str("every property holds");
        } else {
            line.push_str("no violation found, but NOT everything was checked");
        }
        for what in &self.not_checked {
            let _ = write!(line, "; not checked: {what}");
        }
        line
    }
}

/// The machine's cores (at least 1).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
    /// Liveness of a bounded model: Trapped states where stuttering would be fair only because
    /// a bound disables a fair action (not judged).
    pub not_judged_states: Option<usize>,
    /// Liveness of a bounded model: strongly connected sets of Trapped states whose cycles
    /// would be fair only because a bound disables a fair action (not judged).
    pub not_judged_sets: Option<usize>,
    /// One example of each kind not judged, as text (`--verbose` prints them).
    pub not_judged_examples: Option<String>,
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
    /// The view/term bound `MaxView` (none: unbounded, renumbered).
    pub max_view: Option<u64>,
    /// The actor epoch bound (none: unbounded, renumbered).
    pub max_epoch: Option<u64>,
    /// Whether states are renumbered by rank (no bound at all).
    pub renumbered: bool,
    /// Actors in the model.
    pub actors: u16,
    /// Symmetry reduction on.
    pub symmetry: bool,
    /// Threads.
    pub threads: usize,
    /// Search order.
    pub search: Search,
    /// Depth limit.
    pub depth_limit: Option<usize>,
    /// Distinct states found by the safety check (symmetry classes when reduced).
    pub distinct_states: usize,
    /// States generated (the initial state and one per transition).
    pub generated_states: usize,
    /// Distinct states per second of the safety check.
    pub states_per_second: f64,
    /// Maximum depth reached.
    pub max_depth: usize,
    /// States of the explicit graph (no symmetry reduction), if built.
    pub liveness_graph_states: Option<usize>,
    /// Transitions of the explicit graph.
    pub liveness_graph_edges: Option<usize>,
    /// Transitions of the explicit graph that declare failed a node hosting an actor.
    pub declared_hosts: Option<usize>,
    /// Of which kept for liveness (between states Trapped for a common property).
    pub liveness_graph_kept_edges: Option<usize>,
    /// An upper bound on the probability that two states of the graph share a 64-bit
    /// fingerprint (and were merged).
    pub fingerprint_collision_bound: Option<f64>,
    /// Seconds for the safety check.
    pub safety_seconds: f64,
    /// Seconds for the liveness check.
    pub liveness_seconds: f64,
    /// Of which: seconds to build the explicit graph.
    pub liveness_graph_seconds: f64,
    /// Wall time of the whole run.
    pub wall_seconds: f64,
    /// Peak resident memory of the process (Linux `VmHWM`), in MiB.
    pub peak_memory_mib: Option<f64>,
    /// One entry per property.
    pub properties: Vec<PropertyReport>,
    /// Whether every property was checked and holds.
    pub all_hold: bool,
    /// Whether some property is violated.
    pub violated: bool,
    /// What was not checked, and why (empty when everything was).
    pub not_checked: Vec<String>,
    /// Notes for people (reductions refused, skipped checks).
    pub notes: Vec<String>,
}

/// Runs the checker.
pub fn run(options: &Options) -> Summary {
    let started = Instant::now();
    let config = options.config;
    let mut notes = Vec::new();
    let mut symmetry = options.symmetry;
    if symmetry && options.actors > 0 {
        notes.push(
            "symmetry reduction is not sound with actors (LeastLoaded breaks ties by a hash of \
             node ids, so renaming nodes changes where actors go): checked without it"
                .to_string(),
        );
        symmetry = false;
    }
    if symmetry && config.mode() == Mode::Reference {
        notes.push(
            "the reference model is not symmetric (HealPartition breaks ties by node id): \
             symmetry reduction may miss states; use --symmetry off for its exact state space"
                .to_string(),
        );
    }
    let threads = options.threads.max(1);
    let model = MembershipModel::new(config, symmetry, options.actors);
    let full = MembershipModel::new(config, false, options.actors);
    let fairness = Fairness::of(&full);
    let want_liveness = options.liveness && options.depth.is_none();
    let through_stateright = symmetry || options.search == Search::Dfs;
    let graph = (want_liveness || !through_stateright).then(|| {
        Graph::explore(
            &full,
            Some(&fairness),
            Explore {
                threads,
                depth: options.depth,
                liveness: want_liveness,
                states_max: GRAPH_STATES_MAX,
                progress: options.progress,
            },
        )
    });
    let mut properties = Vec::new();
    let (distinct_states, generated_states, max_depth, safety_seconds);
    if through_stateright {
        let mut builder = model.clone().checker().threads(threads);
        if let Some(steps) = options.depth {
            // stateright counts the initial state as depth 1 and skips states at the target
            // depth, so "at most `steps` steps" is a target of `steps + 2`.
            builder = builder.target_max_depth(steps.saturating_add(2));
        }
        let safety_started = Instant::now();
        let outcome = match options.search {
            Search::Bfs => Explored::of(builder.spawn_bfs().join()),
            Search::Dfs => Explored::of(builder.spawn_dfs().join()),
        };
        safety_seconds = safety_started.elapsed().as_secs_f64();
        distinct_states = outcome.unique;
        generated_states = outcome.generated;
        max_depth = outcome.max_depth;
        for property in model.properties() {
            let path = outcome.discoveries.get(property.name).cloned();
            let events = path.map(|path| counterexample_events(&model, path, property.name));
            properties.push(safety_property(&model, property.name, events));
        }
    } else {
        let g = graph
            .as_ref()
            .unwrap_or_else(|| unreachable!("built above"));
        safety_seconds = g.seconds;
        distinct_states = g.state_count();
        generated_states = g.generated;
        max_depth = g.max_depth;
        for (inv, found) in StateInvariant::ALL.iter().zip(&g.state_violations) {
            let events = found.map(|i| g.path(i as usize));
            properties.push(safety_property(&full, inv.name(), events));
        }
        for (inv, found) in TransitionInvariant::ALL
            .iter()
            .zip(&g.transition_violations)
        {
            let events = found.map(|(i, label)| {
                let mut events = g.path(i as usize);
                events.push(g.event(label));
                events
            });
            properties.push(safety_property(&full, inv.name(), events));
        }
    }

    let mut not_checked = Vec::new();
    let liveness_started = Instant::now();
    let liveness_names: Vec<String> = fairness.properties.iter().map(|p| p.to_string()).collect();
    let mut liveness_skipped = |reason: String, properties: &mut Vec<PropertyReport>| {
        not_checked.push(format!(
            "liveness ({reason}): {}",
            liveness_names.join(", ")
        ));
        for name in &liveness_names {
            properties.push(PropertyReport {
                name: name.clone(),
                kind: "liveness",
                verdict: "not checked",
                counterexample_length: None,
                counterexample: None,
                counterexample_actions: None,
                cycle_starts_at: None,
                not_judged_states: None,
                not_judged_sets: None,
                not_judged_examples: None,
            });
        }
    };
    if !options.liveness {
        liveness_skipped("--liveness off".to_string(), &mut properties);
    } else if let Some(steps) = options.depth {
        liveness_skipped(
            format!("it needs the whole graph, and --depth {steps} limits it"),
            &mut properties,
        );
    } else if let Some(g) = graph.as_ref().filter(|g| g.too_large) {
        liveness_skipped(
            format!(
                "the graph has more than {} states; safety was checked on those",
                g.state_count()
            ),
            &mut properties,
        );
    } else if let Some(g) = &graph {
        let mut progress = Progress::new(options.progress);
        let count = fairness.properties.len();
        for report in liveness::check_all(g, &fairness, |p| {
            progress.tick(|_| format!("liveness: property {} of {count}", p + 1));
        }) {
            properties.push(liveness_property(&full, report));
        }
    }
    if let Some(steps) = options.depth {
        not_checked.push(format!(
            "safety beyond depth {steps}: only paths of at most {steps} steps were explored"
        ));
    }
    if graph.as_ref().is_some_and(|g| g.too_large) && !through_stateright {
        not_checked.push(format!(
            "states beyond the first {}: the graph was cut there",
            GRAPH_STATES_MAX
        ));
    }
    let liveness_seconds = if want_liveness {
        liveness_started.elapsed().as_secs_f64() + graph.as_ref().map_or(0.0, |g| g.seconds)
    } else {
        0.0
    };
    let violated = properties.iter().any(|p| p.verdict == "violated");
    let all_hold = properties.iter().all(|p| p.verdict == "holds") && not_checked.is_empty();
    let graph_states = graph.as_ref().map(Graph::state_count);
    Summary {
        spec: config.mode().to_string(),
        mutant: config.mutant().map(Mutant::name),
        nodes: config.node_count(),
        max_view: config.max_view(),
        max_epoch: config.max_epoch(),
        renumbered: full.renumbers(),
        actors: options.actors,
        symmetry,
        threads,
        search: options.search,
        depth_limit: options.depth,
        distinct_states,
        generated_states,
        states_per_second: distinct_states as f64 / safety_seconds.max(1e-9),
        max_depth,
        liveness_graph_states: graph_states,
        liveness_graph_edges: graph.as_ref().map(|g| g.generated - 1),
        declared_hosts: graph.as_ref().map(|g| g.declared_hosts),
        liveness_graph_kept_edges: graph
            .as_ref()
            .filter(|_| want_liveness)
            .map(Graph::kept_edge_count),
        fingerprint_collision_bound: graph_states.map(|n| (n as f64).powi(2) / 2f64.powi(65)),
        safety_seconds,
        liveness_seconds,
        liveness_graph_seconds: graph.as_ref().map_or(0.0, |g| g.seconds),
        wall_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        properties,
        all_hold,
        violated,
        not_checked,
        notes,
    }
}

/// The report of safety property `name`, with its counterexample's events if it was violated.
fn safety_property(
    model: &MembershipModel,
    name: &'static str,
    events: Option<Vec<Event>>,
) -> PropertyReport {
    let kind = if TransitionInvariant::ALL.iter().any(|i| i.name() == name) {
        "transition"
    } else {
        "state"
    };
    let (verdict, length, text, actions) = match events {
        None => ("holds", None, None, None),
        Some(events) => {
            let (text, concrete) = render(model, &events, None);
            (
                "violated",
                Some(concrete.len()),
                Some(text),
                Some(concrete.iter().map(Event::to_string).collect()),
            )
        }
    };
    PropertyReport {
        name: name.to_string(),
        kind,
        verdict,
        counterexample_length: length,
        counterexample: text,
        counterexample_actions: actions,
        cycle_starts_at: None,
        not_judged_states: None,
        not_judged_sets: None,
        not_judged_examples: None,
    }
}

/// What a finished stateright checker found.
struct Explored {
    unique: usize,
    generated: usize,
    max_depth: usize,
    discoveries: std::collections::HashMap<&'static str, Path<State, Event>>,
}

impl Explored {
    fn of(checker: impl Checker<MembershipModel>) -> Explored {
        Explored {
            unique: checker.unique_state_count(),
            generated: checker.state_count(),
            max_depth: checker.max_depth(),
            discoveries: checker.discoveries(),
        }
    }
}

fn liveness_property(model: &MembershipModel, report: LivenessReport) -> PropertyReport {
    let (verdict, length, text, actions, cycle_at) = match &report.counterexample {
        None => ("holds", None, None, None, None),
        Some(lasso) => {
            let Lasso { prefix, cycle } = lasso;
            let mut events = prefix.clone();
            events.extend(cycle.iter().copied());
            let (text, concrete) = render(model, &events, Some(prefix.len()));
            (
                "violated",
                Some(lasso.len()),
                Some(text),
                Some(concrete.iter().map(Event::to_string).collect()),
                Some(prefix.len() + 1),
            )
        }
    };
    let bounded = !model.renumbers();
    let mut examples = String::new();
    for (kind, example) in [
        ("a Trapped state", &report.example_state),
        (
            "a strongly connected set of Trapped states",
            &report.example_set,
        ),
    ] {
        if let Some(NotJudged { path, only_bound }) = example {
            let names: Vec<String> = only_bound.iter().map(Event::to_string).collect();
            let _ = writeln!(
                examples,
                "  not judged, {kind} where {} is refused only by the bound, reached by:",
                names.join(", ")
            );
            let (text, _) = render(model, path, None);
            examples.push_str(&text);
        }
    }
    PropertyReport {
        name: report.property,
        kind: "liveness",
        verdict,
        counterexample_length: length,
        counterexample: text,
        counterexample_actions: actions,
        cycle_starts_at: cycle_at,
        not_judged_states: bounded.then_some(report.not_judged_states),
        not_judged_sets: bounded.then_some(report.not_judged_sets),
        not_judged_examples: (!examples.is_empty()).then_some(examples),
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
            let e = model.concrete(&concrete, e);
            let (next, _) = step(&concrete, &e).ok()?;
            (model.representative(next.clone()) == *target).then_some((e, next))
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
fn render(
    model: &MembershipModel,
    events: &[Event],
    cycle_start: Option<usize>,
) -> (String, Vec<Event>) {
    let mut out = String::new();
    let mut state = State::initial(*model.config());
    let mut replayed = Vec::new();
    for (i, &event) in events.iter().enumerate() {
        if cycle_start == Some(i) {
            let repeats = if model.renumbers() {
                "repeats forever (it returns to the same state up to renumbering: view \
                 numbers, terms and epochs keep growing)"
            } else {
                "repeats forever"
            };
            let _ = writeln!(out, "   -- the cycle below {repeats} --");
        }
        let event = &model.concrete(&state, event);
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
        let a = before.node(n).cloned().unwrap_or(NodeRecord::INITIAL);
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

/// The summary for people; with `verbose`, also an example of each kind of behaviour liveness
/// did not judge.
pub fn print_summary(summary: &Summary, verbose: bool) -> String {
    let mut out = String::new();
    let none = |b: Option<u64>| b.map_or("none".to_string(), |b| b.to_string());
    let _ = writeln!(out, "model-check: membership protocol");
    let _ = writeln!(
        out,
        "  spec {}{} | nodes {} | actors {} | symmetry {} | {} | threads {}{}",
        summary.spec,
        summary
            .mutant
            .map(|m| format!(" (mutant {m})"))
            .unwrap_or_default(),
        summary.nodes,
        summary.actors,
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
    if summary.renumbered {
        let _ = writeln!(
            out,
            "  bounds: none (view numbers, terms and epochs renumbered by rank in every state: \
             the finite graph of the unbounded protocol)"
        );
    } else {
        let _ = writeln!(
            out,
            "  bounds: view numbers and terms <= {}, actor epochs <= {} (checking bounds: the \
             implementation's counters are unbounded u64)",
            none(summary.max_view),
            none(summary.max_epoch)
        );
    }
    let engine = if summary.symmetry || summary.search == Search::Dfs {
        "stateright"
    } else {
        "explicit graph"
    };
    let _ = writeln!(out, "safety ({engine}):");
    let _ = writeln!(out, "  distinct states    {}", summary.distinct_states);
    let _ = writeln!(out, "  generated states   {}", summary.generated_states);
    let _ = writeln!(out, "  states per second  {:.0}", summary.states_per_second);
    let _ = writeln!(out, "  maximum depth      {}", summary.max_depth);
    if let Some(n) = summary.declared_hosts.filter(|_| summary.actors > 0) {
        let _ = writeln!(
            out,
            "  declarations of a node hosting an actor: {n} transitions"
        );
    }
    let _ = writeln!(out, "  time               {:.2} s", summary.safety_seconds);
    if let (Some(states), Some(edges), Some(kept)) = (
        summary.liveness_graph_states,
        summary.liveness_graph_edges,
        summary.liveness_graph_kept_edges,
    ) {
        let _ = writeln!(out, "liveness (explicit graph, no symmetry reduction):");
        let _ = writeln!(
            out,
            "  graph              {states} states, {edges} transitions ({kept} kept: between \
             states Trapped for a common property)"
        );
        let _ = writeln!(
            out,
            "  time               {:.2} s ({:.2} s exploring the graph)",
            summary.liveness_seconds, summary.liveness_graph_seconds
        );
    }
    if let Some(p) = summary.fingerprint_collision_bound {
        let _ = writeln!(
            out,
            "fingerprints         64-bit; probability of a collision at most {p:.1e}"
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
        let mut extra = String::new();
        if let Some(len) = p.counterexample_length {
            extra = format!(" (counterexample: {len} steps)");
        } else if let (Some(states), Some(sets)) = (p.not_judged_states, p.not_judged_sets) {
            if states + sets > 0 {
                extra = format!(
                    " (not judged, a bound disables a fair action: {states} trapped states, \
                     {sets} trapped cycles)"
                );
            }
        }
        let _ = writeln!(out, "  {:<34} {:<11} {}{extra}", p.name, p.kind, p.verdict);
    }
    if verbose {
        for p in &summary.properties {
            if let Some(examples) = &p.not_judged_examples {
                let _ = writeln!(out, "\n{}:", p.name);
                out.push_str(examples);
            }
        }
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
    let _ = writeln!(out, "\nresult: {}", result_line(summary));
    out
}

/// The one-line verdict: every property holds, which are violated, or what was not checked.
pub fn result_line(summary: &Summary) -> String {
    let violated: Vec<&str> = summary
        .properties
        .iter()
        .filter(|p| p.verdict == "violated")
        .map(|p| p.name.as_str())
        .collect();
    let mut line = if !violated.is_empty() {
        format!("VIOLATED: {}", violated.join(", "))
    } else if summary.not_checked.is_empty() {
        "every property holds".to_string()
    } else {
        "no violation found, but NOT everything was checked".to_string()
    };
    for what in &summary.not_checked {
        let _ = write!(line, "; not checked: {what}");
    }
    line
}
