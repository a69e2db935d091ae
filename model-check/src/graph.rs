//! The explicit state graph, explored once for safety and liveness.
//!
//! Breadth-first, level by level. Each state is expanded exactly once (its successors are
//! computed once, on all cores): its state invariants, the transition invariants of every step
//! out of it, and for liveness which property's `Trapped` it is in and which fair action
//! instances are enabled. What is kept is compact:
//!
//! - the index of seen states holds 64-bit fingerprints of bit-packed states (not the states):
//!   12 bytes a slot;
//! - states are kept, bit-packed, only until they are expanded (the frontier);
//! - per state: its breadth-first parent and action (6 bytes), and for liveness its `Trapped`
//!   and fair-enabled bit masks;
//! - edges as integer arrays (4-byte target, 2-byte action), and only the edges liveness can use:
//!   those between two states that are `Trapped` for a common property.
//!
//! States are numbered in breadth-first order, and the numbering does not depend on the number
//! of threads (chunks are expanded in parallel and merged in order), so counterexamples are
//! shortest and the same on every run.
//!
//! Fingerprints: two different states with the same 64-bit fingerprint would be merged. The
//! probability of any such collision among `n` states is at most `n^2 / 2^65` (about 1e-6 for
//! 6 million states); the summary prints the bound, as TLC does.

use crate::model::MembershipModel;
use membership_core::checking::fenced_by_term;
use membership_core::invariants::Liveness;
use membership_core::{
    step, ActorId, Config, Event, Guard, MigrationEntry, MigrationReason, NodeId, NodeRecord,
    NodeSet, NodeStatus, Placement, RegistryFields, State, StateInvariant, TransitionInvariant,
    REGISTRY_FORMAT_VERSION,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The most states the graph holds; beyond it the exploration stops and says so.
pub const GRAPH_STATES_MAX: usize = 200_000_000;

/// States expanded per parallel chunk.
const CHUNK: usize = 16_384;

/// The flag on an edge's action: the step changed the registry's term counter (granted a term).
pub const TERM_CHANGED: u16 = 0x8000;

// ---------------------------------------------------------------------------------------------
// Bit-packed states.

/// The bit layout of the states of one model.
#[derive(Clone, Debug)]
pub struct Codec {
    config: Config,
    nodes: usize,
    actors: Vec<ActorId>,
    node_bits: u32,
    view_bits: u32,
    term_bits: u32,
    epoch_bits: u32,
    words: usize,
}

fn bits_for(max: u64) -> u32 {
    (64 - max.leading_zeros()).max(1)
}

/// Appends bit fields to a word vector, low bits first.
struct Writer<'a> {
    out: &'a mut Vec<u64>,
    current: u64,
    filled: u32,
}

impl Writer<'_> {
    #[inline]
    fn put(&mut self, value: u64, width: u32) {
        assert!(
            width == 64 || value >> width == 0,
            "value {value} does not fit in {width} bits (a bug in the state codec)"
        );
        if self.filled < 64 {
            self.current |= value << self.filled;
        }
        let end = self.filled + width;
        if end >= 64 {
            self.out.push(self.current);
            self.current = if self.filled == 0 || end == 64 {
                0
            } else {
                value >> (64 - self.filled)
            };
            self.filled = end - 64;
        } else {
            self.filled = end;
        }
    }

    /// Pushes the last, partly filled word and pads to `words` words.
    fn finish(self, start: usize, words: usize) {
        if self.filled > 0 {
            self.out.push(self.current);
        }
        self.out.resize(start + words, 0);
    }
}

struct Reader<'a> {
    words: &'a [u64],
    bit: usize,
}

impl Reader<'_> {
    fn get(&mut self, width: u32) -> u64 {
        let word = self.bit / 64;
        let offset = self.bit % 64;
        let mut value = self.words[word] >> offset;
        if offset + width as usize > 64 {
            value |= self.words[word + 1] << (64 - offset);
        }
        self.bit += width as usize;
        if width == 64 {
            value
        } else {
            value & ((1u64 << width) - 1)
        }
    }
}

fn status_code(s: NodeStatus) -> u64 {
    match s {
        NodeStatus::Left => 0,
        NodeStatus::Joining => 1,
        NodeStatus::Active => 2,
        NodeStatus::Leaving => 3,
        NodeStatus::Failed => 4,
    }
}

fn status_of(code: u64) -> NodeStatus {
    match code {
        0 => NodeStatus::Left,
        1 => NodeStatus::Joining,
        2 => NodeStatus::Active,
        3 => NodeStatus::Leaving,
        _ => NodeStatus::Failed,
    }
}

fn reason_code(r: MigrationReason) -> u64 {
    match r {
        MigrationReason::NodeFailed => 0,
        MigrationReason::NodeLeaving => 1,
        MigrationReason::LoadBalancing => 2,
    }
}

fn reason_of(code: u64) -> MigrationReason {
    match code {
        0 => MigrationReason::NodeFailed,
        1 => MigrationReason::NodeLeaving,
        _ => MigrationReason::LoadBalancing,
    }
}

impl Codec {
    /// The layout for `model`'s states: renumbered models need only enough bits for the ranks
    /// (at most `nodes + 1` view numbers and terms, `actors + 1` epochs); bounded ones for the
    /// bounds; anything unbounded gets 64 bits.
    pub fn new(model: &MembershipModel) -> Codec {
        let config = *model.config();
        let nodes = usize::from(config.node_count());
        assert!(
            nodes <= 64,
            "the checker's state codec handles at most 64 nodes"
        );
        let actors = model.actors().to_vec();
        let (view_bits, term_bits, epoch_bits) = if model.renumbers() {
            let ranks = bits_for(nodes as u64 + 1);
            (ranks, ranks, bits_for(actors.len() as u64 + 1))
        } else {
            let view = config.max_view().map_or(64, bits_for);
            (view, view, config.max_epoch().map_or(64, bits_for))
        };
        let node_bits = bits_for(nodes as u64);
        let per_node = 3 + 3 * nodes as u32 + view_bits + 1 + term_bits;
        let per_actor = 1 + node_bits + epoch_bits + 1 + node_bits + 2;
        let total = nodes as u32 * per_node
            + nodes as u32
            + 2 * view_bits.max(term_bits)
            + epoch_bits
            + actors.len() as u32 * per_actor;
        Codec {
            config,
            nodes,
            actors,
            node_bits,
            view_bits,
            term_bits,
            epoch_bits,
            words: (total as usize).div_ceil(64),
        }
    }

    /// Words per state.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Appends the packed form of `state` to `out`.
    pub fn encode(&self, state: &State, out: &mut Vec<u64>) {
        let start = out.len();
        let mut w = Writer {
            out,
            current: 0,
            filled: 0,
        };
        let n = self.nodes as u32;
        let set = |s: &NodeSet| {
            s.low_bits()
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or(u64::MAX)
        };
        for r in state.nodes() {
            w.put(status_code(r.status), 3);
            w.put(set(&r.view), n);
            w.put(r.view_number, self.view_bits);
            w.put(u64::from(r.believes_primary), 1);
            w.put(r.term, self.term_bits);
            w.put(set(&r.partitioned_from), n);
            w.put(set(&r.detected), n);
        }
        w.put(set(state.heartbeats()), n);
        let counters = self.view_bits.max(self.term_bits);
        w.put(state.term_counter(), counters);
        w.put(state.view_counter(), counters);
        w.put(state.epoch_counter(), self.epoch_bits);
        let index = |node: NodeId| node.index().map_or(0, |i| i as u64);
        for &actor in &self.actors {
            match state.placement(actor) {
                Some(p) => {
                    w.put(1, 1);
                    w.put(index(p.node), self.node_bits);
                    w.put(p.epoch, self.epoch_bits);
                }
                None => w.put(0, 1 + self.node_bits + self.epoch_bits),
            }
            match state.queue().get(actor) {
                Some(e) => {
                    w.put(1, 1);
                    w.put(index(e.from), self.node_bits);
                    w.put(reason_code(e.reason), 2);
                }
                None => w.put(0, 1 + self.node_bits + 2),
            }
        }
        w.finish(start, self.words);
    }

    /// The state packed in `words`.
    pub fn decode(&self, words: &[u64]) -> State {
        let mut r = Reader { words, bit: 0 };
        let n = self.nodes as u32;
        let set = |bits: u64| NodeSet::from_low_bits(u128::from(bits));
        let mut nodes = Vec::with_capacity(self.nodes);
        for _ in 0..self.nodes {
            nodes.push(NodeRecord {
                status: status_of(r.get(3)),
                view: set(r.get(n)),
                view_number: r.get(self.view_bits),
                believes_primary: r.get(1) == 1,
                term: r.get(self.term_bits),
                partitioned_from: set(r.get(n)),
                detected: set(r.get(n)),
            });
        }
        let heartbeats = set(r.get(n));
        let counters = self.view_bits.max(self.term_bits);
        let term_counter = r.get(counters);
        let view_counter = r.get(counters);
        let epoch_counter = r.get(self.epoch_bits);
        let mut placements = BTreeMap::new();
        let mut queue = BTreeMap::new();
        for &actor in &self.actors {
            let placed = r.get(1) == 1;
            let node = NodeId::from_index(r.get(self.node_bits) as usize);
            let epoch = r.get(self.epoch_bits);
            if placed {
                placements.insert(actor, Placement { node, epoch });
            }
            let queued = r.get(1) == 1;
            let from = NodeId::from_index(r.get(self.node_bits) as usize);
            let reason = reason_of(r.get(2));
            if queued {
                queue.insert(actor, MigrationEntry { from, reason });
            }
        }
        let fields = RegistryFields {
            format_version: REGISTRY_FORMAT_VERSION,
            node_count: self.config.node_count(),
            actors_max: self.config.actors_max(),
            nodes,
            heartbeats,
            term_counter,
            view_counter,
            epoch_counter,
            placements,
            queue,
        };
        match State::from_fields_unvalidated(self.config, fields) {
            Ok(state) => state,
            Err(err) => panic!("a packed state does not decode (a bug in the state codec): {err}"),
        }
    }
}

/// The 64-bit fingerprint of a packed state.
pub fn fingerprint(words: &[u64]) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        z = (z ^ (z >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        z ^ (z >> 33)
    }
    let mut h = 0x243F_6A88_85A3_08D3u64 ^ (words.len() as u64);
    for &w in words {
        h = mix(h.rotate_left(29) ^ mix(w.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    h
}

/// Fingerprint -> state number, open addressing (12 bytes a slot, at most 3/4 full).
struct Index {
    keys: Vec<u64>,
    ids: Vec<u32>,
    len: usize,
}

impl Index {
    fn new() -> Index {
        Index {
            keys: vec![0; 1 << 16],
            ids: vec![0; 1 << 16],
            len: 0,
        }
    }

    /// The number of `fp`, inserting it as `id` if it is new (then `true`).
    fn get_or_insert(&mut self, fp: u64, id: u32) -> (u32, bool) {
        let fp = fp.max(1); // 0 marks an empty slot
        if 4 * (self.len + 1) > 3 * self.keys.len() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut slot = (fp as usize) & mask;
        loop {
            match self.keys[slot] {
                0 => {
                    self.keys[slot] = fp;
                    self.ids[slot] = id;
                    self.len += 1;
                    return (id, true);
                }
                k if k == fp => return (self.ids[slot], false),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let capacity = self.keys.len() * 2;
        let keys = std::mem::replace(&mut self.keys, vec![0; capacity]);
        let ids = std::mem::replace(&mut self.ids, vec![0; capacity]);
        let mask = capacity - 1;
        for (k, id) in keys.into_iter().zip(ids) {
            if k != 0 {
                let mut slot = (k as usize) & mask;
                while self.keys[slot] != 0 {
                    slot = (slot + 1) & mask;
                }
                self.keys[slot] = k;
                self.ids[slot] = id;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What liveness needs to know.

/// The liveness properties, the fair action instances they assume, and how to find them among
/// the model's events.
#[derive(Clone, Debug)]
pub struct Fairness {
    /// Every liveness property instance (bit `p` of a state's trapped mask is `properties[p]`).
    pub properties: Vec<Liveness>,
    /// Every fair action instance of any property (bit `f` of the enabled masks).
    pub instances: Vec<Event>,
    /// Per property, the bits of the instances it assumes weakly fair.
    pub assumed: Vec<u64>,
    /// Per event of the model, its fair instance bit, if it is one.
    pub bit_of_event: Vec<Option<u8>>,
    /// The instances that stand for "MigrateActor(a, t) for every t" in a renumbered model
    /// whose protocol fences migration by the term: such an instance is enabled only while `t`
    /// is the current term, so on a cycle that grants a new term it is never enabled forever
    /// and weak fairness asks nothing of it.
    pub vacuous_on_term_change: u64,
}

impl Fairness {
    /// The liveness properties of `model` and their fairness assumptions (`Liveness::fairness`:
    /// the spec's `Fairness`, every SyncViews(a, b) (a <= b; the fixed protocol enables only
    /// SyncViews(n, n)), PrimaryStepDown(n) and MigrateActor(a, t) instance, plus what a
    /// property itself assumes, e.g. EventualFailureDeclaration(n) the detections of `n` and
    /// MarkNodeFailed(n)). In a renumbered model, MigrateActor(a, t) for all terms `t` is the
    /// one instance MigrateActor(a, current).
    pub fn of(model: &MembershipModel) -> Fairness {
        let config = model.config();
        let count = config.node_count();
        let properties = Liveness::all(count, model.actors());
        let max_term = if model.renumbers() {
            1
        } else {
            config.max_view().unwrap_or(0)
        };
        let per_property: Vec<Vec<Event>> = properties
            .iter()
            .map(|property| {
                property
                    .fairness(count, model.actors(), max_term)
                    .into_iter()
                    .map(|e| match e {
                        Event::MigrateActor { actor, .. } if model.renumbers() => {
                            Event::MigrateActor {
                                actor,
                                term: crate::model::CURRENT_TERM,
                            }
                        }
                        other => other,
                    })
                    .collect()
            })
            .collect();
        let mut instances: Vec<Event> = Vec::new();
        for e in per_property.iter().flatten() {
            if !instances.contains(e) {
                instances.push(*e);
            }
        }
        assert!(
            instances.len() <= 64,
            "at most 64 fair action instances (this configuration has {})",
            instances.len()
        );
        let bit = |e: &Event| instances.iter().position(|i| i == e);
        let assumed = per_property
            .iter()
            .map(|events| {
                events
                    .iter()
                    .filter_map(bit)
                    .fold(0u64, |mask, b| mask | 1 << b)
            })
            .collect();
        let bit_of_event = model
            .events()
            .iter()
            .map(|e| bit(e).and_then(|b| u8::try_from(b).ok()))
            .collect();
        let vacuous_on_term_change = if model.renumbers() && fenced_by_term(config) {
            instances
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, Event::MigrateActor { .. }))
                .fold(0u64, |mask, (b, _)| mask | 1 << b)
        } else {
            0
        };
        assert!(properties.len() <= 64, "at most 64 liveness properties");
        Fairness {
            properties,
            instances,
            assumed,
            bit_of_event,
            vacuous_on_term_change,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The graph.

/// How to explore.
#[derive(Clone, Copy, Debug)]
pub struct Explore {
    /// Threads expanding states.
    pub threads: usize,
    /// Expand only states at depth below this (paths of at most this many steps).
    pub depth: Option<usize>,
    /// Keep what liveness needs.
    pub liveness: bool,
    /// The most states to hold.
    pub states_max: usize,
    /// Print a progress line on stderr every few seconds.
    pub progress: bool,
}

/// The explored graph and what the exploration found.
pub struct Graph {
    /// The model's events (edge labels index them).
    pub events: Vec<Event>,
    /// Breadth-first parent of every state but the initial one (state 0): its number.
    parent: Vec<u32>,
    /// ... and the action taken from it.
    parent_label: Vec<u16>,
    /// The first state number of each depth (`level_starts[d]`).
    level_starts: Vec<usize>,
    /// Edges of state `i`: `targets[offsets[i]..offsets[i + 1]]` (liveness only).
    offsets: Vec<u64>,
    targets: Vec<u32>,
    labels: Vec<u16>,
    /// Per state, its trapped mask (bit per liveness property; liveness only).
    pub trapped: Vec<u64>,
    /// Per state, the fair instances enabled there (liveness only).
    pub enabled: Vec<u64>,
    /// Per state, the fair instances refused there only by a checking bound: refused with
    /// `BoundReached` and accepted once the bound is lifted (liveness of bounded models only).
    pub only_bound: Vec<u64>,
    /// Per state invariant, the first state violating it.
    pub state_violations: Vec<Option<u32>>,
    /// Per transition invariant, the first (state, event) step violating it.
    pub transition_violations: Vec<Option<(u32, u16)>>,
    /// Transitions generated (edges of the whole graph, including those not kept).
    pub generated: usize,
    /// Transitions that declare failed a node hosting an actor (MarkNodeFailed of a node with a
    /// placement): shows that the configuration exercises failure handling with actors.
    pub declared_hosts: usize,
    /// The largest depth reached.
    pub max_depth: usize,
    /// Whether the exploration stopped early (depth limit with states left unexpanded, or the
    /// state limit).
    pub depth_limited: bool,
    /// Whether the exploration stopped at the state limit.
    pub too_large: bool,
    /// Seconds spent.
    pub seconds: f64,
    /// States expanded.
    expanded: usize,
}

/// Per-chunk output of the workers.
#[derive(Default)]
struct Expanded {
    state_violated: Vec<u16>,
    trapped: Vec<u64>,
    enabled: Vec<u64>,
    only_bound: Vec<u64>,
    successors: Vec<u32>,
    fps: Vec<u64>,
    words: Vec<u64>,
    labels: Vec<u16>,
    transition_violated: Vec<u8>,
    declared_hosts: usize,
}

fn trapped_mask(properties: &[Liveness], state: &State) -> u64 {
    properties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.trapped(state))
        .fold(0u64, |mask, (i, _)| mask | 1 << i)
}

struct Context<'a> {
    model: &'a MembershipModel,
    codec: &'a Codec,
    fairness: Option<&'a Fairness>,
    lifted: Config,
    bounded: bool,
}

fn expand(cx: &Context<'_>, words: &[u64]) -> Expanded {
    let w = cx.codec.words();
    let count = words.len() / w;
    let mut out = Expanded::default();
    let events = cx.model.events();
    for chunk in words.chunks(w) {
        let state = cx.codec.decode(chunk);
        debug_assert!({
            let mut again = Vec::new();
            cx.codec.encode(&state, &mut again);
            again == chunk
        });
        let mut violated = 0u16;
        for (i, inv) in StateInvariant::ALL.iter().enumerate() {
            if inv.check(&state).is_err() {
                violated |= 1 << i;
            }
        }
        out.state_violated.push(violated);
        let trapped = cx
            .fairness
            .map_or(0, |f| trapped_mask(&f.properties, &state));
        let (mut enabled, mut only_bound) = (0u64, 0u64);
        let mut successors = 0u32;
        for (label, &event) in events.iter().enumerate() {
            let concrete = cx.model.concrete(&state, event);
            let fair_bit = cx
                .fairness
                .and_then(|f| f.bit_of_event.get(label).copied().flatten());
            match step(&state, &concrete) {
                Ok((next, _)) => {
                    if let Some(b) = fair_bit {
                        enabled |= 1 << b;
                    }
                    if let Event::MarkNodeFailed { node } = concrete {
                        if state.load(node) > 0 {
                            out.declared_hosts += 1;
                        }
                    }
                    let mut tv = 0u8;
                    for (i, inv) in TransitionInvariant::ALL.iter().enumerate() {
                        if inv.check(&state, &next).is_err() {
                            tv |= 1 << i;
                        }
                    }
                    let changed = next.term_counter() != state.term_counter();
                    let rep = cx.model.representative(next);
                    let start = out.words.len();
                    cx.codec.encode(&rep, &mut out.words);
                    out.fps.push(fingerprint(&out.words[start..]));
                    let flag = if changed { TERM_CHANGED } else { 0 };
                    out.labels
                        .push(u16::try_from(label).unwrap_or(u16::MAX) | flag);
                    out.transition_violated.push(tv);
                    successors += 1;
                }
                Err(refusal) => {
                    if let (Some(b), Guard::BoundReached { .. }, true) =
                        (fair_bit, &refusal.guard, cx.bounded)
                    {
                        // Disabled only by the bound if the same step succeeds without it.
                        if step(&state.with_config(cx.lifted), &concrete).is_ok() {
                            only_bound |= 1 << b;
                        }
                    }
                }
            }
        }
        out.successors.push(successors);
        if cx.fairness.is_some() {
            out.trapped.push(trapped);
            out.enabled.push(enabled);
            out.only_bound.push(only_bound);
        }
    }
    debug_assert_eq!(out.successors.len(), count);
    out
}

/// Prints progress lines on stderr every few seconds.
pub struct Progress {
    on: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// A progress printer (silent when `on` is false).
    pub fn new(on: bool) -> Progress {
        let now = Instant::now();
        Progress {
            on,
            started: now,
            last: now,
        }
    }

    /// Prints `line` if a few seconds passed since the last one.
    pub fn tick(&mut self, line: impl FnOnce(f64) -> String) {
        if self.on && self.last.elapsed() >= Duration::from_secs(3) {
            self.last = Instant::now();
            let memory = crate::memory::current_memory_mib()
                .map_or(String::new(), |m| format!(", {m:.0} MiB"));
            eprintln!(
                "model-check: {}{memory}",
                line(self.started.elapsed().as_secs_f64())
            );
        }
    }
}

impl Graph {
    /// Explores `model` breadth-first from its initial state.
    pub fn explore(model: &MembershipModel, fairness: Option<&Fairness>, how: Explore) -> Graph {
        let started = Instant::now();
        let codec = Codec::new(model);
        let w = codec.words();
        let config = *model.config();
        let bounded = config.max_view().is_some() || config.max_epoch().is_some();
        let cx = Context {
            model,
            codec: &codec,
            fairness: if how.liveness { fairness } else { None },
            lifted: config.lifted(),
            bounded,
        };
        let graph = Graph {
            events: model.events().to_vec(),
            parent: vec![u32::MAX],
            parent_label: vec![0],
            level_starts: vec![0],
            offsets: vec![0],
            targets: Vec::new(),
            labels: Vec::new(),
            trapped: Vec::new(),
            enabled: Vec::new(),
            only_bound: Vec::new(),
            state_violations: vec![None; StateInvariant::ALL.len()],
            transition_violations: vec![None; TransitionInvariant::ALL.len()],
            generated: 1,
            declared_hosts: 0,
            max_depth: 0,
            depth_limited: false,
            too_large: false,
            seconds: 0.0,
            expanded: 0,
        };
        let mut frontier = Vec::new();
        let initial = model.representative(State::initial(config));
        codec.encode(&initial, &mut frontier);
        let mut index = Index::new();
        index.get_or_insert(fingerprint(&frontier), 0);
        let mut b = Builder {
            graph,
            index,
            states: 1,
            current: 0,
            next_frontier: Vec::new(),
            words: w,
            bounded,
            keep_edges: cx.fairness.is_some(),
            states_max: how.states_max,
        };
        let mut depth = 0usize;
        let mut progress = Progress::new(how.progress);
        let threads = how.threads.max(1);
        let cx = &cx;
        while !frontier.is_empty() {
            if how.depth.is_some_and(|d| depth >= d) {
                // The last level is not expanded, but its states are checked.
                b.graph.depth_limited = true;
                for (k, chunk) in frontier.chunks(w).enumerate() {
                    let state = codec.decode(chunk);
                    for (v, inv) in StateInvariant::ALL.iter().enumerate() {
                        let slot = &mut b.graph.state_violations[v];
                        if slot.is_none() && inv.check(&state).is_err() {
                            *slot = Some(to_u32(b.current + k));
                        }
                    }
                }
                break;
            }
            let chunks: Vec<&[u64]> = frontier.chunks(CHUNK * w).collect();
            // Workers expand chunk k + 1 while this thread merges chunk k, in order.
            std::thread::scope(|scope| {
                let spawn = |chunk: &[u64]| {
                    let per_thread = (chunk.len() / w).div_ceil(threads).max(1) * w;
                    chunk
                        .chunks(per_thread)
                        .map(|part| {
                            let part: Vec<u64> = part.to_vec();
                            scope.spawn(move || expand(cx, &part))
                        })
                        .collect::<Vec<_>>()
                };
                let mut pending = chunks.first().map(|c| spawn(c));
                let mut k = 0;
                while let Some(handles) = pending.take() {
                    let parts: Vec<Expanded> = handles
                        .into_iter()
                        .map(|h| match h.join() {
                            Ok(x) => x,
                            Err(panic) => std::panic::resume_unwind(panic),
                        })
                        .collect();
                    k += 1;
                    pending = chunks.get(k).map(|c| spawn(c));
                    for part in &parts {
                        b.merge(part);
                    }
                    let (states, queued) = (b.states, b.next_frontier.len() / w);
                    progress.tick(|secs| {
                        format!(
                            "exploring: {states} states, depth {depth}, {queued} queued, \
                             {:.0} states/s",
                            states as f64 / secs.max(1e-9)
                        )
                    });
                }
            });
            frontier = std::mem::take(&mut b.next_frontier);
            if !frontier.is_empty() {
                depth += 1;
                b.graph.level_starts.push(b.current);
            }
        }
        let mut graph = b.graph;
        graph.expanded = b.current;
        if b.keep_edges {
            graph.prune_edges();
        }
        graph.max_depth = depth;
        graph.seconds = started.elapsed().as_secs_f64();
        graph
    }

    /// Keeps only the edges between states trapped for a common property (the only ones a
    /// liveness verdict follows), compacting the edge arrays in place.
    fn prune_edges(&mut self) {
        let n = self.expanded.min(self.trapped.len());
        let mut kept = 0usize;
        let mut start = 0usize;
        for i in 0..n {
            let end = self.offsets[i + 1] as usize;
            for j in start..end {
                let t = self.targets[j] as usize;
                let common = self.trapped[i] & self.trapped.get(t).copied().unwrap_or(0);
                if common != 0 {
                    self.targets[kept] = self.targets[j];
                    self.labels[kept] = self.labels[j];
                    kept += 1;
                }
            }
            start = end;
            self.offsets[i + 1] = kept as u64;
        }
        self.targets.truncate(kept);
        self.labels.truncate(kept);
        self.targets.shrink_to_fit();
        self.labels.shrink_to_fit();
        debug_assert_eq!(self.offsets.len(), n + 1);
        debug_assert!(self.offsets.windows(2).all(|w| w[0] <= w[1]));
    }

    /// The number of states found.
    pub fn state_count(&self) -> usize {
        self.parent.len()
    }

    /// The number of states expanded (all of them unless the depth limit stopped it).
    pub fn expanded_count(&self) -> usize {
        self.expanded
    }

    /// The number of edges kept for liveness.
    pub fn kept_edge_count(&self) -> usize {
        self.targets.len()
    }

    /// The edges kept out of state `i`: (target, label with the [`TERM_CHANGED`] flag).
    pub fn out(&self, i: usize) -> impl Iterator<Item = (usize, u16)> + '_ {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        self.targets[a..b]
            .iter()
            .zip(&self.labels[a..b])
            .map(|(&t, &l)| (t as usize, l))
    }

    /// The `k`-th edge kept out of state `i`, if there is one.
    pub fn edge(&self, i: usize, k: usize) -> Option<(usize, u16)> {
        let j = self.offsets[i] as usize + k;
        (j < self.offsets[i + 1] as usize).then(|| (self.targets[j] as usize, self.labels[j]))
    }

    /// The breadth-first depth of state `i` (the length of its shortest path).
    pub fn depth(&self, i: usize) -> usize {
        self.level_starts.partition_point(|&start| start <= i) - 1
    }

    /// The events of the shortest path from the initial state to state `i`.
    pub fn path(&self, mut i: usize) -> Vec<Event> {
        let mut path = Vec::new();
        while i != 0 {
            path.push(self.events[usize::from(self.parent_label[i])]);
            i = self.parent[i] as usize;
        }
        path.reverse();
        path
    }

    /// The event of a label.
    pub fn event(&self, label: u16) -> Event {
        self.events[usize::from(label & !TERM_CHANGED)]
    }

    /// Whether a bound can disable fair actions here (a bounded model).
    pub fn has_bound_info(&self) -> bool {
        !self.only_bound.is_empty()
    }
}

/// The exploration's state while merging expanded chunks, in order.
struct Builder {
    graph: Graph,
    index: Index,
    states: usize,
    current: usize,
    next_frontier: Vec<u64>,
    words: usize,
    bounded: bool,
    keep_edges: bool,
    states_max: usize,
}

impl Builder {
    /// Numbers the successors of one expanded part, records what was found, and queues the
    /// new states.
    fn merge(&mut self, part: &Expanded) {
        let w = self.words;
        let graph = &mut self.graph;
        graph.declared_hosts += part.declared_hosts;
        let mut s = 0usize; // successor cursor within the part
        for i in 0..part.successors.len() {
            let source = self.current;
            let violated = part.state_violated[i];
            for (v, slot) in graph.state_violations.iter_mut().enumerate() {
                if violated & (1 << v) != 0 && slot.is_none() {
                    *slot = Some(to_u32(source));
                }
            }
            let source_trapped = if self.keep_edges {
                graph.trapped.push(part.trapped[i]);
                graph.enabled.push(part.enabled[i]);
                if self.bounded {
                    graph.only_bound.push(part.only_bound[i]);
                }
                part.trapped[i]
            } else {
                0
            };
            for _ in 0..part.successors[i] {
                let fp = part.fps[s];
                let label = part.labels[s];
                let found = if self.states < self.states_max {
                    Some(self.index.get_or_insert(fp, to_u32(self.states)))
                } else {
                    self.index.get_existing(fp).map(|t| (t, false))
                };
                let Some((target, new)) = found else {
                    graph.too_large = true;
                    s += 1;
                    continue;
                };
                if new {
                    self.states += 1;
                    graph.parent.push(to_u32(source));
                    graph.parent_label.push(label & !TERM_CHANGED);
                    self.next_frontier
                        .extend_from_slice(&part.words[s * w..(s + 1) * w]);
                }
                let tv = part.transition_violated[s];
                for (v, slot) in graph.transition_violations.iter_mut().enumerate() {
                    if tv & (1 << v) != 0 && slot.is_none() {
                        *slot = Some((to_u32(source), label & !TERM_CHANGED));
                    }
                }
                // Every edge out of a trapped state, for now: the edges between states trapped
                // for no common property are dropped once every state's mask is known
                // (`Graph::prune_edges`), so a successor's mask is computed once, when it is
                // expanded, not once per edge into it.
                if self.keep_edges && source_trapped != 0 {
                    graph.targets.push(target);
                    graph.labels.push(label);
                }
                graph.generated += 1;
                s += 1;
            }
            if self.keep_edges {
                graph.offsets.push(graph.targets.len() as u64);
            }
            self.current += 1;
        }
    }
}

impl Index {
    fn get_existing(&self, fp: u64) -> Option<u32> {
        let fp = fp.max(1);
        let mask = self.keys.len() - 1;
        let mut slot = (fp as usize) & mask;
        loop {
            match self.keys[slot] {
                0 => return None,
                k if k == fp => return Some(self.ids[slot]),
                _ => slot = (slot + 1) & mask,
            }
        }
    }
}

fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership_core::checking::Mode;
    use membership_core::testing::reachable;

    #[test]
    fn packed_states_round_trip() {
        for seed in 0..200u64 {
            let state = reachable(3, 2, seed, 40);
            let config = Config::new(Mode::Fixed, 3, None, None).unwrap();
            let model = MembershipModel::new(config, false, 2);
            let rep = model.representative(state.with_config(config));
            let codec = Codec::new(&model);
            let mut words = Vec::new();
            codec.encode(&rep, &mut words);
            assert_eq!(words.len(), codec.words());
            assert_eq!(codec.decode(&words), rep, "seed {seed}");
        }
    }

    #[test]
    fn three_nodes_two_actors_pack_into_two_words() {
        let config = Config::new(Mode::Fixed, 3, None, None).unwrap();
        assert_eq!(
            Codec::new(&MembershipModel::new(config, false, 2)).words(),
            2
        );
    }
}
