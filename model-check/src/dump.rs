//! `--dump FILE`: every reachable state of the checked model, one canonical line per state, for
//! the TLC cross-check (`core/spec/tlc/compare.py` reads TLC's `-dump` into the same lines).
//!
//! A line is a JSON object with sorted keys, named after the spec's variables:
//! `state`, `view`, `view_number`, `believes_primary`, `term`, `heartbeat_received`, `detected`
//! (lists indexed by node, `n1` first; sets as ascending lists of node numbers), `partitioned`
//! (the ascending list of `[a, b]` pairs), `term_counter`, `view_counter`, `epoch_counter`,
//! `placements` (ascending `[actor, node, epoch]`) and `queue` (ascending
//! `[actor, from, reason]`). Only public accessors of `State` are used.
//!
//! The states are enumerated breadth-first with the model's own `init_states`, `actions` and
//! `next_state`, so the set is exactly the one the stateright checker explores (with symmetry
//! off: every concrete state; with symmetry on: the representatives). The transitions go beside
//! it (`FILE.edges`), so that the cross-check compares the transition relations too.

use crate::model::MembershipModel;
use membership_core::{NodeId, NodeRecord, NodeSet, State};
use serde_json::{json, Value};
use stateright::Model;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The spec's `heartbeat_received[n]` of `node` (kept apart from its `NodeRecord` in Rust).
fn heartbeat_received(state: &State, node: NodeId, _record: &NodeRecord) -> bool {
    state.heartbeat_received(node)
}

fn members(set: &NodeSet) -> Value {
    Value::from(set.iter().map(|n| n.0).collect::<Vec<u16>>())
}

/// The canonical line of one state (without the newline).
pub fn canonical_line(state: &State) -> String {
    let records: Vec<(NodeId, &NodeRecord)> = state.node_ids().zip(state.nodes()).collect();
    let per_node = |f: &dyn Fn(NodeId, &NodeRecord) -> Value| -> Value {
        Value::from(records.iter().map(|(n, r)| f(*n, r)).collect::<Vec<_>>())
    };
    let mut partitioned = Vec::new();
    for (n, r) in &records {
        for m in r.partitioned_from.iter() {
            partitioned.push((n.0, m.0));
        }
    }
    partitioned.sort_unstable();
    let mut line: BTreeMap<&'static str, Value> = BTreeMap::new();
    line.insert("state", per_node(&|_, r| Value::from(r.status.to_string())));
    line.insert("view", per_node(&|_, r| members(&r.view)));
    line.insert("view_number", per_node(&|_, r| Value::from(r.view_number)));
    line.insert(
        "believes_primary",
        per_node(&|_, r| Value::from(r.believes_primary)),
    );
    line.insert("term", per_node(&|_, r| Value::from(r.term)));
    line.insert(
        "heartbeat_received",
        per_node(&|n, r| Value::from(heartbeat_received(state, n, r))),
    );
    line.insert("detected", per_node(&|_, r| members(&r.detected)));
    line.insert(
        "partitioned",
        Value::from(
            partitioned
                .iter()
                .map(|(a, b)| json!([a, b]))
                .collect::<Vec<_>>(),
        ),
    );
    line.insert("term_counter", Value::from(state.term_counter()));
    line.insert("view_counter", Value::from(state.view_counter()));
    line.insert("epoch_counter", Value::from(state.epoch_counter()));
    line.insert(
        "placements",
        Value::from(
            state
                .placements()
                .iter()
                .map(|(a, p)| json!([a.0, p.node.0, p.epoch]))
                .collect::<Vec<_>>(),
        ),
    );
    line.insert(
        "queue",
        Value::from(
            state
                .queue()
                .iter()
                .map(|(a, e)| json!([a.0, e.from.0, e.reason.to_string()]))
                .collect::<Vec<_>>(),
        ),
    );
    Value::Object(line.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).to_string()
}

/// Writes the canonical line of every state reachable in `model` to `path`, breadth-first, and
/// every transition to `path` + `.edges`, one line each: the 1-based lines of its source and
/// target states and the action, separated by tabs, in breadth-first order of the source (so the
/// first transition into a state comes from its breadth-first parent). Returns the number of
/// states written.
pub fn write_states(model: &MembershipModel, path: &Path) -> io::Result<usize> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut edges_name = path.as_os_str().to_owned();
    edges_name.push(".edges");
    let mut edges = BufWriter::new(std::fs::File::create(edges_name)?);
    // Every state found so far, with its 1-based line.
    let mut lines: HashMap<State, usize, ahash::RandomState> =
        HashMap::with_hasher(ahash::RandomState::new());
    let mut frontier: VecDeque<(State, usize)> = VecDeque::new();
    for init in model.init_states() {
        if !lines.contains_key(&init) {
            lines.insert(init.clone(), lines.len() + 1);
            frontier.push_back((init, lines.len()));
        }
    }
    let mut actions = Vec::new();
    let mut written = 0usize;
    while let Some((state, line)) = frontier.pop_front() {
        writeln!(out, "{}", canonical_line(&state))?;
        written += 1;
        debug_assert_eq!(line, written);
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&state, action) else {
                continue;
            };
            let target = match lines.get(&next) {
                Some(&target) => target,
                None => {
                    let target = lines.len() + 1;
                    lines.insert(next.clone(), target);
                    frontier.push_back((next, target));
                    target
                }
            };
            writeln!(edges, "{line}\t{target}\t{}", model.format_action(&action))?;
        }
    }
    out.flush()?;
    edges.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::Config;

    #[test]
    fn the_initial_line_names_every_spec_variable_in_key_order() {
        let config = Config::fixed(2).unwrap();
        assert_eq!(
            canonical_line(&State::initial(config)),
            r#"{"believes_primary":[false,false],"detected":[[],[]],"epoch_counter":0,"heartbeat_received":[false,false],"partitioned":[],"placements":[],"queue":[],"state":["Left","Left"],"term":[0,0],"term_counter":0,"view":[[],[]],"view_counter":0,"view_number":[0,0]}"#
        );
    }

    #[test]
    fn the_dump_holds_every_state_of_the_checker_once() {
        let config = Config::new(membership_core::checking::Mode::Fixed, 2, Some(3), None).unwrap();
        let model = MembershipModel::new(config, false, 0);
        let path = std::env::temp_dir().join(format!("dump-test-{}.jsonl", std::process::id()));
        let written = write_states(&model, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let edges_file = format!("{}.edges", path.display());
        let edges = std::fs::read_to_string(&edges_file).unwrap();
        std::fs::remove_file(&edges_file).unwrap();
        let edges: Vec<&str> = edges.lines().collect();
        // The checker's 8,687 generated states are the initial one and one per transition
        // (registry v2, one configuration; 10,227 before, 7,693 before issue 17).
        assert_eq!(edges.len(), 8_686);
        assert_eq!(edges[0], "1\t2\tNodeJoin(n1)");
        let lines: std::collections::BTreeSet<&str> = text.lines().collect();
        // The pinned state space of 2 nodes, MaxView 3, no symmetry (tests/checker.rs).
        assert_eq!(written, 1_514);
        assert_eq!(lines.len(), 1_514);
        assert!(lines
            .iter()
            .any(|l| l.contains(r#""partitioned":[[1,2],[2,1]]"#)));
    }
}
