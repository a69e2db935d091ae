//! A node's metrics and health: what its task counts as it runs ([`Metrics`]), what it reports
//! when asked ([`Health`]), whether it is ready ([`readiness`]), and one scrape rendered in the
//! Prometheus text format ([`Scrape::render`], through `prometheus-client`'s encoder).
//!
//! Every family is written in a fixed order and every labelled family in its labels' order
//! (`BTreeMap`s): two scrapes of the same state are the same text.

use crate::store::{Snapshot, StoreStats};
use membership_core::{FenceReason, NodeId, NodeStatus, Notification, ProposalOutcome};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The prefix of every metric name (`membership_members`, ...).
pub const METRICS_PREFIX: &str = "membership";
/// The commit latency histogram's first bucket's upper bound, in seconds (0.1 ms).
pub const METRICS_LATENCY_FIRST_BUCKET_SECONDS: f64 = 0.000_1;
/// The factor between consecutive upper bounds of the commit latency histogram.
pub const METRICS_LATENCY_BUCKET_FACTOR: f64 = 2.0;
/// The commit latency histogram's finite buckets (0.1 ms doubling to about 6.6 s; then +Inf).
pub const METRICS_LATENCY_BUCKETS_COUNT: u16 = 17;

/// Every node status, in the order the `membership_members` family lists them.
const STATUSES: [NodeStatus; 5] = [
    NodeStatus::Joining,
    NodeStatus::Active,
    NodeStatus::Leaving,
    NodeStatus::Failed,
    NodeStatus::Left,
];

/// What a node's task counts as it runs, shared with its metrics endpoint.
#[derive(Debug)]
pub(super) struct Metrics {
    counters: Mutex<Counters>,
    commit_latency: Histogram,
}

/// The counters of [`Metrics`], by label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Counters {
    /// Proposals answered, by (action, outcome).
    pub(super) proposals: BTreeMap<(String, &'static str), u64>,
    /// Fences, by reason.
    pub(super) fences: BTreeMap<&'static str, u64>,
    /// Nodes this node saw declared failed.
    pub(super) failure_declarations: u64,
    /// Activations, each after a hand-off wait.
    pub(super) handoff_waits: u64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            counters: Mutex::new(Counters::default()),
            commit_latency: Histogram::new(exponential_buckets(
                METRICS_LATENCY_FIRST_BUCKET_SECONDS,
                METRICS_LATENCY_BUCKET_FACTOR,
                METRICS_LATENCY_BUCKETS_COUNT,
            )),
        }
    }
}

/// The label of a proposal's outcome (`Err`: the store could not run it).
pub(super) fn outcome_label<E>(outcome: &Result<ProposalOutcome, E>) -> &'static str {
    match outcome {
        Ok(ProposalOutcome::Committed { .. }) => "committed",
        Ok(ProposalOutcome::Refused(_)) => "refused",
        Ok(ProposalOutcome::Unavailable) => "unavailable",
        Ok(ProposalOutcome::Unknown) => "unknown",
        Err(_) => "error",
    }
}

/// The label of a fence reason (the clock fault's figures left out: one label per kind).
pub(super) fn fence_label(reason: FenceReason) -> &'static str {
    match reason {
        FenceReason::LeaseExpired => "LeaseExpired",
        FenceReason::RegistryUnreachable => "RegistryUnreachable",
        FenceReason::DeclaredFailed => "DeclaredFailed",
        FenceReason::Superseded => "Superseded",
        FenceReason::ClockSuspect(_) => "ClockSuspect",
    }
}

impl Metrics {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A proposal of `action` answered with `outcome` after `seconds` (a commit's round trip
    /// goes into the latency histogram).
    pub(super) fn proposal(&self, action: String, outcome: &'static str, seconds: f64) {
        *self
            .counters()
            .proposals
            .entry((action, outcome))
            .or_default() += 1;
        if outcome == "committed" {
            self.commit_latency.observe(seconds);
        }
    }

    /// A notification of the node's (fences and failure declarations are counted).
    pub(super) fn notified(&self, notification: &Notification) {
        match notification {
            Notification::Fenced { reason } => {
                *self
                    .counters()
                    .fences
                    .entry(fence_label(*reason))
                    .or_default() += 1;
            }
            Notification::NodeFailed { .. } => self.counters().failure_declarations += 1,
            _ => {}
        }
    }

    /// An actor activated (after its hand-off wait).
    pub(super) fn activated(&self) {
        self.counters().handoff_waits += 1;
    }

    /// The counters now.
    pub(super) fn snapshot(&self) -> Counters {
        self.counters().clone()
    }
}

/// What a node's task reports about itself when asked (at scrape time, by its own clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Health {
    /// The node's status in the Agent's latest snapshot (`None`: no snapshot, or not listed).
    pub(super) status: Option<NodeStatus>,
    /// Why the node is fenced, if it is.
    pub(super) fenced: Option<FenceReason>,
    /// How old the Agent's latest snapshot is, counted from when it was asked for.
    pub(super) snapshot_age_ms: Option<u64>,
    /// The lease (`lease_ms` of the node's timing).
    pub(super) lease_ms: u64,
    /// How long ago the node's latest heartbeat commit was handled.
    pub(super) heartbeat_age_ms: Option<u64>,
    /// The actors the node has activated.
    pub(super) serving: usize,
    /// The actors waiting out the hand-off wait.
    pub(super) handoff_waiting: usize,
}

/// Whether the node is ready to serve, or the one-line reason it is not: its task runs
/// (`stopped` is `None`) and answered (`health` is `Ok`, else the reason it did not), it is
/// Active, not fenced, and its latest snapshot is younger than the lease.
pub(super) fn readiness(
    stopped: Option<&str>,
    health: Result<&Health, &str>,
) -> Result<(), String> {
    if let Some(reason) = stopped {
        return Err(format!("the node has stopped: {reason}"));
    }
    let health = health.map_err(str::to_string)?;
    match health.status {
        Some(NodeStatus::Active) => {}
        Some(status) => return Err(format!("the node is {status}, not Active")),
        None => return Err("the node has no snapshot of the registry yet".to_string()),
    }
    if let Some(reason) = health.fenced {
        return Err(format!("the node is fenced: {}", fence_label(reason)));
    }
    match health.snapshot_age_ms {
        Some(age) if age < health.lease_ms => Ok(()),
        Some(age) => Err(format!(
            "the node's snapshot is {age} ms old, not fresher than the lease ({} ms)",
            health.lease_ms
        )),
        None => Err("the node has no snapshot of the registry yet".to_string()),
    }
}

/// One scrape: everything a `/metrics` answer shows, gathered when it was asked for.
#[derive(Clone, Debug)]
pub(super) struct Scrape {
    /// The node.
    pub(super) node: NodeId,
    /// The incarnation it holds.
    pub(super) incarnation: u64,
    /// The node's latest snapshot of the registry.
    pub(super) snapshot: Option<std::sync::Arc<Snapshot>>,
    /// What the task reported (`None`: it did not answer).
    pub(super) health: Option<Health>,
    /// Whether the node is ready ([`readiness`]).
    pub(super) ready: bool,
    /// The task's counters.
    pub(super) counters: Counters,
    /// The commit latency histogram (shared with the task).
    pub(super) commit_latency: Histogram,
    /// The store handle's statistics.
    pub(super) store: StoreStats,
}

impl Scrape {
    /// Gathers a scrape from the task's metrics and the rest.
    pub(super) fn new(
        metrics: &Metrics,
        node: NodeId,
        incarnation: u64,
        snapshot: Option<std::sync::Arc<Snapshot>>,
        health: Option<Health>,
        ready: bool,
        store: StoreStats,
    ) -> Scrape {
        Scrape {
            node,
            incarnation,
            snapshot,
            health,
            ready,
            counters: metrics.snapshot(),
            commit_latency: metrics.commit_latency.clone(),
            store,
        }
    }

    /// The scrape in the Prometheus text format (version 0.0.4).
    pub(super) fn render(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix(METRICS_PREFIX);
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

fn seconds(ms: u64) -> f64 {
    // Milliseconds below 2^53 are exact in an f64; larger ones round, which a gauge may.
    #[allow(clippy::cast_precision_loss)]
    let ms = ms as f64;
    ms / 1_000.0
}

/// Writes one unlabelled gauge.
fn gauge<V>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> std::fmt::Result
where
    V: prometheus_client::encoding::EncodeGaugeValue + Clone + std::fmt::Debug + Send + Sync,
    ConstGauge<V>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    metric.encode(m)
}

/// Writes one gauge or counter family, one sample per label set, in the map's order.
fn family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(L, u64)],
) -> std::fmt::Result {
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = m.encode_family(labels)?;
        if kind == MetricType::Counter {
            ConstCounter::new(*value).encode(sample)?;
        } else {
            ConstGauge::new(*value).encode(sample)?;
        }
    }
    Ok(())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        let state = self.snapshot.as_ref().map(|s| &s.state);
        gauge(e, "node", "This node's id", u64::from(self.node.0))?;
        gauge(
            e,
            "incarnation",
            "The incarnation this process holds",
            self.incarnation,
        )?;
        gauge(
            e,
            "ready",
            "1 when /readyz answers 200 (Active, not fenced, snapshot fresher than the lease)",
            u64::from(self.ready),
        )?;
        let members: Vec<([(&str, String); 1], u64)> = STATUSES
            .iter()
            .map(|&status| {
                let n = state.map_or(0, |s| u64::from(s.with_status(status).len()));
                ([("status", status.to_string())], n)
            })
            .collect();
        family(
            e,
            "members",
            "Nodes by status, in this node's latest snapshot",
            MetricType::Gauge,
            &members,
        )?;
        let primary = state.and_then(|s| s.primary_in_office());
        let term = primary
            .and_then(|p| state.and_then(|s| s.node(p)))
            .map_or(0, |r| r.term);
        gauge(
            e,
            "primary_term",
            "The term of the primary in office (0: none), in this node's latest snapshot",
            term,
        )?;
        gauge(
            e,
            "primary_node",
            "The id of the primary in office (0: none)",
            primary.map_or(0, |p| u64::from(p.0)),
        )?;
        gauge(
            e,
            "is_primary",
            "1 when this node is the primary in office",
            u64::from(primary == Some(self.node)),
        )?;
        gauge(
            e,
            "configuration",
            "The node count of the registry's configuration",
            state.map_or(0, |s| u64::from(s.config().node_count())),
        )?;
        gauge(
            e,
            "migration_queue_length",
            "Actors waiting in the registry's migration queue",
            state.map_or(0, |s| count(s.queue().len())),
        )?;
        gauge(
            e,
            "actors_placed",
            "Actors placed in the registry (on any node)",
            state.map_or(0, |s| count(s.placements().len())),
        )?;
        if let Some(s) = &self.snapshot {
            gauge(
                e,
                "heartbeat_round",
                "The registry's open heartbeat round",
                s.round,
            )?;
            let behind: Vec<([(&str, String); 1], u64)> = s
                .state
                .active()
                .iter()
                .map(|n| {
                    let at = s.heartbeat_rounds.get(&n).copied().unwrap_or(0);
                    ([("node", n.to_string())], s.round.saturating_sub(at))
                })
                .collect();
            family(
                e,
                "heartbeat_rounds_behind",
                "For each Active node: the open round less the round of its latest heartbeat",
                MetricType::Gauge,
                &behind,
            )?;
        }
        if let Some(h) = &self.health {
            gauge(
                e,
                "fenced",
                "1 while the node is fenced (serves nothing)",
                u64::from(h.fenced.is_some()),
            )?;
            gauge(
                e,
                "actors_served",
                "Actors this node has activated",
                count(h.serving),
            )?;
            gauge(
                e,
                "handoff_waiting_actors",
                "Actors placed on this node waiting out the hand-off wait",
                count(h.handoff_waiting),
            )?;
            if let Some(age) = h.snapshot_age_ms {
                gauge(
                    e,
                    "snapshot_age_seconds",
                    "Age of the node's latest snapshot, from when it was asked for",
                    seconds(age),
                )?;
            }
            if let Some(age) = h.heartbeat_age_ms {
                gauge(
                    e,
                    "heartbeat_lag_seconds",
                    "Time since the node's latest heartbeat commit",
                    seconds(age),
                )?;
            }
        }
        let c = &self.counters;
        let fences: Vec<([(&str, &str); 1], u64)> = c
            .fences
            .iter()
            .map(|(r, n)| ([("reason", *r)], *n))
            .collect();
        family(
            e,
            "fences",
            "Times the node fenced itself, by reason",
            MetricType::Counter,
            &fences,
        )?;
        let declared = ConstCounter::new(c.failure_declarations);
        declared.encode(e.encode_descriptor(
            "failure_declarations",
            "Nodes this node saw declared failed",
            None,
            MetricType::Counter,
        )?)?;
        let waits = ConstCounter::new(c.handoff_waits);
        waits.encode(e.encode_descriptor(
            "handoff_waits",
            "Activations, each after its hand-off wait",
            None,
            MetricType::Counter,
        )?)?;
        let proposals: Vec<([(&str, &str); 2], u64)> = c
            .proposals
            .iter()
            .map(|((action, outcome), n)| {
                ([("action", action.as_str()), ("outcome", *outcome)], *n)
            })
            .collect();
        family(
            e,
            "proposals",
            "This node's proposals answered by the store, by action and outcome",
            MetricType::Counter,
            &proposals,
        )?;
        let latency = e.encode_descriptor(
            "commit_latency_seconds",
            "Round trip of this node's committed proposals (the store's transaction as the node sees it)",
            None,
            MetricType::Histogram,
        )?;
        self.commit_latency.encode(latency)?;
        let commits: Vec<([(&str, &str); 1], u64)> = self
            .store
            .commits
            .iter()
            .map(|(a, n)| ([("action", a.as_str())], *n))
            .collect();
        family(
            e,
            "store_commits",
            "Transactions committed by the node's store handle, by action",
            MetricType::Counter,
            &commits,
        )?;
        let conflicts: Vec<([(&str, &str); 1], u64)> = self
            .store
            .conflicts
            .iter()
            .map(|(a, n)| ([("action", a.as_str())], *n))
            .collect();
        family(
            e,
            "store_conflicts",
            "Transactions of the node's store handle that conflicted and ran again, by action",
            MetricType::Counter,
            &conflicts,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> Health {
        Health {
            status: Some(NodeStatus::Active),
            fenced: None,
            snapshot_age_ms: Some(10),
            lease_ms: 300,
            heartbeat_age_ms: Some(5),
            serving: 0,
            handoff_waiting: 0,
        }
    }

    #[test]
    fn ready_only_when_active_unfenced_and_fresh() {
        assert_eq!(readiness(None, Ok(&active())), Ok(()));
        let refused = |stopped: Option<&str>, health: Result<&Health, &str>| {
            readiness(stopped, health).expect_err("not ready")
        };
        assert_eq!(
            refused(Some("the node was killed"), Ok(&active())),
            "the node has stopped: the node was killed"
        );
        assert_eq!(refused(None, Err("no answer")), "no answer");
        let joining = Health {
            status: Some(NodeStatus::Joining),
            ..active()
        };
        assert_eq!(
            refused(None, Ok(&joining)),
            "the node is Joining, not Active"
        );
        let unknown = Health {
            status: None,
            ..active()
        };
        assert_eq!(
            refused(None, Ok(&unknown)),
            "the node has no snapshot of the registry yet"
        );
        let fenced = Health {
            fenced: Some(FenceReason::LeaseExpired),
            ..active()
        };
        assert_eq!(
            refused(None, Ok(&fenced)),
            "the node is fenced: LeaseExpired"
        );
        let stale = Health {
            snapshot_age_ms: Some(300),
            ..active()
        };
        assert_eq!(
            refused(None, Ok(&stale)),
            "the node's snapshot is 300 ms old, not fresher than the lease (300 ms)"
        );
    }
}
