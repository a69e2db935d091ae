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
//!   `place`);
//! - outputs (`poll_*`), drained after every input, in this order: [`Agent::poll_proposal`]
//!   (proposals to run as store transactions), [`Agent::poll_probe`] (peers to probe),
//!   [`Agent::poll_read`] (whether to read a fresh snapshot), [`Agent::poll_decision`] (local
//!   decisions: fence, unfence, activate or deactivate an actor, to execute at once, in order),
//!   [`Agent::poll_notification`] (for the application), and finally
//!   [`Agent::poll_timeout`] (when to call `handle_timeout` next).
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

use crate::actor::{ActorId, MIGRATION_BATCH_MAX};
use crate::event::Event;
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::proposal::{Action, Proposal, ProposalError, ProposalId, ProposalOutcome};
use crate::state::State;
use crate::step::step;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use thiserror::Error;

/// The most place requests the application may queue before they are proposed.
pub const PLACE_QUEUE_MAX: usize = 65_536;

/// The most notifications and decisions waiting to be polled; older notifications are dropped
/// first (decisions are never dropped: they are bounded by the actors placed on the node).
pub const NOTIFICATIONS_MAX: usize = 65_536;

/// How many times a proposal whose outcome was unknown or whose store was unavailable is sent
/// again (with the same id) before the Agent gives up on it.
pub const RETRIES_MAX: u32 = 16;

/// The most proposals in flight at once (one per kind, and kinds are bounded by the nodes).
pub const IN_FLIGHT_MAX: usize = 1_024;

/// The most peers a node probes per probe round (round-robin over its peers).
pub const PROBES_PER_ROUND_MAX: usize = 8;

/// How many consecutive probes must agree (fail, or answer) before a node reports a partition
/// (or its heal), besides `suspect_after_ms` of them.
pub const PROBE_STREAK_MIN: u32 = 3;

/// A timing setting that was refused, naming both sides of the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TimingError {
    /// A setting is zero.
    #[error("{name} must be at least 1 ms")]
    Zero {
        /// The setting.
        name: &'static str,
    },
    /// The failure timeout does not exceed the lease, scaled by the clock rate error, plus a
    /// heartbeat interval: a node could be declared failed while it still serves.
    #[error(
        "failure_timeout_ms {failure_timeout_ms} must exceed lease_ms {lease_ms} x (1 + \
         {max_clock_rate_error_ppm} ppm) + heartbeat_interval_ms {heartbeat_interval_ms} = {bound}"
    )]
    FailureTimeout {
        /// The failure timeout.
        failure_timeout_ms: u64,
        /// The lease.
        lease_ms: u64,
        /// The rate error bound.
        max_clock_rate_error_ppm: u64,
        /// The heartbeat interval.
        heartbeat_interval_ms: u64,
        /// `lease_ms * (1 + ppm / 10^6) + heartbeat_interval_ms`, rounded up.
        bound: u64,
    },
    /// The lease does not exceed the heartbeat interval: a healthy node would fence itself
    /// between two heartbeats.
    #[error("lease_ms {lease_ms} must exceed heartbeat_interval_ms {heartbeat_interval_ms}")]
    Lease {
        /// The lease.
        lease_ms: u64,
        /// The heartbeat interval.
        heartbeat_interval_ms: u64,
    },
    /// The clock rate error is above 10% (100,000 ppm).
    #[error("max_clock_rate_error_ppm {0} is above 100000 (10%)")]
    RateError(u64),
}

/// The timing settings, in milliseconds of each node's local monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimingSettings {
    /// How often an Active node proposes SendHeartbeat.
    pub heartbeat_interval_ms: u64,
    /// How long a heartbeat round must be open (by a detector's clock) before it may detect a
    /// silent peer; also how old a round gets before a node opens a new one.
    pub failure_timeout_ms: u64,
    /// How long a committed heartbeat lets a node serve.
    pub lease_ms: u64,
    /// The bound on any node's clock rate error, in parts per million.
    pub max_clock_rate_error_ppm: u64,
    /// How often a node probes each peer.
    pub probe_interval_ms: u64,
    /// How long a probe may take before it counts as failed (the driver enforces it).
    pub probe_timeout_ms: u64,
    /// How long probes to a peer must keep failing (or succeeding) before the node reports the
    /// partition (or its heal).
    pub suspect_after_ms: u64,
    /// How often the node reads a snapshot when nothing wakes it earlier.
    pub snapshot_interval_ms: u64,
    /// How long to wait before sending again a proposal whose outcome was unknown or whose store
    /// was unavailable.
    pub retry_backoff_ms: u64,
    /// The most actors one migration batch moves (at most [`MIGRATION_BATCH_MAX`]).
    pub migration_batch: u64,
}

/// Validated timing settings: see [`Timing::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timing {
    settings: TimingSettings,
}

impl Timing {
    /// The default timing: heartbeats every 100 ms, a 300 ms lease, a 500 ms failure timeout,
    /// probes every 50 ms (100 ms timeout), partitions reported after 150 ms, a 200 ppm rate
    /// error bound.
    pub const DEFAULT_SETTINGS: TimingSettings = TimingSettings {
        heartbeat_interval_ms: 100,
        failure_timeout_ms: 500,
        lease_ms: 300,
        max_clock_rate_error_ppm: 200,
        probe_interval_ms: 50,
        probe_timeout_ms: 100,
        suspect_after_ms: 150,
        snapshot_interval_ms: 50,
        retry_backoff_ms: 20,
        migration_batch: 1_024,
    };

    /// A fast timing for tests and the fast failover figure: heartbeats every 25 ms, a 75 ms
    /// lease, a 125 ms failure timeout.
    pub const FAST_SETTINGS: TimingSettings = TimingSettings {
        heartbeat_interval_ms: 25,
        failure_timeout_ms: 125,
        lease_ms: 75,
        max_clock_rate_error_ppm: 200,
        probe_interval_ms: 15,
        probe_timeout_ms: 30,
        suspect_after_ms: 45,
        snapshot_interval_ms: 15,
        retry_backoff_ms: 10,
        migration_batch: 1_024,
    };

    /// Validates `settings`: every duration at least 1 ms, a rate error of at most 10%,
    /// `lease_ms > heartbeat_interval_ms`, and
    /// `failure_timeout_ms > lease_ms * (1 + max_clock_rate_error_ppm / 10^6) + heartbeat_interval_ms`.
    pub fn new(settings: TimingSettings) -> Result<Timing, TimingError> {
        let s = settings;
        for (name, value) in [
            ("heartbeat_interval_ms", s.heartbeat_interval_ms),
            ("failure_timeout_ms", s.failure_timeout_ms),
            ("lease_ms", s.lease_ms),
            ("probe_interval_ms", s.probe_interval_ms),
            ("probe_timeout_ms", s.probe_timeout_ms),
            ("suspect_after_ms", s.suspect_after_ms),
            ("snapshot_interval_ms", s.snapshot_interval_ms),
            ("retry_backoff_ms", s.retry_backoff_ms),
            ("migration_batch", s.migration_batch),
        ] {
            if value == 0 {
                return Err(TimingError::Zero { name });
            }
        }
        if s.max_clock_rate_error_ppm > 100_000 {
            return Err(TimingError::RateError(s.max_clock_rate_error_ppm));
        }
        if s.lease_ms <= s.heartbeat_interval_ms {
            return Err(TimingError::Lease {
                lease_ms: s.lease_ms,
                heartbeat_interval_ms: s.heartbeat_interval_ms,
            });
        }
        let bound = scaled_up(s.lease_ms, s.max_clock_rate_error_ppm)
            .saturating_add(s.heartbeat_interval_ms);
        if s.failure_timeout_ms <= bound {
            return Err(TimingError::FailureTimeout {
                failure_timeout_ms: s.failure_timeout_ms,
                lease_ms: s.lease_ms,
                max_clock_rate_error_ppm: s.max_clock_rate_error_ppm,
                heartbeat_interval_ms: s.heartbeat_interval_ms,
                bound,
            });
        }
        let timing = Timing { settings };
        assert!(timing.settings.failure_timeout_ms > timing.settings.lease_ms);
        assert!(timing.settings.lease_ms > timing.settings.heartbeat_interval_ms);
        Ok(timing)
    }

    /// The default timing ([`Timing::DEFAULT_SETTINGS`]).
    pub fn default_timing() -> Timing {
        Timing {
            settings: Timing::DEFAULT_SETTINGS,
        }
    }

    /// The fast timing ([`Timing::FAST_SETTINGS`]).
    pub fn fast() -> Timing {
        Timing {
            settings: Timing::FAST_SETTINGS,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TimingSettings {
        &self.settings
    }

    /// How long a node waits before activating an actor whose previous holder may still be
    /// serving it: the lease, scaled up by three times the rate error (the holder's clock may be
    /// slow, this node's fast), plus one millisecond.
    pub fn handoff_wait_ms(&self) -> u64 {
        scaled_up(
            self.settings.lease_ms,
            self.settings.max_clock_rate_error_ppm.saturating_mul(3),
        )
        .saturating_add(1)
    }
}

/// `value * (1 + ppm / 10^6)`, rounded up.
fn scaled_up(value: u64, ppm: u64) -> u64 {
    let scaled = u128::from(value) * (1_000_000 + u128::from(ppm));
    u64::try_from(scaled.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The Agent's closed set of timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// The next heartbeat.
    Heartbeat,
    /// The next round of probes.
    Probe,
    /// The next periodic snapshot read.
    Snapshot,
    /// The lease runs out.
    Lease,
    /// A deferred actor activation is due.
    Activation,
    /// A proposal is to be sent again.
    Retry,
    /// The policy looks again (a round or a suspicion may have ripened).
    Evaluate,
    /// A proposal in flight has had no outcome for too long (a driver that lost it): give up.
    Abandon,
}

/// A proposal to run, with the token its outcome must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Identifies the outcome ([`Agent::handle_outcome`]).
    pub token: u64,
    /// The proposal.
    pub proposal: Proposal,
}

/// A local decision, to execute at once and in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Stop serving everything and stop acting as primary.
    Fence,
    /// Serving may resume.
    Unfence,
    /// Start serving `actor` under `epoch`.
    Activate {
        /// The actor.
        actor: ActorId,
        /// The registry epoch of this activation.
        epoch: u64,
    },
    /// Stop serving `actor` (activation `epoch`).
    Deactivate {
        /// The actor.
        actor: ActorId,
        /// The epoch of the ended activation.
        epoch: u64,
    },
}

/// Why a node fenced itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FenceReason {
    /// No heartbeat committed for `lease_ms`.
    LeaseExpired,
    /// No snapshot could be read for `lease_ms`.
    RegistryUnreachable,
    /// The registry declared this node failed.
    DeclaredFailed,
    /// Another incarnation holds this node's slot.
    Superseded,
}

/// What the application is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notification {
    /// This node became Active.
    Joined {
        /// Its view.
        view: NodeSet,
    },
    /// This node completed its leave (it is Left).
    Left,
    /// This node became the primary.
    BecamePrimary {
        /// Its fencing term.
        term: u64,
    },
    /// This node is no longer primary.
    SteppedDown {
        /// The term it held.
        term: u64,
    },
    /// This node's view changed.
    ViewChanged {
        /// The members.
        view: NodeSet,
        /// The view's number.
        view_number: u64,
    },
    /// A node was declared failed (possibly this one).
    NodeFailed {
        /// The node.
        node: NodeId,
    },
    /// This node stopped serving everything.
    Fenced {
        /// Why.
        reason: FenceReason,
    },
    /// This node may serve again.
    Unfenced,
    /// This node started serving an actor.
    ActorActivated {
        /// The actor.
        actor: ActorId,
        /// Its epoch.
        epoch: u64,
    },
    /// This node stopped serving an actor.
    ActorDeactivated {
        /// The actor.
        actor: ActorId,
        /// The ended activation's epoch.
        epoch: u64,
    },
    /// A proposal of this node was refused or given up (for people and logs).
    ProposalFailed {
        /// The action.
        action: String,
        /// Why.
        reason: String,
    },
}

/// What kind of proposal: at most one of each kind is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Membership,
    Heartbeat,
    Reset,
    Partition(NodeId),
    Detect(NodeId),
    Fail(NodeId),
    Elect,
    StepDown,
    Sync,
    Migrate,
    Place,
}

impl Kind {
    fn of(action: &Action) -> Kind {
        match *action {
            Action::MigrateBatch { .. } => Kind::Migrate,
            Action::Step(event) => match event {
                Event::NodeJoin { .. }
                | Event::NodeJoinComplete { .. }
                | Event::NodeLeave { .. }
                | Event::NodeLeaveComplete { .. }
                | Event::NodeRecover { .. } => Kind::Membership,
                Event::SendHeartbeat { .. } => Kind::Heartbeat,
                Event::ResetHeartbeats => Kind::Reset,
                Event::CreatePartition { b, .. } | Event::HealPartition { b, .. } => {
                    Kind::Partition(b)
                }
                Event::DetectFailure { target, .. } => Kind::Detect(target),
                Event::MarkNodeFailed { node } => Kind::Fail(node),
                Event::ElectPrimary { .. } => Kind::Elect,
                Event::PrimaryStepDown { .. } => Kind::StepDown,
                Event::SyncViews { .. } => Kind::Sync,
                Event::PlaceActor { .. } | Event::RemoveActor { .. } => Kind::Place,
                Event::MigrateActor { .. } | Event::RebalanceActors { .. } => Kind::Migrate,
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    proposal: Proposal,
    kind: Kind,
    sent_ms: u64,
    /// When the latest attempt was sent (the first, or a retry): the abandon deadline counts
    /// from it.
    attempt_sent_ms: u64,
    attempts: u32,
    /// Retry due at (set while waiting to send again).
    retry_at_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Peer {
    probing: bool,
    failing_since_ms: Option<u64>,
    ok_since_ms: Option<u64>,
    /// Consecutive probes with the same result (failed while `failing_since_ms` is set,
    /// answered while `ok_since_ms` is).
    streak: u32,
}

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
    /// When each kind last finished (committed or refused), by local time: the policy waits for
    /// a snapshot read after that before proposing the kind again.
    finished_ms: BTreeMap<Kind, u64>,
    timers: BTreeMap<Timer, u64>,
    place_requests: VecDeque<ActorId>,
    out_proposals: VecDeque<Outgoing>,
    out_probes: VecDeque<NodeId>,
    out_read: bool,
    out_decisions: VecDeque<Decision>,
    out_notifications: VecDeque<Notification>,
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
            finished_ms: BTreeMap::new(),
            timers: BTreeMap::new(),
            place_requests: VecDeque::new(),
            out_proposals: VecDeque::new(),
            out_probes: VecDeque::new(),
            out_read: true,
            out_decisions: VecDeque::new(),
            out_notifications: VecDeque::new(),
        };
        let s = timing.settings;
        agent.timers.insert(Timer::Heartbeat, now_ms);
        agent.timers.insert(Timer::Probe, now_ms);
        agent
            .timers
            .insert(Timer::Snapshot, now_ms + s.snapshot_interval_ms);
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

    /// Whether the node may serve `actor` at local time `now_ms`: it has activated it, is not
    /// fenced, and its lease (Active) and its last snapshot are still fresh at `now_ms`. A
    /// driver asks this before serving each request, so a process that was frozen past its lease
    /// serves nothing when it resumes, even before its timers have run.
    pub fn may_serve(&self, actor: ActorId, now_ms: u64) -> bool {
        let Some(o) = &self.observed else {
            return false;
        };
        let fresh = now_ms < o.read_at_ms + self.timing.settings.lease_ms;
        let leased = match o.state.node(self.node).map(|r| r.status) {
            Some(NodeStatus::Active) => self.lease_until_ms.is_some_and(|u| now_ms < u),
            Some(NodeStatus::Leaving) => true,
            _ => false,
        };
        if self.never_fences(&o.state) {
            // The simulation's planted bug (feature `checking` only): lease and age ignored.
            return self.fenced.is_none() && self.serving.contains_key(&actor);
        }
        self.fenced.is_none() && self.serving.contains_key(&actor) && fresh && leased
    }

    /// Whether the simulation's planted bug `DriverMutant::NoSelfFence` (feature `checking`)
    /// is in force in `state`'s configuration. Always false in a production build.
    fn never_fences(&self, state: &State) -> bool {
        #[cfg(feature = "checking")]
        {
            state.config().driver_mutant() == Some(crate::checking::DriverMutant::NoSelfFence)
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = state;
            false
        }
    }

    /// The latest snapshot of the registry, if any.
    pub fn snapshot(&self) -> Option<&State> {
        self.observed.as_ref().map(|o| &o.state)
    }

    /// A fresh proposal id from this Agent's sequence, for a proposal the driver makes on the
    /// application's behalf (outside the policy): ids never repeat within an incarnation.
    pub fn allocate_id(&mut self) -> ProposalId {
        self.seq += 1;
        let id = ProposalId {
            node: self.node,
            incarnation: self.incarnation,
            seq: self.seq,
        };
        debug_assert!(id.seq > 0);
        id
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
        true
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
        let p = self.peers.entry(peer).or_default();
        p.probing = false;
        let same = if ok {
            p.ok_since_ms.is_some()
        } else {
            p.failing_since_ms.is_some()
        };
        p.streak = if same { p.streak.saturating_add(1) } else { 1 };
        if ok {
            p.failing_since_ms = None;
            p.ok_since_ms = Some(p.ok_since_ms.unwrap_or(sent_ms));
        } else {
            p.ok_since_ms = None;
            p.failing_since_ms = Some(p.failing_since_ms.unwrap_or(sent_ms));
        }
        debug_assert!(p.failing_since_ms.is_none() || p.ok_since_ms.is_none());
        self.evaluate(now_ms);
    }

    /// The outcome of the proposal sent with `token`. Outcomes for tokens not in flight (stale,
    /// or from before a restart) are dropped.
    pub fn handle_outcome(&mut self, now_ms: u64, token: u64, outcome: ProposalOutcome) {
        let Some(mut flight) = self.in_flight.remove(&token) else {
            return;
        };
        match outcome {
            ProposalOutcome::Committed { .. } => {
                self.finished_ms.insert(flight.kind, now_ms);
                if flight.kind == Kind::Heartbeat {
                    let until = flight.sent_ms + self.timing.settings.lease_ms;
                    self.lease_until_ms = Some(self.lease_until_ms.unwrap_or(0).max(until));
                    self.last_heartbeat_commit_ms = Some(now_ms);
                    self.timers.insert(Timer::Lease, until);
                }
                self.out_read = true;
            }
            ProposalOutcome::Refused(error) => {
                self.finished_ms.insert(flight.kind, now_ms);
                if matches!(error, ProposalError::StaleIncarnation { .. }) {
                    self.fence(FenceReason::Superseded);
                }
                // A migration batch that found the queue already drained did not fail: the
                // moves it was for were made (or the actors removed) meanwhile. Like any
                // refusal it is not sent again: the kind waits for a snapshot read after this
                // outcome, which shows whether anything is still queued.
                if !matches!(error, ProposalError::NothingToMigrate { .. }) {
                    self.notify(Notification::ProposalFailed {
                        action: flight.proposal.action.to_string(),
                        reason: error.to_string(),
                    });
                }
                self.out_read = true;
            }
            ProposalOutcome::Unavailable | ProposalOutcome::Unknown => {
                if flight.attempts < RETRIES_MAX && flight.kind != Kind::Heartbeat {
                    // Send the same proposal again (same id: a store recognises a retry of a
                    // proposal that did commit).
                    flight.attempts += 1;
                    flight.retry_at_ms = Some(now_ms + self.timing.settings.retry_backoff_ms);
                    self.in_flight.insert(token, flight);
                    self.arm_retry();
                } else {
                    self.finished_ms.insert(flight.kind, now_ms);
                    self.notify(Notification::ProposalFailed {
                        action: flight.proposal.action.to_string(),
                        reason: "gave up: the store did not answer".to_string(),
                    });
                }
            }
        }
        self.evaluate(now_ms);
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// Call when [`Agent::poll_timeout`]'s deadline has passed (calling earlier is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let s = self.timing.settings;
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, &at)| at <= now_ms)
            .map(|(&t, _)| t)
            .collect();
        for timer in due {
            self.timers.remove(&timer);
            match timer {
                Timer::Heartbeat => {
                    self.timers
                        .insert(Timer::Heartbeat, now_ms + s.heartbeat_interval_ms);
                    if self.my_status() == Some(NodeStatus::Active) {
                        self.propose(
                            now_ms,
                            Action::Step(Event::SendHeartbeat { node: self.node }),
                            None,
                        );
                    }
                }
                Timer::Probe => {
                    self.timers
                        .insert(Timer::Probe, now_ms + s.probe_interval_ms);
                    self.probe_peers();
                }
                Timer::Snapshot => {
                    self.timers
                        .insert(Timer::Snapshot, now_ms + s.snapshot_interval_ms);
                    self.out_read = true;
                }
                Timer::Retry => self.send_retries(now_ms),
                Timer::Abandon => self.abandon_silent(now_ms),
                Timer::Lease | Timer::Activation | Timer::Evaluate => {}
            }
        }
        self.evaluate(now_ms);
        debug_assert!(self.timers.contains_key(&Timer::Heartbeat));
        debug_assert!(self.timers.contains_key(&Timer::Probe));
        // Every due timer ran: no deadline at or before `now_ms` is left, so a driver that
        // sleeps until `poll_timeout` never spins.
        debug_assert!(
            self.timers.values().all(|&at| at > now_ms),
            "a deadline is still due after handle_timeout({now_ms}): {:?}",
            self.timers
        );
    }

    /// The next proposal to run as one store transaction; its outcome goes to
    /// [`Agent::handle_outcome`] with the token.
    pub fn poll_proposal(&mut self) -> Option<Outgoing> {
        self.out_proposals.pop_front()
    }

    /// The next peer to probe; the result goes to [`Agent::handle_probe`].
    pub fn poll_probe(&mut self) -> Option<NodeId> {
        self.out_probes.pop_front()
    }

    /// Whether the Agent wants a fresh snapshot (answered with [`Agent::handle_snapshot`]).
    pub fn poll_read(&mut self) -> bool {
        std::mem::take(&mut self.out_read)
    }

    /// The next local decision, to execute at once.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.out_decisions.pop_front()
    }

    /// The next notification for the application.
    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.out_notifications.pop_front()
    }

    /// When [`Agent::handle_timeout`] must be called next (local time).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.values().copied().min()
    }

    // -----------------------------------------------------------------------------------------

    fn my_status(&self) -> Option<NodeStatus> {
        let o = self.observed.as_ref()?;
        o.state.node(self.node).map(|r| r.status)
    }

    fn notify(&mut self, n: Notification) {
        if self.out_notifications.len() >= NOTIFICATIONS_MAX {
            self.out_notifications.pop_front();
        }
        self.out_notifications.push_back(n);
    }

    fn fence(&mut self, reason: FenceReason) {
        if self.fenced.is_none() {
            self.out_decisions.push_back(Decision::Fence);
        }
        // Superseded is final: once another incarnation holds the slot, this one never serves
        // again, so it is recorded (and told) even over an earlier reason.
        let superseded =
            reason == FenceReason::Superseded && self.fenced != Some(FenceReason::Superseded);
        if self.fenced.is_none() || superseded {
            self.fenced = Some(reason);
            self.notify(Notification::Fenced { reason });
        }
        let serving = std::mem::take(&mut self.serving);
        for (actor, epoch) in serving {
            self.out_decisions
                .push_back(Decision::Deactivate { actor, epoch });
            self.notify(Notification::ActorDeactivated { actor, epoch });
        }
        self.pending.clear();
        assert!(self.serving.is_empty());
        assert!(self.fenced.is_some());
    }

    /// Notifications from what changed between the last snapshot and `next`.
    fn notify_changes(&mut self, next: &State) {
        let me = self.node;
        let Some(after) = next.node(me).copied() else {
            return;
        };
        let before = self
            .observed
            .as_ref()
            .and_then(|o| o.state.node(me).copied());
        let was = before.map(|r| r.status);
        if after.status != NodeStatus::Active && was == Some(NodeStatus::Active) {
            // Left or failed: handled below.
        }
        if after.status == NodeStatus::Active && was != Some(NodeStatus::Active) {
            self.notify(Notification::Joined { view: after.view });
        }
        if after.status == NodeStatus::Left && was == Some(NodeStatus::Leaving) {
            self.notify(Notification::Left);
        }
        let was_primary = before.is_some_and(|r| r.believes_primary);
        if after.believes_primary && !was_primary {
            self.notify(Notification::BecamePrimary { term: after.term });
        }
        if was_primary && !after.believes_primary {
            let term = before.map_or(0, |r| r.term);
            self.notify(Notification::SteppedDown { term });
        }
        if after.status == NodeStatus::Active
            && before.is_some_and(|r| r.view != after.view || r.view_number != after.view_number)
        {
            self.notify(Notification::ViewChanged {
                view: after.view,
                view_number: after.view_number,
            });
        }
        if let Some(prev) = self.observed.as_ref().map(|o| &o.state) {
            let failed: Vec<NodeId> = next
                .node_ids()
                .filter(|&n| {
                    next.node(n).is_some_and(|r| r.status == NodeStatus::Failed)
                        && prev.node(n).is_some_and(|r| r.status != NodeStatus::Failed)
                })
                .collect();
            for node in failed {
                self.notify(Notification::NodeFailed { node });
            }
        }
    }

    fn probe_peers(&mut self) {
        let Some(o) = &self.observed else {
            return;
        };
        let peers: Vec<NodeId> = o
            .state
            .node_ids()
            .filter(|&n| n != self.node)
            .filter(|&n| {
                o.state.node(n).is_some_and(|r| {
                    matches!(
                        r.status,
                        NodeStatus::Active | NodeStatus::Leaving | NodeStatus::Joining
                    )
                }) || !o.state.can_communicate(self.node, n)
            })
            .collect();
        // At most PROBES_PER_ROUND_MAX peers per round, round-robin: every peer is probed at
        // least every ceil(peers / PROBES_PER_ROUND_MAX) rounds, and a node's probe traffic
        // stays bounded however large the cluster.
        let count = peers.len();
        let mut sent = 0;
        for k in 0..count {
            if sent >= PROBES_PER_ROUND_MAX {
                break;
            }
            let peer = peers[(self.probe_cursor + k) % count];
            let p = self.peers.entry(peer).or_default();
            if !p.probing {
                p.probing = true;
                self.out_probes.push_back(peer);
                sent += 1;
            }
        }
        self.probe_cursor = if count == 0 {
            0
        } else {
            (self.probe_cursor + PROBES_PER_ROUND_MAX) % count
        };
        debug_assert!(sent <= PROBES_PER_ROUND_MAX);
    }

    /// How long a proposal may stay in flight without any outcome before the Agent gives up on
    /// it (drivers always report one; this bounds the damage of one that does not).
    fn abandon_after_ms(&self) -> u64 {
        self.timing.settings.failure_timeout_ms.saturating_mul(4)
    }

    fn abandon_silent(&mut self, now_ms: u64) {
        let limit = self.abandon_after_ms();
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
                self.notify(Notification::ProposalFailed {
                    action: f.proposal.action.to_string(),
                    reason: "gave up: no outcome".to_string(),
                });
            }
        }
        self.arm_abandon();
        debug_assert!(self
            .timers
            .get(&Timer::Abandon)
            .is_none_or(|&at| at > now_ms));
    }

    /// Arms the abandon deadline for the proposals that wait for an outcome. A proposal waiting
    /// to be sent again is not counted (`abandon_silent` skips it, so a deadline of its would
    /// stay due, and a driver would be asked for a past deadline again and again until the
    /// retry); its deadline counts from the retry's send.
    fn arm_abandon(&mut self) {
        let limit = self.abandon_after_ms();
        let next = self
            .in_flight
            .values()
            .filter(|f| f.retry_at_ms.is_none())
            .map(|f| f.attempt_sent_ms + limit)
            .min();
        match next {
            Some(at) => {
                self.timers.insert(Timer::Abandon, at);
            }
            None => {
                self.timers.remove(&Timer::Abandon);
            }
        }
    }

    fn arm_retry(&mut self) {
        let next = self.in_flight.values().filter_map(|f| f.retry_at_ms).min();
        match next {
            Some(at) => {
                self.timers.insert(Timer::Retry, at);
            }
            None => {
                self.timers.remove(&Timer::Retry);
            }
        }
    }

    fn send_retries(&mut self, now_ms: u64) {
        let due: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.retry_at_ms.is_some_and(|at| at <= now_ms))
            .map(|(&t, _)| t)
            .collect();
        for token in due {
            if let Some(f) = self.in_flight.get_mut(&token) {
                f.retry_at_ms = None;
                f.attempt_sent_ms = now_ms;
                self.out_proposals.push_back(Outgoing {
                    token,
                    proposal: f.proposal,
                });
            }
        }
        self.arm_retry();
        self.arm_abandon();
    }

    /// Whether a proposal of `kind` may be made now: none in flight, and the snapshot was read
    /// after the last one finished.
    fn settled(&self, kind: Kind) -> bool {
        let in_flight = self.in_flight.values().any(|f| f.kind == kind);
        let read_at = self.observed.as_ref().map_or(0, |o| o.read_at_ms);
        !in_flight && self.finished_ms.get(&kind).is_none_or(|&at| at < read_at)
    }

    fn propose(&mut self, now_ms: u64, action: Action, round: Option<u64>) -> bool {
        let kind = Kind::of(&action);
        if self.in_flight.values().any(|f| f.kind == kind) || self.in_flight.len() >= IN_FLIGHT_MAX
        {
            return false;
        }
        self.seq += 1;
        let proposal = Proposal {
            id: ProposalId {
                node: self.node,
                incarnation: self.incarnation,
                seq: self.seq,
            },
            action,
            round,
        };
        let token = self.next_token;
        self.next_token += 1;
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
        self.out_proposals.push_back(Outgoing { token, proposal });
        self.arm_abandon();
        debug_assert!(self.in_flight.contains_key(&token));
        true
    }

    /// Proposes `event` if the reducer, run on the snapshot, accepts it and its kind is settled.
    fn propose_if_enabled(&mut self, now_ms: u64, event: Event, round: Option<u64>) -> bool {
        let Some(o) = &self.observed else {
            return false;
        };
        if !self.settled(Kind::of(&Action::Step(event))) || step(&o.state, &event).is_err() {
            return false;
        }
        self.propose(now_ms, Action::Step(event), round)
    }

    /// The policy and the serving rules: run after every input.
    fn evaluate(&mut self, now_ms: u64) {
        self.check_lease(now_ms);
        if self.observed.is_some() {
            self.decide(now_ms);
            self.reconcile(now_ms);
        }
        self.arm_evaluate(now_ms);
    }

    fn check_lease(&mut self, now_ms: u64) {
        let Some(o) = &self.observed else {
            return;
        };
        let status = o.state.node(self.node).map(|r| r.status);
        let never_fences = self.never_fences(&o.state);
        let fresh = never_fences || now_ms < o.read_at_ms + self.timing.settings.lease_ms;
        let leased = never_fences || self.lease_until_ms.is_some_and(|until| now_ms < until);
        match status {
            Some(NodeStatus::Failed) => self.fence(FenceReason::DeclaredFailed),
            Some(NodeStatus::Active) if !leased => self.fence(FenceReason::LeaseExpired),
            Some(NodeStatus::Active | NodeStatus::Leaving) if !fresh => {
                self.fence(FenceReason::RegistryUnreachable)
            }
            Some(NodeStatus::Active) | Some(NodeStatus::Leaving) => {
                // Unfence once a heartbeat committed (Active) and a snapshot read after it shows
                // the node's standing; a Leaving node cannot heartbeat and is never declared
                // failed, so a fresh snapshot is enough.
                let standing_known = status == Some(NodeStatus::Leaving)
                    || self
                        .last_heartbeat_commit_ms
                        .is_some_and(|at| at <= o.read_at_ms);
                if self.fenced.is_some()
                    && self.fenced != Some(FenceReason::Superseded)
                    && standing_known
                {
                    self.fenced = None;
                    self.out_decisions.push_back(Decision::Unfence);
                    self.notify(Notification::Unfenced);
                }
            }
            _ => {}
        }
        if let Some(until) = self.lease_until_ms {
            if until > now_ms {
                self.timers.insert(Timer::Lease, until);
            }
        }
    }

    fn decide(&mut self, now_ms: u64) {
        let Some(o) = self.observed.clone() else {
            return;
        };
        if self.fenced == Some(FenceReason::Superseded) {
            return;
        }
        let s = &o.state;
        let me = self.node;
        let Some(record) = s.node(me).copied() else {
            return;
        };
        let settings = self.timing.settings;
        match record.status {
            NodeStatus::Left => {
                if self.wants_member {
                    self.propose_if_enabled(now_ms, Event::NodeJoin { node: me }, None);
                }
            }
            NodeStatus::Joining => {
                self.propose_if_enabled(now_ms, Event::NodeJoinComplete { node: me }, None);
            }
            NodeStatus::Failed => {
                self.propose_if_enabled(now_ms, Event::NodeRecover { node: me }, None);
            }
            NodeStatus::Leaving => {
                if s.load(me) == 0 {
                    self.propose_if_enabled(now_ms, Event::NodeLeaveComplete { node: me }, None);
                }
            }
            NodeStatus::Active => {
                if !self.wants_member {
                    self.propose_if_enabled(now_ms, Event::NodeLeave { node: me }, None);
                    return;
                }
                self.report_partitions(now_ms, s);
                let round_age = self
                    .round_seen
                    .filter(|(r, _)| *r == o.round)
                    .map_or(0, |(_, seen)| now_ms.saturating_sub(seen));
                // Open a new round when this node suspects a peer whose heartbeat flag is still
                // set and the round is at least a failure timeout old; the suspecting nodes take
                // turns by rank (a late one is refused: the round moved on).
                // Only when every other Active node reports the peer unreachable too: a peer
                // that still reaches it would set its flag again with its next heartbeat.
                let suspects_flagged = record.view.without(me).iter().any(|t| {
                    s.heartbeat_received(t)
                        && s.node(t).is_some_and(|r| r.status == NodeStatus::Active)
                        && s.active()
                            .without(t)
                            .iter()
                            .all(|m| !s.can_communicate(m, t))
                });
                let rank = s.active().iter().position(|n| n == me).unwrap_or(0);
                let rank = u64::try_from(rank).unwrap_or(0);
                let reset_after =
                    settings.failure_timeout_ms + rank * settings.heartbeat_interval_ms / 2;
                if suspects_flagged && round_age >= reset_after {
                    self.propose_if_enabled(now_ms, Event::ResetHeartbeats, Some(o.round));
                }
                if round_age >= settings.failure_timeout_ms {
                    // Every Active peer may be voted on (the reducer decides whether this node's
                    // detection counts: it must not reach the peer, nor have voted already).
                    for t in s.active().without(me).iter() {
                        self.propose_if_enabled(
                            now_ms,
                            Event::DetectFailure {
                                detector: me,
                                target: t,
                            },
                            Some(o.round),
                        );
                    }
                }
                for t in s.active().without(me).iter() {
                    self.propose_if_enabled(now_ms, Event::MarkNodeFailed { node: t }, None);
                }
                self.propose_if_enabled(now_ms, Event::ElectPrimary { node: me }, None);
                self.propose_if_enabled(now_ms, Event::PrimaryStepDown { node: me }, None);
                let newer: Vec<NodeId> = s
                    .active()
                    .without(me)
                    .iter()
                    .filter(|&p| {
                        s.node(p)
                            .is_some_and(|r| r.view_number > record.view_number)
                    })
                    .collect();
                for p in newer {
                    if self.propose_if_enabled(
                        now_ms,
                        Event::SyncViews {
                            a: me.min(p),
                            b: me.max(p),
                        },
                        None,
                    ) {
                        break;
                    }
                }
                if self.fenced.is_none()
                    && s.primary_in_office() == Some(me)
                    && !s.queue().is_empty()
                    && self.settled(Kind::Migrate)
                {
                    let max = usize::try_from(settings.migration_batch)
                        .unwrap_or(MIGRATION_BATCH_MAX)
                        .min(MIGRATION_BATCH_MAX);
                    self.propose(
                        now_ms,
                        Action::MigrateBatch {
                            term: record.term,
                            max,
                        },
                        None,
                    );
                }
                while let Some(&actor) = self.place_requests.front() {
                    if s.placement(actor).is_some() {
                        self.place_requests.pop_front();
                        continue;
                    }
                    if self.propose_if_enabled(now_ms, Event::PlaceActor { actor }, None) {
                        self.place_requests.pop_front();
                    }
                    break;
                }
            }
        }
    }

    fn report_partitions(&mut self, now_ms: u64, s: &State) {
        let me = self.node;
        let after = self.timing.settings.suspect_after_ms;
        let peers: Vec<(NodeId, Peer)> = self.peers.iter().map(|(&n, &p)| (n, p)).collect();
        for (peer, p) in peers {
            let live = s.node(peer).is_some_and(|r| {
                matches!(
                    r.status,
                    NodeStatus::Active | NodeStatus::Leaving | NodeStatus::Joining
                )
            });
            let streak = p.streak >= PROBE_STREAK_MIN;
            let suspected = streak
                && p.failing_since_ms
                    .is_some_and(|since| now_ms.saturating_sub(since) >= after);
            let trusted = streak
                && p.ok_since_ms
                    .is_some_and(|since| now_ms.saturating_sub(since) >= after);
            if live && suspected && s.can_communicate(me, peer) {
                self.propose_if_enabled(now_ms, Event::CreatePartition { a: me, b: peer }, None);
            } else if trusted && !s.can_communicate(me, peer) {
                self.propose_if_enabled(now_ms, Event::HealPartition { a: me, b: peer }, None);
            }
        }
    }

    /// Serving: stop what the registry no longer places here, start what it does after the
    /// hand-off wait (see the module documentation); only what this process is serving, with
    /// the same epoch, goes on without one.
    fn reconcile(&mut self, now_ms: u64) {
        let Some(o) = &self.observed else {
            return;
        };
        let me = self.node;
        let status = o.state.node(me).map(|r| r.status);
        let desired: BTreeMap<ActorId, u64> = if self.fenced.is_none()
            && matches!(status, Some(NodeStatus::Active | NodeStatus::Leaving))
        {
            o.state
                .hosted(me)
                .map(|set| {
                    set.iter()
                        .filter_map(|&a| o.state.placement(a).map(|p| (a, p.epoch)))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let stop: Vec<(ActorId, u64)> = self
            .serving
            .iter()
            .filter(|(a, e)| desired.get(a) != Some(e))
            .map(|(&a, &e)| (a, e))
            .collect();
        for (actor, epoch) in stop {
            self.serving.remove(&actor);
            self.out_decisions
                .push_back(Decision::Deactivate { actor, epoch });
            self.notify(Notification::ActorDeactivated { actor, epoch });
        }
        self.pending
            .retain(|a, (epoch, _)| desired.get(a) == Some(epoch));
        let wait = self.timing.handoff_wait_ms();
        let mut start = Vec::new();
        for (&actor, &epoch) in &desired {
            if self.serving.get(&actor) == Some(&epoch) {
                continue;
            }
            let at = match self.pending.get(&actor) {
                Some(&(_, at)) => at,
                None => {
                    // Whoever held the actor before (a live node, a Failed one, this node's
                    // previous incarnation, this very process before a fence) may still serve
                    // it for up to a lease after its last snapshot read before the move: wait.
                    let at = now_ms + wait;
                    self.pending.insert(actor, (epoch, at));
                    at
                }
            };
            if at <= now_ms {
                start.push((actor, epoch));
            }
        }
        for (actor, epoch) in start {
            self.pending.remove(&actor);
            self.serving.insert(actor, epoch);
            self.out_decisions
                .push_back(Decision::Activate { actor, epoch });
            self.notify(Notification::ActorActivated { actor, epoch });
        }
        match self.pending.values().map(|&(_, at)| at).min() {
            Some(at) => {
                self.timers.insert(Timer::Activation, at);
            }
            None => {
                self.timers.remove(&Timer::Activation);
            }
        }
        debug_assert!(self.serving.keys().all(|a| desired.contains_key(a)));
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
    }

    /// Looks again when a round or a suspicion ripens.
    fn arm_evaluate(&mut self, now_ms: u64) {
        let s = self.timing.settings;
        let mut next: Option<u64> = None;
        let mut consider = |at: u64| {
            if at > now_ms {
                next = Some(next.map_or(at, |n: u64| n.min(at)));
            }
        };
        if let Some((_, seen)) = self.round_seen {
            consider(seen + s.failure_timeout_ms);
            consider(seen + s.failure_timeout_ms + s.heartbeat_interval_ms * 8);
        }
        if let Some(o) = &self.observed {
            consider(o.read_at_ms + s.lease_ms);
        }
        for p in self.peers.values() {
            if let Some(since) = p.failing_since_ms.or(p.ok_since_ms) {
                consider(since + s.suspect_after_ms);
            }
        }
        match next {
            Some(at) => {
                self.timers.insert(Timer::Evaluate, at);
            }
            None => {
                self.timers.remove(&Timer::Evaluate);
            }
        }
    }
}

/// The nodes that may serve each actor, at each agent's local time (agent, `now_ms`): what the
/// simulation and the drivers' tests check single activation on ([`Agent::may_serve`]).
pub fn served_by<'a>(
    agents: impl IntoIterator<Item = (&'a Agent, u64)>,
) -> BTreeMap<ActorId, BTreeSet<NodeId>> {
    let mut served: BTreeMap<ActorId, BTreeSet<NodeId>> = BTreeMap::new();
    for (agent, now_ms) in agents {
        for &actor in agent.serving.keys() {
            if agent.may_serve(actor, now_ms) {
                served.entry(actor).or_default().insert(agent.node);
            }
        }
    }
    served
}
