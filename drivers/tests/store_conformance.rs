//! The store conformance suite (`conformance/mod.rs`) on every store: the in-memory store
//! always; the etcd store (cargo feature `etcd`) when `ETCD_ENDPOINTS` names a cluster
//! (`127.0.0.1:2379,127.0.0.1:12379,127.0.0.1:22379`; `scripts/etcd-tests.sh` starts one); the
//! FoundationDB store (cargo feature `fdb`) when `FDB_CLUSTER_FILE` names a cluster file. A store
//! whose cluster is not given prints `SKIPPED: ...` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod conformance;

macro_rules! cases {
    ($store:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn serializability() {
            if let Some(s) = $store("serializability").await {
                crate::conformance::serializability(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn commit_unknown() {
            if let Some(s) = $store("commit_unknown").await {
                crate::conformance::commit_unknown(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn footprints() {
            if let Some(s) = $store("footprints").await {
                crate::conformance::footprints(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn watches() {
            if let Some(s) = $store("watches").await {
                crate::conformance::watches(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn large_migration() {
            if let Some(s) = $store("large_migration").await {
                crate::conformance::large_migration(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn many_members() {
            if let Some(s) = $store("many_members").await {
                crate::conformance::many_members(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn corruption() {
            if let Some(s) = $store("corruption").await {
                crate::conformance::corruption(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn footprint_bounds() {
            if let Some(s) = $store("footprint_bounds").await {
                crate::conformance::footprint_bounds(s).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn bad_input() {
            if let Some(s) = $store("bad_input").await {
                crate::conformance::bad_input(s).await;
            }
        }
    };
}

mod memory {
    use membership::MemoryStore;
    use std::sync::Arc;

    async fn store(_case: &str) -> Option<Arc<MemoryStore>> {
        Some(Arc::new(MemoryStore::new()))
    }

    cases!(store);
}

#[cfg(feature = "etcd")]
mod etcd {
    use membership::{EtcdOptions, EtcdStore};
    use std::sync::Arc;

    /// A store on the cluster in `ETCD_ENDPOINTS`, under a prefix of its own, recording the
    /// committed log.
    pub(crate) async fn store(case: &str) -> Option<Arc<EtcdStore>> {
        let Ok(endpoints) = std::env::var("ETCD_ENDPOINTS") else {
            println!("SKIPPED: ETCD_ENDPOINTS not set (etcd conformance case {case})");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let url = format!(
            "etcd://{endpoints}/conformance/{case}-{}-{nanos}",
            std::process::id()
        );
        let mut options = EtcdOptions::from_url(&url).unwrap();
        options.record_log = true;
        let store = EtcdStore::connect(options).await.unwrap();
        store.clear().await.unwrap();
        Some(Arc::new(store))
    }

    cases!(store);
}

#[cfg(not(feature = "etcd"))]
#[test]
fn etcd_not_built() {
    println!("SKIPPED: the etcd store is not built (cargo feature etcd)");
}

#[cfg(feature = "fdb")]
mod fdb {
    use membership::FdbStore;
    use std::sync::Arc;

    async fn store(cluster_file: &str, case: &str) -> Arc<FdbStore> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let subspace = format!("conformance-{case}-{}-{nanos}", std::process::id());
        Arc::new(FdbStore::open(cluster_file, &subspace, true).await.unwrap())
    }

    /// Every case on FoundationDB, one after the other in one test: the client network is
    /// booted once per process and must be stopped before it exits (README: FoundationDB on a
    /// real cluster).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fdb_suite() {
        let Ok(cluster_file) = std::env::var("FDB_CLUSTER_FILE") else {
            println!("SKIPPED: FDB_CLUSTER_FILE not set (FoundationDB conformance suite)");
            return;
        };
        // SAFETY: `boot` must run once per process, before any database is opened, and its
        // guard must be dropped before the process exits: this test is the only one of this
        // binary that touches FoundationDB, and `_network` lives until its end.
        #[allow(unsafe_code)]
        let _network = unsafe { foundationdb::boot() };
        let f = cluster_file.as_str();
        crate::conformance::serializability(store(f, "serializability").await).await;
        crate::conformance::commit_unknown(store(f, "commit_unknown").await).await;
        crate::conformance::footprints(store(f, "footprints").await).await;
        crate::conformance::watches(store(f, "watches").await).await;
        crate::conformance::large_migration(store(f, "large_migration").await).await;
        crate::conformance::many_members(store(f, "many_members").await).await;
        crate::conformance::corruption(store(f, "corruption").await).await;
        crate::conformance::footprint_bounds(store(f, "footprint_bounds").await).await;
        crate::conformance::bad_input(store(f, "bad_input").await).await;
    }
}
