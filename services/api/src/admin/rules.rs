//! From what Postgres holds to ok / warn / fail, by the rules of
//! `status.*` in config.yaml. Pure: the tests feed it snapshots.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use db::status::Snapshot;
use settings::{AgeRule, StatusSettings};

use super::model::*;

/// What the api process counted itself over the last hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiHour {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
}

/// A section's state and the words behind it.
#[derive(Debug, Default)]
struct Verdict {
    state: Option<State>,
    reasons: Vec<String>,
}

impl Verdict {
    fn raise(&mut self, state: State, reason: impl Into<String>) {
        self.state = Some(self.state.map_or(state, |s| s.max(state)));
        self.reasons.push(reason.into());
    }

    fn age(&mut self, rule: &AgeRule, age: Duration, what: &str) {
        if age > rule.fail_after {
            self.raise(
                State::Fail,
                format!(
                    "{what} {} ago (fail after {})",
                    human(age),
                    human(rule.fail_after)
                ),
            );
        } else if age > rule.warn_after {
            self.raise(
                State::Warn,
                format!(
                    "{what} {} ago (warn after {})",
                    human(age),
                    human(rule.warn_after)
                ),
            );
        }
    }

    fn done(self) -> (State, Vec<String>) {
        (self.state.unwrap_or(State::Ok), self.reasons)
    }
}

/// `1d 2h`, `3h 5m`, `42s`: the two largest units.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{mins}m {secs}s"),
        (0, _, _) => format!("{hours}h {mins}m"),
        _ => format!("{days}d {hours}h"),
    }
}

fn since(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (now - at).to_std().unwrap_or_default()
}

/// A count from a `key=value` pair of an operations_log row's details.
pub fn detail(details: &str, key: &str) -> Option<String> {
    details
        .split(|c: char| c.is_whitespace() || c == ';')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

pub fn evaluate(snap: Snapshot, api: ApiHour, rules: &StatusSettings) -> Status {
    let now = snap.now;
    let f = &snap.figures;

    // initial_load
    let mut v = Verdict::default();
    let load = snap.initial_load.as_ref();
    let finished = load.is_some_and(|l| l.finished_at.is_some());
    let failed = load.map_or(0, |l| l.failed_pages.len() as i64);
    match load {
        None => v.raise(State::Warn, "no initial load has started"),
        Some(_) if finished && failed > 0 => v.raise(
            State::Warn,
            format!("finished without {failed} page(s) that failed every attempt"),
        ),
        Some(_) if failed > 0 => v.raise(
            State::Warn,
            format!("{failed} page(s) failed; the next run fetches them again"),
        ),
        Some(_) => {}
    }
    let (state, reasons) = v.done();
    let initial_load = InitialLoad {
        state,
        reasons,
        started: load.is_some(),
        finished,
        pages_done: load.map_or(0, |l| i64::from(l.pages_stored)),
        pages_failed: if finished { 0 } else { failed },
        pages_missing: if finished { failed } else { 0 },
        failed_pages: load.map(|l| l.failed_pages.clone()).unwrap_or_default(),
        listings: load.map_or(0, |l| l.records_stored),
        started_at: load.map(|l| l.started_at),
        finished_at: load.and_then(|l| l.finished_at),
    };

    // daily
    let mut v = Verdict::default();
    let behind = f.daily_last_date.map(|date| {
        let end = (date + chrono::Days::new(1))
            .and_time(NaiveTime::MIN)
            .and_utc();
        since(now, end)
    });
    // Before any day is applied, the clock runs from the end of the
    // initial load (the daily update starts on its day).
    match (behind, load.and_then(|l| l.finished_at)) {
        (Some(behind), _) => v.age(&rules.daily, behind, "the last applied day ended"),
        (None, Some(loaded)) => v.age(
            &rules.daily,
            since(now, loaded),
            "no day applied yet; the initial load finished",
        ),
        (None, None) => {}
    }
    if let Some(run) = snap.daily_run.as_ref().filter(|r| r.status != "OK") {
        v.raise(
            State::Warn,
            format!(
                "the last daily run ({}) had errors",
                run.started_at.format("%F %H:%M")
            ),
        );
    }
    let (state, reasons) = v.done();
    let daily = Daily {
        state,
        reasons,
        last_successful_date: f.daily_last_date,
        days_behind: f.daily_last_date.map(|d| (now.date_naive() - d).num_days()),
        behind_seconds: behind.map(|b| b.as_secs_f64()),
        last_run: snap.daily_run.clone().map(Operation::from),
    };

    // normalizer
    let mut v = Verdict::default();
    let oldest = f.normalizer_oldest_waiting.map(|at| since(now, at));
    if let Some(age) = oldest {
        v.age(
            &rules.normalizer,
            age,
            "the oldest waiting listing was loaded",
        );
    }
    if f.normalizer_errors >= rules.normalizer_errors_warn {
        v.raise(
            State::Warn,
            format!("{} listing(s) could not be normalised", f.normalizer_errors),
        );
    }
    let (state, reasons) = v.done();
    let normalizer = Normalizer {
        state,
        reasons,
        waiting: f.normalizer_waiting,
        errors: f.normalizer_errors,
        processed_last_hour: f.normalizer_last_hour,
        oldest_waiting_at: f.normalizer_oldest_waiting,
        oldest_waiting_seconds: oldest.map(|a| a.as_secs_f64()),
    };

    // rejected
    let mut v = Verdict::default();
    let window = human(rules.rejected_window);
    if f.rejected_recent >= rules.rejected_fail {
        v.raise(
            State::Fail,
            format!(
                "{} item(s) rejected in the last {window}",
                f.rejected_recent
            ),
        );
    } else if f.rejected_recent >= rules.rejected_warn {
        v.raise(
            State::Warn,
            format!(
                "{} item(s) rejected in the last {window}",
                f.rejected_recent
            ),
        );
    }
    let (state, reasons) = v.done();
    let rejected = Rejected {
        state,
        reasons,
        total: f.rejected_total,
        recent: f.rejected_recent,
        window_seconds: rules.rejected_window.as_secs_f64(),
        newest: snap
            .rejected
            .iter()
            .map(|r| RejectedItem {
                rejected_at: r.rejected_at,
                endpoint: r.endpoint.clone(),
                inner_id: r.inner_id.clone(),
                reason: r.reason.clone(),
            })
            .collect(),
    };

    // fleet
    let mut v = Verdict::default();
    let proxies = f.proxies_free + f.proxies_in_use + f.proxies_blocked;
    if f.workers_dead_recent > 0 {
        v.raise(
            State::Warn,
            format!(
                "{} worker(s) died in the last {}",
                f.workers_dead_recent,
                human(rules.dead_worker_window)
            ),
        );
    }
    if proxies > 0 && f.proxies_blocked == proxies {
        v.raise(State::Fail, format!("all {proxies} proxies are blocked"));
    } else if proxies > 0
        && f.proxies_blocked as f64 >= rules.proxies_blocked_warn_ratio * proxies as f64
    {
        v.raise(
            State::Warn,
            format!("{} of {proxies} proxies are blocked", f.proxies_blocked),
        );
    }
    if f.tasks_pending > 0 && f.workers_alive == 0 {
        v.raise(
            State::Fail,
            format!("{} task(s) pending and no worker alive", f.tasks_pending),
        );
    }
    let finished_hour = f.tasks_completed_last_hour + f.tasks_failed_last_hour;
    if finished_hour > 0
        && f.tasks_failed_last_hour as f64 >= rules.tasks_failed_warn_ratio * finished_hour as f64
    {
        v.raise(
            State::Warn,
            format!(
                "{} of {finished_hour} tasks finished in the last hour failed",
                f.tasks_failed_last_hour
            ),
        );
    }
    let (state, reasons) = v.done();
    let fleet = Fleet {
        state,
        reasons,
        workers_alive: f.workers_alive,
        workers_dead: f.workers_dead,
        workers_dead_recent: f.workers_dead_recent,
        tasks: TaskCounts {
            pending: f.tasks_pending,
            running: f.tasks_running,
            completed: f.tasks_completed,
            failed: f.tasks_failed,
        },
        proxies: ProxyCounts {
            free: f.proxies_free,
            in_use: f.proxies_in_use,
            blocked: f.proxies_blocked,
        },
        completed_last_hour: f.tasks_completed_last_hour,
        failed_last_hour: f.tasks_failed_last_hour,
    };

    // sync: a database that never pushed does not use sync.
    let mut v = Verdict::default();
    if let Some(at) = f.sync_last_push {
        v.age(&rules.sync, since(now, at), "the last successful push was");
    }
    let reachable = snap.last_push.as_ref().map(|r| r.status == "OK");
    if reachable == Some(false) {
        v.raise(
            State::Warn,
            "the last push run failed (production unreachable?)",
        );
    }
    let (state, reasons) = v.done();
    let sync = Sync {
        state,
        reasons,
        last_push: f.sync_last_push,
        last_pull: f.sync_last_pull,
        waiting: f.sync_waiting,
        target_reachable: reachable,
        last_push_run: snap.last_push.clone().map(Operation::from),
    };

    // api
    let mut v = Verdict::default();
    if api.requests > 0
        && api.server_errors > 0
        && api.server_errors as f64 >= rules.api_5xx_fail_ratio * api.requests as f64
    {
        v.raise(
            State::Fail,
            format!(
                "{} of {} answers in the last hour were 5xx",
                api.server_errors, api.requests
            ),
        );
    } else if api.server_errors >= rules.api_5xx_warn as u64 {
        v.raise(
            State::Warn,
            format!("{} 5xx answer(s) in the last hour", api.server_errors),
        );
    }
    let (state, reasons) = v.done();
    let api = Api {
        state,
        reasons,
        requests_last_hour: api.requests,
        client_errors_last_hour: api.client_errors,
        server_errors_last_hour: api.server_errors,
        active_tokens: f.tokens_active,
    };

    // backup
    let mut v = Verdict::default();
    let good = snap.last_good_backup.as_ref();
    match good {
        Some(b) => v.age(
            &rules.backup,
            since(now, b.started_at),
            "the newest backup was made",
        ),
        None => v.raise(State::Warn, "no backup has been made (scripts/backup.sh)"),
    }
    let last_failed = snap.last_backup.as_ref().is_some_and(|b| b.status != "OK");
    if last_failed {
        v.raise(State::Warn, "the last backup run failed");
    }
    let drill = snap.last_restore_drill.as_ref();
    match drill {
        Some(d) if d.status != "OK" => v.raise(State::Fail, "the last restore drill failed"),
        Some(d) => v.age(
            &rules.restore_drill,
            since(now, d.started_at),
            "the last restore drill ran",
        ),
        None => v.raise(
            State::Warn,
            "no restore drill has run (scripts/restore-drill.sh)",
        ),
    }
    let (state, reasons) = v.done();
    let backup = Backup {
        state,
        reasons,
        last_backup_at: good.map(|b| b.started_at),
        age_seconds: good.map(|b| since(now, b.started_at).as_secs_f64()),
        size_bytes: good.and_then(|b| detail(&b.details, "size_bytes")?.parse().ok()),
        file: good.and_then(|b| detail(&b.details, "file")),
        last_run_failed: last_failed,
        restore_drill_at: drill.map(|d| d.started_at),
        restore_drill_age_seconds: drill.map(|d| since(now, d.started_at).as_secs_f64()),
        restore_drill_status: drill.map(|d| d.status.clone()),
        restore_drill_details: drill.map(|d| d.details.clone()),
    };

    let state = [
        initial_load.state,
        daily.state,
        normalizer.state,
        rejected.state,
        fleet.state,
        sync.state,
        api.state,
        backup.state,
    ]
    .into_iter()
    .max()
    .unwrap_or(State::Ok);
    Status {
        generated_at: now,
        state,
        initial_load,
        daily,
        normalizer,
        rejected,
        fleet,
        sync,
        api,
        backup,
        operations: snap.operations.into_iter().map(Operation::from).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_read_by_key() {
        let d = "file=carfeed-20261207T114715Z.dump size_bytes=43264 tables=13";
        assert_eq!(detail(d, "size_bytes").as_deref(), Some("43264"));
        assert_eq!(
            detail(d, "file").as_deref(),
            Some("carfeed-20261207T114715Z.dump")
        );
        assert_eq!(detail(d, "bytes"), None);
    }

    #[test]
    fn human_durations_show_the_two_largest_units() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3h 5m");
        assert_eq!(human(Duration::from_secs(40 * 3600)), "1d 16h");
    }
}
