//! The tokio runtime: one task per node feeds its [`Agent`] (ticks, store change notifications,
//! probe results, commit outcomes) and executes its outputs; the application holds a
//! [`NodeHandle`].

mod api;
mod endpoint;
mod http;
mod metrics;
mod runtime;
mod wire;

pub use api::{
    Error, NodeNotification, NodeOptions, Permit, COMMANDS_MAX, INBOX_MAX,
    METRICS_TASK_ANSWER_TIMEOUT_MS, NOTIFICATION_BUFFER, STOP_REASON_WAIT_MS,
};
pub use http::{
    METRICS_CONNECTIONS_MAX, METRICS_REQUEST_HEAD_BYTES_MAX, METRICS_REQUEST_TIMEOUT_MS,
};
pub use metrics::{
    METRICS_LATENCY_BUCKETS_COUNT, METRICS_LATENCY_BUCKET_FACTOR,
    METRICS_LATENCY_FIRST_BUCKET_SECONDS, METRICS_PREFIX,
};
pub use runtime::CHANGE_READ_GAP_MS;

use crate::clock::Clocks;
use crate::probe;
use crate::store::{Snapshot, Store};
use endpoint::Endpoint;
use membership_core::{ActorId, Agent, Effect, Event, NodeId, NodeSet, NodeStatus, Placement};
use metrics::Metrics;
use runtime::{Glue, Runtime};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tracing::Instrument;
use wire::{Command, Message, Shared};

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
    /// The metrics endpoint's address and task (it outlives the node's task, to answer that it
    /// stopped; it ends when the handle is dropped).
    metrics: Option<(SocketAddr, AbortHandle)>,
    next_ticket: AtomicU64,
}

impl NodeHandle {
    /// Starts a node on `store`: binds the probe address (and the metrics address, if
    /// [`NodeOptions::metrics_address`] asks for one), claims the node's slot (a fresh
    /// incarnation: an older process of the same node can no longer act), and runs its task.
    /// The node is not a member until [`NodeHandle::join`].
    pub async fn start<S: Store>(store: Arc<S>, options: NodeOptions) -> Result<NodeHandle, Error> {
        if let Some(identity) = &options.identity {
            if identity.node() != options.node {
                return Err(Error::Identity {
                    node: options.node,
                    identity: identity.node(),
                });
            }
        }
        let (probe_address, probe_task) =
            probe::serve(options.probe_address, options.identity.clone())
                .await
                .map_err(|e| Error::Io(format!("probe address {}: {e}", options.probe_address)))?;
        let metrics_listener = match options.metrics_address {
            None => None,
            Some(address) => match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => Some(listener),
                Err(e) => {
                    probe_task.abort();
                    return Err(Error::Io(format!("metrics address {address}: {e}")));
                }
            },
        };
        let slot = match store.claim(options.node, &probe_address.to_string()).await {
            Ok(slot) => slot,
            Err(e) => {
                probe_task.abort();
                return Err(Error::Store(e));
            }
        };
        let clocks = Clocks::new(
            #[cfg(feature = "testing")]
            options.clock_skew.clone(),
        );
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
        let metrics = Arc::new(Metrics::default());
        let endpoint_store = store.clone();
        let runtime = Runtime {
            agent,
            commands: command_rx,
            inbox,
            glue: Glue {
                node: options.node,
                store,
                clocks,
                store_timeout: Duration::from_millis(options.store_timeout_ms),
                probe_timeout,
                prober: Arc::new(match options.identity.clone() {
                    Some(identity) => probe::Prober::with_identity(identity),
                    None => probe::Prober::new(options.node),
                }),
                tx,
                notifications: notifications.clone(),
                shared: shared.clone(),
                addresses: BTreeMap::new(),
                reading: false,
                read_again: false,
                confirmed: None,
                requests: BTreeMap::new(),
                placing: BTreeMap::new(),
                tasks: JoinSet::new(),
                metrics: metrics.clone(),
            },
        };
        let span =
            tracing::info_span!("node", node = %options.node, incarnation = slot.incarnation);
        let task = tokio::spawn(runtime.run().instrument(span.clone()));
        let (task_abort, probe_abort) = (task.abort_handle(), probe_task.abort_handle());
        let metrics = match metrics_listener {
            None => None,
            Some(listener) => {
                let address = listener
                    .local_addr()
                    .map_err(|e| Error::Io(format!("metrics address: {e}")));
                let address = match address {
                    Ok(address) => address,
                    Err(e) => {
                        task_abort.abort();
                        return Err(e);
                    }
                };
                let endpoint = Arc::new(Endpoint {
                    node: options.node,
                    incarnation: slot.incarnation,
                    commands: commands.clone(),
                    shared: shared.clone(),
                    store: endpoint_store,
                    metrics,
                    task: task_abort.clone(),
                });
                let answer = move |route| {
                    let endpoint = endpoint.clone();
                    async move { endpoint.answer(route).await }
                };
                let server = tokio::spawn(http::serve(listener, answer).instrument(span.clone()));
                Some((address, server.abort_handle()))
            }
        };
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
            metrics,
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

    /// The address the metrics endpoint listens on (`None` unless
    /// [`NodeOptions::metrics_address`] asked for one): HTTP/1.1 `GET /metrics` (the Prometheus
    /// text format), `/livez` (200 while the node's task runs, else 503 naming why it stopped)
    /// and `/readyz` (200 when the node is Active, not fenced, and its latest snapshot is
    /// fresher than the lease; else 503 with the reason). The endpoint keeps answering after
    /// the node's task has ended (so that `/livez` can say so), until the handle is dropped.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(address, _)| *address)
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
                Ok(Ok(placement)) => {
                    self.await_placement_seen(actor, placement).await;
                    Ok(placement)
                }
                Ok(Err(error)) => Err(error),
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

    /// Read your writes: waits (at most the wait timeout) until this handle's snapshot shows
    /// `actor` placed with `placement`'s epoch or a later one, so that [`NodeHandle::lookup_actor`]
    /// right after [`NodeHandle::place_actor`] returns sees the placement. The placement is
    /// committed either way; a snapshot that is slow to come only delays the answer.
    async fn await_placement_seen(&self, actor: ActorId, placement: Placement) {
        let mut snapshots = self.shared.snapshot.subscribe();
        let seen = |s: &Option<Arc<Snapshot>>| {
            s.as_ref()
                .and_then(|s| s.state.placement(actor))
                .is_some_and(|p| p.epoch >= placement.epoch)
        };
        let wait = snapshots.wait_for(|s| seen(s));
        let _ = tokio::time::timeout(self.wait_timeout, wait).await;
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
        s.state
            .node(self.node)
            .map(|r| (r.view.clone(), r.view_number))
    }

    /// The primary in office and its term, as of the node's latest snapshot.
    pub fn primary(&self) -> Option<(NodeId, u64)> {
        self.snapshot()?.state.primary_and_term()
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
        if let Some((_, server)) = &self.metrics {
            server.abort();
        }
    }
}
