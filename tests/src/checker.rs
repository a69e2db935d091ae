//! The independent checker: it replays the store's committed log through `core::step` from the
//! initial state, checks every state and transition invariant of `core` on each replayed step,
//! that no proposal id commits twice, and that the replayed registry equals what the store holds
//! after each commit. It shares nothing with the store but the reducer and the invariant
//! predicates: a lost update, a double application, a footprint error or a partial write shows
//! up as a difference.

use membership::protocol::invariants::{check_state, check_transition};
use membership::protocol::{heartbeat_landed_closed, step, Config, Event, ProposalId, State};
use membership::testing::{Logged, COMMIT_LOG_MAX};
use membership::MemoryStore;
use std::collections::BTreeSet;

/// The most log entries one catch-up replays (the store's log bound).
pub const REPLAY_BATCH_MAX: usize = COMMIT_LOG_MAX;

/// The replay: the registry as the log says it must be.
#[derive(Clone, Debug)]
pub struct Replay {
    state: State,
    applied: BTreeSet<ProposalId>,
    /// The open heartbeat round, as the replayed ResetHeartbeats say.
    round: u64,
    position: usize,
}

impl Replay {
    /// A replay of a store initialised with `config`.
    pub fn new(config: Config) -> Replay {
        Replay {
            state: State::initial(config),
            applied: BTreeSet::new(),
            round: 0,
            position: 0,
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
                let (after, _) = step(&before, event).map_err(|refusal| {
                    format!(
                        "the store committed {event} (proposal {}, revision {}), which the spec \
                         refuses on the replayed registry: {refusal}",
                        entry.id, entry.revision
                    )
                })?;
                check_state(&after)
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
            if stored != self.state {
                let diff = self.state.delta(&stored);
                return Err(format!(
                    "the stored registry differs from the replay of its log after {} commits; \
                     stored minus replayed: {diff:?}",
                    self.position
                ));
            }
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
