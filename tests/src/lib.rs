//! Deterministic simulation of whole clusters on the production code, with an independent
//! checker (issue 10).
//!
//! One seed drives a simulated world ([`world::Params`], drawn from the seed): a store (the
//! production `MemoryStore`'s optimistic transactions, with commit-unknown results, unavailability,
//! a node losing the store, latency), a probe network (symmetric and one-way partitions, heals,
//! delay, reordering, loss, duplication), a clock per node with skew and rate error within the
//! configured bound, crashes and restarts with new incarnations, processes frozen past their
//! lease (and zombies whose slot was claimed meanwhile), and degraded observers. Every node runs
//! core's `Agent`; every transaction runs core's `execute` (and so `step`) inside the
//! MemoryStore's transaction code. Nothing of the protocol is copied here.
//!
//! After every step: single activation as the processes experience it (`Agent::may_serve` at
//! each process's own clock, paused and zombie processes included). After every commit: the
//! independent [`checker::Replay`] replays the store's log through `core::step`, checks every
//! state and transition invariant of `core`, that no proposal commits twice, and that the
//! stored registry equals the replay. After every step, activation, policy proposal and
//! delivered snapshot: the timing oracles, which check the Agent's decisions against true time
//! (the lease rule, the hand-off, partition reports backed by the probes delivered, snapshot
//! age; margins in [`Measurements`]). At the end of every run: a liveness phase (faults stop;
//! within [`sim::LIVENESS_FAILURE_TIMEOUTS`] failure timeouts the cluster converges). Pinned
//! regression runs compare their traces with recorded checkpoints ([`pins`]).
//!
//! Reproduce a failing seed with the command its report prints, for example
//! `DST_SEED=42 DST_SCENARIO=swarm DST_STEPS=10000 cargo test -p membership-sim --test sim reproduce -- --nocapture`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checker;
pub mod coverage;
pub mod pins;
pub mod rng;
pub mod sim;
pub mod world;

pub use coverage::{Coverage, FaultKind};
pub use pins::{check_pin, Expectation};
pub use sim::{run, run_window, Margins, Measurements, Options, Report};
pub use world::{Params, Planted, Scenario};

/// Runs `seeds` swarm seeds from `first` with `steps` steps each; the reports in seed order.
pub fn campaign(first: u64, seeds: u64, steps: u64) -> Vec<Report> {
    (first..first + seeds)
        .map(|seed| run(Options::swarm(seed, steps)))
        .collect()
}

/// The first seed from `first` (at most `bound` seeds) on which the simulation catches
/// `planted`, with its report; `None` if it survives them all.
pub fn catch(planted: Planted, first: u64, bound: u64, steps: u64) -> Option<Report> {
    (first..first + bound).find_map(|seed| {
        let report = run(Options {
            planted: Some(planted),
            ..Options::swarm(seed, steps)
        });
        (!report.passed()).then_some(report)
    })
}
