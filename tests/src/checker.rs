//! The independent checker: it replays the store's committed log through `core::step` from the
//! initial state, checks every state and transition invariant of `core` on each replayed step,
//! that no proposal id commits twice, and that the replayed registry equals what the store holds
//! after each commit. It shares nothing with the store but the reducer and the invariant
//! predicates: a lost update, a double application, a footprint error or a partial write shows
//! up as a difference.
//!
//! A large registry (more than [`WHOLE_CHECK_ACTORS_MAX`] actors, the simulation at scale) is
//! checked at the cost of what each step changed: the state invariants with
//! `invariants::check_state_step` (the same verdict as checking the whole state, given the
//! state before it passed), and the stored registry against the replay by their changes since
//! the previous comparison (equal before, equal changes: equal now). Every
//! [`WHOLE_CHECK_EVENTS`] replayed events, and at the end of a run ([`Replay::check_whole`]),
//! both are checked whole.

use membership::protocol::invariants::{check_state, check_state_step, check_transition};
use membership::protocol::{heartbeat_landed_closed, step, Config, Event, ProposalId, State};
use membership::testing::{Logged, COMMIT_LOG_MAX};
use membership::MemoryStore;
use std::collections::BTreeSet;

/// The most log entries one catch-up replays (the store's log bound).
pub const REPLAY_BATCH_MAX: usize = COMMIT_LOG_MAX;
/// Up to this many placed actors, every replayed step's state is checked whole and the stored
/// registry compared whole with the replay after every commit (every drawn world is far
/// below it); beyond it, step by step (see the module documentation).
pub const WHOLE_CHECK_ACTORS_MAX: usize = 4_096;
/// Up to this many nodes (and [`WHOLE_CHECK_ACTORS_MAX`] actors), the registry is checked
/// whole after every step.
pub const WHOLE_CHECK_NODES_MAX: u16 = 64;
/// Every how many replayed events a large registry is checked whole anyway.
pub const WHOLE_CHECK_EVENTS: u64 = 1 << 15;

/// The replay: the registry as the log says it must be.
#[derive(Clone, Debug)]
pub struct Replay {
    state: State,
    applied: BTreeSet<ProposalId>,
    /// The open heartbeat round, as the replayed ResetHeartbeats say.
    round: u64,
    position: usize,
    /// Events replayed since the registry was last checked whole.
    since_whole: u64,
    /// The stored and the replayed registry at the last comparison, found equal.
    compared: Option<(State, State)>,
}

impl Replay {
    /// A replay of a store initialised with `config`.
    pub fn new(config: Config) -> Replay {
        Replay {
            state: State::initial(config),
            applied: BTreeSet::new(),
            round: 0,
            position: 0,
            since_whole: 0,
            compared: None,
        }
    }

    /// The replayed registry.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Log entries replayed so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Replays the store's new log entries and compares with the store. Calls `on_event` for
    /// every replayed event. `Err` says what is wrong.
    pub fn catch_up(
        &mut self,
        store: &MemoryStore,
        mut on_event: impl FnMut(&Logged, &Event),
    ) -> Result<(), String> {
        let start = self.position;
        let entries = store.log_from(start);
        assert!(entries.len() <= REPLAY_BATCH_MAX);
        for entry in &entries {
            let heartbeat = matches!(entry.events.as_slice(), [Event::SendHeartbeat { .. }]);
            if heartbeat_landed_closed(&entry.events, entry.round, self.round) {
                // A heartbeat that ran at a round closed before it landed: its stored key
                // names that round, so no flag changed (a stutter of the spec).
                self.position += 1;
                continue;
            }
            if entry.round != self.round + u64::from(entry.events == [Event::ResetHeartbeats])
                && (heartbeat || entry.events == [Event::ResetHeartbeats])
            {
                return Err(format!(
                    "{} (proposal {}, revision {}) ran at heartbeat round {}, but the replayed \
                     round is {}",
                    events_text(&entry.events),
                    entry.id,
                    entry.revision,
                    entry.round,
                    self.round
                ));
            }
            // A heartbeat is idempotent and not remembered: a retry may land twice.
            if !heartbeat && !self.applied.insert(entry.id) {
                return Err(format!(
                    "proposal {} committed twice (revision {}: {})",
                    entry.id,
                    entry.revision,
                    events_text(&entry.events)
                ));
            }
            for event in &entry.events {
                let before = self.state.clone();
                let whole = small(&before) || self.since_whole >= WHOLE_CHECK_EVENTS;
                let (after, _) = step(&before, event).map_err(|refusal| {
                    format!(
                        "the store committed {event} (proposal {}, revision {}), which the spec \
                         refuses on the replayed registry: {refusal}",
                        entry.id, entry.revision
                    )
                })?;
                if whole {
                    self.since_whole = 0;
                    check_state(&after)
                } else {
                    self.since_whole += 1;
                    check_state_step(&before, &after)
                }
                .map_err(|v| format!("after {event} (proposal {}): {v}", entry.id))?;
                check_transition(&before, &after)
                    .map_err(|v| format!("step {event} (proposal {}): {v}", entry.id))?;
                on_event(entry, event);
                self.state = after;
                if *event == Event::ResetHeartbeats {
                    self.round += 1;
                }
            }
            self.position += 1;
        }
        assert_eq!(self.position, start + entries.len());
        if !entries.is_empty() {
            let stored = store.state().ok_or("the store holds no registry")?;
            let same = match &self.compared {
                Some((was_stored, was_replayed)) if !small(&stored) && self.since_whole > 0 => {
                    was_stored.delta(&stored) == was_replayed.delta(&self.state)
                }
                _ => stored == self.state,
            };
            if !same {
                return Err(self.differs(&stored));
            }
            self.compared = Some((stored, self.state.clone()));
        }
        Ok(())
    }
}

/// Whether `state` is small enough to be checked whole after every step: at most
/// [`WHOLE_CHECK_NODES_MAX`] nodes and [`WHOLE_CHECK_ACTORS_MAX`] placed actors (every drawn
/// world is).
pub fn small(state: &State) -> bool {
    state.config().node_count() <= WHOLE_CHECK_NODES_MAX
        && state.placements().len() <= WHOLE_CHECK_ACTORS_MAX
}

impl Replay {
    /// What a stored registry that differs from the replay is reported as.
    fn differs(&self, stored: &State) -> String {
        let diff = self.state.delta(stored);
        format!(
            "the stored registry differs from the replay of its log after {} commits; \
             stored minus replayed: {diff:?}",
            self.position
        )
    }

    /// The whole check, at the end of a run (and whatever the registry's size): every state
    /// invariant on the replayed registry, and the stored registry equal to it.
    pub fn check_whole(&self, store: &MemoryStore) -> Result<(), String> {
        check_state(&self.state).map_err(|v| format!("after the last commit: {v}"))?;
        let stored = store.state().ok_or("the store holds no registry")?;
        if stored != self.state {
            return Err(self.differs(&stored));
        }
        Ok(())
    }
}

/// Events as text: `E1; E2`.
pub fn events_text(events: &[Event]) -> String {
    events
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
