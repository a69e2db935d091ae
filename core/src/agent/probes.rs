//! Probing peers, and the partitions (and heals) the probes let this node report.

use super::limits::{PROBES_PER_ROUND_MAX, PROBE_STREAK_MIN};
use super::machine::Agent;
use super::records::Peer;
use crate::event::Event;
use crate::node::{NodeId, NodeStatus};
use crate::state::State;

impl Agent {
    /// Records the result of a probe of `peer` sent at `sent_ms` (see [`Agent::handle_probe`]).
    pub(super) fn record_probe(&mut self, peer: NodeId, sent_ms: u64, ok: bool) {
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
        debug_assert!(p.streak >= 1 && !p.probing);
    }

    /// Starts a round of probes: at most [`PROBES_PER_ROUND_MAX`] live or cut-off peers not
    /// being probed already, round-robin.
    pub(super) fn probe_peers(&mut self) {
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
                self.outputs.probe(peer);
                sent += 1;
            }
        }
        self.probe_cursor = if count == 0 {
            0
        } else {
            (self.probe_cursor + PROBES_PER_ROUND_MAX) % count
        };
        debug_assert!(sent <= PROBES_PER_ROUND_MAX);
        debug_assert!(count == 0 || self.probe_cursor < count);
    }

    /// Whether the simulation's planted bug `DriverMutant::SingleProbePartition` (feature
    /// `checking`) is in force: a partition reported after one failed probe. Always false in a
    /// production build.
    fn partition_on_one_probe(state: &State) -> bool {
        #[cfg(feature = "checking")]
        {
            state.config().driver_mutant()
                == Some(crate::checking::DriverMutant::SingleProbePartition)
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = state;
            false
        }
    }

    /// Proposes CreatePartition for a live peer whose probes kept failing for
    /// `suspect_after_ms` (and [`PROBE_STREAK_MIN`] probes), HealPartition for a cut-off peer
    /// whose probes kept answering as long.
    pub(super) fn report_partitions(&mut self, now_ms: u64, s: &State) {
        let me = self.node;
        let after = self.timing.settings().suspect_after_ms;
        debug_assert!(after > 0);
        let one_probe = Self::partition_on_one_probe(s);
        // The reports first (a pass over the peers that copies nothing: it runs after every
        // input), then their proposals, in peer order; proposing changes no peer record.
        let reports: Vec<Event> = self
            .peers
            .iter()
            .filter_map(|(&peer, p)| partition_report(me, peer, p, s, now_ms, after, one_probe))
            .collect();
        for event in reports {
            self.propose_if_enabled(now_ms, event, None);
        }
    }
}

/// What node `me` reports about `peer` from its probes `p` at `now_ms`: CreatePartition for a
/// live peer whose probes kept failing for `after` (`suspect_after_ms`, and
/// [`PROBE_STREAK_MIN`] probes) while the registry has them communicating, HealPartition for a
/// cut-off peer whose probes kept answering as long, or nothing.
fn partition_report(
    me: NodeId,
    peer: NodeId,
    p: &Peer,
    s: &State,
    now_ms: u64,
    after: u64,
    one_probe: bool,
) -> Option<Event> {
    debug_assert!(p.failing_since_ms.is_none() || p.ok_since_ms.is_none());
    let live = s.node(peer).is_some_and(|r| {
        matches!(
            r.status,
            NodeStatus::Active | NodeStatus::Leaving | NodeStatus::Joining
        )
    });
    let streak = p.streak >= PROBE_STREAK_MIN;
    let suspected = (one_probe && p.failing_since_ms.is_some())
        || (streak
            && p.failing_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= after));
    let trusted = streak
        && p.ok_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= after);
    if live && suspected && s.can_communicate(me, peer) {
        Some(Event::CreatePartition { a: me, b: peer })
    } else if trusted && !s.can_communicate(me, peer) {
        Some(Event::HealPartition { a: me, b: peer })
    } else {
        None
    }
}
