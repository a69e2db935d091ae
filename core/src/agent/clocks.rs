//! The clock watchdog's leaf: the clock reading a driver gives the Agent, the watchdog's state
//! and its judgement of each reading, and the bounds it judges with. What the Agent does with a
//! verdict (fence, and when to unfence) is in `watchdog`.

use super::output::ClockFault;
use super::timing::Timing;

/// How far (ms) two clocks' advances may differ beyond the rate bound before the watchdog
/// fences: each reading is truncated to the ms and the clocks are read one after the other, so
/// two honest clocks' advances can differ by up to 2 ms.
pub const CLOCK_READING_SLACK_MS: u64 = 2;

/// How many ms of scheduling delay the gap bound allows on top of two heartbeat intervals
/// ([`Timing::clock_gap_max_ms`]).
pub const CLOCK_GAP_SLACK_MS: u64 = 100;

/// One reading of the node's three clocks, taken together on a wake-up of the driver's loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockReading {
    /// The primary clock (ms): the `now_ms` of every other input (on Linux `CLOCK_BOOTTIME`).
    pub now_ms: u64,
    /// The reference clock (ms; on Linux `CLOCK_MONOTONIC_RAW`, never slewed).
    pub reference_ms: u64,
    /// The wall clock (ms since the Unix epoch; `CLOCK_REALTIME`).
    pub wall_ms: u64,
}

/// The watchdog's state (one per Agent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Watchdog {
    /// The previous reading.
    last: Option<ClockReading>,
    /// The start of the current measurement window.
    anchor: Option<ClockReading>,
    /// The start of the window before it (rates are checked over both, so a fault that begins
    /// just before a window restarts is measured whole).
    previous_anchor: Option<ClockReading>,
    /// The primary clock's time of the latest suspicious reading: unfencing needs a heartbeat
    /// committed after it.
    pub(super) suspect_ms: Option<u64>,
}

/// Whether two clocks' advances `a_ms` and `b_ms` over the same stretch disagree beyond
/// `rate_ppm` (of the larger advance) plus [`CLOCK_READING_SLACK_MS`], exactly (u128).
fn disagree(a_ms: u64, b_ms: u64, rate_ppm: u64) -> bool {
    let diff = u128::from(a_ms.abs_diff(b_ms));
    let span = u128::from(a_ms.max(b_ms));
    let allowed = span * u128::from(rate_ppm) + u128::from(CLOCK_READING_SLACK_MS) * 1_000_000;
    let beyond = diff * 1_000_000 > allowed;
    debug_assert!(!beyond || diff > u128::from(CLOCK_READING_SLACK_MS));
    debug_assert!(a_ms != b_ms || !beyond);
    beyond
}

impl Watchdog {
    /// Records `r` as the latest reading without judging it (the watchdog is off:
    /// `DriverMutant::NoClockWatchdog`).
    pub(super) fn note(&mut self, r: ClockReading) {
        let suspect_ms = self.suspect_ms;
        self.last = Some(r);
        debug_assert!(self.last == Some(r));
        debug_assert!(
            self.suspect_ms == suspect_ms,
            "noting a reading suspects nothing"
        );
    }

    /// Judges `r` after the readings before it: the fault it shows, if any. Records nothing.
    pub(super) fn judge(
        &self,
        r: ClockReading,
        rate_ppm: u64,
        window_ms: u64,
        gap_max_ms: u64,
    ) -> Option<ClockFault> {
        let last = self.last?;
        if r.now_ms < last.now_ms || r.reference_ms < last.reference_ms {
            return Some(ClockFault::Backwards);
        }
        let gap_ms = (r.now_ms - last.now_ms).max(r.reference_ms - last.reference_ms);
        if gap_ms > gap_max_ms {
            return Some(ClockFault::Gap { gap_ms });
        }
        for anchor in [self.anchor, self.previous_anchor].into_iter().flatten() {
            // Anchors are earlier readings, and both clocks only went forward since.
            let primary_ms = r.now_ms.saturating_sub(anchor.now_ms);
            let reference_ms = r.reference_ms.saturating_sub(anchor.reference_ms);
            if disagree(primary_ms, reference_ms, rate_ppm) {
                return Some(ClockFault::Rate {
                    primary_ms,
                    reference_ms,
                });
            }
            let wall_ms = i128::from(r.wall_ms) - i128::from(anchor.wall_ms);
            let wall_fwd = u64::try_from(wall_ms).unwrap_or(0);
            if wall_ms < 0 || disagree(primary_ms, wall_fwd, rate_ppm) {
                return Some(ClockFault::WallStep {
                    primary_ms,
                    wall_ms: i64::try_from(wall_ms).unwrap_or(i64::MIN),
                });
            }
        }
        debug_assert!(r.now_ms >= last.now_ms);
        debug_assert!(gap_ms <= gap_max_ms && window_ms > 0);
        None
    }

    /// Records `r` (after [`Watchdog::judge`]): the window restarts after a fault, or once it
    /// has lasted `window_ms` of the reference clock.
    pub(super) fn record(&mut self, r: ClockReading, fault: bool, window_ms: u64) {
        let restart = fault
            || self
                .anchor
                .is_none_or(|a| r.reference_ms.saturating_sub(a.reference_ms) >= window_ms);
        if fault {
            self.previous_anchor = None;
            self.anchor = Some(r);
        } else if restart {
            self.previous_anchor = self.anchor;
            self.anchor = Some(r);
        }
        // A primary clock that went back keeps the latest time seen as the last reading's.
        self.last = Some(ClockReading {
            now_ms: r.now_ms.max(self.last.map_or(0, |l| l.now_ms)),
            ..r
        });
        debug_assert!(self.anchor.is_some() && self.last.is_some());
        debug_assert!(!fault || self.previous_anchor.is_none());
    }
}

impl Timing {
    /// The clock watchdog's measurement window (ms of the reference clock): the lease, the span
    /// over which the safety argument measures time. Rates are compared over the current
    /// window and the one before, so a rate error beyond the bound is caught once it has
    /// shifted the primary clock by more than [`CLOCK_READING_SLACK_MS`] (for an 8% error,
    /// after about 36 ms: `core/tests/clock.rs`), wherever it begins.
    pub fn clock_window_ms(&self) -> u64 {
        let window = self.settings().lease_ms;
        debug_assert!(window > self.settings().heartbeat_interval_ms);
        debug_assert!(window >= 1);
        window
    }

    /// The largest gap (ms) between two consecutive clock readings the watchdog accepts: two
    /// heartbeat intervals (the heartbeat timer is always armed, so the driver wakes at least
    /// once per interval) plus [`CLOCK_GAP_SLACK_MS`] of scheduling delay. A longer gap means the
    /// process stood still, or both clocks jumped.
    pub fn clock_gap_max_ms(&self) -> u64 {
        let gap = self
            .settings()
            .heartbeat_interval_ms
            .saturating_mul(2)
            .saturating_add(CLOCK_GAP_SLACK_MS);
        debug_assert!(gap > self.settings().heartbeat_interval_ms);
        debug_assert!(gap <= 3 * super::timing::TIMING_MS_MAX);
        gap
    }
}
