//! Request counters and latency histograms, rendered as Prometheus text on
//! the operator listener's `/metrics` (`crate::admin`), and the last hour's
//! answers for `/status`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Bucket counts, sum of seconds, count.
type Histogram = ([u64; BUCKETS.len()], f64, u64);

#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, status) -> requests
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// route -> (bucket counts, sum of seconds, count)
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Answers of the last hour, by class, for `/status`.
    pub last_hour: crate::admin::hour::LastHour,
}

impl Metrics {
    pub(crate) fn observe(&self, route: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route.to_owned(), status)).or_default() += 1;
        drop(requests);
        // The status page's hour counts the clients' requests: a readiness
        // probe's 503 while Postgres restarts is the probe doing its job.
        if !matches!(route, "/api/v1/health" | "/api/v1/ready") {
            self.last_hour.observe(status);
        }
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let entry = latency.entry(route.to_owned()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                entry.0[i] += 1;
            }
        }
        entry.1 += seconds;
        entry.2 += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP carfeed_api_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE carfeed_api_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "carfeed_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        drop(requests);
        out.push_str("# HELP carfeed_api_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE carfeed_api_request_duration_seconds histogram\n");
        let latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for (route, (buckets, sum, count)) in latency.iter() {
            for (bound, n) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(
                    out,
                    "carfeed_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "carfeed_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "carfeed_api_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "carfeed_api_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        out
    }
}
