//! The simulated world and its event loop.
//!
//! One seed drives everything. Simulated time (microseconds) jumps from one event to the next
//! through a priority queue keyed by (time, sequence number); there are no threads and no real
//! time. Each node runs the production `Agent` exactly as the tokio runtime
//! (`drivers/src/node.rs`) glues it: after every input, the outputs are drained by the shared
//! `membership_core::drain`, in its order (proposals, probes, reads, decisions, notifications,
//! replies), then the next deadline; the application's direct proposals go through
//! `Agent::submit` as `NodeHandle::propose` does. Proposals
//! run through the production `MemoryStore`'s optimistic transactions (`begin` at one instant,
//! `try_commit` later, so that interleaved transactions really conflict), snapshots and slot
//! claims through its `Store` trait implementation.

use crate::checker::{events_text, small, Replay, WHOLE_CHECK_NODES_MAX};
use crate::coverage::{Coverage, FaultKind};
use crate::rng::{Rng, TraceHash};
use crate::world::{Params, Planted, Scenario, SCALE_ACTORS_DEFAULT, SCALE_NODES_DEFAULT};
use membership::protocol::checking::DriverMutant;
use membership::protocol::{
    drain, Action, ActorId, Agent, ClockReading, Config, Decision, Event, FenceReason, InputError,
    NodeId, NodeStatus, Notification, Output, Proposal, ProposalError, ProposalId, ProposalOutcome,
    Rounds, State, Timing, PROBE_STREAK_MIN,
};
use membership::testing::{Attempt, Fault, Transaction};
use membership::CONFLICT_RETRIES_MAX;
use membership::{MemoryStore, Snapshot, Store, StoreError};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

mod feed;
use feed::{Confirming, Feeds, Read, Replied};
pub use feed::{
    CACHE_CATCH_UP_US, FEED_BREAK_PER_MILLE, FEED_HISTORY_MAX, FEED_HISTORY_MIN, FEED_LAG_MAX_US,
};

/// The most events one run processes, liveness phase included (a run that has not converged
/// by then fails).
pub const STEPS_MAX: u64 = 10_000_000;
/// The most events a `Scale` run processes: it ends by itself once its liveness phase
/// converges (or fails); this only stops a run that never would.
pub const SCALE_STEPS_MAX: u64 = 4_000_000_000;
/// The longest a `Scale` run waits for each of its phases (every node a member, every actor
/// placed and served), in simulated ms.
pub const SCALE_PHASE_MAX_MS: u64 = 600_000;
/// The most place requests a `Scale` application keeps waiting at its node's Agent (it asks for
/// more as they are answered): enough to keep a placement batch of `PLACE_BATCH_MAX` in flight.
pub const SCALE_PLACE_OUTSTANDING_MAX: u64 = 256;
/// The most events waiting in the queue at once.
pub const QUEUE_MAX: usize = 1_000_000;
/// How many recent steps and commits a failure report shows.
pub const TAIL_MAX: usize = 40;
/// The liveness bound: once faults stop, the cluster must converge within this many failure
/// timeouts of simulated time.
pub const LIVENESS_FAILURE_TIMEOUTS: u64 = 60;
/// How often the scenario script and the liveness phase look at the cluster (ms).
pub const SCRIPT_INTERVAL_MS: u64 = 10;
/// The longest a failover or degraded scenario waits for the cluster to settle first (ms).
pub const SETTLE_MAX_MS: u64 = 30_000;
/// The longest a failover scenario waits for the failed node's actors to be served again (ms).
pub const FAILOVER_MAX_MS: u64 = 30_000;
/// How many ten-microsecond nudges the clock inversion takes at most.
const CLOCK_NUDGES_MAX: u32 = 64;
/// Every how many steps a run records its running trace hash as a checkpoint
/// ([`Report::checkpoints`]): the grain at which a pinned run's trace is compared with the one
/// recorded for it (`crate::pins`).
pub const CHECKPOINT_STEPS: u64 = 200;
/// The true time (microseconds) the timing oracles allow beyond the lease rule's exact bound: the
/// simulated clocks' integer arithmetic (a microsecond lost at each truncation and re-anchoring).
pub const CLOCK_ROUNDING_SLACK_US: u64 = 10;
/// Up to this many entries in all serving sets together (and up to `WHOLE_CHECK_NODES_MAX`
/// nodes), the driver's serving set of every process is compared with its Agent's after every
/// step; beyond it, only those of the
/// processes that took an input in the step (their sizes, and the actors they decided on), and
/// every process's whole set every [`FULL_CHECK_STEPS`] steps and at the end of the run.
pub const SERVING_FULL_CHECK_MAX: usize = 4_096;
/// Every how many steps a large world compares every serving set whole (see
/// [`SERVING_FULL_CHECK_MAX`]).
pub const FULL_CHECK_STEPS: u64 = 1 << 16;
/// Up to this many placed actors, the convergence check looks at every actor each time it is
/// asked; beyond it, only once the serving sets hold exactly one entry per placed actor (no
/// actor held twice, no stale entry left: cheap to know, and what a large converged cluster
/// also shows once its stale holders have deactivated).
pub const CONVERGED_FULL_CHECK_MAX: usize = 4_096;
/// A permit valid for longer than this (ms of its clock) never runs out: the planted
/// `driver:no-self-fence`'s, valid until the end of time.
const PERMIT_ENDLESS_MS: u64 = 1 << 40;
/// A hold (the hand-off oracle's record of a process holding an actor) that begins at the end
/// of the current step.
const HOLD_FROM_END_OF_STEP: usize = usize::MAX;
/// The most heartbeat first sends and partition report ids a process's oracle record keeps
/// (older ones, settled or abandoned by the Agent, are dropped).
const FIRST_SENDS_MAX: usize = 64;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The seed: the world's parameters and every random choice.
    pub seed: u64,
    /// The scenario.
    pub scenario: Scenario,
    /// Steps (events) of the fault phase (swarm scenario).
    pub steps: u64,
    /// A planted bug, if any.
    pub planted: Option<Planted>,
    /// A harder world: it may replace a frozen Leaving node (and let a node with a zombie
    /// process leave), so a zombie of a Leaving node resumes while its successor holds the
    /// slot. A Leaving node needs no lease and a Leaving node with actors proposes nothing, so
    /// only the slot's incarnation in its snapshots tells the zombie it was superseded (the
    /// Agent's fix of the first bug this simulation found; before it, the zombie served beside
    /// its successor). Off by default, so that the default world's seeds stay as pinned.
    pub leaving_zombies: bool,
    /// `Scale` only: the nodes of the world (`world::SCALE_NODES_DEFAULT` when `None`; at
    /// least `world::SCALE_NODES_MIN`). The other scenarios draw theirs from the seed.
    pub nodes: Option<u16>,
    /// `Scale` only: the actors the applications place (`world::SCALE_ACTORS_DEFAULT` when
    /// `None`).
    pub actors: Option<u64>,
    /// Every process reads its snapshots through its own registry cache (the etcd and
    /// FoundationDB stores' cache and confirmation rule), fed by a change feed that arrives
    /// late and breaks (the module `sim::feed`). Off by default, so that the default world's seeds stay as
    /// pinned (its draws come from a generator of its own). Not with the `Scale` scenario (the
    /// run fails at once: each commit's feed is computed from the whole registry).
    pub cache: bool,
}

impl Options {
    /// A swarm run of `steps` steps.
    pub fn swarm(seed: u64, steps: u64) -> Options {
        Options {
            seed,
            scenario: Scenario::Swarm,
            steps,
            planted: None,
            leaving_zombies: false,
            nodes: None,
            actors: None,
            cache: false,
        }
    }

    /// A `Scale` run of `nodes` nodes and `actors` actors.
    pub fn scale(seed: u64, nodes: u16, actors: u64) -> Options {
        Options {
            scenario: Scenario::Scale,
            nodes: Some(nodes),
            actors: Some(actors),
            ..Options::swarm(seed, 0)
        }
    }

    /// The world of this run: drawn from the seed, or (`Scale`) of the sizes asked for.
    pub fn params(&self) -> Params {
        match self.scenario {
            Scenario::Scale => Params::scale(
                self.seed,
                self.nodes.unwrap_or(SCALE_NODES_DEFAULT),
                self.actors.unwrap_or(SCALE_ACTORS_DEFAULT),
            ),
            _ => Params::draw(self.seed, self.scenario),
        }
    }

    /// The command that reproduces this run.
    pub fn command(&self) -> String {
        let mut planted = self
            .planted
            .map(|p| format!("DST_PLANTED={} ", p.name()))
            .unwrap_or_default();
        if self.leaving_zombies {
            planted.push_str("DST_LEAVING_ZOMBIES=1 ");
        }
        if let Some(nodes) = self.nodes {
            planted.push_str(&format!("DST_NODES={nodes} "));
        }
        if let Some(actors) = self.actors {
            planted.push_str(&format!("DST_ACTORS={actors} "));
        }
        if self.cache {
            planted.push_str("DST_CACHE=1 ");
        }
        format!(
            "DST_SEED={} DST_SCENARIO={} DST_STEPS={} {planted}cargo test -p membership-sim --test sim reproduce -- --nocapture",
            self.seed,
            self.scenario.name(),
            self.steps
        )
    }
}

/// Measurements of one run (simulated milliseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measurements {
    /// Nodes declared failed while their link to the store was cut (their probes still
    /// answered): registry v2's evidence of a silent node.
    pub declared_while_store_cut: u64,
    /// Crash to the crashed node declared failed (failover scenario).
    pub failover_declared_ms: Option<u64>,
    /// Crash to every actor the crashed node held served again by another node.
    pub failover_served_ms: Option<u64>,
    /// Crash to a new primary in office (when the primary crashed).
    pub failover_primary_ms: Option<u64>,
    /// Nodes declared failed that had no fault (failover scenario: any node but the crashed
    /// one; swarm: none counted).
    pub false_declarations: u64,
    /// Healthy nodes declared failed during and after a degraded observer's episode (degraded
    /// scenario: any node but the observer).
    pub degraded_healthy_declared: u64,
    /// Whether the degraded observer itself was declared failed (expected: its peers cannot
    /// reach it).
    pub degraded_observer_declared: bool,
    /// From the end of the faults to convergence.
    pub converged_after_ms: Option<u64>,
    /// Times an Agent, right after `handle_timeout`, still asked for a deadline at or before
    /// now (a busy loop in the tokio driver until the time passes). Expected 0: the Agent
    /// asserts it in debug builds; a release campaign counts it here.
    pub past_deadlines: u64,
    /// Processes that fenced themselves as superseded while their last snapshot showed their
    /// node Leaving: zombies of a Leaving node stopped by the slot incarnation in a snapshot
    /// (the harder world, `Options::leaving_zombies`; the first bug this simulation found).
    pub superseded_while_leaving: u64,
    /// Clock readings the Agents' watchdogs found suspicious (`Agent::handle_clock`).
    pub clock_suspicions: u64,
    /// Fences for a clock reason (`FenceReason::ClockSuspect`, told to the application; a node
    /// already fenced is not told again).
    pub clock_fences: u64,
    /// Pauses of a process that overlapped a paused VM of its node (a process pause drawn while
    /// the VM's clocks were stopped, or a VM paused under a paused process): the process stays
    /// frozen until the later of the two ends, and is judged at its first wake-up.
    pub pauses_overlapping_vm: u64,
    /// The lease oracle's margins: each time a process stops serving (all of its actors), the
    /// latest true instant the lease rule lets it serve (from its last committed heartbeat's
    /// send and its last snapshot read's send, plus `lease_ms / (1 - rate error bound)`) minus
    /// the last true instant it was seen serving. Negative: it served past the rule.
    pub lease_margins: Margins,
    /// The hand-off oracle's margins: each time a process activates an actor that another
    /// process held since the actor's previous activation, the activation's true instant minus
    /// the latest true instant any such holder may serve it by the same rule (whether or not it
    /// still does). Negative: a single-activation hazard.
    pub handoff_margins: Margins,
    /// Lease and hand-off samples left out because a clock involved ran beyond its rate error
    /// bound the way that matters: a holder's slow or stopped (a slew below the bound, a paused
    /// VM) since the instant its rule counts from, an activator's fast (a slew above the bound,
    /// a forward jump) during its last two hand-off waits. The rule assumes clocks within the
    /// bound; beyond it the clock watchdog answers for safety, and single activation as
    /// experienced checks it.
    pub margins_skipped_clock_beyond_bound: u64,
    /// CreatePartition proposals sent without `PROBE_STREAK_MIN` consecutive failed probes of
    /// the peer spanning `suspect_after_ms` (by the reporter's clock), as the simulation
    /// delivered them. Goal 0; any fails the run.
    pub unbacked_partition_reports: u64,
    /// CreatePartition proposals sent with the required agreeing probes.
    pub backed_partition_reports: u64,
    /// Snapshots delivered whose content a commit made before the read was sent had already
    /// superseded. Goal 0; any fails the run.
    pub stale_snapshots: u64,
    /// With registry caches ([`Options::cache`]): whole-registry loads (one per process start,
    /// one per feed break).
    pub cache_loads: u64,
    /// With registry caches: feed breaks (a compacted history, a dropped watch, a change that
    /// did not fit), each answered by one load.
    pub feed_breaks: u64,
    /// With registry caches: snapshots served on a confirmation younger than the reuse window.
    pub cache_reused: u64,
    /// With registry caches: confirmations that found the cache behind the store's latest
    /// commit and waited for the feed.
    pub cache_waits: u64,
    /// With registry caches: snapshot reads that failed after the engines' catch-up time.
    pub cache_timeouts: u64,
    /// `Scale`: from the start to every node Active with a primary in office.
    pub scale_members_ms: Option<u64>,
    /// `Scale`: from every node a member to every actor placed (every place request answered)
    /// and served by exactly its node's process.
    pub scale_placed_ms: Option<u64>,
    /// `Scale`: place requests answered with a placement.
    pub scale_place_answers: u64,
    /// `Scale`: place requests answered with an error (asked again). Expected 0 in the calm
    /// world.
    pub scale_place_errors: u64,
    /// `Scale`: actors the crashed node hosted (each must be served again elsewhere).
    pub scale_failover_actors: u64,
}

/// A distribution of one oracle's margins in one run, in microseconds of true time.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Margins {
    /// Every sample, in the order taken.
    pub samples_us: Vec<i64>,
}

impl std::fmt::Debug for Margins {
    // The summary, not every sample: failure and pin messages print measurements.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Margins {{ samples: {}, min_us: {:?}, median_us: {:?}, negative: {} }}",
            self.samples_us.len(),
            self.min_us(),
            self.median_us(),
            self.negative()
        )
    }
}

impl Margins {
    /// The smallest margin, if any.
    pub fn min_us(&self) -> Option<i64> {
        self.samples_us.iter().copied().min()
    }

    /// The median margin (the lower one of an even count), if any.
    pub fn median_us(&self) -> Option<i64> {
        let mut xs = self.samples_us.clone();
        xs.sort_unstable();
        xs.get(xs.len().saturating_sub(1) / 2).copied()
    }

    /// How many margins are negative.
    pub fn negative(&self) -> usize {
        self.samples_us.iter().filter(|&&m| m < 0).count()
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Report {
    /// What ran.
    pub options: Options,
    /// The world.
    pub params: Params,
    /// Steps processed.
    pub steps: u64,
    /// Simulated time at the end (ms).
    pub sim_ms: u64,
    /// Commits made.
    pub commits: u64,
    /// The trace hash (every step, byte for byte).
    pub trace_hash: u64,
    /// Coverage counts.
    pub coverage: Coverage,
    /// Measurements.
    pub measurements: Measurements,
    /// The first check that failed, with the context to reproduce it.
    pub failure: Option<String>,
    /// The running trace hash every [`CHECKPOINT_STEPS`] steps (after steps 200, 400, ...).
    pub checkpoints: Vec<u64>,
    /// The steps of the window asked for by [`run_window`] (step number, true time, what).
    pub window: Vec<String>,
}

impl Report {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Polls a store future that completes without waiting (the MemoryStore never waits).
fn ready<T>(future: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Unavailable(
            "the simulated store never waits".into(),
        )),
    }
}

/// A node's clock, piecewise linear: from true time `anchor_us` on,
/// `local = offset + (true - anchor) * (1 + rate)`, in microseconds, reported in ms. A clock
/// fault re-anchors it (`Clock::reanchored`); `STOPPED_PPM` stops it.
#[derive(Clone, Copy, Debug)]
struct Clock {
    offset_us: u64,
    rate_ppm: i64,
    anchor_us: u64,
}

/// The rate of a stopped clock (a paused VM's monotonic clocks).
const STOPPED_PPM: i64 = -1_000_000;
/// How far past `not_before` a stopped clock's deadline is put (its process is frozen; the
/// resume re-arms it).
const STOPPED_DEADLINE_US: u64 = 3_600_000_000;

impl Clock {
    fn local_us(&self, true_us: u64) -> u64 {
        let since = i128::from(true_us.saturating_sub(self.anchor_us));
        let scaled = since * (1_000_000 + i128::from(self.rate_ppm)) / 1_000_000;
        u64::try_from(scaled).unwrap_or(0) + self.offset_us
    }

    /// The same clock from true time `now_us` on, at `rate_ppm`, `jump_us` ahead.
    fn reanchored(&self, now_us: u64, rate_ppm: i64, jump_us: u64) -> Clock {
        Clock {
            offset_us: self.local_us(now_us) + jump_us,
            rate_ppm,
            anchor_us: now_us,
        }
    }

    fn local_ms(&self, true_us: u64) -> u64 {
        self.local_us(true_us) / 1_000
    }

    /// The first true time (microseconds) at which the local clock shows `local_ms`, at least
    /// `not_before`, exactly: `true_at` may overshoot by up to its nudge (10 us), which would
    /// let a check due at that instant come one step late. (A stopped clock: `true_at`'s far
    /// instant.)
    fn first_at(&self, local_ms: u64, not_before: u64) -> u64 {
        let mut high = self.true_at(local_ms, not_before);
        if self.local_ms(high) < local_ms || self.local_ms(not_before) >= local_ms {
            return if self.local_ms(not_before) >= local_ms {
                not_before
            } else {
                high
            };
        }
        // local_ms(low) < local_ms <= local_ms(high); the clock is monotonic.
        let mut low = not_before;
        let mut halvings = 0;
        while high - low > 1 && halvings < CLOCK_NUDGES_MAX {
            let mid = low + (high - low) / 2;
            if self.local_ms(mid) >= local_ms {
                high = mid;
            } else {
                low = mid;
            }
            halvings += 1;
        }
        high
    }

    /// The first true time at which the local clock shows `local_ms` (at least `not_before`).
    fn true_at(&self, local_ms: u64, not_before: u64) -> u64 {
        if self.rate_ppm <= STOPPED_PPM {
            return if self.local_ms(not_before) >= local_ms {
                not_before
            } else {
                not_before + STOPPED_DEADLINE_US
            };
        }
        let target = i128::from(local_ms) * 1_000 - i128::from(self.offset_us);
        let estimate = i128::from(self.anchor_us)
            + target * 1_000_000 / (1_000_000 + i128::from(self.rate_ppm));
        let mut t = u64::try_from(estimate.max(0)).unwrap_or(0).max(not_before);
        let mut nudges = 0;
        while self.local_ms(t) < local_ms && nudges < CLOCK_NUDGES_MAX {
            t += 10;
            nudges += 1;
        }
        let mut jumps = 0;
        while self.local_ms(t) < local_ms && jumps < CLOCK_NUDGES_MAX {
            t += 1_000 << jumps.min(20);
            jumps += 1;
        }
        assert!(
            self.local_ms(t) >= local_ms,
            "the clock reaches every local time"
        );
        t
    }
}

/// A node's other clocks, as the runtime reads them for the watchdog, and its clock faults.
#[derive(Clone, Copy, Debug)]
struct NodeClocks {
    /// The reference clock (`CLOCK_MONOTONIC_RAW`): the oscillator's rate, never slewed.
    reference: Clock,
    /// The oscillator's rate (ppm): the primary's rate when no slew is in force.
    rate_ppm: i64,
    /// The wall clock is the primary plus this many ms plus `WALL_EPOCH_MS` (it shares the
    /// primary's slewing and differs from it only by steps).
    wall_step_ms: u64,
    /// Since when (true time) both monotonic clocks are stopped (a paused VM).
    stopped_since_us: Option<u64>,
    /// Whether a slew beyond the bound is in force on the primary.
    slewed: bool,
}

/// The wall clock's reading at local time zero (ms since the Unix epoch).
const WALL_EPOCH_MS: u64 = 1_700_000_000_000;
/// A slew beyond the rate bound: 8% (what chrony's default `maxslewrate`, 83,333 ppm, allows).
const SLEW_BEYOND_PPM: i64 = 80_000;

/// Where a proposal's outcome goes: to the Agent, with its token, for its policy or for the
/// application's direct proposal (`Agent::submit`, as `NodeHandle::propose`).
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// A proposal of the Agent's policy.
    Agent(u64),
    /// A request of the application.
    Direct(u64),
}

/// A proposal on its way through the store.
#[derive(Clone, Debug)]
struct Request {
    pid: u64,
    node: NodeId,
    reply: Reply,
    proposal: Proposal,
    conflicts: u32,
    fault: Option<FaultKind>,
}

/// What the application or the fault injector does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chaos {
    Partition,
    Crash,
    Pause,
    Degraded,
    StoreCut,
    Leave,
    Direct,
    Clock,
}

#[derive(Clone, Debug)]
enum Ev {
    Start(NodeId),
    Timer {
        pid: u64,
        generation: u64,
    },
    ReadAtStore {
        pid: u64,
        read_at_ms: u64,
    },
    ReadDone {
        pid: u64,
        read_at_ms: u64,
        snapshot: Option<Box<Snapshot>>,
    },
    TxnBegin(Box<Request>),
    TxnCommit(Box<Request>, Box<Transaction>),
    ProposalDone {
        pid: u64,
        reply: Reply,
        /// Boxed: a proposal carries its placement batch inline.
        proposal: Box<Proposal>,
        outcome: ProposalOutcome,
    },
    ProbeArrive {
        from_pid: u64,
        from: NodeId,
        to: NodeId,
        probe: u64,
    },
    ProbeReply {
        pid: u64,
        probe: u64,
    },
    ProbeTimeout {
        pid: u64,
        probe: u64,
    },
    Chaos(Chaos),
    Uncut {
        cuts: Vec<(NodeId, NodeId)>,
    },
    StoreRestore(NodeId),
    Restart(NodeId),
    Replace(NodeId),
    Rejoin(NodeId),
    /// The application of a leaving node asks to complete its leave (an impatient one: possibly
    /// before its actors have moved, which the reducer refuses).
    LeaveComplete(NodeId),
    Place(ActorId),
    Script,
    /// A slew beyond the bound on the node's primary clock ends.
    ClockRestore(NodeId),
    /// A paused VM resumes: its monotonic clocks run again, its wall clock is stepped.
    ClockResume(NodeId),
    /// The change feed reaches a process's registry cache, up to this revision (`feed`).
    Feed {
        pid: u64,
        upto: u64,
    },
    /// A cache's confirmation read reaches the store.
    ConfirmAtStore(Confirming),
    /// The store's answer to a confirmation read (its latest commit) reaches the process.
    ConfirmReply(Confirming, u64),
    /// A confirmation waited for the feed as long as the engines wait.
    ConfirmTimeout {
        pid: u64,
        sent_ms: u64,
    },
}

impl Ev {
    fn tag(&self) -> u64 {
        match self {
            Ev::Start(_) => 1,
            Ev::Timer { .. } => 2,
            Ev::ReadAtStore { .. } => 3,
            Ev::ReadDone { .. } => 4,
            Ev::TxnBegin(_) => 5,
            Ev::TxnCommit(..) => 6,
            Ev::ProposalDone { .. } => 7,
            Ev::ProbeArrive { .. } => 8,
            Ev::ProbeReply { .. } => 9,
            Ev::ProbeTimeout { .. } => 10,
            Ev::Chaos(_) => 11,
            Ev::Uncut { .. } => 12,
            Ev::StoreRestore(_) => 13,
            Ev::Restart(_) => 14,
            Ev::Replace(_) => 15,
            Ev::Rejoin(_) => 16,
            Ev::Script => 17,
            Ev::Place(_) => 18,
            Ev::ClockRestore(_) => 19,
            Ev::ClockResume(_) => 20,
            Ev::LeaveComplete(_) => 21,
            Ev::Feed { .. } => 22,
            Ev::ConfirmAtStore(_) => 23,
            Ev::ConfirmReply(..) => 24,
            Ev::ConfirmTimeout { .. } => 25,
        }
    }

    /// The process the event is delivered to (deferred while it is paused), if any.
    fn target(&self) -> Option<u64> {
        match self {
            Ev::Timer { pid, .. }
            | Ev::ReadDone { pid, .. }
            | Ev::ProposalDone { pid, .. }
            | Ev::ProbeReply { pid, .. }
            | Ev::ProbeTimeout { pid, .. }
            | Ev::Feed { pid, .. }
            | Ev::ConfirmTimeout { pid, .. } => Some(*pid),
            Ev::ConfirmReply(confirming, _) => Some(confirming.pid),
            _ => None,
        }
    }
}

struct Entry {
    at_us: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap, the earliest (time, sequence) comes first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

/// One process: a node's Agent with the driver's glue state.
struct Proc {
    node: NodeId,
    agent: Agent,
    paused_until_us: u64,
    /// Its VM's clocks were stopped while it was frozen and it has not woken up since: its first
    /// wake-up feeds the stepped wall clock to the watchdog before anything else. Until then it
    /// serves nothing (it is frozen), even once its clocks run again under a longer freeze.
    clocks_stopped_unseen: bool,
    reading: bool,
    read_again: bool,
    timer_generation: u64,
    timer_at_us: Option<u64>,
    probes: BTreeMap<u64, (NodeId, u64)>,
    serving: BTreeMap<ActorId, u64>,
    /// When (true time) each actor was last activated, and the last fence and unfence: shown
    /// in failure reports.
    activated_at_us: BTreeMap<ActorId, u64>,
    fenced_at_us: Option<u64>,
    unfenced_at_us: Option<u64>,
    /// What the timing oracles know of it.
    timed: Timed,
}

/// What the timing oracles know of one process, from what the simulation delivered to it.
#[derive(Clone, Debug, Default)]
struct Timed {
    /// The true instant of the first send of each heartbeat proposal of its still waiting for
    /// a final outcome (the Agent counts its lease from the first send).
    heartbeat_sent_us: BTreeMap<ProposalId, u64>,
    /// The first send of its latest committed heartbeat whose outcome it was told (true time).
    lease_basis_us: Option<u64>,
    /// The true instant its latest delivered snapshot's read was sent.
    read_basis_us: Option<u64>,
    /// The read in flight: the true instant it was sent, and the store's latest commit revision
    /// then.
    read_sent: Option<(u64, u64)>,
    /// While it serves: the last true instant it was seen serving, the lease rule's bound then
    /// (`None`: the rule allows nothing), and the instant the rule counts from.
    serving: Option<SeenServing>,
    /// Per peer: consecutive failed probe results delivered, and the first one's send (its
    /// local ms).
    failed_probes: BTreeMap<NodeId, (u32, u64)>,
    /// The partition reports it sent (retries are the same proposal), the latest
    /// `FIRST_SENDS_MAX`.
    partition_reports: BTreeSet<ProposalId>,
    /// Whether it was frozen on stopped clocks when last looked at (its serving record then
    /// stands still until it wakes).
    skipped: bool,
    /// The hand-off oracle's record of its lease-rule bound: the value at the end of each step
    /// it was looked at in which it changed (`None`: fenced, or no bound), counted, with the
    /// largest bound from any record on read from `bound_stack`.
    bounds: BoundRecord,
    /// Per actor it holds (its serving set): the index of the bound record its hold began at
    /// ([`HOLD_FROM_END_OF_STEP`]: at the end of this step).
    hold_from: BTreeMap<ActorId, usize>,
}

/// A process's lease-rule bound as the hand-off oracle records it: every value it took at the
/// end of a step (recorded when it changes), of which only the largest from any record on is
/// ever asked for. `stack` keeps the records no later one exceeds, in record order (bounds
/// non-increasing), so that the largest from record `i` on is the first kept at `i` or later.
#[derive(Clone, Debug, Default)]
struct BoundRecord {
    /// Records made.
    count: usize,
    /// The latest record's value: (bound, basis), `None` when it may not serve.
    current: Option<(u64, u64)>,
    /// (record index, bound, basis), bounds non-increasing.
    stack: Vec<(usize, u64, u64)>,
}

impl BoundRecord {
    /// Records the value at the end of a step (a new record only when it changed, or when
    /// `anew`: the first look after a freeze on stopped clocks, whose steps count for no hold).
    fn record(&mut self, value: Option<(u64, u64)>, anew: bool) {
        if self.count > 0 && value == self.current && !anew {
            return;
        }
        let index = self.count;
        self.count += 1;
        self.current = value;
        if let Some((bound, basis)) = value {
            while self.stack.last().is_some_and(|&(_, b, _)| b < bound) {
                self.stack.pop();
            }
            self.stack.push((index, bound, basis));
        }
        debug_assert!(self
            .stack
            .windows(2)
            .all(|w| w[0].1 >= w[1].1 && w[0].0 < w[1].0));
    }

    /// The index of the latest record (the value now), or the next one before any.
    fn latest(&self) -> usize {
        self.count.saturating_sub(1)
    }

    /// The largest bound (with its basis) of the records from index `from` on; `None` when
    /// none of them allowed serving.
    fn largest_from(&self, from: usize) -> Option<(u64, u64)> {
        if from == HOLD_FROM_END_OF_STEP {
            return None;
        }
        let at = self.stack.partition_point(|&(i, _, _)| i < from);
        self.stack.get(at).map(|&(_, bound, basis)| (bound, basis))
    }
}

/// Which way a clock ran beyond its rate error bound. A slow clock stretches a holder's lease
/// in true time (a slew below the bound, a paused VM's stopped clock); a fast one shortens an
/// activator's hand-off wait (a slew above the bound, a forward jump). The other way only adds
/// margin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Beyond {
    Slow,
    Fast,
}

/// A process seen serving: the last true instant it was, the lease rule's bound then (`None`:
/// the rule allows nothing), and the true instant the rule counts from.
#[derive(Clone, Copy, Debug)]
struct SeenServing {
    last_us: u64,
    bound_us: Option<u64>,
    basis_us: u64,
}

/// A process that held an actor: the latest true instant it may serve it by the lease rule,
/// the true instant the rule counts from, and its node.
#[derive(Clone, Copy, Debug)]
struct Holder {
    bound_us: u64,
    basis_us: u64,
    node: NodeId,
}

/// `Scale`: what the applications have asked their Agents to place, and what was answered.
#[derive(Clone, Debug, Default)]
struct Placing {
    /// When every node was a member with a primary in office (placement began).
    members_at_us: Option<u64>,
    /// The next actor id to ask for (from 1).
    next: u64,
    /// Per node: place requests asked and not answered yet.
    outstanding: BTreeMap<NodeId, u64>,
    /// Actors answered with an error, to ask for again.
    again: Vec<ActorId>,
}

/// The world.
pub struct Sim {
    options: Options,
    params: Params,
    timing: Timing,
    rng: Rng,
    late_rng: Rng,
    store: MemoryStore,
    replay: Replay,
    queue: BinaryHeap<Entry>,
    seq: u64,
    now_us: u64,
    steps: u64,
    /// Each node's primary clock (the Agent's `now_ms`, `CLOCK_BOOTTIME` in the runtime).
    clocks: Vec<Clock>,
    /// Each node's reference and wall clocks and its clock faults.
    node_clocks: Vec<NodeClocks>,
    procs: BTreeMap<u64, Proc>,
    current: BTreeMap<NodeId, u64>,
    next_pid: u64,
    down: BTreeSet<NodeId>,
    cuts: BTreeMap<(NodeId, NodeId), u32>,
    /// Nodes the application asked to leave and has not asked to join again.
    leaving: BTreeSet<NodeId>,
    store_cut_until_us: BTreeMap<NodeId, u64>,
    /// Nodes crashed for good (at most one per run): never restarted.
    lost: BTreeSet<NodeId>,
    faults_on: bool,
    /// Whether the Agent being fed is handling its deadline (`handle_timeout`).
    in_timeout: bool,
    hash: TraceHash,
    coverage: Coverage,
    measurements: Measurements,
    tail: VecDeque<(u64, Ev)>,
    commits_tail: VecDeque<String>,
    commits: u64,
    failure: Option<String>,
    next_probe: u64,
    last_arrival: BTreeMap<(NodeId, NodeId), u64>,
    liveness_from_us: Option<u64>,
    done: bool,
    // Scenario state.
    settled_at_us: Option<u64>,
    crashed: Option<(NodeId, u64, BTreeSet<ActorId>, bool)>,
    degraded: Option<(NodeId, u64, u64)>,
    /// `ScaleDown`: when the leaves began, and the nodes asked to leave.
    scaled_down: Option<(u64, Vec<NodeId>)>,
    /// `Scale`: the application's placement.
    placing: Placing,
    // Timing oracles.
    /// The lease as the rule counts it in true time: `lease_ms / (1 - rate error bound)` (us,
    /// rounded up) plus `CLOCK_ROUNDING_SLACK_US`.
    lease_true_us: u64,
    /// Per node and direction: the latest true instant its primary clock ran beyond the rate
    /// error bound that way (a slew beyond it began or ended, its VM paused or resumed, it
    /// jumped).
    clock_beyond_us: BTreeMap<(NodeId, Beyond), u64>,
    /// Per actor: the processes that held it since its latest activation and hold it no more,
    /// by pid (the hand-off oracle; those that still hold it are read from their records).
    holders: BTreeMap<ActorId, BTreeMap<u64, Holder>>,
    /// Every (actor, pid) of the processes' serving sets (the driver's, kept from the Agent's
    /// decisions): who holds each actor.
    held: BTreeSet<(ActorId, u64)>,
    /// The actors two processes or more hold: the only ones single activation can fail on.
    contested: BTreeSet<ActorId>,
    /// Entries in all serving sets together.
    serving_total: usize,
    /// The processes that took an input in this step, or whose clocks, pause or lease-rule
    /// record changed: the ones the per-step checks look at (with those due).
    touched: BTreeSet<u64>,
    /// (true instant, pid): when a process must be looked at again although nothing happened
    /// to it (its permit runs out, its lease rule's bound passes, its pause ends).
    timing_due: BTreeSet<(u64, u64)>,
    /// The (pid, actor) decisions of this step.
    decided: Vec<(u64, ActorId)>,
    /// The (pid, actor) holds that begin at the end of this step (an activation, or another
    /// process's activation of an actor it still holds).
    hold_restarts: Vec<(u64, ActorId)>,
    /// The true instant of the previous step.
    prev_step_us: u64,
    /// The store's latest commit revision.
    last_revision: u64,
    /// The planted `stale-snapshot` store: the snapshot as it was before the latest commit.
    one_commit_old: Option<Box<Snapshot>>,
    /// The change feed and the processes' registry caches ([`Options::cache`]).
    feeds: Option<Feeds>,
    /// The trace hash every `CHECKPOINT_STEPS` steps.
    checkpoints: Vec<u64>,
    /// The steps (first, last) whose briefs to record, and the record.
    window: Option<(u64, u64)>,
    window_steps: Vec<String>,
}

impl Sim {
    /// A world for `options`, on the fixed protocol for `params.nodes` nodes.
    fn new(options: Options, params: Params, base: Config) -> Sim {
        let timing = Timing::new(params.timing).unwrap_or_else(|_| Timing::default_timing());
        let lease_true_us = {
            let s = timing.settings();
            let ppm = u128::from(s.max_clock_rate_error_ppm.min(999_999));
            let us = (u128::from(s.lease_ms) * 1_000 * 1_000_000).div_ceil(1_000_000 - ppm);
            u64::try_from(us).unwrap_or(u64::MAX / 4) + CLOCK_ROUNDING_SLACK_US
        };
        let mut config = base;
        match options.planted {
            Some(Planted::Reducer(m)) => {
                config = config.with_mutant(Some(m)).unwrap_or(config);
            }
            Some(Planted::Driver(m)) => config = config.with_driver_mutant(Some(m)),
            _ => {}
        }
        let store = MemoryStore::new();
        let clocks: Vec<Clock> = (0..usize::from(params.nodes))
            .map(|i| Clock {
                offset_us: params.clock_offset_us.get(i).copied().unwrap_or(0),
                rate_ppm: params.clock_rate_ppm.get(i).copied().unwrap_or(0),
                anchor_us: 0,
            })
            .collect();
        let node_clocks = clocks
            .iter()
            .map(|&c| NodeClocks {
                reference: c,
                rate_ppm: c.rate_ppm,
                wall_step_ms: 0,
                stopped_since_us: None,
                slewed: false,
            })
            .collect();
        let mut sim = Sim {
            rng: Rng::new(options.seed),
            late_rng: Rng::new(options.seed ^ 0x00A7_E0A7_E0A7),
            replay: Replay::new(config),
            options,
            timing,
            store,
            queue: BinaryHeap::new(),
            seq: 0,
            now_us: 0,
            steps: 0,
            clocks,
            node_clocks,
            procs: BTreeMap::new(),
            current: BTreeMap::new(),
            next_pid: 1,
            down: BTreeSet::new(),
            cuts: BTreeMap::new(),
            leaving: BTreeSet::new(),
            store_cut_until_us: BTreeMap::new(),
            lost: BTreeSet::new(),
            faults_on: options.scenario == Scenario::Swarm,
            in_timeout: false,
            hash: TraceHash::new(),
            coverage: Coverage {
                runs: 1,
                ..Coverage::default()
            },
            measurements: Measurements::default(),
            tail: VecDeque::new(),
            commits_tail: VecDeque::new(),
            commits: 0,
            failure: None,
            next_probe: 1,
            last_arrival: BTreeMap::new(),
            liveness_from_us: None,
            done: false,
            settled_at_us: None,
            crashed: None,
            degraded: None,
            scaled_down: None,
            placing: Placing::default(),
            lease_true_us,
            clock_beyond_us: BTreeMap::new(),
            holders: BTreeMap::new(),
            held: BTreeSet::new(),
            contested: BTreeSet::new(),
            serving_total: 0,
            touched: BTreeSet::new(),
            timing_due: BTreeSet::new(),
            decided: Vec::new(),
            hold_restarts: Vec::new(),
            prev_step_us: 0,
            last_revision: 0,
            one_commit_old: None,
            feeds: None,
            checkpoints: Vec::new(),
            window: None,
            window_steps: Vec::new(),
            params,
        };
        if let Err(e) = ready(sim.store.init(config)) {
            sim.fail(format!("store init: {e}"));
        }
        if sim.options.cache && sim.options.scenario == Scenario::Scale {
            // The feed is computed from the whole registry at every commit (`feed`).
            sim.fail(
                "registry caches (--cache) are not simulated at scale: each commit's feed \
                      is computed from the whole registry"
                    .to_string(),
            );
        } else if sim.options.cache {
            match ready(sim.store.snapshot()) {
                Ok(first) => sim.feeds = Some(Feeds::new(sim.options.seed, &first)),
                Err(e) => sim.fail(format!("store snapshot: {e}")),
            }
        }
        sim.setup();
        sim
    }

    fn setup(&mut self) {
        let nodes: Vec<NodeId> = (1..=self.params.nodes).map(NodeId).collect();
        for (i, &node) in nodes.iter().enumerate() {
            let stagger = self.rng.range(0, 200_000);
            self.push(stagger, Ev::Start(node));
            if self.clocks[i].rate_ppm != 0 || self.clocks[i].offset_us != 0 {
                self.coverage.fault(FaultKind::ClockSkewAndRate);
            }
        }
        // A `Scale` world's applications place their actors once every node is a member
        // (`scale_script`), drawing nothing.
        if self.options.scenario != Scenario::Scale {
            for actor in 1..=self.params.actors {
                let at = self.rng.range(300_000, 3_000_000);
                self.push(at, Ev::Place(ActorId(actor)));
            }
        }
        if self.options.scenario == Scenario::Swarm {
            let p = self.params.clone();
            for (chaos, every) in [
                (Chaos::Partition, p.partition_every_ms),
                (Chaos::Crash, p.crash_every_ms),
                (Chaos::Pause, p.pause_every_ms),
                (Chaos::Degraded, p.degraded_every_ms),
                (Chaos::StoreCut, p.store_cut_every_ms),
                (Chaos::Leave, p.leave_every_ms),
                (Chaos::Direct, p.direct_every_ms),
                (Chaos::Clock, p.clock_fault_every_ms),
            ] {
                if every > 0 {
                    let at = 500_000 + self.rng.range(0, every * 1_000);
                    self.push(at, Ev::Chaos(chaos));
                }
            }
        } else {
            self.push(SCRIPT_INTERVAL_MS * 1_000, Ev::Script);
        }
    }

    fn push(&mut self, at_us: u64, ev: Ev) {
        if self.queue.len() >= QUEUE_MAX {
            self.fail(format!("event queue over {QUEUE_MAX}"));
            return;
        }
        self.seq += 1;
        self.queue.push(Entry {
            at_us: at_us.max(self.now_us),
            seq: self.seq,
            ev,
        });
        debug_assert!(self.queue.len() <= QUEUE_MAX);
    }

    fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            self.failure = Some(what);
        }
        self.done = true;
    }

    fn local_ms(&self, node: NodeId) -> u64 {
        self.clock(node).local_ms(self.now_us)
    }

    fn clock(&self, node: NodeId) -> Clock {
        node.index()
            .and_then(|i| self.clocks.get(i))
            .copied()
            .unwrap_or(Clock {
                offset_us: 0,
                rate_ppm: 0,
                anchor_us: 0,
            })
    }

    fn ft_us(&self) -> u64 {
        self.timing.settings().failure_timeout_ms * 1_000
    }

    fn store_latency(&mut self) -> u64 {
        self.rng.range(50, self.params.store_latency_max_us.max(50))
    }

    fn net_delay(&mut self) -> u64 {
        let max = if self.faults_on {
            self.params.net_delay_max_us
        } else {
            // Calm: a probe's round trip stays within its timeout.
            self.params
                .net_delay_max_us
                .min(self.timing.settings().probe_timeout_ms * 1_000 / 4)
        };
        self.rng.range(50, max.max(50))
    }

    fn store_cut(&self, node: NodeId) -> bool {
        self.store_cut_until_us
            .get(&node)
            .is_some_and(|&u| u > self.now_us)
    }

    fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.get(&(from, to)).copied().unwrap_or(0) == 0
    }

    /// Runs to the end: the fault phase, the liveness phase, and the checks after every step.
    pub fn run(mut self) -> Report {
        let steps_max = if self.options.scenario == Scenario::Scale {
            SCALE_STEPS_MAX
        } else {
            STEPS_MAX
        };
        while !self.done && self.steps < steps_max {
            let Some(entry) = self.queue.pop() else {
                self.fail("the event queue ran dry".to_string());
                break;
            };
            debug_assert!(entry.at_us >= self.now_us, "time never goes back");
            self.now_us = entry.at_us;
            if self.is_noop(&entry.ev) {
                continue; // a superseded timer or an answered probe's timeout: not a step
            }
            if let Some(pid) = entry.ev.target() {
                match self.procs.get(&pid) {
                    None => continue, // a crashed process: the delivery is lost
                    Some(p) if p.paused_until_us > self.now_us => {
                        let until = p.paused_until_us;
                        self.push(until, entry.ev);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            self.steps += 1;
            self.hash.u64(entry.at_us);
            self.hash.u64(entry.ev.tag());
            self.hash.u64(entry.ev.target().unwrap_or(0));
            if self.tail.len() >= TAIL_MAX {
                self.tail.pop_front();
            }
            // Kept as events, formatted only if the run fails.
            self.tail.push_back((entry.at_us, entry.ev.clone()));
            if self
                .window
                .is_some_and(|(first, last)| (first..=last).contains(&self.steps))
            {
                self.window_steps.push(format!(
                    "step {:>7} {:>12.3} ms  {}",
                    self.steps,
                    ms_f(entry.at_us),
                    brief(&entry.ev)
                ));
            }
            // A panic in the production code under test (an assertion of the Agent, the
            // reducer or the transaction) is a failure of this seed, reported like any other.
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(entry.ev);
            }));
            if let Err(panic) = handled {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                self.fail(format!("the production code panicked: {what}"));
                break;
            }
            self.check_timing();
            self.check_serving();
            self.touched.clear();
            self.decided.clear();
            self.prev_step_us = self.now_us;
            if self.steps % CHECKPOINT_STEPS == 0 {
                self.checkpoints.push(self.hash.value());
            }
            if self.faults_on
                && self.options.scenario == Scenario::Swarm
                && self.steps >= self.options.steps
            {
                self.start_liveness();
            }
            if self.liveness_from_us.is_some() && self.steps % 16 == 0 {
                self.check_liveness();
            }
        }
        if !self.done && self.failure.is_none() {
            self.fail(format!("the run did not finish within {steps_max} steps"));
        }
        self.finish()
    }

    fn is_noop(&self, ev: &Ev) -> bool {
        match ev {
            Ev::Timer { pid, generation } => self
                .procs
                .get(pid)
                .is_none_or(|p| p.timer_generation != *generation),
            Ev::ProbeTimeout { pid, probe } => self
                .procs
                .get(pid)
                .is_none_or(|p| !p.probes.contains_key(probe)),
            _ => false,
        }
    }

    fn finish(mut self) -> Report {
        // The serving sets whole once more (a large world compares them whole only every
        // `FULL_CHECK_STEPS` steps).
        if self.failure.is_none() {
            if let Some(p) = self
                .procs
                .values()
                .find(|p| p.serving != *p.agent.serving())
            {
                self.failure = Some(format!(
                    "{}: the driver's serving set differs from the Agent's",
                    p.node
                ));
            }
        }
        // The replay whole once more (a large registry is checked whole only now and then).
        if self.failure.is_none() {
            if let Err(what) = self.replay.check_whole(&self.store) {
                self.failure = Some(what);
            }
        }
        let failure = self.failure.take().map(|what| self.failure_report(&what));
        Report {
            options: self.options,
            params: self.params.clone(),
            steps: self.steps,
            sim_ms: self.now_us / 1_000,
            commits: self.commits,
            trace_hash: self.hash.value(),
            coverage: self.coverage.clone(),
            measurements: self.measurements.clone(),
            failure,
            checkpoints: std::mem::take(&mut self.checkpoints),
            window: std::mem::take(&mut self.window_steps),
        }
    }

    fn failure_report(&self, what: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "SIMULATION FAILED: {what}");
        let _ = writeln!(
            out,
            "seed {} scenario {} planted {} at step {} ({:.3} ms simulated)",
            self.options.seed,
            self.options.scenario.name(),
            self.options
                .planted
                .map_or_else(|| "none".to_string(), |p| p.name()),
            self.steps,
            ms_f(self.now_us)
        );
        let _ = writeln!(out, "world: {:?}", self.params);
        let _ = writeln!(
            out,
            "last committed spec actions (time, proposal, actions):"
        );
        for line in &self.commits_tail {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "last simulation steps:");
        for (at_us, ev) in &self.tail {
            let _ = writeln!(out, "  {:>10.3} ms  {}", ms_f(*at_us), brief(ev));
        }
        let _ = writeln!(
            out,
            "processes (pid, node, incarnation, local ms, paused, fenced, serving):"
        );
        for (pid, p) in &self.procs {
            let now = self.local_ms(p.node);
            let status = p
                .agent
                .snapshot()
                .and_then(|s| s.node(p.node).map(|r| r.status));
            let _ = writeln!(
                out,
                "  p{pid} {} inc {} at {now} ms{}{}, its snapshot says {:?}, serving {:?}; \
                 last fenced at {:?} us, unfenced at {:?} us (true time); activated at (us) {:?}",
                p.node,
                p.agent.incarnation(),
                match (p.paused_until_us > self.now_us, p.clocks_stopped_unseen) {
                    (true, true) => ", paused (its clocks were stopped meanwhile)",
                    (true, false) => ", paused",
                    _ => "",
                },
                if p.agent.is_fenced() { ", fenced" } else { "" },
                status,
                p.agent.serving(),
                p.fenced_at_us,
                p.unfenced_at_us,
                p.activated_at_us
            );
        }
        if let Some(s) = self.store.state() {
            let _ = writeln!(out, "registry: {:?}", s.nodes());
            let _ = writeln!(out, "placements: {:?}", s.placements());
        }
        let _ = writeln!(out, "reproduce: {}", self.options.command());
        out
    }

    // ---------------------------------------------------------------------------------------
    // Events

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Start(node) | Ev::Restart(node) => self.start_process(node, false),
            Ev::Replace(node) => self.start_process(node, true),
            Ev::ClockRestore(node) => self.clock_restore(node),
            Ev::ClockResume(node) => self.clock_resume(node),
            Ev::Timer { pid, generation } => {
                let due = self
                    .procs
                    .get(&pid)
                    .is_some_and(|p| p.timer_generation == generation);
                if due {
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.timer_at_us = None;
                    }
                    self.in_timeout = true;
                    self.with_input(pid, |agent, now| agent.handle_timeout(now));
                    self.in_timeout = false;
                }
            }
            Ev::ReadAtStore { pid, read_at_ms } => {
                let node = self.procs.get(&pid).map(|p| p.node);
                let snapshot = match self.one_commit_old.clone() {
                    // The planted `stale-snapshot` store serves the snapshot one commit old.
                    Some(old) if self.planted_driver(DriverMutant::StaleSnapshot) => Some(old),
                    _ => match ready(self.store.snapshot()) {
                        Ok(s) => Some(Box::new(s)),
                        Err(_) => None,
                    },
                };
                if let Some(read) = &snapshot {
                    self.check_snapshot_content(pid, read);
                }
                let cut = node.is_some_and(|n| self.store_cut(n));
                let delay = if cut {
                    self.coverage.fault(FaultKind::StoreTimeout);
                    self.params.store_timeout_ms * 1_000
                } else {
                    self.store_latency()
                };
                let snapshot = if cut { None } else { snapshot };
                self.push(
                    self.now_us + delay,
                    Ev::ReadDone {
                        pid,
                        read_at_ms,
                        snapshot,
                    },
                );
            }
            Ev::ReadDone {
                pid,
                read_at_ms,
                snapshot,
            } => {
                self.touched.insert(pid);
                let (again, sent) = match self.procs.get_mut(&pid) {
                    Some(p) => {
                        p.reading = false;
                        (std::mem::take(&mut p.read_again), p.timed.read_sent.take())
                    }
                    None => (false, None),
                };
                let basis = match (&snapshot, sent) {
                    // A cache's snapshot: its age counts from its confirmation (`feed`).
                    (Some(s), _) if s.confirmed_at.is_some() => {
                        let label = s.confirmed_at.unwrap_or(0);
                        self.check_cached_snapshot(pid, label, read_at_ms, sent, s.revision)
                    }
                    (Some(s), Some((sent_us, revision))) => {
                        self.check_snapshot_age(pid, sent_us, revision, s.revision);
                        Some(sent_us)
                    }
                    _ => None,
                };
                if let (Some(basis), Some(p)) = (basis, self.procs.get_mut(&pid)) {
                    p.timed.read_basis_us = p.timed.read_basis_us.max(Some(basis));
                }
                if let Some(s) = snapshot {
                    let s = *s;
                    // As the node runtime: from one millisecond before the confirmation.
                    let read_at_ms = match s.confirmed_at {
                        Some(label) => read_at_ms.min(label.saturating_sub(1)),
                        None => read_at_ms,
                    };
                    self.with_input(pid, |agent, now| {
                        let slot = s.slots.get(&agent.node()).map(|slot| slot.incarnation);
                        agent.handle_snapshot(
                            now,
                            read_at_ms,
                            s.state,
                            Rounds {
                                round: s.round,
                                heartbeat_rounds: s.heartbeat_rounds,
                            },
                            slot,
                        )
                    });
                }
                if again {
                    self.read(pid);
                }
            }
            Ev::Feed { pid, upto } => self.feed_deliver(pid, upto),
            Ev::ConfirmAtStore(confirming) => self.confirm_at_store(confirming),
            Ev::ConfirmReply(confirming, commit) => self.confirm_reply(confirming, commit),
            Ev::ConfirmTimeout { pid, sent_ms } => self.confirm_timeout(pid, sent_ms),
            Ev::TxnBegin(request) => self.txn_begin(*request),
            Ev::TxnCommit(request, txn) => self.txn_commit(*request, *txn),
            Ev::ProposalDone {
                pid,
                reply,
                proposal,
                outcome,
            } => match reply {
                Reply::Agent(token) => {
                    self.note_outcome(pid, &proposal, &outcome);
                    self.with_input(pid, |agent, now| agent.handle_outcome(now, token, outcome))
                }
                Reply::Direct(token) => {
                    let _ = proposal;
                    let mut refused = None;
                    self.with_request(pid, |agent, now| {
                        refused = agent.handle_outcome(now, token, outcome).err();
                    });
                    if let Some(error) = refused {
                        self.fail(format!(
                            "the Agent of process {pid} refused an input: {error}"
                        ));
                    }
                }
            },
            Ev::ProbeArrive {
                from_pid,
                from,
                to,
                probe,
            } => self.probe_arrive(from_pid, from, to, probe),
            Ev::ProbeReply { pid, probe } => self.probe_result(pid, probe, true),
            Ev::ProbeTimeout { pid, probe } => self.probe_result(pid, probe, false),
            Ev::Chaos(chaos) => self.chaos(chaos),
            Ev::Uncut { cuts } => {
                for pair in cuts {
                    if let Some(c) = self.cuts.get_mut(&pair) {
                        *c = c.saturating_sub(1);
                        if *c == 0 {
                            self.cuts.remove(&pair);
                        }
                    }
                }
                self.coverage.fault(FaultKind::Heal);
            }
            Ev::StoreRestore(node) => {
                if self
                    .store_cut_until_us
                    .get(&node)
                    .is_some_and(|&u| u <= self.now_us)
                {
                    self.store_cut_until_us.remove(&node);
                }
            }
            Ev::LeaveComplete(node) => {
                if let Some(&pid) = self.current.get(&node) {
                    self.with_request(pid, |agent, _| {
                        // Refused only with `REQUESTS_MAX` requests waiting (see `direct`).
                        let _ = agent.submit(Event::NodeLeaveComplete { node });
                    });
                }
            }
            Ev::Rejoin(node) => {
                self.leaving.remove(&node);
                if let Some(&pid) = self.current.get(&node) {
                    self.with_agent(pid, |agent, now| agent.join(now));
                }
            }
            Ev::Script => self.script(),
            Ev::Place(actor) => {
                // The application asks a live node to place the actor (`NodeHandle::place_actor`).
                if let Some(node) = self.pick_node() {
                    if let Some(&pid) = self.current.get(&node) {
                        self.with_agent(pid, |agent, now| {
                            // A full queue drops the request, as the runtime reports it.
                            let _ = agent.place(actor, now);
                        });
                    }
                }
            }
        }
    }

    /// Feeds one input to a process's Agent (at its local time) and executes its outputs.
    fn with_agent(&mut self, pid: u64, input: impl FnOnce(&mut Agent, u64)) {
        self.touched.insert(pid);
        let Some(now) = self.wake(pid) else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        input(&mut p.agent, now);
        self.flush(pid, Reply::Agent);
    }

    /// A wake-up of process `pid`, as the runtime's loop starts every one: its node's three
    /// clocks read and fed to the Agent's watchdog (`Agent::handle_clock`). Returns the primary
    /// clock's time for the wake-up's input (`None`: no such process, or a refused reading,
    /// which fails the run).
    fn wake(&mut self, pid: u64) -> Option<u64> {
        let node = self.procs.get(&pid)?.node;
        let reading = self.clock_reading(node);
        let now_us = self.now_us;
        let p = self.procs.get_mut(&pid)?;
        // (The application may call into a frozen process here, as the simulation's direct
        // proposals do: that is no wake-up of its VM, whose stepped wall clock it has not seen.)
        if p.paused_until_us <= now_us {
            p.clocks_stopped_unseen = false;
        }
        match p.agent.handle_clock(reading) {
            Ok(fault) => {
                if fault.is_some() {
                    self.measurements.clock_suspicions += 1;
                }
                Some(reading.now_ms)
            }
            Err(error) => {
                self.fail(format!(
                    "the Agent of process {pid} refused a clock reading: {error}"
                ));
                None
            }
        }
    }

    /// `node`'s three clocks now.
    fn clock_reading(&self, node: NodeId) -> ClockReading {
        let now_ms = self.local_ms(node);
        let nc = node.index().and_then(|i| self.node_clocks.get(i));
        ClockReading {
            now_ms,
            reference_ms: nc.map_or(now_ms, |c| c.reference.local_ms(self.now_us)),
            wall_ms: WALL_EPOCH_MS + now_ms + nc.map_or(0, |c| c.wall_step_ms),
        }
    }

    /// A clock fault on a live node, drawn: its oscillator's rate changes within the bound
    /// (both monotonic clocks), a slew beyond the bound on its primary clock, a paused VM (the
    /// process frozen, both monotonic clocks stopped, the wall clock stepped on resume), or a
    /// forward jump of its primary clock (and wall clock: a suspend the reference misses).
    fn clock_fault(&mut self, minority: usize) {
        let Some(node) = self.pick_node() else {
            return;
        };
        let Some(i) = node.index() else {
            return;
        };
        self.touch_node(node);
        // While a node is leaving, half of the direct proposals ask to complete its leave (an
        // impatient application; registry v2 moves a leaver's actors within a few heartbeats).
        let kind = if !self.leaving.is_empty() && self.rng.chance(500) {
            3
        } else {
            self.rng.range(0, 4)
        };
        let lease_us = self.timing.settings().lease_ms * 1_000;
        let bound = self.timing.settings().max_clock_rate_error_ppm;
        let now = self.now_us;
        let (Some(nc), Some(&primary)) = (self.node_clocks.get(i).copied(), self.clocks.get(i))
        else {
            return;
        };
        if nc.stopped_since_us.is_some() {
            return;
        }
        match kind {
            0 => {
                let magnitude = i64::try_from(self.rng.range(0, bound + 1)).unwrap_or(0);
                let rate = if self.rng.chance(500) {
                    -magnitude
                } else {
                    magnitude
                };
                self.node_clocks[i].rate_ppm = rate;
                self.node_clocks[i].reference = nc.reference.reanchored(now, rate, 0);
                if !nc.slewed {
                    self.clocks[i] = primary.reanchored(now, rate, 0);
                }
                self.coverage.fault(FaultKind::ClockRateWithinBound);
            }
            1 => {
                if nc.slewed {
                    return;
                }
                let slew = if self.rng.chance(500) {
                    -SLEW_BEYOND_PPM
                } else {
                    SLEW_BEYOND_PPM
                };
                self.clocks[i] = primary.reanchored(now, nc.rate_ppm + slew, 0);
                self.node_clocks[i].slewed = true;
                let way = if slew < 0 { Beyond::Slow } else { Beyond::Fast };
                self.clock_beyond_us.insert((node, way), now);
                let until = now + self.rng.range(lease_us / 2, 4 * lease_us);
                self.push(until, Ev::ClockRestore(node));
                self.coverage.fault(FaultKind::ClockRateBeyondBound);
            }
            2 => {
                let Some(&pid) = self.current.get(&node) else {
                    return;
                };
                if self.disabled() >= minority {
                    return;
                }
                let length = self.rng.range(lease_us + 1, 4 * self.ft_us());
                let Some(p) = self.procs.get_mut(&pid) else {
                    return;
                };
                let overlapping = p.paused_until_us > now;
                p.paused_until_us = p.paused_until_us.max(now + length);
                p.clocks_stopped_unseen = true;
                if overlapping {
                    self.measurements.pauses_overlapping_vm += 1;
                }
                self.clocks[i] = primary.reanchored(now, STOPPED_PPM, 0);
                self.node_clocks[i].reference = nc.reference.reanchored(now, STOPPED_PPM, 0);
                self.node_clocks[i].stopped_since_us = Some(now);
                self.clock_beyond_us.insert((node, Beyond::Slow), now);
                self.push(now + length, Ev::ClockResume(node));
                self.coverage.fault(FaultKind::ClockStopped);
            }
            _ => {
                let jump = self.rng.range(1_000, 2 * lease_us);
                self.clocks[i] = primary.reanchored(now, primary.rate_ppm, jump);
                self.clock_beyond_us.insert((node, Beyond::Fast), now);
                self.coverage.fault(FaultKind::ClockJump);
            }
        }
    }

    /// A slew beyond the bound on `node`'s primary clock ends: it runs at the oscillator's rate
    /// again.
    fn clock_restore(&mut self, node: NodeId) {
        let Some(i) = node.index() else {
            return;
        };
        self.touch_node(node);
        let (Some(nc), Some(&primary)) = (self.node_clocks.get(i).copied(), self.clocks.get(i))
        else {
            return;
        };
        if nc.slewed && nc.stopped_since_us.is_none() {
            let way = if primary.rate_ppm < nc.rate_ppm {
                Beyond::Slow
            } else {
                Beyond::Fast
            };
            self.clocks[i] = primary.reanchored(self.now_us, nc.rate_ppm, 0);
            self.node_clocks[i].slewed = false;
            self.clock_beyond_us.insert((node, way), self.now_us);
        }
    }

    /// A paused VM resumes: both monotonic clocks run again from where they stopped, the wall
    /// clock is stepped by the pause, and the process wakes up (its first input is the clock
    /// reading).
    fn clock_resume(&mut self, node: NodeId) {
        let Some(i) = node.index() else {
            return;
        };
        self.touch_node(node);
        let (Some(nc), Some(&primary)) = (self.node_clocks.get(i).copied(), self.clocks.get(i))
        else {
            return;
        };
        let Some(since) = nc.stopped_since_us else {
            return;
        };
        let now = self.now_us;
        // Its clocks stood still until now, and a slew under way ends with the pause.
        self.clock_beyond_us.insert((node, Beyond::Slow), now);
        if nc.slewed {
            self.clock_beyond_us.insert((node, Beyond::Fast), now);
        }
        self.clocks[i] = primary.reanchored(now, nc.rate_ppm, 0);
        self.node_clocks[i] = NodeClocks {
            reference: nc.reference.reanchored(now, nc.rate_ppm, 0),
            wall_step_ms: nc.wall_step_ms + (now - since) / 1_000,
            stopped_since_us: None,
            slewed: false,
            ..nc
        };
        let pid = self.current.get(&node).copied();
        if let Some(pid) = pid.filter(|pid| {
            self.procs
                .get(pid)
                .is_some_and(|p| p.paused_until_us <= now)
        }) {
            self.with_input(pid, |agent, now| agent.handle_timeout(now));
        }
    }

    /// Feeds one of the Agent's `handle_*` inputs (see `with_agent`). The simulation never
    /// feeds a bad input, so a refused one fails the run.
    fn with_input(
        &mut self,
        pid: u64,
        input: impl FnOnce(&mut Agent, u64) -> Result<(), InputError>,
    ) {
        let mut refused = None;
        self.with_agent(pid, |agent, now| refused = input(agent, now).err());
        if let Some(error) = refused {
            self.fail(format!(
                "the Agent of process {pid} refused an input: {error}"
            ));
        }
    }

    /// Feeds a request of the application (`Agent::submit`, or its outcome) to a process's
    /// Agent and executes its outputs. A request leaves the Agent's timers alone (asserted), so
    /// its deadline is not armed again (arming recomputes the true time from now, which would
    /// move a timer held back by a pause).
    fn with_request(&mut self, pid: u64, input: impl FnOnce(&mut Agent, u64)) {
        self.touched.insert(pid);
        let Some(now) = self.wake(pid) else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let deadline = p.agent.poll_timeout();
        input(&mut p.agent, now);
        debug_assert_eq!(p.agent.poll_timeout(), deadline);
        self.flush(pid, Reply::Direct);
    }

    /// The driver's glue, as `drivers/src/node.rs` does it: the Agent's outputs from the shared
    /// `drain` (recorded, then executed in its order: this world holds the Agent), then the
    /// next deadline (not for a request's input: see `with_request`). `reply` says whose
    /// proposals these are.
    fn flush(&mut self, pid: u64, reply: fn(u64) -> Reply) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let node = p.node;
        let mut outputs: Vec<Output> = Vec::new();
        drain(&mut p.agent, &mut outputs);
        let was_leaving = p
            .agent
            .snapshot()
            .and_then(|s| s.node(node))
            .is_some_and(|r| r.status == NodeStatus::Leaving);
        let deadline = p.agent.poll_timeout();
        for output in outputs {
            match output {
                Output::Propose(out) => self.send(pid, reply(out.token), out.proposal),
                Output::Probe(peer) => self.send_probe(pid, node, peer),
                Output::Read => self.read(pid),
                Output::Decide(d) => self.decide(pid, d),
                Output::Notify(Notification::NodeFailed { .. }) => self.hash.u64(5),
                Output::Notify(Notification::Fenced {
                    reason: FenceReason::ClockSuspect(_),
                }) => self.measurements.clock_fences += 1,
                Output::Notify(Notification::Fenced {
                    reason: FenceReason::Superseded,
                }) if was_leaving => self.measurements.superseded_while_leaving += 1,
                Output::Placed { actor, result } => self.placed(node, actor, result.is_ok()),
                Output::Notify(_) | Output::Reply { .. } => {}
            }
        }
        if matches!(reply(0), Reply::Direct(_)) {
            return;
        }
        if let Some(at_ms) = deadline {
            let mut at = self.clock(node).true_at(at_ms, self.now_us);
            if let Some(p) = self.procs.get_mut(&pid) {
                if at <= self.now_us && self.in_timeout {
                    // A deadline still due right after `handle_timeout` ran (the Agent's
                    // postcondition forbids it; its debug assertion is off in release): tokio's
                    // `sleep_until` would fire again at once, over and over, as real time
                    // passes (a busy loop); simulated time passes only between events, so wait
                    // one tick (tokio's timer resolution, 1 ms) and count it.
                    at = self.now_us + 1_000;
                    self.measurements.past_deadlines += 1;
                }
                if p.timer_at_us != Some(at) {
                    p.timer_at_us = Some(at);
                    p.timer_generation += 1;
                    let generation = p.timer_generation;
                    self.push(at, Ev::Timer { pid, generation });
                }
            }
        }
    }

    /// A place request's final result reached `node`'s application (`Scale` counts them, and
    /// asks again for an actor answered with an error; the other scenarios' applications do not
    /// look).
    fn placed(&mut self, node: NodeId, actor: ActorId, ok: bool) {
        if self.options.scenario != Scenario::Scale {
            return;
        }
        if let Some(n) = self.placing.outstanding.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
        if ok {
            self.measurements.scale_place_answers += 1;
        } else {
            self.measurements.scale_place_errors += 1;
            self.placing.again.push(actor);
        }
    }

    /// Process `pid` starts serving `actor` (an activation): its serving set, the index of who
    /// holds what, and the hand-off oracle's record (its hold begins at the end of this step).
    fn hold(&mut self, pid: u64, actor: ActorId, epoch: u64) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.serving.insert(actor, epoch).is_none() {
            self.serving_total += 1;
        }
        p.timed.hold_from.insert(actor, HOLD_FROM_END_OF_STEP);
        self.hold_restarts.push((pid, actor));
        self.held.insert((actor, pid));
        if self.holders_of(actor).nth(1).is_some() {
            self.contested.insert(actor);
        }
    }

    /// Process `pid` stops serving `actor` (a deactivation, a fence, or its crash, which calls
    /// this on a process already removed: `p` then): its serving set, the index, and the
    /// hand-off oracle's record of its hold, kept in `holders` until the actor's next activation.
    fn unhold(&mut self, pid: u64, actor: ActorId) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.serving.remove(&actor).is_some() {
            self.serving_total -= 1;
        }
        let node = p.node;
        let hold = p
            .timed
            .hold_from
            .remove(&actor)
            .and_then(|from| p.timed.bounds.largest_from(from));
        self.unhold_index(pid, actor);
        if let Some((bound_us, basis_us)) = hold {
            self.note_holder(
                actor,
                pid,
                Holder {
                    bound_us,
                    basis_us,
                    node,
                },
            );
        }
    }

    /// Removes (actor, pid) from the index of who holds what.
    fn unhold_index(&mut self, pid: u64, actor: ActorId) {
        if self.held.remove(&(actor, pid)) && self.holders_of(actor).nth(1).is_none() {
            self.contested.remove(&actor);
        }
    }

    /// The processes whose serving set holds `actor`, in pid order.
    fn holders_of(&self, actor: ActorId) -> impl Iterator<Item = u64> + '_ {
        self.held
            .range((actor, 0)..=(actor, u64::MAX))
            .map(|&(_, pid)| pid)
    }

    /// Records that `pid` held `actor` since its latest activation, with the largest lease-rule
    /// bound it had meanwhile (the hand-off oracle's `holders`).
    fn note_holder(&mut self, actor: ActorId, pid: u64, h: Holder) {
        let holders = self.holders.entry(actor).or_default();
        let entry = holders.entry(pid).or_insert(h);
        if h.bound_us > entry.bound_us {
            *entry = h;
        }
    }

    /// Executes a local decision of process `pid` (and hashes it).
    fn decide(&mut self, pid: u64, d: Decision) {
        if let Some(p) = self.procs.get_mut(&pid) {
            match d {
                Decision::Fence => {
                    let actors: Vec<ActorId> = p.serving.keys().copied().collect();
                    p.fenced_at_us = Some(self.now_us);
                    for actor in actors {
                        self.unhold(pid, actor);
                    }
                }
                Decision::Unfence => p.unfenced_at_us = Some(self.now_us),
                Decision::Activate { actor, epoch } => {
                    p.activated_at_us.insert(actor, self.now_us);
                    let node = p.node;
                    self.hold(pid, actor, epoch);
                    self.check_handoff(pid, node, actor);
                }
                Decision::Deactivate { actor, .. } => self.unhold(pid, actor),
            }
        }
        if let Decision::Activate { actor, .. } | Decision::Deactivate { actor, .. } = d {
            self.decided.push((pid, actor));
        }
        self.hash.u64(match d {
            Decision::Fence => 1,
            Decision::Unfence => 2,
            Decision::Activate { actor, epoch } => 3 ^ (actor.0 << 8) ^ (epoch << 40),
            Decision::Deactivate { actor, epoch } => 4 ^ (actor.0 << 8) ^ (epoch << 40),
        });
    }

    fn read(&mut self, pid: u64) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.reading {
            p.read_again = true;
            return;
        }
        p.reading = true;
        p.timed.read_sent = Some((self.now_us, self.last_revision));
        let node = p.node;
        let read_at_ms = self.local_ms(node);
        if self.store_cut(node) {
            self.coverage.fault(FaultKind::StoreTimeout);
            let at = self.now_us + self.params.store_timeout_ms * 1_000;
            self.push(
                at,
                Ev::ReadDone {
                    pid,
                    read_at_ms,
                    snapshot: None,
                },
            );
            return;
        }
        if self.cached() {
            return self.cache_read(pid, read_at_ms);
        }
        let at = self.now_us + self.store_latency();
        self.push(at, Ev::ReadAtStore { pid, read_at_ms });
    }

    fn send(&mut self, pid: u64, reply: Reply, proposal: Proposal) {
        let Some(node) = self.procs.get(&pid).map(|p| p.node) else {
            return;
        };
        if matches!(reply, Reply::Agent(_)) {
            self.note_send(pid, &proposal);
        }
        if self.store_cut(node) {
            // The request is lost on the cut link: the driver's timeout says unknown.
            self.coverage.fault(FaultKind::StoreTimeout);
            let at = self.now_us + self.params.store_timeout_ms * 1_000;
            self.push(
                at,
                Ev::ProposalDone {
                    pid,
                    reply,
                    proposal: Box::new(proposal),
                    outcome: ProposalOutcome::Unknown,
                },
            );
            return;
        }
        let fault = if !self.faults_on {
            None
        } else {
            let p = &self.params;
            let (before, after, unavailable) = (p.unknown_before, p.unknown_after, p.unavailable);
            let draw = self.rng.range(0, 999);
            if draw < before {
                Some(FaultKind::UnknownBeforeCommit)
            } else if draw < before + after {
                Some(FaultKind::UnknownAfterCommit)
            } else if draw < before + after + unavailable {
                Some(FaultKind::StoreUnavailable)
            } else {
                None
            }
        };
        // Drawn from a stream of its own, so that adding this fault left the other draws alone.
        let late =
            self.faults_on && fault.is_none() && self.late_rng.chance(self.params.late_apply);
        let fault = if late {
            Some(FaultKind::LateApply)
        } else {
            fault
        };
        let request = Request {
            pid,
            node,
            reply,
            proposal,
            conflicts: 0,
            fault,
        };
        let at = if late {
            // The request waits at the store past the driver's timeout: the driver reports
            // unknown, and the transaction still runs (and may commit) later.
            self.coverage.fault(FaultKind::LateApply);
            let timeout_us = self.params.store_timeout_ms * 1_000;
            self.push(
                self.now_us + timeout_us,
                Ev::ProposalDone {
                    pid,
                    reply,
                    proposal: Box::new(proposal),
                    outcome: ProposalOutcome::Unknown,
                },
            );
            self.now_us + timeout_us + self.late_rng.range(1, timeout_us)
        } else {
            self.now_us + self.store_latency()
        };
        self.push(at, Ev::TxnBegin(Box::new(request)));
    }

    fn respond(&mut self, request: &Request, outcome: ProposalOutcome) {
        if request.fault == Some(FaultKind::LateApply) {
            return; // the driver gave up on it long ago
        }
        let delay = if self.store_cut(request.node) {
            self.coverage.fault(FaultKind::StoreTimeout);
            return self.push(
                self.now_us + self.params.store_timeout_ms * 1_000,
                Ev::ProposalDone {
                    pid: request.pid,
                    reply: request.reply,
                    proposal: Box::new(request.proposal),
                    outcome: ProposalOutcome::Unknown,
                },
            );
        } else {
            self.store_latency()
        };
        self.push(
            self.now_us + delay,
            Ev::ProposalDone {
                pid: request.pid,
                reply: request.reply,
                proposal: Box::new(request.proposal),
                outcome,
            },
        );
    }

    fn txn_begin(&mut self, request: Request) {
        match request.fault {
            Some(FaultKind::UnknownBeforeCommit) if request.conflicts == 0 => {
                self.coverage.fault(FaultKind::UnknownBeforeCommit);
                return self.respond(&request, ProposalOutcome::Unknown);
            }
            Some(FaultKind::StoreUnavailable) if request.conflicts == 0 => {
                self.coverage.fault(FaultKind::StoreUnavailable);
                return self.respond(&request, ProposalOutcome::Unavailable);
            }
            _ => {}
        }
        match self.store.begin() {
            Ok(txn) => {
                let exec = self.rng.range(0, self.params.store_exec_max_us);
                self.push(
                    self.now_us + exec,
                    Ev::TxnCommit(Box::new(request), Box::new(txn)),
                );
            }
            Err(_) => self.respond(&request, ProposalOutcome::Unavailable),
        }
    }

    fn txn_commit(&mut self, mut request: Request, txn: Transaction) {
        assert!(request.conflicts < CONFLICT_RETRIES_MAX);
        let after = request.fault == Some(FaultKind::UnknownAfterCommit);
        let store_fault = match self.options.planted {
            Some(Planted::ApplyTwice) if after => Some(Fault::ApplyTwice),
            Some(Planted::ReadsLess) => Some(Fault::ValidatesOnlyWrites),
            _ => None,
        };
        // The planted `stale-snapshot` store keeps the snapshot as it was before each commit.
        let before = if self.planted_driver(DriverMutant::StaleSnapshot) {
            ready(self.store.snapshot()).ok().map(Box::new)
        } else {
            None
        };
        match self.store.try_commit(txn, &request.proposal, store_fault) {
            Attempt::Committed(commit, revision) => {
                if !commit.duplicate {
                    self.last_revision = self.last_revision.max(revision);
                    if before.is_some() {
                        self.one_commit_old = before;
                    }
                    self.commits += 1;
                    self.feed_sync();
                    self.hash.u64(revision);
                    self.hash.bytes(events_text(&commit.events).as_bytes());
                    if self.commits_tail.len() >= TAIL_MAX {
                        self.commits_tail.pop_front();
                    }
                    self.commits_tail.push_back(format!(
                        "{:>10.3} ms  r{revision} {}  {}",
                        ms_f(self.now_us),
                        request.proposal.id,
                        events_text(&commit.events)
                    ));
                    self.after_commit();
                }
                let outcome = if after {
                    self.coverage.fault(FaultKind::UnknownAfterCommit);
                    ProposalOutcome::Unknown
                } else {
                    ProposalOutcome::Committed {
                        effects: commit.effects,
                    }
                };
                self.respond(&request, outcome);
            }
            Attempt::Conflict => {
                self.coverage.fault(FaultKind::Conflict);
                request.conflicts += 1;
                if request.conflicts >= CONFLICT_RETRIES_MAX {
                    self.respond(&request, ProposalOutcome::Unavailable);
                } else {
                    let at = self.now_us + self.store_latency() / 4;
                    self.push(at, Ev::TxnBegin(Box::new(request)));
                }
            }
            Attempt::Done(Ok(outcome)) => {
                if let ProposalOutcome::Refused(error) = &outcome {
                    self.coverage.refusal(error);
                }
                self.respond(&request, outcome);
            }
            Attempt::Done(Err(_)) => self.respond(&request, ProposalOutcome::Unavailable),
        }
    }

    /// The independent checker after every commit, and the measurements that watch commits.
    fn after_commit(&mut self) {
        let mut seen: Vec<Event> = Vec::new();
        let result = self
            .replay
            .catch_up(&self.store, |_, event| seen.push(*event));
        for event in &seen {
            self.coverage.action(event.name());
            if let Event::MarkNodeFailed { node } = *event {
                self.on_declared(node);
            }
        }
        if let Err(what) = result {
            self.fail(what);
        }
    }

    fn on_declared(&mut self, node: NodeId) {
        if self.store_cut(node) {
            self.measurements.declared_while_store_cut += 1;
        }
        match self.options.scenario {
            Scenario::Swarm => {}
            Scenario::Failover | Scenario::ScaleDown | Scenario::Scale => match &self.crashed {
                Some((n, at, _, _)) if *n == node => {
                    if self.measurements.failover_declared_ms.is_none() {
                        self.measurements.failover_declared_ms = Some((self.now_us - at) / 1_000);
                    }
                }
                _ => self.measurements.false_declarations += 1,
            },
            Scenario::Degraded => match self.degraded {
                Some((x, _, _)) if x == node => self.measurements.degraded_observer_declared = true,
                Some(_) => self.measurements.degraded_healthy_declared += 1,
                None => self.measurements.false_declarations += 1,
            },
        }
    }

    // ---------------------------------------------------------------------------------------
    // Probes

    fn send_probe(&mut self, pid: u64, from: NodeId, to: NodeId) {
        let probe = self.next_probe;
        self.next_probe += 1;
        let sent_ms = self.local_ms(from);
        if let Some(p) = self.procs.get_mut(&pid) {
            p.probes.insert(probe, (to, sent_ms));
        }
        let timeout_ms = sent_ms + self.timing.settings().probe_timeout_ms;
        let at = self.clock(from).true_at(timeout_ms, self.now_us);
        self.push(at, Ev::ProbeTimeout { pid, probe });
        if !self.link_up(from, to) {
            return;
        }
        let copies = if self.faults_on && self.rng.chance(self.params.duplication) {
            self.coverage.fault(FaultKind::ProbeDuplicate);
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.faults_on && self.rng.chance(self.params.loss) {
                self.coverage.fault(FaultKind::ProbeLoss);
                continue;
            }
            let at = self.now_us + self.net_delay();
            self.push(
                at,
                Ev::ProbeArrive {
                    from_pid: pid,
                    from,
                    to,
                    probe,
                },
            );
        }
    }

    fn probe_arrive(&mut self, from_pid: u64, from: NodeId, to: NodeId, probe: u64) {
        let last = self.last_arrival.entry((from, to)).or_default();
        if probe < *last {
            self.coverage.fault(FaultKind::ProbeReorder);
        }
        *last = (*last).max(probe);
        let Some(&target) = self.current.get(&to) else {
            return;
        };
        let Some(p) = self.procs.get(&target) else {
            return; // crashed: nobody answers
        };
        if p.paused_until_us > self.now_us {
            // Frozen: the answer waits until it resumes.
            let until = p.paused_until_us;
            self.push(
                until,
                Ev::ProbeArrive {
                    from_pid,
                    from,
                    to,
                    probe,
                },
            );
            return;
        }
        if !self.link_up(to, from) {
            return;
        }
        if self.faults_on && self.rng.chance(self.params.loss) {
            self.coverage.fault(FaultKind::ProbeLoss);
            return;
        }
        let at = self.now_us + self.net_delay();
        self.push(
            at,
            Ev::ProbeReply {
                pid: from_pid,
                probe,
            },
        );
    }

    fn probe_result(&mut self, pid: u64, probe: u64, ok: bool) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        // One result per probe (the driver's probe returns once): a duplicate or late answer
        // after the timeout is dropped.
        let Some((peer, sent_ms)) = p.probes.remove(&probe) else {
            return;
        };
        if !ok {
            self.coverage.fault(FaultKind::ProbeTimeout);
        }
        // What the partition-report oracle knows: the failed results delivered in a row.
        if ok {
            p.timed.failed_probes.remove(&peer);
        } else {
            let failed = p.timed.failed_probes.entry(peer).or_insert((0, sent_ms));
            failed.0 = failed.0.saturating_add(1);
        }
        self.with_input(pid, |agent, now| agent.handle_probe(now, peer, sent_ms, ok));
    }

    // ---------------------------------------------------------------------------------------
    // Processes

    fn start_process(&mut self, node: NodeId, replacement: bool) {
        if self.lost.contains(&node) {
            // Lost for good: no restart, no replacement (one drawn before the loss included).
            return;
        }
        if replacement && !self.options.leaving_zombies {
            let leaving = self
                .store
                .state()
                .and_then(|s| s.node(node).map(|r| r.status == NodeStatus::Leaving))
                .unwrap_or(false);
            if leaving {
                return; // only in the harder world: see `Options::leaving_zombies`
            }
        }
        if !replacement && !self.down.contains(&node) && self.current.contains_key(&node) {
            return; // already running
        }
        if self.store_cut(node) {
            // It cannot claim its slot yet: try again shortly.
            self.push(self.now_us + 50_000, Ev::Restart(node));
            return;
        }
        let address = format!("sim:{}", node.0);
        let slot = match ready(self.store.claim(node, &address)) {
            Ok(slot) => slot,
            Err(e) => return self.fail(format!("claim of {node} failed: {e}")),
        };
        assert!(slot.incarnation >= 1, "a claim grants a fresh incarnation");
        self.feed_sync();
        let now = self.local_ms(node);
        let mut agent = Agent::new(node, slot.incarnation, self.timing, now);
        agent.join(now);
        let pid = self.next_pid;
        self.next_pid += 1;
        if self.down.remove(&node) && self.current.contains_key(&node) {
            self.coverage.fault(FaultKind::Restart);
        }
        self.current.insert(node, pid);
        self.procs.insert(
            pid,
            Proc {
                node,
                agent,
                paused_until_us: 0,
                clocks_stopped_unseen: false,
                reading: false,
                read_again: false,
                timer_generation: 0,
                timer_at_us: None,
                probes: BTreeMap::new(),
                serving: BTreeMap::new(),
                activated_at_us: BTreeMap::new(),
                fenced_at_us: None,
                unfenced_at_us: None,
                timed: Timed::default(),
            },
        );
        self.hash.u64(pid);
        self.hash.u64(slot.incarnation);
        self.cache_start(pid);
        self.touched.insert(pid);
        self.flush(pid, Reply::Agent);
        debug_assert_eq!(self.current.get(&node), Some(&pid));
    }

    fn live_nodes(&self) -> Vec<NodeId> {
        self.current
            .iter()
            .filter(|(_, pid)| self.procs.contains_key(pid))
            .map(|(&n, _)| n)
            .collect()
    }

    fn pick_node(&mut self) -> Option<NodeId> {
        let nodes = self.live_nodes();
        if nodes.is_empty() {
            return None;
        }
        let i = self.rng.index(nodes.len());
        nodes.get(i).copied()
    }

    fn crash(&mut self, node: NodeId) {
        if let Some(&pid) = self.current.get(&node) {
            if let Some(seen) = self.seen_serving(pid) {
                // It stops serving at its crash: the lease oracle's margin of its last serving.
                self.lease_margin(seen, node);
            }
            // Its holds end: the hand-off oracle keeps them until each actor's next activation.
            let actors: Vec<ActorId> = self
                .procs
                .get(&pid)
                .map(|p| p.serving.keys().copied().collect())
                .unwrap_or_default();
            for actor in actors {
                self.unhold(pid, actor);
            }
            if self.procs.remove(&pid).is_some() {
                self.down.insert(node);
                self.coverage.fault(FaultKind::Crash);
            }
        }
    }

    /// The most processes that may be down or frozen at once in a swarm: a minority, so that
    /// the majority can keep making progress (faults beyond that are still drawn as partitions).
    fn disabled(&self) -> usize {
        self.down.len()
            + self
                .procs
                .values()
                .filter(|p| p.paused_until_us > self.now_us)
                .count()
    }

    fn chaos(&mut self, chaos: Chaos) {
        if !self.faults_on {
            return;
        }
        let p = self.params.clone();
        let ft = self.ft_us();
        let minority = usize::from((p.nodes - 1) / 2);
        match chaos {
            Chaos::Partition => {
                let nodes: Vec<NodeId> = (1..=p.nodes).map(NodeId).collect();
                let mut side_a = Vec::new();
                let mut side_b = Vec::new();
                for n in nodes {
                    if self.rng.chance(400) {
                        side_a.push(n);
                    } else {
                        side_b.push(n);
                    }
                }
                if side_a.is_empty() || side_b.is_empty() {
                    side_a = vec![NodeId(1)];
                    side_b = (2..=p.nodes).map(NodeId).collect();
                }
                let one_way = self.rng.chance(300);
                let mut cuts = Vec::new();
                for &a in &side_a {
                    for &b in &side_b {
                        cuts.push((a, b));
                        if !one_way {
                            cuts.push((b, a));
                        }
                    }
                }
                self.coverage.fault(if one_way {
                    FaultKind::PartitionOneWay
                } else {
                    FaultKind::PartitionSymmetric
                });
                for &pair in &cuts {
                    *self.cuts.entry(pair).or_default() += 1;
                }
                let heal = self.now_us + self.rng.range(ft / 4, 4 * ft);
                self.push(heal, Ev::Uncut { cuts });
            }
            Chaos::Degraded => {
                if let Some(x) = self.pick_node() {
                    let mut cuts = Vec::new();
                    for m in (1..=p.nodes).map(NodeId).filter(|&m| m != x) {
                        cuts.push((x, m));
                        cuts.push((m, x));
                    }
                    for &pair in &cuts {
                        *self.cuts.entry(pair).or_default() += 1;
                    }
                    self.coverage.fault(FaultKind::DegradedObserver);
                    let heal = self.now_us + self.rng.range(ft, 6 * ft);
                    self.push(heal, Ev::Uncut { cuts });
                }
            }
            Chaos::Crash => {
                if self.disabled() < minority {
                    if let Some(node) = self.pick_node() {
                        self.crash(node);
                        // One node per run may be lost for good (registry v2: the members left
                        // must carry on); the others restart.
                        if self.lost.is_empty() && self.rng.chance(150) {
                            self.lost.insert(node);
                            self.coverage.fault(FaultKind::PermanentLoss);
                        } else {
                            let back = self.now_us + self.rng.range(ft / 2, 6 * ft);
                            self.push(back, Ev::Restart(node));
                        }
                    }
                }
            }
            Chaos::Pause => {
                if self.disabled() < minority {
                    if let Some(node) = self.pick_node() {
                        let lease = self.timing.settings().lease_ms * 1_000;
                        let length = self.rng.range(lease + 1, 4 * ft);
                        if let Some(&pid) = self.current.get(&node) {
                            let vm_paused = node
                                .index()
                                .and_then(|i| self.node_clocks.get(i))
                                .is_some_and(|c| c.stopped_since_us.is_some());
                            self.touched.insert(pid);
                            if let Some(proc_) = self.procs.get_mut(&pid) {
                                // A pause never ends one already under way early (its VM's
                                // clocks may be stopped until then: a process running on
                                // stopped clocks is no fault a real machine has).
                                proc_.paused_until_us =
                                    proc_.paused_until_us.max(self.now_us + length);
                            }
                            if vm_paused {
                                self.measurements.pauses_overlapping_vm += 1;
                            }
                            self.coverage.fault(FaultKind::PauseBeyondLease);
                            if self.rng.chance(300) {
                                // An orchestrator gives up on the frozen process and starts a
                                // new one: the old one resumes as a zombie.
                                self.coverage.fault(FaultKind::Zombie);
                                let at = self.now_us + self.rng.range(lease, length);
                                self.push(at, Ev::Replace(node));
                            }
                        }
                    }
                }
            }
            Chaos::StoreCut => {
                if let Some(node) = self.pick_node() {
                    // A quarter of the cuts last 10 to 15 failure timeouts: the node's process
                    // and its probe answers run on (registry v2 declares it failed on the
                    // registry's evidence); the others are short.
                    let long = self.rng.chance(250);
                    let length = if long {
                        self.rng.range(10 * ft, 15 * ft)
                    } else {
                        self.rng.range(ft / 4, 3 * ft)
                    };
                    let until = self.now_us + length;
                    self.store_cut_until_us.insert(node, until);
                    self.coverage.fault(if long {
                        FaultKind::StoreCutLong
                    } else {
                        FaultKind::StoreCut
                    });
                    self.push(until, Ev::StoreRestore(node));
                }
            }
            Chaos::Leave => {
                // At most a minority leaves at once (with every node gone, actors have nowhere
                // to go); and not a node with a zombie process, except in the harder world
                // (see `Options::leaving_zombies`).
                let mut away = self.leaving.clone();
                if let Some(s) = self.store.state() {
                    away.extend(
                        s.node_ids()
                            .filter(|&n| s.node(n).is_some_and(|r| r.status != NodeStatus::Active)),
                    );
                }
                let away = away.len();
                let node = self.pick_node().filter(|&n| {
                    self.options.leaving_zombies
                        || self.procs.values().filter(|p| p.node == n).count() == 1
                });
                if let Some(node) = node.filter(|_| away + self.disabled() < minority) {
                    if let Some(&pid) = self.current.get(&node) {
                        self.coverage.fault(FaultKind::GracefulLeave);
                        self.leaving.insert(node);
                        self.with_agent(pid, |agent, now| agent.leave(now));
                        let hb = self.timing.settings().heartbeat_interval_ms * 1_000;
                        let ask = self.now_us + self.rng.range(hb / 8, 2 * hb);
                        self.push(ask, Ev::LeaveComplete(node));
                        let back = self.now_us + self.rng.range(ft, 8 * ft);
                        self.push(back, Ev::Rejoin(node));
                    }
                }
            }
            Chaos::Direct => self.direct(),
            Chaos::Clock => self.clock_fault(minority),
        }
        let every = match chaos {
            Chaos::Partition => p.partition_every_ms,
            Chaos::Crash => p.crash_every_ms,
            Chaos::Pause => p.pause_every_ms,
            Chaos::Degraded => p.degraded_every_ms,
            Chaos::StoreCut => p.store_cut_every_ms,
            Chaos::Leave => p.leave_every_ms,
            Chaos::Direct => p.direct_every_ms,
            Chaos::Clock => p.clock_fault_every_ms,
        };
        let next = self.now_us + self.rng.range(1, 2 * every * 1_000);
        self.push(next, Ev::Chaos(chaos));
    }

    /// The application proposes one spec action directly, as `NodeHandle::propose` does: a
    /// placement, a removal, a rebalance or one migration (with the term it last saw), or the
    /// completion of its own leave.
    fn direct(&mut self) {
        let Some(node) = self.pick_node() else {
            return;
        };
        let Some(&pid) = self.current.get(&node) else {
            return;
        };
        let actors = self.params.actors.max(1);
        let actor = ActorId(self.rng.range(1, actors));
        // While a node is leaving, half of the direct proposals ask to complete its leave (an
        // impatient application; registry v2 moves a leaver's actors within a few heartbeats).
        let kind = if !self.leaving.is_empty() && self.rng.chance(500) {
            3
        } else {
            self.rng.range(0, 4)
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let term = p.agent.snapshot().map_or(0, |s| s.term_counter());
        let queued = p.agent.snapshot().and_then(|s| s.queue().actors().next());
        let event = match kind {
            0 => Event::PlaceActor { actor },
            1 => Event::RemoveActor { actor },
            2 => Event::RebalanceActors { term },
            // The completion of a leave, asked for by a node that is leaving if there is one
            // (registry v2 moves a leaver's actors within a few heartbeats: a random node is
            // seldom Leaving with actors still on it).
            3 => Event::NodeLeaveComplete {
                node: self.leaving.iter().next().copied().unwrap_or(node),
            },
            _ => Event::MigrateActor {
                actor: queued.unwrap_or(actor),
                term,
            },
        };
        self.with_request(pid, |agent, _| {
            // Refused only with `REQUESTS_MAX` requests waiting, which no world's rate of direct
            // proposals reaches; a refused one is not proposed (the runtime answers
            // `Error::TooManyRequests`).
            let _ = agent.submit(event);
        });
    }

    // ---------------------------------------------------------------------------------------
    // Scenarios, liveness and the checks

    fn settled(&self) -> bool {
        let Some(s) = self.store.state() else {
            return false;
        };
        let all_active = s.node_ids().all(|n| {
            let active = s.node(n).is_some_and(|r| r.status == NodeStatus::Active);
            active != self.lost.contains(&n)
        });
        let placed = u64::try_from(s.placements().len()).unwrap_or(0) == self.params.actors;
        all_active && placed && s.primary_in_office().is_some() && self.converged(&s).is_ok()
    }

    fn script(&mut self) {
        let now = self.now_us;
        let ft = self.ft_us();
        if self.liveness_from_us.is_some() {
            return;
        }
        if self.options.scenario == Scenario::Scale {
            if !self.scale_script(now) {
                self.push(now + SCRIPT_INTERVAL_MS * 1_000, Ev::Script);
            }
            return;
        }
        if self.settled_at_us.is_none() {
            if self.settled() {
                self.settled_at_us = Some(now);
            } else if now > SETTLE_MAX_MS * 1_000 {
                return self.fail("the calm cluster did not settle".to_string());
            }
        }
        if let Some(settled) = self.settled_at_us {
            match self.options.scenario {
                Scenario::Swarm => {}
                Scenario::Failover => {
                    if self.crashed.is_none() && now >= settled + 2 * ft {
                        let s = self.store.state();
                        let primary = s.as_ref().and_then(State::primary_in_office);
                        let victim = if self.options.seed % 2 == 0 {
                            primary
                        } else {
                            None
                        }
                        .or_else(|| self.pick_node());
                        if let (Some(v), Some(s)) = (victim, s) {
                            let actors: BTreeSet<ActorId> = s
                                .hosted(v)
                                .map(|h| h.iter().copied().collect())
                                .unwrap_or_default();
                            let was_primary = primary == Some(v);
                            self.crash(v);
                            self.crashed = Some((v, now, actors, was_primary));
                        }
                    }
                    if self.measure_failover(now) {
                        return;
                    }
                }
                // Scripted by `scale_script`.
                Scenario::Scale => {}
                Scenario::ScaleDown => {
                    if self.scale_down(now, settled) || self.measure_failover(now) {
                        return;
                    }
                }
                Scenario::Degraded => {
                    if self.degraded.is_none() && now >= settled + 2 * ft {
                        if let Some(x) = self.pick_node() {
                            let mut cuts = Vec::new();
                            for m in (1..=self.params.nodes).map(NodeId).filter(|&m| m != x) {
                                cuts.push((x, m));
                                cuts.push((m, x));
                            }
                            for &pair in &cuts {
                                *self.cuts.entry(pair).or_default() += 1;
                            }
                            self.coverage.fault(FaultKind::DegradedObserver);
                            let until = now + 10 * ft;
                            self.degraded = Some((x, now, until));
                            self.push(until, Ev::Uncut { cuts });
                        }
                    }
                    if let Some((_, _, until)) = self.degraded {
                        if now >= until + 2 * ft {
                            self.start_liveness();
                            return;
                        }
                    }
                }
            }
        }
        self.push(now + SCRIPT_INTERVAL_MS * 1_000, Ev::Script);
    }

    /// `Failover` and `ScaleDown`, once a node crashed: measures when it is declared failed,
    /// when its actors are all served again and (if it was the primary) when a new primary is in
    /// office; starts the liveness phase once all is measured or the failover bound passed.
    /// Returns whether it did.
    fn measure_failover(&mut self, now: u64) -> bool {
        let Some((v, at, actors, was_primary)) = self.crashed.clone() else {
            return false;
        };
        if self.measurements.failover_served_ms.is_none() {
            let all = actors.iter().all(|&a| !self.served_by(a).is_empty());
            if all {
                self.measurements.failover_served_ms = Some((now - at) / 1_000);
            }
        }
        if was_primary && self.measurements.failover_primary_ms.is_none() {
            let p = self.store.state().and_then(|s| s.primary_in_office());
            if p.is_some_and(|p| p != v) {
                self.measurements.failover_primary_ms = Some((now - at) / 1_000);
            }
        }
        let measured = self.measurements.failover_served_ms.is_some()
            && self.measurements.failover_declared_ms.is_some();
        if measured || now > at + FAILOVER_MAX_MS * 1_000 {
            self.start_liveness();
            return true;
        }
        false
    }

    /// `Scale`, at every script tick: waits for every node to be a member with a primary in
    /// office, then has the applications place the actors (each node's application keeps up to
    /// [`SCALE_PLACE_OUTSTANDING_MAX`] place requests waiting at its Agent), waits for every
    /// actor to be placed and served by exactly its node's process, then (two failure timeouts
    /// later) crashes a node hosting actors and measures the failover as `Failover` does.
    /// Returns whether the script is done (the liveness phase began, or the run failed).
    fn scale_script(&mut self, now: u64) -> bool {
        let ft = self.ft_us();
        let Some(members_at) = self.placing.members_at_us else {
            let nodes = self.params.nodes;
            let members = self
                .store
                .state()
                .is_some_and(|s| s.active().len() == nodes && s.primary_in_office().is_some());
            if members {
                self.placing.members_at_us = Some(now);
                self.placing.next = 1;
                self.measurements.scale_members_ms = Some(now / 1_000);
            } else if now > SCALE_PHASE_MAX_MS * 1_000 {
                self.fail(format!(
                    "scale: not every one of the {nodes} nodes is a member with a primary in \
                     office after {SCALE_PHASE_MAX_MS} ms"
                ));
                return true;
            }
            return false;
        };
        let Some(settled) = self.settled_at_us else {
            self.scale_place();
            let asked_all = self.placing.next > self.params.actors && self.placing.again.is_empty();
            let answered_all = self.placing.outstanding.values().all(|&n| n == 0);
            if asked_all && answered_all && self.settled() {
                self.settled_at_us = Some(now);
                self.measurements.scale_placed_ms = Some((now - members_at) / 1_000);
            } else if now > members_at + SCALE_PHASE_MAX_MS * 1_000 {
                let placed = self.store.state().map_or(0, |s| s.placements().len());
                self.fail(format!(
                    "scale: {placed} of {} actors placed and served {SCALE_PHASE_MAX_MS} ms \
                     after every node became a member",
                    self.params.actors
                ));
                return true;
            }
            return false;
        };
        if self.crashed.is_none() && now >= settled + 2 * ft {
            let Some(s) = self.store.state() else {
                return false;
            };
            let primary = s.primary_in_office();
            let hosts = |n: NodeId| s.hosted(n).is_some_and(|h| !h.is_empty());
            let victim = primary
                .filter(|&p| self.options.seed % 2 == 0 && hosts(p))
                .or_else(|| s.active().iter().find(|&n| Some(n) != primary && hosts(n)))
                .or(primary);
            if let Some(v) = victim {
                let actors: BTreeSet<ActorId> = s
                    .hosted(v)
                    .map(|h| h.iter().copied().collect())
                    .unwrap_or_default();
                self.measurements.scale_failover_actors = actors.len() as u64;
                self.crash(v);
                self.crashed = Some((v, now, actors, primary == Some(v)));
            }
        }
        self.measure_failover(now)
    }

    /// `Scale`: each live node's application asks its Agent to place more actors, keeping up to
    /// [`SCALE_PLACE_OUTSTANDING_MAX`] requests waiting (actors answered with an error first),
    /// in node order; every actor is asked for once unless an error answered it.
    fn scale_place(&mut self) {
        for node in self.live_nodes() {
            let waiting = self.placing.outstanding.get(&node).copied().unwrap_or(0);
            let room = SCALE_PLACE_OUTSTANDING_MAX.saturating_sub(waiting);
            let mut asks: Vec<ActorId> = Vec::new();
            while (asks.len() as u64) < room {
                if let Some(actor) = self.placing.again.pop() {
                    asks.push(actor);
                } else if self.placing.next <= self.params.actors {
                    asks.push(ActorId(self.placing.next));
                    self.placing.next += 1;
                } else {
                    break;
                }
            }
            if asks.is_empty() {
                break;
            }
            let Some(&pid) = self.current.get(&node) else {
                continue;
            };
            let mut asked = 0u64;
            let mut refused: Vec<ActorId> = Vec::new();
            self.with_agent(pid, |agent, now| {
                for &actor in &asks {
                    // A full queue refuses the request: asked again at the next tick.
                    match agent.place(actor, now) {
                        Ok(()) => asked += 1,
                        Err(_) => refused.push(actor),
                    }
                }
            });
            *self.placing.outstanding.entry(node).or_default() += asked;
            self.placing.again.extend(refused);
        }
    }

    /// `ScaleDown`: two failure timeouts after the cluster settled, every node but the first
    /// `nodes / 2` is asked to leave (and asked again to complete its leave at every script
    /// tick until the registry shows it Left); once all are Left, one of the remaining members
    /// crashes: the primary on even seeds, the highest remaining node on odd ones. Fails the
    /// run when the leaves do not complete within `FAILOVER_MAX_MS`. Returns whether the run
    /// ended (failed).
    fn scale_down(&mut self, now: u64, settled: u64) -> bool {
        let ft = self.ft_us();
        let keep = self.params.nodes / 2;
        if self.scaled_down.is_none() {
            if now < settled + 2 * ft {
                return false;
            }
            let leavers: Vec<NodeId> = (keep + 1..=self.params.nodes).map(NodeId).collect();
            for &node in &leavers {
                if let Some(&pid) = self.current.get(&node) {
                    self.coverage.fault(FaultKind::GracefulLeave);
                    self.leaving.insert(node);
                    self.with_agent(pid, |agent, now| agent.leave(now));
                }
            }
            self.scaled_down = Some((now, leavers));
            return false;
        }
        if self.crashed.is_some() {
            return false;
        }
        let Some((began, leavers)) = self.scaled_down.clone() else {
            return false;
        };
        let Some(s) = self.store.state() else {
            return false;
        };
        let still: Vec<NodeId> = leavers
            .iter()
            .copied()
            .filter(|&n| s.node(n).is_some_and(|r| r.status != NodeStatus::Left))
            .collect();
        if !still.is_empty() {
            if now > began + FAILOVER_MAX_MS * 1_000 {
                self.fail(format!(
                    "scale-down: {still:?} did not complete their leave"
                ));
                return true;
            }
            for node in still {
                self.push(now, Ev::LeaveComplete(node));
            }
            return false;
        }
        // Fewer members than a majority of the slots remain.
        debug_assert!(2 * s.active().len() <= self.params.nodes);
        let primary = s.primary_in_office();
        let victim = if self.options.seed % 2 == 0 {
            primary
        } else {
            None
        }
        .or_else(|| s.active().iter().last());
        if let Some(v) = victim {
            let actors: BTreeSet<ActorId> = s
                .hosted(v)
                .map(|h| h.iter().copied().collect())
                .unwrap_or_default();
            self.crash(v);
            self.crashed = Some((v, now, actors, primary == Some(v)));
        }
        false
    }

    /// Faults stop: links heal, frozen processes resume, crashed ones restart, nodes that left
    /// join again, and the store answers every request. From now on the cluster must converge
    /// within the liveness bound.
    fn start_liveness(&mut self) {
        self.faults_on = false;
        self.liveness_from_us = Some(self.now_us);
        self.cuts.clear();
        self.store_cut_until_us.clear();
        let now = self.now_us;
        for p in self.procs.values_mut() {
            p.paused_until_us = p.paused_until_us.min(now);
        }
        self.touched.extend(self.procs.keys().copied());
        for node in (1..=self.params.nodes).map(NodeId) {
            self.clock_restore(node);
            self.clock_resume(node);
        }
        // A node lost for good stays lost: a real cluster would not get it back either.
        let down: Vec<NodeId> = self
            .down
            .iter()
            .copied()
            .filter(|n| !self.lost.contains(n))
            .collect();
        for node in down {
            self.push(now, Ev::Restart(node));
        }
        for node in self.live_nodes() {
            self.push(now, Ev::Rejoin(node));
        }
        self.hash.u64(0xF1F1);
    }

    fn check_liveness(&mut self) {
        let Some(from) = self.liveness_from_us else {
            return;
        };
        let bound_us = LIVENESS_FAILURE_TIMEOUTS * self.ft_us();
        let converged = match self.store.state() {
            Some(s) => self.converged(&s),
            None => Err("no registry".to_string()),
        };
        match converged {
            Ok(()) => {
                self.measurements.converged_after_ms = Some((self.now_us - from) / 1_000);
                self.done = true;
            }
            Err(why) if self.now_us > from + bound_us => self.fail(format!(
                "liveness: no convergence within {LIVENESS_FAILURE_TIMEOUTS} failure timeouts \
                 ({} ms) after the faults stopped: {why}",
                bound_us / 1_000
            )),
            Err(_) => {}
        }
    }

    /// Converged: every node Active, no partition reported, one primary in office, agreeing
    /// views, no queued migration, and every placed actor served by exactly its node.
    fn converged(&self, s: &State) -> Result<(), String> {
        for n in s.node_ids() {
            let active = s.node(n).is_some_and(|r| r.status == NodeStatus::Active);
            if self.lost.contains(&n) && active {
                return Err(format!("{n}, lost for good, is still Active"));
            }
            if !self.lost.contains(&n) && !active {
                return Err(format!("node {n} is not Active"));
            }
        }
        // Partitions with a node lost for good never heal (nobody answers its probes).
        let partitioned = s.node_ids().any(|n| {
            !self.lost.contains(&n)
                && s.node(n)
                    .is_some_and(|r| r.partitioned_from.iter().any(|m| !self.lost.contains(&m)))
        });
        if partitioned {
            return Err("a partition is still reported".to_string());
        }
        if s.primary_in_office().is_none() || s.believers().len() != 1 {
            return Err("not exactly one primary in office".to_string());
        }
        if !s.is_converged() {
            return Err("views disagree".to_string());
        }
        if !s.queue().is_empty() {
            return Err("migrations still queued".to_string());
        }
        let placed = s.placements().len();
        if placed > CONVERGED_FULL_CHECK_MAX
            && (self.serving_total != placed || !self.contested.is_empty())
        {
            // Cheap: one entry in the serving sets per placement, no actor held twice. (Only
            // then is every actor looked at.)
            return Err(format!(
                "{} entries in the serving sets for {placed} placed actors, {} held twice",
                self.serving_total,
                self.contested.len()
            ));
        }
        for (&actor, placement) in s.placements() {
            let by = self.served_by(actor);
            let expected: BTreeSet<NodeId> = BTreeSet::from([placement.node]);
            if by.into_iter().map(|(n, _)| n).collect::<BTreeSet<_>>() != expected {
                return Err(format!(
                    "{actor} is not served by exactly {}",
                    placement.node
                ));
            }
        }
        Ok(())
    }

    /// The processes (node, pid) that may serve `actor` now, by their own clocks
    /// (`Agent::may_serve`), paused and zombie processes included: among those whose serving
    /// set holds it (`held`; the driver's set equals the Agent's, checked after every step).
    fn served_by(&self, actor: ActorId) -> BTreeSet<(NodeId, u64)> {
        let mut by = BTreeSet::new();
        for pid in self.holders_of(actor) {
            let Some(p) = self.procs.get(&pid) else {
                continue;
            };
            // A process frozen with its clocks stopped (a paused VM) serves nothing while
            // frozen; what counts is what it does once it wakes, and its first input then is the
            // clock reading (`clock_resume`, or `wake` for any later input: the runtime reads
            // the clocks before every input, a permit request included). So a process that has
            // not woken since its clocks stopped is judged at that wake-up, not before: one
            // whose own pause outlasted its VM's was counted with its stale clock (seeds 155
            // and 165 of the harder world, `--leaving-zombies`).
            if self.frozen_on_stopped_clocks(p) {
                continue;
            }
            if p.agent.may_serve(actor, self.local_ms(p.node)) {
                by.insert((p.node, pid));
            }
        }
        by
    }

    // ---------------------------------------------------------------------------------------
    // Timing oracles: the Agent's decisions against true time

    /// Whether `mutant` is the planted bug of this run.
    fn planted_driver(&self, mutant: DriverMutant) -> bool {
        self.options.planted == Some(Planted::Driver(mutant))
    }

    /// Whether `node`'s primary clock ran beyond its rate error bound the `way` given at any
    /// instant from `since_us` to now: the lease rule assumes it did not.
    fn clock_beyond_since(&self, node: NodeId, way: Beyond, since_us: u64) -> bool {
        let now_beyond = node.index().is_some_and(|i| {
            let (Some(nc), Some(primary)) = (self.node_clocks.get(i), self.clocks.get(i)) else {
                return false;
            };
            match way {
                Beyond::Slow => {
                    nc.stopped_since_us.is_some() || (nc.slewed && primary.rate_ppm < nc.rate_ppm)
                }
                Beyond::Fast => {
                    nc.stopped_since_us.is_none() && nc.slewed && primary.rate_ppm > nc.rate_ppm
                }
            }
        });
        now_beyond
            || self
                .clock_beyond_us
                .get(&(node, way))
                .is_some_and(|&at| at >= since_us)
    }

    /// The lease rule for process `p` now: the latest true instant it may serve (`None`: it may
    /// serve nothing) and the true instant the rule counts from. An Active node serves until the
    /// earlier of its last committed heartbeat's send and its last snapshot read's send plus
    /// the lease as a slow clock may stretch it (`lease_ms / (1 - rate error bound)`); a
    /// Leaving one on its snapshot's read alone. Computed from what the simulation sent and
    /// delivered, not from the Agent's state.
    fn serve_bound(&self, p: &Proc) -> (Option<u64>, u64) {
        let status = p
            .agent
            .snapshot()
            .and_then(|s| s.node(p.node))
            .map(|r| r.status);
        let read = p.timed.read_basis_us;
        let lease = p.timed.lease_basis_us;
        let basis = match status {
            Some(NodeStatus::Active) => match (read, lease) {
                (Some(r), Some(l)) => Some(r.min(l)),
                _ => None,
            },
            Some(NodeStatus::Leaving) => read,
            _ => None,
        };
        match basis {
            Some(b) => (Some(b + self.lease_true_us), b),
            None => (None, read.or(lease).unwrap_or(0)),
        }
    }

    /// A proposal of process `pid`'s policy is sent (a first send or a retry): the first send
    /// of a heartbeat is recorded (its lease counts from it), and a partition report is checked
    /// against the probes the simulation delivered.
    fn note_send(&mut self, pid: u64, proposal: &Proposal) {
        let now_us = self.now_us;
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        match proposal.action {
            Action::Step(Event::SendHeartbeat { .. }) => {
                if p.timed.heartbeat_sent_us.len() >= FIRST_SENDS_MAX {
                    p.timed.heartbeat_sent_us.pop_first();
                }
                p.timed
                    .heartbeat_sent_us
                    .entry(proposal.id)
                    .or_insert(now_us);
            }
            Action::Step(Event::CreatePartition { a, b }) => {
                if !p.timed.partition_reports.insert(proposal.id) {
                    return; // a retry of a report already checked
                }
                // A report is retried only while it is in flight, and the Agent keeps one of a
                // kind in flight: the oldest ids kept are long settled.
                if p.timed.partition_reports.len() > FIRST_SENDS_MAX {
                    p.timed.partition_reports.pop_first();
                }
                let node = p.node;
                let (failed, since_ms) = p.timed.failed_probes.get(&b).copied().unwrap_or((0, 0));
                let now_ms = self.local_ms(node);
                let after_ms = self.timing.settings().suspect_after_ms;
                let span_ms = now_ms.saturating_sub(since_ms);
                if failed >= PROBE_STREAK_MIN && span_ms >= after_ms {
                    self.measurements.backed_partition_reports += 1;
                } else {
                    self.measurements.unbacked_partition_reports += 1;
                    self.fail(format!(
                        "partition reported without the required agreeing probes: p{pid} ({node}) \
                         proposed CreatePartition({a}, {b}) at {:.3} ms (true time) after {failed} \
                         failed probe(s) of {b} in a row spanning {} ms of its clock (the rule: at \
                         least PROBE_STREAK_MIN = {PROBE_STREAK_MIN} spanning suspect_after_ms = \
                         {after_ms} ms)",
                        ms_f(now_us),
                        if failed == 0 { 0 } else { span_ms },
                    ));
                }
            }
            _ => {}
        }
    }

    /// A final or unknown outcome of a policy proposal reaches process `pid`: a committed
    /// heartbeat moves its lease basis to the heartbeat's first send.
    fn note_outcome(&mut self, pid: u64, proposal: &Proposal, outcome: &ProposalOutcome) {
        self.touched.insert(pid);
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if !matches!(proposal.action, Action::Step(Event::SendHeartbeat { .. })) {
            return;
        }
        match outcome {
            ProposalOutcome::Committed { .. } => {
                if let Some(sent) = p.timed.heartbeat_sent_us.remove(&proposal.id) {
                    p.timed.lease_basis_us = p.timed.lease_basis_us.max(Some(sent));
                }
            }
            ProposalOutcome::Refused(_) => {
                p.timed.heartbeat_sent_us.remove(&proposal.id);
            }
            ProposalOutcome::Unknown | ProposalOutcome::Unavailable => {}
        }
    }

    // ---------------------------------------------------------------------------------------
    // Registry caches in the loop (`Options::cache`; the feed and the caches are `feed`'s)

    /// Whether the processes read through registry caches.
    fn cached(&self) -> bool {
        self.feeds.is_some()
    }

    /// A new process's cache: one whole-registry load now.
    fn cache_start(&mut self, pid: u64) {
        let now_us = self.now_us;
        if let Some(feeds) = self.feeds.as_mut() {
            feeds.start(pid, now_us);
            self.measurements.cache_loads += 1;
        }
    }

    /// After the store changed: the feed's next commit, scheduled to every live process's cache.
    fn feed_sync(&mut self) {
        if self.feeds.is_none() {
            return;
        }
        let Ok(now) = ready(self.store.snapshot()) else {
            return;
        };
        let live: Vec<u64> = self.procs.keys().copied().collect();
        let now_us = self.now_us;
        let deliveries = match self.feeds.as_mut() {
            Some(feeds) => feeds.commit(&now, &live, now_us),
            None => Vec::new(),
        };
        let upto = now.revision;
        for (at, pid) in deliveries {
            self.push(at, Ev::Feed { pid, upto });
        }
    }

    /// The feed up to `upto` reaches `pid`'s cache (after its link to the store is back), and
    /// completes a confirmation that waited for it.
    fn feed_deliver(&mut self, pid: u64, upto: u64) {
        let Some(node) = self.procs.get(&pid).map(|p| p.node) else {
            return;
        };
        if self.store_cut(node) {
            // The watch runs over the same link: it resumes once the link is back.
            let at = self
                .store_cut_until_us
                .get(&node)
                .copied()
                .unwrap_or(self.now_us);
            return self.push(at + 1, Ev::Feed { pid, upto });
        }
        let unconfirmed = self.options.planted == Some(Planted::CacheUnconfirmed);
        let Some(feeds) = self.feeds.as_mut() else {
            return;
        };
        if feeds.deliver(pid, upto) {
            self.measurements.cache_loads += 1;
            self.measurements.feed_breaks += 1;
        }
        if let Some((read_at_ms, label)) = feeds.complete(pid, unconfirmed) {
            self.cache_answer(pid, read_at_ms, label);
        }
    }

    /// A snapshot read of `pid` through its cache (the engines' `confirm`, step by step): on a
    /// confirmation younger than the reuse window at once, else a confirmation read sent now.
    fn cache_read(&mut self, pid: u64, read_at_ms: u64) {
        let Some(node) = self.procs.get(&pid).map(|p| p.node) else {
            return;
        };
        let now_ms = self.local_ms(node);
        let read = match self.feeds.as_mut() {
            Some(feeds) => feeds.read(pid, now_ms),
            None => return,
        };
        match read {
            Read::Reused(label) => {
                self.measurements.cache_reused += 1;
                self.cache_answer(pid, read_at_ms, label);
            }
            Read::Confirm => {
                let confirming = Confirming {
                    pid,
                    sent_ms: now_ms,
                    sent_us: self.now_us,
                    revision_at_send: self.last_revision,
                    read_at_ms,
                };
                let at = self.now_us + self.store_latency();
                self.push(at, Ev::ConfirmAtStore(confirming));
            }
        }
    }

    /// A confirmation read at the store: the latest commit is sent back (or the read is lost
    /// on a cut link, and fails after the driver's timeout).
    fn confirm_at_store(&mut self, confirming: Confirming) {
        let pid = confirming.pid;
        let cut = self.procs.get(&pid).is_some_and(|p| self.store_cut(p.node));
        if cut {
            if let Some(feeds) = self.feeds.as_mut() {
                feeds.lost(pid);
            }
            let at = self.now_us + self.params.store_timeout_ms * 1_000;
            let read_at_ms = confirming.read_at_ms;
            return self.push(
                at,
                Ev::ReadDone {
                    pid,
                    read_at_ms,
                    snapshot: None,
                },
            );
        }
        let commit = self.feeds.as_ref().map_or(0, Feeds::latest);
        let at = self.now_us + self.store_latency();
        self.push(at, Ev::ConfirmReply(confirming, commit));
    }

    /// The confirmation's reply at the process: complete it now, or wait for the feed (at most
    /// the engines' catch-up time).
    fn confirm_reply(&mut self, confirming: Confirming, commit: u64) {
        let unconfirmed = self.options.planted == Some(Planted::CacheUnconfirmed);
        let replied = match self.feeds.as_mut() {
            Some(feeds) => feeds.reply(confirming, commit, unconfirmed),
            None => Replied::Stale,
        };
        match replied {
            Replied::Answer { read_at_ms, label } => {
                self.cache_answer(confirming.pid, read_at_ms, label);
            }
            Replied::Wait => {
                self.measurements.cache_waits += 1;
                let (pid, sent_ms) = (confirming.pid, confirming.sent_ms);
                self.push(
                    self.now_us + feed::CACHE_CATCH_UP_US,
                    Ev::ConfirmTimeout { pid, sent_ms },
                );
            }
            Replied::Stale => {}
        }
    }

    /// A confirmation that still waits after the engines' catch-up time: the read fails.
    fn confirm_timeout(&mut self, pid: u64, sent_ms: u64) {
        let read_at_ms = self.feeds.as_mut().and_then(|f| f.timeout(pid, sent_ms));
        if let Some(read_at_ms) = read_at_ms {
            self.measurements.cache_timeouts += 1;
            self.push(
                self.now_us,
                Ev::ReadDone {
                    pid,
                    read_at_ms,
                    snapshot: None,
                },
            );
        }
    }

    /// Answers `pid`'s snapshot read from its cache, labelled `label` (the planted
    /// `cache-labels-answer` labels it with the answer's instant instead).
    fn cache_answer(&mut self, pid: u64, read_at_ms: u64, label: u64) {
        let Some(node) = self.procs.get(&pid).map(|p| p.node) else {
            return;
        };
        let label = if self.options.planted == Some(Planted::CacheLabelsAnswer) {
            self.local_ms(node)
        } else {
            label
        };
        let snapshot = self.feeds.as_ref().and_then(|f| f.snapshot(pid, label));
        if let Some(read) = &snapshot {
            self.check_snapshot_content(pid, read);
        }
        self.push(
            self.now_us,
            Ev::ReadDone {
                pid,
                read_at_ms,
                snapshot: snapshot.map(Box::new),
            },
        );
    }

    /// The snapshot-age oracle for a cache's snapshot labelled `label`, delivered for a read
    /// the process sent at `read_at_ms` (its clock) and `sent` (true time, the store's latest
    /// commit then): the process counts the snapshot's age from one millisecond before the
    /// label (as the node runtime does) when that is earlier than its own read, and then the
    /// snapshot must hold every commit made before the labelled confirmation's read was sent;
    /// otherwise from its own read. Returns the true instant the lease oracle counts from.
    fn check_cached_snapshot(
        &mut self,
        pid: u64,
        label: u64,
        read_at_ms: u64,
        sent: Option<(u64, u64)>,
        got: u64,
    ) -> Option<u64> {
        if label.saturating_sub(1) >= read_at_ms {
            let (sent_us, revision) = sent?;
            self.check_snapshot_age(pid, sent_us, revision, got);
            return Some(sent_us);
        }
        let record = self.feeds.as_ref().and_then(|f| f.confirmation(pid, label));
        if let Some((sent_us, revision)) = record {
            self.check_snapshot_age(pid, sent_us, revision, got);
            return Some(sent_us);
        }
        self.measurements.stale_snapshots += 1;
        let node = self.procs.get(&pid).map_or(NodeId(0), |p| p.node);
        self.fail(format!(
            "stale snapshot: p{pid} ({node}) was served a snapshot of revision {got} labelled as \
             confirmed at {label} ms of its clock (its age counted from {} ms, before its read \
             sent at {read_at_ms} ms), but its cache completed no confirmation sent at {label} ms",
            label.saturating_sub(1)
        ));
        None
    }

    /// The snapshot-age oracle: a snapshot read sent at `sent_us`, when the store's latest
    /// commit was `revision_at_send`, must show at least that commit.
    fn check_snapshot_age(&mut self, pid: u64, sent_us: u64, revision_at_send: u64, got: u64) {
        if got >= revision_at_send {
            return;
        }
        self.measurements.stale_snapshots += 1;
        let node = self.procs.get(&pid).map_or(NodeId(0), |p| p.node);
        self.fail(format!(
            "stale snapshot: p{pid} ({node}) got a snapshot of revision {got} at {:.3} ms (true \
             time) for a read sent at {:.3} ms, when revision {revision_at_send} had already \
             been committed (a snapshot must show every commit made before its read was sent)",
            ms_f(self.now_us),
            ms_f(sent_us)
        ));
    }

    /// The snapshot-age oracle's second half: a snapshot labelled with the store's latest
    /// revision must hold the registry the committed log gives at that revision (the independent
    /// replay, caught up after every commit). A store that serves an old registry under a
    /// current revision passes the revision check above and fails here.
    fn check_snapshot_content(&mut self, pid: u64, read: &Snapshot) {
        if read.revision != self.last_revision {
            return;
        }
        // A large registry is compared with the stored one (which shares its structure, so the
        // comparison is cheap): the replay checker found the stored registry equal to the
        // replay after the latest commit.
        let same = if small(&read.state) {
            read.state == *self.replay.state()
        } else {
            self.store.state().is_some_and(|s| s == read.state)
        };
        if same {
            return;
        }
        self.measurements.stale_snapshots += 1;
        let node = self.procs.get(&pid).map_or(NodeId(0), |p| p.node);
        let diff = self.replay.state().delta(&read.state);
        self.fail(format!(
            "stale snapshot: p{pid} ({node}) was served a registry at {:.3} ms (true time) \
             labelled revision {}, the latest, that is not the registry the committed log gives \
             at that revision (served minus replayed: {diff:?})",
            ms_f(self.now_us),
            read.revision
        ));
    }

    /// Records one lease margin: a process of `node` last seen serving at `last_us` under the
    /// bound `bound_us` counted from `basis_us` has stopped.
    fn lease_margin(&mut self, seen: SeenServing, node: NodeId) {
        let SeenServing {
            last_us,
            bound_us,
            basis_us,
        } = seen;
        let Some(bound_us) = bound_us else {
            return; // it served with no bound: reported as a failure when seen
        };
        if self.clock_beyond_since(node, Beyond::Slow, basis_us) {
            self.measurements.margins_skipped_clock_beyond_bound += 1;
            return;
        }
        self.measurements
            .lease_margins
            .samples_us
            .push(signed_diff(bound_us, last_us));
    }

    /// The hand-off oracle, when process `pid` of `node` activates `actor`: every other process
    /// that held it since its previous activation may serve it until its lease rule's bound;
    /// the activation must come after the latest of them.
    fn check_handoff(&mut self, pid: u64, node: NodeId, actor: ActorId) {
        let now = self.now_us;
        let mut holders = self.holders.remove(&actor).unwrap_or_default();
        // The processes that still hold it: their holds so far (to the end of the previous
        // step), which begin again at the end of this one.
        let still: Vec<u64> = self.holders_of(actor).filter(|&q| q != pid).collect();
        for q in still {
            let Some(p) = self.procs.get_mut(&q) else {
                continue;
            };
            let node = p.node;
            let Some(from) = p.timed.hold_from.get_mut(&actor) else {
                continue;
            };
            let hold = p.timed.bounds.largest_from(*from);
            *from = HOLD_FROM_END_OF_STEP;
            self.hold_restarts.push((q, actor));
            if let Some((bound_us, basis_us)) = hold {
                let h = Holder {
                    bound_us,
                    basis_us,
                    node,
                };
                let entry = holders.entry(q).or_insert(h);
                if h.bound_us > entry.bound_us {
                    *entry = h;
                }
            }
        }
        let wait_us = self.timing.handoff_wait_ms() * 1_000;
        // The activator's clock running fast during its wait shortens the wait; a holder's
        // running slow stretches its lease.
        let own_clock_beyond =
            self.clock_beyond_since(node, Beyond::Fast, now.saturating_sub(2 * wait_us));
        let mut latest: Option<(u64, Holder)> = None;
        for (&q, &h) in holders.iter().filter(|(&q, _)| q != pid) {
            if own_clock_beyond || self.clock_beyond_since(h.node, Beyond::Slow, h.basis_us) {
                self.measurements.margins_skipped_clock_beyond_bound += 1;
                continue;
            }
            if latest.is_none_or(|(_, l)| h.bound_us > l.bound_us) {
                latest = Some((q, h));
            }
        }
        let Some((q, h)) = latest else {
            return;
        };
        let margin = signed_diff(now, h.bound_us);
        self.measurements.handoff_margins.samples_us.push(margin);
        if margin < 0 {
            self.fail(format!(
                "hand-off: p{pid} ({node}) activated {actor} at {:.3} ms (true time), but p{q} \
                 ({}), which held it since its previous activation, may serve it until {:.3} ms \
                 by the lease rule (the earlier of its last snapshot read and its last committed \
                 heartbeat while it held it, sent at {:.3} ms, plus lease_ms / (1 - rate error \
                 bound) = {:.3} ms): {:.3} ms too early",
                ms_f(now),
                h.node,
                ms_f(h.bound_us),
                ms_f(h.basis_us),
                ms_f(self.lease_true_us),
                ms_f(h.bound_us - now)
            ));
        }
    }

    /// Process `pid`'s serving record brought up to the previous step (`None`: it was not
    /// serving, or there is no such process). A process looked at last while serving, and not
    /// frozen on stopped clocks then, served at every step since: nothing happened to it
    /// (anything that does puts it in `touched`), and it is looked at again when its permit runs
    /// out or its pause ends (`timing_due`).
    fn seen_serving(&mut self, pid: u64) -> Option<SeenServing> {
        let prev = self.prev_step_us;
        let p = self.procs.get_mut(&pid)?;
        if !p.timed.skipped {
            if let Some(seen) = &mut p.timed.serving {
                seen.last_us = seen.last_us.max(prev);
            }
        }
        p.timed.serving
    }

    /// Marks every process of `node` (its current one and any zombie) as touched: its clocks
    /// changed.
    fn touch_node(&mut self, node: NodeId) {
        let pids: Vec<u64> = self
            .procs
            .iter()
            .filter(|(_, p)| p.node == node)
            .map(|(&pid, _)| pid)
            .collect();
        self.touched.extend(pids);
    }

    /// Whether process `p` is frozen on stopped clocks and not woken since: it serves nothing
    /// while frozen and is judged at its wake-up (see `served_by`).
    fn frozen_on_stopped_clocks(&self, p: &Proc) -> bool {
        let stopped = p
            .node
            .index()
            .and_then(|i| self.node_clocks.get(i))
            .is_some_and(|c| c.stopped_since_us.is_some());
        (stopped && p.paused_until_us > self.now_us) || p.clocks_stopped_unseen
    }

    /// The lease oracle after every step: each process seen serving (`Agent::may_serve` at its
    /// own clock, as `served_by` counts) must be within its lease rule's bound; each actor's
    /// holders are noted for the hand-off oracle; a process that stopped serving gives a margin.
    ///
    /// It looks at the processes touched in the step and those due (`timing_due`): any other
    /// is as it was at the previous step (no input, no clock or pause change, its permit not
    /// run out, its bound not passed), so looking at it would find what it found then. The
    /// verdicts, margins and messages are those of looking at every process after every step.
    fn check_timing(&mut self) {
        if self.done {
            return;
        }
        let now = self.now_us;
        let mut pids: BTreeSet<u64> = self.touched.clone();
        while let Some(&(at, pid)) = self.timing_due.first() {
            if at > now {
                break;
            }
            self.timing_due.pop_first();
            pids.insert(pid);
        }
        let mut over: Option<String> = None;
        let mut over_margin: Option<i64> = None;
        let mut stopped: Vec<(SeenServing, NodeId)> = Vec::new();
        for pid in pids {
            let previous = self.seen_serving(pid);
            let Some(p) = self.procs.get(&pid) else {
                continue;
            };
            if self.frozen_on_stopped_clocks(p) {
                // Frozen on stopped clocks: judged at its wake-up (see `served_by`).
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.timed.skipped = true;
                }
                continue;
            }
            let local = self.local_ms(p.node);
            // `may_serve` is the same for every actor of the serving set (it has activated it,
            // is not fenced, its lease and snapshot are fresh): the first tells for all.
            let serving = p
                .agent
                .serving()
                .keys()
                .next()
                .copied()
                .filter(|&a| p.agent.may_serve(a, local));
            let (bound, basis) = self.serve_bound(p);
            let value = bound.filter(|_| !p.agent.is_fenced()).map(|b| (b, basis));
            let node = p.node;
            let inc = p.agent.incarnation();
            let paused_until = p.paused_until_us;
            let mut due: Option<u64> = (paused_until > now).then_some(paused_until);
            if let Some(actor) = serving {
                let beyond = self.clock_beyond_since(node, Beyond::Slow, basis);
                if over.is_none() && !beyond && bound.is_none_or(|b| now > b) {
                    over_margin = bound.map(|b| signed_diff(b, now));
                    over = Some(match bound {
                        Some(b) => format!(
                            "lease: p{pid} ({node}, incarnation {inc}) serves {actor} at {:.3} ms \
                             (true time), {:.3} ms past the latest instant the lease rule allows \
                             it, {:.3} ms (its last committed heartbeat sent at {}, its last \
                             snapshot read sent at {}, plus lease_ms / (1 - rate error bound) = \
                             {:.3} ms)",
                            ms_f(now),
                            ms_f(now - b),
                            ms_f(b),
                            instant_text(p.timed.lease_basis_us),
                            instant_text(p.timed.read_basis_us),
                            ms_f(self.lease_true_us)
                        ),
                        None => format!(
                            "lease: p{pid} ({node}, incarnation {inc}) serves {actor} at {:.3} ms \
                             (true time) with no committed heartbeat or snapshot read the lease \
                             rule could count from",
                            ms_f(now)
                        ),
                    });
                }
                // Looked at again when its permit runs out, or its bound passes.
                // (A permit without end, `driver:no-self-fence`'s, never runs out.)
                let until = p
                    .agent
                    .permit(actor, local)
                    .filter(|permit| permit.valid_until_ms - local < PERMIT_ENDLESS_MS)
                    .map(|permit| {
                        self.clock(node)
                            .first_at(permit.valid_until_ms, now)
                            .max(now + 1)
                    });
                let passes = bound.filter(|&b| now <= b).map(|b| b + 1);
                for at in [until, passes].into_iter().flatten() {
                    due = Some(due.map_or(at, |d| d.min(at)));
                }
            }
            let Some(p) = self.procs.get_mut(&pid) else {
                continue;
            };
            let anew = std::mem::replace(&mut p.timed.skipped, false);
            p.timed.bounds.record(value, anew);
            if serving.is_some() {
                p.timed.serving = Some(SeenServing {
                    last_us: now,
                    bound_us: bound,
                    basis_us: basis,
                });
            } else if let Some(last) = previous {
                p.timed.serving = None;
                stopped.push((last, node));
            }
            if let Some(at) = due {
                self.timing_due.insert((at, pid));
            }
        }
        // The holds that began in this step begin at the record of its end (at the next record
        // for a process frozen on stopped clocks: its frozen steps count for no hold).
        for (pid, actor) in std::mem::take(&mut self.hold_restarts) {
            if let Some(p) = self.procs.get_mut(&pid) {
                let latest = if p.timed.skipped {
                    p.timed.bounds.count
                } else {
                    p.timed.bounds.latest()
                };
                if let Some(from) = p.timed.hold_from.get_mut(&actor) {
                    if *from == HOLD_FROM_END_OF_STEP {
                        *from = latest;
                    }
                }
            }
        }
        for (last, node) in stopped {
            self.lease_margin(last, node);
        }
        if let Some(what) = over {
            // The failing run's margins include the one it failed on.
            if let Some(margin) = over_margin {
                self.measurements.lease_margins.samples_us.push(margin);
            }
            self.fail(what);
        }
    }

    /// Single activation as the nodes experience it, after every step: only an actor that two
    /// processes hold (`contested`) can be served by two at once. Then the driver's serving sets
    /// against the Agents' (see [`SERVING_FULL_CHECK_MAX`]).
    fn check_serving(&mut self) {
        if self.done {
            return;
        }
        let mut dual = None;
        for &actor in &self.contested {
            let by = self.served_by(actor);
            if by.len() > 1 {
                dual = Some((actor, by));
                break;
            }
        }
        let whole = (self.serving_total <= SERVING_FULL_CHECK_MAX
            && self.params.nodes <= WHOLE_CHECK_NODES_MAX)
            || self.steps % FULL_CHECK_STEPS == 0;
        let differs = if whole {
            self.procs
                .values()
                .find(|p| p.serving != *p.agent.serving())
                .map(|p| p.node)
        } else {
            self.serving_differs()
        };
        if let Some(node) = differs {
            return self.fail(format!(
                "{node}: the driver's serving set differs from the Agent's"
            ));
        }
        if let Some((actor, by)) = dual {
            let who: Vec<String> = by
                .iter()
                .map(|(n, pid)| {
                    let inc = self.procs.get(pid).map_or(0, |p| p.agent.incarnation());
                    format!("{n} (incarnation {inc})")
                })
                .collect();
            self.fail(format!(
                "single activation as experienced: {actor} is served by {} at once",
                who.join(" and ")
            ));
        }
    }

    /// The first node (in pid order) of a process touched in this step whose serving set,
    /// kept from its Agent's decisions, differs from the Agent's: in size, or at an actor it
    /// decided on in the step.
    fn serving_differs(&self) -> Option<NodeId> {
        self.touched.iter().find_map(|pid| {
            let p = self.procs.get(pid)?;
            let agent = p.agent.serving();
            let differs = p.serving.len() != agent.len()
                || self
                    .decided
                    .iter()
                    .filter(|(q, _)| q == pid)
                    .any(|(_, a)| p.serving.get(a) != agent.get(a));
            differs.then_some(p.node)
        })
    }
}

/// `a - b` as a signed number of microseconds.
fn signed_diff(a: u64, b: u64) -> i64 {
    if a >= b {
        i64::try_from(a - b).unwrap_or(i64::MAX)
    } else {
        i64::try_from(b - a).map_or(i64::MIN, |d| -d)
    }
}

/// A true instant for a failure report, or "none".
fn instant_text(us: Option<u64>) -> String {
    us.map_or_else(|| "none".to_string(), |us| format!("{:.3} ms", ms_f(us)))
}

fn ms_f(us: u64) -> f64 {
    // Display only.
    #[allow(clippy::cast_precision_loss)]
    let ms = us as f64 / 1_000.0;
    ms
}

fn brief(ev: &Ev) -> String {
    match ev {
        Ev::Start(n) => format!("start {n}"),
        Ev::Restart(n) => format!("restart {n}"),
        Ev::Replace(n) => format!("replace {n} (the frozen process becomes a zombie)"),
        Ev::Timer { pid, .. } => format!("timer p{pid}"),
        Ev::ReadAtStore { pid, .. } => format!("read at store p{pid}"),
        Ev::ReadDone { pid, snapshot, .. } => {
            format!(
                "snapshot to p{pid} ({})",
                if snapshot.is_some() { "ok" } else { "failed" }
            )
        }
        Ev::TxnBegin(r) => format!("begin {} {}", r.proposal.id, r.proposal.action),
        Ev::TxnCommit(r, _) => format!("commit {} {}", r.proposal.id, r.proposal.action),
        Ev::ProposalDone {
            pid,
            proposal,
            outcome,
            ..
        } => format!(
            "outcome to p{pid} {}: {}",
            proposal.id,
            outcome_text(outcome)
        ),
        Ev::ProbeArrive { from, to, .. } => format!("probe {from} -> {to} arrives"),
        Ev::ProbeReply { pid, .. } => format!("probe reply to p{pid}"),
        Ev::ProbeTimeout { pid, .. } => format!("probe timeout at p{pid}"),
        Ev::Chaos(c) => format!("fault/app {c:?}"),
        Ev::Uncut { cuts } => format!("heal {} link(s)", cuts.len()),
        Ev::StoreRestore(n) => format!("store reachable again from {n}"),
        Ev::Rejoin(n) => format!("app joins {n}"),
        Ev::LeaveComplete(n) => format!("app asks {n} to complete its leave"),
        Ev::Script => "scenario".to_string(),
        Ev::Place(a) => format!("app places {a}"),
        Ev::ClockRestore(n) => format!("{n}'s primary clock ends its slew"),
        Ev::ClockResume(n) => format!("{n}'s VM resumes (clocks run, wall clock stepped)"),
        Ev::Feed { pid, upto } => format!("feed up to r{upto} reaches p{pid}'s cache"),
        Ev::ConfirmAtStore(c) => format!(
            "p{}'s cache confirmation (sent at {} ms of its clock) at the store",
            c.pid, c.sent_ms
        ),
        Ev::ConfirmReply(c, commit) => format!(
            "store to p{}'s cache: the latest commit is r{commit} (confirmation sent at {} ms)",
            c.pid, c.sent_ms
        ),
        Ev::ConfirmTimeout { pid, sent_ms } => {
            format!("p{pid}'s cache confirmation sent at {sent_ms} ms times out")
        }
    }
}

fn outcome_text(outcome: &ProposalOutcome) -> String {
    match outcome {
        ProposalOutcome::Committed { .. } => "committed".to_string(),
        ProposalOutcome::Refused(e) => format!("refused: {}", refusal_text(e)),
        ProposalOutcome::Unavailable => "unavailable".to_string(),
        ProposalOutcome::Unknown => "unknown".to_string(),
    }
}

fn refusal_text(e: &ProposalError) -> String {
    e.to_string()
}

/// Runs one simulation.
pub fn run(options: Options) -> Report {
    run_with(options, None)
}

/// Runs one simulation, recording the brief of each step from `first_step` to `last_step`
/// (inclusive) in [`Report::window`]: what a pinned run that diverged from its recorded trace
/// shows of the window where it diverged. The run is the same as [`run`]'s.
pub fn run_window(options: Options, first_step: u64, last_step: u64) -> Report {
    run_with(options, Some((first_step, last_step)))
}

fn run_with(options: Options, window: Option<(u64, u64)>) -> Report {
    let params = options.params();
    match Config::fixed(params.nodes) {
        Ok(config) => {
            let mut sim = Sim::new(options, params, config);
            sim.window = window;
            sim.run()
        }
        Err(e) => Report {
            options,
            params,
            steps: 0,
            sim_ms: 0,
            commits: 0,
            trace_hash: 0,
            coverage: Coverage::default(),
            measurements: Measurements::default(),
            failure: Some(format!("bad world: {e}")),
            checkpoints: Vec::new(),
            window: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_reaches_every_local_time_first_at_the_instant_it_computes() {
        for (offset_us, rate_ppm) in [
            (0, 0),
            (7_500_123, 200),
            (3_000, -200),
            (10_000_000, -99_999),
            (1, 100_000),
        ] {
            let clock = Clock {
                offset_us,
                rate_ppm,
                anchor_us: 0,
            };
            for local_ms in [0u64, 1, 999, 10_000, 123_456] {
                let t = clock.true_at(local_ms, 0);
                assert!(clock.local_ms(t) >= local_ms);
                if t > 0 && local_ms > clock.local_ms(0) {
                    assert!(clock.local_ms(t - 1) < local_ms || clock.local_ms(t - 10) < local_ms);
                }
            }
            // Monotonic, and the rate is what was asked (within rounding) over 100 s.
            let a = clock.local_us(0);
            let b = clock.local_us(100_000_000);
            assert!(b > a);
            let expected = 100_000_000 + 100 * rate_ppm;
            let measured = i64::try_from(b - a).unwrap();
            assert!((measured - expected).abs() <= 1, "{measured} vs {expected}");
        }
    }

    #[test]
    fn a_run_that_the_world_cannot_finish_fails_instead_of_hanging() {
        // After the fault phase the cluster must converge within the liveness bound; with the
        // no-sync-views mutant some seed cannot, and the run fails saying so.
        let failed = (0..20).find_map(|seed| {
            let report = run(Options {
                planted: Some(Planted::Reducer(
                    membership::protocol::checking::Mutant::NoSyncViews,
                )),
                ..Options::swarm(seed, 10_000)
            });
            report.failure
        });
        let failure = failed.unwrap_or_default();
        assert!(failure.contains("liveness: no convergence"), "{failure}");
    }
}
