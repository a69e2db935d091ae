//! The proposals in flight: the policy's (one per kind, sent again after an unknown outcome,
//! abandoned when no outcome comes) and the application's requests ([`Agent::submit`]).

use super::limits::{IN_FLIGHT_MAX, REQUESTS_MAX, REQUEST_RETRIES_MAX, RETRIES_MAX};
use super::machine::Agent;
use super::output::{FenceReason, Notification, Outgoing, RequestError, TooManyRequests};
use super::records::{InFlight, Kind, Request};
use super::timing::{later_ms, Timer};
use crate::effect::Effect;
use crate::event::Event;
use crate::proposal::{Action, Proposal, ProposalError, ProposalId, ProposalOutcome};

impl Agent {
    /// A fresh proposal id from this Agent's sequence: ids never repeat within an incarnation.
    fn next_id(&mut self) -> ProposalId {
        self.seq += 1;
        let id = ProposalId {
            node: self.node,
            incarnation: self.incarnation,
            seq: self.seq,
        };
        debug_assert!(id.seq > 0);
        debug_assert!(id.incarnation == self.incarnation);
        id
    }

    /// A fresh token for an outcome.
    fn next_token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        debug_assert!(!self.in_flight.contains_key(&token));
        debug_assert!(!self.requests.contains_key(&token));
        token
    }

    /// The application proposes one spec action as this node, outside the policy (for
    /// administration and tests): it goes out at once as an
    /// [`Output::Propose`](super::output::Output::Propose) with a fresh proposal id; an unknown
    /// outcome is sent again with the same id up to [`REQUEST_RETRIES_MAX`] times; the final
    /// result comes back as an [`Output::Reply`](super::output::Output::Reply) with the id
    /// returned here, followed by a snapshot read. It leaves the policy and the timers
    /// alone. Refused when [`REQUESTS_MAX`] requests are waiting.
    pub fn submit(&mut self, event: Event) -> Result<ProposalId, TooManyRequests> {
        let waiting = self.requests.len();
        let submitted = self.submit_request(event);
        debug_assert!(submitted.is_err() || self.requests.len() == waiting + 1);
        debug_assert!(self.requests.len() <= REQUESTS_MAX);
        submitted
    }

    /// Queues the application's `event` as a request (see [`Agent::submit`]).
    pub(super) fn submit_request(&mut self, event: Event) -> Result<ProposalId, TooManyRequests> {
        if self.requests.len() >= REQUESTS_MAX {
            return Err(TooManyRequests);
        }
        let proposal = Proposal {
            id: self.next_id(),
            action: Action::Step(event),
            round: None,
        };
        let token = self.next_token();
        self.requests.insert(
            token,
            Request {
                proposal,
                attempts: 0,
            },
        );
        self.outputs.propose(Outgoing { token, proposal });
        debug_assert!(self.requests.len() <= REQUESTS_MAX);
        debug_assert!(self.requests.contains_key(&token));
        Ok(proposal.id)
    }

    /// Whether `token` is a request's (its outcome leaves the policy alone).
    pub(super) fn is_request(&self, token: u64) -> bool {
        self.requests.contains_key(&token)
    }

    /// A request's outcome: an unknown one is sent again (same id, at once) up to
    /// [`REQUEST_RETRIES_MAX`] times; anything else is final, replied, and followed by a read.
    /// Touches neither the policy nor the timers.
    pub(super) fn request_outcome(&mut self, token: u64, outcome: ProposalOutcome) {
        let Some(mut request) = self.requests.remove(&token) else {
            return;
        };
        let timers = self.timers;
        let result = match outcome {
            ProposalOutcome::Committed { effects } => Ok(effects),
            ProposalOutcome::Refused(error) => Err(RequestError::Refused(error)),
            ProposalOutcome::Unavailable => Err(RequestError::Unavailable),
            ProposalOutcome::Unknown if request.attempts < REQUEST_RETRIES_MAX => {
                request.attempts += 1;
                self.requests.insert(token, request);
                self.outputs.propose(Outgoing {
                    token,
                    proposal: request.proposal,
                });
                debug_assert!(self.timers == timers);
                return;
            }
            ProposalOutcome::Unknown => Err(RequestError::Unknown),
        };
        self.outputs.reply(request.proposal.id, result);
        self.outputs.read();
        debug_assert!(!self.requests.contains_key(&token));
        debug_assert!(self.timers == timers);
    }

    /// A policy proposal's outcome (`handle_outcome` for a token in flight).
    pub(super) fn flight_outcome(&mut self, now_ms: u64, token: u64, outcome: ProposalOutcome) {
        let Some(mut flight) = self.in_flight.remove(&token) else {
            return;
        };
        debug_assert!(flight.attempts <= RETRIES_MAX);
        if flight.kind == Kind::Migrate {
            // Only a batch that committed and moved actors lets the next go out at once (a
            // retried one stays in flight meanwhile, which holds the next back anyway).
            self.migrate_more = matches!(&outcome, ProposalOutcome::Committed { effects }
                if effects.iter().any(|e| matches!(e, Effect::ActorActivated { .. })));
        }
        match outcome {
            ProposalOutcome::Committed { effects } => {
                self.finished_ms.insert(flight.kind, now_ms);
                self.answer_place(&flight.proposal, Ok(&effects));
                if flight.kind == Kind::Heartbeat {
                    let until = later_ms(flight.sent_ms, self.timing.settings().lease_ms);
                    self.lease_until_ms = Some(self.lease_until_ms.unwrap_or(0).max(until));
                    self.last_heartbeat_commit_ms = Some(now_ms);
                    self.first_heartbeat_commit_since_fence_ms
                        .get_or_insert(now_ms);
                    self.timers.set(Timer::Lease, until);
                }
                self.outputs.read();
            }
            ProposalOutcome::Refused(error) => {
                self.finished_ms.insert(flight.kind, now_ms);
                self.answer_place(&flight.proposal, Err(RequestError::Refused(error.clone())));
                if matches!(error, ProposalError::StaleIncarnation { .. }) {
                    self.fence(FenceReason::Superseded);
                }
                // A migration batch that found the queue already drained did not fail: the
                // moves it was for were made (or the actors removed) meanwhile. Like any
                // refusal it is not sent again: the kind waits for a snapshot read after this
                // outcome, which shows whether anything is still queued.
                if !matches!(error, ProposalError::NothingToMigrate { .. }) {
                    self.outputs.notify(Notification::ProposalFailed {
                        action: flight.proposal.action.to_string(),
                        reason: error.to_string(),
                    });
                }
                self.outputs.read();
            }
            ProposalOutcome::Unavailable | ProposalOutcome::Unknown => {
                if flight.attempts < RETRIES_MAX && flight.kind != Kind::Heartbeat {
                    // Send the same proposal again (same id: a store recognises a retry of a
                    // proposal that did commit).
                    flight.attempts += 1;
                    flight.retry_at_ms =
                        Some(later_ms(now_ms, self.timing.settings().retry_backoff_ms));
                    self.in_flight.insert(token, flight);
                    self.arm_retry();
                } else {
                    self.finished_ms.insert(flight.kind, now_ms);
                    // An earlier attempt may have committed: its outcome is unknown.
                    self.answer_place(&flight.proposal, Err(RequestError::Unknown));
                    self.outputs.notify(Notification::ProposalFailed {
                        action: flight.proposal.action.to_string(),
                        reason: "gave up: the store did not answer".to_string(),
                    });
                }
            }
        }
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// Whether a proposal of `kind` may be made now: none in flight, and the snapshot was read
    /// after the last one finished.
    pub(super) fn settled(&self, kind: Kind) -> bool {
        let in_flight = self.in_flight.values().any(|f| f.kind == kind);
        let read_at = self.observed.as_ref().map_or(0, |o| o.read_at_ms);
        !in_flight && self.finished_ms.get(&kind).is_none_or(|&at| at < read_at)
    }

    /// Sends `action` of the policy, unless one of its kind is in flight or
    /// [`IN_FLIGHT_MAX`] are.
    pub(super) fn propose(&mut self, now_ms: u64, action: Action, round: Option<u64>) -> bool {
        let kind = Kind::of(&action);
        if self.in_flight.values().any(|f| f.kind == kind) || self.in_flight.len() >= IN_FLIGHT_MAX
        {
            return false;
        }
        let proposal = Proposal {
            id: self.next_id(),
            action,
            round,
        };
        let token = self.next_token();
        self.in_flight.insert(
            token,
            InFlight {
                proposal,
                kind,
                sent_ms: now_ms,
                attempt_sent_ms: now_ms,
                attempts: 0,
                retry_at_ms: None,
            },
        );
        self.outputs.propose(Outgoing { token, proposal });
        self.arm_abandon();
        debug_assert!(self.in_flight.contains_key(&token));
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
        true
    }

    /// How long a proposal may stay in flight without any outcome before the Agent gives up on
    /// it (drivers always report one; this bounds the damage of one that does not).
    pub(super) fn abandon_after_ms(&self) -> u64 {
        self.timing.settings().failure_timeout_ms.saturating_mul(4)
    }

    /// Gives up on the proposals that have had no outcome for [`Agent::abandon_after_ms`].
    pub(super) fn abandon_silent(&mut self, now_ms: u64) {
        let limit = self.abandon_after_ms();
        debug_assert!(limit > 0);
        let silent: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| {
                f.retry_at_ms.is_none() && now_ms.saturating_sub(f.attempt_sent_ms) >= limit
            })
            .map(|(&t, _)| t)
            .collect();
        for token in silent {
            if let Some(f) = self.in_flight.remove(&token) {
                self.finished_ms.insert(f.kind, now_ms);
                self.answer_place(&f.proposal, Err(RequestError::Unknown));
                self.outputs.notify(Notification::ProposalFailed {
                    action: f.proposal.action.to_string(),
                    reason: "gave up: no outcome".to_string(),
                });
            }
        }
        self.arm_abandon();
        debug_assert!(self.timers.get(Timer::Abandon).is_none_or(|at| at > now_ms));
    }

    /// Arms the abandon deadline for the proposals that wait for an outcome. A proposal waiting
    /// to be sent again is not counted (`abandon_silent` skips it, so a deadline of its would
    /// stay due, and a driver would be asked for a past deadline again and again until the
    /// retry); its deadline counts from the retry's send.
    pub(super) fn arm_abandon(&mut self) {
        let limit = self.abandon_after_ms();
        let next = self
            .in_flight
            .values()
            .filter(|f| f.retry_at_ms.is_none())
            .map(|f| later_ms(f.attempt_sent_ms, limit))
            .min();
        self.timers.set_or_stop(Timer::Abandon, next);
        debug_assert!(next.is_none() || !self.in_flight.is_empty());
        debug_assert!(self.timers.get(Timer::Abandon) == next);
    }

    /// Arms the retry deadline for the earliest proposal waiting to be sent again.
    pub(super) fn arm_retry(&mut self) {
        let next = self.in_flight.values().filter_map(|f| f.retry_at_ms).min();
        self.timers.set_or_stop(Timer::Retry, next);
        debug_assert!(next.is_none() || !self.in_flight.is_empty());
        debug_assert!(self.timers.get(Timer::Retry) == next);
    }

    /// Sends again every proposal whose retry is due at `now_ms`.
    pub(super) fn send_retries(&mut self, now_ms: u64) {
        let due: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.retry_at_ms.is_some_and(|at| at <= now_ms))
            .map(|(&t, _)| t)
            .collect();
        for token in due {
            if let Some(f) = self.in_flight.get_mut(&token) {
                debug_assert!(f.attempts > 0 && f.attempts <= RETRIES_MAX);
                f.retry_at_ms = None;
                f.attempt_sent_ms = now_ms;
                self.outputs.propose(Outgoing {
                    token,
                    proposal: f.proposal,
                });
            }
        }
        self.arm_retry();
        self.arm_abandon();
        debug_assert!(self.timers.get(Timer::Retry).is_none_or(|at| at > now_ms));
    }
}
