//! The progress line: `Progress: 45.2% (112,500 / 250,000 records) |
//! Speed: 500 records/min | ETA: 4h 35m`, at most once per interval.

use std::time::{Duration, Instant};

pub struct Progress {
    total: u64,
    done: u64,
    done_at_start: u64,
    started: Instant,
    last_print: Instant,
    interval: Duration,
}

impl Progress {
    /// `done` records are already stored (by earlier runs) out of `total`.
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
            tracing::info!("{}", self.line());
        }
    }

    /// Prints the line now.
    pub fn print(&self) {
        tracing::info!("{}", self.line());
    }

    pub fn line(&self) -> String {
        let total = self.total.max(self.done).max(1);
        let percent = self.done as f64 * 100.0 / total as f64;
        let minutes = self.started.elapsed().as_secs_f64() / 60.0;
        let this_run = self.done - self.done_at_start;
        let speed = if minutes > 0.0 {
            this_run as f64 / minutes
        } else {
            0.0
        };
        let eta = if speed > 0.0 {
            let left = (total - self.done) as f64 / speed;
            format_minutes(left)
        } else {
            "unknown".to_owned()
        };
        format!(
            "Progress: {percent:.1}% ({} / {} records) | Speed: {} records/min | ETA: {eta}",
            thousands(self.done),
            thousands(total),
            thousands(speed.round() as u64)
        )
    }
}

fn format_minutes(minutes: f64) -> String {
    let minutes = minutes.round() as u64;
    if minutes >= 60 {
        format!("{}h {}m", minutes / 60, minutes % 60)
    } else {
        format!("{minutes}m")
    }
}

/// `112500` -> `112,500`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_reads_like_the_spec() {
        let p = Progress::new(250_000, 112_500, Duration::from_secs(10));
        let line = p.line();
        assert!(
            line.starts_with("Progress: 45.0% (112,500 / 250,000 records) | Speed: "),
            "{line}"
        );
        assert!(line.contains("records/min | ETA: "), "{line}");
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
