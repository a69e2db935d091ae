//! Failure handling: DetectFailure, MarkNodeFailed (with its detection and quorum guards) and
//! NodeRecover.

use super::common::{
    adopt_view, change_status, distinct, forget_detections, issue_view_number, next_view_number,
    queue_hosted, record, record_view_number, require_status, set, step_down, Stepped,
};
use crate::actor::MigrationReason;
use crate::effect::{Effect, Effects, StepDownReason};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::Guard;
use crate::rules::{FailureEvidence, Rules};
use crate::state::State;

/// DetectFailure(d, t). Reference: both Active, `t` in `d`'s view, they cannot communicate, and
/// `t`'s heartbeat was not received; `d` drops `t` from its view with a new number.
///
/// Fixed (registry v2): the detection is recorded (`t` joins `detected[d]`): it is `d`'s vote
/// for MarkNodeFailed(t), which expires with the round (ResetHeartbeats), and no view changes
/// (one configuration: a view is what a node adopted from the registry). A vote is about
/// reachability, and it is cast only against a node whose heartbeat of the round was received
/// (else [`Guard::Silent`]): a silent node is declared on the registry's own evidence, a node
/// that still heartbeats only with a majority of the members' votes (the degraded-observer
/// rule). Instead of "`t` in `d`'s view" the guard is "`d` has not recorded a detection of `t`
/// yet" (one vote per detector, whether or not `d`'s view lists `t`: a member that adopted its
/// configuration before `t` was admitted votes too).
pub(super) fn detect_failure(rules: &Rules, state: &State, d: NodeId, t: NodeId) -> Stepped {
    record(state, d)?;
    record(state, t)?;
    distinct(d, t)?;
    let detector = require_status(state, d, NodeStatus::Active)?;
    require_status(state, t, NodeStatus::Active)?;
    let listed = detector.view.contains(t);
    if rules.record_detections {
        if detector.detected.contains(t) {
            return Err(Guard::AlreadyDetected {
                detector: d,
                target: t,
            });
        }
    } else if !listed {
        return Err(Guard::NotInView {
            detector: d,
            target: t,
        });
    }
    if state.can_communicate(d, t) {
        return Err(Guard::CanCommunicate { a: d, b: t });
    }
    if rules.detect_needs_silence && state.heartbeat_received(t) {
        return Err(Guard::HeartbeatReceived { node: t });
    }
    if rules.one_configuration && !state.heartbeat_received(t) {
        // Registry v2: a silent node is declared on the registry's own evidence, with no vote.
        return Err(Guard::Silent { node: t });
    }
    let mut next = state.clone();
    let mut effects = Effects::new();
    // Registry v2 (one configuration): the fixed protocol changes no view here.
    let drops = listed && !rules.one_configuration;
    if drops {
        let view_number = next_view_number(rules, state, detector.view_number)?;
        let view = detector.view.clone().without(t).with(d);
        adopt_view(&mut next, &mut effects, d, &view, view_number);
        record_view_number(rules, &mut next, view_number);
        assert!(!view.contains(t) && view.contains(d));
    }
    if rules.record_detections {
        // Fixed: the detection is recorded in the registry: d's vote for MarkNodeFailed(t).
        set(&mut next, d, |r| r.detected.insert(t));
    }
    assert!(rules.one_configuration || next.node(d).is_some_and(|r| !r.view.contains(t)));
    assert_eq!(effects.len(), usize::from(drops));
    Ok((next, effects))
}

/// The detection guard for MarkNodeFailed(n) when `n`'s heartbeat was received: some Active
/// `d != n` has recorded a detection of `n` (DetectFailure(d, n) in this round, not undone by a
/// later view listing `n`) and still cannot communicate with it. A node that merely never heard
/// of `n` has recorded nothing, so it cannot get `n` declared failed.
fn detected_by(state: &State, n: NodeId) -> Result<NodeId, Guard> {
    debug_assert!(state.heartbeat_received(n));
    let detectors: Vec<NodeId> = state
        .active()
        .without(n)
        .iter()
        .filter(|&d| state.node(d).is_some_and(|r| r.detected.contains(n)))
        .collect();
    let found = match detectors.iter().find(|&&d| !state.can_communicate(d, n)) {
        Some(&d) => Ok(d),
        None => match detectors.first() {
            Some(&d) => Err(Guard::CanCommunicate { a: d, b: n }),
            None => Err(Guard::Undetected { node: n }),
        },
    };
    debug_assert!(found.as_ref().map_or(true, |&d| d != n));
    found
}

/// The quorum guard for MarkNodeFailed(n) when `n`'s heartbeat was received: the guard of
/// [`detected_by`], and the votes ([`State::failure_votes`]: recorded detections by Active peers
/// that still cannot reach `n`) are a strict majority of the members, the majority of
/// `has_majority`. A detector cut off from the cluster (a degraded observer) is one vote, so it
/// alone can never get a heartbeating node declared failed, and neither can the nodes of any
/// minority of the members.
fn failure_quorum(state: &State, n: NodeId) -> Result<NodeSet, Guard> {
    detected_by(state, n)?;
    let votes = state.failure_votes(n);
    let needed = state.majority();
    if votes.len() < needed {
        return Err(Guard::NoFailureQuorum {
            node: n,
            votes,
            needed,
            member_count: state.quorum_size(),
        });
    }
    debug_assert!(state.has_failure_quorum(n));
    Ok(votes)
}

/// MarkNodeFailed(n)'s guards, in the spec's order, without the transition (which costs
/// O(actors on `n`): every one is queued): `Ok` with the configuration number the transition
/// takes (registry v2), or the first guard that fails. [`mark_node_failed`] runs exactly these.
pub(super) fn mark_node_failed_guards(
    rules: &Rules,
    state: &State,
    n: NodeId,
) -> Result<Option<u64>, Guard> {
    require_status(state, n, NodeStatus::Active)?;
    let silent = !state.heartbeat_received(n);
    match rules.failure_evidence {
        FailureEvidence::Quorum => {
            if !silent {
                failure_quorum(state, n)?;
            }
        }
        FailureEvidence::Recorded => {
            if !silent {
                detected_by(state, n)?;
            }
        }
        FailureEvidence::ViewLacks => {
            let others = state.active().without(n);
            if !others
                .iter()
                .any(|d| state.node(d).is_some_and(|r| !r.view.contains(n)))
            {
                return Err(Guard::Undetected { node: n });
            }
        }
        FailureEvidence::Nothing => {}
    }
    // Registry v2 (one configuration): `n` leaves the configuration, which takes the next number.
    let configuration = if rules.one_configuration && rules.failure_new_configuration {
        Some(issue_view_number(rules, state)?)
    } else {
        None
    };
    debug_assert!(state
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Active));
    debug_assert!(configuration.is_none_or(|c| c > state.view_counter()));
    Ok(configuration)
}

/// MarkNodeFailed(n): `n` is Active and was detected. It becomes Failed (empty view, number 0,
/// no primary belief, term 0).
///
/// Reference: detected means merely "some Active `d != n` lacks `n` in its view" (which also
/// holds when `d` never heard of `n`: the LeaveDetectionWeak defect). Fixed (registry v2): `n`
/// committed no heartbeat in this round (the registry's own evidence, whatever probes say), or
/// else the quorum guard of [`failure_quorum`] (a majority of the members voted in this round);
/// and in the same transition `n` leaves the configuration, which takes the next number
/// (registry v2, one configuration: no member's view changes here, each adopts the new
/// configuration by its own SyncViews), `n` is erased from every detection record, is fenced,
/// and all its actors are queued with reason NodeFailed.
pub(super) fn mark_node_failed(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    let configuration = mark_node_failed_guards(rules, state, n)?;
    let mut next = state.clone();
    let mut effects = Effects::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Failed);
    if rules.failure_fences {
        effects.push(Effect::Fenced { node: n });
    }
    step_down(rules, &mut next, &mut effects, n, StepDownReason::Failed);
    if rules.actors && rules.failure_queues_actors {
        queue_hosted(&mut next, &mut effects, n, MigrationReason::NodeFailed);
    }
    set(&mut next, n, |r| {
        r.view = NodeSet::EMPTY;
        r.view_number = 0;
        r.term = 0;
        r.detected = NodeSet::EMPTY;
    });
    forget_detections(&mut next, n);
    if let Some(number) = configuration {
        record_view_number(rules, &mut next, number);
    }
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Failed && !r.believes_primary));
    assert!(next
        .node(n)
        .is_some_and(|r| r.view.is_empty() && r.term == 0));
    debug_assert!(configuration.is_none_or(|c| next.view_counter() == c));
    Ok((next, effects))
}

/// NodeRecover(n): `n` is Failed. It becomes Left (empty view, number 0, term 0, empty detection
/// record). Its actors, queued with reason NodeFailed, stay queued. (Registry v2: v1's guard "no
/// Active view lists `n`" is gone: `n` left the configuration when it was declared, and a member
/// that has not synchronised since may still list it.)
pub(super) fn node_recover(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    require_status(state, n, NodeStatus::Failed)?;
    if !rules.recover_without_actors && state.load(n) == 0 {
        return Err(Guard::Disabled);
    }
    let mut next = state.clone();
    let mut effects = Effects::new();
    change_status(&mut next, &mut effects, n, NodeStatus::Left);
    set(&mut next, n, |r| {
        r.view = NodeSet::EMPTY;
        r.view_number = 0;
        r.term = 0;
        r.detected = NodeSet::EMPTY;
    });
    assert!(next
        .node(n)
        .is_some_and(|r| r.status == NodeStatus::Left && r.view.is_empty()));
    assert_eq!(effects.len(), 1);
    Ok((next, effects))
}
