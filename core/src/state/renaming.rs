//! A state's nodes renamed and its numbers renumbered by rank (feature `checking`): what symmetry
//! reduction and the checker's finite graph of the unbounded protocol are built from.

use super::{NodeRecord, State};
use crate::actor::{ActorId, MigrationEntry, Placement};
use crate::node::{NodeId, NodeSet};
use imbl::OrdMap;

impl State {
    /// The node table, the heartbeat set and the actor tables renamed by `perm` (node at index
    /// `i` becomes index `perm[i]`): symmetry reduction.
    pub(crate) fn permuted_nodes(&self, perm: &[usize]) -> (Vec<NodeRecord>, NodeSet) {
        debug_assert_eq!(perm.len(), self.nodes.len());
        // The record that lands at each index: built once, never cloned and overwritten.
        // Inline for every cluster symmetry reduction renames (`SYMMETRY_NODES_MAX`, 6).
        const INVERSE_INLINE: usize = 8;
        let mut inverse: smallvec::SmallVec<[usize; INVERSE_INLINE]> =
            smallvec::smallvec![0; perm.len()];
        for (i, &j) in perm.iter().enumerate() {
            if let Some(slot) = inverse.get_mut(j) {
                *slot = i;
            }
        }
        let nodes: Vec<NodeRecord> = inverse
            .iter()
            .filter_map(|&i| self.nodes.get(i))
            .map(|record| NodeRecord {
                status: record.status,
                view: record.view.permuted(perm),
                view_number: record.view_number,
                believes_primary: record.believes_primary,
                term: record.term,
                partitioned_from: record.partitioned_from.permuted(perm),
                detected: record.detected.permuted(perm),
            })
            .collect();
        debug_assert_eq!(nodes.len(), self.nodes.len());
        (nodes, self.heartbeats.permuted(perm))
    }

    /// The actor tables under a node permutation, as (actor, node, epoch, queue entry) in actor
    /// order: what symmetry reduction compares when two node tables tie.
    pub(crate) fn permuted_actors(
        &self,
        perm: &[usize],
    ) -> Vec<(ActorId, NodeId, u64, Option<MigrationEntry>)> {
        let map = |n: NodeId| n.permuted(perm);
        self.placements
            .iter()
            .map(|(&a, p)| {
                let entry = self.queue.get(a).map(|e| MigrationEntry {
                    from: map(e.from),
                    ..e
                });
                (a, map(p.node), p.epoch, entry)
            })
            .collect()
    }

    /// A copy of this state with its nodes renamed by `perm`.
    pub(crate) fn permuted(&self, perm: &[usize]) -> State {
        let map_node = |n: NodeId| n.permuted(perm);
        let placements: OrdMap<ActorId, Placement> = self
            .placements
            .iter()
            .map(|(&a, p)| {
                (
                    a,
                    Placement {
                        node: map_node(p.node),
                        ..*p
                    },
                )
            })
            .collect();
        let hosted = self
            .hosted
            .iter()
            .map(|(&n, set)| (map_node(n), set.clone()))
            .collect();
        let queue = self.queue.renamed(map_node);
        let (nodes, heartbeats) = self.permuted_nodes(perm);
        let result = State {
            active: self.active.permuted(perm),
            nodes: std::sync::Arc::from(nodes),
            heartbeats,
            placements,
            hosted,
            queue,
            ..self.clone()
        };
        debug_assert_eq!(result.active().len(), self.active().len());
        debug_assert_eq!(result.placements.len(), self.placements.len());
        result
    }

    /// This state with its view numbers, terms and epochs renumbered by rank (feature
    /// `checking`): within each of the three kinds, the values the state holds (every node's
    /// view number, every node's term, every placement's epoch) together with 0 (and the term
    /// counter) are replaced by their rank among those values, so 0 stays 0 and order and
    /// equality are kept; the term and view counters keep their ranks (the largest), and the
    /// epoch counter becomes the largest rank held. The fixed protocol only compares
    /// these values for order and equality and draws new ones above the counter, so a state and
    /// its renumbering have the same future up to renumbering (the checker's finite graph of
    /// the unbounded protocol; `core/tests/renumber.rs` tests it). Idempotent.
    pub(crate) fn renumbered(&self) -> State {
        self.clone().into_renumbered()
    }

    /// [`State::renumbered`], consuming the state: a node table held by this state alone is
    /// renumbered in place, not copied.
    pub(crate) fn into_renumbered(self) -> State {
        // Inline up to this many values (the checker's clusters and actor counts are small):
        // renumbering allocates nothing then.
        const TABLE_INLINE: usize = 16;
        fn table(values: impl Iterator<Item = u64>) -> smallvec::SmallVec<[u64; TABLE_INLINE]> {
            let mut table: smallvec::SmallVec<[u64; TABLE_INLINE]> =
                std::iter::once(0).chain(values).collect();
            table.sort_unstable();
            table.dedup();
            table
        }
        fn identity(table: &[u64]) -> bool {
            table
                .iter()
                .enumerate()
                .all(|(i, &v)| u64::try_from(i).is_ok_and(|i| i == v))
        }
        fn rank(table: &[u64], value: u64) -> u64 {
            let i = table.binary_search(&value).unwrap_or(0);
            u64::try_from(i).unwrap_or(u64::MAX)
        }
        // The epoch counter is only ever used to draw a value above every value held (and
        // TypeOK bounds values by it), so it becomes the largest rank held: a counter above
        // every held value and one equal to the largest behave alike. The term counter is also
        // compared for equality with held terms (the primary in office holds it), and so is the
        // view counter (registry v2: it is the current configuration's number, which a member
        // has adopted or not), so each keeps its own rank.
        let views = table(
            self.nodes
                .iter()
                .map(|r| r.view_number)
                .chain([self.view_counter]),
        );
        let terms = table(self.nodes.iter().map(|r| r.term).chain([self.term_counter]));
        let epochs = table(self.placements.values().map(|p| p.epoch));
        let top = |table: &[u64]| u64::try_from(table.len() - 1).unwrap_or(u64::MAX);
        let node_count = self.nodes.len();
        let view_counter_before = self.view_counter;
        let term_counter = self.term_counter;
        let mut next = self;
        if !identity(&views) || !identity(&terms) {
            for r in std::sync::Arc::make_mut(&mut next.nodes).iter_mut() {
                r.view_number = rank(&views, r.view_number);
                r.term = rank(&terms, r.term);
            }
            next.term_counter = rank(&terms, term_counter);
            next.view_counter = rank(&views, view_counter_before);
        }
        next.epoch_counter = top(&epochs);
        if !identity(&epochs) {
            next.placements = next
                .placements
                .iter()
                .map(|(&a, p)| {
                    (
                        a,
                        Placement {
                            epoch: rank(&epochs, p.epoch),
                            ..*p
                        },
                    )
                })
                .collect();
        }
        debug_assert_eq!(next.nodes.len(), node_count);
        debug_assert!(next.view_counter <= view_counter_before);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::node::NodeStatus;

    #[test]
    fn permutation_moves_records_and_renames_members() {
        let mut s = State::initial(Config::fixed(3).unwrap());
        s.update_node(NodeId(1), |r| r.status = NodeStatus::Active);
        std::sync::Arc::make_mut(&mut s.nodes)[0].view = NodeSet::first(2);
        std::sync::Arc::make_mut(&mut s.nodes)[0].partitioned_from = NodeSet::single(NodeId(3));
        std::sync::Arc::make_mut(&mut s.nodes)[2].partitioned_from = NodeSet::single(NodeId(1));
        s.heartbeats = NodeSet::single(NodeId(1));
        // n1 -> n3, n2 -> n1, n3 -> n2
        let p = s.permuted(&[2, 0, 1]);
        assert_eq!(p.nodes[2].status, NodeStatus::Active);
        assert_eq!(p.active(), NodeSet::single(NodeId(3)));
        assert_eq!(
            p.nodes[2].view,
            [NodeId(3), NodeId(1)].into_iter().collect()
        );
        assert_eq!(p.nodes[2].partitioned_from, NodeSet::single(NodeId(2)));
        assert_eq!(p.nodes[1].partitioned_from, NodeSet::single(NodeId(3)));
        assert_eq!(p.heartbeats, NodeSet::single(NodeId(3)));
        assert_eq!(p.permuted(&[1, 2, 0]), s);
    }
}
