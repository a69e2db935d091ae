//! Liveness, decided soundly on the explicit reachable graph ([`crate::graph::Graph`]).
//!
//! stateright's `eventually` only looks at terminal states and is not sound on cyclic graphs, so
//! liveness is decided here on the explicit reachable graph (every state, every edge labelled
//! with its action; no symmetry reduction, so that action instances keep their names).
//!
//! Each property has the form `[]<>~Trapped` ("no fair behaviour stays in `Trapped` forever",
//! see `membership_core::invariants::Liveness`) under the spec's fairness assumption: weak
//! fairness of each action instance ([`crate::graph::Fairness`]). A behaviour violating it ends,
//! from some point on, inside `Trapped` forever. In a finite graph such a behaviour either
//! - stutters forever in a Trapped state `s`: fair only if every fair action is disabled at `s`;
//! - or cycles through a strongly connected set `C` of Trapped states: such a cycle can be made
//!   weakly fair iff every fair action is either disabled at some state of `C` or taken by some
//!   edge inside `C` (a cycle visiting every state and edge of `C` then satisfies weak fairness).
//!
//! Both are checked exhaustively, so "holds" means no fair violating behaviour exists in the
//! graph.
//!
//! **The renumbered graph** (the default: the fixed protocol without bounds) is finite without
//! any bound, and its cycles are the protocol's infinite behaviours (a cycle returns to the same
//! state up to renumbering of view numbers, terms and epochs: the concrete behaviour keeps
//! drawing fresh numbers). There every action instance is judged on what the protocol does;
//! nothing is disabled by a bound. One subtlety: `MigrateActor(a, t)` is one fair instance per
//! term `t`, and in the renumbered graph all of them are the one instance
//! `MigrateActor(a, current)`. The protocol enables `MigrateActor(a, t)` only while `t` is the
//! registry's current term (`membership_core::checking::fenced_by_term`), and terms are never
//! granted twice, so on a cycle that grants a term (an edge flagged
//! [`crate::graph::TERM_CHANGED`]) no instance `MigrateActor(a, t)` stays enabled forever: weak
//! fairness asks nothing of them there. On a cycle that grants no term, `t` is fixed and
//! `MigrateActor(a, current)` is exactly `MigrateActor(a, t)`.
//!
//! **Bounded graphs** (the reference and buggy modes, or `--max-view`/`--max-epoch`): a fair action
//! refused only because a counter would pass its bound is a model artefact, not a property of
//! the protocol. It counts as "disabled only by the bound" only if the same step succeeds once
//! the bound is lifted (the refusal's label is not trusted); a lasso that is fair only thanks to
//! such refusals is not reported as a violation but counted as not judged (stuttering states
//! and strongly connected sets apart).

use crate::graph::{Fairness, Graph, TERM_CHANGED};
use membership_core::invariants::Liveness;
use membership_core::Event;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A lasso: a path from the initial state, then a cycle repeated forever (an empty cycle means
/// the behaviour stutters forever at the end of the prefix).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lasso {
    /// From the initial state to the first state of the cycle.
    pub prefix: Vec<Event>,
    /// The repeated part (empty: stuttering).
    pub cycle: Vec<Event>,
}

impl Lasso {
    /// Steps in all: prefix plus one pass of the cycle.
    pub fn len(&self) -> usize {
        self.prefix.len() + self.cycle.len()
    }

    /// Whether the lasso has no steps at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An example of a behaviour not judged because a bound disabled a fair action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotJudged {
    /// A shortest path to the state (for a set: to its first state).
    pub path: Vec<Event>,
    /// The fair action instances refused there only by the bound.
    pub only_bound: Vec<Event>,
}

/// The verdict on one liveness property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LivenessReport {
    /// The property instance.
    pub property: String,
    /// The property name without parameters.
    pub name: &'static str,
    /// A fair violating behaviour, if one exists.
    pub counterexample: Option<Lasso>,
    /// Trapped states where stuttering would be fair only because a bound disables a fair
    /// action (not judged).
    pub not_judged_states: usize,
    /// Strongly connected sets of Trapped states whose cycles would be fair only because a
    /// bound disables a fair action (not judged).
    pub not_judged_sets: usize,
    /// One not-judged state, if any.
    pub example_state: Option<NotJudged>,
    /// One not-judged set, if any.
    pub example_set: Option<NotJudged>,
    /// Trapped states (states in which the behaviour must not stay forever).
    pub trapped_states: usize,
}

/// Checks every liveness property of the graph's fairness.
pub fn check_all(
    graph: &Graph,
    fairness: &Fairness,
    mut progress: impl FnMut(usize),
) -> Vec<LivenessReport> {
    let mut scratch = Scratch::new(graph.expanded_count());
    (0..fairness.properties.len())
        .map(|p| {
            progress(p);
            check(graph, fairness, p, &mut scratch)
        })
        .collect()
}

/// Tarjan's arrays, reused from property to property.
struct Scratch {
    index: Vec<u32>,
    low: Vec<u32>,
    comp: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            index: vec![NONE; n],
            low: vec![0; n],
            comp: vec![NONE; n],
        }
    }

    fn reset(&mut self) {
        self.index.fill(NONE);
        self.comp.fill(NONE);
    }
}

fn bits(mask: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |b| mask & (1u64 << b) != 0)
}

fn instances(fairness: &Fairness, mask: u64) -> Vec<Event> {
    bits(mask).map(|b| fairness.instances[b]).collect()
}

/// Checks property number `p` on the graph.
fn check(graph: &Graph, fairness: &Fairness, p: usize, scratch: &mut Scratch) -> LivenessReport {
    let property = fairness.properties[p];
    let assumed = fairness.assumed[p];
    let n = graph.expanded_count();
    let bit = 1u64 << p;
    let trapped = |i: usize| i < n && graph.trapped[i] & bit != 0;
    let only_bound = |i: usize| {
        if graph.has_bound_info() {
            graph.only_bound[i]
        } else {
            0
        }
    };
    let mut report = LivenessReport {
        property: property.to_string(),
        name: property.name(),
        counterexample: None,
        not_judged_states: 0,
        not_judged_sets: 0,
        example_state: None,
        example_set: None,
        trapped_states: 0,
    };
    let mut best: Option<Lasso> = None;
    let steps = Steps::of(graph, property);

    // Stuttering forever in one trapped state (states in breadth-first order: the first one
    // found has the shortest prefix).
    for i in (0..n).filter(|&i| trapped(i)) {
        report.trapped_states += 1;
        let enabled = graph.enabled[i] & assumed;
        let bound = only_bound(i) & assumed;
        if steps.repeating {
            // Stuttering takes no step, so it never violates a property of repeated steps.
            continue;
        }
        if enabled == 0 && bound == 0 {
            if best.is_none() {
                best = Some(Lasso {
                    prefix: graph.path(i),
                    cycle: Vec::new(),
                });
            }
        } else if enabled == 0 {
            report.not_judged_states += 1;
            if report.example_state.is_none() {
                report.example_state = Some(NotJudged {
                    path: graph.path(i),
                    only_bound: instances(fairness, bound),
                });
            }
        }
    }

    // Cycling forever through a strongly connected set of trapped states.
    scratch.reset();
    let mut counter = 0u32;
    let mut components = 0u32;
    let mut stack: Vec<usize> = Vec::new();
    for root in (0..n).filter(|&i| trapped(i)) {
        if scratch.index[root] != NONE {
            continue;
        }
        // Call stack of (state, next edge position).
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        scratch.index[root] = counter;
        scratch.low[root] = counter;
        counter += 1;
        stack.push(root);
        while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
            let next = graph.edge(v, *pos);
            if let Some((w, label)) = next {
                *pos += 1;
                if !trapped(w) || !steps.kept(label) {
                    continue;
                }
                if scratch.index[w] == NONE {
                    scratch.index[w] = counter;
                    scratch.low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    calls.push((w, 0));
                } else if scratch.comp[w] == NONE {
                    // On the stack.
                    scratch.low[v] = scratch.low[v].min(scratch.index[w]);
                }
            } else {
                calls.pop();
                if let Some(&(u, _)) = calls.last() {
                    scratch.low[u] = scratch.low[u].min(scratch.low[v]);
                }
                if scratch.low[v] == scratch.index[v] {
                    let mut members = Vec::new();
                    while let Some(w) = stack.pop() {
                        scratch.comp[w] = components;
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    judge_component(
                        graph,
                        &steps,
                        fairness,
                        assumed,
                        &members,
                        components,
                        &scratch.comp,
                        &only_bound,
                        &mut report,
                        &mut best,
                    );
                    components += 1;
                }
            }
        }
    }
    report.counterexample = best;
    report
}

/// What one strongly connected set of trapped states says.
#[allow(clippy::too_many_arguments)]
fn judge_component(
    graph: &Graph,
    steps: &Steps,
    fairness: &Fairness,
    assumed: u64,
    members: &[usize],
    id: u32,
    comp: &[u32],
    only_bound: &dyn Fn(usize) -> u64,
    report: &mut LivenessReport,
    best: &mut Option<Lasso>,
) {
    let internal = |i: usize| {
        graph
            .out(i)
            .filter(move |&(t, label)| comp[t] == id && steps.kept(label))
    };
    let mut has_edge = false;
    let mut moves = false;
    let mut taken = 0u64;
    let mut term_change = false;
    let mut disabled = 0u64; // really disabled at some member
    let mut disabled_or_bound = 0u64; // disabled or refused only by the bound at some member
    for &m in members {
        for (_, label) in internal(m) {
            has_edge = true;
            moves |= steps.moving(label);
            term_change |= label & TERM_CHANGED != 0;
            if let Some(b) = fairness.bit_of_event[usize::from(label & !TERM_CHANGED)] {
                taken |= 1 << b;
            }
        }
        disabled |= assumed & !graph.enabled[m] & !only_bound(m);
        disabled_or_bound |= assumed & !graph.enabled[m];
    }
    if !has_edge {
        return; // a single state without a self-loop: stuttering was handled apart
    }
    if steps.repeating && !moves {
        return; // the property is violated only by repeating a step this set never takes
    }
    let vacuous = if term_change {
        fairness.vacuous_on_term_change
    } else {
        0
    };
    let fair = assumed & !(taken | disabled | vacuous) == 0;
    let fair_with_bound = assumed & !(taken | disabled_or_bound | vacuous) == 0;
    let entry = members.iter().copied().min().unwrap_or(0);
    if fair {
        if best.as_ref().is_some_and(|b| graph.depth(entry) >= b.len()) {
            return; // cannot be shorter
        }
        let mut goals = Vec::new();
        let mut need_term_change = false;
        for b in bits(assumed) {
            if disabled & (1 << b) != 0 {
                goals.push(Goal::Disabled(b));
            } else if taken & (1 << b) != 0 {
                goals.push(Goal::Take(b));
            } else {
                need_term_change = true;
            }
        }
        if need_term_change {
            goals.push(Goal::TermChange);
        }
        if steps.repeating {
            goals.push(Goal::Move);
        }
        let cycle = fair_cycle(
            graph, steps, fairness, members, id, comp, entry, &goals, only_bound,
        );
        let lasso = Lasso {
            prefix: graph.path(entry),
            cycle,
        };
        if best.as_ref().is_none_or(|b| lasso.len() < b.len()) {
            *best = Some(lasso);
        }
    } else if fair_with_bound {
        report.not_judged_sets += 1;
        if report.example_set.is_none() {
            let bound = members
                .iter()
                .fold(0u64, |mask, &m| mask | (only_bound(m) & assumed));
            report.example_set = Some(NotJudged {
                path: graph.path(entry),
                only_bound: instances(fairness, bound),
            });
        }
    }
}

/// What a fair cycle must do for one fair instance (or for the term-fenced instances).
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// Visit a state where instance `b` is disabled.
    Disabled(usize),
    /// Take an edge of instance `b`.
    Take(usize),
    /// Take an edge that grants a term.
    TermChange,
    /// Take a step the property forbids repeating for ever ([`Liveness::violated_by_repeating`]).
    Move,
}

/// Which steps a property judges, by label: the steps its behaviours may take
/// ([`Liveness::keeps`]) and, for a property of repeated steps, the steps it forbids repeating.
struct Steps {
    /// Per event of the model, whether the property's behaviours may take it.
    keep: Vec<bool>,
    /// Per event of the model, whether it is a step the property forbids repeating.
    moving: Vec<bool>,
    /// Whether the property is violated only by repeating a step (not by staying trapped).
    repeating: bool,
}

impl Steps {
    fn of(graph: &Graph, property: Liveness) -> Steps {
        let keep: Vec<bool> = graph.events.iter().map(|e| property.keeps(e)).collect();
        let repeated = property.violated_by_repeating();
        let moving: Vec<bool> = graph
            .events
            .iter()
            .map(|e| repeated.is_some_and(|f| f(e)))
            .collect();
        debug_assert_eq!(keep.len(), moving.len());
        debug_assert!(repeated.is_some() || !moving.contains(&true));
        Steps {
            keep,
            moving,
            repeating: repeated.is_some(),
        }
    }

    /// Whether an edge with this label (flags included) is one the property's behaviours take.
    fn kept(&self, label: u16) -> bool {
        self.keep
            .get(usize::from(label & !TERM_CHANGED))
            .copied()
            .unwrap_or(false)
    }

    /// Whether an edge with this label is a step the property forbids repeating.
    fn moving(&self, label: u16) -> bool {
        self.moving
            .get(usize::from(label & !TERM_CHANGED))
            .copied()
            .unwrap_or(false)
    }
}

/// A cycle from `entry` back to `entry` inside the component that meets every goal, built from
/// shortest walks.
#[allow(clippy::too_many_arguments)]
fn fair_cycle(
    graph: &Graph,
    steps: &Steps,
    fairness: &Fairness,
    members: &[usize],
    id: u32,
    comp: &[u32],
    entry: usize,
    goals: &[Goal],
    only_bound: &dyn Fn(usize) -> u64,
) -> Vec<Event> {
    let members: BTreeSet<usize> = members.iter().copied().collect();
    let internal = |i: usize| {
        graph
            .out(i)
            .filter(move |&(t, label)| comp[t] == id && steps.kept(label))
    };
    let edge_for = |i: usize, goal: Goal| {
        internal(i).find(|&(_, label)| match goal {
            Goal::Take(b) => {
                fairness.bit_of_event[usize::from(label & !TERM_CHANGED)] == Some(b as u8)
            }
            Goal::TermChange => label & TERM_CHANGED != 0,
            Goal::Move => steps.moving(label),
            Goal::Disabled(_) => false,
        })
    };
    let mut cycle = Vec::new();
    let mut at = entry;
    for &goal in goals {
        let reached = |i: usize| match goal {
            Goal::Disabled(b) => (graph.enabled[i] | only_bound(i)) & (1 << b) == 0,
            Goal::Take(_) | Goal::TermChange | Goal::Move => edge_for(i, goal).is_some(),
        };
        if let Some((walk, end)) = walk_to(graph, steps, &members, id, comp, at, reached) {
            cycle.extend(walk);
            at = end;
            if let Some((t, label)) = edge_for(end, goal) {
                cycle.push(graph.event(label));
                at = t;
            }
        }
    }
    // Close the cycle: at least one step, back to the entry.
    if at == entry && cycle.is_empty() {
        if let Some((t, label)) = internal(entry).next() {
            cycle.push(graph.event(label));
            at = t;
        }
    }
    if let Some((walk, _)) = walk_to(graph, steps, &members, id, comp, at, |i| i == entry) {
        cycle.extend(walk);
    }
    cycle
}

/// The shortest walk inside the component from `from` to a state satisfying `goal`.
fn walk_to(
    graph: &Graph,
    steps: &Steps,
    members: &BTreeSet<usize>,
    id: u32,
    comp: &[u32],
    from: usize,
    goal: impl Fn(usize) -> bool,
) -> Option<(Vec<Event>, usize)> {
    let mut parent: BTreeMap<usize, (usize, u16)> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(v) = queue.pop_front() {
        if goal(v) {
            let mut walk = Vec::new();
            let mut cur = v;
            while cur != from {
                let (p, label) = parent[&cur];
                walk.push(graph.event(label));
                cur = p;
            }
            walk.reverse();
            return Some((walk, v));
        }
        for (t, label) in graph.out(v) {
            if comp[t] == id && steps.kept(label) && members.contains(&t) && seen.insert(t) {
                parent.insert(t, (v, label));
                queue.push_back(t);
            }
        }
    }
    None
}
