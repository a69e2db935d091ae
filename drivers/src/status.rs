//! What `membership status` shows of a stored registry (issue 21, point 5): a [`Status`] read
//! from one [`Snapshot`], rendered as a table ([`Status::table`]) or as JSON
//! ([`Status::json`]); and what `membership actors --node n3` shows, a [`NodeActors`]. Pure: no
//! store, no clock; the binary (`src/bin/membership/main.rs`) reads the snapshot.

use crate::store::Snapshot;
use membership_core::{NodeId, NodeStatus};
use serde::Serialize;

/// The registry as `membership status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The store's revision when the snapshot was read.
    pub revision: u64,
    /// The registry's node count (its node ids are `n1` to `n{node_count}`).
    pub node_count: u16,
    /// The most actors that may be placed at once.
    pub actors_max: u64,
    /// The configuration number (`counter/ViewNumber`: the members' set changes with it).
    pub configuration: u64,
    /// The primary in office and its term, if any.
    pub primary: Option<Primary>,
    /// The open heartbeat round.
    pub round: u64,
    /// Actors placed, on any node.
    pub actors_placed: u64,
    /// Actors waiting in the migration queue.
    pub queue_length: u64,
    /// The nodes shown: every node that is not Left, or holds a slot (a process claimed it),
    /// or hosts an actor; in id order.
    pub nodes: Vec<NodeRow>,
}

/// The primary in office.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Primary {
    /// Its node id.
    pub node: u16,
    /// Its fencing term.
    pub term: u64,
}

/// One node's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    /// The node id.
    pub node: u16,
    /// Its status (`Joining`, `Active`, `Leaving`, `Failed`, `Left`).
    pub status: String,
    /// The incarnation holding its slot (0: never claimed).
    pub incarnation: u64,
    /// Where that incarnation answers probes (`None`: never claimed).
    pub address: Option<String>,
    /// The actors placed on it.
    pub actors: u64,
    /// The actors queued to move off it.
    pub queued_from: u64,
    /// The configuration number its view is synced to.
    pub view_number: u64,
    /// The term it holds (0 unless it believes it is primary).
    pub term: u64,
    /// The round its latest heartbeat ran at (`None`: none).
    pub heartbeat_round: Option<u64>,
    /// Whether that is the open round (the registry's heartbeat flag).
    pub heartbeat_in_open_round: bool,
    /// The Active nodes that voted (in this round) to declare it failed.
    pub votes: Vec<u16>,
    /// The nodes it has a recorded partition with.
    pub partitioned_from: Vec<u16>,
}

fn ids(set: &membership_core::NodeSet) -> Vec<u16> {
    set.iter().map(|n| n.0).collect()
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Status {
    /// The status of the registry in `snapshot`.
    pub fn of(snapshot: &Snapshot) -> Status {
        let state = &snapshot.state;
        let primary = state
            .primary_and_term()
            .map(|(p, term)| Primary { node: p.0, term });
        let mut queued: std::collections::BTreeMap<NodeId, u64> = std::collections::BTreeMap::new();
        for (_, entry) in state.queue().iter() {
            *queued.entry(entry.from).or_default() += 1;
        }
        let nodes = state
            .node_ids()
            .zip(state.nodes())
            .filter(|(n, r)| {
                r.status != NodeStatus::Left || snapshot.slots.contains_key(n) || state.load(*n) > 0
            })
            .map(|(n, r)| {
                let slot = snapshot.slots.get(&n);
                NodeRow {
                    node: n.0,
                    status: r.status.to_string(),
                    incarnation: slot.map_or(0, |s| s.incarnation),
                    address: slot.map(|s| s.address.clone()),
                    actors: state.load(n),
                    queued_from: queued.get(&n).copied().unwrap_or(0),
                    view_number: r.view_number,
                    term: r.term,
                    heartbeat_round: snapshot.heartbeat_rounds.get(&n).copied(),
                    heartbeat_in_open_round: state.heartbeat_received(n),
                    votes: ids(&state.failure_votes(n)),
                    partitioned_from: ids(&r.partitioned_from),
                }
            })
            .collect();
        Status {
            revision: snapshot.revision,
            node_count: state.config().node_count(),
            actors_max: state.config().actors_max(),
            configuration: state.view_counter(),
            primary,
            round: snapshot.round,
            actors_placed: count(state.placements().len()),
            queue_length: count(state.queue().len()),
            nodes,
        }
    }

    /// The status as JSON (the fields of [`Status`]; node ids as numbers).
    pub fn json(&self) -> serde_json::Value {
        // Serializing these plain data types to JSON cannot fail; `Null` if it ever did.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The status as a table for people: a header of registry-wide lines, then one row per
    /// node, columns aligned.
    pub fn table(&self) -> String {
        let names = |list: &[u16]| -> String {
            if list.is_empty() {
                "-".to_string()
            } else {
                list.iter()
                    .map(|n| format!("n{n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let mut out = format!(
            "registry: {} node slots, at most {} actors, configuration {}, revision {}\n",
            self.node_count, self.actors_max, self.configuration, self.revision
        );
        match self.primary {
            Some(Primary { node, term }) => {
                out.push_str(&format!("primary: n{node}, term {term}\n"))
            }
            None => out.push_str("primary: none\n"),
        }
        out.push_str(&format!(
            "heartbeat round: {}\nactors: {} placed, {} queued to move\n\n",
            self.round, self.actors_placed, self.queue_length
        ));
        let header = [
            "node",
            "status",
            "incarnation",
            "address",
            "actors",
            "queued",
            "view",
            "term",
            "heartbeat",
            "votes",
            "partitioned",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for r in &self.nodes {
            let heartbeat = match r.heartbeat_round {
                None => "-".to_string(),
                Some(round) if r.heartbeat_in_open_round => format!("{round} (open)"),
                Some(round) => round.to_string(),
            };
            rows.push(vec![
                format!("n{}", r.node),
                r.status.clone(),
                r.incarnation.to_string(),
                r.address.clone().unwrap_or_else(|| "-".to_string()),
                r.actors.to_string(),
                r.queued_from.to_string(),
                format!("#{}", r.view_number),
                r.term.to_string(),
                heartbeat,
                names(&r.votes),
                names(&r.partitioned_from),
            ]);
        }
        out.push_str(&aligned(&rows));
        out
    }
}

/// `rows` (the first the header) as lines of columns aligned on the widest cell.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    debug_assert!(rows.iter().all(|r| r.len() == columns));
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One node's actors as `membership actors --node n3` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeActors {
    /// The store's revision when the snapshot was read.
    pub revision: u64,
    /// The node id.
    pub node: u16,
    /// Its status.
    pub status: String,
    /// The actors placed on it, in id order.
    pub actors: Vec<ActorRow>,
}

/// One actor placed on the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActorRow {
    /// The actor id.
    pub actor: u64,
    /// The epoch of its placement (its fencing token).
    pub epoch: u64,
    /// Why it is queued to move off the node (`NodeFailed`, `NodeLeaving`, `LoadBalancing`), if
    /// it is.
    pub queued: Option<String>,
}

impl NodeActors {
    /// The actors of `node` in `snapshot`; an error naming the node when the registry has no
    /// such node. O(actors on the node x log actors).
    pub fn of(snapshot: &Snapshot, node: NodeId) -> Result<NodeActors, String> {
        let state = &snapshot.state;
        let record = state.node(node).ok_or_else(|| {
            format!(
                "{node} is not a node of this registry (n1 to n{})",
                state.config().node_count()
            )
        })?;
        let actors: Vec<ActorRow> = state
            .hosted(node)
            .into_iter()
            .flatten()
            .filter_map(|&a| {
                let placement = state.placement(a)?;
                Some(ActorRow {
                    actor: a.0,
                    epoch: placement.epoch,
                    queued: state.queue().get(a).map(|e| e.reason.to_string()),
                })
            })
            .collect();
        debug_assert_eq!(count(actors.len()), state.load(node));
        Ok(NodeActors {
            revision: snapshot.revision,
            node: node.0,
            status: record.status.to_string(),
            actors,
        })
    }

    /// As JSON (the fields of [`NodeActors`]).
    pub fn json(&self) -> serde_json::Value {
        // Serializing these plain data types to JSON cannot fail; `Null` if it ever did.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// As a table for people: the node's line, then one row per actor.
    pub fn table(&self) -> String {
        let queued = self.actors.iter().filter(|a| a.queued.is_some()).count();
        let mut out = format!(
            "n{}: {}, {} actors, {} queued to move, revision {}\n\n",
            self.node,
            self.status,
            self.actors.len(),
            queued,
            self.revision
        );
        let mut rows: Vec<Vec<String>> = vec![["actor", "epoch", "queued"]
            .iter()
            .map(|h| h.to_string())
            .collect()];
        for a in &self.actors {
            rows.push(vec![
                format!("a{}", a.actor),
                a.epoch.to_string(),
                a.queued.clone().unwrap_or_else(|| "-".to_string()),
            ]);
        }
        out.push_str(&aligned(&rows));
        out
    }
}
