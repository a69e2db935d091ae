// The generator of drivers/tests/fixtures/format-v1/ (issue 21, point 6). Not compiled in this
// workspace: scripts/format-v1-fixture/generate.sh appends it to drivers/src/kv.rs of a scratch
// worktree at 7f400ca (the last commit writing format version 1 with the heartbeat flag, before
// 1d04913 "registry v2: the heartbeat's stored form") and runs it there, so that every value is
// written by that commit's own key-value layout (`kv::load`, `kv::plan_fitting`, `kv::plan`,
// `codec::encode`): the bytes an etcd or FoundationDB store of that version holds.
//
// It runs one scripted history on an in-process engine that does what the etcd store does per
// attempt (load every entry, `plan_fitting` with the committed log on, apply the writes) and
// writes every key as one file under $FIXTURE_DIR (the key's `/` are directories).

#[cfg(test)]
mod format_v1_fixture {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use membership_core::{Action, Event, Proposal, ProposalId};

    #[derive(Default)]
    struct Engine {
        kv: BTreeMap<String, (Vec<u8>, i64)>,
        revision: i64,
        seq: BTreeMap<NodeId, u64>,
    }

    impl Engine {
        fn entries(&self) -> Vec<Entry> {
            self.kv
                .iter()
                .map(|(k, (v, version))| Entry {
                    key: k.clone(),
                    value: v.clone(),
                    version: *version,
                })
                .collect()
        }

        fn put(&mut self, key: String, value: Vec<u8>) {
            self.revision += 1;
            self.kv.insert(key, (value, self.revision));
        }

        fn loaded(&self) -> Loaded {
            load(self.entries()).unwrap()
        }

        fn claim(&mut self, node: u16) {
            let node = NodeId(node);
            let slot = self
                .loaded()
                .meta
                .claim(node, &format!("127.0.0.1:{}", 40_000 + node.0));
            self.put(meta_key_name(&MetaKey::Slot(node)), encode(&slot));
        }

        fn propose(&mut self, node: u16, event: Event, round: Option<u64>) {
            let node = NodeId(node);
            let seq = {
                let seq = self.seq.entry(node).or_insert(0);
                *seq += 1;
                *seq
            };
            let loaded = self.loaded();
            let proposal = Proposal {
                id: ProposalId {
                    node,
                    incarnation: loaded.meta.slots.get(&node).unwrap().incarnation,
                    seq,
                },
                action: Action::Step(event),
                round,
            };
            match plan_fitting(&loaded, &proposal, true, |_| Ok(())).unwrap() {
                Planned::Commit(_, plan) => {
                    for write in plan.writes {
                        match write {
                            Write::Put(k, v) => self.put(k, v),
                            Write::Delete(k) => {
                                self.kv.remove(&k);
                            }
                        }
                    }
                }
                Planned::Refused(error) => panic!("{event} refused: {error}"),
                Planned::Duplicate(_) => panic!("{event} duplicate"),
            }
        }
    }

    #[test]
    fn write_format_v1_fixture() {
        let dir = std::env::var("FIXTURE_DIR").expect("FIXTURE_DIR");
        let mut e = Engine::default();
        e.put(
            CONFIG_KEY.to_string(),
            encode(&StoredConfig::of(&Config::fixed(3).unwrap())),
        );
        for n in 1..=3 {
            e.claim(n);
        }
        // n1 bootstraps (primary, term 1), n2 and n3 join.
        for event in membership_core::testing::all_active(3) {
            let node = match event {
                Event::NodeJoin { node } | Event::NodeJoinComplete { node } => node.0,
                _ => 1,
            };
            e.propose(node, event, None);
        }
        // Round 0: all three heartbeat (flags true); n1 opens round 1 (flags written false);
        // n1 and n2 heartbeat in round 1: heartbeat/n1 = heartbeat/n2 = true, heartbeat/n3 =
        // false.
        for n in 1..=3 {
            e.propose(n, Event::SendHeartbeat { node: NodeId(n) }, None);
        }
        e.propose(1, Event::ResetHeartbeats, Some(0));
        for n in 1..=2 {
            e.propose(n, Event::SendHeartbeat { node: NodeId(n) }, None);
        }
        // Six actors, then n3 leaves: its actors are queued (queue/c0), one is migrated.
        for a in 1..=6 {
            e.propose(1, Event::PlaceActor { actor: ActorId(a) }, None);
        }
        e.propose(3, Event::NodeLeave { node: NodeId(3) }, None);
        let first = e.loaded().state.queue().actors().next().expect("n3's actors queued");
        e.propose(1, Event::MigrateActor { actor: first, term: 1 }, None);
        let root = std::path::Path::new(&dir);
        let mut revisions = String::new();
        for (key, (value, revision)) in &e.kv {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, value).unwrap();
            revisions.push_str(&format!("{revision} {key}\n"));
        }
        // Each key's revision (the engine's counter of writes, as etcd's mod_revision): a log
        // record is written once, so its revision is its place in commit order.
        std::fs::write(root.with_file_name("revisions"), revisions).unwrap();
        let loaded = e.loaded();
        println!("round {}", loaded.meta.round);
        println!("heartbeats {:?}", loaded.state.heartbeats());
        println!("queue {:?}", loaded.state.queue().actors().collect::<Vec<_>>());
        println!("placements {:?}", loaded.state.placements());
        for (n, r) in loaded.state.node_ids().zip(loaded.state.nodes()) {
            println!("{n}: {:?} term {} view {:?}#{}", r.status, r.term, r.view, r.view_number);
        }
        println!("{} keys", e.kv.len());
    }
}
