//! The stateright model: states are `membership_core::State`, actions are
//! `membership_core::Event`, `next_state` is `membership_core::step`, and every property calls a
//! predicate of `membership_core::invariants`. Nothing of the protocol is written here.

use membership_core::checking::{canonical, into_renumbered, renumbering_sound};
use membership_core::{step, ActorId, Config, Event, State, StateInvariant, TransitionInvariant};
use stateright::{Model, Property};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The term parameter of MigrateActor and RebalanceActors in a renumbered model: "the current
/// term" (the state's `term_counter`), substituted when the event is applied
/// ([`MembershipModel::concrete`]).
pub const CURRENT_TERM: u64 = u64::MAX;

/// The reducer as a stateright model.
#[derive(Clone, Debug)]
pub struct MembershipModel {
    config: Config,
    symmetry: bool,
    /// States are renumbered by rank (`membership_core::checking::renumbered`): the finite
    /// graph of the unbounded fixed protocol. Chosen when the configuration has no bound and
    /// renumbering is sound for it.
    renumber: bool,
    actors: Vec<ActorId>,
    events: Vec<Event>,
    /// Properties already violated in this run. stateright keeps evaluating an `always`
    /// property after its first counterexample and keeps the last one it sees; answering
    /// "holds" after the first violation keeps the first, which breadth-first search finds at
    /// the smallest depth.
    violated: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl MembershipModel {
    /// A model of `config` with actors `a1..=a{actors}`; with `symmetry`, every successor is
    /// replaced by the canonical representative of its class under node renaming
    /// (`membership_core::checking::canonical`). Without bounds (the fixed protocol), every
    /// successor is renumbered by rank and the actor actions carry [`CURRENT_TERM`]; with a bound
    /// they carry every term `1..=MaxView`.
    pub fn new(config: Config, symmetry: bool, actors: u16) -> MembershipModel {
        let actors: Vec<ActorId> = (1..=u64::from(actors)).map(ActorId).collect();
        let renumber = renumbering_sound(&config);
        let mut events = Event::all(config.node_count());
        if renumber {
            events.extend(
                Event::actor_events(&actors, 1)
                    .into_iter()
                    .map(|e| with_term(e, CURRENT_TERM)),
            );
        } else {
            events.extend(Event::actor_events(&actors, config.max_view().unwrap_or(0)));
        }
        MembershipModel {
            config,
            symmetry,
            renumber,
            actors,
            events,
            violated: Arc::default(),
        }
    }

    /// The actors of the model.
    pub fn actors(&self) -> &[ActorId] {
        &self.actors
    }

    /// `holds` for property `name`, except that only the first violation is reported.
    fn first_violation(&self, name: &'static str, holds: bool) -> bool {
        if holds {
            return true;
        }
        let mut violated = self
            .violated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = violated.insert(name);
        !first
    }

    /// The configuration checked.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every action instance (the spec's `Next` as a list).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether states are renumbered by rank (no bound: the unbounded fixed protocol).
    pub fn renumbers(&self) -> bool {
        self.renumber
    }

    /// Whether states are replaced by their symmetry class's representative.
    pub fn symmetric(&self) -> bool {
        self.symmetry
    }

    /// The representative the model stores for `state` (renumbered, then the symmetry class's
    /// canonical member, as configured).
    pub fn representative(&self, state: State) -> State {
        let state = if self.renumber {
            into_renumbered(state)
        } else {
            state
        };
        if self.symmetry {
            canonical(&state)
        } else {
            state
        }
    }

    /// `event` as applied in `state`: [`CURRENT_TERM`] becomes the state's `term_counter`.
    pub fn concrete(&self, state: &State, event: Event) -> Event {
        match event {
            Event::MigrateActor { term, .. } | Event::RebalanceActors { term }
                if term == CURRENT_TERM =>
            {
                with_term(event, state.term_counter())
            }
            other => other,
        }
    }

    /// The first enabled step from `state` that violates the transition invariant `invariant`.
    pub fn violating_step(&self, state: &State, invariant: TransitionInvariant) -> Option<Event> {
        self.events
            .iter()
            .map(|&e| self.concrete(state, e))
            .find(|e| step(state, e).is_ok_and(|(next, _)| invariant.check(state, &next).is_err()))
    }

    /// Whether no enabled step from `state` violates `invariant` (the action property
    /// `[][P]_vars` checked on the state's outgoing transitions). The successors are computed
    /// once per state: one bit per transition invariant is cached for the other transition
    /// properties, and the successors themselves for `next_state`, which stateright calls for
    /// the same state right after its properties, on the same thread.
    fn transition_holds(&self, state: &State, invariant: TransitionInvariant) -> bool {
        let bit = |inv: TransitionInvariant| {
            TransitionInvariant::ALL
                .iter()
                .position(|&t| t == inv)
                .map_or(0u8, |i| 1u8 << i)
        };
        let cached = EXPANSION.with(|cache| {
            cache
                .borrow()
                .as_ref()
                .filter(|x| x.state == *state)
                .map(|x| x.violated)
        });
        let mask = match cached {
            Some(mask) => mask,
            None => {
                let mut violated = 0u8;
                let mut successors = Vec::with_capacity(self.events.len());
                for &e in &self.events {
                    let next = step(state, &self.concrete(state, e))
                        .ok()
                        .map(|(next, _)| next);
                    if let Some(next) = &next {
                        for inv in TransitionInvariant::ALL {
                            if inv.check(state, next).is_err() {
                                violated |= bit(inv);
                            }
                        }
                    }
                    successors.push(next);
                }
                EXPANSION.with(|cache| {
                    *cache.borrow_mut() = Some(Expansion {
                        state: state.clone(),
                        successors,
                        violated,
                    })
                });
                violated
            }
        };
        mask & bit(invariant) == 0
    }

    /// The successor by `event`, taken from the expansion cache when it holds `state`.
    fn successor(&self, state: &State, event: Event) -> Option<State> {
        let index = self.events.iter().position(|e| *e == event);
        let cached = EXPANSION.with(|cache| {
            let mut cache = cache.borrow_mut();
            let x = cache.as_mut().filter(|x| x.state == *state)?;
            index
                .and_then(|i| x.successors.get_mut(i))
                .map(Option::take)
        });
        match cached {
            Some(next) => next,
            None => step(state, &self.concrete(state, event))
                .ok()
                .map(|(next, _)| next),
        }
    }
}

/// `event` with term parameter `term` (MigrateActor, RebalanceActors; others unchanged).
fn with_term(event: Event, term: u64) -> Event {
    match event {
        Event::MigrateActor { actor, .. } => Event::MigrateActor { actor, term },
        Event::RebalanceActors { .. } => Event::RebalanceActors { term },
        other => other,
    }
}

/// The successors of the state whose properties were checked last on this thread.
struct Expansion {
    state: State,
    successors: Vec<Option<State>>,
    violated: u8,
}

thread_local! {
    static EXPANSION: RefCell<Option<Expansion>> = const { RefCell::new(None) };
}

/// A stateright property per invariant of `membership_core::invariants`, in spec order.
macro_rules! state_property {
    ($inv:expr) => {
        Property::always($inv.name(), |m: &MembershipModel, s: &State| {
            m.first_violation($inv.name(), $inv.check(s).is_ok())
        })
    };
}

macro_rules! transition_property {
    ($inv:expr) => {
        Property::always($inv.name(), |m: &MembershipModel, s: &State| {
            m.first_violation($inv.name(), m.transition_holds(s, $inv))
        })
    };
}

impl Model for MembershipModel {
    type State = State;
    type Action = Event;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(self.config)]
    }

    fn actions(&self, _state: &State, actions: &mut Vec<Event>) {
        actions.extend_from_slice(&self.events);
    }

    fn next_state(&self, state: &State, event: Event) -> Option<State> {
        let next = self.successor(state, event)?;
        Some(self.representative(next))
    }

    fn format_action(&self, event: &Event) -> String {
        match event {
            Event::MigrateActor { actor, term } if *term == CURRENT_TERM => {
                format!("MigrateActor({actor}, current)")
            }
            Event::RebalanceActors { term } if *term == CURRENT_TERM => {
                "RebalanceActors(current)".to_string()
            }
            other => other.to_string(),
        }
    }

    fn format_step(&self, state: &State, event: Event) -> Option<String> {
        let (_, effects) = step(state, &self.concrete(state, event)).ok()?;
        Some(
            effects
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let properties = vec![
            state_property!(StateInvariant::TypeOK),
            state_property!(StateInvariant::MembershipConsistency),
            state_property!(StateInvariant::JoinAtomicity),
            state_property!(StateInvariant::LeaveDetectionWeak),
            state_property!(StateInvariant::NoSplitBrain),
            state_property!(StateInvariant::AtMostOnePrimary),
            state_property!(StateInvariant::SingleActivation),
            state_property!(StateInvariant::MigrationQueueBounded),
            transition_property!(TransitionInvariant::FencingTermMonotonic),
            transition_property!(TransitionInvariant::MinorityCannotElect),
            transition_property!(TransitionInvariant::FailureRequiresDetection),
            transition_property!(TransitionInvariant::FailureNeedsQuorum),
            transition_property!(TransitionInvariant::EpochMonotonic),
            transition_property!(TransitionInvariant::MigrationByPrimary),
            transition_property!(TransitionInvariant::OwnHeartbeat),
            transition_property!(TransitionInvariant::VotesExpireWithRound),
        ];
        debug_assert_eq!(
            properties.len(),
            StateInvariant::ALL.len() + TransitionInvariant::ALL.len()
        );
        properties
    }
}
