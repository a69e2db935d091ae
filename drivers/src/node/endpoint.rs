//! What a node's metrics endpoint answers: `/livez` from whether the node's task runs,
//! `/readyz` and `/metrics` from what the task reports when asked (its health), its latest
//! snapshot, its counters and its store's statistics.

use super::api::{METRICS_TASK_ANSWER_TIMEOUT_MS, STOP_REASON_WAIT_MS};
use super::http::{Response, Route};
use super::metrics::{readiness, Health, Metrics, Scrape};
use super::wire::{Command, Shared};
use crate::store::Store;
use membership_core::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// The content type of a scrape (the Prometheus text format, version 0.0.4).
const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything the endpoint reads, shared with the node's handle and task.
pub(super) struct Endpoint<S: Store> {
    pub(super) node: NodeId,
    pub(super) incarnation: u64,
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) shared: Arc<Shared>,
    pub(super) store: Arc<S>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) task: AbortHandle,
}

impl<S: Store> Endpoint<S> {
    /// Why the node's task has ended, if it has. A task that has ended but whose reason is not
    /// yet published (a kill is seen before the task that publishes it runs) is waited for at
    /// most [`STOP_REASON_WAIT_MS`], then named generically.
    async fn stopped(&self) -> Option<String> {
        let published = self.shared.stopped.borrow().clone();
        if published.is_some() || !self.task.is_finished() {
            return published;
        }
        let mut rx = self.shared.stopped.subscribe();
        let wait = rx.wait_for(Option::is_some);
        let reason =
            match tokio::time::timeout(Duration::from_millis(STOP_REASON_WAIT_MS), wait).await {
                Ok(Ok(reason)) => reason.clone(),
                _ => None,
            };
        reason.or_else(|| Some("the node's task ended".to_string()))
    }

    /// Asks the node's task for its health, waiting at most
    /// [`METRICS_TASK_ANSWER_TIMEOUT_MS`].
    async fn health(&self) -> Result<Health, String> {
        let ask = async {
            let (tx, rx) = oneshot::channel();
            if self.commands.send(Command::Health(tx)).await.is_err() {
                return Err("the node's task has ended".to_string());
            }
            rx.await
                .map_err(|_| "the node's task ended before it answered".to_string())
        };
        tokio::time::timeout(Duration::from_millis(METRICS_TASK_ANSWER_TIMEOUT_MS), ask)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the node's task did not answer within {METRICS_TASK_ANSWER_TIMEOUT_MS} ms"
                ))
            })
    }

    /// The answer to `route`.
    pub(super) async fn answer(&self, route: Route) -> Response {
        let stopped = self.stopped().await;
        if route == Route::Livez {
            return match stopped {
                Some(reason) => Response::text(503, format!("the node has stopped: {reason}")),
                None => Response::text(200, "ok: the node's task runs"),
            };
        }
        let health = match &stopped {
            Some(_) => Err("the node has stopped".to_string()),
            None => self.health().await,
        };
        let ready = readiness(stopped.as_deref(), health.as_ref().map_err(String::as_str));
        match route {
            Route::Livez | Route::Readyz => match ready {
                Ok(()) => Response::text(200, "ready"),
                Err(reason) => Response::text(503, reason),
            },
            Route::Metrics => {
                let scrape = Scrape::new(
                    &self.metrics,
                    self.node,
                    self.incarnation,
                    self.shared.snapshot.borrow().clone(),
                    health.ok(),
                    ready.is_ok(),
                    self.store.stats(),
                );
                match scrape.render() {
                    Ok(body) => Response {
                        status: 200,
                        content_type: METRICS_CONTENT_TYPE,
                        body,
                    },
                    Err(_) => Response::text(500, "the metrics could not be encoded"),
                }
            }
        }
    }
}
