//! Pure decisions of the relay about time and rate: when a watcher's group is dropped, and
//! what bit rate to ask of the wearable. Functions of their inputs and `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A watcher's object is dropped, with the rest of its group, once it is older than the
/// latency budget *and* a newer group exists: bounded delay beats completeness, but the
/// newest group is never dropped, or the watcher would have nothing to show.
pub fn should_drop(arrived: Instant, now: Instant, budget: Duration, newer_group: bool) -> bool {
    newer_group && now.saturating_duration_since(arrived) > budget
}

/// Bytes a watcher took over a sliding window: its real delivery rate.
#[derive(Debug)]
pub struct ThroughputMeter {
    window: Duration,
    samples: VecDeque<(Instant, usize)>,
    total: usize,
}

impl ThroughputMeter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: VecDeque::new(),
            total: 0,
        }
    }

    pub fn record(&mut self, now: Instant, bytes: usize) {
        self.samples.push_back((now, bytes));
        self.total += bytes;
        self.expire(now);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, n)) = self.samples.front() {
            if now.saturating_duration_since(at) <= self.window {
                break;
            }
            self.samples.pop_front();
            self.total -= n;
        }
    }

    /// Bits per second delivered over the window ending at `now`.
    pub fn bits_per_second(&mut self, now: Instant) -> u64 {
        self.expire(now);
        (self.total as f64 * 8.0 / self.window.as_secs_f64()) as u64
    }
}

/// Decides when to send the wearable a `BitrateHint`: after a watcher dropped a group, at
/// most once per `interval`, asking for a margin below what the slowest watcher took.
#[derive(Debug)]
pub struct BitrateGovernor {
    interval: Duration,
    last_hint: Option<Instant>,
}

/// Fraction of the measured rate asked for, leaving room for the rate to recover.
const HEADROOM: f64 = 0.8;
/// Never ask for less than this: below it no picture is useful.
pub const MIN_BITRATE: u64 = 150_000;

impl BitrateGovernor {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_hint: None,
        }
    }

    /// A watcher dropped a group; `slowest_bps` is the lowest delivery rate among watchers.
    pub fn on_drop(&mut self, now: Instant, slowest_bps: u64) -> Option<u64> {
        if self
            .last_hint
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            return None;
        }
        self.last_hint = Some(now);
        Some(((slowest_bps as f64 * HEADROOM) as u64).max(MIN_BITRATE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn late_object_is_dropped_only_when_a_newer_group_exists() {
        let t0 = Instant::now();
        let budget = 500 * MS;
        assert!(!should_drop(t0, t0 + 400 * MS, budget, true));
        assert!(should_drop(t0, t0 + 600 * MS, budget, true));
        assert!(!should_drop(t0, t0 + 600 * MS, budget, false));
    }

    #[test]
    fn throughput_counts_only_the_window() {
        let t0 = Instant::now();
        let mut m = ThroughputMeter::new(Duration::from_secs(1));
        m.record(t0, 1000);
        m.record(t0 + 500 * MS, 1000);
        assert_eq!(m.bits_per_second(t0 + 900 * MS), 16_000);
        assert_eq!(m.bits_per_second(t0 + 1200 * MS), 8_000);
        assert_eq!(m.bits_per_second(t0 + 3000 * MS), 0);
    }

    #[test]
    fn governor_hints_below_the_slowest_rate_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut g = BitrateGovernor::new(Duration::from_secs(2));
        assert_eq!(g.on_drop(t0, 1_000_000), Some(800_000));
        assert_eq!(g.on_drop(t0 + 1000 * MS, 500_000), None);
        assert_eq!(g.on_drop(t0 + 2500 * MS, 10_000), Some(MIN_BITRATE));
    }
}
