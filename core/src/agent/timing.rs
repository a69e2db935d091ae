//! The timing settings, their validation, and the Agent's fixed table of timers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest duration setting `Timing::new` accepts: one day, in ms. Every time the Agent
/// forms is a local time it was given plus a sum of at most [`TIME_HEADROOM_MS`] worth of
/// settings, so bounding the settings bounds every sum (see [`LOCAL_TIME_MS_MAX`]).
pub const TIMING_MS_MAX: u64 = 86_400_000;

/// How far past a local time the Agent's arithmetic may reach: 16 times [`TIMING_MS_MAX`]. The
/// largest sum it forms is a time plus `failure_timeout_ms + 8 * heartbeat_interval_ms` (when
/// the policy looks again after a round), at most 9 times [`TIMING_MS_MAX`]; the others are a
/// time plus one setting, the hand-off wait (at most 1.3 times the lease, plus 1) or four
/// failure timeouts (the abandon deadline).
pub const TIME_HEADROOM_MS: u64 = 16 * TIMING_MS_MAX;

/// The largest local time (ms) the Agent accepts as an input (`now_ms`): `u64::MAX` less
/// [`TIME_HEADROOM_MS`], so that no deadline it computes from an accepted time and accepted
/// settings can overflow. Later times are refused
/// ([`InputError::TimeOutOfRange`](crate::InputError::TimeOutOfRange)); about 584 million
/// years of a monotonic clock in ms, so no real clock reaches it.
pub const LOCAL_TIME_MS_MAX: u64 = u64::MAX - TIME_HEADROOM_MS;

/// One million: parts per million.
const PPM: u128 = 1_000_000;

/// The largest clock rate error bound `Timing::new` accepts, in ppm (10%).
const RATE_ERROR_PPM_MAX: u64 = 100_000;

/// A timing setting that was refused, naming both sides of the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TimingError {
    /// A setting is zero.
    #[error("{name} must be at least 1 ms")]
    Zero {
        /// The setting.
        name: &'static str,
    },
    /// A duration is above [`TIMING_MS_MAX`] (one day): the Agent's time arithmetic is bounded
    /// by it.
    #[error("{name} {value_ms} is above {max_ms} (TIMING_MS_MAX, one day)")]
    TooLarge {
        /// The setting.
        name: &'static str,
        /// Its value.
        value_ms: u64,
        /// [`TIMING_MS_MAX`].
        max_ms: u64,
    },
    /// The failure timeout, as a fast detector's clock measures it, does not outlast the lease
    /// as a slow holder's clock measures it plus a heartbeat interval: a node could be declared
    /// failed while it still serves. See [`Timing::new`] for the rule.
    #[error(
        "failure_timeout_ms {failure_timeout_ms} is too short: a detector's wait \
         failure_timeout_ms / (1 + {max_clock_rate_error_ppm} ppm) must exceed lease_ms \
         {lease_ms} / (1 - {max_clock_rate_error_ppm} ppm) + heartbeat_interval_ms \
         {heartbeat_interval_ms}; the smallest failure_timeout_ms accepted is \
         {min_failure_timeout_ms}"
    )]
    FailureTimeout {
        /// The failure timeout.
        failure_timeout_ms: u64,
        /// The lease.
        lease_ms: u64,
        /// The rate error bound.
        max_clock_rate_error_ppm: u64,
        /// The heartbeat interval.
        heartbeat_interval_ms: u64,
        /// The smallest failure timeout the rule accepts with the other settings unchanged.
        min_failure_timeout_ms: u64,
    },
    /// The lease does not exceed the heartbeat interval: a healthy node would fence itself
    /// between two heartbeats.
    #[error("lease_ms {lease_ms} must exceed heartbeat_interval_ms {heartbeat_interval_ms}")]
    Lease {
        /// The lease.
        lease_ms: u64,
        /// The heartbeat interval.
        heartbeat_interval_ms: u64,
    },
    /// The clock rate error is above 10% (100,000 ppm).
    #[error("max_clock_rate_error_ppm {0} is above 100000 (10%)")]
    RateError(u64),
}

/// The timing settings, in milliseconds of each node's local monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimingSettings {
    /// How often an Active node proposes SendHeartbeat.
    pub heartbeat_interval_ms: u64,
    /// How long a heartbeat round must be open (by a detector's clock) before it may detect a
    /// silent peer; also how old a round gets before a node opens a new one.
    pub failure_timeout_ms: u64,
    /// How long a committed heartbeat lets a node serve.
    pub lease_ms: u64,
    /// The bound on any node's clock rate error, in parts per million.
    pub max_clock_rate_error_ppm: u64,
    /// How often a node probes each peer.
    pub probe_interval_ms: u64,
    /// How long a probe may take before it counts as failed (the driver enforces it).
    pub probe_timeout_ms: u64,
    /// How long probes to a peer must keep failing (or succeeding) before the node reports the
    /// partition (or its heal).
    pub suspect_after_ms: u64,
    /// How often the node reads a snapshot when nothing wakes it earlier.
    pub snapshot_interval_ms: u64,
    /// How long to wait before sending again a proposal whose outcome was unknown or whose store
    /// was unavailable.
    pub retry_backoff_ms: u64,
    /// The most actors one migration batch moves (at most [`MIGRATION_BATCH_MAX`](crate::MIGRATION_BATCH_MAX)).
    pub migration_batch: u64,
}

/// Validated timing settings: see [`Timing::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timing {
    settings: TimingSettings,
}

impl Timing {
    /// The default timing: heartbeats every 100 ms, a 300 ms lease, a 500 ms failure timeout,
    /// probes every 50 ms (100 ms timeout), partitions reported after 150 ms, a 200 ppm rate
    /// error bound.
    pub const DEFAULT_SETTINGS: TimingSettings = TimingSettings {
        heartbeat_interval_ms: 100,
        failure_timeout_ms: 500,
        lease_ms: 300,
        max_clock_rate_error_ppm: 200,
        probe_interval_ms: 50,
        probe_timeout_ms: 100,
        suspect_after_ms: 150,
        snapshot_interval_ms: 50,
        retry_backoff_ms: 20,
        migration_batch: 1_024,
    };

    /// A fast timing for tests and the fast failover figure: heartbeats every 25 ms, a 75 ms
    /// lease, a 125 ms failure timeout.
    pub const FAST_SETTINGS: TimingSettings = TimingSettings {
        heartbeat_interval_ms: 25,
        failure_timeout_ms: 125,
        lease_ms: 75,
        max_clock_rate_error_ppm: 200,
        probe_interval_ms: 15,
        probe_timeout_ms: 30,
        suspect_after_ms: 45,
        snapshot_interval_ms: 15,
        retry_backoff_ms: 10,
        migration_batch: 1_024,
    };

    /// Validates `settings`: every duration at least 1 ms and at most [`TIMING_MS_MAX`], a rate
    /// error of at most 10%, `lease_ms > heartbeat_interval_ms`, and the failure timeout rule.
    ///
    /// **The rule.** Write `e` for the rate error bound (`max_clock_rate_error_ppm / 10^6`): a
    /// clock's ms last between `1 / (1 + e)` and `1 / (1 - e)` true ms. A node `t` serves on a
    /// lease of `lease_ms` of its own clock counted from the send of a heartbeat that committed;
    /// its clock may be slow, so the lease lasts at most `lease_ms / (1 - e)` true ms after
    /// that heartbeat's commit. A detector proposes DetectFailure(t) only after it has seen the
    /// current round open for `failure_timeout_ms` of its own clock, and only while `t`'s
    /// heartbeat flag is clear (no heartbeat of `t` committed since the round opened); its
    /// clock may be fast, so that wait lasts at least `failure_timeout_ms / (1 + e)` true ms,
    /// counted from a moment after the round opened, hence after `t`'s last committed
    /// heartbeat. So `t`'s lease has run out before the detection if
    ///
    /// `failure_timeout_ms / (1 + e) > lease_ms / (1 - e) + heartbeat_interval_ms`,
    ///
    /// checked in exact integer arithmetic (u128; `p` is the ppm, `M` is 10^6):
    /// `failure_timeout_ms * M * (M - p) > lease_ms * M * (M + p) + heartbeat_interval_ms *
    /// (M + p) * (M - p)`. The refusal names the smallest failure timeout accepted.
    ///
    /// The heartbeat interval term is a margin the argument above does not need; it is the
    /// margin the rule has always required (`DESIGN.md`), kept so that no setting refused
    /// before for want of it is accepted now. It covers the Agent's integer clocks (a wait
    /// measured between two readings truncated to the ms is up to 1 ms shorter than the
    /// difference says) and keeps at least one heartbeat interval between the latest moment a
    /// silent node may still serve and the earliest moment it may be voted failed.
    ///
    /// Example: lease 100 ms, heartbeat 1 ms, 10%: the lease lasts up to 111.1 ms of true time,
    /// so a failure timeout of 112 ms (101.8 ms of a fast detector's true time) is refused; the
    /// smallest accepted is 124 ms.
    pub fn new(settings: TimingSettings) -> Result<Timing, TimingError> {
        let s = settings;
        for (name, value) in [
            ("heartbeat_interval_ms", s.heartbeat_interval_ms),
            ("failure_timeout_ms", s.failure_timeout_ms),
            ("lease_ms", s.lease_ms),
            ("probe_interval_ms", s.probe_interval_ms),
            ("probe_timeout_ms", s.probe_timeout_ms),
            ("suspect_after_ms", s.suspect_after_ms),
            ("snapshot_interval_ms", s.snapshot_interval_ms),
            ("retry_backoff_ms", s.retry_backoff_ms),
            ("migration_batch", s.migration_batch),
        ] {
            if value == 0 {
                return Err(TimingError::Zero { name });
            }
            // The batch size is a count, not a time: the migration path bounds it by
            // MIGRATION_BATCH_MAX.
            if name != "migration_batch" && value > TIMING_MS_MAX {
                return Err(TimingError::TooLarge {
                    name,
                    value_ms: value,
                    max_ms: TIMING_MS_MAX,
                });
            }
        }
        if s.max_clock_rate_error_ppm > RATE_ERROR_PPM_MAX {
            return Err(TimingError::RateError(s.max_clock_rate_error_ppm));
        }
        if s.lease_ms <= s.heartbeat_interval_ms {
            return Err(TimingError::Lease {
                lease_ms: s.lease_ms,
                heartbeat_interval_ms: s.heartbeat_interval_ms,
            });
        }
        let min_failure_timeout_ms = min_failure_timeout_ms(&s);
        if s.failure_timeout_ms < min_failure_timeout_ms {
            return Err(TimingError::FailureTimeout {
                failure_timeout_ms: s.failure_timeout_ms,
                lease_ms: s.lease_ms,
                max_clock_rate_error_ppm: s.max_clock_rate_error_ppm,
                heartbeat_interval_ms: s.heartbeat_interval_ms,
                min_failure_timeout_ms,
            });
        }
        let timing = Timing { settings };
        assert!(timing.settings.failure_timeout_ms > timing.settings.lease_ms);
        assert!(timing.settings.lease_ms > timing.settings.heartbeat_interval_ms);
        assert!(timing.settings.failure_timeout_ms <= TIMING_MS_MAX);
        assert!(timing.handoff_wait_ms() <= 2 * TIMING_MS_MAX);
        Ok(timing)
    }

    /// The default timing ([`Timing::DEFAULT_SETTINGS`]).
    pub fn default_timing() -> Timing {
        Timing {
            settings: Timing::DEFAULT_SETTINGS,
        }
    }

    /// The fast timing ([`Timing::FAST_SETTINGS`]).
    pub fn fast() -> Timing {
        Timing {
            settings: Timing::FAST_SETTINGS,
        }
    }

    /// The settings of the preset named `name` (`"default"` or `"fast"`), as a command line or a
    /// configuration file names them; `None` for any other name.
    pub fn preset(name: &str) -> Option<TimingSettings> {
        let settings = match name {
            "default" => Timing::DEFAULT_SETTINGS,
            "fast" => Timing::FAST_SETTINGS,
            _ => return None,
        };
        debug_assert!(Timing::new(settings).is_ok());
        Some(settings)
    }

    /// The settings.
    pub fn settings(&self) -> &TimingSettings {
        &self.settings
    }

    /// How long a node waits before activating an actor whose previous holder may still be
    /// serving it: the lease, scaled up by three times the rate error (the holder's clock may be
    /// slow, this node's fast), plus one millisecond.
    pub fn handoff_wait_ms(&self) -> u64 {
        let wait = scaled_up(
            self.settings.lease_ms,
            self.settings.max_clock_rate_error_ppm.saturating_mul(3),
        )
        .saturating_add(1);
        debug_assert!(wait > self.settings.lease_ms);
        debug_assert!(self.settings.lease_ms > 0);
        wait
    }
}

/// The smallest failure timeout the rule of [`Timing::new`] accepts with `s`'s lease, heartbeat
/// interval and rate error (`s` within the bounds `Timing::new` checks first): the least `f`
/// with `f * M * (M - p) > lease * M * (M + p) + heartbeat * (M + p) * (M - p)`.
fn min_failure_timeout_ms(s: &TimingSettings) -> u64 {
    debug_assert!(s.max_clock_rate_error_ppm <= RATE_ERROR_PPM_MAX);
    debug_assert!(s.lease_ms <= TIMING_MS_MAX && s.heartbeat_interval_ms <= TIMING_MS_MAX);
    let p = u128::from(s.max_clock_rate_error_ppm);
    let lease = u128::from(s.lease_ms);
    let heartbeat = u128::from(s.heartbeat_interval_ms);
    // At most 8.64e7 x 1e6 x 1.1e6 + 8.64e7 x 1.1e6 x 1e6: far below u128::MAX (3.4e38).
    let right = lease * PPM * (PPM + p) + heartbeat * (PPM + p) * (PPM - p);
    let per_ms = PPM * (PPM - p);
    let min = right / per_ms + 1;
    debug_assert!(min * per_ms > right && (min - 1) * per_ms <= right);
    u64::try_from(min).unwrap_or(u64::MAX)
}

/// `time_ms + duration_ms`, saturating at `u64::MAX`: every deadline the Agent computes. It
/// never saturates for an accepted time (at most [`LOCAL_TIME_MS_MAX`]) and a duration built
/// from accepted settings (at most [`TIME_HEADROOM_MS`]), asserted.
pub(crate) fn later_ms(time_ms: u64, duration_ms: u64) -> u64 {
    let at = time_ms.saturating_add(duration_ms);
    debug_assert!(
        time_ms > LOCAL_TIME_MS_MAX || duration_ms > TIME_HEADROOM_MS || at < u64::MAX,
        "{time_ms} + {duration_ms} saturated"
    );
    debug_assert!(at >= time_ms);
    at
}

/// `value * (1 + ppm / 10^6)`, rounded up.
fn scaled_up(value: u64, ppm: u64) -> u64 {
    let scaled = u128::from(value) * (1_000_000 + u128::from(ppm));
    let result = u64::try_from(scaled.div_ceil(1_000_000)).unwrap_or(u64::MAX);
    debug_assert!(result >= value);
    debug_assert!(ppm > 0 || result == value);
    result
}

/// How many timers the Agent has (the variants of [`Timer`]).
const TIMERS: usize = 8;

/// The Agent's closed set of timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    /// The next heartbeat.
    Heartbeat,
    /// The next round of probes.
    Probe,
    /// The next periodic snapshot read.
    Snapshot,
    /// The lease runs out.
    Lease,
    /// A deferred actor activation is due.
    Activation,
    /// A proposal is to be sent again.
    Retry,
    /// The policy looks again (a round or a suspicion may have ripened).
    Evaluate,
    /// A proposal in flight has had no outcome for too long (a driver that lost it): give up.
    Abandon,
}

impl Timer {
    /// Every timer, in the order they run when several are due at once.
    const ALL: [Timer; TIMERS] = [
        Timer::Heartbeat,
        Timer::Probe,
        Timer::Snapshot,
        Timer::Lease,
        Timer::Activation,
        Timer::Retry,
        Timer::Evaluate,
        Timer::Abandon,
    ];

    /// The timer's slot in a [`TimerTable`].
    fn index(self) -> usize {
        let index = self as usize;
        debug_assert!(index < TIMERS);
        debug_assert!(Timer::ALL[index] == self);
        index
    }
}

/// One deadline (local ms) per timer, or none: a fixed table indexed by [`Timer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    deadlines_ms: [Option<u64>; TIMERS],
}

impl TimerTable {
    /// Arms `timer` for local time `at_ms` (replacing its deadline).
    pub(crate) fn set(&mut self, timer: Timer, at_ms: u64) {
        self.deadlines_ms[timer.index()] = Some(at_ms);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines_ms[timer.index()] = None;
    }

    /// Arms `timer` for `at_ms`, or disarms it (`None`).
    pub(crate) fn set_or_stop(&mut self, timer: Timer, at_ms: Option<u64>) {
        self.deadlines_ms[timer.index()] = at_ms;
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<u64> {
        self.deadlines_ms[timer.index()]
    }

    /// The earliest deadline.
    pub(crate) fn next_ms(&self) -> Option<u64> {
        self.deadlines_ms.iter().flatten().copied().min()
    }

    /// The timers due at `now_ms`, in [`Timer`] order.
    pub(crate) fn due(&self, now_ms: u64) -> Vec<Timer> {
        let due: Vec<Timer> = Timer::ALL
            .into_iter()
            .filter(|&t| self.get(t).is_some_and(|at| at <= now_ms))
            .collect();
        debug_assert!(due.len() <= TIMERS);
        debug_assert!(due.windows(2).all(|w| w[0] < w[1]), "in timer order");
        due
    }

    /// Whether every armed deadline is after `now_ms`.
    pub(crate) fn all_after(&self, now_ms: u64) -> bool {
        self.deadlines_ms.iter().flatten().all(|&at| at > now_ms)
    }
}
