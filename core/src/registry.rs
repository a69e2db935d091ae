//! The persisted registry format: a [`State`] as its fields ([`RegistryFields`], what a state
//! serializes to), and decoding, which checks the fields' structure and then validates them
//! against the protocol's invariants ([`RegistryError`] names what is wrong). Kept apart from
//! `state` so that the state does not depend on the invariants that read it.

use crate::actor::{ActorId, MigrationEntry, Placement};
use crate::config::{Config, ConfigError};
use crate::invariants::{self, Violation};
use crate::node::{NodeId, NodeSet};
use crate::rules::Rules;
use crate::state::{Counters, NodeRecord, State};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use thiserror::Error;

/// The version of the persisted registry format ([`RegistryFields`] and the per-key values of
/// [`crate::Delta`]). A stored value of another version is refused with
/// [`RegistryError::Version`].
pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// The persisted registry, field by field, unvalidated: what [`State`] serializes to. Convert
/// with `State::try_from(fields)`, which validates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFields {
    /// [`REGISTRY_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// `|Nodes|`.
    pub node_count: u16,
    /// The most actors that may be placed at once.
    pub actors_max: u64,
    /// The node records, `n1` first.
    pub nodes: Vec<NodeRecord>,
    /// The nodes with `heartbeat_received` set.
    pub heartbeats: NodeSet,
    /// The highest term ever granted.
    pub term_counter: u64,
    /// The highest view number ever issued.
    pub view_counter: u64,
    /// The highest actor epoch ever issued.
    pub epoch_counter: u64,
    /// Every placed actor.
    pub placements: BTreeMap<ActorId, Placement>,
    /// The migration queue.
    pub queue: BTreeMap<ActorId, MigrationEntry>,
}

/// A stored registry that cannot be a state of the fixed protocol, naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The value was written in another format version.
    #[error(
        "registry format version {found} is not supported (this build reads version {expected})"
    )]
    Version {
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The node count or actor limit is invalid.
    #[error("registry configuration: {0}")]
    Config(#[from] ConfigError),
    /// The node table's length differs from the node count.
    #[error("registry has {records} node records but node_count is {node_count}")]
    NodeTable {
        /// Records found.
        records: usize,
        /// The node count.
        node_count: u16,
    },
    /// A node set names a node outside the cluster.
    #[error("{node}'s {field} names a node outside n1..=n{node_count}")]
    UnknownMember {
        /// The record holding the set.
        node: NodeId,
        /// Which set (`view`, `partitioned_from` or `detected`).
        field: &'static str,
        /// The node count.
        node_count: u16,
    },
    /// A key or a set names a node that is not in the cluster.
    #[error("{field} names {node}, which is not a node of this cluster")]
    UnknownNode {
        /// The node named.
        node: NodeId,
        /// Where it was named.
        field: &'static str,
    },
    /// A node holds a term or view number above the registry counter that issues them.
    #[error("{node}'s {field} {value} is above the registry's {field} counter {counter}")]
    AboveCounter {
        /// The node.
        node: NodeId,
        /// `term` or `view_number`.
        field: &'static str,
        /// The value held.
        value: u64,
        /// The counter.
        counter: u64,
    },
    /// A node's primary belief and its term disagree (a term is held exactly while primary).
    #[error("{node} has believes_primary {believes_primary} with term {term}: a term is held exactly while primary")]
    PrimaryTerm {
        /// The node.
        node: NodeId,
        /// Its belief.
        believes_primary: bool,
        /// Its term.
        term: u64,
    },
    /// An actor's epoch is 0 or above the epoch counter.
    #[error("actor {actor}'s epoch {epoch} is outside 1..={epoch_counter} (the epoch counter)")]
    Epoch {
        /// The actor.
        actor: ActorId,
        /// Its epoch.
        epoch: u64,
        /// The epoch counter.
        epoch_counter: u64,
    },
    /// An actor is placed on a node outside the configuration.
    #[error("actor {actor} is placed on {node}, which is not a node of this cluster")]
    PlacementNode {
        /// The actor.
        actor: ActorId,
        /// The unknown node.
        node: NodeId,
    },
    /// A queue entry does not match the actor's placement.
    #[error("migration entry of {actor} says it leaves {from}, but it is not placed there")]
    QueueEntry {
        /// The actor.
        actor: ActorId,
        /// The entry's source node.
        from: NodeId,
    },
    /// More actors than the configuration allows.
    #[error("{actors} actors are placed but actors_max is {actors_max}")]
    TooManyActors {
        /// Actors found.
        actors: usize,
        /// The limit.
        actors_max: u64,
    },
    /// The partition relation is not symmetric or not irreflexive.
    #[error("partition between {a} and {b} is not recorded on both sides (or {a} = {b})")]
    Partition {
        /// One side.
        a: NodeId,
        /// The other side.
        b: NodeId,
    },
    /// A state invariant of the fixed protocol does not hold.
    #[error("registry violates an invariant: {0}")]
    Invariant(Violation),
}

impl TryFrom<RegistryFields> for State {
    type Error = RegistryError;
    fn try_from(f: RegistryFields) -> Result<Self, RegistryError> {
        if f.format_version != REGISTRY_FORMAT_VERSION {
            return Err(RegistryError::Version {
                found: f.format_version,
                expected: REGISTRY_FORMAT_VERSION,
            });
        }
        let config = Config::fixed(f.node_count)?.with_actors_max(f.actors_max)?;
        let state = assemble(config, f)?;
        state.validate()?;
        Ok(state)
    }
}

impl From<&State> for RegistryFields {
    fn from(s: &State) -> Self {
        RegistryFields {
            format_version: REGISTRY_FORMAT_VERSION,
            node_count: s.config().node_count(),
            actors_max: s.config().actors_max(),
            nodes: s.nodes().to_vec(),
            heartbeats: s.heartbeats().clone(),
            term_counter: s.term_counter(),
            view_counter: s.view_counter(),
            epoch_counter: s.epoch_counter(),
            placements: s.placements().iter().map(|(&a, &p)| (a, p)).collect(),
            queue: s.queue().iter().map(|(&a, &e)| (a, e)).collect(),
        }
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.config().is_production() {
            return Err(serde::ser::Error::custom(
                "only a state of the production protocol (fixed, unbounded, no mutant) can be \
                 persisted",
            ));
        }
        RegistryFields::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = RegistryFields::deserialize(deserializer)?;
        State::try_from(fields).map_err(serde::de::Error::custom)
    }
}

/// Builds a state from fields under `config`, checking the structure (table sizes, node ids,
/// symmetric partitions, placements and queue entries that agree) but not the protocol's
/// invariants: see [`State::validate`].
fn assemble(config: Config, f: RegistryFields) -> Result<State, RegistryError> {
    let node_count = config.node_count();
    if f.nodes.len() != usize::from(node_count) {
        return Err(RegistryError::NodeTable {
            records: f.nodes.len(),
            node_count,
        });
    }
    let all = NodeSet::first(node_count);
    if let Some(node) = f.heartbeats.difference(&all).iter().next() {
        return Err(RegistryError::UnknownNode {
            node,
            field: "heartbeats",
        });
    }
    for (i, record) in f.nodes.iter().enumerate() {
        let node = NodeId::from_index(i);
        for (field, set) in [
            ("view", &record.view),
            ("partitioned_from", &record.partitioned_from),
            ("detected", &record.detected),
        ] {
            if !set.is_subset(&all) {
                return Err(RegistryError::UnknownMember {
                    node,
                    field,
                    node_count,
                });
            }
        }
        for other in record.partitioned_from.iter() {
            let symmetric = other
                .index()
                .and_then(|j| f.nodes.get(j))
                .is_some_and(|r| r.partitioned_from.contains(node));
            if other == node || !symmetric {
                return Err(RegistryError::Partition { a: node, b: other });
            }
        }
    }
    if u64::try_from(f.placements.len()).unwrap_or(u64::MAX) > config.actors_max() {
        return Err(RegistryError::TooManyActors {
            actors: f.placements.len(),
            actors_max: config.actors_max(),
        });
    }
    for (&actor, p) in &f.placements {
        if !all.contains(p.node) {
            return Err(RegistryError::PlacementNode {
                actor,
                node: p.node,
            });
        }
    }
    for (&actor, entry) in &f.queue {
        if f.placements.get(&actor).map(|p| p.node) != Some(entry.from) {
            return Err(RegistryError::QueueEntry {
                actor,
                from: entry.from,
            });
        }
    }
    let counters = Counters {
        term: f.term_counter,
        view: f.view_counter,
        epoch: f.epoch_counter,
    };
    let state = State::from_tables(
        config,
        f.nodes,
        f.heartbeats,
        counters,
        f.placements,
        f.queue,
    );
    assert_eq!(state.nodes().len(), usize::from(node_count));
    Ok(state)
}

impl State {
    /// Checks that this state can be a state of its protocol: every state invariant of
    /// [`crate::invariants`] holds, and (registry counters) every term and view number is at
    /// most the counter that issued it, a term is held exactly while primary, and every epoch is
    /// in `1..=epoch_counter`. Decoding runs it; a store runs it on what it assembled.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let rules = Rules::of(self.config());
        for (node, r) in self.node_ids().zip(self.nodes()) {
            if rules.registry_counters() {
                for (field, value, counter) in [
                    ("term", r.term, self.term_counter()),
                    ("view_number", r.view_number, self.view_counter()),
                ] {
                    if value > counter {
                        return Err(RegistryError::AboveCounter {
                            node,
                            field,
                            value,
                            counter,
                        });
                    }
                }
                if r.believes_primary != (r.term > 0) {
                    return Err(RegistryError::PrimaryTerm {
                        node,
                        believes_primary: r.believes_primary,
                        term: r.term,
                    });
                }
            }
        }
        let epoch_counter = self.epoch_counter();
        for (&actor, p) in self.placements() {
            if p.epoch == 0 || p.epoch > epoch_counter {
                return Err(RegistryError::Epoch {
                    actor,
                    epoch: p.epoch,
                    epoch_counter,
                });
            }
        }
        invariants::check_state(self).map_err(RegistryError::Invariant)?;
        Ok(())
    }

    /// Builds a state of any configuration from its fields, checking their structure (table
    /// sizes, node ids, symmetric partitions, placements and queue entries that agree) but not
    /// the protocol's invariants (feature `checking`): the checker stores states compactly and
    /// rebuilds them with it. The format version is not checked.
    #[cfg(feature = "checking")]
    pub fn from_fields_unvalidated(
        config: Config,
        fields: RegistryFields,
    ) -> Result<State, RegistryError> {
        if fields.node_count != config.node_count() {
            return Err(RegistryError::NodeTable {
                records: fields.nodes.len(),
                node_count: config.node_count(),
            });
        }
        assemble(config, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> State {
        State::initial(Config::fixed(3).unwrap())
    }

    #[test]
    fn decoding_refuses_inconsistent_states() {
        let mut fields = RegistryFields::from(&three());
        fields.nodes.pop();
        assert_eq!(
            State::try_from(fields).unwrap_err(),
            RegistryError::NodeTable {
                records: 2,
                node_count: 3
            }
        );
        let mut fields = RegistryFields::from(&three());
        fields.nodes[0].view = NodeSet::single(NodeId(4));
        assert_eq!(
            State::try_from(fields).unwrap_err().to_string(),
            "n1's view names a node outside n1..=n3"
        );
        let mut fields = RegistryFields::from(&three());
        fields.nodes[0].partitioned_from = NodeSet::single(NodeId(2));
        assert_eq!(
            State::try_from(fields).unwrap_err(),
            RegistryError::Partition {
                a: NodeId(1),
                b: NodeId(2)
            }
        );
        let mut fields = RegistryFields::from(&three());
        fields.format_version = 7;
        assert_eq!(
            State::try_from(fields).unwrap_err().to_string(),
            "registry format version 7 is not supported (this build reads version 1)"
        );
    }
}
