//! The Agent itself: its state, its constructor and accessors, the application's commands, the
//! inputs (`handle_*`), the outputs (`poll_output`, `poll_timeout`) and the one [`drain`] loop
//! every driver runs. What it does with an input is in the behaviour modules (`flights`,
//! `probes`, `lease`, `serving`, `notify`, `policy`), each an `impl Agent` block.

use super::clocks::Watchdog;
use super::limits::{DRAIN_OUTPUTS_MAX, IN_FLIGHT_MAX, PLACE_QUEUE_MAX, REQUESTS_MAX};
use super::output::{FenceReason, Io, Output, Outputs, PlaceQueueFull};
use super::records::{InFlight, Kind, Observed, Peer, Request, Rounds, RoundsSeen};
use super::timing::{later_ms, Timer, TimerTable, Timing, LOCAL_TIME_MS_MAX};
use crate::actor::ActorId;
use crate::event::Event;
use crate::node::{NodeId, NodeStatus};
use crate::proposal::ProposalOutcome;
use crate::state::State;
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

/// An input the Agent refused (`handle_*`), naming what was wrong. A refused input changes
/// nothing. Every one is a driver's bug (or a clock that broke its promise), never a state of
/// the protocol: a stale outcome or an overtaken snapshot is not an error, it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InputError {
    /// `now_ms` is above [`LOCAL_TIME_MS_MAX`]: deadlines computed from it could overflow.
    #[error("now_ms {now_ms} is above LOCAL_TIME_MS_MAX {max_ms}")]
    TimeOutOfRange {
        /// The time given.
        now_ms: u64,
        /// [`LOCAL_TIME_MS_MAX`].
        max_ms: u64,
    },
    /// `now_ms` is earlier than the time of an input the Agent already took: the local clock
    /// must be monotonic.
    #[error("now_ms {now_ms} is earlier than {latest_ms}, the time of an earlier input")]
    TimeWentBackwards {
        /// The time given.
        now_ms: u64,
        /// The latest time the Agent was given.
        latest_ms: u64,
    },
    /// A snapshot asked for after it arrived (`read_at_ms > now_ms`).
    #[error("a snapshot read at {read_at_ms} cannot arrive at {now_ms}, before it was asked for")]
    ReadAfterArrival {
        /// When the read was asked for.
        read_at_ms: u64,
        /// When the snapshot arrived.
        now_ms: u64,
    },
    /// A probe result that arrived before the probe was sent (`sent_ms > now_ms`).
    #[error("a probe sent at {sent_ms} cannot be answered at {now_ms}, before it was sent")]
    ProbeAfterArrival {
        /// When the probe was sent.
        sent_ms: u64,
        /// When its result arrived.
        now_ms: u64,
    },
    /// A probe result about a node id outside the registry's range (1 to
    /// [`NODES_MAX`](crate::NODES_MAX)), or about this node itself: the Agent probes neither.
    #[error("a probe of {peer} (this node is {node}): not a peer")]
    NotAPeer {
        /// The node the result is about.
        peer: NodeId,
        /// This node.
        node: NodeId,
    },
}

/// One node's policy: see the module documentation.
#[derive(Clone, Debug)]
pub struct Agent {
    pub(super) node: NodeId,
    pub(super) incarnation: u64,
    pub(super) timing: Timing,
    pub(super) wants_member: bool,
    pub(super) seq: u64,
    pub(super) next_token: u64,
    pub(super) observed: Option<Observed>,
    pub(super) rounds_seen: RoundsSeen,
    pub(super) lease_until_ms: Option<u64>,
    pub(super) last_heartbeat_commit_ms: Option<u64>,
    /// When the first heartbeat since the latest fence committed (local ms of its outcome):
    /// with the latest one, what a snapshot may be read after to unfence (`lease`).
    pub(super) first_heartbeat_commit_since_fence_ms: Option<u64>,
    pub(super) fenced: Option<FenceReason>,
    pub(super) serving: BTreeMap<ActorId, u64>,
    pub(super) pending: BTreeMap<ActorId, (u64, u64)>,
    /// What the serving rules' last pass ran on (they look only at what changed since).
    pub(super) reconciled: Option<super::records::Reconciled>,
    /// The earliest hand-off deadline among `pending` (kept by the serving rules; the
    /// Activation timer is stopped when it fires, this is not).
    pub(super) pending_due_ms: Option<u64>,
    pub(super) peers: BTreeMap<NodeId, Peer>,
    pub(super) probe_cursor: usize,
    pub(super) in_flight: BTreeMap<u64, InFlight>,
    /// The application's requests waiting for their outcome, by token.
    pub(super) requests: BTreeMap<u64, Request>,
    /// When each kind last finished (committed or refused), by local time: the policy waits for
    /// a snapshot read after that before proposing the kind again.
    pub(super) finished_ms: BTreeMap<Kind, u64>,
    /// Whether this node's latest migration batch committed and moved an actor: the next batch
    /// may go out at once, without waiting for a snapshot read (the store picks the batch from
    /// the registry as it is at commit, so a stale snapshot cannot make it move the wrong
    /// actors; at worst the queue is empty by then and the store refuses the batch).
    pub(super) migrate_more: bool,
    pub(super) timers: TimerTable,
    /// The latest local time an input carried (or the creation time): a later input's
    /// `now_ms` may not be earlier.
    pub(super) latest_ms: u64,
    pub(super) place_requests: VecDeque<ActorId>,
    pub(super) outputs: Outputs,
    /// The clock watchdog's readings and suspicion ([`Agent::handle_clock`]).
    pub(super) watchdog: Watchdog,
    /// The registry's configuration number in the latest snapshot, and when this node first
    /// saw it (local ms): a member adopts a configuration once it has been stable a while
    /// (`policy::sync_views`).
    pub(super) configuration_seen: Option<(u64, u64)>,
    /// Since when (local ms) this node has seen its own record behind the registry's
    /// configuration; `None` while it is current.
    pub(super) behind_since_ms: Option<u64>,
}

impl Agent {
    /// The Agent of `node`, holding its slot under `incarnation` (from the store's claim), at
    /// local time `now_ms`. It starts fenced, out of the cluster, and asks for a snapshot.
    /// An Agent created at a time above [`LOCAL_TIME_MS_MAX`] refuses every timed input
    /// ([`InputError::TimeOutOfRange`]).
    pub fn new(node: NodeId, incarnation: u64, timing: Timing, now_ms: u64) -> Agent {
        let mut agent = Agent {
            node,
            incarnation,
            timing,
            wants_member: false,
            seq: 0,
            next_token: 1,
            observed: None,
            rounds_seen: RoundsSeen::default(),
            lease_until_ms: None,
            last_heartbeat_commit_ms: None,
            first_heartbeat_commit_since_fence_ms: None,
            fenced: Some(FenceReason::LeaseExpired),
            serving: BTreeMap::new(),
            pending: BTreeMap::new(),
            reconciled: None,
            pending_due_ms: None,
            peers: BTreeMap::new(),
            probe_cursor: 0,
            in_flight: BTreeMap::new(),
            requests: BTreeMap::new(),
            finished_ms: BTreeMap::new(),
            migrate_more: false,
            timers: TimerTable::default(),
            latest_ms: now_ms,
            place_requests: VecDeque::new(),
            outputs: Outputs::default(),
            watchdog: Watchdog::default(),
            configuration_seen: None,
            behind_since_ms: None,
        };
        agent.outputs.read();
        let s = *timing.settings();
        agent.timers.set(Timer::Heartbeat, now_ms);
        agent.timers.set(Timer::Probe, now_ms);
        agent
            .timers
            .set(Timer::Snapshot, later_ms(now_ms, s.snapshot_interval_ms));
        assert!(agent.fenced.is_some());
        assert!(agent.serving.is_empty());
        agent
    }

    /// The node this Agent acts for.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The incarnation it holds.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The timing it runs with.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Whether the node is fenced (serves nothing).
    pub fn is_fenced(&self) -> bool {
        self.fenced.is_some()
    }

    /// The actors the node has activated and not deactivated, with their epochs (what it
    /// believes it serves; see [`Agent::may_serve`] for what it may serve at a given time).
    pub fn serving(&self) -> &BTreeMap<ActorId, u64> {
        &self.serving
    }

    /// The latest snapshot of the registry, if any.
    pub fn snapshot(&self) -> Option<&State> {
        self.observed.as_ref().map(|o| &o.state)
    }

    /// Why the node is fenced, or `None` when it is not (for monitoring: readiness, metrics).
    pub fn fence_reason(&self) -> Option<FenceReason> {
        self.fenced
    }

    /// The local time at which the latest snapshot the Agent took was asked for (its age is
    /// counted from there, as the serving rule counts it), or `None` before the first.
    pub fn snapshot_read_at_ms(&self) -> Option<u64> {
        self.observed.as_ref().map(|o| o.read_at_ms)
    }

    /// The local time at which the node's latest heartbeat commit was handled, or `None`
    /// before the first (for monitoring: the heartbeat lag).
    pub fn last_heartbeat_commit_ms(&self) -> Option<u64> {
        self.last_heartbeat_commit_ms
    }

    /// How many actors placed on this node are waiting out the hand-off wait before the node
    /// activates them.
    pub fn handoff_waiting(&self) -> usize {
        self.pending.len()
    }

    /// The application wants the node in the cluster: it proposes NodeJoin when it is Left.
    /// A `now_ms` the timed inputs would refuse ([`InputError`]) records the wish and
    /// acts on it at the next accepted input.
    pub fn join(&mut self, now_ms: u64) {
        self.wants_member = true;
        if self.accept_time(now_ms).is_ok() {
            self.evaluate(now_ms);
        }
    }

    /// The application wants the node to leave gracefully: NodeLeave, then (once its actors have
    /// been migrated) NodeLeaveComplete.
    /// A `now_ms` the timed inputs would refuse ([`InputError`]) records the wish and
    /// acts on it at the next accepted input.
    pub fn leave(&mut self, now_ms: u64) {
        self.wants_member = false;
        if self.accept_time(now_ms).is_ok() {
            self.evaluate(now_ms);
        }
    }

    /// The application asks for `actor` to be placed: queued, and proposed as PlaceActor once
    /// the node is Active and no placement of its own is in flight. Its final result comes back
    /// as one [`Output::Placed`] for `actor`: the placement once committed, or the typed refusal
    /// at once when the reducer refuses it on the node's snapshot (read after its previous
    /// placement finished: `RegistryFull`, `NoTarget`, ...; an actor already placed is
    /// answered with its placement, since placing is idempotent) or the store
    /// refuses it at commit. A refused request is dropped, never proposed later, and never
    /// holds up the requests queued behind it. Refused with [`PlaceQueueFull`] (nothing
    /// queued, nothing replied) when [`PLACE_QUEUE_MAX`] requests are already waiting. A
    /// `now_ms` the timed inputs would refuse ([`InputError`]) queues the request, proposed at
    /// the next accepted input.
    pub fn place(&mut self, actor: ActorId, now_ms: u64) -> Result<(), PlaceQueueFull> {
        if self.place_requests.len() >= PLACE_QUEUE_MAX {
            return Err(PlaceQueueFull);
        }
        self.place_requests.push_back(actor);
        if self.accept_time(now_ms).is_ok() {
            self.evaluate(now_ms);
        }
        debug_assert!(self.place_requests.len() <= PLACE_QUEUE_MAX);
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
        Ok(())
    }

    /// The application withdraws its oldest queued place request for `actor` (its caller gave
    /// up waiting): true when one was still queued, and is now dropped without any result;
    /// false when none is queued (it was proposed already, and its [`Output::Placed`] follows,
    /// or it was answered).
    pub fn cancel_place(&mut self, actor: ActorId) -> bool {
        let queued = self.place_requests.len();
        let Some(at) = self.place_requests.iter().position(|&a| a == actor) else {
            return false;
        };
        self.place_requests.remove(at);
        debug_assert!(self.place_requests.len() + 1 == queued);
        debug_assert!(self.place_requests.len() < PLACE_QUEUE_MAX);
        true
    }

    /// A snapshot of the registry read from the store, asked for at local time `read_at_ms`
    /// (before the read started), with the store's heartbeat rounds (the open round, and the
    /// round each node's latest heartbeat names: [`Rounds`]; a bare `u64` is the open round
    /// alone) and the incarnation holding this node's slot in the same read (`None`: the store
    /// has no slot record for it).
    ///
    /// A slot held by a newer incarnation means another process took this node's place (this
    /// one was frozen, or presumed dead): the Agent fences itself for good
    /// ([`FenceReason::Superseded`]), whatever the registry says. Without this a process that
    /// proposes nothing (a Leaving node with actors needs no heartbeat) would never learn it.
    ///
    /// Refused: a bad `now_ms` (see [`InputError`]), and a read asked for after it arrived
    /// ([`InputError::ReadAfterArrival`]). A read older than the latest one handled is dropped.
    pub fn handle_snapshot(
        &mut self,
        now_ms: u64,
        read_at_ms: u64,
        state: State,
        rounds: impl Into<Rounds>,
        slot_incarnation: Option<u64>,
    ) -> Result<(), InputError> {
        let Rounds {
            round,
            heartbeat_rounds,
        } = rounds.into();
        Self::check_time(self.latest_ms, now_ms)?;
        if read_at_ms > now_ms {
            return Err(InputError::ReadAfterArrival { read_at_ms, now_ms });
        }
        self.accept_time(now_ms)?;
        debug_assert!(read_at_ms <= now_ms && now_ms <= LOCAL_TIME_MS_MAX);
        if self
            .observed
            .as_ref()
            .is_some_and(|o| o.read_at_ms > read_at_ms)
        {
            return Ok(()); // an older read overtaken by a newer one
        }
        let superseded = slot_incarnation.is_some_and(|held| held > self.incarnation);
        if superseded || state.node(self.node).is_none() {
            self.fence(FenceReason::Superseded);
            debug_assert!(self.serving.is_empty() && self.pending.is_empty());
            return Ok(());
        }
        self.rounds_seen.note(round, now_ms);
        self.notify_changes(&state);
        self.observed = Some(Observed {
            state,
            round,
            heartbeat_rounds,
            read_at_ms,
            silent: None,
        });
        self.evaluate(now_ms);
        debug_assert!(self.observed.is_some());
        Ok(())
    }

    /// The result of a probe of `peer` sent at local time `sent_ms`: answered (`ok`), or failed
    /// or timed out. Refused: a bad `now_ms` (see [`InputError`]), a result before its probe
    /// ([`InputError::ProbeAfterArrival`]), a `peer` that is not one
    /// ([`InputError::NotAPeer`]).
    pub fn handle_probe(
        &mut self,
        now_ms: u64,
        peer: NodeId,
        sent_ms: u64,
        ok: bool,
    ) -> Result<(), InputError> {
        Self::check_time(self.latest_ms, now_ms)?;
        if sent_ms > now_ms {
            return Err(InputError::ProbeAfterArrival { sent_ms, now_ms });
        }
        if peer.index().is_none() || peer == self.node {
            return Err(InputError::NotAPeer {
                peer,
                node: self.node,
            });
        }
        self.accept_time(now_ms)?;
        self.record_probe(peer, sent_ms, ok);
        self.evaluate(now_ms);
        debug_assert!(self.peers.contains_key(&peer));
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
        Ok(())
    }

    /// The outcome of the proposal sent with `token`. Outcomes for tokens not in flight (stale,
    /// or from before a restart) are dropped. A request's outcome ([`Agent::submit`]) leaves
    /// the policy alone. Refused: a bad `now_ms` (see [`InputError`]); an unknown token is
    /// not an error.
    pub fn handle_outcome(
        &mut self,
        now_ms: u64,
        token: u64,
        outcome: ProposalOutcome,
    ) -> Result<(), InputError> {
        Self::check_time(self.latest_ms, now_ms)?;
        if !self.is_request(token) && !self.in_flight.contains_key(&token) {
            return Ok(()); // stale: dropped, and the Agent is left exactly as it was
        }
        self.accept_time(now_ms)?;
        if self.is_request(token) {
            self.request_outcome(token, outcome);
            debug_assert!(self.requests.len() <= REQUESTS_MAX);
            return Ok(());
        }
        self.flight_outcome(now_ms, token, outcome);
        self.evaluate(now_ms);
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
        Ok(())
    }

    /// Call when [`Agent::poll_timeout`]'s deadline has passed (calling earlier is harmless).
    /// Refused: a bad `now_ms` (see [`InputError`]).
    pub fn handle_timeout(&mut self, now_ms: u64) -> Result<(), InputError> {
        self.accept_time(now_ms)?;
        let s = *self.timing.settings();
        for timer in self.timers.due(now_ms) {
            self.timers.stop(timer);
            match timer {
                Timer::Heartbeat => {
                    self.timers
                        .set(Timer::Heartbeat, later_ms(now_ms, s.heartbeat_interval_ms));
                    if self.my_status() == Some(NodeStatus::Active) {
                        self.propose(
                            now_ms,
                            crate::proposal::Action::Step(Event::SendHeartbeat { node: self.node }),
                            None,
                        );
                    }
                }
                Timer::Probe => {
                    self.timers
                        .set(Timer::Probe, later_ms(now_ms, s.probe_interval_ms));
                    self.probe_peers();
                }
                Timer::Snapshot => {
                    self.timers
                        .set(Timer::Snapshot, later_ms(now_ms, s.snapshot_interval_ms));
                    self.outputs.read();
                }
                Timer::Retry => self.send_retries(now_ms),
                Timer::Abandon => self.abandon_silent(now_ms),
                Timer::Lease | Timer::Activation | Timer::Evaluate => {}
            }
        }
        self.evaluate(now_ms);
        debug_assert!(self.timers.get(Timer::Heartbeat).is_some());
        debug_assert!(self.timers.get(Timer::Probe).is_some());
        // Every due timer ran: no deadline at or before `now_ms` is left, so a driver that
        // sleeps until `poll_timeout` never spins.
        debug_assert!(
            self.timers.all_after(now_ms),
            "a deadline is still due after handle_timeout({now_ms}): {:?}",
            self.timers
        );
        Ok(())
    }

    /// Whether `now_ms` may be an input's time, after one at `latest_ms`: at most
    /// [`LOCAL_TIME_MS_MAX`] and not earlier.
    fn check_time(latest_ms: u64, now_ms: u64) -> Result<(), InputError> {
        if now_ms > LOCAL_TIME_MS_MAX {
            return Err(InputError::TimeOutOfRange {
                now_ms,
                max_ms: LOCAL_TIME_MS_MAX,
            });
        }
        if now_ms < latest_ms {
            return Err(InputError::TimeWentBackwards { now_ms, latest_ms });
        }
        debug_assert!(latest_ms <= now_ms);
        debug_assert!(now_ms <= LOCAL_TIME_MS_MAX);
        Ok(())
    }

    /// Checks `now_ms` ([`Agent::check_time`]) and records it as the latest input's time.
    fn accept_time(&mut self, now_ms: u64) -> Result<(), InputError> {
        Self::check_time(self.latest_ms, now_ms)?;
        self.latest_ms = now_ms;
        debug_assert!(self.latest_ms <= LOCAL_TIME_MS_MAX);
        Ok(())
    }

    /// The next thing to do, in the documented order (see the module documentation); `None`
    /// once everything asked for since the last drain has been polled. [`drain`] runs it.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop()
    }

    /// When [`Agent::handle_timeout`] must be called next (local time).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next_ms()
    }

    /// This node's status in its latest snapshot.
    fn my_status(&self) -> Option<NodeStatus> {
        let o = self.observed.as_ref()?;
        o.state.node(self.node).map(|r| r.status)
    }
}

/// Executes everything `agent` asks for, in [`Agent::poll_output`]'s order, with `io`: the one
/// loop every driver runs after each input. Returns how many outputs it executed (at most
/// [`DRAIN_OUTPUTS_MAX`]; any beyond wait for the next drain).
pub fn drain(agent: &mut Agent, io: &mut impl Io) -> usize {
    let mut executed = 0;
    while executed < DRAIN_OUTPUTS_MAX {
        let Some(output) = agent.poll_output() else {
            break;
        };
        executed += 1;
        match output {
            Output::Propose(out) => io.propose(out),
            Output::Probe(peer) => io.probe(peer),
            Output::Read => io.read(),
            Output::Decide(decision) => io.decide(decision),
            Output::Notify(notification) => io.notify(notification),
            Output::Reply { id, result } => io.reply(id, result),
            Output::Placed { actor, result } => io.placed(actor, result),
        }
    }
    debug_assert!(executed <= DRAIN_OUTPUTS_MAX);
    debug_assert!(executed == DRAIN_OUTPUTS_MAX || agent.outputs.is_empty());
    executed
}
