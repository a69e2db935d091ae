//! The store with TLS and least privilege (issue 21, point 2), on the single-member etcd that
//! `scripts/etcd-tls.sh` starts with client-certificate authentication and roles
//! (`ETCD_TLS_ENDPOINT` and `ETCD_TLS_CERTS`; `scripts/etcd-tests.sh` sets them; elsewhere
//! this prints SKIPPED and passes).
//!
//! A node whose certificate names a user of the cluster's role starts, joins and places an
//! actor, and the operator reads `membership status` with its own certificate. Then, with no
//! node running: a client without a certificate, a client speaking plain HTTP, a user whose
//! role covers another prefix, and a `membership node` process without a certificate are each
//! refused, with an error that says so, and the registry's revision does not move (nothing was
//! written). The outsider's own prefix takes its writes, so its refusal is the role's doing.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use membership::identity::{Credentials, NodeIdentity};
use membership::protocol::{ActorId, Config, NodeId, NodeStatus, Timing};
use membership::{EtcdStore, NodeHandle, NodeOptions, Store, StoreError};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

struct Tls {
    endpoint: String,
    certs: PathBuf,
}

impl Tls {
    fn from_env() -> Option<Tls> {
        Some(Tls {
            endpoint: std::env::var("ETCD_TLS_ENDPOINT").ok()?,
            certs: PathBuf::from(std::env::var("ETCD_TLS_CERTS").ok()?),
        })
    }

    fn file(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    /// The store URL for `prefix` with the client certificate `name` (`None`: TLS, no
    /// certificate).
    fn url(&self, prefix: &str, name: Option<&str>) -> String {
        let ca = self.file("ca.pem");
        match name {
            Some(name) => format!(
                "etcd://{}/{prefix}?ca={ca}&cert={}&key={}",
                self.endpoint,
                self.file(&format!("{name}.pem")),
                self.file(&format!("{name}.key"))
            ),
            None => format!("etcd://{}/{prefix}?ca={ca}", self.endpoint),
        }
    }
}

async fn revision(store: &EtcdStore) -> u64 {
    store.snapshot().await.unwrap().revision
}

/// A store call's error, within 10 s.
async fn refused<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> StoreError {
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"));
    match outcome {
        Ok(v) => panic!("{what}: accepted ({v:?}), where it must be refused"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_cluster_s_users_reach_the_registry_and_a_refusal_writes_nothing() {
    let Some(tls) = Tls::from_env() else {
        println!("SKIPPED: ETCD_TLS_ENDPOINT and ETCD_TLS_CERTS not set (scripts/etcd-tests.sh sets them)");
        return;
    };
    // The operator initialises the registry; node n1 starts with its certificate (its etcd
    // user and its probe identity), joins and places an actor.
    let operator = EtcdStore::connect_url(&tls.url("membership", Some("operator")))
        .await
        .unwrap();
    operator.init(Config::fixed(5).unwrap()).await.unwrap();
    let n1_store = Arc::new(
        EtcdStore::connect_url(&tls.url("membership", Some("n1")))
            .await
            .unwrap(),
    );
    let credentials = Credentials::from_files(
        &tls.certs.join("ca.pem"),
        &tls.certs.join("n1.pem"),
        &tls.certs.join("n1.key"),
    )
    .unwrap();
    let mut options = NodeOptions::new(NodeId(1));
    options.timing = Timing::fast();
    options.identity = Some(NodeIdentity::new(NodeId(1), &credentials).unwrap());
    let n1 = NodeHandle::start(n1_store.clone(), options).await.unwrap();
    n1.join().await.unwrap();
    let placement = n1.place_actor(ActorId(1)).await.unwrap();
    assert_eq!(placement.node, NodeId(1));
    let status = Command::new(env!("CARGO_BIN_EXE_membership"))
        .args([
            "status",
            "--store",
            &tls.url("membership", Some("operator")),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "membership status: {status:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("n1") && l.contains("Active")),
        "membership status over TLS shows n1 Active:\n{text}"
    );
    n1.kill();
    drop(n1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = revision(&operator).await;

    // A user whose role covers /other/ only: refused on the registry's keys, by name.
    let outsider = EtcdStore::connect_url(&tls.url("membership", Some("outsider")))
        .await
        .unwrap();
    let error = refused(
        "the outsider's claim of n2",
        outsider.claim(NodeId(2), "127.0.0.1:1"),
    )
    .await;
    assert!(
        matches!(&error, StoreError::Denied(reason) if reason.contains("permission denied")),
        "the outsider's claim: {error}"
    );
    println!("the outsider's claim: {error}");
    let error = refused(
        "the outsider's init",
        outsider.init(Config::fixed(5).unwrap()),
    )
    .await;
    assert!(
        matches!(error, StoreError::Denied(_)),
        "the outsider's init: {error}"
    );
    // ... and its own prefix takes its writes: the refusal is the role's.
    let own = EtcdStore::connect_url(&tls.url("other", Some("outsider")))
        .await
        .unwrap();
    own.init(Config::fixed(3).unwrap()).await.unwrap();

    // TLS without a client certificate (refused at the handshake), and plain HTTP to the TLS
    // port: either the connection or the first request fails.
    for (what, url) in [
        ("TLS without a certificate", tls.url("membership", None)),
        ("plain HTTP", format!("etcd://{}/membership", tls.endpoint)),
    ] {
        let error = match EtcdStore::connect_url(&url).await {
            Err(e) => e,
            Ok(store) => refused(what, store.claim(NodeId(2), "127.0.0.1:1")).await,
        };
        println!("{what}: {error}");
        assert!(
            matches!(error, StoreError::Unavailable(_) | StoreError::Denied(_)),
            "{what}: {error}"
        );
    }
    // A node process without a certificate cannot start, join or propose.
    let process = Command::new(env!("CARGO_BIN_EXE_membership"))
        .arg("node")
        .env("MEMBERSHIP_STORE", tls.url("membership", None))
        .env("MEMBERSHIP_NODE", "2")
        .env("MEMBERSHIP_TIMING", "fast")
        .output()
        .unwrap();
    assert_eq!(
        process.status.code(),
        Some(1),
        "a node without a certificate exits 1: {process:?}"
    );
    println!(
        "a node without a certificate: {}",
        String::from_utf8_lossy(&process.stderr).trim()
    );

    // Nothing any of them tried was written.
    assert_eq!(
        revision(&operator).await,
        before,
        "the registry's revision moved: a refused client wrote something"
    );
    let snapshot = operator.snapshot().await.unwrap();
    assert_eq!(
        snapshot.state.node(NodeId(2)).map(|r| r.status),
        Some(NodeStatus::Left),
        "n2 was never claimed nor joined"
    );
}
