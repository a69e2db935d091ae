//! The policy: what this node proposes next, run after every input (see the module
//! documentation of `agent`). It never re-implements a guard: the reducer, run on the
//! snapshot, says whether an action is enabled.

use super::limits::{IN_FLIGHT_MAX, PLACE_QUEUE_MAX};
use super::machine::Agent;
use super::output::{FenceReason, RequestError};
use super::records::{Kind, Observed};
use super::timing::{later_ms, Timer};
use crate::actor::{ActorId, Placement, MIGRATION_BATCH_MAX};
use crate::effect::Effect;
use crate::event::Event;
use crate::node::{NodeSet, NodeStatus};
use crate::proposal::{Action, ActorBatch, Proposal, ProposalError, PLACE_BATCH_MAX};
use crate::refusal::Guard;
use crate::state::{NodeRecord, State};
use crate::step::{enabled, step};

impl Agent {
    /// The policy and the serving rules: run after every input.
    pub(super) fn evaluate(&mut self, now_ms: u64) {
        self.check_lease(now_ms);
        if self.observed.is_some() {
            self.decide(now_ms);
            self.reconcile(now_ms);
        }
        self.arm_evaluate(now_ms);
        debug_assert!(self.fenced.is_none() || self.serving.is_empty());
        debug_assert!(self
            .timers
            .get(Timer::Evaluate)
            .is_none_or(|at| at > now_ms));
    }

    /// Proposes `event` if the reducer, run on the snapshot, accepts it and its kind is settled.
    pub(super) fn propose_if_enabled(
        &mut self,
        now_ms: u64,
        event: Event,
        round: Option<u64>,
    ) -> bool {
        let Some(o) = &self.observed else {
            return false;
        };
        let kind = Kind::of(&Action::Step(event));
        if !self.settled(kind) || enabled(&o.state, &event).is_err() {
            return false;
        }
        let proposed = self.propose(now_ms, Action::Step(event), round);
        debug_assert!(
            !proposed || !self.settled(kind),
            "a proposed kind is in flight"
        );
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
        proposed
    }

    /// What to propose next, by this node's status in its snapshot.
    fn decide(&mut self, now_ms: u64) {
        let Some(o) = self.observed.clone() else {
            return;
        };
        if self.fenced == Some(FenceReason::Superseded) {
            return;
        }
        let Some(record) = o.state.node(self.node).cloned() else {
            return;
        };
        let in_flight = self.in_flight.len();
        match record.status {
            NodeStatus::Active => self.decide_active(now_ms, &o, &record),
            status => self.decide_inactive(now_ms, status, &o),
        }
        debug_assert!(
            self.in_flight.len() >= in_flight,
            "deciding never drops a flight"
        );
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// A node that is not Active moves itself along: joins (when the application wants it in),
    /// completes its join, recovers, or completes its leave once it holds no actor.
    fn decide_inactive(&mut self, now_ms: u64, status: NodeStatus, o: &Observed) {
        let s = &o.state;
        debug_assert!(status != NodeStatus::Active);
        debug_assert!(s.node(self.node).is_some_and(|r| r.status == status));
        let me = self.node;
        match status {
            NodeStatus::Left => {
                if self.wants_member {
                    self.propose_if_enabled(now_ms, Event::NodeJoin { node: me }, None);
                }
            }
            NodeStatus::Joining => {
                self.watch_members(now_ms, o);
                self.propose_if_enabled(now_ms, Event::NodeJoinComplete { node: me }, None);
            }
            NodeStatus::Failed => {
                self.propose_if_enabled(now_ms, Event::NodeRecover { node: me }, None);
            }
            NodeStatus::Leaving => {
                if s.load(me) == 0 {
                    self.propose_if_enabled(now_ms, Event::NodeLeaveComplete { node: me }, None);
                }
            }
            NodeStatus::Active => {}
        }
    }

    /// An Active node: leaves (when the application wants it out), or reports partitions,
    /// detects failures, keeps the primary and the views in order, migrates (as the primary)
    /// and places what the application asked for.
    fn decide_active(&mut self, now_ms: u64, o: &Observed, record: &NodeRecord) {
        debug_assert!(record.status == NodeStatus::Active);
        debug_assert!(self.fenced != Some(FenceReason::Superseded));
        let me = self.node;
        let s = &o.state;
        if !self.wants_member {
            self.propose_if_enabled(now_ms, Event::NodeLeave { node: me }, None);
            return;
        }
        self.report_partitions(now_ms, s);
        self.detect(now_ms, o, record);
        self.propose_if_enabled(now_ms, Event::ElectPrimary { node: me }, None);
        self.propose_if_enabled(now_ms, Event::PrimaryStepDown { node: me }, None);
        self.sync_views(now_ms, s, record);
        self.migrate(now_ms, s, record);
        self.place_requested(now_ms, s);
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// Failure detection (registry v2), on the rounds this node saw open ([`RoundsSeen`]):
    /// - a member whose latest heartbeat names a round before one this node saw open
    ///   `failure_timeout_ms` ago is declared failed on the registry's own evidence (the proposal
    ///   carries that round; the store refuses it if the member's heartbeat names that round or
    ///   a later one, so a later round opening meanwhile does not undo the evidence);
    /// - a peer this node cannot reach (a partition recorded in the registry) gets this node's
    ///   vote, and a heartbeating member is declared once a majority of the members voted (in
    ///   the open round);
    /// - a new round is opened once the open round is half a heartbeat interval old (members
    ///   take turns by rank, a quarter interval apart), whoever has heartbeated in it; while
    ///   votes are gathering, not before the round is `failure_timeout_ms` old (votes expire
    ///   with it).
    ///   No node, silent or storeless, can hold rounds back.
    fn detect(&mut self, now_ms: u64, o: &Observed, record: &NodeRecord) {
        let s = &o.state;
        let me = self.node;
        let settings = *self.timing.settings();
        debug_assert!(record.status == NodeStatus::Active);
        debug_assert!(
            !self.rounds_seen.is_empty(),
            "a snapshot was handled, so a round was seen"
        );
        let round = Some(o.round);
        let round_age = self.round_age_ms(now_ms, o);
        let ripe = round_age >= settings.failure_timeout_ms;
        let peers = s.active().without(me);
        let heartbeats = s.heartbeats();
        // The peers some member has detected: only they can have votes. (One pass over the
        // records, with set operations; no reducer call per peer.)
        let suspected = s
            .nodes()
            .iter()
            .filter(|r| r.status == NodeStatus::Active && !r.detected.is_empty())
            .fold(NodeSet::EMPTY, |acc, r| acc.union(&r.detected));
        // Silent members: no heartbeat since a round seen open for the failure timeout.
        let evidence = self.rounds_seen.ripe(now_ms, settings.failure_timeout_ms);
        let silent = self.silent_since(o, &peers, evidence);
        let voted = peers.intersection(heartbeats).intersection(&suspected);
        debug_assert!(silent.intersection(&voted).is_empty());
        // The voted peers whose votes are a majority: only they can be declared (the guard of
        // MarkNodeFailed on a heartbeating member). One pass over the records: asking the
        // reducer of every voted peer, on every probe answer and snapshot, walked every record
        // per peer; at 100 nodes that took a quarter of a saturated process's time.
        let quorate = s.failure_quorate(&voted);
        // Partitions are kept symmetric, so this node's row names every peer it cannot reach.
        let cut_off = peers.intersection(&record.partitioned_from);
        debug_assert!(peers
            .iter()
            .all(|t| s.can_communicate(me, t) != cut_off.contains(t)));
        // In id order, as over every peer: the same proposals in the same order, without the
        // ones the reducer would refuse.
        for t in cut_off.union(&silent).union(&voted).iter() {
            if cut_off.contains(t) {
                let vote = Event::DetectFailure {
                    detector: me,
                    target: t,
                };
                self.propose_if_enabled(now_ms, vote, round);
            }
            if silent.contains(t) {
                self.propose_if_enabled(now_ms, Event::MarkNodeFailed { node: t }, evidence);
            } else if quorate.contains(t) {
                self.propose_if_enabled(now_ms, Event::MarkNodeFailed { node: t }, round);
            }
        }
        let voting = !suspected.is_empty();
        if (!voting || ripe) && round_age >= self.reset_after_ms(s) {
            self.propose_if_enabled(now_ms, Event::ResetHeartbeats, round);
        }
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// How long this node has seen the snapshot's round open (0 when it has not seen it yet).
    fn round_age_ms(&self, now_ms: u64, o: &Observed) -> u64 {
        let age = self
            .rounds_seen
            .seen_ms(o.round)
            .map_or(0, |seen| now_ms.saturating_sub(seen));
        debug_assert!(age <= now_ms);
        age
    }

    /// A Joining node (a live process, not yet a member) keeps the registry's own failure
    /// evidence moving too: once the members have had their turn it opens a new round, and it
    /// declares a member silent since a round it saw open for the failure timeout. Without it, a
    /// cluster whose last members were lost while the others were joining would wait forever:
    /// nobody would be left to declare them, and a joiner reaches no member to join through
    /// (registry v2; once no member is left, its NodeJoinComplete bootstraps the cluster).
    fn watch_members(&mut self, now_ms: u64, o: &Observed) {
        let s = &o.state;
        let settings = *self.timing.settings();
        debug_assert!(s
            .node(self.node)
            .is_some_and(|r| r.status == NodeStatus::Joining));
        let round = Some(o.round);
        let round_age = self.round_age_ms(now_ms, o);
        let evidence = self.rounds_seen.ripe(now_ms, settings.failure_timeout_ms);
        for t in self.silent_since(o, &s.active(), evidence).iter() {
            self.propose_if_enabled(now_ms, Event::MarkNodeFailed { node: t }, evidence);
        }
        if round_age >= self.reset_after_ms(s) {
            self.propose_if_enabled(now_ms, Event::ResetHeartbeats, round);
        }
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
    }

    /// How old the round must be before this node opens the next one: the round period, half a
    /// heartbeat interval, plus half a period per member ranked before it (so the lowest-ranked
    /// live member opens it and the others seldom race it; a late one is refused: the round moved
    /// on). A non-member ranks after every member. Why half an interval: a silent node is
    /// declared a failure timeout after the first round that opened after its last heartbeat, so
    /// the period is what the declaration may come late by; with a whole interval (and the
    /// next-ranked member's turn when the opener itself went silent) a node that lost its store
    /// link was declared up to 653 ms after (p99; failure timeout 500 ms, interval 100 ms), with
    /// half, 567 ms (`README.md`, performance).
    fn reset_after_ms(&self, s: &State) -> u64 {
        let settings = self.timing.settings();
        // A non-member (a Joining node) comes after every member.
        let active = s.active();
        let rank = if active.contains(self.node) {
            // The members below this node: set operations, no walk over the members.
            active
                .intersection(NodeSet::first(self.node.0.saturating_sub(1)))
                .len()
        } else {
            active.len()
        };
        debug_assert_eq!(
            usize::from(rank),
            active
                .iter()
                .position(|n| n == self.node)
                .unwrap_or(usize::from(active.len()))
        );
        let rank = u64::from(rank);
        let period = (settings.heartbeat_interval_ms / 2).max(1);
        let after = period.saturating_add(rank.saturating_mul(period) / 2);
        debug_assert!(after >= period);
        after
    }

    /// Registry v2 (one configuration): when the registry's configuration is newer than the one
    /// this node adopted, the node adopts it (`SyncViews(n, n)`), reading only its own record and
    /// the configuration number to decide. At once while no node holds a valid primary claim
    /// (an election is due, and `ElectPrimary` asks for the current configuration); otherwise
    /// once the configuration has been unchanged for a heartbeat interval, or at the latest
    /// `failure_timeout_ms` after this node first saw itself behind. While many nodes join, the
    /// configuration changes with every join, and every member adopting each one is a
    /// transaction per member per join (200 node runtimes joining at once on etcd wrote 2,480
    /// node records, 2,217 with this rule; on a saturated machine that load can tip heartbeats
    /// past their leases, docs/engines.md). A member behind only cannot be elected, which
    /// matters only while there is no valid primary.
    fn sync_views(&mut self, now_ms: u64, s: &State, record: &NodeRecord) {
        let me = self.node;
        let settings = *self.timing.settings();
        debug_assert!(record.status == NodeStatus::Active);
        debug_assert!(record.view_number <= s.view_counter());
        let counter = s.view_counter();
        let seen_ms = match self.configuration_seen {
            Some((seen, at)) if seen == counter => at,
            _ => {
                self.configuration_seen = Some((counter, now_ms));
                now_ms
            }
        };
        if record.view_number >= counter {
            self.behind_since_ms = None;
            return;
        }
        let behind_since = *self.behind_since_ms.get_or_insert(now_ms);
        let stable = now_ms.saturating_sub(seen_ms) >= settings.heartbeat_interval_ms;
        let overdue = now_ms.saturating_sub(behind_since) >= settings.failure_timeout_ms;
        debug_assert!(seen_ms <= now_ms && behind_since <= now_ms);
        let electing = s.valid_primaries().is_empty();
        if stable || overdue || electing {
            let proposed = self.propose_if_enabled(now_ms, Event::SyncViews { a: me, b: me }, None);
            debug_assert!(!proposed || !self.settled(Kind::Sync));
        }
    }

    /// The primary in office, not fenced, sends the migration queue's next batch: once a
    /// snapshot read after its previous batch shows the queue, or at once after a batch that
    /// committed and moved actors (the store picks each batch from the registry at commit, so
    /// the batches of a drain go out back to back; the one after the last finds the queue
    /// empty and is refused, which ends the chain until a snapshot shows more queued).
    fn migrate(&mut self, now_ms: u64, s: &State, record: &NodeRecord) {
        debug_assert!(record.status == NodeStatus::Active);
        // `propose` sends nothing while a batch is in flight.
        if self.fenced.is_none()
            && s.primary_in_office() == Some(self.node)
            && !s.queue().is_empty()
            && (self.settled(Kind::Migrate) || self.migrate_more)
        {
            let max = usize::try_from(self.timing.settings().migration_batch)
                .unwrap_or(MIGRATION_BATCH_MAX)
                .min(MIGRATION_BATCH_MAX);
            debug_assert!((1..=MIGRATION_BATCH_MAX).contains(&max));
            self.propose(
                now_ms,
                Action::MigrateBatch {
                    term: record.term,
                    max,
                },
                None,
            );
        }
    }

    /// Proposes the oldest place requests the reducer accepts on the snapshot: one as
    /// PlaceActor, several (up to [`PLACE_BATCH_MAX`]) as one PlaceBatch transaction. Every
    /// request ahead of them that the reducer refuses on the snapshot is answered with its
    /// refusal and dropped (final: never proposed later, and it holds up nothing behind it); a
    /// request the snapshot accepts but the batch so far would refuse (the registry filling
    /// up, the actor asked for twice) ends the batch and waits for the next one. Judged only
    /// once no placement of this node is in flight and the snapshot was read after the last
    /// one finished, so the snapshot already shows this node's own earlier placements.
    fn place_requested(&mut self, now_ms: u64, s: &State) {
        if !self.settled(Kind::Place) {
            return;
        }
        let queued = self.place_requests.len();
        let mut batch: Vec<ActorId> = Vec::new();
        let mut after = s.clone();
        while let Some(&actor) = self.place_requests.front() {
            if batch.len() >= PLACE_BATCH_MAX {
                break;
            }
            let event = Event::PlaceActor { actor };
            if let Err(refusal) = step(s, &event) {
                self.place_requests.pop_front();
                // Placing is idempotent: an actor already placed is answered with its placement
                // (a caller told Unknown or Timeout, whose first attempt did commit, may place
                // again); every other refusal is final.
                let answer = match (&refusal.guard, s.placement(actor)) {
                    (Guard::AlreadyPlaced { .. }, Some(placement)) => Ok(placement),
                    _ => Err(RequestError::Refused(ProposalError::Refused(refusal))),
                };
                debug_assert!(answer.as_ref().map_or(true, |p| p.epoch > 0));
                self.outputs.placed(actor, answer);
                continue;
            }
            match step(&after, &event) {
                Ok((next, _)) => {
                    after = next;
                    batch.push(actor);
                    self.place_requests.pop_front();
                }
                Err(_) => break,
            }
        }
        let action = match batch.as_slice() {
            [] => None,
            [actor] => Some(Action::Step(Event::PlaceActor { actor: *actor })),
            many => ActorBatch::new(many)
                .ok()
                .map(|actors| Action::PlaceBatch { actors }),
        };
        let proposed = action.is_some_and(|action| self.propose(now_ms, action, None));
        if !proposed {
            // Not proposed (the in-flight limit): the requests wait, in their order.
            for &actor in batch.iter().rev() {
                self.place_requests.push_front(actor);
            }
        }
        debug_assert!(self.place_requests.len() <= queued);
        debug_assert!(self.place_requests.len() <= PLACE_QUEUE_MAX);
    }

    /// Answers the place requests behind a finished policy proposal, if `proposal` is one
    /// (PlaceActor, PlaceBatch): with the placement its commit made, or with why it did not
    /// commit. Its requests were dropped from the queue when it was proposed: never proposed
    /// again, except that an actor the commit did not place (placed meanwhile, or skipped by a
    /// batch whose other actors were placed), or whose batch was refused, goes back to the
    /// front of the queue, to be answered from the next snapshot.
    pub(super) fn answer_place(
        &mut self,
        proposal: &Proposal,
        result: Result<&[Effect], RequestError>,
    ) {
        debug_assert!(proposal.id.node == self.node);
        let actors: &[ActorId] = match &proposal.action {
            Action::Step(Event::PlaceActor { actor }) => std::slice::from_ref(actor),
            Action::PlaceBatch { actors } => actors.actors(),
            _ => return,
        };
        let single = actors.len() == 1 && matches!(proposal.action, Action::Step(_));
        // Actors to judge again, each with its answer should the queue be full.
        let mut again: Vec<(ActorId, RequestError)> = Vec::new();
        for &actor in actors {
            let placed = result.as_ref().map(|effects| {
                effects.iter().find_map(|e| match *e {
                    Effect::ActorActivated {
                        actor: a,
                        node,
                        epoch,
                    } if a == actor => Some(Placement { node, epoch }),
                    _ => None,
                })
            });
            let answer = match (placed, &result) {
                (Ok(Some(placement)), _) => Ok(placement),
                // A batch's actor it did not place: judged again on the next snapshot.
                (Ok(None), _) if !single => {
                    again.push((actor, RequestError::Unknown));
                    continue;
                }
                (Ok(None), _) => Err(RequestError::Unknown),
                (Err(_), Err(error @ RequestError::Refused(ProposalError::Refused(refusal))))
                    if !single || matches!(refusal.guard, Guard::AlreadyPlaced { .. }) =>
                {
                    // Placed meanwhile (by an earlier attempt, or another node), or a refused
                    // batch: answered from the next snapshot, read after this outcome.
                    again.push((actor, error.clone()));
                    continue;
                }
                (Err(_), Err(error)) => Err(error.clone()),
                (Err(_), Ok(_)) => Err(RequestError::Unknown),
            };
            debug_assert!(answer.as_ref().map_or(true, |p| p.epoch > 0));
            self.outputs.placed(actor, answer);
        }
        for (actor, otherwise) in again.into_iter().rev() {
            if self.place_requests.len() < PLACE_QUEUE_MAX {
                self.place_requests.push_front(actor);
            } else {
                self.outputs.placed(actor, Err(otherwise));
            }
        }
        debug_assert!(self.place_requests.len() <= PLACE_QUEUE_MAX);
    }

    /// [`silent_since`] on the snapshot `o` (a copy of `self.observed`), computed once per
    /// snapshot, candidates and evidence (kept in `self.observed`): the same set, without a
    /// lookup per member on every input.
    fn silent_since(
        &mut self,
        o: &Observed,
        candidates: &NodeSet,
        evidence: Option<u64>,
    ) -> NodeSet {
        if let Some((c, e, silent)) = &o.silent {
            if c == candidates && *e == evidence {
                debug_assert_eq!(*silent, silent_since(o, candidates, evidence));
                return silent.clone();
            }
        }
        let silent = silent_since(o, candidates, evidence);
        if let Some(observed) = &mut self.observed {
            debug_assert_eq!(observed.read_at_ms, o.read_at_ms);
            observed.silent = Some((candidates.clone(), evidence, silent.clone()));
        }
        silent
    }

    /// Looks again when a round or a suspicion ripens.
    pub(super) fn arm_evaluate(&mut self, now_ms: u64) {
        let s = *self.timing.settings();
        let mut next: Option<u64> = None;
        let mut consider = |at: u64| {
            if at > now_ms {
                next = Some(next.map_or(at, |n: u64| n.min(at)));
            }
        };
        // Every round seen ripens into evidence; the open one also comes due for a reset.
        self.rounds_seen.prune(now_ms, s.failure_timeout_ms);
        for seen in self.rounds_seen.times() {
            consider(later_ms(seen, s.failure_timeout_ms));
        }
        if let Some(o) = &self.observed {
            if let Some(seen) = self.rounds_seen.seen_ms(o.round) {
                consider(later_ms(seen, self.reset_after_ms(&o.state)));
            }
        }
        if let Some(o) = &self.observed {
            consider(later_ms(o.read_at_ms, s.lease_ms));
        }
        // A configuration this node is behind on: adopted once stable, or once overdue.
        if let (Some((_, seen)), Some(behind)) = (self.configuration_seen, self.behind_since_ms) {
            consider(later_ms(seen, s.heartbeat_interval_ms));
            consider(later_ms(behind, s.failure_timeout_ms));
        }
        for p in self.peers.values() {
            if let Some(since) = p.agreeing_since_ms() {
                consider(later_ms(since, s.suspect_after_ms));
            }
        }
        self.timers.set_or_stop(Timer::Evaluate, next);
        debug_assert!(next.is_none_or(|at| at > now_ms));
        debug_assert!(self.timers.get(Timer::Evaluate) == next);
    }
}

/// The members among `candidates` silent since round `evidence` (none without one): their
/// latest heartbeat, as snapshot `o` says, names an earlier round, or they never heartbeated.
/// A member whose flag is set heartbeated in the open round, so only the others are looked up.
fn silent_since(o: &Observed, candidates: &NodeSet, evidence: Option<u64>) -> NodeSet {
    let Some(evidence) = evidence else {
        return NodeSet::EMPTY;
    };
    debug_assert!(evidence <= o.round);
    let silent: NodeSet = candidates
        .difference(o.state.heartbeats())
        .iter()
        .filter(|&t| o.last_heartbeat(t).is_none_or(|h| h < evidence))
        .collect();
    debug_assert!(silent.is_subset(candidates));
    silent
}
