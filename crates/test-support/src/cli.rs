//! Running a service binary the way a user or Docker does, and checking how
//! it behaves at start and stop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A command for `binary` with a clean environment: only PATH, plus the
/// given variables, and config.yaml taken from the binary's built-in copy.
pub fn command(binary: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Run where no config.yaml or .env can leak in.
        .current_dir(std::env::temp_dir());
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

pub fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(binary, env)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"))
}

/// Non-empty lines of stdout and stderr together.
pub fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A running service with its stdout read line by line in the background.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command(binary, env)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let (tx, rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a line containing `needle` appears; panics after `timeout`
    /// with everything seen so far.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {timeout:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Like [`Self::wait_for_line`], but a line already seen at index
    /// `since` or later counts too: for two lines whose order is not fixed.
    pub fn wait_for_line_since(&mut self, since: usize, needle: &str, timeout: Duration) -> String {
        if let Some(line) = self
            .output()
            .get(since..)
            .into_iter()
            .flatten()
            .find(|l| l.contains(needle))
        {
            return line.clone();
        }
        self.wait_for_line(needle, timeout)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        kill(pid, signal).expect("signal the child");
    }

    /// Waits for the process to exit; panics after `timeout` (and kills it).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines seen so far plus whatever is still buffered.
    pub fn output(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The checks every service binary must pass, in one place so each service's
/// `tests/cli.rs` is a few lines.
pub mod checks {
    use super::*;

    /// `--help` exits 0 and describes the binary and its `migrate` subcommand.
    pub fn help_works(binary: &str) {
        let out = run(binary, &["--help"], &[]);
        assert!(out.status.success(), "--help failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{text}");
        assert!(text.contains("migrate"), "{text}");
        let name = Path::new(binary).file_name().unwrap().to_string_lossy();
        assert!(text.contains(&*name), "{text}");
    }

    /// Without DATABASE_URL: exit code 2 and exactly one line naming it.
    pub fn missing_database_url_exits_2_with_one_line(binary: &str, args: &[&str]) {
        let out = run(binary, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let lines = lines(&out);
        assert_eq!(lines.len(), 1, "expected one line, got {lines:?}");
        assert!(lines[0].contains("DATABASE_URL"), "{lines:?}");
    }

    /// A bad config value: exit code 2 and one line naming the key.
    pub fn invalid_setting_exits_2_naming_the_key(binary: &str, args: &[&str], database_url: &str) {
        let out = run(
            binary,
            args,
            &[
                ("DATABASE_URL", database_url),
                ("CARFEED__NORMALIZER__BATCH_SIZE", "-5"),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_eq!(
            lines(&out),
            vec!["config: normalizer.batch_size must be between 1 and 10000, got -5".to_owned()]
        );
    }

    /// Every setting deserialised into its final type (a bounded integer,
    /// an address, an IP range, a cron schedule, a URL, a header name) with
    /// a bad value, and the key whose line names it.
    pub const BAD_TYPED_SETTINGS: &[(&str, &str, &str)] = &[
        ("CARFEED__LOG__RETENTION_DAYS", "0", "log.retention_days"),
        (
            "CARFEED__DATABASE__MAX_CONNECTIONS",
            "0",
            "database.max_connections",
        ),
        (
            "CARFEED__UPSTREAM__BASE_URL",
            "ftp://example.com/api",
            "upstream.base_url",
        ),
        (
            "CHE168_BASE_URL",
            "autobase.auto-api.com",
            "upstream.base_url",
        ),
        (
            "CARFEED__UPSTREAM__MAX_BODY_MIB",
            "0",
            "upstream.max_body_mib",
        ),
        (
            "CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS",
            "0",
            "upstream.retry.max_attempts",
        ),
        (
            "CARFEED__LOADER__SCHEDULE",
            "0 0 2 * * *",
            "loader.schedule",
        ),
        ("CARFEED__LOADER__SCHEDULE", "61 2 * * *", "loader.schedule"),
        (
            "CARFEED__LOADER__EXPECTED_TOTAL",
            "0",
            "loader.expected_total",
        ),
        (
            "CARFEED__LOADER__WRITE_CONNECTIONS",
            "17",
            "loader.write_connections",
        ),
        (
            "CARFEED__LOADER__MAX_CONSECUTIVE_FAILED_PAGES",
            "0",
            "loader.max_consecutive_failed_pages",
        ),
        (
            "CARFEED__LOADER__FAILED_PAGE_ROUNDS",
            "0",
            "loader.failed_page_rounds",
        ),
        (
            "CARFEED__NORMALIZER__BATCH_SIZE",
            "-5",
            "normalizer.batch_size",
        ),
        (
            "CARFEED__NORMALIZER__PIPELINE_DEPTH",
            "0",
            "normalizer.pipeline_depth",
        ),
        ("API_BIND", "localhost", "api.bind"),
        ("CARFEED__API__ADMIN_BIND", "loopback", "api.admin_bind"),
        ("CARFEED__API__MAX_BODY_BYTES", "-1", "api.max_body_bytes"),
        (
            "CARFEED__API__DEFAULT_PAGE_SIZE",
            "0",
            "api.default_page_size",
        ),
        ("CARFEED__API__MAX_PAGE_SIZE", "10001", "api.max_page_size"),
        ("CARFEED__API__INITIAL_TOKENS", "-1", "api.initial_tokens"),
        (
            "CARFEED__API__TRUSTED_PROXIES",
            "127.0.0.1,nginx",
            "api.trusted_proxies[1]",
        ),
        (
            "CARFEED__API__CLIENT_IP_HEADER",
            "x real ip",
            "api.client_ip_header",
        ),
        (
            "CARFEED__API__MAX_IN_FLIGHT_PER_TOKEN",
            "-1",
            "api.max_in_flight_per_token",
        ),
        (
            "CARFEED__API__RATE_LIMIT__PER_SECOND",
            "0",
            "api.rate_limit.per_second",
        ),
        (
            "CARFEED__API__RATE_LIMIT__BURST",
            "0",
            "api.rate_limit.burst",
        ),
        (
            "CARFEED__API__RATE_LIMIT__LOOKUPS_PER_SECOND",
            "0",
            "api.rate_limit.lookups_per_second",
        ),
        (
            "CARFEED__API__RATE_LIMIT__LOOKUPS_BURST",
            "0",
            "api.rate_limit.lookups_burst",
        ),
        ("CARFEED__WORKER__SLOTS", "0", "worker.slots"),
        ("CARFEED__WORKER__SLOTS", "1025", "worker.slots"),
        (
            "CARFEED__WORKER__REGISTER_ATTEMPTS",
            "0",
            "worker.register_attempts",
        ),
        (
            "CARFEED__WORKER__STALE_AFTER_BEATS",
            "1",
            "worker.stale_after_beats",
        ),
        (
            "CARFEED__WORKER__COMPLETION_BATCH",
            "0",
            "worker.completion_batch",
        ),
        (
            "CARFEED__WORKER__CLAIMS_IN_FLIGHT",
            "65",
            "worker.claims_in_flight",
        ),
        ("CARFEED__WORKER__MAX_ATTEMPTS", "0", "worker.max_attempts"),
        (
            "CARFEED__WORKER__MAX_BLOCKS_PER_TASK",
            "0",
            "worker.max_blocks_per_task",
        ),
        (
            "CARFEED__WORKER__MAX_PROXY_ROTATIONS",
            "1001",
            "worker.max_proxy_rotations",
        ),
        (
            "CARFEED__WORKER__BLOCK_PAGE_MAX_BYTES",
            "-1",
            "worker.block_page_max_bytes",
        ),
        (
            "CARFEED__WORKER__BODY_CAP_BYTES",
            "-1",
            "worker.body_cap_bytes",
        ),
        (
            "CARFEED__WORKER__BROWSER__HTML_CAP_BYTES",
            "-1",
            "worker.browser.html_cap_bytes",
        ),
        (
            "CARFEED__WORKER__CLEANUP__PURGE_BATCH",
            "0",
            "worker.cleanup.purge_batch",
        ),
        ("CARFEED__SYNC__BATCH_SIZE", "0", "sync.batch_size"),
        (
            "CARFEED__SYNC__TARGET_MAX_CONNECTIONS",
            "101",
            "sync.target_max_connections",
        ),
        (
            "CARFEED__SYNC__PULL_SCHEDULE",
            "every night",
            "sync.pull_schedule",
        ),
    ];

    /// A bad value of each typed setting: exit code 2 and one line, the
    /// key's own sentence (`config: <key> must ...`), before any connection.
    pub fn bad_typed_settings_exit_2_naming_their_keys(binary: &str, args: &[&str]) {
        for (variable, value, key) in BAD_TYPED_SETTINGS {
            let out = run(
                binary,
                args,
                &[
                    // Never connected to: the settings fail first.
                    ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
                    (variable, value),
                ],
            );
            assert_eq!(out.status.code(), Some(2), "{variable}={value}: {out:?}");
            let lines = lines(&out);
            assert_eq!(lines.len(), 1, "{variable}={value}: {lines:?}");
            let start = format!("config: {key} must ");
            assert!(
                lines[0].starts_with(&start),
                "{variable}={value}: {:?} does not start with {start:?}",
                lines[0]
            );
        }
    }

    /// Against a database without carfeed's schema: exit 2, one line saying
    /// the schema is too old and what to run.
    pub fn refuses_an_unmigrated_database(binary: &str, args: &[&str], database_url: &str) {
        let out = run(binary, args, &[("DATABASE_URL", database_url)]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let lines = lines(&out);
        assert_eq!(lines.len(), 1, "expected one line, got {lines:?}");
        assert!(lines[0].contains("schema is at version 0"), "{lines:?}");
        assert!(lines[0].contains("migrate"), "{lines:?}");
    }

    /// `migrate` applies the schema, and running it again is a no-op.
    pub fn migrate_applies_the_schema_once(binary: &str, database_url: &str) {
        let env = [("DATABASE_URL", database_url)];
        let first = run(binary, &["migrate"], &env);
        assert!(first.status.success(), "{first:?}");
        assert!(
            lines(&first).iter().any(|l| l.contains("Applied")),
            "{first:?}"
        );
        let second = run(binary, &["migrate"], &env);
        assert!(second.status.success(), "{second:?}");
        assert!(
            lines(&second).iter().any(|l| l.contains("up to date")),
            "{second:?}"
        );
    }

    /// `args` starts, says it is ready, and exits 0 soon after SIGTERM.
    pub fn serves_until_sigterm(binary: &str, args: &[&str], env: &[(&str, &str)], ready: &str) {
        let mut service = Running::start(binary, args, env);
        service.wait_for_line(ready, Duration::from_secs(20));
        service.signal(Signal::SIGTERM);
        let status = service.wait_exit(Duration::from_secs(15));
        assert!(
            status.success(),
            "exit status {status:?}: {:?}",
            service.output()
        );
    }
}

/// The start-up and shutdown tests every service binary must pass, as test
/// functions in the calling test file:
/// `test_support::service_cli_tests!(env!("CARGO_BIN_EXE_sync"), ["serve"], "sync ready");`
/// The caller needs `sqlx` (for `#[sqlx::test]`) among its dev-dependencies.
#[macro_export]
macro_rules! service_cli_tests {
    ($bin:expr, [$($serve:expr),+], $ready:expr) => {
        $crate::service_cli_tests!($bin, [$($serve),+], $ready, []);
    };
    ($bin:expr, [$($serve:expr),+], $ready:expr, [$(($key:expr, $value:expr)),*]) => {
        const SERVE: &[&str] = &[$($serve),+];

        #[test]
        fn help_describes_the_binary_and_its_subcommands() {
            $crate::cli::checks::help_works($bin);
        }

        #[test]
        fn a_missing_database_url_exits_2_with_one_line() {
            $crate::cli::checks::missing_database_url_exits_2_with_one_line($bin, SERVE);
        }

        #[sqlx::test(migrations = false)]
        async fn an_invalid_setting_exits_2_naming_the_key(
            _: sqlx::postgres::PgPoolOptions,
            options: sqlx::postgres::PgConnectOptions,
        ) {
            let url = $crate::database_url(&options);
            $crate::cli::checks::invalid_setting_exits_2_naming_the_key($bin, SERVE, &url);
        }

        #[test]
        fn a_bad_value_of_each_typed_setting_exits_2_naming_its_key() {
            $crate::cli::checks::bad_typed_settings_exit_2_naming_their_keys($bin, SERVE);
        }

        #[sqlx::test(migrations = false)]
        async fn serve_refuses_an_unmigrated_database(
            _: sqlx::postgres::PgPoolOptions,
            options: sqlx::postgres::PgConnectOptions,
        ) {
            let url = $crate::database_url(&options);
            $crate::cli::checks::refuses_an_unmigrated_database($bin, SERVE, &url);
        }

        #[sqlx::test(migrations = false)]
        async fn migrate_then_serve_until_sigterm(
            _: sqlx::postgres::PgPoolOptions,
            options: sqlx::postgres::PgConnectOptions,
        ) {
            let url = $crate::database_url(&options);
            $crate::cli::checks::migrate_applies_the_schema_once($bin, &url);
            let env = [("DATABASE_URL", url.as_str()) $(, ($key, $value))*];
            $crate::cli::checks::serves_until_sigterm($bin, SERVE, &env, $ready);
        }
    };
}
