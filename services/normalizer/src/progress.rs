//! The progress line, like the loader's:
//! `Progress: 45.2% (112,500 / 250,000 records) | Speed: 500 records/min | ETA 3m 45s`.

use std::time::Duration;

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

/// The line for `done` of `total` records after `elapsed`. A total smaller
/// than what is done (rows arrived meanwhile) counts as `done`.
pub fn line(done: u64, total: u64, elapsed: Duration) -> String {
    let total = total.max(done);
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let minutes = elapsed.as_secs_f64() / 60.0;
    let per_min = if minutes > 0.0 {
        done as f64 / minutes
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
        "Progress: {percent:.1}% ({} / {} records) | Speed: {} records/min | ETA {eta}",
        thousands(done),
        thousands(total),
        thousands(per_min.round() as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_reads_like_the_loaders() {
        assert_eq!(
            line(112_500, 250_000, Duration::from_secs(225 * 60)),
            "Progress: 45.0% (112,500 / 250,000 records) | Speed: 500 records/min | ETA 4h 35m 0s"
        );
    }

    #[test]
    fn an_empty_queue_is_complete_with_an_unknown_eta() {
        assert_eq!(
            line(0, 0, Duration::ZERO),
            "Progress: 100.0% (0 / 0 records) | Speed: 0 records/min | ETA unknown"
        );
    }

    #[test]
    fn rows_that_arrive_while_draining_never_push_past_100_percent() {
        assert!(line(120, 100, Duration::from_secs(60)).starts_with("Progress: 100.0% (120 / 120"));
    }
}
