//! The clock watchdog: the node fences itself when its clocks disagree or jump.
//!
//! The Agent's safety argument assumes that its local clock (`now_ms`) runs within
//! `max_clock_rate_error_ppm` of true time and never stops or jumps unseen. The driver cannot
//! prove that, but it can read two more clocks and let the Agent compare them
//! ([`Agent::handle_clock`], on every wake-up of its loop): a *reference* clock that no time
//! daemon slews (on Linux, `CLOCK_MONOTONIC_RAW`: the oscillator's rate only) and the wall clock
//! (`CLOCK_REALTIME`, which shares the primary clock's slewing but is stepped when it is set).
//! The watchdog fences the node ([`FenceReason::ClockSuspect`]) when
//!
//! - **rate**: since the start of its measurement window (or of the one before), the primary
//!   clock and the reference advanced by amounts that differ by more than the rate bound allows
//!   plus [`CLOCK_READING_SLACK_MS`](crate::CLOCK_READING_SLACK_MS) (the ms readings are
//!   truncated; see [`Timing::clock_window_ms`](crate::Timing::clock_window_ms) for the window);
//! - **wall step**: the wall clock and the primary clock advanced by amounts that differ by more
//!   than the same allowance (a step of the wall clock: an administrator, or a time daemon
//!   catching up after a pause that stopped both monotonic clocks);
//! - **gap**: two consecutive readings are further apart, by either monotonic clock, than
//!   [`Timing::clock_gap_max_ms`](crate::Timing::clock_gap_max_ms) (the Agent's heartbeat timer
//!   wakes it far more often);
//! - **backwards**: either monotonic clock went back.
//!
//! After such a fence the node serves again only once a heartbeat committed after the suspicious
//! reading and a snapshot asked for after that commit show it Active (the lease's unfence rule,
//! with the extra condition that the commit is later than the suspicion; see `lease`), and the
//! watchdog's window restarts at the suspicious reading.

use super::clocks::ClockReading;
use super::machine::Agent;
use super::output::{ClockFault, FenceReason};
use super::timing::LOCAL_TIME_MS_MAX;
use crate::InputError;

impl Agent {
    /// Whether the simulation's planted bug `DriverMutant::NoClockWatchdog` (feature
    /// `checking`) is in force in the snapshot's configuration. Always false in a production
    /// build.
    fn watchdog_disabled(&self) -> bool {
        #[cfg(feature = "checking")]
        {
            self.observed.as_ref().is_some_and(|o| {
                o.state.config().driver_mutant()
                    == Some(crate::checking::DriverMutant::NoClockWatchdog)
            })
        }
        #[cfg(not(feature = "checking"))]
        {
            false
        }
    }

    /// A reading of the node's clocks, taken on a wake-up of the driver's loop, before the
    /// wake-up's other inputs (see the module documentation of `watchdog` for what it checks).
    /// A reading that shows a fault fences the node ([`FenceReason::ClockSuspect`], told
    /// once as [`Notification::Fenced`](crate::Notification::Fenced); a node already fenced
    /// for another reason keeps it) and returns the fault. A reading whose primary clock went
    /// back is judged (it fences) but its time is not taken as the latest input's.
    ///
    /// Refused (changing nothing): a `now_ms` above [`LOCAL_TIME_MS_MAX`]
    /// ([`InputError::TimeOutOfRange`]).
    pub fn handle_clock(
        &mut self,
        reading: ClockReading,
    ) -> Result<Option<ClockFault>, InputError> {
        if reading.now_ms > LOCAL_TIME_MS_MAX {
            return Err(InputError::TimeOutOfRange {
                now_ms: reading.now_ms,
                max_ms: LOCAL_TIME_MS_MAX,
            });
        }
        let latest_ms = self.latest_ms.max(reading.now_ms);
        self.latest_ms = latest_ms;
        if self.watchdog_disabled() {
            self.watchdog.note(reading);
            return Ok(None);
        }
        let s = *self.timing.settings();
        let window_ms = self.timing.clock_window_ms();
        let gap_max_ms = self.timing.clock_gap_max_ms();
        let fault = self
            .watchdog
            .judge(reading, s.max_clock_rate_error_ppm, window_ms, gap_max_ms);
        self.watchdog.record(reading, fault.is_some(), window_ms);
        if let Some(fault) = fault {
            self.watchdog.suspect_ms = Some(latest_ms);
            self.fence(FenceReason::ClockSuspect(fault));
            // The heartbeat lease was measured with a clock now in doubt.
            self.lease_until_ms = None;
        }
        debug_assert!(fault.is_none() || self.fenced.is_some());
        debug_assert!(self.latest_ms >= reading.now_ms);
        debug_assert!(self
            .watchdog
            .suspect_ms
            .is_none_or(|at| at <= self.latest_ms));
        Ok(fault)
    }

    /// Whether the clock watchdog lets the node unfence on a heartbeat committed at local time
    /// `commit_ms`: no suspicious reading, or one before that commit.
    pub(super) fn clocks_trusted_since(&self, commit_ms: u64) -> bool {
        let trusted = self.watchdog.suspect_ms.is_none_or(|at| at < commit_ms);
        debug_assert!(self
            .watchdog
            .suspect_ms
            .is_none_or(|at| at <= self.latest_ms));
        debug_assert!(!trusted || self.watchdog.suspect_ms.is_none_or(|at| at < commit_ms));
        trusted
    }
}
