//! Single activation as the nodes report it: an audit of the notifications of a whole cluster,
//! for tests and examples (the simulation checks the same thing with `Agent::may_serve` at every
//! step; this reads what the running nodes said).

use crate::node::NodeNotification;
use membership_core::{ActorId, NodeId, Notification};
use std::collections::BTreeMap;
use std::time::Instant;
use thiserror::Error;

/// An actor activated on a node while another node still had it active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error(
    "{actor} activated on {node} (epoch {epoch}) while active on {other} (epoch {other_epoch})"
)]
pub struct DoubleActivation {
    /// The actor.
    pub actor: ActorId,
    /// The node that activated it.
    pub node: NodeId,
    /// Its epoch there.
    pub epoch: u64,
    /// The node that still had it active.
    pub other: NodeId,
    /// Its epoch there.
    pub other_epoch: u64,
}

/// Checks from the nodes' own notifications that no actor was active on two nodes at once, and
/// returns how many activations it checked. An activation ends with its `ActorDeactivated`, a
/// `Fenced` of its node, or the instant the caller says the node was killed (`killed`: a node
/// killed then says nothing more, and what it reports after that instant is ignored).
pub fn check_single_activation(
    log: &[NodeNotification],
    killed: &[(NodeId, Instant)],
) -> Result<usize, DoubleActivation> {
    let mut events: Vec<&NodeNotification> = log.iter().collect();
    events.sort_by_key(|n| n.at);
    let mut kills: Vec<(NodeId, Instant)> = killed.to_vec();
    kills.sort_by_key(|&(_, at)| at);
    let mut kills = kills.into_iter().peekable();
    let mut active: BTreeMap<ActorId, BTreeMap<NodeId, u64>> = BTreeMap::new();
    let mut checked = 0;
    for n in events {
        while let Some((node, _)) = kills.next_if(|&(_, at)| at <= n.at) {
            for holders in active.values_mut() {
                holders.remove(&node);
            }
        }
        if killed
            .iter()
            .any(|&(node, at)| node == n.node && n.at >= at)
        {
            continue;
        }
        match n.notification {
            Notification::ActorActivated { actor, epoch } => {
                checked += 1;
                let holders = active.entry(actor).or_default();
                if let Some((&other, &other_epoch)) = holders.iter().find(|(o, _)| **o != n.node) {
                    return Err(DoubleActivation {
                        actor,
                        node: n.node,
                        epoch,
                        other,
                        other_epoch,
                    });
                }
                holders.insert(n.node, epoch);
            }
            Notification::ActorDeactivated { actor, .. } => {
                if let Some(holders) = active.get_mut(&actor) {
                    holders.remove(&n.node);
                }
            }
            Notification::Fenced { .. } => {
                for holders in active.values_mut() {
                    holders.remove(&n.node);
                }
            }
            _ => {}
        }
    }
    debug_assert!(checked <= log.len());
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::FenceReason;
    use std::time::Duration;

    fn at(base: Instant, ms: u64, node: u16, notification: Notification) -> NodeNotification {
        NodeNotification {
            at: base + Duration::from_millis(ms),
            node: NodeId(node),
            notification,
        }
    }

    fn activated(epoch: u64) -> Notification {
        Notification::ActorActivated {
            actor: ActorId(1),
            epoch,
        }
    }

    #[test]
    fn an_overlap_is_named_and_every_end_of_an_activation_counts() {
        let t = Instant::now();
        let deactivated = Notification::ActorDeactivated {
            actor: ActorId(1),
            epoch: 1,
        };
        // Overlap: n2 activates while n1 still serves.
        let log = [at(t, 0, 1, activated(1)), at(t, 5, 2, activated(2))];
        assert_eq!(
            check_single_activation(&log, &[]),
            Err(DoubleActivation {
                actor: ActorId(1),
                node: NodeId(2),
                epoch: 2,
                other: NodeId(1),
                other_epoch: 1,
            })
        );
        // The same, given in another order: the log is sorted by time first.
        let reversed = [log[1].clone(), log[0].clone()];
        assert!(check_single_activation(&reversed, &[]).is_err());
        // Deactivated, fenced or killed before n2 activates: no overlap.
        let fenced = Notification::Fenced {
            reason: FenceReason::LeaseExpired,
        };
        for end in [deactivated, fenced] {
            let log = [
                at(t, 0, 1, activated(1)),
                at(t, 3, 1, end.clone()),
                at(t, 5, 2, activated(2)),
            ];
            assert_eq!(check_single_activation(&log, &[]), Ok(2), "{end:?}");
        }
        let log = [
            at(t, 0, 1, activated(1)),
            at(t, 5, 2, activated(2)),
            at(t, 6, 1, activated(3)),
        ];
        let killed = [(NodeId(1), t + Duration::from_millis(4))];
        assert_eq!(check_single_activation(&log, &killed), Ok(2));
    }
}
