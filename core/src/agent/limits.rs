//! The Agent's bounds: every queue and loop of the Agent is bounded by one of these constants.

use crate::actor::ACTORS_MAX;
use crate::node::NODES_MAX;

/// The most place requests the application may queue before they are proposed.
pub const PLACE_QUEUE_MAX: usize = 65_536;

/// The most notifications and decisions waiting to be polled; older notifications are dropped
/// first (decisions are never dropped: they are bounded by the actors placed on the node).
pub const NOTIFICATIONS_MAX: usize = 65_536;

/// The most decisions one input can produce: a fence or an unfence, and a deactivation and an
/// activation per actor.
pub(super) const DECISIONS_MAX: usize = 2 + 2 * ACTORS_MAX as usize;

/// How many times a proposal whose outcome was unknown or whose store was unavailable is sent
/// again (with the same id) before the Agent gives up on it.
pub const RETRIES_MAX: u32 = 16;

/// The most proposals in flight at once (one per kind, and kinds are bounded by the nodes).
pub const IN_FLIGHT_MAX: usize = 1_024;

/// The most requests of the application ([`Agent::submit`](crate::Agent::submit)) waiting for
/// their outcome.
pub const REQUESTS_MAX: usize = 1_024;

/// How many times a request whose outcome is unknown is sent again (same id, at once) before
/// its result is [`RequestError::Unknown`](crate::RequestError::Unknown).
pub const REQUEST_RETRIES_MAX: u32 = 8;

/// The most heartbeat rounds a node remembers having seen open (with the local time it first
/// saw each): the evidence a silent member is declared on. Older ones are forgotten first; the
/// newest round seen open for the failure timeout is always kept.
pub const ROUNDS_SEEN_MAX: usize = 64;

/// The most peers a node probes per probe round (round-robin over its peers).
pub const PROBES_PER_ROUND_MAX: usize = 8;

/// How many consecutive probes must agree (fail, or answer) before a node reports a partition
/// (or its heal), besides `suspect_after_ms` of them.
pub const PROBE_STREAK_MIN: u32 = 3;

/// The most outputs one [`drain`](crate::drain) executes: every output queue's bound added up
/// (proposals in flight and requests, one probe per peer, one read, two decisions per actor and
/// two more, notifications, replies, place results). Outputs beyond it wait for the next drain.
pub const DRAIN_OUTPUTS_MAX: usize = IN_FLIGHT_MAX
    + REQUESTS_MAX
    + NODES_MAX as usize
    + 1
    + DECISIONS_MAX
    + NOTIFICATIONS_MAX
    + REQUESTS_MAX
    + PLACE_QUEUE_MAX;
