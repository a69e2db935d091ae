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

/// Nanoseconds in a millisecond.
const NS_PER_MS: u128 = 1_000_000;

/// The widest bracket (ns of the reference clock) around the reading of the primary and the wall
/// clock that is accepted at once (`Clocks::raw`).
#[cfg(target_os = "linux")]
const CLOCK_READ_SPREAD_NS_MAX: u128 = 100_000;

/// How many times the clocks are read at most for one reading (`Clocks::raw`).
#[cfg(target_os = "linux")]
const CLOCK_READ_ATTEMPTS_MAX: u32 = 4;

/// `CLOCK_BOOTTIME` in ms (elsewhere than Linux: `Instant` since the process's first call): the
/// primary clock without a node's origin or test skew. What a store stamps a moment with when a
/// node will later measure that moment's age: it counts suspend, as the Agent's clock does, so a
/// process suspended between the stamp and the measure sees the age in full (`Instant`,
/// `CLOCK_MONOTONIC`, would hide the suspend).
pub(crate) fn boottime_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let ms = u128::try_from(t.tv_sec).unwrap_or(0) * 1_000
            + u128::try_from(t.tv_nsec).unwrap_or(0) / NS_PER_MS;
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = START.get_or_init(std::time::Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The node's clocks, as its loop reads them.
#[derive(Debug)]
pub(crate) struct Clocks {
    /// The primary and reference clocks' readings (ns) when the node started.
    origin_ns: (u128, u128),
    #[cfg(not(target_os = "linux"))]
    start: std::time::Instant,
    /// Offsets a test adds to the readings (feature `testing`).
    #[cfg(feature = "testing")]
    skew: Option<ClockSkew>,
}

impl Clocks {
    /// The clocks of a node starting now.
    pub(crate) fn new(#[cfg(feature = "testing")] skew: Option<ClockSkew>) -> Clocks {
        let mut clocks = Clocks {
            origin_ns: (0, 0),
            #[cfg(not(target_os = "linux"))]
            start: std::time::Instant::now(),
            #[cfg(feature = "testing")]
            skew,
        };
        let (primary, reference, _) = clocks.raw();
        clocks.origin_ns = (primary, reference);
        clocks
    }

    /// The primary and reference clocks now (ns, from an arbitrary origin), and the wall
    /// clock (ms since the Unix epoch), read as nearly at one instant as the thread allows: the
    /// primary and the wall clock are read between two readings of the reference, and the three
    /// are read again (up to [`CLOCK_READ_ATTEMPTS_MAX`] times) while those two are more than
    /// [`CLOCK_READ_SPREAD_NS_MAX`] apart (the thread was preempted in between: the watchdog
    /// would see the preemption as a disagreement of the clocks).
    #[cfg(target_os = "linux")]
    fn raw(&self) -> (u128, u128, u64) {
        use rustix::time::{clock_gettime, ClockId};
        let ns = |t: rustix::time::Timespec| {
            u128::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
                + u128::try_from(t.tv_nsec).unwrap_or(0)
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let before = ns(clock_gettime(ClockId::MonotonicRaw));
            let primary = ns(clock_gettime(ClockId::Boottime));
            let wall = ns(clock_gettime(ClockId::Realtime));
            let after = ns(clock_gettime(ClockId::MonotonicRaw));
            let spread = after.saturating_sub(before);
            if spread <= CLOCK_READ_SPREAD_NS_MAX || attempts >= CLOCK_READ_ATTEMPTS_MAX {
                let wall_ms = u64::try_from(wall / NS_PER_MS).unwrap_or(u64::MAX);
                // The reference at the middle of the bracket.
                return (primary, before + spread / 2, wall_ms);
            }
        }
    }

    /// The primary and reference clocks now (ns since the node started): one `Instant`; and the
    /// wall clock (ms since the Unix epoch).
    #[cfg(not(target_os = "linux"))]
    fn raw(&self) -> (u128, u128, u64) {
        let ns = self.start.elapsed().as_nanos();
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (ns, ns, wall_ms)
    }

    /// The primary clock now (ms since the node started): the Agent's `now_ms`.
    pub(crate) fn now_ms(&self) -> u64 {
        self.read().now_ms
    }

    /// All three clocks now.
    pub(crate) fn read(&self) -> ClockReading {
        let (primary, reference, wall_ms) = self.raw();
        let ms = |now: u128, origin: u128| {
            u64::try_from(now.saturating_sub(origin) / NS_PER_MS).unwrap_or(u64::MAX)
        };
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

/// Offsets added to a node's clock readings (feature `testing`; set in
/// [`NodeOptions`](crate::NodeOptions)'s
/// `clock_skew`): a test makes a clock jump without sleeping. Clones share the offsets.
#[cfg(feature = "testing")]
#[derive(Clone, Debug, Default)]
pub struct ClockSkew {
    /// Added to the primary clock, the reference clock and the wall clock (ms).
    offsets_ms: std::sync::Arc<std::sync::Mutex<(u64, u64, u64)>>,
}

#[cfg(feature = "testing")]
impl ClockSkew {
    /// No offset yet.
    pub fn new() -> ClockSkew {
        ClockSkew::default()
    }

    /// The primary clock (the Agent's `now_ms`) jumps forward by `ms`, the reference does not
    /// (what a suspend or a step of `CLOCK_BOOTTIME` alone would look like).
    pub fn jump_primary(&self, ms: u64) {
        let mut offsets = self
            .offsets_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        offsets.0 = offsets.0.saturating_add(ms);
    }

    /// The wall clock is stepped forward by `ms` (a pause that stopped both monotonic clocks,
    /// caught up by a time daemon).
    pub fn step_wall(&self, ms: u64) {
        let mut offsets = self
            .offsets_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        offsets.2 = offsets.2.saturating_add(ms);
    }

    /// `reading` with the offsets added.
    pub(crate) fn apply(&self, reading: ClockReading) -> ClockReading {
        let offsets = *self
            .offsets_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ClockReading {
            now_ms: reading.now_ms.saturating_add(offsets.0),
            reference_ms: reading.reference_ms.saturating_add(offsets.1),
            wall_ms: reading.wall_ms.saturating_add(offsets.2),
        }
    }
}
