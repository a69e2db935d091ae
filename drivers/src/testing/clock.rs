//! A clock fault injector for the runtime's tests: offsets added to a node's clock readings.

use membership_core::ClockReading;
use std::sync::{Arc, Mutex, PoisonError};

/// Offsets added to a node's clock readings (set in [`NodeOptions`](crate::NodeOptions)'s
/// `clock_skew`): a test makes a clock jump without sleeping. Clones share the offsets.
#[derive(Clone, Debug, Default)]
pub struct ClockSkew {
    /// Added to the primary clock, the reference clock and the wall clock (ms).
    offsets_ms: Arc<Mutex<(u64, u64, u64)>>,
}

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
            .unwrap_or_else(PoisonError::into_inner);
        offsets.0 = offsets.0.saturating_add(ms);
    }

    /// The wall clock is stepped forward by `ms` (a pause that stopped both monotonic clocks,
    /// caught up by a time daemon).
    pub fn step_wall(&self, ms: u64) {
        let mut offsets = self
            .offsets_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        offsets.2 = offsets.2.saturating_add(ms);
    }

    /// `reading` with the offsets added.
    pub(crate) fn apply(&self, reading: ClockReading) -> ClockReading {
        let offsets = *self
            .offsets_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ClockReading {
            now_ms: reading.now_ms.saturating_add(offsets.0),
            reference_ms: reading.reference_ms.saturating_add(offsets.1),
            wall_ms: reading.wall_ms.saturating_add(offsets.2),
        }
    }
}
