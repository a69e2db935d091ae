//! The protocol's rules as named switches, computed once per step from the configuration.
//!
//! The actions in `step/` read like the fixed spec and consult these switches where the
//! reference model, the buggy model or a mutant differ. The whole catalogue of differences lives
//! here, in [`Rules::of`]; a production build (no `checking` feature) always gets
//! [`Rules::FIXED`].

use crate::config::Config;

/// Where view numbers and terms come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Without `checking`, only the fixed protocol's variant is ever constructed.
#[cfg_attr(not(feature = "checking"), allow(dead_code))]
pub(crate) enum Numbering {
    /// Fixed: registry-wide counters; every new view and term draws the next value, and a term
    /// is held only while primary.
    Registry,
    /// Reference: per node (`h + 1`), bootstrap at the constant 1, terms kept after stepping
    /// down.
    PerNode,
}

/// What MarkNodeFailed requires as evidence of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Without `checking`, only the fixed protocol's variant is ever constructed.
#[cfg_attr(not(feature = "checking"), allow(dead_code))]
pub(crate) enum FailureEvidence {
    /// Fixed: the node's missed heartbeat (the registry's own evidence), or else a quorum of
    /// votes, i.e. recorded detections by Active peers that still cannot reach the node, from a
    /// strict majority of the members (the majority of `has_majority`).
    Quorum,
    /// Mutant: the missed heartbeat, or else a single recorded detection by an Active peer that
    /// still cannot reach the node.
    Recorded,
    /// Reference: some Active peer lacks the node in its view (which a peer that never heard of
    /// it also satisfies).
    ViewLacks,
    /// Mutant: no evidence at all.
    Nothing,
}

/// Which term ElectPrimary grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Without `checking`, only the fixed protocol's variant is ever constructed.
#[cfg_attr(not(feature = "checking"), allow(dead_code))]
pub(crate) enum ElectTerm {
    /// Fixed: the next value of the registry's term counter.
    Fresh,
    /// Mutant: the registry's current term again.
    Reuse,
    /// Reference: `1 + max term over all nodes`, within the bound.
    MaxPlusOne,
    /// Buggy: no term is granted: the node keeps its own term, with no bound check.
    Own,
}

/// Which of two primaries that meet at HealPartition steps down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Without `checking`, only the fixed protocol's variant is ever constructed.
#[cfg_attr(not(feature = "checking"), allow(dead_code))]
pub(crate) enum HealRule {
    /// Fixed: the lower term (ties, which never happen, by node id).
    LowerTerm,
    /// Reference: the lower node id.
    LowerId,
    /// Buggy: neither.
    Neither,
}

/// The switches of one protocol variant. Field names say what the fixed protocol does when the
/// switch is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Where view numbers and terms come from.
    pub(crate) numbering: Numbering,
    /// DetectFailure records the detection in the registry (a vote for MarkNodeFailed), and any
    /// Active peer that has not recorded one may detect, whether or not its view still lists the
    /// node (reference: only a peer whose view lists it, and nothing is recorded).
    pub(crate) record_detections: bool,
    /// What MarkNodeFailed requires.
    pub(crate) failure_evidence: FailureEvidence,
    /// Majorities are of the current members, the Active nodes (off: of the configured node
    /// count, the reference model's `Cardinality(Nodes)`).
    pub(crate) quorum_over_members: bool,
    /// SendHeartbeat sets only the sender's own flag (off: also every Active or Leaving node
    /// that can communicate with it, as the reference model does).
    pub(crate) own_heartbeat: bool,
    /// NodeJoin's bootstrap and NodeJoinComplete set the joining node's own heartbeat flag.
    pub(crate) join_heartbeats: bool,
    /// NodeJoinComplete bootstraps the cluster when no node is Active (reference: it needs a
    /// reachable Active node, so it is disabled then).
    pub(crate) join_bootstraps_empty: bool,
    /// DetectFailure requires that the target's heartbeat was not received (the reference
    /// model; fixed: a vote is about reachability only).
    pub(crate) detect_needs_silence: bool,
    /// ResetHeartbeats clears every vote: votes expire with their round.
    pub(crate) votes_expire: bool,
    /// Registry v2: the registry holds one configuration (the Active nodes, numbered by the view
    /// counter, which every change of the members advances); a node's view is the configuration
    /// it last adopted, and only its own transactions change it (its join, and SyncViews(n, n),
    /// which adopts the current configuration). Off: the reference model's per-node views,
    /// changed by peers' actions (NodeJoinComplete, NodeLeaveComplete, DetectFailure, SyncViews
    /// between two peers).
    pub(crate) one_configuration: bool,
    /// With `one_configuration`: MarkNodeFailed issues a new configuration number (off, a
    /// mutant: the failed node's removal keeps the number, which then names two different sets
    /// of members).
    pub(crate) failure_new_configuration: bool,
    /// MarkNodeFailed fences the node (an effect).
    pub(crate) failure_fences: bool,
    /// MarkNodeFailed queues the node's actors.
    pub(crate) failure_queues_actors: bool,
    /// The actor actions are enabled, and NodeLeave queues the leaver's actors.
    pub(crate) actors: bool,
    /// NodeLeaveComplete waits until the node holds no actors.
    pub(crate) leave_needs_no_actors: bool,
    /// ElectPrimary requires a majority.
    pub(crate) elect_needs_majority: bool,
    /// ElectPrimary requires that no node has a valid primary claim.
    pub(crate) elect_needs_no_valid_primary: bool,
    /// The term ElectPrimary grants.
    pub(crate) elect_term: ElectTerm,
    /// ElectPrimary demotes every other believer.
    pub(crate) elect_demotes_others: bool,
    /// PrimaryStepDown is enabled.
    pub(crate) step_down: bool,
    /// HealPartition's step-down rule.
    pub(crate) heal: HealRule,
    /// SyncViews is enabled.
    pub(crate) sync_views: bool,
    /// MigrateActor and RebalanceActors check the proposer's term.
    pub(crate) migrate_checks_term: bool,
    /// MigrateActor draws a fresh epoch.
    pub(crate) migrate_fresh_epoch: bool,
    /// MigrateActor takes the actor out of the queue (off: it queues it again at its new node).
    pub(crate) migrate_dequeues: bool,
    /// SyncViews gives the adopters the view they adopt (off, a mutant: fixed, the node takes
    /// the current configuration's number but keeps its own view; reference, the newer node
    /// keeps its own view under the new number).
    pub(crate) sync_merges_both: bool,
    /// PrimaryStepDown's refusals name their real guard (off: the step-down is refused always,
    /// labelled `BoundReached`).
    pub(crate) step_down_labels_truthfully: bool,
    /// ElectPrimary does not ask whether the candidate holds the newest configuration (on: any
    /// member with a majority may be elected; off, a mutant: only one whose view number is the
    /// view counter).
    pub(crate) elect_any_view: bool,
    /// NodeRecover is enabled whatever the node still hosts (off, a mutant: refused once its
    /// actors have all moved away).
    pub(crate) recover_without_actors: bool,
    /// RebalanceActors' balanced share is rounded up (off, a mutant: down).
    pub(crate) share_rounds_up: bool,
    /// The checking bound on view numbers and terms (`MaxView`).
    pub(crate) max_view: Option<u64>,
    /// The checking bound on actor epochs (`MaxEpoch`).
    pub(crate) max_epoch: Option<u64>,
}

impl Rules {
    /// The fixed protocol with no bound: the only rules a production build has.
    pub(crate) const FIXED: Rules = Rules {
        numbering: Numbering::Registry,
        record_detections: true,
        failure_evidence: FailureEvidence::Quorum,
        quorum_over_members: true,
        own_heartbeat: true,
        join_heartbeats: true,
        join_bootstraps_empty: true,
        detect_needs_silence: false,
        votes_expire: true,
        one_configuration: true,
        failure_new_configuration: true,
        failure_fences: true,
        failure_queues_actors: true,
        actors: true,
        leave_needs_no_actors: true,
        elect_needs_majority: true,
        elect_needs_no_valid_primary: true,
        elect_term: ElectTerm::Fresh,
        elect_demotes_others: true,
        step_down: true,
        heal: HealRule::LowerTerm,
        sync_views: true,
        migrate_checks_term: true,
        migrate_fresh_epoch: true,
        migrate_dequeues: true,
        sync_merges_both: true,
        step_down_labels_truthfully: true,
        elect_any_view: true,
        recover_without_actors: true,
        share_rounds_up: true,
        max_view: None,
        max_epoch: None,
    };

    /// The reference model of `core/spec/REFERENCE.md` section 1 (bounds added by `of`).
    #[cfg(feature = "checking")]
    const REFERENCE: Rules = Rules {
        numbering: Numbering::PerNode,
        record_detections: false,
        failure_evidence: FailureEvidence::ViewLacks,
        quorum_over_members: false,
        own_heartbeat: false,
        join_heartbeats: false,
        join_bootstraps_empty: false,
        detect_needs_silence: true,
        votes_expire: true,
        one_configuration: false,
        failure_new_configuration: true,
        failure_fences: false,
        failure_queues_actors: false,
        actors: false,
        leave_needs_no_actors: false,
        elect_needs_majority: true,
        elect_needs_no_valid_primary: true,
        elect_term: ElectTerm::MaxPlusOne,
        elect_demotes_others: false,
        step_down: true,
        heal: HealRule::LowerId,
        sync_views: true,
        migrate_checks_term: true,
        migrate_fresh_epoch: true,
        migrate_dequeues: true,
        sync_merges_both: true,
        step_down_labels_truthfully: true,
        elect_any_view: true,
        recover_without_actors: true,
        share_rounds_up: true,
        max_view: None,
        max_epoch: None,
    };

    /// The rules of `config`: the mode's, then the mutant's change, then the bounds.
    pub(crate) fn of(config: &Config) -> Rules {
        #[cfg(feature = "checking")]
        {
            use crate::switches::{Mode, Mutant};
            let mut rules = match config.mode() {
                Mode::Fixed => Rules::FIXED,
                Mode::Reference => Rules::REFERENCE,
                Mode::Buggy => Rules {
                    elect_needs_majority: false,
                    elect_needs_no_valid_primary: false,
                    elect_term: ElectTerm::Own,
                    step_down: false,
                    heal: HealRule::Neither,
                    ..Rules::REFERENCE
                },
            };
            match config.mutant() {
                None => {}
                Some(Mutant::ElectWithoutMajority) => rules.elect_needs_majority = false,
                Some(Mutant::ElectWithoutTermIncrement) => rules.elect_term = ElectTerm::Reuse,
                Some(Mutant::NoStepDown) => rules.step_down = false,
                Some(Mutant::FailWithoutDetection) => {
                    rules.failure_evidence = FailureEvidence::Nothing;
                }
                Some(Mutant::FailOnSingleDetection) => {
                    rules.failure_evidence = FailureEvidence::Recorded;
                }
                Some(Mutant::FailKeepsViews) => rules.failure_new_configuration = false,
                Some(Mutant::NoSyncViews) => rules.sync_views = false,
                Some(Mutant::MigrateWithoutTermCheck) => rules.migrate_checks_term = false,
                Some(Mutant::MigrateWithoutEpochIncrease) => rules.migrate_fresh_epoch = false,
                Some(Mutant::LeaveCompleteWithActors) => rules.leave_needs_no_actors = false,
                Some(Mutant::FailForgetsActors) => rules.failure_queues_actors = false,
                Some(Mutant::MigrateRequeues) => rules.migrate_dequeues = false,
                Some(Mutant::SyncViewsKeepsView) => rules.sync_merges_both = false,
                Some(Mutant::StepDownBlockedAsBound) => rules.step_down_labels_truthfully = false,
                Some(Mutant::QuorumOverSlots) => rules.quorum_over_members = false,
                Some(Mutant::VoteSurvivesRound) => rules.votes_expire = false,
                Some(Mutant::HeartbeatByPeer) => rules.own_heartbeat = false,
                Some(Mutant::ElectNeedsNewestView) => rules.elect_any_view = false,
                Some(Mutant::RecoverNeedsActors) => rules.recover_without_actors = false,
                Some(Mutant::RebalanceShareRoundsDown) => rules.share_rounds_up = false,
            }
            rules.max_view = config.max_view();
            rules.max_epoch = config.max_epoch();
            debug_assert_eq!(
                rules.quorum_over_members,
                Rules::quorum_over_members(config)
            );
            debug_assert_eq!(rules.one_configuration, Rules::one_configuration(config));
            debug_assert!(config.mode() == Mode::Fixed || rules.max_view.is_some());
            debug_assert!(config.mutant().is_none() || rules.numbering == Numbering::Registry);
            rules
        }
        #[cfg(not(feature = "checking"))]
        {
            debug_assert!(config.is_production());
            Rules::FIXED
        }
    }

    /// Whether majorities are of the current members in `config`'s protocol: the switch
    /// `quorum_over_members` of [`Rules::of`], without building the whole rule set (it is asked
    /// for by every majority test, several times per step).
    pub(crate) fn quorum_over_members(config: &Config) -> bool {
        #[cfg(feature = "checking")]
        {
            use crate::switches::{Mode, Mutant};
            config.mode() == Mode::Fixed && config.mutant() != Some(Mutant::QuorumOverSlots)
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = config;
            Rules::FIXED.quorum_over_members
        }
    }

    /// Whether `config`'s protocol holds one configuration (the switch `one_configuration` of
    /// [`Rules::of`]), without building the whole rule set (the state invariants ask for it on
    /// every state the checker visits).
    pub(crate) fn one_configuration(config: &Config) -> bool {
        #[cfg(feature = "checking")]
        {
            config.mode() == crate::switches::Mode::Fixed
        }
        #[cfg(not(feature = "checking"))]
        {
            let _ = config;
            Rules::FIXED.one_configuration
        }
    }

    /// Whether a failed node's term, view number and bookkeeping follow the fixed protocol
    /// (registry counters).
    pub(crate) fn registry_counters(&self) -> bool {
        self.numbering == Numbering::Registry
    }
}
