//! The clock, injected: nothing deep inside reads the wall time.
//!
//! Reconcilers take `now` from [`Clock::now`] once per reconcile and pass it
//! down to pure functions. Tests use [`ManualClock`] to move time.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that runs with the system clock plus an offset that tests can
/// move forward (or pin with [`ManualClock::set`]).
#[derive(Debug, Default)]
pub struct ManualClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClockState {
    offset: Duration,
    pinned: Option<OffsetDateTime>,
}

impl ManualClock {
    /// The system clock, not moved yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (from now on, every reading is later).
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        match &mut s.pinned {
            Some(t) => *t += by,
            None => s.offset += by,
        }
    }

    /// Pins the clock at `t` until [`advance`](Self::advance)d.
    pub fn set(&self, t: OffsetDateTime) {
        self.lock().pinned = Some(t);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let s = *self.lock();
        s.pinned
            .unwrap_or_else(|| OffsetDateTime::now_utc() + s.offset)
    }
}

/// Unix milliseconds (audit timestamps).
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 in UTC with whole seconds, as status fields carry it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses RFC 3339.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward_when_told() {
        let c = ManualClock::new();
        let t0 = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        c.set(t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::hours(2));
        assert_eq!(c.now(), t0 + Duration::hours(2));
    }

    #[test]
    fn rfc3339_round_trips_whole_seconds() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_780_800).unwrap();
        assert_eq!(rfc3339(t), "2026-11-27T12:00:00Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
    }
}
