//! Programs a test needs that cargo does not build (nginx, Chromium). On a
//! developer's machine a missing one skips the test, saying so; under CI
//! (`CI` set, as CI services set it) it fails the test: CI installs them,
//! and a test that skipped there would pass without having run.

use std::path::PathBuf;

/// `found`, or `None` after printing why the test is skipped; panics when
/// `found` is `None` and `CI` is set. `install` says how to get `name`.
pub fn or_skip(name: &str, found: Option<PathBuf>, install: &str) -> Option<PathBuf> {
    or_skip_under(name, found, install, std::env::var_os("CI").is_some())
}

fn or_skip_under(name: &str, found: Option<PathBuf>, install: &str, ci: bool) -> Option<PathBuf> {
    if found.is_none() {
        let why = format!("{name} is not installed ({install})");
        assert!(!ci, "{why}; under CI a missing tool fails the test");
        eprintln!("SKIPPED: {why}");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_skips_locally() {
        assert_eq!(or_skip_under("nginx", None, "apt-get", false), None);
        let found = Some(PathBuf::from("/usr/sbin/nginx"));
        assert_eq!(
            or_skip_under("nginx", found.clone(), "apt-get", true),
            found
        );
    }

    #[test]
    #[should_panic(expected = "nginx is not installed (apt-get); under CI")]
    fn a_missing_tool_fails_under_ci() {
        or_skip_under("nginx", None, "apt-get", true);
    }
}
