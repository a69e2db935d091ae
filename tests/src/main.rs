//! The long campaign: `cargo run --release -p membership-sim -- --seeds 1000`.
//!
//! Runs swarm seeds (every fault; [`SWARM_STEPS_DEFAULT`] fault-phase steps each unless
//! `--steps` says otherwise, as CI runs them), failover, degraded-observer and scale-down seeds,
//! prints a progress
//! line on stderr, then the coverage report and the measurements. Exits 1 if any check failed
//! (printing each failure's report and reproduce command).
//!
//! The simulation at scale (issue 19) is its own scenario, never in the default set:
//! `cargo run --release -p membership-sim -- --scenario scale --nodes 1000 --actors 1000000 --seeds 1`
//! prints, per run, its steps, simulated and wall time, steps per second, commits, peak memory
//! and the placement and failover figures.

use membership_sim::{run, Coverage, Margins, Options, Planted, Report, Scenario};
use std::process::ExitCode;
use std::time::Instant;

/// Fault-phase steps of each swarm seed unless `--steps` says otherwise: what CI runs
/// (`tests/tests/sim.rs`, 64 seeds x 20,000 steps).
const SWARM_STEPS_DEFAULT: u64 = 20_000;

const USAGE: &str = "usage: membership-sim [--seeds N] [--first SEED] [--steps N (default 20000)] [--scenario swarm|failover|degraded|scale-down|scale] [--nodes N --actors M (scale only)] [--planted NAME] [--leaving-zombies] [--cache]";

fn main() -> ExitCode {
    let mut seeds = 100u64;
    let mut first = 0u64;
    let mut steps = SWARM_STEPS_DEFAULT;
    let mut scenarios = vec![
        Scenario::Swarm,
        Scenario::Failover,
        Scenario::Degraded,
        Scenario::ScaleDown,
    ];
    let mut planted = None;
    let mut leaving_zombies = false;
    let mut cache = false;
    let mut nodes: Option<u16> = None;
    let mut actors: Option<u64> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seeds" => seeds = value.parse().unwrap_or(seeds),
            "--first" => first = value.parse().unwrap_or(first),
            "--steps" => steps = value.parse().unwrap_or(steps),
            "--scenario" => {
                scenarios = match Scenario::from_name(&value) {
                    Some(s) => vec![s],
                    None => scenarios,
                }
            }
            "--planted" => planted = Planted::from_name(&value),
            "--nodes" => match value.parse() {
                Ok(n) => nodes = Some(n),
                Err(_) => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--actors" => match value.parse() {
                Ok(n) => actors = Some(n),
                Err(_) => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--leaving-zombies" => {
                leaving_zombies = true;
                i += 1;
                continue;
            }
            "--cache" => {
                cache = true;
                i += 1;
                continue;
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let started = Instant::now();
    let mut total = Coverage::default();
    let mut reports: Vec<Report> = Vec::new();
    let mut failures = 0u64;
    let mut steps_total = 0u64;
    let mut sim_ms_total = 0u64;
    for (k, seed) in (first..first + seeds).enumerate() {
        for &scenario in &scenarios {
            let run_started = Instant::now();
            let report = run(Options {
                seed,
                scenario,
                steps,
                planted,
                leaving_zombies,
                nodes,
                actors,
                cache,
            });
            if scenario == Scenario::Scale {
                print_scale(&report, run_started.elapsed().as_secs_f64());
            }
            total.add(&report.coverage);
            steps_total += report.steps;
            sim_ms_total += report.sim_ms;
            if let Some(f) = &report.failure {
                failures += 1;
                println!("{f}");
            }
            reports.push(report);
        }
        if (k + 1) % 10 != 0 && k + 1 != usize::try_from(seeds).unwrap_or(usize::MAX) {
            continue;
        }
        let wall = started.elapsed().as_secs_f64();
        eprint!(
            "\r{}/{} seeds, {} runs failed, {} steps, {:.0} steps/s   ",
            k + 1,
            seeds,
            failures,
            steps_total,
            steps_total as f64 / wall.max(1e-9)
        );
    }
    eprintln!();
    let wall = started.elapsed().as_secs_f64();
    println!("{}", total.report());
    print_measurements(&reports);
    println!(
        "speed: {steps_total} steps in {wall:.1} s wall on one core = {:.0} steps/s; {:.1} s simulated ({:.0}x real time)",
        steps_total as f64 / wall.max(1e-9),
        sim_ms_total as f64 / 1_000.0,
        sim_ms_total as f64 / 1_000.0 / wall.max(1e-9)
    );
    println!(
        "runs: {}, failed: {failures}; peak memory {}",
        reports.len(),
        peak_memory()
    );
    if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The process's peak resident memory (`VmHWM` of `/proc/self/status`), if it can be read.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// One `Scale` run's figures: its size, speed and memory, and what it measured.
fn print_scale(report: &Report, wall: f64) {
    let m = &report.measurements;
    let ms = |x: Option<u64>| x.map_or_else(|| "not reached".to_string(), |v| format!("{v} ms"));
    println!(
        "scale seed {}: {} nodes, {} actors: {} ({} steps, {:.1} s simulated, {:.1} s wall, {:.0} steps/s, {} commits, peak memory {} so far)",
        report.options.seed,
        report.params.nodes,
        report.params.actors,
        if report.passed() { "passed" } else { "FAILED" },
        report.steps,
        report.sim_ms as f64 / 1_000.0,
        wall,
        report.steps as f64 / wall.max(1e-9),
        report.commits,
        peak_memory()
    );
    println!(
        "  every node a member with a primary at {}; every actor placed and served {} later ({} placements answered, {} errors); crash of a node hosting {} actors: declared failed after {}, its actors served again after {}, new primary after {}; false declarations {}; converged {} after the liveness phase began",
        ms(m.scale_members_ms),
        ms(m.scale_placed_ms),
        m.scale_place_answers,
        m.scale_place_errors,
        m.scale_failover_actors,
        ms(m.failover_declared_ms),
        ms(m.failover_served_ms),
        ms(m.failover_primary_ms),
        m.false_declarations,
        ms(m.converged_after_ms)
    );
}

fn percentiles(mut xs: Vec<u64>) -> String {
    if xs.is_empty() {
        return "no samples".to_string();
    }
    xs.sort_unstable();
    let at = |q: f64| {
        let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
        xs[i.min(xs.len() - 1)]
    };
    format!(
        "median {} ms, p99 {} ms, max {} ms ({} samples)",
        at(0.5),
        at(0.99),
        xs[xs.len() - 1],
        xs.len()
    )
}

fn print_measurements(reports: &[Report]) {
    let of = |s: Scenario| reports.iter().filter(move |r| r.options.scenario == s);
    println!("measurements (simulated time):");
    println!(
        "  failover, default timing: crash to declared failed: {}",
        percentiles(
            of(Scenario::Failover)
                .filter_map(|r| r.measurements.failover_declared_ms)
                .collect()
        )
    );
    println!(
        "  failover: crash to every actor of the failed node served again: {}",
        percentiles(
            of(Scenario::Failover)
                .filter_map(|r| r.measurements.failover_served_ms)
                .collect()
        )
    );
    println!(
        "  failover: primary crashed to a new primary in office: {}",
        percentiles(
            of(Scenario::Failover)
                .filter_map(|r| r.measurements.failover_primary_ms)
                .collect()
        )
    );
    let false_declared: u64 = of(Scenario::Failover)
        .map(|r| r.measurements.false_declarations)
        .sum();
    println!(
        "  false failure declarations without partition, crash or pause (jitter up to half a heartbeat interval, clocks at the rate error bound), over {} runs: {false_declared} (goal 0)",
        of(Scenario::Failover).count()
    );
    println!(
        "  scale-down (all but nodes/2 leave, then a remaining member crashes): crash to declared failed: {}; to every actor served again: {}; false declarations over {} runs: {}",
        percentiles(
            of(Scenario::ScaleDown)
                .filter_map(|r| r.measurements.failover_declared_ms)
                .collect()
        ),
        percentiles(
            of(Scenario::ScaleDown)
                .filter_map(|r| r.measurements.failover_served_ms)
                .collect()
        ),
        of(Scenario::ScaleDown).count(),
        of(Scenario::ScaleDown)
            .map(|r| r.measurements.false_declarations)
            .sum::<u64>()
    );
    let healthy: u64 = of(Scenario::Degraded)
        .map(|r| r.measurements.degraded_healthy_declared)
        .sum();
    let observer = of(Scenario::Degraded)
        .filter(|r| r.measurements.degraded_observer_declared)
        .count();
    println!(
        "  healthy nodes declared failed because of a degraded observer, over {} runs: {healthy} (goal 0); the observer itself declared failed in {observer} runs",
        of(Scenario::Degraded).count()
    );
    println!(
        "  Agent deadlines still due right after handle_timeout (driver busy loops): {} ticks of 1 ms in {} of {} runs",
        reports.iter().map(|r| r.measurements.past_deadlines).sum::<u64>(),
        reports.iter().filter(|r| r.measurements.past_deadlines > 0).count(),
        reports.len()
    );
    println!(
        "  nodes declared failed while their store link was cut (probes still answered): {} in {} of {} runs",
        reports.iter().map(|r| r.measurements.declared_while_store_cut).sum::<u64>(),
        reports.iter().filter(|r| r.measurements.declared_while_store_cut > 0).count(),
        reports.len()
    );
    println!(
        "  processes of a Leaving node fenced as superseded (zombies of a Leaving node): {} in {} of {} runs",
        reports.iter().map(|r| r.measurements.superseded_while_leaving).sum::<u64>(),
        reports.iter().filter(|r| r.measurements.superseded_while_leaving > 0).count(),
        reports.len()
    );
    let suspicions: u64 = reports
        .iter()
        .map(|r| r.measurements.clock_suspicions)
        .sum();
    let fences: u64 = reports.iter().map(|r| r.measurements.clock_fences).sum();
    let dual = reports
        .iter()
        .filter(|r| {
            r.failure
                .as_deref()
                .is_some_and(|f| f.contains("single activation"))
        })
        .count();
    println!(
        "  clock watchdog: {suspicions} suspicious clock readings, {fences} clock fences (FenceReason::ClockSuspect) in {} runs; runs with a dual activation: {dual} (compare with --planted driver:no-clock-watchdog)",
        reports.len()
    );
    print_oracles(reports);
    println!(
        "  convergence after the faults stop (swarm): {}",
        percentiles(
            of(Scenario::Swarm)
                .filter_map(|r| r.measurements.converged_after_ms)
                .collect()
        )
    );
}

/// The smallest and the median of `xs` (us), shown in ms.
fn min_median(mut xs: Vec<i64>) -> String {
    if xs.is_empty() {
        return "no samples".to_string();
    }
    xs.sort_unstable();
    let ms = |us: i64| us as f64 / 1_000.0;
    format!(
        "min {:.3} ms, median {:.3} ms ({} samples)",
        ms(xs[0]),
        ms(xs[(xs.len() - 1) / 2]),
        xs.len()
    )
}

/// The timing oracles' figures: the margins (all samples, and the runs' own minima and
/// medians), the runs with a negative one, the partition reports and the stale snapshots.
fn print_oracles(reports: &[Report]) {
    for (what, margins) in [
        (
            "lease margin (latest instant the lease rule allows minus the last instant seen serving)",
            reports.iter().map(|r| &r.measurements.lease_margins).collect::<Vec<&Margins>>(),
        ),
        (
            "hand-off margin (activation minus the previous holder's latest allowed instant)",
            reports.iter().map(|r| &r.measurements.handoff_margins).collect(),
        ),
    ] {
        let all: Vec<i64> = margins.iter().flat_map(|m| m.samples_us.iter().copied()).collect();
        let mins: Vec<i64> = margins.iter().filter_map(|m| m.min_us()).collect();
        let medians: Vec<i64> = margins.iter().filter_map(|m| m.median_us()).collect();
        let negative = margins.iter().filter(|m| m.negative() > 0).count();
        println!(
            "  {what}: all samples {}; per-run minimum {}; per-run median {}; runs with a negative one: {negative}",
            min_median(all),
            min_median(mins),
            min_median(medians)
        );
    }
    println!(
        "  margins left out because a clock ran beyond its bound (slew, paused VM, jump): {}",
        reports
            .iter()
            .map(|r| r.measurements.margins_skipped_clock_beyond_bound)
            .sum::<u64>()
    );
    if reports.iter().any(|r| r.options.cache) {
        let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
        println!(
            "  registry caches: {} whole-registry loads ({} after a feed break), {} snapshots on a reused confirmation, {} confirmations waited for the feed, {} snapshot reads timed out waiting",
            sum(|r| r.measurements.cache_loads),
            sum(|r| r.measurements.feed_breaks),
            sum(|r| r.measurements.cache_reused),
            sum(|r| r.measurements.cache_waits),
            sum(|r| r.measurements.cache_timeouts)
        );
    }
    println!(
        "  partition reports: {} with the required agreeing probes, {} without (goal 0); stale snapshots delivered: {} (goal 0)",
        reports.iter().map(|r| r.measurements.backed_partition_reports).sum::<u64>(),
        reports.iter().map(|r| r.measurements.unbacked_partition_reports).sum::<u64>(),
        reports.iter().map(|r| r.measurements.stale_snapshots).sum::<u64>()
    );
}
