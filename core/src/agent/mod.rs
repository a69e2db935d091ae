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
//!   application), every [`Output::Reply`] (a submitted request's final result), every
//!   [`Output::Placed`] (a place request's final result); and finally
//!   [`Agent::poll_timeout`] (when to call `handle_timeout` next).
//!
//! An input the Agent cannot use is refused with an [`InputError`] naming what was wrong (a
//! local time above [`LOCAL_TIME_MS_MAX`] or earlier than an earlier input's, a snapshot read
//! after it arrived, a probe answered before it was sent, a probe of a node that is not a
//! peer), and changes nothing; no input panics. With a refused time, `join`, `leave` and
//! `place` record the application's wish and act on it at the next accepted input. Every
//! deadline is an accepted time plus accepted settings (each at most [`TIMING_MS_MAX`]), so it
//! cannot overflow; the additions saturate anyway, asserting that they never need to.
//!
//! The code is split by concern, and the modules form no cycle. Leaves, which know nothing of
//! the Agent: `limits` (every bound), `timing` (settings, the timer table), `output` (the
//! outputs, their queue, the [`Io`] a driver executes them with), `records` (the Agent's
//! internal records: the snapshot, proposals in flight, requests, peers) and `clocks` (the clock
//! reading, the watchdog's state and its judgement). `machine` holds the [`Agent`] itself: its state, the inputs, the outputs and the [`drain`] loop. The behaviour
//! modules are each an `impl Agent` block for one concern, and import only `machine` and the
//! leaves: `flights` (proposals in flight and requests), `probes`, `lease`, `serving`, `notify`
//! (what the application is told about a new snapshot), `policy` (what to propose next) and
//! `watchdog` (the clock watchdog: [`Agent::handle_clock`]).
//!
//! What it decides, and why it is safe:
//!
//! - **Heartbeats and the lease.** An Active node proposes SendHeartbeat every
//!   `heartbeat_interval_ms`. A committed heartbeat sent at local time `t` gives a lease until
//!   `t + lease_ms`; when the lease runs out the node fences itself (stops serving every actor
//!   and drops its primary duties) and unfences only after a heartbeat commits again and a
//!   snapshot read after that commit shows it Active.
//! - **Rounds and detection (registry v2).** The store keeps a heartbeat round (metadata,
//!   opened by every committed ResetHeartbeats) and, for each node, the round its latest
//!   heartbeat ran at (`heartbeat/n`, written by that node's heartbeat or its own join
//!   alone; [`Rounds`]); a node's flag says that is the open round. Once the open round is half
//!   a heartbeat interval old (staggered by rank among the members, a quarter interval each; a
//!   Joining node comes after every member) a node opens the next one, whoever has heartbeated
//!   in it, unless votes are gathering (then not before the round is `failure_timeout_ms` old).
//!   A member whose latest heartbeat names a round before one this node has seen open for
//!   `failure_timeout_ms` (by its own clock; the rounds seen are kept, at most
//!   [`ROUNDS_SEEN_MAX`]) is declared failed on the registry's evidence: MarkNodeFailed carries
//!   that round and is refused if the member's heartbeat names it or a later one. That
//!   heartbeat ran on a registry read before the round opened, so it was sent before; the
//!   declared node committed nothing sent after that for at least `failure_timeout_ms` of the
//!   proposer's clock, which (with `failure_timeout_ms / (1 + rate error) > lease_ms / (1 -
//!   rate error) + heartbeat_interval_ms`, checked exactly by [`Timing::new`]: the proposer's
//!   clock may be fast, the node's slow) is longer than the node's lease: it fenced itself
//!   before it was declared, whether it crashed, paused, lost only its store link or panicked.
//!   A member that still heartbeats but that this node cannot reach (a partition recorded in
//!   the registry) gets this node's vote (DetectFailure, carrying the round); it is declared once
//!   a majority of the members voted in the round. Such a node may still hold its lease: single
//!   activation does not rest on it, but on the serving rule and the hand-off wait below. A
//!   Joining node opens rounds and declares silent members too, so a cluster whose last members
//!   were lost while the others were joining recovers (its NodeJoinComplete then bootstraps).
//! - **Partitions.** A node whose probes to a peer keep failing for `suspect_after_ms` reports
//!   CreatePartition(self, peer); once they succeed again for `suspect_after_ms`, HealPartition.
//! - **Everything else** is proposed when the reducer, run on the snapshot, says the action is
//!   enabled: NodeJoinComplete, MarkNodeFailed (any Active node may propose it once the guard
//!   holds), NodeRecover, ElectPrimary, PrimaryStepDown, SyncViews (a member behind the
//!   registry's configuration adopts it once it has been unchanged for a heartbeat interval, at
//!   the latest `failure_timeout_ms` after it fell behind, and at once while no primary is
//!   valid), NodeLeaveComplete (once the node holds no actor), and, for the primary in office,
//!   the migration queue in batches. The Agent never re-implements a guard. A kind of proposal
//!   goes out again only after a snapshot read that followed its last outcome, with one
//!   exception: a migration batch that committed and moved actors is followed at once by the
//!   next (the store picks each batch from the registry at commit, so a drain's batches run
//!   back to back; the batch that finds the queue empty is refused and ends the chain).
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

mod clocks;
mod flights;
mod lease;
mod limits;
mod machine;
mod notify;
mod output;
mod policy;
mod probes;
mod records;
mod serving;
mod timing;
mod watchdog;

pub use clocks::{ClockReading, CLOCK_GAP_SLACK_MS, CLOCK_READING_SLACK_MS};
pub use limits::{
    DRAIN_OUTPUTS_MAX, IN_FLIGHT_MAX, NOTIFICATIONS_MAX, PLACE_QUEUE_MAX, PROBES_PER_ROUND_MAX,
    PROBE_STREAK_MIN, REQUESTS_MAX, REQUEST_RETRIES_MAX, RETRIES_MAX, ROUNDS_SEEN_MAX,
};
pub use machine::{drain, Agent, InputError};
pub use output::{
    ClockFault, Decision, FenceReason, Io, Notification, Outgoing, Output, PlaceQueueFull,
    RequestError, TooManyRequests,
};
pub use records::Rounds;
pub use serving::{served_by, ServingPermit};
pub use timing::{
    Timing, TimingError, TimingSettings, LOCAL_TIME_MS_MAX, TIME_HEADROOM_MS, TIMING_MS_MAX,
};
