//! The scenario kit (feature `testing`): short event constructors, configurations, and [`run`],
//! which builds a state by replaying events from `State::initial` through `step`. The core's
//! own tests, the drivers, the stores and the simulation build their scenarios with it.
//!
//! Everything here panics (naming the step) when a scenario does not go as written: it is for
//! tests only.

#[cfg(feature = "checking")]
use crate::checking::{Mode, Mutant};
use crate::{
    step, step_with, ActionName, ActorId, Candidate, Config, Effect, Event, Guard, NodeId,
    NodeRecord, NodeSet, NodeStatus, PlacementStrategy, Refusal, State,
};

/// The refusal of `action` by `guard`.
pub fn refusal(action: ActionName, guard: Guard) -> Refusal {
    Refusal { action, guard }
}

/// `n{i}` moved from `from` to `to`.
pub fn status_changed(i: u16, from: NodeStatus, to: NodeStatus) -> Effect {
    Effect::StatusChanged {
        node: n(i),
        from,
        to,
    }
}

/// `n{i}` adopted `view` with `view_number`.
pub fn view_changed(i: u16, view: &[u16], view_number: u64) -> Effect {
    Effect::ViewChanged {
        node: n(i),
        view: nodes(view),
        view_number,
    }
}

/// Node `n{i}`.
pub fn n(i: u16) -> NodeId {
    NodeId(i)
}

/// The set `{n{i} | i in ids}`.
pub fn nodes(ids: &[u16]) -> NodeSet {
    ids.iter().map(|&i| NodeId(i)).collect()
}

/// The event `join` of the spec, with short node/actor numbers.
pub fn join(i: u16) -> Event {
    Event::NodeJoin { node: n(i) }
}
/// The event `join_complete` of the spec, with short node/actor numbers.
pub fn join_complete(i: u16) -> Event {
    Event::NodeJoinComplete { node: n(i) }
}
/// The event `leave` of the spec, with short node/actor numbers.
pub fn leave(i: u16) -> Event {
    Event::NodeLeave { node: n(i) }
}
/// The event `leave_complete` of the spec, with short node/actor numbers.
pub fn leave_complete(i: u16) -> Event {
    Event::NodeLeaveComplete { node: n(i) }
}
/// The event `heartbeat` of the spec, with short node/actor numbers.
pub fn heartbeat(i: u16) -> Event {
    Event::SendHeartbeat { node: n(i) }
}
/// The event `detect` of the spec, with short node/actor numbers.
pub fn detect(d: u16, t: u16) -> Event {
    Event::DetectFailure {
        detector: n(d),
        target: n(t),
    }
}
/// The event `fail` of the spec, with short node/actor numbers.
pub fn fail(i: u16) -> Event {
    Event::MarkNodeFailed { node: n(i) }
}
/// The event `recover` of the spec, with short node/actor numbers.
pub fn recover(i: u16) -> Event {
    Event::NodeRecover { node: n(i) }
}
/// The event `elect` of the spec, with short node/actor numbers.
pub fn elect(i: u16) -> Event {
    Event::ElectPrimary { node: n(i) }
}
/// The event `step_down` of the spec, with short node/actor numbers.
pub fn step_down(i: u16) -> Event {
    Event::PrimaryStepDown { node: n(i) }
}
/// The event `partition` of the spec, with short node/actor numbers.
pub fn partition(a: u16, b: u16) -> Event {
    Event::CreatePartition { a: n(a), b: n(b) }
}
/// The event `heal` of the spec, with short node/actor numbers.
pub fn heal(a: u16, b: u16) -> Event {
    Event::HealPartition { a: n(a), b: n(b) }
}
/// The event `sync` of the spec, with short node/actor numbers.
pub fn sync(a: u16, b: u16) -> Event {
    Event::SyncViews { a: n(a), b: n(b) }
}
/// `ResetHeartbeats`.
pub const RESET: Event = Event::ResetHeartbeats;

/// Actor `a{i}`.
pub fn actor(i: u64) -> ActorId {
    ActorId(i)
}
/// The event `place` of the spec, with short node/actor numbers.
pub fn place(i: u64) -> Event {
    Event::PlaceActor { actor: actor(i) }
}
/// The event `migrate` of the spec, with short node/actor numbers.
pub fn migrate(i: u64, term: u64) -> Event {
    Event::MigrateActor {
        actor: actor(i),
        term,
    }
}
/// The event `rebalance` of the spec, with short node/actor numbers.
pub fn rebalance(term: u64) -> Event {
    Event::RebalanceActors { term }
}
/// The event `remove` of the spec, with short node/actor numbers.
pub fn remove(i: u64) -> Event {
    Event::RemoveActor { actor: actor(i) }
}

/// A placement strategy that always answers the same node, whether or not it is a candidate:
/// pins a placement in a test, or plays a misbehaving strategy.
#[derive(Clone, Copy, Debug)]
pub struct Always(pub NodeId);

impl PlacementStrategy for Always {
    fn choose(&self, _actor: ActorId, _candidates: &[Candidate]) -> Option<NodeId> {
        Some(self.0)
    }
}

/// A strategy that answers the candidate with the highest node id, whatever the loads.
#[derive(Clone, Copy, Debug)]
pub struct HighestId;

impl PlacementStrategy for HighestId {
    fn choose(&self, _actor: ActorId, candidates: &[Candidate]) -> Option<NodeId> {
        candidates.iter().map(|c| c.node).max()
    }
}

/// Places actors `ids` on `n{i}` one by one (PlaceActor through `step_with` and [`Always`]),
/// each of which must be accepted.
pub fn place_on(state: &State, i: u16, ids: impl IntoIterator<Item = u64>) -> State {
    let mut state = state.clone();
    for id in ids {
        let event = place(id);
        state = match step_with(&state, &event, &Always(n(i))) {
            Ok((next, _)) => next,
            Err(refusal) => panic!("{event} on n{i} refused: {refusal}"),
        };
    }
    state
}

/// Steps every event of `events` from `state`, each of which must be accepted.
pub fn apply(state: &State, events: &[Event]) -> State {
    events
        .iter()
        .fold(state.clone(), |state, &event| accept(&state, event).0)
}

fn must<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("invalid test configuration: {e}"))
}

/// A configuration that must be valid.
#[cfg(feature = "checking")]
pub fn config(mode: Mode, count: u16, max_view: Option<u64>, m: Option<Mutant>) -> Config {
    must(Config::new(mode, count, max_view, m))
}
/// The fixed protocol, unbounded.
pub fn fixed(count: u16) -> Config {
    must(Config::fixed(count))
}
/// The fixed protocol with the checking bound `bound`.
#[cfg(feature = "checking")]
pub fn bounded(count: u16, bound: u64) -> Config {
    must(fixed(count).with_max_view(Some(bound)))
}
/// The reference model.
#[cfg(feature = "checking")]
pub fn reference(count: u16, max_view: u64) -> Config {
    must(Config::reference(count, max_view))
}
/// The reference model, BUGGY.
#[cfg(feature = "checking")]
pub fn buggy(count: u16, max_view: u64) -> Config {
    must(Config::buggy(count, max_view))
}
/// The fixed protocol running `m`.
#[cfg(feature = "checking")]
pub fn mutant(count: u16, m: Mutant) -> Config {
    must(fixed(count).with_mutant(Some(m)))
}

/// `config` with the epoch bound `max_epoch` and, if given, room for `actors_max` actors.
#[cfg(feature = "checking")]
pub fn limited(config: Config, max_epoch: Option<u64>, actors_max: Option<u64>) -> Config {
    let config = must(config.with_max_epoch(max_epoch));
    match actors_max {
        Some(m) => must(config.with_actors_max(m)),
        None => config,
    }
}
/// `config` (of the fixed protocol) running `m`.
#[cfg(feature = "checking")]
pub fn with_mutant(config: Config, m: Mutant) -> Config {
    must(config.with_mutant(Some(m)))
}

/// Replays `events` from `State::initial(config)`, panicking (naming the step) on a refusal.
pub fn run(config: Config, events: &[Event]) -> State {
    let mut state = State::initial(config);
    for (i, event) in events.iter().enumerate() {
        state = match step(&state, event) {
            Ok((next, _)) => next,
            Err(refusal) => panic!("step {} ({event}) refused: {refusal}", i + 1),
        };
    }
    state
}

/// Steps through `events` from the initial state, checking every state and transition
/// invariant on every prefix; the states visited, initial state first.
pub fn run_checked(config: Config, events: &[Event]) -> Vec<State> {
    let mut states = vec![State::initial(config)];
    if let Err(v) = crate::invariants::check_state(&states[0]) {
        panic!("initial state: {v}");
    }
    for (i, event) in events.iter().enumerate() {
        let before = &states[i];
        let after = match step(before, event) {
            Ok((next, _)) => next,
            Err(refusal) => panic!("step {} ({event}) refused: {refusal}", i + 1),
        };
        if let Err(v) = crate::invariants::check_state(&after) {
            panic!("after step {} ({event}): {v}", i + 1);
        }
        if let Err(v) = crate::invariants::check_transition(before, &after) {
            panic!("step {} ({event}): {v}", i + 1);
        }
        states.push(after);
    }
    states
}

/// The record of `n{i}`, which must exist.
pub fn record(state: &State, i: u16) -> NodeRecord {
    match state.node(n(i)) {
        Some(r) => r.clone(),
        None => panic!("n{i} is not a node of this cluster"),
    }
}

/// `events` followed by `more`.
pub fn then(events: &[Event], more: &[Event]) -> Vec<Event> {
    events.iter().chain(more).copied().collect()
}

/// Steps `event`, which must be accepted; the successor and the effects (as a `Vec`, for exact
/// comparisons with `vec![...]`).
pub fn accept(state: &State, event: Event) -> (State, Vec<Effect>) {
    match step(state, &event) {
        Ok((next, effects)) => (next, effects.into_vec()),
        Err(refusal) => panic!("{event} refused: {refusal}"),
    }
}

/// Steps `event`, which must be refused; the refusal.
pub fn refuse(state: &State, event: Event) -> Refusal {
    match step(state, &event) {
        Ok((_, effects)) => panic!("{event} accepted with {effects:?}"),
        Err(refusal) => refusal,
    }
}

/// `n1` bootstraps and `n2..=n{count}` join and complete one after the other: all Active, `n1`
/// primary with term 1.
pub fn all_active(count: u16) -> Vec<Event> {
    let mut events = vec![join(1)];
    for i in 2..=count {
        events.extend([join(i), join_complete(i)]);
    }
    events
}

/// n1 bootstraps, n2 and n3 join and complete: all three Active, n1 primary with term 1 (in
/// every mode). The reference modes: every view {n1, n2, n3}#3. Fixed (registry v2, one
/// configuration): each node holds the configuration it created, n1 {n1}#1, n2 {n1, n2}#2,
/// n3 {n1, n2, n3}#3, until its own SyncViews(n, n).
pub const THREE_ACTIVE: [Event; 5] = [
    Event::NodeJoin { node: NodeId(1) },
    Event::NodeJoin { node: NodeId(2) },
    Event::NodeJoinComplete { node: NodeId(2) },
    Event::NodeJoin { node: NodeId(3) },
    Event::NodeJoinComplete { node: NodeId(3) },
];

/// `core/spec/REFERENCE.md` section 2: n1 bootstraps, n2 joins and completes, n3 joins, n1 and n3 are
/// partitioned, n3 completes through n2 (reference: n1 keeps {n1, n2}#2; fixed: n1 keeps
/// {n1}#1, the configuration it created, until it synchronises).
pub const N3_UNKNOWN_TO_N1: [Event; 6] = [
    Event::NodeJoin { node: NodeId(1) },
    Event::NodeJoin { node: NodeId(2) },
    Event::NodeJoinComplete { node: NodeId(2) },
    Event::NodeJoin { node: NodeId(3) },
    Event::CreatePartition {
        a: NodeId(1),
        b: NodeId(3),
    },
    Event::NodeJoinComplete { node: NodeId(3) },
];

/// A small deterministic generator (SplitMix64) for scenario walks: seeded explicitly, no global
/// randomness, the same sequence on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// The events worth trying in `state`: every membership instance for its nodes, and for each of
/// `actors` PlaceActor, RemoveActor and MigrateActor with the registry's current term, plus
/// RebalanceActors with it.
pub fn candidate_events(state: &State, actors: &[ActorId]) -> Vec<Event> {
    let mut events = Event::all(state.config().node_count());
    let term = state.term_counter();
    for &actor in actors {
        events.push(Event::PlaceActor { actor });
        events.push(Event::RemoveActor { actor });
        events.push(Event::MigrateActor { actor, term });
    }
    events.push(Event::RebalanceActors { term });
    events
}

/// How often a random walk picks an enabled action, relative to the others: the deep actions
/// (detection, failure, recovery, view synchronisation, election, migration) more often than
/// partitions and heartbeats, leaves and removals rarely.
fn walk_weight(action: ActionName) -> usize {
    match action {
        ActionName::NodeLeave | ActionName::RemoveActor | ActionName::RebalanceActors => 1,
        ActionName::HealPartition | ActionName::ResetHeartbeats | ActionName::SendHeartbeat => 2,
        ActionName::CreatePartition | ActionName::NodeLeaveComplete => 2,
        ActionName::NodeRecover | ActionName::PrimaryStepDown | ActionName::PlaceActor => 3,
        ActionName::NodeJoin | ActionName::NodeJoinComplete => 4,
        ActionName::DetectFailure | ActionName::MarkNodeFailed | ActionName::SyncViews => 6,
        ActionName::MigrateActor => 6,
        ActionName::ElectPrimary => 10,
    }
}

/// A random walk of at most `steps` enabled events from `start` (seeded, deterministic): a
/// weighted choice among the enabled actions, then a uniform one among that action's enabled
/// instances. Returns the events taken and the state reached.
pub fn random_walk(
    start: &State,
    actors: &[ActorId],
    seed: u64,
    steps: usize,
) -> (Vec<Event>, State) {
    let mut rng = Rng::new(seed);
    let mut state = start.clone();
    let mut taken = Vec::with_capacity(steps);
    for _ in 0..steps {
        let enabled: Vec<(Event, State)> = candidate_events(&state, actors)
            .into_iter()
            .filter_map(|e| step(&state, &e).ok().map(|(next, _)| (e, next)))
            .collect();
        let mut names: Vec<ActionName> = enabled.iter().map(|(e, _)| e.name()).collect();
        names.sort();
        names.dedup();
        let total: usize = names.iter().map(|&a| walk_weight(a)).sum();
        if total == 0 {
            break;
        }
        let mut ticket = rng.below(total);
        let mut name = names[0];
        for &candidate in &names {
            if ticket < walk_weight(candidate) {
                name = candidate;
                break;
            }
            ticket -= walk_weight(candidate);
        }
        let mut instances: Vec<(Event, State)> = enabled
            .into_iter()
            .filter(|(e, _)| e.name() == name)
            .collect();
        let pick = rng.below(instances.len());
        let (event, next) = instances.swap_remove(pick);
        taken.push(event);
        state = next;
    }
    (taken, state)
}

/// A reachable state of the fixed protocol with `count` nodes and actors `a1..=a{actors}`: half
/// of the seeds start from the whole cluster up ([`all_active`]), then walk `steps` random
/// enabled events.
pub fn reachable(count: u16, actors: u64, seed: u64, steps: usize) -> State {
    let ids: Vec<ActorId> = (1..=actors).map(ActorId).collect();
    let start = if seed % 2 == 0 {
        run(fixed(count), &all_active(count))
    } else {
        State::initial(fixed(count))
    };
    random_walk(&start, &ids, seed, steps).1
}

/// `n{target}` cut off from each of `voters`, then each of them records its detection (its vote):
/// the events that give a failure quorum against `target` when the voters are a majority.
pub fn voted_out(target: u16, voters: &[u16]) -> Vec<Event> {
    let mut events: Vec<Event> = voters.iter().map(|&v| partition(v, target)).collect();
    events.extend(voters.iter().map(|&v| detect(v, target)));
    events
}
