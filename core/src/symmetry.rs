//! Symmetry reduction over node ids: a canonical representative of a state's orbit under node
//! renaming. Sound only for symmetric protocols: the fixed protocol and buggy mode are symmetric;
//! the reference model is not (HealPartition breaks ties by node id).

use crate::state::State;

/// Up to this many nodes the representative is exact (the least of all `n!` renamings); above
/// it, states are left as they are (no reduction, still sound).
pub const SYMMETRY_NODES_MAX: usize = 6;

/// The canonical representative of `state`'s symmetry class: the least state, in `Ord` order,
/// among all renamings of its nodes. Two states that differ only by node names get the same
/// representative.
pub fn canonical(state: &State) -> State {
    let n = state.nodes().len();
    if n <= 1 || n > SYMMETRY_NODES_MAX {
        return state.clone();
    }
    // Compare permuted node tables first (cheap); only on a tie compare the actor tables. The
    // order is (node table, actor table), a total order on the states of one orbit.
    let mut perm: Vec<usize> = (0..n).collect();
    let mut best_perm = perm.clone();
    let mut best_nodes = (state.nodes().to_vec(), state.heartbeats().clone());
    let mut best_actors = None;
    // Heap's algorithm, iterative: visits all n! permutations; bounded by n! <= 720.
    let mut c = vec![0usize; n];
    let mut i = 0;
    let mut visited = 1usize;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                perm.swap(0, i);
            } else {
                perm.swap(c[i], i);
            }
            let nodes = state.permuted_nodes(&perm);
            let better = match nodes.cmp(&best_nodes) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => {
                    let best = best_actors.get_or_insert_with(|| state.permuted_actors(&best_perm));
                    let actors = state.permuted_actors(&perm);
                    if actors < *best {
                        *best = actors;
                        true
                    } else {
                        false
                    }
                }
            };
            if better {
                if nodes != best_nodes {
                    best_actors = None;
                }
                best_nodes = nodes;
                best_perm.clone_from(&perm);
            }
            visited += 1;
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    debug_assert_eq!(
        visited,
        (1..=n).product::<usize>(),
        "every renaming was tried"
    );
    let identity = best_perm.iter().enumerate().all(|(i, &j)| i == j);
    let best = if identity {
        state.clone()
    } else {
        state.permuted(&best_perm)
    };
    debug_assert_eq!(best.nodes(), &best_nodes.0[..]);
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{step, Config, Event, NodeId};

    fn run(events: &[Event]) -> State {
        let mut s = State::initial(Config::fixed(3).unwrap());
        for e in events {
            s = step(&s, e).unwrap().0;
        }
        s
    }

    #[test]
    fn renamed_states_share_a_representative() {
        let a = run(&[
            Event::NodeJoin { node: NodeId(1) },
            Event::NodeJoin { node: NodeId(3) },
        ]);
        let b = run(&[
            Event::NodeJoin { node: NodeId(2) },
            Event::NodeJoin { node: NodeId(1) },
        ]);
        assert_ne!(a, b);
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&canonical(&a)), canonical(&a));
    }

    #[test]
    fn different_shapes_keep_different_representatives() {
        let a = run(&[Event::NodeJoin { node: NodeId(1) }]);
        let b = run(&[
            Event::NodeJoin { node: NodeId(1) },
            Event::NodeJoin { node: NodeId(2) },
        ]);
        assert_ne!(canonical(&a), canonical(&b));
    }
}
