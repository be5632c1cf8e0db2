//! Quotas: the bounds that keep a probe from hurting the program (docs/quotas.md).
//!
//! Every probe has a hit bound, an expiry and — for log points — a rate in lines and bytes;
//! the whole process has an overhead budget: the share of wall time its threads may spend
//! stopped by scry. Rates are leaky buckets, in the manner of Google's cloud debuggers: a
//! bucket fills at its rate up to a capacity (the burst), each hit takes from it, and an empty
//! bucket pauses the probe — it is unplanted, so a paused probe costs the program nothing —
//! until the bucket has refilled. One global bucket holds the overhead budget; each probe
//! has its own at half that rate, so no single probe can spend all of it.
//!
//! The buckets are checked on the hit path (a clock read and a few comparisons), so they are
//! plain numbers owned by the engine thread, not atomics.

use std::time::{Duration, Instant};

/// A probe's bounds. `Default` gives the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    /// Unplant for good after this many hits (snapshots: 1 by default, set by the session).
    pub max_hits: Option<u64>,
    /// Unplant for good this long after the probe is set.
    pub expiry: Option<Duration>,
    /// Log lines per second, sustained (bursts of `burst` times this).
    pub lines_per_sec: f64,
    /// Log bytes per second, sustained (the message text and the values captured).
    pub bytes_per_sec: f64,
    /// Burst allowance as a multiple of the per-second rates.
    pub burst: f64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_hits: None,
            expiry: Some(Duration::from_secs(3600)),
            lines_per_sec: 60.0,
            bytes_per_sec: 200.0 * 1024.0,
            burst: 2.0,
        }
    }
}

impl Quota {
    /// No bound at all (benchmarks; a user who asks for it explicitly).
    pub fn unlimited() -> Quota {
        Quota {
            max_hits: None,
            expiry: None,
            lines_per_sec: f64::INFINITY,
            bytes_per_sec: f64::INFINITY,
            burst: 2.0,
        }
    }
}

/// The process-wide overhead budget: the share of wall time threads may spend stopped by
/// scry. Default 1 %.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverheadBudget {
    /// A fraction (0.01 = 1 %); infinite disables the budget.
    pub share: f64,
    /// What one stop costs beyond the tracer's own measured service time (the kernel's stop
    /// and resume, the wake-ups), which the tracer cannot observe; charged on every hit.
    pub stop_cost: Duration,
}

impl Default for OverheadBudget {
    fn default() -> Self {
        OverheadBudget {
            share: 0.01,
            stop_cost: Duration::from_micros(10),
        }
    }
}

impl OverheadBudget {
    /// No budget.
    pub fn unlimited() -> OverheadBudget {
        OverheadBudget {
            share: f64::INFINITY,
            ..OverheadBudget::default()
        }
    }
}

/// A leaky bucket of tokens: filled at `rate` per second up to `capacity`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket. An infinite rate never runs dry.
    pub fn new(rate: f64, capacity: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            capacity,
            rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.rate.is_infinite() {
            self.tokens = f64::INFINITY;
            return;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// True if there is something left to take (the next hit may go ahead).
    pub fn has_tokens(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens > 0.0
    }

    /// Takes `n` tokens; the bucket may go below zero (a hit is charged after it is served),
    /// but its debt is capped at one capacity: one long stop (a snapshot's hold) pauses the
    /// probes for about a refill, not for minutes.
    pub fn take(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - n).max(-self.capacity);
    }

    /// How long until the bucket is half full again.
    pub fn time_to_half(&self) -> Duration {
        if self.rate.is_infinite() || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let missing = (self.capacity / 2.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.rate)
    }

    /// The sustained rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// Why a probe was paused, with the figures the user needs to judge it.
#[derive(Clone, Debug, PartialEq)]
pub enum PauseReason {
    /// More log lines per second than the probe's rate.
    LineRate { per_sec: f64, burst: f64 },
    /// More log bytes per second than the probe's rate.
    ByteRate { per_sec: f64, burst: f64 },
    /// The probe's hits stopped threads for more than its share of the overhead budget.
    ProbeOverhead {
        share: f64,
        hits: u64,
        stopped: Duration,
    },
    /// All probes together stopped threads for more than the process's overhead budget.
    GlobalOverhead { share: f64 },
}

impl std::fmt::Display for PauseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseReason::LineRate { per_sec, burst } => write!(
                f,
                "more than {per_sec} log lines/s (bursts of {}); raise it with --rate",
                per_sec * burst
            ),
            PauseReason::ByteRate { per_sec, burst } => write!(
                f,
                "more than {} KiB/s of log output (bursts of {} KiB); raise it with --bytes-rate",
                per_sec / 1024.0,
                per_sec * burst / 1024.0
            ),
            PauseReason::ProbeOverhead {
                share,
                hits,
                stopped,
            } => write!(
                f,
                "its hits stopped the program's threads for more than {:.2} % of the time \
                 ({hits} hits, {:.1} ms stopped so far); raise the budget with --overhead",
                share * 100.0,
                stopped.as_secs_f64() * 1e3
            ),
            PauseReason::GlobalOverhead { share } => write!(
                f,
                "all probes together stopped the program's threads for more than {:.2} % of the \
                 time; raise the budget with --overhead",
                share * 100.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_runs_dry_and_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 20.0, t0);
        for _ in 0..20 {
            assert!(b.has_tokens(t0));
            b.take(1.0, t0);
        }
        assert!(!b.has_tokens(t0));
        // Half full after a second at 10 per second.
        assert_eq!(b.time_to_half(), Duration::from_secs(1));
        assert!(b.has_tokens(t0 + Duration::from_millis(200)));
        let mut full = Bucket::new(10.0, 20.0, t0);
        full.take(5.0, t0);
        assert!(full.has_tokens(t0 + Duration::from_secs(100)));
        full.take(20.0, t0 + Duration::from_secs(100));
        assert!(
            !full.has_tokens(t0 + Duration::from_secs(100)),
            "capped at capacity"
        );
    }

    #[test]
    fn an_infinite_bucket_never_runs_dry() {
        let t0 = Instant::now();
        let mut b = Bucket::new(f64::INFINITY, f64::INFINITY, t0);
        b.take(1e12, t0);
        assert!(b.has_tokens(t0));
        assert_eq!(b.time_to_half(), Duration::ZERO);
    }
}
