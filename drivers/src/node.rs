//! The tokio runtime: one task per node feeds its [`Agent`] (ticks, store change notifications,
//! probe results, commit outcomes) and executes its outputs; the application holds a
//! [`NodeHandle`].

use crate::probe;
use crate::store::{Snapshot, Store, StoreError};
use membership_core::{
    drain, ActorId, Agent, Decision, Effect, Event, Io, NodeId, NodeSet, NodeStatus, Notification,
    Outgoing, Placement, ProposalError, ProposalId, ProposalOutcome, RequestError, Timing,
    REQUEST_RETRIES_MAX,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// The most messages (outcomes, probe results, snapshots) waiting for a node's task.
pub const INBOX_MAX: usize = 65_536;
/// The most commands waiting for a node's task.
pub const COMMANDS_MAX: usize = 1_024;
/// The most notifications a slow subscriber may lag behind before it misses some.
pub const NOTIFICATION_BUFFER: usize = 65_536;

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
    /// Waiting for the registry took longer than allowed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The node's task has stopped.
    #[error("the node has stopped")]
    Stopped,
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

enum Command {
    Join,
    Leave,
    Place(ActorId),
    Propose(Event, oneshot::Sender<Result<Vec<Effect>, Error>>),
    Servable(oneshot::Sender<BTreeMap<ActorId, u64>>),
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
    task: JoinHandle<()>,
    probe_task: JoinHandle<()>,
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
        let shared = Arc::new(Shared {
            snapshot,
            serving: Mutex::new(BTreeMap::new()),
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
            },
        };
        let span =
            tracing::info_span!("node", node = %options.node, incarnation = slot.incarnation);
        let task = tokio::spawn(runtime.run().instrument(span));
        Ok(NodeHandle {
            node: options.node,
            incarnation: slot.incarnation,
            probe_address,
            wait_timeout: Duration::from_millis(options.wait_timeout_ms),
            commands,
            notifications,
            shared,
            task,
            probe_task,
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
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Waits until the latest snapshot satisfies `done`.
    async fn wait_for(
        &self,
        what: &'static str,
        done: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, Error> {
        let mut rx = self.shared.snapshot.subscribe();
        let wait = async {
            loop {
                if let Some(s) = rx.borrow_and_update().as_ref() {
                    if done(s) {
                        return Ok(Snapshot::clone(s));
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Stopped);
                }
            }
        };
        tokio::time::timeout(self.wait_timeout, wait)
            .await
            .unwrap_or(Err(Error::Timeout(what)))
    }

    fn status_in(&self, s: &Snapshot) -> Option<NodeStatus> {
        s.state.node(self.node).map(|r| r.status)
    }

    /// Joins the cluster (bootstrapping it if no node is Active) and waits until the node is
    /// Active.
    pub async fn join(&self) -> Result<(), Error> {
        self.send(Command::Join).await?;
        self.wait_for("the node to be Active", |s| {
            self.status_in(s) == Some(NodeStatus::Active)
        })
        .await
        .map(|_| ())
    }

    /// Leaves gracefully and waits until the node is Left: its actors are migrated to other
    /// nodes before the leave completes.
    pub async fn leave(&self) -> Result<(), Error> {
        self.send(Command::Leave).await?;
        self.wait_for("the node to be Left", |s| {
            self.status_in(s) == Some(NodeStatus::Left)
        })
        .await
        .map(|_| ())
    }

    /// Asks for `actor` to be placed (on the least-loaded Active node) and waits until the
    /// registry places it.
    pub async fn place_actor(&self, actor: ActorId) -> Result<Placement, Error> {
        self.send(Command::Place(actor)).await?;
        let s = self
            .wait_for("the actor to be placed", |s| {
                s.state.placement(actor).is_some()
            })
            .await?;
        s.state
            .placement(actor)
            .ok_or(Error::Timeout("the actor to be placed"))
    }

    /// Proposes one spec action as this node (outside the Agent's policy, through
    /// `Agent::submit`): for administration and tests. Returns the effects once committed, or
    /// the typed reason it was refused.
    pub async fn propose(&self, event: Event) -> Result<Vec<Effect>, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Propose(event, tx)).await?;
        rx.await.map_err(|_| Error::Stopped)?
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

    /// The actors this node serves now, with their epochs.
    pub fn serving(&self) -> BTreeMap<ActorId, u64> {
        self.shared
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The actors this node may serve right now, with their epochs: those it serves for which
    /// the Agent's `may_serve` holds at this instant (not fenced, lease and snapshot fresh). A
    /// driver asks before serving requests: a process frozen past its lease gets nothing here
    /// when it resumes, even before its timers have run.
    pub async fn servable(&self) -> Result<BTreeMap<ActorId, u64>, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Servable(tx)).await?;
        rx.await.map_err(|_| Error::Stopped)
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
}

impl<S: Store> Runtime<S> {
    async fn run(mut self) {
        let mut changes = self.glue.store.watch();
        loop {
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
            Command::Servable(reply) => {
                let servable = self
                    .agent
                    .serving()
                    .iter()
                    .filter(|(&actor, _)| self.agent.may_serve(actor, now))
                    .map(|(&a, &e)| (a, e))
                    .collect();
                let _ = reply.send(servable);
            }
            Command::Join => self.agent.join(now),
            Command::Leave => self.agent.leave(now),
            Command::Place(actor) => {
                if !self.agent.place(actor, now) {
                    tracing::warn!(%actor, "place queue full: request dropped");
                }
            }
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
        tokio::spawn(
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
        tokio::spawn(async move {
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
        tokio::spawn(async move {
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
}
