//! The retry policy for upstream requests (SPEC 3.3), as pure data: how many
//! attempts, how far apart, within how long, and what a `Retry-After` header
//! asks for. The loop that sleeps lives in the `upstream` crate.

use std::time::{Duration, SystemTime};

/// Attempts, the wait between them, and the total time budget of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1).
    pub max_attempts: u32,
    /// Wait between two attempts (a longer `Retry-After` wins).
    pub interval: Duration,
    /// No attempt starts later than this after the first one.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// SPEC 3.3 defaults: 20 attempts, 12 minutes apart, within 4 hours.
    pub const DEFAULT: Self = Self {
        max_attempts: 20,
        interval: Duration::from_secs(12 * 60),
        max_elapsed: Duration::from_secs(4 * 3600),
    };

    /// How long to wait before the next attempt, after `attempts_made`
    /// attempts failed within `elapsed`; `None` means give up.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempts_made >= self.max_attempts.max(1) {
            return None;
        }
        let delay = retry_after.map_or(self.interval, |asked| asked.max(self.interval));
        if elapsed.saturating_add(delay) > self.max_elapsed {
            return None;
        }
        Some(delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Parses a `Retry-After` value: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in the past
/// means "now" (zero); anything unreadable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(attempts: u32, interval_ms: u64, max_elapsed_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            interval: Duration::from_millis(interval_ms),
            max_elapsed: Duration::from_millis(max_elapsed_ms),
        }
    }

    #[test]
    fn default_policy_is_twenty_attempts_twelve_minutes_apart_within_four_hours() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 20);
        let mut elapsed = Duration::ZERO;
        let mut attempts = 1;
        while let Some(delay) = p.next_delay(attempts, elapsed, None) {
            assert_eq!(delay, Duration::from_secs(720));
            elapsed += delay;
            attempts += 1;
        }
        assert_eq!(attempts, 20);
        assert!(elapsed <= Duration::from_secs(4 * 3600));
    }

    #[test]
    fn no_retry_after_the_last_attempt() {
        assert_eq!(
            policy(3, 10, 1000).next_delay(3, Duration::ZERO, None),
            None
        );
        assert!(policy(3, 10, 1000)
            .next_delay(2, Duration::ZERO, None)
            .is_some());
    }

    #[test]
    fn no_retry_that_would_start_after_max_elapsed() {
        let p = policy(100, 100, 250);
        assert!(p.next_delay(1, Duration::from_millis(150), None).is_some());
        assert_eq!(p.next_delay(2, Duration::from_millis(200), None), None);
    }

    #[test]
    fn a_longer_retry_after_wins_over_the_interval() {
        let p = policy(5, 100, 100_000);
        let asked = Some(Duration::from_secs(3));
        assert_eq!(
            p.next_delay(1, Duration::ZERO, asked),
            Some(Duration::from_secs(3))
        );
        let short = Some(Duration::from_millis(1));
        assert_eq!(
            p.next_delay(1, Duration::ZERO, short),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    proptest! {
        #[test]
        fn total_wait_never_exceeds_max_elapsed(
            attempts in 1u32..50, interval in 1u64..1000, max_elapsed in 1u64..20_000,
            retry_after in proptest::option::of(0u64..3000),
        ) {
            let p = policy(attempts, interval, max_elapsed);
            let mut elapsed = Duration::ZERO;
            let mut made = 1;
            while let Some(d) = p.next_delay(made, elapsed, retry_after.map(Duration::from_millis)) {
                prop_assert!(d >= p.interval);
                elapsed += d;
                made += 1;
            }
            prop_assert!(elapsed <= p.max_elapsed);
            prop_assert!(made <= attempts.max(1));
        }
    }
}
