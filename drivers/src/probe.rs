//! Peer probes over TCP: a node answers `PING` with `PONG` on its probe address, and probes a
//! peer by writing `PING` and reading `PONG` within the probe timeout.
//!
//! **Authenticated probes.** With a [`NodeIdentity`], both sides run TLS 1.3 before the first
//! `PING` (see [`crate::identity`]): the answering process must present a certificate of the
//! cluster's CA naming the probed node, and the probing process one of the same CA. A probe
//! whose handshake fails (no certificate, another CA's, another node's, or a peer speaking plain
//! TCP) is unanswered: the peer counts as unreachable. A cluster is all TLS or all plain.
//!
//! **Kept connections.** A [`Prober`] keeps the connection of a probe that was answered and
//! sends the next probe of the same node at the same address over it: a probe is then two small
//! writes and two reads, not a handshake, an accept and a close on both sides (with many nodes
//! on one machine, as in the examples and tests, the handshakes were most of the processes'
//! work). It keeps only its connections to the peers within [`PROBE_KEEP_SPAN`] of it in id
//! order, at most [`PROBE_CONNECTIONS_KEPT_MAX`], so a node answers at most
//! `2 * PROBE_KEEP_SPAN` kept connections however large the cluster, and the rest of its
//! [`PROBE_CONNECTIONS_MAX`] answering slots serve the one-probe connections of the others
//! (closed as soon as answered). A probe to any other node or address connects afresh (a
//! connection that proved node `n3` never answers for another node that took its address). A
//! connection whose probe was not answered in time is closed, never reused: a late
//! `PONG` cannot answer a later probe. A node answering probes closes a connection idle for
//! [`PROBE_IDLE_MS`], and one whose handshake takes longer than [`PROBE_HANDSHAKE_MS`].

use crate::identity::{server_name, NodeIdentity};
use membership_core::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const PING: &[u8; 4] = b"PING";
const PONG: &[u8; 4] = b"PONG";

/// The most probe connections a node answers at once; more wait in the accept queue.
pub const PROBE_CONNECTIONS_MAX: usize = 256;

/// The most connections a [`Prober`] keeps open for its next probes.
pub const PROBE_CONNECTIONS_KEPT_MAX: usize = 2 * PROBE_KEEP_SPAN;

/// A [`Prober`] keeps its connection to a peer only when their ids differ by at most this much
/// (the peers near it in id order), so that a node answers at most `2 * PROBE_KEEP_SPAN` kept
/// connections however large the cluster: well below [`PROBE_CONNECTIONS_MAX`], which leaves
/// room for the connections of every other prober, opened for one probe and closed after it.
/// (When every prober kept its connections to the first peers it probed, which are the same
/// lowest ids for every node, those nodes held a kept connection from every other node, and in
/// a cluster of more than `PROBE_CONNECTIONS_MAX + 1` nodes the probes beyond it went
/// unanswered.)
pub const PROBE_KEEP_SPAN: usize = 64;

/// How long a node answering probes keeps a connection that sends nothing, in ms.
pub const PROBE_IDLE_MS: u64 = 10_000;

/// How long a node answering probes waits for a prober's TLS handshake, in ms.
pub const PROBE_HANDSHAKE_MS: u64 = 2_000;

// A node's kept connections leave most of its answering slots to one-probe connections.
const _: () = assert!(2 * PROBE_KEEP_SPAN <= PROBE_CONNECTIONS_MAX / 2);

/// A probe connection: plain TCP, or TLS over it.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Connection for T {}

/// Binds `address` and answers probes until the returned task is aborted; with `identity`,
/// only over TLS, proving that identity to probers that prove theirs. Returns the bound
/// address (useful with port 0) and the task. Aborting the task closes the listener and every
/// connection it is answering (they live in the task's own set of tasks).
pub async fn serve(
    address: SocketAddr,
    identity: Option<NodeIdentity>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let permits = Arc::new(tokio::sync::Semaphore::new(PROBE_CONNECTIONS_MAX));
    let acceptor = identity.map(|identity| identity.acceptor());
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
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                let _ = stream.set_nodelay(true);
                match acceptor {
                    None => answer(stream).await,
                    Some(acceptor) => {
                        let handshake = Duration::from_millis(PROBE_HANDSHAKE_MS);
                        // A prober without a certificate of the CA is refused here.
                        if let Ok(Ok(tls)) =
                            tokio::time::timeout(handshake, acceptor.accept(stream)).await
                        {
                            answer(tls).await;
                        }
                    }
                }
                drop(permit);
            });
        }
    });
    Ok((bound, task))
}

/// Answers the probes of one connection until it closes, sends something else, or stays idle
/// for [`PROBE_IDLE_MS`].
async fn answer(mut stream: impl Connection) {
    let idle = Duration::from_millis(PROBE_IDLE_MS);
    let mut buf = [0u8; 4];
    // Each pass answers one probe; a kept connection carries a probe every few rounds.
    loop {
        match tokio::time::timeout(idle, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == PING => {
                if stream.write_all(PONG).await.is_err() {
                    return;
                }
                if stream.flush().await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Sends one probe over `stream` and reads its answer.
async fn ping(stream: &mut (dyn Connection + '_)) -> std::io::Result<bool> {
    stream.write_all(PING).await?;
    stream.flush().await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    Ok(&buf == PONG)
}

/// A node's probes, with the connections it keeps for the next ones (by node and address; only
/// to the peers within [`PROBE_KEEP_SPAN`] of it in id order).
#[derive(Default)]
pub struct Prober {
    /// The probing node (`None`: keeps no connection).
    me: Option<NodeId>,
    identity: Option<NodeIdentity>,
    kept: Mutex<BTreeMap<(NodeId, String), Box<dyn Connection>>>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("me", &self.me)
            .field("identity", &self.identity)
            .field("kept", &self.kept_count())
            .finish()
    }
}

impl Prober {
    /// The prober of node `me` over plain TCP, keeping no connection yet.
    pub fn new(me: NodeId) -> Prober {
        Prober {
            me: Some(me),
            identity: None,
            kept: Mutex::default(),
        }
    }

    /// A prober over TLS proving `identity` (its node's): a probed node must prove its own.
    pub fn with_identity(identity: NodeIdentity) -> Prober {
        Prober {
            me: Some(identity.node()),
            identity: Some(identity),
            kept: Mutex::default(),
        }
    }

    /// Whether this prober keeps its connection to `peer` after a probe answered.
    fn keeps(&self, peer: NodeId) -> bool {
        self.me
            .is_some_and(|me| me != peer && usize::from(me.0.abs_diff(peer.0)) <= PROBE_KEEP_SPAN)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, BTreeMap<(NodeId, String), Box<dyn Connection>>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections it keeps now.
    pub fn kept_count(&self) -> usize {
        self.kept().len()
    }

    /// Connects to `address` (over TLS, expecting `node`'s certificate, with an identity).
    async fn connect(&self, node: NodeId, address: &str) -> Option<Box<dyn Connection>> {
        let stream = TcpStream::connect(address).await.ok()?;
        let _ = stream.set_nodelay(true);
        match &self.identity {
            None => Some(Box::new(stream)),
            Some(identity) => {
                let name = server_name(node).ok()?;
                let tls = identity.connector().connect(name, stream).await.ok()?;
                Some(Box::new(tls))
            }
        }
    }

    /// Probes `node` answering at `address`: true when it answered within `timeout` (and, with
    /// an identity, proved it is `node`). Uses the connection kept for `node` at `address` if
    /// there is one (a kept connection the peer closed is replaced by a new one within the same
    /// timeout).
    pub async fn probe(&self, node: NodeId, address: &str, timeout: Duration) -> bool {
        let key = (node, address.to_string());
        let kept = self.kept().remove(&key);
        let attempt = async {
            if let Some(mut stream) = kept {
                if let Ok(answered) = ping(stream.as_mut()).await {
                    return answered.then_some(stream);
                }
            }
            let mut stream = self.connect(node, address).await?;
            ping(stream.as_mut()).await.ok()?.then_some(stream)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Some(stream)) => {
                // Not kept: closed here, so that the peer's answering slot is free again.
                if self.keeps(node) {
                    let mut kept = self.kept();
                    if kept.len() < PROBE_CONNECTIONS_KEPT_MAX {
                        kept.entry(key).or_insert(stream);
                    }
                    debug_assert!(kept.len() <= PROBE_CONNECTIONS_KEPT_MAX);
                }
                true
            }
            // Unanswered (or answered late): the connection is dropped with the attempt.
            _ => false,
        }
    }
}

/// Probes `node` answering at `address` over a new plain connection: true when it answered
/// within `timeout`.
pub async fn probe(node: NodeId, address: &str, timeout: Duration) -> bool {
    Prober::default().probe(node, address, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: NodeId = NodeId(1);

    #[tokio::test]
    async fn a_served_address_answers_and_a_closed_one_does_not() {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        let timeout = Duration::from_millis(500);
        assert!(probe(N1, &address.to_string(), timeout).await);
        task.abort();
        let _ = task.await;
        assert!(!probe(N1, &address.to_string(), Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn a_kept_connection_answers_again_and_a_closed_peer_is_unreachable_through_it() {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        let address = address.to_string();
        let timeout = Duration::from_millis(500);
        let prober = Prober::new(NodeId(2));
        assert!(prober.probe(N1, &address, timeout).await);
        assert_eq!(prober.kept_count(), 1, "the answered connection is kept");
        assert!(prober.probe(N1, &address, timeout).await);
        assert_eq!(prober.kept_count(), 1, "and used again, not doubled");
        task.abort();
        let _ = task.await;
        assert!(
            !prober.probe(N1, &address, Duration::from_millis(200)).await,
            "a kept connection to a node that stopped answering does not answer for it"
        );
        assert_eq!(prober.kept_count(), 0, "a failed connection is not kept");
    }

    /// More probers than a node answers connections at once ([`PROBE_CONNECTIONS_MAX`]), each
    /// probing it twice: every probe is answered. (When every prober kept its connection to the
    /// node, the connections beyond the limit waited in the accept queue, unanswered, until a
    /// kept one went idle: in a cluster of more than 257 nodes, the nodes every prober keeps
    /// connections to could not answer the others' probes.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_probers_than_the_answer_limit_are_all_answered() {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        let address = address.to_string();
        let timeout = Duration::from_millis(2_000);
        let probers: Vec<Prober> = (2..=u16::try_from(PROBE_CONNECTIONS_MAX + 40).unwrap())
            .map(|me| Prober::new(NodeId(me)))
            .collect();
        for round in 1..=2 {
            let mut unanswered = Vec::new();
            for (i, prober) in probers.iter().enumerate() {
                if !prober.probe(N1, &address, timeout).await {
                    unanswered.push(i + 2);
                }
            }
            assert_eq!(
                unanswered,
                Vec::<usize>::new(),
                "round {round}: these probers got no answer"
            );
        }
        let kept: usize = probers.iter().map(Prober::kept_count).sum();
        assert_eq!(
            kept, PROBE_KEEP_SPAN,
            "n2..=n33 keep a connection to n1, no other"
        );
        task.abort();
    }

    /// Over every node id a cluster can hold, a node is kept by at most `2 * PROBE_KEEP_SPAN`
    /// probers, and a prober keeps at most that many peers, never itself.
    #[test]
    fn a_node_answers_at_most_twice_the_span_of_kept_connections() {
        let max = membership_core::NODES_MAX;
        let probers: Vec<Prober> = (1..=max).map(|me| Prober::new(NodeId(me))).collect();
        for peer in (1..=max).map(NodeId) {
            let keepers = probers.iter().filter(|p| p.keeps(peer)).count();
            assert!(
                keepers <= 2 * PROBE_KEEP_SPAN,
                "{peer} is kept by {keepers}"
            );
            assert!(keepers >= PROBE_KEEP_SPAN, "{peer} is kept by {keepers}");
        }
        for prober in &probers {
            let kept = (1..=max).filter(|&n| prober.keeps(NodeId(n))).count();
            assert!((PROBE_KEEP_SPAN..=PROBE_CONNECTIONS_KEPT_MAX).contains(&kept));
            assert!(prober.me.is_some_and(|me| !prober.keeps(me)));
        }
        assert!(!Prober::default().keeps(NodeId(1)));
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
        let prober = Prober::new(NodeId(2));
        assert!(!prober.probe(N1, &address, Duration::from_millis(100)).await);
        assert_eq!(prober.kept_count(), 0);
        silent.abort();
    }
}

#[cfg(test)]
mod authenticated {
    use super::*;
    use crate::identity::{Authority, Credentials};

    const TIMEOUT: Duration = Duration::from_millis(1_000);

    fn identity(ca: &Authority, node: u16) -> NodeIdentity {
        let name = NodeId(node).to_string();
        NodeIdentity::new(NodeId(node), &ca.credentials(&name, &[]).unwrap()).unwrap()
    }

    async fn serving(identity: Option<NodeIdentity>) -> (String, JoinHandle<()>) {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap(), identity)
            .await
            .unwrap();
        (address.to_string(), task)
    }

    #[tokio::test]
    async fn a_node_proving_its_identity_answers_for_itself_and_for_no_other_node() {
        let ca = Authority::generate("test CA").unwrap();
        let (address, task) = serving(Some(identity(&ca, 1))).await;
        let prober = Prober::with_identity(identity(&ca, 2));
        assert!(prober.probe(NodeId(1), &address, TIMEOUT).await);
        assert!(
            prober.probe(NodeId(1), &address, TIMEOUT).await,
            "kept, answered again"
        );
        assert_eq!(prober.kept_count(), 1);
        assert!(
            !prober.probe(NodeId(3), &address, TIMEOUT).await,
            "n1's process cannot answer a probe of n3, even with a kept connection to n1"
        );
        assert_eq!(
            prober.kept_count(),
            1,
            "the failed probe of n3 keeps nothing"
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_process_without_the_node_s_certificate_cannot_answer_its_probes() {
        let ca = Authority::generate("test CA").unwrap();
        let prober = Prober::with_identity(identity(&ca, 2));
        // A plain-TCP answerer (no certificate at all).
        let (plain, plain_task) = serving(None).await;
        assert!(!prober.probe(NodeId(1), &plain, TIMEOUT).await);
        // A certificate of another CA naming n1.
        let other = Authority::generate("another CA").unwrap();
        let (forged, forged_task) = serving(Some(identity(&other, 1))).await;
        assert!(!prober.probe(NodeId(1), &forged, TIMEOUT).await);
        assert_eq!(prober.kept_count(), 0);
        plain_task.abort();
        forged_task.abort();
    }

    #[tokio::test]
    async fn a_process_without_the_cluster_s_certificate_cannot_probe() {
        let ca = Authority::generate("test CA").unwrap();
        let (address, task) = serving(Some(identity(&ca, 1))).await;
        // Plain TCP to a node that speaks TLS.
        assert!(!probe(NodeId(1), &address, TIMEOUT).await);
        // A certificate of another CA.
        let other = Authority::generate("another CA").unwrap();
        let issued = other.issue("n2", &[]).unwrap();
        let outsider = Credentials::from_pem(
            ca.certificate_pem().as_bytes(),
            issued.certificate_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .unwrap();
        // (It cannot become a NodeIdentity: build its TLS client by hand.)
        assert!(NodeIdentity::new(NodeId(2), &outsider).is_err());
        let mut roots = rustls::RootCertStore::empty();
        let ca_der =
            rustls_pki_types::pem::PemObject::from_pem_slice(ca.certificate_pem().as_bytes())
                .unwrap();
        roots.add(ca_der).unwrap();
        let chain = vec![rustls_pki_types::pem::PemObject::from_pem_slice(
            issued.certificate_pem.as_bytes(),
        )
        .unwrap()];
        let key =
            rustls_pki_types::pem::PemObject::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        #[allow(deprecated, reason = "the provider the identity module uses")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let with_foreign_certificate =
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(chain, key)
                .unwrap();
        let without_certificate = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        for config in [with_foreign_certificate, without_certificate] {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let answered = tokio::time::timeout(TIMEOUT, async {
                let stream = TcpStream::connect(&address).await.ok()?;
                let mut tls = connector
                    .connect(server_name(NodeId(1)).unwrap(), stream)
                    .await
                    .ok()?;
                ping(&mut tls).await.ok()
            })
            .await;
            assert!(
                !matches!(answered, Ok(Some(true))),
                "a prober without a certificate of the cluster's CA got an answer"
            );
        }
        // A member of the cluster still gets its answer.
        assert!(
            Prober::with_identity(identity(&ca, 2))
                .probe(NodeId(1), &address, TIMEOUT)
                .await
        );
        task.abort();
    }
}
