//! The progress line long jobs print (loader, normaliser):
//! `Progress: 45.2% (112,500 / 250,000 records) | Speed: 500 records/min | ETA: 4h 35m 0s`.

use std::time::{Duration, Instant};

/// Counts records and prints the progress line at most once per interval.
pub struct Progress {
    total: u64,
    done: u64,
    done_at_start: u64,
    started: Instant,
    last_print: Instant,
    interval: Duration,
}

impl Progress {
    /// `done` records were already done (by earlier runs) out of `total`;
    /// the speed counts only this run's.
    pub fn new(total: u64, done: u64, interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            total,
            done,
            done_at_start: done,
            started: now,
            last_print: now,
            interval,
        }
    }

    /// Counts `records` more and prints the line when the interval passed.
    pub fn add(&mut self, records: u64) {
        self.done += records;
        if self.last_print.elapsed() >= self.interval {
            self.last_print = Instant::now();
            self.print();
        }
    }

    /// Prints the line now.
    pub fn print(&self) {
        tracing::info!("{}", self.line());
    }

    pub fn line(&self) -> String {
        line(
            self.done,
            self.total,
            self.done - self.done_at_start,
            self.started.elapsed(),
        )
    }
}

/// The line for `done` of `total` records, `this_run` of them done in
/// `elapsed`. A total smaller than what is done (records arrived meanwhile)
/// counts as `done`, so the line never passes 100%.
pub fn line(done: u64, total: u64, this_run: u64, elapsed: Duration) -> String {
    let total = total.max(done);
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let minutes = elapsed.as_secs_f64() / 60.0;
    let per_min = if minutes > 0.0 {
        this_run as f64 / minutes
    } else {
        0.0
    };
    let eta = if per_min > 0.0 {
        human(Duration::from_secs_f64(
            (total - done) as f64 / per_min * 60.0,
        ))
    } else {
        "unknown".to_owned()
    };
    format!(
        "Progress: {percent:.1}% ({} / {} records) | Speed: {} records/min | ETA: {eta}",
        thousands(done),
        thousands(total),
        thousands(per_min.round() as u64),
    )
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `3725s` -> `1h 2m 5s`; under a minute: `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m {sec}s"),
        (h, min, sec) => format!("{h}h {min}m {sec}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_reads_like_the_spec() {
        assert_eq!(
            line(112_500, 250_000, 112_500, Duration::from_secs(225 * 60)),
            "Progress: 45.0% (112,500 / 250,000 records) | Speed: 500 records/min | ETA: 4h 35m 0s"
        );
    }

    #[test]
    fn the_speed_counts_only_this_runs_records() {
        let line = line(200_000, 250_000, 1_000, Duration::from_secs(60));
        assert!(
            line.contains("| Speed: 1,000 records/min | ETA: 50m 0s"),
            "{line}"
        );
    }

    #[test]
    fn an_empty_job_is_complete_with_an_unknown_eta() {
        assert_eq!(
            line(0, 0, 0, Duration::ZERO),
            "Progress: 100.0% (0 / 0 records) | Speed: 0 records/min | ETA: unknown"
        );
    }

    #[test]
    fn records_that_arrive_meanwhile_never_push_past_100_percent() {
        assert!(
            line(120, 100, 120, Duration::from_secs(60)).starts_with("Progress: 100.0% (120 / 120")
        );
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn a_progress_started_from_earlier_runs_shows_their_records() {
        let p = Progress::new(250_000, 112_500, Duration::from_secs(10));
        assert!(
            p.line()
                .starts_with("Progress: 45.0% (112,500 / 250,000 records) | Speed: 0 records/min"),
            "{}",
            p.line()
        );
    }
}
