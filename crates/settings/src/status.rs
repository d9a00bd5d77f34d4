//! `status.*`: the operator's status page (`/status` on `api.admin_bind`)
//! and the rules that turn its figures into ok / warn / fail.

use std::time::Duration;

use serde::Deserialize;

use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSettings {
    /// The figures are computed at most this often; requests in between get
    /// the copy.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// The newest successful daily update is older than this.
    pub daily: AgeRule,
    /// The oldest listing waiting for the normaliser waits longer than this.
    pub normalizer: AgeRule,
    /// Listings the normaliser failed on: warn from this many.
    pub normalizer_errors_warn: i64,
    /// Items in `rejected_items` received within `rejected_window`.
    pub rejected_warn: i64,
    pub rejected_fail: i64,
    #[serde(with = "humantime_serde")]
    pub rejected_window: Duration,
    /// A worker that died within this window: warn.
    #[serde(with = "humantime_serde")]
    pub dead_worker_window: Duration,
    /// Share of proxies blocked: warn at or above it (every proxy blocked,
    /// or tasks pending with no worker alive: fail).
    pub proxies_blocked_warn_ratio: f64,
    /// Tasks failed in the last hour, as a share of those finished: warn.
    pub tasks_failed_warn_ratio: f64,
    /// The last successful push to production is older than this (a
    /// working database that never pushed is not using sync: ok).
    pub sync: AgeRule,
    /// 5xx answers in the last hour: warn from this many; fail when they
    /// are at least `api_5xx_fail_ratio` of the hour's requests.
    pub api_5xx_warn: i64,
    pub api_5xx_fail_ratio: f64,
    /// The newest successful backup is older than this (none: fail).
    pub backup: AgeRule,
    /// The newest restore drill is older than this (none, or a failed one: warn / fail).
    pub restore_drill: AgeRule,
}

/// Older than `warn_after`: warn; older than `fail_after`: fail.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRule {
    #[serde(with = "humantime_serde")]
    pub warn_after: Duration,
    #[serde(with = "humantime_serde")]
    pub fail_after: Duration,
}

impl AgeRule {
    fn validate(&self, key: &str) -> Result<(), SettingsError> {
        if self.warn_after.is_zero() || self.fail_after < self.warn_after {
            return Err(SettingsError::new(format!(
                "{key}: warn_after must be longer than 0s and fail_after at least warn_after, got {:?} and {:?}",
                self.warn_after, self.fail_after
            )));
        }
        Ok(())
    }
}

fn ratio(key: &str, value: f64) -> Result<(), SettingsError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SettingsError::new(format!(
            "{key} must be between 0 and 1, got {value}"
        )))
    }
}

impl StatusSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.cache_ttl > Duration::from_secs(300) {
            return Err(SettingsError::new(
                "status.cache_ttl must be at most 5m (the page refreshes every 30 s)",
            ));
        }
        self.daily.validate("status.daily")?;
        self.normalizer.validate("status.normalizer")?;
        self.sync.validate("status.sync")?;
        self.backup.validate("status.backup")?;
        self.restore_drill.validate("status.restore_drill")?;
        crate::sections::in_range(
            "status.normalizer_errors_warn",
            self.normalizer_errors_warn,
            1,
            i64::MAX,
        )?;
        crate::sections::in_range("status.rejected_warn", self.rejected_warn, 1, i64::MAX)?;
        crate::sections::in_range(
            "status.rejected_fail",
            self.rejected_fail,
            self.rejected_warn,
            i64::MAX,
        )?;
        crate::sections::in_range("status.api_5xx_warn", self.api_5xx_warn, 1, i64::MAX)?;
        ratio(
            "status.proxies_blocked_warn_ratio",
            self.proxies_blocked_warn_ratio,
        )?;
        ratio(
            "status.tasks_failed_warn_ratio",
            self.tasks_failed_warn_ratio,
        )?;
        ratio("status.api_5xx_fail_ratio", self.api_5xx_fail_ratio)
    }
}

#[cfg(test)]
mod tests {
    use crate::{load_from, Env};

    #[test]
    fn the_shipped_rules_load_and_a_bad_one_is_named() {
        let settings = load_from(&Env::default()).unwrap();
        assert_eq!(settings.status.daily.fail_after.as_secs(), 36 * 3600);
        assert_eq!(
            settings.api.admin_bind, None,
            "off unless compose turns it on"
        );

        let err = load_from(&Env::from_pairs([(
            "CARFEED__STATUS__DAILY__FAIL_AFTER",
            "1h",
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("status.daily"), "{err}");
        let err = load_from(&Env::from_pairs([(
            "CARFEED__STATUS__PROXIES_BLOCKED_WARN_RATIO",
            "1.5",
        )]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("status.proxies_blocked_warn_ratio"),
            "{err}"
        );
        let err =
            load_from(&Env::from_pairs([("CARFEED__API__ADMIN_BIND", "loopback")])).unwrap_err();
        assert!(err.to_string().contains("api.admin_bind"), "{err}");
        let on = load_from(&Env::from_pairs([(
            "CARFEED__API__ADMIN_BIND",
            "127.0.0.1:9090",
        )]))
        .unwrap();
        assert_eq!(
            on.api.admin_bind.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9090")
        );
    }
}
