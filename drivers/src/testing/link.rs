//! A node's link to a store that a test or a drill can cut: every call fails as an unreachable
//! store would, while the node's process (and its probe listener) runs on. The failure mode of
//! registry v2's "store-only partition": a node whose probes still answer but which can no
//! longer commit.

use crate::store::{Snapshot, Store, StoreError, StoreStats};
use membership_core::{Config, NodeId, Proposal, ProposalOutcome, Slot};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// One node's link to a shared store, cut with [`CutLink::set_cut`].
pub struct CutLink<S: Store> {
    store: Arc<S>,
    cut: AtomicBool,
}

impl<S: Store> CutLink<S> {
    /// A link to `store`, not cut.
    pub fn new(store: Arc<S>) -> CutLink<S> {
        CutLink {
            store,
            cut: AtomicBool::new(false),
        }
    }

    /// Cuts the link (every call fails with [`StoreError::Unavailable`]) or restores it.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<Arc<S>, StoreError> {
        if self.is_cut() {
            Err(StoreError::Unavailable(
                "this node's link to the store is cut".into(),
            ))
        } else {
            Ok(self.store.clone())
        }
    }
}

impl<S: Store> Store for CutLink<S> {
    fn init(&self, config: Config) -> impl Future<Output = Result<(), StoreError>> + Send {
        let store = self.check();
        async move { store?.init(config).await }
    }

    fn claim(
        &self,
        node: NodeId,
        address: &str,
    ) -> impl Future<Output = Result<Slot, StoreError>> + Send {
        let store = self.check();
        let address = address.to_string();
        async move { store?.claim(node, &address).await }
    }

    fn propose(
        &self,
        proposal: Proposal,
    ) -> impl Future<Output = Result<ProposalOutcome, StoreError>> + Send {
        let store = self.check();
        async move { store?.propose(proposal).await }
    }

    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        let store = self.check();
        async move { store?.snapshot().await }
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.store.watch()
    }

    fn stats(&self) -> StoreStats {
        self.store.stats()
    }
}
