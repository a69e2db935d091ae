//! Notifications: what the application is told about the changes between two snapshots.

use super::limits::NOTIFICATIONS_MAX;
use super::machine::Agent;
use super::output::Notification;
use crate::node::{NodeId, NodeStatus};
use crate::state::State;

impl Agent {
    /// Notifications from what changed between the last snapshot and `next`.
    pub(super) fn notify_changes(&mut self, next: &State) {
        let me = self.node;
        debug_assert!(
            next.node(me).is_some(),
            "the caller fences a node missing from `next`"
        );
        let Some(after) = next.node(me).cloned() else {
            return;
        };
        let before = self
            .observed
            .as_ref()
            .and_then(|o| o.state.node(me).cloned());
        let was = before.as_ref().map(|r| r.status);
        if after.status == NodeStatus::Active && was != Some(NodeStatus::Active) {
            self.outputs.notify(Notification::Joined {
                view: after.view.clone(),
            });
        }
        if after.status == NodeStatus::Left && was == Some(NodeStatus::Leaving) {
            self.outputs.notify(Notification::Left);
        }
        let was_primary = before.as_ref().is_some_and(|r| r.believes_primary);
        if after.believes_primary && !was_primary {
            self.outputs
                .notify(Notification::BecamePrimary { term: after.term });
        }
        if was_primary && !after.believes_primary {
            let term = before.as_ref().map_or(0, |r| r.term);
            self.outputs.notify(Notification::SteppedDown { term });
        }
        if after.status == NodeStatus::Active
            && before.is_some_and(|r| r.view != after.view || r.view_number != after.view_number)
        {
            self.outputs.notify(Notification::ViewChanged {
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
                self.outputs.notify(Notification::NodeFailed { node });
            }
        }
        debug_assert!(self.outputs.notifications.len() <= NOTIFICATIONS_MAX);
    }
}
