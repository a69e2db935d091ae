//! Peer probes over TCP: a node answers `PING` with `PONG` on its probe address, and probes a
//! peer by writing `PING` and reading `PONG` within the probe timeout.
//!
//! **Kept connections.** A [`Prober`] keeps the connection of a probe that was answered and
//! sends the next probe to the same address over it: a probe is then two small writes and two
//! reads, not a TCP handshake, an accept and a close on both sides (with many nodes on one
//! machine, as in the examples and tests, the handshakes were most of the processes' work). It
//! keeps at most [`PROBE_CONNECTIONS_KEPT_MAX`] (the first ones answered; a connection that
//! fails makes room), and a probe to any other address connects afresh. A connection whose
//! probe was not answered in time is closed, never reused: a late `PONG` cannot answer a later
//! probe. A node answering probes closes a connection idle for [`PROBE_IDLE_MS`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const PING: &[u8; 4] = b"PING";
const PONG: &[u8; 4] = b"PONG";

/// The most probe connections a node answers at once; more wait in the accept queue.
pub const PROBE_CONNECTIONS_MAX: usize = 256;

/// The most connections a [`Prober`] keeps open for its next probes.
pub const PROBE_CONNECTIONS_KEPT_MAX: usize = 64;

/// How long a node answering probes keeps a connection that sends nothing, in ms.
pub const PROBE_IDLE_MS: u64 = 10_000;

/// Binds `address` and answers probes until the returned task is aborted. Returns the bound
/// address (useful with port 0) and the task. Aborting the task closes the listener and every
/// connection it is answering (they live in the task's own set of tasks).
pub async fn serve(address: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(PROBE_CONNECTIONS_MAX));
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            connections.spawn(async move {
                answer(stream).await;
                drop(permit);
            });
        }
    });
    Ok((bound, task))
}

/// Answers the probes of one connection until it closes, sends something else, or stays idle
/// for [`PROBE_IDLE_MS`].
async fn answer(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let idle = Duration::from_millis(PROBE_IDLE_MS);
    let mut buf = [0u8; 4];
    // Each pass answers one probe; a kept connection carries a probe every few rounds.
    loop {
        match tokio::time::timeout(idle, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == PING => {
                if stream.write_all(PONG).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Sends one probe over `stream` and reads its answer.
async fn ping(stream: &mut TcpStream) -> std::io::Result<bool> {
    stream.write_all(PING).await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    Ok(&buf == PONG)
}

/// A node's probes, with the connections it keeps for the next ones (by address).
#[derive(Debug, Default)]
pub struct Prober {
    kept: Mutex<BTreeMap<String, TcpStream>>,
}

impl Prober {
    /// A prober keeping no connection yet.
    pub fn new() -> Prober {
        Prober::default()
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TcpStream>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections it keeps now.
    pub fn kept_count(&self) -> usize {
        self.kept().len()
    }

    /// Probes the node answering at `address`: true when it answered within `timeout`. Uses
    /// the connection kept for `address` if there is one (a kept connection the peer closed
    /// is replaced by a new one within the same timeout).
    pub async fn probe(&self, address: &str, timeout: Duration) -> bool {
        let kept = self.kept().remove(address);
        let attempt = async {
            if let Some(mut stream) = kept {
                if let Ok(answered) = ping(&mut stream).await {
                    return answered.then_some(stream);
                }
            }
            let mut stream = TcpStream::connect(address).await.ok()?;
            let _ = stream.set_nodelay(true);
            ping(&mut stream).await.ok()?.then_some(stream)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Some(stream)) => {
                let mut kept = self.kept();
                if kept.len() < PROBE_CONNECTIONS_KEPT_MAX {
                    kept.entry(address.to_string()).or_insert(stream);
                }
                debug_assert!(kept.len() <= PROBE_CONNECTIONS_KEPT_MAX);
                true
            }
            // Unanswered (or answered late): the connection is dropped with the attempt.
            _ => false,
        }
    }
}

/// Probes the node answering at `address` over a new connection: true when it answered within
/// `timeout`.
pub async fn probe(address: &str, timeout: Duration) -> bool {
    Prober::new().probe(address, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_served_address_answers_and_a_closed_one_does_not() {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let timeout = Duration::from_millis(500);
        assert!(probe(&address.to_string(), timeout).await);
        task.abort();
        let _ = task.await;
        assert!(!probe(&address.to_string(), Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn a_kept_connection_answers_again_and_a_closed_peer_is_unreachable_through_it() {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = address.to_string();
        let timeout = Duration::from_millis(500);
        let prober = Prober::new();
        assert!(prober.probe(&address, timeout).await);
        assert_eq!(prober.kept_count(), 1, "the answered connection is kept");
        assert!(prober.probe(&address, timeout).await);
        assert_eq!(prober.kept_count(), 1, "and used again, not doubled");
        task.abort();
        let _ = task.await;
        assert!(
            !prober.probe(&address, Duration::from_millis(200)).await,
            "a kept connection to a node that stopped answering does not answer for it"
        );
        assert_eq!(prober.kept_count(), 0, "a failed connection is not kept");
    }

    #[tokio::test]
    async fn a_probe_unanswered_in_time_fails_and_its_connection_is_not_kept() {
        // A listener that accepts and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let prober = Prober::new();
        assert!(!prober.probe(&address, Duration::from_millis(100)).await);
        assert_eq!(prober.kept_count(), 0);
        silent.abort();
    }
}
