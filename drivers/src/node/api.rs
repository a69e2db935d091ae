//! What an application sees of a node: its options, its errors, its notifications, its serving
//! permits, and the runtime's bounds.

use crate::store::StoreError;
use membership_core::{
    ActorId, NodeId, Notification, ProposalError, Timing, PLACE_QUEUE_MAX, REQUEST_RETRIES_MAX,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The most messages (outcomes, probe results, snapshots) waiting for a node's task.
pub const INBOX_MAX: usize = 65_536;
/// The most commands waiting for a node's task.
pub const COMMANDS_MAX: usize = 1_024;
/// The most notifications a slow subscriber may lag behind before it misses some.
pub const NOTIFICATION_BUFFER: usize = 65_536;
/// How long a handle waits, once the node's task has ended, for the reason to be published
/// (its probe listener is closed first).
pub const STOP_REASON_WAIT_MS: u64 = 1_000;
/// How long the metrics endpoint waits for the node's task to report its health (a task that
/// does not answer in time is not ready, and its health metrics are left out of the scrape).
pub const METRICS_TASK_ANSWER_TIMEOUT_MS: u64 = 1_000;

/// Why a handle operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// The store failed (unreachable, or an undecodable value naming its key).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The proposal was refused: a stale incarnation, an unknown node, a stale round, or the
    /// reducer's refusal (a stale term, a failed guard), with the reason.
    #[error("refused: {0}")]
    Refused(ProposalError),
    /// The node's identity does not prove the node it is started as.
    #[error("node {node} cannot start with the identity of node {identity}")]
    Identity {
        /// The node started.
        node: NodeId,
        /// The node its identity proves.
        identity: NodeId,
    },
    /// The store did not answer.
    #[error("the store is unavailable")]
    Unavailable,
    /// The store did not say whether the proposal committed, after every retry.
    #[error("the outcome is unknown after {REQUEST_RETRIES_MAX} retries")]
    Unknown,
    /// Too many proposals of the application are waiting for their outcome.
    #[error("too many proposals are waiting")]
    TooManyRequests,
    /// `place_actor` waited `wait_timeout_ms` while its request was still queued (the node was
    /// not Active, or its earlier placements were still in flight): the request was withdrawn,
    /// and the actor will not be placed by it.
    #[error("timed out waiting for {0}: the request was withdrawn")]
    Timeout(&'static str),
    /// `join` or `leave` waited `wait_timeout_ms` without reaching the status asked for (the
    /// store unreachable, the cluster slow): the request stays in effect, and the node keeps
    /// moving toward that status (a NodeJoin or NodeLeave in flight cannot be taken back). Call
    /// the opposite operation to change course.
    #[error("timed out waiting for {0}: still in progress")]
    Pending(&'static str),
    /// [`PLACE_QUEUE_MAX`] place requests of this node are already waiting: nothing was queued.
    #[error("{PLACE_QUEUE_MAX} place requests are already waiting")]
    PlaceQueueFull,
    /// Another process of this node claimed its slot (a newer incarnation): this one is
    /// fenced for good and can no longer join, leave or place.
    #[error("superseded: incarnation {incarnation} was replaced by {current}")]
    Superseded {
        /// This process's incarnation.
        incarnation: u64,
        /// The incarnation holding the slot.
        current: u64,
    },
    /// The node's task has stopped (killed, its handle dropped, or it panicked), with why; its
    /// probe listener and every other task of the node stopped with it.
    #[error("the node has stopped: {0}")]
    Stopped(String),
    /// The probe address or the metrics address could not be bound (the message names which).
    #[error("{0}")]
    Io(String),
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The node id (`n1` ... up to the registry's node count).
    pub node: NodeId,
    /// Where to answer probes (`127.0.0.1:0` picks a free port).
    pub probe_address: SocketAddr,
    /// The timing settings.
    pub timing: Timing,
    /// How long one store operation may take before its outcome counts as unknown.
    pub store_timeout_ms: u64,
    /// How long `join`, `leave` and `place_actor` wait for the registry.
    pub wait_timeout_ms: u64,
    /// Where to serve the metrics endpoint (HTTP/1.1 `GET /metrics`, `/livez`, `/readyz`), or
    /// `None` (the default) for none; port 0 picks a free port
    /// ([`NodeHandle::metrics_address`](super::NodeHandle::metrics_address) tells which).
    pub metrics_address: Option<SocketAddr>,
    /// The node's proven identity, or `None` (the default) for plain probes. With one, the node
    /// answers and sends probes only over mutually authenticated TLS, and it must prove
    /// [`NodeOptions::node`] (see [`crate::identity`]).
    pub identity: Option<crate::identity::NodeIdentity>,
    /// Offsets a test adds to the node's clock readings (feature `testing`).
    #[cfg(feature = "testing")]
    pub clock_skew: Option<crate::clock::ClockSkew>,
}

impl NodeOptions {
    /// Options for `node` with the default timing, probing on a free loopback port.
    pub fn new(node: NodeId) -> NodeOptions {
        NodeOptions {
            node,
            probe_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            timing: Timing::default_timing(),
            store_timeout_ms: 1_000,
            wait_timeout_ms: 30_000,
            metrics_address: None,
            identity: None,
            #[cfg(feature = "testing")]
            clock_skew: None,
        }
    }
}

/// A notification with the node and the instant it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNotification {
    /// When (the runtime's monotonic clock).
    pub at: Instant,
    /// Which node.
    pub node: NodeId,
    /// What.
    pub notification: Notification,
}

/// A node's permit to serve one actor ([`NodeHandle::permit`](super::NodeHandle::permit)).
///
/// A request path checks [`Permit::is_valid`] before it serves, passes [`Permit::epoch`] as the
/// fencing token with every write to a downstream resource (which refuses an epoch older than
/// the newest it has seen for the actor), and asks for a new permit once this one has expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    /// The actor.
    pub actor: ActorId,
    /// The activation's epoch: every newer activation of the actor, on any node, has a larger
    /// one.
    pub epoch: u64,
    /// The local monotonic instant before which the node may serve the actor. It is converted
    /// from the Agent's clock (`CLOCK_BOOTTIME`) into an `Instant` (`CLOCK_MONOTONIC`) when the
    /// permit is issued: a permit held across a suspend or a paused VM, which stop
    /// `CLOCK_MONOTONIC`, still looks valid after it, so ask for a fresh permit per request
    /// rather than keeping one (the lease argument rests on the node's own clock, see
    /// `clock.rs` and the README's clock row).
    pub valid_until: Instant,
}

impl Permit {
    /// Whether the permit still holds now.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// How long the permit still holds (zero once it has expired).
    pub fn remaining(&self) -> Duration {
        self.valid_until.saturating_duration_since(Instant::now())
    }
}
