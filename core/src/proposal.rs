//! Proposals: what a node asks a store to commit, and the transaction logic every store shares.
//!
//! A store keeps the registry ([`State`]) and, beside it, the drivers' metadata ([`Meta`]): the
//! node slots (who holds each node id, under which incarnation), the heartbeat round, and the
//! ids of recently applied proposals. None of the metadata is a spec variable; it only decides
//! whether a proposal may run, so every committed change to the registry is still exactly one
//! legal `step` (or, for a migration batch, a sequence of them).
//!
//! [`execute`] is the whole transaction, pure: check the proposer's incarnation, recognise a
//! retried proposal, check the expected round, run the action through [`crate::step`], and say
//! what to write. Stores wrap it in their engine's transaction (read the footprint, run
//! `execute`, write, commit) and never decide anything themselves.

use crate::actor::{ActorId, LeastLoaded, MIGRATION_BATCH_MAX};
use crate::batch::migrate_batch_observed;
use crate::delta::Delta;
use crate::effect::Effect;
use crate::event::{ActionName, Event};
use crate::footprint::{footprint, Footprint, Key};
use crate::node::{NodeId, NodeSet};
use crate::refusal::Refusal;
use crate::state::State;
use crate::step::step;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

/// How many of each node's most recent proposals a store remembers, so that a retry after a
/// commit-unknown result is recognised. A retry of an older proposal is refused
/// ([`ProposalError::Forgotten`]), never applied twice.
pub const PROPOSALS_REMEMBERED: u64 = 256;

/// The longest probe address a slot may hold, in bytes.
pub const ADDRESS_MAX_BYTES: usize = 256;

/// A proposal's identity: the proposing node, its incarnation, and a sequence number the
/// incarnation never reuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// The proposing node.
    pub node: NodeId,
    /// Its incarnation (from [`Meta::claim`]).
    pub incarnation: u64,
    /// The proposal's number within the incarnation.
    pub seq: u64,
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}#{}", self.node, self.incarnation, self.seq)
    }
}

/// The most actors one placement batch places ([`Action::PlaceBatch`]): one transaction writes a
/// placement per actor plus the load and hosted markers of the nodes it places on, which stays
/// within etcd's 128 operations for clusters of up to about 40 members (a store halves a batch
/// that does not fit).
pub const PLACE_BATCH_MAX: usize = 32;

/// One to [`PLACE_BATCH_MAX`] distinct actors to place in one transaction, in order. A
/// fixed-capacity list, so that [`Action`] stays `Copy`; serialized as a list.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ActorId>", into = "Vec<ActorId>")]
pub struct ActorBatch {
    ids: [ActorId; PLACE_BATCH_MAX],
    len: u8,
}

/// A list that is not a placement batch, naming why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("not a placement batch: {0}")]
pub struct BatchError(String);

impl ActorBatch {
    /// The batch of `actors`: one to [`PLACE_BATCH_MAX`] distinct actors, in order.
    pub fn new(actors: &[ActorId]) -> Result<ActorBatch, BatchError> {
        if actors.is_empty() || actors.len() > PLACE_BATCH_MAX {
            return Err(BatchError(format!(
                "{} actors, not 1 to {PLACE_BATCH_MAX}",
                actors.len()
            )));
        }
        let distinct: BTreeSet<ActorId> = actors.iter().copied().collect();
        if distinct.len() != actors.len() {
            return Err(BatchError("an actor is listed twice".to_string()));
        }
        let mut ids = [ActorId(0); PLACE_BATCH_MAX];
        ids[..actors.len()].copy_from_slice(actors);
        let batch = ActorBatch {
            ids,
            len: u8::try_from(actors.len()).map_err(|e| BatchError(e.to_string()))?,
        };
        assert_eq!(batch.actors(), actors);
        Ok(batch)
    }

    /// The actors, in order.
    pub fn actors(&self) -> &[ActorId] {
        let len = usize::from(self.len).min(PLACE_BATCH_MAX);
        &self.ids[..len]
    }

    /// The first `len` actors (at least one).
    pub fn truncated(&self, len: usize) -> ActorBatch {
        let len = len.clamp(1, self.actors().len());
        let mut batch = *self;
        batch.len = u8::try_from(len).unwrap_or(batch.len);
        debug_assert!(batch.actors().len() == len);
        batch
    }
}

impl fmt::Debug for ActorBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.actors()).finish()
    }
}

impl TryFrom<Vec<ActorId>> for ActorBatch {
    type Error = BatchError;

    fn try_from(actors: Vec<ActorId>) -> Result<ActorBatch, BatchError> {
        ActorBatch::new(&actors)
    }
}

impl From<ActorBatch> for Vec<ActorId> {
    fn from(batch: ActorBatch) -> Vec<ActorId> {
        batch.actors().to_vec()
    }
}

/// What a proposal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "a placement batch is inline so that proposals stay Copy (264 bytes, no allocation)"
)]
pub enum Action {
    /// One spec action.
    Step(Event),
    /// Up to `max` (at most [`MIGRATION_BATCH_MAX`]) MigrateActor steps under `term`, lowest
    /// actor ids first, in one transaction ([`crate::migrate_batch`]).
    MigrateBatch {
        /// The primary's term (fencing token).
        term: u64,
        /// The most moves.
        max: usize,
    },
    /// PlaceActor for each actor of the batch, in order, in one transaction: each one the
    /// reducer refuses on the state the earlier ones left is skipped (it is not placed, and
    /// its refusal is read: the transaction conflicts on what decided it); refused only if
    /// every one is.
    PlaceBatch {
        /// The actors.
        actors: ActorBatch,
    },
}

impl Action {
    /// The spec action, when it is one whose proposal must carry the heartbeat round its
    /// proposer waited on (DetectFailure, MarkNodeFailed, ResetHeartbeats: registry v2 declares
    /// a silent node on the evidence of a round its proposer saw open for the failure timeout);
    /// `None` for every other action.
    pub fn round_required(&self) -> Option<ActionName> {
        let name = match self {
            Action::Step(event) => event.name(),
            Action::MigrateBatch { .. } | Action::PlaceBatch { .. } => return None,
        };
        let required = matches!(
            name,
            ActionName::DetectFailure | ActionName::MarkNodeFailed | ActionName::ResetHeartbeats
        );
        debug_assert!(!required || matches!(self, Action::Step(_)));
        required.then_some(name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Step(e) => write!(f, "{e}"),
            Action::MigrateBatch { term, max } => write!(f, "MigrateBatch(term {term}, max {max})"),
            Action::PlaceBatch { actors } => {
                let list = actors.actors();
                match (list.first(), list.last()) {
                    (Some(first), Some(last)) => {
                        write!(f, "PlaceBatch({} actors, {first}..{last})", list.len())
                    }
                    _ => write!(f, "PlaceBatch()"),
                }
            }
        }
    }
}

/// One proposal: an action, who proposes it, and (for the actions whose safety depends on how
/// long a heartbeat round has been open) the round the proposer observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposal's identity (and so the proposer and its incarnation).
    pub id: ProposalId,
    /// What to do.
    pub action: Action,
    /// The heartbeat round the proposer waited on; the proposal is refused if another round has
    /// been opened since ([`ProposalError::StaleRound`]). DetectFailure and ResetHeartbeats must
    /// carry it ([`ProposalError::RoundRequired`]): their safety rests on how long the round has
    /// been open by the proposer's clock.
    pub round: Option<u64>,
}

/// A node slot: the incarnation that holds the node id now, and where it answers probes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot {
    /// The holder's incarnation (grows with every claim).
    pub incarnation: u64,
    /// The holder's probe address (`host:port`).
    pub address: String,
}

/// The outcome a store remembers for an applied proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The effects the commit produced.
    pub effects: Vec<Effect>,
}

/// The drivers' metadata beside the registry. Store keys: `slot/n`, `round`, `proposal/n/seq`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The node slots (a persistent map: cloning the metadata is cheap).
    pub slots: imbl::OrdMap<NodeId, Slot>,
    /// The heartbeat round: opened by every committed ResetHeartbeats.
    pub round: u64,
    /// The recently applied proposals, at most [`PROPOSALS_REMEMBERED`] per incarnation (a
    /// persistent map: cloning the metadata is cheap).
    pub applied: imbl::OrdMap<ProposalId, Applied>,
    /// The round each node's latest heartbeat names (store key `heartbeat/n`, written by that
    /// node alone; absent: none since the registry began). The registry's flag
    /// `heartbeat_received[n]` is exactly `heartbeat_rounds[n] == round`: opening a round
    /// clears every flag without writing any node's key (registry v2, the stored form of the
    /// flags; spec README, "The heartbeat: its stored form").
    #[serde(default)]
    pub heartbeat_rounds: imbl::OrdMap<NodeId, u64>,
}

/// A metadata key, as a store lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MetaKey {
    /// A node slot.
    Slot(NodeId),
    /// The heartbeat round.
    Round,
    /// An applied proposal's record.
    Applied(ProposalId),
}

/// Why a store refused a proposal without running it, or why the reducer refused it.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ProposalError {
    /// The proposer names a node the registry does not have.
    #[error("{node} is not a node of this cluster")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },
    /// The node slot is held by another incarnation (the proposer is a paused or zombie
    /// process, or its slot was never claimed).
    #[error(
        "{node} incarnation {incarnation} is stale: the slot is held by incarnation {current}"
    )]
    StaleIncarnation {
        /// The node.
        node: NodeId,
        /// The proposer's incarnation.
        incarnation: u64,
        /// The slot's incarnation (0: never claimed).
        current: u64,
    },
    /// Another heartbeat round was opened since the one the proposer waited on.
    #[error("heartbeat round {round} is stale: round {current} is open")]
    StaleRound {
        /// The round the proposer expected.
        round: u64,
        /// The open round.
        current: u64,
    },
    /// A MarkNodeFailed on the evidence of an earlier round (`round` below the open one), but
    /// the node committed a heartbeat naming that round or a later one: it was not silent
    /// through it.
    #[error("{node} committed a heartbeat in round {heartbeat_round}, not before round {round}")]
    HeartbeatSince {
        /// The node to declare.
        node: NodeId,
        /// The round its latest heartbeat names.
        heartbeat_round: u64,
        /// The round the proposer waited on.
        round: u64,
    },
    /// A heartbeat proposed for another node: a node's heartbeat is written by that node alone
    /// (registry v2; nothing written).
    #[error("{proposer} cannot heartbeat for {node}: a node's heartbeat is its own")]
    ForeignHeartbeat {
        /// The proposing node.
        proposer: NodeId,
        /// The node the heartbeat names.
        node: NodeId,
    },
    /// A DetectFailure or ResetHeartbeats that carries no round: its proposer cannot have waited
    /// the failure timeout on a round, so it is refused without running (nothing written).
    #[error("{action} must carry the heartbeat round its proposer waited on")]
    RoundRequired {
        /// The action.
        action: ActionName,
    },
    /// The proposal is older than what the store remembers, so a retry cannot be told apart
    /// from a first attempt; it is refused rather than risk applying it twice.
    #[error("proposal {id} is older than the {remembered} proposals remembered per node")]
    Forgotten {
        /// The proposal.
        id: ProposalId,
        /// [`PROPOSALS_REMEMBERED`].
        remembered: u64,
    },
    /// A migration batch found no queued actor to move when it ran (the queue was drained, or
    /// its actors removed, after the proposer read its snapshot; or `max` is 0): nothing written.
    #[error("MigrateBatch(term {term}, max {max}) has no queued actor to move")]
    NothingToMigrate {
        /// The batch's term.
        term: u64,
        /// The batch's most moves.
        max: usize,
    },
    /// The reducer refused the action.
    #[error("{0}")]
    Refused(Refusal),
}

/// What a store answered to a proposal: the stores produce it (`Store::propose` in the
/// drivers), the Agent consumes it (`Agent::handle_outcome`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalOutcome {
    /// It committed, with these effects.
    Committed {
        /// The commit's effects.
        effects: Vec<Effect>,
    },
    /// It was refused, and nothing was written.
    Refused(ProposalError),
    /// The store could not be reached, or gave up (nothing was written).
    Unavailable,
    /// The commit may or may not have happened.
    Unknown,
}

/// What one committed proposal writes, and what it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The proposal committed.
    pub id: ProposalId,
    /// Whether the commit is the proposer's own heartbeat: it compares only its own key
    /// (`heartbeat/n`, so the node's heartbeats land in order) and its slot, reads no record
    /// and no round, and writes `heartbeat/n` = the round it ran at (`meta.round`). If another
    /// round opened before it lands, the stored heartbeat names a closed round and changes no
    /// flag (a stutter of the spec; the stores and the replays treat it so).
    pub own_heartbeat: bool,
    /// The registry after the proposal.
    pub next: State,
    /// The registry keys written (blind writes included).
    pub delta: Delta,
    /// The registry keys the transaction read.
    pub reads: BTreeSet<Key>,
    /// The metadata keys the transaction read.
    pub meta_reads: BTreeSet<MetaKey>,
    /// The metadata after the proposal.
    pub meta: Meta,
    /// The metadata keys written.
    pub meta_writes: BTreeSet<MetaKey>,
    /// The effects, to execute after the commit.
    pub effects: Vec<Effect>,
    /// The spec actions applied, in order (one, or a batch of MigrateActor).
    pub events: Vec<Event>,
    /// Whether this is a retry of an already applied proposal: nothing is written and the
    /// recorded effects are returned.
    pub duplicate: bool,
}

impl Meta {
    /// A new claim of `node`'s slot at `address`: the next incarnation. Written by a store in one
    /// transaction (read `slot/n`, write it).
    pub fn claim(&self, node: NodeId, address: &str) -> Slot {
        let incarnation = self.slots.get(&node).map_or(0, |s| s.incarnation) + 1;
        let mut address = address.to_string();
        address.truncate(ADDRESS_MAX_BYTES);
        debug_assert!(incarnation > 0);
        Slot {
            incarnation,
            address,
        }
    }

    /// The metadata after `node`'s slot is claimed by `slot` (from [`Meta::claim`]): the
    /// records of the node's earlier incarnations are dropped (their proposals are refused as
    /// stale from now on, so nothing needs them).
    pub fn with_claim(&self, node: NodeId, slot: Slot) -> Meta {
        let mut next = self.clone();
        next.applied = self
            .applied
            .iter()
            .filter(|(id, _)| id.node != node)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        next.slots.insert(node, slot);
        debug_assert!(next.applied.keys().all(|id| id.node != node));
        next
    }

    /// The incarnation holding `node` (0 when never claimed).
    pub fn incarnation(&self, node: NodeId) -> u64 {
        self.slots.get(&node).map_or(0, |s| s.incarnation)
    }

    /// The round `node`'s latest heartbeat names (`None`: it never heartbeated).
    pub fn heartbeat_round(&self, node: NodeId) -> Option<u64> {
        self.heartbeat_rounds.get(&node).copied()
    }

    /// Whether `node`'s heartbeat flag is set by the stored form: its latest heartbeat names
    /// the open round.
    pub fn heartbeat_current(&self, node: NodeId) -> bool {
        self.heartbeat_round(node) == Some(self.round)
    }

    /// Every flag the stored form sets (the refinement mapping of `heartbeat_received`, whole):
    /// the nodes whose latest heartbeat names the open round. For a store that rebuilds the
    /// registry from its keys; one pass over the heartbeats.
    pub fn heartbeat_flags(&self) -> NodeSet {
        let flags: NodeSet = self
            .heartbeat_rounds
            .iter()
            .filter(|&(_, &r)| r == self.round)
            .map(|(&n, _)| n)
            .collect();
        debug_assert!(flags.iter().all(|n| self.heartbeat_current(n)));
        flags
    }
}

/// Whether a committed transaction that applied `events`, having run at heartbeat round
/// `ran_at`, changed nothing because it landed after round `open` had opened: only a node's own
/// heartbeat can (it compares no round), and its stored key then names a closed round, so no
/// flag changed (a stutter of the spec). A replay of a committed log skips exactly these.
pub fn heartbeat_landed_closed(events: &[Event], ran_at: u64, open: u64) -> bool {
    let heartbeat = matches!(events, [Event::SendHeartbeat { .. }]);
    heartbeat && ran_at < open
}

/// Whether `proposal` is its proposer's own heartbeat under the fixed rules (see
/// [`Commit::own_heartbeat`]). Its guard, "the node is Active", is fenced by the node's slot:
/// every transition out of Active (NodeLeave, MarkNodeFailed) rewrites `slot/n`, so a heartbeat
/// that read its node Active and finds its slot unchanged at commit still finds it Active.
fn own_heartbeat(state: &State, proposal: &Proposal) -> bool {
    let own = matches!(
        proposal.action,
        Action::Step(Event::SendHeartbeat { node }) if node == proposal.id.node
    );
    own && proposal.round.is_none() && crate::rules::Rules::of(state.config()).own_heartbeat
}

/// The check of the round a proposal carries: the open round; or, for MarkNodeFailed(n) only,
/// an earlier round that `n`'s latest heartbeat precedes (the registry's evidence that `n` was
/// silent through a round the proposer saw open for the failure timeout: a later round opening
/// does not undo it).
fn check_round(meta: &Meta, action: &Action, round: u64) -> Result<(), ProposalError> {
    if round == meta.round {
        return Ok(());
    }
    if let Action::Step(Event::MarkNodeFailed { node }) = *action {
        if round < meta.round {
            return match meta.heartbeat_round(node) {
                Some(heartbeat_round) if heartbeat_round >= round => {
                    Err(ProposalError::HeartbeatSince {
                        node,
                        heartbeat_round,
                        round,
                    })
                }
                _ => Ok(()),
            };
        }
    }
    Err(ProposalError::StaleRound {
        round,
        current: meta.round,
    })
}

/// A migration batch in one pass: [`migrate_batch_observed`] with the default placement strategy,
/// collecting each applied MigrateActor step's footprint on the state the previous step left;
/// the same outcome as [`crate::migrate_batch`] (stops at the first refusal after at least one
/// move; refused if the first move is), except that an empty queue is refused
/// ([`ProposalError::NothingToMigrate`]): a commit applies at least one event.
fn batch(
    state: &State,
    term: u64,
    max: usize,
) -> Result<(State, Vec<Effect>, Vec<Event>, Footprint), ProposalError> {
    let limit = max.min(MIGRATION_BATCH_MAX);
    if state.queue().actors().take(limit).next().is_none() {
        // The proposer saw a queued actor; by the time the transaction runs the queue may be
        // empty. The outside world can do that, so it is a refusal, not an assertion.
        return Err(ProposalError::NothingToMigrate { term, max });
    }
    let mut union = Footprint::default();
    let (current, effects, events) =
        migrate_batch_observed(state, term, max, &LeastLoaded, |before, event| {
            let f = footprint(before, event);
            union.reads.extend(f.reads);
            union.writes.extend(f.writes);
        })
        .map_err(ProposalError::Refused)?;
    assert!(!events.is_empty() && events.len() <= limit);
    assert_eq!(effects.len(), 2 * events.len());
    Ok((current, effects, events, union))
}

/// A placement batch in one pass: PlaceActor for each actor on the state the earlier ones left;
/// a refused one is skipped, its footprint's reads kept (its refusal is part of the outcome).
/// Refused, with the first refusal, only if every one is.
fn place_batch(
    state: &State,
    actors: &ActorBatch,
) -> Result<(State, Vec<Effect>, Vec<Event>, Footprint), ProposalError> {
    let list = actors.actors();
    assert!(!list.is_empty() && list.len() <= PLACE_BATCH_MAX);
    let mut union = Footprint::default();
    let mut current = state.clone();
    let mut effects = Vec::new();
    let mut events = Vec::new();
    let mut refused = None;
    for &actor in list {
        let event = Event::PlaceActor { actor };
        let f = footprint(&current, &event);
        union.reads.extend(f.reads);
        match step(&current, &event) {
            Ok((next, e)) => {
                union.writes.extend(f.writes);
                effects.extend(e);
                events.push(event);
                current = next;
            }
            Err(refusal) => {
                refused.get_or_insert(refusal);
            }
        }
    }
    if let (true, Some(refusal)) = (events.is_empty(), refused) {
        return Err(ProposalError::Refused(refusal));
    }
    // Each actor was either placed or refused, and the batch is never empty.
    assert!(!events.is_empty());
    assert_eq!(effects.len(), events.len());
    assert!(current.placements().len() == state.placements().len() + events.len());
    Ok((current, effects, events, union))
}

/// Whether the simulation's planted bug `DriverMutant::AcceptStaleIncarnation` (feature
/// `checking`) lets an older incarnation's proposal through. Always false in a production build.
fn accepts_stale_incarnation(state: &State, incarnation: u64, current: u64) -> bool {
    #[cfg(feature = "checking")]
    {
        state.config().driver_mutant()
            == Some(crate::checking::DriverMutant::AcceptStaleIncarnation)
            && incarnation > 0
            && incarnation < current
    }
    #[cfg(not(feature = "checking"))]
    {
        let _ = (state, incarnation, current);
        false
    }
}

/// The whole transaction of one proposal, pure. `state` and `meta` are the store's view: exact
/// on every key the transaction reads (the returned `reads` and `meta_reads`); the store commits
/// the returned writes only if none of those keys changed meanwhile (else it retries).
pub fn execute(state: &State, meta: &Meta, proposal: &Proposal) -> Result<Commit, ProposalError> {
    let id = proposal.id;
    let own = own_heartbeat(state, proposal);
    let mut meta_reads = BTreeSet::from([MetaKey::Slot(id.node)]);
    if !own {
        // A heartbeat is idempotent: it is not remembered (no record read or written).
        meta_reads.insert(MetaKey::Applied(id));
    }
    if state.node(id.node).is_none() {
        return Err(ProposalError::UnknownNode { node: id.node });
    }
    if let Action::Step(Event::SendHeartbeat { node }) = proposal.action {
        if node != id.node && crate::rules::Rules::of(state.config()).own_heartbeat {
            return Err(ProposalError::ForeignHeartbeat {
                proposer: id.node,
                node,
            });
        }
    }
    let current = meta.incarnation(id.node);
    if current != id.incarnation && !accepts_stale_incarnation(state, id.incarnation, current) {
        return Err(ProposalError::StaleIncarnation {
            node: id.node,
            incarnation: id.incarnation,
            current,
        });
    }
    if let Some(applied) = meta.applied.get(&id).filter(|_| !own) {
        // A retry of a proposal that did commit: recognised, not applied twice.
        return Ok(Commit {
            id,
            own_heartbeat: own,
            next: state.clone(),
            delta: Delta::default(),
            reads: BTreeSet::new(),
            meta_reads,
            meta: meta.clone(),
            meta_writes: BTreeSet::new(),
            effects: applied.effects.clone(),
            events: Vec::new(),
            duplicate: true,
        });
    }
    let newest = meta
        .applied
        .range(
            ProposalId { seq: 0, ..id }..=ProposalId {
                seq: u64::MAX,
                ..id
            },
        )
        .next_back()
        .map(|(k, _)| k.seq);
    if !own && newest.is_some_and(|n| id.seq.saturating_add(PROPOSALS_REMEMBERED) <= n) {
        return Err(ProposalError::Forgotten {
            id,
            remembered: PROPOSALS_REMEMBERED,
        });
    }
    if let Some(action) = proposal.action.round_required() {
        if proposal.round.is_none() {
            return Err(ProposalError::RoundRequired { action });
        }
    }
    if let Some(round) = proposal.round {
        meta_reads.insert(MetaKey::Round);
        check_round(meta, &proposal.action, round)?;
    }
    let (next, effects, events, fp) = match proposal.action {
        Action::Step(event) => {
            let fp = footprint(state, &event);
            let (next, effects) = step(state, &event).map_err(ProposalError::Refused)?;
            (next, effects.into_vec(), vec![event], fp)
        }
        Action::MigrateBatch { term, max } => batch(state, term, max)?,
        Action::PlaceBatch { actors } => place_batch(state, &actors)?,
    };
    let delta = state.delta_within(&next, &fp);
    let mut next_meta = meta.clone();
    let mut meta_writes = BTreeSet::new();
    if !own {
        meta_writes.insert(MetaKey::Applied(id));
        next_meta.applied.insert(
            id,
            Applied {
                effects: effects.clone(),
            },
        );
        // Forget this incarnation's proposal that falls out of the window (one per commit, so
        // the window never grows).
        if let Some(old) = id.seq.checked_sub(PROPOSALS_REMEMBERED) {
            let forgotten = ProposalId { seq: old, ..id };
            if next_meta.applied.remove(&forgotten).is_some() {
                meta_writes.insert(MetaKey::Applied(forgotten));
            }
        }
    }
    if events.contains(&Event::ResetHeartbeats) {
        next_meta.round = meta.round + 1;
        meta_reads.insert(MetaKey::Round);
        meta_writes.insert(MetaKey::Round);
    }
    for event in &events {
        // The slot fences the own heartbeat: every way out of Active rewrites it, as read (so
        // a claim committed meanwhile conflicts rather than being overwritten).
        if let Event::NodeLeave { node } | Event::MarkNodeFailed { node } = *event {
            meta_reads.insert(MetaKey::Slot(node));
            meta_writes.insert(MetaKey::Slot(node));
        }
    }
    // The stored form of the flags: a flag set is the node's key naming the open round; a flag
    // read is its key and the round (so a transaction that reads or sets a flag conflicts with
    // a round opened meanwhile), except the own heartbeat's, which names the round it ran at.
    let touches_flags = fp
        .reads
        .iter()
        .chain(fp.writes.iter())
        .any(|k| matches!(k, Key::Heartbeat(_)));
    if touches_flags && !own {
        meta_reads.insert(MetaKey::Round);
    }
    for key in delta.keys(state) {
        if let Key::Heartbeat(n) = key {
            if next.heartbeat_received(n) {
                next_meta.heartbeat_rounds.insert(n, next_meta.round);
            }
        }
    }
    assert!(!events.is_empty());
    assert!(
        !own || meta_reads.len() == 1 && fp.reads.iter().all(|k| *k == Key::Heartbeat(id.node))
    );
    debug_assert!(delta.keys(state).iter().all(|k| fp.writes.contains(k)));
    debug_assert!(delta.keys(state).iter().all(|k| match k {
        Key::Heartbeat(n) => next.heartbeat_received(*n) == next_meta.heartbeat_current(*n),
        _ => true,
    }));
    Ok(Commit {
        id,
        own_heartbeat: own,
        next,
        delta,
        reads: fp.reads,
        meta_reads,
        meta: next_meta,
        meta_writes,
        effects,
        events,
        duplicate: false,
    })
}
