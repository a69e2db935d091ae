//! Node identities, node sets and the node lifecycle.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The largest number of nodes a cluster may have (the spec's `Nodes` set). Node sets are bit sets
/// of this width, so every set operation is constant time and a state clones without allocation
/// per view.
pub const NODES_MAX: u16 = 128;

/// A node's identity: `n1`, `n2`, ... up to the configured node count (the spec's `Nodes`).
///
/// Ids are 1-based so that they print as the spec's `n1, n2, n3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u16);

impl NodeId {
    /// This node renamed by `perm` (node at index `i` becomes index `perm[i]`); unchanged when
    /// outside the permutation (symmetry reduction).
    #[cfg(feature = "checking")]
    pub(crate) fn permuted(self, perm: &[usize]) -> NodeId {
        self.index()
            .and_then(|i| perm.get(i))
            .map_or(self, |&j| NodeId::from_index(j))
    }

    /// The zero-based position of this node in per-node tables, or `None` for the invalid id 0
    /// and ids at or above [`NODES_MAX`].
    pub fn index(self) -> Option<usize> {
        if self.0 == 0 || self.0 > NODES_MAX {
            None
        } else {
            Some(usize::from(self.0 - 1))
        }
    }

    /// The node at zero-based position `index` (the inverse of [`NodeId::index`]).
    pub fn from_index(index: usize) -> NodeId {
        debug_assert!(index < usize::from(NODES_MAX), "node index out of range");
        let id = NodeId(u16::try_from(index + 1).unwrap_or(u16::MAX));
        debug_assert_eq!(id.index(), Some(index));
        id
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A set of nodes (a view, a partition row), as a fixed-width bit set. Iteration is in id order.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeSet(u128);

impl NodeSet {
    /// The empty set.
    pub const EMPTY: NodeSet = NodeSet(0);

    /// The set holding only `node` (empty when `node` is not a valid id).
    pub fn single(node: NodeId) -> NodeSet {
        NodeSet::EMPTY.with(node)
    }

    /// The set of the first `count` nodes: `n1..=n{count}`.
    pub fn first(count: u16) -> NodeSet {
        let count = count.min(NODES_MAX);
        if count == NODES_MAX {
            NodeSet(u128::MAX)
        } else {
            NodeSet((1u128 << count) - 1)
        }
    }

    /// Whether `node` is in the set.
    pub fn contains(self, node: NodeId) -> bool {
        match node.index() {
            Some(i) => self.0 & (1u128 << i) != 0,
            None => false,
        }
    }

    /// This set with `node` added (unchanged when `node` is not a valid id).
    #[must_use]
    pub fn with(self, node: NodeId) -> NodeSet {
        match node.index() {
            Some(i) => NodeSet(self.0 | (1u128 << i)),
            None => self,
        }
    }

    /// This set with `node` removed.
    #[must_use]
    pub fn without(self, node: NodeId) -> NodeSet {
        match node.index() {
            Some(i) => NodeSet(self.0 & !(1u128 << i)),
            None => self,
        }
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 | other.0)
    }

    /// The intersection of two sets.
    #[must_use]
    pub fn intersection(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & other.0)
    }

    /// The nodes of `self` that are not in `other`.
    #[must_use]
    pub fn difference(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & !other.0)
    }

    /// Whether every node of `self` is in `other`.
    pub fn is_subset(self, other: NodeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The number of nodes in the set.
    pub fn len(self) -> u16 {
        // count_ones of a u128 is at most 128, which fits.
        u16::try_from(self.0.count_ones()).unwrap_or(NODES_MAX)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members in id order.
    pub fn iter(self) -> impl Iterator<Item = NodeId> {
        let bits = self.0;
        (0..usize::from(NODES_MAX))
            .take_while(move |i| (bits >> i) != 0)
            .filter(move |i| bits & (1u128 << i) != 0)
            .map(NodeId::from_index)
    }

    /// The set with every member renamed by `perm` (member at index `i` goes to `perm[i]`).
    #[cfg(feature = "checking")]
    #[must_use]
    pub(crate) fn permuted(self, perm: &[usize]) -> NodeSet {
        let mut bits = self.0;
        let mut out = 0u128;
        // One pass per member: bounded by NODES_MAX.
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let j = perm.get(i).copied().unwrap_or(i);
            out |= 1u128 << j;
        }
        debug_assert_eq!(NodeSet(out).len(), self.len());
        NodeSet(out)
    }

    /// The set's raw bits (bit `i` is node `n{i+1}`).
    pub fn bits(self) -> u128 {
        self.0
    }

    /// The set with the given raw bits.
    pub fn from_bits(bits: u128) -> NodeSet {
        NodeSet(bits)
    }
}

impl FromIterator<NodeId> for NodeSet {
    fn from_iter<I: IntoIterator<Item = NodeId>>(iter: I) -> Self {
        iter.into_iter().fold(NodeSet::EMPTY, NodeSet::with)
    }
}

impl fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, node) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{node}")?;
        }
        f.write_str("}")
    }
}

/// Serialized as the sorted list of member ids, so stored values stay readable and independent
/// of the bit layout.
impl Serialize for NodeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ids = Vec::<NodeId>::deserialize(deserializer)?;
        let mut set = NodeSet::EMPTY;
        for id in ids {
            if id.index().is_none() {
                return Err(serde::de::Error::custom(format!(
                    "node id {} is outside 1..={NODES_MAX}",
                    id.0
                )));
            }
            set = set.with(id);
        }
        Ok(set)
    }
}

/// A node's lifecycle state (the spec's `state[n]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Not a member (initial, and after a completed leave or a recovery).
    Left,
    /// Asked to join; not yet admitted.
    Joining,
    /// A full member.
    Active,
    /// Leaving gracefully; not yet gone.
    Leaving,
    /// Declared failed; must recover (become Left) before it may join again.
    Failed,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node() -> impl Strategy<Value = NodeId> {
        (1..=NODES_MAX).prop_map(NodeId)
    }

    proptest! {
        #[test]
        fn with_then_contains(bits in any::<u128>(), n in node()) {
            let set = NodeSet::from_bits(bits);
            prop_assert!(set.with(n).contains(n));
            prop_assert!(!set.without(n).contains(n));
            prop_assert_eq!(set.with(n).without(n), set.without(n));
        }

        #[test]
        fn iter_is_sorted_and_complete(bits in any::<u128>()) {
            let set = NodeSet::from_bits(bits);
            let members: Vec<NodeId> = set.iter().collect();
            prop_assert_eq!(members.len(), usize::from(set.len()));
            prop_assert!(members.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(members.into_iter().collect::<NodeSet>(), set);
        }

        #[test]
        fn set_algebra(a in any::<u128>(), b in any::<u128>()) {
            let (a, b) = (NodeSet::from_bits(a), NodeSet::from_bits(b));
            prop_assert!(a.intersection(b).is_subset(a));
            prop_assert!(a.is_subset(a.union(b)));
            prop_assert!(a.difference(b).intersection(b).is_empty());
            prop_assert_eq!(a.difference(b).union(a.intersection(b)), a);
        }

        #[test]
        fn serde_round_trip(bits in any::<u128>()) {
            let set = NodeSet::from_bits(bits);
            let json = serde_json::to_string(&set).unwrap();
            prop_assert_eq!(serde_json::from_str::<NodeSet>(&json).unwrap(), set);
        }
    }

    #[test]
    fn invalid_ids_are_not_members_and_are_rejected_when_decoding() {
        assert_eq!(NodeId(0).index(), None);
        assert_eq!(NodeId(NODES_MAX + 1).index(), None);
        assert!(!NodeSet::first(NODES_MAX).contains(NodeId(0)));
        assert_eq!(NodeSet::EMPTY.with(NodeId(0)), NodeSet::EMPTY);
        let err = serde_json::from_str::<NodeSet>("[1, 0]").unwrap_err();
        assert!(err.to_string().contains("node id 0 is outside"), "{err}");
    }

    #[test]
    fn display_lists_members_in_order() {
        let set: NodeSet = [NodeId(3), NodeId(1)].into_iter().collect();
        assert_eq!(set.to_string(), "{n1, n3}");
        assert_eq!(NodeSet::first(2).to_string(), "{n1, n2}");
        assert_eq!(NodeSet::first(NODES_MAX).len(), NODES_MAX);
    }
}
