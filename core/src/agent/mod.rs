//! The per-node policy: the `Agent`, a second pure state machine.
//!
//! The reducer says what the registry may become; the Agent decides, for one node, what to
//! propose next and when the node must stop serving. It has no clock and does no I/O: the driver
//! (the tokio runtime, or the simulation) feeds it inputs and executes its outputs, in the style
//! of quinn-proto's `Connection`:
//!
//! - inputs (`handle_*`): the local monotonic time `now_ms` with every call, the registry
//!   snapshot the driver read ([`Agent::handle_snapshot`]), probe results about peers
//!   ([`Agent::handle_probe`]), commit outcomes identified by a token
//!   ([`Agent::handle_outcome`]; an outcome for a token not in flight is stale and dropped),
//!   deadlines ([`Agent::handle_timeout`]) and the application's commands (`join`, `leave`,
//!   `place`, and [`Agent::submit`] for one spec action of its own);
//! - outputs, drained after every input by [`drain`] (the one loop every driver runs) from
//!   [`Agent::poll_output`], in this order: every [`Output::Propose`] (proposals to run as
//!   store transactions), every [`Output::Probe`] (peers to probe), [`Output::Read`] (read a
//!   fresh snapshot), every [`Output::Decide`] (local decisions: fence, unfence, activate or
//!   deactivate an actor, to execute at once, in order), every [`Output::Notify`] (for the
//!   application), every [`Output::Reply`] (a submitted request's final result); and finally
//!   [`Agent::poll_timeout`] (when to call `handle_timeout` next).
//!
//! The code is split by concern: `timing` (settings, the timer table), `output` (the outputs,
//! their queue, the drain), `flights` (proposals in flight and requests), `probes`, `lease`,
//! `serving` and `policy` (what to propose next).
//!
//! What it decides, and why it is safe:
//!
//! - **Heartbeats and the lease.** An Active node proposes SendHeartbeat every
//!   `heartbeat_interval_ms`. A committed heartbeat sent at local time `t` gives a lease until
//!   `t + lease_ms`; when the lease runs out the node fences itself (stops serving every actor
//!   and drops its primary duties) and unfences only after a heartbeat commits again and a
//!   snapshot read after that commit shows it Active.
//! - **Rounds and detection.** The store keeps a heartbeat round (metadata, opened by every
//!   committed ResetHeartbeats). A node that has seen the same round open for
//!   `failure_timeout_ms` (by its own clock) proposes ResetHeartbeats for that round (staggered
//!   by its rank, so usually one node does) when a peer's flag is still set although every other
//!   Active node reports it unreachable. A node `d` proposes DetectFailure(d, t) only when it
//!   has seen the current round open for `failure_timeout_ms`, `t`'s heartbeat flag is still
//!   clear, and it reported that it cannot reach `t`; the proposal carries the round and is
//!   refused if another round was opened meanwhile. So `t` committed no heartbeat for at least
//!   `failure_timeout_ms` of `d`'s clock before the detection, which (with
//!   `failure_timeout_ms > lease_ms * (1 + rate error) + heartbeat_interval_ms`, checked by
//!   [`Timing::new`]) is longer than `t`'s lease: `t` fenced itself before any detector could
//!   declare it failed, and before any of its actors moves.
//! - **Partitions.** A node whose probes to a peer keep failing for `suspect_after_ms` reports
//!   CreatePartition(self, peer); once they succeed again for `suspect_after_ms`, HealPartition.
//! - **Everything else** is proposed when the reducer, run on the snapshot, says the action is
//!   enabled: NodeJoinComplete, MarkNodeFailed (any Active node may propose it once the guard
//!   holds), NodeRecover, ElectPrimary, PrimaryStepDown, SyncViews (the node with the older view
//!   asks), NodeLeaveComplete (once the node holds no actor), and, for the primary in office,
//!   the migration queue in batches. The Agent never re-implements a guard.
//! - **Serving.** A node serves the actors the registry places on it, while it is not fenced and
//!   its latest snapshot was read less than `lease_ms` ago (by its clock, counted from when the
//!   read was asked for). An actor it is not serving yet (a live move, a move off a Failed or
//!   Leaving node, a new placement, an actor this node held before a fence or in its previous
//!   incarnation) it activates only after the hand-off wait ([`Timing::handoff_wait_ms`]: the
//!   lease scaled up by the rate error), counted from the first snapshot that places it here
//!   while the node is not fenced; only what the node is serving, under the same epoch, goes on
//!   without a wait. Why no two processes serve an actor at once: any process serving it holds
//!   a snapshot placing the actor on itself, read before the commit that moved the actor away
//!   (a snapshot read after it places the actor elsewhere, and the process deactivates it), and
//!   stops within `lease_ms` of its clock after asking for that read; the new holder first sees
//!   the placement in a snapshot read after that commit, and then waits `lease_ms` scaled by
//!   the rate error of both clocks, so it starts after the old holder stopped. This holds
//!   whoever the previous holder was and however many moves came in between (the last serving
//!   process read its snapshot before the first of them), which is why a Failed previous holder
//!   is not a reason to skip the wait: it may never have served the actor, while the node
//!   before it still does.

mod flights;
mod lease;
mod output;
mod policy;
mod probes;
mod serving;
mod timing;

pub use output::{
    drain, Decision, FenceReason, Io, Notification, Outgoing, Output, RequestError,
    TooManyRequests, DRAIN_OUTPUTS_MAX,
};
pub use serving::served_by;
pub use timing::{Timing, TimingError, TimingSettings};

use crate::actor::{ActorId, ACTORS_MAX};
use crate::event::Event;
use crate::node::{NodeId, NodeStatus};
use crate::proposal::{ProposalId, ProposalOutcome};
use crate::state::State;
use flights::{InFlight, Kind, Request};
use output::Outputs;
use probes::Peer;
use std::collections::{BTreeMap, VecDeque};
use timing::{Timer, TimerTable};

/// The most place requests the application may queue before they are proposed.
pub const PLACE_QUEUE_MAX: usize = 65_536;

/// The most notifications and decisions waiting to be polled; older notifications are dropped
/// first (decisions are never dropped: they are bounded by the actors placed on the node).
pub const NOTIFICATIONS_MAX: usize = 65_536;

/// The most decisions one input can produce: a fence or an unfence, and a deactivation and an
/// activation per actor.
const DECISIONS_MAX: usize = 2 + 2 * ACTORS_MAX as usize;

/// How many times a proposal whose outcome was unknown or whose store was unavailable is sent
/// again (with the same id) before the Agent gives up on it.
pub const RETRIES_MAX: u32 = 16;

/// The most proposals in flight at once (one per kind, and kinds are bounded by the nodes).
pub const IN_FLIGHT_MAX: usize = 1_024;

/// The most requests of the application ([`Agent::submit`]) waiting for their outcome.
pub const REQUESTS_MAX: usize = 1_024;

/// How many times a request whose outcome is unknown is sent again (same id, at once) before
/// its result is [`RequestError::Unknown`].
pub const REQUEST_RETRIES_MAX: u32 = 8;

/// The most peers a node probes per probe round (round-robin over its peers).
pub const PROBES_PER_ROUND_MAX: usize = 8;

/// How many consecutive probes must agree (fail, or answer) before a node reports a partition
/// (or its heal), besides `suspect_after_ms` of them.
pub const PROBE_STREAK_MIN: u32 = 3;

/// The latest snapshot and when it was asked for.
#[derive(Clone, Debug)]
struct Observed {
    state: State,
    round: u64,
    read_at_ms: u64,
}

/// One node's policy: see the module documentation.
#[derive(Clone, Debug)]
pub struct Agent {
    node: NodeId,
    incarnation: u64,
    timing: Timing,
    wants_member: bool,
    seq: u64,
    next_token: u64,
    observed: Option<Observed>,
    round_seen: Option<(u64, u64)>,
    lease_until_ms: Option<u64>,
    last_heartbeat_commit_ms: Option<u64>,
    fenced: Option<FenceReason>,
    serving: BTreeMap<ActorId, u64>,
    pending: BTreeMap<ActorId, (u64, u64)>,
    peers: BTreeMap<NodeId, Peer>,
    probe_cursor: usize,
    in_flight: BTreeMap<u64, InFlight>,
    /// The application's requests waiting for their outcome, by token.
    requests: BTreeMap<u64, Request>,
    /// When each kind last finished (committed or refused), by local time: the policy waits for
    /// a snapshot read after that before proposing the kind again.
    finished_ms: BTreeMap<Kind, u64>,
    timers: TimerTable,
    place_requests: VecDeque<ActorId>,
    outputs: Outputs,
}

impl Agent {
    /// The Agent of `node`, holding its slot under `incarnation` (from the store's claim), at
    /// local time `now_ms`. It starts fenced, out of the cluster, and asks for a snapshot.
    pub fn new(node: NodeId, incarnation: u64, timing: Timing, now_ms: u64) -> Agent {
        let mut agent = Agent {
            node,
            incarnation,
            timing,
            wants_member: false,
            seq: 0,
            next_token: 1,
            observed: None,
            round_seen: None,
            lease_until_ms: None,
            last_heartbeat_commit_ms: None,
            fenced: Some(FenceReason::LeaseExpired),
            serving: BTreeMap::new(),
            pending: BTreeMap::new(),
            peers: BTreeMap::new(),
            probe_cursor: 0,
            in_flight: BTreeMap::new(),
            requests: BTreeMap::new(),
            finished_ms: BTreeMap::new(),
            timers: TimerTable::default(),
            place_requests: VecDeque::new(),
            outputs: Outputs::default(),
        };
        agent.outputs.read();
        let s = *timing.settings();
        agent.timers.set(Timer::Heartbeat, now_ms);
        agent.timers.set(Timer::Probe, now_ms);
        agent
            .timers
            .set(Timer::Snapshot, now_ms + s.snapshot_interval_ms);
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

    /// The application wants the node in the cluster: it proposes NodeJoin when it is Left.
    pub fn join(&mut self, now_ms: u64) {
        self.wants_member = true;
        self.evaluate(now_ms);
    }

    /// The application wants the node to leave gracefully: NodeLeave, then (once its actors have
    /// been migrated) NodeLeaveComplete.
    pub fn leave(&mut self, now_ms: u64) {
        self.wants_member = false;
        self.evaluate(now_ms);
    }

    /// The application asks for `actor` to be placed (proposed as PlaceActor once the node is
    /// Active). Refused (false) when [`PLACE_QUEUE_MAX`] requests are already waiting.
    pub fn place(&mut self, actor: ActorId, now_ms: u64) -> bool {
        if self.place_requests.len() >= PLACE_QUEUE_MAX {
            return false;
        }
        self.place_requests.push_back(actor);
        self.evaluate(now_ms);
        debug_assert!(self.place_requests.len() <= PLACE_QUEUE_MAX);
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
        true
    }

    /// The application proposes one spec action as this node, outside the policy (for
    /// administration and tests): it goes out at once as an [`Output::Propose`] with a fresh
    /// proposal id; an unknown outcome is sent again with the same id up to
    /// [`REQUEST_RETRIES_MAX`] times; the final result comes back as an [`Output::Reply`] with
    /// the id returned here, followed by a snapshot read. It leaves the policy and the timers
    /// alone. Refused when [`REQUESTS_MAX`] requests are waiting.
    pub fn submit(&mut self, event: Event) -> Result<ProposalId, TooManyRequests> {
        let waiting = self.requests.len();
        let submitted = self.submit_request(event);
        debug_assert!(submitted.is_err() || self.requests.len() == waiting + 1);
        debug_assert!(self.requests.len() <= REQUESTS_MAX);
        submitted
    }

    /// A snapshot of the registry read from the store, asked for at local time `read_at_ms`
    /// (before the read started), with the store's heartbeat round and the incarnation holding
    /// this node's slot in the same read (`None`: the store has no slot record for it).
    ///
    /// A slot held by a newer incarnation means another process took this node's place (this
    /// one was frozen, or presumed dead): the Agent fences itself for good
    /// ([`FenceReason::Superseded`]), whatever the registry says. Without this a process that
    /// proposes nothing (a Leaving node with actors needs no heartbeat) would never learn it.
    pub fn handle_snapshot(
        &mut self,
        now_ms: u64,
        read_at_ms: u64,
        state: State,
        round: u64,
        slot_incarnation: Option<u64>,
    ) {
        assert!(read_at_ms <= now_ms, "a snapshot is read before it arrives");
        if self
            .observed
            .as_ref()
            .is_some_and(|o| o.read_at_ms > read_at_ms)
        {
            return; // an older read overtaken by a newer one
        }
        let superseded = slot_incarnation.is_some_and(|held| held > self.incarnation);
        if superseded || state.node(self.node).is_none() {
            self.fence(FenceReason::Superseded);
            debug_assert!(self.serving.is_empty() && self.pending.is_empty());
            return;
        }
        match self.round_seen {
            Some((r, _)) if r == round => {}
            _ => self.round_seen = Some((round, now_ms)),
        }
        self.notify_changes(&state);
        self.observed = Some(Observed {
            state,
            round,
            read_at_ms,
        });
        self.evaluate(now_ms);
        debug_assert!(self.observed.is_some());
    }

    /// The result of a probe of `peer` sent at local time `sent_ms`: answered (`ok`), or failed
    /// or timed out.
    pub fn handle_probe(&mut self, now_ms: u64, peer: NodeId, sent_ms: u64, ok: bool) {
        self.record_probe(peer, sent_ms, ok);
        self.evaluate(now_ms);
        debug_assert!(self.peers.contains_key(&peer));
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
    }

    /// The outcome of the proposal sent with `token`. Outcomes for tokens not in flight (stale,
    /// or from before a restart) are dropped. A request's outcome ([`Agent::submit`]) leaves
    /// the policy alone.
    pub fn handle_outcome(&mut self, now_ms: u64, token: u64, outcome: ProposalOutcome) {
        if self.is_request(token) {
            self.request_outcome(token, outcome);
            debug_assert!(self.requests.len() <= REQUESTS_MAX);
            return;
        }
        if !self.in_flight.contains_key(&token) {
            return;
        }
        self.flight_outcome(now_ms, token, outcome);
        self.evaluate(now_ms);
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// Call when [`Agent::poll_timeout`]'s deadline has passed (calling earlier is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let s = *self.timing.settings();
        for timer in self.timers.due(now_ms) {
            self.timers.stop(timer);
            match timer {
                Timer::Heartbeat => {
                    self.timers
                        .set(Timer::Heartbeat, now_ms + s.heartbeat_interval_ms);
                    if self.my_status() == Some(NodeStatus::Active) {
                        self.propose(
                            now_ms,
                            crate::proposal::Action::Step(Event::SendHeartbeat { node: self.node }),
                            None,
                        );
                    }
                }
                Timer::Probe => {
                    self.timers.set(Timer::Probe, now_ms + s.probe_interval_ms);
                    self.probe_peers();
                }
                Timer::Snapshot => {
                    self.timers
                        .set(Timer::Snapshot, now_ms + s.snapshot_interval_ms);
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
