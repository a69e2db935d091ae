//! The Agent, driven in simulated time: several agents against one registry (the production
//! transaction logic, `membership_core::execute`) with a bounded, time-jumping loop in the style
//! of quinn-proto's test driver. No real time, no threads. The world here is small (instant
//! store with a fixed latency, probes that succeed unless a node is down or cut off); the
//! whole-cluster simulation with faults is `tests/`.

#![allow(clippy::unwrap_used)]

use membership_core::testing::actor;
use membership_core::{
    drain, execute, served_by, Agent, Decision, Event, FenceReason, InputError, Meta, NodeId,
    NodeStatus, Notification, Outgoing, Output, ProposalError, ProposalOutcome, State, Timing,
    TimingError, TimingSettings, LOCAL_TIME_MS_MAX, NODES_MAX, TIMING_MS_MAX,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Store round-trip latency in the simulated world (ms).
const STORE_LATENCY_MS: u64 = 2;
/// Probe round trip (ms).
const PROBE_LATENCY_MS: u64 = 1;
/// The loop's bound on iterations per `run_for`.
const ITERATIONS_MAX: usize = 2_000_000;

#[derive(Clone, Debug)]
enum Delivery {
    ProposalDone(u64, ProposalOutcome),
    Probe(NodeId, u64, bool),
    /// Read at, registry, round, the incarnation holding the reader's slot.
    Snapshot(u64, State, u64, Option<u64>),
}

/// A process: a node id and the incarnation it holds.
type Pid = (NodeId, u64);

struct World {
    now: u64,
    state: State,
    meta: Meta,
    agents: BTreeMap<Pid, Agent>,
    /// Processes that are frozen (no input reaches them, they act on nothing).
    paused: BTreeSet<Pid>,
    /// Nodes that cannot reach the store.
    no_store: BTreeSet<NodeId>,
    /// Processes that are gone.
    dead: BTreeSet<Pid>,
    /// Cut network links (probes fail both ways).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Deliveries by due time, to one process.
    queue: BTreeMap<(u64, u64), (Pid, Delivery)>,
    /// Deliveries held for frozen processes (they get them when they resume).
    held: Vec<(Pid, Delivery)>,
    seq: u64,
    committed: Vec<Event>,
    notifications: Vec<(u64, NodeId, Notification)>,
    /// Activations of an actor while another live process served it.
    dual_activations: usize,
}

impl World {
    fn new(count: u16, timing: Timing) -> World {
        let state = State::initial(membership_core::Config::fixed(count).unwrap());
        let mut world = World {
            now: 0,
            state,
            meta: Meta::default(),
            agents: BTreeMap::new(),
            paused: BTreeSet::new(),
            no_store: BTreeSet::new(),
            dead: BTreeSet::new(),
            cut: BTreeSet::new(),
            queue: BTreeMap::new(),
            held: Vec::new(),
            seq: 0,
            committed: Vec::new(),
            notifications: Vec::new(),
            dual_activations: 0,
        };
        for i in 1..=count {
            world.start(NodeId(i), timing);
        }
        world
    }

    /// A process takes `node`'s slot with a fresh incarnation and starts its Agent.
    fn start(&mut self, node: NodeId, timing: Timing) -> u64 {
        let slot = self
            .meta
            .claim(node, &format!("127.0.0.1:{}", 7000 + node.0));
        let incarnation = slot.incarnation;
        self.meta = self.meta.with_claim(node, slot);
        let mut agent = Agent::new(node, incarnation, timing, self.now);
        agent.join(self.now);
        self.agents.insert((node, incarnation), agent);
        self.drain((node, incarnation));
        incarnation
    }

    /// The newest process of `node`.
    fn current(&self, node: NodeId) -> Pid {
        *self
            .agents
            .keys()
            .filter(|(n, _)| *n == node)
            .max()
            .unwrap()
    }

    fn live(&self, pid: &Pid) -> bool {
        !self.dead.contains(pid) && !self.paused.contains(pid)
    }

    fn deliver_later(&mut self, at: u64, pid: Pid, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), (pid, d));
    }

    /// A frozen process resumes: it gets what was held for it.
    fn resume(&mut self, pid: Pid) {
        self.paused.remove(&pid);
        let held = std::mem::take(&mut self.held);
        for (p, d) in held {
            if p == pid {
                self.seq += 1;
                self.queue.insert((self.now, self.seq), (p, d));
            } else {
                self.held.push((p, d));
            }
        }
    }

    /// Whether a probe from `a` to `b` is answered: some live process of `b`, no cut link.
    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        let answered = self.agents.keys().any(|pid| pid.0 == b && self.live(pid));
        answered && !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a))
    }

    /// Drains every output of process `pid` and executes it.
    fn drain(&mut self, pid: Pid) {
        let node = pid.0;
        let Some(agent) = self.agents.get_mut(&pid) else {
            return;
        };
        let timeout_ms = agent.timing().settings().probe_timeout_ms;
        // The shared drain, recorded (this world holds the agents), then executed in its order.
        let mut outputs: Vec<Output> = Vec::new();
        drain(agent, &mut outputs);
        for output in outputs {
            match output {
                Output::Propose(out) => self.store(pid, out),
                Output::Probe(peer) => {
                    let ok = self.reachable(node, peer);
                    let at = self.now + if ok { PROBE_LATENCY_MS } else { timeout_ms };
                    self.deliver_later(at, pid, Delivery::Probe(peer, self.now, ok));
                }
                Output::Read if !self.no_store.contains(&node) => {
                    self.deliver_later(
                        self.now + STORE_LATENCY_MS,
                        pid,
                        Delivery::Snapshot(
                            self.now,
                            self.state.clone(),
                            self.meta.round,
                            self.meta.slots.get(&node).map(|s| s.incarnation),
                        ),
                    );
                }
                Output::Read | Output::Reply { .. } | Output::Placed { .. } => {}
                Output::Notify(n) => self.notifications.push((self.now, node, n)),
                Output::Decide(Decision::Activate { actor, .. }) => {
                    let now = self.now;
                    let others = served_by(
                        self.agents
                            .iter()
                            .filter(|(p, _)| **p != pid && !self.dead.contains(p))
                            .map(|(_, a)| (a, now)),
                    );
                    if others.get(&actor).is_some_and(|s| !s.is_empty()) {
                        self.dual_activations += 1;
                    }
                }
                Output::Decide(_) => {}
            }
        }
    }

    /// Runs `out` against the registry at once; its outcome arrives a store latency later.
    fn store(&mut self, pid: Pid, out: Outgoing) {
        let outcome = if self.no_store.contains(&pid.0) {
            ProposalOutcome::Unavailable
        } else {
            match execute(&self.state, &self.meta, &out.proposal) {
                Ok(commit) => {
                    if !commit.duplicate {
                        assert_eq!(self.state.apply(&commit.delta).unwrap(), commit.next);
                        self.state = commit.next;
                        self.meta = commit.meta;
                        self.committed.extend(commit.events);
                        membership_core::invariants::check_state(&self.state).unwrap();
                    }
                    ProposalOutcome::Committed {
                        effects: commit.effects,
                    }
                }
                Err(e) => ProposalOutcome::Refused(e),
            }
        };
        self.deliver_later(
            self.now + STORE_LATENCY_MS,
            pid,
            Delivery::ProposalDone(out.token, outcome),
        );
    }

    /// Runs the world for `ms` of simulated time, jumping from one deadline to the next.
    fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        for _ in 0..ITERATIONS_MAX {
            let active: Vec<Pid> = self
                .agents
                .keys()
                .copied()
                .filter(|p| self.live(p))
                .collect();
            let timer = active
                .iter()
                .filter_map(|p| self.agents[p].poll_timeout())
                .min();
            let delivery = self.queue.keys().next().map(|&(at, _)| at);
            let next = [timer, delivery].into_iter().flatten().min().unwrap_or(end);
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            while let Some((&(at, seq), _)) = self.queue.iter().next() {
                if at > self.now {
                    break;
                }
                let (pid, d) = self.queue.remove(&(at, seq)).unwrap();
                if self.dead.contains(&pid) {
                    continue; // a dead process hears nothing
                }
                if self.paused.contains(&pid) {
                    self.held.push((pid, d));
                    continue;
                }
                let now = self.now;
                let agent = self.agents.get_mut(&pid).unwrap();
                match d {
                    Delivery::ProposalDone(token, outcome) => {
                        agent.handle_outcome(now, token, outcome).unwrap()
                    }
                    Delivery::Probe(peer, sent, ok) => {
                        agent.handle_probe(now, peer, sent, ok).unwrap()
                    }
                    Delivery::Snapshot(read_at, state, round, slot) => agent
                        .handle_snapshot(now, read_at, state, round, slot)
                        .unwrap(),
                }
                self.drain(pid);
            }
            for pid in active {
                let now = self.now;
                let agent = self.agents.get_mut(&pid).unwrap();
                if agent.poll_timeout().is_some_and(|t| t <= now) {
                    agent.handle_timeout(now).unwrap();
                }
                self.drain(pid);
            }
        }
        panic!("the world did not reach {end} ms within {ITERATIONS_MAX} iterations");
    }

    /// The newest process of `n{i}`.
    fn agent(&mut self, i: u16) -> &mut Agent {
        let pid = self.current(NodeId(i));
        self.agents.get_mut(&pid).unwrap()
    }

    fn agent_of(&self, node: NodeId) -> &Agent {
        &self.agents[&self.current(node)]
    }

    /// The live processes' agents, with the time (every clock here is the world's).
    fn live_agents(&self) -> impl Iterator<Item = (&Agent, u64)> {
        self.agents
            .iter()
            .filter(|(p, _)| !self.dead.contains(p))
            .map(|(_, a)| (a, self.now))
    }

    fn status(&self, i: u16) -> NodeStatus {
        self.state.node(NodeId(i)).unwrap().status
    }

    fn primary(&self) -> Option<NodeId> {
        self.state.primary_in_office()
    }
}

fn timing() -> Timing {
    Timing::fast()
}

fn converged(world: &World) -> bool {
    let active = world.state.active();
    world.primary().is_some()
        && world.state.is_converged()
        && active
            .iter()
            .all(|n| world.state.node(n).is_some_and(|r| r.view == active))
}

#[test]
fn timing_rejects_a_failure_timeout_that_does_not_cover_the_lease() {
    let bad = TimingSettings {
        failure_timeout_ms: 100,
        ..Timing::FAST_SETTINGS
    };
    let err = Timing::new(bad).unwrap_err();
    assert_eq!(
        err,
        TimingError::FailureTimeout {
            failure_timeout_ms: 100,
            lease_ms: 75,
            max_clock_rate_error_ppm: 200,
            heartbeat_interval_ms: 25,
            min_failure_timeout_ms: 101
        }
    );
    assert_eq!(
        err.to_string(),
        "failure_timeout_ms 100 is too short: a detector's wait failure_timeout_ms / (1 + 200 \
         ppm) must exceed lease_ms 75 / (1 - 200 ppm) + heartbeat_interval_ms 25; the smallest \
         failure_timeout_ms accepted is 101"
    );
    assert!(Timing::new(TimingSettings {
        failure_timeout_ms: 101,
        ..Timing::FAST_SETTINGS
    })
    .is_ok());
    assert_eq!(
        Timing::new(TimingSettings {
            lease_ms: 25,
            ..Timing::FAST_SETTINGS
        })
        .unwrap_err()
        .to_string(),
        "lease_ms 25 must exceed heartbeat_interval_ms 25"
    );
    assert_eq!(
        Timing::new(TimingSettings {
            probe_interval_ms: 0,
            ..Timing::FAST_SETTINGS
        })
        .unwrap_err(),
        TimingError::Zero {
            name: "probe_interval_ms"
        }
    );
    assert!(Timing::new(Timing::DEFAULT_SETTINGS).is_ok());
    assert!(Timing::new(Timing::FAST_SETTINGS).is_ok());
}

#[test]
fn three_agents_form_a_cluster_with_one_primary_and_serve_their_actors() {
    let mut w = World::new(3, timing());
    w.run_for(2_000);
    assert!(converged(&w), "{:?}", w.state);
    assert_eq!(
        (1..=3).map(|i| w.status(i)).collect::<Vec<_>>(),
        vec![NodeStatus::Active; 3]
    );
    for a in 1..=30 {
        let now = w.now;
        w.agent(1 + u16::try_from(a % 3).unwrap())
            .place(actor(a), now)
            .unwrap();
    }
    w.run_for(2_000);
    assert_eq!(w.state.placements().len(), 30);
    let served = served_by(w.live_agents());
    assert_eq!(served.len(), 30, "every actor is served");
    for (a, nodes) in &served {
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            Some(*nodes.iter().next().unwrap()),
            w.state.placement(*a).map(|p| p.node)
        );
    }
    assert!(w.live_agents().all(|(a, _)| !a.is_fenced()));
    assert_eq!(w.dual_activations, 0);
    // Heartbeats keep flowing and nobody was declared failed.
    assert!(
        w.committed
            .iter()
            .filter(|e| matches!(e, Event::SendHeartbeat { .. }))
            .count()
            > 100
    );
    assert!(!w
        .committed
        .iter()
        .any(|e| matches!(e, Event::MarkNodeFailed { .. })));
}

#[test]
fn a_dead_primary_is_declared_failed_and_its_actors_move_without_dual_activation() {
    let mut w = World::new(5, timing());
    w.run_for(1_500);
    for a in 1..=50 {
        let now = w.now;
        w.agent(2).place(actor(a), now).unwrap();
    }
    w.run_for(1_500);
    assert!(converged(&w));
    let old = w.primary().unwrap();
    let held: Vec<_> = w
        .state
        .hosted(old)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    assert!(!held.is_empty());
    let killed_at = w.now;
    let pid = w.current(old);
    w.dead.insert(pid);
    w.run_for(3_000);
    assert_eq!(w.status(old.0), NodeStatus::Failed);
    let new = w.primary().unwrap();
    assert_ne!(new, old);
    assert!(w.state.queue().is_empty());
    assert!(held
        .iter()
        .all(|&a| w.state.placement(a).is_some_and(|p| p.node != old)));
    let served = served_by(w.live_agents());
    assert_eq!(served.len(), 50);
    assert_eq!(w.dual_activations, 0);
    // Failover in simulated time: from the kill to the last re-activation.
    let last = w
        .notifications
        .iter()
        .filter(|(t, n, note)| {
            *t > killed_at && *n != old && matches!(note, Notification::ActorActivated { .. })
        })
        .map(|(t, _, _)| *t)
        .max()
        .unwrap();
    assert!(
        last - killed_at < 1_000,
        "failover took {} ms",
        last - killed_at
    );
}

#[test]
fn a_node_cut_off_from_the_store_fences_itself_before_it_is_declared_failed() {
    let mut w = World::new(3, timing());
    w.run_for(1_500);
    for a in 1..=9 {
        let now = w.now;
        w.agent(1).place(actor(a), now).unwrap();
    }
    w.run_for(1_000);
    let victim = NodeId(3);
    assert!(!w.agent_of(victim).serving().is_empty());
    let cut_at = w.now;
    w.no_store.insert(victim);
    for i in 1..=2 {
        w.cut.insert((NodeId(i), victim));
    }
    w.run_for(3_000);
    let fenced_at = w
        .notifications
        .iter()
        .find(|(t, n, note)| {
            *t >= cut_at && *n == victim && matches!(note, Notification::Fenced { .. })
        })
        .map(|(t, _, _)| *t)
        .unwrap();
    assert!(w.agent_of(victim).serving().is_empty());
    assert_eq!(w.status(3), NodeStatus::Failed);
    let failed_at = w
        .notifications
        .iter()
        .find(|(_, n, note)| {
            *n != victim && matches!(note, Notification::NodeFailed { node } if *node == victim)
        })
        .map(|(t, _, _)| *t)
        .unwrap();
    assert!(
        fenced_at < failed_at,
        "fenced {fenced_at}, declared failed {failed_at}"
    );
    assert_eq!(w.dual_activations, 0);
    // The store comes back: the node learns it was declared failed, recovers and rejoins.
    w.no_store.clear();
    w.cut.clear();
    w.run_for(3_000);
    assert_eq!(w.status(3), NodeStatus::Active);
    assert!(converged(&w));
    assert_eq!(w.dual_activations, 0);
}

#[test]
fn a_paused_process_cannot_act_after_its_successor_took_the_slot() {
    let mut w = World::new(3, timing());
    w.run_for(1_500);
    for a in 1..=6 {
        let now = w.now;
        w.agent(1).place(actor(a), now).unwrap();
    }
    w.run_for(1_000);
    let node = NodeId(2);
    let zombie = w.current(node);
    assert!(!w.agents[&zombie].serving().is_empty());
    w.paused.insert(zombie);
    w.run_for(1_000);
    // A new process takes the slot (a restart) while the old one is frozen.
    let new_incarnation = w.start(node, timing());
    assert_eq!(new_incarnation, zombie.1 + 1);
    w.run_for(1_500);
    // The old process resumes and acts on what it believed: it may not heartbeat, vote,
    // migrate or serve.
    let resumed_at = w.now;
    w.resume(zombie);
    w.run_for(1_000);
    let old = &w.agents[&zombie];
    assert!(old.is_fenced());
    assert!(old.serving().is_empty());
    assert!(w.notifications.iter().any(|(t, n, note)| *t >= resumed_at
        && *n == node
        && matches!(
            note,
            Notification::Fenced {
                reason: FenceReason::Superseded
            }
        )));
    let refused = execute(
        &w.state,
        &w.meta,
        &membership_core::Proposal {
            id: membership_core::ProposalId {
                node,
                incarnation: zombie.1,
                seq: 1_000_000,
            },
            action: membership_core::Action::Step(Event::SendHeartbeat { node }),
            round: None,
        },
    )
    .unwrap_err();
    assert_eq!(
        refused,
        ProposalError::StaleIncarnation {
            node,
            incarnation: zombie.1,
            current: new_incarnation
        }
    );
    // (The frozen node was declared failed meanwhile: its actors moved.) Every actor is served
    // by exactly one live process, and none was ever served twice.
    let served = served_by(w.live_agents());
    assert_eq!(served.len(), 6);
    assert!(served.values().all(|nodes| nodes.len() == 1));
    assert_eq!(w.dual_activations, 0);
}

#[test]
fn a_graceful_leave_hands_every_actor_over_before_it_completes() {
    let mut w = World::new(3, timing());
    w.run_for(1_500);
    for a in 1..=12 {
        let now = w.now;
        w.agent(1).place(actor(a), now).unwrap();
    }
    w.run_for(1_000);
    let leaver = NodeId(3);
    let held = w.state.load(leaver);
    assert!(held > 0);
    let now = w.now;
    w.agent(3).leave(now);
    w.run_for(3_000);
    assert_eq!(w.status(3), NodeStatus::Left);
    assert_eq!(w.state.load(leaver), 0);
    assert!(w.agent_of(leaver).serving().is_empty());
    assert_eq!(served_by(w.live_agents()).len(), 12);
    assert_eq!(w.dual_activations, 0);
    assert!(w
        .notifications
        .iter()
        .any(|(_, n, note)| *n == leaver && *note == Notification::Left));
}

/// The degraded observer (registry v2): n1 loses every path to its peers but keeps the store, so
/// it still heartbeats. Its votes alone never get a healthy peer declared; n2 and n3, a majority
/// of the three members, vote n1 out, and one of them is the primary. (n1 then recovers and asks
/// to join again, but reaches no Active node: it stays Joining.)
#[test]
fn a_degraded_observer_gets_no_healthy_node_declared_failed() {
    let mut w = World::new(3, timing());
    w.run_for(1_500);
    for i in 2..=3 {
        w.cut.insert((NodeId(1), NodeId(i)));
    }
    w.run_for(5_000);
    assert!(!w.committed.iter().any(|e| matches!(
        e,
        Event::MarkNodeFailed { node } if *node != NodeId(1)
    )));
    assert!(w
        .committed
        .iter()
        .any(|e| matches!(e, Event::MarkNodeFailed { node } if *node == NodeId(1))));
    assert_eq!(
        (1..=3).map(|i| w.status(i)).collect::<Vec<_>>(),
        vec![NodeStatus::Joining, NodeStatus::Active, NodeStatus::Active]
    );
    assert!(w.primary().is_some());
    assert!(w.primary() != Some(NodeId(1)));
}

/// The example (issue 18): lease 100 ms, heartbeat 1 ms, 10% rate error. The lease
/// lasts up to 100 / 0.9 = 111.1 ms of true time; a failure timeout of 112 ms is only
/// 112 / 1.1 = 101.8 ms of a fast detector's true time. Refused; the smallest accepted is
/// 124 ms (124 / 1.1 = 112.7 > 111.1 + 1, while 123 / 1.1 = 111.8 is not).
#[test]
fn timing_counts_the_detectors_clock_error_too() {
    let example = TimingSettings {
        heartbeat_interval_ms: 1,
        lease_ms: 100,
        max_clock_rate_error_ppm: 100_000,
        failure_timeout_ms: 112,
        ..Timing::FAST_SETTINGS
    };
    let err = Timing::new(example).unwrap_err();
    assert_eq!(
        err,
        TimingError::FailureTimeout {
            failure_timeout_ms: 112,
            lease_ms: 100,
            max_clock_rate_error_ppm: 100_000,
            heartbeat_interval_ms: 1,
            min_failure_timeout_ms: 124,
        }
    );
    assert!(err
        .to_string()
        .ends_with("the smallest failure_timeout_ms accepted is 124"));
    for (failure_timeout_ms, accepted) in [(123, false), (124, true)] {
        let settings = TimingSettings {
            failure_timeout_ms,
            ..example
        };
        assert_eq!(Timing::new(settings).is_ok(), accepted, "{settings:?}");
    }
    // Without rate error the rule is `failure_timeout > lease + heartbeat`.
    let exact = TimingSettings {
        max_clock_rate_error_ppm: 0,
        failure_timeout_ms: 101,
        ..example
    };
    assert!(Timing::new(exact).is_err());
    assert!(Timing::new(TimingSettings {
        failure_timeout_ms: 102,
        ..exact
    })
    .is_ok());
    // The defaults are accepted, with room: 401 and 101 are their smallest failure timeouts.
    for (settings, min) in [
        (Timing::DEFAULT_SETTINGS, 401),
        (Timing::FAST_SETTINGS, 101),
    ] {
        assert!(Timing::new(settings).is_ok());
        let short = TimingSettings {
            failure_timeout_ms: min - 1,
            ..settings
        };
        assert!(matches!(
            Timing::new(short),
            Err(TimingError::FailureTimeout { min_failure_timeout_ms, .. }) if min_failure_timeout_ms == min
        ));
    }
}

/// A setting above one day is refused: the Agent's deadlines are a time plus a few settings,
/// and these bounds keep every sum from overflowing.
#[test]
fn timing_refuses_settings_whose_arithmetic_could_overflow() {
    assert_eq!(TIMING_MS_MAX, 86_400_000);
    let huge = TimingSettings {
        failure_timeout_ms: u64::MAX,
        ..Timing::DEFAULT_SETTINGS
    };
    assert_eq!(
        Timing::new(huge).unwrap_err(),
        TimingError::TooLarge {
            name: "failure_timeout_ms",
            value_ms: u64::MAX,
            max_ms: TIMING_MS_MAX
        }
    );
    let over = TimingSettings {
        snapshot_interval_ms: TIMING_MS_MAX + 1,
        ..Timing::DEFAULT_SETTINGS
    };
    assert_eq!(
        Timing::new(over).unwrap_err().to_string(),
        "snapshot_interval_ms 86400001 is above 86400000 (TIMING_MS_MAX, one day)"
    );
    // The largest accepted timing, driven at the largest accepted time, does not overflow.
    let largest = TimingSettings {
        heartbeat_interval_ms: TIMING_MS_MAX / 4,
        failure_timeout_ms: TIMING_MS_MAX,
        lease_ms: TIMING_MS_MAX / 2,
        max_clock_rate_error_ppm: 100_000,
        probe_interval_ms: TIMING_MS_MAX,
        probe_timeout_ms: TIMING_MS_MAX,
        suspect_after_ms: TIMING_MS_MAX,
        snapshot_interval_ms: TIMING_MS_MAX,
        retry_backoff_ms: TIMING_MS_MAX,
        migration_batch: u64::MAX,
    };
    let timing = Timing::new(largest).unwrap();
    let start = LOCAL_TIME_MS_MAX - 10;
    let mut agent = Agent::new(NodeId(1), 1, timing, start);
    agent.join(start);
    let state = State::initial(membership_core::Config::fixed(3).unwrap());
    let mut tokens = Vec::new();
    for now in start..=LOCAL_TIME_MS_MAX {
        agent.handle_timeout(now).unwrap();
        agent
            .handle_snapshot(now, now, state.clone(), 0, Some(1))
            .unwrap();
        agent.handle_probe(now, NodeId(2), now, false).unwrap();
        while let Some(output) = agent.poll_output() {
            if let Output::Propose(out) = output {
                tokens.push(out.token);
            }
        }
        for &token in &tokens {
            agent
                .handle_outcome(now, token, ProposalOutcome::Unknown)
                .unwrap();
        }
    }
    assert!(agent.poll_timeout().is_some());
}

/// Every timed input refuses a time it cannot use, naming it, and changes nothing.
#[test]
fn inputs_refuse_bad_times_with_a_typed_error() {
    let state = State::initial(membership_core::Config::fixed(3).unwrap());
    let mut agent = Agent::new(NodeId(1), 1, Timing::fast(), 100);
    while agent.poll_output().is_some() {}
    let before = format!("{agent:?}");
    let beyond = LOCAL_TIME_MS_MAX + 1;
    let out_of_range = InputError::TimeOutOfRange {
        now_ms: beyond,
        max_ms: LOCAL_TIME_MS_MAX,
    };
    assert_eq!(agent.handle_timeout(beyond), Err(out_of_range));
    assert_eq!(
        agent.handle_snapshot(beyond, 0, state.clone(), 0, Some(1)),
        Err(out_of_range)
    );
    assert_eq!(
        agent.handle_probe(beyond, NodeId(2), 0, true),
        Err(out_of_range)
    );
    assert_eq!(
        agent.handle_outcome(beyond, 1, ProposalOutcome::Unknown),
        Err(out_of_range)
    );
    let backwards = InputError::TimeWentBackwards {
        now_ms: 99,
        latest_ms: 100,
    };
    assert_eq!(agent.handle_timeout(99), Err(backwards));
    assert_eq!(
        agent.handle_snapshot(99, 0, state.clone(), 0, Some(1)),
        Err(backwards)
    );
    assert_eq!(agent.handle_probe(99, NodeId(2), 0, true), Err(backwards));
    assert_eq!(
        agent.handle_outcome(99, 1, ProposalOutcome::Unknown),
        Err(backwards)
    );
    assert_eq!(
        agent.handle_snapshot(100, 101, state.clone(), 0, Some(1)),
        Err(InputError::ReadAfterArrival {
            read_at_ms: 101,
            now_ms: 100
        })
    );
    assert_eq!(
        agent.handle_probe(100, NodeId(2), 101, true),
        Err(InputError::ProbeAfterArrival {
            sent_ms: 101,
            now_ms: 100
        })
    );
    for peer in [NodeId(1), NodeId(0), NodeId(NODES_MAX + 1)] {
        assert_eq!(
            agent.handle_probe(100, peer, 100, true),
            Err(InputError::NotAPeer {
                peer,
                node: NodeId(1)
            })
        );
    }
    assert_eq!(
        agent
            .handle_snapshot(100, 101, state.clone(), 0, Some(1))
            .unwrap_err()
            .to_string(),
        "a snapshot read at 101 cannot arrive at 100, before it was asked for"
    );
    assert_eq!(
        format!("{agent:?}"),
        before,
        "a refused input changes nothing"
    );
    assert!(agent.poll_output().is_none());
    // The same time as the latest input is fine (a clock may not have ticked), and a later
    // one moves the latest time on: the earlier one is then refused.
    agent.handle_timeout(100).unwrap();
    agent.handle_snapshot(150, 120, state, 0, Some(1)).unwrap();
    assert_eq!(
        agent.handle_timeout(149),
        Err(InputError::TimeWentBackwards {
            now_ms: 149,
            latest_ms: 150
        })
    );
    // join, leave and place with a bad time record the wish and act at the next input.
    agent.join(beyond);
    agent.leave(3);
    assert_eq!(agent.place(actor(1), 149), Ok(()));
    agent.join(5);
    agent.handle_timeout(150).unwrap();
}

#[test]
fn stale_outcomes_are_dropped() {
    let timing = timing();
    let mut agent = Agent::new(NodeId(1), 1, timing, 0);
    agent.join(0);
    let before = format!("{agent:?}");
    agent
        .handle_outcome(5, 999, ProposalOutcome::Unknown)
        .unwrap();
    assert_eq!(format!("{agent:?}"), before);
}

// ---------------------------------------------------------------------------------------------
// Regressions of the bugs the whole-cluster simulation found (tests/tests/sim.rs has the seeds).

/// An Agent whose outputs are drained with the shared drain and kept by kind, for the tests
/// below that look at one kind at a time (each `poll_*` drains first, then takes the oldest
/// output of its kind).
struct Driven {
    agent: Agent,
    proposals: VecDeque<Outgoing>,
    read: bool,
    decisions: VecDeque<Decision>,
    notifications: VecDeque<Notification>,
}

impl Driven {
    fn new(agent: Agent) -> Driven {
        Driven {
            agent,
            proposals: VecDeque::new(),
            read: false,
            decisions: VecDeque::new(),
            notifications: VecDeque::new(),
        }
    }

    fn fill(&mut self) {
        let mut outputs: Vec<Output> = Vec::new();
        drain(&mut self.agent, &mut outputs);
        for output in outputs {
            match output {
                Output::Propose(out) => self.proposals.push_back(out),
                Output::Probe(_) | Output::Reply { .. } | Output::Placed { .. } => {}
                Output::Read => self.read = true,
                Output::Decide(d) => self.decisions.push_back(d),
                Output::Notify(n) => self.notifications.push_back(n),
            }
        }
    }

    fn poll_proposal(&mut self) -> Option<Outgoing> {
        self.fill();
        self.proposals.pop_front()
    }

    fn poll_read(&mut self) -> bool {
        self.fill();
        std::mem::take(&mut self.read)
    }

    fn poll_decision(&mut self) -> Option<Decision> {
        self.fill();
        self.decisions.pop_front()
    }

    fn poll_notification(&mut self) -> Option<Notification> {
        self.fill();
        self.notifications.pop_front()
    }
}

impl Driven {
    /// A copy of the Agent, with empty output queues.
    fn clone_agent(&self) -> Driven {
        Driven::new(self.agent.clone())
    }
}

impl std::ops::Deref for Driven {
    type Target = Agent;
    fn deref(&self) -> &Agent {
        &self.agent
    }
}

impl std::ops::DerefMut for Driven {
    fn deref_mut(&mut self) -> &mut Agent {
        &mut self.agent
    }
}

/// The fast timing's hand-off wait: 75 ms x (1 + 600 ppm), rounded up, plus 1 ms.
const FAST_HANDOFF_MS: u64 = 77;

/// One millisecond of a single Agent's life against a fixed registry `state` (slot held by
/// `slot`): due timers run, heartbeats commit (or find the store unavailable when
/// `heartbeats_commit` is false), other proposals stay in flight, and a snapshot read at `t`
/// is delivered at `t`. Returns the decisions taken at `t`.
fn tick(
    agent: &mut Driven,
    t: u64,
    state: &State,
    slot: Option<u64>,
    heartbeats_commit: bool,
) -> Vec<Decision> {
    agent.handle_timeout(t).unwrap();
    assert!(agent.poll_timeout().is_none_or(|at| at > t));
    while let Some(out) = agent.poll_proposal() {
        if matches!(
            out.proposal.action,
            membership_core::Action::Step(Event::SendHeartbeat { .. })
        ) {
            let outcome = if heartbeats_commit {
                ProposalOutcome::Committed { effects: vec![] }
            } else {
                ProposalOutcome::Unavailable
            };
            agent.handle_outcome(t, out.token, outcome).unwrap();
        }
    }
    agent.poll_read();
    agent.handle_snapshot(t, t, state.clone(), 0, slot).unwrap();
    while agent.poll_proposal().is_some() {}
    let mut decisions = Vec::new();
    while let Some(d) = agent.poll_decision() {
        decisions.push(d);
    }
    decisions
}

/// The decisions taken from `from` to `to` (inclusive), with their times.
fn live(
    agent: &mut Driven,
    (from, to): (u64, u64),
    state: &State,
    slot: Option<u64>,
    heartbeats_commit: bool,
) -> Vec<(u64, Decision)> {
    (from..=to)
        .flat_map(|t| {
            tick(agent, t, state, slot, heartbeats_commit)
                .into_iter()
                .map(move |d| (t, d))
        })
        .collect()
}

fn three_active() -> State {
    membership_core::testing::run(
        membership_core::Config::fixed(3).unwrap(),
        &membership_core::testing::THREE_ACTIVE,
    )
}

#[test]
fn the_handoff_wait_of_the_fast_timing_is_77_ms() {
    assert_eq!(Timing::fast().handoff_wait_ms(), FAST_HANDOFF_MS);
}

#[test]
fn a_migration_batch_that_finds_the_queue_empty_is_refused_and_not_proposed_again() {
    use membership_core::testing::{accept, leave, migrate, place_on};
    use membership_core::{Action, Proposal, ProposalId};
    // n3 leaves with a1 and a2: both queued; n1 is the primary (term 1).
    let queued = accept(&place_on(&three_active(), 3, [1, 2]), leave(3)).0;
    assert_eq!(queued.queue().len(), 2);
    let drained = accept(&accept(&queued, migrate(1, 1)).0, migrate(2, 1)).0;
    assert!(drained.queue().is_empty());
    let mut meta = Meta::default();
    meta = meta.with_claim(NodeId(1), meta.claim(NodeId(1), "n1"));
    let batch = Proposal {
        id: ProposalId {
            node: NodeId(1),
            incarnation: 1,
            seq: 7,
        },
        action: Action::MigrateBatch { term: 1, max: 4 },
        round: None,
    };
    // `execute` refuses (it panicked on its assertion `!events.is_empty()` before).
    let refused = execute(&drained, &meta, &batch).unwrap_err();
    assert_eq!(refused, ProposalError::NothingToMigrate { term: 1, max: 4 });
    assert_eq!(
        refused.to_string(),
        "MigrateBatch(term 1, max 4) has no queued actor to move"
    );
    // With a queued actor it commits both moves.
    assert_eq!(execute(&queued, &meta, &batch).unwrap().events.len(), 2);

    // The primary's Agent proposes a batch on the snapshot with the queue...
    let mut agent = Driven::new(Agent::new(NodeId(1), 1, Timing::fast(), 0));
    agent.join(0);
    let mut batches = Vec::new();
    for t in 0..=30 {
        agent.handle_timeout(t).unwrap();
        while let Some(out) = agent.poll_proposal() {
            match out.proposal.action {
                Action::Step(Event::SendHeartbeat { .. }) => agent
                    .handle_outcome(t, out.token, ProposalOutcome::Committed { effects: vec![] })
                    .unwrap(),
                Action::MigrateBatch { .. } => batches.push((t, out)),
                Action::Step(_) | Action::PlaceBatch { .. } => {}
            }
        }
        agent
            .handle_snapshot(t, t, queued.clone(), 0, Some(1))
            .unwrap();
        while let Some(out) = agent.poll_proposal() {
            if matches!(out.proposal.action, Action::MigrateBatch { .. }) {
                batches.push((t, out));
            }
        }
    }
    assert_eq!(batches.len(), 1, "{batches:?}");
    let (_, out) = batches[0];
    assert_eq!(
        out.proposal.action,
        Action::MigrateBatch {
            term: 1,
            max: 1_024
        }
    );
    while agent.poll_notification().is_some() {}
    // ...which finds the queue drained: the refusal is not sent again, not reported as a failed
    // proposal, and a fresh snapshot is asked for.
    agent
        .handle_outcome(
            31,
            out.token,
            ProposalOutcome::Refused(ProposalError::NothingToMigrate {
                term: 1,
                max: 1_024,
            }),
        )
        .unwrap();
    let mut proposed = Vec::new();
    while let Some(out) = agent.poll_proposal() {
        proposed.push(out.proposal.action);
    }
    assert_eq!(proposed, vec![]);
    assert!(agent.poll_read());
    let mut notes = Vec::new();
    while let Some(n) = agent.poll_notification() {
        notes.push(n);
    }
    assert_eq!(notes, vec![]);
    // The fresh snapshot shows nothing queued: no batch follows.
    agent.handle_snapshot(32, 32, drained, 0, Some(1)).unwrap();
    let mut proposed = Vec::new();
    while let Some(out) = agent.poll_proposal() {
        proposed.push(out.proposal.action);
    }
    assert_eq!(proposed, vec![]);
}

#[test]
fn the_batches_of_a_drain_go_out_back_to_back_and_a_refusal_ends_the_chain() {
    use membership_core::testing::{accept, leave, place_on};
    use membership_core::{Action, ActorId, Effect};
    // n3 leaves with a1 and a2: both queued; n1 is the primary (term 1).
    let queued = accept(&place_on(&three_active(), 3, [1, 2]), leave(3)).0;
    assert_eq!(queued.queue().len(), 2);
    // The primary's Agent, its heartbeats committing, proposes a batch on the snapshot with the
    // queue (and then none while it is in flight).
    let mut agent = Driven::new(Agent::new(NodeId(1), 1, Timing::fast(), 0));
    agent.join(0);
    let mut batches = Vec::new();
    for t in 0..=30 {
        agent.handle_timeout(t).unwrap();
        agent
            .handle_snapshot(t, t, queued.clone(), 0, Some(1))
            .unwrap();
        while let Some(out) = agent.poll_proposal() {
            match out.proposal.action {
                Action::Step(Event::SendHeartbeat { .. }) => agent
                    .handle_outcome(t, out.token, ProposalOutcome::Committed { effects: vec![] })
                    .unwrap(),
                Action::MigrateBatch { .. } => batches.push(out),
                Action::Step(_) | Action::PlaceBatch { .. } => {}
            }
        }
    }
    assert_eq!(batches.len(), 1, "{batches:?}");
    let first = batches[0];
    assert_eq!(
        first.proposal.action,
        Action::MigrateBatch {
            term: 1,
            max: 1_024
        }
    );
    // The store moved one actor (a store's batch may be smaller than asked): the next batch goes
    // out at once, on the same snapshot, before any read.
    let moved = Effect::ActorActivated {
        actor: ActorId(1),
        node: NodeId(2),
        epoch: 3,
    };
    agent
        .handle_outcome(
            31,
            first.token,
            ProposalOutcome::Committed {
                effects: vec![moved],
            },
        )
        .unwrap();
    let second = agent
        .poll_proposal()
        .expect("a batch that moved actors is followed at once");
    assert_eq!(second.proposal.action, first.proposal.action);
    assert_ne!(second.proposal.id, first.proposal.id);
    assert_eq!(agent.poll_proposal(), None);
    // The queue was drained meanwhile: the refusal ends the chain; nothing more goes out until a
    // snapshot read after it shows something queued.
    agent
        .handle_outcome(
            32,
            second.token,
            ProposalOutcome::Refused(ProposalError::NothingToMigrate {
                term: 1,
                max: 1_024,
            }),
        )
        .unwrap();
    assert_eq!(agent.poll_proposal(), None);
    assert!(agent.poll_read());
    agent.handle_timeout(33).unwrap();
    let mut after = Vec::new();
    while let Some(out) = agent.poll_proposal() {
        after.push(out.proposal.action);
    }
    assert!(
        !after
            .iter()
            .any(|a| matches!(a, Action::MigrateBatch { .. })),
        "{after:?}"
    );
    // A fresh snapshot that still shows a queued actor starts a batch again.
    agent.handle_snapshot(34, 34, queued, 0, Some(1)).unwrap();
    let mut again = Vec::new();
    while let Some(out) = agent.poll_proposal() {
        again.push(out.proposal.action);
    }
    assert!(again.contains(&first.proposal.action), "{again:?}");
}

#[test]
fn a_zombie_of_a_leaving_node_fences_for_good_when_its_slot_has_a_newer_incarnation() {
    use membership_core::testing::{accept, actor, leave, place_on};
    // n3 (incarnation 2) is Leaving with a1 (epoch 1) and a2 (epoch 2) still placed on it: it
    // needs no lease, a fresh snapshot is enough, and it proposes nothing.
    let state = accept(&place_on(&three_active(), 3, [1, 2]), leave(3)).0;
    let mut agent = Driven::new(Agent::new(NodeId(3), 2, Timing::fast(), 0));
    agent.join(0);
    let started = live(&mut agent, (0, 100), &state, Some(2), true);
    assert_eq!(
        started,
        vec![
            (0, Decision::Unfence),
            (
                FAST_HANDOFF_MS,
                Decision::Activate {
                    actor: actor(1),
                    epoch: 1
                }
            ),
            (
                FAST_HANDOFF_MS,
                Decision::Activate {
                    actor: actor(2),
                    epoch: 2
                }
            ),
        ]
    );
    // A replacement claimed the slot (incarnation 3): the first snapshot that shows it fences
    // this process and stops everything...
    while agent.poll_notification().is_some() {}
    let fenced = live(&mut agent, (101, 101), &state, Some(3), true);
    assert_eq!(
        fenced,
        vec![
            (101, Decision::Fence),
            (
                101,
                Decision::Deactivate {
                    actor: actor(1),
                    epoch: 1
                }
            ),
            (
                101,
                Decision::Deactivate {
                    actor: actor(2),
                    epoch: 2
                }
            ),
        ]
    );
    assert_eq!(
        agent.poll_notification(),
        Some(Notification::Fenced {
            reason: FenceReason::Superseded
        })
    );
    // ...for good: fresh snapshots (even one without the slot) never unfence it.
    assert_eq!(live(&mut agent, (102, 400), &state, Some(3), true), vec![]);
    assert_eq!(live(&mut agent, (401, 500), &state, None, true), vec![]);
    assert!(agent.is_fenced());
    assert!(!agent.may_serve(actor(1), 500));
    // The slot's own or an older incarnation is no reason to fence.
    let mut own = Driven::new(Agent::new(NodeId(3), 2, Timing::fast(), 0));
    own.join(0);
    assert_eq!(live(&mut own, (0, 100), &state, Some(2), true), started);
    assert_eq!(live(&mut own, (101, 200), &state, Some(1), true), vec![]);
    assert!(own.may_serve(actor(1), 200));
}

#[test]
fn an_actor_that_comes_from_a_failed_node_waits_the_handoff() {
    use membership_core::testing::{actor, apply, fail, migrate, place_on, voted_out};
    // a1 on n3; n3 is voted out by n1 and n2, declared failed, and a1 migrates.
    let before = apply(&place_on(&three_active(), 3, [1]), &voted_out(3, &[1, 2]));
    let after = apply(&before, &[fail(3), migrate(1, 1)]);
    assert_eq!(
        after.node(NodeId(3)).map(|r| r.status),
        Some(NodeStatus::Failed)
    );
    let placement = after.placement(actor(1)).unwrap();
    let target = placement.node;
    assert_ne!(target, NodeId(3));
    let mut agent = Driven::new(Agent::new(target, 1, Timing::fast(), 0));
    agent.join(0);
    // (An Active node unfences once its first heartbeat, at 25 ms, committed.)
    assert_eq!(
        live(&mut agent, (0, 50), &before, Some(1), true),
        vec![(25, Decision::Unfence)]
    );
    // The node before n3 may still serve a1 (a chain of moves), so a Failed previous holder is
    // no reason to activate at once: the wait counts from the first snapshot placing it here.
    assert_eq!(
        live(&mut agent, (51, 300), &after, Some(1), true),
        vec![(
            51 + FAST_HANDOFF_MS,
            Decision::Activate {
                actor: actor(1),
                epoch: placement.epoch
            }
        )]
    );
}

#[test]
fn an_actor_placed_here_while_fenced_waits_the_handoff_after_the_unfence() {
    use membership_core::testing::{actor, place_on};
    let state = place_on(&three_active(), 2, [1]);
    let mut agent = Driven::new(Agent::new(NodeId(2), 1, Timing::fast(), 0));
    agent.join(0);
    let a1 = Decision::Activate {
        actor: actor(1),
        epoch: 1,
    };
    assert_eq!(
        live(&mut agent, (0, 150), &state, Some(1), true),
        vec![(25, Decision::Unfence), (25 + FAST_HANDOFF_MS, a1)]
    );
    // The store refuses heartbeats from 301: the lease (75 ms from the last heartbeat that
    // committed, sent at 300) runs out and the node fences itself.
    assert_eq!(
        live(&mut agent, (151, 300), &state, Some(1), true)
            .into_iter()
            .chain(live(&mut agent, (301, 500), &state, Some(1), false))
            .collect::<Vec<_>>(),
        vec![
            (375, Decision::Fence),
            (
                375,
                Decision::Deactivate {
                    actor: actor(1),
                    epoch: 1
                }
            ),
        ]
    );
    // Heartbeats commit again: the node unfences, and a1, still placed here with the same
    // epoch, is activated only after a whole hand-off wait (not at the unfence).
    let resumed = live(&mut agent, (501, 700), &state, Some(1), true);
    let unfenced_at = resumed[0].0;
    assert_eq!(
        resumed,
        vec![
            (unfenced_at, Decision::Unfence),
            (unfenced_at + FAST_HANDOFF_MS, a1)
        ]
    );
}

#[test]
fn no_deadline_is_due_after_handle_timeout_while_a_retry_waits() {
    use membership_core::{Action, Config};
    // n1 proposes NodeJoin (it bootstraps) at 1; its outcome, unknown, arrives at 600, after
    // the abandon deadline (1 + 4 x 125 ms = 501): a retry waits until 610.
    let mut agent = Driven::new(Agent::new(NodeId(1), 1, Timing::fast(), 0));
    agent.join(0);
    agent
        .handle_snapshot(1, 0, State::initial(Config::fixed(3).unwrap()), 0, Some(1))
        .unwrap();
    let first = agent.poll_proposal().unwrap();
    assert_eq!(
        first.proposal.action,
        Action::Step(Event::NodeJoin { node: NodeId(1) })
    );
    assert_eq!(agent.poll_proposal(), None);
    agent
        .handle_outcome(600, first.token, ProposalOutcome::Unknown)
        .unwrap();
    agent.handle_timeout(600).unwrap();
    // Before the fix the abandon deadline, 501, was asked for again and again.
    assert_eq!(agent.poll_timeout(), Some(610));
    assert_eq!(agent.poll_proposal(), None);
    agent.handle_timeout(610).unwrap();
    assert_eq!(agent.poll_proposal(), Some(first));
    // The retry gets no outcome either: it is given up 500 ms after the retry was sent.
    while agent.poll_notification().is_some() {}
    for t in 611..1_110 {
        agent.handle_timeout(t).unwrap();
        assert!(agent.poll_timeout().is_some_and(|at| at > t));
    }
    assert_eq!(agent.poll_notification(), None);
    agent.handle_timeout(1_110).unwrap();
    assert_eq!(
        agent.poll_notification(),
        Some(Notification::ProposalFailed {
            action: "NodeJoin(n1)".to_string(),
            reason: "gave up: no outcome".to_string()
        })
    );
}

#[test]
fn a_submitted_proposal_is_sent_again_while_unknown_and_its_result_is_replied_once() {
    use membership_core::{RequestError, REQUESTS_MAX, REQUEST_RETRIES_MAX};
    let mut agent = Agent::new(NodeId(1), 1, Timing::fast(), 0);
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    assert_eq!(outputs, vec![Output::Read]);
    let deadline = agent.poll_timeout();
    let event = Event::NodeJoin { node: NodeId(1) };
    let id = agent.submit(event).unwrap();
    let mut sent = Vec::new();
    drain(&mut agent, &mut sent);
    let [Output::Propose(first)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(first.proposal.id, id);
    // Every unknown outcome sends the same proposal again at once, up to the bound...
    for _ in 0..REQUEST_RETRIES_MAX {
        agent
            .handle_outcome(5, first.token, ProposalOutcome::Unknown)
            .unwrap();
        let mut again = Vec::new();
        drain(&mut agent, &mut again);
        assert_eq!(again, vec![Output::Propose(*first)]);
    }
    // ...then the result is replied, and a snapshot is asked for; the timers never moved.
    agent
        .handle_outcome(6, first.token, ProposalOutcome::Unknown)
        .unwrap();
    let mut last = Vec::new();
    drain(&mut agent, &mut last);
    assert_eq!(
        last,
        vec![
            Output::Read,
            Output::Reply {
                id,
                result: Err(RequestError::Unknown)
            }
        ]
    );
    assert_eq!(agent.poll_timeout(), deadline);
    // A late outcome for it is stale.
    agent
        .handle_outcome(7, first.token, ProposalOutcome::Unknown)
        .unwrap();
    assert_eq!(agent.poll_output(), None);
    // The requests waiting are bounded.
    for _ in 0..REQUESTS_MAX {
        agent.submit(event).unwrap();
    }
    assert!(agent.submit(event).is_err());
}

#[test]
fn the_drain_runs_proposals_probes_the_read_decisions_then_notifications() {
    let state = three_active();
    let mut agent = Agent::new(NodeId(1), 1, Timing::fast(), 0);
    agent.join(0);
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    agent
        .handle_snapshot(0, 0, state.clone(), 0, Some(1))
        .unwrap();
    agent.handle_timeout(0).unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    let rank = |o: &Output| match o {
        Output::Propose(_) => 0,
        Output::Probe(_) => 1,
        Output::Read => 2,
        Output::Decide(_) => 3,
        Output::Notify(_) => 4,
        Output::Reply { .. } => 5,
        Output::Placed { .. } => 6,
    };
    let ranks: Vec<u8> = outputs.iter().map(rank).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{outputs:?}");
    assert!(ranks.contains(&0) && ranks.contains(&1), "{outputs:?}");
    assert_eq!(agent.poll_output(), None);
}

#[test]
fn a_serving_permit_carries_the_epoch_and_ends_at_the_earlier_of_lease_and_snapshot_age() {
    use membership_core::testing::{actor, place_on};
    let state = place_on(&three_active(), 1, [1]);
    let epoch = state.placement(actor(1)).unwrap().epoch;
    let mut agent = Driven::new(Agent::new(NodeId(1), 1, Timing::fast(), 0));
    agent.join(0);
    live(&mut agent, (0, 200), &state, Some(1), true);
    // Served since the hand-off wait; the last snapshot was read at 200 and the last heartbeat
    // (sent at 200) committed: both end at 200 + lease (75 ms).
    let permit = agent.permit(actor(1), 200).unwrap();
    assert_eq!(
        (permit.actor, permit.epoch, permit.valid_until_ms),
        (actor(1), epoch, 275)
    );
    assert!(agent.may_serve(actor(1), 274));
    assert_eq!(agent.permit(actor(1), 274), Some(permit));
    assert_eq!(agent.permit(actor(1), 275), None);
    assert!(!agent.may_serve(actor(1), 275));
    // An actor not activated here has no permit.
    assert_eq!(agent.permit(actor(2), 200), None);
    // Heartbeats keep committing but no snapshot arrives: the snapshot's age (read at 200),
    // not the lease, ends the permit.
    let mut fresh_lease = agent.clone_agent();
    for t in 201..=240 {
        fresh_lease.handle_timeout(t).unwrap();
        while let Some(out) = fresh_lease.poll_proposal() {
            fresh_lease
                .handle_outcome(t, out.token, ProposalOutcome::Committed { effects: vec![] })
                .unwrap();
        }
    }
    let permit = fresh_lease.permit(actor(1), 240).unwrap();
    assert_eq!(permit.valid_until_ms, 275);
    assert_eq!(fresh_lease.permit(actor(1), 275), None);
    // Heartbeats stop committing while snapshots stay fresh: the lease, not the snapshot,
    // ends the permit (the last committed heartbeat was sent at 200).
    live(&mut agent, (201, 260), &state, Some(1), false);
    let permit = agent.permit(actor(1), 260).unwrap();
    assert_eq!(permit.valid_until_ms, 275);
    // Once the lease has run out the node fences itself: no permit, whatever the time.
    live(&mut agent, (261, 280), &state, Some(1), false);
    assert!(agent.is_fenced());
    assert_eq!(agent.permit(actor(1), 280), None);
}

/// n1's Agent, Active on `state` (three Active nodes), with its first outputs drained.
fn active_agent(state: &State) -> Agent {
    let mut agent = Agent::new(NodeId(1), 1, Timing::fast(), 0);
    agent.join(0);
    agent
        .handle_snapshot(0, 0, state.clone(), 0, Some(1))
        .unwrap();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    agent
}

fn three_active_with_room_for(actors_max: u64) -> State {
    let config = membership_core::Config::fixed(3).unwrap();
    membership_core::testing::run(
        config.with_actors_max(actors_max).unwrap(),
        &membership_core::testing::THREE_ACTIVE,
    )
}

fn refused_place(guard: membership_core::Guard) -> membership_core::RequestError {
    membership_core::RequestError::Refused(ProposalError::Refused(
        membership_core::testing::refusal(membership_core::ActionName::PlaceActor, guard),
    ))
}

#[test]
fn a_placement_the_snapshot_refuses_is_answered_at_once_and_dropped() {
    use membership_core::testing::{accept, place};
    use membership_core::Guard;
    let full = accept(&three_active_with_room_for(1), place(1)).0;
    let mut agent = active_agent(&full);
    agent.place(actor(2), 1).unwrap();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    assert_eq!(
        outputs,
        vec![Output::Placed {
            actor: actor(2),
            result: Err(refused_place(Guard::RegistryFull { actors_max: 1 }))
        }]
    );
    // Room frees: the refused request is never proposed.
    let room = accept(&full, Event::RemoveActor { actor: actor(1) }).0;
    agent.handle_snapshot(2, 2, room, 0, Some(1)).unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::Propose(p) if p.proposal.action.to_string().contains("PlaceActor"))),
        "{outputs:?}"
    );
}

#[test]
fn a_refused_placement_does_not_hold_up_the_next_and_a_commit_is_answered_with_its_placement() {
    use membership_core::testing::{accept, place};
    use membership_core::{Action, Effect, Placement};
    let one = accept(&three_active_with_room_for(2), place(1)).0;
    let holder = one.placement(actor(1)).unwrap().node;
    let mut agent = active_agent(&one);
    agent.place(actor(1), 1).unwrap();
    agent.place(actor(3), 1).unwrap();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    let [Output::Propose(sent), Output::Placed { actor: a, result }] = outputs.as_slice() else {
        panic!("{outputs:?}")
    };
    assert_eq!(sent.proposal.action, Action::Step(place(3)));
    assert_eq!(*a, actor(1));
    // Placing is idempotent: an actor already placed is answered with its placement at once.
    assert_eq!(*result, Ok(one.placement(actor(1)).unwrap()));
    assert_eq!(result.as_ref().map(|p| p.node), Ok(holder));
    let effects = vec![Effect::ActorActivated {
        actor: actor(3),
        node: NodeId(2),
        epoch: 2,
    }];
    agent
        .handle_outcome(3, sent.token, ProposalOutcome::Committed { effects })
        .unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert_eq!(
        outputs,
        vec![
            Output::Read,
            Output::Placed {
                actor: actor(3),
                result: Ok(Placement {
                    node: NodeId(2),
                    epoch: 2
                })
            }
        ]
    );
}

#[test]
fn a_placement_the_store_refuses_is_answered_and_never_proposed_again() {
    use membership_core::testing::place;
    use membership_core::{Action, Guard};
    let room = three_active_with_room_for(1);
    let mut agent = active_agent(&room);
    agent.place(actor(2), 1).unwrap();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    let [Output::Propose(sent)] = outputs.as_slice() else {
        panic!("{outputs:?}")
    };
    assert_eq!(sent.proposal.action, Action::Step(place(2)));
    // Another node filled the registry meanwhile: the store refuses it.
    let error = ProposalError::Refused(membership_core::testing::refusal(
        membership_core::ActionName::PlaceActor,
        Guard::RegistryFull { actors_max: 1 },
    ));
    agent
        .handle_outcome(3, sent.token, ProposalOutcome::Refused(error.clone()))
        .unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert_eq!(
        outputs,
        vec![
            Output::Read,
            Output::Notify(Notification::ProposalFailed {
                action: "PlaceActor(a2)".to_string(),
                reason: error.to_string(),
            }),
            Output::Placed {
                actor: actor(2),
                result: Err(membership_core::RequestError::Refused(error))
            }
        ]
    );
    // The next snapshot has room again: nothing is proposed for it.
    agent.handle_snapshot(4, 4, room, 0, Some(1)).unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert!(
        !outputs.iter().any(
            |o| matches!(o, Output::Propose(p) if p.proposal.action == Action::Step(place(2)))
        ),
        "{outputs:?}"
    );
}

#[test]
fn a_full_place_queue_is_a_typed_error_and_a_cancelled_request_is_dropped() {
    use membership_core::{PlaceQueueFull, PLACE_QUEUE_MAX};
    // Not Active: requests wait in the queue.
    let mut agent = Agent::new(NodeId(1), 1, Timing::fast(), 0);
    for a in 0..PLACE_QUEUE_MAX {
        agent.place(actor(u64::try_from(a).unwrap()), 0).unwrap();
    }
    assert_eq!(agent.place(actor(1), 0), Err(PlaceQueueFull));
    assert!(agent.cancel_place(actor(7)));
    assert!(!agent.cancel_place(actor(7)));
    agent.place(actor(1), 0).unwrap();
}

/// Regression (the etcd fault test `leader_killed_with_proposals_in_flight`): a placement whose
/// store answer is AlreadyPlaced (an earlier attempt committed, or another node placed it) is
/// answered with the placement from the next snapshot, never with the refusal: placing is
/// idempotent, so a caller told Unknown may simply place again.
#[test]
fn a_placement_the_store_finds_already_placed_is_answered_with_its_placement() {
    use membership_core::testing::{accept, place};
    use membership_core::{Action, Guard};
    let room = three_active_with_room_for(4);
    let mut agent = active_agent(&room);
    agent.place(actor(2), 1).unwrap();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    let [Output::Propose(sent)] = outputs.as_slice() else {
        panic!("{outputs:?}")
    };
    assert_eq!(sent.proposal.action, Action::Step(place(2)));
    let placed = accept(&room, place(2)).0;
    let placement = placed.placement(actor(2)).unwrap();
    let error = ProposalError::Refused(membership_core::testing::refusal(
        membership_core::ActionName::PlaceActor,
        Guard::AlreadyPlaced {
            actor: actor(2),
            node: placement.node,
        },
    ));
    agent
        .handle_outcome(3, sent.token, ProposalOutcome::Refused(error))
        .unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert!(
        !outputs.iter().any(|o| matches!(o, Output::Placed { .. })),
        "{outputs:?}"
    );
    // The next snapshot, read after the outcome, shows it placed: answered with its placement,
    // and nothing is proposed again.
    agent.handle_snapshot(4, 4, placed, 0, Some(1)).unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert!(
        outputs.contains(&Output::Placed {
            actor: actor(2),
            result: Ok(placement)
        }),
        "{outputs:?}"
    );
    assert!(
        !outputs.iter().any(
            |o| matches!(o, Output::Propose(p) if p.proposal.action == Action::Step(place(2)))
        ),
        "{outputs:?}"
    );
}

/// Issue 19: requests queued together go out as one PlaceBatch (up to `PLACE_BATCH_MAX`); the
/// commit answers each actor it placed, and an actor it skipped (placed meanwhile) goes back to
/// the queue and is answered from the next snapshot, never proposed again.
#[test]
fn requests_queued_together_are_placed_by_one_batch_and_each_is_answered() {
    use membership_core::testing::{accept, place};
    use membership_core::{Action, ActorBatch, Effect, Placement};
    let room = three_active_with_room_for(10);
    let mut agent = active_agent(&room);
    // a9 goes out alone (nothing else is queued); a1, a2 and a3 queue behind it.
    agent.place(actor(9), 1).unwrap();
    let mut outputs: Vec<Output> = Vec::new();
    drain(&mut agent, &mut outputs);
    let [Output::Propose(first)] = outputs.as_slice() else {
        panic!("{outputs:?}")
    };
    assert_eq!(first.proposal.action, Action::Step(place(9)));
    for a in [1, 2, 3] {
        agent.place(actor(a), 1).unwrap();
    }
    let nine = Effect::ActorActivated {
        actor: actor(9),
        node: NodeId(1),
        epoch: 1,
    };
    agent
        .handle_outcome(
            2,
            first.token,
            ProposalOutcome::Committed {
                effects: vec![nine],
            },
        )
        .unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert_eq!(outputs[0], Output::Read, "{outputs:?}");
    // The snapshot read after that outcome shows a9: the three queued requests go out at once.
    let room = accept(&room, place(9)).0;
    agent
        .handle_snapshot(3, 3, room.clone(), 0, Some(1))
        .unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    let Some(Output::Propose(sent)) = outputs.iter().find(|o| matches!(o, Output::Propose(_)))
    else {
        panic!("{outputs:?}")
    };
    assert_eq!(
        sent.proposal.action,
        Action::PlaceBatch {
            actors: ActorBatch::new(&[actor(1), actor(2), actor(3)]).unwrap()
        }
    );
    // The store placed a1 and a3; a2 had been placed meanwhile by another node.
    let effects = vec![
        Effect::ActorActivated {
            actor: actor(1),
            node: NodeId(2),
            epoch: 3,
        },
        Effect::ActorActivated {
            actor: actor(3),
            node: NodeId(3),
            epoch: 4,
        },
    ];
    agent
        .handle_outcome(4, sent.token, ProposalOutcome::Committed { effects })
        .unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert_eq!(
        outputs,
        vec![
            Output::Read,
            Output::Placed {
                actor: actor(1),
                result: Ok(Placement {
                    node: NodeId(2),
                    epoch: 3
                })
            },
            Output::Placed {
                actor: actor(3),
                result: Ok(Placement {
                    node: NodeId(3),
                    epoch: 4
                })
            },
        ]
    );
    let placed = accept(&room, place(2)).0;
    let placement = placed.placement(actor(2)).unwrap();
    agent.handle_snapshot(5, 5, placed, 0, Some(1)).unwrap();
    outputs.clear();
    drain(&mut agent, &mut outputs);
    assert!(
        outputs.contains(&Output::Placed {
            actor: actor(2),
            result: Ok(placement)
        }),
        "{outputs:?}"
    );
    assert!(
        !outputs.iter().any(
            |o| matches!(o, Output::Propose(p) if p.proposal.action.to_string().contains("Place"))
        ),
        "{outputs:?}"
    );
}

/// Registry v2, found by the simulation (nodes lost for good): the only member dies for good
/// while the other nodes are Joining, cut off from it in the registry. Nobody is left to
/// declare it, and a joiner reaches no member to join through. The Joining Agents open rounds
/// and declare the silent member on the registry's evidence; then one bootstraps the cluster
/// (NodeJoinComplete with no node Active) and the other joins it.
#[test]
fn joiners_carry_on_when_the_last_member_is_lost_for_good() {
    let mut w = World::new(3, timing());
    // Freeze n2 and n3 at once (their NodeJoin is on its way) and let n1 bootstrap alone.
    for i in 2..=3 {
        let pid = w.current(NodeId(i));
        w.paused.insert(pid);
    }
    w.run_for(500);
    assert_eq!(w.status(1), NodeStatus::Active);
    // n2 and n3 ask to join, and the registry records n1 cut off from them (as n1's probes
    // reported), so neither can complete its join through n1.
    for i in 2..=3 {
        for event in [
            Event::NodeJoin { node: NodeId(i) },
            Event::CreatePartition {
                a: NodeId(1),
                b: NodeId(i),
            },
        ] {
            w.state = membership_core::step(&w.state, &event).unwrap().0;
        }
        assert_eq!(w.status(i), NodeStatus::Joining);
    }
    // n1 dies for good; n2 and n3 resume.
    let n1 = w.current(NodeId(1));
    w.dead.insert(n1);
    for i in 2..=3 {
        let pid = w.current(NodeId(i));
        w.resume(pid);
    }
    w.run_for(5_000);
    assert!(w
        .committed
        .contains(&Event::MarkNodeFailed { node: NodeId(1) }));
    assert_eq!(w.status(1), NodeStatus::Failed);
    assert_eq!(w.status(2), NodeStatus::Active);
    assert_eq!(w.status(3), NodeStatus::Active);
    assert!(w.primary().is_some_and(|p| p != NodeId(1)));
}

/// A fenced node unfences on a snapshot read after the first heartbeat committed since the
/// fence, though a later heartbeat committed before the snapshot arrived. A snapshot that takes
/// longer than a heartbeat interval to arrive (a registry cache whose change feed lags) is
/// always read before the latest heartbeat: with the latest one alone, the node stayed fenced
/// for good (found by the simulation with registry caches in the loop, seed 273).
#[test]
fn a_snapshot_read_after_the_first_heartbeat_since_the_fence_unfences_though_a_later_one_committed_first(
) {
    let state = three_active();
    let mut agent = Driven::new(Agent::new(NodeId(1), 1, Timing::fast(), 0));
    agent.join(0);
    assert!(agent.is_fenced());
    // The first snapshot (read at 0) shows it Active; heartbeats commit as they go out; no
    // snapshot arrives after it until 60 ms.
    agent
        .handle_snapshot(0, 0, state.clone(), 0, Some(1))
        .unwrap();
    let mut commits = Vec::new();
    for t in 1..=60 {
        agent.handle_timeout(t).unwrap();
        while let Some(out) = agent.poll_proposal() {
            if matches!(
                out.proposal.action,
                membership_core::Action::Step(Event::SendHeartbeat { .. })
            ) {
                let committed = ProposalOutcome::Committed { effects: vec![] };
                agent.handle_outcome(t, out.token, committed).unwrap();
                commits.push(t);
            }
        }
    }
    assert_eq!(commits, vec![1, 26, 51]);
    let first = commits[0];
    while agent.poll_decision().is_some() {}
    // A snapshot read before the first commit does not unfence...
    agent
        .handle_snapshot(60, first - 1, state.clone(), 0, Some(1))
        .unwrap();
    assert!(agent.is_fenced());
    assert_eq!(agent.poll_decision(), None);
    // ...one read after it (and before the latest) does.
    agent.handle_snapshot(61, first, state, 0, Some(1)).unwrap();
    let mut decisions = Vec::new();
    while let Some(d) = agent.poll_decision() {
        decisions.push(d);
    }
    assert_eq!(decisions, vec![Decision::Unfence]);
    assert!(!agent.is_fenced());
}

/// `count` nodes configured: n1-n3 Active (n1 in the current configuration), then n4..
/// joined one after the other, `joined` of them: each join gives the configuration a new
/// number, which n1 has not adopted.
fn joined_after_three(count: u16, joined: u16) -> State {
    let config = membership_core::Config::fixed(count).unwrap();
    let mut events = membership_core::testing::THREE_ACTIVE.to_vec();
    events.push(membership_core::testing::sync(1, 1));
    for i in 4..4 + joined {
        events.push(membership_core::testing::join(i));
        events.push(membership_core::testing::join_complete(i));
    }
    membership_core::testing::run(config, &events)
}

/// The times (from `from` to `to`, inclusive) at which the Agent proposed SyncViews, fed a
/// snapshot of `state_at(t)` every millisecond (heartbeats commit, nothing else answers).
fn sync_times(
    agent: &mut Driven,
    (from, to): (u64, u64),
    state_at: impl Fn(u64) -> State,
) -> Vec<u64> {
    let mut times = Vec::new();
    for t in from..=to {
        agent.handle_timeout(t).unwrap();
        agent.poll_read();
        agent
            .handle_snapshot(t, t, state_at(t), 0, Some(1))
            .unwrap();
        while let Some(out) = agent.poll_proposal() {
            match out.proposal.action {
                membership_core::Action::Step(Event::SendHeartbeat { .. }) => {
                    let committed = ProposalOutcome::Committed { effects: vec![] };
                    agent.handle_outcome(t, out.token, committed).unwrap();
                }
                membership_core::Action::Step(Event::SyncViews { a, b }) => {
                    assert_eq!((a, b), (NodeId(1), NodeId(1)));
                    times.push(t);
                }
                _ => {}
            }
        }
    }
    times
}

/// n1's Agent on `state` (n1 in its configuration) from 0 to 9 ms: it adopts nothing.
fn current_until_10(state: &State) -> Driven {
    let mut agent = Driven::new(active_agent(state));
    assert!(sync_times(&mut agent, (1, 9), |_| state.clone()).is_empty());
    agent
}

/// A member adopts a new configuration once it has been unchanged for a heartbeat interval
/// (fast timing: 25 ms), not at the first snapshot that shows it: while many nodes join, every
/// member adopting every configuration was a transaction per member per join.
#[test]
fn a_member_adopts_a_configuration_once_it_has_been_stable_for_an_interval() {
    let before = joined_after_three(4, 0);
    let after = joined_after_three(4, 1);
    assert!(after.view_counter() > before.view_counter());
    assert_eq!(
        before.node(NodeId(1)).unwrap().view_number,
        before.view_counter()
    );
    let mut agent = current_until_10(&before);
    // n4's join is seen at 10: stable from 35.
    let times = sync_times(&mut agent, (10, 60), |_| after.clone());
    assert_eq!(
        times,
        [35],
        "SyncViews proposed at {times:?}, not once at 35"
    );
}

/// While the configuration keeps changing (a join every 20 ms, under the 25 ms interval), a
/// member behind it still adopts the current one once it has been behind for the failure
/// timeout (fast timing: 125 ms).
#[test]
fn a_member_behind_a_configuration_that_keeps_changing_adopts_it_after_the_failure_timeout() {
    let states: Vec<State> = (0..=8).map(|k| joined_after_three(12, k)).collect();
    let mut agent = current_until_10(&states[0]);
    // From 10 on, a new configuration every 20 ms: behind since 10, overdue at 135.
    let state_at = |t: u64| states[usize::try_from((t - 10) / 20 + 1).unwrap()].clone();
    let times = sync_times(&mut agent, (10, 150), state_at);
    assert_eq!(
        times,
        [135],
        "SyncViews proposed at {times:?}, not once at 135"
    );
}

/// While no node holds a valid primary claim a member adopts a new configuration at once: the
/// election that is due asks for the current configuration, and waiting for it to be stable
/// would delay the election (and a failover that needs a primary) by a heartbeat interval.
#[test]
fn a_member_adopts_a_configuration_at_once_while_no_primary_is_valid() {
    let before = joined_after_three(4, 0);
    let mut events = vec![
        membership_core::testing::join(4),
        membership_core::testing::join_complete(4),
    ];
    // n1, the primary, loses its majority (it reaches n1 and n4 of 4) and steps down.
    events.push(membership_core::testing::partition(1, 2));
    events.push(membership_core::testing::partition(1, 3));
    events.push(membership_core::testing::step_down(1));
    let leaderless = membership_core::testing::apply(&before, &events);
    assert!(leaderless.valid_primaries().is_empty());
    assert!(leaderless.view_counter() > before.view_counter());
    let mut agent = current_until_10(&before);
    let times = sync_times(&mut agent, (10, 60), |_| leaderless.clone());
    assert_eq!(
        times,
        [10],
        "SyncViews proposed at {times:?}, not at once (10)"
    );
}
