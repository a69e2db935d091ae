//! Pinned regression runs: a seed that reaches the situation of a bug once found, run again in
//! CI, with the expectation that says the situation is still reached and handled.
//!
//! Each pin records its runs' trace checkpoints (the running trace hash every
//! [`CHECKPOINT_STEPS`] steps, [`Report::checkpoints`]) in a small committed file,
//! `tests/pins/<name>.txt`. The file is written only by the explicit regeneration command
//! (`DST_WRITE_PINS=1 cargo test -p membership-sim --test sim <name>`), never by a plain test
//! run. When a pin's expectation fails, the message gives, in this order: the run's own
//! `SIMULATION FAILED` report if the run failed (it names the violated check), the expectation
//! that failed, the bug the pin guards, the command that reproduces the run, and the first
//! checkpoint window where the trace diverges from the recorded one, with the new trace's steps
//! in that window. A pin whose trace moved but whose expectation still holds passes, with a
//! note on stdout.

use crate::sim::{run, run_window, Options, Report, CHECKPOINT_STEPS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The environment variable that makes a pin write its runs' checkpoints to its file (value
/// `1`) before checking its expectations.
pub const WRITE_PINS_VAR: &str = "DST_WRITE_PINS";
/// How many checkpoint hashes a line of a pin file holds.
const HASHES_PER_LINE: usize = 8;

/// An expectation of a pinned run: `Ok`, or what no longer holds.
pub type Expectation<'a> = &'a dyn Fn(&Report) -> Result<(), String>;

/// The file that records pin `name`'s checkpoints.
pub fn pin_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("pins")
        .join(format!("{name}.txt"))
}

/// The line that names a run in a pin file.
fn run_key(o: &Options) -> String {
    format!(
        "run seed={} scenario={} steps={} planted={} leaving_zombies={}",
        o.seed,
        o.scenario.name(),
        o.steps,
        o.planted.map_or_else(|| "none".to_string(), |p| p.name()),
        u8::from(o.leaving_zombies)
    )
}

/// The checkpoints recorded in pin `name`'s file, by run; `Err` says why there are none.
fn recorded(name: &str) -> Result<BTreeMap<String, Vec<u64>>, String> {
    let path = pin_path(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no recorded checkpoints ({}: {e})", path.display()))?;
    let mut runs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("run ") {
            current = Some(line.to_string());
            runs.entry(line.to_string()).or_default();
            continue;
        }
        let Some(key) = &current else {
            return Err(format!(
                "{}: checkpoints before any run line",
                path.display()
            ));
        };
        for word in line.split_whitespace() {
            let hash = u64::from_str_radix(word, 16)
                .map_err(|e| format!("{}: bad checkpoint {word:?}: {e}", path.display()))?;
            runs.entry(key.clone()).or_default().push(hash);
        }
    }
    Ok(runs)
}

/// Writes pin `name`'s file from its runs' reports.
fn write(name: &str, guards: &str, reports: &[Report]) -> Result<(), String> {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Trace checkpoints of the pin `{name}` (tests/tests/sim.rs): the running trace hash \
         after every {CHECKPOINT_STEPS} steps of each pinned run."
    );
    let _ = writeln!(text, "# It guards: {}", guards.replace('\n', " "));
    let _ = writeln!(
        text,
        "# Written only by: {WRITE_PINS_VAR}=1 cargo test -p membership-sim --test sim {name}"
    );
    for report in reports {
        let _ = writeln!(text, "{}", run_key(&report.options));
        for line in report.checkpoints.chunks(HASHES_PER_LINE) {
            let words: Vec<String> = line.iter().map(|h| format!("{h:016x}")).collect();
            let _ = writeln!(text, "{}", words.join(" "));
        }
    }
    let path = pin_path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The first checkpoint where `now` differs from `then` (one of them may have ended), if any.
fn first_divergence(then: &[u64], now: &[u64]) -> Option<usize> {
    (0..then.len().max(now.len())).find(|&i| then.get(i) != now.get(i))
}

/// Where the run's trace leaves the recorded one, and the new trace's steps there.
fn divergence(
    name: &str,
    report: &Report,
    recorded: &Result<BTreeMap<String, Vec<u64>>, String>,
) -> String {
    let key = run_key(&report.options);
    let then = match recorded {
        Err(why) => {
            return format!(
            "{why}; regenerate: {WRITE_PINS_VAR}=1 cargo test -p membership-sim --test sim {name}"
        )
        }
        Ok(runs) => match runs.get(&key) {
            Some(then) => then,
            None => {
                return format!(
                    "no checkpoints recorded for `{key}` in {}; regenerate: {WRITE_PINS_VAR}=1 \
                     cargo test -p membership-sim --test sim {name}",
                    pin_path(name).display()
                )
            }
        },
    };
    divergence_from(then, report)
}

/// Where `report`'s trace first leaves the recorded checkpoints `then`, and the new trace's
/// steps in that window (its run repeated with [`run_window`]); or that it never does.
pub fn divergence_from(then: &[u64], report: &Report) -> String {
    let Some(i) = first_divergence(then, &report.checkpoints) else {
        return format!(
            "the trace is the recorded one at all {} checkpoints (every {CHECKPOINT_STEPS} \
             steps): the world took the same course, so what changed is what the code under \
             test decided or what a check or the expectation asks",
            then.len()
        );
    };
    let index = u64::try_from(i).unwrap_or(u64::MAX);
    let first = index.saturating_mul(CHECKPOINT_STEPS).saturating_add(1);
    let last = first.saturating_add(CHECKPOINT_STEPS - 1);
    let shown = |h: Option<&u64>| {
        h.map_or_else(|| "the run had ended".to_string(), |h| format!("{h:016x}"))
    };
    let again = run_window(report.options, first, last);
    let mut out = format!(
        "the trace first diverges from the recorded one in steps {first} to {last} (checkpoint \
         {}: recorded {}, now {}); the new trace's steps there:\n",
        i + 1,
        shown(then.get(i)),
        shown(report.checkpoints.get(i))
    );
    for line in &again.window {
        let _ = writeln!(out, "  {line}");
    }
    if again.window.is_empty() {
        let _ = writeln!(out, "  (none: the new run ended at step {})", again.steps);
    }
    out
}

/// Runs pin `name`'s runs and checks each against its expectation. `guards` names the bug the
/// pin guards. With [`WRITE_PINS_VAR`]`=1` it first writes the pin's file from these runs.
/// Returns `Err` with the message described in the module documentation, one block per run
/// whose expectation failed.
pub fn check_pin(
    name: &str,
    guards: &str,
    runs: &[(Options, Expectation<'_>)],
) -> Result<(), String> {
    let reports: Vec<Report> = runs.iter().map(|(options, _)| run(*options)).collect();
    if std::env::var(WRITE_PINS_VAR).is_ok_and(|v| v == "1") {
        write(name, guards, &reports)?;
    }
    let recorded = recorded(name);
    let mut failures = String::new();
    for ((options, expect), report) in runs.iter().zip(&reports) {
        match expect(report) {
            Ok(()) => {
                let then = recorded
                    .as_ref()
                    .ok()
                    .and_then(|r| r.get(&run_key(options)));
                if then.is_some_and(|then| first_divergence(then, &report.checkpoints).is_some()) {
                    println!(
                        "note: pin {name}: the trace of `{}` moved from the recorded one; what it \
                         pins still holds (regenerate: {WRITE_PINS_VAR}=1 cargo test -p \
                         membership-sim --test sim {name})",
                        run_key(options)
                    );
                }
            }
            Err(what) => {
                if let Some(failure) = &report.failure {
                    let _ = writeln!(failures, "{failure}");
                }
                let _ = writeln!(failures, "PIN {name} FAILED: {what}");
                let _ = writeln!(failures, "it guards: {guards}");
                let _ = writeln!(failures, "the run: {}", options.command());
                let _ = writeln!(failures, "{}", divergence(name, report, &recorded));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverging_trace_is_shown_from_its_first_diverging_window() {
        let report = run(Options::swarm(8, 2_000));
        assert!(
            report.checkpoints.len() >= 10,
            "{}",
            report.checkpoints.len()
        );
        // The recorded trace, as if it had differed from the fourth checkpoint on.
        let mut then = report.checkpoints.clone();
        for hash in &mut then[3..] {
            *hash ^= 1;
        }
        let text = divergence_from(&then, &report);
        assert!(
            text.contains("diverges from the recorded one in steps 601 to 800"),
            "{text}"
        );
        let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("  step ")).collect();
        assert_eq!(steps.len(), 200, "{text}");
        assert!(steps[0].starts_with("  step     601 "), "{}", steps[0]);
        assert!(steps[199].starts_with("  step     800 "), "{}", steps[199]);
        // The same trace: no window, and the message says what changed instead.
        let same = divergence_from(&report.checkpoints, &report);
        assert!(
            same.contains("the trace is the recorded one at all"),
            "{same}"
        );
        // A recorded trace that ran on past the new run's end diverges where the new one ended.
        let mut longer = report.checkpoints.clone();
        longer.push(7);
        let ended = divergence_from(&longer, &report);
        assert!(ended.contains("now the run had ended"), "{ended}");
    }

    #[test]
    fn a_failed_expectation_names_itself_the_bug_and_the_missing_record() {
        if std::env::var(WRITE_PINS_VAR).is_ok() {
            return; // it would write a pin file for its made-up pin
        }
        let failing: Expectation<'_> = &|_| Err("the pinned situation is no longer reached".into());
        let message = check_pin(
            "no_such_pin",
            "a bug for the test",
            &[(Options::swarm(8, 1_000), failing)],
        )
        .err()
        .unwrap_or_default();
        assert!(
            message.contains("PIN no_such_pin FAILED: the pinned situation is no longer reached"),
            "{message}"
        );
        assert!(
            message.contains("it guards: a bug for the test"),
            "{message}"
        );
        assert!(
            message.contains("DST_SEED=8 DST_SCENARIO=swarm DST_STEPS=1000"),
            "{message}"
        );
        assert!(message.contains("no recorded checkpoints"), "{message}");
        let passing: Expectation<'_> = &|_| Ok(());
        assert!(check_pin("no_such_pin", "", &[(Options::swarm(8, 1_000), passing)]).is_ok());
    }
}
