//! The simulation in CI: many seeds with every fault, the determinism check, the planted bugs,
//! and the reproduction of one seed.
//!
//! Reproduce a failing seed exactly (the failure report prints this line):
//! `DST_SEED=<seed> DST_SCENARIO=swarm DST_STEPS=<steps> cargo test -p membership-sim --test sim reproduce -- --nocapture`
//! (add `DST_PLANTED=<name>` for a planted bug, `DST_CACHE=1` for registry caches in the loop,
//! `DST_LEAVING_ZOMBIES=1` for the harder world that
//! may replace a frozen Leaving node).

use membership::protocol::ActionName;
use membership_sim::{
    catch, check_pin, run, Coverage, Expectation, FaultKind, Margins, Options, Planted, Report,
    Scenario,
};

/// Seeds of the CI swarm campaign.
const CI_SEEDS: u64 = 64;
/// Steps of each CI seed's fault phase (the liveness phase comes on top).
const CI_STEPS: u64 = 20_000;
/// Seeds of each measured scenario (failover, degraded observer) in CI.
const CI_SCENARIO_SEEDS: u64 = 8;
/// Every planted bug must be caught within this many seeds (from seed 0).
const MUTANT_SEEDS_BOUND: u64 = 40;
/// Steps of each planted-bug run.
const MUTANT_STEPS: u64 = 10_000;

#[test]
fn ci_campaign_64_seeds_of_20000_steps_every_check_holds_and_everything_is_exercised() {
    let mut total = Coverage::default();
    let mut steps = 0;
    let (mut lease, mut handoff) = (Margins::default(), Margins::default());
    let (mut backed, mut skipped) = (0, 0);
    for seed in 0..CI_SEEDS {
        let report = run(Options::swarm(seed, CI_STEPS));
        assert!(report.passed(), "{}", report.failure.unwrap_or_default());
        assert!(report.steps >= CI_STEPS);
        assert_eq!(report.measurements.past_deadlines, 0, "seed {seed}");
        // The timing oracles: no negative margin, no partition reported without the agreeing
        // probes, no stale snapshot (each would also have failed the run).
        let m = &report.measurements;
        assert_eq!(
            m.lease_margins.negative(),
            0,
            "seed {seed}: {:?}",
            m.lease_margins.min_us()
        );
        assert_eq!(
            m.handoff_margins.negative(),
            0,
            "seed {seed}: {:?}",
            m.handoff_margins.min_us()
        );
        assert_eq!(m.unbacked_partition_reports, 0, "seed {seed}");
        assert_eq!(m.stale_snapshots, 0, "seed {seed}");
        lease.samples_us.extend(&m.lease_margins.samples_us);
        handoff.samples_us.extend(&m.handoff_margins.samples_us);
        backed += m.backed_partition_reports;
        skipped += m.margins_skipped_clock_beyond_bound;
        assert!(
            report.measurements.converged_after_ms.is_some(),
            "seed {seed} finished without converging"
        );
        steps += report.steps;
        total.add(&report.coverage);
    }
    for scenario in [Scenario::Failover, Scenario::Degraded, Scenario::ScaleDown] {
        for seed in 0..CI_SCENARIO_SEEDS {
            let report = run(Options {
                scenario,
                ..Options::swarm(seed, 0)
            });
            assert!(report.passed(), "{}", report.failure.unwrap_or_default());
            let m = &report.measurements;
            assert_eq!(m.false_declarations, 0, "seed {seed} {scenario:?}: {m:?}");
            assert_eq!(m.degraded_healthy_declared, 0, "seed {seed}: {m:?}");
            if scenario != Scenario::Degraded {
                // Failover, and ScaleDown: the crashed member is declared and its actors served
                // again although fewer members than a slot majority remain.
                assert!(
                    m.failover_declared_ms.is_some(),
                    "seed {seed} {scenario:?}: {m:?}"
                );
                assert!(
                    m.failover_served_ms.is_some(),
                    "seed {seed} {scenario:?}: {m:?}"
                );
            }
            total.add(&report.coverage);
        }
    }
    println!(
        "{steps} swarm steps; lease margin min {:?} us, median {:?} us ({} samples); hand-off \
         margin min {:?} us, median {:?} us ({} samples); {skipped} left out (a clock beyond its \
         bound); {backed} partition reports, every one backed by its probes\n{}",
        lease.min_us(),
        lease.median_us(),
        lease.samples_us.len(),
        handoff.min_us(),
        handoff.median_us(),
        handoff.samples_us.len(),
        total.report()
    );
    // The oracles saw something: the swarm stops processes serving, hands actors off and
    // reports partitions.
    assert!(lease.samples_us.len() > 100 && handoff.samples_us.len() > 100);
    assert!(backed > 100);
    assert_eq!(total.missing_actions(), Vec::<ActionName>::new());
    assert_eq!(total.missing_faults(), Vec::<FaultKind>::new());
    assert!(steps >= CI_SEEDS * CI_STEPS);
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    let mut hashes = std::collections::BTreeSet::new();
    for seed in [0, 1, 2, 3, 17, 42, 1_000, u64::MAX] {
        let a = run(Options::swarm(seed, 5_000));
        let b = run(Options::swarm(seed, 5_000));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(
            (a.steps, a.sim_ms, a.commits),
            (b.steps, b.sim_ms, b.commits)
        );
        assert_eq!(a.coverage, b.coverage);
        hashes.insert(a.trace_hash);
    }
    // Different seeds are different worlds.
    assert_eq!(hashes.len(), 8);
    let f1 = run(Options {
        scenario: Scenario::Failover,
        ..Options::swarm(5, 0)
    });
    let f2 = run(Options {
        scenario: Scenario::Failover,
        ..Options::swarm(5, 0)
    });
    assert_eq!(f1.trace_hash, f2.trace_hash);
    assert_eq!(f1.measurements, f2.measurements);
}

#[test]
fn every_planted_bug_is_caught_within_40_seeds_and_its_printed_seed_fails_again() {
    let mut table = Vec::new();
    let late = Planted::from_name(STALE_INCARNATION);
    let catalogue = Planted::safety_catalogue()
        .into_iter()
        .chain(Planted::liveness_catalogue())
        .filter(|&p| Some(p) != late);
    for planted in catalogue {
        let Some(report) = catch(planted, 0, MUTANT_SEEDS_BOUND, MUTANT_STEPS) else {
            panic!("{planted} survived {MUTANT_SEEDS_BOUND} seeds");
        };
        let seed = report.options.seed;
        let failure = report.failure.clone().unwrap_or_default();
        // The catch is the bug's: the same world without it passes...
        let clean = run(Options::swarm(seed, MUTANT_STEPS));
        assert!(
            clean.passed(),
            "{planted}: seed {seed} fails without the bug too"
        );
        // ...and the printed seed reproduces the same failure.
        let again = run(report.options);
        assert_eq!(again.failure.as_deref(), Some(failure.as_str()));
        assert!(failure.contains(&format!("DST_SEED={seed} ")), "{failure}");
        // The timing oracles' planted bugs are caught by their own oracle, named on the first
        // line.
        let first = failure.lines().next().unwrap_or("");
        let oracle = match planted.name().as_str() {
            "driver:lease-one-interval-long" => Some("SIMULATION FAILED: lease: "),
            "driver:halved-handoff-wait" => Some("SIMULATION FAILED: hand-off: "),
            "driver:single-probe-partition" => {
                Some("SIMULATION FAILED: partition reported without the required agreeing probes")
            }
            "driver:stale-snapshot" => Some("SIMULATION FAILED: stale snapshot: "),
            _ => None,
        };
        if let Some(oracle) = oracle {
            assert!(first.starts_with(oracle), "{planted}: {first}");
        }
        table.push((
            planted,
            seed + 1,
            failure.lines().next().unwrap_or("").to_string(),
        ));
    }
    for (planted, seeds, first) in &table {
        println!("{planted:<40} caught after {seeds:>2} seed(s): {first}");
    }
}

/// Seeds of each scenario run with registry caches in the loop in CI.
const CACHE_SEEDS: u64 = 32;

/// Every process reads its snapshots through its own registry cache (the etcd and FoundationDB
/// stores' cache and confirmation rule), fed by a change feed that lags, is cut with the store
/// link, waits while its process is frozen, and breaks: every check holds (the snapshot-age
/// oracle against the instant each snapshot's confirmation was sent, the lease and hand-off
/// oracles counting from it), failover still serves every actor, and each of the cache's
/// situations occurs: snapshots on a reused confirmation, confirmations that wait for the feed,
/// breaks answered by a load.
#[test]
fn with_registry_caches_in_the_loop_every_check_holds_while_the_feeds_lag_and_break() {
    let (mut reused, mut waits, mut breaks, mut lease_samples) = (0, 0, 0, 0);
    for seed in 0..CACHE_SEEDS {
        for (scenario, steps) in [(Scenario::Swarm, CI_STEPS), (Scenario::Failover, 0)] {
            let report = run(Options {
                scenario,
                cache: true,
                ..Options::swarm(seed, steps)
            });
            assert!(report.passed(), "{}", report.failure.unwrap_or_default());
            let m = &report.measurements;
            assert_eq!(m.stale_snapshots, 0, "seed {seed} {scenario:?}");
            assert_eq!(m.lease_margins.negative(), 0, "seed {seed} {scenario:?}");
            assert_eq!(m.handoff_margins.negative(), 0, "seed {seed} {scenario:?}");
            // Every process loaded its cache once when it started, and once per break.
            assert!(
                m.cache_loads >= m.feed_breaks + u64::from(report.params.nodes),
                "seed {seed} {scenario:?}: {m:?}"
            );
            if scenario == Scenario::Failover {
                assert!(m.failover_served_ms.is_some(), "seed {seed}: {m:?}");
                assert_eq!(m.false_declarations, 0, "seed {seed}: {m:?}");
            }
            reused += m.cache_reused;
            waits += m.cache_waits;
            breaks += m.feed_breaks;
            lease_samples += m.lease_margins.samples_us.len();
        }
    }
    println!(
        "registry caches over {CACHE_SEEDS} seeds: {reused} snapshots on a reused confirmation, \
         {waits} confirmations waited for the feed, {breaks} feed breaks, {lease_samples} lease \
         margins"
    );
    assert!(reused > 1_000 && waits > 100 && breaks > 10 && lease_samples > 100);
}

/// With registry caches, a node whose snapshots arrive later than its next heartbeat's commit
/// (its change feed lags more than a heartbeat interval) unfences after a clock fence: the
/// Agent counts a snapshot read after the first heartbeat committed since the fence, not only
/// after the latest (seed 273 with caches, 20,000 steps: before the fix, n6 stayed fenced from
/// 1.45 s to the end and the liveness phase failed, "a1 is not served by exactly n6").
#[test]
fn regression_with_a_lagging_cache_a_fenced_node_unfences() {
    let report = run(Options {
        cache: true,
        ..Options::swarm(273, CI_STEPS)
    });
    assert!(report.passed(), "{}", report.failure.unwrap_or_default());
    assert!(report.measurements.clock_fences > 0);
    assert!(report.measurements.converged_after_ms.is_some());
}

/// The caches' planted bugs are caught by the snapshot-age oracle within 40 seeds, the same
/// world without the bug passes, and the printed command (with `DST_CACHE=1`) fails again.
#[test]
fn every_planted_cache_bug_is_caught_by_the_snapshot_age_oracle_within_40_seeds() {
    for planted in Planted::cache_catalogue() {
        let caught = (0..MUTANT_SEEDS_BOUND)
            .map(|seed| {
                run(Options {
                    planted: Some(planted),
                    cache: true,
                    ..Options::swarm(seed, MUTANT_STEPS)
                })
            })
            .find(|report| !report.passed());
        let Some(report) = caught else {
            panic!("{planted} survived {MUTANT_SEEDS_BOUND} seeds with caches");
        };
        let seed = report.options.seed;
        let failure = report.failure.clone().unwrap_or_default();
        let first = failure.lines().next().unwrap_or("");
        assert!(
            first.starts_with("SIMULATION FAILED: stale snapshot: "),
            "{planted}: {first}"
        );
        let clean = run(Options {
            cache: true,
            ..Options::swarm(seed, MUTANT_STEPS)
        });
        assert!(
            clean.passed(),
            "{planted}: seed {seed} fails without the bug too"
        );
        let again = run(report.options);
        assert_eq!(again.failure.as_deref(), Some(failure.as_str()));
        assert!(failure.contains("DST_CACHE=1"), "{failure}");
        println!("{planted:<24} caught at seed {seed}: {first}");
    }
}

/// Seeds of the clock watchdog's before/after comparison.
const CLOCK_SEEDS: u64 = 64;

/// Clock faults beyond the bound (8% slews, paused VMs with stopped clocks, forward jumps) with
/// and without the watchdog, on the same seeds: without it (`driver:no-clock-watchdog`) some
/// seed serves an actor twice at once; with it none does, and its fences are counted.
#[test]
fn clock_faults_beyond_the_bound_serve_an_actor_twice_without_the_watchdog_and_never_with_it() {
    let mutant = Planted::from_name("driver:no-clock-watchdog");
    assert!(mutant.is_some());
    let (mut dual_without, mut dual_with, mut fences, mut suspicions) = (0, 0, 0, 0);
    let mut faults = Coverage::default();
    for seed in 0..CLOCK_SEEDS {
        let without = run(Options {
            planted: mutant,
            ..Options::swarm(seed, MUTANT_STEPS)
        });
        if without
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("single activation"))
        {
            dual_without += 1;
        }
        let with = run(Options::swarm(seed, MUTANT_STEPS));
        if !with.passed() {
            dual_with += 1;
            println!("{}", with.failure.clone().unwrap_or_default());
        }
        fences += with.measurements.clock_fences;
        suspicions += with.measurements.clock_suspicions;
        faults.add(&with.coverage);
    }
    println!(
        "{CLOCK_SEEDS} seeds of {MUTANT_STEPS} steps: runs with a dual activation without the \
         watchdog {dual_without}, with it {dual_with}; with it {suspicions} suspicious readings, \
         {fences} clock fences"
    );
    println!("{}", faults.report());
    assert!(
        dual_without > 0,
        "the watchdog-less Agent survived every seed"
    );
    assert_eq!(dual_with, 0);
    assert!(fences > 0);
}

/// The planted bug that is caught later than the others: `execute` accepting an older
/// incarnation's proposal. Its zombie no longer serves (the Agent fences itself on the slot
/// incarnation in its snapshots, the first bug's fix, which masks it there), so what shows is a
/// proposal committed twice: the claim forgets the older incarnation's applied proposals, so its
/// retry is applied again.
const STALE_INCARNATION: &str = "driver:accept-stale-incarnation";

/// Pinned runs (`membership_sim::pins`): every expectation of a pin, and the bug it guards,
/// named in its failure message with the first window where the trace left the recorded one.
fn pin(name: &str, guards: &str, runs: &[(Options, Expectation<'_>)]) {
    if let Err(message) = check_pin(name, guards, runs) {
        panic!("{message}");
    }
}

/// The run passed every check.
fn passes(report: &Report) -> Result<(), String> {
    match &report.failure {
        None => Ok(()),
        Some(failure) => Err(format!(
            "the run failed ({})",
            failure.lines().next().unwrap_or("")
        )),
    }
}

/// The run passed, and the situation it pins (`what`) was reached (`reached`).
fn passes_reaching(
    report: &Report,
    what: &str,
    reached: impl Fn(&Report) -> bool,
) -> Result<(), String> {
    passes(report)?;
    if reached(report) {
        Ok(())
    } else {
        Err(format!(
            "the situation this seed pins ({what}) is no longer reached: {:?}",
            report.measurements
        ))
    }
}

/// The run failed with a report that contains `needle` anywhere; else `why`, with the report's
/// first line.
fn fails_containing(report: &Report, needle: &str, why: &str) -> Result<(), String> {
    let failure = report.failure.as_deref().unwrap_or("(the run passed)");
    if failure.contains(needle) {
        Ok(())
    } else {
        Err(format!(
            "{why}, got: {}",
            failure.lines().next().unwrap_or("")
        ))
    }
}

/// The run failed, its first line starting with `first`.
fn fails_with(report: &Report, first: &str) -> Result<(), String> {
    let line = report
        .failure
        .as_deref()
        .and_then(|f| f.lines().next())
        .unwrap_or("(the run passed)");
    if line.starts_with(first) {
        Ok(())
    } else {
        Err(format!(
            "expected a failure starting {first:?}, got {line:?}"
        ))
    }
}

#[test]
fn a_store_that_accepts_a_stale_incarnation_is_caught_at_seed_56() {
    let planted = Planted::from_name(STALE_INCARNATION);
    assert!(planted.is_some());
    // Seed 134 before the clock faults' draws (issue 18), then 76; registry v2 (issue 17)
    // changed every world's trace again (rounds every heartbeat interval, silent nodes declared
    // on the registry's evidence, long store cuts, nodes lost for good, heartbeats that
    // conflict with a new round), and 56 was the first seed that reached it; with one
    // configuration (membership changes write O(1) records, each member adopts the
    // configuration in its own transaction) 1904 is the first (scanned from seed 0 at 10,000
    // steps): the situation, a retried proposal of an older incarnation after its slot was
    // claimed again, has become rarer, since fewer transactions conflict. With the heartbeat's
    // stored form seed 43 was the first, with rounds every half interval seed 314 was, and
    // since the members key (issue 19: joins, syncs and placements no longer conflict with
    // members writing their own records) seed 473 was, and since members adopt a configuration
    // once it is stable (issue 19) seed 56 is (scanned from seed 0).
    let caught: Expectation<'_> =
        &|r| fails_with(r, "SIMULATION FAILED: proposal n3.1#56 committed twice");
    pin(
        "a_store_that_accepts_a_stale_incarnation_is_caught_at_seed_56",
        "the planted driver:accept-stale-incarnation (execute accepting an older \
         incarnation's proposal) caught by the replay: a retried proposal of an older \
         incarnation after its slot was claimed again commits twice; the same world without \
         the bug passes",
        &[
            (
                Options {
                    planted,
                    ..Options::swarm(56, MUTANT_STEPS)
                },
                caught,
            ),
            (Options::swarm(56, MUTANT_STEPS), &passes),
        ],
    );
}

#[test]
fn regression_a_zombie_of_a_leaving_node_learns_from_its_snapshot_that_it_was_superseded() {
    // Found by this simulation (seed 190 of the harder world, 30,000 steps): the frozen process
    // of n3 (incarnation 2, Leaving) unfenced on its first fresh snapshot after it resumed and
    // served a17 beside its successor (incarnation 3). The Agent now gets the slot's
    // incarnation with every snapshot and fences itself for good (Superseded) when a newer one
    // holds the slot. Since the clock faults' draws (issue 18) changed every world's trace,
    // seed 41 was the first that reached the situation; since registry v2 (issue 17) changed
    // every trace again, seed 49 was, and since its one configuration (each member adopts the
    // configuration in its own transaction), seed 462 was; since the heartbeat's stored form,
    // seed 916 was, since rounds every half interval, seed 345 was, since the members key
    // (issue 19) seed 208 was, since placement batches (issue 19) seed 836 was, and since a
    // drain's migration batches go out back to back (issue 19) seed 21 was, and since members
    // adopt a configuration once it is stable (issue 19) seed 167 is.
    let zombie: Expectation<'_> = &|r| {
        passes_reaching(
            r,
            "one process of a Leaving node resumed as a zombie and fenced itself as superseded",
            |r| r.measurements.superseded_while_leaving == 1,
        )
    };
    pin(
        "regression_a_zombie_of_a_leaving_node_learns_from_its_snapshot_that_it_was_superseded",
        "bug 1 of docs/simulation.md: a zombie of a Leaving node served beside its successor \
         (fix: the slot's incarnation in every snapshot fences it as Superseded)",
        &[
            (
                Options {
                    leaving_zombies: true,
                    ..Options::swarm(167, 30_000)
                },
                zombie,
            ),
            (Options::swarm(167, 30_000), &passes),
        ],
    );
}

/// The simulation's own defect, found with registry v2's heartbeat stored form (3 of 1,000 seeds
/// of the harder world, 30,000 steps, reported single activation broken): a process pause drawn
/// while its node's VM was paused (its clocks stopped) replaced the VM pause's end with an
/// earlier one, so the process ran on clocks that were still stopped, a fault no real machine has
/// and no watchdog can see; and the oracle counted a process whose own pause outlasted its VM's
/// before its first wake-up, which reads the clocks first as the runtime does. Now a pause never
/// ends one under way early, and such a process is judged at its wake-up. Seeds 489, 1250 and
/// 1258 were the first three that failed without the fix (9 of 2,500 seeds, each drawing one
/// such overlap; scanned with rounds every half interval). Since issue 19 changed the traces
/// (the members key, then placement batches), seeds 46, 49 and 53 are the first three that draw
/// the overlap; each passes.
#[test]
fn regression_a_pause_never_ends_a_paused_vm_early() {
    let overlap: Expectation<'_> = &|r| {
        passes_reaching(
            r,
            "a process pause overlapping a paused VM of its node",
            |r| r.measurements.pauses_overlapping_vm >= 1,
        )
    };
    // The first three seeds that reach it (46, 49 and 53 until a drain's migration batches went
    // out back to back, issue 19; 3, 45 and 121 until members adopted a configuration once it
    // is stable, issue 19).
    let runs: Vec<(Options, Expectation<'_>)> = [67, 84, 157]
        .into_iter()
        .map(|seed| {
            (
                Options {
                    leaving_zombies: true,
                    ..Options::swarm(seed, 30_000)
                },
                overlap,
            )
        })
        .collect();
    pin(
        "regression_a_pause_never_ends_a_paused_vm_early",
        "bug 6 of docs/simulation.md (the simulation's own): a process ran on its paused VM's \
         stopped clocks, and was judged before its first wake-up",
        &runs,
    );
}

#[test]
fn regression_an_actor_is_activated_only_after_the_handoff_wait() {
    // Found by this simulation: `reconcile` activated an actor at once in two cases that do
    // not prove the previous holder had stopped: (a) the previous snapshot placed it on this
    // node with this epoch while the node was fenced (seeds 312, 345, 631, 815: a2 moved from
    // Leaving n2 to n5 and was activated the moment n5 unfenced); (b) the previous holder was
    // now Failed but had never served it, while the node before it (Leaving) still did (seed
    // 230: a10 moved n4 -> n1 -> n5). The Agent now waits the hand-off for every actor it is
    // not serving yet. The hand-off oracle checks every activation of these runs against its
    // previous holder's lease rule.
    let handed_off: Expectation<'_> = &|r| {
        passes_reaching(r, "actors handed off between processes", |r| {
            !r.measurements.handoff_margins.samples_us.is_empty()
        })
    };
    let runs: Vec<(Options, Expectation<'_>)> = [312, 230, 345, 631, 815]
        .into_iter()
        .map(|seed| (Options::swarm(seed, 10_000), handed_off))
        .collect();
    pin(
        "regression_an_actor_is_activated_only_after_the_handoff_wait",
        "bug 2 of docs/simulation.md: an actor activated without the hand-off wait while its \
         previous, Leaving holder still served it",
        &runs,
    );
}

#[test]
fn regression_a_migration_batch_that_finds_the_queue_empty_is_refused_not_a_panic() {
    // Found by this simulation (seeds 91 and 942): the primary proposed a MigrateBatch on a
    // snapshot with a queued actor; by the time the transaction ran the queue was empty and
    // `execute` failed its assertion `!events.is_empty()`. It now refuses with
    // `NothingToMigrate`, which these seeds reach (233 and 942 after the clock faults' draws of
    // issue 18 changed every world's trace; 14 and 36 after registry v2's; 63 and 67 after its
    // one configuration; 54 and 184 after the heartbeat's stored form; 13 and 65 with rounds
    // every half interval; 210 (twice) and 62 (once), the first of each, since the members key
    // of issue 19; 0 (twice) and 21 (once) since a drain's batches go out back to back, issue
    // 19: every drain now ends with one such refusal, the batch after the last; 18 (twice) and
    // 1 (once), the first of each, since members adopt a configuration once it is stable).
    let twice: Expectation<'_> = &|r| {
        passes_reaching(r, "NothingToMigrate refused twice, no busy loop", |r| {
            r.coverage.refusals.get("NothingToMigrate") == Some(&2)
                && r.measurements.past_deadlines == 0
        })
    };
    let once: Expectation<'_> = &|r| {
        passes_reaching(r, "NothingToMigrate refused once, no busy loop", |r| {
            r.coverage.refusals.get("NothingToMigrate") == Some(&1)
                && r.measurements.past_deadlines == 0
        })
    };
    pin(
        "regression_a_migration_batch_that_finds_the_queue_empty_is_refused_not_a_panic",
        "bug 3 of docs/simulation.md: a migration batch that found the queue empty panicked in \
         execute (now refused with NothingToMigrate and not proposed again)",
        &[
            (Options::swarm(18, 10_000), twice),
            (Options::swarm(1, 10_000), once),
        ],
    );
}

/// Issue 17, "Why" 2: a node that loses only its link to the store (its probes still answered)
/// was never declared failed before registry v2: its peers' heartbeats kept its flag set, and it
/// froze failover. Seed 0 draws a long store cut (10 to 15 failure timeouts): the cut node is
/// declared failed on the registry's evidence, every check holds, and the cluster converges once
/// the link is back (seed 2 until heartbeats that conflict with a new round changed the traces,
/// then seed 4 until rounds every half interval did, then seed 0 until the members key of issue
/// 19 did; now seed 2). Under the v1 heartbeat rule (the planted
/// `mutant:heartbeat-by-peer`) the same world fails at once (OwnHeartbeat).
#[test]
fn regression_a_node_cut_off_from_the_store_only_is_declared_failed() {
    let declared: Expectation<'_> = &|r| {
        passes_reaching(
            r,
            "a long store cut, and the cut node declared failed while cut",
            |r| {
                r.coverage.faults.get(&FaultKind::StoreCutLong) > Some(&0)
                    && r.measurements.declared_while_store_cut >= 1
            },
        )
    };
    let v1: Expectation<'_> = &|r| {
        fails_containing(
            r,
            "OwnHeartbeat violated",
            "under the v1 heartbeat rule the run should break OwnHeartbeat",
        )
    };
    pin(
        "regression_a_node_cut_off_from_the_store_only_is_declared_failed",
        "issue 17 \"Why\" 2: a node that lost only its store link was never declared failed \
         (its peers' heartbeats kept its flag set) and froze failover",
        &[
            (Options::swarm(2, MUTANT_STEPS), declared),
            (
                Options {
                    planted: Planted::from_name("mutant:heartbeat-by-peer"),
                    ..Options::swarm(2, MUTANT_STEPS)
                },
                v1,
            ),
        ],
    );
}

/// Issue 17: a node lost for good. Seed 8 (12 before the one configuration changed the
/// traces, 6 before rounds every half interval did, 8 before the members key of issue 19 did, 21
/// before a drain's migration batches went out back to back, 18 before members adopted a
/// configuration once it is stable; the first seed that draws the fault now) crashes one
/// node that never restarts, not even in the liveness phase: the members left declare it failed,
/// move its actors, and converge without it (a real cluster does not get a lost machine back).
#[test]
fn regression_a_node_lost_for_good_leaves_the_others_carrying_on() {
    let lost: Expectation<'_> = &|r| {
        passes_reaching(r, "one node lost for good", |r| {
            r.coverage.faults.get(&FaultKind::PermanentLoss) == Some(&1)
        })
    };
    pin(
        "regression_a_node_lost_for_good_leaves_the_others_carrying_on",
        "issue 17: the members left must declare a node lost for good, move its actors and \
         converge without it (the last member lost while the others joined left nobody to)",
        &[(Options::swarm(8, MUTANT_STEPS), lost)],
    );
}

/// Issue 17, "Why 1": a cluster that scaled down below a majority of its slots and then lost a
/// member. In the `ScaleDown` scenario every node but the first `nodes / 2` leaves, then one of
/// the members left crashes (seed 0: the primary; seed 1: another member). The rest declare it
/// and serve its actors again. With majorities counted over the slots (the planted mutant
/// `quorum-over-slots`), the same world gets stuck: the primary loses its majority once the
/// others leave, nothing migrates, and the leaves never complete.
#[test]
fn regression_a_cluster_scaled_down_below_a_slot_majority_survives_a_crash() {
    let survives: Expectation<'_> = &|r| {
        passes_reaching(
            r,
            "the crashed member declared and its actors served again, no false declaration",
            |r| {
                let m = &r.measurements;
                m.failover_declared_ms.is_some()
                    && m.failover_served_ms.is_some()
                    && m.false_declarations == 0
            },
        )
    };
    let stuck: Expectation<'_> = &|r| {
        fails_containing(
            r,
            "did not complete their leave",
            "with quorums over slots the scale-down should get stuck",
        )
    };
    let mut runs: Vec<(Options, Expectation<'_>)> = Vec::new();
    for seed in [0, 1] {
        let world = Options {
            scenario: Scenario::ScaleDown,
            ..Options::swarm(seed, 0)
        };
        runs.push((world, survives));
        runs.push((
            Options {
                planted: Planted::from_name("mutant:quorum-over-slots"),
                ..world
            },
            stuck,
        ));
    }
    pin(
        "regression_a_cluster_scaled_down_below_a_slot_majority_survives_a_crash",
        "issue 17 \"Why 1\": majorities counted over the slots leave a cluster scaled below a \
         slot majority unable to elect, migrate or complete leaves",
        &runs,
    );
}

/// Found by the 1,000-seed campaign, in the simulation itself: (seed 593) the application's
/// calls into a frozen process counted as its wake-up, so once its VM's clocks ran again under a
/// longer freeze it counted as serving before it had seen the stepped wall clock; (seed 955) a
/// node lost for good came back through a restart drawn before its loss. Both run clean now.
#[test]
fn regression_the_simulation_keeps_frozen_and_lost_processes_honest() {
    pin(
        "regression_the_simulation_keeps_frozen_and_lost_processes_honest",
        "the simulation's own defects: an application call into a frozen process counted as its \
         wake-up (seed 593), and a node lost for good came back through an earlier restart \
         (seed 955)",
        &[
            (Options::swarm(593, MUTANT_STEPS), &passes),
            (Options::swarm(955, MUTANT_STEPS), &passes),
        ],
    );
}

/// The short form of the simulation at scale (issue 19, point 5; the long form is
/// `cargo run --release -p membership-sim -- --scenario scale --nodes 1000 --actors 1000000
/// --seeds 1`): 50 nodes join, their applications place 5,000 actors through their Agents'
/// placement batches, a node hosting actors crashes, and every check stays on (the replay
/// checker's included, checked whole at the end of the run).
const SCALE_NODES: u16 = 50;
/// Actors of the short form at scale.
const SCALE_ACTORS: u64 = 5_000;

#[test]
fn at_scale_50_nodes_place_5000_actors_once_and_serve_a_crashed_nodes_actors_again() {
    let report = run(Options::scale(0, SCALE_NODES, SCALE_ACTORS));
    assert!(report.passed(), "{}", report.failure.unwrap_or_default());
    assert_eq!(report.params.nodes, SCALE_NODES);
    let m = &report.measurements;
    // Every node a member, every actor placed (every request answered with its placement, no
    // error) and served by exactly its node's process.
    assert!(m.scale_members_ms.is_some(), "{m:?}");
    assert!(m.scale_placed_ms.is_some(), "{m:?}");
    assert_eq!(m.scale_place_answers, SCALE_ACTORS, "{m:?}");
    assert_eq!(m.scale_place_errors, 0, "{m:?}");
    // Placed once: the replay checker replayed exactly one PlaceActor per actor (a second one
    // would have been refused by the reducer, and none was removed).
    assert_eq!(
        report
            .coverage
            .actions
            .get(&ActionName::PlaceActor)
            .copied(),
        Some(SCALE_ACTORS)
    );
    assert_eq!(report.coverage.actions.get(&ActionName::RemoveActor), None);
    // Failover at scale: the crashed node hosted actors, was declared failed, and every actor it
    // held was served again elsewhere; nobody else was declared; then the cluster converged
    // (every placed actor served by exactly its node's process).
    assert!(m.scale_failover_actors > 0, "{m:?}");
    assert!(m.failover_declared_ms.is_some(), "{m:?}");
    assert!(m.failover_served_ms.is_some(), "{m:?}");
    assert_eq!(m.false_declarations, 0, "{m:?}");
    assert!(m.converged_after_ms.is_some(), "{m:?}");
    // The timing oracles held.
    assert_eq!(m.lease_margins.negative(), 0);
    assert_eq!(m.handoff_margins.negative(), 0);
    assert_eq!(m.stale_snapshots, 0);
    assert_eq!(m.past_deadlines, 0);
    println!(
        "scale: {} nodes, {} actors: {} steps, {} ms simulated, {} commits; {m:?}",
        report.params.nodes, report.params.actors, report.steps, report.sim_ms, report.commits
    );
}

#[test]
fn reproduce() {
    // `DST_SEED=<seed> [DST_SCENARIO=..] [DST_STEPS=..] [DST_PLANTED=..] [DST_LEAVING_ZOMBIES=1]`
    // `[DST_NODES=.. DST_ACTORS=..]` (the `scale` scenario's sizes);
    // without DST_SEED it runs seed 0 of the swarm.
    let var = |name: &str| std::env::var(name).ok();
    let seed = var("DST_SEED").and_then(|s| s.parse().ok()).unwrap_or(0);
    let scenario = var("DST_SCENARIO")
        .and_then(|s| Scenario::from_name(&s))
        .unwrap_or(Scenario::Swarm);
    let steps = var("DST_STEPS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let planted = var("DST_PLANTED").and_then(|s| Planted::from_name(&s));
    let leaving_zombies = var("DST_LEAVING_ZOMBIES").is_some_and(|v| v == "1");
    let options = Options {
        seed,
        scenario,
        steps,
        planted,
        leaving_zombies,
        nodes: var("DST_NODES").and_then(|s| s.parse().ok()),
        actors: var("DST_ACTORS").and_then(|s| s.parse().ok()),
        cache: var("DST_CACHE").is_some_and(|v| v == "1"),
    };
    let report = run(options);
    println!(
        "seed {seed} {}: {} steps, {} ms simulated, {} commits, trace hash {:016x}\nworld: {:?}\n{}",
        scenario.name(),
        report.steps,
        report.sim_ms,
        report.commits,
        report.trace_hash,
        report.params,
        report.coverage.report()
    );
    if let Some(failure) = &report.failure {
        panic!("{failure}");
    }
}
