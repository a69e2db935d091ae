//! Node identities, node sets and the node lifecycle.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The largest number of nodes a cluster may have (the spec's `Nodes` set). Node sets grow with
/// the highest member they hold (see [`NodeSet`]), so a 5-node cluster pays for 128 bits and a
/// 1,000-node cluster for 1,024.
pub const NODES_MAX: u16 = 1024;

/// The nodes a node set keeps inline, without allocating: `n1..=n128`.
pub const NODE_SET_INLINE_NODES: u16 = 128;

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

/// A set of nodes (a view, a partition row), as a bit set whose size follows its highest
/// member. Iteration is in id order.
///
/// The members `n1..=n128` are one inline `u128`: every set of a cluster of up to 128 nodes is a
/// plain copy of 32 bytes with no allocation, and its operations are single word operations. The
/// members above `n128` live in a shared, immutable word array (`high`, bit `i` of word `w` is node
/// `n{129 + 64 * w + i}`), copied only when a set is changed: cloning a set is constant time. The
/// array never ends in a zero word and is absent when it would be empty, so equal sets have equal
/// representations (derived equality and hashing are set equality).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct NodeSet {
    low: u128,
    high: Option<Arc<[u64]>>,
}

/// Words of `high`, bits per word.
const WORD_BITS: usize = 64;

/// The bits of `n1..=n128`, where `index` (zero-based) is below 128.
#[inline]
fn low_bit(index: usize) -> u128 {
    debug_assert!(index < usize::from(NODE_SET_INLINE_NODES));
    1u128 << index
}

/// The word and bit of a zero-based index at or above 128 in `high`.
#[inline]
fn high_position(index: usize) -> (usize, u64) {
    let offset = index - usize::from(NODE_SET_INLINE_NODES);
    (offset / WORD_BITS, 1u64 << (offset % WORD_BITS))
}

/// The shared array for `words` with trailing zero words dropped (`None` when all are zero).
#[inline]
fn normalised(mut words: Vec<u64>) -> Option<Arc<[u64]>> {
    if words.is_empty() {
        return None;
    }
    // Bounded by the word count, at most NODES_MAX / 64.
    while words.last() == Some(&0) {
        words.pop();
    }
    debug_assert!(words.len() * WORD_BITS <= usize::from(NODES_MAX));
    (!words.is_empty()).then(|| Arc::from(words))
}

impl NodeSet {
    /// The empty set.
    pub const EMPTY: NodeSet = NodeSet { low: 0, high: None };

    /// The words above `n128` (empty when none).
    #[inline]
    fn high_words(&self) -> &[u64] {
        self.high.as_deref().unwrap_or(&[])
    }

    /// The set holding only `node` (empty when `node` is not a valid id).
    pub fn single(node: NodeId) -> NodeSet {
        NodeSet::EMPTY.with(node)
    }

    /// The set of the first `count` nodes: `n1..=n{count}`.
    pub fn first(count: u16) -> NodeSet {
        let count = count.min(NODES_MAX);
        let inline = count.min(NODE_SET_INLINE_NODES);
        let low = if inline == NODE_SET_INLINE_NODES {
            u128::MAX
        } else {
            (1u128 << inline) - 1
        };
        let above = usize::from(count - inline);
        let mut words = vec![u64::MAX; above / WORD_BITS];
        if above % WORD_BITS != 0 {
            words.push((1u64 << (above % WORD_BITS)) - 1);
        }
        let set = NodeSet {
            low,
            high: normalised(words),
        };
        debug_assert_eq!(set.len(), count);
        set
    }

    /// Whether `node` is in the set.
    #[inline]
    pub fn contains(&self, node: NodeId) -> bool {
        match node.index() {
            Some(i) if i < usize::from(NODE_SET_INLINE_NODES) => self.low & low_bit(i) != 0,
            Some(i) => {
                let (word, bit) = high_position(i);
                self.high_words().get(word).is_some_and(|w| w & bit != 0)
            }
            None => false,
        }
    }

    /// This set with `node` added (unchanged when `node` is not a valid id).
    #[must_use]
    #[inline]
    pub fn with(mut self, node: NodeId) -> NodeSet {
        self.insert(node);
        self
    }

    /// This set with `node` removed.
    #[must_use]
    #[inline]
    pub fn without(mut self, node: NodeId) -> NodeSet {
        self.remove(node);
        self
    }

    /// Adds `node` (nothing when `node` is not a valid id).
    #[inline]
    pub fn insert(&mut self, node: NodeId) {
        match node.index() {
            Some(i) if i < usize::from(NODE_SET_INLINE_NODES) => self.low |= low_bit(i),
            Some(i) => {
                let (word, bit) = high_position(i);
                let mut words = self.high_words().to_vec();
                if words.len() <= word {
                    words.resize(word + 1, 0);
                }
                if let Some(w) = words.get_mut(word) {
                    *w |= bit;
                }
                self.high = normalised(words);
            }
            None => {}
        }
        debug_assert!(node.index().is_none() || self.contains(node));
    }

    /// Removes `node`.
    #[inline]
    pub fn remove(&mut self, node: NodeId) {
        match node.index() {
            Some(i) if i < usize::from(NODE_SET_INLINE_NODES) => self.low &= !low_bit(i),
            Some(i) if self.contains(node) => {
                let (word, bit) = high_position(i);
                let mut words = self.high_words().to_vec();
                if let Some(w) = words.get_mut(word) {
                    *w &= !bit;
                }
                self.high = normalised(words);
            }
            Some(_) | None => {}
        }
        debug_assert!(!self.contains(node));
    }

    /// The set combining the words of `self` and `other` with `op` (`op(0, 0)` must be 0).
    #[inline]
    fn combine(&self, other: &NodeSet, op: impl Fn(u128, u128) -> u128) -> NodeSet {
        let low = op(self.low, other.low);
        let high = match (&self.high, &other.high) {
            (None, None) => None,
            _ => {
                let (a, b) = (self.high_words(), other.high_words());
                let words = (0..a.len().max(b.len()))
                    .map(|w| {
                        let x = u128::from(a.get(w).copied().unwrap_or(0));
                        let y = u128::from(b.get(w).copied().unwrap_or(0));
                        // op of two values below 2^64 is below 2^64 for |, &, & !.
                        u64::try_from(op(x, y) & u128::from(u64::MAX)).unwrap_or(0)
                    })
                    .collect();
                normalised(words)
            }
        };
        NodeSet { low, high }
    }

    /// The union of two sets (`other` by value or by reference, as for every set operation).
    #[must_use]
    #[inline]
    pub fn union(&self, other: impl Borrow<NodeSet>) -> NodeSet {
        let other = other.borrow();
        // Postconditions (both sets are subsets of the result, ...): the property tests
        // `set_algebra` and `operations_agree_with_an_ordered_set`; not asserted here, on the
        // checker's hottest path.
        self.combine(other, |a, b| a | b)
    }

    /// The intersection of two sets.
    #[must_use]
    #[inline]
    pub fn intersection(&self, other: impl Borrow<NodeSet>) -> NodeSet {
        let other = other.borrow();
        if self.high.is_none() || other.high.is_none() {
            // No member above n128 in common: no words to combine.
            return NodeSet::from_low_bits(self.low & other.low);
        }
        self.combine(other, |a, b| a & b)
    }

    /// The nodes of `self` that are not in `other`.
    #[must_use]
    #[inline]
    pub fn difference(&self, other: impl Borrow<NodeSet>) -> NodeSet {
        let other = other.borrow();
        if self.high.is_none() {
            // Nothing above n128 to remove from.
            return NodeSet::from_low_bits(self.low & !other.low);
        }
        self.combine(other, |a, b| a & !b)
    }

    /// The nodes in exactly one of the two sets.
    #[must_use]
    #[inline]
    pub fn symmetric_difference(&self, other: impl Borrow<NodeSet>) -> NodeSet {
        let other = other.borrow();
        self.combine(other, |a, b| a ^ b)
    }

    /// Whether every node of `self` is in `other`.
    #[inline]
    pub fn is_subset(&self, other: impl Borrow<NodeSet>) -> bool {
        let other = other.borrow();
        let (a, b) = (self.high_words(), other.high_words());
        self.low & !other.low == 0
            && a.iter()
                .enumerate()
                .all(|(w, x)| x & !b.get(w).copied().unwrap_or(0) == 0)
    }

    /// The number of nodes in the set.
    #[inline]
    pub fn len(&self) -> u16 {
        let high: u32 = self.high_words().iter().map(|w| w.count_ones()).sum();
        // At most NODES_MAX members, which fits.
        u16::try_from(self.low.count_ones() + high).unwrap_or(NODES_MAX)
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_none()
    }

    /// The members in id order. The iterator holds its own copy of the set (constant time), so
    /// the set may change while it runs.
    #[inline]
    pub fn iter(&self) -> NodeSetIter {
        NodeSetIter {
            low: self.low,
            high: self.high.clone(),
            word: 0,
            bits: 0,
        }
    }

    /// The set with every member renamed by `perm` (member at index `i` goes to `perm[i]`).
    #[cfg(feature = "checking")]
    #[must_use]
    pub(crate) fn permuted(&self, perm: &[usize]) -> NodeSet {
        let inline = usize::from(NODE_SET_INLINE_NODES);
        if self.high.is_none() && perm.len() <= inline {
            // The checker's case: small clusters, one pass per member over the bits.
            let mut bits = self.low;
            let mut out = 0u128;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                out |= low_bit(perm.get(i).copied().unwrap_or(i));
            }
            let out = NodeSet::from_low_bits(out);
            debug_assert_eq!(out.len(), self.len());
            return out;
        }
        let out: NodeSet = self
            .iter()
            .map(|n| {
                n.index()
                    .and_then(|i| perm.get(i))
                    .map_or(n, |&j| NodeId::from_index(j))
            })
            .collect();
        debug_assert_eq!(out.len(), self.len());
        out
    }

    /// The members among `n1..=n128` as bits (bit `i` is node `n{i+1}`); `None` when the set
    /// has a member above `n128`.
    #[inline]
    pub fn low_bits(&self) -> Option<u128> {
        self.high.is_none().then_some(self.low)
    }

    /// The set of the members among `n1..=n128` given as bits (bit `i` is node `n{i+1}`).
    #[inline]
    pub fn from_low_bits(bits: u128) -> NodeSet {
        NodeSet {
            low: bits,
            high: None,
        }
    }
}

/// The members of a [`NodeSet`] in id order ([`NodeSet::iter`]): one step per member.
#[derive(Clone, Debug)]
pub struct NodeSetIter {
    /// The inline members not yet returned.
    low: u128,
    /// The members above `n128`.
    high: Option<Arc<[u64]>>,
    /// The next word of `high` to load into `bits`.
    word: usize,
    /// The members of word `word - 1` not yet returned.
    bits: u64,
}

impl Iterator for NodeSetIter {
    type Item = NodeId;

    #[inline]
    fn next(&mut self) -> Option<NodeId> {
        if self.low != 0 {
            let i = self.low.trailing_zeros() as usize;
            self.low &= self.low - 1;
            return Some(NodeId::from_index(i));
        }
        let words = self.high.as_deref()?;
        // Bounded by the word count: each pass loads the next word.
        while self.bits == 0 {
            self.bits = *words.get(self.word)?;
            self.word += 1;
        }
        let i = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        let offset = (self.word - 1) * WORD_BITS + i;
        Some(NodeId::from_index(
            usize::from(NODE_SET_INLINE_NODES) + offset,
        ))
    }
}

/// Sets are ordered as the numbers their bits spell (node `n{i+1}` is bit `i`): the order of
/// the 128-bit sets they extend.
impl Ord for NodeSet {
    #[inline]
    fn cmp(&self, other: &NodeSet) -> std::cmp::Ordering {
        if self.high.is_none() && other.high.is_none() {
            return self.low.cmp(&other.low);
        }
        let (a, b) = (self.high_words(), other.high_words());
        // Normalised: a longer word array is a larger number.
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
            .then_with(|| self.low.cmp(&other.low))
    }
}

impl PartialOrd for NodeSet {
    fn partial_cmp(&self, other: &NodeSet) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromIterator<NodeId> for NodeSet {
    fn from_iter<I: IntoIterator<Item = NodeId>>(iter: I) -> Self {
        // The words are gathered first and shared once: one allocation at most, whatever the
        // number of members (inserting one by one would copy the words per member).
        let mut low = 0u128;
        let mut words: Vec<u64> = Vec::new();
        for node in iter {
            match node.index() {
                Some(i) if i < usize::from(NODE_SET_INLINE_NODES) => low |= low_bit(i),
                Some(i) => {
                    let (word, bit) = high_position(i);
                    if words.len() <= word {
                        words.resize(word + 1, 0);
                    }
                    if let Some(w) = words.get_mut(word) {
                        *w |= bit;
                    }
                }
                None => {}
            }
        }
        let high = if words.is_empty() {
            None
        } else {
            normalised(words)
        };
        NodeSet { low, high }
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
            set.insert(id);
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

    /// A set over all of `1..=NODES_MAX`: some members inline, some above n128.
    fn set() -> impl Strategy<Value = NodeSet> {
        prop::collection::vec(node(), 0..40).prop_map(|ids| ids.into_iter().collect())
    }

    /// A small set (`n1..=n128` only).
    fn small_set() -> impl Strategy<Value = NodeSet> {
        any::<u128>().prop_map(NodeSet::from_low_bits)
    }

    /// The reference model of a set: an ordered set of ids.
    fn model(set: &NodeSet) -> std::collections::BTreeSet<NodeId> {
        set.iter().collect()
    }

    proptest! {
        #[test]
        fn with_then_contains(set in set(), n in node()) {
            prop_assert!(set.clone().with(n).contains(n));
            prop_assert!(!set.clone().without(n).contains(n));
            prop_assert_eq!(set.clone().with(n).without(n), set.clone().without(n));
            prop_assert_eq!(set.clone().with(n).len(), set.len() + u16::from(!set.contains(n)));
        }

        #[test]
        fn iter_is_sorted_and_complete(set in set()) {
            let members: Vec<NodeId> = set.iter().collect();
            prop_assert_eq!(members.len(), usize::from(set.len()));
            prop_assert!(members.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(members.iter().all(|&m| set.contains(m)));
            prop_assert_eq!(members.into_iter().collect::<NodeSet>(), set);
        }

        #[test]
        fn set_algebra(a in set(), b in set()) {
            prop_assert!(a.intersection(&b).is_subset(&a));
            prop_assert!(a.is_subset(a.union(&b)));
            prop_assert!(a.difference(&b).intersection(&b).is_empty());
            prop_assert_eq!(a.difference(&b).union(a.intersection(&b)), a.clone());
            prop_assert_eq!(a.symmetric_difference(&b), a.union(&b).difference(a.intersection(&b)));
        }

        #[test]
        fn operations_agree_with_an_ordered_set(a in set(), b in set()) {
            let (x, y) = (model(&a), model(&b));
            prop_assert_eq!(model(&a.union(&b)), x.union(&y).copied().collect());
            prop_assert_eq!(model(&a.intersection(&b)), x.intersection(&y).copied().collect());
            prop_assert_eq!(model(&a.difference(&b)), x.difference(&y).copied().collect());
            prop_assert_eq!(a.is_subset(&b), x.is_subset(&y));
            prop_assert_eq!(a == b, x == y);
            prop_assert_eq!(a.is_empty(), x.is_empty());
        }

        #[test]
        fn order_is_the_order_of_the_numbers_the_bits_spell(a in set(), b in set()) {
            // The highest member in which the sets differ decides: the set holding it is larger.
            let highest = a.symmetric_difference(&b).iter().last();
            let expected = match highest {
                None => std::cmp::Ordering::Equal,
                Some(n) if a.contains(n) => std::cmp::Ordering::Greater,
                Some(_) => std::cmp::Ordering::Less,
            };
            prop_assert_eq!(a.cmp(&b), expected);
        }

        #[test]
        fn small_sets_order_as_their_bits(a in small_set(), b in small_set()) {
            prop_assert_eq!(a.cmp(&b), a.low_bits().cmp(&b.low_bits()));
            prop_assert_eq!(NodeSet::from_low_bits(a.low_bits().unwrap()), a);
        }

        #[test]
        fn serde_round_trip(set in set()) {
            let json = serde_json::to_string(&set).unwrap();
            prop_assert_eq!(serde_json::from_str::<NodeSet>(&json).unwrap(), set);
        }

        #[test]
        fn first_holds_exactly_the_first_nodes(count in 0..=NODES_MAX) {
            let set = NodeSet::first(count);
            prop_assert_eq!(set.len(), count);
            prop_assert!(set.iter().enumerate().all(|(i, n)| n.index() == Some(i)));
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
        let large: NodeSet = [NodeId(1_000), NodeId(2), NodeId(129)]
            .into_iter()
            .collect();
        assert_eq!(large.to_string(), "{n2, n129, n1000}");
        assert_eq!(
            large
                .clone()
                .without(NodeId(1_000))
                .without(NodeId(129))
                .low_bits(),
            Some(2)
        );
    }
}
