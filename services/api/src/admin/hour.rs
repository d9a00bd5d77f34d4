//! The api's own answers over the last hour, for `/status`: sixty
//! one-minute buckets, each stamped with its minute so a stale one counts
//! as empty.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::rules::ApiHour;

#[derive(Debug)]
pub struct LastHour(Mutex<[(u64, ApiHour); 60]>);

impl Default for LastHour {
    fn default() -> Self {
        Self(Mutex::new([(0, ApiHour::default()); 60]))
    }
}

fn minute_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

impl LastHour {
    pub fn observe(&self, status: u16) {
        self.observe_at(minute_now(), status);
    }

    fn observe_at(&self, minute: u64, status: u16) {
        let mut buckets = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut buckets[(minute % 60) as usize];
        if slot.0 != minute {
            *slot = (minute, ApiHour::default());
        }
        slot.1.requests += 1;
        match status {
            400..=499 => slot.1.client_errors += 1,
            500..=599 => slot.1.server_errors += 1,
            _ => {}
        }
    }

    pub fn totals(&self) -> ApiHour {
        self.totals_at(minute_now())
    }

    fn totals_at(&self, minute: u64) -> ApiHour {
        let buckets = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .iter()
            .filter(|(m, _)| minute.saturating_sub(*m) < 60)
            .fold(ApiHour::default(), |acc, (_, h)| ApiHour {
                requests: acc.requests + h.requests,
                client_errors: acc.client_errors + h.client_errors,
                server_errors: acc.server_errors + h.server_errors,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_older_than_an_hour_no_longer_count() {
        let hour = LastHour::default();
        hour.observe_at(1000, 200);
        hour.observe_at(1000, 404);
        hour.observe_at(1030, 503);
        let t = hour.totals_at(1030);
        assert_eq!((t.requests, t.client_errors, t.server_errors), (3, 1, 1));
        let t = hour.totals_at(1060);
        assert_eq!((t.requests, t.client_errors, t.server_errors), (1, 0, 1));
        hour.observe_at(1090, 200); // same slot as 1030, a new minute
        let t = hour.totals_at(1090);
        assert_eq!((t.requests, t.server_errors), (1, 0));
    }
}
