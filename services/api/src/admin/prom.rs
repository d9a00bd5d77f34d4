//! The pipeline's gauges in the Prometheus text format, drawn from the
//! same [`Status`] as the page (so alerts and page agree), followed by the
//! api's own counters (`crate::metrics`).

use std::fmt::Write as _;

use domain::fleet::{ProxyStatus, TaskStatus, WorkerStatus};

use super::model::*;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, "", value);
    }

    /// A gauge only when the value is known (no sample: "never").
    fn maybe(&mut self, name: &str, help: &str, value: Option<f64>) {
        self.family(name, "gauge", help);
        if let Some(v) = value {
            self.sample(name, "", v);
        }
    }
}

fn ts(at: chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

pub fn render(status: &Status, api_counters: &str) -> String {
    let mut o = Out(String::with_capacity(8 * 1024));
    o.family(
        "carfeed_status_state",
        "gauge",
        "State of each section of /status: 0 ok, 1 warn, 2 fail (rules: config.yaml status.*).",
    );
    for (section, state) in [
        ("initial_load", status.initial_load.state),
        ("daily", status.daily.state),
        ("normalizer", status.normalizer.state),
        ("rejected", status.rejected.state),
        ("fleet", status.fleet.state),
        ("sync", status.sync.state),
        ("api", status.api.state),
        ("backup", status.backup.state),
    ] {
        o.sample(
            "carfeed_status_state",
            &format!("section=\"{section}\""),
            f64::from(state.level()),
        );
    }

    let l = &status.initial_load;
    o.gauge(
        "carfeed_initial_load_finished",
        "1 when the initial load is finished.",
        f64::from(u8::from(l.finished)),
    );
    o.gauge(
        "carfeed_initial_load_pages_done",
        "Pages the initial load stored.",
        l.pages_done as f64,
    );
    o.family(
        "carfeed_initial_load_pages_failed",
        "gauge",
        "Failed pages: retried (state=\"failed\") or given up (state=\"missing\").",
    );
    o.sample(
        "carfeed_initial_load_pages_failed",
        "state=\"failed\"",
        l.pages_failed as f64,
    );
    o.sample(
        "carfeed_initial_load_pages_failed",
        "state=\"missing\"",
        l.pages_missing as f64,
    );
    o.gauge(
        "carfeed_initial_load_listings",
        "Listings stored by the initial load.",
        l.listings as f64,
    );

    let d = &status.daily;
    o.maybe(
        "carfeed_daily_behind_seconds",
        "Seconds since the end of the last day the daily update applied completely.",
        d.behind_seconds,
    );

    let n = &status.normalizer;
    o.gauge(
        "carfeed_normalizer_waiting_rows",
        "Listings waiting for the normaliser.",
        n.waiting as f64,
    );
    o.gauge(
        "carfeed_normalizer_error_rows",
        "Listings the normaliser could not normalise.",
        n.errors as f64,
    );
    o.gauge(
        "carfeed_normalizer_processed_last_hour",
        "Listings normalised by the runs of the last hour.",
        n.processed_last_hour as f64,
    );
    o.gauge(
        "carfeed_normalizer_oldest_waiting_seconds",
        "Age of the oldest listing waiting for the normaliser (0: none waits).",
        n.oldest_waiting_seconds.unwrap_or(0.0),
    );

    let r = &status.rejected;
    o.gauge(
        "carfeed_rejected_items",
        "Rows in rejected_items.",
        r.total as f64,
    );
    o.gauge(
        "carfeed_rejected_items_recent",
        "Items rejected within status.rejected_window.",
        r.recent as f64,
    );

    let f = &status.fleet;
    let by = |status: &dyn std::fmt::Display| format!("status=\"{status}\"");
    o.family("carfeed_workers", "gauge", "Workers by status.");
    o.sample(
        "carfeed_workers",
        &by(&WorkerStatus::Alive),
        f.workers_alive as f64,
    );
    o.sample(
        "carfeed_workers",
        &by(&WorkerStatus::Dead),
        f.workers_dead as f64,
    );
    o.family("carfeed_tasks", "gauge", "Tasks by status.");
    for (s, v) in [
        (TaskStatus::Pending, f.tasks.pending),
        (TaskStatus::Running, f.tasks.running),
        (TaskStatus::Completed, f.tasks.completed),
        (TaskStatus::Failed, f.tasks.failed),
    ] {
        o.sample("carfeed_tasks", &by(&s), v as f64);
    }
    o.family(
        "carfeed_tasks_finished_last_hour",
        "gauge",
        "Tasks finished in the last hour, by status.",
    );
    o.sample(
        "carfeed_tasks_finished_last_hour",
        &by(&TaskStatus::Completed),
        f.completed_last_hour as f64,
    );
    o.sample(
        "carfeed_tasks_finished_last_hour",
        &by(&TaskStatus::Failed),
        f.failed_last_hour as f64,
    );
    o.family("carfeed_proxies", "gauge", "Proxies by status.");
    for (s, v) in [
        (ProxyStatus::Free, f.proxies.free),
        (ProxyStatus::InUse, f.proxies.in_use),
        (ProxyStatus::Blocked, f.proxies.blocked),
    ] {
        o.sample("carfeed_proxies", &by(&s), v as f64);
    }

    let s = &status.sync;
    o.maybe(
        "carfeed_sync_last_push_timestamp_seconds",
        "When the last successful push to production ended (Unix time).",
        s.last_push.map(ts),
    );
    o.maybe(
        "carfeed_sync_last_pull_timestamp_seconds",
        "When the last successful pull from production ended (Unix time).",
        s.last_pull.map(ts),
    );
    o.maybe(
        "carfeed_sync_waiting_rows",
        "Offers changed since the last push.",
        s.waiting.map(|w| w as f64),
    );

    o.gauge(
        "carfeed_api_tokens_active",
        "API tokens neither revoked nor expired.",
        status.api.active_tokens as f64,
    );

    let b = &status.backup;
    o.maybe(
        "carfeed_backup_last_success_timestamp_seconds",
        "When the newest successful backup started (Unix time).",
        b.last_backup_at.map(ts),
    );
    o.maybe(
        "carfeed_backup_size_bytes",
        "Size of the newest successful backup.",
        b.size_bytes.map(|n| n as f64),
    );
    o.maybe(
        "carfeed_restore_drill_last_timestamp_seconds",
        "When the newest restore drill started (Unix time).",
        b.restore_drill_at.map(ts),
    );
    o.maybe(
        "carfeed_restore_drill_ok",
        "1 when the newest restore drill passed, 0 when it failed.",
        b.restore_drill_status
            .as_deref()
            .map(|s| f64::from(u8::from(s == "OK"))),
    );
    o.gauge(
        "carfeed_status_generated_timestamp_seconds",
        "When these figures were read from Postgres (Unix time).",
        ts(status.generated_at),
    );
    o.0.push_str(api_counters);
    o.0
}
