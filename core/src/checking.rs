//! The checker's switches and helpers (feature `checking`): the reference and buggy modes and the
//! mutant catalogues (defined in the leaf module `switches`, re-exported here), renumbering by
//! rank, and symmetry reduction. None of it is part of the production protocol, and none of it is
//! ever persisted: a production build of `membership-core` cannot construct a mutant.

pub use crate::switches::{DriverMutant, Mode, Mutant};
pub use crate::symmetry::{canonical, SYMMETRY_NODES_MAX};

use crate::config::Config;
use crate::rules::Rules;
use crate::state::State;

/// `state` with its view numbers, terms and epochs renumbered by rank: the checker's finite
/// representative of an unbounded state. Within each kind, the values the state holds (every
/// node's view number, every node's term, every placement's epoch, and the term counter) are
/// replaced by their rank among them, 0 staying 0; the view and epoch counters become the
/// largest rank held. The fixed protocol only compares these values for order and equality and
/// draws new ones above the counters, so this is a bisimulation (`core/tests/renumber.rs`).
/// Idempotent.
pub fn renumbered(state: &State) -> State {
    state.renumbered()
}

/// [`renumbered`], consuming `state`: a node table it holds alone is renumbered in place.
pub fn into_renumbered(state: State) -> State {
    state.into_renumbered()
}

/// Whether renumbering by rank is a bisimulation for `config`: the protocol draws view numbers,
/// terms and epochs from the registry counters and only compares them for order and equality
/// (the fixed protocol and all its mutants, without checking bounds). The reference and buggy
/// modes number per node (`h + 1`, the constant 1), and a bound compares values with a constant.
pub fn renumbering_sound(config: &Config) -> bool {
    config.mode() == Mode::Fixed && config.max_view().is_none() && config.max_epoch().is_none()
}

/// Whether MigrateActor and RebalanceActors are fenced by the term: enabled only with the
/// registry's current term (`term_counter`). The checker's renumbered fairness relies on it (an
/// instance `MigrateActor(a, t)` can then be enabled only while `t` is current).
pub fn fenced_by_term(config: &Config) -> bool {
    Rules::of(config).migrate_checks_term
}
