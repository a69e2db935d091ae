//! Serving: which actors the node serves, when it may serve them, and the hand-off wait before
//! it starts one (see the module documentation of `agent`).

use super::machine::Agent;
use super::output::{Decision, Notification};
use super::timing::{later_ms, Timer};
use crate::actor::ActorId;
use crate::node::{NodeId, NodeStatus};
use std::collections::{BTreeMap, BTreeSet};

/// A node's permit to serve one actor ([`Agent::permit`]): the activation's epoch, to pass on as
/// the fencing token to every downstream resource the request touches, and the local monotonic
/// time until which the node may serve the actor without asking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServingPermit {
    /// The actor.
    pub actor: ActorId,
    /// The activation's epoch: a newer activation of the actor, anywhere, has a larger one.
    pub epoch: u64,
    /// The local time (the Agent's `now_ms` clock) before which the permit holds.
    pub valid_until_ms: u64,
}

impl Agent {
    /// Whether the node may serve `actor` at local time `now_ms`: it has activated it, is not
    /// fenced, and its lease (Active) and its last snapshot are still fresh at `now_ms`. A
    /// driver asks this before serving each request, so a process that was frozen past its lease
    /// serves nothing when it resumes, even before its timers have run. The same as
    /// `self.permit(actor, now_ms).is_some()`.
    pub fn may_serve(&self, actor: ActorId, now_ms: u64) -> bool {
        let may = self.permit(actor, now_ms).is_some();
        debug_assert!(!may || self.serving.contains_key(&actor));
        debug_assert!(!may || self.fenced.is_none());
        may
    }

    /// The node's permit to serve `actor` at local time `now_ms`, or `None` when it may not
    /// ([`Agent::may_serve`]). The permit carries the activation's epoch (the fencing token a
    /// downstream resource must check: a newer activation anywhere has a larger epoch) and the
    /// local time until which the node may serve it without asking again: the earlier of the
    /// snapshot's age limit (`read_at_ms + lease_ms`) and, while Active, the heartbeat lease.
    /// The deadline can only be brought forward by later inputs (a fence, a newer snapshot
    /// that moves the actor away), never pushed back, so a request path checks `now <
    /// valid_until_ms` before each use and asks again once it has passed.
    pub fn permit(&self, actor: ActorId, now_ms: u64) -> Option<ServingPermit> {
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
        let o = self.observed.as_ref()?;
        let epoch = *self.serving.get(&actor)?;
        if self.fenced.is_some() {
            return None;
        }
        if self.never_fences(&o.state) {
            // The simulation's planted bug (feature `checking` only): lease and age ignored.
            return Some(ServingPermit {
                actor,
                epoch,
                valid_until_ms: u64::MAX,
            });
        }
        let fresh_until_ms = later_ms(o.read_at_ms, self.timing.settings().lease_ms);
        let slack_ms = self.lease_slack_ms(&o.state);
        let valid_until_ms = match o.state.node(self.node).map(|r| r.status) {
            Some(NodeStatus::Active) => {
                fresh_until_ms.min(later_ms(self.lease_until_ms?, slack_ms))
            }
            Some(NodeStatus::Leaving) => fresh_until_ms,
            _ => return None,
        };
        if now_ms >= valid_until_ms {
            return None;
        }
        debug_assert!(valid_until_ms <= fresh_until_ms);
        Some(ServingPermit {
            actor,
            epoch,
            valid_until_ms,
        })
    }

    /// The hand-off wait ([`Timing::handoff_wait_ms`](super::timing::Timing::handoff_wait_ms)),
    /// halved under the simulation's planted bug `DriverMutant::HalvedHandoffWait` (feature
    /// `checking`; never in a production build).
    fn handoff_wait_ms(&self, state: &crate::state::State) -> u64 {
        let wait = self.timing.handoff_wait_ms();
        #[cfg(feature = "checking")]
        {
            if state.config().driver_mutant()
                == Some(crate::checking::DriverMutant::HalvedHandoffWait)
            {
                return wait / 2;
            }
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = state;
        }
        wait
    }

    /// Serving: stop what the registry no longer places here, start what it does after the
    /// hand-off wait (see the module documentation); only what this process is serving, with
    /// the same epoch, goes on without one.
    pub(super) fn reconcile(&mut self, now_ms: u64) {
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
            self.outputs.decide(Decision::Deactivate { actor, epoch });
            self.outputs
                .notify(Notification::ActorDeactivated { actor, epoch });
        }
        self.pending
            .retain(|a, (epoch, _)| desired.get(a) == Some(epoch));
        let wait = self.handoff_wait_ms(&o.state);
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
                    let at = later_ms(now_ms, wait);
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
            self.outputs.decide(Decision::Activate { actor, epoch });
            self.outputs
                .notify(Notification::ActorActivated { actor, epoch });
        }
        let next = self.pending.values().map(|&(_, at)| at).min();
        self.timers.set_or_stop(Timer::Activation, next);
        debug_assert!(next.is_none_or(|at| at > now_ms));
        debug_assert!(self.serving.keys().all(|a| desired.contains_key(a)));
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
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
    debug_assert!(served.values().all(|nodes| !nodes.is_empty()));
    served
}
