//! The runtime's clocks: what the Agent's `now_ms` is, and the two clocks its watchdog checks it
//! against ([`ClockReading`], fed to `Agent::handle_clock` on every wake-up of a node's loop).
//!
//! **Why these clocks (Linux).** The Agent's safety argument needs a local clock whose rate stays
//! within `max_clock_rate_error_ppm` of true time and that never stops unseen.
//!
//! - The primary clock, the Agent's `now_ms`, is `CLOCK_BOOTTIME`: monotonic, and it counts the
//!   time the host spends suspended, so a suspended node's lease and snapshot age run out in
//!   its local time as they do in true time. (`std::time::Instant`, `CLOCK_MONOTONIC`, stops
//!   during suspend: a node would resume believing its lease still valid.) Like
//!   `CLOCK_MONOTONIC` it is slewed by NTP/chrony (up to 83,333 ppm with chrony's default
//!   `maxslewrate`), far beyond the bound: hence the watchdog.
//! - The reference clock is `CLOCK_MONOTONIC_RAW`: the oscillator's rate, never slewed. The
//!   assumption left is that *its* rate error stays within `max_clock_rate_error_ppm`
//!   (crystals are typically within 50 ppm; the default bound is 200). The watchdog fences the
//!   node when the primary's advance differs from the reference's by more than the bound over a
//!   measurement window (a slew, or a suspend: RAW does not count it).
//! - The wall clock, `CLOCK_REALTIME`, shares the primary's slewing and differs from it only by
//!   steps. It is there for one fault: a virtual machine paused with both monotonic clocks
//!   stopped (kvmclock), which neither monotonic clock can show. Such a pause is detectable only
//!   once something steps the wall clock to the true time (chrony's `makestep`, the guest
//!   agent); a pause the wall clock does not catch up on stays invisible, and until the first
//!   wake-up after the step the node may serve on its stale lease. An administrator's step of
//!   the wall clock fences the node too (safe, a brief loss of service).
//!
//! Elsewhere (not Linux) all three come from `std::time::Instant` and `SystemTime`: the
//! primary and the reference are the same clock, so the watchdog sees only gaps, backward
//! steps and wall steps, never a rate error; the bound is then assumed, not checked.
//!
//! Every reading is in ms since the node started (the wall clock: since the Unix epoch), read
//! through `rustix` (no `unsafe` here).

use membership_core::ClockReading;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds in a millisecond.
const NS_PER_MS: u128 = 1_000_000;

/// The node's clocks, as its loop reads them.
#[derive(Debug)]
pub(crate) struct Clocks {
    /// The primary and reference clocks' readings (ns) when the node started.
    origin_ns: (u128, u128),
    #[cfg(not(target_os = "linux"))]
    start: std::time::Instant,
    /// Offsets a test adds to the readings (feature `testing`).
    #[cfg(feature = "testing")]
    skew: Option<crate::testing::ClockSkew>,
}

impl Clocks {
    /// The clocks of a node starting now.
    pub(crate) fn new(
        #[cfg(feature = "testing")] skew: Option<crate::testing::ClockSkew>,
    ) -> Clocks {
        let mut clocks = Clocks {
            origin_ns: (0, 0),
            #[cfg(not(target_os = "linux"))]
            start: std::time::Instant::now(),
            #[cfg(feature = "testing")]
            skew,
        };
        clocks.origin_ns = clocks.raw_ns();
        clocks
    }

    /// The primary and reference clocks now (ns, from an arbitrary origin).
    #[cfg(target_os = "linux")]
    fn raw_ns(&self) -> (u128, u128) {
        use rustix::time::{clock_gettime, ClockId};
        let ns = |t: rustix::time::Timespec| {
            u128::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
                + u128::try_from(t.tv_nsec).unwrap_or(0)
        };
        let primary = ns(clock_gettime(ClockId::Boottime));
        let reference = ns(clock_gettime(ClockId::MonotonicRaw));
        (primary, reference)
    }

    /// The primary and reference clocks now (ns since the node started): one `Instant`.
    #[cfg(not(target_os = "linux"))]
    fn raw_ns(&self) -> (u128, u128) {
        let ns = self.start.elapsed().as_nanos();
        (ns, ns)
    }

    /// The primary clock now (ms since the node started): the Agent's `now_ms`.
    pub(crate) fn now_ms(&self) -> u64 {
        self.read().now_ms
    }

    /// All three clocks now.
    pub(crate) fn read(&self) -> ClockReading {
        let (primary, reference) = self.raw_ns();
        let ms = |now: u128, origin: u128| {
            u64::try_from(now.saturating_sub(origin) / NS_PER_MS).unwrap_or(u64::MAX)
        };
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let reading = ClockReading {
            now_ms: ms(primary, self.origin_ns.0),
            reference_ms: ms(reference, self.origin_ns.1),
            wall_ms,
        };
        #[cfg(feature = "testing")]
        if let Some(skew) = &self.skew {
            return skew.apply(reading);
        }
        reading
    }
}
