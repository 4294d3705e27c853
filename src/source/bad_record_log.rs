//! How often a source logs its bad records: the first few in full, then at most one line
//! per interval that also says how many were skipped without a line since the last one.
//!
//! Bad records are counted one by one in the source's statistics (`bad_records`), so the
//! log does not need a line for each: a producer that writes the wrong format can send
//! thousands a second, and a WARN line per record then floods the log and costs more than
//! applying the records. The first lines say which records are bad and why (that is what
//! an operator needs to find the producer); after that, one line per interval shows the
//! problem goes on and how big it is. Records skipped after the last line show in the
//! statistics (and `ktable serve`'s periodic `source stats` line), not in a later WARN
//! line, so no timer is needed. The decision is kept apart from the logging and from the
//! clock (`now` is passed in), so that it is tested without sleeping.

use std::time::{Duration, Instant};

/// Bad records logged in full before the rate limit applies.
pub(crate) const LOGGED_IN_FULL: u32 = 10;
/// The shortest time between two lines once the rate limit applies.
pub(crate) const LINE_INTERVAL: Duration = Duration::from_secs(30);

/// Whether one bad record gets a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadRecordLine {
    /// Log it; `unlogged_before` bad records were counted without a line since the last
    /// line, and `limited_from_now` is true on the line after which the limit applies.
    Log {
        unlogged_before: u64,
        limited_from_now: bool,
    },
    /// Count it only.
    Skip,
}

/// The rate limit of one source's bad-record lines.
#[derive(Debug)]
pub(crate) struct BadRecordLog {
    logged_in_full: u32,
    unlogged: u64,
    next_line_at: Option<Instant>,
    burst: u32,
    interval: Duration,
}

impl Default for BadRecordLog {
    fn default() -> Self {
        Self::new(LOGGED_IN_FULL, LINE_INTERVAL)
    }
}

impl BadRecordLog {
    /// A limit that logs `burst` records in full, then one line per `interval`.
    pub(crate) fn new(burst: u32, interval: Duration) -> Self {
        Self {
            logged_in_full: 0,
            unlogged: 0,
            next_line_at: None,
            burst,
            interval,
        }
    }

    /// Decides about a bad record seen at `now`.
    pub(crate) fn record(&mut self, now: Instant) -> BadRecordLine {
        if self.logged_in_full < self.burst {
            self.logged_in_full += 1;
            let limited_from_now = self.logged_in_full == self.burst;
            if limited_from_now {
                self.next_line_at = Some(now + self.interval);
            }
            return BadRecordLine::Log {
                unlogged_before: 0,
                limited_from_now,
            };
        }
        if self.next_line_at.is_some_and(|at| now < at) {
            self.unlogged += 1;
            return BadRecordLine::Skip;
        }
        self.next_line_at = Some(now + self.interval);
        BadRecordLine::Log {
            unlogged_before: std::mem::take(&mut self.unlogged),
            limited_from_now: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn log(unlogged_before: u64, limited_from_now: bool) -> BadRecordLine {
        BadRecordLine::Log {
            unlogged_before,
            limited_from_now,
        }
    }

    #[test]
    fn the_first_records_are_logged_in_full_then_one_line_per_interval() {
        let start = Instant::now();
        let mut limit = BadRecordLog::new(3, 10 * SECOND);
        assert_eq!(limit.record(start), log(0, false));
        assert_eq!(limit.record(start), log(0, false));
        assert_eq!(limit.record(start), log(0, true));
        for _ in 0..1_000 {
            assert_eq!(limit.record(start + 9 * SECOND), BadRecordLine::Skip);
        }
        assert_eq!(limit.record(start + 10 * SECOND), log(1_000, false));
        assert_eq!(limit.record(start + 11 * SECOND), BadRecordLine::Skip);
        assert_eq!(limit.record(start + 19 * SECOND), BadRecordLine::Skip);
        assert_eq!(limit.record(start + 20 * SECOND), log(2, false));
    }

    #[test]
    fn after_a_quiet_spell_the_next_bad_record_is_logged_at_once() {
        let start = Instant::now();
        let mut limit = BadRecordLog::new(1, 10 * SECOND);
        assert_eq!(limit.record(start), log(0, true));
        assert_eq!(limit.record(start + 3_600 * SECOND), log(0, false));
        assert_eq!(limit.record(start + 3_601 * SECOND), BadRecordLine::Skip);
    }

    #[test]
    fn lines_per_interval_stay_bounded_whatever_the_rate() {
        let start = Instant::now();
        let mut limit = BadRecordLog::default();
        // One bad record every millisecond for ten minutes.
        let lines = (0..600_000u64)
            .filter(|ms| {
                let now = start + Duration::from_millis(*ms);
                matches!(limit.record(now), BadRecordLine::Log { .. })
            })
            .count() as u64;
        let intervals = 600 / LINE_INTERVAL.as_secs();
        assert!(
            lines <= u64::from(LOGGED_IN_FULL) + intervals,
            "{lines} lines"
        );
    }
}
