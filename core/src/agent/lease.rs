//! The lease: when the node fences itself (stops serving everything) and when it may unfence.

use super::machine::Agent;
use super::output::{Decision, FenceReason, Notification};
use super::timing::{later_ms, Timer};
use crate::node::NodeStatus;
use crate::state::State;

impl Agent {
    /// Whether the simulation's planted bug `DriverMutant::NoSelfFence` (feature `checking`)
    /// is in force in `state`'s configuration. Always false in a production build.
    pub(super) fn never_fences(&self, state: &State) -> bool {
        #[cfg(feature = "checking")]
        {
            state.config().driver_mutant() == Some(crate::checking::DriverMutant::NoSelfFence)
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = state;
            false
        }
    }

    /// How much longer than `lease_ms` the lease check and `may_serve` let a committed heartbeat
    /// count: one heartbeat interval under the simulation's planted bug
    /// `DriverMutant::LeaseOneIntervalLong` (feature `checking`), 0 otherwise (always 0 in a
    /// production build).
    pub(super) fn lease_slack_ms(&self, state: &State) -> u64 {
        #[cfg(feature = "checking")]
        {
            if state.config().driver_mutant()
                == Some(crate::checking::DriverMutant::LeaseOneIntervalLong)
            {
                return self.timing.settings().heartbeat_interval_ms;
            }
            0
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = state;
            0
        }
    }

    /// Stops serving everything (each actor deactivated) and records why; told once, except
    /// that Superseded is recorded (and told) over an earlier reason.
    pub(super) fn fence(&mut self, reason: FenceReason) {
        // Whatever fenced the node now, only a heartbeat committed from here on shows it able
        // to commit again.
        self.first_heartbeat_commit_since_fence_ms = None;
        if self.fenced.is_none() {
            self.outputs.decide(Decision::Fence);
        }
        // Superseded is final: once another incarnation holds the slot, this one never serves
        // again, so it is recorded (and told) even over an earlier reason.
        let superseded =
            reason == FenceReason::Superseded && self.fenced != Some(FenceReason::Superseded);
        if self.fenced.is_none() || superseded {
            self.fenced = Some(reason);
            self.outputs.notify(Notification::Fenced { reason });
        }
        let serving = std::mem::take(&mut self.serving);
        for (actor, epoch) in serving {
            self.outputs.decide(Decision::Deactivate { actor, epoch });
            self.outputs
                .notify(Notification::ActorDeactivated { actor, epoch });
        }
        self.pending.clear();
        self.pending_due_ms = None;
        assert!(self.serving.is_empty());
        assert!(self.fenced.is_some());
    }

    /// Fences the node when its lease or its snapshot has run out or the registry declared it
    /// failed; unfences it once its standing is known again.
    pub(super) fn check_lease(&mut self, now_ms: u64) {
        let Some(o) = &self.observed else {
            return;
        };
        let status = o.state.node(self.node).map(|r| r.status);
        let never_fences = self.never_fences(&o.state);
        let slack_ms = self.lease_slack_ms(&o.state);
        let fresh =
            never_fences || now_ms < later_ms(o.read_at_ms, self.timing.settings().lease_ms);
        let leased = never_fences
            || self
                .lease_until_ms
                .is_some_and(|until| now_ms < later_ms(until, slack_ms));
        match status {
            Some(NodeStatus::Failed) => self.fence(FenceReason::DeclaredFailed),
            Some(NodeStatus::Active) if !leased => self.fence(FenceReason::LeaseExpired),
            Some(NodeStatus::Active | NodeStatus::Leaving) if !fresh => {
                self.fence(FenceReason::RegistryUnreachable)
            }
            Some(NodeStatus::Active) | Some(NodeStatus::Leaving) => {
                // Unfence once a heartbeat committed (Active) and a snapshot read after it shows
                // the node's standing; a Leaving node cannot heartbeat and is never declared
                // failed, so a fresh snapshot is enough.
                // After a clock fence, both must come after the suspicious reading (watchdog).
                // The heartbeat is the latest one, or the first since the fence: a snapshot
                // that takes longer than a heartbeat interval to arrive (a registry cache whose
                // change feed lags) is always read before the latest heartbeat, and would
                // otherwise keep the node fenced for good.
                let after = |commit: Option<u64>| {
                    commit.is_some_and(|at| at <= o.read_at_ms && self.clocks_trusted_since(at))
                };
                let standing_known = (status == Some(NodeStatus::Leaving)
                    && self.clocks_trusted_since(o.read_at_ms))
                    || after(self.last_heartbeat_commit_ms)
                    || after(self.first_heartbeat_commit_since_fence_ms);
                if self.fenced.is_some()
                    && self.fenced != Some(FenceReason::Superseded)
                    && standing_known
                {
                    self.fenced = None;
                    self.outputs.decide(Decision::Unfence);
                    self.outputs.notify(Notification::Unfenced);
                }
            }
            _ => {}
        }
        if let Some(until) = self.lease_until_ms.map(|until| later_ms(until, slack_ms)) {
            if until > now_ms {
                self.timers.set(Timer::Lease, until);
            }
        }
        debug_assert!(status != Some(NodeStatus::Failed) || self.fenced.is_some());
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
    }
}
