//! The tokio runtime: one task per node feeds its [`Agent`] (ticks, store change notifications,
//! probe results, commit outcomes) and executes its outputs; the application holds a
//! [`NodeHandle`].

use crate::probe;
use crate::store::{Snapshot, Store, StoreError};
use membership_core::{
    drain, ActorId, Agent, Decision, Effect, Event, Io, NodeId, NodeSet, NodeStatus, Notification,
    Outgoing, Placement, ProposalError, ProposalId, ProposalOutcome, RequestError, Timing,
    PLACE_QUEUE_MAX, REQUEST_RETRIES_MAX,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tracing::Instrument;

/// The most messages (outcomes, probe results, snapshots) waiting for a node's task.
pub const INBOX_MAX: usize = 65_536;
/// The most commands waiting for a node's task.
pub const COMMANDS_MAX: usize = 1_024;
/// The most notifications a slow subscriber may lag behind before it misses some.
pub const NOTIFICATION_BUFFER: usize = 65_536;
/// How long a handle waits, once the node's task has ended, for the reason to be published
/// (its probe listener is closed first).
pub const STOP_REASON_WAIT_MS: u64 = 1_000;

/// Why a handle operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// The store failed (unreachable, or an undecodable value naming its key).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The proposal was refused: a stale incarnation, an unknown node, a stale round, or the
    /// reducer's refusal (a stale term, a failed guard), with the reason.
    #[error("refused: {0}")]
    Refused(ProposalError),
    /// The store did not answer.
    #[error("the store is unavailable")]
    Unavailable,
    /// The store did not say whether the proposal committed, after every retry.
    #[error("the outcome is unknown after {REQUEST_RETRIES_MAX} retries")]
    Unknown,
    /// Too many proposals of the application are waiting for their outcome.
    #[error("too many proposals are waiting")]
    TooManyRequests,
    /// `place_actor` waited `wait_timeout_ms` while its request was still queued (the node was
    /// not Active, or its earlier placements were still in flight): the request was withdrawn,
    /// and the actor will not be placed by it.
    #[error("timed out waiting for {0}: the request was withdrawn")]
    Timeout(&'static str),
    /// `join` or `leave` waited `wait_timeout_ms` without reaching the status asked for (the
    /// store unreachable, the cluster slow): the request stays in effect, and the node keeps
    /// moving toward that status (a NodeJoin or NodeLeave in flight cannot be taken back). Call
    /// the opposite operation to change course.
    #[error("timed out waiting for {0}: still in progress")]
    Pending(&'static str),
    /// [`PLACE_QUEUE_MAX`] place requests of this node are already waiting: nothing was queued.
    #[error("{PLACE_QUEUE_MAX} place requests are already waiting")]
    PlaceQueueFull,
    /// Another process of this node claimed its slot (a newer incarnation): this one is
    /// fenced for good and can no longer join, leave or place.
    #[error("superseded: incarnation {incarnation} was replaced by {current}")]
    Superseded {
        /// This process's incarnation.
        incarnation: u64,
        /// The incarnation holding the slot.
        current: u64,
    },
    /// The node's task has stopped (killed, its handle dropped, or it panicked), with why; its
    /// probe listener and every other task of the node stopped with it.
    #[error("the node has stopped: {0}")]
    Stopped(String),
    /// The probe address could not be bound.
    #[error("probe address: {0}")]
    Io(String),
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The node id (`n1` ... up to the registry's node count).
    pub node: NodeId,
    /// Where to answer probes (`127.0.0.1:0` picks a free port).
    pub probe_address: SocketAddr,
    /// The timing settings.
    pub timing: Timing,
    /// How long one store operation may take before its outcome counts as unknown.
    pub store_timeout_ms: u64,
    /// How long `join`, `leave` and `place_actor` wait for the registry.
    pub wait_timeout_ms: u64,
}

impl NodeOptions {
    /// Options for `node` with the default timing, probing on a free loopback port.
    pub fn new(node: NodeId) -> NodeOptions {
        NodeOptions {
            node,
            probe_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            timing: Timing::default_timing(),
            store_timeout_ms: 1_000,
            wait_timeout_ms: 30_000,
        }
    }
}

/// A notification with the node and the instant it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNotification {
    /// When (the runtime's monotonic clock).
    pub at: Instant,
    /// Which node.
    pub node: NodeId,
    /// What.
    pub notification: Notification,
}

/// Where a place request's final result goes.
type PlaceReply = oneshot::Sender<Result<Placement, Error>>;

/// How far ahead a permit's deadline is clamped when the node's clock origin plus its deadline
/// does not fit an `Instant` (never in practice: the Agent's deadlines are a lease ahead).
const PERMIT_HORIZON: Duration = Duration::from_secs(3_600);

/// A node's permit to serve one actor ([`NodeHandle::permit`]).
///
/// A request path checks [`Permit::is_valid`] before it serves, passes [`Permit::epoch`] as the
/// fencing token with every write to a downstream resource (which refuses an epoch older than
/// the newest it has seen for the actor), and asks for a new permit once this one has expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    /// The actor.
    pub actor: ActorId,
    /// The activation's epoch: every newer activation of the actor, on any node, has a larger
    /// one.
    pub epoch: u64,
    /// The local monotonic instant before which the node may serve the actor.
    pub valid_until: Instant,
}

impl Permit {
    /// Whether the permit still holds now.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// How long the permit still holds (zero once it has expired).
    pub fn remaining(&self) -> Duration {
        self.valid_until.saturating_duration_since(Instant::now())
    }
}

enum Command {
    Join,
    Leave,
    Place(ActorId, u64, PlaceReply),
    /// Withdraws the place request with this ticket, if still queued (answers whether it was).
    CancelPlace(ActorId, u64, oneshot::Sender<bool>),
    /// Makes the node's task panic (tests of a node dying whole).
    #[cfg(feature = "testing")]
    Panic,
    Propose(Event, oneshot::Sender<Result<Vec<Effect>, Error>>),
    /// The permits of the given actors (every activated actor when `None`).
    Permits(Option<ActorId>, oneshot::Sender<BTreeMap<ActorId, Permit>>),
}

enum Message {
    /// A proposal's token, its id, and what the store said (or why it could not run).
    ProposalDone(u64, ProposalId, Result<ProposalOutcome, StoreError>),
    Probe(NodeId, u64, bool),
    Snapshot(u64, Result<Snapshot, StoreError>),
}

/// An application's proposal waiting for its result: where to send it, and the store error of
/// its latest attempt (reported as such rather than as unavailable).
struct Pending {
    reply: oneshot::Sender<Result<Vec<Effect>, Error>>,
    store_error: Option<StoreError>,
}

struct Shared {
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    serving: Mutex<BTreeMap<ActorId, u64>>,
    /// Why the node's task ended, once it has (published after its probe listener closed).
    stopped: watch::Sender<Option<String>>,
}

/// The application's handle on one running node.
pub struct NodeHandle {
    node: NodeId,
    incarnation: u64,
    probe_address: SocketAddr,
    wait_timeout: Duration,
    commands: mpsc::Sender<Command>,
    notifications: broadcast::Sender<NodeNotification>,
    shared: Arc<Shared>,
    task: AbortHandle,
    probe_task: AbortHandle,
    next_ticket: AtomicU64,
}

impl NodeHandle {
    /// Starts a node on `store`: binds the probe address, claims the node's slot (a fresh
    /// incarnation: an older process of the same node can no longer act), and runs its task.
    /// The node is not a member until [`NodeHandle::join`].
    pub async fn start<S: Store>(store: Arc<S>, options: NodeOptions) -> Result<NodeHandle, Error> {
        let (probe_address, probe_task) = probe::serve(options.probe_address)
            .await
            .map_err(|e| Error::Io(e.to_string()))?;
        let slot = match store.claim(options.node, &probe_address.to_string()).await {
            Ok(slot) => slot,
            Err(e) => {
                probe_task.abort();
                return Err(Error::Store(e));
            }
        };
        let origin = Instant::now();
        let agent = Agent::new(options.node, slot.incarnation, options.timing, 0);
        let (commands, command_rx) = mpsc::channel(COMMANDS_MAX);
        let (notifications, _) = broadcast::channel(NOTIFICATION_BUFFER);
        let (snapshot, _) = watch::channel(None);
        let (stopped, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            snapshot,
            serving: Mutex::new(BTreeMap::new()),
            stopped,
        });
        let (tx, inbox) = mpsc::channel::<Message>(INBOX_MAX);
        let probe_timeout = Duration::from_millis(options.timing.settings().probe_timeout_ms);
        let runtime = Runtime {
            agent,
            commands: command_rx,
            inbox,
            glue: Glue {
                node: options.node,
                store,
                origin,
                store_timeout: Duration::from_millis(options.store_timeout_ms),
                probe_timeout,
                tx,
                notifications: notifications.clone(),
                shared: shared.clone(),
                addresses: BTreeMap::new(),
                reading: false,
                read_again: false,
                requests: BTreeMap::new(),
                placing: BTreeMap::new(),
                tasks: JoinSet::new(),
            },
        };
        let span =
            tracing::info_span!("node", node = %options.node, incarnation = slot.incarnation);
        let task = tokio::spawn(runtime.run().instrument(span.clone()));
        let (task_abort, probe_abort) = (task.abort_handle(), probe_task.abort_handle());
        // The node dies whole: when its task ends (panic, or any return), its probe listener
        // is closed (peers' probes are refused) and then the reason is published. Its other
        // tasks are in the task's `JoinSet`, aborted when the task's future is dropped.
        let watcher = shared.clone();
        tokio::spawn(
            async move {
                let reason = stop_reason(task.await);
                probe_task.abort();
                let _ = probe_task.await;
                tracing::warn!(%reason, "node stopped");
                watcher.stopped.send_replace(Some(reason));
            }
            .instrument(span),
        );
        Ok(NodeHandle {
            node: options.node,
            incarnation: slot.incarnation,
            probe_address,
            wait_timeout: Duration::from_millis(options.wait_timeout_ms),
            commands,
            notifications,
            shared,
            task: task_abort,
            probe_task: probe_abort,
            next_ticket: AtomicU64::new(0),
        })
    }

    /// The node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The incarnation this process holds.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The address the node answers probes on.
    pub fn probe_address(&self) -> SocketAddr {
        self.probe_address
    }

    /// Subscribes to the node's notifications (became primary, stepped down, view changed, node
    /// failed, fenced / unfenced, actor activated / deactivated with its epoch, ...).
    pub fn notifications(&self) -> broadcast::Receiver<NodeNotification> {
        self.notifications.subscribe()
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        match self.commands.send(command).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.stopped().await),
        }
    }

    /// The error for a node whose task has ended, naming why (waits at most
    /// [`STOP_REASON_WAIT_MS`] for the reason to be published).
    async fn stopped(&self) -> Error {
        let mut rx = self.shared.stopped.subscribe();
        let wait = rx.wait_for(Option::is_some);
        let reason =
            match tokio::time::timeout(Duration::from_millis(STOP_REASON_WAIT_MS), wait).await {
                Ok(Ok(reason)) => reason.clone().unwrap_or_default(),
                _ => "the node's task ended".to_string(),
            };
        Error::Stopped(reason)
    }

    /// Why the node's task ended, once it has (its probe listener is closed by then).
    pub fn stop_reason(&self) -> Option<String> {
        self.shared.stopped.borrow().clone()
    }

    /// Waits until the latest snapshot satisfies `done`: [`Error::Pending`] after
    /// `wait_timeout_ms`, [`Error::Superseded`] once a newer incarnation holds the slot,
    /// [`Error::Stopped`] once the node's task has ended.
    async fn wait_for(
        &self,
        what: &'static str,
        done: impl Fn(&Snapshot) -> bool,
    ) -> Result<(), Error> {
        let mut rx = self.shared.snapshot.subscribe();
        let mut stopped = self.shared.stopped.subscribe();
        let wait = async {
            loop {
                if let Some(s) = rx.borrow_and_update().as_ref() {
                    if done(s) {
                        return Ok(());
                    }
                    let current = s.slots.get(&self.node).map_or(0, |slot| slot.incarnation);
                    if current > self.incarnation {
                        return Err(Error::Superseded {
                            incarnation: self.incarnation,
                            current,
                        });
                    }
                }
                if stopped.borrow_and_update().is_some() {
                    return Err(self.stopped().await);
                }
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return Err(self.stopped().await);
                        }
                    }
                    _ = stopped.changed() => {}
                }
            }
        };
        tokio::time::timeout(self.wait_timeout, wait)
            .await
            .unwrap_or(Err(Error::Pending(what)))
    }

    fn status_in(&self, s: &Snapshot) -> Option<NodeStatus> {
        s.state.node(self.node).map(|r| r.status)
    }

    /// Joins the cluster (bootstrapping it if no node is Active) and waits until the node is
    /// Active (at once if it is). Fails with [`Error::Pending`] (the join stays in effect),
    /// [`Error::Superseded`] or [`Error::Stopped`]; a store the node cannot reach shows as
    /// [`Error::Pending`] (the node fences itself meanwhile).
    pub async fn join(&self) -> Result<(), Error> {
        self.send(Command::Join).await?;
        self.wait_for("the node to be Active", |s| {
            self.status_in(s) == Some(NodeStatus::Active)
        })
        .await
        .map(|_| ())
    }

    /// Leaves gracefully and waits until the node is Left (at once if it is): its actors are
    /// migrated to other nodes before the leave completes. Fails as [`NodeHandle::join`] does.
    pub async fn leave(&self) -> Result<(), Error> {
        self.send(Command::Leave).await?;
        self.wait_for("the node to be Left", |s| {
            self.status_in(s) == Some(NodeStatus::Left)
        })
        .await
        .map(|_| ())
    }

    /// Asks for `actor` to be placed (on the node the registry's strategy chooses) and returns
    /// its placement once committed. Errors are final (a call that returned one has no later
    /// effect): the reducer's refusal on the node's snapshot, or the store's at commit, comes
    /// back at once as [`Error::Refused`] (`RegistryFull`, `NoTarget`, ...); placing is
    /// idempotent: an actor already placed is answered with the placement it has (so a caller
    /// told [`Error::Unknown`] or [`Error::Timeout`] may simply place again);
    /// a full queue as [`Error::PlaceQueueFull`]; a request still queued after
    /// `wait_timeout_ms` (the node not Active) is withdrawn, [`Error::Timeout`]. A request
    /// already proposed when the wait ends is waited for: its outcome is final too
    /// ([`Error::Unknown`] when the store never said whether it committed). One refused request
    /// never holds up the node's other requests.
    pub async fn place_actor(&self, actor: ActorId) -> Result<Placement, Error> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        self.send(Command::Place(actor, ticket, tx)).await?;
        if let Ok(answer) = tokio::time::timeout(self.wait_timeout, &mut rx).await {
            return match answer {
                Ok(result) => result,
                Err(_) => Err(self.stopped().await),
            };
        }
        let (cancel, cancelled) = oneshot::channel();
        self.send(Command::CancelPlace(actor, ticket, cancel))
            .await?;
        match cancelled.await {
            Ok(true) => Err(Error::Timeout("the actor to be placed")),
            // Proposed already: its outcome comes (the Agent answers every proposal it sent).
            Ok(false) => match rx.await {
                Ok(result) => result,
                Err(_) => Err(self.stopped().await),
            },
            Err(_) => Err(self.stopped().await),
        }
    }

    /// Proposes one spec action as this node (outside the Agent's policy, through
    /// `Agent::submit`): for administration and tests. Returns the effects once committed, or
    /// the typed reason it was refused.
    pub async fn propose(&self, event: Event) -> Result<Vec<Effect>, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Propose(event, tx)).await?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.stopped().await),
        }
    }

    /// Where `actor` lives, as of the node's latest snapshot.
    pub fn lookup_actor(&self, actor: ActorId) -> Option<Placement> {
        self.snapshot()?.state.placement(actor)
    }

    /// The node's view and its number, as of its latest snapshot.
    pub fn view(&self) -> Option<(NodeSet, u64)> {
        let s = self.snapshot()?;
        s.state.node(self.node).map(|r| (r.view, r.view_number))
    }

    /// The primary in office and its term, as of the node's latest snapshot.
    pub fn primary(&self) -> Option<(NodeId, u64)> {
        let s = self.snapshot()?;
        let p = s.state.primary_in_office()?;
        Some((p, s.state.node(p).map_or(0, |r| r.term)))
    }

    /// The node's latest snapshot of the registry.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.shared.snapshot.borrow().clone()
    }

    /// The actors this node has activated, with their epochs, as its last decisions left them,
    /// WITHOUT the lease and snapshot-age check: a process frozen past its lease still lists its
    /// actors here until its task runs again. For monitoring and tests only; to decide whether to
    /// serve a request, ask for a [`Permit`] ([`NodeHandle::permit`]).
    pub fn activated_ignoring_lease(&self) -> BTreeMap<ActorId, u64> {
        self.shared
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The node's permit to serve `actor` now, or `None` when it may not (it has not activated
    /// the actor, is fenced, or its lease or latest snapshot is too old: the Agent's
    /// `permit`). Ask before serving each request: a process frozen past its lease gets `None`
    /// when it resumes, even before its timers have run. The permit holds until
    /// [`Permit::valid_until`] (ask again after that), and its [`Permit::epoch`] is the fencing
    /// token to pass to every downstream resource the request writes to.
    pub async fn permit(&self, actor: ActorId) -> Result<Option<Permit>, Error> {
        Ok(self.permits_of(Some(actor)).await?.remove(&actor))
    }

    /// The permits of every actor this node may serve now (see [`NodeHandle::permit`]).
    pub async fn permits(&self) -> Result<BTreeMap<ActorId, Permit>, Error> {
        self.permits_of(None).await
    }

    async fn permits_of(&self, only: Option<ActorId>) -> Result<BTreeMap<ActorId, Permit>, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Permits(only, tx)).await?;
        match rx.await {
            Ok(permits) => Ok(permits),
            Err(_) => Err(self.stopped().await),
        }
    }

    /// Stops the node at once, as a crash would: its task and its probe listener end; it leaves
    /// nothing behind but what it had committed.
    pub fn kill(&self) {
        self.task.abort();
        self.probe_task.abort();
    }

    /// Whether the node's task has ended.
    pub fn is_stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Makes the node's task panic, as a bug in it would: the node must die whole (tests).
    #[cfg(feature = "testing")]
    pub async fn panic_for_test(&self) -> Result<(), Error> {
        self.send(Command::Panic).await
    }
}

/// Why a node's task ended, from its join result: the panic's message, a kill, or a return.
fn stop_reason(result: Result<(), JoinError>) -> String {
    match result {
        Ok(()) => "the node's task returned (its handle was dropped)".to_string(),
        Err(e) if e.is_cancelled() => "the node was killed".to_string(),
        Err(e) => match e.try_into_panic() {
            Ok(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string());
                format!("the node's task panicked: {message}")
            }
            Err(e) => format!("the node's task failed: {e}"),
        },
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node's task: its Agent, and the glue that executes the Agent's outputs.
struct Runtime<S: Store> {
    agent: Agent,
    commands: mpsc::Receiver<Command>,
    inbox: mpsc::Receiver<Message>,
    glue: Glue<S>,
}

/// Everything of a node's task but the Agent: what executes its outputs ([`Io`]).
struct Glue<S: Store> {
    node: NodeId,
    store: Arc<S>,
    origin: Instant,
    store_timeout: Duration,
    probe_timeout: Duration,
    tx: mpsc::Sender<Message>,
    notifications: broadcast::Sender<NodeNotification>,
    shared: Arc<Shared>,
    addresses: BTreeMap<NodeId, String>,
    reading: bool,
    read_again: bool,
    /// The application's proposals waiting for their result, by id.
    requests: BTreeMap<ProposalId, Pending>,
    /// The application's place requests waiting for their result, by actor, oldest first,
    /// with their tickets (the Agent answers an actor's requests in order).
    placing: BTreeMap<ActorId, VecDeque<(u64, PlaceReply)>>,
    /// Every task the node spawned (proposals, probes, reads): aborted when the node's task
    /// ends, whatever ends it (dropping the set aborts them).
    tasks: JoinSet<()>,
}

impl<S: Store> Runtime<S> {
    async fn run(mut self) {
        let mut changes = self.glue.store.watch();
        loop {
            // Reap the finished tasks (the set holds only those still running).
            while self.glue.tasks.try_join_next().is_some() {}
            drain(&mut self.agent, &mut self.glue);
            let deadline = self
                .agent
                .poll_timeout()
                .map(|at| self.glue.origin + Duration::from_millis(at));
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {
                    let now = self.glue.now_ms();
                    if let Err(error) = self.agent.handle_timeout(now) {
                        tracing::error!(%error, "the Agent refused a deadline: dropped");
                    }
                }
                Some(message) = self.inbox.recv() => self.handle(message),
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                changed = changes.changed() => {
                    if changed.is_ok() {
                        self.glue.read();
                    }
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.glue.now_ms();
        match command {
            Command::Permits(only, reply) => {
                let origin = self.glue.origin;
                let permits = self
                    .agent
                    .serving()
                    .keys()
                    .filter(|&&actor| only.is_none_or(|a| a == actor))
                    .filter_map(|&actor| self.agent.permit(actor, now))
                    .map(|p| {
                        let permit = Permit {
                            actor: p.actor,
                            epoch: p.epoch,
                            valid_until: origin
                                .checked_add(Duration::from_millis(p.valid_until_ms))
                                .unwrap_or_else(|| Instant::now() + PERMIT_HORIZON),
                        };
                        (p.actor, permit)
                    })
                    .collect();
                let _ = reply.send(permits);
            }
            Command::Join => self.agent.join(now),
            Command::Leave => self.agent.leave(now),
            Command::Place(actor, ticket, reply) => match self.agent.place(actor, now) {
                Ok(()) => {
                    let waiting = self.glue.placing.entry(actor).or_default();
                    waiting.push_back((ticket, reply));
                    debug_assert!(waiting.len() <= PLACE_QUEUE_MAX + 1);
                }
                Err(_) => {
                    let _ = reply.send(Err(Error::PlaceQueueFull));
                }
            },
            Command::CancelPlace(actor, ticket, reply) => {
                let cancelled = self.agent.cancel_place(actor);
                if cancelled {
                    // The Agent answers an actor's remaining requests in order: dropping this
                    // ticket keeps one waiting sender per unanswered request.
                    if let Some(waiting) = self.glue.placing.get_mut(&actor) {
                        waiting.retain(|(t, _)| *t != ticket);
                        if waiting.is_empty() {
                            self.glue.placing.remove(&actor);
                        }
                    }
                }
                let _ = reply.send(cancelled);
            }
            #[cfg(feature = "testing")]
            Command::Panic => panic!("panic_for_test: the node's task panicked on purpose"),
            Command::Propose(event, reply) => match self.agent.submit(event) {
                Ok(id) => {
                    let pending = Pending {
                        reply,
                        store_error: None,
                    };
                    self.glue.requests.insert(id, pending);
                }
                Err(_) => {
                    let _ = reply.send(Err(Error::TooManyRequests));
                }
            },
        }
    }

    fn handle(&mut self, message: Message) {
        let now = self.glue.now_ms();
        match message {
            Message::ProposalDone(token, id, result) => {
                let request = self.glue.requests.get_mut(&id);
                let outcome = match result {
                    Ok(outcome) => {
                        if let Some(pending) = request {
                            pending.store_error = None;
                        }
                        outcome
                    }
                    Err(error) => {
                        match request {
                            Some(pending) => pending.store_error = Some(error),
                            None => tracing::warn!(%error, "proposal not run"),
                        }
                        ProposalOutcome::Unavailable
                    }
                };
                if let Err(error) = self.agent.handle_outcome(now, token, outcome) {
                    tracing::error!(%error, "the Agent refused an outcome: dropped");
                }
            }
            Message::Probe(peer, sent, ok) => {
                if let Err(error) = self.agent.handle_probe(now, peer, sent, ok) {
                    tracing::error!(%error, "the Agent refused a probe result: dropped");
                }
            }
            Message::Snapshot(read_at, result) => {
                self.glue.reading = false;
                match result {
                    Ok(snapshot) => {
                        self.glue.addresses = snapshot
                            .slots
                            .iter()
                            .map(|(&n, slot)| (n, slot.address.clone()))
                            .collect();
                        let slot = snapshot
                            .slots
                            .get(&self.agent.node())
                            .map(|s| s.incarnation);
                        if let Err(error) = self.agent.handle_snapshot(
                            now,
                            read_at,
                            snapshot.state.clone(),
                            snapshot.round,
                            slot,
                        ) {
                            tracing::error!(%error, "the Agent refused a snapshot: dropped");
                        }
                        self.glue
                            .shared
                            .snapshot
                            .send_replace(Some(Arc::new(snapshot)));
                    }
                    Err(error) => tracing::warn!(%error, "snapshot failed"),
                }
                if std::mem::take(&mut self.glue.read_again) {
                    self.glue.read();
                }
            }
        }
    }
}

impl<S: Store> Glue<S> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Executes the Agent's outputs (the runtime's half of [`drain`]).
impl<S: Store> Io for Glue<S> {
    fn propose(&mut self, out: Outgoing) {
        let store = self.store.clone();
        let timeout = self.store_timeout;
        let tx = self.tx.clone();
        let span =
            tracing::info_span!("proposal", id = %out.proposal.id, action = %out.proposal.action);
        self.tasks.spawn(
            async move {
                let outcome = match tokio::time::timeout(timeout, store.propose(out.proposal)).await
                {
                    Err(_) => Ok(ProposalOutcome::Unknown),
                    Ok(result) => result,
                };
                tracing::debug!(?outcome, "commit outcome");
                let _ = tx
                    .send(Message::ProposalDone(out.token, out.proposal.id, outcome))
                    .await;
            }
            .instrument(span),
        );
    }

    fn probe(&mut self, peer: NodeId) {
        let sent = self.now_ms();
        let tx = self.tx.clone();
        let address = self.addresses.get(&peer).cloned();
        let timeout = self.probe_timeout;
        self.tasks.spawn(async move {
            let ok = match address {
                Some(address) => probe::probe(&address, timeout).await,
                None => false,
            };
            let _ = tx.send(Message::Probe(peer, sent, ok)).await;
        });
    }

    fn read(&mut self) {
        if self.reading {
            self.read_again = true;
            return;
        }
        self.reading = true;
        let read_at = self.now_ms();
        let store = self.store.clone();
        let timeout = self.store_timeout;
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let result = tokio::time::timeout(timeout, store.snapshot())
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("snapshot timed out".into())));
            let _ = tx.send(Message::Snapshot(read_at, result)).await;
        });
    }

    fn decide(&mut self, decision: Decision) {
        let mut serving = self
            .shared
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match decision {
            Decision::Fence => serving.clear(),
            Decision::Unfence => {}
            Decision::Activate { actor, epoch } => {
                serving.insert(actor, epoch);
            }
            Decision::Deactivate { actor, .. } => {
                serving.remove(&actor);
            }
        }
    }

    fn notify(&mut self, notification: Notification) {
        tracing::debug!(?notification, "notification");
        let _ = self.notifications.send(NodeNotification {
            at: Instant::now(),
            node: self.node,
            notification,
        });
    }

    fn reply(&mut self, id: ProposalId, result: Result<Vec<Effect>, RequestError>) {
        let Some(pending) = self.requests.remove(&id) else {
            return;
        };
        let result = result.map_err(|error| match (error, pending.store_error) {
            (RequestError::Unavailable, Some(store)) => Error::Store(store),
            (RequestError::Refused(error), _) => Error::Refused(error),
            (RequestError::Unavailable, None) => Error::Unavailable,
            (RequestError::Unknown, _) => Error::Unknown,
        });
        let _ = pending.reply.send(result);
    }

    fn placed(&mut self, actor: ActorId, result: Result<Placement, RequestError>) {
        let Some(waiting) = self.placing.get_mut(&actor) else {
            return;
        };
        let Some((_, reply)) = waiting.pop_front() else {
            return;
        };
        if waiting.is_empty() {
            self.placing.remove(&actor);
        }
        let result = result.map_err(|error| match error {
            RequestError::Refused(error) => Error::Refused(error),
            RequestError::Unavailable => Error::Unavailable,
            RequestError::Unknown => Error::Unknown,
        });
        let _ = reply.send(result);
    }
}
