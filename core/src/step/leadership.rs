//! The primary's actions: ElectPrimary and PrimaryStepDown.

use super::common::{
    become_primary, issue_term, record, require_status, step_down, successor, Stepped,
};
use crate::effect::{Effects, StepDownReason};
use crate::node::{NodeId, NodeSet, NodeStatus};
use crate::refusal::{Counter, Guard};
use crate::rules::{ElectTerm, Rules};
use crate::state::State;

/// ElectPrimary(n): `n` is Active, does not believe it is primary, has a majority, and no node
/// has a valid primary claim; it becomes primary with a term above every term so far.
///
/// Reference: term `1 + max term over all nodes`. Buggy: only the first two guards, and no term
/// is granted: the node keeps its own term, with no bound check. Fixed: the term comes from the registry-wide
/// counter (never reused), and every other node that still believes it is primary is demoted in
/// the same transition (it is superseded).
pub(super) fn elect_primary(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    let r = record(state, n)?;
    if r.believes_primary {
        return Err(Guard::AlreadyPrimary { node: n });
    }
    require_status(state, n, NodeStatus::Active)?;
    if rules.elect_needs_majority && !state.has_majority(n) {
        return Err(Guard::NoMajority {
            node: n,
            reachable: state.reachable_active(n).len(),
            member_count: state.quorum_size(),
        });
    }
    if rules.elect_needs_no_valid_primary {
        if let Some(primary) = state.valid_primaries().iter().next() {
            return Err(Guard::ValidPrimaryExists { primary });
        }
    }
    if !rules.elect_any_view && r.view_number != state.view_counter() {
        return Err(Guard::Disabled);
    }
    let term = match rules.elect_term {
        ElectTerm::Fresh => issue_term(rules, state)?,
        ElectTerm::Reuse => state.term_counter(),
        ElectTerm::MaxPlusOne => successor(rules, Counter::Term, state.max_term())?,
        ElectTerm::Own => r.term,
    };
    let mut next = state.clone();
    let mut effects = Effects::new();
    if rules.elect_demotes_others {
        for m in state.believers().iter() {
            step_down(
                rules,
                &mut next,
                &mut effects,
                m,
                StepDownReason::Superseded,
            );
        }
    }
    become_primary(rules, &mut next, &mut effects, n, term);
    debug_assert!(!rules.elect_demotes_others || next.believers() == NodeSet::single(n));
    assert!(next
        .node(n)
        .is_some_and(|r| r.believes_primary && r.term == term));
    Ok((next, effects))
}

/// PrimaryStepDown(n): `n` believes it is primary, is Active, and has no majority; it stops
/// believing. Disabled in buggy mode.
pub(super) fn primary_step_down(rules: &Rules, state: &State, n: NodeId) -> Stepped {
    let r = record(state, n)?;
    if !rules.step_down {
        return Err(Guard::Disabled);
    }
    if !r.believes_primary {
        return Err(Guard::NotPrimary { node: n });
    }
    require_status(state, n, NodeStatus::Active)?;
    if state.has_majority(n) {
        return Err(Guard::HasMajority { node: n });
    }
    if !rules.step_down_labels_truthfully {
        // Mutant: a real refusal disguised as the checking bound.
        return Err(Guard::BoundReached {
            counter: Counter::Term,
            value: state.term_counter().saturating_add(1),
            bound: rules.max_view.unwrap_or_else(|| state.term_counter()),
        });
    }
    let mut next = state.clone();
    let mut effects = Effects::new();
    step_down(
        rules,
        &mut next,
        &mut effects,
        n,
        StepDownReason::MajorityLost,
    );
    assert!(!next.node(n).is_some_and(|r| r.believes_primary));
    assert_eq!(effects.len(), 1);
    Ok((next, effects))
}
