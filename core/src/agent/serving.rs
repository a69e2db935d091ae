//! Serving: which actors the node serves, when it may serve them, and the hand-off wait before
//! it starts one (see the module documentation of `agent`).

use super::machine::Agent;
use super::output::{Decision, Notification};
use super::records::Reconciled;
use super::timing::{later_ms, Timer};
use crate::actor::ActorId;
use crate::node::{NodeId, NodeStatus};
use imbl::ordmap::DiffItem;
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
    /// the same epoch, goes on without one. Runs after every input, so it looks only at what
    /// changed: the actors whose placement changed since its last pass (a diff of the two
    /// snapshots' placements, which share their unchanged parts: O(changes x log actors)),
    /// or every actor of this node when the fence or the node's status changed.
    pub(super) fn reconcile(&mut self, now_ms: u64) {
        let Some(o) = &self.observed else {
            return;
        };
        let me = self.node;
        let status = o.state.node(me).map(|r| r.status);
        let fenced = self.fenced.is_some();
        let serves = !fenced && matches!(status, Some(NodeStatus::Active | NodeStatus::Leaving));
        let placements = o.state.placements().clone();
        let wait = self.handoff_wait_ms(&o.state);
        let basis = self.reconciled.take();
        let (desired, candidates): (BTreeMap<ActorId, u64>, Vec<ActorId>) = match basis {
            Some(b) if b.fenced == fenced && b.status == status => {
                let mut desired = b.desired;
                let mut changed = Vec::new();
                for item in b.placements.diff(&placements) {
                    let (actor, before, after) = match item {
                        DiffItem::Add(a, p) => (*a, None, Some(*p)),
                        DiffItem::Update { old, new } => (*old.0, Some(*old.1), Some(*new.1)),
                        DiffItem::Remove(a, p) => (*a, Some(*p), None),
                    };
                    if before.is_some_and(|p| p.node == me) || after.is_some_and(|p| p.node == me) {
                        match after {
                            Some(p) if serves && p.node == me => desired.insert(actor, p.epoch),
                            _ => desired.remove(&actor),
                        };
                        changed.push(actor);
                    }
                }
                (desired, changed)
            }
            _ => {
                let desired: BTreeMap<ActorId, u64> = if serves {
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
                let every: BTreeSet<ActorId> = self
                    .serving
                    .keys()
                    .chain(self.pending.keys())
                    .chain(desired.keys())
                    .copied()
                    .collect();
                (desired, every.into_iter().collect())
            }
        };
        debug_assert!(candidates.windows(2).all(|w| w[0] < w[1]), "in actor order");
        // Stop first (every actor no longer placed here with the epoch served), then drop the
        // waits that no longer apply, then start waiting for the new ones.
        for &actor in &candidates {
            let want = desired.get(&actor).copied();
            if let Some(&epoch) = self.serving.get(&actor) {
                if want != Some(epoch) {
                    self.serving.remove(&actor);
                    self.outputs.decide(Decision::Deactivate { actor, epoch });
                    self.outputs
                        .notify(Notification::ActorDeactivated { actor, epoch });
                }
            }
        }
        for &actor in &candidates {
            let want = desired.get(&actor).copied();
            if self
                .pending
                .get(&actor)
                .is_some_and(|&(epoch, _)| want != Some(epoch))
            {
                self.pending.remove(&actor);
            }
            if let Some(epoch) = want {
                if self.serving.get(&actor) != Some(&epoch) && !self.pending.contains_key(&actor) {
                    // Whoever held the actor before (a live node, a Failed one, this node's
                    // previous incarnation, this very process before a fence) may still serve
                    // it for up to a lease after its last snapshot read before the move: wait.
                    self.pending.insert(actor, (epoch, later_ms(now_ms, wait)));
                }
            }
        }
        debug_assert!(self.serving.keys().all(|a| desired.contains_key(a)));
        debug_assert!(self
            .pending
            .iter()
            .all(|(a, &(e, _))| desired.get(a) == Some(&e)));
        self.reconciled = Some(Reconciled {
            fenced,
            status,
            placements,
            desired,
        });
        self.pending_due_ms = self.pending.values().map(|&(_, at)| at).min();
        self.activate_due(now_ms);
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
    }

    /// Activates the actors whose hand-off wait has passed, in actor order: nothing when the
    /// earliest is not due yet.
    fn activate_due(&mut self, now_ms: u64) {
        if self.pending_due_ms.is_none_or(|at| at > now_ms) {
            debug_assert!(self.pending.values().all(|&(_, at)| at > now_ms));
            self.timers
                .set_or_stop(Timer::Activation, self.pending_due_ms);
            return;
        }
        debug_assert!(self.fenced.is_none());
        let start: Vec<(ActorId, u64)> = self
            .pending
            .iter()
            .filter(|(_, &(_, at))| at <= now_ms)
            .map(|(&actor, &(epoch, _))| (actor, epoch))
            .collect();
        for (actor, epoch) in start {
            self.pending.remove(&actor);
            self.serving.insert(actor, epoch);
            self.outputs.decide(Decision::Activate { actor, epoch });
            self.outputs
                .notify(Notification::ActorActivated { actor, epoch });
        }
        let next = self.pending.values().map(|&(_, at)| at).min();
        self.timers.set_or_stop(Timer::Activation, next);
        self.pending_due_ms = next;
        debug_assert!(next.is_none_or(|at| at > now_ms));
        debug_assert!(self.pending.values().all(|&(_, at)| at > now_ms));
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
