//! The liveness properties, as the set of states a fair behaviour must not stay in forever,
//! and the fairness assumption (the actions that are weakly fair).

use crate::actor::ActorId;
use crate::event::Event;
use crate::node::NodeId;
use crate::state::State;
use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// cut off from every other Active node, which are a strict majority of the members and can
    /// all communicate with one another, no node Joining or Leaving) is eventually declared
    /// Failed (or stops looking crashed: it sends a heartbeat, a partition heals).
    /// `Trapped = LooksCrashed(n)`. Fairness: besides the spec's `Fairness`, weak fairness of
    /// every DetectFailure(d, n) and of MarkNodeFailed(n) ([`Liveness::fairness`]).
    EventualFailureDeclaration(NodeId),
    /// EventualElection (registry v2): once the cluster is stable and has a member, a primary is
    /// eventually elected (quorums counted over the configured slots instead of the members
    /// break this: three slots, one member left, never a majority). `Trapped = Leaderless`.
    /// Fairness: besides the spec's `Fairness`, weak fairness of every ElectPrimary(n)
    /// ([`Liveness::fairness`]).
    EventualElection,
    /// EventualPrimary(n) (issue 20): while `n` is a member that reaches a majority of the
    /// members, a primary is eventually in office, whatever else changes meanwhile (members
    /// joining and leaving, partitions elsewhere). EventualElection asks this only of a stable
    /// cluster; a guard that churn keeps disabling (an election only for a member holding the
    /// newest configuration) is caught here. `Trapped = MajorityLeaderless(n)`. Fairness:
    /// besides the spec's `Fairness`, weak fairness of every ElectPrimary(m).
    EventualPrimary(NodeId),
    /// EventualRejoin(n) (issue 20): a node that wants to be a member (weak fairness of its own
    /// NodeRecover, NodeJoin and NodeJoinComplete: the Agent proposes each whenever it is
    /// enabled) and that can communicate with every node is eventually Active again, whether it
    /// was declared Failed (it recovers to Left, then rejoins), left, or never joined. The
    /// recovery the protocol promises is exactly this path: Failed, then Left, then Joining,
    /// then Active; a Failed node never becomes Active directly. `Trapped = RejoinPending(n)`.
    EventualRejoin(NodeId),
    /// EventualFailover(a) (issue 20): once nothing is partitioned and a valid primary holds
    /// the current term, an actor placed on a node that is no longer serving (Failed, or Left
    /// after it recovered) is eventually placed on a member (or removed).
    /// `Trapped = NoPartition /\ PrimaryInOffice /\ Stranded(a)`.
    EventualFailover(ActorId),
    /// BalanceSettles (issue 20): once the cluster stays stable (every node Active or Left,
    /// nothing partitioned) and the loads stop changing (no actor placed or removed, no member
    /// joining, leaving or declared), RebalanceActors eventually stops moving actors: no
    /// ping-pong of an actor between equally loaded nodes. Judged on behaviours that stay
    /// stable and take no load-changing step ([`Liveness::keeps`]); violated only by one that
    /// keeps taking RebalanceActors ([`Liveness::violated_by_repeating`]).
    BalanceSettles,
}

impl Liveness {
    /// Every instance of every liveness property for `node_count` nodes and `actors`.
    pub fn all(node_count: u16, actors: &[ActorId]) -> Vec<Liveness> {
        let mut all = vec![
            Liveness::EventualMembershipConvergence,
            Liveness::EventualElection,
        ];
        all.extend((1..=node_count).map(|n| Liveness::EventualStepDown(NodeId(n))));
        all.extend((1..=node_count).map(|n| Liveness::EventualFailureDeclaration(NodeId(n))));
        all.extend(actors.iter().map(|&a| Liveness::EventualPlacement(a)));
        all.extend((1..=node_count).map(|n| Liveness::EventualPrimary(NodeId(n))));
        all.extend((1..=node_count).map(|n| Liveness::EventualRejoin(NodeId(n))));
        all.extend(actors.iter().map(|&a| Liveness::EventualFailover(a)));
        if !actors.is_empty() {
            all.push(Liveness::BalanceSettles);
        }
        all
    }

    /// The property's name without parameters.
    pub fn name(self) -> &'static str {
        match self {
            Liveness::EventualMembershipConvergence => "EventualMembershipConvergence",
            Liveness::EventualStepDown(_) => "EventualStepDown",
            Liveness::EventualPlacement(_) => "EventualPlacement",
            Liveness::EventualFailureDeclaration(_) => "EventualFailureDeclaration",
            Liveness::EventualElection => "EventualElection",
            Liveness::EventualPrimary(_) => "EventualPrimary",
            Liveness::EventualRejoin(_) => "EventualRejoin",
            Liveness::EventualFailover(_) => "EventualFailover",
            Liveness::BalanceSettles => "BalanceSettles",
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
        if let Liveness::EventualElection | Liveness::EventualPrimary(_) = self {
            events.extend((1..=node_count).map(|n| Event::ElectPrimary { node: NodeId(n) }));
        }
        if let Liveness::EventualRejoin(n) = self {
            events.extend([
                Event::NodeRecover { node: n },
                Event::NodeJoin { node: n },
                Event::NodeJoinComplete { node: n },
            ]);
        }
        debug_assert!(events.len() >= fair_events(node_count, actors, max_term).len());
        events
    }

    /// Whether the behaviours this property judges may take `event`: a behaviour that takes
    /// another step infinitely often satisfies the property (its premise is false). Every step
    /// for every property but BalanceSettles, whose premise is that the loads stop changing:
    /// no PlaceActor or RemoveActor, no change of the members (NodeJoin, NodeJoinComplete,
    /// NodeLeave, NodeLeaveComplete, MarkNodeFailed, NodeRecover).
    pub fn keeps(self, event: &Event) -> bool {
        match self {
            Liveness::BalanceSettles => !matches!(
                event,
                Event::PlaceActor { .. }
                    | Event::RemoveActor { .. }
                    | Event::NodeJoin { .. }
                    | Event::NodeJoinComplete { .. }
                    | Event::NodeLeave { .. }
                    | Event::NodeLeaveComplete { .. }
                    | Event::MarkNodeFailed { .. }
                    | Event::NodeRecover { .. }
            ),
            _ => true,
        }
    }

    /// Whether the property is violated only by a behaviour that takes a step satisfying this
    /// predicate infinitely often (`<>[][~Move]_vars`), rather than by staying in `Trapped`:
    /// BalanceSettles (the step is RebalanceActors, which queues actors to move). `None` for
    /// every `[]<>~Trapped` property.
    pub fn violated_by_repeating(self) -> Option<fn(&Event) -> bool> {
        match self {
            Liveness::BalanceSettles => {
                Some(|event: &Event| matches!(event, Event::RebalanceActors { .. }))
            }
            _ => None,
        }
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
            Liveness::EventualElection => state.is_leaderless(),
            Liveness::EventualPrimary(n) => state.is_majority_leaderless(n),
            Liveness::EventualRejoin(n) => state.is_rejoin_pending(n),
            Liveness::EventualFailover(a) => {
                state.is_stranded(a)
                    && state.is_unpartitioned()
                    && state.primary_in_office().is_some()
            }
            Liveness::BalanceSettles => state.is_stable(),
        }
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::EventualMembershipConvergence
            | Liveness::EventualElection
            | Liveness::BalanceSettles => f.write_str(self.name()),
            Liveness::EventualPrimary(n) | Liveness::EventualRejoin(n) => {
                write!(f, "{}({n})", self.name())
            }
            Liveness::EventualFailover(a) => write!(f, "{}({a})", self.name()),
            Liveness::EventualStepDown(n) => write!(f, "{}({n})", self.name()),
            Liveness::EventualPlacement(a) => write!(f, "{}({a})", self.name()),
            Liveness::EventualFailureDeclaration(n) => write!(f, "{}({n})", self.name()),
        }
    }
}

/// The spec's fairness assumption `Fairness`: weak fairness of every instance of these actions
/// (`WF_vars(SyncViews(a, b))` for all `a <= b`, `WF_vars(PrimaryStepDown(n))` for all `n`,
/// `WF_vars(MigrateActor(a, t))` for every actor `a` and term `t` in `1..=max_term`).
/// EventualFailureDeclaration assumes more ([`Liveness::fairness`]).
pub fn fair_events(node_count: u16, actors: &[ActorId], max_term: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for a in 1..=node_count {
        for b in a..=node_count {
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
