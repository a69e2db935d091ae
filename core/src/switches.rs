//! The checker's switches (feature `checking`): which protocol runs (the reference and buggy
//! modes), the mutant catalogues, and the checking bounds a configuration carries. A leaf: it
//! depends on nothing else in the crate, so the configuration, the rules and the checker's
//! helpers ([`crate::checking`]) can all read it. None of it is ever persisted.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which protocol the reducer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// The project's protocol (spec `Mode = "fixed"`): the only one a production user gets
    /// without asking. Repairs the defects of the reference model (core/spec/REFERENCE.md section 2).
    Fixed,
    /// The reference model exactly as core/spec/REFERENCE.md section 1 describes it (spec `Mode =
    /// "reference"`), kept so that its known defects can be reproduced.
    Reference,
    /// The reference model with `BUGGY = TRUE` (spec `Mode = "buggy"`): elections without the
    /// majority and no-valid-primary guards and without a term increment, no step-down.
    Buggy,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Fixed => "fixed",
            Mode::Reference => "reference",
            Mode::Buggy => "buggy",
        })
    }
}

/// A deliberately broken variant of the fixed protocol, used only by the model checker to show
/// that its properties catch real mistakes. Each removes one guard or one effect of the fixed
/// protocol; `None` in [`crate::Config::mutant`] is the fixed protocol itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mutant {
    /// ElectPrimary without the `has_majority` guard.
    ElectWithoutMajority,
    /// ElectPrimary grants the current term again instead of a fresh one.
    ElectWithoutTermIncrement,
    /// PrimaryStepDown is never enabled.
    NoStepDown,
    /// MarkNodeFailed without the detection guard (any Active node may be declared failed).
    FailWithoutDetection,
    /// MarkNodeFailed on a single recorded detection instead of a majority of votes: one
    /// degraded observer, cut off from its peers, can get healthy nodes declared failed.
    FailOnSingleDetection,
    /// MarkNodeFailed issues no new configuration number (registry v2): the failed node's removal
    /// keeps the number, which then names two member sets, so a member that had adopted it keeps
    /// a view listing the failed node as if it were current (MembershipConsistency), and later a
    /// Left node in a view of the current number (LeaveDetectionWeak).
    FailKeepsViews,
    /// SyncViews is never enabled: views never converge (a planted liveness bug).
    NoSyncViews,
    /// MigrateActor without the term check: any term is accepted, even with no valid primary.
    MigrateWithoutTermCheck,
    /// MigrateActor moves the actor but keeps its old epoch.
    MigrateWithoutEpochIncrease,
    /// NodeLeaveComplete while the node still holds actors.
    LeaveCompleteWithActors,
    /// MarkNodeFailed does not queue the failed node's actors.
    FailForgetsActors,
    /// MigrateActor moves the actor but queues it again at its new node (with the same
    /// reason): it migrates forever and is never placed for good (a planted livelock: every
    /// move draws a fresh epoch, so it shows only as a cycle of the renumbered graph).
    MigrateRequeues,
    /// SyncViews adopts wrongly (registry v2): the node takes the current configuration's number
    /// but keeps its old view, so it holds a view of the current number that is not the current
    /// members (MembershipConsistency), and SyncViews is never enabled for it again.
    SyncViewsKeepsView,
    /// PrimaryStepDown is never enabled, and its refusal is mislabelled as the checking bound
    /// (`Guard::BoundReached`): a real blocking guard disguised as a model artefact.
    StepDownBlockedAsBound,
    /// Majorities counted over the registry's slots (the configured node count) instead of the
    /// current members: a cluster that scaled down can never elect again (registry v2).
    QuorumOverSlots,
    /// ResetHeartbeats keeps the votes: a vote cast in one round still counts in the next,
    /// after its target heartbeated again (registry v2).
    VoteSurvivesRound,
    /// SendHeartbeat sets the flag of every peer that can communicate with the sender, as the
    /// reference model does: a node that lost the store but answers probes keeps its flag set by
    /// its peers (registry v2).
    HeartbeatByPeer,
    /// ElectPrimary refused unless the candidate has adopted the current configuration (its
    /// view number is the view counter): while the members keep changing, no member that
    /// reaches a majority is ever continuously electable, and the cluster can stay without a
    /// primary for good (a planted liveness bug: EventualPrimary).
    ElectNeedsNewestView,
    /// NodeRecover refused once the Failed node's actors have all moved away ("nothing left to
    /// recover"): a declared node whose actors were served elsewhere can never come back (a
    /// planted liveness bug: EventualRejoin).
    RecoverNeedsActors,
    /// RebalanceActors computes the balanced share rounded down instead of up: with more
    /// actors than a multiple of the members, the node that receives the excess has an excess
    /// itself, and an actor moves back and forth between two equally loaded nodes for ever (a
    /// planted ping-pong livelock: BalanceSettles).
    RebalanceShareRoundsDown,
}

impl Mutant {
    /// Every mutant, in catalogue order.
    pub const ALL: [Mutant; 20] = [
        Mutant::ElectWithoutMajority,
        Mutant::ElectWithoutTermIncrement,
        Mutant::NoStepDown,
        Mutant::FailWithoutDetection,
        Mutant::FailOnSingleDetection,
        Mutant::FailKeepsViews,
        Mutant::NoSyncViews,
        Mutant::MigrateWithoutTermCheck,
        Mutant::MigrateWithoutEpochIncrease,
        Mutant::LeaveCompleteWithActors,
        Mutant::FailForgetsActors,
        Mutant::MigrateRequeues,
        Mutant::SyncViewsKeepsView,
        Mutant::StepDownBlockedAsBound,
        Mutant::QuorumOverSlots,
        Mutant::VoteSurvivesRound,
        Mutant::HeartbeatByPeer,
        Mutant::ElectNeedsNewestView,
        Mutant::RecoverNeedsActors,
        Mutant::RebalanceShareRoundsDown,
    ];

    /// The mutant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::ElectWithoutMajority => "elect-without-majority",
            Mutant::ElectWithoutTermIncrement => "elect-without-term-increment",
            Mutant::NoStepDown => "no-step-down",
            Mutant::FailWithoutDetection => "fail-without-detection",
            Mutant::FailOnSingleDetection => "fail-on-single-detection",
            Mutant::FailKeepsViews => "fail-keeps-views",
            Mutant::NoSyncViews => "no-sync-views",
            Mutant::MigrateWithoutTermCheck => "migrate-without-term-check",
            Mutant::MigrateWithoutEpochIncrease => "migrate-without-epoch-increase",
            Mutant::LeaveCompleteWithActors => "leave-complete-with-actors",
            Mutant::FailForgetsActors => "fail-forgets-actors",
            Mutant::MigrateRequeues => "migrate-requeues",
            Mutant::SyncViewsKeepsView => "sync-views-keeps-view",
            Mutant::StepDownBlockedAsBound => "step-down-blocked-as-bound",
            Mutant::QuorumOverSlots => "quorum-over-slots",
            Mutant::VoteSurvivesRound => "vote-survives-round",
            Mutant::HeartbeatByPeer => "heartbeat-by-peer",
            Mutant::ElectNeedsNewestView => "elect-needs-newest-view",
            Mutant::RecoverNeedsActors => "recover-needs-actors",
            Mutant::RebalanceShareRoundsDown => "rebalance-share-rounds-down",
        }
    }

    /// The mutant with the given command-line name.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }

    /// One sentence on what the mutant breaks.
    pub fn description(self) -> &'static str {
        match self {
            Mutant::ElectWithoutMajority => "ElectPrimary without the majority guard",
            Mutant::ElectWithoutTermIncrement => "ElectPrimary re-grants the current term",
            Mutant::NoStepDown => "PrimaryStepDown never fires on majority loss",
            Mutant::FailWithoutDetection => "MarkNodeFailed without the detection guard",
            Mutant::FailOnSingleDetection => {
                "MarkNodeFailed on one recorded detection, without a majority of votes"
            }
            Mutant::FailKeepsViews => "MarkNodeFailed issues no new configuration number",
            Mutant::NoSyncViews => "SyncViews never fires (planted liveness bug)",
            Mutant::MigrateWithoutTermCheck => "MigrateActor accepts any term",
            Mutant::MigrateWithoutEpochIncrease => "MigrateActor keeps the actor's epoch",
            Mutant::LeaveCompleteWithActors => "NodeLeaveComplete while holding actors",
            Mutant::FailForgetsActors => "MarkNodeFailed does not queue the node's actors",
            Mutant::MigrateRequeues => "MigrateActor queues the actor again at its new node",
            Mutant::SyncViewsKeepsView => "SyncViews takes the current number, keeps the old view",
            Mutant::StepDownBlockedAsBound => {
                "PrimaryStepDown never fires, its refusal mislabelled BoundReached"
            }
            Mutant::QuorumOverSlots => "majorities of the configured slots, not of the members",
            Mutant::VoteSurvivesRound => "ResetHeartbeats keeps the votes of the old round",
            Mutant::HeartbeatByPeer => "SendHeartbeat sets the flags of the sender's peers",
            Mutant::ElectNeedsNewestView => {
                "ElectPrimary only for a member holding the newest configuration"
            }
            Mutant::RecoverNeedsActors => "NodeRecover refused once the node's actors moved away",
            Mutant::RebalanceShareRoundsDown => "RebalanceActors rounds the balanced share down",
        }
    }
}

/// A deliberately broken variant of the code around the reducer (the per-node `Agent` and the
/// shared transaction `execute`), used only by the simulation (crate `membership-sim`) to show
/// that its checks catch such mistakes. Kept apart from [`Mutant`] (the reducer's catalogue,
/// which the model checker explores) because the reducer alone cannot exhibit them: they need
/// clocks, processes and a store. `None` in [`crate::Config::driver_mutant`] is the production
/// code itself; a production build (no `checking` feature) cannot construct one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DriverMutant {
    /// The Agent never fences itself when its lease runs out or its snapshot grows stale, and
    /// `Agent::may_serve` ignores the lease and the snapshot's age.
    NoSelfFence,
    /// `execute` accepts a proposal from an older incarnation than the one holding the slot (a
    /// paused or zombie process acts for its successor).
    AcceptStaleIncarnation,
    /// The Agent's clock watchdog is off: `Agent::handle_clock` records readings and never
    /// fences.
    NoClockWatchdog,
    /// The Agent's self-fencing lease is one heartbeat interval too long: its lease check and
    /// `Agent::may_serve` count `lease_ms + heartbeat_interval_ms` from a committed heartbeat's
    /// send (the simulation's lease oracle catches it).
    LeaseOneIntervalLong,
    /// The Agent reports a partition (CreatePartition) after a single failed probe, ignoring
    /// `PROBE_STREAK_MIN` and `suspect_after_ms` (the simulation's partition-report oracle
    /// catches it).
    SingleProbePartition,
    /// The store the simulation reads serves snapshots one commit old. Not a switch of this
    /// crate's code: the simulation's store read path plays it (the simulation's snapshot-age
    /// oracle catches it).
    StaleSnapshot,
    /// The hand-off wait the Agent uses before activating an actor is half of
    /// `Timing::handoff_wait_ms` (the simulation's hand-off oracle catches it).
    HalvedHandoffWait,
}

impl DriverMutant {
    /// Every driver mutant.
    pub const ALL: [DriverMutant; 7] = [
        DriverMutant::NoSelfFence,
        DriverMutant::AcceptStaleIncarnation,
        DriverMutant::NoClockWatchdog,
        DriverMutant::LeaseOneIntervalLong,
        DriverMutant::SingleProbePartition,
        DriverMutant::StaleSnapshot,
        DriverMutant::HalvedHandoffWait,
    ];

    /// The mutant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DriverMutant::NoSelfFence => "no-self-fence",
            DriverMutant::AcceptStaleIncarnation => "accept-stale-incarnation",
            DriverMutant::NoClockWatchdog => "no-clock-watchdog",
            DriverMutant::LeaseOneIntervalLong => "lease-one-interval-long",
            DriverMutant::SingleProbePartition => "single-probe-partition",
            DriverMutant::StaleSnapshot => "stale-snapshot",
            DriverMutant::HalvedHandoffWait => "halved-handoff-wait",
        }
    }
}

/// The checker-only part of a configuration (feature `checking`): never persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Checking {
    pub(crate) mode: Mode,
    pub(crate) max_view: Option<u64>,
    pub(crate) max_epoch: Option<u64>,
    pub(crate) mutant: Option<Mutant>,
    pub(crate) driver_mutant: Option<DriverMutant>,
}

impl Checking {
    pub(crate) const PRODUCTION: Checking = Checking {
        mode: Mode::Fixed,
        max_view: None,
        max_epoch: None,
        mutant: None,
        driver_mutant: None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutant_names_round_trip() {
        for m in Mutant::ALL {
            assert_eq!(Mutant::from_name(m.name()), Some(m));
        }
        assert_eq!(Mutant::from_name("nope"), None);
    }

    #[test]
    fn driver_mutant_names_are_distinct_and_name_every_one() {
        let names: std::collections::BTreeSet<&str> = DriverMutant::ALL
            .into_iter()
            .map(DriverMutant::name)
            .collect();
        assert_eq!(names.len(), DriverMutant::ALL.len());
        assert!(names.contains("lease-one-interval-long"));
        assert!(names.contains("halved-handoff-wait"));
    }
}
