//! A node's task: its Agent, and the glue that executes the Agent's outputs (the runtime's
//! half of the shared drain).

use super::api::{Error, NodeNotification, Permit};
use super::metrics::{outcome_label, Health, Metrics};
use super::wire::{Command, Message, Pending, PlaceReply, Shared};
use crate::clock::Clocks;
use crate::probe;
use crate::store::{action_name, Store, StoreError};
use membership_core::{
    drain, ActorId, Agent, Decision, Effect, Io, NodeId, Notification, Outgoing, Placement,
    ProposalId, ProposalOutcome, RequestError, PLACE_QUEUE_MAX,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

/// The least time between two snapshot reads a node starts because the store said its registry
/// changed, in ms. The Agent reads every `snapshot_interval_ms` anyway; a change read only makes
/// a commit seen sooner. Without the gap, every node of a process would read (and handle) one
/// snapshot per commit of the whole cluster: nodes x commits a second.
pub const CHANGE_READ_GAP_MS: u64 = 10;

/// A node's task: its Agent, and the glue that executes the Agent's outputs.
pub(super) struct Runtime<S: Store> {
    pub(super) agent: Agent,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) inbox: mpsc::Receiver<Message>,
    pub(super) glue: Glue<S>,
}

/// Everything of a node's task but the Agent: what executes its outputs ([`Io`]).
pub(super) struct Glue<S: Store> {
    pub(super) node: NodeId,
    pub(super) store: Arc<S>,
    /// The node's clocks (`crate::clock`): the Agent's `now_ms` and the watchdog's readings.
    pub(super) clocks: Clocks,
    pub(super) store_timeout: Duration,
    pub(super) probe_timeout: Duration,
    /// The node's probes and the connections they keep.
    pub(super) prober: Arc<probe::Prober>,
    pub(super) tx: mpsc::Sender<Message>,
    pub(super) notifications: broadcast::Sender<NodeNotification>,
    pub(super) shared: Arc<Shared>,
    pub(super) addresses: BTreeMap<NodeId, String>,
    pub(super) reading: bool,
    pub(super) read_again: bool,
    /// The latest store confirmation a snapshot carried and the local time it was taken to be
    /// (`Snapshot::confirmed_at`): snapshots sharing a confirmation get the same read time.
    pub(super) confirmed: Option<(u64, u64)>,
    /// The application's proposals waiting for their result, by id.
    pub(super) requests: BTreeMap<ProposalId, Pending>,
    /// The application's place requests waiting for their result, by actor, oldest first,
    /// with their tickets (the Agent answers an actor's requests in order).
    pub(super) placing: BTreeMap<ActorId, VecDeque<(u64, PlaceReply)>>,
    /// Every task the node spawned (proposals, probes, reads): aborted when the node's task
    /// ends, whatever ends it (dropping the set aborts them).
    pub(super) tasks: JoinSet<()>,
    /// What the node counts for its metrics endpoint.
    pub(super) metrics: Arc<Metrics>,
}

/// What woke a node's loop.
enum Wake {
    /// The Agent's deadline passed.
    Deadline,
    /// A task of the node finished (a proposal, a probe, a read).
    Message(Box<Message>),
    /// The application's command.
    Command(Command),
    /// The store's registry changed (false: the watch closed).
    Changed(bool),
}

impl<S: Store> Runtime<S> {
    pub(super) async fn run(mut self) {
        let mut changes = self.glue.store.watch();
        let gap = Duration::from_millis(CHANGE_READ_GAP_MS);
        // When the next read for a change of the registry may start.
        let mut change_reads_from = tokio::time::Instant::now();
        loop {
            // Reap the finished tasks (the set holds only those still running).
            while self.glue.tasks.try_join_next().is_some() {}
            drain(&mut self.agent, &mut self.glue);
            let deadline = self.agent.poll_timeout().map(|at| self.glue.instant_at(at));
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            // A change seen within the gap waits for its end (one read then covers every
            // change of the gap).
            let gap_open = tokio::time::Instant::now() >= change_reads_from;
            let change_waits = !gap_open && changes.has_changed().unwrap_or(false);
            let gap_end = async {
                if change_waits {
                    tokio::time::sleep_until(change_reads_from).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let wake = tokio::select! {
                () = sleep => Wake::Deadline,
                () = gap_end => Wake::Changed(true),
                Some(message) = self.inbox.recv() => Wake::Message(Box::new(message)),
                command = self.commands.recv() => match command {
                    Some(command) => Wake::Command(command),
                    None => return,
                },
                changed = changes.changed(), if gap_open => Wake::Changed(changed.is_ok()),
            };
            // Every wake-up first reads the clocks for the watchdog, before any input it
            // brings (a jump is seen before it can start anything).
            self.check_clocks();
            match wake {
                Wake::Deadline => {
                    let now = self.glue.now_ms();
                    if let Err(error) = self.agent.handle_timeout(now) {
                        tracing::error!(%error, "the Agent refused a deadline: dropped");
                    }
                }
                Wake::Message(message) => self.handle(*message),
                Wake::Command(command) => self.command(command),
                Wake::Changed(changed) => {
                    if changed {
                        changes.borrow_and_update();
                        self.glue.read();
                        change_reads_from = tokio::time::Instant::now() + gap;
                    }
                }
            }
        }
    }

    /// Feeds the node's clock readings to the Agent's watchdog (`Agent::handle_clock`).
    fn check_clocks(&mut self) {
        let reading = self.glue.clocks.read();
        match self.agent.handle_clock(reading) {
            Ok(None) => {}
            Ok(Some(fault)) => tracing::warn!(?fault, ?reading, "clock suspect: fenced"),
            Err(error) => tracing::error!(%error, "the Agent refused a clock reading"),
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.glue.now_ms();
        match command {
            Command::Permits(only, reply) => {
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
                            valid_until: self.glue.instant_at(p.valid_until_ms),
                        };
                        (p.actor, permit)
                    })
                    .collect();
                let _ = reply.send(permits);
            }
            Command::Health(reply) => {
                let agent = &self.agent;
                let health = Health {
                    status: agent
                        .snapshot()
                        .and_then(|s| s.node(agent.node()))
                        .map(|r| r.status),
                    fenced: agent.fence_reason(),
                    snapshot_age_ms: agent.snapshot_read_at_ms().map(|t| now.saturating_sub(t)),
                    lease_ms: agent.timing().settings().lease_ms,
                    heartbeat_age_ms: agent
                        .last_heartbeat_commit_ms()
                        .map(|t| now.saturating_sub(t)),
                    serving: agent.serving().len(),
                    handoff_waiting: agent.handoff_waiting(),
                };
                let _ = reply.send(health);
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
                        // A snapshot confirmed current before it was asked for is as old
                        // as its confirmation (the age the lease rests on).
                        let read_at = match snapshot.confirmed_at {
                            Some(at) => {
                                let local = match self.glue.confirmed {
                                    Some((seen, local)) if seen == at => local,
                                    _ => {
                                        // Both ends on CLOCK_BOOTTIME: a suspend in between
                                        // counts in the age.
                                        let age = crate::clock::boottime_ms().saturating_sub(at);
                                        now.saturating_sub(age.saturating_add(1))
                                    }
                                };
                                self.glue.confirmed = Some((at, local));
                                read_at.min(local)
                            }
                            None => read_at,
                        };
                        debug_assert!(read_at <= now);
                        if let Err(error) = self.agent.handle_snapshot(
                            now,
                            read_at,
                            snapshot.state.clone(),
                            membership_core::Rounds {
                                round: snapshot.round,
                                heartbeat_rounds: snapshot.heartbeat_rounds.clone(),
                            },
                            slot,
                        ) {
                            tracing::error!(%error, "the Agent refused a snapshot: dropped");
                        }
                        self.glue
                            .shared
                            .snapshot
                            .send_replace(Some(Arc::from(snapshot)));
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
        self.clocks.now_ms()
    }

    /// The `Instant` at which the primary clock will show `at_ms`: now plus what is left (the
    /// short remainder is measured by tokio's clock). A time past what an `Instant` can hold
    /// (only the checker's never-fencing mutant makes one) counts as now: a permit that ends
    /// there is expired, a deadline there is due.
    fn instant_at(&self, at_ms: u64) -> Instant {
        let now = Instant::now();
        now.checked_add(Duration::from_millis(at_ms.saturating_sub(self.now_ms())))
            .unwrap_or(now)
    }
}

/// Executes the Agent's outputs (the runtime's half of [`drain`]).
impl<S: Store> Io for Glue<S> {
    fn propose(&mut self, out: Outgoing) {
        let store = self.store.clone();
        let timeout = self.store_timeout;
        let tx = self.tx.clone();
        let metrics = self.metrics.clone();
        let action = action_name(&out.proposal);
        let span =
            tracing::info_span!("proposal", id = %out.proposal.id, action = %out.proposal.action);
        self.tasks.spawn(
            async move {
                let started = Instant::now();
                let outcome = match tokio::time::timeout(timeout, store.propose(out.proposal)).await
                {
                    Err(_) => Ok(ProposalOutcome::Unknown),
                    Ok(result) => result,
                };
                let seconds = started.elapsed().as_secs_f64();
                metrics.proposal(action, outcome_label(&outcome), seconds);
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
        let prober = self.prober.clone();
        self.tasks.spawn(async move {
            let ok = match address {
                Some(address) => prober.probe(peer, &address, timeout).await,
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
            let _ = tx
                .send(Message::Snapshot(read_at, result.map(Box::new)))
                .await;
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
                self.metrics.activated();
                serving.insert(actor, epoch);
            }
            Decision::Deactivate { actor, .. } => {
                serving.remove(&actor);
            }
        }
    }

    fn notify(&mut self, notification: Notification) {
        tracing::debug!(?notification, "notification");
        self.metrics.notified(&notification);
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
