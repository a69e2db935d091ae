//! Liveness, decided soundly on the reachable state graph.
//!
//! stateright's `eventually` only looks at terminal states and is not sound on cyclic graphs, so
//! liveness is decided here on the explicit reachable graph (every state, every edge labelled
//! with its action; no symmetry reduction, so that action instances keep their names).
//!
//! Each property has the form `[]<>~Trapped` ("no fair behaviour stays in `Trapped` forever",
//! see `membership_core::invariants::Liveness`) under the property's fairness assumption: weak
//! fairness of each action instance in `Liveness::fairness` (the spec's `Fairness`,
//! `membership_core::invariants::fair_events`, plus what the property itself assumes). A behaviour
//! violating it ends, from some point on, inside `Trapped` forever. In a finite graph such a
//! behaviour either
//! - stutters forever in a Trapped state `s`: fair only if every fair action is disabled at `s`;
//! - or cycles through a strongly connected set `C` of Trapped states: such a cycle can be made
//!   weakly fair iff every fair action is either disabled at some state of `C` or taken by some
//!   edge inside `C` (a cycle visiting every state and edge of `C` then satisfies weak fairness).
//!
//! Both are checked exhaustively, so "holds" means no fair violating behaviour exists in the
//! bounded graph. The bound `MaxView` is a model artefact: a fair action refused only because a
//! counter would pass `MaxView` is treated as enabled (the unbounded protocol could take it), so
//! a lasso that is fair only thanks to the bound is not reported as a violation but counted as
//! `bound_limited`.

use crate::model::MembershipModel;
use indexmap::IndexSet;
use membership_core::invariants::Liveness;
use membership_core::{step, Config, Event, Guard, State};
use serde::Serialize;
use std::collections::VecDeque;

/// The largest graph the liveness pass builds (states); beyond it the pass stops and says so.
pub const GRAPH_STATES_MAX: usize = 20_000_000;

/// The explicit reachable graph of a configuration.
pub struct Graph {
    events: Vec<Event>,
    /// The states, numbered in insertion (BFS) order; the hasher only speeds up lookups and
    /// does not affect the numbering.
    states: IndexSet<State, ahash::RandomState>,
    /// Edges of state `i` are `edges[offsets[i]..offsets[i + 1]]`: (target, event index).
    offsets: Vec<usize>,
    edges: Vec<(u32, u16)>,
    /// BFS tree: (parent, event index) for every state but the initial one.
    parent: Vec<Option<(u32, u16)>>,
}

/// The graph did not fit in [`GRAPH_STATES_MAX`] states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphTooLarge {
    /// The limit that was reached.
    pub states_max: usize,
}

impl Graph {
    /// Builds the reachable graph of the model's configuration and events breadth-first (no
    /// symmetry reduction).
    pub fn explore(model: &MembershipModel, states_max: usize) -> Result<Graph, GraphTooLarge> {
        let config = *model.config();
        let events = model.events().to_vec();
        let mut states = IndexSet::with_hasher(ahash::RandomState::new());
        states.insert(State::initial(config));
        let mut offsets = vec![0usize];
        let mut edges = Vec::new();
        let mut parent = vec![None];
        let mut next = 0usize;
        while next < states.len() {
            let Some(state) = states.get_index(next).cloned() else {
                break;
            };
            for (label, event) in events.iter().enumerate() {
                let Ok((succ, _)) = step(&state, event) else {
                    continue;
                };
                let (target, inserted) = states.insert_full(succ);
                if inserted {
                    if states.len() > states_max {
                        return Err(GraphTooLarge { states_max });
                    }
                    parent.push(Some((to_u32(next), to_u16(label))));
                }
                edges.push((to_u32(target), to_u16(label)));
            }
            offsets.push(edges.len());
            next += 1;
        }
        debug_assert_eq!(offsets.len(), states.len() + 1);
        debug_assert_eq!(parent.len(), states.len());
        Ok(Graph {
            events,
            states,
            offsets,
            edges,
            parent,
        })
    }

    /// The number of reachable states.
    pub fn state_count(&self) -> usize {
        self.states.len()
    }

    /// The number of edges (enabled action instances summed over states).
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    fn state(&self, i: usize) -> &State {
        // Indices come from the graph itself; an out-of-range index is a bug in this module.
        &self.states[i]
    }

    fn out(&self, i: usize) -> &[(u32, u16)] {
        &self.edges[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The events of the BFS-tree path from the initial state to state `i` (shortest).
    fn prefix(&self, mut i: usize) -> Vec<Event> {
        let mut path = Vec::new();
        while let Some((p, label)) = self.parent[i] {
            path.push(self.events[usize::from(label)]);
            i = p as usize;
        }
        path.reverse();
        path
    }
}

fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn to_u16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

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

/// The verdict on one liveness property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LivenessReport {
    /// The property instance.
    pub property: String,
    /// The property name without parameters.
    pub name: &'static str,
    /// A fair violating behaviour, if one exists.
    pub counterexample: Option<Lasso>,
    /// Trapped states and strongly connected sets that would be fair violations only because the
    /// bound `MaxView` disables a fair action there (not reported as violations).
    pub bound_limited: usize,
    /// Trapped states (states in which the behaviour must not stay forever).
    pub trapped_states: usize,
}

/// How a fair action stands at one state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enabled {
    Yes,
    No,
    OnlyBound,
}

fn enabled(state: &State, event: &Event) -> Enabled {
    match step(state, event) {
        Ok(_) => Enabled::Yes,
        Err(refusal) => match refusal.guard {
            // Bound checks are the last guard of every action: this refusal means "enabled but
            // for MaxView".
            Guard::BoundReached { .. } => Enabled::OnlyBound,
            _ => Enabled::No,
        },
    }
}

/// Checks every liveness property of `membership_core::invariants::Liveness::all`.
pub fn check_all(graph: &Graph, model: &MembershipModel) -> Vec<LivenessReport> {
    Liveness::all(model.config().node_count(), model.actors())
        .into_iter()
        .map(|property| check(graph, model, property))
        .collect()
}

/// Checks one liveness property on the graph.
pub fn check(graph: &Graph, model: &MembershipModel, property: Liveness) -> LivenessReport {
    let config: &Config = model.config();
    let fair = property.fairness(
        config.node_count(),
        model.actors(),
        config.max_view().unwrap_or(0),
    );
    let fair_labels: Vec<Option<u16>> = fair
        .iter()
        .map(|f| graph.events.iter().position(|e| e == f).map(to_u16))
        .collect();
    let n = graph.state_count();
    let trapped: Vec<bool> = (0..n).map(|i| property.trapped(graph.state(i))).collect();
    let trapped_states = trapped.iter().filter(|&&t| t).count();
    let mut bound_limited = 0usize;
    let mut best: Option<Lasso> = None;
    let consider = |lasso: Lasso, best: &mut Option<Lasso>| {
        if best.as_ref().is_none_or(|b| lasso.len() < b.len()) {
            *best = Some(lasso);
        }
    };

    // Stuttering forever in one trapped state.
    for i in (0..n).filter(|&i| trapped[i]) {
        let status: Vec<Enabled> = fair.iter().map(|f| enabled(graph.state(i), f)).collect();
        if status.iter().all(|&s| s == Enabled::No) {
            consider(
                Lasso {
                    prefix: graph.prefix(i),
                    cycle: Vec::new(),
                },
                &mut best,
            );
        } else if status.iter().all(|&s| s != Enabled::Yes) {
            bound_limited += 1;
        }
    }

    // Cycling forever through a strongly connected set of trapped states.
    for component in trapped_components(graph, &trapped) {
        let members: std::collections::BTreeSet<usize> = component.iter().copied().collect();
        let internal = |i: usize| {
            graph
                .out(i)
                .iter()
                .filter(|(t, _)| members.contains(&(*t as usize)))
                .copied()
                .collect::<Vec<_>>()
        };
        if component.len() == 1 && internal(component[0]).is_empty() {
            continue; // no cycle here; stuttering was handled above
        }
        let mut verdict_fair = true;
        let mut verdict_fair_with_bound = true;
        let mut required = Vec::new();
        for (f, label) in fair.iter().zip(&fair_labels) {
            let taken = label.is_some_and(|l| {
                component
                    .iter()
                    .any(|&i| internal(i).iter().any(|&(_, el)| el == l))
            });
            if taken {
                required.extend(*label);
                continue;
            }
            let statuses: Vec<Enabled> = component
                .iter()
                .map(|&i| enabled(graph.state(i), f))
                .collect();
            if !statuses.contains(&Enabled::No) {
                verdict_fair = false;
                if !statuses.contains(&Enabled::OnlyBound) {
                    verdict_fair_with_bound = false;
                }
            }
        }
        if verdict_fair {
            let entry = component.iter().copied().min().unwrap_or(0);
            let cycle = fair_cycle(graph, &members, entry, &required);
            consider(
                Lasso {
                    prefix: graph.prefix(entry),
                    cycle,
                },
                &mut best,
            );
        } else if verdict_fair_with_bound {
            bound_limited += 1;
        }
    }

    LivenessReport {
        property: property.to_string(),
        name: property.name(),
        counterexample: best,
        bound_limited,
        trapped_states,
    }
}

/// The strongly connected components of the subgraph induced by trapped states (iterative
/// Tarjan; bounded by the number of states and edges).
fn trapped_components(graph: &Graph, trapped: &[bool]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = graph.state_count();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut counter = 0usize;
    for root in (0..n).filter(|&i| trapped[i]) {
        if index[root] != UNVISITED {
            continue;
        }
        // Call stack of (state, next edge position).
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
            let out = graph.out(v);
            if *pos < out.len() {
                let w = out[*pos].0 as usize;
                *pos += 1;
                if !trapped[w] {
                    continue;
                }
                if index[w] == UNVISITED {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                calls.pop();
                if let Some(&(u, _)) = calls.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
    }
    components
}

/// A cycle from `entry` back to `entry` inside `members` that takes an edge of every label in
/// `required` (the fair actions enabled throughout the component), built from shortest walks.
fn fair_cycle(
    graph: &Graph,
    members: &std::collections::BTreeSet<usize>,
    entry: usize,
    required: &[u16],
) -> Vec<Event> {
    let mut cycle = Vec::new();
    let mut at = entry;
    for &label in required {
        // Walk to a state with an internal edge labelled `label`, then take it.
        let has_edge = |i: usize| {
            graph
                .out(i)
                .iter()
                .find(|&&(t, l)| l == label && members.contains(&(t as usize)))
                .copied()
        };
        if let Some((walk, end)) = walk_to(graph, members, at, |i| has_edge(i).is_some()) {
            cycle.extend(walk);
            if let Some((t, l)) = has_edge(end) {
                cycle.push(graph.events[usize::from(l)]);
                at = t as usize;
            }
        }
    }
    // Close the cycle: at least one step, back to the entry.
    if at == entry && cycle.is_empty() {
        if let Some(&(t, l)) = graph
            .out(entry)
            .iter()
            .find(|(t, _)| members.contains(&(*t as usize)))
        {
            cycle.push(graph.events[usize::from(l)]);
            at = t as usize;
        }
    }
    if let Some((walk, _)) = walk_to(graph, members, at, |i| i == entry) {
        cycle.extend(walk);
    }
    cycle
}

/// The shortest walk inside `members` from `from` to a state satisfying `goal`.
fn walk_to(
    graph: &Graph,
    members: &std::collections::BTreeSet<usize>,
    from: usize,
    goal: impl Fn(usize) -> bool,
) -> Option<(Vec<Event>, usize)> {
    let mut parent: std::collections::BTreeMap<usize, (usize, u16)> = Default::default();
    let mut queue = VecDeque::from([from]);
    let mut seen = std::collections::BTreeSet::from([from]);
    while let Some(v) = queue.pop_front() {
        if goal(v) {
            let mut walk = Vec::new();
            let mut cur = v;
            while cur != from {
                let (p, l) = parent[&cur];
                walk.push(graph.events[usize::from(l)]);
                cur = p;
            }
            walk.reverse();
            return Some((walk, v));
        }
        for &(t, l) in graph.out(v) {
            let t = t as usize;
            if members.contains(&t) && seen.insert(t) {
                parent.insert(t, (v, l));
                queue.push_back(t);
            }
        }
    }
    None
}
