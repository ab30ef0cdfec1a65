//! Failure throttling: how long the next attempt must wait after a run of failures, and when an
//! account must use another way in. Pure functions of the counter and the time.

use crate::store::ThrottleState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed without any delay.
    pub free_failures: i64,
    /// The delay after the first throttled failure; it doubles with each further failure.
    pub base_delay_ms: i64,
    /// The longest delay.
    pub max_delay_ms: i64,
    /// Consecutive failures after which this path is closed until another way in succeeds.
    pub hard_limit: Option<i64>,
    /// Failures older than this are forgotten (per-IP counters); `None` keeps them.
    pub forget_after_ms: Option<i64>,
}

/// Per account identifier (normalised email): delays from the 5th failure, 1 s doubling to a
/// 15 minute cap, and the password path closed after 100 consecutive failures.
pub const ACCOUNT_POLICY: ThrottlePolicy = ThrottlePolicy {
    free_failures: 4,
    base_delay_ms: 1_000,
    max_delay_ms: 15 * 60 * 1000,
    hard_limit: Some(100),
    forget_after_ms: None,
};

/// Per account for second factors: the same delays as passwords, but never closed for good. The
/// person guessing already knows the password; closing the path would let them lock the owner out
/// of their own second factor, so the delays cap at 15 minutes instead.
pub const SECOND_FACTOR_POLICY: ThrottlePolicy = ThrottlePolicy {
    hard_limit: None,
    ..ACCOUNT_POLICY
};

/// Per client IP: more room (shared addresses), the same growth, forgotten after an hour.
pub const IP_POLICY: ThrottlePolicy = ThrottlePolicy {
    free_failures: 30,
    base_delay_ms: 1_000,
    max_delay_ms: 15 * 60 * 1000,
    hard_limit: None,
    forget_after_ms: Some(60 * 60 * 1000),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleDecision {
    Allow,
    /// Try again at this time (milliseconds since the epoch).
    WaitUntil(i64),
    /// Too many consecutive failures: only another way in (an email code) opens this again.
    Closed,
}

impl ThrottlePolicy {
    /// The delay that follows `failures` consecutive failures.
    pub fn delay_after(&self, failures: i64) -> i64 {
        if failures <= self.free_failures {
            return 0;
        }
        let doublings = (failures - self.free_failures - 1).min(30) as u32;
        self.base_delay_ms
            .saturating_mul(1i64 << doublings)
            .min(self.max_delay_ms)
    }

    pub fn is_stale(&self, state: ThrottleState, now: i64) -> bool {
        matches!(self.forget_after_ms, Some(f) if now - state.last_failure_at > f)
    }

    pub fn decide(&self, state: ThrottleState, now: i64) -> ThrottleDecision {
        if self.is_stale(state, now) {
            return ThrottleDecision::Allow;
        }
        if let Some(limit) = self.hard_limit {
            if state.failures >= limit {
                return ThrottleDecision::Closed;
            }
        }
        let ready_at = state
            .last_failure_at
            .saturating_add(self.delay_after(state.failures));
        if state.failures > self.free_failures && now < ready_at {
            ThrottleDecision::WaitUntil(ready_at)
        } else {
            ThrottleDecision::Allow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(failures: i64, last: i64) -> ThrottleState {
        ThrottleState {
            failures,
            last_failure_at: last,
        }
    }

    #[test]
    fn first_four_failures_are_free_then_delays_double_to_a_cap() {
        let p = ACCOUNT_POLICY;
        for f in 0..=4 {
            assert_eq!(
                p.decide(st(f, 1_000), 1_000),
                ThrottleDecision::Allow,
                "{f}"
            );
        }
        assert_eq!(
            p.decide(st(5, 1_000), 1_000),
            ThrottleDecision::WaitUntil(2_000)
        );
        assert_eq!(p.decide(st(5, 1_000), 2_000), ThrottleDecision::Allow);
        assert_eq!(p.delay_after(6), 2_000);
        assert_eq!(p.delay_after(7), 4_000);
        assert_eq!(p.delay_after(50), 15 * 60 * 1000);
    }

    #[test]
    fn the_clock_moving_on_opens_the_gate() {
        let p = ACCOUNT_POLICY;
        let s = st(12, 10_000);
        let ThrottleDecision::WaitUntil(at) = p.decide(s, 10_000) else {
            unreachable!("throttled")
        };
        assert_eq!(at, 10_000 + 128_000);
        assert_eq!(p.decide(s, at - 1), ThrottleDecision::WaitUntil(at));
        assert_eq!(p.decide(s, at), ThrottleDecision::Allow);
    }

    #[test]
    fn one_hundred_failures_close_the_password_path_for_good() {
        let p = ACCOUNT_POLICY;
        assert_eq!(p.decide(st(99, 0), i64::MAX / 2), ThrottleDecision::Allow);
        assert_eq!(p.decide(st(100, 0), i64::MAX / 2), ThrottleDecision::Closed);
    }

    #[test]
    fn ip_failures_are_forgotten_after_an_hour() {
        let p = IP_POLICY;
        let s = st(40, 0);
        assert!(matches!(p.decide(s, 1), ThrottleDecision::WaitUntil(_)));
        assert_eq!(p.decide(s, 60 * 60 * 1000 + 1), ThrottleDecision::Allow);
    }
}
