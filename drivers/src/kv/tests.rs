//! The key-value layout's tests: a registry a store reads back (loaded whole, or fed commit
//! by commit) is the registry the reducer left, for every layout rule.

use super::*;
use membership_core::testing::{detect, fail, heartbeat, join, join_complete, partition, RESET};
use membership_core::{execute, Action, Event, NodeStatus, Proposal};
use proptest::strategy::Strategy;

/// etcd's `--max-txn-ops` (the default): writes per transaction.
const ETCD_WRITES_MAX: usize = 128;

/// A registry stored as an engine stores it (each key's value and version), and a cache fed
/// every commit's changes.
struct Engine {
    entries: BTreeMap<String, (Vec<u8>, i64)>,
    revision: i64,
    cache: Loaded,
    poisoned: Poisoned,
    seq: u64,
}

impl Engine {
    /// An initialised registry of `count` nodes, every slot claimed by incarnation 1.
    fn new(count: u16) -> Engine {
        let mut entries = BTreeMap::new();
        let config = StoredConfig::of(&Config::fixed(count).unwrap());
        entries.insert(CONFIG_KEY.to_string(), (encode(&config), 1));
        for i in 1..=count {
            let slot = Slot {
                incarnation: 1,
                address: "a:1".to_string(),
            };
            entries.insert(meta_key_name(&MetaKey::Slot(NodeId(i))), (encode(&slot), 1));
        }
        let cache = load(Entry::listed(&entries)).unwrap();
        Engine {
            entries,
            revision: 1,
            cache,
            poisoned: Poisoned::new(),
            seq: 0,
        }
    }

    /// Commits `event`, proposed by `by`, as an engine would: planned on the registry read
    /// whole, its writes applied. The registry read back whole, and the cache fed the
    /// commit's changes, must both be the reducer's next state. Returns the plan.
    fn commit(&mut self, by: u16, event: Event) -> Plan {
        match self.try_commit(by, event) {
            Some(plan) => plan,
            None => panic!("{event} was refused"),
        }
    }

    /// [`Engine::commit`], or `None` (nothing written) when the step is refused.
    fn try_commit(&mut self, by: u16, event: Event) -> Option<Plan> {
        let loaded = load(Entry::listed(&self.entries)).unwrap();
        assert!(
            loaded.state == self.cache.state,
            "before {event}: the cache is not the store"
        );
        let proposal = self.proposal(by, event, loaded.meta.round);
        let commit = execute(&loaded.state, &loaded.meta, &proposal).ok()?;
        if commit.next == loaded.state && commit.meta.round == loaded.meta.round {
            return None;
        }
        let plan = plan(&loaded, &commit, proposal.id, false);
        let changes = self.apply(&plan);
        let read_back = load(Entry::listed(&self.entries)).unwrap();
        assert!(
            read_back.state == commit.next,
            "{event}: the store does not read back the step"
        );
        self.cache = apply_changes(&self.cache, &mut self.poisoned, &changes).unwrap();
        assert!(
            self.cache.state == commit.next,
            "{event}: the cache does not hold the step"
        );
        assert!(self.poisoned.is_empty());
        Some(plan)
    }

    /// Applies `plan`'s writes at the next revision, as an engine commits them; returns the
    /// changes a watch would deliver.
    fn apply(&mut self, plan: &Plan) -> Vec<Change> {
        self.revision += 1;
        let mut changes = Vec::new();
        for write in &plan.writes {
            let (key, value) = match write {
                Write::Put(key, value) => (key, Some(value.clone())),
                Write::Delete(key) => (key, None),
            };
            match &value {
                Some(v) => self.entries.insert(key.clone(), (v.clone(), self.revision)),
                None => self.entries.remove(key),
            };
            changes.push(Change {
                key: key.clone(),
                value,
                version: self.revision,
            });
        }
        changes
    }

    /// The next proposal of `by` (incarnation 1): `event` in round `round`.
    fn proposal(&mut self, by: u16, event: Event, round: u64) -> Proposal {
        self.seq += 1;
        Proposal {
            id: ProposalId {
                node: NodeId(by),
                incarnation: 1,
                seq: self.seq,
            },
            action: Action::Step(event),
            round: Some(round),
        }
    }

    /// Plans `event`, proposed by `by`, on the registry as stored now, without committing it.
    fn planned(&mut self, by: u16, event: Event) -> Plan {
        let loaded = load(Entry::listed(&self.entries)).unwrap();
        let proposal = self.proposal(by, event, loaded.meta.round);
        let commit = execute(&loaded.state, &loaded.meta, &proposal).unwrap();
        plan(&loaded, &commit, proposal.id, false)
    }

    /// Whether a key `plan` compares has changed since it was planned.
    fn conflicts(&self, plan: &Plan) -> bool {
        plan.reads
            .iter()
            .any(|(key, &version)| self.entries.get(key).map_or(0, |&(_, v)| v) != version)
    }

    /// The node records a plan writes.
    fn records_written(plan: &Plan) -> Vec<&str> {
        plan.writes
            .iter()
            .filter_map(|w| match w {
                Write::Put(k, _) | Write::Delete(k) if k.starts_with("node/") => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    /// `count` Active nodes; n1 heartbeats; every other node is cut off from `targets`
    /// and votes against each of them.
    fn voting(count: u16, targets: &[u16]) -> Engine {
        let mut engine = Engine::new(count);
        engine.commit(1, join(1));
        for i in 2..=count {
            engine.commit(i, join(i));
            engine.commit(i, join_complete(i));
        }
        // Every join was its node's heartbeat of the round (registry v2).
        assert!(targets
            .iter()
            .all(|&t| engine.cache.state.heartbeat_received(NodeId(t))));
        for d in 1..=count {
            for &t in targets.iter().filter(|&&t| t != d) {
                if engine.cache.state.can_communicate(NodeId(d), NodeId(t)) {
                    engine.commit(d, partition(d, t));
                }
                let vote = engine.commit(d, detect(d, t));
                // The vote: its voter's record (and the proposal's record).
                assert_eq!(Engine::records_written(&vote), [format!("node/n{d}")]);
            }
        }
        engine
    }
}

/// Registry v2 at scale: a quorum of 139 votes declares n1 failed in one transaction that
/// writes n1's record and none of its voters' (one write per voter would be past etcd's
/// 128); the votes against n2 stay counted.
#[test]
fn a_declaration_by_a_quorum_writes_no_voter_s_record() {
    const NODES: u16 = 140;
    let mut engine = Engine::voting(NODES, &[1, 2]);
    let votes = engine.cache.state.failure_votes(NodeId(1));
    assert_eq!(votes.len(), NODES - 1, "every peer voted");
    let declared = engine.commit(3, fail(1));
    assert_eq!(
        Engine::records_written(&declared),
        ["node/n1"],
        "a declaration by votes writes the declared node's record and no voter's"
    );
    assert!(
        declared.writes.len() <= ETCD_WRITES_MAX,
        "{}",
        declared.writes.len()
    );
    let state = &engine.cache.state;
    assert_eq!(state.node(NodeId(1)).unwrap().status, NodeStatus::Failed);
    assert!(state
        .nodes()
        .iter()
        .all(|r| !r.detected.contains(NodeId(1))));
    assert_eq!(
        state.failure_votes(NodeId(2)).len(),
        NODES - 2,
        "all but n1's"
    );
}

/// One step of [`any_history_reads_back_as_the_reducer_left_it`]: an event on nodes of 1..=6.
fn any_event() -> impl Strategy<Value = (u16, Event)> {
    use membership_core::testing::{heal, leave, leave_complete, recover, sync};
    (0u8..12, 1u16..=6, 1u16..=6).prop_map(|(kind, a, b)| {
        let event = match kind {
            0 => join(a),
            1 => join_complete(a),
            2 | 3 => partition(a, b),
            4 => heal(a, b),
            5 | 6 => detect(a, b),
            7 => fail(b),
            8 => leave(b),
            9 => leave_complete(b),
            10 => RESET,
            _ => match a % 3 {
                0 => heartbeat(b),
                1 => sync(b, b),
                _ => recover(b),
            },
        };
        (a, event)
    })
}

proptest::proptest! {
    /// Whatever the steps (votes cast, expired by new rounds, erased by declarations and
    /// leaves, nodes rejoining), the registry read back whole after each commit, and a
    /// cache fed each commit's changes, are the reducer's next state (`Engine::commit`
    /// checks both).
    #[test]
    fn any_history_reads_back_as_the_reducer_left_it(
        steps in proptest::collection::vec(any_event(), 1..80)
    ) {
        let mut engine = Engine::voting(6, &[2]);
        for (by, event) in steps {
            engine.try_commit(by, event);
        }
    }
}

/// A step that reads a voter's record conflicts with a concurrent erasure of its votes,
/// which writes neither the record nor anything else of the voter's: it compares the
/// round and the record of each target the voter voted against.
#[test]
fn a_step_reading_a_voter_s_record_conflicts_with_the_erasure_of_its_votes() {
    for erasure in [fail(1), RESET] {
        let mut engine = Engine::voting(8, &[1]);
        // A partition report reads both records, n5's holding its vote against n1.
        let report = engine.planned(5, partition(5, 6));
        assert!(report.reads.contains_key("round") && report.reads.contains_key("node/n1"));
        assert!(!engine.conflicts(&report));
        engine.commit(3, erasure);
        assert!(
            engine.conflicts(&report),
            "{erasure} erased n5's vote and the report planned before it still commits"
        );
    }
    // Without votes, no other node's record.
    let mut engine = Engine::voting(8, &[]);
    let report = engine.planned(5, partition(5, 6));
    let records: Vec<&str> = report
        .reads
        .keys()
        .filter(|k| k.starts_with("node/"))
        .map(String::as_str)
        .collect();
    assert_eq!(records, ["node/n5", "node/n6"]);
}

/// ResetHeartbeats clears every vote (they expire with their round) without writing any
/// voter's record.
#[test]
fn a_new_round_clears_every_vote_writing_no_record() {
    const NODES: u16 = 140;
    let mut engine = Engine::voting(NODES, &[1]);
    assert_eq!(engine.cache.state.failure_votes(NodeId(1)).len(), NODES - 1);
    let reset = engine.commit(2, RESET);
    assert_eq!(
        Engine::records_written(&reset),
        Vec::<&str>::new(),
        "a new round writes no voter's record"
    );
    assert!(
        reset.writes.len() <= ETCD_WRITES_MAX,
        "{}",
        reset.writes.len()
    );
    assert!(engine
        .cache
        .state
        .nodes()
        .iter()
        .all(|r| r.detected.is_empty()));
    // A vote of the new round counts; the expired ones do not come back.
    engine.commit(1, heartbeat(1));
    engine.commit(5, detect(5, 1));
    let voters: Vec<NodeId> = engine
        .cache
        .state
        .node_ids()
        .filter(|&d| {
            engine
                .cache
                .state
                .node(d)
                .unwrap()
                .detected
                .contains(NodeId(1))
        })
        .collect();
    assert_eq!(voters, [NodeId(5)]);
}

/// ResetHeartbeats compares the round and its proposal's record, no node record: record
/// changes committed after its view (a partition report, a vote of the round it closes) do not
/// refuse it, and once it commits after them the store reads back as the reducer leaves the
/// registry with those changes first (their votes and flags expire with the round). Before,
/// it compared every record, and at 100 nodes a stream of such changes refused every new round.
#[test]
fn a_new_round_commits_over_record_changes_made_after_its_view() {
    let mut engine = Engine::voting(8, &[1]);
    // n3, a voter against n1, is voted against too (a voter that is also a target: its record
    // was written, its generation raised, by a new round before).
    engine.commit(1, detect(1, 3));
    let reset = engine.planned(2, RESET);
    assert_eq!(Engine::records_written(&reset), Vec::<&str>::new());
    assert!(reset.reads.contains_key("round"));
    let records: Vec<&String> = reset
        .reads
        .keys()
        .filter(|k| k.starts_with("node/"))
        .collect();
    assert!(records.is_empty(), "a new round compares {records:?}");
    // Meanwhile: a partition report (two records), and a vote of the round it closes.
    engine.commit(5, partition(5, 6));
    engine.commit(7, partition(7, 2));
    engine.commit(7, detect(7, 2));
    assert!(
        !engine.conflicts(&reset),
        "record changes after its view refused the new round"
    );
    // Commit it now, planned on the older view: the serial order is those changes, then it.
    let loaded = load(Entry::listed(&engine.entries)).unwrap();
    let proposal = engine.proposal(2, RESET, loaded.meta.round);
    let serial = execute(&loaded.state, &loaded.meta, &proposal).unwrap();
    let changes = engine.apply(&reset);
    let read_back = load(Entry::listed(&engine.entries)).unwrap();
    assert!(
        read_back.state == serial.next,
        "the stored registry is not the reducer's, the changes then the new round"
    );
    assert_eq!(read_back.meta.round, serial.meta.round);
    assert!(read_back
        .state
        .nodes()
        .iter()
        .all(|r| r.detected.is_empty()));
    assert!(read_back.state.heartbeats().is_empty());
    // The partition reports stay.
    assert!(!read_back.state.can_communicate(NodeId(5), NodeId(6)));
    engine.cache = apply_changes(&engine.cache, &mut engine.poisoned, &changes).unwrap();
    assert!(engine.cache.state == serial.next);
}
