//! Coverage: how often each spec action committed, each fault fired, and each refusal happened,
//! per run and summed over a campaign; and what a campaign never exercised.

use membership::protocol::{ActionName, Guard, ProposalError};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A fault type the simulation injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A commit that did not apply, reported as unknown.
    UnknownBeforeCommit,
    /// A commit that applied, reported as unknown.
    UnknownAfterCommit,
    /// A commit refused as unavailable (nothing applied).
    StoreUnavailable,
    /// A transaction that conflicted with a concurrent commit and ran again.
    Conflict,
    /// A node lost access to the store for a while.
    StoreCut,
    /// A request or reply lost on a node's cut store link (its outcome timed out as unknown).
    StoreTimeout,
    /// A request that waited at the store past the driver's timeout (reported unknown) and
    /// still ran later, possibly after the proposer's retry.
    LateApply,
    /// A symmetric partition between two groups of nodes.
    PartitionSymmetric,
    /// A one-way partition (packets from one group to the other are dropped).
    PartitionOneWay,
    /// A partition healed.
    Heal,
    /// A probe packet lost.
    ProbeLoss,
    /// A probe packet duplicated.
    ProbeDuplicate,
    /// A probe packet that arrived on a link after a later probe's packet (reordering).
    ProbeReorder,
    /// A probe that timed out.
    ProbeTimeout,
    /// A process crashed.
    Crash,
    /// A crashed node restarted with a new incarnation.
    Restart,
    /// A process froze for longer than its lease, then resumed.
    PauseBeyondLease,
    /// A paused process whose slot a new incarnation claimed meanwhile (it resumes as a zombie).
    Zombie,
    /// A node lost every path to its peers but kept the store.
    DegradedObserver,
    /// A node left gracefully (and joined again later).
    GracefulLeave,
    /// A clock with a skew and a rate error (per node and run).
    ClockSkewAndRate,
    /// A node's oscillator changed rate within the bound (both monotonic clocks).
    ClockRateWithinBound,
    /// A node's primary clock slewed beyond the bound (8%) for a while.
    ClockRateBeyondBound,
    /// A paused VM: the process frozen, both monotonic clocks stopped, the wall clock stepped
    /// on resume.
    ClockStopped,
    /// A node's primary clock jumped forward.
    ClockJump,
    /// A node lost its link to the store for 10 to 15 failure timeouts while its process and
    /// its probe answers ran on (registry v2: declared failed on the registry's evidence).
    StoreCutLong,
    /// A node crashed for good: it never restarts, not even in the liveness phase, and the
    /// others must carry on without it.
    PermanentLoss,
}

impl FaultKind {
    /// Every fault type.
    pub const ALL: [FaultKind; 27] = [
        FaultKind::UnknownBeforeCommit,
        FaultKind::UnknownAfterCommit,
        FaultKind::StoreUnavailable,
        FaultKind::Conflict,
        FaultKind::StoreCut,
        FaultKind::StoreTimeout,
        FaultKind::LateApply,
        FaultKind::PartitionSymmetric,
        FaultKind::PartitionOneWay,
        FaultKind::Heal,
        FaultKind::ProbeLoss,
        FaultKind::ProbeDuplicate,
        FaultKind::ProbeReorder,
        FaultKind::ProbeTimeout,
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::PauseBeyondLease,
        FaultKind::Zombie,
        FaultKind::DegradedObserver,
        FaultKind::GracefulLeave,
        FaultKind::ClockSkewAndRate,
        FaultKind::ClockRateWithinBound,
        FaultKind::ClockRateBeyondBound,
        FaultKind::ClockStopped,
        FaultKind::ClockJump,
        FaultKind::StoreCutLong,
        FaultKind::PermanentLoss,
    ];
}

/// Counts of one run, or summed over runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Spec actions committed (a migration batch counts each MigrateActor).
    pub actions: BTreeMap<ActionName, u64>,
    /// Faults fired.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Refusals by kind (`Refused(<guard>)`, `StaleIncarnation`, `StaleRound`, ...).
    pub refusals: BTreeMap<String, u64>,
    /// Runs summed.
    pub runs: u64,
}

/// The name of a refusal's kind: the store's reason, or the reducer's guard without its
/// parameters.
pub fn refusal_kind(error: &ProposalError) -> String {
    match error {
        ProposalError::UnknownNode { .. } => "UnknownNode".to_string(),
        ProposalError::StaleIncarnation { .. } => "StaleIncarnation".to_string(),
        ProposalError::StaleRound { .. } => "StaleRound".to_string(),
        ProposalError::HeartbeatSince { .. } => "HeartbeatSince".to_string(),
        ProposalError::ForeignHeartbeat { .. } => "ForeignHeartbeat".to_string(),
        ProposalError::RoundRequired { .. } => "RoundRequired".to_string(),
        ProposalError::Forgotten { .. } => "Forgotten".to_string(),
        ProposalError::NothingToMigrate { .. } => "NothingToMigrate".to_string(),
        ProposalError::Refused(r) => format!("{}/{}", r.action, guard_name(&r.guard)),
    }
}

fn guard_name(guard: &Guard) -> String {
    let debug = format!("{guard:?}");
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    debug[..end].to_string()
}

impl Coverage {
    /// Counts a committed action.
    pub fn action(&mut self, name: ActionName) {
        *self.actions.entry(name).or_default() += 1;
    }

    /// Counts a fault.
    pub fn fault(&mut self, kind: FaultKind) {
        *self.faults.entry(kind).or_default() += 1;
    }

    /// Counts a refusal.
    pub fn refusal(&mut self, error: &ProposalError) {
        *self.refusals.entry(refusal_kind(error)).or_default() += 1;
    }

    /// Adds another run's counts.
    pub fn add(&mut self, other: &Coverage) {
        for (k, v) in &other.actions {
            *self.actions.entry(*k).or_default() += v;
        }
        for (k, v) in &other.faults {
            *self.faults.entry(*k).or_default() += v;
        }
        for (k, v) in &other.refusals {
            *self.refusals.entry(k.clone()).or_default() += v;
        }
        self.runs += other.runs;
    }

    /// The spec actions never committed.
    pub fn missing_actions(&self) -> Vec<ActionName> {
        ActionName::ALL
            .into_iter()
            .filter(|a| self.actions.get(a).copied().unwrap_or(0) == 0)
            .collect()
    }

    /// The fault types never fired.
    pub fn missing_faults(&self) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|f| self.faults.get(f).copied().unwrap_or(0) == 0)
            .collect()
    }

    /// The report: one line per action, fault and refusal kind, then what was never exercised.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "coverage over {} run(s)", self.runs);
        let _ = writeln!(out, "spec actions committed:");
        for a in ActionName::ALL {
            let _ = writeln!(
                out,
                "  {:<20} {:>12}",
                a.to_string(),
                self.actions.get(&a).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "faults fired:");
        for f in FaultKind::ALL {
            let _ = writeln!(
                out,
                "  {:<20} {:>12}",
                format!("{f:?}"),
                self.faults.get(&f).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "refusals:");
        for (k, v) in &self.refusals {
            let _ = writeln!(out, "  {k:<44} {v:>12}");
        }
        let missing_actions = self.missing_actions();
        let missing_faults = self.missing_faults();
        if missing_actions.is_empty() && missing_faults.is_empty() {
            let _ = writeln!(out, "every spec action and every fault type was exercised");
        }
        if !missing_actions.is_empty() {
            let _ = writeln!(out, "NEVER COMMITTED: {missing_actions:?}");
        }
        if !missing_faults.is_empty() {
            let _ = writeln!(out, "NEVER FIRED: {missing_faults:?}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_items_are_named_and_sums_add_up() {
        let mut a = Coverage::default();
        a.action(ActionName::NodeJoin);
        a.fault(FaultKind::Crash);
        a.runs = 1;
        let mut total = Coverage::default();
        total.add(&a);
        total.add(&a);
        assert_eq!(total.actions[&ActionName::NodeJoin], 2);
        assert_eq!(total.runs, 2);
        assert!(!total.missing_actions().contains(&ActionName::NodeJoin));
        assert!(total.missing_actions().contains(&ActionName::RemoveActor));
        assert!(total.missing_faults().contains(&FaultKind::Zombie));
        assert!(total.report().contains("NEVER COMMITTED"));
        let e = ProposalError::StaleRound {
            round: 1,
            current: 2,
        };
        assert_eq!(refusal_kind(&e), "StaleRound");
    }
}
