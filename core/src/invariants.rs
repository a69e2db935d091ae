//! The spec's invariants as pure predicates, one definition each, shared by the unit tests, the
//! model checker and the simulation.
//!
//! State invariants take one [`State`]; transition invariants (the spec's action properties,
//! `[][P]_vars`) take the state before and after one step. Each returns `Ok(())` or the
//! [`Violation`] naming the invariant and the nodes involved. The liveness properties are
//! defined here as the set of states a fair behaviour must not stay in forever, plus the
//! fairness assumption; the model checker decides them on the reachable graph.

use crate::actor::{ActorId, MigrationReason};
use crate::event::Event;
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::rules::Rules;
use crate::state::State;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A state invariant of the spec: a predicate on one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StateInvariant {
    /// Every variable stays in its domain (as far as the types do not already ensure it).
    TypeOK,
    /// Two Active nodes that list each other with equal view numbers have equal views.
    MembershipConsistency,
    /// Active nodes have non-empty views; Joining, Left and Failed nodes have empty views.
    JoinAtomicity,
    /// A Left node is in no Active node's view.
    LeaveDetectionWeak,
    /// At most one node has a valid primary claim.
    NoSplitBrain,
    /// At most one node believes it is primary (project invariant; the fixed protocol demotes a
    /// superseded primary in the electing transition).
    AtMostOnePrimary,
    /// Every actor is placed on exactly one node, and that node is Active, or the actor is queued
    /// to leave it (from a Leaving node for any reason; from a Failed, Left or Joining node only
    /// because the node failed).
    SingleActivation,
    /// The migration queue holds at most one entry per placed actor, each naming the node the
    /// actor is placed on, and at most `actors_max` in all.
    MigrationQueueBounded,
}

/// A transition invariant of the spec (an action property `[][P]_vars`): a predicate on the
/// state before and the state after one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TransitionInvariant {
    /// The registry's term never decreases and every granted term is fresh.
    FencingTermMonotonic,
    /// A node becomes primary only with a majority (bootstrap of an empty cluster excepted).
    MinorityCannotElect,
    /// A node is declared Failed only while an Active peer that recorded a detection of it cannot
    /// communicate with it and its heartbeat was not received.
    FailureRequiresDetection,
    /// A node is declared Failed only with a quorum: its heartbeat was not received and a strict
    /// majority of all nodes are Active peers that recorded a detection of it and cannot
    /// communicate with it (so no minority, and no single degraded observer, can get a node
    /// declared failed).
    FailureNeedsQuorum,
    /// The epoch counter never decreases, an actor's epoch never decreases, a move always gives
    /// a new (larger) epoch, and a new placement an epoch never issued before.
    EpochMonotonic,
    /// An actor moves from one node to another only while a valid primary holds the registry's
    /// current term.
    MigrationByPrimary,
}

/// Either kind of invariant: what a [`Violation`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Invariant {
    /// A state invariant.
    State(StateInvariant),
    /// A transition invariant.
    Transition(TransitionInvariant),
}

impl StateInvariant {
    /// The state invariants, in the order they are checked.
    pub const ALL: [StateInvariant; 8] = [
        StateInvariant::TypeOK,
        StateInvariant::MembershipConsistency,
        StateInvariant::JoinAtomicity,
        StateInvariant::LeaveDetectionWeak,
        StateInvariant::NoSplitBrain,
        StateInvariant::AtMostOnePrimary,
        StateInvariant::SingleActivation,
        StateInvariant::MigrationQueueBounded,
    ];

    /// The spec's name for the property.
    pub fn name(self) -> &'static str {
        match self {
            StateInvariant::TypeOK => "TypeOK",
            StateInvariant::MembershipConsistency => "MembershipConsistency",
            StateInvariant::JoinAtomicity => "JoinAtomicity",
            StateInvariant::LeaveDetectionWeak => "LeaveDetectionWeak",
            StateInvariant::NoSplitBrain => "NoSplitBrain",
            StateInvariant::AtMostOnePrimary => "AtMostOnePrimary",
            StateInvariant::SingleActivation => "SingleActivation",
            StateInvariant::MigrationQueueBounded => "MigrationQueueBounded",
        }
    }

    /// Checks this invariant on `state`.
    pub fn check(self, state: &State) -> Result<(), Violation> {
        match self {
            StateInvariant::TypeOK => type_ok(state),
            StateInvariant::MembershipConsistency => membership_consistency(state),
            StateInvariant::JoinAtomicity => join_atomicity(state),
            StateInvariant::LeaveDetectionWeak => leave_detection_weak(state),
            StateInvariant::NoSplitBrain => no_split_brain(state),
            StateInvariant::AtMostOnePrimary => at_most_one_primary(state),
            StateInvariant::SingleActivation => single_activation(state),
            StateInvariant::MigrationQueueBounded => migration_queue_bounded(state),
        }
    }
}

impl TransitionInvariant {
    /// The transition invariants, in the order they are checked.
    pub const ALL: [TransitionInvariant; 6] = [
        TransitionInvariant::FencingTermMonotonic,
        TransitionInvariant::MinorityCannotElect,
        TransitionInvariant::FailureRequiresDetection,
        TransitionInvariant::FailureNeedsQuorum,
        TransitionInvariant::EpochMonotonic,
        TransitionInvariant::MigrationByPrimary,
    ];

    /// The spec's name for the property.
    pub fn name(self) -> &'static str {
        match self {
            TransitionInvariant::FencingTermMonotonic => "FencingTermMonotonic",
            TransitionInvariant::MinorityCannotElect => "MinorityCannotElect",
            TransitionInvariant::FailureRequiresDetection => "FailureRequiresDetection",
            TransitionInvariant::FailureNeedsQuorum => "FailureNeedsQuorum",
            TransitionInvariant::EpochMonotonic => "EpochMonotonic",
            TransitionInvariant::MigrationByPrimary => "MigrationByPrimary",
        }
    }

    /// Checks this invariant on one step from `before` to `after`.
    pub fn check(self, before: &State, after: &State) -> Result<(), Violation> {
        match self {
            TransitionInvariant::FencingTermMonotonic => fencing_term_monotonic(before, after),
            TransitionInvariant::MinorityCannotElect => minority_cannot_elect(before, after),
            TransitionInvariant::FailureRequiresDetection => {
                failure_requires_detection(before, after)
            }
            TransitionInvariant::FailureNeedsQuorum => failure_needs_quorum(before, after),
            TransitionInvariant::EpochMonotonic => epoch_monotonic(before, after),
            TransitionInvariant::MigrationByPrimary => migration_by_primary(before, after),
        }
    }
}

impl Invariant {
    /// The spec's name for the property.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::State(i) => i.name(),
            Invariant::Transition(i) => i.name(),
        }
    }
}

impl From<StateInvariant> for Invariant {
    fn from(i: StateInvariant) -> Self {
        Invariant::State(i)
    }
}

impl From<TransitionInvariant> for Invariant {
    fn from(i: TransitionInvariant) -> Self {
        Invariant::Transition(i)
    }
}

impl PartialEq<StateInvariant> for Invariant {
    fn eq(&self, other: &StateInvariant) -> bool {
        *self == Invariant::State(*other)
    }
}

impl PartialEq<TransitionInvariant> for Invariant {
    fn eq(&self, other: &TransitionInvariant) -> bool {
        *self == Invariant::Transition(*other)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for StateInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for TransitionInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A violated invariant: which one, for which nodes, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// The violated invariant.
    pub invariant: Invariant,
    /// The nodes involved, in id order.
    pub nodes: Vec<NodeId>,
    /// What was seen, for people.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

fn violation(
    invariant: impl Into<Invariant>,
    nodes: &[NodeId],
    detail: String,
) -> Result<(), Violation> {
    let mut nodes = nodes.to_vec();
    nodes.sort();
    nodes.dedup();
    Err(Violation {
        invariant: invariant.into(),
        nodes,
        detail,
    })
}

/// Every state invariant, in order; the first violation found.
pub fn check_state(state: &State) -> Result<(), Violation> {
    StateInvariant::ALL
        .iter()
        .try_for_each(|inv| inv.check(state))
}

/// Every transition invariant on one step; the first violation found.
pub fn check_transition(before: &State, after: &State) -> Result<(), Violation> {
    TransitionInvariant::ALL
        .iter()
        .try_for_each(|inv| inv.check(before, after))
}

/// TypeOK: node sets within `Nodes`, the partition relation symmetric and irreflexive, counters
/// within the bound `MaxView` when there is one, and (fixed protocol) every node's term and view
/// number at most the registry counter that issued it; every actor placed on a node of `Nodes`
/// with an epoch in `1..=epoch_counter` (and within `MaxEpoch` when bounded).
pub fn type_ok(state: &State) -> Result<(), Violation> {
    let config = state.config();
    let all = NodeSet::first(config.node_count());
    if state.nodes().len() != usize::from(config.node_count()) {
        return violation(
            StateInvariant::TypeOK,
            &[],
            format!(
                "{} node records for {} nodes",
                state.nodes().len(),
                config.node_count()
            ),
        );
    }
    let rules = Rules::of(config);
    let fixed = rules.registry_counters();
    for (n, r) in state.node_ids().zip(state.nodes()) {
        if !r.view.is_subset(all) || !r.partitioned_from.is_subset(all) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!("{n} names a node outside Nodes"),
            );
        }
        if r.detected.contains(n) || !r.detected.intersection(r.view).is_empty() {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!(
                    "{n} has detected {} while its view is {}",
                    r.detected, r.view
                ),
            );
        }
        if r.partitioned_from.contains(n) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!("{n} is partitioned from itself"),
            );
        }
        if let Some(m) = r.partitioned_from.iter().find(|&m| {
            !state
                .node(m)
                .is_some_and(|o| o.partitioned_from.contains(n))
        }) {
            return violation(
                StateInvariant::TypeOK,
                &[n, m],
                format!("partition {n}-{m} is not symmetric"),
            );
        }
        if let Some(bound) = rules.max_view {
            if r.view_number > bound || r.term > bound {
                return violation(
                    StateInvariant::TypeOK,
                    &[n],
                    format!(
                        "{n} has view number {} / term {} above MaxView {bound}",
                        r.view_number, r.term
                    ),
                );
            }
        }
        if fixed && (r.term > state.term_counter() || r.view_number > state.view_counter()) {
            return violation(
                StateInvariant::TypeOK,
                &[n],
                format!(
                    "{n} holds term {} / view number {} above the registry counters",
                    r.term, r.view_number
                ),
            );
        }
    }
    let max_epoch = rules.max_epoch;
    for (&actor, p) in state.placements() {
        let bad_epoch = p.epoch == 0
            || p.epoch > state.epoch_counter()
            || max_epoch.is_some_and(|bound| p.epoch > bound);
        if !all.contains(p.node) || bad_epoch {
            return violation(
                StateInvariant::TypeOK,
                &[p.node],
                format!(
                    "{actor} is placed on {} with epoch {} (epoch counter {})",
                    p.node,
                    p.epoch,
                    state.epoch_counter()
                ),
            );
        }
    }
    Ok(())
}

/// MembershipConsistency: two Active nodes that each have the other in their view and have
/// equal view numbers have equal views.
pub fn membership_consistency(state: &State) -> Result<(), Violation> {
    let active: Vec<(NodeId, _)> = state
        .active()
        .iter()
        .filter_map(|n| state.node(n).map(|r| (n, r)))
        .collect();
    for (i, &(a, ra)) in active.iter().enumerate() {
        for &(b, rb) in &active[i + 1..] {
            if ra.view.contains(b)
                && rb.view.contains(a)
                && ra.view_number == rb.view_number
                && ra.view != rb.view
            {
                return violation(
                    StateInvariant::MembershipConsistency,
                    &[a, b],
                    format!(
                        "{a} has {}#{} but {b} has {}#{}",
                        ra.view, ra.view_number, rb.view, rb.view_number
                    ),
                );
            }
        }
    }
    Ok(())
}

/// JoinAtomicity: an Active node has a non-empty view; a Joining, Left or Failed node has an
/// empty view; a Leaving node may have any view.
pub fn join_atomicity(state: &State) -> Result<(), Violation> {
    for (n, r) in state.node_ids().zip(state.nodes()) {
        let ok = match r.status {
            NodeStatus::Active => !r.view.is_empty(),
            NodeStatus::Joining | NodeStatus::Left | NodeStatus::Failed => r.view.is_empty(),
            NodeStatus::Leaving => true,
        };
        if !ok {
            return violation(
                StateInvariant::JoinAtomicity,
                &[n],
                format!("{n} is {} with view {}", r.status, r.view),
            );
        }
    }
    Ok(())
}

/// LeaveDetectionWeak: a Left node is in no Active node's view.
pub fn leave_detection_weak(state: &State) -> Result<(), Violation> {
    let left = state.with_status(NodeStatus::Left);
    for m in state.active().iter() {
        if let Some(r) = state.node(m) {
            if let Some(n) = r.view.intersection(left).iter().next() {
                return violation(
                    StateInvariant::LeaveDetectionWeak,
                    &[n, m],
                    format!("{n} is Left but still in {m}'s view {}", r.view),
                );
            }
        }
    }
    Ok(())
}

/// NoSplitBrain: at most one node has a valid primary claim.
pub fn no_split_brain(state: &State) -> Result<(), Violation> {
    let valid = state.valid_primaries();
    if valid.len() > 1 {
        let nodes: Vec<NodeId> = valid.iter().collect();
        return violation(
            StateInvariant::NoSplitBrain,
            &nodes,
            format!("{valid} all have valid primary claims"),
        );
    }
    Ok(())
}

/// AtMostOnePrimary: at most one node believes it is primary.
pub fn at_most_one_primary(state: &State) -> Result<(), Violation> {
    let believers = state.believers();
    if believers.len() > 1 {
        let nodes: Vec<NodeId> = believers.iter().collect();
        return violation(
            StateInvariant::AtMostOnePrimary,
            &nodes,
            format!("{believers} all believe they are primary"),
        );
    }
    Ok(())
}

/// FencingTermMonotonic (transition): the registry's term (see [`State::registry_term`]) never
/// decreases, and a node that newly holds a primary term holds one above every term granted
/// before the step (a term is never granted twice).
pub fn fencing_term_monotonic(before: &State, after: &State) -> Result<(), Violation> {
    let (was, is) = (before.registry_term(), after.registry_term());
    if is < was {
        return violation(
            TransitionInvariant::FencingTermMonotonic,
            &[],
            format!("registry term went from {was} down to {is}"),
        );
    }
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        let granted = ra.believes_primary && (!rb.believes_primary || rb.term != ra.term);
        if granted && ra.term <= was {
            return violation(
                TransitionInvariant::FencingTermMonotonic,
                &[n],
                format!(
                    "{n} was granted term {} but term {was} had already been granted",
                    ra.term
                ),
            );
        }
    }
    Ok(())
}

/// MinorityCannotElect (transition): a node that newly believes it is primary has a majority,
/// unless no node was Active before the step (the bootstrap of an empty cluster).
pub fn minority_cannot_elect(before: &State, after: &State) -> Result<(), Violation> {
    if before.active().is_empty() {
        return Ok(());
    }
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        if ra.believes_primary && !rb.believes_primary && !after.has_majority(n) {
            return violation(
                TransitionInvariant::MinorityCannotElect,
                &[n],
                format!(
                    "{n} became primary reaching only {}",
                    after.reachable_active(n)
                ),
            );
        }
    }
    Ok(())
}

/// FailureRequiresDetection (transition): a node that goes from Active to Failed had, before the
/// step, an Active detector `d` that had recorded a detection of it (`n \in detected[d]`), could
/// not communicate with it, and had not received its heartbeat.
pub fn failure_requires_detection(before: &State, after: &State) -> Result<(), Violation> {
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        if rb.status == NodeStatus::Active && ra.status == NodeStatus::Failed {
            let detected = !before.heartbeat_received(n)
                && before.active().without(n).iter().any(|d| {
                    before.node(d).is_some_and(|rd| rd.detected.contains(n))
                        && !before.can_communicate(d, n)
                });
            if !detected {
                return violation(
                    TransitionInvariant::FailureRequiresDetection,
                    &[n],
                    format!("{n} was declared failed without an Active peer having detected it"),
                );
            }
        }
    }
    Ok(())
}

/// FailureNeedsQuorum (transition): a node that goes from Active to Failed had, before the step,
/// an unreceived heartbeat and the votes of a strict majority of all nodes: Active peers `d` that
/// had recorded a detection of it (`n \in detected[d]`) and could not communicate with it
/// ([`State::failure_votes`], the same majority as `has_majority`). Stronger than
/// FailureRequiresDetection, which asks for one such peer. Since every vote comes from a node
/// that cannot reach `n`, a node that reaches no majority, or the nodes of any minority, can
/// never get a node declared failed on their own; in particular one observer cut off from every
/// peer (a degraded observer) contributes one vote, never a majority.
pub fn failure_needs_quorum(before: &State, after: &State) -> Result<(), Violation> {
    for (n, (rb, ra)) in after
        .node_ids()
        .zip(before.nodes().iter().zip(after.nodes()))
    {
        if rb.status == NodeStatus::Active
            && ra.status == NodeStatus::Failed
            && !before.has_failure_quorum(n)
        {
            let votes = before.failure_votes(n);
            let mut nodes: Vec<NodeId> = votes.iter().collect();
            nodes.push(n);
            return violation(
                TransitionInvariant::FailureNeedsQuorum,
                &nodes,
                format!(
                    "{n} was declared failed with the votes of {votes} (heartbeat received: {}); \
                     a majority of {} nodes needs {}",
                    before.heartbeat_received(n),
                    before.config().node_count(),
                    before.majority()
                ),
            );
        }
    }
    Ok(())
}

/// SingleActivation: every placed actor is in the per-node index under its node and nowhere
/// else, and its node is Active, or the actor is queued to leave that node: a Leaving node's
/// actors for any reason, a Failed, Left or Joining node's actors only with reason NodeFailed
/// (a node that left gracefully handed all its actors over first).
pub fn single_activation(state: &State) -> Result<(), Violation> {
    let indexed = state.indexed_count();
    if indexed != state.placements().len() {
        return violation(
            StateInvariant::SingleActivation,
            &[],
            format!(
                "{} placements but {indexed} index entries: an actor is on two nodes",
                state.placements().len()
            ),
        );
    }
    for (&actor, p) in state.placements() {
        let n = p.node;
        if !state.hosted(n).is_some_and(|set| set.contains(&actor)) {
            return violation(
                StateInvariant::SingleActivation,
                &[n],
                format!("{actor} is placed on {n} but not indexed there"),
            );
        }
        let entry = state.queue().get(actor).filter(|e| e.from == n);
        let status = state.node(n).map(|r| r.status);
        let ok = match status {
            Some(NodeStatus::Active) => true,
            Some(NodeStatus::Leaving) => entry.is_some(),
            Some(NodeStatus::Failed | NodeStatus::Left | NodeStatus::Joining) => {
                entry.is_some_and(|e| e.reason == MigrationReason::NodeFailed)
            }
            None => false,
        };
        if !ok {
            return violation(
                StateInvariant::SingleActivation,
                &[n],
                format!(
                    "{actor} is placed on {n} ({}) with queue entry {:?}",
                    status.map_or("unknown".to_string(), |s| s.to_string()),
                    state.queue().get(actor)
                ),
            );
        }
    }
    Ok(())
}

/// MigrationQueueBounded: every queue entry names the node its actor is placed on (so at most
/// one entry per placed actor), and there are at most `actors_max` placed actors.
pub fn migration_queue_bounded(state: &State) -> Result<(), Violation> {
    let actors_max = state.config().actors_max();
    if u64::try_from(state.placements().len()).unwrap_or(u64::MAX) > actors_max {
        return violation(
            StateInvariant::MigrationQueueBounded,
            &[],
            format!(
                "{} actors placed, above actors_max {actors_max}",
                state.placements().len()
            ),
        );
    }
    for (&actor, entry) in state.queue().iter() {
        if state.placement(actor).map(|p| p.node) != Some(entry.from) {
            return violation(
                StateInvariant::MigrationQueueBounded,
                &[entry.from],
                format!(
                    "{actor} is queued to leave {} but is not placed there",
                    entry.from
                ),
            );
        }
    }
    Ok(())
}

/// EpochMonotonic (transition): the epoch counter never decreases; an actor placed before and
/// after keeps or raises its epoch, and raises it whenever it moves; a newly placed actor gets an
/// epoch above every epoch issued before.
pub fn epoch_monotonic(before: &State, after: &State) -> Result<(), Violation> {
    if after.epoch_counter() < before.epoch_counter() {
        return violation(
            TransitionInvariant::EpochMonotonic,
            &[],
            format!(
                "epoch counter went from {} down to {}",
                before.epoch_counter(),
                after.epoch_counter()
            ),
        );
    }
    for (&actor, pa) in after.placements() {
        match before.placement(actor) {
            Some(pb) if pa.epoch < pb.epoch || (pa.node != pb.node && pa.epoch <= pb.epoch) => {
                return violation(
                    TransitionInvariant::EpochMonotonic,
                    &[pb.node, pa.node],
                    format!(
                        "{actor} went from {}@{} to {}@{}",
                        pb.node, pb.epoch, pa.node, pa.epoch
                    ),
                );
            }
            None if pa.epoch <= before.epoch_counter() => {
                return violation(
                    TransitionInvariant::EpochMonotonic,
                    &[pa.node],
                    format!(
                        "{actor} was placed with epoch {} but {} had been issued",
                        pa.epoch,
                        before.epoch_counter()
                    ),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// MigrationByPrimary (transition): an actor that moves from one node to another does so while a
/// valid primary holds the registry's current term.
pub fn migration_by_primary(before: &State, after: &State) -> Result<(), Violation> {
    if before.primary_in_office().is_some() {
        return Ok(());
    }
    for (&actor, pa) in after.placements() {
        if let Some(pb) = before.placement(actor) {
            if pb.node != pa.node {
                return violation(
                    TransitionInvariant::MigrationByPrimary,
                    &[pb.node, pa.node],
                    format!(
                        "{actor} moved from {} to {} with no valid primary holding term {}",
                        pb.node,
                        pa.node,
                        before.term_counter()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// A liveness property of the spec, in the form "no fair behaviour stays forever in the set
/// `Trapped`" (`[]<>~Trapped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Liveness {
    /// EventualMembershipConvergence: once the cluster stays Stable (every node Active or Left,
    /// nothing partitioned), all Active nodes eventually have the same view.
    /// `Trapped = Stable /\ ~Converged`.
    EventualMembershipConvergence,
    /// EventualStepDown(n): a primary that cannot reach a majority eventually steps down (or
    /// regains its majority). `Trapped = StalePrimary(n)`.
    EventualStepDown(NodeId),
    /// EventualPlacement(a): once nothing is partitioned and a valid primary holds the current
    /// term, a queued actor eventually leaves the queue: it is placed on an Active node (or the
    /// application removes it).
    /// `Trapped = NoPartition /\ PrimaryInOffice /\ a \in DOMAIN queue`.
    EventualPlacement(ActorId),
    /// EventualFailureDeclaration(n): a node that looks crashed to a connected majority (silent,
    /// cut off from every other Active node, which are a strict majority of all nodes and can
    /// all communicate with one another, no node Joining or Leaving) is eventually declared
    /// Failed (or stops looking crashed: it sends a heartbeat, a partition heals).
    /// `Trapped = LooksCrashed(n)`. Fairness: besides the spec's `Fairness`, weak fairness of
    /// every DetectFailure(d, n) and of MarkNodeFailed(n) ([`Liveness::fairness`]).
    EventualFailureDeclaration(NodeId),
}

impl Liveness {
    /// Every instance of every liveness property for `node_count` nodes and `actors`.
    pub fn all(node_count: u16, actors: &[ActorId]) -> Vec<Liveness> {
        let mut all = vec![Liveness::EventualMembershipConvergence];
        all.extend((1..=node_count).map(|n| Liveness::EventualStepDown(NodeId(n))));
        all.extend((1..=node_count).map(|n| Liveness::EventualFailureDeclaration(NodeId(n))));
        all.extend(actors.iter().map(|&a| Liveness::EventualPlacement(a)));
        all
    }

    /// The property's name without parameters.
    pub fn name(self) -> &'static str {
        match self {
            Liveness::EventualMembershipConvergence => "EventualMembershipConvergence",
            Liveness::EventualStepDown(_) => "EventualStepDown",
            Liveness::EventualPlacement(_) => "EventualPlacement",
            Liveness::EventualFailureDeclaration(_) => "EventualFailureDeclaration",
        }
    }

    /// The action instances the property assumes weakly fair: the spec's `Fairness`
    /// ([`fair_events`]), and for EventualFailureDeclaration(n) also `FailureFairness(n)`: every
    /// DetectFailure(d, n) and MarkNodeFailed(n) (a failure detector that can detect `n`
    /// eventually does, and a declaration that has its quorum is eventually proposed). The spec
    /// states that property as `FailureFairness(n) => []<>~LooksCrashed(n)`, so the other
    /// properties do not rely on it: with weak fairness of MarkNodeFailed, a reference-model
    /// behaviour that stays Stable and unconverged would have to declare a node failed (its weak
    /// guard is enabled there) and would no longer count against EventualMembershipConvergence.
    pub fn fairness(self, node_count: u16, actors: &[ActorId], max_term: u64) -> Vec<Event> {
        let mut events = fair_events(node_count, actors, max_term);
        if let Liveness::EventualFailureDeclaration(n) = self {
            events.extend((1..=node_count).map(NodeId).filter(|&d| d != n).map(|d| {
                Event::DetectFailure {
                    detector: d,
                    target: n,
                }
            }));
            events.push(Event::MarkNodeFailed { node: n });
        }
        events
    }

    /// Whether `state` is in the set the property forbids a fair behaviour to stay in forever.
    pub fn trapped(self, state: &State) -> bool {
        match self {
            Liveness::EventualMembershipConvergence => state.is_stable() && !state.is_converged(),
            Liveness::EventualStepDown(n) => state.is_stale_primary(n),
            Liveness::EventualPlacement(a) => {
                state.queue().contains(a)
                    && state.is_unpartitioned()
                    && state.primary_in_office().is_some()
            }
            Liveness::EventualFailureDeclaration(n) => state.looks_crashed(n),
        }
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::EventualMembershipConvergence => f.write_str(self.name()),
            Liveness::EventualStepDown(n) => write!(f, "{}({n})", self.name()),
            Liveness::EventualPlacement(a) => write!(f, "{}({a})", self.name()),
            Liveness::EventualFailureDeclaration(n) => write!(f, "{}({n})", self.name()),
        }
    }
}

/// The spec's fairness assumption `Fairness`: weak fairness of every instance of these actions
/// (`WF_vars(SyncViews(a, b))` for all `a < b`, `WF_vars(PrimaryStepDown(n))` for all `n`,
/// `WF_vars(MigrateActor(a, t))` for every actor `a` and term `t` in `1..=max_term`).
/// EventualFailureDeclaration assumes more ([`Liveness::fairness`]).
pub fn fair_events(node_count: u16, actors: &[ActorId], max_term: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for a in 1..=node_count {
        for b in a + 1..=node_count {
            events.push(Event::SyncViews {
                a: NodeId(a),
                b: NodeId(b),
            });
        }
    }
    events.extend((1..=node_count).map(|n| Event::PrimaryStepDown { node: NodeId(n) }));
    for term in 1..=max_term {
        events.extend(
            actors
                .iter()
                .map(|&actor| Event::MigrateActor { actor, term }),
        );
    }
    events
}
