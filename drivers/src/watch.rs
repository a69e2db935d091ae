//! What `membership watch` prints (issue 21, point 5): the committed changes between two
//! snapshots of the registry, one line per fact, each naming the spec actions that explain it
//! (`n3: Active -> Failed (MarkNodeFailed)`). Pure: no store, no clock.
//!
//! A watcher reads a snapshot per change it is woken for, and the store may have committed
//! several transactions by then: a line describes the net change between the two snapshots
//! (a node that joined and completed its join in between shows `Left -> Active (NodeJoin,
//! NodeJoinComplete)`), and placements and queue entries are counted, not listed one by one.
//! Costs O(keys changed): node records, counters and the placements and queue entries that
//! differ (the registry's persistent maps compare shared parts at once).

use crate::store::Snapshot;
use membership_core::{MigrationReason, NodeId, NodeSet, NodeStatus};
use std::collections::BTreeMap;

/// The spec actions that take a node from `from` to `to` (several when a watcher saw only
/// their net effect).
pub fn status_actions(from: NodeStatus, to: NodeStatus) -> &'static str {
    use NodeStatus::{Active, Failed, Joining, Leaving, Left};
    match (from, to) {
        (Left, Joining) => "NodeJoin",
        (Left, Active) | (Joining, Active) => "NodeJoin, NodeJoinComplete",
        (Active, Leaving) => "NodeLeave",
        (Leaving, Left) => "NodeLeaveComplete",
        (Active, Left) => "NodeLeave, NodeLeaveComplete",
        (Active, Failed) => "MarkNodeFailed",
        (Failed, Left) => "NodeRecover",
        (Failed, Joining) => "NodeRecover, NodeJoin",
        (Failed, Active) => "NodeRecover, NodeJoin, NodeJoinComplete",
        _ => "several actions",
    }
}

fn names(set: &NodeSet) -> String {
    set.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The changes from `before` to `after`, one line each, in a fixed order: nodes (status, votes,
/// partition reports) in id order, then the primary, the configuration, the actors, the queue,
/// and, with `rounds`, the heartbeat round (it opens every few hundred ms, so it is off by
/// default).
pub fn changes(before: &Snapshot, after: &Snapshot, rounds: bool) -> Vec<String> {
    let (a, b) = (&before.state, &after.state);
    let delta = a.delta(b);
    let mut lines = Vec::new();
    for (&n, new) in &delta.nodes {
        let Some(old) = a.node(n) else { continue };
        if old.status != new.status {
            lines.push(format!(
                "{n}: {} -> {} ({})",
                old.status,
                new.status,
                status_actions(old.status, new.status)
            ));
        }
        let voted = new.detected.difference(&old.detected);
        if !voted.is_empty() {
            lines.push(format!(
                "{n}: votes to declare {} failed (DetectFailure)",
                names(&voted)
            ));
        }
        let cut = new.partitioned_from.difference(&old.partitioned_from);
        if !cut.is_empty() {
            lines.push(format!(
                "{n}: reports a partition with {} (CreatePartition)",
                names(&cut)
            ));
        }
        let healed = old.partitioned_from.difference(&new.partitioned_from);
        if !healed.is_empty() {
            lines.push(format!(
                "{n}: reports {} reachable again (HealPartition)",
                names(&healed)
            ));
        }
    }
    let (was, now) = (a.primary_and_term(), b.primary_and_term());
    if was != now {
        let show = |p: Option<(NodeId, u64)>| match p {
            Some((n, term)) => format!("{n}, term {term}"),
            None => "none".to_string(),
        };
        let why = if now.is_some() {
            "ElectPrimary"
        } else {
            "PrimaryStepDown, NodeLeave or MarkNodeFailed"
        };
        lines.push(format!(
            "primary: {} (was {}) ({why})",
            show(now),
            show(was)
        ));
    }
    if a.view_counter() != b.view_counter() {
        lines.push(format!(
            "configuration: #{} -> #{} (the members changed)",
            a.view_counter(),
            b.view_counter()
        ));
    }
    let (mut placed, mut moved, mut removed) = (0u64, 0u64, 0u64);
    for (actor, new) in &delta.placements {
        match (a.placement(*actor), new) {
            (None, Some(_)) => placed += 1,
            (Some(old), Some(new)) if old.node != new.node => moved += 1,
            (Some(_), None) => removed += 1,
            _ => {}
        }
    }
    if placed + moved + removed > 0 {
        let mut parts = Vec::new();
        if placed > 0 {
            parts.push(format!("{placed} placed (PlaceActor)"));
        }
        if moved > 0 {
            parts.push(format!("{moved} moved (MigrateActor)"));
        }
        if removed > 0 {
            parts.push(format!("{removed} removed (RemoveActor)"));
        }
        lines.push(format!(
            "actors: {}; {} placed in all",
            parts.join(", "),
            b.placements().len()
        ));
    }
    let mut queued: BTreeMap<(NodeId, MigrationReason), u64> = BTreeMap::new();
    for entry in delta.queue.values().flatten() {
        *queued.entry((entry.from, entry.reason)).or_default() += 1;
    }
    for ((from, reason), count) in &queued {
        let action = match reason {
            MigrationReason::NodeFailed => "MarkNodeFailed",
            MigrationReason::NodeLeaving => "NodeLeave",
            MigrationReason::LoadBalancing => "RebalanceActors",
        };
        lines.push(format!(
            "queue: {count} actors queued to leave {from}, {reason} ({action}); {} queued in all",
            b.queue().len()
        ));
    }
    if queued.is_empty() && a.queue().len() != b.queue().len() {
        lines.push(format!(
            "queue: {} -> {} queued",
            a.queue().len(),
            b.queue().len()
        ));
    }
    if rounds && before.round != after.round {
        lines.push(format!(
            "heartbeat round: {} -> {} (ResetHeartbeats)",
            before.round, after.round
        ));
    }
    debug_assert!(lines.iter().all(|l| !l.contains('\n')));
    lines
}
