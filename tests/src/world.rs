//! The world's parameters, drawn from the seed (VOPR-style: every seed is a different swarm),
//! the scenarios, and the planted bugs.

use crate::rng::Rng;
use membership::protocol::checking::{DriverMutant, Mutant};
use membership::protocol::{Timing, TimingSettings};
use std::fmt;

/// The fewest nodes a drawn world has.
pub const NODES_MIN: u16 = 3;
/// The fewest nodes of a `ScaleDown` world.
pub const SCALE_DOWN_NODES_MIN: u16 = 5;
/// The most nodes a drawn world has.
pub const NODES_MAX_DRAWN: u16 = 7;
/// The most actors a drawn world places.
pub const ACTORS_MAX_DRAWN: u64 = 32;
/// The nodes of a `Scale` world when `Options::nodes` says nothing.
pub const SCALE_NODES_DEFAULT: u16 = 100;
/// The actors of a `Scale` world when `Options::actors` says nothing.
pub const SCALE_ACTORS_DEFAULT: u64 = 100_000;
/// The fewest nodes of a `Scale` world (the calm worlds' minimum).
pub const SCALE_NODES_MIN: u16 = 4;

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// Every fault, drawn at the seed's rates, for the step budget; then the liveness phase.
    Swarm,
    /// Default timing, a calm network with delay jitter up to half a heartbeat interval and
    /// clocks at the rate error bound; once the cluster has converged and placed its actors,
    /// one node crashes (the primary every other seed). Measures failover, and counts false
    /// failure declarations (any other node declared failed).
    Failover,
    /// Default timing, calm; once converged, one node loses every path to its peers (but keeps
    /// the store) for ten failure timeouts. Counts the healthy nodes declared failed.
    Degraded,
    /// Default timing, calm, at least 5 nodes; once converged, every node but the first
    /// `nodes / 2` leaves gracefully, so the members left are fewer than a majority of the
    /// registry's slots; once they are gone, one of the remaining members crashes (the primary
    /// every other seed). The others must declare it and serve its actors: majorities are
    /// counted over the members (registry v2), not the slots. Measured like `Failover`.
    ScaleDown,
    /// The simulation at scale (issue 19): default timing, calm, with the sizes asked for
    /// (`Options::nodes`, `Options::actors`; [`SCALE_NODES_DEFAULT`] and
    /// [`SCALE_ACTORS_DEFAULT`] otherwise). The nodes join; once every node is Active with a
    /// primary, the applications place the actors (each node's application asks its own Agent,
    /// which proposes them in placement batches); once every actor is placed and served, one
    /// node hosting actors crashes (the primary on even seeds, when it hosts any) and every
    /// actor it held must be served again; then the liveness phase. Not in the campaign's
    /// default set.
    Scale,
}

impl Scenario {
    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Swarm => "swarm",
            Scenario::Failover => "failover",
            Scenario::Degraded => "degraded",
            Scenario::ScaleDown => "scale-down",
            Scenario::Scale => "scale",
        }
    }

    /// The scenario with the given name.
    pub fn from_name(name: &str) -> Option<Scenario> {
        [
            Scenario::Swarm,
            Scenario::Failover,
            Scenario::Degraded,
            Scenario::ScaleDown,
            Scenario::Scale,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A bug planted on purpose, to show that the simulation catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Planted {
    /// A mutant of the reducer from core's catalogue (the model checker's).
    Reducer(Mutant),
    /// A broken Agent or shared transaction (core's `DriverMutant`).
    Driver(DriverMutant),
    /// A store that applies a commit-unknown retry twice (the MemoryStore's `Fault::ApplyTwice`
    /// on every commit-unknown-after-commit fault).
    ApplyTwice,
    /// A store that validates less than the transaction's read footprint
    /// (`Fault::ValidatesOnlyWrites` on every commit).
    ReadsLess,
    /// With registry caches ([`crate::Options::cache`]): a cache that answers a confirmation
    /// with its view without waiting for the feed to bring the commit the confirmation found.
    CacheUnconfirmed,
    /// With registry caches: a cache that labels a snapshot with the instant it answers, not
    /// with its confirmation's send.
    CacheLabelsAnswer,
}

/// The reducer's mutants that break only a liveness property (the model checker's liveness
/// mutants); the others break a safety property. `quorum-over-slots` (registry v2) leaves a
/// cluster that scaled below a majority of its slots without a primary; the simulation keeps a
/// majority of the slots running, so only the model checker catches it (EventualElection).
/// Issue 20's three (`elect-needs-newest-view`, `recover-needs-actors`,
/// `rebalance-share-rounds-down`) are the model checker's (EventualPrimary, EventualRejoin,
/// BalanceSettles); the simulation is not asked to catch them.
pub const LIVENESS_MUTANTS: [Mutant; 9] = [
    Mutant::NoStepDown,
    Mutant::NoSyncViews,
    Mutant::MigrateRequeues,
    Mutant::SyncViewsKeepsView,
    Mutant::StepDownBlockedAsBound,
    Mutant::QuorumOverSlots,
    Mutant::ElectNeedsNewestView,
    Mutant::RecoverNeedsActors,
    Mutant::RebalanceShareRoundsDown,
];

impl Planted {
    /// Every planted bug the mutant test runs: the reducer's mutants but three liveness ones
    /// (no-sync-views, which the liveness phase catches when run on its own; no-step-down and
    /// step-down-blocked-as-bound, which it does not: it heals every partition, so a stale
    /// primary is valid again and nothing is left to step down), the driver mutants and the
    /// two broken stores.
    pub fn safety_catalogue() -> Vec<Planted> {
        let mut all: Vec<Planted> = Mutant::ALL
            .into_iter()
            .filter(|m| !LIVENESS_MUTANTS.contains(m))
            .map(Planted::Reducer)
            .collect();
        all.extend(DriverMutant::ALL.into_iter().map(Planted::Driver));
        all.push(Planted::ApplyTwice);
        all.push(Planted::ReadsLess);
        all
    }

    /// The command-line name (`mutant:<name>`, `driver:<name>`, `apply-twice`, `reads-less`).
    pub fn name(self) -> String {
        match self {
            Planted::Reducer(m) => format!("mutant:{}", m.name()),
            Planted::Driver(m) => format!("driver:{}", m.name()),
            Planted::ApplyTwice => "apply-twice".to_string(),
            Planted::ReadsLess => "reads-less".to_string(),
            Planted::CacheUnconfirmed => "cache-unconfirmed".to_string(),
            Planted::CacheLabelsAnswer => "cache-labels-answer".to_string(),
        }
    }

    /// The liveness mutants that the liveness phase catches: views that never agree again, an
    /// actor that never stays placed. (`no-step-down` and `step-down-blocked-as-bound` are not
    /// caught: the liveness phase heals every partition, and a stale primary that regains its
    /// majority is a valid primary again, so nothing is left to step down.)
    pub fn liveness_catalogue() -> Vec<Planted> {
        [
            Mutant::NoSyncViews,
            Mutant::SyncViewsKeepsView,
            Mutant::MigrateRequeues,
        ]
        .into_iter()
        .map(Planted::Reducer)
        .collect()
    }

    /// The planted bugs of the registry caches, caught only in runs with caches
    /// ([`crate::Options::cache`]).
    pub fn cache_catalogue() -> Vec<Planted> {
        vec![Planted::CacheUnconfirmed, Planted::CacheLabelsAnswer]
    }

    /// The planted bug with the given name.
    pub fn from_name(name: &str) -> Option<Planted> {
        let mut all = Planted::safety_catalogue();
        all.extend(LIVENESS_MUTANTS.into_iter().map(Planted::Reducer));
        all.extend(Planted::cache_catalogue());
        all.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Planted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A per-mille rate.
pub type PerMille = u64;

/// The world's parameters, all drawn from the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Nodes in the cluster.
    pub nodes: u16,
    /// Actors the applications place.
    pub actors: u64,
    /// The timing every node runs with.
    pub timing: TimingSettings,
    /// Each node's clock offset (skew) at time zero, in microseconds.
    pub clock_offset_us: Vec<u64>,
    /// Each node's clock rate error, in ppm (within the timing's bound, either sign).
    pub clock_rate_ppm: Vec<i64>,
    /// One-way latency between a node and the store, at most (microseconds).
    pub store_latency_max_us: u64,
    /// How long a transaction runs between its read and its commit, at most (microseconds).
    pub store_exec_max_us: u64,
    /// How long the driver waits for the store before the outcome counts as unknown (ms).
    pub store_timeout_ms: u64,
    /// Per commit: nothing applied, outcome unknown.
    pub unknown_before: PerMille,
    /// Per commit: applied, outcome unknown.
    pub unknown_after: PerMille,
    /// Per commit: nothing applied, the store is unavailable.
    pub unavailable: PerMille,
    /// One-way probe delay, at most (microseconds).
    pub net_delay_max_us: u64,
    /// Per probe packet: lost.
    pub loss: PerMille,
    /// Per probe packet: duplicated.
    pub duplication: PerMille,
    /// Mean gap between fault episodes of each kind (ms; 0: never).
    pub partition_every_ms: u64,
    /// Mean gap between crashes (ms; 0: never).
    pub crash_every_ms: u64,
    /// Mean gap between pauses (ms; 0: never).
    pub pause_every_ms: u64,
    /// Mean gap between degraded-observer episodes (ms; 0: never).
    pub degraded_every_ms: u64,
    /// Mean gap between a node losing the store (ms; 0: never).
    pub store_cut_every_ms: u64,
    /// Mean gap between graceful leaves (ms; 0: never).
    pub leave_every_ms: u64,
    /// Mean gap between direct proposals by the application (ms; 0: never).
    pub direct_every_ms: u64,
    /// Per request: it waits at the store past the driver's timeout (reported unknown) and
    /// still runs later.
    pub late_apply: PerMille,
    /// Mean gap between clock faults (ms; 0: never): a rate change within the bound, a slew
    /// beyond it, a paused VM with its clocks stopped, a forward jump.
    pub clock_fault_every_ms: u64,
}

impl Params {
    /// The world of `seed` for `scenario`.
    pub fn draw(seed: u64, scenario: Scenario) -> Params {
        let mut rng = Rng::new(seed ^ 0x005E_ED0F_BA5E);
        let nodes = u16::try_from(rng.range(u64::from(NODES_MIN), u64::from(NODES_MAX_DRAWN)))
            .unwrap_or(NODES_MIN);
        match scenario {
            Scenario::Swarm => Params::swarm(&mut rng, nodes),
            Scenario::Failover | Scenario::Degraded => Params::calm(&mut rng, nodes),
            // Five nodes at least: two of them (fewer than a slot majority) stay, and one of
            // those two crashes.
            Scenario::ScaleDown => Params::calm(&mut rng, nodes.max(SCALE_DOWN_NODES_MIN)),
            Scenario::Scale => Params::scale(seed, SCALE_NODES_DEFAULT, SCALE_ACTORS_DEFAULT),
        }
    }

    /// The world of a `Scale` run of `seed`: the calm world (default timing, clocks at the rate
    /// error bound, latency jitter) with `nodes` nodes (at least [`SCALE_NODES_MIN`]) and
    /// `actors` actors. Its draws are its own: no other scenario's world calls this.
    pub fn scale(seed: u64, nodes: u16, actors: u64) -> Params {
        let mut rng = Rng::new(seed ^ 0x0000_5CA1_E0F1_E1D5);
        let nodes = nodes.max(SCALE_NODES_MIN);
        Params {
            actors,
            ..Params::calm(&mut rng, nodes)
        }
    }

    fn clocks(rng: &mut Rng, nodes: u16, ppm: u64, extreme: bool) -> (Vec<u64>, Vec<i64>) {
        let offsets = (0..nodes).map(|_| rng.range(0, 10_000_000)).collect();
        let bound = i64::try_from(ppm).unwrap_or(0);
        let rates = (0..nodes)
            .map(|_| {
                let r = if extreme {
                    bound
                } else {
                    i64::try_from(rng.range(0, ppm)).unwrap_or(0)
                };
                if rng.chance(500) {
                    -r
                } else {
                    r
                }
            })
            .collect();
        (offsets, rates)
    }

    fn swarm(rng: &mut Rng, nodes: u16) -> Params {
        let timing = draw_timing(rng);
        let hb_us = timing.heartbeat_interval_ms * 1_000;
        let (clock_offset_us, clock_rate_ppm) =
            Params::clocks(rng, nodes, timing.max_clock_rate_error_ppm, false);
        let ft = timing.failure_timeout_ms;
        let every = |rng: &mut Rng, per_ft_low: u64, per_ft_high: u64| {
            if rng.chance(150) {
                0
            } else {
                ft * rng.range(per_ft_low, per_ft_high)
            }
        };
        Params {
            nodes,
            actors: rng.range(0, ACTORS_MAX_DRAWN),
            clock_offset_us,
            clock_rate_ppm,
            store_latency_max_us: rng.range(100, hb_us / 4),
            store_exec_max_us: rng.range(0, hb_us / 8),
            store_timeout_ms: timing.failure_timeout_ms,
            unknown_before: rng.range(0, 30),
            unknown_after: rng.range(0, 30),
            unavailable: rng.range(0, 30),
            net_delay_max_us: rng.range(100, hb_us / 2),
            loss: rng.range(0, 100),
            duplication: rng.range(0, 100),
            partition_every_ms: every(rng, 2, 8),
            crash_every_ms: every(rng, 3, 12),
            pause_every_ms: every(rng, 3, 12),
            degraded_every_ms: every(rng, 4, 16),
            store_cut_every_ms: every(rng, 3, 12),
            leave_every_ms: every(rng, 4, 16),
            direct_every_ms: every(rng, 1, 3),
            // Drawn last, so that adding it left the other draws alone.
            late_apply: rng.range(0, 20),
            // Drawn after it, for the same reason.
            clock_fault_every_ms: every(rng, 2, 8),
            timing,
        }
    }

    fn calm(rng: &mut Rng, nodes: u16) -> Params {
        let timing = Timing::DEFAULT_SETTINGS;
        let hb_us = timing.heartbeat_interval_ms * 1_000;
        let (clock_offset_us, clock_rate_ppm) =
            Params::clocks(rng, nodes, timing.max_clock_rate_error_ppm, true);
        Params {
            nodes: nodes.max(4),
            actors: rng.range(8, ACTORS_MAX_DRAWN),
            clock_offset_us,
            clock_rate_ppm,
            // Up to a quarter of a heartbeat interval each way: a heartbeat's round trip
            // jitters by up to half the interval.
            store_latency_max_us: hb_us / 4,
            store_exec_max_us: 0,
            store_timeout_ms: timing.failure_timeout_ms,
            unknown_before: 0,
            unknown_after: 0,
            unavailable: 0,
            net_delay_max_us: hb_us / 4,
            loss: 0,
            duplication: 0,
            partition_every_ms: 0,
            crash_every_ms: 0,
            pause_every_ms: 0,
            degraded_every_ms: 0,
            store_cut_every_ms: 0,
            leave_every_ms: 0,
            direct_every_ms: 0,
            late_apply: 0,
            clock_fault_every_ms: 0,
            timing,
        }
        .with_nodes_fixed()
    }

    fn with_nodes_fixed(mut self) -> Params {
        let n = usize::from(self.nodes);
        self.clock_offset_us.resize(n, 0);
        self.clock_rate_ppm.resize(n, 0);
        self
    }
}

/// A valid timing drawn around the defaults: the default, the fast one, or one with drawn
/// intervals (always accepted by `Timing::new`).
fn draw_timing(rng: &mut Rng) -> TimingSettings {
    match rng.range(0, 3) {
        0 => Timing::DEFAULT_SETTINGS,
        1 => Timing::FAST_SETTINGS,
        _ => {
            let heartbeat_interval_ms = rng.range(20, 120);
            let lease_ms = heartbeat_interval_ms * rng.range(2, 4) + rng.range(1, 20);
            let max_clock_rate_error_ppm = [0, 200, 1_000, 10_000][rng.index(4)];
            let bound = lease_ms + lease_ms * max_clock_rate_error_ppm / 1_000_000 + 1;
            let failure_timeout_ms =
                bound + heartbeat_interval_ms + rng.range(1, 2 * heartbeat_interval_ms);
            let probe_interval_ms = rng.range(5, heartbeat_interval_ms);
            let settings = TimingSettings {
                heartbeat_interval_ms,
                failure_timeout_ms,
                lease_ms,
                max_clock_rate_error_ppm,
                probe_interval_ms,
                probe_timeout_ms: probe_interval_ms * 2,
                suspect_after_ms: probe_interval_ms * 3,
                snapshot_interval_ms: rng.range(5, heartbeat_interval_ms),
                retry_backoff_ms: rng.range(5, 30),
                migration_batch: rng.range(1, 8),
            };
            match Timing::new(settings) {
                Ok(_) => settings,
                Err(_) => Timing::DEFAULT_SETTINGS,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_worlds_are_valid_and_vary() {
        let mut node_counts = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let p = Params::draw(seed, Scenario::Swarm);
            assert!((NODES_MIN..=NODES_MAX_DRAWN).contains(&p.nodes));
            assert!(Timing::new(p.timing).is_ok(), "seed {seed}: {:?}", p.timing);
            let bound = i64::try_from(p.timing.max_clock_rate_error_ppm).unwrap();
            assert!(p.clock_rate_ppm.iter().all(|r| r.abs() <= bound));
            assert_eq!(p.clock_rate_ppm.len(), usize::from(p.nodes));
            assert_eq!(p, Params::draw(seed, Scenario::Swarm));
            node_counts.insert(p.nodes);
        }
        assert_eq!(
            node_counts.len(),
            5,
            "every node count from 3 to 7 is drawn"
        );
        let calm = Params::draw(1, Scenario::Failover);
        assert_eq!(calm.timing, Timing::DEFAULT_SETTINGS);
        assert_eq!(calm.crash_every_ms, 0);
    }
}
